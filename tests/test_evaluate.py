"""The evaluation end to end on a tiny real set (copy, warp, the true frames, an untrained model) and on the
synthetic set, through the library and the command line."""
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, methods
from bigo_facegen.evaluation import conditions, protocol, report
from bigo_facegen.files import OutputPathError

CLIPS = ("dpe_s.mp4", "mead_W011_neutral.mp4")
KEPT_FRAMES = (1, 30, 60, 90)   # the reference and three targets far enough apart to move
REPO = Path(__file__).resolve().parents[1]
KEYS = {"psnr", "ssim", "psnr_face", "ssim_face", "identity_accuracy", "identity_distance", "keypoint_nme",
        "keypoint_accuracy", "keypoint_jitter", "frames", *protocol.REGION_METRICS}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, real_faces_dir):
    root = tmp_path_factory.mktemp("tiny")
    (root / "videos").mkdir()
    videos = []
    for entry in annotations.load(real_faces_dir / "annotations.json"):
        if entry.video in CLIPS:
            shutil.copyfile(real_faces_dir / entry.video_path, root / entry.video_path)
            entry.frames = [f for f in entry.frames if f.index in KEPT_FRAMES]
            videos.append(entry)
    annotations.dump(videos, root / "annotations.json")
    return root


@pytest.fixture(scope="module")
def copy_run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("copy")
    report.run("copy", str(tiny_dir), out, split="all", with_truth=True, samples_per_video=2, progress=False)
    return out


@pytest.fixture(scope="module")
def small_evaluation(tiny_dir):
    """The copy baseline on one target per video: an `Evaluation` to write reports of."""
    return protocol.evaluate(tiny_dir, {"copy": methods.Copy()}, split="all", max_frames_per_video=1,
                             samples_per_video=1, progress=False)


@pytest.fixture(scope="module")
def warp_run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("warp")
    report.run("warp", str(tiny_dir), out, split="all", progress=False)
    return out


def test_results_json_has_every_level_and_metric(copy_run):
    results = json.loads((copy_run / "results.json").read_text())
    assert results["method"] == "copy" and results["layout"] == "ibug68"
    assert KEYS <= set(results["overall"]) and results["overall"]["frames"] == 6
    assert set(results["videos"]) == set(CLIPS)
    for summary in results["videos"].values():
        assert KEYS <= set(summary) and summary["frames"] == 3
    assert sum(t["frames"] for t in results["tiers"].values()) == 6
    assert all(KEYS <= set(t) for t in results["tiers"].values())
    # Every target is in at least one condition.
    assert set(results["conditions"]) <= set(conditions.CONDITIONS)
    assert sum(c["frames"] for c in results["conditions"].values()) >= 6
    assert all(KEYS <= set(c) for c in results["conditions"].values())


def test_the_true_frames_are_the_judges_floor(copy_run):
    results = json.loads((copy_run / "results.json").read_text())
    truth, copy = results["compared"]["truth"]["overall"], results["overall"]
    assert truth["psnr"] == "inf" and truth["ssim"] == pytest.approx(1.0)
    assert truth["keypoint_nme"] < 0.02 and truth["keypoint_accuracy"] == 1.0
    assert truth["identity_accuracy"] == 1.0
    assert copy["keypoint_nme"] > 2 * truth["keypoint_nme"]
    # Each clip's third target is the first with two before it: the judge's points shake a little on true frames.
    assert 0 < truth["keypoint_jitter"] < 0.1
    assert np.isfinite(copy["psnr"]) and 0 < copy["ssim"] < 1
    assert truth["psnr_mouth"] == truth["psnr_eyes"] == "inf" and truth["perceptual_face"] == 0.0
    assert np.isfinite(copy["psnr_mouth"]) and copy["perceptual_face"] > 0 and copy["perceptual_mouth"] > 0


def test_warp_beats_copy_on_keypoints_and_face(copy_run, warp_run):
    copy = json.loads((copy_run / "results.json").read_text())["overall"]
    warp = json.loads((warp_run / "results.json").read_text())["overall"]
    assert warp["keypoint_nme"] < copy["keypoint_nme"]
    assert warp["ssim_face"] > copy["ssim_face"]
    assert warp["identity_accuracy"] == 1.0


def test_markdown_plots_and_contact_sheets(copy_run, warp_run):
    markdown = (copy_run / "results.md").read_text()
    assert "| copy |" in markdown and "| truth |" in markdown and "## Per video" in markdown
    assert "## Per condition" in markdown
    # Each table's rows again in a second table of the mouth and eye measures.
    assert markdown.count("| method | PSNR mouth | SSIM mouth |") == markdown.count("| method | PSNR | SSIM |") > 0
    for name in CLIPS:
        stem = Path(name).stem
        plot = cv2.imread(str(copy_run / "plots" / f"{stem}.png"))
        assert plot is not None and plot.shape[0] > 400 and plot.std() > 10
        sheet = cv2.imread(str(copy_run / "sheets" / f"{stem}.png"))
        # Two sampled targets, four columns: reference | truth | baseline (warp) | ours (copy).
        assert sheet.shape[0] == 2 * (protocol.THUMBNAIL_HEIGHT + 4)
        assert sheet.shape[1] >= 4 * protocol.THUMBNAIL_HEIGHT
        warp_sheet = cv2.imread(str(warp_run / "sheets" / f"{stem}.png"))
        assert warp_sheet.shape[1] < sheet.shape[1]    # the baseline is ours: no duplicate column
    # One sheet per condition met by a sampled target, each row one such target (4 sampled targets in all).
    results = json.loads((copy_run / "results.json").read_text())
    condition_sheets = sorted(p.name for p in (copy_run / "sheets").glob("condition_*.png"))
    assert condition_sheets and set(condition_sheets) <= {f"condition_{c}.png" for c in results["conditions"]}
    rows = sum(cv2.imread(str(copy_run / "sheets" / name)).shape[0] for name in condition_sheets)
    assert rows >= 4 * (protocol.THUMBNAIL_HEIGHT + 4)


def test_frame_limit_and_stride_select_the_targets(tiny_dir):
    cases = protocol.load_cases(tiny_dir, "all", max_frames_per_video=2)
    assert [[t.index for t in c.targets] for c in cases] == [[30, 90], [30, 90]]
    cases = protocol.load_cases(tiny_dir, "all", frame_stride=2)
    assert [c.reference.index for c in cases] == [1, 1]
    assert [[t.index for t in c.targets] for c in cases] == [[30, 90], [30, 90]]
    cases = protocol.load_cases(tiny_dir, "all", max_frames_per_video=1, frame_stride=2)
    assert [[t.index for t in c.targets] for c in cases] == [[30], [30]]
    assert protocol.strided(list(range(10)), 3) == [0, 4, 8]


def test_a_model_is_evaluated_through_inference(tiny_dir):
    from bigo_facegen import config as config_lib
    from bigo_facegen.face_model import FaceModel
    from bigo_facegen.models.registry import build_generator

    cfg = config_lib.override(config_lib.preset("cpu"), {"data.layout": "ibug68", "data.image_size": 64})
    generator = build_generator(cfg.model, cfg.data.image_size, 68)
    method = methods.ModelMethod(FaceModel.from_generator(generator, cfg))
    evaluation = protocol.evaluate(tiny_dir, {"model": method}, split="all", max_frames_per_video=1,
                                   samples_per_video=1, progress=False)
    scores = [s for v in evaluation.videos for s in v.scores["model"]]
    assert len(scores) == 2 and all(np.isfinite(s.psnr) and s.keypoint_nme is not None for s in scores)


def test_synthetic_cartoons_are_judged_on_the_points_dlib_knows(tmp_path):
    data = report.synthetic_data(tmp_path / "cache", num_videos=3, frames_per_video=3, frame_size=(128, 128))
    assert report.synthetic_data(tmp_path / "cache", num_videos=3, frames_per_video=3, frame_size=(128, 128)) == data
    out = tmp_path / "out"
    report.run("copy", str(data), out, split="all", progress=False)
    results = json.loads((out / "results.json").read_text())
    overall = results["overall"]
    assert results["layout"] == "bigo106" and overall["frames"] > 0
    # Every frame dlib finds a face in is judged for identity and keypoints alike.
    assert overall["identity_frames"] > 0 and overall["keypoint_nme"] > 0
    for summary in results["videos"].values():
        assert (summary["keypoint_nme"] is None) == (summary["identity_frames"] == 0)
    assert "correspond" in (out / "results.md").read_text()


def test_command_line(tiny_dir, tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "experiments.evaluate", "--model=warp", f"--data={tiny_dir}",
                           f"--output={out}", "--split=all", "--max_frames_per_video=1", "--frame_stride=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["overall"]["frames"] == 2
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--model={tmp_path / 'no_model'}",
                          f"--data={tiny_dir}", f"--output={out}", "--split=all"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "no_model" in bad.stderr



# --- writing the report: checked first, whole or not at all ---------------------------------------------------------

REPORT = ["plots", "results.json", "results.md", "sheets"]
PICTURES = sorted(f"{Path(name).stem}.png" for name in CLIPS)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (hidden ones too) with its content; None for folders."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def test_report_into_a_new_folder_appears_whole_with_the_mkdir_mode(small_evaluation, tmp_path):
    previous = os.umask(0o027)  # neither mkdtemp's 0700 nor a fixed 0755
    try:
        path = report.write_report(small_evaluation, tmp_path / "runs" / "eval")
    finally:
        os.umask(previous)
    out = tmp_path / "runs" / "eval"
    assert path == out / "results.json" and os.listdir(tmp_path / "runs") == ["eval"]
    assert sorted(os.listdir(out)) == REPORT
    assert sorted(os.listdir(out / "plots")) == PICTURES
    sheets = sorted(os.listdir(out / "sheets"))
    assert [s for s in sheets if not s.startswith("condition_")] == PICTURES and len(sheets) > len(PICTURES)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE((out / "plots").stat().st_mode) == 0o750
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert json.loads(path.read_text())["overall"]["frames"] == 2


def test_report_replaces_an_earlier_one_and_keeps_other_files(small_evaluation, tmp_path):
    for name in ("results.json", "results.md"):
        (tmp_path / name).write_text("old")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / PICTURES[0]).write_text("old")
    (tmp_path / "plots" / "other_video.png").write_text("kept")
    (tmp_path / "notes.txt").write_text("kept")
    report.write_report(small_evaluation, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", *REPORT]  # no temporary folder left
    assert sorted(os.listdir(tmp_path / "plots")) == sorted([*PICTURES, "other_video.png"])
    assert (tmp_path / "notes.txt").read_text() == (tmp_path / "plots" / "other_video.png").read_text() == "kept"
    assert json.loads((tmp_path / "results.json").read_text())["overall"]["frames"] == 2
    assert (tmp_path / "plots" / PICTURES[0]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("clash, message", [
    ("plots", "{out}/plots is not a folder, but the report writes its plots folder there"),
    ("sheets", "{out}/sheets is not a folder, but the report writes its sheets folder there"),
    ("results.json/", "{out}/results.json is a folder, but the report writes its results.json file there"),
    ("results.md/", "{out}/results.md is a folder, but the report writes its results.md file there"),
    ("sheets/dpe_s.png/", "{out}/sheets/dpe_s.png is a folder, but the report writes its sheets/dpe_s.png file there"),
], ids=["plots_is_a_file", "sheets_is_a_file", "results_json_is_a_folder", "results_md_is_a_folder",
        "a_sheet_is_a_folder"])
def test_a_clashing_name_stops_the_report_before_anything_is_written(small_evaluation, tmp_path, clash, message):
    out = tmp_path / "out"
    (out / clash).parent.mkdir(parents=True, exist_ok=True)
    (out / clash).mkdir() if clash.endswith("/") else (out / clash).write_text("kept")
    (out / "notes.txt").write_text("kept")
    before = _tree(tmp_path)
    with pytest.raises(OutputPathError) as error:
        report.write_report(small_evaluation, out)
    assert str(error.value) == (f"output {out}: " + message.format(out=out)
                                + "; move it away or choose another output folder")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new_folder", "existing_folder"])
def test_a_report_that_fails_half_way_leaves_nothing(small_evaluation, tmp_path, monkeypatch, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "results.json").write_text("old")
    before = _tree(tmp_path)

    def fail(*args, **kwargs):
        raise RuntimeError("the second sheet cannot be drawn")

    drawn = iter([report.contact_sheet, fail])
    monkeypatch.setattr(report, "contact_sheet", lambda *args, **kwargs: next(drawn)(*args, **kwargs))
    with pytest.raises(RuntimeError, match="second sheet"):
        report.write_report(small_evaluation, out)
    assert _tree(tmp_path) == before


def _evaluate(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.evaluate", "--split=all", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("setup, output, message", [
    ("file", "out", "error: output {d}/out: exists and is not a folder"),
    ("plots", "out", "error: output {d}/out: {d}/out/plots is not a folder, but the report writes its plots folder "
                     "there; move it away or choose another output folder"),
    ("file", "out/report", "error: output {d}/out/report: {d}/out is a file, not a folder"),
], ids=["output_is_a_file", "plots_is_a_file", "parent_is_a_file"])
def test_command_line_checks_the_output_before_evaluating(tiny_dir, tmp_path, setup, output, message):
    if setup == "file":
        (tmp_path / "out").write_text("kept")
    else:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "plots").write_text("kept")
    before = _tree(tmp_path)
    # A model that does not exist: only a check made before the evaluation starts can speak first.
    done = _evaluate(f"--model={tmp_path / 'no_model'}", f"--data={tiny_dir}", f"--output={tmp_path / output}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [message.format(d=tmp_path)]
    assert _tree(tmp_path) == before

"""The evaluation end to end on a tiny real set (copy, warp, the true frames, an untrained model) and on the
synthetic set, through the library and the command line."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bigo_facegen import annotations
from bigo_facegen.evaluation import conditions, protocol, report

CLIPS = ("dpe_s.mp4", "mead_W011_neutral.mp4")
KEPT_FRAMES = (1, 30, 60, 90)   # the reference and three targets far enough apart to move
REPO = Path(__file__).resolve().parents[1]
KEYS = {"psnr", "ssim", "psnr_face", "ssim_face", "identity_accuracy", "identity_distance", "keypoint_nme",
        "keypoint_accuracy", "frames"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, real_faces_dir):
    root = tmp_path_factory.mktemp("tiny")
    (root / "videos").mkdir()
    videos = []
    for entry in annotations.load(real_faces_dir / "annotations.json"):
        if entry.video in CLIPS:
            (root / entry.video_path).symlink_to(real_faces_dir / entry.video_path)
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
def warp_run(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("warp")
    report.run("warp", str(tiny_dir), out, split="all", progress=False)
    return out


def test_results_json_has_every_level_and_metric(copy_run):
    results = json.loads((copy_run / "results.json").read_text())
    assert results["method"] == "copy" and results["layout"] == "ibug68" and results["keypoint_metrics_apply"]
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
    assert np.isfinite(copy["psnr"]) and 0 < copy["ssim"] < 1


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
    from bigo_facegen.inference import FaceModel
    from bigo_facegen.models import build_generator

    cfg = config_lib.override(config_lib.preset("cpu"), {"data.layout": "ibug68", "data.image_size": 64})
    generator = build_generator(cfg.model, cfg.data.image_size, 68)
    method = protocol.model_method(FaceModel.from_generator(generator, cfg))
    evaluation = protocol.evaluate(tiny_dir, {"model": method}, split="all", max_frames_per_video=1,
                                   samples_per_video=1, progress=False)
    scores = [s for v in evaluation.videos for s in v.scores["model"]]
    assert len(scores) == 2 and all(np.isfinite(s.psnr) and s.keypoint_nme is not None for s in scores)


def test_synthetic_cartoons_report_keypoints_as_not_applicable(tmp_path):
    data = report.synthetic_data(tmp_path / "cache", num_videos=3, frames_per_video=3, frame_size=(128, 128))
    assert report.synthetic_data(tmp_path / "cache", num_videos=3, frames_per_video=3, frame_size=(128, 128)) == data
    out = tmp_path / "out"
    report.run("copy", str(data), out, split="all", progress=False)
    results = json.loads((out / "results.json").read_text())
    assert results["layout"] == "bigo106" and not results["keypoint_metrics_apply"]
    assert results["overall"]["keypoint_nme"] is None and results["overall"]["keypoint_accuracy"] is None
    assert results["overall"]["frames"] > 0
    assert "not applicable" in (out / "results.md").read_text()


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

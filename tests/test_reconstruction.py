"""The reconstruction score on short real clips: each clip drives its own first frame through animate's path (the
track itself, with relative motion and no smoothing), the report has evaluate's summaries, and bad flags are refused in
one line with nothing written."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigo_facegen import annotate, motion_transfer, painting, tracking, video
from bigo_facegen.evaluation import protocol, reconstruction
from tests.real_clips import cut_folder

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("dpe_s", "mead_W011_neutral")   # two persons, 256 x 256
FRAMES = 8
KEYS = {"psnr", "ssim", "psnr_face", "ssim_face", "identity_accuracy", "keypoint_nme", "keypoint_jitter", "frames",
        *protocol.REGION_METRICS}


@pytest.fixture(scope="module")
def clips(real_faces_dir, tmp_path_factory):
    return cut_folder(real_faces_dir, tmp_path_factory.mktemp("clips"), CLIPS, FRAMES)


def _reconstruct(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.evaluate_reconstruction", "--split=all", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("how", annotate.TRACKINGS)
def test_a_clip_drives_its_first_frame_by_its_own_track(clips, how):
    case = protocol.load_cases(clips, "all")[0]
    frames = video.read_all(case.path)
    given = reconstruction.drive(case, frames, how, motion_transfer.MotionSettings(smoothing="none"))
    track = tracking.track(frames) if how == annotate.TRACK else [annotate.annotate_frame(rgb, i)
                                                                  for i, rgb in enumerate(frames, start=1)]
    np.testing.assert_array_equal(given.reference.points, track[case.reference.index - 1].points)
    assert [t.index for t in given.targets] == [t.index for t in case.targets]
    np.testing.assert_allclose(np.stack([t.points for t in given.targets]),
                               np.stack([track[t.index - 1].points for t in case.targets]), atol=1e-4)
    # The driver's teeth are the clip's own, at its track's points.
    assert given.teeth == [painting.teeth_cue(frames[t.index - 1], track[t.index - 1]) for t in case.targets]


def test_entry_point_writes_evaluates_summaries(clips, tmp_path):
    out = tmp_path / "out"
    done = _reconstruct(f"--data={clips}", f"--output={out}", "--model=warp", "--methods=copy", "--tracking=track",
                        "--frame_stride=2")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "warp" and results["settings"]["tracking"] == "track"
    assert results["settings"]["frame_stride"] == 2 and results["settings"]["motion"]["mode"] == "relative"
    targets = sum(len(range(2, FRAMES + 1, 2)) for _ in CLIPS)
    assert KEYS <= set(results["overall"]) and results["overall"]["frames"] == targets
    assert results["conditions"] and all(KEYS <= set(summary) for summary in results["conditions"].values())
    assert sorted(results["videos"]) == sorted(f"{clip}.mp4" for clip in CLIPS)
    assert all(KEYS <= set(summary) for summary in results["videos"].values())
    # Beside it copy and the true frames, the judge's floor and the jitter of the true faces.
    assert sorted(results["compared"]) == ["copy", protocol.TRUTH]
    truth = results["compared"][protocol.TRUTH]["overall"]
    assert truth["psnr"] == "inf" and truth["keypoint_jitter"] > 0
    assert truth["psnr_mouth"] == "inf" and truth["perceptual_mouth"] == 0.0
    assert results["overall"]["psnr"] > results["compared"]["copy"]["overall"]["psnr"]
    assert "reconstruction: each clip drives its own first face frame" in (out / "results.md").read_text()
    assert sorted(p.name for p in (out / "sheets").iterdir() if not p.name.startswith("condition_")) == sorted(
        f"{clip}.png" for clip in CLIPS)


@pytest.mark.parametrize("flag, message", [
    ("--tracking=optical", "FATAL Flags parsing error: flag --tracking=optical: value should be one of "
                           "<detect|track>"),
    ("--frame_stride=0", "FATAL Flags parsing error: flag --frame_stride=0: 0 is not a positive integer"),
    ("--split=dev", "FATAL Flags parsing error: flag --split=dev: value should be one of <all|test|train>"),
    ("--methods=copy,{tmp}/no_model", "error: {tmp}/no_model: no such model"),
], ids=["tracking", "frame_stride", "split", "method"])
def test_a_bad_flag_is_refused_in_one_line_and_nothing_is_written(clips, tmp_path, flag, message):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("kept")
    before = _tree(tmp_path)
    done = _reconstruct(f"--data={clips}", f"--output={tmp_path / 'out'}", "--model=warp", flag.format(tmp=tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "FATAL"))]
    assert len(lines) == 1 and lines[0].startswith(message.format(tmp=tmp_path)), done.stderr[-2000:]
    assert _tree(tmp_path) == before

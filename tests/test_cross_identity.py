"""Cross-identity evaluation on two real clips of two persons: pairs, the judge's three scores per method (copy,
warp, an exported model), the driver tracked or detected, the report and the command line."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bigo_facegen import annotate, annotations, config, export
from bigo_facegen.evaluation import cross_identity, protocol
from bigo_facegen.files import OutputPathError
from bigo_facegen.models import registry

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("dpe_s.mp4", "xportrait_driving.mp4")   # two persons; xportrait's face moves from its first frames on
FRAMES = 8


@pytest.fixture(scope="module")
def two_persons(tmp_path_factory, real_faces_dir):
    root = tmp_path_factory.mktemp("two_persons")
    (root / "videos").mkdir()
    videos = []
    for entry in annotations.load(real_faces_dir / "annotations.json"):
        if entry.video in CLIPS:
            shutil.copyfile(real_faces_dir / entry.video_path, root / entry.video_path)
            entry.frames = entry.frames[:FRAMES]
            videos.append(entry)
    annotations.dump(videos, root / "annotations.json")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = config.override(config.preset("cpu"), {"data.image_size": 32, "data.layout": "ibug68",
                                                 "model.conv_dim": 8, "model.res_blocks": 1})
    return export.export(registry.build_generator(cfg.model, 32, 68), cfg, tmp_path_factory.mktemp("export")).parent


@pytest.fixture(scope="module")
def report(two_persons, exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross") / "report"
    path = cross_identity.run(["copy", "warp", str(exported)], two_persons, out, split="all", max_frames=FRAMES,
                              sheet_pairs=1, samples=2, progress=False)
    return out, json.loads(path.read_text())


def test_pairs_join_different_persons(real_faces_dir):
    cases = protocol.load_cases(real_faces_dir, "test")
    one = cross_identity.make_pairs(cases, 1)
    assert len(one) == len(cases)
    assert all(p.source.identity != p.driver.identity for p in one)
    assert len({p.source.video.video for p in one}) > 1  # drivers get different sources
    every = cross_identity.make_pairs(cases, None)
    persons = {c.video.video: c.identity for c in cases}
    assert len(every) == sum(persons[a] != persons[b] for a in persons for b in persons)
    with pytest.raises(ValueError, match="at least two persons"):
        cross_identity.make_pairs([cases[0]], 1)


def test_the_judge_tells_copy_warp_and_a_model_apart(report, exported):
    _, results = report
    overall = results["overall"]
    assert set(overall) == {"copy", "warp", str(exported)} and results["settings"]["pairs"] == 2
    copy, warp = overall["copy"], overall["warp"]
    assert copy["frames"] == warp["frames"] == 2 * FRAMES
    # The copy is the source itself: its identity, no motion at all, no jitter.
    assert copy["identity_kept"] == 1.0 and copy["identity_distance"] < 0.05 and copy["jitter_ratio"] == 0.0
    # The warp moves the source's own pixels: identity kept, and it follows the driver far better than a still face.
    assert warp["identity_kept"] > 0.9 and warp["identity_distance"] < 0.3
    assert warp["motion_error"] < 0.6 * copy["motion_error"]
    assert 0.2 < warp["jitter_ratio"] < 5
    assert overall[str(exported)]["frames"] == 2 * FRAMES  # any model path runs as a method


def test_the_driver_is_tracked_or_detected_and_judged_by_its_annotations(two_persons, tmp_path):
    runs = {how: json.loads(cross_identity.run(["warp"], two_persons, tmp_path / how, split="all", max_frames=FRAMES,
                                               sheet_pairs=0, progress=False, tracking=how).read_text())
            for how in annotate.TRACKINGS}
    assert [run["settings"]["tracking"] for run in runs.values()] == list(annotate.TRACKINGS)
    detected, tracked = (runs[how]["overall"]["warp"] for how in annotate.TRACKINGS)
    # One yardstick, the driver's annotated points, whatever drives the warp; the outputs are not the same.
    assert detected["driver_jitter"] == tracked["driver_jitter"]
    assert detected["jitter"] != tracked["jitter"] and detected["motion_error"] != tracked["motion_error"]
    assert "its keypoints found by `detect`" in (tmp_path / "detect" / "results.md").read_text()


def test_report_files(report):
    out, results = report
    assert sorted(os.listdir(out)) == ["results.json", "results.md", "sheets"]
    assert os.listdir(out / "sheets") == [f"{next(iter(results['pairs']))}.png"]
    assert "| warp |" in (out / "results.md").read_text()


def test_output_problems_are_found_before_the_work(two_persons, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sheets").write_text("kept")
    with pytest.raises(OutputPathError, match="sheets is in the way of the report's sheets"):
        cross_identity.run(["copy"], "no/such/data", tmp_path / "out")
    assert (tmp_path / "out" / "sheets").read_text() == "kept"


def test_entry_point_names_a_bad_method(two_persons, tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments.evaluate_cross", f"--data={two_persons}",
                           f"--output={tmp_path / 'out'}", "--split=all", f"--methods=copy,{tmp_path / 'nope'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: {tmp_path / 'nope'}: no such model" in done.stderr
    assert os.listdir(tmp_path) == []
    done = subprocess.run([sys.executable, "-m", "experiments.evaluate_cross", f"--data={two_persons}",
                           f"--output={tmp_path / 'out'}", "--split=all", "--tracking=optical"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "--tracking" in line] == [
        "FATAL Flags parsing error: flag --tracking=optical: value should be one of <detect|track>"]
    assert os.listdir(tmp_path) == []

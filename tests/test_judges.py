"""The dlib judge on real footage: it reproduces the shipped annotation, reads true frames as their own keypoints
only in the shrunk (detector-like) box, and recognises each clip's person."""
import csv
import sys

import numpy as np
import pytest

from bigo_facegen import annotations, dlib_face, video
from bigo_facegen.evaluation import judges, metrics

# Clips of six different persons (MANIFEST.tsv `person`), 256 and 512 px.
CLIPS = ("dpe_d.mp4", "eamm_fear.mp4", "mead_W009_happy.mp4", "pcavs_00098.mp4", "lp_d3.mp4",
         "sadtalker_BobMenendez.mp4")
FRAME_POSITIONS = (0, 30, 60)   # positions among the clip's annotated frames


@pytest.fixture(scope="module")
def clips(real_faces_dir):
    entries = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}
    with open(real_faces_dir / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        manifest = {row["clip"]: row for row in csv.DictReader(f, delimiter="\t")}
    out = {}
    for name in CLIPS:
        entry = entries[name]
        frames = video.read_all(real_faces_dir / entry.video_path)
        out[name] = {"entry": entry, "frames": frames, "manifest": manifest[name.removesuffix(".mp4")]}
    return out


def _frame(clip, position):
    annotation = clip["entry"].frames[position]
    return clip["frames"][annotation.index - 1], annotation


def test_detector_and_predictor_reproduce_the_shipped_annotation(clips):
    for name, clip in clips.items():
        frame, annotation = _frame(clip, 0)
        box = dlib_face.detect(frame)
        points = dlib_face.landmarks(frame, box)
        assert np.abs(points - annotation.points).max() <= 1.0, name
        # The shipped bbox is 1.6 x the detector box side, centred on the landmarks' mean.
        assert annotation.bbox[2] == pytest.approx(1.6 * max(box[2], box[3]), abs=0.02), name


def test_descriptor_matches_the_manifest(clips):
    for name, clip in clips.items():
        frame, annotation = _frame(clip, 0)
        expected = np.array([float(v) for v in clip["manifest"]["dlib_descriptor_first"].split(",")])
        got = dlib_face.descriptor(frame, annotation.points)
        assert got.shape == (128,)
        assert np.linalg.norm(got - expected) < 1e-3, name


def test_true_frames_score_near_zero_keypoint_error_only_in_the_shrunk_box(clips):
    judge = judges.DlibJudge("ibug68")
    shrunk, loose = [], []
    for clip in clips.values():
        for position in FRAME_POSITIONS:
            frame, annotation = _frame(clip, position)
            shrunk.append(judge.judge(frame, annotation).nme)
            loose_points = dlib_face.landmarks(frame, annotation.bbox)
            loose.append(metrics.keypoint_nme(loose_points, annotation.points, (36, 45)))
    assert max(shrunk) < 0.02
    assert np.mean(loose) > 5 * np.mean(shrunk)


def test_detector_box_is_the_bbox_shrunk_about_its_centre():
    np.testing.assert_allclose(judges.detector_box([10.0, 20.0, 160.0, 160.0]), [40.0, 50.0, 100.0, 100.0])


def test_each_clip_is_recognised_as_its_own_person(clips):
    judge = judges.DlibJudge("ibug68")
    persons = [clip["manifest"]["person"] for clip in clips.values()]
    assert len(set(persons)) == len(persons)
    references = np.stack([judge.judge(*_frame(clip, 0)).descriptor for clip in clips.values()])
    for person, clip in zip(persons, clips.values()):
        for position in FRAME_POSITIONS[1:]:
            judgement = judge.judge(*_frame(clip, position))
            nearest, distances = metrics.nearest_identity(judgement.descriptor, references, persons)
            assert nearest == person
            assert distances.min() < 0.6


def test_other_layouts_are_judged_by_detection_and_a_faceless_frame_is_not_judged(clips):
    judge = judges.DlibJudge("bigo106")
    frame, annotation = _frame(clips["dpe_d.mp4"], 0)
    judgement = judge.judge(frame, annotation)
    assert judgement.descriptor is not None and judgement.nme is None
    blank = np.full_like(frame, 127)
    assert judge.judge(blank, annotation).descriptor is None


def test_missing_dlib_is_a_clear_error(monkeypatch):
    dlib_face._models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)   # makes `import dlib` raise ImportError
    try:
        with pytest.raises(dlib_face.DlibUnavailableError, match=r"bigo-facegen\[judge\]"):
            dlib_face.detect(np.zeros((32, 32, 3), np.uint8))
        assert not dlib_face.available()
    finally:
        dlib_face._models.cache_clear()

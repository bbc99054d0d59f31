"""The dlib judge on real footage: it reproduces the shipped annotation, reads true frames as their own keypoints
only in the shrunk (detector-like) box, and recognises each clip's person; on bigo106 faces it judges the keypoints
that correspond to its own 68."""
import csv
import dataclasses

import numpy as np
import pytest

from bigo_facegen import annotations, dlib_face, synthetic, video
from bigo_facegen.evaluation import judges, metrics
from bigo_facegen.keypoints import BIGO106

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


def test_other_layouts_are_judged_by_detection_on_their_ibug68_points(tmp_path):
    # Synthetic bigo106 faces (cartoons, so dlib's floor is higher than on real faces): the true keypoints, taken at
    # the layout's iBUG-68 correspondences, are close to dlib's prediction; another frame's keypoints, or the
    # correspondences mirrored left-right, are far; a faceless frame is not judged at all.
    annotation_file = synthetic.generate(tmp_path, num_videos=4, frames_per_video=6, frame_size=(256, 256), seed=2)
    judge = judges.DlibJudge("bigo106")
    mirrored = [BIGO106.ibug68[i] for i in _IBUG68_MIRROR]
    own, shifted, flipped = [], [], []
    for video_annotation in annotations.load(annotation_file):
        frames = video.read_all(annotations.resolve_video_path(video_annotation, tmp_path))
        faces = video_annotation.face_frames()
        for annotation, other in zip(faces, faces[::-1]):
            judgement = judge.judge(frames[annotation.index - 1], annotation)
            if judgement.nme is None:
                continue
            own.append(judgement.nme)
            moved = dataclasses.replace(annotation, points=annotation.points + [annotation.bbox[2] * 0.15, 0.0])
            shifted.append(judge.judge(frames[annotation.index - 1], moved).nme)
            flipped.append(metrics.keypoint_nme(judgement.points, annotation.points[mirrored], (36, 45)))
    assert len(own) >= 12
    assert np.mean(own) < 0.12
    assert np.mean(shifted) > 1.5 * np.mean(own) and np.mean(flipped) > 2 * np.mean(own)
    blank = np.full_like(frames[0], 127)
    judgement = judge.judge(blank, faces[0])
    assert judgement.descriptor is None and judgement.nme is None


# iBUG-68 index of each point's left-right mirror image.
_IBUG68_MIRROR = ([16 - i for i in range(17)] + [26 - i for i in range(10)] + [27, 28, 29, 30]
                  + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
                  + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])

"""The BIGO annotation parser: every malformed case raises one AnnotationError naming file, video, frame and problem;
the deliberate cases (no face, gaps, off-frame points, flags) load; the real dev annotations load and match the
videos."""
import csv
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bigo_facegen import annotations, video
from bigo_facegen.annotations import AnnotationError, FrameAnnotation, VideoAnnotation


def _face(index, num_points=4, flag=2, bbox=(10.0, 20.0, 30.0, 30.0)):
    keypoint = []
    for i in range(num_points):
        keypoint += [12.0 + i, 25.0 + i, flag]
    return {"index": index, "bbox": list(bbox), "keypoint": keypoint}


def _video(name="12008.mp4", frames=None, **extra):
    return {"video": name, "video_path": f"videos/{name}",
            "annotations": frames if frames is not None else [_face(1), _face(2)], **extra}


def _write(tmp_path, content, name="annotations.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _load_error(tmp_path, content) -> str:
    path = _write(tmp_path, content)
    with pytest.raises(AnnotationError) as info:
        annotations.load(path)
    message = str(info.value)
    assert str(path) in message
    return message


def _frame_error(tmp_path, frame, frame_label=None, video_name="12008.mp4") -> str:
    """The error for a file whose second frame is `frame`; asserts it names file, video and frame."""
    message = _load_error(tmp_path, [_video(video_name, [_face(1), frame])])
    assert f"video '{video_name}'" in message
    assert (frame_label or f"frame {frame['index']}") in message
    return message


# --- malformed files -------------------------------------------------------------------------------------------


def test_bad_json_names_file_and_position(tmp_path):
    message = _load_error(tmp_path, '[{"video": "12008.mp4", "annotations": [')
    assert "invalid JSON" in message and "line 1" in message


def test_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="cannot read"):
        annotations.load(tmp_path / "absent.json")


def test_top_level_not_a_list(tmp_path):
    assert "not a list" in _load_error(tmp_path, _video())


def test_video_entry_not_an_object(tmp_path):
    assert "video #1: is a JSON list, not an object" in _load_error(tmp_path, [_video(), [1, 2]])


@pytest.mark.parametrize("key", ["video", "video_path", "annotations"])
def test_missing_video_key(tmp_path, key):
    entry = _video()
    del entry[key]
    message = _load_error(tmp_path, [entry])
    assert f"missing key '{key}'" in message
    if key != "video":
        assert "video '12008.mp4'" in message


@pytest.mark.parametrize("key", ["bbox", "keypoint"])
def test_missing_frame_key(tmp_path, key):
    frame = _face(17)
    del frame[key]
    assert f"missing key '{key}'" in _frame_error(tmp_path, frame)


def test_missing_index(tmp_path):
    frame = _face(5)
    del frame["index"]
    assert "missing key 'index'" in _frame_error(tmp_path, frame, frame_label="annotation #1")


def test_keypoint_count_not_multiple_of_three(tmp_path):
    frame = _face(17, num_points=106)
    frame["keypoint"] = frame["keypoint"][:317]
    message = _frame_error(tmp_path, frame)
    assert "keypoint has 317 numbers, not a multiple of 3" in message


def test_keypoint_count_differs_between_frames(tmp_path):
    message = _frame_error(tmp_path, _face(2, num_points=5))
    assert "5 keypoints, but frame 1 has 4" in message


def test_keypoint_count_differs_between_videos(tmp_path):
    message = _load_error(tmp_path, [_video("a.mp4"), _video("b.mp4", [_face(3, num_points=6)])])
    assert "video 'b.mp4', frame 3: 6 keypoints, but video 'a.mp4' has 4" in message


@pytest.mark.parametrize("bbox", [[1, 2, 3], [1, 2, 3, 4, 5], ["1", 2, 3, 4], [1, 2, None, 4], [1, True, 3, 4]])
def test_bbox_not_four_numbers(tmp_path, bbox):
    frame = _face(17)
    frame["bbox"] = bbox
    assert "bbox must be 4 numbers" in _frame_error(tmp_path, frame)


@pytest.mark.parametrize("bbox, problem", [
    ([1, 2, -3, 4], "non-positive width or height"),
    ([1, 2, 3, 0], "non-positive width or height"),
    ([1, 2, math.nan, 4], "non-finite"),
    ([math.inf, 2, 3, 4], "non-finite"),
    ([1, 2, 1e39, 4], "non-finite value (as float32)"),  # finite in JSON, infinite in the float32 it is kept in
])
def test_bbox_bad_values(tmp_path, bbox, problem):
    frame = _face(17)
    frame["bbox"] = bbox
    assert problem in _frame_error(tmp_path, frame)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e39])
def test_non_finite_keypoint(tmp_path, value):
    frame = _face(17)
    frame["keypoint"][3 * 2 + 1] = value
    assert "keypoint 2 has a non-finite coordinate" in _frame_error(tmp_path, frame)


def test_non_number_keypoint(tmp_path):
    frame = _face(17)
    frame["keypoint"][4] = "25"
    assert "keypoint 1 has the non-number '25'" in _frame_error(tmp_path, frame)


@pytest.mark.parametrize("flag", [3, -1, 1.5])
def test_bad_flag(tmp_path, flag):
    frame = _face(17)
    frame["keypoint"][3 * 3 + 2] = flag
    assert f"keypoint 3 has flag {flag!r}, not 0 (absent), 1 (occluded) or 2 (visible)" in _frame_error(
        tmp_path, frame)


def test_boolean_flag_is_not_a_number(tmp_path):
    frame = _face(17)
    frame["keypoint"][2] = True
    assert "keypoint 0 has the non-number True" in _frame_error(tmp_path, frame)


def test_duplicate_index(tmp_path):
    message = _frame_error(tmp_path, _face(1), frame_label="frame 1")
    assert "index appears more than once" in message


@pytest.mark.parametrize("index", [0, -3, 2.0, "2", None])
def test_non_positive_or_non_integer_index(tmp_path, index):
    message = _frame_error(tmp_path, _face(index), frame_label="annotation #1")
    assert f"index {index!r} is not a positive integer" in message


@pytest.mark.parametrize("video_path, problem", [
    ("/etc/passwd", "is absolute"),
    ("C:\\videos\\a.mp4", "is absolute"),
    ("../other/12008.mp4", "contains '..'"),
    ("videos/../../12008.mp4", "contains '..'"),
])
def test_video_path_escaping_data_dir(tmp_path, video_path, problem):
    entry = _video()
    entry["video_path"] = video_path
    message = _load_error(tmp_path, [entry])
    assert "video '12008.mp4'" in message and problem in message and str(tmp_path) in message


def test_half_a_face(tmp_path):
    frame = _face(17)
    frame["keypoint"] = []
    assert "'keypoint' is empty but 'bbox' is not" in _frame_error(tmp_path, frame)


def test_duplicate_video(tmp_path):
    assert "video 'a.mp4': appears more than once" in _load_error(tmp_path, [_video("a.mp4"), _video("a.mp4")])


def test_bad_tier(tmp_path):
    assert "tier 'extreme'" in _load_error(tmp_path, [_video(tier="extreme")])


# --- deliberate cases that load ------------------------------------------------------------------------------------


def test_no_face_gaps_off_frame_points_and_flags_load(tmp_path):
    off_frame = _face(5, bbox=(-40.0, -10.0, 80.0, 80.0))
    off_frame["keypoint"][0:2] = [-25.0, 9000.0]
    flags = _face(3)
    flags["keypoint"][2::3] = [0, 1, 2, 2]
    frames = [off_frame, {"index": 2, "bbox": [], "keypoint": []}, flags, _face(1)]
    (loaded,) = annotations.load(_write(tmp_path, [_video("12008.mp4", frames)]))
    assert [frame.index for frame in loaded.frames] == [1, 2, 3, 5]
    assert [frame.has_face for frame in loaded.frames] == [True, False, True, True]
    no_face = loaded.frames[1]
    assert no_face.bbox is None and no_face.points is None and no_face.flags is None
    assert loaded.frames[2].flags.tolist() == [0, 1, 2, 2] and loaded.frames[2].flags.dtype == np.int32
    np.testing.assert_array_equal(loaded.frames[3].points[0], [-25.0, 9000.0])
    assert loaded.frames[3].bbox.dtype == np.float32 and loaded.frames[3].points.shape == (4, 2)
    assert loaded.num_keypoints == 4 and [f.index for f in loaded.face_frames()] == [1, 3, 5]
    assert loaded.tier == "hard"


def test_video_without_faces(tmp_path):
    (loaded,) = annotations.load(_write(tmp_path, [_video(frames=[{"index": 1, "bbox": [], "keypoint": []}])]))
    assert loaded.num_keypoints is None and loaded.face_frames() == []


def test_dump_round_trip_keeps_tier_identity_and_values(tmp_path):
    points = np.array([[0.1, 2.25], [-3.5, 400.75]], np.float32)
    videos = [VideoAnnotation("a.mp4", "videos/a.mp4", [
        FrameAnnotation(1, np.array([1.5, 2, 30, 40], np.float32), points, np.array([2, 1], np.int32)),
        FrameAnnotation(3)], tier="medium", identity="person_7")]
    path = tmp_path / "out" / "annotations.json"
    annotations.dump(videos, path)
    (loaded,) = annotations.load(path)
    assert (loaded.video, loaded.video_path, loaded.tier, loaded.identity) == ("a.mp4", "videos/a.mp4", "medium",
                                                                               "person_7")
    np.testing.assert_array_equal(loaded.frames[0].points, points)
    assert loaded.frames[0].flags.tolist() == [2, 1] and not loaded.frames[1].has_face
    assert sorted(os.listdir(path.parent)) == ["annotations.json"]


def test_dump_refuses_invalid_and_leaves_nothing(tmp_path):
    bad = [VideoAnnotation("a.mp4", "videos/a.mp4", [
        FrameAnnotation(1, np.array([0, 0, 10, 10], np.float32), np.array([[np.nan, 1]], np.float32),
                        np.array([2], np.int32))])]
    with pytest.raises(AnnotationError, match="video 'a.mp4', frame 1: keypoint 0 has a non-finite"):
        annotations.dump(bad, tmp_path / "annotations.json")
    assert os.listdir(tmp_path) == []


def test_resolve_video_path(tmp_path):
    (loaded,) = annotations.load(_write(tmp_path, [_video()]))
    assert annotations.resolve_video_path(loaded, tmp_path) == tmp_path / "videos" / "12008.mp4"
    loaded.video_path = "../12008.mp4"
    with pytest.raises(AnnotationError, match="contains '..'"):
        annotations.resolve_video_path(loaded, tmp_path)


def test_resolve_video_path_refuses_symbolic_links_out_of_the_folder(tmp_path, real_faces_dir):
    root = tmp_path / "data"
    root.mkdir()
    (loaded,) = annotations.load(_write(root, [_video("dpe_d.mp4")]))
    real_clip = (real_faces_dir / "videos" / "dpe_d.mp4").resolve()
    path = root / "videos" / "dpe_d.mp4"
    expected = f"{path}: leads out of the data directory {root} through a symbolic link (to {real_clip})"
    # The video file links to real footage outside the folder ...
    path.parent.mkdir()
    path.symlink_to(real_clip)
    with pytest.raises(AnnotationError) as info:
        annotations.resolve_video_path(loaded, root)
    assert str(info.value) == expected
    # ... or the videos folder does.
    shutil.rmtree(path.parent)
    path.parent.symlink_to(real_clip.parent, target_is_directory=True)
    with pytest.raises(AnnotationError) as info:
        annotations.resolve_video_path(loaded, root)
    assert str(info.value) == expected
    # A link within the folder is followed.
    path.parent.unlink()
    path.parent.mkdir()
    shutil.copyfile(real_clip, root / "store.mp4")
    path.symlink_to(Path("..") / "store.mp4")
    assert annotations.resolve_video_path(loaded, root) == path
    assert video.probe(path).frame_count == video.probe(real_clip).frame_count
    # A link to itself cannot be resolved.
    path.unlink()
    path.symlink_to(path)
    with pytest.raises(AnnotationError, match="^" + re.escape(f"{path}: cannot resolve its symbolic links")):
        annotations.resolve_video_path(loaded, root)


def test_check_against_video(tmp_path):
    (loaded,) = annotations.load(_write(tmp_path, [_video(frames=[_face(1), _face(3), _face(4)])]))
    assert annotations.check_against_video(loaded, 5) == [2, 5]
    with pytest.raises(AnnotationError) as info:
        annotations.check_against_video(loaded, 3, source="annotations.json")
    assert str(info.value) == ("annotations.json: video '12008.mp4', frame 4: annotated, but the video has only 3 "
                               "frames (1 annotation(s) past its end)")


def test_check_on_frame_refuses_boxes_and_points_far_outside_the_frame(tmp_path):
    reach = annotations.FRAME_REACH
    far = _face(3, bbox=(-reach * 64.0, 3.0 * 48 - 30, 30.0, 30.0))  # a box out to the reach, still a face's
    far["keypoint"][0:2] = [(1 + reach) * 64.0, -reach * 48.0]
    (loaded,) = annotations.load(_write(tmp_path, [_video(frames=[_face(1), far])]))
    annotations.check_on_frame(loaded, 64, 48, source="annotations.json")
    frame = loaded.frames[1]
    for point, shown in (((1e30, 25.0), "(1e+30, 25)"), ((12.0, math.nan), "(12, nan)"),
                         (((1 + reach) * 64.0 + 1, 0.0), "(193, 0)")):
        frame.points[2] = point
        with pytest.raises(AnnotationError) as info:
            annotations.check_on_frame(loaded, 64, 48, source="annotations.json")
        assert str(info.value) == (f"annotations.json: video '12008.mp4', frame 3: keypoint 2 at {shown} lies more "
                                   f"than {reach} frame sizes outside the 64x48 frame")
    frame.points[2] = (12.0, 25.0)
    frame.bbox[2] = 1e30
    with pytest.raises(AnnotationError, match=re.escape("frame 3: bbox [-128.0, 114.0, 1.0000000150474662e+30, 30.0] "
                                                        "reaches more than 2 frame sizes outside the 64x48 frame")):
        annotations.check_on_frame(loaded, 64, 48, source="annotations.json")


@pytest.fixture
def far_keypoint_annotations(real_faces_dir, tmp_path):
    """A real clip's annotations with keypoint 7 of frame 3 at x = 1e30: (file, clip, the one-line refusal)."""
    entry = json.loads((real_faces_dir / "annotations.json").read_text())[0]
    entry["annotations"][2]["keypoint"][3 * 7] = 1e30
    path = _write(tmp_path, [entry])
    clip = real_faces_dir / entry["video_path"]
    info = video.probe(clip)
    y = entry["annotations"][2]["keypoint"][3 * 7 + 1]
    message = (f"{path}: video {entry['video']!r}, frame {entry['annotations'][2]['index']}: keypoint 7 at (1e+30, "
               f"{y:g}) lies more than 2 frame sizes outside the {info.width}x{info.height} frame")
    return path, clip, message


def test_a_far_keypoint_is_refused_where_a_driving_track_meets_its_video(far_keypoint_annotations):
    from bigo_facegen import animate

    path, clip, message = far_keypoint_annotations
    with pytest.raises(AnnotationError) as info:
        animate.driving_track(clip, path, progress=False)
    assert str(info.value) == message


def test_generate_refuses_a_far_keypoint_in_one_line_writing_nothing(far_keypoint_annotations, tmp_path):
    import subprocess
    import sys

    path, clip, message = far_keypoint_annotations
    output = tmp_path / "out" / "o.mp4"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "experiments.generate", f"--annotations={path}",
                           f"--video={clip.name}",
                           f"--videos_dir={clip.parent}", f"--output={output}"], cwd=repo, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "2"},
                          timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["annotations.json"]


# --- the real development footage ----------------------------------------------------------------------------------


def test_real_dev_annotations_match_manifest_and_videos(real_faces_dir):
    videos = annotations.load(real_faces_dir / "annotations.json")
    with open(real_faces_dir / "MANIFEST.tsv", encoding="utf-8") as f:
        manifest = {row["clip"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert len(videos) == 39 == len(manifest)
    for clip in videos:
        row = manifest[clip.video.removesuffix(".mp4")]
        assert clip.num_keypoints == 68
        assert [frame.index for frame in clip.frames] == list(range(1, int(row["frames"]) + 1))
        info = video.probe(annotations.resolve_video_path(clip, real_faces_dir))
        assert (info.frame_count, info.width, info.height) == (int(row["frames"]), int(row["width"]),
                                                               int(row["height"]))
        assert annotations.check_against_video(clip, info.frame_count) == []
        assert all(frame.flags.tolist() == [2] * 68 for frame in clip.face_frames())
    assert sum(len(clip.frames) for clip in videos) == 6683

"""Annotating footage with dlib reproduces the shipped real_faces annotations; the output is a BIGO folder; tracked
annotations are the tracker's, cached apart from detected ones."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bigo_facegen import annotate, annotations, tracking, video

CLIPS = ("mead_W011_neutral.mp4", "lp_d0.mp4")
FRAMES = 3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shipped(real_faces_dir):
    return {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}


@pytest.fixture
def video_dir(tmp_path, real_faces_dir):
    source = tmp_path / "in"
    source.mkdir()
    for name in CLIPS:
        shutil.copyfile(real_faces_dir / "videos" / name, source / name)
    (source / "notes.txt").write_text("not a video")
    return source


def test_annotating_real_clips_reproduces_the_shipped_annotations(video_dir, tmp_path, shipped):
    out = tmp_path / "out"
    path = annotate.annotate_folder(video_dir, out, progress=False, max_frames=FRAMES)
    videos = annotations.load(path)
    assert [v.video for v in videos] == sorted(CLIPS)
    for entry in videos:
        assert (out / entry.video_path).is_file()
        assert video.probe(out / entry.video_path).frame_count == video.probe(video_dir / entry.video).frame_count
        expected = shipped[entry.video]
        assert [f.index for f in entry.frames] == list(range(1, FRAMES + 1))
        for got, want in zip(entry.frames, expected.frames):
            assert np.abs(got.points - want.points).max() <= 1.0, (entry.video, got.index)
            assert np.abs(got.bbox - want.bbox).max() <= 1.0, (entry.video, got.index)
            assert (got.flags == annotations.FLAG_VISIBLE).all()


def test_tracked_annotations_are_the_trackers_and_cached_apart_from_detected_ones(video_dir, tmp_path, shipped,
                                                                                  monkeypatch):
    clip, frames = CLIPS[0], 12
    for name in CLIPS[1:]:
        (video_dir / name).unlink()
    out = tmp_path / "out"
    tracked = annotations.load(annotate.annotate_folder(video_dir, out, progress=False, max_frames=frames,
                                                        tracking=annotate.TRACK))[0].frames
    # As the tracker gives them (flags included: a point the flow loses would be 1, occluded), to the file's 0.01 px.
    expected = tracking.track(video.read_all(video_dir / clip)[:frames])
    assert [f.index for f in tracked] == list(range(1, frames + 1))
    for got, want in zip(tracked, expected):
        np.testing.assert_allclose(got.points, want.points, atol=0.01)
        np.testing.assert_allclose(got.bbox, want.bbox, atol=0.01)
        np.testing.assert_array_equal(got.flags, want.flags)
    # Near dlib's own, but not dlib's.
    error = np.stack([np.linalg.norm(got.points - want.points, axis=1)
                      for got, want in zip(tracked, shipped[clip].frames)])
    assert 0 < error.mean() < 2.0

    # The detected annotation of the same video is not the tracked one from the cache, and is cached beside it.
    detected = annotations.load(annotate.annotate_folder(video_dir, out, progress=False, max_frames=frames))[0].frames
    for got, want in zip(detected, shipped[clip].frames):
        assert np.abs(got.points - want.points).max() <= 1.0
    assert sorted(p.name.split(".")[-2] for p in (out / annotate.CACHE_DIR).iterdir()) == ["detect", "track"]

    def annotate_again(*args, **kwargs):
        raise AssertionError("a cached video was annotated again")

    monkeypatch.setattr(annotate, "annotate_video", annotate_again)
    again = annotations.load(annotate.annotate_folder(video_dir, out, progress=False, max_frames=frames,
                                                      tracking=annotate.TRACK))[0].frames
    assert all(np.array_equal(a.points, b.points) for a, b in zip(again, tracked))


def test_frames_without_a_face_have_empty_boxes_and_keypoints(tmp_path):
    source = tmp_path / "in"
    gray = np.full((64, 96, 3), 128, np.uint8)
    video.write_video(source / "blank.mp4", [gray] * 2, fps=25.0)
    path = annotate.annotate_folder(source, tmp_path / "out", progress=False)
    raw = json.loads(path.read_text())
    assert raw[0]["annotations"] == [{"index": 1, "bbox": [], "keypoint": []},
                                     {"index": 2, "bbox": [], "keypoint": []}]


def test_an_unreadable_video_is_named_and_finished_videos_are_resumed(video_dir, tmp_path, monkeypatch):
    (video_dir / "zz_broken.mp4").write_bytes(b"this is not a video")
    out = tmp_path / "out"
    with pytest.raises(video.VideoError, match="zz_broken.mp4"):
        annotate.annotate_folder(video_dir, out, progress=False, max_frames=1)
    assert not (out / "annotations.json").exists()
    (video_dir / "zz_broken.mp4").unlink()

    def annotate_again(*args, **kwargs):
        raise AssertionError("a cached video was annotated again")

    monkeypatch.setattr(annotate, "annotate_video", annotate_again)
    path = annotate.annotate_folder(video_dir, out, progress=False, max_frames=1)
    assert [v.video for v in annotations.load(path)] == sorted(CLIPS)


def test_link_mode_hard_links_the_videos_so_readers_take_them(video_dir, tmp_path):
    out = tmp_path / "out"
    path = annotate.annotate_folder(video_dir, out, link=True, progress=False, max_frames=1)
    for name in CLIPS:
        placed = out / "videos" / name
        assert not placed.is_symlink() and os.path.samefile(placed, video_dir / name)
    # A folder the builder and the evaluation read: no video leads out of it.
    for entry in annotations.load(path):
        assert annotations.resolve_video_path(entry, out).is_file()
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(CLIPS)   # no temporary file left


def test_command_line(video_dir, tmp_path):
    for name in CLIPS[1:]:
        (video_dir / name).unlink()
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "experiments.annotate", str(video_dir), str(out), "--max_frames=1",
                           "--noprogress"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(annotations.load(out / "annotations.json")[0].frames) == 1
    tracked = subprocess.run([sys.executable, "-m", "experiments.annotate", str(video_dir), str(out),
                              "--max_frames=3", "--tracking=track", "--noprogress"], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
    assert tracked.returncode == 0, tracked.stderr
    assert len(annotations.load(out / "annotations.json")[0].frames) == 3
    before = (out / "annotations.json").read_bytes()
    unknown = subprocess.run([sys.executable, "-m", "experiments.annotate", str(video_dir), str(tmp_path / "other"),
                              "--tracking=optical"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert [line for line in unknown.stderr.splitlines() if "--tracking" in line] == [
        "FATAL Flags parsing error: flag --tracking=optical: value should be one of <detect|track>"]
    assert not (tmp_path / "other").exists() and (out / "annotations.json").read_bytes() == before
    missing = subprocess.run([sys.executable, "-m", "experiments.annotate", str(tmp_path / "nowhere"), str(out)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "nowhere" in missing.stderr


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(video_dir, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file the user keeps\n")
    done = subprocess.run([sys.executable, "-m", "experiments.annotate", str(video_dir), str(out), "--noprogress"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: out_dir {out}: exists and is not a folder"]
    assert out.read_text() == "a file the user keeps\n"
    assert sorted(os.listdir(tmp_path)) == ["in", "out"]
    assert sorted(os.listdir(video_dir)) == [*sorted(CLIPS), "notes.txt"]

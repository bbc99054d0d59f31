"""Video reading and writing: round trips, real footage, and clear VideoErrors for missing, non-video, truncated and
half-written files."""
import os
import stat

import numpy as np
import pytest

from bigo_facegen import video
from bigo_facegen.video import VideoError


def _frames(count=12, height=48, width=64):
    """A moving smooth gradient: compresses well, so a lossy round trip stays close."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.stack([(x * 3 + t * 5) % 256, (y * 4 + t * 3) % 256, np.full_like(x, 40 + 10 * t)], axis=-1)
                     for t in range(count)]).astype(np.uint8)


def test_write_read_round_trip(tmp_path):
    frames = _frames()
    path = tmp_path / "clip.mp4"
    video.write_video(path, frames, fps=12.5)
    assert os.listdir(tmp_path) == ["clip.mp4"]
    info = video.probe(path)
    assert (info.frame_count, info.width, info.height) == (12, 64, 48)
    assert info.fps == pytest.approx(12.5)
    decoded = video.read_all(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # The codec is lossy; channel order survives (a BGR/RGB swap would give errors near 100).
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_avi_round_trip(tmp_path):
    path = tmp_path / "clip.avi"
    with video.VideoWriter(path, 25, (64, 48)) as writer:
        for frame in _frames(5):
            writer.write(frame)
    assert video.probe(path).frame_count == 5 and len(list(video.read_frames(path))) == 5


def test_real_footage(real_faces_dir):
    path = real_faces_dir / "videos" / "dpe_s.mp4"
    info = video.probe(path)
    assert info == video.VideoInfo(fps=25.0, width=256, height=256, frame_count=228)
    first = next(video.read_frames(path))
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8 and first.std() > 10


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match=f"{tmp_path / 'absent.mp4'}: no such file"):
        video.probe(tmp_path / "absent.mp4")
    # read_frames opens at the call, not at the first next().
    with pytest.raises(VideoError, match="no such file"):
        video.read_frames(tmp_path / "absent.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not frames\n" * 50)
    with pytest.raises(VideoError, match=f"{path}: cannot be opened as a video"):
        video.read_all(path)
    with pytest.raises(VideoError, match="not a file"):
        video.probe(tmp_path)


def test_truncated_own_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(), fps=25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # OpenCV writes the index at the end: cutting it loses the index
    with pytest.raises(VideoError, match=f"{path}: cannot be opened as a video"):
        video.read_all(path)


def test_truncated_streamable_mp4_reports_missing_frames(tmp_path, real_faces_dir):
    # The real clips keep their index at the start (faststart), so a cut file still claims all its frames.
    data = (real_faces_dir / "videos" / "dpe_s.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 5])
    assert video.probe(path).frame_count == 228
    frames = video.read_frames(path)
    with pytest.raises(VideoError) as info:
        for _ in frames:
            pass
    message = str(info.value)
    assert str(path) in message and "truncated or corrupt" in message and "of the 228 frames" in message


def test_writer_leaves_nothing_on_exception(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with video.VideoWriter(path, 25, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("generation failed")
    assert os.listdir(tmp_path) == []


def test_writer_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(3), fps=25)
    before = path.read_bytes()
    with pytest.raises(VideoError, match="frame 2 is uint8 \\(48, 32, 3\\), expected uint8 \\(48, 64, 3\\)"):
        video.write_video(path, [_frames(1)[0], np.zeros((48, 32, 3), np.uint8)], fps=25)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["clip.mp4"]


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(VideoError, match="cannot write .gif"):
        video.VideoWriter(tmp_path / "clip.gif", 25, (64, 48))
    with pytest.raises(VideoError, match="fps > 0"):
        video.VideoWriter(tmp_path / "clip.mp4", 0, (64, 48))
    with pytest.raises(VideoError, match="no frames to write"):
        video.write_video(tmp_path / "clip.mp4", [], fps=25)
    with pytest.raises(VideoError, match="no frames were written"):
        with video.VideoWriter(tmp_path / "clip.mp4", 25, (64, 48)):
            pass
    assert os.listdir(tmp_path) == []


def test_written_videos_get_the_mode_open_gives(tmp_path):
    previous = os.umask(0o027)  # neither mkstemp's 0600 nor a fixed 0644
    try:
        video.write_video(tmp_path / "clip.mp4", _frames(2), fps=25)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "clip.mp4").st_mode) == 0o640


def test_writer_rejects_unwritable_targets_before_writing(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    (tmp_path / "notes").write_text("x")
    with pytest.raises(VideoError, match=f"^video {tmp_path / 'taken.mp4'}: is an existing folder"):
        video.VideoWriter(tmp_path / "taken.mp4", 25, (64, 48))
    with pytest.raises(VideoError, match=f"^video {tmp_path / 'notes' / 'clip.mp4'}: {tmp_path / 'notes'} is a file"):
        video.VideoWriter(tmp_path / "notes" / "clip.mp4", 25, (64, 48))
    assert sorted(os.listdir(tmp_path)) == ["notes", "taken.mp4"] and os.listdir(tmp_path / "taken.mp4") == []


def test_writer_discards_the_video_when_it_cannot_be_moved_into_place(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(VideoError, match=f"^{path}: cannot move the finished video into place: Is a directory$"):
        with video.VideoWriter(path, 25, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            path.mkdir()  # the target turns into a folder while the video is being written
    assert os.listdir(tmp_path) == ["clip.mp4"] and os.listdir(path) == []

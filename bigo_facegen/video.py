"""Reading and writing videos with OpenCV, with errors that name the file.

Frames cross this boundary as RGB uint8 (H, W, 3); OpenCV's BGR stays inside this module.

Reading trusts the container's frame count as the length of the video: a file that decodes to fewer frames than it
claims is truncated or corrupt, and `read_frames` raises `VideoError` once the decodable frames run out rather than
ending early in silence. Writing goes to a temporary file beside the target, renamed onto it when the writer closes
cleanly; on an exception, or if that rename fails, the temporary file is removed, so no half-written video ever
appears under the target name and none is left beside it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from bigo_facegen import files

# Codecs that the pip wheels of OpenCV (opencv-python-headless) can write without a system FFmpeg.
_FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
SUFFIXES = tuple(_FOURCC_BY_SUFFIX)


class VideoError(ValueError):
    """A video file is missing, unreadable, truncated, or cannot be written."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    frame_count: int


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and claimed frame count of a video; raises VideoError if it cannot be opened as one."""
    capture = _open(path)
    try:
        return _info(capture, path)
    finally:
        capture.release()


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video as RGB uint8 arrays. The file is opened (and a bad one rejected) at the call, not at
    the first `next`; the iterator raises VideoError if fewer frames decode than the container claims."""
    capture = _open(path)
    try:
        info = _info(capture, path)
    except VideoError:
        capture.release()
        raise
    return _decode(capture, path, info)


def read_all(path: str | os.PathLike) -> np.ndarray:
    """All frames, (T, H, W, 3) RGB uint8."""
    return np.stack(list(read_frames(path)))


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> None:
    """Writes RGB uint8 frames (all of one size) to `path` atomically; the size is that of the first frame."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"{path}: no frames to write")
    height, width = np.asarray(first).shape[:2]
    with VideoWriter(path, fps, (width, height)) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)


class VideoWriter:
    """Context manager writing RGB uint8 frames of size (width, height) to `path` (.mp4/.m4v/.mov: mp4v, .avi:
    MJPG). The file appears under `path` only when the `with` block ends without an exception."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        try:
            files.check_output_file(self.path, "video", SUFFIXES)
        except files.OutputPathError as e:
            raise VideoError(str(e)) from e
        if not fps > 0 or self.size[0] <= 0 or self.size[1] <= 0:
            raise VideoError(f"{self.path}: need fps > 0 and a positive size, got fps={fps}, size={size}")
        fourcc = _FOURCC_BY_SUFFIX[self.path.suffix.lower()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # OpenCV picks the container by the file name's suffix, so the temporary name keeps it.
        self._tmp = files.temporary_file(self.path, suffix=self.path.suffix)
        try:
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
            if not self._writer.isOpened():
                raise VideoError(f"{self.path}: OpenCV could not open a {fourcc} writer")
        except BaseException:
            self._discard()
            raise
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        expected = (self.size[1], self.size[0], 3)
        if frame.shape != expected or frame.dtype != np.uint8:
            raise VideoError(f"{self.path}: frame {self.frames_written + 1} is {frame.dtype} {frame.shape}, "
                             f"expected uint8 {expected} RGB")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finishes the file and moves it into place; if that fails, nothing is left of it."""
        try:
            self._writer.release()
            if self.frames_written == 0:
                raise VideoError(f"{self.path}: no frames were written")
            try:
                os.replace(self._tmp, self.path)
            except OSError as e:
                raise VideoError(f"{self.path}: cannot move the finished video into place: {e.strerror}") from e
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Drops what was written; nothing appears under `path`."""
        self._writer.release()
        self._discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _discard(self) -> None:
        self._tmp.unlink(missing_ok=True)


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: not readable (permission denied)")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{path}: cannot be opened as a video (not a video, or its header is truncated or corrupt)")
    return capture


def _info(capture: cv2.VideoCapture, path) -> VideoInfo:
    info = VideoInfo(fps=float(capture.get(cv2.CAP_PROP_FPS)), width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    if info.width <= 0 or info.height <= 0 or info.frame_count <= 0:
        raise VideoError(f"{path}: not a readable video (size {info.width}x{info.height}, "
                         f"{info.frame_count} frames claimed)")
    return info


def _decode(capture: cv2.VideoCapture, path, info: VideoInfo) -> Iterator[np.ndarray]:
    decoded = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if decoded < info.frame_count:
        raise VideoError(f"{path}: truncated or corrupt: only {decoded} of the {info.frame_count} frames the file "
                         f"claims could be decoded")

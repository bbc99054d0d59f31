"""Reading videos with OpenCV and writing them with PyAV (FFmpeg's libraries, libx264 inside the wheel), and reading
images with Pillow, with errors that name the file.

Frames and images cross this boundary as RGB uint8 (H, W, 3); OpenCV's BGR stays inside this module.

A file's size is checked from its header before anything is decoded: an image over `MAX_IMAGE_PIXELS` or a video
whose frames are over `MAX_FRAME_PIXELS` is refused (a 2.7 MB PNG that claims 30000 x 30000 pixels decodes to 2.7 GB).
A JPEG that its reader scales down is decoded at a reduced size (`read_image`'s `max_side`).
An image is not a video: a file Pillow reads as an image (an animated GIF too) is refused where a video is read,
though OpenCV would open it as a one-frame video. A damaged image is refused as damaged: a truncated file, or a JPEG
whose bytes libjpeg-turbo finds corrupt. A JPEG has no checksum: a few garbled bytes that still decode go unnoticed
(2026-12-07, 30 damaged copies each of a dev frame's JPEG: libjpeg-turbo found 256 bytes zeroed or made random at
random places every time, 16 bytes in 19 of 30; Pillow found 7 of the 256-byte ones, FFmpeg 24).

Reading trusts the container's frame count as the length of the video: a file that decodes to fewer frames than it
claims is truncated or corrupt, and `read_frames` raises `VideoError` once the decodable frames run out rather than
ending early in silence. Writing goes to a temporary file beside the target, renamed onto it when the writer closes
cleanly; on an exception, or if that rename fails, the temporary file is removed, so no half-written video ever
appears under the target name and none is left beside it (one left by a killed process is removed by the next writer
of the same target: `files.temporary_file`). `is_whole` tells a finished file from one cut short without decoding it.

Written videos are H.264 (High profile, yuv420p, BT.601 limited range and tagged so) in an MP4-family container with
its index (moov) ahead of the frames (faststart): they play in browsers, also while still downloading. MPEG-4 Part 2
(`mp4v`, what OpenCV's wheel writes) is there only on request, for players that lack H.264.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import struct
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import av
import cv2
import numpy as np
import simplejpeg
from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from bigo_facegen import files


@dataclasses.dataclass(frozen=True)
class Codec:
    """How frames are encoded: the FFmpeg encoder, the pixel format it is fed and its options."""
    encoder: str
    pixel_format: str
    options: Mapping[str, str]


def _cpu_has_avx512() -> bool:
    """Whether the CPU has AVX-512, as Linux's /proc/cpuinfo says; False where it cannot say."""
    try:
        return re.search(r"^flags\s*:.*\bavx512f\b", Path("/proc/cpuinfo").read_text(), re.MULTILINE) is not None
    except OSError:
        return False


# x264's AVX-512 code made encodes of the same frames differ from run to run on an AMD EPYC with AVX-512 (8 encodes
# of flat-coloured synthetic frames interleaved with others: 3-4 different files, so the synthetic data set was not
# reproducible); with its code capped at AVX2, one file. 64 frames at 256x256 took 85.6 and 133.4 ms capped against
# 83.8 and 105.5 uncapped (two rounds; asm=0: 301 ms). Capped only where the CPU has AVX-512, which implies AVX2:
# naming instructions the CPU lacks would crash x264.
X264_CPU_CAP = {"x264-params": "asm=AVX2"} if _cpu_has_avx512() else {}

CODECS = {
    # CRF 18 is x264's "visually lossless" level. On a development clip at 256x256 and 1280x720 the veryfast preset
    # encodes 2.4-2.8x as fast as x264's default (medium), 0.2-0.8 dB PSNR lower, in files no larger
    # (`python -m benchmarks.video_io --x264_preset=medium`).
    "h264": Codec("libx264", "yuv420p", {"crf": "18", "preset": "veryfast", **X264_CPU_CAP}),
    # Fixed quantiser 3 (FFmpeg's scale 1..31): on three development clips at least the PSNR of the H.264 setting, in
    # files twice the size.
    "mp4v": Codec("mpeg4", "yuv420p", {"flags": "+qscale", "global_quality": str(3 * 118)}),
}
# The index ahead of the frames, so that a browser starts playing before the whole file has arrived.
MP4_OPTIONS = {"movflags": "+faststart"}
# FFmpeg picks the MP4-family muxer by the suffix (mp4, ipod, mov); each takes both codecs.
SUFFIXES = (".mp4", ".m4v", ".mov")
# The BIGO release and the shared footage run at 25 fps; used when neither the video nor the caller says otherwise.
DEFAULT_FPS = 25.0
# Colour tags of what FFmpeg's RGB -> YUV conversion writes by default (ITU-R BT.601 matrix, limited range), so that
# players convert back with the same matrix rather than guess one. The matrix is FFmpeg's AVCOL_SPC_SMPTE170M, which
# PyAV names nowhere (its reformatter's Colorspace numbers swscale's matrices, another scale).
_COLORSPACE_SMPTE170M = 6
# Largest denominator of a frame rate: NTSC's 30000/1001 fits, and MP4's 32-bit time scale holds any such rate.
_MAX_RATE_DENOMINATOR = 1001
# The highest frame rate a video is written at: past the 960 fps of phones' slow motion. PyAV 18.1 writes higher ones,
# but at 10^9 fps its MP4 has no duration and from 2^32 it fails with an OverflowError (2026-12-07).
MAX_FPS = 1000
# The most pixels an image may have: 10000 x 10000, past the photos of any phone's default setting (12-50 million)
# and 300 MB as RGB; what lies beyond is a scan or a decompression bomb.
MAX_IMAGE_PIXELS = 100_000_000
# The most pixels a video frame may have: DCI 8K (8192 x 4320), the largest frame any camera records.
MAX_FRAME_PIXELS = 8192 * 4320


class VideoError(ValueError):
    """A video file is missing, unreadable, truncated, too large, not a video, or cannot be written."""


class ImageError(ValueError):
    """An image file is missing, not an image, damaged, or too large to read."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    frame_count: int

    @property
    def playback_fps(self) -> float:
        """The frame rate to play the frames at: the file's, or `DEFAULT_FPS` where it gives none."""
        return self.fps if self.fps > 0 else DEFAULT_FPS


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and claimed frame count of a video; raises VideoError if it cannot be opened as one."""
    capture = _open(path)
    try:
        return _info(capture, path)
    finally:
        capture.release()


def is_whole(path: str | os.PathLike) -> bool:
    """Whether `path` is a whole MP4-family file, as `VideoWriter` leaves one: its top-level boxes (ISO/IEC 14496-12:
    a 32-bit size, or 1 and a 64-bit size after the type; 0: to the end of the file) tile the file exactly and hold
    the index (moov) and the frames (mdat). An empty file, one cut short anywhere or one of another format is not.
    It reads a few box headers, not the frames."""
    try:
        with open(path, "rb") as file:
            size, position, kinds = os.fstat(file.fileno()).st_size, 0, set()
            while position < size:
                file.seek(position)
                header = file.read(16)
                if len(header) < 8:
                    return False
                length, kind = struct.unpack(">I4s", header[:8])
                if length == 1 and len(header) == 16:
                    length = struct.unpack(">Q", header[8:])[0]
                elif length == 0:
                    length = size - position
                if length < 8:
                    return False
                kinds.add(kind)
                position += length
    except OSError:
        return False
    return position == size and {b"moov", b"mdat"} <= kinds


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


def read_frame(path: str | os.PathLike, index: int) -> np.ndarray:
    """Frame `index` (1-based) of a video."""
    for position, frame in enumerate(read_frames(path), start=1):
        if position == index:
            return frame
    raise VideoError(f"{path}: has no frame {index}")


def read_image(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """An image file as RGB uint8, turned upright as its EXIF orientation says, and with `max_side` scaled down to it
    on its longer side where that is longer (`scale_down`). Its size is read from its header and checked against
    `MAX_IMAGE_PIXELS` before it is decoded; a truncated or corrupt one raises `ImageError`.

    A JPEG to be scaled down is decoded at the smallest of libjpeg's reduced scales (1/2, 1/4 or 1/8 of a side) that
    still has `max_side` pixels, so its full size is never held: reading a 2 MB 8000x8000 JPEG scaled to 1024 grew a
    process by 1100 MB decoded whole, by 70 MB so (2026-12-07)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    with _open_image(path) as image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageError(f"{path}: {width}x{height} pixels, over the {MAX_IMAGE_PIXELS:,} an image may have; "
                             f"scale it down first")
        try:
            if isinstance(image, JpegImagePlugin.JpegImageFile):  # MPO, a phone's JPEG with its previews, too
                # Pillow decodes through libjpeg's warnings (a run of zeroed bytes passes in silence); libjpeg-turbo's
                # strict mode raises on them. At 1/8 scale: every byte is still read, less is computed and held
                # (simplejpeg takes its scale from the least size asked for: without one, it decodes the full size).
                simplejpeg.decode_jpeg(path.read_bytes(), min_factor=8, min_height=1, min_width=1, strict=True)
                scale = 1.0 if max_side is None else max_side / max(width, height)
                if scale < 1:  # the decoder's scale keeps at least the size asked for
                    image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            upright = ImageOps.exif_transpose(image)
        except (OSError, ValueError) as e:
            raise ImageError(f"{path}: the image is damaged (truncated or corrupt): {e}") from e
    if upright.mode.startswith("I;16"):  # Pillow would clip 16-bit greys to 8 bits, not scale them
        upright = Image.fromarray((np.asarray(upright) >> 8).astype(np.uint8))
    rgb = np.asarray(upright.convert("RGB"))
    return rgb if max_side is None else scale_down(rgb, max_side)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """The (width, height) of an image file as `read_image` gives it whole (turned upright), from its header."""
    with _open_image(Path(path)) as image:
        width, height = image.size
        # EXIF orientations 5-8 turn the image a quarter (`ImageOps.exif_transpose`).
        turned = image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def scale_down(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` scaled (area interpolation) so that its longer side is `max_side`, where it is longer; else itself."""
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def _open_image(path: Path) -> Image.Image:
    """The image at `path` with its header read, nothing decoded yet."""
    try:
        with warnings.catch_warnings():
            # Pillow warns of images over its own bomb limit; `MAX_IMAGE_PIXELS` decides, after the header is read.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as e:  # over twice Pillow's limit, far over MAX_IMAGE_PIXELS
        raise ImageError(f"{path}: over the {MAX_IMAGE_PIXELS:,} pixels an image may have ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not a readable image (no image format Pillow knows)") from e
    except OSError as e:
        raise ImageError(f"{path}: not a readable image ({e.strerror or e})") from e


def _image_format(path: Path) -> str | None:
    """The format of the image at `path` (as Pillow names it from the header), or None where it is not an image."""
    try:
        with _open_image(path) as image:
            return image.format
    except ImageError:
        return None


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, codec: str = "h264") -> None:
    """Writes RGB uint8 frames (all of one size) to `path` atomically; the size is that of the first frame."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"{path}: no frames to write")
    height, width = np.asarray(first).shape[:2]
    with VideoWriter(path, fps, (width, height), codec) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)


def is_frame_rate(fps: float) -> bool:
    """Whether `fps` is a frame rate videos are written at: a number above 0 (and so as a container stores it,
    `frame_rate`) and at most `MAX_FPS`."""
    return (isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps)
            and 0 < fps <= MAX_FPS and frame_rate(fps) > 0)


def frame_rate(fps: float) -> Fraction:
    """`fps` as the exact fraction a container stores (12.5 -> 25/2, 29.97003 -> 30000/1001)."""
    return Fraction(float(fps)).limit_denominator(_MAX_RATE_DENOMINATOR)


class VideoWriter:
    """Context manager writing RGB uint8 frames of size (width, height) to `path` (.mp4, .m4v or .mov) with `codec`
    (a key of CODECS). The file appears under `path` only when the `with` block ends without an exception.

    4:2:0 chroma covers 2x2 pixels, so both sides of a frame must be even: a frame of odd width or height is padded
    by repeating its last column or row, and the file's size is the even size (a 63x49 frame is stored as 64x50)."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], codec: str = "h264"):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        try:
            files.check_output_file(self.path, "video", SUFFIXES)
        except files.OutputPathError as e:
            raise VideoError(str(e)) from e
        if not is_frame_rate(fps) or self.size[0] <= 0 or self.size[1] <= 0:
            raise VideoError(f"{self.path}: need a frame rate above 0 and at most {MAX_FPS} fps and a positive size, "
                             f"got fps={fps}, size={size}")
        if codec not in CODECS:
            raise VideoError(f"{self.path}: unknown codec {codec!r}; use one of {', '.join(CODECS)}")
        width, height = self.size
        self._pad_bottom, self._pad_right = height % 2, width % 2
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # FFmpeg picks the container by the file name's suffix, so the temporary name keeps it.
        self._held = contextlib.ExitStack()
        self._tmp = self._held.enter_context(files.temporary_file(self.path, suffix=self.path.suffix))
        try:
            self._container = av.open(str(self._tmp), "w", container_options=MP4_OPTIONS)
            settings = CODECS[codec]
            self._stream = self._container.add_stream(settings.encoder, rate=frame_rate(fps),
                                                      options=dict(settings.options))
            self._stream.width, self._stream.height = width + self._pad_right, height + self._pad_bottom
            self._stream.pix_fmt = settings.pixel_format
            self._stream.codec_context.colorspace = _COLORSPACE_SMPTE170M
            self._stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
        except av.FFmpegError as e:
            self._discard()
            raise VideoError(f"{self.path}: cannot open a {codec} writer: {e.strerror}") from e
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
        padded = cv2.copyMakeBorder(frame, 0, self._pad_bottom, 0, self._pad_right, cv2.BORDER_REPLICATE)
        encoded = av.VideoFrame.from_ndarray(padded, format="rgb24")
        try:
            self._container.mux(self._stream.encode(encoded))
        except av.FFmpegError as e:
            raise VideoError(f"{self.path}: cannot write frame {self.frames_written + 1}: {e.strerror}") from e
        self.frames_written += 1

    def close(self) -> None:
        """Finishes the file and moves it into place; if that fails, nothing is left of it."""
        try:
            if self.frames_written == 0:
                raise VideoError(f"{self.path}: no frames were written")
            try:
                self._container.mux(self._stream.encode(None))
                self._container.close()
            except av.FFmpegError as e:
                raise VideoError(f"{self.path}: cannot finish the video: {e.strerror}") from e
            try:
                os.replace(self._tmp, self.path)
            except OSError as e:
                raise VideoError(f"{self.path}: cannot move the finished video into place: {e.strerror}") from e
            self._held.close()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drops what was written; nothing appears under `path`."""
        # Closing finishes the file, which fails again after a failed write; the file is dropped either way, and the
        # error that led here is the one to report.
        with contextlib.suppress(av.FFmpegError):
            self._container.close()
        self._discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _discard(self) -> None:
        self._held.close()  # removes the temporary file


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: not readable (permission denied)")
    # OpenCV would open an image as a video of one frame, decoding it whatever its size to learn that.
    if (image_format := _image_format(path)) is not None:
        raise VideoError(f"{path}: is a {image_format} image, not a video")
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
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise VideoError(f"{path}: frames of {info.width}x{info.height} pixels, over the {MAX_FRAME_PIXELS:,} a video "
                         f"frame may have (8192x4320, DCI 8K)")
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

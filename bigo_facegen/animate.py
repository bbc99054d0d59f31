"""Animate any face: a photo (or one frame of a video) of one person driven by a video of anyone, the library
function behind `experiments.animate`.

    animate("exports/face", "photo.jpg", "driver.mp4", "out.mp4")          # or method="warp"

1. The source image (`read_source`): an image file, or frame `source_frame` of a video, scaled down to `max_side`
   pixels on its longer side where it is larger (`AnimateStats.scaled_from` says so); dlib finds its face and 68
   points (`annotate.annotate_frame`, the convention of the shared footage).
2. The driving track (`driving_track`): the driver's points found in its frames as `tracking` says (`annotate.
   TRACKINGS`: `track`, dlib's points followed by optical flow and held to dlib, the default; `detect`, dlib on every
   frame), or the driving video's entry in a BIGO-layout annotation file (`driving_annotations`, of dlib's `ibug68`
   layout like the source's points), read as it is: a file and a tracking together are refused, for the file's points
   may already be tracked (`annotate --tracking=track` writes such files) and a tracker needs a detector that searches
   any frame, which a file is not. A source that is a frame of the driving video itself (the same file, `source_frame`
   among the driving frames, not scaled down) takes its face from the track's frame (`own_face`): the no-motion face
   is then the track's own estimate, not a second detection whose noise would return in every target.
3. `motion_transfer.transfer` turns the track into target annotations in the source image's pixels (`targets`:
   relative or absolute motion, the driving reference, smoothing, lost faces keeping the last motion).
4. The frames: a `methods.Method` makes them from the source image and its face, a model (an export or a training
   model_dir) through `generation.VideoGenerator`, or `warp`, the source image warped piecewise-affinely onto each
   target's keypoints. One output frame per driving frame, at the source's resolution and the driver's frame rate;
   `face_output` gets the method's face crops alone. A method whose mouth painter reads the driver's teeth
   (`methods.Method.reads_teeth`) is told, per driving frame, how much of the driver's inner mouth shows teeth
   (`driver_teeth`: `painting.teeth_cue` on the driving frames read again, at the track's points), so that an opened
   mouth shows teeth where the driver's does and a tongue or a dark cavity where it does not.
5. The gaze (`gaze`, on by default; `driver_gaze`, `with_gaze`): the 68 points have no pupils, so the method paints
   the photo's eyes looking where they looked. MediaPipe's iris model (`iris.IrisFinder`) finds the photo's irises
   once and the driver's on each driving frame, and `gaze.GazePainter` moves the photo's irises, within each output
   frame's eye openings, as the driver's move from its first frame with both eyes seen (`gaze.follow`); the face crops
   are painted alike in their own pixels, not cut from the painted frame (a model's crop is its own face, at its own
   resolution). The driving frames are read a second time for it: the tracker gives a frame's points out only when
   its span ends, and a driver's 512-px frames cost 4 ms each to decode and measure again. A photo without a usable
   iris (closed, too small, not found) is said in one line, and the video is made without gaze. The driver's gaze
   comes from its pixels, so it follows with `driving_annotations` too.

The output paths are checked first (none may be an input, by whatever path), then the method and the source are read,
then the driving video is probed: a bad input fails before the long part; the videos appear only when complete
(`video.VideoWriter`).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from bigo_facegen import (
    annotate,
    annotations,
    files,
    gaze as gaze_lib,
    generation,
    geometry,
    iris,
    methods,
    motion_transfer,
    painting,
    video,
)
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.face_model import GenerationError
from bigo_facegen.generation import FrameResult
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.methods import Method
from bigo_facegen.motion_transfer import MotionSettings

# How the driving points are found by default (`annotate.TRACKINGS`).
DEFAULT_TRACKING = annotate.TRACK
# The longest side of a source image used as it is; a larger one is scaled down to it. Full HD's long side: a model
# paints faces of its crop size (256 px for the shipped one) whatever the photo's, and everything else a frame costs
# (fusion, dlib, encoding) grows with its pixels (an 8000 x 8000 photo took 94 s).
DEFAULT_MAX_SIDE = 1920
# The photo's irises follow the driver's gaze by default: measured (docs/experiments.md, "Gaze"), the shipped model's
# output then follows it (correlation 0.94 median, 0.80 without), clips driving their own first frame come closer to
# their true eyes (+0.5 dB) and no further from their faces, for 8% more time.
DEFAULT_GAZE = True


@dataclasses.dataclass
class AnimateStats:
    """What `animate` made: output frames, the driving frames where no face was found (they kept the last motion),
    the source image's (width, height) where it was scaled down to `max_side` (None where it was used as it is), and
    whether the photo's irises followed the driver's gaze."""
    frames: int
    lost: int
    scaled_from: tuple[int, int] | None = None
    gaze: bool = False


def animate(method: Method | str | os.PathLike, source: str | os.PathLike, driving: str | os.PathLike,
            output: str | os.PathLike, face_output: str | os.PathLike | None = None, source_frame: int | None = None,
            driving_annotations: str | os.PathLike | None = None, motion: MotionSettings = MotionSettings(),
            max_frames: int | None = None, max_side: int = DEFAULT_MAX_SIDE, progress: bool = True,
            compiled: bool = False, settings: GenerationSettings = GenerationSettings(),
            tracking: str | None = None, gaze: bool = DEFAULT_GAZE) -> AnimateStats:
    """Writes `output` (and `face_output`): the face of `source` driven by the video `driving` (see the module
    doc). `method` is a `methods.Method` or a name `methods.load` takes (`copy`, `warp`, the path of an export or a
    training model_dir, `pretrained`), loaded to make faces with `settings` and, with `compiled`, to run under XLA;
    `max_frames` keeps the first driving frames only; a source larger than `max_side` pixels on a side is scaled down
    to it; `tracking` (`annotate.TRACKINGS`; None: `DEFAULT_TRACKING`) says how the driving points are found, and
    may not be given with `driving_annotations`; with `gaze`, the photo's irises follow the driver's."""
    generation.check_max_frames(max_frames)
    files.check_output_files({"output": output, "face_output": face_output}, video.SUFFIXES,
                             {"source": source, "driving": driving, "driving_annotations": driving_annotations})
    check_max_side(max_side)
    check_keypoint_source(driving_annotations, tracking)
    if not isinstance(method, Method):
        method = methods.load(method, settings, compiled)
    image, size = read_source(source, source_frame, max_side)
    info = video.probe(driving)
    scaled = size != (image.shape[1], image.shape[0])
    own = not scaled and source_frame is not None and source_frame <= _driving_frames(info, max_frames) \
        and files.file_key(source) == files.file_key(driving)
    # The source's own face before the long part, unless the track has it.
    source_face = None if own else find_face(image, source)
    track = driving_track(driving, driving_annotations, max_frames, progress, tracking)
    if own:
        source_face = own_face(track, source_frame, image, source)
    targets = transfer(source_face, image, track, info, motion, driving)
    teeth = driver_teeth(driving, track, progress) if method.reads_teeth else None
    results = method.frames(image, source_face, targets, teeth)
    followed = driver_gaze(image, source_face, source, driving, track, info.playback_fps, progress) if gaze else None
    if followed is not None:
        results = with_gaze(results, targets, *followed, method.face_size if face_output else None)
    generation.write_video(results, len(targets), output, info.playback_fps, (image.shape[1], image.shape[0]),
                           face_output, method.face_size, progress)
    return AnimateStats(frames=len(targets), lost=sum(not frame.has_face for frame in track),
                        scaled_from=size if scaled else None, gaze=followed is not None)


def check_max_side(max_side: int) -> None:
    """Raises GenerationError unless `max_side` (the longest side of a source used as it is) is at least 1."""
    if max_side < 1:
        raise GenerationError(f"max_side {max_side}: a source image needs at least 1 pixel on a side")


def check_keypoint_source(driving_annotations: str | os.PathLike | None, tracking: str | None) -> None:
    """Raises ValueError (GenerationError) unless the driving points come from one place: a known tracking (None: the
    default), or a file as it is."""
    if tracking is not None:
        annotate.check_tracking(tracking)
        if driving_annotations is not None:
            raise GenerationError(f"{driving_annotations}: the driving keypoints are read from this file as they are, "
                                  f"and tracking {tracking!r} would find them in the frames: give one or the other")


def find_face(image: np.ndarray, source: str | os.PathLike) -> FrameAnnotation:
    """dlib's face on the source image; GenerationError naming `source` where it finds none."""
    face = annotate.annotate_frame(image, 1)
    if not face.has_face:
        raise GenerationError(f"{source}: dlib finds no face in the source image")
    return face


def own_face(track: list[FrameAnnotation], index: int, image: np.ndarray, source: str | os.PathLike
             ) -> FrameAnnotation:
    """The face of a source that is frame `index` (1-based) of the driving video (`image`, read from `source`): the
    track's, or dlib's on the image where the track has none there."""
    face = track[index - 1]
    return face if face.has_face else find_face(image, source)


def transfer(source_face: FrameAnnotation, image: np.ndarray, track: list[FrameAnnotation], info: video.VideoInfo,
             motion: MotionSettings, driving: str | os.PathLike) -> list[FrameAnnotation]:
    """The targets of the source `image` (its face `source_face`) driven by `track` (of the video `driving`, `info`),
    one per driving frame; GenerationError naming the video where they do not fit together."""
    try:
        return motion_transfer.transfer(source_face, (image.shape[1], image.shape[0]), track,
                                        (info.width, info.height), info.playback_fps, motion)
    except motion_transfer.MotionError as e:
        raise GenerationError(f"{driving}: {e}") from e


def driver_teeth(driving: str | os.PathLike, track: list[FrameAnnotation], progress: bool = True
                 ) -> list[float | None]:
    """The driver's `painting.teeth_cue` on each frame of `track` (of the video `driving`, its frames read again)."""
    frames = tqdm(itertools.islice(video.read_frames(driving), len(track)), total=len(track), unit="frame",
                  disable=not progress, leave=False, desc=f"{Path(driving).name}: teeth")
    return [painting.teeth_cue(frame, found) for frame, found in zip(frames, track)]


def driver_gaze(image: np.ndarray, source_face: FrameAnnotation, source: str | os.PathLike,
                driving: str | os.PathLike, track: list[FrameAnnotation], fps: float, progress: bool = True
                ) -> tuple[tuple[gaze_lib.Iris | None, gaze_lib.Iris | None], np.ndarray] | None:
    """The photo's irises (`image`, its face `source_face`, read from `source`) and the offsets (T, 2, 2) they are
    wanted at on each frame of `track` (of the video `driving`), the driver's gaze measured on its frames read again;
    None where the photo has no usable iris (said in one line naming `source`: `gaze.photo_irises`)."""
    finder = iris.IrisFinder()
    irises = source_irises(finder, image, source_face, source)
    if irises is None:
        return None
    frames = tqdm(itertools.islice(video.read_frames(driving), len(track)), total=len(track), unit="frame",
                  disable=not progress, leave=False, desc=f"{Path(driving).name}: gaze")
    return irises, gaze_lib.follow(irises, gaze_lib.measure(finder, frames, track), fps)


def source_irises(finder: iris.IrisFinder, image: np.ndarray, source_face: FrameAnnotation,
                  source: str | os.PathLike) -> tuple[gaze_lib.Iris | None, gaze_lib.Iris | None] | None:
    """The photo's irises (`image`, its face `source_face`, read from `source`) as `finder` finds them; None where
    neither can be used (said in one line naming `source`: `gaze.photo_irises`)."""
    points = source_face.points.astype(np.float64)
    irises = gaze_lib.photo_irises(image, points, finder(image, points), source=str(source))
    return None if irises == (None, None) else irises


def with_gaze(results: Iterable[FrameResult], targets: Sequence[FrameAnnotation],
              irises: Sequence[gaze_lib.Iris | None], wanted: np.ndarray, face_size: int | None
              ) -> Iterator[FrameResult]:
    """`results` (one per target) with the photo's `irises` moved to the `wanted` offsets (one (2, 2) per target) in
    each frame, and in each face crop unless `face_size` is None (the crops are not written)."""
    repaint = GazeRepaint(irises, face_size)
    for result, target, offsets in zip(results, targets, wanted):
        yield repaint(result, target, offsets)


class GazeRepaint:
    """Moves the photo's `irises` in a method's result for one target: in its frame, and in its face crop unless
    `face_size` is None (the crops are not written)."""

    def __init__(self, irises: Sequence[gaze_lib.Iris | None], face_size: int | None):
        self.face_size = face_size
        self._frame = gaze_lib.GazePainter(irises)
        self._face = gaze_lib.GazePainter(irises, where="a face crop")

    def __call__(self, result: FrameResult, target: FrameAnnotation, offsets: np.ndarray) -> FrameResult:
        face = result.face
        if self.face_size is not None:
            crop_points = geometry.apply_affine(target.points, geometry.crop_matrix(target.bbox, self.face_size))
            face = self._face(face, crop_points, offsets)
        return dataclasses.replace(result, frame=self._frame(result.frame, target.points, offsets), face=face)


def _driving_frames(info: video.VideoInfo, max_frames: int | None) -> int:
    return info.frame_count if max_frames is None else min(max_frames, info.frame_count)


def read_source(path: str | os.PathLike, frame: int | None = None,
                max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """The source image, RGB uint8, scaled down to `max_side` pixels on its longer side where it is longer (a JPEG
    decoded at a reduced size: `video.read_image`), and its (width, height) before: an image file, or frame `frame`
    (1-based) of a video."""
    path = Path(path)
    if frame is not None:
        if frame < 1:
            raise GenerationError(f"{path}: source frame {frame}: frames are numbered from 1")
        read = video.read_frame(path, frame)
        return video.scale_down(read, max_side), (read.shape[1], read.shape[0])
    if path.suffix.lower() in annotate.VIDEO_SUFFIXES:
        raise GenerationError(f"{path}: is a video; say which of its frames is the source (--source_frame=N)")
    return video.read_image(path, max_side), video.image_size(path)


def driving_track(driving: str | os.PathLike, annotations_path: str | os.PathLike | None = None,
                  max_frames: int | None = None, progress: bool = True, tracking: str | None = None
                  ) -> list[FrameAnnotation]:
    """One annotation per frame of the video `driving` (or of its first `max_frames`), a frame without a face where
    none was found: found in its frames as `tracking` says (`annotate.TRACKINGS`; None: `DEFAULT_TRACKING`), or the
    video's entry (by file name) in the annotation file `annotations_path`, as it is (no tracking may be given)."""
    check_keypoint_source(annotations_path, tracking)
    driving = Path(driving)
    if annotations_path is None:
        return annotate.read_track(driving, tracking or DEFAULT_TRACKING, max_frames, progress,
                                   desc=f"{driving.name}: faces")
    info = video.probe(driving)
    entry = annotations.find_video(generation.read_annotations(annotations_path), driving.name, str(annotations_path))
    annotations.check_against_video(entry, info.frame_count, source=str(annotations_path))
    annotations.check_on_frame(entry, info.width, info.height, source=str(annotations_path))
    by_index = {frame.index: frame for frame in entry.frames}
    return [by_index.get(index, FrameAnnotation(index=index))
            for index in range(1, _driving_frames(info, max_frames) + 1)]

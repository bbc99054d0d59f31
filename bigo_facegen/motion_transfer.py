"""Motion transfer in keypoint space: a driving face's keypoint track turned into target annotations of another face
(the source), in the source image's pixel coordinates, before any network runs; `generation.VideoGenerator` (any
`FaceModel`) or the piecewise-affine warp then makes the frames.

Modes (those of first-order-model's `demo.py`):

- `relative` (the default; FOMM's `--relative --adapt_scale`): target = source points + s x (driving points - driving
  reference points), with s = sqrt(convex hull area of the source's points / that of the driving reference's): the
  driver's motion since its reference frame, scaled to the source face, added to the source's own face.
- `absolute`: the driving points themselves in normalised image coordinates (x / width, y / height of the driving
  frame, times the source image's): the challenge's same-person setting. With the driver's own frame as the source
  (same size, same face) both modes give the driving points back.

The driving reference (the driving face that counts as "no motion" in `relative` mode) is the first driving frame with
a face (`first`) or the one whose expression is nearest the source's (`best`, FOMM's `--find_best_frame`: each face's
points centred on their mean and divided by the square root of their hull area, the summed squared difference).

The face box follows the face: in `relative` mode its centre moves by s x the driving box centre's motion and its side
scales with the driving box side (source box side x driving side / reference side), so a source box in
`annotate`'s convention (1.6 x dlib's detector side, centred on the points' mean) stays in it; in `absolute` mode it is
the driving box in normalised coordinates. A point absent (flag 0) in the driving reference or the source stays absent.

Driving frames without a face keep the last motion: the target of the last frame with a face, before the first one
the source's own face. The driving track is first smoothed, per coordinate, points and box alike:
- `gaussian` (the default for a whole video): each run of consecutive frames with a face convolved with a Gaussian of
  `sigma` seconds (scipy's `gaussian_filter1d`), centred on the frame, so it has no lag; it needs the frames to come;
- `one_euro` (`LIVE`'s, for a live driver): the One-Euro filter (Casiez et al. 2012, the `OneEuroFilter` package by its
  authors), causal, in units of the first face's box side so that its settings do not depend on the image size; it
  trails motion (at rest its 1 Hz cutoff lags a slow head turn by about four frames);
- `none`.

`transfer` takes the whole track; `LiveTransfer` takes its frames one at a time, as a live source gives them, and gives
each target at once: the same causal filter and the same motion (`TrackSmoother`, `FrameTransfer`), so the targets are
`transfer`'s for the driving reference `first`, the only one a live source can know.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Sequence

import cv2
import numpy as np
from OneEuroFilter import OneEuroFilter
from scipy.ndimage import gaussian_filter1d

from bigo_facegen import geometry
from bigo_facegen.annotations import FLAG_ABSENT, FrameAnnotation

MODES = ("relative", "absolute")
REFERENCES = ("first", "best")
SMOOTHINGS = ("none", "one_euro", "gaussian")
# Smoothing at all, as measured 2026-11-29 (the warp, same person, source = the clip's first frame, its own track as
# the driver, the first 60 frames of the 7 test-split clips, dlib judging the output): One-Euro took the output's
# keypoint jitter from 0.0508 to 0.0299 of the inter-ocular distance and the PSNR from 22.89 to 23.21 dB.
# The whole-video default since 2026-12-07 (scratch at 205f84d, the warp of each clip's first face frame onto every 2nd
# target by its own tracked points, relative motion, the dev train split, 2777 targets; PSNR / face PSNR / the targets'
# jitter in inter-ocular distances): one_euro (1, 5) 23.27 / 23.27 / 0.0047, the same run forwards then backwards 23.31
# / 23.31 / 0.0024, none 23.66 / 23.76 / 0.0149, gaussian sigma 0.75, 1, 1.25, 1.5 frames 23.63, 23.60, 23.56, 23.53 dB
# at 0.0072, 0.0056, 0.0045, 0.0038; Savitzky-Golay (7, 2) 23.60 / 0.0065, (9, 3) 23.59 / 0.0052. A Gaussian of one
# frame at 25 fps keeps all but 0.06 dB of the motion that the One-Euro filter's 0.4 dB costs (at rest its 1 Hz cutoff
# trails a slow head turn by about 4 frames) and steadies the points almost as much. Detected points: one_euro 22.62 /
# 22.53, gaussian 1 frame 22.80 / 22.77, none 22.69 / 22.66.
DEFAULT_SMOOTHING = "gaussian"
DEFAULT_SIGMA = 0.04   # seconds
# One-Euro settings (`LIVE`'s): the cutoff (Hz) at rest and how fast it opens with speed (per face side per second),
# as measured 2026-12-07 at c376f8b (`evaluation.reconstruction`,
# the warp, the dev train split, every 2nd of 2802 targets; PSNR / face PSNR / the output's jitter): tracked, none
# 23.73 / 23.81 / 0.0335, (8, 5) 23.68 / 23.75 / 0.0295, (4, 5) 23.61 / 23.65 / 0.0271, (2, 5) 23.48 / 23.50 / 0.0250,
# (1, 5) 23.33 / 23.32 / 0.0233, (1, 20) 23.49 / 23.52 / 0.0267, (2, 20) 23.57 / 23.61 / 0.0275; detected, (1, 5)
# 22.69 / 22.60 / 0.0244, none 22.76 / 22.71 / 0.0378; the true frames shake 0.0370. Less smoothing buys dB (the
# filter trails motion) and costs steadiness along one line; (1, 5) is the one setting tried whose output shakes
# less than detected points smoothed by it.
DEFAULT_MIN_CUTOFF = 1.0
DEFAULT_BETA = 5.0


class MotionError(ValueError):
    """The source face and the driving track do not fit together (no face, another keypoint count, a bad setting)."""


@dataclasses.dataclass(frozen=True)
class MotionSettings:
    """How a driving track becomes the source's targets (see the module doc)."""
    mode: str = "relative"
    reference: str = "first"
    smoothing: str = DEFAULT_SMOOTHING
    min_cutoff: float = DEFAULT_MIN_CUTOFF
    beta: float = DEFAULT_BETA
    sigma: float = DEFAULT_SIGMA

    def __post_init__(self):
        for name, value, allowed in (("mode", self.mode, MODES), ("reference", self.reference, REFERENCES),
                                     ("smoothing", self.smoothing, SMOOTHINGS)):
            if value not in allowed:
                raise MotionError(f"unknown motion {name} {value!r}; choose one of {', '.join(allowed)}")
        if not self.min_cutoff > 0 or not self.beta >= 0:
            raise MotionError(f"One-Euro smoothing needs min_cutoff > 0 and beta >= 0, got {self.min_cutoff} and "
                              f"{self.beta}")
        if not self.sigma > 0:
            raise MotionError(f"Gaussian smoothing needs sigma > 0 seconds, got {self.sigma}")


# A live driver's settings: the causal filter, since the frames to come are not there yet.
LIVE = MotionSettings(smoothing="one_euro")


def transfer(source: FrameAnnotation, source_size: tuple[int, int], driving: Sequence[FrameAnnotation],
             driving_size: tuple[int, int], fps: float, settings: MotionSettings = MotionSettings()
             ) -> list[FrameAnnotation]:
    """One target annotation per driving frame (same index), in the source image's pixels; sizes are (width,
    height) of the source image and of the driving frames, `fps` the driving frame rate (for the smoothing)."""
    _check(source, driving, source_size, driving_size)
    driving = smoothed(driving, fps, settings)
    move = FrameTransfer(source, source_size, driving_size, settings.mode,
                         reference_frame(source, driving, settings.reference))
    return [move(frame) for frame in driving]


class FrameTransfer:
    """The target of one driving frame at a time, from driving frames already smoothed (the motion of `transfer`): a
    frame without a face keeps the last motion. The driving `reference` is given, or (None) is the first face given."""

    def __init__(self, source: FrameAnnotation, source_size: tuple[int, int], driving_size: tuple[int, int],
                 mode: str, reference: FrameAnnotation | None = None):
        self.source, self.source_size, self.driving_size, self.mode = source, source_size, driving_size, mode
        self.reference: FrameAnnotation | None = None
        self._scale = 1.0
        self._last = source
        if reference is not None:
            self._set_reference(reference)

    def __call__(self, frame: FrameAnnotation) -> FrameAnnotation:
        if frame.has_face:
            if self.reference is None:
                self._set_reference(frame)
            self._last = (_relative(self.source, self.reference, frame, self._scale) if self.mode == "relative"
                          else _absolute(frame, self.source_size, self.driving_size))
        return dataclasses.replace(self._last, index=frame.index)

    def _set_reference(self, reference: FrameAnnotation) -> None:
        _check_layout(self.source, reference)
        self.reference = reference
        self._scale = adapt_scale(self.source, reference) if self.mode == "relative" else 1.0


class LiveTransfer:
    """`transfer` of driving frames given one at a time (a camera, frames over a socket), each target given at once:
    the One-Euro filter run one step per frame and the first driving face as the reference (`best` would need the
    frames to come)."""

    def __init__(self, source: FrameAnnotation, source_size: tuple[int, int], driving_size: tuple[int, int],
                 fps: float, settings: MotionSettings = LIVE):
        check_live(settings)
        _check_source(source, source_size, driving_size)
        self._smooth: Callable[[FrameAnnotation], FrameAnnotation] = (
            TrackSmoother(fps, settings.min_cutoff, settings.beta) if settings.smoothing == "one_euro"
            else _unchanged)
        self._move = FrameTransfer(source, source_size, driving_size, settings.mode)

    def __call__(self, frame: FrameAnnotation) -> FrameAnnotation:
        """The target of the next driving frame (frames without a face keep the last motion)."""
        return self._move(self._smooth(frame))


def check_live(settings: MotionSettings) -> None:
    """Raises MotionError unless the settings can drive a live source: the driving reference `first`, no smoothing
    that looks ahead."""
    if settings.reference != "first":
        raise MotionError(f"driving reference {settings.reference!r} chooses among all the driving frames, and a live "
                          f"driver gives them one at a time: use 'first'")
    if settings.smoothing == "gaussian":
        raise MotionError("smoothing 'gaussian' averages each frame with the frames to come, and a live driver gives "
                          "them one at a time: use 'one_euro' or 'none'")


def _unchanged(frame: FrameAnnotation) -> FrameAnnotation:
    return frame


def reference_frame(source: FrameAnnotation, driving: Sequence[FrameAnnotation], choice: str) -> FrameAnnotation:
    """The driving frame whose face counts as "no motion": the first with a face, or (`best`) the one nearest the
    source's expression once position and scale are taken out."""
    faces = [frame for frame in driving if frame.has_face]
    if choice == "first":
        return faces[0]
    target = _normalised_shape(source.points, source.flags > FLAG_ABSENT)
    distances = []
    for frame in faces:
        shared = (frame.flags > FLAG_ABSENT) & (source.flags > FLAG_ABSENT)
        shape = _normalised_shape(frame.points, shared)
        distances.append(float(((shape - target)[shared] ** 2).sum()))
    return faces[int(np.argmin(distances))]


def adapt_scale(source: FrameAnnotation, reference: FrameAnnotation) -> float:
    """sqrt(hull area of the source's points / hull area of the driving reference's), over the points both have."""
    shared = (source.flags > FLAG_ABSENT) & (reference.flags > FLAG_ABSENT)
    source_area, reference_area = _hull_area(source.points[shared]), _hull_area(reference.points[shared])
    if source_area <= 0 or reference_area <= 0:
        raise MotionError(f"the source face or driving frame {reference.index} has its keypoints on a line (no area): "
                          f"their scales cannot be compared")
    return float(np.sqrt(source_area / reference_area))


def smoothed(driving: Sequence[FrameAnnotation], fps: float, settings: MotionSettings) -> list[FrameAnnotation]:
    """The driving track smoothed as `settings.smoothing` says (`fps` the driving frame rate)."""
    if settings.smoothing == "one_euro":
        return smooth(driving, fps, settings.min_cutoff, settings.beta)
    if settings.smoothing == "gaussian":
        return smooth_gaussian(driving, fps, settings.sigma)
    return list(driving)


def smooth(driving: Sequence[FrameAnnotation], fps: float, min_cutoff: float = DEFAULT_MIN_CUTOFF,
           beta: float = DEFAULT_BETA) -> list[FrameAnnotation]:
    """The driving track with every point coordinate and box value One-Euro filtered over the frames with a face
    (timestamps index / fps, so lost frames are a gap in time), in units of the first face's box side."""
    smoother = TrackSmoother(fps, min_cutoff, beta)
    return [smoother(frame) for frame in driving]


def smooth_gaussian(driving: Sequence[FrameAnnotation], fps: float, sigma: float = DEFAULT_SIGMA
                    ) -> list[FrameAnnotation]:
    """The driving track with every point coordinate and box value convolved with a Gaussian of `sigma` seconds over
    each run of consecutive frames with a face (a lost face ends a run; a run's ends are held, not mirrored)."""
    out = list(driving)
    start = 0
    for has_face, run in itertools.groupby(driving, key=lambda frame: frame.has_face):
        run = list(run)
        if has_face:
            values = np.stack([np.concatenate([frame.points.ravel(), frame.bbox]) for frame in run]).astype(np.float64)
            values = gaussian_filter1d(values, sigma * fps, axis=0, mode="nearest")
            for offset, (frame, row) in enumerate(zip(run, values)):
                out[start + offset] = dataclasses.replace(
                    frame, points=row[:-4].reshape(frame.points.shape).astype(np.float32),
                    bbox=row[-4:].astype(np.float32))
        start += len(run)
    return out


class TrackSmoother:
    """The One-Euro filter of `smooth`, one driving frame at a time: frames without a face pass as they are."""

    def __init__(self, fps: float, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA):
        self.fps, self.min_cutoff, self.beta = fps, min_cutoff, beta
        self._unit = 1.0
        self._filters: list[OneEuroFilter] | None = None

    def __call__(self, frame: FrameAnnotation) -> FrameAnnotation:
        if not frame.has_face:
            return frame
        if self._filters is None:
            self._unit = geometry.square_box(frame.bbox)[2]
            self._filters = [OneEuroFilter(self.fps, self.min_cutoff, self.beta)
                             for _ in range(frame.points.size + len(frame.bbox))]
        values = np.concatenate([frame.points.ravel(), frame.bbox]).astype(np.float64) / self._unit
        values = np.array([f(v, frame.index / self.fps) for f, v in zip(self._filters, values)]) * self._unit
        points = values[:-4].reshape(frame.points.shape).astype(np.float32)
        return dataclasses.replace(frame, points=points, bbox=values[-4:].astype(np.float32))


def _relative(source: FrameAnnotation, reference: FrameAnnotation, frame: FrameAnnotation, scale: float
              ) -> FrameAnnotation:
    flags = np.where((reference.flags > FLAG_ABSENT) & (source.flags > FLAG_ABSENT), frame.flags, FLAG_ABSENT)
    moved = source.points.astype(np.float64) + scale * (frame.points.astype(np.float64) - reference.points)
    points = np.where((flags > FLAG_ABSENT)[:, None], moved, source.points)
    source_x, source_y, source_side = geometry.square_box(source.bbox)
    reference_x, reference_y, reference_side = geometry.square_box(reference.bbox)
    x, y, side = geometry.square_box(frame.bbox)
    centre = np.array([source_x + scale * (x - reference_x), source_y + scale * (y - reference_y)])
    side = source_side * side / reference_side
    bbox = np.array([centre[0] - side / 2, centre[1] - side / 2, side, side], np.float32)
    return FrameAnnotation(frame.index, bbox=bbox, points=points.astype(np.float32), flags=flags.astype(np.int32))


def _absolute(frame: FrameAnnotation, source_size: tuple[int, int], driving_size: tuple[int, int]
              ) -> FrameAnnotation:
    scale = np.array(source_size, np.float64) / np.array(driving_size, np.float64)
    points = frame.points.astype(np.float64) * scale
    x, y, w, h = np.asarray(frame.bbox, np.float64)
    bbox = np.array([x * scale[0], y * scale[1], w * scale[0], h * scale[1]], np.float32)
    return FrameAnnotation(frame.index, bbox=bbox, points=points.astype(np.float32), flags=frame.flags.copy())


def _normalised_shape(points: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Points centred on the mean of those in `use` and divided by the square root of their hull area."""
    points = np.asarray(points, np.float64)
    centred = points - points[use].mean(axis=0)
    return centred / np.sqrt(max(_hull_area(points[use]), 1e-12))


def _hull_area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(np.asarray(points, np.float32))))


def _check(source: FrameAnnotation, driving: Sequence[FrameAnnotation], source_size, driving_size) -> None:
    _check_source(source, source_size, driving_size)
    faces = [frame for frame in driving if frame.has_face]
    if not faces:
        raise MotionError(f"the driving track has no frame with a face (of {len(driving)} frames)")
    _check_layout(source, faces[0])


def _check_layout(source: FrameAnnotation, driving: FrameAnnotation) -> None:
    if len(driving.points) != len(source.points):
        raise MotionError(f"the driving keypoints have {len(driving.points)} points per face, the source's "
                          f"{len(source.points)}: both must be of one layout")


def _check_source(source: FrameAnnotation, source_size, driving_size) -> None:
    if not source.has_face:
        raise MotionError("the source has no face to drive")
    for name, (width, height) in (("source", source_size), ("driving", driving_size)):
        if width <= 0 or height <= 0:
            raise MotionError(f"the {name} size must be positive, got {width}x{height}")

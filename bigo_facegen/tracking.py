"""Keypoint tracking over a driving video: the detector's points carried by optical flow from a key frame and held to
the detector, so that they shake less than points detected anew on every frame and do not drift as chained flow does.

    track(video.read_frames("driver.mp4"))     # -> list[FrameAnnotation], one per frame, as dlib on every frame gives

The video is cut into spans, each followed from its first frame, the key:

1. Flow: OpenCV's DIS flow (`flow_preset`, default medium; `LIVE`, a live driver's, fast) from the key to each frame
   of its span and back, on gray frames cut to `flow_context` face sides around the key's face and resized so that the
   face is about `TrackSettings.flow_face_px` wide (never enlarged). A point moves by the flow at it; the round trip's
   miss (the forward-backward check, Sundaram et al. 2010) and how different its neighbourhood looks from the key's
   say whether the flow still holds it. Flow from the key, rather than from frame to frame, adds no error over time: a
   point in frame t is where the key's point went, not the sum of t small moves.
2. The face box moves with the points (the detector box, shifted and scaled as they are). The slow part of detection,
   dlib's HOG face search, runs on a span's first frame, every `search_every` frames, and whenever the flow holds too
   few points (`min_kept`); if it then finds no face, the face is lost. In between, dlib's shape predictor fits the
   points in the moved box (about 1 ms).
3. Fusion: the key's points are one unknown per span, and every frame's detection, moved back into the key by the
   flow, measures them once more: the estimate is their average weighed by their variances (`detector_sigma` squared,
   plus `flow_sigma` squared and the round trip's miss squared for the flow that moved them back), the smoother of a
   Kalman filter for a still state. Every frame of the span is the estimate moved by its flow, so the points keep the
   detector's mean position without its frame-to-frame jitter, and the frames of a span agree with one another exactly
   (a warp from one to another moves the same skin). A point the flow lost, or whose detection parts from the flowed
   estimate by more than `reanchor` (the flow slid off), takes the frame's detection; a lost point is flagged
   `FLAG_OCCLUDED`, the others `FLAG_VISIBLE`. The points the detector names `unflowed` (dlib's inner lips) take the
   frame's detection always: no flow from a key frame can carry them where new content appears between them.
4. When fewer than `rekey` of the points follow the key, the frame starts a new span; its key points begin from the old
   span's estimate moved there (where held) with the variance it had, so each span hands on what the detections taught
   the last, and the track stays on the detector's mean over minutes.

`Tracker.track` gives a span's frames out when it ends (the whole track is returned at once), each fused with every
detection of its span, later ones included. `Tracker.follow` is the causal form, for a live source: each frame is given
out at once, the key's estimate so far (the detections up to this frame) moved by its flow: the filter of the same
fusion rather than its smoother. A frame counts as faceless
(`FrameAnnotation(index=i)`, as `annotate.annotate_frame` gives where dlib finds nothing) when no face is tracked into
it and the search finds none; the track starts afresh at the next face found. The bbox follows `annotate`'s convention
(`dlib_face.face_box`: `BBOX_SCALE` x the detector box side, centred on the points' mean). Lengths in the settings are
fractions of the detector box side, so that they hold at any image size.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Protocol

import cv2
import numpy as np

from bigo_facegen import dlib_face
from bigo_facegen.annotations import FLAG_OCCLUDED, FLAG_VISIBLE, FrameAnnotation
from bigo_facegen.keypoints import IBUG68

# OpenCV's DIS presets: `medium` follows a point to about half the error of `fast` at four times its cost (at one size).
FLOW_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class Detector(Protocol):
    """Where the points come from: a face search of the whole frame, and the points fitted in a known face box;
    `unflowed` names the points the flow cannot carry, which every frame takes from its fit."""

    unflowed: tuple[int, ...]

    def find(self, rgb: np.ndarray) -> np.ndarray | None:
        """The face box `[x, y, w, h]` of the whole RGB frame searched, or None."""

    def fit(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The (N, 2) points of the face in `box` (shaped like a box `find` gives)."""


class DlibDetector:
    """dlib, as `annotate` runs it: the HOG detector to search, the 68-point shape predictor to fit."""

    # The inner lips: teeth and the mouth's inside appear between them as it opens, and the flow from a key frame with
    # the mouth closed carries them only part of the way. Measured 2026-12-07 (lp_d12's first 60 frames, the opening
    # in eye-corner distances against dlib's on every frame): flowed, correlation 0.71 and 73% of its range; taken
    # from the fit, 0.99 and 102%. On the dev train split (`evaluation.reconstruction`, the shipped model, every 4th
    # of 1409 targets, 176 mouth-open): mouth-region PSNR 22.52 -> 23.13 dB, teeth where the truth shows them 0.32 ->
    # 0.73 (the painters now see the mouth open), where it shows none 0.00 -> 0.16; full frame 23.91 -> 23.94 dB,
    # jitter 0.0526 -> 0.0529.
    unflowed = IBUG68.mouth_inner

    def find(self, rgb: np.ndarray) -> np.ndarray | None:
        return dlib_face.detect(rgb)

    def fit(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        return dlib_face.landmarks(rgb, box)


# The defaults, as measured (scratch, 2026-12-07, the warp of each clip's first frame onto every 4th frame by the
# tracked points, 6 clips of the dev train split, PSNR full frame / face against dlib on every frame's 20.44 / 19.90):
# flow from the key 20.95 / 20.52, chained frame to frame (pyramidal Lucas-Kanade) 20.60 / 20.12; rekey 0.5 against
# 0.7 and 0.8: 20.77 / 20.32 and 20.80 / 20.35; flow_context 3 as good as the whole frame (20.95 / 20.51), 2 a little
# worse (20.91 / 20.47). The flow (every 2nd of the train split's 2777 targets, Gaussian-smoothed, face PSNR / face
# SSIM; docs/experiments.md, "Tracking: a finer flow"): medium at 128 px 23.71 / 0.774, at 96, 192 and 256 px 23.70 /
# 0.772, 23.67 / 0.773 and 23.65 / 0.773; fast at 128, 192 and 256 px 23.57 / 0.763, 23.63 / 0.766, 23.64 / 0.768.
@dataclasses.dataclass(frozen=True)
class TrackSettings:
    """How the track is followed and held to the detector (lengths in detector box sides; see the module doc)."""
    flow_preset: str = "medium"
    flow_face_px: int = 128
    flow_context: float = 3.0
    flow_sigma: float = 0.004
    detector_sigma: float = 0.03
    lost: float = 0.03
    mismatch: float = 60.0      # gray levels, the mean absolute difference over 7 x 7 flow pixels
    reanchor: float = 0.1
    rekey: float = 0.5
    min_kept: float = 0.5
    search_every: int = 50

    def __post_init__(self):
        if self.flow_preset not in FLOW_PRESETS:
            raise ValueError(f"unknown flow preset {self.flow_preset!r}; choose one of {', '.join(FLOW_PRESETS)}")
        if self.search_every < 1 or self.flow_face_px < 32:
            raise ValueError(f"tracking needs search_every >= 1 and flow_face_px >= 32, got {self.search_every} and "
                             f"{self.flow_face_px}")
        for name in ("min_kept", "rekey"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"tracking setting {name} is a share of the points, in [0, 1], got "
                                 f"{getattr(self, name)}")
        if self.flow_context < 1:
            raise ValueError(f"flow_context is the flow's view in face box sides, at least 1, got {self.flow_context}")
        for name in ("flow_sigma", "detector_sigma", "lost", "mismatch", "reanchor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"tracking setting {name} must be positive, got {getattr(self, name)}")


# A live driver's settings (`Tracker.follow` under `streaming`): every frame must be made within a frame's time, and the
# fast flow at 192 px costs less than half of the default's (the tracker on dev clip dpe_d's 250 frames: 1.0-1.2 s
# against 2.5-2.9 s) for a little less (train split: face PSNR 23.63 / SSIM 0.766 against 23.71 / 0.774).
LIVE = TrackSettings(flow_preset="fast", flow_face_px=192)


@dataclasses.dataclass(frozen=True)
class _View:
    """The part of the frames that a span's flow sees: the square of `flow_context` detector box sides around the
    key's face (within the frame), resized so that the box is `flow_face_px` wide (never enlarged)."""
    left: int
    top: int
    right: int
    bottom: int
    scale: float

    @classmethod
    def around(cls, box: np.ndarray, frame_shape: tuple[int, ...], settings: TrackSettings) -> _View:
        side = _side(box)
        centre = box[:2] + box[2:] / 2
        left, top = np.maximum(np.floor(centre - settings.flow_context * side / 2), 0).astype(int)
        right = int(min(np.ceil(centre[0] + settings.flow_context * side / 2), frame_shape[1]))
        bottom = int(min(np.ceil(centre[1] + settings.flow_context * side / 2), frame_shape[0]))
        return cls(int(left), int(top), max(right, left + 1), max(bottom, top + 1),
                   min(1.0, settings.flow_face_px / side))

    def gray(self, rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(rgb[self.top:self.bottom, self.left:self.right], cv2.COLOR_RGB2GRAY)
        if self.scale == 1.0:
            return gray
        return cv2.resize(gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)

    def to_flow(self, points: np.ndarray) -> np.ndarray:
        """Frame pixels to the view's: pixel centres sit at integers at both scales."""
        return (points - [self.left, self.top] + 0.5) * self.scale - 0.5


@dataclasses.dataclass
class _Frame:
    """A frame of a span: its flow from the key (N, 2), its detection (N, 2), which points follow the key (the others
    take the detection), their flags, and the detector box."""
    index: int
    step: np.ndarray
    detected: np.ndarray
    follows: np.ndarray
    flags: np.ndarray
    box: np.ndarray


class _Span:
    """Frames followed from one key frame: the part of the frames its flow sees, the key's gray image there, its
    detector box, and the variance-weighted sums that estimate its points."""

    def __init__(self, view: _View, gray: np.ndarray, box: np.ndarray, prior: np.ndarray, prior_variance: np.ndarray):
        self.view, self.gray, self.box = view, gray, box
        held = np.isfinite(prior_variance)
        self.weight = np.where(held, 1.0 / np.where(held, prior_variance, 1.0), 0.0)
        self.sums = np.where(held[:, None], prior, 0.0) * self.weight[:, None]
        self.frames: list[_Frame] = []

    def add(self, frame: _Frame, variance: np.ndarray) -> None:
        """Counts the frame's detection of the points it follows, moved back into the key, at `variance` (N,)."""
        weight = np.where(frame.follows, 1.0 / variance, 0.0)
        self.sums += (frame.detected - frame.step) * weight[:, None]
        self.weight += weight
        self.frames.append(frame)

    def points(self) -> np.ndarray:
        """The key's points as estimated so far (N, 2)."""
        return self.sums / self.weight[:, None]

    def variance(self) -> np.ndarray:
        return 1.0 / self.weight

    def annotations(self) -> list[FrameAnnotation]:
        """Every frame of the span, from the key's points as estimated by all its frames."""
        key = self.points()
        return [_frame_annotation(key, frame) for frame in self.frames]

    def latest(self) -> FrameAnnotation:
        """The span's last frame, from the key's points as estimated so far."""
        return _frame_annotation(self.points(), self.frames[-1])


def _frame_annotation(key: np.ndarray, frame: _Frame) -> FrameAnnotation:
    """The frame's annotation: the `key` points moved by its flow where they follow the key, its detection elsewhere."""
    return _annotation(frame.index, np.where(frame.follows[:, None], key + frame.step, frame.detected), frame.flags,
                       frame.box)


class Tracker:
    """Tracks the face through one video: the whole of it at once (`track`), or its frames one at a time as a live
    source gives them (`follow`); `searches` and `keys` count the frames the slow face search ran on and the spans
    begun."""

    def __init__(self, detector: Detector | None = None, settings: TrackSettings = TrackSettings()):
        self.detector = detector if detector is not None else DlibDetector()
        self.settings = settings
        self.searches = 0
        self.keys = 0
        self._dis = cv2.DISOpticalFlow_create(FLOW_PRESETS[settings.flow_preset])
        self._unflowed = list(self.detector.unflowed)
        self._restart()

    def track(self, frames: Iterable[np.ndarray]) -> list[FrameAnnotation]:
        """One annotation per frame of `frames` (RGB uint8), numbered from 1, each fused over its whole span."""
        self._restart()
        annotations: list[FrameAnnotation] = []
        for rgb in frames:
            annotations.extend(self._advance(rgb))
        if self._span is not None:
            annotations.extend(self._span.annotations())
        return annotations

    def follow(self, rgb: np.ndarray) -> FrameAnnotation:
        """The annotation of the next frame (RGB uint8; the first call is frame 1), given at once: the frames after
        it do not change it."""
        self._advance(rgb)
        return FrameAnnotation(index=self._index) if self._span is None else self._span.latest()

    def _restart(self) -> None:
        self._span: _Span | None = None
        self._index, self._since_search, self._shape = 0, 0, None

    def _advance(self, rgb: np.ndarray) -> list[FrameAnnotation]:
        """Follows the face into the next frame; returns the annotations of the frames this completes: those of a span
        that ended, then this frame's where it has no face."""
        self._index += 1
        index = self._index
        rgb = np.ascontiguousarray(rgb)
        self._shape = check_frame(rgb, index, self._shape)
        span = self._span
        if span is None:
            self._span, self._since_search = self._start(rgb, index), 0
            return [FrameAnnotation(index=index)] if self._span is None else []
        self._since_search += 1
        self._span, searched = self._follow(span, rgb, index, self._since_search >= self.settings.search_every)
        if searched:
            self._since_search = 0
        if self._span is span:
            return []
        return span.annotations() + ([FrameAnnotation(index=index)] if self._span is None else [])

    def _start(self, rgb: np.ndarray, index: int) -> _Span | None:
        box = self._search(rgb)
        if box is None:
            return None
        detected = self.detector.fit(rgb, box).astype(np.float64)
        unknown = np.full(len(detected), np.inf)
        return self._new_span(rgb, index, box, detected, detected, unknown,
                              np.full(len(detected), FLAG_VISIBLE, np.int32))

    def _follow(self, span: _Span, rgb: np.ndarray, index: int, search_due: bool) -> tuple[_Span | None, bool]:
        """Adds the frame to `span`, or to the span it begins; returns that span (None: the face is lost) and whether
        the slow search ran (when due, when the flow holds too few points, or before a span is keyed on a box that only
        the flow moved)."""
        settings = self.settings
        step, miss, held = self._flow(span, span.view.gray(rgb))
        key = span.points()
        moved = key + step
        searched = search_due or held.mean() < settings.min_kept
        found = self._search(rgb) if searched else None
        if searched and found is None and held.mean() < settings.min_kept:
            return None, True
        # A search that misses a face the flow still holds (a turn HOG does not know) leaves the track be.
        box = _moved_box(span.box, key, moved) if found is None else found
        detected, follows = self._fit(rgb, box, moved, held)
        if follows.mean() < settings.rekey and not searched:
            # The flow and the fit in the box it moved part, and either may be wrong: a fast turn can carry the flow
            # off the face, the box and the fit with it, and a span keyed there followed the background for the 36
            # frames to the next search (vasahack_M2Ohb0FAaJU_1, from frame 14). The new span's key is the face the
            # search finds, where it finds one.
            searched, found = True, self._search(rgb)
            if found is not None:
                box = found
                detected, follows = self._fit(rgb, box, moved, held)
        side = _side(box)
        rekey = follows.mean() < settings.rekey
        follows[self._unflowed] = False
        flags = np.where(held, FLAG_VISIBLE, FLAG_OCCLUDED).astype(np.int32)
        flags[self._unflowed] = FLAG_VISIBLE
        flow_variance = (settings.flow_sigma * side) ** 2 + miss ** 2
        if rekey:
            prior_variance = np.where(follows, span.variance() + flow_variance, np.inf)
            return self._new_span(rgb, index, box, detected, moved, prior_variance, flags), searched
        if found is not None:
            span.box = _moved_box(found, moved, key)
        span.add(_Frame(index, step, detected, follows, flags, box),
                 (settings.detector_sigma * side) ** 2 + flow_variance)
        return span, searched

    def _fit(self, rgb: np.ndarray, box: np.ndarray, moved: np.ndarray, held: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """The detector's points in `box`, and which points follow the key: held by the flow and fitted within
        `reanchor` of where it moved them (`moved`)."""
        detected = self.detector.fit(rgb, box).astype(np.float64)
        return detected, held & (np.linalg.norm(detected - moved, axis=1) <= self.settings.reanchor * _side(box))

    def _new_span(self, rgb: np.ndarray, index: int, box: np.ndarray, detected: np.ndarray, prior: np.ndarray,
                  prior_variance: np.ndarray, flags: np.ndarray) -> _Span:
        """A span keyed on this frame: its points estimated from `prior` at `prior_variance` (inf: unknown) and the
        frame's detection."""
        self.keys += 1
        view = _View.around(box, rgb.shape, self.settings)
        span = _Span(view, view.gray(rgb), box, prior, prior_variance)
        span.add(_Frame(index, np.zeros_like(detected), detected, np.ones(len(detected), bool), flags, box),
                 np.full(len(detected), (self.settings.detector_sigma * _side(box)) ** 2))
        return span

    def _search(self, rgb: np.ndarray) -> np.ndarray | None:
        self.searches += 1
        box = self.detector.find(rgb)
        return None if box is None else np.asarray(box, np.float64)

    def _flow(self, span: _Span, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The key points' moves into the frame `gray` (seen as the key is) in frame pixels, the round trip's miss
        (frame pixels) and which points the flow holds: those whose round trip lands near where it started and whose
        neighbourhood looks as in the key."""
        forward = self._dis.calc(span.gray, gray, None)
        backward = self._dis.calc(gray, span.gray, None)
        start = span.view.to_flow(span.points())
        step = _sample(forward, start)
        miss = np.linalg.norm(step + _sample(backward, start + step), axis=1) / span.view.scale
        height, width = gray.shape
        grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), -1)
        pulled = cv2.remap(gray, grid + forward, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        difference = cv2.blur(cv2.absdiff(pulled, span.gray).astype(np.float32), (7, 7))
        mismatch = _sample(difference[..., None], start)[:, 0]
        held = (miss <= self.settings.lost * _side(span.box)) & (mismatch <= self.settings.mismatch)
        return step / span.view.scale, miss, held


def track(frames: Iterable[np.ndarray], detector: Detector | None = None, settings: TrackSettings = TrackSettings()
          ) -> list[FrameAnnotation]:
    """One annotation per frame of `frames` (RGB uint8), numbered from 1: the face tracked through them."""
    return Tracker(detector, settings).track(frames)


def check_frame(rgb: np.ndarray, index: int, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """The frame's shape; raises ValueError naming the frame unless it is RGB uint8 of the first frame's size."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"frame {index}: expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if shape is not None and rgb.shape != shape:
        raise ValueError(f"frame {index}: {rgb.shape[1]}x{rgb.shape[0]}, but the frames before it are "
                         f"{shape[1]}x{shape[0]}")
    return rgb.shape


def _side(box: np.ndarray) -> float:
    return float(max(box[2], box[3]))


def _sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`field` (H, W, C) float32 read bilinearly at the (N, 2) points: (N, C) float64."""
    xy = points.astype(np.float32).reshape(-1, 1, 2)
    sampled = cv2.remap(field, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(len(points), -1).astype(np.float64)


def _moved_box(box: np.ndarray, points: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """`box`, found with `points`, shifted and scaled as the points moved to `moved` (centre and spread)."""
    centre, moved_centre = points.mean(axis=0), moved.mean(axis=0)
    scale = np.sqrt(((moved - moved_centre) ** 2).sum(axis=1).mean() / ((points - centre) ** 2).sum(axis=1).mean())
    box_centre = box[:2] + box[2:] / 2
    size = box[2:] * scale
    return np.concatenate([moved_centre + scale * (box_centre - centre) - size / 2, size])


def _annotation(index: int, points: np.ndarray, flags: np.ndarray, box: np.ndarray) -> FrameAnnotation:
    return FrameAnnotation(index=index, bbox=dlib_face.face_box(box, points), points=points.astype(np.float32),
                           flags=flags)

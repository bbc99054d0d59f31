"""Antialiased drawing in frame pixels: the frame, its optional map of `Part` labels and the mask of what covers the
face from the front, drawn into together; colour arithmetic and 2-D curves."""
from __future__ import annotations

import enum

import cv2
import numpy as np

_SHIFT = 4                  # fractional bits of OpenCV drawing coordinates
_ONE = 1 << _SHIFT


class Part(enum.IntEnum):
    """Labels of the optional part map (`render_frame(..., with_labels=True)`): what was drawn last at each pixel."""
    BACKGROUND = 0
    BODY = 1
    HAIR = 2
    EAR = 3
    SKIN = 4
    BROW = 5
    EYE_WHITE = 6
    IRIS = 7
    PUPIL = 8
    EYELID = 9
    NOSE = 10
    LIPS = 11
    MOUTH_INTERIOR = 12
    TEETH = 13
    GLASSES = 14
    HAT = 15
    EARRING = 16
    OCCLUDER = 17
    NECK = 18


class Canvas:
    """The frame being drawn, its optional part map and the mask of what covers the face from the front. A canvas may
    be a window (`origin`) of a larger one: coordinates are always frame pixels."""

    def __init__(self, image: np.ndarray, labels: np.ndarray | None, occlusion: np.ndarray, origin=(0.0, 0.0)):
        self.image, self.labels, self.occlusion = image, labels, occlusion
        self.origin = np.asarray(origin, np.float64)

    def _fixed(self, polygon) -> np.ndarray:
        return np.round((np.asarray(polygon, np.float64) - self.origin) * _ONE).astype(np.int32).reshape(-1, 1, 2)

    def fill(self, polygons, colour, part: Part, occludes: bool = False) -> None:
        fixed = [self._fixed(p) for p in polygons]
        cv2.fillPoly(self.image, fixed, rgb(colour), cv2.LINE_AA, _SHIFT)
        if self.labels is not None:
            cv2.fillPoly(self.labels, fixed, int(part), cv2.LINE_8, _SHIFT)
        if occludes:
            cv2.fillPoly(self.occlusion, fixed, 1, cv2.LINE_8, _SHIFT)

    def line(self, polyline, colour, width: float, part: Part, closed: bool = False, occludes: bool = False) -> None:
        fixed = [self._fixed(polyline)]
        thickness = max(1, int(round(width)))
        cv2.polylines(self.image, fixed, closed, rgb(colour), thickness, cv2.LINE_AA, _SHIFT)
        if self.labels is not None:
            cv2.polylines(self.labels, fixed, closed, int(part), thickness, cv2.LINE_8, _SHIFT)
        if occludes:
            cv2.polylines(self.occlusion, fixed, closed, 1, thickness, cv2.LINE_8, _SHIFT)

    def clipped(self, polygon, alpha: float = 1.0) -> "Clip":
        """A context giving a canvas whose drawing lands only inside `polygon`, blended with `alpha`."""
        return Clip(self, np.asarray(polygon, np.float64), alpha)


class Clip:
    def __init__(self, canvas: Canvas, polygon: np.ndarray, alpha: float):
        self.canvas, self.polygon, self.alpha = canvas, polygon, alpha
        h, w = canvas.image.shape[:2]
        local = polygon - canvas.origin
        self.x0, self.y0 = (max(int(np.floor(v)) - 1, 0) for v in local.min(axis=0))
        self.x1, self.y1 = min(int(np.ceil(local[:, 0].max())) + 2, w), min(int(np.ceil(local[:, 1].max())) + 2, h)
        self.empty = self.x1 <= self.x0 or self.y1 <= self.y0

    def __enter__(self) -> Canvas:
        if self.empty:
            return Canvas(np.zeros((1, 1, 3), np.uint8), None, np.zeros((1, 1), np.uint8), (-1e6, -1e6))
        c, window = self.canvas, (slice(self.y0, self.y1), slice(self.x0, self.x1))
        self.window = window
        self.layer = Canvas(c.image[window].copy(), None if c.labels is None else c.labels[window].copy(),
                             c.occlusion[window].copy(), c.origin + (self.x0, self.y0))
        return self.layer

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.empty or exc_type is not None:
            return
        c, layer = self.canvas, self.layer
        mask = np.zeros(layer.occlusion.shape, np.uint8)
        cv2.fillPoly(mask, [layer._fixed(self.polygon)], 255, cv2.LINE_AA, _SHIFT)
        weight = mask.astype(np.float32)[..., None] * (self.alpha / 255.0)
        region = c.image[self.window]
        region[:] = (region * (1 - weight) + layer.image * weight + 0.5).astype(np.uint8)
        inside = (mask >= 128) & (self.alpha >= 0.5)
        if c.labels is not None:
            c.labels[self.window][inside] = layer.labels[inside]
        c.occlusion[self.window][inside] = layer.occlusion[inside]


def rgb(colour) -> tuple:
    return tuple(min(max(int(round(float(v))), 0), 255) for v in colour)


def shade(colour, factor: float) -> tuple:
    return tuple(np.clip(np.asarray(colour, np.float64) * factor, 0, 255))


def mix(a, b, t: float) -> tuple:
    return tuple(np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t)


def hull(points) -> np.ndarray:
    return cv2.convexHull(np.asarray(points, np.float32).reshape(-1, 2)).reshape(-1, 2).astype(np.float64)


def circle(radius: float, n: int = 16) -> np.ndarray:
    """n points on a circle of `radius` around the origin (n, 2)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], -1) * radius


def spline(points, samples: int = 5) -> np.ndarray:
    """An open Catmull-Rom curve through `points` (n, 2), `samples` points per segment, ends included."""
    # Own: scipy's splines are not Catmull-Rom, and the written data sets depend on these exact curves.
    p = np.asarray(points, np.float64)
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    n = len(p) - 1
    t = (np.arange(samples) / samples)[None, :, None]
    p0, p1, p2, p3 = (ext[i:i + n, None, :] for i in range(4))
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                   + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
    return np.concatenate([curve.reshape(-1, 2), p[-1:]])


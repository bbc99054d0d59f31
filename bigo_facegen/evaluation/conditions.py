"""Where a method fails: each target frame's face compared with its reference's, from the keypoints alone.

The conditions are relative to the video's reference face (a person who talks with the mouth open all along is not
counted as opening it), computed in the layout's own eye and mouth contours, with the outer-eye-corner distance as the
unit:

- `mouth_open`: the inner-mouth polygon's area grew by more than `MOUTH_OPENING` (in squared eye-corner distances):
  teeth and a mouth interior that the reference does not show;
- `blink`: the eyes' mean openness (eye polygon area over squared eye width) fell below `BLINK_RATIO` of the
  reference's: a lid to close where the reference's eye is open;
- `head_turn`: the log ratio of the two eyes' widths moved by more than `HEAD_TURN` (a yaw proxy needing no 3-D
  model: the far eye foreshortens): sides of the head the reference does not show;
- `other`: none of these.

Thresholds are set on the shared real clips (all 39, 6644 targets): about 16% of targets open the mouth this much,
7% blink, 11% turn.
"""
from __future__ import annotations

import numpy as np

from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.keypoints import Layout

CONDITIONS = ("mouth_open", "blink", "head_turn", "other")
MOUTH_OPENING = 0.03
BLINK_RATIO = 0.6
HEAD_TURN = 0.1


def polygon_area(polygon: np.ndarray) -> float:
    """The area of a simple polygon (K, 2) (the shoelace formula)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _width(polygon: np.ndarray) -> float:
    return float(max(np.linalg.norm(a - b) for a in polygon for b in polygon))


def eye_openness(points: np.ndarray, layout: Layout) -> float:
    """The two eyes' mean openness in `points` (N, 2) of `layout`: each eye's polygon area over its squared width."""
    points = np.asarray(points, np.float64)
    eyes = (points[list(layout.left_eye)], points[list(layout.right_eye)])
    return sum(polygon_area(eye) / _width(eye) ** 2 for eye in eyes) / 2


def face_shape(frame: FrameAnnotation, layout: Layout) -> dict[str, float] | None:
    """Mouth opening, eye openness and eye-width log ratio of one face; None where a point they need is absent."""
    needed = [layout.left_eye_outer, layout.right_eye_outer, *layout.left_eye, *layout.right_eye,
              *layout.mouth_inner]
    if not frame.has_face or (frame.flags[needed] == 0).any():
        return None
    points = np.asarray(frame.points, np.float64)
    unit = np.linalg.norm(points[layout.left_eye_outer] - points[layout.right_eye_outer])
    if unit <= 0:
        return None
    left, right = points[list(layout.left_eye)], points[list(layout.right_eye)]
    return {"mouth": polygon_area(points[list(layout.mouth_inner)]) / unit ** 2,
            "eyes": eye_openness(points, layout),
            "eye_width_ratio": float(np.log(_width(left) / _width(right)))}


def classify(reference: FrameAnnotation, target: FrameAnnotation, layout: Layout) -> list[str]:
    """The conditions (`CONDITIONS`) the target meets relative to the reference: `other` alone where it meets none
    or where either face lacks a point the measures need."""
    ref, tgt = face_shape(reference, layout), face_shape(target, layout)
    if ref is None or tgt is None:
        return ["other"]
    found = []
    if tgt["mouth"] - ref["mouth"] > MOUTH_OPENING:
        found.append("mouth_open")
    if ref["eyes"] > 0 and tgt["eyes"] < BLINK_RATIO * ref["eyes"]:
        found.append("blink")
    if abs(tgt["eye_width_ratio"] - ref["eye_width_ratio"]) > HEAD_TURN:
        found.append("head_turn")
    return found or ["other"]

"""Placing the template in a frame: a `Pose` rotates the head by yaw/pitch/roll and places it with weak perspective;
a `PosedFace` is one identity's template, with one expression, in one pose, which every part is drawn from."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from bigo_facegen.synthetic.canvas import spline
from bigo_facegen.synthetic.template import Expression, Identity, Skull, face_points_3d, unit

PUPILS = (104, 105)         # image-left eye, image-right eye
# The eye openings, by their outlines' keypoints: upper lid (corner to corner), lower lid (back to the first corner).
_EYE_OUTLINES = (([52, 53, 72, 54, 55], [55, 56, 73, 57, 52]), ([58, 59, 75, 60, 61], [61, 62, 76, 63, 58]))


@dataclasses.dataclass(frozen=True)
class Pose:
    """Head rotation in degrees (yaw > 0 turns the nose to image-right, pitch > 0 looks up, roll > 0 tilts clockwise
    on screen) and placement: `center` (x, y) of the head origin (between the eyes) and `scale` in pixels per head
    unit (about half the face's width)."""
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    center: tuple = (128.0, 128.0)
    scale: float = 50.0


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    about_y = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    about_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return about_z @ about_x @ about_y


@dataclasses.dataclass(frozen=True)
class View:
    rotation: np.ndarray
    scale: float
    center: np.ndarray

    @classmethod
    def of(cls, pose: Pose) -> "View":
        return cls(rotation(pose.yaw, pose.pitch, pose.roll), float(pose.scale), np.asarray(pose.center, np.float64))

    def xy(self, points) -> np.ndarray:
        """Weak perspective projection of head-coordinate points (..., 3) to frame pixels (..., 2)."""
        return (np.asarray(points) @ self.rotation.T)[..., :2] * self.scale + self.center

    def facing(self, normals) -> np.ndarray:
        """z of the rotated (unit) normals: > 0 toward the camera."""
        return (np.asarray(normals) @ self.rotation.T)[..., 2]


class PosedFace:
    """`identity` with `expression` in `pose`: the 106 points in head coordinates (`pts3`, with `normals`) and in
    frame pixels (`points`), the skull, and `px`, pixels per head unit."""

    def __init__(self, identity: Identity, expression: Expression, pose: Pose):
        self.identity, self.pose = identity, pose
        self.view = View.of(pose)
        self.skull = Skull(identity)
        self.pts3, self.normals = face_points_3d(identity, expression)
        self.points = self.view.xy(self.pts3)
        self.px = float(pose.scale)
        self.lash_width = max(1.0, 0.035 * self.px)

    def facing(self, normal) -> float:
        return float(self.view.facing(unit(normal)))

    def pixels(self, vector3) -> np.ndarray:
        """A head-space displacement as a frame-pixel displacement."""
        return (np.asarray(vector3, np.float64) @ self.view.rotation.T)[:2] * self.px

    def eye_lids(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """The upper and lower lid curves of eye `side` (0 image-left, 1 image-right) in frame pixels."""
        upper, lower = _EYE_OUTLINES[side]
        return spline(self.points[upper]), spline(self.points[lower])

    def eye_opening(self, side: int) -> np.ndarray:
        """The outline of eye `side`'s opening (the white between the lids) in frame pixels."""
        top, bottom = self.eye_lids(side)
        return np.concatenate([top, bottom[1:-1]])

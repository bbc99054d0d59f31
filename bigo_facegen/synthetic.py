"""Procedural face videos in the BIGO release layout, with exact `bigo106` keypoints: the embedded default data.

A face is a 3-D template (the 106 points plus the head, hair, ears and accessories drawn around them) in head
coordinates (x to image-right, y down, z toward the camera; one unit is about half a face's width). An `Identity`
deforms it (proportions, colours, hair), an `Expression` moves it per frame (mouth, smile, blinks, brows, gaze), a
`Pose` rotates it by yaw/pitch/roll and places it with weak perspective. Everything is drawn from the projected points
with antialiased OpenCV polygons in painter's order, so the keypoints are where the features are: the eye, brow and
lip outlines are splines through their keypoints, the pupils are centred on 104/105, the skin's outline runs through
the contour.

Annotation decisions (`render_frame` makes them, `generate` writes them):

- flag 2: visible. Flag 1: hidden, by something drawn in front of the face (hair locks, fringe, hat, sunglasses,
  earrings, a passing object: decided on the very pixels drawn), by the head itself (a point whose surface faces away
  from the camera: the far-side contour on a large yaw), by a closed eyelid (a pupil outside the eye opening), or
  because it lies outside the frame; such points keep their true coordinates, possibly negative or past the border.
  Flag 0 is never written: every point of a face in the frame has a position.
- bbox: a detector-like square. The face's extent (the 106 points and the top of the forehead) clipped to the frame,
  then a square of `BOX_SCALE` times its longer side around the clipped extent's centre, so that, as in the real
  release's boxes, forehead, chin and some hair are inside; it may reach past the frame.
- A frame whose face extent lies wholly outside the frame has `"bbox": []` and `"keypoint": []`.

Tiers follow the challenge: easy = small pose change and few accessories, medium = moderate, hard = large pose change
(yaw up to about 60 degrees), many accessories (glasses or sunglasses, hats, earrings), passing occluders and faces
that leave the frame. Several videos share an identity (recorded as `"identity"`), in different tiers.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import Path

import cv2
import numpy as np

from bigo_facegen import annotations, video
from bigo_facegen.keypoints import BIGO106

NUM_POINTS = BIGO106.num_points
TIERS = ("easy", "medium", "hard")
TIER_ID_BASE = {"easy": 10000, "medium": 11000, "hard": 12000}
BOX_SCALE = 1.8
FPS = 25.0

HAIR_STYLES = ("bald", "short", "fringe", "long", "bob", "afro")
HAT_STYLES = ("cap", "beanie", "sunhat")

# Per tier: amplitude of pose change (yaw, pitch, roll in degrees) around a base pose drawn within +-base.
_POSE_AMPLITUDE = {"easy": (7.0, 4.0, 4.0), "medium": (22.0, 10.0, 10.0), "hard": (42.0, 18.0, 18.0)}
_POSE_BASE = {"easy": (6.0, 4.0, 3.0), "medium": (12.0, 6.0, 6.0), "hard": (18.0, 8.0, 8.0)}
# Per tier: number of accessories (inclusive range), chance of a passing occluder.
_ACCESSORY_COUNT = {"easy": (0, 1), "medium": (1, 2), "hard": (2, 3)}
_OCCLUDER_CHANCE = {"easy": 0.0, "medium": 0.35, "hard": 0.6}

_SHIFT = 4                  # fractional bits of OpenCV drawing coordinates
_ONE = 1 << _SHIFT
_HIDDEN_NORMAL_Z = -0.15    # a point whose rotated normal points further away than this is self-occluded
_CONTOUR_TOP_Y = -0.15      # height of the contour's ends (the ear tops) in head units

_SKIN_TONES = np.array([(255, 226, 204), (246, 206, 176), (234, 186, 150), (222, 168, 124), (198, 140, 98),
                        (170, 112, 74), (130, 84, 54), (96, 62, 42)], np.float64)
_HAIR_COLOURS = np.array([(20, 16, 14), (45, 30, 20), (85, 55, 32), (128, 82, 44), (165, 96, 48), (212, 170, 100),
                          (232, 210, 160), (180, 180, 176), (60, 60, 66), (40, 70, 150), (150, 50, 110)], np.float64)
_IRIS_COLOURS = np.array([(70, 42, 24), (110, 72, 36), (96, 110, 50), (60, 110, 80), (70, 120, 170),
                          (110, 140, 170), (40, 30, 28)], np.float64)
_PUPIL = (12, 10, 10)
_EYE_WHITE = (246, 244, 240)
_MOUTH_INTERIOR = (92, 24, 32)
_TEETH = (248, 246, 236)
_TONGUE = (196, 84, 92)


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


@dataclasses.dataclass(frozen=True)
class Identity:
    """What makes one synthetic person: fixed proportions (head units), colours (RGB) and hair."""
    face_width: float = 1.0
    face_length: float = 1.25       # from the contour's ends down to the chin
    jaw: float = 2.0                # superellipse exponent of the jaw: < 2 pointed, > 2 square
    cranium: float = 1.2            # vertical radius of the skull
    eye_size: float = 1.0
    eye_spacing: float = 0.42       # x of the eye centres
    eye_y: float = -0.24
    eye_tilt: float = 0.02          # outer corners raised by this much
    eye_openness: float = 1.0
    brow_gap: float = 0.36          # brow above the eye centre
    brow_thickness: float = 0.08
    brow_arch: float = 0.07
    nose_length: float = 0.56       # y of the nose base
    nose_width: float = 0.22
    mouth_y: float = 0.72
    mouth_width: float = 0.36
    upper_lip: float = 0.07
    lower_lip: float = 0.09
    ear_size: float = 1.0
    skin: tuple = (234, 186, 150)
    hair: tuple = (45, 30, 20)
    iris: tuple = (70, 42, 24)
    lips: tuple = (196, 110, 104)
    hair_style: str = "short"
    hairline: float = 0.95          # forehead hairline height above the contour's ends
    hair_volume: float = 1.08
    fringe: float = 0.0             # how far the fringe falls (0 = none)
    beard: bool = False
    blush: float = 0.0


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


@dataclasses.dataclass(frozen=True)
class Expression:
    """Per-frame face movement. `mouth_open`, `smile`, `brow_raise` in about [0, 1] (smile and brow_raise may be
    negative: a frown); blinks in [0, 1] (1 = closed); gaze in [-1, 1] per axis."""
    mouth_open: float = 0.0
    smile: float = 0.0
    blink_left: float = 0.0
    blink_right: float = 0.0
    brow_raise: float = 0.0
    gaze: tuple = (0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Accessories:
    glasses: str | None = None      # None | "clear" | "sun"
    glasses_colour: tuple = (30, 30, 30)
    hat: str | None = None          # None | one of HAT_STYLES
    hat_colour: tuple = (180, 40, 40)
    hat_line: float = -0.72         # where the hat's front edge sits (head y)
    earrings: str | None = None     # None | "stud" | "hoop"
    earring_colour: tuple = (230, 200, 80)

    @property
    def count(self) -> int:
        return sum(item is not None for item in (self.glasses, self.hat, self.earrings))


@dataclasses.dataclass(frozen=True)
class Occluder:
    """An object passing in front of the face: `kind` "ball" | "card" | "hand", centre and radius in pixels."""
    kind: str
    center: tuple
    radius: float
    colour: tuple
    angle: float = 0.0


@dataclasses.dataclass
class Scene:
    """The per-video look around the face: background (H, W, 3) RGB uint8, clothes, light and colour grading."""
    background: np.ndarray
    clothes: tuple = (60, 90, 140)
    light: float = 0.6              # x of the light direction: > 0 from image-right
    grade: np.ndarray = dataclasses.field(default_factory=lambda: np.array([[1, 0, 0, 0], [0, 1, 0, 0],
                                                                            [0, 0, 1, 0]], np.float64))


@dataclasses.dataclass
class RenderedFrame:
    """`image` (H, W, 3) RGB uint8; `points` (106, 2) float32 in frame pixels; `flags` (106,) int32 (1 or 2);
    `bbox` (4,) float32 x, y, w, h, or None when the face is wholly outside the frame; `labels` (H, W) uint8 `Part`
    map when asked for."""
    image: np.ndarray
    points: np.ndarray
    flags: np.ndarray
    bbox: np.ndarray | None
    labels: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------------------- geometry

def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    about_y = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    about_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return about_z @ about_x @ about_y


@dataclasses.dataclass(frozen=True)
class _View:
    rotation: np.ndarray
    scale: float
    center: np.ndarray

    @classmethod
    def of(cls, pose: Pose) -> "_View":
        return cls(_rotation(pose.yaw, pose.pitch, pose.roll), float(pose.scale), np.asarray(pose.center, np.float64))

    def xy(self, points) -> np.ndarray:
        """Weak perspective projection of head-coordinate points (..., 3) to frame pixels (..., 2)."""
        return (np.asarray(points) @ self.rotation.T)[..., :2] * self.scale + self.center

    def facing(self, normals) -> np.ndarray:
        """z of the rotated (unit) normals: > 0 toward the camera."""
        return (np.asarray(normals) @ self.rotation.T)[..., 2]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _ring(center, u, v, n: int = 24) -> np.ndarray:
    """n 3-D points on the ellipse center + cos(t) u + sin(t) v."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return np.asarray(center) + np.cos(t) * np.asarray(u) + np.sin(t) * np.asarray(v)


def _spline(points, samples: int = 5) -> np.ndarray:
    """An open Catmull-Rom curve through `points` (n, 2), `samples` points per segment, ends included."""
    p = np.asarray(points, np.float64)
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    n = len(p) - 1
    t = (np.arange(samples) / samples)[None, :, None]
    p0, p1, p2, p3 = (ext[i:i + n, None, :] for i in range(4))
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                   + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
    return np.concatenate([curve.reshape(-1, 2), p[-1:]])


class _Skull:
    """The cranium as an ellipsoid; points on it are addressed by azimuth (0 = front, > 0 toward image-right) and
    height y."""

    def __init__(self, identity: Identity):
        self.center = np.array([0.0, -0.25, -0.35])
        self.radii = np.array([identity.face_width, identity.cranium, 0.95])

    def at(self, azimuth, y, inflate: float = 1.0) -> np.ndarray:
        azimuth, y = np.broadcast_arrays(np.asarray(azimuth, np.float64), np.asarray(y, np.float64))
        rho = np.sqrt(np.clip(1 - ((y - self.center[1]) / self.radii[1]) ** 2, 0, None))
        local = np.stack([self.radii[0] * rho * np.sin(azimuth), y - self.center[1],
                          self.radii[2] * rho * np.cos(azimuth)], -1)
        return self.center + local * inflate

    def grid(self, y_max: float, inflate: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Surface samples above `y_max`: points (n, 3), their azimuths and heights."""
        azimuths = np.linspace(-np.pi, np.pi, 28, endpoint=False)
        heights = np.linspace(self.center[1] - self.radii[1] * 0.999, y_max, 9)
        a, y = np.meshgrid(azimuths, heights)
        return self.at(a.ravel(), y.ravel(), inflate), a.ravel(), y.ravel()


def _hair_line(identity: Identity, azimuth) -> np.ndarray:
    """Height of the hair's lower edge around the head: the forehead hairline in front, lower at the sides and back."""
    front = _CONTOUR_TOP_Y - identity.hairline
    side = -0.38 if identity.hair_style in ("short", "afro") else 0.05
    back = 0.3
    c = np.cos(np.asarray(azimuth))
    return np.where(c >= 0, side + (front - side) * np.abs(c) ** 0.7, side + (back - side) * (-c))


def face_points_3d(identity: Identity, expression: Expression = Expression()) -> tuple[np.ndarray, np.ndarray]:
    """The 106 `bigo106` points (106, 3) in head coordinates and their outward unit normals (106, 3)."""
    pts = np.zeros((NUM_POINTS, 3))
    normals = np.zeros((NUM_POINTS, 3))
    jaw_drop = 0.3 * float(np.clip(expression.mouth_open, 0, 1))
    _place_contour(identity, jaw_drop, pts, normals)
    _place_brows(identity, expression, pts, normals)
    _place_nose(identity, pts, normals)
    _place_eyes(identity, expression, pts, normals)
    _place_mouth(identity, jaw_drop, float(expression.smile), pts, normals)
    return pts, normals


def _place_contour(identity: Identity, jaw_drop: float, pts: np.ndarray, normals: np.ndarray) -> None:
    # 0-32: a superellipse from the image-left ear top through the chin (16) to the image-right ear top; the jaw
    # drops with the mouth, the chin most.
    a = (np.arange(33) - 16) / 16 * (np.pi / 2)
    s, c = np.sin(a), np.abs(np.cos(a))
    exponent = 2 / identity.jaw
    x = identity.face_width * np.sign(s) * np.abs(s) ** exponent
    y = _CONTOUR_TOP_Y + identity.face_length * c ** exponent + jaw_drop * c ** 3
    pts[:33] = np.stack([x, y, 0.42 * c - 0.32 * np.abs(s)], -1)
    normals[:33] = _unit(np.stack([s, 0.7 * c, np.full_like(s, 0.55)], -1))


def _place_brows(identity: Identity, e: Expression, pts: np.ndarray, normals: np.ndarray) -> None:
    brow_y = identity.eye_y - identity.brow_gap - 0.1 * max(e.brow_raise, 0)
    frown = 0.07 * max(-e.brow_raise, 0)

    def brow(sign: int, u: np.ndarray, lower: bool) -> np.ndarray:
        # u: 0 at the outer end, 1 at the inner end; the arch peaks two thirds out; a frown pulls the inner ends down.
        y = brow_y - identity.brow_arch * (0.3 + 0.7 * np.sin(np.pi * (1 - u) / 1.3)) + frown * u ** 2
        if lower:
            y = y + identity.brow_thickness * (0.45 + 0.55 * u)
        return np.stack([sign * (0.86 - 0.66 * u) * identity.face_width, y, 0.46 - 0.3 * (1 - u) ** 1.5], -1)

    up, down = np.array([0, 0.25, 0.5, 0.75, 1]), np.array([1, 0.75, 0.5, 0.25])
    pts[33:38] = brow(-1, up, False)            # image-left brow, left->right: outer end to inner end
    pts[64:68] = brow(-1, down, True)           # its lower edge right->left: inner to outer
    pts[38:43] = brow(1, up[::-1], False)       # image-right brow, left->right: inner end to outer end
    pts[68:72] = brow(1, down[::-1], True)      # its lower edge right->left: outer to inner
    ids = np.r_[33:43, 64:72]
    normals[ids] = _unit(np.c_[pts[ids, 0] * 0.6, np.full(len(ids), -0.2), np.ones(len(ids))])


def _place_nose(identity: Identity, pts: np.ndarray, normals: np.ndarray) -> None:
    # Bridge 43-46 (46 = tip), base 47-51 (49 under the tip), wings 78/80/82 and 79/81/83, top to bottom.
    base_y, nw = identity.nose_length, identity.nose_width
    pts[43:47] = np.stack([np.zeros(4), np.linspace(identity.eye_y, base_y - 0.1, 4), np.linspace(0.45, 0.85, 4)], -1)
    pts[47:52] = np.stack([np.linspace(-nw, nw, 5), base_y + np.array([-0.03, 0.0, 0.02, 0.0, -0.03]),
                           np.array([0.5, 0.62, 0.68, 0.62, 0.5])], -1)
    for sign, wing in ((-1, [78, 80, 82]), (1, [79, 81, 83])):
        pts[wing] = np.stack([sign * nw * np.array([0.55, 0.95, 1.08]), base_y - np.array([0.27, 0.17, 0.08]),
                              np.array([0.62, 0.54, 0.48])], -1)
    ids = np.r_[43:52, 78:84]
    normals[ids] = _unit(np.c_[pts[ids, 0] * 2.5, np.full(len(ids), 0.2), np.ones(len(ids))])


def _place_eyes(identity: Identity, e: Expression, pts: np.ndarray, normals: np.ndarray) -> None:
    half_width = 0.2 * identity.eye_size
    up = 0.095 * identity.eye_size * identity.eye_openness * (1 + 0.25 * max(e.brow_raise, 0))
    low = 0.065 * identity.eye_size
    t = np.array([-1, -0.5, 0, 0.5, 1])
    arch = (1 - t ** 2) ** 0.7
    middle_y = identity.eye_y + (low - up) * 0.25
    gaze_x, gaze_y = np.clip(e.gaze, -1, 1)
    eyes = ((-1, e.blink_left, [52, 53, 72, 54, 55], [57, 73, 56], 74, 104),
            (1, e.blink_right, [58, 59, 75, 60, 61], [63, 76, 62], 77, 105))
    for sign, blink, upper, lower, centre, pupil in eyes:
        cx = sign * identity.eye_spacing
        outer = t * sign                                        # +1 at the outer corner
        tilt = -identity.eye_tilt * outer * 0.5
        lower_y = identity.eye_y + low * arch + tilt
        open_y = identity.eye_y - up * arch * (1 + 0.12 * outer) + tilt
        closed_y = lower_y - 0.12 * low * arch
        upper_y = open_y + float(np.clip(blink, 0, 1)) * (closed_y - open_y)
        xs = cx + t * half_width
        zs = 0.3 - 0.05 * (outer + 1)
        pts[upper] = np.stack([xs, upper_y, zs], -1)
        pts[lower] = np.stack([xs, lower_y, zs], -1)[1:4]      # listed left->right, stored right->left
        pts[centre] = (cx, middle_y, 0.32)
        pts[pupil] = (cx + gaze_x * half_width * 0.42, middle_y + gaze_y * up * 0.35, 0.34)
        ids = upper + lower + [centre, pupil]
        normals[ids] = _unit(np.c_[pts[ids, 0] * 0.5, np.zeros(len(ids)), np.ones(len(ids))])


def _place_mouth(identity: Identity, jaw_drop: float, smile: float, pts: np.ndarray, normals: np.ndarray) -> None:
    mw = identity.mouth_width * (1 + 0.12 * max(smile, 0) - 0.5 * jaw_drop)
    my = identity.mouth_y
    corner_y = my - 0.07 * smile + 0.15 * jaw_drop
    gap = jaw_drop + 0.035 * max(smile - 0.4, 0)
    lift = corner_y - my

    def z_of(x):
        return 0.5 - 0.25 * (np.asarray(x) / mw) ** 2

    def bend(x, weight):
        # How far the corners' lift or drop carries toward the middle of a lip.
        return weight * lift * (np.abs(x) / mw) ** 2

    # Outer lip 84-95: corner, upper lip left->right (cupid's bow), corner, lower lip right->left.
    ux = np.array([-0.62, -0.28, 0.0, 0.28, 0.62]) * mw
    upper_y = my - identity.upper_lip * np.array([0.55, 1.0, 0.78, 1.0, 0.55]) + bend(ux, 0.4)
    lx = ux[::-1]
    droop = 0.03 * smile * (1 - (lx / mw) ** 2)
    lower_y = my + gap + identity.lower_lip * np.array([0.6, 0.92, 1.0, 0.92, 0.6]) + droop + bend(lx, 0.5)
    # Inner lip 96-103: corners just inside the outer ones, upper left->right, lower right->left.
    ix = np.array([-0.45, 0.0, 0.45]) * mw
    inner_upper_y = my - 0.01 - 0.05 * jaw_drop + bend(ix, 0.5)
    inner_lower_y = my + 0.96 * gap + 0.7 * droop[1:4] + bend(ix[::-1], 0.5)
    pts[84] = (-mw, corner_y, z_of(mw))
    pts[90] = (mw, corner_y, z_of(mw))
    pts[85:90] = np.stack([ux, upper_y, z_of(ux) + 0.04], -1)
    pts[91:96] = np.stack([lx, lower_y, z_of(lx) + 0.03], -1)
    pts[96] = (-0.86 * mw, corner_y, z_of(0.86 * mw))
    pts[100] = (0.86 * mw, corner_y, z_of(0.86 * mw))
    pts[97:100] = np.stack([ix, inner_upper_y, z_of(ix)], -1)
    pts[101:104] = np.stack([ix[::-1], inner_lower_y, z_of(ix)], -1)
    normals[84:104] = _unit(np.c_[pts[84:104, 0] * 1.2, np.full(20, 0.1), np.ones(20)])


# ---------------------------------------------------------------------------------------------------------- drawing

class _Canvas:
    """The frame being drawn, its optional part map and the mask of what covers the face from the front. A canvas may
    be a window (`origin`) of a larger one: coordinates are always frame pixels."""

    def __init__(self, image: np.ndarray, labels: np.ndarray | None, occlusion: np.ndarray, origin=(0.0, 0.0)):
        self.image, self.labels, self.occlusion = image, labels, occlusion
        self.origin = np.asarray(origin, np.float64)

    def _fixed(self, polygon) -> np.ndarray:
        return np.round((np.asarray(polygon, np.float64) - self.origin) * _ONE).astype(np.int32).reshape(-1, 1, 2)

    def fill(self, polygons, colour, part: Part, occludes: bool = False) -> None:
        fixed = [self._fixed(p) for p in polygons]
        cv2.fillPoly(self.image, fixed, _rgb(colour), cv2.LINE_AA, _SHIFT)
        if self.labels is not None:
            cv2.fillPoly(self.labels, fixed, int(part), cv2.LINE_8, _SHIFT)
        if occludes:
            cv2.fillPoly(self.occlusion, fixed, 1, cv2.LINE_8, _SHIFT)

    def line(self, polyline, colour, width: float, part: Part, closed: bool = False, occludes: bool = False) -> None:
        fixed = [self._fixed(polyline)]
        thickness = max(1, int(round(width)))
        cv2.polylines(self.image, fixed, closed, _rgb(colour), thickness, cv2.LINE_AA, _SHIFT)
        if self.labels is not None:
            cv2.polylines(self.labels, fixed, closed, int(part), thickness, cv2.LINE_8, _SHIFT)
        if occludes:
            cv2.polylines(self.occlusion, fixed, closed, 1, thickness, cv2.LINE_8, _SHIFT)

    def clipped(self, polygon, alpha: float = 1.0) -> "_Clip":
        """A context giving a canvas whose drawing lands only inside `polygon`, blended with `alpha`."""
        return _Clip(self, np.asarray(polygon, np.float64), alpha)


class _Clip:
    def __init__(self, canvas: _Canvas, polygon: np.ndarray, alpha: float):
        self.canvas, self.polygon, self.alpha = canvas, polygon, alpha
        h, w = canvas.image.shape[:2]
        local = polygon - canvas.origin
        self.x0, self.y0 = (max(int(np.floor(v)) - 1, 0) for v in local.min(axis=0))
        self.x1, self.y1 = min(int(np.ceil(local[:, 0].max())) + 2, w), min(int(np.ceil(local[:, 1].max())) + 2, h)
        self.empty = self.x1 <= self.x0 or self.y1 <= self.y0

    def __enter__(self) -> _Canvas:
        if self.empty:
            return _Canvas(np.zeros((1, 1, 3), np.uint8), None, np.zeros((1, 1), np.uint8), (-1e6, -1e6))
        c, window = self.canvas, (slice(self.y0, self.y1), slice(self.x0, self.x1))
        self.window = window
        self.layer = _Canvas(c.image[window].copy(), None if c.labels is None else c.labels[window].copy(),
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


def _rgb(colour) -> tuple:
    return tuple(min(max(int(round(float(v))), 0), 255) for v in colour)


def _shade(colour, factor: float) -> tuple:
    return tuple(np.clip(np.asarray(colour, np.float64) * factor, 0, 255))


def _mix(a, b, t: float) -> tuple:
    return tuple(np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t)


def _hull(points) -> np.ndarray:
    return cv2.convexHull(np.asarray(points, np.float32).reshape(-1, 2)).reshape(-1, 2).astype(np.float64)


class _Face:
    """Draws one face, back to front, onto a canvas."""

    def __init__(self, identity: Identity, expression: Expression, accessories: Accessories, pose: Pose,
                 scene: Scene, canvas: _Canvas):
        self.identity, self.accessories, self.pose, self.scene, self.canvas = \
            identity, accessories, pose, scene, canvas
        self.view = _View.of(pose)
        self.skull = _Skull(identity)
        self.pts3, self.normals = face_points_3d(identity, expression)
        self.points = self.view.xy(self.pts3)
        self.px = float(pose.scale)
        self.eye_openings: list[np.ndarray] = []
        self.lash_width = max(1.0, 0.035 * self.px)

    def draw(self) -> None:
        self._hair_mass()
        self._body()
        if self.accessories.hat:
            self._hat_back()
        self._ears()
        self._skin()
        self._beard_and_blush()
        self._brows()
        self._eyes()
        self._nose()
        self._mouth()
        self._front_hair()
        if self.accessories.glasses:
            self._glasses()
        if self.accessories.hat:
            self._hat_front()
        if self.accessories.earrings:
            self._earrings()

    def _facing(self, normal) -> float:
        return float(self.view.facing(_unit(normal)))

    def _pixels(self, vector3) -> np.ndarray:
        """A head-space displacement as a frame-pixel displacement."""
        return (np.asarray(vector3, np.float64) @ self.view.rotation.T)[:2] * self.px

    # -- back to front -----------------------------------------------------------------------------------------

    def _hair_mass(self) -> None:
        identity = self.identity
        if identity.hair_style == "bald":
            return
        grid, azimuth, height = self.skull.grid(_CONTOUR_TOP_Y)
        covered = grid[height < _hair_line(identity, azimuth)]
        cap = self.skull.center + (covered - self.skull.center) * identity.hair_volume
        ring = np.linspace(-np.pi, np.pi, 36, endpoint=False)
        edge = self.skull.at(ring, np.minimum(_hair_line(identity, ring), _CONTOUR_TOP_Y), 1.02)
        parts = [cap, edge]
        if identity.hair_style in ("long", "bob"):
            drop = 1.45 if identity.hair_style == "long" else 0.7
            flare = 1.3 if identity.hair_style == "long" else 1.15
            w = identity.face_width
            parts.append([(sign * w * width, y, z) for sign in (-1, 1) for y, width in ((0.0, 1.12), (drop, flare))
                          for z in (-0.1, -0.9)])
        hull = _hull(self.view.xy(np.concatenate([np.asarray(p, np.float64).reshape(-1, 3) for p in parts])))
        self.canvas.fill([hull], identity.hair, Part.HAIR)
        # A sheen across the crown, clipped to the hair.
        sheen = self.view.xy(self.skull.at(np.linspace(-0.9, 0.9, 9), _CONTOUR_TOP_Y - identity.hairline - 0.22,
                                           identity.hair_volume))
        with self.canvas.clipped(hull, 0.35) as layer:
            layer.line(sheen, _mix(identity.hair, (255, 255, 255), 0.35), 0.08 * self.px, Part.HAIR)

    def _body(self) -> None:
        pose, w = self.pose, self.identity.face_width
        pivot = np.array([0.0, 1.05, -0.35])
        anchor = self.view.xy(pivot)
        body_rotation = _rotation(0.3 * pose.yaw, 0.2 * pose.pitch, 0.3 * pose.roll)

        def body_xy(points):
            return anchor + ((np.asarray(points, np.float64) - pivot) @ body_rotation.T)[:, :2] * self.px

        outline = [(-0.5, 1.5), (-1.3, 1.78), (-1.95, 2.15), (-2.2, 2.8), (-2.35, 6.0), (2.35, 6.0), (2.2, 2.8),
                   (1.95, 2.15), (1.3, 1.78), (0.5, 1.5)]
        torso = body_xy([(x * w, y, -0.4) for x, y in outline])
        self.canvas.fill([torso], self.scene.clothes, Part.BODY)
        neck = np.concatenate([self.view.xy([(-0.42 * w, 0.45, -0.3), (0.42 * w, 0.45, -0.3)]),
                               body_xy([(0.46 * w, 1.75, -0.35), (-0.46 * w, 1.75, -0.35)])])
        self.canvas.fill([neck], _shade(self.identity.skin, 0.8), Part.NECK)
        x = np.linspace(-0.62, 0.62, 9) * w
        collar = body_xy(np.stack([x, 1.58 + 0.2 * (1 - (x / (0.62 * w)) ** 2), np.full_like(x, -0.3)], -1))
        self.canvas.line(collar, _shade(self.scene.clothes, 0.6), 0.07 * self.px, Part.BODY)

    def _ears(self) -> None:
        identity, w = self.identity, self.identity.face_width
        for sign in (-1, 1):
            centre = np.array([sign * (w - 0.02), -0.02, -0.38])
            vertical = np.array([0.0, 0.3 * identity.ear_size, 0.0])
            outward = _unit([sign * 0.8, 0.0, -1.0]) * 0.21 * identity.ear_size
            self.canvas.fill([self.view.xy(_ring(centre, outward, vertical, 20))], _shade(identity.skin, 0.93),
                             Part.EAR)
            inner = _ring(centre + 0.3 * outward, 0.5 * outward, 0.62 * vertical, 16)
            self.canvas.line(self.view.xy(inner), _shade(identity.skin, 0.72), 0.03 * self.px, Part.EAR, closed=True)

    def _skin(self) -> None:
        identity = self.identity
        grid, azimuth, height = self.skull.grid(_CONTOUR_TOP_Y)
        # The outline is the hull of the jaw, the skull below the hair, the features (so that on a large yaw the far
        # eye and mouth stay on the face) and cheeks bulging in front of the jaw.
        jaw = self.pts3[2:31]
        cheeks = jaw * (0.88, 1.0, 1.0) + np.c_[np.zeros((len(jaw), 2)), 0.35 * np.abs(jaw[:, 0])]
        parts = [self.pts3, cheeks]
        if identity.hair_style == "bald":
            parts.append(grid)
        else:
            line = _hair_line(identity, azimuth)
            parts.append(grid[height >= line])
            ring = np.linspace(-np.pi, np.pi, 36, endpoint=False)
            parts.append(self.skull.at(ring, np.minimum(_hair_line(identity, ring), _CONTOUR_TOP_Y)))
        outline = _hull(self.view.xy(np.concatenate(parts)))
        self.canvas.fill([outline], _shade(identity.skin, 0.84), Part.SKIN)
        centre = outline.mean(axis=0)
        lit = centre + (outline - centre) * 0.97 + np.array([self.scene.light * 0.14, -0.05]) * self.px
        with self.canvas.clipped(outline) as layer:
            layer.fill([lit], identity.skin, Part.SKIN)

    def _beard_and_blush(self) -> None:
        identity = self.identity
        if identity.blush > 0:
            for sign in (-1, 1):
                cheek = _ring((sign * 0.55 * identity.face_width, 0.32, 0.45), (0.17, 0, 0), (0, 0.1, 0), 16)
                if self._facing((sign * 0.6, 0, 1)) > 0:
                    polygon = self.view.xy(cheek)
                    with self.canvas.clipped(polygon, identity.blush) as layer:
                        layer.fill([polygon], (225, 95, 105), Part.SKIN)
        if identity.beard:
            w, mw, my, nose = identity.face_width, identity.mouth_width, identity.mouth_y, identity.nose_length
            upper = [(0.9 * w, 0.05, -0.1), (0.72 * w, 0.5, 0.25), (mw + 0.08, my - 0.02, 0.42),
                     (0.5 * mw, nose + 0.07, 0.55), (0.0, nose + 0.09, 0.62)]
            upper += [(-x, y, z) for x, y, z in upper[-2::-1]]
            beard = np.concatenate([self.points[3:30], _spline(self.view.xy(upper), 4)])
            self.canvas.fill([beard], _mix(identity.hair, identity.skin, 0.2), Part.HAIR)

    def _brows(self) -> None:
        colour = _shade(self.identity.hair, 0.8) if self.identity.hair_style != "bald" else \
            _shade(self.identity.skin, 0.45)
        brows = (([33, 34, 35, 36, 37], [64, 65, 66, 67, 33]), ([38, 39, 40, 41, 42], [68, 69, 70, 71, 38]))
        for upper, lower in brows:
            polygon = np.concatenate([_spline(self.points[upper]), _spline(self.points[lower])[:-1]])
            self.canvas.fill([polygon], colour, Part.BROW)

    def _eyes(self) -> None:
        identity, skin = self.identity, self.identity.skin
        radius = 0.085 * identity.eye_size
        for upper, lower, pupil in (([52, 53, 72, 54, 55], [55, 56, 73, 57, 52], 104),
                                    ([58, 59, 75, 60, 61], [61, 62, 76, 63, 58], 105)):
            top, bottom = _spline(self.points[upper]), _spline(self.points[lower])
            opening = np.concatenate([top, bottom[1:-1]])
            self.eye_openings.append(opening)
            self.canvas.fill([opening], _EYE_WHITE, Part.EYE_WHITE)
            centre = self.pts3[pupil]
            with self.canvas.clipped(opening) as layer:
                layer.fill([self.view.xy(_ring(centre, (radius, 0, 0), (0, radius, 0), 20))], identity.iris,
                           Part.IRIS)
                pupil_radius = 0.45 * radius
                layer.fill([self.view.xy(_ring(centre, (pupil_radius, 0, 0), (0, pupil_radius, 0), 14))], _PUPIL,
                           Part.PUPIL)
                glint = centre + (-0.45 * radius, -0.45 * radius, 0.01)
                glint_radius = 0.2 * radius
                layer.fill([self.view.xy(_ring(glint, (glint_radius, 0, 0), (0, glint_radius, 0), 8))],
                           (255, 255, 255), Part.IRIS)
            crease = top + self._pixels((0, -0.05 * identity.eye_size, 0))
            self.canvas.line(crease[2:-2], _shade(skin, 0.75), 0.02 * self.px, Part.SKIN)
            self.canvas.line(bottom, _shade(skin, 0.62), 0.015 * self.px, Part.EYELID)
            self.canvas.line(top, (34, 24, 24), self.lash_width, Part.EYELID)

    def _nose(self) -> None:
        skin, p, width = self.identity.skin, self.points, max(1.0, 0.025 * self.px)
        shade = _shade(skin, 0.68)
        bridge_side = -np.sign(self.scene.light) or 1.0
        bridge = p[[44, 45, 46]] + self._pixels((bridge_side * 0.06, 0, 0))
        self.canvas.line(bridge, _shade(skin, 0.86), 0.035 * self.px, Part.NOSE)
        tip = _ring(self.pts3[46] + (0, 0.0, 0.02), (0.06, 0, 0), (0, 0.045, 0), 12)
        self.canvas.fill([self.view.xy(tip)], _mix(skin, (255, 255, 255), 0.18), Part.NOSE)
        for wing in ([78, 80, 82, 47], [79, 81, 83, 51]):
            self.canvas.line(_spline(p[wing]), shade, width, Part.NOSE)
        base_y, nw = self.identity.nose_length, self.identity.nose_width
        for sign in (-1, 1):
            nostril = _ring((sign * 0.45 * nw, base_y - 0.03, 0.6), (0.055, 0, 0), (0, 0.025, 0.01), 12)
            self.canvas.fill([self.view.xy(nostril)], _shade(skin, 0.42), Part.NOSE)
        self.canvas.line(_spline(p[[48, 49, 50]]), shade, width, Part.NOSE)

    def _mouth(self) -> None:
        lips, p = self.identity.lips, self.points
        outer_top, outer_bottom = _spline(p[84:91]), _spline(p[[90, 91, 92, 93, 94, 95, 84]])
        inner_top, inner_bottom = _spline(p[96:101]), _spline(p[[100, 101, 102, 103, 96]])
        self.canvas.fill([np.concatenate([outer_top, outer_bottom[1:-1]])], lips, Part.LIPS)
        self.canvas.fill([np.concatenate([outer_top, inner_top[::-1]])], _shade(lips, 0.86), Part.LIPS)
        inner = np.concatenate([inner_top, inner_bottom[1:-1]])
        gap = float(self.pts3[102, 1] - self.pts3[98, 1])
        if gap > 0.015:
            self.canvas.fill([inner], _MOUTH_INTERIOR, Part.MOUTH_INTERIOR)
            with self.canvas.clipped(inner) as layer:
                teeth = inner_top + self._pixels((0, min(0.06, 0.3 * gap), 0))
                layer.fill([np.concatenate([inner_top, teeth[::-1]])], _TEETH, Part.TEETH)
                width = 0.28 * (self.pts3[100, 0] - self.pts3[96, 0])
                tongue = _ring(self.pts3[102] + (0, 0.05 * gap, -0.02), (width, 0, 0), (0, 0.3 * gap, 0), 16)
                layer.fill([self.view.xy(tongue)], _TONGUE, Part.MOUTH_INTERIOR)
        self.canvas.line(inner_top, _shade(lips, 0.5), max(1.0, 0.02 * self.px), Part.LIPS)

    def _front_hair(self) -> None:
        identity, hair = self.identity, self.identity.hair
        if identity.fringe > 0:
            azimuth = np.linspace(-1.15, 1.15, 15)
            top_y = np.minimum(_hair_line(identity, azimuth), _CONTOUR_TOP_Y)
            strands = 1 + 0.15 * (-1) ** np.arange(15)
            fall = identity.fringe * np.cos(azimuth) ** 1.5 * strands
            top = self.skull.at(azimuth, top_y - 0.02, 1.04)
            bottom = self.skull.at(azimuth, top_y + fall, 1.05)
            self.canvas.fill([self.view.xy(np.concatenate([top, bottom[::-1]]))], hair, Part.HAIR, occludes=True)
        if identity.hair_style in ("long", "bob"):
            w = identity.face_width
            drop = 1.35 if identity.hair_style == "long" else 0.7
            for sign in (-1, 1):
                if self._facing((sign, 0, 0.35)) < -0.25:
                    continue
                top = self.skull.at(sign * 1.15, _hair_line(identity, 1.15) - 0.05, 1.04)
                inner = [(sign * w * x, y, 0.02) for x, y in ((0.86, -0.45), (0.94, 0.0), (0.95, 0.45),
                                                               (1.0, drop))]
                outer = [(sign * w * x, y, -0.4) for x, y in ((1.1, drop + 0.1), (1.22, 0.45), (1.2, 0.0),
                                                              (1.12, -0.55))]
                lock = self.view.xy(np.concatenate([top[None], inner, outer, top[None]]))
                self.canvas.fill([_spline(lock, 4)], hair, Part.HAIR, occludes=True)

    def _glasses(self) -> None:
        identity, acc = self.identity, self.accessories
        half_w, half_h = 0.27 * max(identity.eye_size, 0.9), 0.19
        y, z, spacing = identity.eye_y + 0.01, 0.62, identity.eye_spacing
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        c, s = np.cos(t), np.sin(t)
        shape = np.stack([half_w * np.sign(c) * np.abs(c) ** 0.6, half_h * np.sign(s) * np.abs(s) ** 0.6,
                          np.zeros_like(t)], -1)
        width = max(1.0, 0.035 * self.px)
        for sign in (-1, 1):
            rim = self.view.xy(shape + (sign * spacing, y, z))
            if acc.glasses == "sun":
                with self.canvas.clipped(rim, 0.9) as layer:
                    layer.fill([rim], (22, 24, 30), Part.GLASSES, occludes=True)
            else:
                with self.canvas.clipped(rim, 0.18) as layer:
                    layer.fill([rim], (205, 230, 255), Part.GLASSES)
            self.canvas.line(rim, acc.glasses_colour, width, Part.GLASSES, closed=True)
            if self._facing((sign, 0, 0.3)) > -0.2:
                arm = [(sign * (spacing + half_w), y - 0.05, z - 0.02), (sign * identity.face_width, y + 0.05, -0.3)]
                self.canvas.line(self.view.xy(arm), acc.glasses_colour, width, Part.GLASSES)
        bridge = [(-(spacing - half_w), y - 0.04, z), (0, y - 0.08, z + 0.04), (spacing - half_w, y - 0.04, z)]
        self.canvas.line(self.view.xy(bridge), acc.glasses_colour, width, Part.GLASSES)

    def _hat_line(self, azimuth) -> np.ndarray:
        """Height of the hat's lower edge around the head: `hat_line` in front, lower at the sides and back (level
        all round for the sun hat, whose brim is flat)."""
        front = self.accessories.hat_line
        side, back = (front, front) if self.accessories.hat == "sunhat" else (front + 0.3, front + 0.5)
        c = np.cos(azimuth)
        return np.where(c >= 0, side + (front - side) * c, side + (back - side) * (-c))

    def _crown(self) -> tuple[np.ndarray, np.ndarray]:
        """The hat's crown: points on an inflated skull above the hat line (3-D), and whether each faces the camera."""
        grid, azimuth, height = self.skull.grid(_CONTOUR_TOP_Y, 1.14)
        ring = np.linspace(-np.pi, np.pi, 36, endpoint=False)
        crown = np.concatenate([grid[height < self._hat_line(azimuth)],
                                self.skull.at(ring, self._hat_line(ring), 1.14)])
        if self.accessories.hat == "sunhat":
            crown = crown + np.array([0, -0.12, 0]) * (crown[:, 1:2] < self.accessories.hat_line - 0.3)
        facing = self.view.facing(_unit((crown - self.skull.center) / self.skull.radii ** 2)) > 0
        return crown, facing

    def _brim(self) -> tuple[np.ndarray, np.ndarray]:
        """The sun hat's flat brim, split into its back and front halves (3-D)."""
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        rim = np.stack([1.7 * np.cos(t), np.full_like(t, self.accessories.hat_line + 0.03), -0.35 + 1.6 * np.sin(t)],
                       -1)
        return rim[np.sin(t) <= 0], rim[np.sin(t) >= 0]

    def _hat_back(self) -> None:
        # Drawn before the head: the parts of the hat behind it (the whole crown, and the brim's back half) show only
        # where the head does not cover them, so they hide no keypoint.
        colour = self.accessories.hat_colour
        if self.accessories.hat == "sunhat":
            self.canvas.fill([self.view.xy(self._brim()[0])], _shade(colour, 0.8), Part.HAT)
        crown, _ = self._crown()
        self.canvas.fill([_hull(self.view.xy(crown))], colour, Part.HAT)

    def _hat_front(self) -> None:
        acc, colour = self.accessories, self.accessories.hat_colour
        crown, facing = self._crown()
        if facing.sum() >= 3:
            self.canvas.fill([_hull(self.view.xy(crown[facing]))], colour, Part.HAT, occludes=True)
        front = acc.hat_line
        azimuth = np.linspace(-1.7, 1.7, 25)
        azimuth = azimuth[self.view.facing(np.stack([np.sin(azimuth), np.zeros(25), np.cos(azimuth)], -1)) > 0]
        if acc.hat == "sunhat":
            band = self.skull.at(azimuth, front - 0.06, 1.15)
            self.canvas.line(self.view.xy(band), acc.earring_colour, 0.1 * self.px, Part.HAT, occludes=True)
            self.canvas.fill([self.view.xy(self._brim()[1])], _shade(colour, 0.92), Part.HAT, occludes=True)
        elif acc.hat == "cap":
            edge = self.skull.at(0.0, front, 1.14)
            t = np.linspace(0, np.pi, 15)
            visor = np.stack([0.82 * np.cos(t), front + 0.03 + 0.1 * np.sin(t), edge[2] - 0.3 + 0.8 * np.sin(t)], -1)
            self.canvas.fill([self.view.xy(visor)], _shade(colour, 0.75), Part.HAT, occludes=True)
        else:
            lower = self.skull.at(azimuth, self._hat_line(azimuth), 1.16)
            upper = self.skull.at(azimuth, self._hat_line(azimuth) - 0.22, 1.16)
            if len(azimuth) >= 2:
                self.canvas.fill([self.view.xy(np.concatenate([lower, upper[::-1]]))], _shade(colour, 0.8),
                                 Part.HAT, occludes=True)
            top = self.skull.center + (0, -self.skull.radii[1] * 1.14 - 0.08, 0)
            ball = self.view.xy(top) + self._ring2d(0.2 * self.px)
            self.canvas.fill([ball], _mix(colour, (255, 255, 255), 0.5), Part.HAT, occludes=True)

    def _earrings(self) -> None:
        acc, identity = self.accessories, self.identity
        for sign in (-1, 1):
            if self._facing((sign, 0, 0.25)) < -0.2:
                continue
            lobe = self.view.xy((sign * (identity.face_width + 0.04), -0.02 + 0.27 * identity.ear_size, -0.42))
            if acc.earrings == "stud":
                self.canvas.fill([lobe + self._ring2d(0.055 * self.px)], acc.earring_colour, Part.EARRING,
                                 occludes=True)
            else:
                hoop = lobe + (0, 0.1 * self.px) + self._ring2d(0.1 * self.px)
                self.canvas.line(hoop, acc.earring_colour, max(1.0, 0.03 * self.px), Part.EARRING, closed=True,
                                 occludes=True)

    @staticmethod
    def _ring2d(radius: float, n: int = 16) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], -1) * radius


def _draw_occluder(canvas: _Canvas, occluder: Occluder) -> None:
    centre, r = np.asarray(occluder.center, np.float64), float(occluder.radius)
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], -1)
    rotation = np.array([[math.cos(occluder.angle), -math.sin(occluder.angle)],
                         [math.sin(occluder.angle), math.cos(occluder.angle)]])
    if occluder.kind == "ball":
        canvas.fill([centre + r * circle], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.fill([centre + r * (0.25 * circle - 0.4)], _mix(occluder.colour, (255, 255, 255), 0.6), Part.OCCLUDER)
    elif occluder.kind == "card":
        corners = np.array([(-0.65, -1.0), (0.65, -1.0), (0.65, 1.0), (-0.65, 1.0)]) * r
        canvas.fill([centre + corners @ rotation.T], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.line(centre + (corners * 0.8) @ rotation.T, _shade(occluder.colour, 0.6), max(1.0, 0.06 * r),
                    Part.OCCLUDER, closed=True)
    else:
        palm = centre + (r * circle * (0.62, 0.72)) @ rotation.T
        shapes = [palm]
        for i, dx in enumerate((-0.45, -0.15, 0.15, 0.45)):
            finger = (circle * (0.14, 0.42) + (dx, -0.95 - 0.08 * (i in (1, 2)))) * r
            shapes.append(centre + finger @ rotation.T)
        thumb = (circle * (0.13, 0.36)) @ np.array([[0.7, -0.7], [0.7, 0.7]]) + (0.7, -0.2)
        shapes.append(centre + (thumb * r) @ rotation.T)
        for shape in shapes:
            canvas.fill([shape], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.line(palm, _shade(occluder.colour, 0.8), max(1.0, 0.04 * r), Part.OCCLUDER, closed=True)


def plain_scene(frame_size=(256, 256), colour=(120, 128, 136)) -> Scene:
    """A flat background of `frame_size` (width, height)."""
    width, height = frame_size
    return Scene(background=np.full((height, width, 3), colour, np.uint8))


def render_frame(identity: Identity, pose: Pose, expression: Expression = Expression(), *,
                 accessories: Accessories = Accessories(), scene: Scene | None = None,
                 occluder: Occluder | None = None, frame_size=(256, 256), with_labels: bool = False) -> RenderedFrame:
    """Draws one face and annotates it (module docstring: flags and bbox). `frame_size` is (width, height) and is
    taken from `scene.background` when a scene is given."""
    scene = scene if scene is not None else plain_scene(frame_size)
    height, width = scene.background.shape[:2]
    canvas = _Canvas(scene.background.copy(), np.zeros((height, width), np.uint8) if with_labels else None,
                     np.zeros((height, width), np.uint8))
    face = _Face(identity, expression, accessories, pose, scene, canvas)
    face.draw()
    if occluder is not None:
        _draw_occluder(canvas, occluder)
    image = cv2.transform(canvas.image, scene.grade)
    points = face.points.astype(np.float32)
    flags = _flags(face, canvas.occlusion)
    bbox = _face_box(face, width, height)
    return RenderedFrame(image=image, points=points, flags=flags, bbox=bbox, labels=canvas.labels)


def _flags(face: _Face, occlusion: np.ndarray) -> np.ndarray:
    height, width = occlusion.shape
    x, y = face.points[:, 0], face.points[:, 1]
    inside = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    column = np.clip(np.round(x), 0, width - 1).astype(int)
    row = np.clip(np.round(y), 0, height - 1).astype(int)
    covered = inside & (occlusion[row, column] > 0)
    turned_away = face.view.facing(face.normals) < _HIDDEN_NORMAL_Z
    hidden = covered | turned_away | ~inside
    # A pupil is seen only inside the eye opening, clear of the lash line drawn along the upper lid.
    for pupil, opening in zip((104, 105), face.eye_openings):
        clearance = cv2.pointPolygonTest(opening.astype(np.float32).reshape(-1, 1, 2),
                                         tuple(float(v) for v in face.points[pupil]), True)
        hidden[pupil] |= clearance < 0.5 * face.lash_width + 0.5
    return np.where(hidden, annotations.FLAG_OCCLUDED, annotations.FLAG_VISIBLE).astype(np.int32)


def _face_box(face: _Face, width: int, height: int) -> np.ndarray | None:
    forehead = face.skull.at(np.linspace(-1.2, 1.2, 7), _CONTOUR_TOP_Y - 0.85)
    extent = np.concatenate([face.points, face.view.xy(forehead)])
    x0, y0 = np.maximum(extent.min(axis=0), -0.5)
    x1, y1 = np.minimum(extent.max(axis=0), (width - 0.5, height - 0.5))
    if x1 <= x0 or y1 <= y0:
        return None
    side = BOX_SCALE * max(x1 - x0, y1 - y0)
    return np.array([(x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side, side], np.float32)


# ---------------------------------------------------------------------------------------------------- random videos

def random_identity(rng: np.random.Generator) -> Identity:
    """A random person: proportions, colours, hair."""
    u = rng.uniform
    style = str(rng.choice(HAIR_STYLES, p=[0.08, 0.24, 0.2, 0.2, 0.16, 0.12]))
    tone = u(0, len(_SKIN_TONES) - 1)
    low = int(tone)
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[min(low + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[low])
    skin = np.clip(skin + rng.normal(0, 5, 3), 0, 255)
    if rng.random() < 0.2:
        lips = _mix(np.array([(196, 30, 58), (170, 40, 100), (222, 92, 122), (140, 40, 50)])[rng.integers(4)],
                    skin, 0.15)
    else:
        lips = _shade(_mix(skin, (205, 80, 90), u(0.3, 0.55)), u(0.78, 0.95))
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * u(0.85, 1.15) + rng.normal(0, 6, 3), 0, 255)
    fringe = u(0.3, 0.48) if style == "fringe" or (style == "bob" and rng.random() < 0.5) else 0.0
    face_length, eye_y = u(1.1, 1.45), u(-0.3, -0.18)
    eye_to_chin = _CONTOUR_TOP_Y + face_length - eye_y      # nose and mouth sit at proportions of it
    return Identity(
        face_width=u(0.88, 1.08), face_length=face_length, jaw=u(1.6, 2.8), cranium=u(1.1, 1.3),
        eye_size=u(0.8, 1.25), eye_spacing=u(0.37, 0.47), eye_y=eye_y, eye_tilt=u(-0.03, 0.06),
        eye_openness=u(0.75, 1.3), brow_gap=u(0.28, 0.42), brow_thickness=u(0.05, 0.13), brow_arch=u(0.02, 0.12),
        nose_length=eye_y + eye_to_chin * u(0.42, 0.5), nose_width=u(0.16, 0.28),
        mouth_y=eye_y + eye_to_chin * u(0.62, 0.68), mouth_width=u(0.28, 0.45),
        upper_lip=u(0.045, 0.1), lower_lip=u(0.06, 0.13), ear_size=u(0.8, 1.2),
        skin=tuple(skin), hair=tuple(hair), iris=tuple(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]),
        lips=tuple(lips), hair_style=style, hairline=u(0.85, 1.1),
        hair_volume=u(1.25, 1.4) if style == "afro" else u(1.04, 1.13), fringe=fringe,
        beard=bool(style in ("bald", "short", "afro") and rng.random() < 0.35),
        blush=u(0.1, 0.3) if rng.random() < 0.4 else 0.0)


def random_accessories(rng: np.random.Generator, tier: str) -> Accessories:
    """Few accessories for easy videos, many for hard ones (see `_ACCESSORY_COUNT`)."""
    low, high = _ACCESSORY_COUNT[tier]
    chosen = set(rng.choice(["glasses", "hat", "earrings"], size=int(rng.integers(low, high + 1)), replace=False))
    sun_chance = {"easy": 0.0, "medium": 0.3, "hard": 0.5}[tier]
    palette = np.array([(25, 25, 25), (120, 70, 30), (170, 30, 40), (30, 60, 150), (200, 200, 205), (40, 120, 60),
                        (230, 180, 40), (240, 240, 235), (120, 40, 130)], np.float64)
    return Accessories(
        glasses=("sun" if rng.random() < sun_chance else "clear") if "glasses" in chosen else None,
        glasses_colour=tuple(palette[rng.integers(0, 4)]),
        hat=str(rng.choice(HAT_STYLES)) if "hat" in chosen else None,
        hat_colour=tuple(palette[rng.integers(len(palette))]),
        hat_line=rng.uniform(-0.9, -0.66) if tier == "hard" else rng.uniform(-0.95, -0.78),
        earrings=str(rng.choice(["stud", "hoop"])) if "earrings" in chosen else None,
        earring_colour=tuple(palette[rng.choice([4, 6, 7])]))


def _wave(rng: np.random.Generator, n: int, cycles=(0.3, 1.3)) -> np.ndarray:
    """A smooth random signal over n frames (a sum of low-frequency sinusoids, in cycles per video), stretched to
    span exactly [-1, 1]."""
    if n < 2:
        return np.zeros(n)
    t = np.linspace(0, 1, n)
    signal = sum(rng.uniform(0.5, 1) * np.sin(2 * np.pi * rng.uniform(*cycles) * t + rng.uniform(0, 2 * np.pi))
                 for _ in range(3))
    span = np.ptp(signal)
    return 2 * (signal - signal.min()) / span - 1 if span > 1e-9 else np.zeros(n)


def _plateau(n: int) -> np.ndarray:
    """0 at the ends, 1 around the middle (a few frames), smooth ramps between."""
    ramp = max(2, n // 6)
    start, end = n // 2 - n // 16, n // 2 + n // 16
    t = np.arange(n)
    f = np.clip(np.minimum((t - (start - ramp)) / ramp, ((end + ramp) - t) / ramp), 0, 1)
    return f * f * (3 - 2 * f)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A busy backdrop: a gradient under random rectangles, discs, lines, triangles and stripes, slightly blurred."""
    colours = rng.uniform(20, 235, (2, 3))
    direction = _unit(rng.normal(size=2))
    yy, xx = np.mgrid[0:height, 0:width]
    t = (xx * direction[0] + yy * direction[1]) / max(width, height)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    image = np.ascontiguousarray((colours[0] * (1 - t[..., None]) + colours[1] * t[..., None]).astype(np.uint8))
    size = max(width, height)
    for _ in range(int(rng.integers(12, 36))):
        colour = tuple(int(v) for v in _mix(rng.integers(0, 256, 3), (128, 128, 128), rng.uniform(0, 0.6)))
        kind = rng.integers(5)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        extent = int(rng.uniform(0.04, 0.3) * size)
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + extent, y + int(rng.uniform(0.3, 1.5) * extent)), colour, -1)
        elif kind == 1:
            cv2.circle(image, (x, y), max(2, extent // 2), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (x + int(rng.normal(0, extent)), y + int(rng.normal(0, extent)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        elif kind == 3:
            triangle = (np.array([x, y]) + rng.normal(0, extent / 2, (3, 2))).astype(np.int32)
            cv2.fillPoly(image, [triangle], colour, cv2.LINE_AA)
        else:
            step = max(3, extent // 6)
            for i in range(0, extent, 2 * step):
                cv2.rectangle(image, (x + i, y), (x + i + step, y + extent), colour, -1)
    sigma = rng.uniform(0.3, 1.6)
    return cv2.GaussianBlur(image, (0, 0), sigma)


@dataclasses.dataclass
class VideoPlan:
    """Everything random about one video, drawn up front: the person, what they wear, and per frame their pose,
    expression, the passing occluder (or None) and the background."""
    tier: str
    identity: Identity
    accessories: Accessories
    poses: list[Pose]
    expressions: list[Expression]
    occluders: list[Occluder | None]
    scenes: list[Scene]

    @property
    def num_frames(self) -> int:
        return len(self.poses)


def plan_video(rng: np.random.Generator, tier: str, identity: Identity, num_frames: int = 24,
               frame_size=(256, 256), leaves_frame: bool = False) -> VideoPlan:
    """A random video of `identity` in `tier` (pose ranges `_POSE_AMPLITUDE`; accessories `random_accessories`;
    passing occluders `_OCCLUDER_CHANCE`). `leaves_frame`: the face slides out of the frame mid-video and back."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; choose one of {TIERS}")
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got num_frames={num_frames}")
    width, height = frame_size
    n, short = num_frames, min(width, height)
    accessories = random_accessories(rng, tier)
    amplitude = np.array(_POSE_AMPLITUDE[tier]) * rng.uniform(0.75, 1.0, 3)
    base = rng.uniform(-1, 1, 3) * np.array(_POSE_BASE[tier])
    yaw, pitch, roll = (np.clip(base[i] + amplitude[i] * _wave(rng, n), -65, 65) for i in range(3))
    unit = short * (rng.uniform(0.05, 0.08) if rng.random() < 0.25 else rng.uniform(0.09, 0.18))
    scale = unit * (1 + 0.12 * _wave(rng, n))
    margin_x = min(1.6 * unit, width / 2)
    cx = rng.uniform(margin_x, width - margin_x) + 0.07 * width * _wave(rng, n)
    top, bottom = min(1.8 * unit, height / 2), max(height - 1.4 * unit, height / 2)
    cy = rng.uniform(top, bottom) + 0.06 * height * _wave(rng, n)
    if leaves_frame:
        out = _plateau(n)
        if cx[n // 2] < width / 2:
            cx = cx - out * (cx.max() + 2.0 * scale.max())
        else:
            cx = cx + out * (width - cx.min() + 2.0 * scale.max())
    poses = [Pose(float(yaw[t]), float(pitch[t]), float(roll[t]), (float(cx[t]), float(cy[t])), float(scale[t]))
             for t in range(n)]
    return VideoPlan(tier=tier, identity=identity, accessories=accessories, poses=poses,
                     expressions=_expressions(rng, n), occluders=_occluders(rng, tier, poses),
                     scenes=_scenes(rng, n, width, height))


def _expressions(rng: np.random.Generator, n: int) -> list[Expression]:
    t = np.arange(n)
    talk = rng.uniform(0.3, 1.0) * np.clip(0.5 + 0.6 * _wave(rng, n), 0, 1)
    mouth = talk * (0.5 - 0.5 * np.cos(2 * np.pi * t / rng.uniform(5, 9) + rng.uniform(0, 2 * np.pi)))
    brows = np.clip(rng.uniform(-0.3, 0.3) + 0.6 * _wave(rng, n), -0.6, 1)
    if rng.random() < 0.3:                      # a surprise: mouth wide open, brows up
        surprise = np.roll(_plateau(n), int(rng.integers(-n // 4, n // 4 + 1)))
        mouth, brows = np.maximum(mouth, 0.95 * surprise), np.maximum(brows, surprise)
    smile = np.clip(rng.uniform(-0.2, 0.6) + 0.45 * _wave(rng, n), -0.3, 1)
    blink_left, blink_right = np.zeros(n), np.zeros(n)
    profile = np.array([0.5, 1.0, 0.7, 0.25])
    for _ in range(max(1, int(round(n / 40 * rng.uniform(0.6, 1.6))))):
        start = int(rng.integers(0, n))
        span = slice(start, min(start + len(profile), n))
        wink = rng.random()
        if wink > 0.1:
            blink_left[span] = np.maximum(blink_left[span], profile[:span.stop - start])
        if wink < 0.1 or wink > 0.2:
            blink_right[span] = np.maximum(blink_right[span], profile[:span.stop - start])
    gaze_x, gaze_y = 0.7 * _wave(rng, n), 0.4 * _wave(rng, n)
    return [Expression(float(mouth[i]), float(smile[i]), float(blink_left[i]), float(blink_right[i]),
                       float(brows[i]), (float(gaze_x[i]), float(gaze_y[i]))) for i in range(n)]


def _occluders(rng: np.random.Generator, tier: str, poses: list[Pose]) -> list[Occluder | None]:
    n = len(poses)
    if rng.random() >= _OCCLUDER_CHANCE[tier]:
        return [None] * n
    kind = str(rng.choice(["ball", "card", "hand"]))
    colour = tuple(rng.uniform(0, 255, 3)) if kind != "hand" else _shade(_SKIN_TONES[rng.integers(8)], 0.95)
    radius = rng.uniform(0.45, 0.8)
    side = rng.choice([-1, 1])
    start, end = np.array([side * 3.0, rng.uniform(-0.8, 1.0)]), np.array([-side * 3.0, rng.uniform(-0.8, 1.0)])
    first = int(rng.integers(0, max(1, n // 3)))
    length = max(2, int(n * rng.uniform(0.45, 0.75)))
    angle = rng.uniform(-0.6, 0.6)
    out: list[Occluder | None] = []
    for t, pose in enumerate(poses):
        f = (t - first) / length
        if not 0 <= f <= 1:
            out.append(None)
            continue
        centre = np.asarray(pose.center) + pose.scale * (start + f * (end - start))
        out.append(Occluder(kind, (float(centre[0]), float(centre[1])), radius * pose.scale, colour, angle))
    return out


def _scenes(rng: np.random.Generator, n: int, width: int, height: int) -> list[Scene]:
    margin = max(4, int(0.08 * max(width, height)))
    backdrop = _background(rng, width + 2 * margin, height + 2 * margin)
    dx = np.round(margin + margin * 0.9 * _wave(rng, n)).astype(int)
    dy = np.round(margin + margin * 0.9 * _wave(rng, n)).astype(int)
    gains = rng.uniform(0.93, 1.07, 3) * rng.uniform(0.85, 1.1)
    grade = np.c_[np.diag(gains), rng.uniform(-10, 10, 3)]
    clothes, light = tuple(rng.uniform(20, 235, 3)), float(rng.uniform(-1, 1))
    return [Scene(backdrop[dy[t]:dy[t] + height, dx[t]:dx[t] + width], clothes, light, grade) for t in range(n)]


def render_video(plan: VideoPlan, with_labels: bool = False):
    """The plan's frames, one `RenderedFrame` at a time."""
    for pose, expression, occluder, scene in zip(plan.poses, plan.expressions, plan.occluders, plan.scenes):
        yield render_frame(plan.identity, pose, expression, accessories=plan.accessories, scene=scene,
                           occluder=occluder, with_labels=with_labels)


# ------------------------------------------------------------------------------------------------------- data set

def video_ids(num_videos: int) -> list[tuple[str, int]]:
    """(tier, id) of each video: split evenly over the tiers (the first tiers take the remainder), ids 10000+k easy,
    11000+k medium, 12000+k hard."""
    out = []
    for i, tier in enumerate(TIERS):
        count = num_videos // 3 + (1 if i < num_videos % 3 else 0)
        out += [(tier, TIER_ID_BASE[tier] + k) for k in range(count)]
    return out


def generate(out_dir, num_videos: int = 12, frames_per_video: int = 24, frame_size=(256, 256),
             seed: int = 0) -> Path:
    """Writes `num_videos` synthetic videos to `out_dir/videos/<id>.mp4` and their annotations to
    `out_dir/annotations.json` (BIGO layout, `bigo106`, with `"tier"` and `"identity"` per video); returns the
    annotation file's path. `frame_size` is (width, height). Deterministic from `seed`.

    There are ceil(num_videos / 2) identities, each in about two videos of different tiers. In the hard tier, every
    second video (odd k) has its face leave the frame for a few frames mid-video."""
    if num_videos < 1 or frames_per_video < 1:
        raise ValueError(f"need at least one video of one frame, got num_videos={num_videos}, "
                         f"frames_per_video={frames_per_video}")
    out_dir = Path(out_dir)
    num_identities = max(1, math.ceil(num_videos / 2))
    identities = [random_identity(np.random.default_rng([seed, 1, i])) for i in range(num_identities)]
    videos = []
    for position, (tier, video_id) in enumerate(video_ids(num_videos)):
        person = position % num_identities
        k = video_id % 1000
        rng = np.random.default_rng([seed, 2, video_id])
        plan = plan_video(rng, tier, identities[person], frames_per_video, frame_size,
                          leaves_frame=tier == "hard" and k % 2 == 1)
        name = f"{video_id}.mp4"
        frames = []
        with video.VideoWriter(out_dir / "videos" / name, FPS, frame_size) as writer:
            for index, rendered in enumerate(render_video(plan), start=1):
                writer.write(rendered.image)
                frames.append(annotations.FrameAnnotation(index) if rendered.bbox is None else
                              annotations.FrameAnnotation(index, rendered.bbox, rendered.points, rendered.flags))
        videos.append(annotations.VideoAnnotation(video=name, video_path=f"videos/{name}", frames=frames, tier=tier,
                                                  identity=f"synthetic-s{seed}-{person:03d}"))
    path = out_dir / "annotations.json"
    annotations.dump(videos, path)
    return path

"""The 3-D face template in BIGO's 106-point order (`bigo106`), in head coordinates: x to image-right, y down, z
toward the camera; one unit is about half a face's width. An `Identity` deforms it (proportions, colours, hair), an
`Expression` moves it per frame (mouth, smile, blinks, brows, gaze); the skull and the hairline are the surfaces the
hair, hats and skin outline are built on."""
from __future__ import annotations

import dataclasses

import numpy as np

from bigo_facegen.keypoints import BIGO106

NUM_POINTS = BIGO106.num_points
HAIR_STYLES = ("bald", "short", "fringe", "long", "bob", "afro")
CONTOUR_TOP_Y = -0.15       # height of the contour's ends (the ear tops) in head units


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
    hair_style: str = "short"       # one of HAIR_STYLES
    hairline: float = 0.95          # forehead hairline height above the contour's ends
    hair_volume: float = 1.08
    fringe: float = 0.0             # how far the fringe falls (0 = none)
    beard: bool = False
    blush: float = 0.0


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


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def ring(center, u, v, n: int = 24) -> np.ndarray:
    """n 3-D points on the ellipse center + cos(t) u + sin(t) v."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
    return np.asarray(center) + np.cos(t) * np.asarray(u) + np.sin(t) * np.asarray(v)


class Skull:
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

    def hair_edge(self, identity: Identity, inflate: float = 1.0) -> np.ndarray:
        """A ring of points round the head along the hair's lower edge, no lower than the contour's ends."""
        azimuth = np.linspace(-np.pi, np.pi, 36, endpoint=False)
        return self.at(azimuth, np.minimum(hair_line(identity, azimuth), CONTOUR_TOP_Y), inflate)


def hair_line(identity: Identity, azimuth) -> np.ndarray:
    """Height of the hair's lower edge around the head: the forehead hairline in front, lower at the sides and back."""
    front = CONTOUR_TOP_Y - identity.hairline
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
    y = CONTOUR_TOP_Y + identity.face_length * c ** exponent + jaw_drop * c ** 3
    pts[:33] = np.stack([x, y, 0.42 * c - 0.32 * np.abs(s)], -1)
    normals[:33] = unit(np.stack([s, 0.7 * c, np.full_like(s, 0.55)], -1))


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
    normals[ids] = unit(np.c_[pts[ids, 0] * 0.6, np.full(len(ids), -0.2), np.ones(len(ids))])


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
    normals[ids] = unit(np.c_[pts[ids, 0] * 2.5, np.full(len(ids), 0.2), np.ones(len(ids))])


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
        normals[ids] = unit(np.c_[pts[ids, 0] * 0.5, np.zeros(len(ids)), np.ones(len(ids))])


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
    normals[84:104] = unit(np.c_[pts[84:104, 0] * 1.2, np.full(20, 0.1), np.ones(20)])

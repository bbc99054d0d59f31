"""What a person wears, and drawing it: glasses or sunglasses, a hat (cap, beanie or sun hat), earrings. A hat's back
is drawn before the head, the rest after the face, hiding the keypoints it covers."""
from __future__ import annotations

import dataclasses

import numpy as np

from bigo_facegen.synthetic.canvas import Canvas, Part, circle, hull, mix, shade
from bigo_facegen.synthetic.pose import PosedFace
from bigo_facegen.synthetic.template import CONTOUR_TOP_Y, unit

HAT_STYLES = ("cap", "beanie", "sunhat")


@dataclasses.dataclass(frozen=True)
class Accessories:
    """What a person wears through a video: colours RGB, `hat_line` in head units."""
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


def glasses(face: PosedFace, canvas: Canvas, acc: Accessories) -> None:
    identity = face.identity
    half_w, half_h = 0.27 * max(identity.eye_size, 0.9), 0.19
    y, z, spacing = identity.eye_y + 0.01, 0.62, identity.eye_spacing
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    shape = np.stack([half_w * np.sign(c) * np.abs(c) ** 0.6, half_h * np.sign(s) * np.abs(s) ** 0.6,
                      np.zeros_like(t)], -1)
    width = max(1.0, 0.035 * face.px)
    for sign in (-1, 1):
        rim = face.view.xy(shape + (sign * spacing, y, z))
        if acc.glasses == "sun":
            with canvas.clipped(rim, 0.9) as layer:
                layer.fill([rim], (22, 24, 30), Part.GLASSES, occludes=True)
        else:
            with canvas.clipped(rim, 0.18) as layer:
                layer.fill([rim], (205, 230, 255), Part.GLASSES)
        canvas.line(rim, acc.glasses_colour, width, Part.GLASSES, closed=True)
        if face.facing((sign, 0, 0.3)) > -0.2:
            arm = [(sign * (spacing + half_w), y - 0.05, z - 0.02), (sign * identity.face_width, y + 0.05, -0.3)]
            canvas.line(face.view.xy(arm), acc.glasses_colour, width, Part.GLASSES)
    bridge = [(-(spacing - half_w), y - 0.04, z), (0, y - 0.08, z + 0.04), (spacing - half_w, y - 0.04, z)]
    canvas.line(face.view.xy(bridge), acc.glasses_colour, width, Part.GLASSES)


def _hat_line(acc: Accessories, azimuth) -> np.ndarray:
    """Height of the hat's lower edge around the head: `hat_line` in front, lower at the sides and back (level all
    round for the sun hat, whose brim is flat)."""
    front = acc.hat_line
    side, back = (front, front) if acc.hat == "sunhat" else (front + 0.3, front + 0.5)
    c = np.cos(azimuth)
    return np.where(c >= 0, side + (front - side) * c, side + (back - side) * (-c))


def _crown(face: PosedFace, acc: Accessories) -> tuple[np.ndarray, np.ndarray]:
    """The hat's crown: points on an inflated skull above the hat line (3-D), and whether each faces the camera."""
    skull = face.skull
    grid, azimuth, height = skull.grid(CONTOUR_TOP_Y, 1.14)
    ring = np.linspace(-np.pi, np.pi, 36, endpoint=False)
    crown = np.concatenate([grid[height < _hat_line(acc, azimuth)], skull.at(ring, _hat_line(acc, ring), 1.14)])
    if acc.hat == "sunhat":
        crown = crown + np.array([0, -0.12, 0]) * (crown[:, 1:2] < acc.hat_line - 0.3)
    facing = face.view.facing(unit((crown - skull.center) / skull.radii ** 2)) > 0
    return crown, facing


def _brim(acc: Accessories) -> tuple[np.ndarray, np.ndarray]:
    """The sun hat's flat brim, split into its back and front halves (3-D)."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    rim = np.stack([1.7 * np.cos(t), np.full_like(t, acc.hat_line + 0.03), -0.35 + 1.6 * np.sin(t)], -1)
    return rim[np.sin(t) <= 0], rim[np.sin(t) >= 0]


def hat_back(face: PosedFace, canvas: Canvas, acc: Accessories) -> None:
    # Drawn before the head: the parts of the hat behind it (the whole crown, and the brim's back half) show only
    # where the head does not cover them, so they hide no keypoint.
    if acc.hat == "sunhat":
        canvas.fill([face.view.xy(_brim(acc)[0])], shade(acc.hat_colour, 0.8), Part.HAT)
    crown, _ = _crown(face, acc)
    canvas.fill([hull(face.view.xy(crown))], acc.hat_colour, Part.HAT)


def hat_front(face: PosedFace, canvas: Canvas, acc: Accessories) -> None:
    """The hat's front over the forehead, and the sun hat's band and brim, the cap's visor or the beanie's band and
    bobble."""
    skull, colour = face.skull, acc.hat_colour
    crown, facing = _crown(face, acc)
    if facing.sum() >= 3:
        canvas.fill([hull(face.view.xy(crown[facing]))], colour, Part.HAT, occludes=True)
    front = acc.hat_line
    azimuth = np.linspace(-1.7, 1.7, 25)
    azimuth = azimuth[face.view.facing(np.stack([np.sin(azimuth), np.zeros(25), np.cos(azimuth)], -1)) > 0]
    if acc.hat == "sunhat":
        band = skull.at(azimuth, front - 0.06, 1.15)
        canvas.line(face.view.xy(band), acc.earring_colour, 0.1 * face.px, Part.HAT, occludes=True)
        canvas.fill([face.view.xy(_brim(acc)[1])], shade(colour, 0.92), Part.HAT, occludes=True)
    elif acc.hat == "cap":
        edge = skull.at(0.0, front, 1.14)
        t = np.linspace(0, np.pi, 15)
        visor = np.stack([0.82 * np.cos(t), front + 0.03 + 0.1 * np.sin(t), edge[2] - 0.3 + 0.8 * np.sin(t)], -1)
        canvas.fill([face.view.xy(visor)], shade(colour, 0.75), Part.HAT, occludes=True)
    else:
        lower = skull.at(azimuth, _hat_line(acc, azimuth), 1.16)
        upper = skull.at(azimuth, _hat_line(acc, azimuth) - 0.22, 1.16)
        if len(azimuth) >= 2:
            canvas.fill([face.view.xy(np.concatenate([lower, upper[::-1]]))], shade(colour, 0.8), Part.HAT,
                        occludes=True)
        top = skull.center + (0, -skull.radii[1] * 1.14 - 0.08, 0)
        bobble = face.view.xy(top) + circle(0.2 * face.px)
        canvas.fill([bobble], mix(colour, (255, 255, 255), 0.5), Part.HAT, occludes=True)


def earrings(face: PosedFace, canvas: Canvas, acc: Accessories) -> None:
    identity = face.identity
    for sign in (-1, 1):
        if face.facing((sign, 0, 0.25)) < -0.2:
            continue
        lobe = face.view.xy((sign * (identity.face_width + 0.04), -0.02 + 0.27 * identity.ear_size, -0.42))
        if acc.earrings == "stud":
            canvas.fill([lobe + circle(0.055 * face.px)], acc.earring_colour, Part.EARRING, occludes=True)
        else:
            hoop = lobe + (0, 0.1 * face.px) + circle(0.1 * face.px)
            canvas.line(hoop, acc.earring_colour, max(1.0, 0.03 * face.px), Part.EARRING, closed=True,
                        occludes=True)

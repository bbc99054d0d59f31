"""Random people: an identity's proportions, colours and hair, and what they wear in a video of a given tier."""
from __future__ import annotations

import numpy as np

from bigo_facegen.synthetic.accessories import HAT_STYLES, Accessories
from bigo_facegen.synthetic.canvas import mix, shade
from bigo_facegen.synthetic.template import CONTOUR_TOP_Y, HAIR_STYLES, Identity

SKIN_TONES = np.array([(255, 226, 204), (246, 206, 176), (234, 186, 150), (222, 168, 124), (198, 140, 98),
                       (170, 112, 74), (130, 84, 54), (96, 62, 42)], np.float64)
_HAIR_COLOURS = np.array([(20, 16, 14), (45, 30, 20), (85, 55, 32), (128, 82, 44), (165, 96, 48), (212, 170, 100),
                          (232, 210, 160), (180, 180, 176), (60, 60, 66), (40, 70, 150), (150, 50, 110)], np.float64)
_IRIS_COLOURS = np.array([(70, 42, 24), (110, 72, 36), (96, 110, 50), (60, 110, 80), (70, 120, 170),
                          (110, 140, 170), (40, 30, 28)], np.float64)
# Per tier: number of accessories (inclusive range).
_ACCESSORY_COUNT = {"easy": (0, 1), "medium": (1, 2), "hard": (2, 3)}


def random_identity(rng: np.random.Generator) -> Identity:
    """A random person: proportions, colours, hair."""
    u = rng.uniform
    style = str(rng.choice(HAIR_STYLES, p=[0.08, 0.24, 0.2, 0.2, 0.16, 0.12]))
    tone = u(0, len(SKIN_TONES) - 1)
    low = int(tone)
    skin = SKIN_TONES[low] + (tone - low) * (SKIN_TONES[min(low + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[low])
    skin = np.clip(skin + rng.normal(0, 5, 3), 0, 255)
    if rng.random() < 0.2:
        lips = mix(np.array([(196, 30, 58), (170, 40, 100), (222, 92, 122), (140, 40, 50)])[rng.integers(4)],
                    skin, 0.15)
    else:
        lips = shade(mix(skin, (205, 80, 90), u(0.3, 0.55)), u(0.78, 0.95))
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * u(0.85, 1.15) + rng.normal(0, 6, 3), 0, 255)
    fringe = u(0.3, 0.48) if style == "fringe" or (style == "bob" and rng.random() < 0.5) else 0.0
    face_length, eye_y = u(1.1, 1.45), u(-0.3, -0.18)
    eye_to_chin = CONTOUR_TOP_Y + face_length - eye_y      # nose and mouth sit at proportions of it
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


"""Drawing the features the keypoints mark: brows, eyes, nose and mouth. The eye, brow and lip outlines are splines
through their keypoints and the pupils are centred on 104/105, so that the keypoints are where the features are."""
from __future__ import annotations

import numpy as np

from bigo_facegen.synthetic.canvas import Canvas, Part, mix, shade, spline
from bigo_facegen.synthetic.pose import PUPILS, PosedFace
from bigo_facegen.synthetic.template import ring

PUPIL = (12, 10, 10)
EYE_WHITE = (246, 244, 240)
MOUTH_INTERIOR = (92, 24, 32)
TEETH = (248, 246, 236)
TONGUE = (196, 84, 92)


def brows(face: PosedFace, canvas: Canvas) -> None:
    identity = face.identity
    colour = shade(identity.hair, 0.8) if identity.hair_style != "bald" else shade(identity.skin, 0.45)
    for upper, lower in (([33, 34, 35, 36, 37], [64, 65, 66, 67, 33]), ([38, 39, 40, 41, 42], [68, 69, 70, 71, 38])):
        polygon = np.concatenate([spline(face.points[upper]), spline(face.points[lower])[:-1]])
        canvas.fill([polygon], colour, Part.BROW)


def eyes(face: PosedFace, canvas: Canvas) -> None:
    """Each eye: the white, the iris, pupil and glint clipped to the opening, the crease, the lower lid and lashes."""
    identity, skin = face.identity, face.identity.skin
    radius = 0.085 * identity.eye_size
    for side, pupil in enumerate(PUPILS):
        top, bottom = face.eye_lids(side)
        opening = face.eye_opening(side)
        canvas.fill([opening], EYE_WHITE, Part.EYE_WHITE)
        centre = face.pts3[pupil]
        with canvas.clipped(opening) as layer:
            layer.fill([face.view.xy(ring(centre, (radius, 0, 0), (0, radius, 0), 20))], identity.iris, Part.IRIS)
            pupil_radius = 0.45 * radius
            layer.fill([face.view.xy(ring(centre, (pupil_radius, 0, 0), (0, pupil_radius, 0), 14))], PUPIL,
                       Part.PUPIL)
            glint = centre + (-0.45 * radius, -0.45 * radius, 0.01)
            glint_radius = 0.2 * radius
            layer.fill([face.view.xy(ring(glint, (glint_radius, 0, 0), (0, glint_radius, 0), 8))],
                       (255, 255, 255), Part.IRIS)
        crease = top + face.pixels((0, -0.05 * identity.eye_size, 0))
        canvas.line(crease[2:-2], shade(skin, 0.75), 0.02 * face.px, Part.SKIN)
        canvas.line(bottom, shade(skin, 0.62), 0.015 * face.px, Part.EYELID)
        canvas.line(top, (34, 24, 24), face.lash_width, Part.EYELID)


def nose(face: PosedFace, canvas: Canvas, light: float) -> None:
    """The bridge's highlight on the side away from `light` (x of the light direction), tip, wings and nostrils."""
    skin, p, width = face.identity.skin, face.points, max(1.0, 0.025 * face.px)
    dark = shade(skin, 0.68)
    bridge_side = -np.sign(light) or 1.0
    bridge = p[[44, 45, 46]] + face.pixels((bridge_side * 0.06, 0, 0))
    canvas.line(bridge, shade(skin, 0.86), 0.035 * face.px, Part.NOSE)
    tip = ring(face.pts3[46] + (0, 0.0, 0.02), (0.06, 0, 0), (0, 0.045, 0), 12)
    canvas.fill([face.view.xy(tip)], mix(skin, (255, 255, 255), 0.18), Part.NOSE)
    for wing in ([78, 80, 82, 47], [79, 81, 83, 51]):
        canvas.line(spline(p[wing]), dark, width, Part.NOSE)
    base_y, nw = face.identity.nose_length, face.identity.nose_width
    for sign in (-1, 1):
        nostril = ring((sign * 0.45 * nw, base_y - 0.03, 0.6), (0.055, 0, 0), (0, 0.025, 0.01), 12)
        canvas.fill([face.view.xy(nostril)], shade(skin, 0.42), Part.NOSE)
    canvas.line(spline(p[[48, 49, 50]]), dark, width, Part.NOSE)


def mouth(face: PosedFace, canvas: Canvas) -> None:
    """The lips, and when they part the mouth's interior with teeth and tongue."""
    lips, p = face.identity.lips, face.points
    outer_top, outer_bottom = spline(p[84:91]), spline(p[[90, 91, 92, 93, 94, 95, 84]])
    inner_top, inner_bottom = spline(p[96:101]), spline(p[[100, 101, 102, 103, 96]])
    canvas.fill([np.concatenate([outer_top, outer_bottom[1:-1]])], lips, Part.LIPS)
    canvas.fill([np.concatenate([outer_top, inner_top[::-1]])], shade(lips, 0.86), Part.LIPS)
    inner = np.concatenate([inner_top, inner_bottom[1:-1]])
    gap = float(face.pts3[102, 1] - face.pts3[98, 1])
    if gap > 0.015:
        canvas.fill([inner], MOUTH_INTERIOR, Part.MOUTH_INTERIOR)
        with canvas.clipped(inner) as layer:
            teeth = inner_top + face.pixels((0, min(0.06, 0.3 * gap), 0))
            layer.fill([np.concatenate([inner_top, teeth[::-1]])], TEETH, Part.TEETH)
            width = 0.28 * (face.pts3[100, 0] - face.pts3[96, 0])
            tongue = ring(face.pts3[102] + (0, 0.05 * gap, -0.02), (width, 0, 0), (0, 0.3 * gap, 0), 16)
            layer.fill([face.view.xy(tongue)], TONGUE, Part.MOUTH_INTERIOR)
    canvas.line(inner_top, shade(lips, 0.5), max(1.0, 0.02 * face.px), Part.LIPS)

"""Drawing the head around the features: the hair behind the head and in front of it, the body and neck, the ears,
the skin with its light, a beard and blush."""
from __future__ import annotations

import numpy as np

from bigo_facegen.synthetic.canvas import Canvas, Part, hull, mix, shade, spline
from bigo_facegen.synthetic.pose import PosedFace, rotation
from bigo_facegen.synthetic.template import CONTOUR_TOP_Y, hair_line, ring, unit


def hair_mass(face: PosedFace, canvas: Canvas) -> None:
    """The hair behind the head: a cap over the skull above the hairline, falling to the shoulders when long."""
    identity, skull = face.identity, face.skull
    if identity.hair_style == "bald":
        return
    grid, azimuth, height = skull.grid(CONTOUR_TOP_Y)
    covered = grid[height < hair_line(identity, azimuth)]
    cap = skull.center + (covered - skull.center) * identity.hair_volume
    parts = [cap, skull.hair_edge(identity, 1.02)]
    if identity.hair_style in ("long", "bob"):
        drop = 1.45 if identity.hair_style == "long" else 0.7
        flare = 1.3 if identity.hair_style == "long" else 1.15
        w = identity.face_width
        parts.append([(sign * w * width, y, z) for sign in (-1, 1) for y, width in ((0.0, 1.12), (drop, flare))
                      for z in (-0.1, -0.9)])
    outline = hull(face.view.xy(np.concatenate([np.asarray(p, np.float64).reshape(-1, 3) for p in parts])))
    canvas.fill([outline], identity.hair, Part.HAIR)
    # A sheen across the crown, clipped to the hair.
    sheen = face.view.xy(skull.at(np.linspace(-0.9, 0.9, 9), CONTOUR_TOP_Y - identity.hairline - 0.22,
                                  identity.hair_volume))
    with canvas.clipped(outline, 0.35) as layer:
        layer.line(sheen, mix(identity.hair, (255, 255, 255), 0.35), 0.08 * face.px, Part.HAIR)


def body(face: PosedFace, canvas: Canvas, clothes) -> None:
    """Shoulders in `clothes` turning a third as far as the head, the neck and a collar."""
    pose, w = face.pose, face.identity.face_width
    pivot = np.array([0.0, 1.05, -0.35])
    anchor = face.view.xy(pivot)
    body_rotation = rotation(0.3 * pose.yaw, 0.2 * pose.pitch, 0.3 * pose.roll)

    def body_xy(points):
        return anchor + ((np.asarray(points, np.float64) - pivot) @ body_rotation.T)[:, :2] * face.px

    outline = [(-0.5, 1.5), (-1.3, 1.78), (-1.95, 2.15), (-2.2, 2.8), (-2.35, 6.0), (2.35, 6.0), (2.2, 2.8),
               (1.95, 2.15), (1.3, 1.78), (0.5, 1.5)]
    torso = body_xy([(x * w, y, -0.4) for x, y in outline])
    canvas.fill([torso], clothes, Part.BODY)
    neck = np.concatenate([face.view.xy([(-0.42 * w, 0.45, -0.3), (0.42 * w, 0.45, -0.3)]),
                           body_xy([(0.46 * w, 1.75, -0.35), (-0.46 * w, 1.75, -0.35)])])
    canvas.fill([neck], shade(face.identity.skin, 0.8), Part.NECK)
    x = np.linspace(-0.62, 0.62, 9) * w
    collar = body_xy(np.stack([x, 1.58 + 0.2 * (1 - (x / (0.62 * w)) ** 2), np.full_like(x, -0.3)], -1))
    canvas.line(collar, shade(clothes, 0.6), 0.07 * face.px, Part.BODY)


def ears(face: PosedFace, canvas: Canvas) -> None:
    identity, w = face.identity, face.identity.face_width
    for sign in (-1, 1):
        centre = np.array([sign * (w - 0.02), -0.02, -0.38])
        vertical = np.array([0.0, 0.3 * identity.ear_size, 0.0])
        outward = unit([sign * 0.8, 0.0, -1.0]) * 0.21 * identity.ear_size
        canvas.fill([face.view.xy(ring(centre, outward, vertical, 20))], shade(identity.skin, 0.93), Part.EAR)
        inner = ring(centre + 0.3 * outward, 0.5 * outward, 0.62 * vertical, 16)
        canvas.line(face.view.xy(inner), shade(identity.skin, 0.72), 0.03 * face.px, Part.EAR, closed=True)


def skin(face: PosedFace, canvas: Canvas, light: float) -> None:
    """The face's skin in shadow, and lit from `light` (x of the light direction) inside its outline."""
    identity, skull = face.identity, face.skull
    grid, azimuth, height = skull.grid(CONTOUR_TOP_Y)
    # The outline is the hull of the jaw, the skull below the hair, the features (so that on a large yaw the far
    # eye and mouth stay on the face) and cheeks bulging in front of the jaw.
    jaw = face.pts3[2:31]
    cheeks = jaw * (0.88, 1.0, 1.0) + np.c_[np.zeros((len(jaw), 2)), 0.35 * np.abs(jaw[:, 0])]
    parts = [face.pts3, cheeks]
    if identity.hair_style == "bald":
        parts.append(grid)
    else:
        parts.append(grid[height >= hair_line(identity, azimuth)])
        parts.append(skull.hair_edge(identity))
    outline = hull(face.view.xy(np.concatenate(parts)))
    canvas.fill([outline], shade(identity.skin, 0.84), Part.SKIN)
    centre = outline.mean(axis=0)
    lit = centre + (outline - centre) * 0.97 + np.array([light * 0.14, -0.05]) * face.px
    with canvas.clipped(outline) as layer:
        layer.fill([lit], identity.skin, Part.SKIN)


def beard_and_blush(face: PosedFace, canvas: Canvas) -> None:
    identity = face.identity
    if identity.blush > 0:
        for sign in (-1, 1):
            cheek = ring((sign * 0.55 * identity.face_width, 0.32, 0.45), (0.17, 0, 0), (0, 0.1, 0), 16)
            if face.facing((sign * 0.6, 0, 1)) > 0:
                polygon = face.view.xy(cheek)
                with canvas.clipped(polygon, identity.blush) as layer:
                    layer.fill([polygon], (225, 95, 105), Part.SKIN)
    if identity.beard:
        w, mw, my, nose = identity.face_width, identity.mouth_width, identity.mouth_y, identity.nose_length
        upper = [(0.9 * w, 0.05, -0.1), (0.72 * w, 0.5, 0.25), (mw + 0.08, my - 0.02, 0.42),
                 (0.5 * mw, nose + 0.07, 0.55), (0.0, nose + 0.09, 0.62)]
        upper += [(-x, y, z) for x, y, z in upper[-2::-1]]
        beard = np.concatenate([face.points[3:30], spline(face.view.xy(upper), 4)])
        canvas.fill([beard], mix(identity.hair, identity.skin, 0.2), Part.HAIR)


def front_hair(face: PosedFace, canvas: Canvas) -> None:
    """Hair in front of the face, hiding what it covers: the fringe, and the side locks of long hair and bobs."""
    identity, hair, skull = face.identity, face.identity.hair, face.skull
    if identity.fringe > 0:
        azimuth = np.linspace(-1.15, 1.15, 15)
        top_y = np.minimum(hair_line(identity, azimuth), CONTOUR_TOP_Y)
        strands = 1 + 0.15 * (-1) ** np.arange(15)
        fall = identity.fringe * np.cos(azimuth) ** 1.5 * strands
        top = skull.at(azimuth, top_y - 0.02, 1.04)
        bottom = skull.at(azimuth, top_y + fall, 1.05)
        canvas.fill([face.view.xy(np.concatenate([top, bottom[::-1]]))], hair, Part.HAIR, occludes=True)
    if identity.hair_style in ("long", "bob"):
        w = identity.face_width
        drop = 1.35 if identity.hair_style == "long" else 0.7
        for sign in (-1, 1):
            if face.facing((sign, 0, 0.35)) < -0.25:
                continue
            top = skull.at(sign * 1.15, hair_line(identity, 1.15) - 0.05, 1.04)
            inner = [(sign * w * x, y, 0.02) for x, y in ((0.86, -0.45), (0.94, 0.0), (0.95, 0.45), (1.0, drop))]
            outer = [(sign * w * x, y, -0.4) for x, y in ((1.1, drop + 0.1), (1.22, 0.45), (1.2, 0.0),
                                                          (1.12, -0.55))]
            lock = face.view.xy(np.concatenate([top[None], inner, outer, top[None]]))
            canvas.fill([spline(lock, 4)], hair, Part.HAIR, occludes=True)

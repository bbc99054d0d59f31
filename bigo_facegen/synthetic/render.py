"""One frame: a posed face drawn back to front into its scene, a passing occluder in front, and the frame's
annotation (keypoints, flags, box; the package docstring says how they are decided)."""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from bigo_facegen import annotations
from bigo_facegen.synthetic import features, head
from bigo_facegen.synthetic.accessories import Accessories, earrings, glasses, hat_back, hat_front
from bigo_facegen.synthetic.canvas import Canvas, Part, circle, mix, shade
from bigo_facegen.synthetic.pose import PUPILS, Pose, PosedFace
from bigo_facegen.synthetic.template import CONTOUR_TOP_Y, Expression, Identity

BOX_SCALE = 1.8
_HIDDEN_NORMAL_Z = -0.15    # a point whose rotated normal points further away than this is self-occluded


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


def plain_scene(frame_size=(256, 256), colour=(120, 128, 136)) -> Scene:
    """A flat background of `frame_size` (width, height)."""
    width, height = frame_size
    return Scene(background=np.full((height, width, 3), colour, np.uint8))


def render_frame(identity: Identity, pose: Pose, expression: Expression = Expression(), *,
                 accessories: Accessories = Accessories(), scene: Scene | None = None,
                 occluder: Occluder | None = None, frame_size=(256, 256), with_labels: bool = False) -> RenderedFrame:
    """Draws one face and annotates it (package docstring: flags and bbox). `frame_size` is (width, height) and is
    taken from `scene.background` when a scene is given."""
    scene = scene if scene is not None else plain_scene(frame_size)
    height, width = scene.background.shape[:2]
    canvas = Canvas(scene.background.copy(), np.zeros((height, width), np.uint8) if with_labels else None,
                    np.zeros((height, width), np.uint8))
    face = PosedFace(identity, expression, pose)
    _draw_face(face, canvas, accessories, scene)
    if occluder is not None:
        _draw_occluder(canvas, occluder)
    image = cv2.transform(canvas.image, scene.grade)
    points = face.points.astype(np.float32)
    flags = _flags(face, canvas.occlusion)
    bbox = _face_box(face, width, height)
    return RenderedFrame(image=image, points=points, flags=flags, bbox=bbox, labels=canvas.labels)


def _draw_face(face: PosedFace, canvas: Canvas, accessories: Accessories, scene: Scene) -> None:
    """In painter's order: what is behind the head, the head, the features, what is in front of them."""
    head.hair_mass(face, canvas)
    head.body(face, canvas, scene.clothes)
    if accessories.hat:
        hat_back(face, canvas, accessories)
    head.ears(face, canvas)
    head.skin(face, canvas, scene.light)
    head.beard_and_blush(face, canvas)
    features.brows(face, canvas)
    features.eyes(face, canvas)
    features.nose(face, canvas, scene.light)
    features.mouth(face, canvas)
    head.front_hair(face, canvas)
    if accessories.glasses:
        glasses(face, canvas, accessories)
    if accessories.hat:
        hat_front(face, canvas, accessories)
    if accessories.earrings:
        earrings(face, canvas, accessories)


def _draw_occluder(canvas: Canvas, occluder: Occluder) -> None:
    centre, r = np.asarray(occluder.center, np.float64), float(occluder.radius)
    outline = circle(1.0, 32)
    rotation = np.array([[math.cos(occluder.angle), -math.sin(occluder.angle)],
                         [math.sin(occluder.angle), math.cos(occluder.angle)]])
    if occluder.kind == "ball":
        canvas.fill([centre + r * outline], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.fill([centre + r * (0.25 * outline - 0.4)], mix(occluder.colour, (255, 255, 255), 0.6), Part.OCCLUDER)
    elif occluder.kind == "card":
        corners = np.array([(-0.65, -1.0), (0.65, -1.0), (0.65, 1.0), (-0.65, 1.0)]) * r
        canvas.fill([centre + corners @ rotation.T], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.line(centre + (corners * 0.8) @ rotation.T, shade(occluder.colour, 0.6), max(1.0, 0.06 * r),
                    Part.OCCLUDER, closed=True)
    else:
        palm = centre + (r * outline * (0.62, 0.72)) @ rotation.T
        shapes = [palm]
        for i, dx in enumerate((-0.45, -0.15, 0.15, 0.45)):
            finger = (outline * (0.14, 0.42) + (dx, -0.95 - 0.08 * (i in (1, 2)))) * r
            shapes.append(centre + finger @ rotation.T)
        thumb = (outline * (0.13, 0.36)) @ np.array([[0.7, -0.7], [0.7, 0.7]]) + (0.7, -0.2)
        shapes.append(centre + (thumb * r) @ rotation.T)
        for shape in shapes:
            canvas.fill([shape], occluder.colour, Part.OCCLUDER, occludes=True)
        canvas.line(palm, shade(occluder.colour, 0.8), max(1.0, 0.04 * r), Part.OCCLUDER, closed=True)


def _flags(face: PosedFace, occlusion: np.ndarray) -> np.ndarray:
    height, width = occlusion.shape
    x, y = face.points[:, 0], face.points[:, 1]
    inside = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    column = np.clip(np.round(x), 0, width - 1).astype(int)
    row = np.clip(np.round(y), 0, height - 1).astype(int)
    covered = inside & (occlusion[row, column] > 0)
    turned_away = face.view.facing(face.normals) < _HIDDEN_NORMAL_Z
    hidden = covered | turned_away | ~inside
    # A pupil is seen only inside the eye opening, clear of the lash line drawn along the upper lid.
    for side, pupil in enumerate(PUPILS):
        clearance = cv2.pointPolygonTest(face.eye_opening(side).astype(np.float32).reshape(-1, 1, 2),
                                         tuple(float(v) for v in face.points[pupil]), True)
        hidden[pupil] |= clearance < 0.5 * face.lash_width + 0.5
    return np.where(hidden, annotations.FLAG_OCCLUDED, annotations.FLAG_VISIBLE).astype(np.int32)


def _face_box(face: PosedFace, width: int, height: int) -> np.ndarray | None:
    forehead = face.skull.at(np.linspace(-1.2, 1.2, 7), CONTOUR_TOP_Y - 0.85)
    extent = np.concatenate([face.points, face.view.xy(forehead)])
    x0, y0 = np.maximum(extent.min(axis=0), -0.5)
    x1, y1 = np.minimum(extent.max(axis=0), (width - 0.5, height - 0.5))
    if x1 <= x0 or y1 <= y0:
        return None
    side = BOX_SCALE * max(x1 - x0, y1 - y0)
    return np.array([(x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side, side], np.float32)

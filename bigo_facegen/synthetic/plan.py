"""A random video, drawn up front as a `VideoPlan` (the person, what they wear, and per frame the pose, expression,
passing occluder and background), and its frames. Tiers follow the challenge: easy = small pose change and few
accessories, medium = moderate, hard = large pose change (yaw up to about 60 degrees), many accessories and passing
occluders."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from bigo_facegen.bigo_folder import TIERS
from bigo_facegen.synthetic.accessories import Accessories
from bigo_facegen.synthetic.canvas import mix, shade
from bigo_facegen.synthetic.people import SKIN_TONES, random_accessories
from bigo_facegen.synthetic.pose import Pose
from bigo_facegen.synthetic.render import Occluder, Scene, render_frame
from bigo_facegen.synthetic.template import Expression, Identity, unit

# Per tier: amplitude of pose change (yaw, pitch, roll in degrees) around a base pose drawn within +-base.
_POSE_AMPLITUDE = {"easy": (7.0, 4.0, 4.0), "medium": (22.0, 10.0, 10.0), "hard": (42.0, 18.0, 18.0)}
_POSE_BASE = {"easy": (6.0, 4.0, 3.0), "medium": (12.0, 6.0, 6.0), "hard": (18.0, 8.0, 8.0)}
# Per tier: chance of a passing occluder.
_OCCLUDER_CHANCE = {"easy": 0.0, "medium": 0.35, "hard": 0.6}


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
    direction = unit(rng.normal(size=2))
    yy, xx = np.mgrid[0:height, 0:width]
    t = (xx * direction[0] + yy * direction[1]) / max(width, height)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    image = np.ascontiguousarray((colours[0] * (1 - t[..., None]) + colours[1] * t[..., None]).astype(np.uint8))
    size = max(width, height)
    for _ in range(int(rng.integers(12, 36))):
        colour = tuple(int(v) for v in mix(rng.integers(0, 256, 3), (128, 128, 128), rng.uniform(0, 0.6)))
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
    colour = tuple(rng.uniform(0, 255, 3)) if kind != "hand" else shade(SKIN_TONES[rng.integers(8)], 0.95)
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


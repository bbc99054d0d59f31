"""Gaze transfer: the photo's irises moved, within the output's eye openings, to where the driver looks.

    finder = iris.IrisFinder()
    irises = photo_irises(photo, photo_points, finder(photo, photo_points))    # once; None for an eye not found
    wanted = follow(irises, measure(finder, driving_frames, driving_track), fps)   # (T, 2, 2), per driving frame
    painter = GazePainter(irises)
    frame = painter(frame, target_points, wanted[t])     # the output frame with its pupils moved

Offsets are `iris.Gaze.offset`'s: per eye (image-left, image-right), the iris centre along the eye-corner line and
across it (image-down), in half corner distances, from the corners' midpoint.

An eye's opening (`eye_opening`) is the outline of its lids, each the cubic through its four points (the corners and
its own two) over the corner line: the six points' hexagon would cut the lids' curves short and leave a rim of the old
iris beside the new.

1. The photo's irises (`photo_irises`): each iris the finder found is cut from the photo in its eye's frame (the corner
   line, half a corner distance a unit, the photo's pixels), a disk of the finder's radius; the part of the disk the
   photo's lids hide is inpainted from the part they show, so that a moved iris has no hole. An eye that is closed,
   too small, whose iris centre lies outside its opening or whose iris radius is implausible is not used, and
   `photo_irises` says why in one line for both eyes.
2. The driver's gaze (`measure`, `follow`): the finder's offsets on each driving frame, unknown where there is no face
   or the eye is closed; `follow` moves the photo's offsets by the driver's motion since its reference frame (the first
   with both eyes measured), as `motion_transfer`'s relative mode moves points: a driver who looks where it looked in
   its first frame leaves the photo's gaze as it is. Both eyes get the mean of the two eyes' motions (eyes turn
   together, and the mean has sqrt(2) less of the finder's noise); an unknown frame keeps the last motion; a One-Euro
   filter (`motion_transfer`'s) smooths it.
3. The repaint (`GazePainter`), per eye of each output frame, inside the target's eye opening (so that the lids cover
   the iris): the photo's iris where the output shows it (its centre moved by the affine map that takes the photo's
   six eye points nearest to the target's, as the warp moves it) is filled from the eye's own sclera (OpenCV's
   inpainting, fed the sclera's colour in place of lids and lashes so that they do not bleed in), and the photo's
   iris is drawn at the wanted offset, kept within the eye; the result is blended into the frame over a soft band
   inside the opening's edge. Pixels outside the openings are not touched. An eye whose opening (`opening`, the eye
   aspect ratio) is below `closed`, or whose corner distance is below `min_eye_px`, is left as it is (said once per
   painter, counted in `skipped`).
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Sequence

import cv2
import numpy as np
from absl import logging
from OneEuroFilter import OneEuroFilter

from bigo_facegen import motion_transfer
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.iris import EYE_CORNERS, Gaze, IrisFinder

# ibug68's eyes, image-left then image-right: six points each, around the opening (a corner, two on the upper lid, the
# other corner, two on the lower lid).
EYE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
EYE_NAMES = ("image-left", "image-right")
# Points per lid of an opening's outline.
LID_SAMPLES = 12
# Pixels of an opening darker than this share of its sclera's brightness are not sclera (lashes, lid edges).
SCLERA_SHARE = 0.8
# Samples a pixel side of the opening's soft edge.
SUPERSAMPLE = 4
# The iris radii the finder may give, in half corner distances: 0.28 to 0.49 (median 0.42) on the open eyes of the dev
# clips' first frames; well outside this it found something else (glasses, a shadow).
IRIS_RADII = (0.2, 0.7)


# The smoothing, as measured (scratch, 2026-12-07, f49db9e: 4 dev drivers that look about, each driving up to 4
# test-split photos through the warp, the output's horizontal offset against the driver's; correlation median / the
# output's frame-to-frame noise): One-Euro (1, 5), motion_transfer's, 0.974 / 0.0084; none 0.977 / 0.0119 (the
# driver's noise passed on); (1, 1) 0.955 / 0.0076; (3, 1) 0.969 / 0.0090. `closed` at 0.12 or 0.18 changes nothing
# there; below 0.15 the iris shows as a slit at most (dev clips' blinks).
@dataclasses.dataclass(frozen=True)
class GazeSettings:
    """How the gaze moves (lengths in half corner distances unless said; see the module doc)."""
    closed: float = 0.15          # eye aspect ratio below which an eye counts as closed
    min_eye_px: float = 16.0      # corner distance in pixels below which an eye is left as it is
    erase: float = 1.3            # the output's old iris refilled out to this many iris radii
    feather: float = 0.08         # the soft band inside the opening's edge
    min_cutoff: float = motion_transfer.DEFAULT_MIN_CUTOFF   # One-Euro settings of the driver's gaze (Hz, and per
    beta: float = motion_transfer.DEFAULT_BETA               # half corner distance a second)

    def __post_init__(self):
        for name in ("closed", "min_eye_px", "feather", "min_cutoff"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gaze setting {name} must be positive, got {getattr(self, name)}")
        if not self.erase >= 1 or not self.beta >= 0:
            raise ValueError(f"gaze settings need erase >= 1 (iris radii) and beta >= 0, got {self.erase} and "
                             f"{self.beta}")


@dataclasses.dataclass(frozen=True)
class Iris:
    """One eye's iris on the photo: its `offset` (2,) and `radius` (half corner distances), its `centre` (2,) among
    the eye's six `points` (6, 2) (photo pixels), and its appearance: `pixels` (S, S, 3) float32 and `alpha` (S, S)
    float32 (the disk), drawn in the eye's frame at `scale` pixels a unit, the iris centre at the middle."""
    offset: np.ndarray
    radius: float
    centre: np.ndarray
    points: np.ndarray
    pixels: np.ndarray
    alpha: np.ndarray
    scale: float


@dataclasses.dataclass(frozen=True)
class _EyeFrame:
    """An eye's frame in an image: the corners' midpoint, the unit (half the corner distance, pixels) and the rotation
    whose columns are the along and across directions."""
    middle: np.ndarray
    unit: float
    rotation: np.ndarray

    @classmethod
    def of(cls, points: np.ndarray, eye: int) -> _EyeFrame:
        left, right = points[EYE_CORNERS[eye][0]], points[EYE_CORNERS[eye][1]]
        unit = np.linalg.norm(right - left) / 2
        along = (right - left) / (2 * unit)
        return cls((left + right) / 2, float(unit), np.array([[along[0], -along[1]], [along[1], along[0]]]))

    def to_pixels(self, offset: np.ndarray) -> np.ndarray:
        """Offsets (..., 2) to pixels (..., 2)."""
        return self.middle + self.unit * np.asarray(offset) @ self.rotation.T

    def to_offset(self, pixels: np.ndarray) -> np.ndarray:
        return (np.asarray(pixels) - self.middle) @ self.rotation / self.unit


def eye_opening(points: np.ndarray, eye: int, samples: int = LID_SAMPLES) -> np.ndarray:
    """The outline (2 x samples, 2) of an eye's opening in pixels (see the module doc)."""
    points = np.asarray(points, np.float64)
    frame = _EyeFrame.of(points, eye)
    ring = frame.to_offset(points[list(EYE_POINTS[eye])])
    outline = []
    for lid in (ring[[0, 1, 2, 3]], ring[[3, 4, 5, 0]]):
        # A lid whose points are not ordered along the corner line (a face seen from far aside) keeps its polygon.
        if not (np.all(np.diff(lid[:, 0]) > 0) or np.all(np.diff(lid[:, 0]) < 0)):
            outline.append(lid[:-1])
            continue
        along = np.linspace(lid[0, 0], lid[-1, 0], samples, endpoint=False)
        outline.append(np.stack([along, np.polyval(np.polyfit(lid[:, 0], lid[:, 1], 3), along)], axis=1))
    return frame.to_pixels(np.concatenate(outline))


def opening(points: np.ndarray) -> np.ndarray:
    """Each eye's aspect ratio (2,): the lids' mean distance over the corner distance (Soukupova and Cech 2016),
    about 0.3 open, below 0.15 closed or nearly."""
    points = np.asarray(points, np.float64)
    ratios = []
    for ring in EYE_POINTS:
        p = points[list(ring)]
        lids = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ratios.append(lids / (2 * np.linalg.norm(p[3] - p[0])))
    return np.array(ratios)


def photo_irises(rgb: np.ndarray, points: np.ndarray, gaze: Gaze, settings: GazeSettings = GazeSettings(),
                 source: str = "the photo") -> tuple[Iris | None, Iris | None]:
    """The photo's two irises (image-left, image-right) as `gaze` (the finder's, on this photo) found them; None for an
    eye that cannot be used. The eyes that cannot are said in one log line naming `source` (the photo's file)."""
    points = np.asarray(points, np.float64)
    reasons = _unusable(points, gaze, settings)
    said = [f"its {EYE_NAMES[eye]} eye {why}" for eye, why in enumerate(reasons) if why]
    if said:
        logging.warning("gaze: %s: %s: %s", source, " and ".join(said),
                        "that iris stays as it is" if len(said) == 1 else "neither iris moves (no gaze transfer)")
    left, right = (None if why else _cut_iris(rgb, points, gaze, eye) for eye, why in enumerate(reasons))
    return left, right


def _unusable(points: np.ndarray, gaze: Gaze, settings: GazeSettings) -> list[str | None]:
    """Why each eye of the photo cannot give its iris, or None where it can."""
    reasons = []
    for eye, ratio in enumerate(opening(points)):
        frame = _EyeFrame.of(points, eye)
        inside = cv2.pointPolygonTest(eye_opening(points, eye).astype(np.float32), tuple(map(float, gaze.iris[eye])),
                                      False)
        radius = gaze.radius[eye] / frame.unit
        if 2 * frame.unit < settings.min_eye_px:
            reasons.append(f"is {2 * frame.unit:.0f} px wide, below {settings.min_eye_px:.0f}")
        elif ratio < settings.closed:
            reasons.append(f"is closed (opening {ratio:.2f} < {settings.closed})")
        elif inside < 0:
            reasons.append("has its iris found outside its opening")
        elif not IRIS_RADII[0] <= radius <= IRIS_RADII[1]:
            reasons.append(f"has an iris found {radius:.2f} half corner distances wide, not within {IRIS_RADII}")
        else:
            reasons.append(None)
    return reasons


def _cut_iris(rgb: np.ndarray, points: np.ndarray, gaze: Gaze, eye: int) -> Iris:
    frame = _EyeFrame.of(points, eye)
    radius = gaze.radius[eye] / frame.unit
    half = int(np.ceil(gaze.radius[eye])) + 2
    size = 2 * half + 1
    # Patch pixel q shows the photo at the iris centre + rotation @ (q - half): the eye's frame at the photo's scale.
    to_photo = np.concatenate([frame.rotation, (gaze.iris[eye] - frame.rotation @ [half, half])[:, None]], axis=1)
    pixels = cv2.warpAffine(rgb, to_photo, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    ring = eye_opening(points, eye)
    to_patch = cv2.invertAffineTransform(to_photo)
    shown = _polygon_mask(ring @ to_patch[:, :2].T + to_patch[:, 2], (size, size))
    alpha = _disk((size, size), np.array([half, half], np.float64), gaze.radius[eye])
    hidden = ((alpha > 0) & (shown == 0)).astype(np.uint8)
    if hidden.any() and ((shown > 0) & (alpha > 0)).any():
        pixels = cv2.inpaint(pixels, hidden, 3, cv2.INPAINT_TELEA)
    return Iris(offset=gaze.offset[eye].copy(), radius=float(radius), centre=gaze.iris[eye].copy(),
                points=points[list(EYE_POINTS[eye])].copy(), pixels=pixels.astype(np.float32), alpha=alpha,
                scale=frame.unit)


def measure(finder: IrisFinder, frames: Iterable[np.ndarray], track: Sequence[FrameAnnotation],
            settings: GazeSettings = GazeSettings()) -> np.ndarray:
    """The driver's offsets (T, 2, 2) on each frame of `frames` (RGB uint8) with its `track` (ibug68 points, one
    annotation per frame): NaN for both eyes where there is no face, for an eye where it is closed."""
    offsets = np.full((len(track), 2, 2), np.nan)
    for index, (rgb, annotation) in enumerate(zip(frames, track)):
        offsets[index] = measure_frame(finder, rgb, annotation, settings)
    return offsets


def measure_frame(finder: IrisFinder, rgb: np.ndarray, annotation: FrameAnnotation,
                  settings: GazeSettings = GazeSettings()) -> np.ndarray:
    """The driver's offsets (2, 2) on one frame (`measure`'s row)."""
    offsets = np.full((2, 2), np.nan)
    if annotation.has_face:
        points = annotation.points.astype(np.float64)
        open_eyes = opening(points) >= settings.closed
        if open_eyes.any():
            offsets[open_eyes] = finder(rgb, points).offset[open_eyes]
    return offsets


def follow(irises: Sequence[Iris | None], driving: np.ndarray, fps: float, settings: GazeSettings = GazeSettings()
           ) -> np.ndarray:
    """The wanted offsets (T, 2, 2) of the photo's eyes per driving frame: the photo's offsets moved by the driver's
    gaze motion since its reference frame (see the module doc); NaN for an eye without an iris."""
    follower = GazeFollower(irises, fps, settings)
    return np.array([follower(offsets) for offsets in driving]).reshape(driving.shape)


class GazeFollower:
    """`follow` one driving frame at a time, as a live source gives them: each call takes the driver's offsets (2, 2)
    on the next frame (`measure_frame`) and gives the photo's wanted offsets (2, 2). Nothing in `follow` looks ahead,
    so the two agree exactly."""

    def __init__(self, irises: Sequence[Iris | None], fps: float, settings: GazeSettings = GazeSettings()):
        self.photo = np.stack([np.full(2, np.nan) if iris is None else iris.offset for iris in irises])
        self.fps = fps
        self._filters = [OneEuroFilter(fps, settings.min_cutoff, settings.beta) for _ in range(2)]
        self._reference: np.ndarray | None = None   # the first frame with both eyes measured
        self._motion = np.zeros(2)
        self._index = 0

    def __call__(self, offsets: np.ndarray) -> np.ndarray:
        seen = np.isfinite(offsets).all(axis=1)
        if self._reference is None and seen.all():
            self._reference = offsets
        if self._reference is not None and seen.any():
            raw = (offsets[seen] - self._reference[seen]).mean(axis=0)
            self._motion = np.array([f(value, self._index / self.fps) for f, value in zip(self._filters, raw)])
        self._index += 1
        return self.photo + self._motion[None, :]


class GazePainter:
    """Moves the photo's irises in output frames (see the module doc); `skipped` counts the eyes left as they were,
    by reason."""

    def __init__(self, irises: Sequence[Iris | None], settings: GazeSettings = GazeSettings(),
                 where: str = "an output frame"):
        self.irises = tuple(irises)
        self.settings = settings
        self.where = where   # what it paints, as its log lines say it
        self.skipped: collections.Counter[str] = collections.Counter()

    def __call__(self, rgb: np.ndarray, points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """`rgb` (the output frame, uint8) with each eye's iris moved to `offsets` (2, 2) in the eyes of the ibug68
        `points` (68, 2) of its face; a new array."""
        points, offsets = np.asarray(points, np.float64), np.asarray(offsets, np.float64)
        _check(rgb, points, offsets, [iris is not None for iris in self.irises])
        out = rgb.copy()
        ratios = opening(points)
        for eye, iris in enumerate(self.irises):
            if iris is None:
                continue
            frame = _EyeFrame.of(points, eye)
            if 2 * frame.unit < self.settings.min_eye_px:
                self._skip(f"{EYE_NAMES[eye]} eye narrower than {self.settings.min_eye_px:.0f} px")
            elif ratios[eye] < self.settings.closed:
                self._skip(f"{EYE_NAMES[eye]} eye closed")
            else:
                self._paint(out, points[list(EYE_POINTS[eye])], eye_opening(points, eye), frame, iris,
                            np.asarray(offsets[eye], np.float64))
        return out

    def _skip(self, reason: str) -> None:
        if not self.skipped[reason]:
            logging.info("gaze: %s in %s: it is left as it is (counted from now on)", reason, self.where)
        self.skipped[reason] += 1

    def _paint(self, out: np.ndarray, eye_points: np.ndarray, ring: np.ndarray, frame: _EyeFrame, iris: Iris,
               wanted: np.ndarray) -> None:
        """Repaints one eye of `out` in place: its six points, its opening's outline `ring` and its frame."""
        left, top = np.maximum(np.floor(ring.min(axis=0)).astype(int) - 1, 0)
        right, bottom = np.minimum(np.ceil(ring.max(axis=0)).astype(int) + 2, [out.shape[1], out.shape[0]])
        if right - left < 3 or bottom - top < 3:
            return
        shape = (bottom - top, right - left)
        origin = np.array([left, top], np.float64)
        soft = _soft_inside(ring - origin, shape, max(self.settings.feather * frame.unit, 0.5))
        inside = (soft > 0).astype(np.uint8)
        # Where the output shows the photo's iris: its disk moved as the eye's points moved (the warp moves it so,
        # nearly; an eye opened wider stretches it).
        to_photo = _fit_affine(eye_points - origin, iris.points)
        ys, xs = np.mgrid[:shape[0], :shape[1]]
        from_centre = xs[..., None] * to_photo[:, 0] + ys[..., None] * to_photo[:, 1] + to_photo[:, 2] - iris.centre
        erase = (np.hypot(from_centre[..., 0], from_centre[..., 1]) < self.settings.erase * iris.radius * iris.scale
                 ) & (inside > 0)
        region = out[top:bottom, left:right]
        erase |= _joined_dark(region, soft >= 1, erase)
        eye = _refill(region, inside, erase).astype(np.float32)
        # The wanted centre kept within the eye: its disk between the corners, up or down by at most a radius.
        limit = max(1.0 - iris.radius, 0.0)
        wanted = np.array([np.clip(wanted[0], -limit, limit), np.clip(wanted[1], -iris.radius, iris.radius)])
        centre = frame.to_pixels(wanted) - origin
        drawn = _draw(iris, frame, centre, shape)
        alpha = drawn[..., 3:]
        eye = eye * (1 - alpha) + drawn[..., :3] * alpha
        soft = soft[..., None]
        blended = region.astype(np.float32) * (1 - soft) + eye * soft
        out[top:bottom, left:right] = np.where(soft > 0, np.clip(np.rint(blended), 0, 255), region).astype(np.uint8)


def _check(rgb: np.ndarray, points: np.ndarray, offsets: np.ndarray, used: list[bool]) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"gaze: expected an RGB uint8 frame (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"gaze: expected dlib's 68 finite points (68, 2), got shape {points.shape}")
    if offsets.shape != (2, 2) or not np.isfinite(offsets[used]).all():
        raise ValueError(f"gaze: expected finite offsets (2, 2) for the eyes with an iris, got {offsets.tolist()}")


def _refill(region: np.ndarray, inside: np.ndarray, erase: np.ndarray) -> np.ndarray:
    """`region` with its `erase` pixels filled from the sclera: inpainted from the opening's other pixels, where those
    darker than `SCLERA_SHARE` of the sclera's colour (lashes, lid edges) and those outside the opening take that
    colour, so that only sclera bleeds in. The sclera's colour: the median of the brighter half of the opening's
    pixels that are not erased."""
    kept = (inside > 0) & ~erase
    if not erase.any() or not kept.any():
        return region
    luminance = region.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    brighter = kept & (luminance >= np.median(luminance[kept]))
    colour = np.median(region[brighter], axis=0)
    sclera = kept & (luminance >= SCLERA_SHARE * np.median(luminance[brighter]))
    seeded = np.where(sclera[..., None], region, colour.astype(np.uint8))
    filled = cv2.inpaint(seeded, erase.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return np.where(erase[..., None], filled, region)


def _joined_dark(region: np.ndarray, deep: np.ndarray, erase: np.ndarray) -> np.ndarray:
    """The pixels of `region` in `deep` (the opening less its feathered rim, where the lids and lashes are) that are
    darker than `SCLERA_SHARE` of the sclera and joined to `erase`: the photo's iris where the output stretched it
    past its moved disk (an eye opened wider than the photo's drags the iris and the lid's shadow down with the lid),
    which would stay beside the moved iris as a dark arc."""
    kept = deep & ~erase
    if not erase.any() or not kept.any():
        return np.zeros_like(erase)
    luminance = region.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    sclera = np.median(luminance[kept & (luminance >= np.median(luminance[kept]))])
    dark = (deep & (luminance < SCLERA_SHARE * sclera)) | erase
    count, labels = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[np.unique(labels[erase])] = True
    joined[0] = False
    return joined[labels] & ~erase


def _draw(iris: Iris, frame: _EyeFrame, centre: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The iris (RGB and alpha, (H, W, 4) float32) drawn into an image of `shape` at `centre` in the eye `frame`."""
    half = (len(iris.alpha) - 1) / 2
    scale = iris.scale / frame.unit
    # Image pixel x shows patch pixel half + scale * rotation^T (x - centre).
    matrix = scale * frame.rotation.T
    to_patch = np.concatenate([matrix, (np.array([half, half]) - matrix @ centre)[:, None]], axis=1)
    patch = np.dstack([iris.pixels, iris.alpha])
    return cv2.warpAffine(patch, to_patch, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _fit_affine(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 affine map that takes the points `source` (N, 2) nearest to `target` (least squares)."""
    solved = np.linalg.lstsq(np.concatenate([source, np.ones((len(source), 1))], axis=1), target, rcond=None)[0]
    return solved.T


def _soft_inside(polygon: np.ndarray, shape: tuple[int, int], feather: float) -> np.ndarray:
    """float32 (H, W): how far inside the polygon each pixel lies, rising from 0 at its outline to 1 at `feather`
    pixels in, averaged over 4 x 4 samples a pixel (so a pixel the outline crosses gets its share; one wholly outside,
    0)."""
    k = SUPERSAMPLE
    fine = _polygon_mask(polygon * k + (k - 1) / 2, (shape[0] * k, shape[1] * k))
    depth = cv2.distanceTransform(fine, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / k
    return cv2.resize(np.clip(depth / feather, 0, 1), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W): 1 on the pixels whose centres the polygon (pixel coordinates) covers, 0 elsewhere."""
    bits = 4
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * (1 << bits)).astype(np.int32)], 1, cv2.LINE_8, bits)
    return mask


def _disk(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    """float32 (H, W): 1 inside the disk, 0 outside, a one-pixel ramp at its edge."""
    ys, xs = np.ogrid[:shape[0], :shape[1]]
    distance = np.sqrt((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
    return np.clip(radius + 0.5 - distance, 0, 1).astype(np.float32)

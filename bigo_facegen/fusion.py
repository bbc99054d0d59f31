"""Background fusion: put a generated face crop back into a full frame built from the reference frame.

The generator only makes the face crop; the rest of each output frame comes from the one reference frame. Three
ways, the first two from the original solution:

* `ShiftFusion` moves and scales the whole reference frame so that its face box meets the target frame's box, fills
  the borders this uncovers (`replicate` or `reflect`) and pastes the face with a feathered edge.
* `SegmentFusion` (the original's better one) separates the person from the background first, moves only the person
  and leaves the background where it was, filling the hole the person leaves (OpenCV inpainting or nearest-neighbour
  fill). The separation is OpenCV's GrabCut seeded from the face box: no downloaded model.
* `WarpFusion` warps the whole reference frame piecewise-affinely from the reference keypoints to the target's, with
  fixed anchors on the frame border (`PiecewiseAffineWarper`, also the `warp` evaluation baseline): the background
  near the face follows its motion, fading to none at the frame border; the face is pasted as by the others, or,
  from a warp-style generator, only where its repaint mask says it painted. The `flow` fusion moves the frame inside
  the face box by that generator's own flow instead.

Boxes are BIGO `[x, y, w, h]` in frame pixels; a face crop covers the square box of `geometry.square_box`, as
`geometry.crop` cut it. Images are RGB uint8.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from scipy.spatial import Delaunay

from bigo_facegen import geometry
from bigo_facegen.annotations import FLAG_ABSENT

BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}
FILLS = ("inpaint", "nearest")
FUSIONS = ("shift", "segment", "warp", "flow")
ANCHORS_PER_SIDE = 8

# Width of the pasted face's soft edge, as a fraction of the crop side: the outer band of a crop is background that the
# shifted reference already shows, so blending there hides the seam without giving up any of the face.
DEFAULT_FEATHER = 0.15


def box_to_box(source_bbox, target_bbox) -> np.ndarray:
    """2x3 affine (scale + translation) taking frame pixels of the source face box onto the target face box."""
    sx, sy, s_side = geometry.square_box(source_bbox)
    tx, ty, t_side = geometry.square_box(target_bbox)
    scale = t_side / s_side
    return np.array([[scale, 0.0, tx - scale * sx], [0.0, scale, ty - scale * sy]], np.float64)


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border: str) -> np.ndarray:
    """`image` moved by the 2x3 `matrix` onto a (width, height) canvas, uncovered pixels filled by `border`."""
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}; choose one of {sorted(BORDERS)}")
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=BORDERS[border])


# Every pasted face of a video takes the same mask: made once (read-only, as it is shared).
@functools.lru_cache(maxsize=8)
def feather_mask(size: int, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """(size, size) float32 weights, read-only: 1 inside, falling smoothly to 0 at the crop's edge over `feather` x
    size."""
    if not 0.0 < feather <= 0.5:
        raise ValueError(f"feather must be in (0, 0.5], got {feather}")
    edge_distance = np.minimum(np.arange(size) + 0.5, size - 0.5 - np.arange(size))
    ramp = np.clip(edge_distance / (feather * size), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink where the ramp meets the plateau
    mask = np.outer(ramp, ramp).astype(np.float32)
    mask.setflags(write=False)
    return mask


def blend(background: np.ndarray, foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """background x (1 - alpha) + foreground x alpha, rounded back to uint8; alpha is (H, W) in [0, 1]."""
    alpha = alpha[..., None]
    out = background.astype(np.float32) * (1.0 - alpha) + foreground.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paste_face(frame: np.ndarray, face: np.ndarray, bbox, feather: float = DEFAULT_FEATHER,
               region: np.ndarray | None = None, face_alpha: np.ndarray | None = None) -> np.ndarray:
    """Returns `frame` with the square face crop `face` put back where `geometry.crop(frame, bbox, size)` took it
    from, its edge feathered so that no seam shows. `region` (H, W) in [0, 1], if given, further limits where the crop
    may cover the frame; `face_alpha` (S, S) in [0, 1] does so in the crop's own pixels."""
    size = face.shape[0]
    if face.shape != (size, size, 3):
        raise ValueError(f"face crop must be (S, S, 3), got {face.shape}")
    crop_alpha = feather_mask(size, feather)
    if face_alpha is not None:
        if face_alpha.shape != (size, size):
            raise ValueError(f"face alpha must be ({size}, {size}) like the crop, got {face_alpha.shape}")
        crop_alpha = crop_alpha * face_alpha.astype(np.float32)
    # Only the part of the frame the crop reaches is touched: elsewhere its alpha is 0 and the frame stays as it is
    # (a face box is a fraction of a photo: the whole frame cost a 512-px photo 3 times the time).
    left, top, right, bottom = _reach(bbox, size, frame.shape)
    pasted = frame.copy()
    if right <= left or bottom <= top:
        return pasted
    to_part = geometry.invert_affine(geometry.crop_matrix(bbox, size))
    to_part[:, 2] -= (left, top)
    warped = cv2.warpAffine(face, to_part, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(crop_alpha, to_part, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if region is not None:
        alpha = alpha * region[top:bottom, left:right]
    pasted[top:bottom, left:right] = blend(frame[top:bottom, left:right], warped, alpha)
    return pasted


def _reach(bbox, size: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Left, top, right, bottom (exclusive) of the frame pixels that a crop of `size` pasted at `bbox` can touch: its
    square box and a crop pixel more on each side (bilinear sampling), within the frame."""
    cx, cy, side = geometry.square_box(bbox)
    margin = side / 2 + side / size + 1
    return (max(math.floor(cx - margin), 0), max(math.floor(cy - margin), 0),
            min(math.ceil(cx + margin) + 1, shape[1]), min(math.ceil(cy + margin) + 1, shape[0]))


class ShiftFusion:
    """Whole reference frame shifted and scaled onto each target face box; the face pasted on top."""

    def __init__(self, reference_frame: np.ndarray, reference_bbox, border: str = "replicate",
                 feather: float = DEFAULT_FEATHER):
        if border not in BORDERS:
            raise ValueError(f"unknown border {border!r}; choose one of {sorted(BORDERS)}")
        self.reference_frame = reference_frame
        self.reference_bbox = np.asarray(reference_bbox, np.float64)
        self.border = border
        self.feather = feather

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the output frames."""
        return self.reference_frame.shape[1], self.reference_frame.shape[0]

    def background(self, target_bbox, target_points=None, target_flags=None) -> np.ndarray:
        """The frame around the face for a target box, before the face is pasted. The target keypoints (frame
        pixels, (N, 2), and flags (N,)) are read by the fusions that follow them (`WarpFusion`) and ignored here."""
        return warp(self.reference_frame, box_to_box(self.reference_bbox, target_bbox), self.frame_size,
                    self.border)

    def __call__(self, face: np.ndarray, target_bbox, target_points=None, target_flags=None,
                 repaint: np.ndarray | None = None, flow: np.ndarray | None = None) -> np.ndarray:
        """The target frame with `face` pasted. `repaint` (S, S) and `flow` (S, S, 2), from a warp-style generator,
        say where the crop holds its painting rather than the reference moved by its flow, and that flow (the
        reference crop pixel each crop pixel shows); only a fusion that moves the reference frame itself
        (`WarpFusion`) can use them, the others need the whole crop."""
        return paste_face(self.background(target_bbox, target_points, target_flags), face, target_bbox, self.feather)


class SegmentFusion(ShiftFusion):
    """Only the person moves: the reference frame is split once into a person matte and a background plate with the
    person filled out; each target frame lays the shifted person over the still plate and pastes the face."""

    def __init__(self, reference_frame: np.ndarray, reference_bbox, border: str = "replicate",
                 feather: float = DEFAULT_FEATHER, fill: str = "inpaint"):
        super().__init__(reference_frame, reference_bbox, border, feather)
        person = segment_person(reference_frame, reference_bbox)
        self.matte = soften_mask(person, self.reference_bbox)
        self.plate = fill_background(reference_frame, _grow(person, self.reference_bbox), fill)

    def background(self, target_bbox, target_points=None, target_flags=None) -> np.ndarray:
        return self._moved(target_bbox)[0]

    def __call__(self, face: np.ndarray, target_bbox, target_points=None, target_flags=None,
                 repaint: np.ndarray | None = None, flow: np.ndarray | None = None) -> np.ndarray:
        # The crop's corners show the reference's background, which moved with the face; only the person may take
        # pixels from the crop, so the still background stays clean around the face.
        frame, matte = self._moved(target_bbox)
        return paste_face(frame, face, target_bbox, self.feather, region=matte)

    def _moved(self, target_bbox) -> tuple[np.ndarray, np.ndarray]:
        """(frame with the person moved onto the target box, the moved person matte)."""
        move = box_to_box(self.reference_bbox, target_bbox)
        person = warp(self.reference_frame, move, self.frame_size, self.border)
        matte = warp(self.matte, move, self.frame_size, self.border)
        return blend(self.plate, person, matte), matte


class WarpFusion(ShiftFusion):
    """The whole reference frame warped piecewise-affinely from its keypoints onto each target's, fixed at the frame
    border; the face pasted on top. Points absent from either face are left out of the warp. With `follow_flow` (the
    `flow` fusion), a warp-style generator's flow moves the frame inside the face box instead (`moved_by_flow`); on the
    real test split that lost to the keypoints' warp (docs/experiments.md, "Warp and refine on real footage"), so
    `warp` is the default."""

    def __init__(self, reference_frame: np.ndarray, reference_bbox, reference_points, reference_flags,
                 border: str = "replicate", feather: float = DEFAULT_FEATHER, follow_flow: bool = False):
        super().__init__(reference_frame, reference_bbox, border, feather)
        self.follow_flow = follow_flow
        self.reference_points = np.asarray(reference_points, np.float64)
        self.reference_flags = np.asarray(reference_flags)
        if self.reference_points.shape != (len(self.reference_flags), 2):
            raise ValueError(f"reference points must be (N, 2) with one flag each, got {self.reference_points.shape} "
                             f"points and {self.reference_flags.shape} flags")
        self.warper = PiecewiseAffineWarper(reference_frame.shape[:2], BORDERS[border])

    def background(self, target_bbox, target_points=None, target_flags=None) -> np.ndarray:
        target_points, use = self._checked_targets(target_points, target_flags)
        return self.warper.warp(self.reference_frame, self.reference_points, target_points, use)

    def __call__(self, face: np.ndarray, target_bbox, target_points=None, target_flags=None,
                 repaint: np.ndarray | None = None, flow: np.ndarray | None = None) -> np.ndarray:
        # The background is the reference face moved onto the target keypoints at full resolution: a warp-style face
        # adds only what its generator painted, the crop's resolution costs nothing elsewhere.
        if not self.follow_flow:
            background = self.background(target_bbox, target_points, target_flags)
        elif flow is None:
            raise ValueError("the flow fusion moves the frame by a warp-style generator's flow: it needs the flow")
        else:
            background = self.moved_by_flow(flow, target_bbox, target_points, target_flags)
        return paste_face(background, face, target_bbox, self.feather, face_alpha=repaint)

    def moved_by_flow(self, flow: np.ndarray, target_bbox, target_points, target_flags) -> np.ndarray:
        """The reference frame moved by a generator's backward `flow` (S, S, 2: for each pixel of the target face
        crop, the reference crop pixel it shows) inside the target face box, blended over the feathered crop edge into
        the piecewise-affine warp outside it."""
        size = flow.shape[0]
        if flow.shape != (size, size, 2):
            raise ValueError(f"flow must be (S, S, 2), got {flow.shape}")
        map_x, map_y = self.warper.backward_map(self.reference_points, *self._checked_targets(target_points,
                                                                                               target_flags))
        to_crop = geometry.crop_matrix(target_bbox, size)
        crop_x = to_crop[0, 0] * self.warper.grid_x + to_crop[0, 1] * self.warper.grid_y + to_crop[0, 2]
        crop_y = to_crop[1, 0] * self.warper.grid_x + to_crop[1, 1] * self.warper.grid_y + to_crop[1, 2]
        sources = cv2.remap(np.ascontiguousarray(flow, np.float32), crop_x.astype(np.float32),
                            crop_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        from_crop = geometry.invert_affine(geometry.crop_matrix(self.reference_bbox, size))
        flow_x = from_crop[0, 0] * sources[..., 0] + from_crop[0, 1] * sources[..., 1] + from_crop[0, 2]
        flow_y = from_crop[1, 0] * sources[..., 0] + from_crop[1, 1] * sources[..., 1] + from_crop[1, 2]
        alpha = cv2.remap(feather_mask(size, self.feather), crop_x.astype(np.float32), crop_y.astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        map_x = (alpha * flow_x + (1.0 - alpha) * map_x).astype(np.float32)
        map_y = (alpha * flow_y + (1.0 - alpha) * map_y).astype(np.float32)
        return cv2.remap(self.reference_frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=self.warper.border_mode)

    def _checked_targets(self, target_points, target_flags) -> tuple[np.ndarray, np.ndarray]:
        """The target points as float64 and which points both faces have."""
        if target_points is None or target_flags is None:
            raise ValueError("warp fusion moves the frame with the keypoints: it needs the target points and flags")
        target_points, target_flags = np.asarray(target_points, np.float64), np.asarray(target_flags)
        if target_points.shape != self.reference_points.shape or target_flags.shape != self.reference_flags.shape:
            raise ValueError(f"target points {target_points.shape} and flags {target_flags.shape} do not match the "
                             f"reference's {self.reference_points.shape} and {self.reference_flags.shape}")
        return target_points, (self.reference_flags != FLAG_ABSENT) & (target_flags != FLAG_ABSENT)


def make_fusion(name: str, reference_frame: np.ndarray, reference_bbox, border: str = "replicate",
                feather: float = DEFAULT_FEATHER, fill: str = "inpaint", reference_points=None,
                reference_flags=None) -> ShiftFusion:
    """The fusion called `name`; `warp` and `flow` also need the reference keypoints (frame pixels) and their
    flags."""
    if name == "shift":
        return ShiftFusion(reference_frame, reference_bbox, border, feather)
    if name == "segment":
        return SegmentFusion(reference_frame, reference_bbox, border, feather, fill)
    if name in ("warp", "flow"):
        if reference_points is None or reference_flags is None:
            raise ValueError(f"{name} fusion needs the reference keypoints and flags")
        return WarpFusion(reference_frame, reference_bbox, reference_points, reference_flags, border, feather,
                          follow_flow=name == "flow")
    raise ValueError(f"unknown fusion {name!r}; choose one of {FUSIONS}")


def border_anchors(height: int, width: int, per_side: int = ANCHORS_PER_SIDE) -> np.ndarray:
    """Fixed points along the frame border (corners included), (4 * per_side, 2) float64 x, y."""
    xs = np.linspace(0, width - 1, per_side + 1)
    ys = np.linspace(0, height - 1, per_side + 1)
    top = np.stack([xs[:-1], np.zeros(per_side)], 1)
    right = np.stack([np.full(per_side, width - 1.0), ys[:-1]], 1)
    bottom = np.stack([xs[::-1][:-1], np.full(per_side, height - 1.0)], 1)
    left = np.stack([np.zeros(per_side), ys[::-1][:-1]], 1)
    return np.concatenate([top, right, bottom, left])


class PiecewiseAffineWarper:
    """Landmark-driven piecewise-affine warp of a whole frame.

    The target keypoints plus fixed anchors on the frame border are Delaunay-triangulated; each output pixel takes
    the affine map of its triangle back to the reference (a backward map), and one `cv2.remap` samples the reference.
    The face moves with its keypoints and the background follows it, fading to no motion at the frame border.
    Triangles are rasterised into a triangle-id image, so the cost per frame is a few whole-image NumPy operations.
    `border_mode` (an OpenCV border) fills what is sampled from outside the frame.
    """

    def __init__(self, frame_shape: tuple[int, int], border_mode: int = cv2.BORDER_REPLICATE):
        self.height, self.width = int(frame_shape[0]), int(frame_shape[1])
        self.border_mode = border_mode
        self.anchors = border_anchors(self.height, self.width)
        self.grid_x, self.grid_y = np.meshgrid(np.arange(self.width, dtype=np.float32),
                                               np.arange(self.height, dtype=np.float32))

    def warp(self, frame: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
             use: np.ndarray | None = None) -> np.ndarray:
        """`frame` with `source_points` moved onto `target_points` (both (N, 2) frame pixels; `use` masks points)."""
        map_x, map_y = self.backward_map(source_points, target_points, use)
        return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=self.border_mode)

    def backward_map(self, source_points: np.ndarray, target_points: np.ndarray,
                     use: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For every output pixel, where to sample the source frame: (map_x, map_y) float32 (H, W)."""
        source_points = np.asarray(source_points, np.float64)
        target_points = np.asarray(target_points, np.float64)
        if use is not None:
            source_points, target_points = source_points[use], target_points[use]
        source = np.concatenate([source_points, self.anchors])
        target = np.concatenate([target_points, self.anchors])
        # Coincident target points (a closed mouth's inner lips) would give zero-area triangles; keep the first.
        _, keep = np.unique(np.round(target, 3), axis=0, return_index=True)
        keep.sort()
        source, target = source[keep], target[keep]
        triangles = Delaunay(target).simplices
        # Each pixel's affine coefficients looked up one at a time (six 1-D takes are twice as fast at 512 px as one
        # gather of (H, W, 2, 3)); pixels no triangle covers take the identity, appended as the last "triangle".
        affines = np.concatenate([self._triangle_affines(source, target, triangles).reshape(-1, 6),
                                  np.array([[1, 0, 0, 0, 1, 0]], np.float32)]).T.copy()
        ids = self._rasterise(target, triangles)
        ids[ids < 0] = len(triangles)
        a = [np.take(coefficient, ids) for coefficient in affines]
        gx, gy = self.grid_x, self.grid_y
        map_x = a[0] * gx
        map_x += a[1] * gy
        map_x += a[2]
        map_y = a[3] * gx
        map_y += a[4] * gy
        map_y += a[5]
        return map_x, map_y

    @staticmethod
    def _triangle_affines(source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(T, 2, 3) float32 affine maps from each target triangle to its source triangle."""
        dst = target[triangles]                                   # (T, 3, 2)
        src = source[triangles]
        dst_h = np.concatenate([dst, np.ones(dst.shape[:2] + (1,))], axis=2)   # (T, 3, 3)
        solved = np.linalg.solve(dst_h, src)                      # dst_h @ solved = src, (T, 3, 2)
        return np.transpose(solved, (0, 2, 1)).astype(np.float32)

    def _rasterise(self, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(H, W) int32 image of the triangle covering each pixel, -1 where none does."""
        shift = 4
        ids = np.full((self.height, self.width), -1, np.int32)
        corners = np.round(target[triangles] * (1 << shift)).astype(np.int32)
        for index, polygon in enumerate(corners):
            cv2.fillConvexPoly(ids, polygon, int(index), lineType=cv2.LINE_8, shift=shift)
        return ids


# GrabCut's cost grows with the pixel count and the matte needs no fine detail (its edge is softened anyway).
_SEGMENT_SIDE = 256


def segment_person(frame: np.ndarray, bbox, iterations: int = 4) -> np.ndarray:
    """(H, W) bool mask of the person whose face box is `bbox`, by GrabCut seeded from the box.

    Seeds: the face's middle is surely person; the face box and the band below it down to the frame's bottom (neck,
    shoulders, body) are probably person; everything well to the side of or above that region is surely background,
    the rest probably background. Where the face fills the frame so that no background is left to learn from, the whole
    frame is the person."""
    height, width = frame.shape[:2]
    scale = min(1.0, _SEGMENT_SIDE / max(height, width))
    small = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else frame
    seeds = _grabcut_seeds(small.shape[:2], np.asarray(geometry.square_box(bbox), np.float64) * scale)
    if not np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return np.ones((height, width), bool)
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means start draws from OpenCV's global RNG: same frame, same person mask
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), seeds, None, bgd_model, fgd_model, iterations,
                cv2.GC_INIT_WITH_MASK)
    person = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    person = _largest_component_with(person, seeds == cv2.GC_FGD)
    return cv2.resize(person, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _grabcut_seeds(shape: tuple[int, int], square: np.ndarray) -> np.ndarray:
    height, width = shape
    cx, cy, side = square
    ys, xs = np.mgrid[0:height, 0:width]

    def inside(x0, y0, x1, y1):
        return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)

    half = side / 2
    seeds = np.full(shape, cv2.GC_BGD, np.uint8)
    seeds[inside(cx - 1.5 * side, cy - side, cx + 1.5 * side, height)] = cv2.GC_PR_BGD
    seeds[inside(cx - 0.4 * side, cy - 0.4 * side, cx + 0.4 * side, cy + half)] = cv2.GC_PR_FGD
    seeds[inside(cx - 0.6 * side, cy + half, cx + 0.6 * side, height)] = cv2.GC_PR_FGD  # neck and shoulders
    seeds[inside(cx - 0.2 * side, cy - 0.2 * side, cx + 0.2 * side, cy + 0.25 * side)] = cv2.GC_FGD
    return seeds


def _largest_component_with(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Keeps the connected parts of `mask` that touch `anchor` (GrabCut also picks up person-coloured background)."""
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    keep = np.unique(labels[anchor & (mask > 0)])
    keep = keep[keep > 0]
    return np.isin(labels, keep).astype(np.uint8) if keep.size else mask


def _edge_pixels(bbox, fraction: float = 0.02) -> int:
    # Matte edge and fill margin scale with the face: a few pixels on a 200 px face box.
    return max(1, round(geometry.square_box(bbox)[2] * fraction))


def _grow(mask: np.ndarray, bbox) -> np.ndarray:
    """The person mask grown by a margin, so that the background fill starts outside GrabCut's uncertain edge (a rim
    of hair left outside the mask would otherwise be smeared across the whole hole)."""
    k = 2 * _edge_pixels(bbox, 0.05) + 1
    return cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)


def soften_mask(mask: np.ndarray, bbox) -> np.ndarray:
    """Binary mask -> float32 matte in [0, 1] with a blurred edge, so the moved person has no hard cut-out line."""
    sigma = _edge_pixels(bbox)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)


def fill_background(frame: np.ndarray, hole: np.ndarray, method: str = "inpaint") -> np.ndarray:
    """`frame` with the pixels where `hole` is true made up from the rest: OpenCV's Telea inpainting, or a copy of
    the nearest pixel outside the hole. A hole that covers the whole frame leaves it unchanged: nothing to fill from."""
    if method not in FILLS:
        raise ValueError(f"unknown fill {method!r}; choose one of {FILLS}")
    hole = np.asarray(hole, bool)
    if hole.all() or not hole.any():
        return frame.copy()
    if method == "inpaint":
        radius = max(3, round(0.01 * max(frame.shape[:2])))
        return cv2.inpaint(frame, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    # Each hole pixel takes the value of the nearest known pixel: distanceTransform labels every pixel with the
    # label of its nearest zero pixel, and with DIST_LABEL_PIXEL every known pixel has its own label.
    _, labels = cv2.distanceTransformWithLabels(hole.astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    known = ~hole
    source_of_label = np.zeros(labels.max() + 1, np.int64)
    source_of_label[labels[known]] = np.flatnonzero(known)
    return frame.reshape(-1, 3)[source_of_label[labels]].reshape(frame.shape)

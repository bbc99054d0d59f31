"""Keypoint layouts and keypoint maps (the image the generator is conditioned on).

Layouts name the points: `bigo106` (BIGO's 106-point order) and `ibug68` (dlib's 68-point iBUG 300-W order). In both,
"left" means image-left (the subject's right), so `left_eye` of a frontal face has the smaller x.

Pixel convention, shared with `geometry`: a coordinate (x, y) is in pixels with the CENTRE of pixel (row i, column j)
at (x=j, y=i), as in OpenCV's `warpAffine` and TF's `ImageProjectiveTransformV3`. A point at (3.0, 5.0) therefore
lights pixel [5, 3], and a crop of side S covers x, y in [-0.5, S - 0.5).

Maps are float32 (S, S, 3) in [-1, 1], black (-1) where nothing is drawn. Visible points (flag 2) are drawn in
`VISIBLE_COLOR`, occluded ones (flag 1) in `OCCLUDED_COLOR`; absent points (flag 0) and points off the crop are not
drawn. Styles, each a closed form evaluated on the pixel-centre grid and combined over points with max, so that the
NumPy (`draw_map`) and TF (`draw_map_tf`) renderings agree to float rounding (heatmaps to 1e-4, see `HEATMAP_TAIL`):

- "dots": an antialiased disc per point, intensity clip(radius + 0.5 - d, 0, 1) at distance d from the point;
- "heatmap": a Gaussian exp(-d^2 / (2 radius^2)) per point;
- "lines": the layout's polylines, intensity clip(radius / 2 + 0.5 - d, 0, 1) at distance d from a segment (a segment
  is drawn when both its ends are present, occluded colour if either end is occluded; it is clipped by the crop, not
  dropped), with the dots on top so points outside any polyline (pupils, eye centres) still show.

The NumPy renderer is the dense reference, every point against every pixel. The TF one, run per batch in the input
pipeline, evaluates dots and heatmaps only in a window of pixels around each point and combines the windows with a
segment max, O(N * window) instead of O(N * S^2); lines stay dense.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

VISIBLE_COLOR = (1.0, 1.0, 1.0)
OCCLUDED_COLOR = (1.0, 0.0, 0.0)
STYLES = ("dots", "heatmap", "lines")
# Heatmap intensities below this are left out of `draw_map_tf`'s windows (`draw_map` keeps them); maps span [-1, 1],
# so the two agree to twice it, 1e-4.
HEATMAP_TAIL = 5e-5


@dataclasses.dataclass(frozen=True)
class Layout:
    """A keypoint order. `polylines` are the chains drawn by the "lines" style (a chain closes when its last index
    repeats its first); the eye and mouth tuples list contour points for metrics such as eye openness."""
    name: str
    num_points: int
    polylines: tuple[tuple[int, ...], ...]
    left_eye_outer: int
    right_eye_outer: int
    left_eye: tuple[int, ...]
    right_eye: tuple[int, ...]
    mouth_inner: tuple[int, ...]
    mouth_outer: tuple[int, ...]
    jaw: tuple[int, ...]
    # This layout's points in dlib's 68-point iBUG order, so that dlib's predictor can judge any layout.
    ibug68: tuple[int, ...]

    @property
    def segments(self) -> tuple[tuple[int, int], ...]:
        """Consecutive point pairs along every polyline."""
        return tuple(pair for line in self.polylines for pair in zip(line[:-1], line[1:]))


def _chain(*indices: int, closed: bool = False) -> tuple[int, ...]:
    return tuple(indices) + ((indices[0],) if closed else ())


BIGO106 = Layout(
    name="bigo106",
    num_points=106,
    polylines=(
        _chain(*range(0, 33)),
        _chain(33, 34, 35, 36, 37, 64, 65, 66, 67, closed=True),
        _chain(38, 39, 40, 41, 42, 68, 69, 70, 71, closed=True),
        _chain(43, 44, 45, 46),
        _chain(47, 48, 49, 50, 51),
        _chain(78, 80, 82),
        _chain(79, 81, 83),
        _chain(52, 53, 72, 54, 55, 56, 73, 57, closed=True),
        _chain(58, 59, 75, 60, 61, 62, 76, 63, closed=True),
        _chain(*range(84, 96), closed=True),
        _chain(*range(96, 104), closed=True),
    ),
    left_eye_outer=52,
    right_eye_outer=61,
    left_eye=(52, 53, 72, 54, 55, 56, 73, 57),
    right_eye=(58, 59, 75, 60, 61, 62, 76, 63),
    mouth_inner=tuple(range(96, 104)),
    mouth_outer=tuple(range(84, 96)),
    jaw=tuple(range(0, 33)),
    # Every other contour point; the upper brows; nose bridge and base; the eyes' corners and lids without their
    # mid-lid points (72, 73, 75, 76); the outer and inner lips, which both layouts list alike.
    ibug68=(tuple(range(0, 33, 2)) + tuple(range(33, 52)) + (52, 53, 54, 55, 56, 57) + (58, 59, 60, 61, 62, 63)
            + tuple(range(84, 104))),
)

IBUG68 = Layout(
    name="ibug68",
    num_points=68,
    polylines=(
        _chain(*range(0, 17)),
        _chain(*range(17, 22)),
        _chain(*range(22, 27)),
        _chain(*range(27, 31)),
        _chain(*range(31, 36)),
        _chain(*range(36, 42), closed=True),
        _chain(*range(42, 48), closed=True),
        _chain(*range(48, 60), closed=True),
        _chain(*range(60, 68), closed=True),
    ),
    left_eye_outer=36,
    right_eye_outer=45,
    left_eye=tuple(range(36, 42)),
    right_eye=tuple(range(42, 48)),
    mouth_inner=tuple(range(60, 68)),
    mouth_outer=tuple(range(48, 60)),
    jaw=tuple(range(0, 17)),
    ibug68=tuple(range(68)),
)

LAYOUTS = {layout.name: layout for layout in (BIGO106, IBUG68)}


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def layout_for_count(num_points: int) -> Layout:
    """The named layout with this many points (106: bigo106, 68: ibug68)."""
    for layout in LAYOUTS.values():
        if layout.num_points == num_points:
            return layout
    raise ValueError(f"no keypoint layout has {num_points} points; known: "
                     f"{ {name: layout.num_points for name, layout in LAYOUTS.items()} }")


def draw_map(points: np.ndarray, flags: np.ndarray, size: int, style: str = "dots", radius: float = 1.5,
             layout: Layout | None = None) -> np.ndarray:
    """The keypoint map of one face: `points` (N, 2) in crop pixels, `flags` (N,); returns float32 (size, size, 3)
    in [-1, 1]. `layout` (for "lines") defaults to the layout with N points."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    flags = np.asarray(flags).reshape(-1)
    _check_args(style, radius, len(points), len(flags))
    coords = np.arange(size, dtype=np.float32)
    px, py = points[:, 0], points[:, 1]
    dist2 = (coords[:, None, None] - py) ** 2 + (coords[None, :, None] - px) ** 2          # (S, S, N)
    intensity = _point_profile(np, dist2, style, radius)
    on_crop = (px >= -0.5) & (px < size - 0.5) & (py >= -0.5) & (py < size - 0.5)
    visible = np.max(intensity * ((flags == 2) & on_crop), axis=-1, initial=0.0)
    occluded = np.max(intensity * ((flags == 1) & on_crop), axis=-1, initial=0.0)
    if style == "lines":
        starts, ends = _segment_ends(layout, len(points))
        a, b = points[starts], points[ends]
        dist2 = _segment_dist2(np, coords[None, :, None], coords[:, None, None], a[:, 0], a[:, 1], b[:, 0], b[:, 1])
        intensity = _line_profile(np, dist2, radius)
        drawn = (flags[starts] > 0) & (flags[ends] > 0)
        hidden = np.minimum(flags[starts], flags[ends]) == 1
        visible = np.maximum(visible, np.max(intensity * (drawn & ~hidden), axis=-1, initial=0.0))
        occluded = np.maximum(occluded, np.max(intensity * (drawn & hidden), axis=-1, initial=0.0))
    colour = np.maximum(visible[..., None] * np.float32(VISIBLE_COLOR),
                        occluded[..., None] * np.float32(OCCLUDED_COLOR))
    return (colour * 2.0 - 1.0).astype(np.float32)


def draw_map_tf(points, flags, size: int, style: str = "dots", radius: float = 1.5,
                layout: Layout | None = None) -> tf.Tensor:
    """`draw_map` in TF for tf.data and `tf.function`/XLA: `points` (..., N, 2), `flags` (..., N) with any leading
    batch dimensions and a static N; returns float32 (..., size, size, 3) in [-1, 1]. `size`, `style`, `radius` and
    `layout` are Python values fixed at trace time.

    Dots and heatmaps are evaluated only in a window of pixels around each point, wide enough that what lies outside
    is 0 (dots) or below `HEATMAP_TAIL` (heatmaps), unless the window would be about the crop's size."""
    points = tf.convert_to_tensor(points, tf.float32)
    flags = tf.cast(flags, tf.int32)
    num_points = points.shape[-2]
    _check_args(style, radius, num_points, flags.shape[-1])
    on_crop = _on_crop(points, size)
    visible_points = (flags == 2) & on_crop
    occluded_points = (flags == 1) & on_crop
    offsets = _window_offsets(style, radius)
    if _window_pays(len(offsets[0]), size):
        colour = _windowed_point_colours(points, visible_points, occluded_points, size, style, radius, offsets)
    else:
        intensity = _point_profile(tf, _dense_dist2(points, size), style, radius)
        colour = _colour(_max_where(intensity, visible_points), _max_where(intensity, occluded_points))
    if style == "lines":
        starts, ends = _segment_ends(layout, num_points)
        a, b = tf.gather(points, starts, axis=-2), tf.gather(points, ends, axis=-2)            # (..., M, 2)
        coords = tf.range(size, dtype=tf.float32)
        column, row = coords[None, :, None], coords[:, None, None]
        ax, ay, bx, by = (v[..., None, None, :] for v in (a[..., 0], a[..., 1], b[..., 0], b[..., 1]))
        intensity = _line_profile(tf, _segment_dist2(tf, column, row, ax, ay, bx, by), radius)
        flag_a, flag_b = tf.gather(flags, starts, axis=-1), tf.gather(flags, ends, axis=-1)
        drawn = (flag_a > 0) & (flag_b > 0)
        hidden = tf.minimum(flag_a, flag_b) == 1
        lines = _colour(_max_where(intensity, drawn & ~hidden), _max_where(intensity, drawn & hidden))
        colour = tf.maximum(colour, lines)
    return colour * 2.0 - 1.0


def polygon_mask_tf(points, flags, indices: tuple[int, ...], size: int) -> tf.Tensor:
    """(B, S, S, 1) float32: 1 at the pixel centres inside the polygon through `points[:, indices]` ((B, N, 2) in crop
    pixels; even-odd rule), 0 elsewhere, and 0 everywhere for a face where any of those points is absent (flag 0). A
    polygon whose points coincide, such as a closed mouth's inner lips, covers nothing."""
    corners = tf.gather(tf.cast(points, tf.float32), indices, axis=1)                               # (B, K, 2)
    present = tf.reduce_all(tf.gather(tf.cast(flags, tf.int32), indices, axis=1) > 0, axis=1)       # (B,)
    ax, ay = (corners[:, None, None, :, i] for i in (0, 1))                                         # (B, 1, 1, K)
    bx, by = (tf.roll(corners, -1, axis=1)[:, None, None, :, i] for i in (0, 1))
    coords = tf.range(size, dtype=tf.float32)
    x, y = coords[None, None, :, None], coords[None, :, None, None]
    # An edge crosses the ray from the pixel towards +x when it straddles the pixel's row and meets the row to the
    # pixel's right; where it straddles, b_y - a_y is not 0.
    straddles = (ay > y) != (by > y)
    crossing_x = ax + (y - ay) * (bx - ax) / tf.where(straddles, by - ay, 1.0)
    crossings = tf.reduce_sum(tf.cast(straddles & (x < crossing_x), tf.int32), axis=-1)             # (B, S, S)
    inside = (crossings % 2 == 1) & present[:, None, None]
    return tf.cast(inside, tf.float32)[..., None]


def mouth_mask_tf(points, flags, size: int) -> tf.Tensor:
    """`polygon_mask_tf` of the inner lips of the layout with N points: (B, S, S, 1), 1 inside an opened mouth.
    Points of any float dtype (a mixed-precision generator's are bfloat16) are drawn in float32."""
    points = tf.cast(points, tf.float32)
    return polygon_mask_tf(points, flags, layout_for_count(points.shape[-2]).mouth_inner, size)


def eyes_mask_tf(points, flags, size: int) -> tf.Tensor:
    """`polygon_mask_tf` of both eyes' outlines of the layout with N points: (B, S, S, 1), 1 inside an opened eye.
    Points as for `mouth_mask_tf`."""
    points = tf.cast(points, tf.float32)
    layout = layout_for_count(points.shape[-2])
    return tf.maximum(*(polygon_mask_tf(points, flags, eye, size) for eye in (layout.left_eye, layout.right_eye)))


def _colour(visible: tf.Tensor, occluded: tf.Tensor) -> tf.Tensor:
    """(..., S, S, 3) colour of (..., S, S) visible and occluded intensities."""
    return tf.maximum(visible[..., None] * tf.constant(VISIBLE_COLOR, tf.float32),
                      occluded[..., None] * tf.constant(OCCLUDED_COLOR, tf.float32))


def _window_offsets(style: str, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) offsets, from the pixel a point falls in, of the pixels where the point's profile is not
    negligible: the point lies within half a pixel of that pixel's centre along each axis, so a pixel at offset o is
    at least max(|o| - 0.5, 0) away from it along each axis."""
    if style == "heatmap":
        negligible = radius * math.sqrt(-2.0 * math.log(HEATMAP_TAIL))
    else:
        negligible = radius + 0.5
    reach = math.ceil(negligible)
    offsets = np.arange(-reach, reach + 1, dtype=np.float32)
    row, column = (o.reshape(-1) for o in np.meshgrid(offsets, offsets, indexing="ij"))
    nearest = np.maximum(np.abs(row) - 0.5, 0) ** 2 + np.maximum(np.abs(column) - 0.5, 0) ** 2
    kept = nearest < negligible ** 2
    return row[kept], column[kept]


def _window_pays(num_offsets: int, size: int) -> bool:
    # On CPU a windowed pixel costs about four dense ones (the segment max): a window near the crop's size saves
    # nothing.
    return num_offsets * 4 < size * size


def _on_crop(points: tf.Tensor, size: int) -> tf.Tensor:
    px, py = points[..., 0], points[..., 1]
    return (px >= -0.5) & (px < size - 0.5) & (py >= -0.5) & (py < size - 0.5)


def _dense_dist2(points: tf.Tensor, size: int) -> tf.Tensor:
    """(..., S, S, N) squared distances from every pixel centre to every point."""
    coords = tf.range(size, dtype=tf.float32)
    px, py = points[..., 0], points[..., 1]                                                   # (..., N)
    dx2 = tf.square(coords[:, None] - px[..., None, :])                                        # (..., S, N) by column
    dy2 = tf.square(coords[:, None] - py[..., None, :])                                        # (..., S, N) by row
    return dy2[..., :, None, :] + dx2[..., None, :, :]


def _windowed_point_colours(points, visible_points, occluded_points, size: int, style: str, radius: float,
                            offsets) -> tf.Tensor:
    """(..., S, S, 3) colour of the points, each evaluated in its window and scattered into the map with max."""
    num_points = points.shape[-2]
    batch_shape = tf.shape(points)[:-2]
    points = tf.reshape(points, [-1, num_points, 2])
    visible_points = tf.reshape(visible_points, [-1, num_points, 1])
    occluded_points = tf.reshape(occluded_points, [-1, num_points, 1])
    drawn = visible_points | occluded_points                                                   # (B, N, 1)
    batch = tf.shape(points)[0]
    offset_row, offset_column = offsets                                                        # (W,)
    # A point not drawn may lie anywhere (even be NaN): park its window on pixel 0, where its values are 0.
    centre = tf.where(drawn, tf.round(points), 0.0)                                            # (B, N, 2)
    column = centre[..., 0:1] + offset_column                                                  # (B, N, W)
    row = centre[..., 1:2] + offset_row
    dist2 = tf.square(row - points[..., 1:2]) + tf.square(column - points[..., 0:1])
    in_crop = (column >= 0) & (column < size) & (row >= 0) & (row < size)
    intensity = tf.where(in_crop & drawn, _point_profile(tf, dist2, style, radius), 0.0)
    column = tf.cast(tf.clip_by_value(column, 0, size - 1), tf.int32)
    row = tf.cast(tf.clip_by_value(row, 0, size - 1), tf.int32)
    pixel = (tf.range(batch)[:, None, None] * size + row) * size + column
    # One plane for visible and one for occluded points, coloured after the max, as `_colour` does for dense maps:
    # the colours are non-negative, so the max commutes with them exactly, and the scatter handles a third of the
    # values it would per colour channel (1.7-2.4x faster heatmaps at 32-96 px).
    index = pixel * 2 + tf.cast(occluded_points, tf.int32)
    # unsorted_segment_max is a scatter-max that runs several times faster on CPU than tensor_scatter_nd_max; pixels
    # no window reaches get the lowest float, hence the floor of 0.
    planes = tf.math.unsorted_segment_max(tf.reshape(intensity, [-1]), tf.reshape(index, [-1]), batch * size * size * 2)
    planes = tf.reshape(tf.maximum(planes, 0.0), tf.concat([batch_shape, [size, size, 2]], axis=0))
    return _colour(planes[..., 0], planes[..., 1])


def _check_args(style: str, radius: float, num_points, num_flags) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown keypoint map style {style!r}; choose one of {STYLES}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if num_points is not None and num_flags is not None and num_points != num_flags:
        raise ValueError(f"{num_points} points but {num_flags} flags")


def _point_profile(xp, dist2, style: str, radius: float):
    if style == "heatmap":
        return xp.exp(dist2 * np.float32(-0.5 / radius ** 2))
    return _unit_clip(xp, np.float32(radius + 0.5) - xp.sqrt(dist2))


def _line_profile(xp, dist2, radius: float):
    return _unit_clip(xp, np.float32(radius / 2 + 0.5) - xp.sqrt(dist2))


def _unit_clip(xp, x):
    return xp.minimum(xp.maximum(x, np.float32(0.0)), np.float32(1.0))


def _segment_dist2(xp, x, y, ax, ay, bx, by):
    """Squared distance from pixel centres (x, y) to segments a-b, broadcasting like the arguments."""
    abx, aby = bx - ax, by - ay
    length2 = abx * abx + aby * aby
    # A zero-length segment (both ends on one point) is that point: t = 0.
    t = ((x - ax) * abx + (y - ay) * aby) / xp.maximum(length2, np.float32(1e-12))
    t = _unit_clip(xp, t)
    ex, ey = x - ax - t * abx, y - ay - t * aby
    return ex * ex + ey * ey


def _segment_ends(layout: Layout | None, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    layout = layout or layout_for_count(num_points)
    if layout.num_points != num_points:
        raise ValueError(f"layout {layout.name!r} has {layout.num_points} points, the keypoints {num_points}")
    segments = np.asarray(layout.segments, np.int32).reshape(-1, 2)
    return segments[:, 0], segments[:, 1]


def _max_where(intensity: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Max over the last axis of `intensity` (..., S, S, K) where `mask` (..., K) holds; 0 where nothing is drawn."""
    masked = intensity * tf.cast(mask, tf.float32)[..., None, None, :]
    # The floor of 0 also covers K = 0, where reduce_max gives -inf.
    return tf.maximum(tf.reduce_max(masked, axis=-1), 0.0)

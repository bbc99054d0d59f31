"""Differentiable motion ops in pure TF (graph, tf.distribute and XLA friendly): sampling grids, bilinear backward
warping and the thin-plate-spline grid fitted on keypoint pairs.

A sampling grid (B, H, W, 2) holds, for each output pixel, the (x, y) position to read in the source image, in that
image's pixels; the centre of pixel (row i, column j) is (x=j, y=i), as for keypoints and OpenCV.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

MIN_TPS_POINTS = 3


def identity_grid(height: int, width: int) -> tf.Tensor:
    """(height, width, 2) float32: every pixel reads itself."""
    x, y = tf.meshgrid(tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32))
    return tf.stack([x, y], axis=-1)


def bilinear_sample(image: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """Backward warp: `image` (B, h, w, C) read at `grid` (B, H, W, 2) -> (B, H, W, C) in the image's dtype.

    Positions outside the image read its nearest border pixel (as `cv2.BORDER_REPLICATE`). Differentiable in the image
    and, inside the image, in the grid. The interpolation weights are computed in float32 so that positions keep
    sub-pixel precision under a bfloat16/float16 policy."""
    image = tf.convert_to_tensor(image)
    grid = tf.cast(grid, tf.float32)
    height, width, channels = image.shape[1], image.shape[2], image.shape[3]
    x = tf.clip_by_value(grid[..., 0], 0.0, width - 1.0)
    y = tf.clip_by_value(grid[..., 1], 0.0, height - 1.0)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)

    batch = tf.shape(image)[0]
    flat = tf.reshape(image, [batch, height * width, channels])
    out_shape = tf.concat([tf.shape(grid)[:3], [channels]], axis=0)

    def read(yi, xi):
        index = tf.reshape(yi * width + xi, [batch, -1])
        return tf.cast(tf.reshape(tf.gather(flat, index, batch_dims=1), out_shape), tf.float32)

    top = read(y0, x0) * (1.0 - wx) + read(y0, x1) * wx
    bottom = read(y1, x0) * (1.0 - wx) + read(y1, x1) * wx
    return tf.cast(top * (1.0 - wy) + bottom * wy, image.dtype)


def downsample_grid(grid: tf.Tensor, factor: int) -> tf.Tensor:
    """A grid over an S-pixel image, as the grid of the same motion over a feature map `factor` times smaller: each
    output cell averages the factor x factor positions it covers, converted to the feature map's pixels."""
    if factor == 1:
        return grid
    pooled = tf.nn.avg_pool2d(grid, factor, factor, "VALID")
    return (pooled + 0.5) / factor - 0.5


def tps_grid(reference_points, target_points, valid, height: int, width: int, smoothness: float = 1e-2,
             affine_ridge: float = 1e-8) -> tf.Tensor:
    """The thin-plate-spline backward grid (B, height, width, 2) that takes each `target_points` position to the
    matching `reference_points` position: sampling the reference image with it moves its content to the target
    keypoints. Points are (B, N, 2) in pixels, `valid` (B, N) bool marks the pairs to fit on. The spline fitted by
    `tps_fit`, evaluated on the pixel grid by `tps_evaluate`."""
    spline = tps_fit(reference_points, target_points, valid, height, width, smoothness, affine_ridge)
    return tps_evaluate(target_points, spline, height, width)


def tps_fit(reference_points, target_points, valid, height: int, width: int, smoothness: float = 1e-2,
            affine_ridge: float = 1e-8) -> tf.Tensor:
    """The spline of `tps_grid` (B, N + 3, 2) float32: a kernel weight per point, then the affine part's offset and
    x and y slopes, of the displacement in coordinates normalised to about [-1, 1] (so its weights do not depend on
    the crop size).

    Faces with fewer than `MIN_TPS_POINTS` valid pairs get zero displacement. `smoothness` is on the diagonal (noisy
    or coincident keypoints are approximated, not interpolated: on real dlib keypoints of 224-px crops 1e-2 leaves no
    folds, at about 0.3 px mean error at the keypoints) and a tiny ridge on the affine part keeps the system solvable
    for collinear points by choosing the motion closest to identity. An exactly affine motion of the points is
    reproduced exactly (up to the ridge).

    The (N + 3)-square solve runs in float64: it costs no more than in float32 on CPU (2.4 vs 2.7 ms for 8 faces of
    106 points), and float32 alone would move the flow by up to 0.013 px (224-px crops, clustered `bigo106` points).
    XLA compiles it poorly (15 against 1.5 ms for 8 faces on CPU): compiled inference fits it outside."""
    valid = tf.convert_to_tensor(valid, tf.bool)
    enough = tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1, keepdims=True) >= MIN_TPS_POINTS
    mask = tf.cast(valid & enough, tf.float64)                                                 # (B, N)

    centre, scale = _normalisation(height, width)
    controls = tf.cast(_controls(target_points, height, width), tf.float64)                     # (B, N, 2)
    displacements = (tf.cast(reference_points, tf.float64) - tf.cast(target_points, tf.float64)) / scale * mask[
        ..., None]

    kernel = _tps_kernel(_squared_distances(controls, controls))                               # (B, N, N)
    pair_mask = mask[:, :, None] * mask[:, None, :]
    # Left-out points get the equation w_k = 0 and no coupling to the others.
    diagonal = smoothness * mask + (1.0 - mask)
    top_left = kernel * pair_mask + tf.linalg.diag(diagonal)
    affine = _affine_basis(controls) * mask[..., None]                                          # (B, N, 3)
    batch = tf.shape(controls)[0]
    bottom_right = tf.broadcast_to(-affine_ridge * tf.eye(3, dtype=tf.float64), [batch, 3, 3])
    system = tf.concat([tf.concat([top_left, affine], axis=2),
                        tf.concat([tf.transpose(affine, [0, 2, 1]), bottom_right], axis=2)], axis=1)
    rhs = tf.concat([displacements, tf.zeros([batch, 3, 2], tf.float64)], axis=1)
    return tf.cast(tf.linalg.solve(system, rhs), tf.float32)


def tps_evaluate(target_points, spline, height: int, width: int) -> tf.Tensor:
    """The backward grid (B, height, width, 2) of `spline` (`tps_fit` on the same `target_points`, (B, N, 2)). N kernel
    values per pixel, nearly all of the spline's cost: in float32 and separably, a pixel's squared distance to a
    control point being its column's squared x distance plus its row's."""
    centre, scale = _normalisation(height, width)
    controls = _controls(target_points, height, width)                                         # (B, N, 2)
    num_points = controls.shape[1]
    weights, affine_coefficients = spline[:, :num_points], spline[:, num_points:]
    batch = tf.shape(controls)[0]
    columns = (tf.range(width, dtype=tf.float32) - centre[0]) / scale                          # (W,)
    rows = (tf.range(height, dtype=tf.float32) - centre[1]) / scale                            # (H,)
    column_distances = tf.square(columns[None, :, None] - controls[:, None, :, 0])             # (B, W, N)
    row_distances = tf.square(rows[None, :, None] - controls[:, None, :, 1])                   # (B, H, N)
    kernel = _tps_kernel(row_distances[:, :, None, :] + column_distances[:, None, :, :])       # (B, H, W, N)
    bending = tf.reshape(tf.matmul(tf.reshape(kernel, [batch, height * width, num_points]), weights),
                         [batch, height, width, 2])
    offset, slope_x, slope_y = (affine_coefficients[:, None, i, :] for i in range(3))          # (B, 1, 2) each
    affine_rows = offset + rows[None, :, None] * slope_y                                       # (B, H, 2)
    affine_columns = columns[None, :, None] * slope_x                                          # (B, W, 2)
    displacement = bending + affine_rows[:, :, None, :] + affine_columns[:, None, :, :]
    return identity_grid(height, width) + displacement * scale


def _normalisation(height: int, width: int) -> tuple[tuple[float, float], float]:
    """The centre (x, y) and the scale of the spline's normalised coordinates: (pixel - centre) / scale."""
    return ((width - 1) / 2, (height - 1) / 2), max(height, width) / 2


def _controls(target_points, height: int, width: int) -> tf.Tensor:
    """The spline's control points (B, N, 2) float32: the target points in normalised coordinates, computed alike by
    `tps_fit` (which solves on them in float64) and `tps_evaluate` (in float32: TFLite, which runs the evaluation where
    the fit is fed in, has no float64 arithmetic), so that both see the same controls."""
    centre, scale = _normalisation(height, width)
    return (tf.cast(target_points, tf.float32) - centre) / scale


def _squared_distances(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """(B, M, 2), (B, N, 2) -> (B, M, N)."""
    return tf.reduce_sum(tf.square(a[:, :, None, :] - b[:, None, :, :]), axis=-1)


def _tps_kernel(squared_distances: tf.Tensor) -> tf.Tensor:
    """U(r) = r^2 log r^2, with U(0) = 0: the logarithm of at least the dtype's smallest normal number, which is
    finite, times 0 gives 0. (`tf.math.xlogy` is the same, but TFLite runs its select in its reference kernels,
    outside XNNPACK: 4 % of the shipped model's time.)"""
    tiny = np.finfo(squared_distances.dtype.as_numpy_dtype).tiny
    return squared_distances * tf.math.log(tf.maximum(squared_distances, tiny))


def _affine_basis(points: tf.Tensor) -> tf.Tensor:
    """(B, N, 2) -> (B, N, 3) rows [1, x, y]."""
    return tf.concat([tf.ones_like(points[..., :1]), points], axis=-1)

"""Face crops and the affine transforms applied to a face and its keypoints alike.

Pixel convention (that of `keypoints`, OpenCV's `warpAffine` and TF's `ImageProjectiveTransformV3`): the centre of pixel
(row i, column j) is at (x=j, y=i). A crop of side S covers [-0.5, S - 0.5) on both axes and its centre is at
((S - 1) / 2, (S - 1) / 2); rotations and scalings of a crop turn about that centre. Matrices are 2x3 and map source
pixels to destination pixels: p' = M[:, :2] @ p + M[:, 2].

The face box `[x, y, w, h]` of an annotation is a region of the frame, x..x+w by y..y+h; `crop_matrix` maps the
square of side max(w, h) centred on it onto the whole crop, edge to edge. Where that square leaves the frame, the
crop repeats the frame's border pixels (as the original), rather than showing black bars that a generator would learn.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import tensorflow as tf


def square_box(bbox) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square of side max(w, h) centred on the box [x, y, w, h]."""
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        raise ValueError(f"bbox {list(bbox)} has a non-positive width or height")
    return x + w / 2, y + h / 2, max(w, h)


def crop_matrix(bbox, size: int) -> np.ndarray:
    """2x3 float64 matrix from frame pixels to the pixels of a size x size crop of the square box around `bbox`."""
    cx, cy, side = square_box(bbox)
    scale = size / side
    # The box's left edge cx - side/2 goes to the crop's left edge -0.5 (pixel centres are at integers).
    return np.array([[scale, 0.0, -0.5 - scale * (cx - side / 2)],
                     [0.0, scale, -0.5 - scale * (cy - side / 2)]], np.float64)


def crop(frame: np.ndarray, bbox, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The size x size face crop (frame's dtype, bilinear, border replicated) and its `crop_matrix`."""
    matrix = crop_matrix(bbox, size)
    return warp(frame, matrix, size), matrix


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size image of `image` under the 2x3 `matrix` (image's dtype, bilinear, border replicated): a crop,
    or a crop turned, scaled or shifted."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def apply_affine(points, matrix) -> np.ndarray:
    """Points (..., 2) moved by a 2x3 matrix; float32."""
    points = np.asarray(points, np.float64)
    matrix = np.asarray(matrix, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def invert_affine(matrix) -> np.ndarray:
    """The 2x3 matrix undoing `matrix` (e.g. crop pixels back to frame pixels)."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def rotation_matrix(center, degrees: float, scale: float = 1.0) -> np.ndarray:
    """Rotation by `degrees` (counter-clockwise as seen on screen, y pointing down) and scaling about `center`: 2x3
    float64. OpenCV holds `center` in float32, exact for the half-pixel centres of crops."""
    cx, cy = (float(v) for v in center)
    return cv2.getRotationMatrix2D((cx, cy), float(degrees), float(scale))


def affine_tf(images, points, degrees, scales):
    """Rotates each image by `degrees` and scales it by `scales` about its centre, and moves its keypoints with it.

    images: (B, H, W, C) or (H, W, C), any dtype `ImageProjectiveTransformV3` takes (uint8, float32, ...);
    points: (B, N, 2) or (N, 2) in the images' pixels; degrees, scales: (B,) or scalars. Returns (images, points) of
    the input shapes and dtypes. Pixels brought in from outside repeat the border (fill mode NEAREST); sampling is
    bilinear. Keypoints moved off the image keep their coordinates: keypoint maps skip them. Works in tf.data and in
    a `tf.function`, not under XLA (`ImageProjectiveTransformV3` has no XLA kernel): augment in the input pipeline.
    """
    images = tf.convert_to_tensor(images)
    points = tf.convert_to_tensor(points, tf.float32)
    batched = images.shape.rank == 4
    if not batched:
        images, points = images[None], points[None]
    degrees = tf.broadcast_to(tf.cast(degrees, tf.float32), tf.shape(images)[:1])
    scales = tf.broadcast_to(tf.cast(scales, tf.float32), tf.shape(images)[:1])
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    center = tf.stack([tf.cast(width - 1, tf.float32) / 2, tf.cast(height - 1, tf.float32) / 2])
    forward = _rotation_matrices(center, degrees, scales)                                      # (B, 2, 3)
    # The image op maps each OUTPUT pixel to the input pixel it samples, so it needs the inverse transform.
    inverse = _rotation_matrices(center, -degrees, 1.0 / scales)
    transforms = tf.concat([tf.reshape(inverse, [-1, 6]), tf.zeros_like(inverse[:, 0, :2])], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([height, width]),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="NEAREST")
    moved = tf.linalg.matvec(forward[:, None, :, :2], points) + forward[:, None, :, 2]
    if not batched:
        warped, moved = warped[0], moved[0]
    return warped, moved


def random_affine_tf(images, points, max_degrees: float, scale_range: float, seed):
    """`affine_tf` with an angle uniform in [-max_degrees, max_degrees] and a scale uniform in
    [1 - scale_range, 1 + scale_range], drawn per image by stateless ops from `seed` (shape (2,) integer tensor), so
    the same seed gives the same augmentation in tf.data and in graphs. An image and its keypoints share the draw."""
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)[:1] if images.shape.rank == 4 else tf.constant([], tf.int32)
    angle_seed, scale_seed = tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2))
    degrees = tf.random.stateless_uniform(shape, angle_seed, -max_degrees, max_degrees)
    scales = tf.random.stateless_uniform(shape, scale_seed, 1.0 - scale_range, 1.0 + scale_range)
    return affine_tf(images, points, degrees, scales)


def _rotation_matrices(center, degrees, scales):
    """`rotation_matrix` for a batch: center (2,), degrees and scales (B,) -> (B, 2, 3) float32."""
    radians = degrees * (math.pi / 180.0)
    alpha, beta = scales * tf.cos(radians), scales * tf.sin(radians)
    cx, cy = center[0], center[1]
    return tf.stack([tf.stack([alpha, beta, (1 - alpha) * cx - beta * cy], axis=-1),
                     tf.stack([-beta, alpha, beta * cx + (1 - alpha) * cy], axis=-1)], axis=-2)

"""Dense optical flow between training crops: the target of the dense-motion network (OpenCV's DIS).

The flow of a pair is backward, as the generators' own: for each pixel of the target crop, the (x, y) pixel of the
reference crop it shows. The keypoints say nothing directly about the forehead, hair, ears or background; the true
motion there is what the flow supplies at training time (inference still sees only the reference and the keypoints).
Where the forward and backward flows disagree (occlusions, textureless areas, the face's far side on a turn), the pixel
is marked invalid rather than trusted.
"""
from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

# A pixel whose round trip target -> reference -> target misses by more than this (pixels, plus a share of the motion)
# is not trusted: the usual forward-backward check (Sundaram et al. 2010).
CONSISTENCY_PIXELS = 1.0
CONSISTENCY_SHARE = 0.05
# A pixel counts as the frame's own where its content mask (bilinear near the crop's edge) is at least this.
CONTENT = 0.99


def _dis() -> cv2.DISOpticalFlow:
    # MEDIUM: the preset that keeps fine motion at crop sizes of 64-128 px; FAST over-smooths lips and eyelids.
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(np.rint(image), 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def backward_flow(references: np.ndarray, targets: np.ndarray, reference_content: np.ndarray | None = None,
                  target_content: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For RGB crops (B, S, S, 3) 0..255 (any real dtype): the reference pixel (x, y) each target pixel shows,
    (B, S, S, 2) float32, and whether the forward-backward check trusts it, (B, S, S, 1) float32 0 or 1.

    `*_content` (B, S, S, 1) in [0, 1], where given, say which pixels show the frame rather than a fill an
    augmentation brought in from outside the crop: a flow from or onto a fill is not trusted (a flat fill matches
    itself under any motion)."""
    references, targets = np.asarray(references), np.asarray(targets)
    if references.shape != targets.shape or references.ndim != 4 or references.shape[-1] != 3:
        raise ValueError(f"backward_flow needs two (B, S, S, 3) batches of one shape, got {references.shape} and "
                         f"{targets.shape}")
    batch, height, width = references.shape[:3]
    full = np.ones((batch, height, width, 1), np.float32)
    reference_content = full if reference_content is None else np.asarray(reference_content, np.float32)
    target_content = full if target_content is None else np.asarray(target_content, np.float32)
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
    dis = _dis()
    sources, valid = np.empty((batch, height, width, 2), np.float32), np.empty((batch, height, width, 1), np.float32)
    for i in range(batch):
        reference, target = _gray(references[i]), _gray(targets[i])
        to_reference = dis.calc(target, reference, None)     # target(x) ~ reference(x + to_reference(x))
        to_target = dis.calc(reference, target, None)
        sources[i] = grid + to_reference
        back = cv2.remap(to_target, sources[i, ..., 0], sources[i, ..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        miss = np.linalg.norm(to_reference + back, axis=-1)
        inside = ((sources[i, ..., 0] >= 0) & (sources[i, ..., 0] <= width - 1)
                  & (sources[i, ..., 1] >= 0) & (sources[i, ..., 1] <= height - 1))
        tolerance = CONSISTENCY_PIXELS + CONSISTENCY_SHARE * np.linalg.norm(to_reference, axis=-1)
        source_content = cv2.remap(reference_content[i, ..., 0], sources[i, ..., 0], sources[i, ..., 1],
                                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        valid[i, ..., 0] = ((miss <= tolerance) & inside & (source_content > CONTENT)
                            & (target_content[i, ..., 0] > CONTENT))
    return sources, valid


def backward_flow_tf(references: tf.Tensor, targets: tf.Tensor, reference_content: tf.Tensor,
                     target_content: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`backward_flow` inside a tf.data map (static shapes kept)."""
    sources, valid = tf.numpy_function(backward_flow, [references, targets, reference_content, target_content],
                                       [tf.float32, tf.float32], stateful=False)
    shape = references.shape
    return tf.ensure_shape(sources, [*shape[:3], 2]), tf.ensure_shape(valid, [*shape[:3], 1])

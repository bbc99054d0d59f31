"""The loss functions of the training step, each a pure function returning one value per example (shape (B,)); a
generator's own terms, built from these, are in its package (`models/<generator>/losses.py`).

Per-example values let the step average over the GLOBAL batch (`average`), which is what makes the summed gradients
of all replicas equal the gradient of the whole batch's mean loss under any distribution strategy.
"""
from __future__ import annotations

import tensorflow as tf


def per_example_mean(x: tf.Tensor) -> tf.Tensor:
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def l1(predicted: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example (images, keypoint maps or feature vectors)."""
    return per_example_mean(tf.abs(tf.cast(predicted, tf.float32) - tf.cast(target, tf.float32)))


def masked_l1(predicted: tf.Tensor, target: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example over the pixels where `weight` (B, H, W, 1) is 1, 0 where none is."""
    weight = tf.cast(weight, tf.float32)
    difference = tf.abs(tf.cast(predicted, tf.float32) - tf.cast(target, tf.float32)) * weight
    count = tf.reduce_sum(weight, axis=[1, 2, 3]) * tf.cast(tf.shape(difference)[-1], tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(difference, axis=[1, 2, 3]), count)


def flow_l1(flow: tf.Tensor, target_flow: tf.Tensor, trusted: tf.Tensor) -> tf.Tensor:
    """`masked_l1` of a generator's backward flow (B, S, S, 2, `contract.FLOW_LAYER`) to the optical flow where
    `trusted` (B, S, S, 1), in units of half the crop side: the same weight means the same at every crop size."""
    half = flow.shape[1] / 2
    return masked_l1(flow / half, target_flow / half, trusted)


def critic(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating critic loss: softplus(-D(real)) + softplus(D(fake))."""
    return per_example_mean(tf.nn.softplus(-tf.cast(real_logits, tf.float32))) + per_example_mean(
        tf.nn.softplus(tf.cast(fake_logits, tf.float32)))


def generator_adversarial(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: softplus(-D(fake))."""
    return per_example_mean(tf.nn.softplus(-tf.cast(fake_logits, tf.float32)))


def average(per_example: tf.Tensor, global_batch_size: int) -> tf.Tensor:
    """Sum over this replica's examples divided by the global batch size: summed over replicas, the global mean."""
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)

"""The keypoint detector: a face -> its keypoint map, trained beside the generator to judge the generated expression."""
from __future__ import annotations

import random

import keras
import tensorflow as tf

from bigo_facegen.models.blocks import stargan_trunk


class KeypointDetector(keras.Model):
    """The generator's trunk on the face alone: (B, S, S, 3) in [-1, 1] -> keypoint map (B, S, S, 3) float32 in
    [-1, 1]. Gaussian noise (std `noise_std`) is added to its input while training only, so that the generator cannot
    satisfy it with pixel-level patterns that a clean detector would read as keypoints."""

    def __init__(self, conv_dim: int = 64, res_blocks: int = 6, noise_std: float = 0.4, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.conv_dim = conv_dim
        self.res_blocks = res_blocks
        self.noise_std = noise_std
        # A weight rather than a keras.random.SeedGenerator, whose state tf.train.Checkpoint does not save: resuming
        # a run must continue its noise sequence.
        seed = random.randrange(2 ** 31) if seed is None else seed
        self.noise_seed = self.add_weight(shape=(2,), dtype="int64", trainable=False, name="noise_seed",
                                          initializer=keras.initializers.Constant([seed, 0]))
        self.trunk = stargan_trunk(conv_dim, res_blocks, name="trunk")

    def call(self, face, training=False):
        if training and self.noise_std > 0:
            face = face + keras.ops.cast(self._noise(keras.ops.shape(face)), face.dtype)
        return self.trunk(face, training=training)

    def _noise(self, shape):
        # The seed is a mirrored variable that every replica advances alike (as Keras' GaussianNoise would, drawing
        # the same noise on every replica); folding in the replica id makes each replica's noise its own.
        seed = tf.identity(self.noise_seed.value)
        self.noise_seed.assign_add(tf.constant([0, 1], tf.int64))
        replica = tf.distribute.get_replica_context()
        if replica is not None:
            seed = tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)
        return tf.random.stateless_normal(shape, seed=seed, stddev=self.noise_std)

    def get_config(self):
        return {**super().get_config(), "conv_dim": self.conv_dim, "res_blocks": self.res_blocks,
                "noise_std": self.noise_std}

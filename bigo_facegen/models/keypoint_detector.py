"""The keypoint detector: a face -> its keypoint map, trained beside the generator to judge the generated expression."""
from __future__ import annotations

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
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trunk = stargan_trunk(conv_dim, res_blocks, name="trunk")

    def call(self, face, training=False):
        if training and self.noise_std > 0:
            face = face + keras.ops.cast(self._noise(keras.ops.shape(face)), face.dtype)
        return self.trunk(face, training=training)

    def _noise(self, shape):
        # The seed state is a mirrored variable that every replica advances alike, so Keras' GaussianNoise would draw
        # the same noise on every replica; folding in the replica id makes each replica's noise its own.
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        replica = tf.distribute.get_replica_context()
        if replica is not None:
            seed = tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)
        return tf.random.stateless_normal(shape, seed=seed, stddev=self.noise_std)

    def get_config(self):
        return {**super().get_config(), "conv_dim": self.conv_dim, "res_blocks": self.res_blocks,
                "noise_std": self.noise_std}

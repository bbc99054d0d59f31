"""SN-ResNet critics: real/fake on one face, and identity on a (reference, candidate) pair."""
from __future__ import annotations

import keras

from bigo_facegen.models.blocks import CriticBlock, spectral_norm


class SNResNetCritic(keras.Model):
    """An optimised first block and `blocks` downsampling residual blocks (each doubling the width), ReLU, global
    average pool and one logit. Every convolution and the final dense layer are spectrally normalised: the
    normalisation (one power iteration, kernel rewritten in place) runs only when called with `training=True`.
    Returns (B, 1) float32 logits under any precision policy."""

    def __init__(self, in_channels: int, critic_dim: int = 64, blocks: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.critic_dim = critic_dim
        self.num_blocks = blocks
        # Blocks are attributes, not a list: tf.train.Checkpoint does not follow Keras' tracked lists.
        self.block0 = CriticBlock(in_channels, critic_dim, first=True, name="block0")
        width = critic_dim
        for i in range(1, blocks + 1):
            setattr(self, f"block{i}", CriticBlock(width, width * 2, name=f"block{i}"))
            width *= 2
        self.pool = keras.layers.GlobalAveragePooling2D(dtype="float32", name="pool")
        self.logit = spectral_norm(keras.layers.Dense(1, dtype="float32", name="logit"), dtype="float32")

    @property
    def blocks(self) -> list[CriticBlock]:
        return [getattr(self, f"block{i}") for i in range(self.num_blocks + 1)]

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x, training=training)
        return self.logit(self.pool(keras.ops.relu(x)), training=training)

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "critic_dim": self.critic_dim,
                "blocks": self.num_blocks}


class RealFakeCritic(SNResNetCritic):
    """Logit that a face (B, S, S, 3) in [-1, 1] is a real frame."""

    def __init__(self, critic_dim: int = 64, blocks: int = 4, **kwargs):
        kwargs.pop("in_channels", None)
        super().__init__(3, critic_dim, blocks, **kwargs)


class IdentityCritic(SNResNetCritic):
    """Logit that `candidate` shows the same person as `reference`: called on the pair `(reference, candidate)`, both
    (B, S, S, 3) in [-1, 1], stacked on channels."""

    def __init__(self, critic_dim: int = 64, blocks: int = 4, **kwargs):
        kwargs.pop("in_channels", None)
        super().__init__(6, critic_dim, blocks, **kwargs)

    def call(self, pair, training=False):
        reference, candidate = pair
        return super().call(keras.ops.concatenate([reference, candidate], axis=-1), training=training)

"""The StarGAN-style expression generator: reference face + target keypoint map -> the face with that expression."""
from __future__ import annotations

import keras
import tensorflow as tf

from bigo_facegen.config import ModelConfig
from bigo_facegen.models.blocks import stargan_trunk
from bigo_facegen.models.contract import for_targets
from bigo_facegen.models.stargan.config import StarGANConfig


class ExpressionGenerator(keras.Model):
    """Reads `reference` (B or 1, S, S, 3) and `target_map` (B, S, S, 3) in [-1, 1] from its input dict (other keys
    are ignored) and returns the generated face (B, S, S, 3) float32 in [-1, 1] (`compose`: only that). S must be a
    multiple of 4."""

    def __init__(self, conv_dim: int = 64, res_blocks: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.conv_dim = conv_dim
        self.res_blocks = res_blocks
        self.trunk = stargan_trunk(conv_dim, res_blocks, name="trunk")

    def call(self, inputs, training=False):
        return self.compose(inputs, training=training)["image"]

    def compose(self, inputs: dict, training=False) -> dict:
        """`image`, the generated face (no motion, no repaint: see `contract`)."""
        target_map = inputs["target_map"]
        x = keras.ops.concatenate([for_targets(inputs["reference"], tf.shape(target_map)[0]), target_map], axis=-1)
        return {"image": self.trunk(x, training=training)}

    def get_config(self):
        return {**super().get_config(), "conv_dim": self.conv_dim, "res_blocks": self.res_blocks}


def build(model_cfg: ModelConfig, section: StarGANConfig, image_size: int, num_points: int) -> keras.Model:
    """The generator of the registry entry (`contract.GeneratorSpec.build`), unbuilt: the model's widths."""
    return ExpressionGenerator(model_cfg.conv_dim, model_cfg.res_blocks, name="generator")

"""The warp-and-refine generator's own loss terms, beside those of every generator (`train_step`): each a value per
example (shape (B,)), named as the `WarpRefineConfig` field that weighs it."""
from __future__ import annotations

import tensorflow as tf

from bigo_facegen import losses
from bigo_facegen.models.contract import FLOW_LAYER
from bigo_facegen.models.warp_refine.config import WarpRefineConfig
from bigo_facegen.models.warp_refine.network import WARPED_FEATURES_LAYER, WarpRefineGenerator


def loss_terms(section: WarpRefineConfig, layers: dict, batch: dict, generator: WarpRefineGenerator
               ) -> dict[str, tf.Tensor]:
    """From the generator's `compose` output `layers` on a training `batch`: the painting alone against the target
    (always), and where weighted, its motion against the pair's optical flow and its warped features against the
    target's."""
    target = batch["target"]
    terms = {"painted_l1": losses.l1(layers["painted"], target)}
    if section.flow > 0:
        terms["flow"] = losses.flow_l1(layers[FLOW_LAYER], batch["target_flow"], batch["target_flow_valid"])
    if section.feature_warp > 0:
        terms["feature_warp"] = feature_warp(layers[WARPED_FEATURES_LAYER],
                                             generator.target_features(target, layers["mask"], training=True))
    return terms


def feature_warp(warped_features: list[tf.Tensor], target_features: list[tf.Tensor]) -> tf.Tensor:
    """Thin-Plate-Spline-Motion-Model's warp loss, per example: the mean absolute difference between the reference's
    encoder features moved by the flow and the true target's (held fixed: the motion moves towards them, the encoder
    is not pulled to agree), averaged over the levels."""
    distances = [losses.per_example_mean(tf.abs(tf.cast(warped, tf.float32)
                                                - tf.stop_gradient(tf.cast(target, tf.float32))))
                 for warped, target in zip(warped_features, target_features, strict=True)]
    return tf.add_n(distances) / len(distances)

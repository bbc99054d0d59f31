"""Frozen feature networks for the perceptual loss, in a small registry so that other backbones can join.

A backbone builder takes `(model_cfg, image_size)` and returns a `PerceptualNetwork`, or None when its pretrained
weights are unavailable: random features would make the loss noise, so it is then switched off with a log line,
never used silently.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import keras
from absl import logging

from bigo_facegen.config import ModelConfig

RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"

Builder = Callable[[ModelConfig, int], "PerceptualNetwork | None"]
BACKBONES: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a backbone builder under `name` (the value of `ModelConfig.perceptual`)."""

    def add(builder: Builder) -> Builder:
        if name in BACKBONES or name == "none":
            raise ValueError(f"perceptual backbone {name!r} is already registered")
        BACKBONES[name] = builder
        return builder

    return add


class PerceptualNetwork(keras.Model):
    """A frozen backbone in inference mode (batch norm on its ImageNet statistics) with its own input preprocessing:
    faces (B, S, S, 3) in [-1, 1] -> pooled features (B, D) float32."""

    def __init__(self, backbone: keras.Model, preprocess: Callable, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocess = preprocess
        self.backbone.trainable = False
        self.trainable = False

    def call(self, faces, training=False):
        features = self.backbone(self.preprocess((faces + 1.0) * 127.5), training=False)
        return keras.ops.cast(features, "float32")


def keras_cache_path(filename: str) -> Path:
    """Where `keras.utils.get_file` caches downloads: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / filename


def build(model_cfg: ModelConfig, image_size: int) -> PerceptualNetwork | None:
    """The perceptual network that `model_cfg.perceptual` names, or None (loss off, logged) for `none` or when the
    backbone's weights are not available."""
    if model_cfg.perceptual == "none":
        logging.info("Perceptual loss off (model.perceptual=none).")
        return None
    if model_cfg.perceptual not in BACKBONES:
        raise ValueError(f"unknown perceptual backbone {model_cfg.perceptual!r}; "
                         f"choose one of {sorted(BACKBONES) + ['none']}")
    return BACKBONES[model_cfg.perceptual](model_cfg, image_size)


@register("resnet50")
def resnet50(model_cfg: ModelConfig, image_size: int) -> PerceptualNetwork | None:
    """ImageNet ResNet50 without its classifier, globally average-pooled (2048 features), as the original. Weights
    from `model_cfg.perceptual_weights` (an error if that file is missing) or else the Keras cache."""
    if model_cfg.perceptual_weights:
        path = Path(model_cfg.perceptual_weights)
        if not path.is_file():
            raise FileNotFoundError(f"model.perceptual_weights: no ResNet50 weights file at {path}")
    else:
        path = keras_cache_path(RESNET50_NOTOP)
        if not path.is_file():
            logging.warning(
                "Perceptual loss OFF: no ImageNet ResNet50 weights at %s and model.perceptual_weights is unset. "
                "Copy %s there or set model.perceptual_weights to train with it (model.perceptual=none silences "
                "this).", path, RESNET50_NOTOP)
            return None
    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg")
    backbone.load_weights(str(path))
    logging.info("Perceptual loss on: ResNet50 features, weights from %s.", path)
    return PerceptualNetwork(backbone, keras.applications.resnet50.preprocess_input, name="perceptual_resnet50")

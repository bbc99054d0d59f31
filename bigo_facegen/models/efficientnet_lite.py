"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile accelerators) as a Keras functional model.

Lite differs from EfficientNet-B0 in three ways: no squeeze-excitation, ReLU6 instead of swish, and a stem and head
that are never rescaled. Layer names follow the PyTorch module paths of `efficientnet_lite_pytorch` (`_blocks.3.
_expand_conv` -> `blocks_3_expand_conv`), whose ImageNet state dict `lite0_weights` converts. Convolutions pad
TensorFlow's "same" way (the odd extra row and column at the bottom and right), which is what that PyTorch definition
and the original TensorFlow checkpoint both do, so inputs of any size agree with them.
"""
from __future__ import annotations

import dataclasses

import keras

# Inputs are RGB in [0, 255], normalised as the TensorFlow Lite models were trained: (pixel - 127) / 128.
MEAN_RGB = 127.0
STDDEV_RGB = 128.0
NUM_CLASSES = 1000
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280


@dataclasses.dataclass(frozen=True)
class Stage:
    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    filters: int


# Lite0: width and depth multipliers 1.0, so the B0 stage table unchanged.
LITE0_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)


def preprocess_input(pixels):
    """RGB in [0, 255] -> the network's input scale."""
    return (pixels - MEAN_RGB) / STDDEV_RGB


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, index: int, in_filters: int, out_filters: int, kernel_size: int, stride: int, expand_ratio: int):
    """Inverted bottleneck: 1x1 expansion, depthwise conv, linear 1x1 projection, identity skip when shapes allow."""
    prefix = f"blocks_{index}_"
    inputs = x
    if expand_ratio != 1:
        x = keras.layers.Conv2D(in_filters * expand_ratio, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _batch_norm(prefix + "bn0")(x)
        x = _relu6(prefix + "expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(kernel_size, stride, padding="same", use_bias=False,
                                     name=prefix + "depthwise_conv")(x)
    x = _batch_norm(prefix + "bn1")(x)
    x = _relu6(prefix + "depthwise_relu")(x)
    x = keras.layers.Conv2D(out_filters, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _batch_norm(prefix + "bn2")(x)
    if stride == 1 and in_filters == out_filters:
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite0(input_shape=(None, None, 3), name: str = "efficientnet_lite0") -> keras.Model:
    """The ImageNet classifier: preprocessed RGB (B, H, W, 3) -> logits (B, 1000). Untrained; see `lite0_weights`."""
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(STEM_FILTERS, 3, 2, padding="same", use_bias=False, name="conv_stem")(inputs)
    x = _batch_norm("bn0")(x)
    x = _relu6("stem_relu")(x)
    index, filters = 0, STEM_FILTERS
    for stage in LITE0_STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            x = _mbconv(x, index, filters, stage.filters, stage.kernel_size, stride, stage.expand_ratio)
            index, filters = index + 1, stage.filters
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="conv_head")(x)
    x = _batch_norm("bn1")(x)
    x = _relu6("head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pooling")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="fc")(x)
    return keras.Model(inputs, logits, name=name)


def stage_end_strides() -> dict[int, int]:
    """Output stride of the network -> index of the last block computing at it (e.g. {2: 0, 4: 2, 8: 4, 16: 10,
    32: 15} for Lite0): the deepest, most semantic features at each resolution."""
    ends, index, stride = {}, 0, 2
    for stage in LITE0_STAGES:
        stride *= stage.stride
        index += stage.repeats
        ends[stride] = index - 1
    return ends


def feature_extractor(model: keras.Model, strides=(2, 4, 8, 16)) -> keras.Model:
    """A model sharing `model`'s layers: preprocessed RGB -> list of feature maps, the ends of the stages at `strides`
    (B, H / s, W / s, C_s), finest first."""
    ends = stage_end_strides()
    unknown = sorted(set(strides) - set(ends))
    if unknown:
        raise ValueError(f"EfficientNet-Lite0 has no features at stride(s) {unknown}; choose from {sorted(ends)}")
    outputs = []
    for stride in strides:
        block = f"blocks_{ends[stride]}_"
        layer = block + "add" if any(each.name == block + "add" for each in model.layers) else block + "bn2"
        outputs.append(model.get_layer(layer).output)
    return keras.Model(model.input, outputs, name=f"{model.name}_features")

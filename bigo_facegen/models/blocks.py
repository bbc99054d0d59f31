"""Building blocks shared by the networks: the StarGAN trunk (generator and keypoint detector) and the SN-ResNet
critic blocks."""
from __future__ import annotations

import functools

import keras
import tensorflow as tf


def instance_norm(name: str | None = None) -> keras.layers.Layer:
    """Instance norm with an affine transform: one group per channel. It has no running statistics, so every image is
    normalised by its own statistics in training and inference alike (running statistics at test time gave the
    original's author colour shifts and ghosting), and nothing can drift between replicas."""
    return InstanceNormalization(epsilon=1e-5, name=name)


class InstanceNormalization(keras.layers.GroupNormalization):
    """Keras' `GroupNormalization` with one group per channel (its weights and checkpoints), computed on the 4-D
    feature map: the moments over height and width. Keras' own reshapes to (B, H, W, C, 1) and reduces three axes, one
    of size 1, which TFLite's XNNPACK reduces element by element: those reductions took a third of `stargan`'s
    batch-1 time in TFLite at the cpu preset sizes, and take 1 % on the 4-D map (perf profiles). Same result up to
    float rounding."""

    def __init__(self, **kwargs):
        super().__init__(**{"groups": -1, **kwargs})

    def build(self, input_shape):
        super().build(input_shape)
        if self.groups != input_shape[-1]:
            raise ValueError(f"InstanceNormalization {self.name!r} normalises each of the {input_shape[-1]} channels "
                             f"alone; got groups={self.groups}")

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")  # statistics in float32 under a mixed policy, as Keras' own
        mean, variance = keras.ops.moments(x, axes=[1, 2], keepdims=True)
        inv = keras.ops.rsqrt(variance + self.epsilon) * self.gamma
        return keras.ops.cast(x * inv + (self.beta - mean * inv), self.compute_dtype)


def conv(filters: int, kernel: int, strides: int = 1, use_bias: bool = False, name: str | None = None):
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=use_bias, name=name)


def head_conv2d(x, kernel):
    """The stride-1 "same" convolution of `x` (B, H, W, C) by `kernel` (k, k, C, O), k odd, for output heads (O of 1
    to 4): one k x 1 convolution to k x O channels, one group of O for each column of the kernel, whose groups are then
    shifted along the width and summed. oneDNN pads a convolution's 1-3 output channels to 16, so the direct k x k
    head does several times the work it needs (7x7, 64 to 3 channels at 128 px, batch 8: 57.8 against 23.3 ms; 16 to
    3 at 64 px: 3.9 against 2.6 ms). The whole `stargan` generator infers 1.11x faster at 128 px / 64 channels (batch 1
    and 8), and as fast at 64 px / 16 channels. Same result up to float rounding. (A custom gradient through the direct
    convolution's backward ops would be faster to train at 16 channels, but its IdentityN makes the TFLite converter
    drop the signature.)"""
    size, _, channels, outputs = kernel.shape
    columns = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3]), [size, 1, channels, size * outputs])
    taps = tf.nn.conv2d(x, columns, 1, "SAME")
    half = size // 2
    taps = tf.pad(taps, [[0, 0], [0, 0], [half, half], [0, 0]])
    width = tf.shape(x)[2]
    # Adds rather than one add_n: TFLite runs ADD_N outside XNNPACK, in a thread pool of its own.
    return functools.reduce(tf.add, [taps[:, :, column:column + width, column * outputs:(column + 1) * outputs]
                                     for column in range(size)])


class HeadConv2D(keras.layers.Conv2D):
    """A Conv2D output head (stride 1, "same", an odd kernel, a few output channels) computed by `head_conv2d`; its
    weights and checkpoints are a Conv2D's."""

    def __init__(self, filters: int, kernel_size, padding: str = "same", **kwargs):
        super().__init__(filters, kernel_size, padding=padding, **kwargs)
        height, width = self.kernel_size
        if (self.padding != "same" or self.strides != (1, 1) or self.dilation_rate != (1, 1) or self.groups != 1
                or height != width or height % 2 == 0):
            raise ValueError(f"HeadConv2D {self.name!r} computes square odd kernels at stride 1 with 'same' padding "
                             f"only; got kernel {self.kernel_size}, strides {self.strides}, padding {self.padding!r}, "
                             f"dilation {self.dilation_rate}, groups {self.groups}")

    def convolution_op(self, inputs, kernel):
        return head_conv2d(inputs, kernel)


class ResidualBlock(keras.layers.Layer):
    """x + IN(conv3(ReLU(IN(conv3(x))))), convolutions without bias since instance norm follows each."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = conv(filters, 3, name="conv1")
        self.norm1 = instance_norm("norm1")
        self.conv2 = conv(filters, 3, name="conv2")
        self.norm2 = instance_norm("norm2")

    def call(self, x):
        h = keras.ops.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(h))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def stargan_trunk(conv_dim: int, res_blocks: int, name: str) -> keras.Sequential:
    """conv7 -> two stride-2 conv4 downsamples -> residual blocks -> two stride-2 transposed conv4 upsamples -> conv7
    -> tanh, each inner convolution followed by instance norm and ReLU. Returns 3 channels in [-1, 1], float32 even
    under a mixed precision policy. Input sides must be multiples of 4."""
    layers = [conv(conv_dim, 7, name="stem"), instance_norm("stem_norm"), keras.layers.ReLU()]
    width = conv_dim
    for i in range(2):
        width *= 2
        layers += [conv(width, 4, strides=2, name=f"down{i}"), instance_norm(f"down{i}_norm"), keras.layers.ReLU()]
    layers += [ResidualBlock(width, name=f"res{i}") for i in range(res_blocks)]
    for i in range(2):
        width //= 2
        layers += [keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"up{i}"),
                   instance_norm(f"up{i}_norm"), keras.layers.ReLU()]
    layers += [HeadConv2D(3, 7, use_bias=False, name="head"),
               keras.layers.Activation("tanh", dtype="float32", name="tanh")]
    return keras.Sequential(layers, name=name)


def spectral_norm(layer: keras.layers.Layer, **kwargs) -> keras.layers.SpectralNormalization:
    """Spectral normalisation whose power iteration runs in float32 (no autocast) under mixed precision too: the
    wrapper writes the normalised kernel back into the float32 variable, which a float16 computation would round to
    float16 precision on every call. The wrapped layer still computes in the policy's dtype."""
    return keras.layers.SpectralNormalization(layer, autocast=False, name=f"sn_{layer.name}", **kwargs)


def sn_conv(filters: int, kernel: int, name: str) -> keras.layers.SpectralNormalization:
    return spectral_norm(keras.layers.Conv2D(filters, kernel, padding="same", name=name))


class CriticBlock(keras.layers.Layer):
    """Downsampling residual block of an SN-ResNet critic. The `first` (optimised) block takes the image itself, so it
    starts with a convolution instead of a ReLU and widens at once; later blocks widen at their second convolution."""

    def __init__(self, in_channels: int, filters: int, first: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.filters = filters
        self.first = first
        self.conv1 = sn_conv(filters if first else in_channels, 3, "conv1")
        self.conv2 = sn_conv(filters, 3, "conv2")
        self.skip = sn_conv(filters, 1, "skip")
        self.pool = keras.layers.AveragePooling2D(2)

    def call(self, x, training=False):
        h = x if self.first else keras.ops.relu(x)
        h = self.conv2(keras.ops.relu(self.conv1(h, training=training)), training=training)
        return self.pool(h) + self.pool(self.skip(x, training=training))

    def get_config(self):
        return {**super().get_config(), "in_channels": self.in_channels, "filters": self.filters, "first": self.first}

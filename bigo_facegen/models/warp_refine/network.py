"""The warp-and-refine generator: move the reference face's features to the target keypoints, then paint what the
motion cannot explain (FOMM / TPSMM style, with a thin-plate spline on the given keypoints as the motion prior).

Its output is a composite: the reference crop warped by the flow, with the decoder's painting laid over it only where
its repaint mask says so. The mask travels with the face (`compose`, the export's `repaint` output) so that fusion can
keep the full-resolution warped reference frame everywhere else: the crop's resolution then limits only what had to
be painted."""
from __future__ import annotations

import keras
import tensorflow as tf

from bigo_facegen import keypoints, warping
from bigo_facegen.config import ModelConfig
from bigo_facegen.models.blocks import ResidualBlock, conv, head_conv2d, instance_norm
from bigo_facegen.models.contract import for_targets, keypoint_spline
from bigo_facegen.models.warp_refine.config import WarpRefineConfig

REQUIRED_INPUTS = ("reference", "reference_points", "target_points", "reference_flags", "target_flags")
LEVELS = 3  # full, 1/2 and 1/4 resolution: crop sides must be multiples of 4
# The occlusion mask starts near 1 everywhere (sigmoid(2) = 0.88, small random weights), so that an untrained
# generator already follows the warped reference and the decoder first learns to refine it rather than to paint.
MASK_BIAS = 2.0
MASK_KERNEL_SCALE = 0.1
# The repaint mask starts near 0 (sigmoid(-3) = 0.05): an untrained generator returns the warped reference, and the
# painting is let in only where it lowers the losses more than the warped texture does.
REPAINT_BIAS = -3.0
# The layer of `compose` beside the contract's (`contract.REPAINT_LAYERS`, `contract.FLOW_LAYER`) that the feature warp
# loss reads (`losses.feature_warp`): the encoder's feature maps of the reference at 1, 1/2, 1/4 resolution, moved by
# the flow and multiplied by the occlusion mask (a list, in the network's dtype); `target_features(target,
# layers["mask"], training)` gives the true target's, masked alike.
WARPED_FEATURES_LAYER = "warped_features"


def fused_heads(x, heads: list[keras.layers.Conv2D]) -> list[tf.Tensor]:
    """The outputs of output heads (stride-1 "same" convolutions with a bias) that read the same features `x`, from
    one `head_conv2d` of their stacked kernels, in float32, each with its own activation. oneDNN pads a convolution's
    1-3 output channels to 16, so a 7x7 head alone costs about what a fused pair does: fusing the two pairs made
    `warp_refine`'s inference 1.12-1.13x faster at 64 px (`benchmarks.compare_generators`), with the same outputs. The
    heads keep their own weights (and checkpoints)."""
    x = tf.cast(x, tf.float32)
    kernel = tf.concat([tf.cast(head.kernel.value, tf.float32) for head in heads], axis=-1)
    bias = tf.concat([tf.cast(head.bias.value, tf.float32) for head in heads], axis=0)
    stacked = tf.nn.bias_add(head_conv2d(x, kernel), bias)
    outputs = tf.split(stacked, [head.filters for head in heads], axis=-1)
    return [head.activation(output) for head, output in zip(heads, outputs)]


def conv_block(filters: int, kernel: int, name: str, strides: int = 1) -> keras.Sequential:
    """conv -> instance norm -> ReLU."""
    return keras.Sequential([conv(filters, kernel, strides, name="conv"), instance_norm("norm"), keras.layers.ReLU()],
                            name=name)


class DenseMotion(keras.layers.Layer):
    """A small U-Net from (reference, prior-warped reference, keypoint heatmaps, prior displacement) to a residual
    displacement in units of half the crop side (float32, zero at initialisation) and an occlusion mask in (0, 1)
    (float32): 1 where the warped reference can be kept, 0 where the decoder must paint."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        # Blocks are attributes, not lists: tf.train.Checkpoint does not follow Keras' tracked lists.
        for level in range(LEVELS):
            setattr(self, f"down{level}", conv_block(width * 2 ** level, 3, f"down{level}"))
        self.pool = keras.layers.AveragePooling2D(2)
        # Nearest, not bilinear: XLA cannot compile bilinear upsampling's gradient in bfloat16.
        self.upsample = keras.layers.UpSampling2D(2)
        for level in range(LEVELS - 1):
            setattr(self, f"up{level}", conv_block(width * 2 ** level, 3, f"up{level}"))
        self.flow_head = keras.layers.Conv2D(2, 7, padding="same", kernel_initializer="zeros", dtype="float32",
                                             name="flow_head")
        self.mask_head = keras.layers.Conv2D(
            1, 7, padding="same", activation="sigmoid", dtype="float32", name="mask_head",
            kernel_initializer=keras.initializers.VarianceScaling(MASK_KERNEL_SCALE),
            bias_initializer=keras.initializers.Constant(MASK_BIAS))
        # Built here: `call` runs them through `fused_heads`, which reads their weights without calling them. They
        # read the last up block's output and the first skip, `width` channels each.
        for head in (self.flow_head, self.mask_head):
            head.build((None, None, None, 2 * width))

    @property
    def down(self) -> list[keras.Sequential]:
        return [getattr(self, f"down{level}") for level in range(LEVELS)]

    @property
    def up(self) -> list[keras.Sequential]:
        return [getattr(self, f"up{level}") for level in range(LEVELS - 1)]

    def call(self, x, training=False):
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = self.pool(x)
            x = block(x, training=training)
            skips.append(x)
        for level in reversed(range(LEVELS - 1)):
            x = self.up[level](self.upsample(x), training=training)
            x = keras.ops.concatenate([x, skips[level]], axis=-1)
        return fused_heads(x, [self.flow_head, self.mask_head])

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def occlude(features: list[tf.Tensor], mask: tf.Tensor) -> list[tf.Tensor]:
    """Each of the feature maps at 1, 1/2, 1/4... resolution times the occlusion `mask` (B, S, S, 1) averaged down to
    its resolution."""
    occluded = []
    for level, level_features in enumerate(features):
        factor = 2 ** level
        level_mask = tf.nn.avg_pool2d(mask, factor, factor, "VALID") if level else mask
        occluded.append(level_features * tf.cast(level_mask, level_features.dtype))
    return occluded


class WarpRefineGenerator(keras.Model):
    """Reads `reference` (B or 1, S, S, 3) in [-1, 1], `reference_points` (B or 1, N, 2) and `target_points` (B, N, 2)
    in crop pixels, `reference_flags` (B or 1, N) and `target_flags` (B, N) from its input dict (other keys are
    ignored) and returns the generated face (B, S, S, 3) float32 in [-1, 1]. S must be a multiple of 4.

    Motion: a thin-plate spline fitted on the keypoint pairs present in both faces is the prior backward flow; a
    dense motion network corrects it and predicts the occlusion mask (`motion`). Appearance: an encoder on the
    reference whose feature maps at 1, 1/2 and 1/4 resolution are warped by the flow and masked, then residual
    blocks and a decoder with skip connections from the warped features (and with `decoder_mouth_mask` the target's
    inner-mouth polygon, with `decoder_eyes_mask` its eye outlines), which paints a face and a repaint mask; the
    output is the warped reference crop with the painting laid over it where the mask says (`compose`)."""

    def __init__(self, num_points: int, conv_dim: int = 64, res_blocks: int = 6, motion_correction: float = 0.1,
                 motion_downscale: int = 1, decoder_mouth_mask: bool = False, decoder_eyes_mask: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_points = num_points
        self.conv_dim = conv_dim
        self.res_blocks = res_blocks
        # The largest correction of the keypoint prior, as a share of half the crop side (`WarpRefineConfig`).
        self.motion_correction = motion_correction
        # The dense-motion network's resolution, as a divisor of the crop side (`WarpRefineConfig`).
        self.motion_downscale = motion_downscale
        # Whether the decoder reads the target's inner-mouth polygon (`WarpRefineConfig`).
        self.decoder_mouth_mask = decoder_mouth_mask
        # Whether it reads the target's eye outlines (`WarpRefineConfig`).
        self.decoder_eyes_mask = decoder_eyes_mask
        self.dense_motion = DenseMotion(conv_dim, name="dense_motion")
        # Blocks are attributes, not lists: tf.train.Checkpoint does not follow Keras' tracked lists.
        self.encode0 = conv_block(conv_dim, 7, "encode0")
        for level in range(1, LEVELS):
            setattr(self, f"encode{level}", conv_block(conv_dim * 2 ** level, 4, f"encode{level}", strides=2))
        for i in range(res_blocks):
            setattr(self, f"res{i}", ResidualBlock(conv_dim * 2 ** (LEVELS - 1), name=f"res{i}"))
        self.upsample = keras.layers.UpSampling2D(2)
        for level in range(LEVELS - 1):
            setattr(self, f"up{level}", conv_block(conv_dim * 2 ** level, 3, f"up{level}"))
        for level in range(LEVELS - 1):
            setattr(self, f"merge{level}", conv_block(conv_dim * 2 ** level, 3, f"merge{level}"))
        self.head = conv(3, 7, use_bias=True, name="head")
        self.tanh = keras.layers.Activation("tanh", dtype="float32", name="tanh")
        self.repaint_head = keras.layers.Conv2D(
            1, 7, padding="same", activation="sigmoid", dtype="float32", name="repaint_head",
            kernel_initializer=keras.initializers.VarianceScaling(MASK_KERNEL_SCALE),
            bias_initializer=keras.initializers.Constant(REPAINT_BIAS))
        # Built here for `fused_heads` (see DenseMotion): they read the first merge block's `conv_dim` channels.
        for head in (self.head, self.repaint_head):
            head.build((None, None, None, conv_dim))

    @property
    def encoder(self) -> list[keras.Sequential]:
        return [getattr(self, f"encode{level}") for level in range(LEVELS)]

    @property
    def bottleneck(self) -> list[ResidualBlock]:
        return [getattr(self, f"res{i}") for i in range(self.res_blocks)]

    @property
    def up(self) -> list[keras.Sequential]:
        return [getattr(self, f"up{level}") for level in range(LEVELS - 1)]

    @property
    def merge(self) -> list[keras.Sequential]:
        return [getattr(self, f"merge{level}") for level in range(LEVELS - 1)]

    def motion(self, inputs: dict, training=False, spline: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """The backward flow and what it does, all float32: `flow` (B, S, S, 2) the (x, y) reference pixel each output
        pixel reads, `mask` (B, S, S, 1) the occlusion mask, `prior_warped` and `warped` (B, S, S, 3) the reference
        warped by the keypoint prior alone and by the final flow. `spline`: the inputs' `contract.keypoint_spline`,
        fitted here if not given."""
        self._check_inputs(inputs)
        reference = tf.cast(inputs["reference"], tf.float32)
        size = reference.shape[1]
        reference_points = tf.cast(inputs["reference_points"], tf.float32)
        target_points = tf.cast(inputs["target_points"], tf.float32)
        reference_flags, target_flags = inputs["reference_flags"], inputs["target_flags"]
        targets = tf.shape(target_points)[0]

        if spline is None:
            spline = keypoint_spline(reference_points, reference_flags, target_points, target_flags, size)
        # A function of the data only: nothing to learn through the spline.
        prior = tf.stop_gradient(warping.tps_evaluate(target_points, spline, size, size))
        reference_per_target = for_targets(reference, targets)
        prior_warped = warping.bilinear_sample(reference_per_target, prior)
        residual, mask = self.dense_motion(
            self._motion_features(reference, prior, prior_warped, reference_points, target_points, reference_flags,
                                  target_flags), training=training)
        residual, mask = tf.cast(residual, tf.float32), tf.cast(mask, tf.float32)
        if self.motion_downscale > 1:
            residual, mask = (tf.image.resize(value, [size, size], "bilinear") for value in (residual, mask))
        flow = prior + self.motion_correction * size / 2 * tf.tanh(residual)
        return {"flow": flow, "mask": mask, "prior_warped": prior_warped,
                "warped": warping.bilinear_sample(reference_per_target, flow)}

    def _motion_features(self, reference, prior, prior_warped, reference_points, target_points, reference_flags,
                         target_flags) -> tf.Tensor:
        """The dense-motion network's input at its resolution, 1/`motion_downscale` of the crop: the reference, the
        reference warped by the prior, both faces' keypoint heatmaps and the prior displacement in units of half the
        side. The reference's own maps are made at its batch (one reference: once) and then given to each target."""
        scale = self.motion_downscale
        targets = tf.shape(target_points)[0]
        if scale > 1:
            reference = tf.nn.avg_pool2d(reference, scale, scale, "VALID")
            prior = warping.downsample_grid(prior, scale)
            prior_warped = warping.bilinear_sample(for_targets(reference, targets), prior)
            reference_points, target_points = ((points + 0.5) / scale - 0.5
                                               for points in (reference_points, target_points))
        size = reference.shape[1]
        radius = max(1.0, size / 32)  # heatmap spots of one size relative to the face, whatever the crop size
        reference_map = keypoints.draw_map_tf(reference_points, reference_flags, size, "heatmap", radius)
        return tf.concat([
            for_targets(reference, targets), prior_warped, for_targets(reference_map, targets),
            keypoints.draw_map_tf(target_points, target_flags, size, "heatmap", radius),
            (prior - warping.identity_grid(size, size)) / (size / 2),
        ], axis=-1)

    def call(self, inputs, training=False):
        return self.compose(inputs, training=training)["image"]

    def compose(self, inputs: dict, training=False, spline: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """`motion`'s outputs plus, all float32: `painted` (B, S, S, 3) the decoder's painting, `repaint` (B, S, S, 1)
        where it replaces the warped reference, and `image` = warped x (1 - repaint) + painted x repaint, the
        generated face; and `warped_features`, the encoder's feature maps of the reference (`encode`) moved by the flow
        and masked, in the network's dtype. `spline` as for `motion`."""
        motion = self.motion(inputs, training=training, spline=spline)
        targets = tf.shape(motion["flow"])[0]
        # The encoder reads the reference alone: one reference is encoded once for all its targets.
        warped = occlude([warping.bilinear_sample(for_targets(features, targets),
                                                  warping.downsample_grid(motion["flow"], 2 ** level))
                          for level, features in enumerate(self.encode(inputs["reference"], training=training))],
                         motion["mask"])
        x = warped[-1]
        for block in self.bottleneck:
            x = block(x, training=training)
        regions = [region_mask(inputs["target_points"], inputs["target_flags"], inputs["reference"].shape[1])
                   for read, region_mask in ((self.decoder_mouth_mask, keypoints.mouth_mask_tf),
                                             (self.decoder_eyes_mask, keypoints.eyes_mask_tf)) if read]
        for level in reversed(range(LEVELS - 1)):
            x = self.up[level](self.upsample(x), training=training)
            factor = 2 ** level
            features = [x, warped[level], *(tf.cast(tf.nn.avg_pool2d(region, factor, factor, "VALID") if level
                                                    else region, x.dtype) for region in regions)]
            x = self.merge[level](keras.ops.concatenate(features, axis=-1), training=training)
        painted, repaint = fused_heads(x, [self.head, self.repaint_head])
        painted = self.tanh(painted)
        image = motion["warped"] * (1.0 - repaint) + painted * repaint
        return {**motion, "painted": painted, "repaint": repaint, "image": image, WARPED_FEATURES_LAYER: warped}

    def encode(self, image, training=False) -> list[tf.Tensor]:
        """The encoder's feature maps of `image` (B, S, S, 3) in [-1, 1], at 1, 1/2 and 1/4 resolution."""
        features = []
        for block in self.encoder:
            image = block(image, training=training)
            features.append(image)
        return features

    def target_features(self, target, mask, training=False) -> list[tf.Tensor]:
        """The encoder's feature maps of the true `target` face, masked by the occlusion `mask` (B, S, S, 1) as the
        warped reference's are (`compose`'s `warped_features`): what those should be, where the mask keeps them."""
        return occlude(self.encode(target, training=training), mask)

    def _check_inputs(self, inputs: dict) -> None:
        missing = [key for key in REQUIRED_INPUTS if key not in inputs]
        if missing:
            raise ValueError(f"the warp_refine generator needs inputs {list(REQUIRED_INPUTS)}; missing {missing} "
                             f"(got {sorted(inputs)})")
        size = inputs["reference"].shape[1]
        multiple = 2 ** (LEVELS - 1) * self.motion_downscale
        if size is not None and size % multiple:
            raise ValueError(f"the warp_refine generator (motion_downscale {self.motion_downscale}) needs crop sides "
                             f"that are multiples of {multiple}, got {size}")
        for key in ("reference_points", "target_points"):
            if inputs[key].shape[-2] != self.num_points:
                raise ValueError(f"{key} has {inputs[key].shape[-2]} points; this generator was built for "
                                 f"{self.num_points}")

    def get_config(self):
        return {**super().get_config(), "num_points": self.num_points, "conv_dim": self.conv_dim,
                "res_blocks": self.res_blocks, "motion_correction": self.motion_correction,
                "motion_downscale": self.motion_downscale, "decoder_mouth_mask": self.decoder_mouth_mask,
                "decoder_eyes_mask": self.decoder_eyes_mask}


def build(model_cfg: ModelConfig, section: WarpRefineConfig, image_size: int, num_points: int) -> keras.Model:
    """The generator of the registry entry (`contract.GeneratorSpec.build`), unbuilt: the model's widths, its own
    section's motion and decoder settings."""
    return WarpRefineGenerator(num_points, model_cfg.conv_dim, model_cfg.res_blocks, section.motion_correction,
                               section.motion_downscale, section.decoder_mouth_mask, section.decoder_eyes_mask,
                               name="generator")


"""The generator contract: what every generator is declared to read and produce (`Capabilities`), what its registry
entry declares (`GeneratorSpec`), and the one way its inputs are built.

Inputs: `generator_inputs` gives the dict every generator is called with, from the reference crop in [-1, 1] and the
keypoints of both faces; the target keypoint map in it is drawn with the run's `KeypointMapSettings`, so that
training, tuning, serving and the build-time example agree on it. Outputs: `compose(inputs, training)` returns a dict
holding `image` (B, S, S, 3) in [-1, 1], the generated face; a generator whose capabilities say `repaint` also returns
`REPAINT_LAYERS` (its painting, and the repaint mask laying it over the reference warped by its flow), and one whose
capabilities say `flow` returns `FLOW_LAYER` (that flow). Calling the generator returns `compose(...)["image"]`.

One reference, many targets: for a generator whose capabilities say `shares_reference`, the reference side of the
inputs (`reference`, `reference_points`, `reference_flags`) may hold one face for a batch of B targets, as a video
made from one frame has; it computes what depends on the reference alone once and gives it to every target
(`for_targets`). Others get the reference repeated for each target.

A spline fitted on the keypoints: for a generator whose capabilities say `fits_spline`, `keypoint_spline` computes from
the keypoints alone what `compose(inputs, training, spline=...)` would otherwise compute itself, a float64 linear solve
that XLA compiles poorly and TFLite cannot run; compiled inference (`export.ServingModule.compiled`) and the TFLite
runner (`tflite`) fit it outside the network they run. It is the contract's, not the generator's, so that they fit
the same spline without the generator.

Images cross into a generator through `to_unit` (uint8 pixels -> [-1, 1]) and out of it through `from_unit`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import tensorflow as tf

from bigo_facegen import keypoints, warping
from bigo_facegen.config import DataConfig, ModelConfig
from bigo_facegen.config_rules import GeneratorSection

# The image layers of a generator whose capabilities say `repaint`, beside `image`, all float32: the reference warped
# by the keypoint prior alone and by the final flow (B, S, S, 3), the occlusion mask (B, S, S, 1), the painting
# (B, S, S, 3) and the repaint mask (B, S, S, 1): image = warped x (1 - repaint) + painted x repaint.
REPAINT_LAYERS = ("prior_warped", "warped", "mask", "painted", "repaint")
# The motion of a generator whose capabilities say `flow`, float32 (B, S, S, 2): the reference pixel (x, y) each
# output pixel reads.
FLOW_LAYER = "flow"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a generator reads and produces: whether it reads the reference crop's keypoints (else only the crop and
    the target keypoint map), whether its `compose` returns `REPAINT_LAYERS` (`repaint`) and `FLOW_LAYER` (`flow`),
    whether it takes one reference for a batch of targets (`shares_reference`) and whether it fits a spline on the
    keypoints (`fits_spline`), both as the module doc says. Declared once, by its registry entry; an export writes it
    into its sidecar (`export.ServingSpec`)."""
    reads_reference_keypoints: bool
    repaint: bool = False
    flow: bool = False
    shares_reference: bool = False
    fits_spline: bool = False

    def __post_init__(self):
        if self.fits_spline and not self.reads_reference_keypoints:
            raise ValueError("a generator that fits a spline on the keypoint pairs must read the reference keypoints")


def _no_loss_terms(section: GeneratorSection, layers: dict, batch: dict, generator: keras.Model) -> dict:
    return {}


def _no_data_needs(section: GeneratorSection) -> frozenset[str]:
    return frozenset()


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """A registered generator, everything the rest of the package asks of it: `config`, the class of its config
    section (its field of `config.GeneratorConfig`); `build(model_cfg, section, image_size, num_points)`, the
    generator (unbuilt) for the model's shared settings and its section; `capabilities`; `loss_terms(section, layers,
    batch, generator)`, its own loss terms beside every generator's, {name: value per example} from its `compose`
    output `layers` on a training `batch`, each weighed by the section's field of that name (`LOSS_WEIGHTS`); and
    `data_needs(section)`, what its training batches must hold beyond its inputs and the target (`data.make_dataset`'s
    `extras`)."""
    config: type[GeneratorSection]
    build: Callable[[ModelConfig, GeneratorSection, int, int], keras.Model]
    capabilities: Capabilities
    loss_terms: Callable[[GeneratorSection, dict, dict, keras.Model], dict[str, tf.Tensor]] = _no_loss_terms
    data_needs: Callable[[GeneratorSection], frozenset[str]] = _no_data_needs


@dataclasses.dataclass(frozen=True)
class KeypointMapSettings:
    """How the target keypoint map is drawn (`keypoints.draw_map_tf`): style, radius in crop pixels, and the layout
    of the points (needed by the `lines` style)."""
    style: str
    radius: float
    layout: str | None

    @classmethod
    def from_config(cls, data_cfg: DataConfig) -> "KeypointMapSettings":
        return cls(data_cfg.keypoint_style, data_cfg.dot_radius, data_cfg.layout)

    def draw(self, points, flags, size: int) -> tf.Tensor:
        layout = None if self.layout is None else keypoints.get_layout(self.layout)
        return keypoints.draw_map_tf(points, flags, size, self.style, self.radius, layout)


def generator_inputs(reference, target_points, target_flags, settings: KeypointMapSettings,
                     reference_points=None, reference_flags=None) -> dict:
    """The input dict of every generator: `reference` (B, or 1 where the capabilities say `shares_reference`, S, S, 3)
    float32 in [-1, 1], `target_points` (B, N, 2) in crop pixels, `target_flags` (B, N), and the drawn `target_map`
    (B, S, S, 3); with the reference crop's keypoints also `reference_points` and `reference_flags` (those a generator
    whose capabilities say `reads_reference_keypoints` needs), with the reference's batch."""
    reference = tf.convert_to_tensor(reference, tf.float32)
    target_points = tf.convert_to_tensor(target_points, tf.float32)
    target_flags = tf.cast(target_flags, tf.int32)
    inputs = {"reference": reference, "target_points": target_points, "target_flags": target_flags,
              "target_map": settings.draw(target_points, target_flags, reference.shape[1])}
    if reference_points is not None:
        inputs["reference_points"] = tf.convert_to_tensor(reference_points, tf.float32)
        inputs["reference_flags"] = tf.cast(reference_flags, tf.int32)
    return inputs


def keypoint_spline(reference_points, reference_flags, target_points, target_flags, size: int) -> tf.Tensor:
    """The spline of a generator whose capabilities say `fits_spline` (`warping.tps_fit`, (B, N + 3, 2) float32): the
    thin-plate spline that takes each target keypoint (B, N, 2) to its reference keypoint, fitted on the pairs present
    in both faces (flag above 0), on S x S crops; the reference side (B or 1, N, ...) as `generator_inputs` has it."""
    target_points = tf.convert_to_tensor(target_points, tf.float32)
    targets = tf.shape(target_points)[0]
    valid = (for_targets(tf.cast(reference_flags, tf.int32), targets) > 0) & (tf.cast(target_flags, tf.int32) > 0)
    reference_points = for_targets(tf.convert_to_tensor(reference_points, tf.float32), targets)
    return warping.tps_fit(reference_points, target_points, valid, size, size)


def for_targets(reference_side: tf.Tensor, targets) -> tf.Tensor:
    """`reference_side` (B or 1, ...), something of the reference's, as (B, ...) for `targets` = B targets: one
    reference's repeated for each, B references' as they are."""
    shape = tf.concat([[targets], tf.shape(reference_side)[1:]], axis=0)
    repeated = tf.broadcast_to(reference_side, shape)
    repeated.set_shape([None, *reference_side.shape[1:]])
    return repeated


def to_unit(pixels) -> tf.Tensor:
    """Pixels 0..255 (any dtype) -> float32 in [-1, 1]."""
    return tf.cast(pixels, tf.float32) / 127.5 - 1.0


def from_unit(images):
    """Images in [-1, 1] -> pixel values 0..255 of the same dtype, unrounded (differentiable)."""
    return (images + 1.0) * 127.5

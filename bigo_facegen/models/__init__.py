"""The networks: generators (by name in `GENERATORS`, see `build_generator`; their contract is `contract`), keypoint
detector, critics and perceptual features.

Every builder returns a built network (its variables exist), so that optimizers can be built and checkpoints restored
before the first training step.
"""
from __future__ import annotations

import keras

from bigo_facegen.config import ModelConfig, check_image_size
from bigo_facegen.models import perceptual
from bigo_facegen.models.contract import GeneratorSpec, KeypointMapSettings, generator_inputs
from bigo_facegen.models.critics import IdentityCritic, RealFakeCritic, SNResNetCritic
from bigo_facegen.models.generator import ExpressionGenerator
from bigo_facegen.models.keypoint_detector import KeypointDetector
from bigo_facegen.models.perceptual import PerceptualNetwork
from bigo_facegen.models.warp_refine import WarpRefineGenerator

__all__ = [
    "ExpressionGenerator", "WarpRefineGenerator", "KeypointDetector", "RealFakeCritic", "IdentityCritic",
    "SNResNetCritic", "PerceptualNetwork", "GeneratorSpec", "GENERATORS", "generator_spec", "build_generator",
    "build_keypoint_detector", "build_critics", "build_perceptual", "generator_example_inputs",
]


def _stargan(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    return ExpressionGenerator(model_cfg.conv_dim, model_cfg.res_blocks, name="generator")


def _warp_refine(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    return WarpRefineGenerator(num_points, model_cfg.conv_dim, model_cfg.res_blocks, model_cfg.motion_correction,
                               model_cfg.motion_downscale, model_cfg.decoder_mouth_mask, name="generator")


GENERATORS: dict[str, GeneratorSpec] = {
    "stargan": GeneratorSpec(_stargan, reads_reference_keypoints=False, has_repaint=False, shares_reference=True),
    "warp_refine": GeneratorSpec(_warp_refine, reads_reference_keypoints=True, has_repaint=True,
                                 shares_reference=True, fits_spline=True),
}
# The example inputs only build the variables: no point is present, so the map's style does not matter.
_EXAMPLE_MAP = KeypointMapSettings(style="dots", radius=1.0, layout=None)


def generator_spec(name: str) -> GeneratorSpec:
    """The registry entry of the generator `name` (a config's `model.generator`)."""
    if name not in GENERATORS:
        raise ValueError(f"model.generator={name!r}: must be one of {sorted(GENERATORS)}")
    return GENERATORS[name]


def generator_example_inputs(image_size: int, num_points: int, batch: int = 1) -> dict:
    """Zero inputs with every key a generator may read (`contract.generator_inputs` with the reference keypoints)."""
    points = keras.ops.zeros((batch, num_points, 2))
    flags = keras.ops.zeros((batch, num_points), dtype="int32")
    return generator_inputs(keras.ops.zeros((batch, image_size, image_size, 3)), points, flags, _EXAMPLE_MAP,
                            reference_points=points, reference_flags=flags)


def build_generator(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    """The generator `model_cfg.generator` names, built for (image_size, num_points)."""
    spec = generator_spec(model_cfg.generator)
    check_image_size(image_size)
    generator = spec.build(model_cfg, image_size, num_points)
    generator(generator_example_inputs(image_size, num_points))
    return generator


def build_keypoint_detector(model_cfg: ModelConfig, image_size: int) -> KeypointDetector:
    check_image_size(image_size)
    detector = KeypointDetector(model_cfg.conv_dim, model_cfg.res_blocks, model_cfg.detector_noise_std,
                                name="keypoint_detector")
    detector(keras.ops.zeros((1, image_size, image_size, 3)))
    return detector


def build_critics(model_cfg: ModelConfig, image_size: int) -> tuple[RealFakeCritic, IdentityCritic]:
    """(real/fake critic, identity critic), built."""
    image = keras.ops.zeros((1, image_size, image_size, 3))
    critic = RealFakeCritic(model_cfg.critic_dim, model_cfg.critic_blocks, name="critic")
    critic(image)
    identity_critic = IdentityCritic(model_cfg.critic_dim, model_cfg.critic_blocks, name="identity_critic")
    identity_critic((image, image))
    return critic, identity_critic


def build_perceptual(model_cfg: ModelConfig, image_size: int) -> PerceptualNetwork | None:
    """The frozen perceptual network, or None when the loss is off (see `perceptual.build`)."""
    network = perceptual.build(model_cfg, image_size)
    if network is not None:
        network(keras.ops.zeros((1, image_size, image_size, 3)))
    return network

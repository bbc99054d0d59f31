"""The registry of generators (`GENERATORS`: each entry a `contract.GeneratorSpec`, which is all the rest of the package
asks of a generator) and the builders of every network: generator (`build_generator`), keypoint detector, critics and
perceptual features.

Every builder returns a built network (its variables exist), so that optimizers can be built and checkpoints restored
before the first training step.
"""
from __future__ import annotations

import keras

from bigo_facegen.config import ModelConfig, check_image_size
from bigo_facegen.config_rules import GeneratorSection
from bigo_facegen.models import perceptual
from bigo_facegen.models.contract import Capabilities, GeneratorSpec, KeypointMapSettings, generator_inputs
from bigo_facegen.models.critics import IdentityCritic, RealFakeCritic
from bigo_facegen.models.keypoint_detector import KeypointDetector
from bigo_facegen.models.perceptual import PerceptualNetwork
from bigo_facegen.models.stargan import network as stargan
from bigo_facegen.models.stargan.config import StarGANConfig
from bigo_facegen.models.warp_refine import (
    config as warp_refine_config,
    losses as warp_refine_losses,
    network as warp_refine,
)
from bigo_facegen.models.warp_refine.config import WarpRefineConfig

# By the name `model.generator.type` gives, which is also the name of its section in `config.GeneratorConfig`.
GENERATORS: dict[str, GeneratorSpec] = {
    "stargan": GeneratorSpec(StarGANConfig, stargan.build,
                             Capabilities(reads_reference_keypoints=False, shares_reference=True)),
    "warp_refine": GeneratorSpec(WarpRefineConfig, warp_refine.build,
                                 Capabilities(reads_reference_keypoints=True, repaint=True, flow=True,
                                              shares_reference=True, fits_spline=True),
                                 loss_terms=warp_refine_losses.loss_terms, data_needs=warp_refine_config.data_needs),
}
# The example inputs only build the variables: no point is present, so the map's style does not matter.
_EXAMPLE_MAP = KeypointMapSettings(style="dots", radius=1.0, layout=None)


def generator_spec(name: str) -> GeneratorSpec:
    """The registry entry of the generator `name` (a config's `model.generator.type`)."""
    if name not in GENERATORS:
        raise ValueError(f"model.generator.type={name!r}: must be one of {sorted(GENERATORS)}")
    return GENERATORS[name]


def generator_entry(model_cfg: ModelConfig) -> tuple[GeneratorSpec, GeneratorSection]:
    """The registry entry of the generator `model_cfg` chooses, and its section of the config."""
    spec, section = generator_spec(model_cfg.generator.type), model_cfg.generator.active
    if not isinstance(section, spec.config):
        raise TypeError(f"model.generator.{model_cfg.generator.type} is a {type(section).__name__}; its registry "
                        f"entry declares {spec.config.__name__}")
    return spec, section


def data_needs(model_cfg: ModelConfig) -> frozenset[str]:
    """What the training batches of `model_cfg`'s generator must hold beyond its inputs and the target
    (`data.make_dataset`'s `extras`), as its registry entry says."""
    spec, section = generator_entry(model_cfg)
    return spec.data_needs(section)


def generator_example_inputs(image_size: int, num_points: int, batch: int = 1) -> dict:
    """Zero inputs with every key a generator may read (`contract.generator_inputs` with the reference keypoints)."""
    points = keras.ops.zeros((batch, num_points, 2))
    flags = keras.ops.zeros((batch, num_points), dtype="int32")
    return generator_inputs(keras.ops.zeros((batch, image_size, image_size, 3)), points, flags, _EXAMPLE_MAP,
                            reference_points=points, reference_flags=flags)


def build_generator(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    """The generator `model_cfg.generator` chooses, built from its section for (image_size, num_points)."""
    spec, section = generator_entry(model_cfg)
    check_image_size(image_size)
    generator = spec.build(model_cfg, section, image_size, num_points)
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

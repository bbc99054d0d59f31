"""The networks: generators (by name, see `build_generator`), keypoint detector, critics and perceptual features.

Every builder returns a built network (its variables exist), so that optimizers can be built and checkpoints restored
before the first training step.
"""
from __future__ import annotations

from typing import Callable

import keras

from bigo_facegen.config import ModelConfig
from bigo_facegen.models import perceptual
from bigo_facegen.models.critics import IdentityCritic, RealFakeCritic, SNResNetCritic
from bigo_facegen.models.generator import ExpressionGenerator
from bigo_facegen.models.keypoint_detector import KeypointDetector
from bigo_facegen.models.perceptual import PerceptualNetwork
from bigo_facegen.models.warp_refine import WarpRefineGenerator

__all__ = [
    "ExpressionGenerator", "WarpRefineGenerator", "KeypointDetector", "RealFakeCritic", "IdentityCritic",
    "SNResNetCritic", "PerceptualNetwork", "GENERATORS", "build_generator", "build_keypoint_detector", "build_critics",
    "build_perceptual", "generator_example_inputs",
]


def _check_size(image_size: int) -> None:
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4 (two 2x down/upsamplings), got {image_size}")


def _stargan(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    return ExpressionGenerator(model_cfg.conv_dim, model_cfg.res_blocks, name="generator")


def _warp_refine(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    return WarpRefineGenerator(num_points, model_cfg.conv_dim, model_cfg.res_blocks, name="generator")


GENERATORS: dict[str, Callable[[ModelConfig, int, int], keras.Model]] = {"stargan": _stargan,
                                                                         "warp_refine": _warp_refine}


def generator_example_inputs(image_size: int, num_points: int, batch: int = 1) -> dict:
    """Zero inputs with every key a generator may read (warp-style generators also use points and flags)."""
    image = keras.ops.zeros((batch, image_size, image_size, 3))
    points = keras.ops.zeros((batch, num_points, 2))
    flags = keras.ops.zeros((batch, num_points), dtype="int32")
    return {"reference": image, "target_map": image, "reference_points": points, "target_points": points,
            "reference_flags": flags, "target_flags": flags}


def build_generator(model_cfg: ModelConfig, image_size: int, num_points: int) -> keras.Model:
    """The generator `model_cfg.generator` names, built for (image_size, num_points)."""
    if model_cfg.generator not in GENERATORS:
        raise ValueError(f"unknown generator {model_cfg.generator!r}; choose one of {sorted(GENERATORS)}")
    _check_size(image_size)
    generator = GENERATORS[model_cfg.generator](model_cfg, image_size, num_points)
    generator(generator_example_inputs(image_size, num_points))
    return generator


def build_keypoint_detector(model_cfg: ModelConfig, image_size: int) -> KeypointDetector:
    _check_size(image_size)
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

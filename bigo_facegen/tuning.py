"""One-shot reference tuning: before a sequence is generated, the generator is fine-tuned on its one reference face.

The original solution's last step fine-tuned the generator on each test reference: copies of the reference crop under
random rotation, scale and shift (the face and its keypoints moved alike) are the targets; the generator gets the
untouched reference and the moved keypoints and learns to reproduce the moved crop, with the L1 loss (and the
perceptual loss where the run trained with one: `losses.l1`, `perceptual.perceptual_distance`, weighted as in
training). The person's own appearance is
then what the generator knows best.

The loaded generator is never left changed: `ReferenceTuner.tune` returns the tuned weights and puts the original ones
back, and `weights_swapped` holds tuned weights in the generator only while a batch is generated, so one loaded model
serves any number of references, one after the other or interleaved.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from bigo_facegen import geometry, losses
from bigo_facegen.config import ExperimentConfig
from bigo_facegen.models import perceptual
from bigo_facegen.models.contract import KeypointMapSettings, generator_inputs, to_unit
from bigo_facegen.models.registry import build_perceptual


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """`steps` updates of `batch_size` augmented copies each, at `learning_rate` (None: the run's own generator
    learning rate); rotations uniform in +-`max_degrees`, scales in 1 +- `scale_range`, shifts in +-`max_shift` x the
    crop side on each axis; draws from `seed`."""
    steps: int
    learning_rate: float | None = None
    batch_size: int = 8
    max_degrees: float = 15.0
    scale_range: float = 0.1
    max_shift: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or (self.learning_rate is not None and not self.learning_rate > 0):
            raise ValueError(f"tuning needs steps >= 0, batch_size >= 1 and a positive learning rate, got {self}")


@dataclasses.dataclass
class TuneResult:
    weights: list[np.ndarray]   # the tuned generator's, for `weights_swapped`
    losses: list[float]         # the training loss of each step
    seconds: float


def augment(crop: np.ndarray, points: np.ndarray, count: int, settings: TuneSettings, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """`count` copies of the (S, S, 3) crop, each rotated and scaled about the crop centre and shifted, with the
    (N, 2) crop-pixel keypoints moved alike: ((count, S, S, 3) crop dtype, (count, N, 2) float32). Pixels brought in
    from outside repeat the border, as `geometry.crop` does."""
    size = crop.shape[0]
    centre = ((size - 1) / 2, (size - 1) / 2)
    images, moved = [], []
    for _ in range(count):
        matrix = geometry.rotation_matrix(centre, rng.uniform(-settings.max_degrees, settings.max_degrees),
                                          rng.uniform(1 - settings.scale_range, 1 + settings.scale_range))
        matrix[:, 2] += rng.uniform(-settings.max_shift, settings.max_shift, 2) * size
        images.append(geometry.warp(crop, matrix, size))
        moved.append(geometry.apply_affine(points, matrix))
    return np.stack(images), np.stack(moved)


@contextlib.contextmanager
def weights_swapped(model: keras.Model, weights: list[np.ndarray]):
    """`model` holds `weights` inside the block and its own weights again after it, whatever happens inside."""
    own = model.get_weights()
    model.set_weights(weights)
    try:
        yield model
    finally:
        model.set_weights(own)


class ReferenceTuner:
    """Fine-tunes one Keras generator on single references. Built once per generator (its step is traced once);
    every `tune` starts from the generator's current weights with a fresh optimizer state."""

    def __init__(self, generator: keras.Model, config: ExperimentConfig):
        self.generator = generator
        self.size = config.data.image_size
        self.weights = config.loss
        self.map_settings = KeypointMapSettings.from_config(config.data)
        # build_perceptual gives None where the run had no perceptual loss (or its pretrained weights are missing).
        self.perceptual = build_perceptual(config.model, self.size)
        self.learning_rate = config.optimizer.generator_lr
        self.optimizer = keras.optimizers.Adam(self.learning_rate, beta_1=config.optimizer.beta_1,
                                               beta_2=config.optimizer.beta_2, name="tuning_adam")
        self.optimizer.build(generator.trainable_variables)
        self._step = tf.function(self._train_step)

    def tune(self, crop: np.ndarray, points: np.ndarray, flags: np.ndarray, settings: TuneSettings) -> TuneResult:
        """Tunes on the reference `crop` (S, S, 3) uint8 with its keypoints (N, 2) crop pixels and flags (N,); returns
        the tuned weights and leaves the generator's own in place."""
        start = time.perf_counter()
        own = self.generator.get_weights()
        self._reset_optimizer(settings.learning_rate or self.learning_rate)
        rng = np.random.default_rng(settings.seed)
        step_losses = []
        try:
            for _ in range(settings.steps):
                images, moved = augment(crop, points, settings.batch_size, settings, rng)
                step_losses.append(float(self._step(*self._batch(crop, points, flags, images, moved))))
            tuned = self.generator.get_weights()
        finally:
            self.generator.set_weights(own)
        return TuneResult(tuned, step_losses, time.perf_counter() - start)

    def l1(self, crop: np.ndarray, points: np.ndarray, flags: np.ndarray, images: np.ndarray,
           moved: np.ndarray) -> float:
        """Mean L1 (in [-1, 1] units) of the generator's faces against augmented copies `images` of the reference,
        driven by their keypoints `moved` (as `augment` returns them)."""
        inputs, target = self._batch(crop, points, flags, images, moved)
        return float(tf.reduce_mean(losses.l1(self.generator(inputs, training=False), target)))

    def _batch(self, crop, points, flags, images, moved) -> tuple[dict, tf.Tensor]:
        count = len(images)
        repeated_flags = np.repeat(np.asarray(flags, np.int32)[None], count, axis=0)
        inputs = generator_inputs(to_unit(np.repeat(crop[None], count, axis=0)), moved, repeated_flags,
                                  self.map_settings,
                                  reference_points=np.repeat(np.asarray(points, np.float32)[None], count, axis=0),
                                  reference_flags=repeated_flags)
        return inputs, to_unit(images)

    def _train_step(self, inputs: dict, target: tf.Tensor) -> tf.Tensor:
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(inputs, training=True)
            per_example = self.weights.l1 * losses.l1(fake, target)
            if self.perceptual is not None:
                per_example += self.weights.perceptual * perceptual.perceptual_distance(self.perceptual, fake, target)
            loss = tf.reduce_mean(per_example)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def _reset_optimizer(self, learning_rate: float) -> None:
        # Step counter and moments back to zero: each reference is tuned as if by a new optimizer.
        for variable in self.optimizer.variables:
            if variable is not self.optimizer.learning_rate:
                variable.assign(tf.zeros_like(variable))
        self.optimizer.learning_rate = learning_rate

"""The training step: the four updates of the original (critic, identity critic, keypoint detector, generator) on one
replica's batch, and the networks and optimizers it updates. It knows nothing of files or of the loop around it
(`training.Trainer`)."""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from bigo_facegen import keypoints, losses
from bigo_facegen.config import ExperimentConfig, LossConfig, OptimizerConfig
from bigo_facegen.config_rules import GeneratorSection
from bigo_facegen.models import perceptual
from bigo_facegen.models.contract import GeneratorSpec
from bigo_facegen.models.critics import IdentityCritic, RealFakeCritic
from bigo_facegen.models.keypoint_detector import KeypointDetector
from bigo_facegen.models.perceptual import PerceptualNetwork
from bigo_facegen.models.registry import (
    build_critics,
    build_generator,
    build_keypoint_detector,
    build_perceptual,
    generator_entry,
)


@dataclasses.dataclass
class Networks:
    generator: keras.Model
    generator_spec: GeneratorSpec        # its registry entry
    generator_section: GeneratorSection  # and its section of the config, which weighs its own loss terms
    keypoint_detector: KeypointDetector
    critic: RealFakeCritic
    identity_critic: IdentityCritic
    perceptual: PerceptualNetwork | None


@dataclasses.dataclass
class Optimizers:
    generator: keras.optimizers.Optimizer
    critic: keras.optimizers.Optimizer
    identity_critic: keras.optimizers.Optimizer
    keypoint_detector: keras.optimizers.Optimizer



def build_networks(config: ExperimentConfig, num_points: int) -> Networks:
    size = config.data.image_size
    critic, identity_critic = build_critics(config.model, size)
    spec, section = generator_entry(config.model)
    return Networks(generator=build_generator(config.model, size, num_points), generator_spec=spec,
                    generator_section=section, keypoint_detector=build_keypoint_detector(config.model, size),
                    critic=critic, identity_critic=identity_critic,
                    perceptual=build_perceptual(config.model, size))


def build_optimizers(opt_cfg: OptimizerConfig, networks: Networks, loss_scale: bool = False) -> Optimizers:
    """One Adam per network, built on its variables (so that a checkpoint can restore their slots before the first
    step); wrapped in a dynamic `LossScaleOptimizer` for float16."""

    def adam(learning_rate: float, model: keras.Model, name: str) -> keras.optimizers.Optimizer:
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=opt_cfg.beta_1, beta_2=opt_cfg.beta_2, name=name)
        if loss_scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        optimizer.build(model.trainable_variables)
        return optimizer

    return Optimizers(generator=adam(opt_cfg.generator_lr, networks.generator, "generator_adam"),
                      critic=adam(opt_cfg.critic_lr, networks.critic, "critic_adam"),
                      identity_critic=adam(opt_cfg.identity_critic_lr, networks.identity_critic,
                                           "identity_critic_adam"),
                      keypoint_detector=adam(opt_cfg.detector_lr, networks.keypoint_detector, "detector_adam"))


# What a training batch holds beside the generator's inputs: the true target frame and its motion (`data`).
GROUND_TRUTH = ("target", "target_flow", "target_flow_valid")


def inputs_of(batch: dict) -> dict:
    """The generator's inputs in a training batch: everything but the ground truth."""
    return {key: value for key, value in batch.items() if key not in GROUND_TRUTH}


class TrainStep:
    """One iteration on one replica's batch, as the original: critic, identity critic, keypoint detector, then
    generator, each with its own optimizer. Returns each loss averaged over the GLOBAL batch (sum the replicas'
    values for the batch mean).

    The generator's weights change only at its own update, so its output is computed once, under the generator's
    tape, and reused (gradient-stopped) by both critic updates: the same updates as the original's three forward
    passes, at a third of their cost. In the generator update the critics run in inference mode (no spectral-norm
    power iteration: the critics change only at their own updates) and the keypoint detector with its input noise, as
    in the original.
    """

    def __init__(self, networks: Networks, optimizers: Optimizers, loss_cfg: LossConfig, global_batch_size: int):
        self.networks = networks
        self.optimizers = optimizers
        self.weights = loss_cfg
        self.global_batch_size = global_batch_size

    def __call__(self, batch: dict) -> dict[str, tf.Tensor]:
        generator = self.networks.generator
        with tf.GradientTape() as tape:
            layers = generator.compose(inputs_of(batch), training=True)
            with tape.stop_recording():
                fake = tf.stop_gradient(layers["image"])
                result = {"critic": self.update_critic(batch, fake),
                          "identity_critic": self.update_identity_critic(batch, fake),
                          "keypoint_detector": self.update_detector(batch)}
            loss, terms = self.generator_loss(batch, layers)
            scaled = self.optimizers.generator.scale_loss(loss)
        self._apply(self.optimizers.generator, tape.gradient(scaled, generator.trainable_variables),
                    generator.trainable_variables)
        result["generator"] = loss
        result.update({f"generator_{name}": self._average(value) for name, value in terms.items()})
        return result

    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        return losses.average(per_example, self.global_batch_size)

    def _update(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, per_example_loss) -> tf.Tensor:
        """One update of `model` on `per_example_loss()` (run under the tape); returns the loss."""
        with tf.GradientTape() as tape:
            loss = self._average(per_example_loss())
            scaled = optimizer.scale_loss(loss)
        self._apply(optimizer, tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
        return loss

    def update_critic(self, batch: dict, fake: tf.Tensor) -> tf.Tensor:
        critic = self.networks.critic

        def loss():
            # Real and fake in one call: the critics have no batch statistics, and one call is one power iteration.
            real_logits, fake_logits = tf.split(critic(tf.concat([batch["reference"], fake], 0), training=True), 2)
            return losses.critic(real_logits, fake_logits)

        return self._update(critic, self.optimizers.critic, loss)

    def update_identity_critic(self, batch: dict, fake: tf.Tensor) -> tf.Tensor:
        critic = self.networks.identity_critic
        reference, target = batch["reference"], batch["target"]

        def loss():
            pair_logits = critic((tf.concat([reference, reference], 0), tf.concat([target, fake], 0)), training=True)
            real_logits, fake_logits = tf.split(pair_logits, 2)
            return losses.critic(real_logits, fake_logits)

        return self._update(critic, self.optimizers.identity_critic, loss)

    def update_detector(self, batch: dict) -> tf.Tensor:
        detector = self.networks.keypoint_detector
        return self._update(detector, self.optimizers.keypoint_detector,
                            lambda: losses.l1(detector(batch["reference"], training=True), batch["reference_map"]))

    def generator_loss(self, batch: dict, layers: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The generator's weighted loss averaged over the global batch, and its per-example terms, named as their
        weights (`LossConfig`'s, and its section's for the terms its registry entry adds), from its `compose` output
        `layers`."""
        n = self.networks
        fake, target = layers["image"], batch["target"]
        if n.perceptual is not None:
            perceptual_loss = perceptual.perceptual_distance(n.perceptual, fake, target)
        else:
            perceptual_loss = tf.zeros([tf.shape(fake)[0]])
        terms = {
            "keypoint": losses.l1(n.keypoint_detector(fake, training=True), batch["target_map"]),
            "adversarial": losses.generator_adversarial(n.critic(fake, training=False)),
            "identity": losses.generator_adversarial(n.identity_critic((batch["reference"], fake), training=False)),
            "l1": losses.l1(fake, target),
            "perceptual": perceptual_loss,
        }
        terms.update(n.generator_spec.loss_terms(n.generator_section, layers, batch, n.generator))
        for name, region_mask in (("mouth_l1", keypoints.mouth_mask_tf), ("eyes_l1", keypoints.eyes_mask_tf)):
            if getattr(self.weights, name) > 0:
                mask = region_mask(batch["target_points"], batch["target_flags"], target.shape[1])
                terms[name] = losses.masked_l1(fake, target, mask)
        weights = {**dataclasses.asdict(self.weights), **n.generator_section.loss_weights()}
        loss = self._average(tf.add_n([weights[name] * value for name, value in terms.items()]))
        return loss, terms

    @staticmethod
    def _apply(optimizer: keras.optimizers.Optimizer, grads, variables) -> None:
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = _agree_on_finiteness(grads)
        optimizer.apply(grads, variables)


def _agree_on_finiteness(grads: list) -> list:
    """Keras' LossScaleOptimizer decides to apply or skip from the first replica's own (not yet all-reduced)
    gradients, so an overflow on another replica alone gets summed into every update and turns the weights to NaN.
    Where any replica's gradients are not finite, this makes every replica's so, and all of them skip the step."""
    context = tf.distribute.get_replica_context()
    present = [g for g in grads if g is not None]
    if context is None or context.num_replicas_in_sync == 1 or not present:
        return grads
    finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in present]))
    replicas_overflowing = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
    poison = tf.where(replicas_overflowing > 0, float("nan"), 0.0)
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in grads]

"""Training: the four-update step of the original (critic, identity critic, keypoint detector, generator) and the
`Trainer` that runs it under a distribution strategy with checkpoints, logs, samples and a divergence stop.

The step knows nothing of files; the `Trainer` knows nothing of the data's origin beyond `data.make_dataset`.

Resuming: a `Trainer` on a `model_dir` that holds checkpoints restores the latest one that reads back (step, every
network with its spectral-norm vectors and noise seed state, every optimizer's state) and continues from that step.
The data iterator is not part of the checkpoint: a resumed run reads its data with the seed `data.seed + step`, so the
examples after a resume differ from those the killed run would have seen, while everything the networks and
optimizers hold is exact. The optimizers' settings are the resumed run's config's, not the checkpoint's (see
`Trainer._apply_optimizer_config`). What a killed run leaves is dealt with at the next start: a checkpoint cut short
is skipped for the one before it, an unfinished save's folder removed, a torn last line of the metrics log dropped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from bigo_facegen import files, losses
from bigo_facegen.config import DataConfig, ExperimentConfig, LossConfig, OptimizerConfig
from bigo_facegen.models import (IdentityCritic, KeypointDetector, PerceptualNetwork, RealFakeCritic,
                                 build_critics, build_generator, build_keypoint_detector, build_perceptual,
                                 perceptual)

CONFIG_FILE = "config.json"
# Which backbone and weights file the perceptual loss used (`perceptual.describe`); config.json holds only the names
# asked for, so that a resumed run on another machine, whose weights live elsewhere, still matches it.
PERCEPTUAL_FILE = "perceptual.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"  # model_dir/samples/step-<step>.png: the TensorBoard sample grids, viewable without it
CHECKPOINT_NAME = "ckpt"
SAMPLE_COUNT = 4

# (data config, input context) -> one replica's dataset of batches, as `data.make_dataset`.
DatasetFn = Callable[[DataConfig, tf.distribute.InputContext], tf.data.Dataset]


class TrainingDiverged(RuntimeError):
    """A loss became NaN/infinite or exceeded `train.max_loss`; the diverged state was not saved."""


class ModelDirError(ValueError):
    """A model_dir cannot be resumed or loaded as it is: checkpoints of another model, none that reads back, or a
    metrics log damaged other than by a kill."""


@dataclasses.dataclass
class Networks:
    generator: keras.Model
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
    return Networks(generator=build_generator(config.model, size, num_points),
                    keypoint_detector=build_keypoint_detector(config.model, size),
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


def unsaved_weights(model: keras.Model) -> list[str]:
    """Paths of the model's weights that tf.train.Checkpoint would not save: it follows attributes, not the lists in
    which Keras also tracks layers, so a sublayer held only in a list would silently be left out."""
    reachable = {id(obj) for obj in tf.train.TrackableView(model).descendants()}
    return [weight.path for weight in model.weights if id(weight) not in reachable]


def check_checkpointable(models: dict[str, keras.Model]) -> None:
    for name, model in models.items():
        missing = unsaved_weights(model)
        if missing:
            raise ValueError(f"{name}: weights {missing[:5]}{' ...' if len(missing) > 5 else ''} would not be saved "
                             "by tf.train.Checkpoint (held in a list?); hold sublayers in attributes")


def generator_inputs(batch: dict) -> dict:
    """Everything in the batch but the ground-truth target frame."""
    return {key: value for key, value in batch.items() if key != "target"}


class TrainStep:
    """One iteration on one replica's batch, as the original: critic, identity critic, keypoint detector, then
    generator, each with its own optimizer. Returns each loss averaged over the GLOBAL batch (sum the replicas'
    values for the batch mean).

    The generator's weights change only at its own update, so its output is computed once, under the generator's
    tape, and reused (gradient-stopped) by both critic updates; `recompute_fake=True` instead recomputes it for each
    update as the original did (three forward passes), which gives the same updates at more cost.
    In the generator update the critics run in inference mode (no spectral-norm power iteration: the critics change
    only at their own updates) and the keypoint detector with its input noise, as in the original.
    """

    def __init__(self, networks: Networks, optimizers: Optimizers, loss_cfg: LossConfig, global_batch_size: int,
                 recompute_fake: bool = False):
        self.networks = networks
        self.optimizers = optimizers
        self.weights = loss_cfg
        self.global_batch_size = global_batch_size
        self.recompute_fake = recompute_fake

    def __call__(self, batch: dict) -> dict[str, tf.Tensor]:
        generator = self.networks.generator
        inputs = generator_inputs(batch)
        with tf.GradientTape() as tape:
            fake, painted = (None, None) if self.recompute_fake else self._generate(inputs)
            with tape.stop_recording():
                result = self._update_critics_and_detector(batch, inputs, fake)
            if fake is None:
                fake, painted = self._generate(inputs)
            terms = self._generator_terms(batch, fake, painted)
            loss = self._average(tf.add_n([getattr(self.weights, name) * value for name, value in terms.items()]))
            scaled = self.optimizers.generator.scale_loss(loss)
        self._apply(self.optimizers.generator, tape.gradient(scaled, generator.trainable_variables),
                    generator.trainable_variables)
        result["generator"] = loss
        result.update({f"generator_{name}": self._average(value) for name, value in terms.items()})
        return result

    def _generate(self, inputs: dict) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The generated faces and, from a warp-style generator, its painting alone (else None)."""
        generator = self.networks.generator
        if hasattr(generator, "compose"):
            layers = generator.compose(inputs, training=True)
            return layers["image"], layers["painted"]
        return generator(inputs, training=True), None

    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        return losses.average(per_example, self.global_batch_size)

    def _fake_for_critics(self, inputs: dict, fake: tf.Tensor | None) -> tf.Tensor:
        if fake is None:
            return self.networks.generator(inputs, training=True)
        return tf.stop_gradient(fake)

    def _update_critics_and_detector(self, batch: dict, inputs: dict, fake: tf.Tensor | None) -> dict:
        n = self.networks
        reference, target = batch["reference"], batch["target"]

        # Real and fake in one call: the critics have no batch statistics, and one call is one power iteration.
        fake_for_critic = self._fake_for_critics(inputs, fake)
        with tf.GradientTape() as tape:
            real_logits, fake_logits = tf.split(
                n.critic(tf.concat([reference, fake_for_critic], 0), training=True), 2)
            critic_loss = self._average(losses.critic(real_logits, fake_logits))
            scaled = self.optimizers.critic.scale_loss(critic_loss)
        self._apply(self.optimizers.critic, tape.gradient(scaled, n.critic.trainable_variables),
                    n.critic.trainable_variables)

        fake_for_critic = self._fake_for_critics(inputs, fake)
        with tf.GradientTape() as tape:
            pair_logits = n.identity_critic(
                (tf.concat([reference, reference], 0), tf.concat([target, fake_for_critic], 0)), training=True)
            real_logits, fake_logits = tf.split(pair_logits, 2)
            identity_loss = self._average(losses.critic(real_logits, fake_logits))
            scaled = self.optimizers.identity_critic.scale_loss(identity_loss)
        self._apply(self.optimizers.identity_critic, tape.gradient(scaled, n.identity_critic.trainable_variables),
                    n.identity_critic.trainable_variables)

        with tf.GradientTape() as tape:
            detected = n.keypoint_detector(reference, training=True)
            detector_loss = self._average(losses.l1(detected, batch["reference_map"]))
            scaled = self.optimizers.keypoint_detector.scale_loss(detector_loss)
        self._apply(self.optimizers.keypoint_detector,
                    tape.gradient(scaled, n.keypoint_detector.trainable_variables),
                    n.keypoint_detector.trainable_variables)
        return {"critic": critic_loss, "identity_critic": identity_loss, "keypoint_detector": detector_loss}

    def _generator_terms(self, batch: dict, fake: tf.Tensor, painted: tf.Tensor | None) -> dict[str, tf.Tensor]:
        """Per-example generator loss terms, named as their `LossConfig` weights."""
        n = self.networks
        target = batch["target"]
        if n.perceptual is not None:
            perceptual_loss = perceptual.perceptual_distance(n.perceptual, fake, target)
        else:
            perceptual_loss = tf.zeros([tf.shape(fake)[0]])
        painting = {} if painted is None else {"painted_l1": losses.l1(painted, target)}
        return {
            "keypoint": losses.l1(n.keypoint_detector(fake, training=True), batch["target_map"]),
            "adversarial": losses.generator_adversarial(n.critic(fake, training=False)),
            "identity": losses.generator_adversarial(n.identity_critic((batch["reference"], fake), training=False)),
            "l1": losses.l1(fake, target),
            "perceptual": perceptual_loss,
            **painting,
        }

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


# --- distribution -----------------------------------------------------------------------------------------------

def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into `count` logical devices (for `mirrored` without GPUs). Must run before TensorFlow
    initialises its devices, i.e. before any op runs in the process."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise RuntimeError(
            f"train.num_cpu_devices={count}: TensorFlow's devices are already initialised in this process "
            f"({len(tf.config.list_logical_devices('CPU'))} logical CPU device(s)); create the Trainer before "
            "running any TensorFlow op, e.g. in a fresh process") from error


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (every local GPU, else every logical CPU device) or `multi_worker`
    (MultiWorkerMirroredStrategy, cluster from TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown train.strategy {name!r}; choose default, mirrored or multi_worker")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def precision_policy(mixed_precision: bool) -> str:
    """float32, or mixed_float16 on GPU / mixed_bfloat16 on CPU."""
    if not mixed_precision:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Builds layers under `name` without leaving the process-wide Keras policy changed."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def num_points_of(layout_name: str) -> int:
    from bigo_facegen.keypoints import get_layout
    return get_layout(layout_name).num_points


# --- files ------------------------------------------------------------------------------------------------------

def latest_restorable_checkpoint(directory: str | os.PathLike) -> str | None:
    """The prefix of the newest checkpoint in `directory` whose every tensor reads back, or None when it has no
    checkpoint. One that does not read (its save cut short by a kill or a full disk) is skipped for the one before it
    with a warning naming it; ModelDirError, naming each, when none reads."""
    state = tf.train.get_checkpoint_state(str(directory))
    if state is None:
        return None
    problems = []
    for prefix in reversed(state.all_model_checkpoint_paths):
        problem = _unreadable(prefix)
        if problem is None:
            return prefix
        logging.warning("Checkpoint %s does not read back (%s): skipping it for the one before it.", prefix, problem)
        problems.append(problem)
    raise ModelDirError(f"{directory}: no checkpoint reads back: {'; '.join(problems)}")


def _unreadable(prefix: str) -> str | None:
    """Why the checkpoint `prefix` does not read back, naming its files, or None when every tensor does."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    # A short data file raises IndexError, a missing or damaged one an OpError (NotFound, DataLoss).
    except (IndexError, tf.errors.OpError) as error:
        path = Path(prefix)
        found = [f"{p} ({p.stat().st_size} bytes)" for p in sorted(path.parent.glob(f"{path.name}.*"))]
        return f"{', '.join(found) or f'no {prefix}.* files'}: {_error_summary(error)}"
    return None


def _remove_unfinished_saves(checkpoint_dir: Path) -> None:
    """TensorFlow saves a checkpoint into `<prefix>_temp/` and then moves it into place; a kill in between leaves
    the folder, which only a later save of the same step would clear."""
    for leftover in sorted(checkpoint_dir.glob(f"{CHECKPOINT_NAME}-*_temp")):
        if leftover.is_dir() and re.fullmatch(rf"{CHECKPOINT_NAME}-\d+_temp", leftover.name):
            logging.warning("Removing %s, left by a checkpoint save that was killed midway.", leftover)
            shutil.rmtree(leftover)


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drops the lines a killed run logged after its last checkpoint, so that a resumed run's log reads on, and its
    last line if the kill cut it mid-write."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            step = json.loads(line)["step"]
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            if number < len(lines):  # a kill tears only the line being written, the last
                raise ModelDirError(f"{path}:{number}: not a metrics record ({type(error).__name__}: {error}); "
                                    "repair or remove that line to resume") from error
            logging.warning("%s: dropping its last line, torn by a killed run: %r", path, line)
            continue
        if step <= last_step:
            kept.append(line)
    files.write_atomic(path, "".join(line + "\n" for line in kept))


def _saved_config(path: Path) -> ExperimentConfig:
    try:
        return ExperimentConfig.from_json_file(str(path))
    except ValueError as error:
        raise ModelDirError(f"{error}; the run there cannot be resumed with it") from error


def _check_resumable(saved: ExperimentConfig, config: ExperimentConfig, model_dir: Path) -> None:
    differences = [f"model.{k}: {v!r} -> {config.to_dict()['model'][k]!r}"
                   for k, v in saved.to_dict()["model"].items() if config.to_dict()["model"][k] != v]
    for key in ("image_size", "layout"):
        if getattr(saved.data, key) != getattr(config.data, key):
            differences.append(f"data.{key}: {getattr(saved.data, key)!r} -> {getattr(config.data, key)!r}")
    if differences:
        raise ModelDirError(f"{model_dir} holds checkpoints of a different model ({'; '.join(differences)}); "
                            "use another --model_dir or the saved configuration")


# --- the trainer ------------------------------------------------------------------------------------------------

class Trainer:
    """Trains the networks of `config` into `model_dir`, resuming from its latest checkpoint if it has one.

    `dataset_fn(data_config, input_context)` returns one replica's dataset of batches (the dicts of
    `data.make_dataset`, which is the default and then also sets `config.data.layout` from the data set).
    """

    def __init__(self, config: ExperimentConfig, model_dir: str | os.PathLike, dataset_fn: DatasetFn | None = None):
        self.config = ExperimentConfig.from_dict(config.to_dict())
        self.model_dir = Path(model_dir)
        train = self.config.train
        configure_cpu_devices(train.num_cpu_devices)
        self.strategy = make_strategy(train.strategy)
        self.chief = is_chief(self.strategy)
        self._dataset_fn = dataset_fn or self._make_dataset_fn()
        self.global_batch_size = self.config.data.batch_per_replica * self.strategy.num_replicas_in_sync
        self.policy = precision_policy(train.mixed_precision)

        with dtype_policy(self.policy), self.strategy.scope():
            self.networks = build_networks(self.config, num_points_of(self.config.data.layout))
            self.optimizers = build_optimizers(self.config.optimizer, self.networks,
                                               loss_scale=self.policy == "mixed_float16")
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            # Step at which a loss first went bad (0 = never), kept on the device so that checking costs no host
            # round trip per step; read when logging and before saving.
            self.first_bad_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="first_bad_step")

        n, o = self.networks, self.optimizers
        check_checkpointable({"generator": n.generator, "keypoint_detector": n.keypoint_detector,
                              "critic": n.critic, "identity_critic": n.identity_critic})
        self.checkpoint = tf.train.Checkpoint(
            step=self.step, generator=n.generator, keypoint_detector=n.keypoint_detector, critic=n.critic,
            identity_critic=n.identity_critic, generator_optimizer=o.generator, critic_optimizer=o.critic,
            identity_critic_optimizer=o.identity_critic, keypoint_detector_optimizer=o.keypoint_detector)
        # Not the manager's latest, which may be a checkpoint that did not read back.
        self.last_good_checkpoint = self._restore()
        self.perceptual_record = perceptual.describe(self.config.model, self.networks.perceptual)
        # Created only now, after every check: a run refused above leaves no model_dir behind.
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if self.chief:
            # First, as it may still refuse the model_dir: then config.json still tells the run that is there.
            _truncate_metrics(self.model_dir / METRICS_FILE, int(self.step.numpy()))
            _remove_unfinished_saves(self.model_dir)
            files.write_atomic(self.model_dir / CONFIG_FILE, self.config.to_json() + "\n")
            files.write_atomic(self.model_dir / PERCEPTUAL_FILE, json.dumps(self.perceptual_record, indent=2) + "\n")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self._checkpoint_dir()), max_to_keep=train.keep_checkpoints,
            checkpoint_name=CHECKPOINT_NAME)
        self.writer = (tf.summary.create_file_writer(str(self.model_dir / TENSORBOARD_DIR)) if self.chief
                       else tf.summary.create_noop_writer())

        self.train_step = TrainStep(self.networks, self.optimizers, self.config.loss, self.global_batch_size)
        self.jit_compile = train.jit_compile
        self._step_fn = self._make_step_fn(self.jit_compile)
        self._sample_fn = tf.function(self._generate)

    # -- set-up --

    def _generate(self, inputs: dict) -> dict[str, tf.Tensor]:
        """The generated faces and, for a generator with a `compose` method, how it made them."""
        generator = self.networks.generator
        if not hasattr(generator, "compose"):
            return {"generated": generator(inputs, training=False)}
        layers = generator.compose(inputs, training=False)
        return {"generated": layers["image"],
                **{name: layers[name] for name in ("prior_warped", "warped", "mask", "painted", "repaint")}}

    def _make_dataset_fn(self) -> DatasetFn:
        from bigo_facegen import data
        self.config.data.layout = data.dataset_layout(self.config.data)
        return data.make_dataset

    def _checkpoint_dir(self) -> Path:
        if self.chief:
            return self.model_dir
        # Every MultiWorkerMirroredStrategy worker must take part in saving; only the chief's copy is kept.
        resolver = self.strategy.cluster_resolver
        return self.model_dir / f".worker_{resolver.task_type}_{resolver.task_id}"

    def _restore(self) -> str | None:
        """Restores the latest checkpoint that reads back and returns it; None for a new run."""
        if tf.train.get_checkpoint_state(str(self.model_dir)) is None:
            return None
        config_path = self.model_dir / CONFIG_FILE
        saved = _saved_config(config_path) if config_path.exists() else None
        if saved is not None:
            _check_resumable(saved, self.config, self.model_dir)
        latest = latest_restorable_checkpoint(self.model_dir)
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d.", latest, int(self.step.numpy()))
        self._apply_optimizer_config(saved)
        return latest

    def _apply_optimizer_config(self, saved: ExperimentConfig | None) -> None:
        """The checkpoint restored each optimizer's learning rate (a variable) with its state; the resumed run trains
        at its config's rates, as its config.json says. The betas are not in the checkpoint: the optimizers were
        built with the config's."""
        cfg, o = self.config.optimizer, self.optimizers
        for optimizer, rate in ((o.generator, cfg.generator_lr), (o.critic, cfg.critic_lr),
                                (o.identity_critic, cfg.identity_critic_lr), (o.keypoint_detector, cfg.detector_lr)):
            optimizer.learning_rate = rate
        if saved is None:
            return
        for field in dataclasses.fields(OptimizerConfig):
            before, now = getattr(saved.optimizer, field.name), getattr(cfg, field.name)
            if before != now:
                logging.info("Resumed with optimizer.%s=%g (the checkpoint's run had %g).", field.name, now, before)

    def _make_step_fn(self, jit_compile: bool):
        replica_step = tf.function(self.train_step, jit_compile=True) if jit_compile else self.train_step
        max_loss = self.config.train.max_loss

        @tf.function
        def step_fn(iterator):
            per_replica = self.strategy.run(replica_step, args=(next(iterator),))
            result = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                      for name, value in per_replica.items()}
            self.step.assign_add(1)
            values = tf.stack(list(result.values()))
            healthy = tf.reduce_all(tf.math.is_finite(values)) & tf.reduce_all(values <= max_loss)
            self.first_bad_step.assign(tf.where(
                (self.first_bad_step == 0) & tf.logical_not(healthy), self.step, self.first_bad_step))
            return result

        return step_fn

    def _dataset(self, start_step: int) -> tf.distribute.DistributedDataset:
        data_cfg = dataclasses.replace(self.config.data, seed=self.config.data.seed + start_step)
        return self.strategy.distribute_datasets_from_function(lambda ctx: self._dataset_fn(data_cfg, ctx))

    # -- the loop --

    def train(self) -> dict[str, float]:
        """Runs until `train.steps`; returns the last logged losses. Raises `TrainingDiverged` (keeping the last good
        checkpoint) when a loss goes NaN/infinite or above `train.max_loss`."""
        cfg = self.config.train
        step = int(self.step.numpy())
        if step >= cfg.steps:
            logging.info("%s is already at step %d of %d.", self.model_dir, step, cfg.steps)
            return {}
        iterator = iter(self._dataset(step))
        self._samples = _first_examples(self.strategy.experimental_local_results(next(iterator))[0], SAMPLE_COUNT)
        logging.info("Training %s from step %d to %d: %s strategy, %d replica(s), global batch %d, %s, "
                     "jit_compile=%s, perceptual loss %s.", self.model_dir, step, cfg.steps, cfg.strategy,
                     self.strategy.num_replicas_in_sync, self.global_batch_size, self.policy, self.jit_compile,
                     _perceptual_summary(self.perceptual_record))
        values: dict[str, float] = {}
        timer_step, timer = step, time.perf_counter()
        first_call = True
        while step < cfg.steps:
            result = self._run_step(iterator, first_call)
            first_call = False
            step += 1
            last = step == cfg.steps
            if step % cfg.log_every == 0 or last:
                values = {name: float(value) for name, value in result.items()}
                self._check_health(values)
                now = time.perf_counter()
                self._log(step, values, (step - timer_step) / (now - timer))
                timer_step, timer = step, now
            if self.chief and (step % cfg.sample_every == 0 or last):
                self._write_samples(step)
            if step % cfg.checkpoint_every == 0 or last:
                self._save(step)
        self.writer.flush()
        return values

    def _run_step(self, iterator, first_call: bool) -> dict[str, tf.Tensor]:
        if not (first_call and self.jit_compile):
            return self._step_fn(iterator)
        # A failing XLA step may have run on some replicas only: keep the state to put back.
        variables = self._state_variables()
        saved = [variable.numpy() for variable in variables]
        try:
            return self._step_fn(iterator)
        except Exception as error:  # XLA fails in many ways under tf.distribute; the plain step is always there.
            logging.warning("jit_compile: XLA could not run the training step under the %s strategy (%s: %s); "
                            "continuing without XLA.", self.config.train.strategy, type(error).__name__,
                            _error_summary(error))
            for variable, value in zip(variables, saved):
                variable.assign(value)
            self.jit_compile = False
            self._step_fn = self._make_step_fn(False)
            return self._step_fn(iterator)

    def _state_variables(self) -> list:
        """Everything a step changes: the networks' and optimizers' variables and the step counters."""
        n, o = self.networks, self.optimizers
        models = (n.generator, n.keypoint_detector, n.critic, n.identity_critic)
        optimizers = (o.generator, o.critic, o.identity_critic, o.keypoint_detector)
        return ([w for m in models for w in m.weights] + [v for opt in optimizers for v in opt.variables]
                + [self.step, self.first_bad_step])

    def _check_health(self, values: dict[str, float] | None = None) -> None:
        bad_step = int(self.first_bad_step.numpy())
        if not bad_step:
            return
        limit = self.config.train.max_loss
        bad = {name: value for name, value in (values or {}).items() if not math.isfinite(value) or value > limit}
        raise TrainingDiverged(
            f"Training stopped: a loss became NaN/infinite or exceeded train.max_loss={limit:g} at step {bad_step}"
            + (f" (now: {', '.join(f'{k}={v:g}' for k, v in bad.items())})" if bad else "")
            + f". The diverged state was not saved; last good checkpoint: {self.last_good_checkpoint or 'none'}.")

    def _log(self, step: int, values: dict[str, float], steps_per_s: float) -> None:
        images_per_s = steps_per_s * self.global_batch_size
        eta = (self.config.train.steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
        logging.info("step %d/%d  %.2f steps/s  %.1f images/s  ETA %s  %s", step, self.config.train.steps,
                     steps_per_s, images_per_s, _duration(eta),
                     "  ".join(f"{name} {value:.4g}" for name, value in values.items()))
        if not self.chief:
            return
        with open(self.model_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values, "images_per_s": images_per_s}) + "\n")
        with self.writer.as_default():
            for name, value in values.items():
                write_scalar(f"loss/{name}", value, step)
            write_scalar("images_per_s", images_per_s, step)

    def _write_samples(self, step: int) -> None:
        outputs = self._sample_fn(generator_inputs(self._samples))
        names, grid = sample_grid(self._samples, outputs)
        with self.writer.as_default():
            write_image(f"samples/{'|'.join(names)}", grid, step)
        directory = self.model_dir / SAMPLES_DIR
        directory.mkdir(exist_ok=True)
        files.write_atomic(directory / f"step-{step}.png", encode_png(grid))

    def _save(self, step: int) -> None:
        self._check_health()
        saved = Path(self.manager.save(checkpoint_number=step))
        # The chief's copy, the one kept, also on the other workers.
        self.last_good_checkpoint = str(self.model_dir / saved.name)
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)
        self.writer.flush()


# TensorBoard's own summary ops (`tf.summary.scalar`, `tf.summary.image`) live in the `tensorboard` package, which
# TensorFlow no longer installs; these write the same records with TensorFlow alone, readable by TensorBoard.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR)
_IMAGE_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images"),
    data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)


def write_scalar(tag: str, value: float, step: int) -> None:
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def encode_png(image: np.ndarray) -> bytes:
    """One (H, W, 3) image in [0, 1] as PNG bytes."""
    return tf.io.encode_png(tf.constant(np.round(image * 255.0).astype(np.uint8))).numpy()


def write_image(tag: str, image: np.ndarray, step: int) -> None:
    """One (H, W, 3) image in [0, 1]."""
    height, width = image.shape[:2]
    tf.summary.write(tag, tf.stack([tf.constant(str(width)), tf.constant(str(height)), tf.constant(encode_png(image))]),
                     step=step, metadata=_IMAGE_METADATA)


def _error_summary(error: Exception) -> str:
    """The root cause line of a TF error (its first line is often only 'Graph execution error:')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"\(\d+\) ", line)]
    return (causes or lines or [""])[0][:500]


def _perceptual_summary(record: dict) -> str:
    if record["backbone"] == "none":
        return "off (model.perceptual=none)"
    if not record["enabled"]:
        return f"off: no {record['backbone']} weights found"
    return f"on: {record['backbone']}, weights {record['weights_path'] or 'unnamed by its builder'}"


def _first_examples(batch: dict, count: int) -> dict:
    return {key: value[:count] for key, value in batch.items()}


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def sample_grid(batch: dict, outputs: dict) -> tuple[list[str], np.ndarray]:
    """The column names and the grid, float32 in [0, 1], with one row per example: reference | target keypoint map |
    generated | true target, then, where `outputs` has a warp-style generator's layers, the reference warped by the
    keypoint prior | by the final flow | the occlusion mask (white: the warped features are kept) | the painting | the
    repaint mask (white: the painting replaces the warped reference)."""
    columns = {"reference": batch["reference"], "target_keypoints": batch["target_map"],
               "generated": outputs["generated"], "truth": batch["target"]}
    if "mask" in outputs:
        def as_image(mask):
            return np.repeat(np.asarray(mask, dtype=np.float32) * 2.0 - 1.0, 3, axis=-1)

        columns.update({"prior_warped": outputs["prior_warped"], "warped": outputs["warped"],
                        "mask": as_image(outputs["mask"]), "painted": outputs["painted"],
                        "repaint": as_image(outputs["repaint"])})
    rows = np.concatenate([np.asarray(c, dtype=np.float32) for c in columns.values()], axis=2)
    return list(columns), np.clip((np.concatenate(list(rows), axis=0) + 1.0) / 2.0, 0.0, 1.0)


def load_generator(model_dir: str | os.PathLike) -> tuple[keras.Model, ExperimentConfig]:
    """The generator of a training run (rebuilt from its config.json, weights from its latest checkpoint) and the
    run's configuration; for export, generation and evaluation."""
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no {CONFIG_FILE}; is it a training run's model_dir?")
    config = ExperimentConfig.from_json_file(str(config_path))
    latest = latest_restorable_checkpoint(model_dir)
    if latest is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint to load the generator from")
    generator = build_generator(config.model, config.data.image_size, num_points_of(config.data.layout))
    check_checkpointable({"generator": generator})
    tf.train.Checkpoint(generator=generator).restore(latest).expect_partial().assert_existing_objects_matched()
    logging.info("Loaded the generator of %s from %s.", model_dir, latest)
    return generator, config

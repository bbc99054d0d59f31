"""The `Trainer`: runs the training step (`train_step.TrainStep`) under a distribution strategy with checkpoints, logs,
samples and a divergence stop. Its config is complete before it starts (`data.resolve_config`): it only reads it.

Resuming: a `Trainer` on a `model_dir` that holds checkpoints restores the latest one that reads back (step, every
network with its spectral-norm vectors and noise seed state, every optimizer's state) and continues from that step.
The data iterator is not part of the checkpoint: a resumed run reads its data with the seed `data.seed + step`, so the
examples after a resume differ from those the killed run would have seen, while everything the networks and
optimizers hold is exact. The optimizers' settings are the resumed run's config's, not the checkpoint's (see
`Trainer._apply_optimizer_config`). What a killed run leaves is dealt with at the next start: a checkpoint cut short
is skipped for the one before it, an unfinished save's folder and state file removed, a torn last line of the metrics
log dropped. A model_dir whose `config.json` or metrics log is not a run's (someone else's files under those names) is
refused before anything is built or written (`check_model_dir`): a run would write over them.

One run at a time: a `Trainer` holds its `model_dir` from its start until `close` (it is a context manager) or its
process ends (`checkpoints.ModelDirLock`), and a second one into the same model_dir is refused, naming the first.
Everything the start clears it clears only while holding it, so never what another live run is writing.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import tensorflow as tf
from absl import logging

from bigo_facegen import data, files, keypoints, summaries
from bigo_facegen.checkpoints import (
    CHECKPOINT_NAME,
    CONFIG_FILE,
    ModelDirError,
    ModelDirLock,
    check_checkpointable,
    check_resumable,
    error_summary,
    latest_restorable_checkpoint,
    remove_unfinished_saves,
    saved_config,
)
from bigo_facegen.config import DataConfig, ExperimentConfig, OptimizerConfig
from bigo_facegen.distribution import configure_cpu_devices, dtype_policy, is_chief, make_strategy, precision_policy
from bigo_facegen.models import perceptual
from bigo_facegen.models.registry import data_needs
from bigo_facegen.train_step import TrainStep, build_networks, build_optimizers, inputs_of

# Which backbone and weights file the perceptual loss used (`perceptual.describe`); config.json holds only the names
# asked for, so that a resumed run on another machine, whose weights live elsewhere, still matches it.
PERCEPTUAL_FILE = "perceptual.json"
METRICS_FILE = "metrics.jsonl"
# How every line of the metrics log begins (`Trainer._log`).
_RECORD_START = '{"step": '
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"  # model_dir/samples/step-<step>.png: the TensorBoard sample grids, viewable without it
SAMPLE_COUNT = 4

# (data config, input context) -> one replica's dataset of batches, as `data.make_dataset`.
DatasetFn = Callable[[DataConfig, tf.distribute.InputContext], tf.data.Dataset]


class TrainingDiverged(RuntimeError):
    """A loss became NaN/infinite or exceeded `train.max_loss`; the diverged state was not saved."""


def check_model_dir(model_dir: str | os.PathLike) -> None:
    """Raises ModelDirError where `model_dir` holds a `config.json` that does not read as a run's config (an older
    layout's does: `ExperimentConfig.from_json_file`) or a metrics log that is not one run's. Reads only, for before
    any work: a run writes over both (its config, and its log past its last checkpoint), and someone else's files
    under those names must not be lost."""
    config_path = Path(model_dir) / CONFIG_FILE
    if os.path.lexists(config_path):
        try:
            ExperimentConfig.from_json_file(str(config_path))
        except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError included
            raise ModelDirError(f"{error}; it is not a training run's config, which this run would write over: "
                                "use another --model_dir") from None
        except OSError as error:
            raise ModelDirError(f"{config_path}: cannot be read as a training run's config ({error.strerror}): use "
                                "another --model_dir") from None
    _metrics_records(Path(model_dir) / METRICS_FILE)


def _metrics_records(path: Path) -> tuple[list[tuple[int, str]], str | None]:
    """The records of a run's metrics log as (step, line), and its last line where a kill tore it mid-write (else
    None); none for a log not there. Raises ModelDirError where the file is no metrics log of one run."""
    if not os.path.lexists(path):
        return [], None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ModelDirError(f"{path}: cannot be read as a training run's metrics log ({reason}): use another "
                            "--model_dir") from None
    lines = [line for line in text.splitlines() if line.strip()]
    records, previous = [], 0
    for number, line in enumerate(lines, 1):
        step = _step_of(line)
        if step is None:
            if number == len(lines) and _torn(line, text):
                return records, line
            raise ModelDirError(f"{path}:{number}: not a metrics record (a JSON object with its step number): "
                                f"{line[:60]!r}; not the log of a training run, or damaged: repair or remove that "
                                "line, or use another --model_dir")
        if step <= previous:  # one run's log only counts up, resumed or not (its lines past a resume are dropped)
            raise ModelDirError(f"{path}:{number}: step {step} after step {previous}: two runs logged into this "
                                "model_dir at once, and its checkpoints may be either's; train into a new model_dir")
        previous = step
        records.append((step, line))
    return records, None


def _step_of(line: str) -> int | None:
    """The step of a metrics record; None where `line` is none."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _torn(line: str, text: str) -> bool:
    """Whether `line`, the last of the log `text`, is a record cut short by a kill: the newline that ends each record
    is missing, and what is there begins as every record does."""
    return not text.endswith("\n") and (line.startswith(_RECORD_START) or _RECORD_START.startswith(line))


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drops the lines a killed run logged after its last checkpoint, so that a resumed run's log reads on, and its
    last line if the kill cut it mid-write."""
    if not path.exists():
        return
    records, torn = _metrics_records(path)
    if torn is not None:
        logging.warning("%s: dropping its last line, torn by a killed run: %r", path, torn)
    files.write_atomic(path, "".join(line + "\n" for step, line in records if step <= last_step))


class Trainer:
    """Trains the networks of `config` into `model_dir`, resuming from its latest checkpoint if it has one.

    `dataset_fn(data_config, input_context)` returns one replica's dataset of batches (the dicts of
    `data.make_dataset`, the default, with what the generator's registry entry says its training needs; it needs
    `config` resolved on its data set: `data.resolve_config`).
    It holds `model_dir` until `close` (see the module doc): `with Trainer(...) as trainer: trainer.train()`.
    """

    def __init__(self, config: ExperimentConfig, model_dir: str | os.PathLike, dataset_fn: DatasetFn | None = None):
        self.config = copy.deepcopy(config)
        self.model_dir = Path(model_dir)
        check_model_dir(self.model_dir)
        train = self.config.train
        configure_cpu_devices(train.num_cpu_devices)
        self.strategy = make_strategy(train.strategy)
        self.chief = is_chief(self.strategy)
        self._dataset_fn = dataset_fn or self._checked_make_dataset()
        self.global_batch_size = self.config.data.batch_per_replica * self.strategy.num_replicas_in_sync
        self.policy = precision_policy(train.mixed_precision)

        with dtype_policy(self.policy), self.strategy.scope():
            self.networks = build_networks(self.config, keypoints.get_layout(self.config.data.layout).num_points)
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
        self.perceptual_record = perceptual.describe(self.config.model, self.networks.perceptual)
        # Taken only now, after every check a new model_dir can fail (taking it creates it): a run refused above leaves
        # none behind. The chief's alone: the other workers write only their own folders (`_checkpoint_dir`).
        self._lock = ModelDirLock(self.model_dir) if self.chief else None
        try:
            # Not the manager's latest, which may be a checkpoint that did not read back.
            self.last_good_checkpoint = self._restore()
            self._open_model_dir()
        except BaseException:
            self.close()
            raise
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self._checkpoint_dir()), max_to_keep=train.keep_checkpoints,
            checkpoint_name=CHECKPOINT_NAME)
        self.writer = (tf.summary.create_file_writer(str(self.model_dir / TENSORBOARD_DIR)) if self.chief
                       else tf.summary.create_noop_writer())

        self.train_step = TrainStep(self.networks, self.optimizers, self.config.loss, self.global_batch_size)
        self.jit_compile = train.jit_compile
        self._step_fn = self._make_step_fn(self.jit_compile)
        self._sample_fn = tf.function(lambda inputs: self.networks.generator.compose(inputs, training=False))

    def close(self) -> None:
        """Lets go of the model_dir (`checkpoints.ModelDirLock`), held from the start; a Trainer is also a context
        manager that does this at its end, and a process that ends lets go of it too."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- set-up --

    def _checked_make_dataset(self) -> DatasetFn:
        layout = data.dataset_layout(self.config.data)
        if layout != self.config.data.layout:
            raise ValueError(f"data.layout={self.config.data.layout!r}, but data set {self.config.data.dataset!r} has "
                             f"{layout!r} keypoints: resolve the config (data.resolve_config) before training")
        return functools.partial(data.make_dataset, extras=data_needs(self.config.model))

    def _open_model_dir(self) -> None:
        """Clears what a killed run left and records this run's config (the chief's part: the others only make their
        folder)."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if not self.chief:
            return
        # First, as it may still refuse the model_dir: then config.json still tells the run that is there.
        _truncate_metrics(self.model_dir / METRICS_FILE, int(self.step.numpy()))
        remove_unfinished_saves(self.model_dir)
        files.write_atomic(self.model_dir / CONFIG_FILE, self.config.to_json() + "\n")
        files.write_atomic(self.model_dir / PERCEPTUAL_FILE, json.dumps(self.perceptual_record, indent=2) + "\n")

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
        saved = saved_config(config_path) if config_path.exists() else None
        if saved is not None:
            check_resumable(saved, self.config, self.model_dir)
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
                     summaries.perceptual_summary(self.perceptual_record))
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
                            error_summary(error))
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
                     steps_per_s, images_per_s, summaries.duration(eta),
                     "  ".join(f"{name} {value:.4g}" for name, value in values.items()))
        if not self.chief:
            return
        with open(self.model_dir / METRICS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **values, "images_per_s": images_per_s}) + "\n")
        with self.writer.as_default():
            summaries.write_losses(values, images_per_s, step)

    def _write_samples(self, step: int) -> None:
        layers = self._sample_fn(inputs_of(self._samples))
        names, grid = summaries.sample_grid(self._samples, layers, self.networks.generator_spec.capabilities)
        with self.writer.as_default():
            summaries.write_samples(names, grid, step)
        directory = self.model_dir / SAMPLES_DIR
        directory.mkdir(exist_ok=True)
        files.write_atomic(directory / f"step-{step}.png", summaries.encode_png(grid))

    def _save(self, step: int) -> None:
        self._check_health()
        saved = Path(self.manager.save(checkpoint_number=step))
        # The chief's copy, the one kept, also on the other workers.
        self.last_good_checkpoint = str(self.model_dir / saved.name)
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)
        self.writer.flush()


# TensorBoard's own summary ops (`tf.summary.scalar`, `tf.summary.image`) live in the `tensorboard` package, which


def _first_examples(batch: dict, count: int) -> dict:
    return {key: value[:count] for key, value in batch.items()}

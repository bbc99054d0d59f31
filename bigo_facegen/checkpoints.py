"""A training run's checkpoints: the newest one that reads back, whether a network's weights are all saved, the
generator of a run (for export, generation and evaluation), and what a run holds, checks and clears first.

A run's `model_dir` holds `CONFIG_FILE` (its resolved config), the checkpoints `CHECKPOINT_NAME-<step>` and
`LOCK_FILE`, which the run training into it holds (`ModelDirLock`).
"""
from __future__ import annotations

import datetime
import fcntl
import os
import re
import shutil
import socket
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from bigo_facegen import keypoints
from bigo_facegen.config import ExperimentConfig, network_fields
from bigo_facegen.models.registry import build_generator

CONFIG_FILE = "config.json"
CHECKPOINT_NAME = "ckpt"
LOCK_FILE = "run.lock"
# TensorFlow writes the checkpoint state file `checkpoint` as `checkpoint.tmp<uuid4 hex>` and renames it
# (`file_io.atomic_write_string_to_file`).
_STATE_FILE_TEMPORARY = re.compile(r"checkpoint\.tmp[0-9a-f]{32}")


class ModelDirError(ValueError):
    """A model_dir cannot be resumed or loaded as it is: checkpoints of another model, none that reads back, or a
    metrics log damaged other than by a kill."""


class ModelDirLock:
    """An exclusive hold on a model_dir for one training run's life: a second run into it would interleave its
    metrics, summaries and checkpoints with the first's. Taking it creates the model_dir; a model_dir held by another
    run raises ModelDirError naming the holder (its process id, host and start, which the holder writes into the lock
    file and clears when it lets go). The operating system lets go of it when the holding process ends, however it
    ends, so a killed run never leaves its model_dir locked.

    Its own `fcntl.flock` rather than `filelock`'s, which owns its lock file (its version 4 removes it on release)
    and so has no place for the holder's record."""

    def __init__(self, model_dir: Path):
        model_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(model_dir / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "which has not yet written who it is"
            self._file.close()
            raise ModelDirError(f"{model_dir}: another training run is writing into it ({holder}); wait for it to "
                                f"end, or use another --model_dir") from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self._record(f"process {os.getpid()} on {socket.gethostname()}, started {started}\n")

    def release(self) -> None:
        """Clears the record and lets go of the model_dir; once it has, does nothing."""
        if self._file.closed:
            return
        self._record("")
        self._file.close()

    def _record(self, text: str) -> None:
        self._file.truncate(0)
        self._file.write(text)
        self._file.flush()


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
        return f"{', '.join(found) or f'no {prefix}.* files'}: {error_summary(error)}"
    return None


def error_summary(error: Exception) -> str:
    """The root cause line of a TF error (its first line is often only 'Graph execution error:')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"\(\d+\) ", line)]
    return (causes or lines or [""])[0][:500]


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
    num_points = keypoints.get_layout(config.data.layout).num_points
    generator = build_generator(config.model, config.data.image_size, num_points)
    check_checkpointable({"generator": generator})
    tf.train.Checkpoint(generator=generator).restore(latest).expect_partial().assert_existing_objects_matched()
    logging.info("Loaded the generator of %s from %s.", model_dir, latest)
    return generator, config


def remove_unfinished_saves(checkpoint_dir: Path) -> None:
    """TensorFlow saves a checkpoint into `<prefix>_temp/` and then moves it into place, and writes the state file
    `checkpoint` under a temporary name that it then renames; a kill in between leaves the folder (which only a later
    save of the same step would clear) or the file (which none would). Only for the run that holds the folder
    (`ModelDirLock`): another live run's save may be under way."""
    for leftover in sorted(checkpoint_dir.glob(f"{CHECKPOINT_NAME}-*_temp")):
        if leftover.is_dir() and re.fullmatch(rf"{CHECKPOINT_NAME}-\d+_temp", leftover.name):
            logging.warning("Removing %s, left by a checkpoint save that was killed midway.", leftover)
            shutil.rmtree(leftover)
    for leftover in sorted(checkpoint_dir.glob("checkpoint.tmp*")):
        if leftover.is_file() and _STATE_FILE_TEMPORARY.fullmatch(leftover.name):
            logging.warning("Removing %s, left by a checkpoint save that was killed midway.", leftover)
            leftover.unlink()


def saved_config(path: Path) -> ExperimentConfig:
    try:
        return ExperimentConfig.from_json_file(str(path))
    except ValueError as error:
        raise ModelDirError(f"{error}; the run there cannot be resumed with it") from error


def check_resumable(saved: ExperimentConfig, config: ExperimentConfig, model_dir: Path) -> None:
    before, now = network_fields(saved.model), network_fields(config.model)
    # The keys of another generator's section are left out: the difference of the types says it.
    differences = [f"{key}: {value!r} -> {now[key]!r}" for key, value in before.items()
                   if key in now and now[key] != value]
    for key in ("image_size", "layout"):
        if getattr(saved.data, key) != getattr(config.data, key):
            differences.append(f"data.{key}: {getattr(saved.data, key)!r} -> {getattr(config.data, key)!r}")
    if differences:
        raise ModelDirError(f"{model_dir} holds checkpoints of a different model ({'; '.join(differences)}); "
                            "use another --model_dir or the saved configuration")

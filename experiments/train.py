"""Train the face generator (with its keypoint detector and critics) on one tier set.

Starts from a preset (`paper`: the original's 224 px networks; `cpu`: small enough to learn in minutes on a laptop;
`real`: the warp-and-refine generator for real footage, sized for a CPU),
applies the flags below and any `--config_override=section.field=value`, and trains into --model_dir, resuming from its
latest checkpoint when it has one. The run writes config.json (the resolved configuration, used by export, generate
and evaluate), metrics.jsonl, TensorBoard logs (`tensorboard --logdir=MODEL_DIR/tensorboard`) and checkpoints
ckpt-<step>.

Examples:
  python -m experiments.train --tier=hard
  python -m experiments.train --preset=cpu --data=synthetic --model_dir=runs/cpu_hard --steps=500
  python -m experiments.train --preset=real --data=../shared/data/real_faces/dev --model_dir=runs/real
  python -m experiments.train --preset=cpu --data=../shared/data/real_faces/dev --tier=all \\
      --strategy=mirrored --num_cpu_devices=2 --config_override=loss.l1=10 --config_override=train.log_every=10
  TF_CONFIG='{"cluster": {...}, "task": {...}}' python -m experiments.train --strategy=multi_worker ...

Exit status 1, with one line saying why, for a bad flag or config value, a --data that is no data set, a
--model_dir that is no folder it may write (a file, a path under one, no permission: said before the data set is
prepared), that holds a config.json or metrics.jsonl that is not a training run's (said before any work), that cannot
be resumed (checkpoints of another model, none that reads back) or that another run is training into (one run at a
time: the line names it), and when training diverges (NaN or a loss above train.max_loss; the last good checkpoint is
kept). A run stopped before training writes nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import tensorflow as tf
from absl import app, flags, logging

from bigo_facegen import config as configs, data, files
from bigo_facegen.checkpoints import ModelDirError
from bigo_facegen.training import Trainer, TrainingDiverged, check_model_dir

FLAGS = flags.FLAGS
# Crops from this side up (the `paper` preset's 224 px) take seconds a step on a CPU: said before a run starts there.
GPU_SIZED_CROP = 160
flags.DEFINE_enum("tier", None, sorted(configs.TIER_SETS),
                  "Tier set to train on (each tier's model also sees the tier below it; `all` = every tier). "
                  "Default: the preset's (hard).")
flags.DEFINE_enum("preset", "paper", sorted(configs.PRESETS), "Configuration to start from.")
flags.DEFINE_string("data", None, "`synthetic`, `bigo` (the TFDS data set) or a BIGO-layout folder "
                    "(annotations.json + videos/). Default: the preset's (synthetic).")
flags.DEFINE_string("model_dir", None, "Where checkpoints and logs go; a run there is resumed. "
                    "Default: runs/<preset>_<tier>.")
flags.DEFINE_integer("steps", None, "Total training steps (a resumed run continues up to this).")
flags.DEFINE_enum("strategy", None, configs.STRATEGIES,
                  "tf.distribute strategy: one device, every local GPU (or logical CPU device), or the workers of "
                  "TF_CONFIG.")
flags.DEFINE_integer("num_cpu_devices", None, "Split the CPU into this many logical devices (try --strategy=mirrored "
                     "without GPUs).")
flags.DEFINE_boolean("mixed_precision", None, "mixed_float16 on GPU (with loss scaling), mixed_bfloat16 on CPU.")
flags.DEFINE_boolean("jit_compile", None, "Compile the training step with XLA (falls back, with a log line, where "
                     "XLA cannot run it).")
flags.DEFINE_integer("batch_per_replica", None, "Frames of one video per replica and step.")
flags.DEFINE_integer("image_size", None, "Face crop side in pixels (a multiple of 4).")
flags.DEFINE_multi_string("config_override", [], "section.field=value for any config field, e.g. "
                          "loss.l1=10, model.perceptual=none, train.checkpoint_every=500 (values are JSON: numbers, "
                          "true/false; anything else is a string). Repeatable; applied after the other flags.")


def flags_config() -> configs.ExperimentConfig:
    """The preset with the flags and overrides applied, its data set checked to exist (not yet resolved on it)."""
    flag_values = {
        "data.tier": FLAGS.tier, "data.dataset": FLAGS.data, "data.batch_per_replica": FLAGS.batch_per_replica,
        "data.image_size": FLAGS.image_size, "train.steps": FLAGS.steps, "train.strategy": FLAGS.strategy,
        "train.num_cpu_devices": FLAGS.num_cpu_devices, "train.mixed_precision": FLAGS.mixed_precision,
        "train.jit_compile": FLAGS.jit_compile,
    }
    config = configs.override(configs.preset(FLAGS.preset), flag_values)
    config = configs.override(config, dict(configs.parse_override(text) for text in FLAGS.config_override))
    if config.data.image_size >= GPU_SIZED_CROP and not tf.config.list_physical_devices("GPU"):
        print(f"note: {config.data.image_size}-px crops (the {FLAGS.preset} preset's sizes) are sized for GPUs; on "
              f"this machine's CPU a step takes seconds: --preset=cpu_warp or --preset=real suit a CPU",
              file=sys.stderr)
    check_dataset(config.data.dataset)
    return config


def check_dataset(dataset: str) -> None:
    """Before any work: the data set must be a named one or a BIGO-layout folder."""
    if dataset in data.NAMED_DATASETS:
        return
    folder = Path(dataset).expanduser()
    wanted = f"want one of {data.NAMED_DATASETS} or a BIGO-layout folder (annotations.json + videos/)"
    if not folder.is_dir():
        raise ValueError(f"--data (data.dataset) {dataset}: no such folder; {wanted}")
    if not (folder / "annotations.json").is_file():
        raise ValueError(f"--data (data.dataset) {dataset}: no annotations.json in this folder; {wanted}")


@files.entry_point
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = flags_config()
        model_dir = FLAGS.model_dir or f"runs/{FLAGS.preset}_{config.data.tier}"
        # Before the data set is resolved (which may prepare it, for minutes): a file there, or no write permission.
        files.check_output_folder(model_dir, "--model_dir")
        check_model_dir(model_dir)  # someone else's config.json or metrics.jsonl there, which the run would replace
        trainer = Trainer(data.resolve_config(config), model_dir)
    # Before the first step: a config value, the data set (a missing or malformed folder, an unreadable video) or a
    # model_dir that cannot be resumed or is in use. ModelDirError, AnnotationError and VideoError are ValueErrors.
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    with trainer:
        try:
            trainer.train()
        except (ModelDirError, TrainingDiverged) as error:
            logging.error("%s", error)
            sys.exit(1)


if __name__ == "__main__":
    app.run(main)

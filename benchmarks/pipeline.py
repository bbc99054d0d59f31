"""Input-pipeline throughput against the training step's consumption.

    python -m benchmarks.pipeline [--dataset synthetic|bigo|FOLDER] [--size 128] [--batch 8] [--json]

Measures `data.make_dataset` from the prepared TFRecords (read, decode of the sampled JPEGs, resize, rotation/scale
augmentation, keypoint maps) in frames/s: every batch holds 2 x batch frames (references and targets). If
`bigo_facegen.train_step` is present, it also times the training step alone (on one batch held in memory, so the
pipeline is out of the measurement) at the same size and batch, and prints the ratio of batches produced per second
to batches consumed per second; the pipeline should keep ahead by at least `TARGET_RATIO`.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "synthetic", "synthetic | bigo | a BIGO-layout folder")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's)")
flags.DEFINE_integer("size", 128, "image side fed to the networks")
flags.DEFINE_integer("batch", 8, "frames of one video per batch (batch_per_replica)")
flags.DEFINE_string("tier", "all", "tier set")
flags.DEFINE_string("keypoint_style", "dots", "dots | heatmap | lines")
flags.DEFINE_integer("batches", 60, "batches timed for the pipeline")
flags.DEFINE_integer("steps", 5, "training steps timed")
flags.DEFINE_integer("warmup", 3, "untimed batches / steps first (tracing, autotuning, file cache)")
flags.DEFINE_string("preset", "paper", "experiment preset whose model the training step uses (paper | cpu)")
flags.DEFINE_bool("json", False, "print one JSON line instead of the table")

TARGET_RATIO = 5.0


def pipeline_batches_per_s(config, batches: int, warmup: int) -> float:
    """Batches of `config`'s data as its generator trains on them (with what its registry entry says it needs)."""
    from bigo_facegen import data
    from bigo_facegen.models.registry import data_needs
    iterator = iter(data.make_dataset(config.data, extras=data_needs(config.model)))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def training_steps_per_s(config, steps: int, warmup: int) -> float:
    """The training step alone (`train_step.TrainStep`, compiled once), on one real batch held in memory."""
    import tensorflow as tf

    from bigo_facegen import data
    from bigo_facegen.models.registry import data_needs
    from bigo_facegen.train_step import TrainStep, build_networks, build_optimizers
    batch = next(iter(data.make_dataset(config.data, extras=data_needs(config.model))))
    networks = build_networks(config, batch["reference_points"].shape[1])
    optimizers = build_optimizers(config.optimizer, networks)
    step = tf.function(TrainStep(networks, optimizers, config.loss, config.data.batch_per_replica))
    for _ in range(warmup):
        float(step(batch)["generator"])
    start = time.perf_counter()
    for _ in range(steps):
        losses = step(batch)
    float(losses["generator"])  # waits for the last step
    return steps / (time.perf_counter() - start)


def main(argv):
    del argv
    from bigo_facegen import config as config_lib
    config = config_lib.preset(FLAGS.preset)
    config.data = dataclasses.replace(
        config.data, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, image_size=FLAGS.size,
        batch_per_replica=FLAGS.batch, tier=FLAGS.tier, keypoint_style=FLAGS.keypoint_style)
    batches_per_s = pipeline_batches_per_s(config, FLAGS.batches, FLAGS.warmup)
    result = {
        "dataset": FLAGS.dataset, "size": FLAGS.size, "batch": FLAGS.batch, "keypoint_style": FLAGS.keypoint_style,
        "cpu_cores": os.cpu_count(),
        "pipeline_batches_per_s": round(batches_per_s, 2),
        "pipeline_frames_per_s": round(batches_per_s * 2 * FLAGS.batch, 1),
        "train_steps_per_s": None, "train_images_per_s": None, "ratio": None, "target_ratio": TARGET_RATIO,
    }
    has_training = importlib.util.find_spec("bigo_facegen.train_step") is not None
    if has_training:
        steps_per_s = training_steps_per_s(config, FLAGS.steps, FLAGS.warmup)
        result.update(train_steps_per_s=round(steps_per_s, 3),
                      train_images_per_s=round(steps_per_s * FLAGS.batch, 1),
                      ratio=round(batches_per_s / steps_per_s, 2))
    if FLAGS.json:
        print(json.dumps(result))
        return
    print(f"input pipeline ({FLAGS.dataset}, {FLAGS.size} px, batch {FLAGS.batch}, {FLAGS.keypoint_style} maps, "
          f"{os.cpu_count()} CPU cores)")
    print(f"  {'pipeline':<28}{result['pipeline_frames_per_s']:>10.1f} frames/s "
          f"({result['pipeline_batches_per_s']:.2f} batches/s)")
    if not has_training:
        print("  training step: bigo_facegen.train_step not found, consumption not measured")
        return
    print(f"  {'training step (' + FLAGS.preset + ' model)':<28}{result['train_images_per_s']:>10.1f} images/s "
          f"({result['train_steps_per_s']:.3f} steps/s)")
    verdict = "ok" if result["ratio"] >= TARGET_RATIO else "BELOW TARGET"
    print(f"  {'ratio (batches/s)':<28}{result['ratio']:>10.2f} x   (target >= {TARGET_RATIO:g}x: {verdict})")


if __name__ == "__main__":
    app.run(main)

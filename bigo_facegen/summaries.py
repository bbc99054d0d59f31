"""What a training run shows of itself: in TensorBoard its losses and throughput, and grids of sample faces (also
written as PNG files, viewable without TensorBoard); in its log, words for its perceptual loss and time left."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from bigo_facegen.models.contract import REPAINT_LAYERS, Capabilities


def write_losses(values: dict[str, float], images_per_s: float, step: int) -> None:
    """Into the default summary writer: each loss as `loss/<name>`, and `images_per_s`."""
    for name, value in values.items():
        tf.summary.scalar(f"loss/{name}", value, step=step)
    tf.summary.scalar("images_per_s", images_per_s, step=step)


def write_samples(names: list[str], grid: np.ndarray, step: int) -> None:
    """Into the default summary writer: the grid of `sample_grid`, tagged with its column names."""
    tf.summary.image(f"samples/{'|'.join(names)}", grid[None], step=step)


def encode_png(image: np.ndarray) -> bytes:
    """One (H, W, 3) image in [0, 1] as PNG bytes."""
    return tf.io.encode_png(tf.constant(np.round(image * 255.0).astype(np.uint8))).numpy()


def sample_grid(batch: dict, layers: dict, capabilities: Capabilities) -> tuple[list[str], np.ndarray]:
    """The column names and the grid, float32 in [0, 1], with one row per example: reference | target keypoint map |
    generated | true target, then, for a generator whose `capabilities` say `repaint` (`layers` is its `compose`
    output), the reference warped by the keypoint prior | by the final flow | the occlusion mask (white: the warped
    features are kept) | the painting | the repaint mask (white: the painting replaces the warped reference)."""
    columns = {"reference": batch["reference"], "target_keypoints": batch["target_map"],
               "generated": layers["image"], "truth": batch["target"]}
    if capabilities.repaint:
        columns.update({name: layers[name] for name in REPAINT_LAYERS})
        for mask in ("mask", "repaint"):
            columns[mask] = np.repeat(np.asarray(columns[mask], dtype=np.float32) * 2.0 - 1.0, 3, axis=-1)
    rows = np.concatenate([np.asarray(c, dtype=np.float32) for c in columns.values()], axis=2)
    return list(columns), np.clip((np.concatenate(list(rows), axis=0) + 1.0) / 2.0, 0.0, 1.0)


def perceptual_summary(record: dict) -> str:
    if record["backbone"] == "none":
        return "off (model.perceptual=none)"
    if not record["enabled"]:
        return f"off: no {record['backbone']} weights found"
    return f"on: {record['backbone']}, weights {record['weights_path'] or 'unnamed by its builder'}"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

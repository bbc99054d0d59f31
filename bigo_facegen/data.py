"""The input pipeline: `bigo_face` TFDS examples -> batches of (reference, target) frame pairs of ONE video.

Each element of `make_dataset` is one video's batch: `reference` and `target` (B, S, S, 3) float32 in [-1, 1], their
keypoints (B, N, 2) in pixels of the S-sized crop, flags (B, N) int32 and keypoint maps (B, S, S, 3) drawn in-graph;
and the `extras` asked for (what a generator's registry entry says its training needs, `models.registry.data_needs`):
`optical_flow` adds `target_flow` (B, S, S, 2), the reference pixel each target pixel shows, and `target_flow_valid`
(B, S, S, 1), where that flow is trusted (`optical_flow.backward_flow`).
A target is another frame of the reference's video (never the reference's own frame, where the video has two).

Where the work goes, so that the pipeline is never the bottleneck: examples are read with their JPEGs undecoded and
only the 2B sampled crops are decoded; videos are processed in parallel (`map` with AUTOTUNE, order kept); resizing,
augmentation and maps run in the same parallel map; everything is prefetched.

Determinism: file order, video shuffle, frame sampling and augmentation all derive from `cfg.seed` (seeded shuffles,
stateless random ops keyed by the seed, the input pipeline id and the element's position), and the `tf.data` options
keep the order, so the same config gives the same batches.

The person-disjoint split (`train`, `test`) and the tiers are the data set's folder's: `bigo_folder`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import tempfile
from pathlib import Path

import filelock
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

import tfds_bigo  # noqa: F401  (registers the `bigo_face` builder)
from bigo_facegen import geometry, keypoints, optical_flow
from bigo_facegen.bigo_folder import SPLITS, in_split
from bigo_facegen.config import TIER_SETS, DataConfig, ExperimentConfig, validate
from bigo_facegen.models.contract import KeypointMapSettings, from_unit, generator_inputs, to_unit
from tfds_bigo.bigo_face import folder_config

BUILDER_NAME = "bigo_face"
NAMED_DATASETS = ("synthetic", "bigo")
# What a batch may hold beyond the generator's inputs and the target, when asked for (`make_dataset`'s `extras`).
EXTRAS = ("optical_flow",)


def dataset_builder(cfg: DataConfig) -> tfds.core.DatasetBuilder:
    """The prepared `bigo_face` builder of `cfg.dataset` (`synthetic`, `bigo` or a BIGO-layout folder), preparing
    it on first use, and a folder's again when the folder has changed since. Not cached: a builder held on to would
    keep serving the data set of the folder as it was; the builder's check at each call costs a hash of the annotation
    file and a stat of each video."""
    if cfg.dataset in NAMED_DATASETS:
        config, download_config = cfg.dataset, None
    else:
        folder = Path(cfg.dataset).expanduser().resolve()
        if not (folder / "annotations.json").is_file():
            raise ValueError(f"data set {cfg.dataset!r} is neither one of {NAMED_DATASETS} nor a BIGO-layout folder "
                             f"(no {folder / 'annotations.json'})")
        config, download_config = folder_config(folder), tfds.download.DownloadConfig(manual_dir=str(folder))
    with preparation_lock(tfds.builder(BUILDER_NAME, config=config, data_dir=cfg.data_dir)):
        # Made again under the lock: a builder reads its data set's info when it is made, so one made before the wait
        # took a data set that another process was still preparing for absent (no metadata) and never looked again.
        builder = tfds.builder(BUILDER_NAME, config=config, data_dir=cfg.data_dir)
        builder.download_and_prepare(download_config=download_config)
    return builder


def preparation_lock(builder: tfds.core.DatasetBuilder) -> filelock.FileLock:
    """The lock a process holds while it prepares (or checks) `builder`'s data set. TFDS writes into a temporary
    folder and renames it at the end, so a second process preparing the same data set at once (two runs started
    together on a new machine) failed at that rename; holding this, it waits and then finds the data set prepared.
    The lock file is local (the data set's folder may be on a bucket), named by that folder."""
    digest = hashlib.sha256(str(builder.data_dir).encode()).hexdigest()[:16]
    return filelock.FileLock(Path(tempfile.gettempdir()) / f"bigo_facegen-prepare-{digest}.lock")


def dataset_info(cfg: DataConfig) -> tfds.core.DatasetInfo:
    return dataset_builder(cfg).info


def dataset_layout(cfg: DataConfig) -> str:
    """The keypoint layout of the data set (`bigo106` or `ibug68`)."""
    return dataset_info(cfg).metadata["layout"]


def resolve_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config complete for training on its data set: a validated copy whose `data.layout` is the data set's."""
    validate(config)  # first: preparing a data set is work
    resolved = dataclasses.replace(config, data=dataclasses.replace(config.data, layout=dataset_layout(config.data)))
    validate(resolved)
    return resolved


def selected_videos(cfg: DataConfig) -> list[str]:
    """Ids of the videos in `cfg`'s tier set and person split, sorted."""
    if cfg.tier not in TIER_SETS:
        raise ValueError(f"unknown tier {cfg.tier!r}; choose one of {sorted(TIER_SETS)}")
    if cfg.split not in SPLITS:
        raise ValueError(f"unknown split {cfg.split!r}; choose one of {SPLITS}")
    videos = dataset_info(cfg).metadata["videos"]
    return sorted(video_id for video_id, video in videos.items()
                  if video["tier"] in TIER_SETS[cfg.tier] and in_split(video["identity"], cfg.split))


def make_dataset(cfg: DataConfig, input_context: tf.distribute.InputContext | None = None, *,
                 extras: frozenset[str] = frozenset(), include_ids: bool = False) -> tf.data.Dataset:
    """Endless batches of `cfg.batch_per_replica` frame pairs, each batch from one video (see the module doc), holding
    the `extras` (of `EXTRAS`) too.

    With `input_context`, this input pipeline reads its own shard of the videos. `include_ids` adds `video_id` (B,)
    string and `reference_frame_index`, `target_frame_index` (B,) int32 (1-based frame numbers), for inspection.
    The video shuffle buffer holds `cfg.shuffle_videos` whole examples (all of a video's JPEGs, ~20 kB a crop at
    256 px), which bounds this pipeline's memory."""
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        raise ValueError(f"data.make_dataset: no extra {sorted(unknown)}; it gives {list(EXTRAS)}")
    builder = dataset_builder(cfg)
    info = builder.info
    layout = keypoints.get_layout(info.metadata["layout"])
    video_ids = selected_videos(cfg)
    if not video_ids:
        raise ValueError(f"data set {cfg.dataset!r} has no video in tiers {TIER_SETS[cfg.tier]} and split "
                         f"{cfg.split!r}")
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0

    options = tf.data.Options()
    options.deterministic = True
    splits = "+".join(tier for tier in TIER_SETS[cfg.tier] if tier in info.splits)
    ds = builder.as_dataset(
        split=splits, shuffle_files=True, decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=cfg.seed, options=options))
    selected = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(video_ids), tf.ones([len(video_ids)], tf.int32)), 0)
    ds = ds.filter(lambda example: selected.lookup(example["video_id"]) > 0)
    if len(video_ids) >= num_pipelines:
        # Every pipeline reads the files in the same seeded order, so the shards are disjoint.
        ds = ds.shard(num_pipelines, pipeline_id)
    else:
        logging.warning("%d videos for %d input pipelines: every pipeline reads all of them (with its own sampling)",
                        len(video_ids), num_pipelines)
    ds = ds.shuffle(cfg.shuffle_videos, seed=cfg.seed, reshuffle_each_iteration=True).repeat().enumerate()
    batch = functools.partial(_video_batch, cfg=cfg, layout=layout, crop_size=info.metadata["crop_size"],
                              seed=tf.constant([cfg.seed, pipeline_id], tf.int64),
                              add_flow="optical_flow" in extras, include_ids=include_ids)
    ds = ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _video_batch(position, example, *, cfg: DataConfig, layout: keypoints.Layout, crop_size: int, seed,
                 add_flow: bool, include_ids: bool):
    """One batch from one video example (JPEGs still encoded): sample frame pairs, decode, resize, augment, draw."""
    size, batch = cfg.image_size, cfg.batch_per_replica
    seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, position), num=3)
    reference, target = _sample_pairs(example["frame_index"], batch, seeds[0], seeds[1])
    chosen = tf.concat([reference, target], axis=0)                                         # (2B,)
    images = tf.map_fn(functools.partial(tf.io.decode_jpeg, channels=3), tf.gather(example["image"], chosen),
                       fn_output_signature=tf.TensorSpec([crop_size, crop_size, 3], tf.uint8))
    images = tf.cast(images, tf.float32)
    points = tf.gather(example["keypoints"], chosen)
    flags = tf.gather(example["flags"], chosen)
    if size != crop_size:
        images = tf.image.resize(images, [size, size], antialias=True)
        # Pixel centres sit at integers: the crop's edges (-0.5 and S - 0.5) map onto each other.
        points = (points + 0.5) * (size / crop_size) - 0.5
    # Which pixels show the frame (for the optical flow's trust): all of a crop's own; an augmentation brings in a
    # fill from outside it, found by the same draws (same seed and batch) on a mask whose outer ring, which the fill
    # repeats, is 0.
    content = tf.ones([2 * batch, size, size, 1])
    if cfg.rotation_degrees > 0 or cfg.scale_range > 0:
        # One draw per crop: a reference and its target are augmented independently, each face with its keypoints.
        images, moved = geometry.random_affine_tf(images, points, cfg.rotation_degrees, cfg.scale_range, seeds[2])
        if add_flow:
            ring = tf.pad(content[:, 1:-1, 1:-1], [[0, 0], [1, 1], [1, 1], [0, 0]])
            content, _ = geometry.random_affine_tf(ring, points, cfg.rotation_degrees, cfg.scale_range, seeds[2])
        points = moved
    images = tf.clip_by_value(to_unit(images), -1.0, 1.0)
    images = tf.ensure_shape(images, [2 * batch, size, size, 3])
    points = tf.ensure_shape(points, [2 * batch, layout.num_points, 2])
    flags = tf.ensure_shape(flags, [2 * batch, layout.num_points])
    first, second = slice(None, batch), slice(batch, None)  # the reference crops, then their targets
    # The data set's own layout: the one a resolved config names too (`resolve_config`).
    settings = KeypointMapSettings(cfg.keypoint_style, cfg.dot_radius, layout.name)
    out = generator_inputs(images[first], points[second], flags[second], settings,
                           reference_points=points[first], reference_flags=flags[first])
    # The ground truth, and the reference's map that the keypoint detector learns to draw.
    out["target"] = images[second]
    if add_flow:
        out["target_flow"], out["target_flow_valid"] = optical_flow.backward_flow_tf(
            from_unit(images[first]), from_unit(images[second]), content[first], content[second])
    out["reference_map"] = settings.draw(points[first], flags[first], size)
    if include_ids:
        out["video_id"] = tf.fill([batch], example["video_id"])
        out["reference_frame_index"] = tf.gather(example["frame_index"], reference)
        out["target_frame_index"] = tf.gather(example["frame_index"], target)
    return out


def _sample_pairs(frame_index, batch: int, reference_seed, target_seed):
    """B reference crops uniformly, and for each a target crop of another frame (any crop when the video has a single
    frame). Crops of one frame at several build-time rotations share its frame index."""
    count = tf.shape(frame_index)[0]
    reference = tf.random.stateless_uniform([batch], reference_seed, 0, count, dtype=tf.int32)
    other = tf.not_equal(frame_index[None, :], tf.gather(frame_index, reference)[:, None])       # (B, T)
    other = tf.logical_or(other, tf.logical_not(tf.reduce_any(other, axis=1, keepdims=True)))
    logits = tf.where(other, 0.0, float("-inf"))
    target = tf.random.stateless_categorical(logits, 1, target_seed, dtype=tf.int32)[:, 0]
    return reference, target

"""The input pipeline on a small synthetic BIGO-layout folder (bigo106, tiers and shared identities)."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import data, geometry, keypoints, synthetic
from bigo_facegen.config import TIER_SETS, DataConfig

SIZE, BATCH = 48, 4


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(folder, num_videos=12, frames_per_video=6, frame_size=(96, 96), seed=3)
    return folder


@pytest.fixture(scope="session")
def base_cfg(synthetic_dir, tmp_path_factory) -> DataConfig:
    cfg = DataConfig(dataset=str(synthetic_dir), data_dir=str(tmp_path_factory.mktemp("tfds")), tier="all",
                     image_size=SIZE, batch_per_replica=BATCH, rotation_degrees=0.0, scale_range=0.0,
                     keypoint_style="dots", dot_radius=1.0, seed=7)
    data.dataset_builder(cfg)  # prepares it once for the whole run
    return cfg


@pytest.fixture(scope="session")
def stored(base_cfg):
    """Every video's crops, keypoints and flags as stored, by video id, plus the per-video metadata."""
    builder = data.dataset_builder(base_cfg)
    examples = {}
    for split in builder.info.splits:
        for ex in builder.as_dataset(split=split):
            examples[ex["video_id"].numpy().decode()] = {key: ex[key].numpy() for key in
                                                         ("image", "keypoints", "flags", "frame_index")}
    return examples, builder.info.metadata


def _take(cfg, count, **kwargs):
    return [{k: v.numpy() for k, v in batch.items()} for batch in data.make_dataset(cfg, **kwargs).take(count)]


def test_batches_are_frame_pairs_of_one_video(base_cfg, stored):
    examples, meta = stored
    crop = meta["crop_size"]
    for batch in _take(base_cfg, 6, include_ids=True):
        video_ids = {v.decode() for v in batch["video_id"]}
        assert len(video_ids) == 1
        ex = examples[video_ids.pop()]
        for role in ("reference", "target"):
            rows = [int(np.flatnonzero(ex["frame_index"] == i)[0]) for i in batch[f"{role}_frame_index"]]
            expected = tf.image.resize(ex["image"][rows].astype(np.float32), [SIZE, SIZE], antialias=True)
            np.testing.assert_allclose(batch[role], np.clip(expected / 127.5 - 1, -1, 1), atol=1e-4)
            np.testing.assert_allclose(batch[f"{role}_points"], (ex["keypoints"][rows] + 0.5) * SIZE / crop - 0.5,
                                       atol=1e-4)
            np.testing.assert_array_equal(batch[f"{role}_flags"], ex["flags"][rows])
        assert (batch["reference_frame_index"] != batch["target_frame_index"]).all()


def test_shapes_ranges_and_maps(base_cfg, stored):
    cfg = dataclasses.replace(base_cfg, rotation_degrees=20.0, scale_range=0.15, keypoint_style="heatmap")
    num_points = keypoints.get_layout(stored[1]["layout"]).num_points
    spec = data.make_dataset(cfg).element_spec
    assert set(spec) == {f"{role}{key}" for role in ("reference", "target")
                         for key in ("", "_map", "_points", "_flags")}
    for batch in _take(cfg, 3):
        for role in ("reference", "target"):
            assert batch[role].shape == (BATCH, SIZE, SIZE, 3) and batch[role].dtype == np.float32
            assert batch[role].min() >= -1 and batch[role].max() <= 1 and batch[role].std() > 0.05
            assert batch[f"{role}_points"].shape == (BATCH, num_points, 2)
            assert batch[f"{role}_flags"].shape == (BATCH, num_points) and batch[f"{role}_flags"].dtype == np.int32
            assert set(np.unique(batch[f"{role}_flags"])) <= {0, 1, 2}
            # The map is drawn from this role's own (augmented) points.
            for points, flags, drawn in zip(batch[f"{role}_points"], batch[f"{role}_flags"], batch[f"{role}_map"]):
                np.testing.assert_allclose(drawn, keypoints.draw_map(points, flags, SIZE, "heatmap", 1.0), atol=1e-4)
        assert not np.allclose(batch["reference_map"], batch["target_map"])


def test_maps_have_dots_where_the_points_are(base_cfg):
    batch = _take(base_cfg, 1)[0]
    points, flags, drawn = batch["target_points"], batch["target_flags"], batch["target_map"]
    centres = np.round(points).astype(int)
    on_crop = (centres >= 0).all(-1) & (centres < SIZE).all(-1)
    b, n = np.nonzero((flags == 2) & on_crop)
    assert len(b) > BATCH * 50
    assert (drawn[b, centres[b, n, 1], centres[b, n, 0]] > 0.5).all()   # a white dot on every visible point
    near = np.zeros(drawn.shape[:3], bool)
    for i, j in zip(*np.nonzero((flags > 0) & on_crop)):
        x, y = centres[i, j]
        near[i, max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = True
    lit = (drawn > -1).any(-1)
    assert lit.any() and not (lit & ~near).any()                          # and nothing away from the points


def test_augmentation_moves_face_and_keypoints_alike(base_cfg):
    plain = _take(base_cfg, 2)
    augmented = _take(dataclasses.replace(base_cfg, rotation_degrees=25.0, scale_range=0.2), 2)
    centre = (SIZE - 1) / 2
    for before, after in zip(plain, augmented):
        for role in ("reference", "target"):
            # Per crop, one similarity about the crop centre maps the plain keypoints onto the augmented ones ...
            src = before[f"{role}_points"] - centre
            dst = after[f"{role}_points"] - centre
            zs, zd = src[..., 0] + 1j * src[..., 1], dst[..., 0] + 1j * dst[..., 1]
            z = (np.conj(zs) * zd).sum(-1) / (np.abs(zs) ** 2).sum(-1)
            np.testing.assert_allclose(z[:, None] * zs, zd, atol=1e-3)
            degrees, scales = -np.degrees(np.angle(z)), np.abs(z)
            assert (np.abs(degrees) <= 25.0 + 1e-3).all() and ((scales > 0.8 - 1e-4) & (scales < 1.2 + 1e-4)).all()
            assert np.abs(degrees).max() > 1.0
            # ... and the same transform of the plain face gives the augmented face.
            expected = geometry.affine_tf((before[role] + 1) * 127.5, before[f"{role}_points"],
                                          degrees.astype(np.float32), scales.astype(np.float32))[0]
            assert np.abs(np.clip(expected.numpy() / 127.5 - 1, -1, 1) - after[role]).mean() < 0.01


def test_same_seed_same_batches_other_seed_other_batches(base_cfg):
    cfg = dataclasses.replace(base_cfg, rotation_degrees=15.0, scale_range=0.1)
    first, second = _take(cfg, 4), _take(cfg, 4)
    other = _take(dataclasses.replace(cfg, seed=cfg.seed + 1), 4)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["reference"], c["reference"]) for a, c in zip(first, other))


def test_tier_selection(base_cfg, stored):
    videos = stored[1]["videos"]
    for tier, allowed in TIER_SETS.items():
        cfg = dataclasses.replace(base_cfg, tier=tier)
        chosen = data.selected_videos(cfg)
        assert chosen and {videos[v]["tier"] for v in chosen} <= set(allowed)
        seen = {batch["video_id"][0].decode() for batch in _take(cfg, 12, include_ids=True)}
        assert seen <= set(chosen)
    assert {videos[v]["tier"] for v in data.selected_videos(dataclasses.replace(base_cfg, tier="all"))} == {
        "easy", "medium", "hard"}


def test_person_disjoint_split(base_cfg, stored):
    videos = stored[1]["videos"]
    train = data.selected_videos(base_cfg)
    test = data.selected_videos(dataclasses.replace(base_cfg, split="test"))
    assert train and test and sorted(train + test) == sorted(videos)
    assert not {videos[v]["identity"] for v in train} & {videos[v]["identity"] for v in test}
    assert data.selected_videos(dataclasses.replace(base_cfg, split="all")) == sorted(train + test)
    seen = {b["video_id"][0].decode() for b in _take(dataclasses.replace(base_cfg, split="test"), 8,
                                                          include_ids=True)}
    assert seen <= set(test)


def test_input_pipelines_read_disjoint_shards(base_cfg):
    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        shards.append({b["video_id"][0].decode() for b in _take(base_cfg, 16, input_context=context,
                                                                 include_ids=True)})
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] <= set(data.selected_videos(base_cfg))


def test_distribute_datasets_from_function(base_cfg):
    strategy = tf.distribute.get_strategy()
    dist = strategy.distribute_datasets_from_function(lambda ctx: data.make_dataset(base_cfg, ctx))
    batch = next(iter(dist))
    assert batch["reference"].shape == (BATCH, SIZE, SIZE, 3)


def test_layout_and_errors(base_cfg, tmp_path):
    assert data.dataset_layout(base_cfg) == "bigo106"
    assert data.dataset_info(base_cfg).metadata["num_keypoints"] == 106
    with pytest.raises(ValueError, match="annotations.json"):
        data.dataset_builder(dataclasses.replace(base_cfg, dataset=str(tmp_path)))
    with pytest.raises(ValueError, match="unknown split"):
        data.selected_videos(dataclasses.replace(base_cfg, split="validation"))


def test_a_second_process_waits_for_the_one_preparing_the_data_set(synthetic_dir, tmp_path):
    """Two runs started together on a fresh data_dir: while one prepares the data set, the other, asked for it,
    prepares nothing and waits; once the first is done, it reads the data set the first prepared (without the lock
    both would build it and one fail at TFDS's final rename; with a builder made before the wait, the second took
    the data set for absent: a named one's info had no `layout` (KeyError), a folder's no record of its source, so
    it was built again)."""
    import subprocess
    import sys
    import time

    import tensorflow_datasets as tfds

    from tfds_bigo.bigo_face import folder_config

    data_dir = tmp_path / "tfds"
    builder = tfds.builder(data.BUILDER_NAME, config=folder_config(synthetic_dir), data_dir=str(data_dir))
    script = ("import sys; from bigo_facegen import data; from bigo_facegen.config import DataConfig; "
              "print('asking', flush=True); "
              "cfg = DataConfig(dataset=sys.argv[1], data_dir=sys.argv[2], tier='all', split='all'); "
              "print(data.dataset_layout(cfg), len(data.selected_videos(cfg)))")
    with data.preparation_lock(builder):
        waiting = subprocess.Popen([sys.executable, "-c", script, str(synthetic_dir), str(data_dir)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert waiting.stdout.readline() == "asking\n"
        time.sleep(3)  # ample for the other to look at the data set or start writing it, were it not waiting
        assert waiting.poll() is None and not data_dir.exists()
        # This process is the first run: it prepares the data set while the other waits.
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(synthetic_dir)))
        prepared = {path: path.stat().st_mtime_ns for path in data_dir.rglob("*")}
    stdout, stderr = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, stderr[-3000:]
    assert stdout.split()[-2:] == ["bigo106", "12"]
    assert "rebuilding" not in stderr and {path: path.stat().st_mtime_ns for path in data_dir.rglob("*")} == prepared


def test_optical_flow_targets_move_the_reference_onto_the_target(base_cfg):
    import cv2

    cfg = dataclasses.replace(base_cfg, rotation_degrees=15.0, scale_range=0.1)
    for batch in _take(cfg, 2, extras=frozenset({"optical_flow"})):
        flow, trusted = batch["target_flow"], batch["target_flow_valid"][..., 0] > 0
        assert flow.shape == (BATCH, SIZE, SIZE, 2) and flow.dtype == np.float32
        for reference, target, source, ok in zip(batch["reference"], batch["target"], flow, trusted):
            moved = cv2.remap(reference, source[..., 0], source[..., 1], cv2.INTER_LINEAR)
            assert np.abs(moved - target)[ok].mean() < np.abs(reference - target)[ok].mean()
        # Corners a 15-degree turn fills from outside the crop are not trusted as often as the middle.
        assert trusted[:, :4, :4].mean() < trusted[:, 12:-12, 12:-12].mean()
    assert not {"target_flow", "target_flow_valid"} & set(_take(base_cfg, 1)[0])
    with pytest.raises(ValueError, match=r"^data.make_dataset: no extra \['depth'\]; it gives \['optical_flow'\]$"):
        data.make_dataset(base_cfg, extras=frozenset({"optical_flow", "depth"}))

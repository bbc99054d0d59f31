"""The bigo_face builder on real footage: a few clips of ../shared/data/real_faces/dev, cut to a few frames.

The DatasetBuilderTestCase on the committed dummy data lives beside the builder
(tfds_bigo/bigo_face/bigo_face_dataset_builder_test.py) and is collected from there.
"""
import csv
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from bigo_facegen import annotations, bigo_folder, data, geometry, video
from bigo_facegen.bigo_folder import TIERS
from bigo_facegen.config import DataConfig
from bigo_facegen.data import dataset_builder
from bigo_facegen.keypoints import IBUG68
from tests.real_clips import cut_folder
from tfds_bigo.bigo_face import BigoFaceConfig, folder_config

REPO = Path(__file__).resolve().parents[1]
TFDS = Path(sys.executable).with_name("tfds")   # the command line of the TFDS in this environment
CLIPS = ("dpe_d", "lp_d0", "lp_d12")   # lp_d0 and lp_d12 are one person in MANIFEST.tsv
FRAMES = 5


@pytest.fixture(scope="session")
def clips_dir(real_faces_dir, tmp_path_factory) -> Path:
    return cut_folder(real_faces_dir, tmp_path_factory.mktemp("real_clips"), CLIPS, FRAMES)


@pytest.fixture(scope="session")
def manifest_people(real_faces_dir) -> dict:
    with (real_faces_dir / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        return {row["clip"]: row["person"] for row in csv.DictReader(f, delimiter="\t")}


def _tfds_build(manual_dir: Path, data_dir: Path, *options: str, env=None) -> subprocess.CompletedProcess:
    """`tfds build` of the `folder` config, as a user would run it, with more command-line `options`; its log and
    errors together in `stdout` (the command line logs through tqdm, to stdout)."""
    return subprocess.run([str(TFDS), "build", "bigo_face", "--config=folder", f"--manual_dir={manual_dir}",
                           "--imports=tfds_bigo", f"--data_dir={data_dir}", *options],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, env=env)


@pytest.fixture(scope="session")
def cli_data_dir(clips_dir, tmp_path_factory) -> Path:
    """The `folder` config built by the `tfds build` command line from `clips_dir`."""
    data_dir = tmp_path_factory.mktemp("tfds_cli")
    done = _tfds_build(clips_dir, data_dir)
    assert done.returncode == 0, done.stdout[-3000:]
    return data_dir


def _examples(data_dir, name="bigo_face/folder"):
    splits = tfds.builder(name, data_dir=data_dir).info.splits
    return {ex["video_id"].decode(): ex for split in splits
            for ex in tfds.as_numpy(tfds.load(name, split=split, data_dir=data_dir))}


def test_cli_build_then_tfds_load(cli_data_dir, manifest_people):
    builder = tfds.builder("bigo_face/folder", data_dir=cli_data_dir)
    assert builder.info.metadata["layout"] == "ibug68"
    assert builder.info.metadata["crop_size"] == 256
    examples = _examples(cli_data_dir)
    assert sorted(examples) == sorted(CLIPS)
    for clip, ex in examples.items():
        assert ex["identity"].decode() == manifest_people[clip]
        assert ex["image"].shape == (FRAMES, 256, 256, 3) and ex["image"].dtype == np.uint8
        assert ex["keypoints"].shape == (FRAMES, IBUG68.num_points, 2)
        assert (ex["flags"] == 2).all()
        np.testing.assert_array_equal(ex["frame_index"], np.arange(1, FRAMES + 1))
        np.testing.assert_array_equal(ex["rotation"], 0.0)
        # The annotation boxes hold the whole face: every keypoint lands well inside its crop.
        assert ex["keypoints"].min() > 0 and ex["keypoints"].max() < 255
    # Three videos without tiers: one per tier by head-pose spread.
    assert sorted(ex["tier"].decode() for ex in examples.values()) == sorted(TIERS)
    assert {split: builder.info.splits[split].num_examples for split in TIERS} == {t: 1 for t in TIERS}


def test_beam_build_stores_the_examples_of_the_plain_build(clips_dir, cli_data_dir, tmp_path, offline):
    # Without the network: Beam's DirectRunner, as named here, would first download its Prism runner.
    done = _tfds_build(clips_dir, tmp_path / "data", "--beam_pipeline_options=runner=DirectRunner,"
                       "direct_num_workers=2,direct_running_mode=multi_processing", env=offline.env)
    assert done.returncode == 0, done.stdout[-3000:]
    offline.check()
    assert "using BeamWriter" in done.stdout     # TFDS wrote the splits from Beam's collections
    plain, beam = (tfds.builder("bigo_face/folder", data_dir=data_dir)
                   for data_dir in (cli_data_dir, tmp_path / "data"))
    assert beam.info.metadata == plain.info.metadata
    assert sorted(beam.info.splits) == sorted(plain.info.splits) == sorted(TIERS)
    for split in TIERS:
        plain_examples = list(tfds.as_numpy(plain.as_dataset(split=split)))
        beam_examples = list(tfds.as_numpy(beam.as_dataset(split=split)))
        assert len(beam_examples) == len(plain_examples) == 1
        for beam_example, plain_example in zip(beam_examples, plain_examples):
            assert sorted(beam_example) == sorted(plain_example)
            for feature, value in plain_example.items():
                np.testing.assert_array_equal(beam_example[feature], value, err_msg=f"{split}: {feature}")


def test_crops_and_keypoints_match_the_source_frames(cli_data_dir, clips_dir):
    examples = _examples(cli_data_dir)
    for entry in annotations.load(clips_dir / "annotations.json"):
        ex = examples[bigo_folder.video_id(entry)]
        for i, (frame, face) in enumerate(zip(video.read_frames(clips_dir / entry.video_path), entry.frames)):
            expected, matrix = geometry.crop(frame, face.bbox, 256)
            np.testing.assert_allclose(ex["keypoints"][i], geometry.apply_affine(face.points, matrix), atol=1e-3)
            # JPEG at quality 95: small mean error against the crop it encoded.
            assert np.abs(ex["image"][i].astype(np.float32) - expected).mean() < 3.0


def test_build_time_rotation_turns_face_and_keypoints_alike(clips_dir, cli_data_dir, tmp_path):
    config = BigoFaceConfig(name="rotated", source="folder", crop_size=64, rotations=(25.0,))
    builder = tfds.builder("bigo_face", config=config, data_dir=tmp_path)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(clips_dir)))
    assert builder.info.metadata["rotations"] == [25.0]
    plain = _examples(cli_data_dir)
    for ex in tfds.as_numpy(builder.as_dataset(split="+".join(TIERS))):
        np.testing.assert_array_equal(ex["frame_index"], np.repeat(np.arange(1, FRAMES + 1), 2))
        np.testing.assert_array_equal(ex["rotation"], np.tile([0.0, 25.0], FRAMES))
        upright = (plain[ex["video_id"].decode()]["keypoints"] + 0.5) * (64 / 256) - 0.5
        turn = geometry.rotation_matrix((31.5, 31.5), 25.0)
        np.testing.assert_allclose(ex["keypoints"][0::2], upright, atol=1e-3)
        np.testing.assert_allclose(ex["keypoints"][1::2], geometry.apply_affine(upright, turn), atol=1e-3)
        # The face turned too: the rotated crop is close to the upright crop turned by the same matrix.
        turned = np.stack([geometry.warp(image, turn, 64) for image in ex["image"][0::2]]).astype(np.float32)
        inner = (slice(None), slice(12, 52), slice(12, 52))
        rotated_error = np.abs(turned[inner] - ex["image"][1::2][inner].astype(np.float32)).mean()
        upright_error = np.abs(ex["image"][0::2][inner].astype(np.float32) - ex["image"][1::2][inner]).mean()
        assert rotated_error < upright_error / 2


def test_library_route_prepares_one_config_per_folder(clips_dir, tmp_path):
    other = cut_folder(clips_dir, tmp_path / "other", CLIPS[:1], 3)
    entries = annotations.load(other / "annotations.json")
    entries[0].identity = "someone"
    annotations.dump(entries, other / "annotations.json")
    first = dataset_builder(DataConfig(dataset=str(clips_dir), data_dir=str(tmp_path / "data")))
    second = dataset_builder(DataConfig(dataset=str(other), data_dir=str(tmp_path / "data")))
    assert first.is_prepared() and second.is_prepared()
    assert first.builder_config.name == folder_config(clips_dir).name
    assert first.builder_config.name != second.builder_config.name
    assert first.builder_config.name.startswith("folder_")
    assert first.info.splits.total_num_examples == 3 and second.info.splits.total_num_examples == 1
    # A video's `identity` key wins over MANIFEST.tsv; a lone video without a tier is `easy`.
    assert second.info.metadata["videos"] == {"dpe_d": {"identity": "someone", "tier": "easy", "frames": 3}}


def test_cli_folder_config_serves_the_folder_given(clips_dir, cli_data_dir, tmp_path):
    # A data dir where `--config=folder` was built from clips_dir; then another folder is given.
    data_dir = tmp_path / "tfds"
    shutil.copytree(cli_data_dir, data_dir)
    other = cut_folder(clips_dir, tmp_path / "other", CLIPS[:1], 3).resolve()
    path = other / "videos" / "dpe_d.mp4"
    moved = tmp_path / "dpe_d.mp4"
    os.replace(path, moved)
    path.symlink_to(moved)
    broken = _tfds_build(other, data_dir)
    assert broken.returncode != 0
    assert "Reusing dataset" not in broken.stdout
    assert (f"{path}: leads out of the data directory {other} through a symbolic link (to {moved.resolve()})"
            in broken.stdout)
    assert sorted(_examples(data_dir)) == sorted(CLIPS)        # refused before clips_dir's data set was touched
    os.replace(moved, path)
    done = _tfds_build(other, data_dir)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"it was built from {clips_dir.resolve()}, not {other}; rebuilding" in done.stdout
    examples = _examples(data_dir)
    assert sorted(examples) == ["dpe_d"] and len(examples["dpe_d"]["image"]) == 3
    assert tfds.builder("bigo_face/folder", data_dir=data_dir).info.metadata["source"]["folder"] == str(other)


def test_library_route_rebuilds_an_edited_folder(clips_dir, tmp_path, caplog):
    folder = cut_folder(clips_dir, tmp_path / "edited", CLIPS, 3)
    cfg = DataConfig(dataset=str(folder), data_dir=str(tmp_path / "data"))
    caplog.set_level(logging.WARNING)
    data_dir = Path(dataset_builder(cfg).data_dir)
    first = _stored_examples(cfg)
    assert sorted(first) == sorted(CLIPS)

    def rebuilds():
        return [r.getMessage() for r in caplog.records if r.getMessage().endswith(f"rebuilding {data_dir}")]

    # Unchanged, the folder's data set is reused as it is.
    files = {p: p.stat().st_mtime_ns for p in data_dir.iterdir()}
    assert sorted(data.dataset_info(cfg).metadata["videos"]) == sorted(CLIPS)
    assert {p: p.stat().st_mtime_ns for p in data_dir.iterdir()} == files and not rebuilds()
    # A video removed (its file and its annotations).
    entries = annotations.load(folder / "annotations.json")
    annotations.dump([e for e in entries if e.video != "lp_d12.mp4"], folder / "annotations.json")
    (folder / "videos" / "lp_d12.mp4").unlink()
    assert sorted(data.dataset_info(cfg).metadata["videos"]) == ["dpe_d", "lp_d0"]
    assert rebuilds() == [f"bigo_face/{folder_config(folder).name}: {folder.resolve()} changed since it was built; "
                          f"rebuilding {data_dir}"]
    # What a training run on the test split (lp_d0's person's) now reads.
    test_cfg = dataclasses.replace(cfg, tier="all", split="test", image_size=32, batch_per_replica=2)
    assert data.selected_videos(test_cfg) == ["lp_d0"]
    batches = tfds.as_numpy(data.make_dataset(test_cfg, include_ids=True).take(3))
    assert {video_id.decode() for batch in batches for video_id in batch["video_id"]} == {"lp_d0"}
    # A video's file replaced, its annotations kept.
    frames = list(video.read_frames(folder / "videos" / "lp_d0.mp4"))
    video.write_video(folder / "videos" / "dpe_d.mp4", frames, fps=25)
    assert not np.array_equal(_stored_examples(cfg)["dpe_d"]["image"], first["dpe_d"]["image"])
    # A person renamed in MANIFEST.tsv.
    manifest = (folder / "MANIFEST.tsv").read_text(encoding="utf-8")
    person = data.dataset_info(cfg).metadata["videos"]["lp_d0"]["identity"]
    (folder / "MANIFEST.tsv").write_text(manifest.replace(f"\t{person}\t", "\tsomeone_else\t"), encoding="utf-8")
    assert data.dataset_info(cfg).metadata["videos"]["lp_d0"]["identity"] == "someone_else"
    assert len(rebuilds()) == 3


def _stored_examples(cfg: DataConfig) -> dict:
    builder = dataset_builder(cfg)
    return {ex["video_id"].decode(): ex
            for ex in tfds.as_numpy(builder.as_dataset(split="+".join(builder.info.splits)))}


def test_symbolic_link_out_of_the_folder_is_refused_before_anything_is_written(clips_dir, tmp_path):
    folder = cut_folder(clips_dir, tmp_path / "linked", CLIPS[:2], 3).resolve()
    prepared = DataConfig(dataset=str(folder), data_dir=str(tmp_path / "prepared"))
    data_dir = Path(dataset_builder(prepared).data_dir)
    files = {p: p.stat().st_mtime_ns for p in data_dir.iterdir()}
    fresh = DataConfig(dataset=str(folder), data_dir=str(tmp_path / "fresh"))
    outside = (clips_dir / "videos").resolve()
    # The video file links out of the folder (to a copy of the same clip: only the link is wrong) ...
    path = folder / "videos" / "lp_d0.mp4"
    shutil.copyfile(path, tmp_path / "lp_d0.mp4")
    path.unlink()
    path.symlink_to(tmp_path / "lp_d0.mp4")
    for cfg in (prepared, fresh):
        with pytest.raises(annotations.AnnotationError) as info:
            dataset_builder(cfg)
        assert str(info.value) == (f"{path}: leads out of the data directory {folder} through a symbolic link (to "
                                   f"{(tmp_path / 'lp_d0.mp4').resolve()})")
    # ... or the videos folder does.
    shutil.rmtree(folder / "videos")
    (folder / "videos").symlink_to(outside, target_is_directory=True)
    for cfg in (prepared, fresh):
        with pytest.raises(annotations.AnnotationError) as info:
            dataset_builder(cfg)
        assert str(info.value) == (f"{folder / 'videos' / 'dpe_d.mp4'}: leads out of the data directory {folder} "
                                   f"through a symbolic link (to {outside / 'dpe_d.mp4'})")
    # Nothing written: the prepared data set is as it was, and no other came to be.
    assert {p: p.stat().st_mtime_ns for p in data_dir.iterdir()} == files
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("beam_runner", [None, "DirectRunner"])
def test_bad_video_fails_naming_the_file(clips_dir, tmp_path, beam_runner):
    broken = cut_folder(clips_dir, tmp_path / "broken", CLIPS[:2], 3)
    (broken / "videos" / "lp_d0.mp4").write_bytes(b"not a video at all")
    builder = tfds.builder("bigo_face", config=folder_config(broken), data_dir=tmp_path / "data")
    with pytest.raises(video.VideoError, match="lp_d0.mp4"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(broken),
                                                                                  beam_runner=beam_runner))


def test_annotation_past_the_video_fails_naming_the_file(clips_dir, tmp_path):
    cut = cut_folder(clips_dir, tmp_path / "cut", CLIPS[:1], 3)
    entry = annotations.load(cut / "annotations.json")[0]
    video.write_video(cut / entry.video_path, list(video.read_frames(cut / entry.video_path))[:2], fps=25)
    builder = tfds.builder("bigo_face", config=folder_config(cut), data_dir=tmp_path / "data")
    with pytest.raises(annotations.AnnotationError, match="dpe_d.mp4"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(cut)))

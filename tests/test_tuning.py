"""One-shot reference tuning on a real reference face: it fits the reference, never changes the loaded model, and
works from `experiments.generate` and the evaluation protocol."""
import dataclasses
import itertools
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import annotations, config, export, generation, methods, tuning, video
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.models import registry

SIZE = 32
CLIP = "dpe_d"


def _tiny(generator="stargan"):
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": "ibug68",
                                                 "model.conv_dim": 8, "model.res_blocks": 1,
                                                 "model.generator.type": generator, "data.batch_per_replica": 4})
    return registry.build_generator(cfg.model, SIZE, 68), cfg


@pytest.fixture(scope="module")
def clip(real_faces_dir):
    entry = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}[f"{CLIP}.mp4"]
    frames = np.stack(list(itertools.islice(video.read_frames(real_faces_dir / entry.video_path), 8)))
    return entry, frames


@pytest.fixture(scope="module")
def model():
    return FaceModel.from_generator(*_tiny())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A training model_dir as `training.Trainer` leaves it: config.json and a checkpoint holding the generator."""
    generator, cfg = _tiny()
    path = tmp_path_factory.mktemp("run")
    (path / "config.json").write_text(cfg.to_json())
    tf.train.Checkpoint(generator=generator).save(str(path / "ckpt"))
    return path


def _reference(model, clip):
    entry, frames = clip
    return generation.Reference.from_frame(frames[0], entry.frames[0], model.image_size)


# An untrained warp_refine is already the warp, which nearly reproduces a moved copy: less is left to gain, at the
# preset's own learning rate (a larger one lets its untrained painting in and the held-out copies get worse).
@pytest.mark.parametrize("generator, learning_rate, kept", [("stargan", 2e-3, 0.8), ("warp_refine", 5e-4, 0.95)])
def test_tuning_lowers_the_l1_on_augmented_copies_of_the_reference(generator, learning_rate, kept, clip):
    keras.utils.set_random_seed(0)
    face_model = FaceModel.from_generator(*_tiny(generator))
    reference = _reference(face_model, clip)
    settings = tuning.TuneSettings(steps=40, learning_rate=learning_rate, batch_size=4)
    # Held-out copies: other draws than the tuning's own.
    images, moved = tuning.augment(reference.crop, reference.points, 8, settings, np.random.default_rng(123))
    assert not np.array_equal(images[0], reference.crop)
    tuner = face_model.tuner
    before = tuner.l1(reference.crop, reference.points, reference.flags, images, moved)
    own = [w.copy() for w in face_model.generator.get_weights()]
    result = tuner.tune(reference.crop, reference.points, reference.flags, settings)
    for w, o in zip(face_model.generator.get_weights(), own):
        np.testing.assert_array_equal(w, o)
    with tuning.weights_swapped(face_model.generator, result.weights):
        after = tuner.l1(reference.crop, reference.points, reference.flags, images, moved)
    assert len(result.losses) == 40 and result.seconds > 0
    assert after < kept * before, (before, after)
    if generator == "warp_refine":
        assert before < 0.05
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])


def test_augmentation_moves_face_and_keypoints_alike():
    # A bright dot drawn at one keypoint must land where that keypoint is moved to.
    crop = np.zeros((64, 64, 3), np.uint8)
    points = np.array([[20.0, 30.0], [40.0, 25.0]], np.float32)
    crop[30, 20] = 255
    images, moved = tuning.augment(crop, points, 5, tuning.TuneSettings(steps=1), np.random.default_rng(0))
    for image, point in zip(images, moved):
        y, x = np.unravel_index(image[..., 0].argmax(), image.shape[:2])
        assert np.hypot(x - point[0, 0], y - point[0, 1]) <= 1.0
    assert np.abs(moved - points).max() > 1.0  # they did move


def test_a_tuned_sequence_leaves_the_loaded_model_as_it_was(model, clip):
    entry, frames = clip
    own = [w.copy() for w in model.generator.get_weights()]
    targets = entry.frames[1:5]
    untuned = GenerationSettings(copy_threshold=0.0, batch_size=2)
    plain = [r.face for r in generation.VideoGenerator(model, frames[0], entry.frames[0],
                                                       untuned).generate_frames(targets)]
    tuned_maker = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                            dataclasses.replace(untuned, tune_steps=5, tune_lr=1e-3))
    # An untuned maker interleaved with the tuned one sees the loaded weights.
    interleaved = generation.VideoGenerator(model, frames[0], entry.frames[0], untuned)
    tuned, again = [], []
    for a, b in zip(tuned_maker.generate_frames(targets), interleaved.generate_frames(targets)):
        tuned.append(a.face)
        again.append(b.face)
    for w, o in zip(model.generator.get_weights(), own):
        np.testing.assert_array_equal(w, o)
    assert all(np.array_equal(p, g) for p, g in zip(plain, again))
    assert not any(np.array_equal(p, t) for p, t in zip(plain, tuned))


def test_exports_cannot_be_tuned(clip, tmp_path):
    entry, frames = clip
    generator, cfg = _tiny()
    exported = FaceModel.load(export.export(generator, cfg, tmp_path / "export"))
    with pytest.raises(GenerationError, match="is an export: a SavedModel cannot be fine-tuned"):
        generation.VideoGenerator(exported, frames[0], entry.frames[0], GenerationSettings(tune_steps=3))
    with pytest.raises(GenerationError, match="is an export"):
        methods.ModelMethod(exported, GenerationSettings(tune_steps=3))


def test_evaluation_method_tunes_once_per_reference(model, clip, monkeypatch):
    entry, frames = clip
    method = methods.ModelMethod(model, GenerationSettings(fusion="warp", batch_size=2, tune_steps=3))
    first = [r.frame for r in method.frames(frames[0], entry.frames[0], entry.frames[1:4])]
    tuner_calls = []
    tune = model.tuner.tune
    monkeypatch.setattr(model.tuner, "tune", lambda *args: tuner_calls.append(args) or tune(*args))
    again = [r.frame for r in method.frames(frames[0], entry.frames[0], entry.frames[1:4])]
    assert tuner_calls == []  # the contact sheet's second call reuses the tuned maker
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == frames[0].shape


def test_generate_entry_point_with_tuning(model_dir, real_faces_dir, tmp_path):
    out = tmp_path / "tuned.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.generate", f"--model={model_dir}",
         f"--annotations={real_faces_dir / 'annotations.json'}", f"--video={CLIP}", f"--output={out}",
         "--max_frames=4", "--batch=2", "--copy_threshold=0", "--fusion=warp", "--tune_steps=3", "--tune_lr=1e-3"],
        capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 frames (4 generated" in done.stdout and "one-shot tuning took" in done.stdout
    assert video.probe(out).frame_count == 4


def test_the_runs_perceptual_network_joins_the_loss(clip):
    import keras

    from bigo_facegen.models.perceptual import PerceptualNetwork

    generator, cfg = _tiny()
    reference = _reference(FaceModel.from_generator(generator, cfg), clip)
    settings = tuning.TuneSettings(steps=2, batch_size=2)
    plain = tuning.ReferenceTuner(generator, cfg).tune(reference.crop, reference.points, reference.flags, settings)
    with_features = tuning.ReferenceTuner(generator, cfg)
    backbone = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3, strides=2)])
    with_features.perceptual = PerceptualNetwork(backbone, lambda pixels: pixels / 127.5 - 1.0)
    tuned = with_features.tune(reference.crop, reference.points, reference.flags, settings)
    # Same start, same draws: the first step's loss differs by the weighted perceptual term alone.
    assert tuned.losses[0] > plain.losses[0] + 1e-3

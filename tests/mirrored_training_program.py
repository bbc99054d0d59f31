"""The program of `test_training.test_mirrored_matches_one_device_and_keeps_replicas_identical`, in a process of its
own because the two logical CPU devices must be made before TensorFlow starts:

    python -m tests.mirrored_training_program REAL_FACES_DIR WORK_DIR

trains one device and MirroredStrategy on two alike (model dirs WORK_DIR/single and WORK_DIR/mirrored), steps both
from one state, and runs a float16 step with one replica overflowing; it prints what the test asserts as one JSON
line after `RESULT`. The test's docstring says why each comparison is made as it is.
"""
import json
import sys

import numpy as np
import tensorflow as tf

from bigo_facegen.distribution import configure_cpu_devices, dtype_policy
from bigo_facegen.train_step import TrainStep, build_networks, build_optimizers
from bigo_facegen.training import Trainer
from tests.test_training import copy_optimizer_state, copy_state, models_of, real_face_batch, tiny_config


def main(real_faces_dir: str, work_dir: str) -> dict:
    configure_cpu_devices(2)
    batch = real_face_batch(real_faces_dir, batch=4)
    halves = [{k: v[i * 2:(i + 1) * 2] for k, v in batch.items()} for i in range(2)]

    def halves_fn(cfg, ctx):
        assert ctx.num_replicas_in_sync == 2
        return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *x: np.stack(x), *halves)).repeat()

    common = {"model.detector_noise_std": 0.0, "train.steps": 3, "train.num_cpu_devices": 2}
    single = Trainer(tiny_config(**common, **{"data.batch_per_replica": 4}), f"{work_dir}/single",
                     dataset_fn=lambda cfg, ctx: tf.data.Dataset.from_tensors(batch).repeat())
    mirrored = Trainer(tiny_config(**common, **{"data.batch_per_replica": 2, "train.strategy": "mirrored"}),
                       f"{work_dir}/mirrored", dataset_fn=halves_fn)
    assert mirrored.strategy.num_replicas_in_sync == 2 and mirrored.global_batch_size == 4
    copy_state(single.networks, mirrored.networks)
    for trainer in (single, mirrored):
        for optimizer in vars(trainer.optimizers).values():
            optimizer.epsilon = 1.0  # read when the step is traced, at its first call
    single.train()
    mirrored.train()
    result = {"losses": [[json.loads(line) for line in open(f"{work_dir}/{name}/metrics.jsonl")]
                         for name in ("single", "mirrored")],
              "iterations": [[int(optimizer.iterations.numpy()), int(getattr(mirrored.optimizers, name).iterations
                                                                     .numpy())]
                             for name, optimizer in vars(single.optimizers).items()]}
    result.update(steps_from_one_state(single, mirrored, batch, halves_fn))
    result.update(replica_mismatches(mirrored))
    halves[1]["reference"] = np.full_like(halves[1]["reference"], np.inf)
    result.update(float16_with_one_replica_overflowing(mirrored.strategy, halves_fn))
    return result


def steps_from_one_state(single: Trainer, mirrored: Trainer, batch: dict, halves_fn) -> dict:
    """Two more steps, each from the one-device run's state copied into the mirrored run."""
    single_step = tf.function(lambda b: single.strategy.run(single.train_step, args=(b,)))
    mirrored_step = tf.function(lambda it: mirrored.strategy.run(mirrored.train_step, args=(next(it),)))
    iterator = iter(mirrored.strategy.distribute_datasets_from_function(lambda ctx: halves_fn(None, ctx)))
    result = {"updates": [], "moments": []}
    for _ in range(2):
        copy_state(single.networks, mirrored.networks)
        copy_optimizer_state(single.optimizers, mirrored.optimizers)
        initial = {name: [w.numpy() for w in model.weights] for name, model in models_of(single.networks).items()}
        single_step(batch)
        mirrored_step(iterator)
        # Per network, the largest difference of the two steps' weight changes, the largest change and the float32
        # spacing of the largest weight (the rounding of the weights themselves).
        updates = {}
        for name, model in models_of(single.networks).items():
            pairs = list(zip(initial[name], model.weights, models_of(mirrored.networks)[name].weights, strict=True))
            updates[name] = [max(float(np.abs(b.numpy() - a.numpy()).max()) for _, a, b in pairs),
                             max(float(np.abs(a.numpy() - w).max()) for w, a, _ in pairs),
                             max(float(np.spacing(np.abs(a.numpy()).max())) for _, a, _ in pairs)]
        result["updates"].append(updates)
        # Per optimizer, the first moments: running means of the gradients.
        moments = {}
        for name, optimizer in vars(single.optimizers).items():
            other = getattr(mirrored.optimizers, name)
            pairs = [(a.numpy(), b.numpy()) for a, b in zip(optimizer.variables, other.variables, strict=True)
                     if a.path.endswith("_momentum")]
            moments[name] = [max(float(np.abs(a - b).max()) for a, b in pairs),
                             max(float(np.abs(a).max()) for a, _ in pairs), len(pairs)]
        result["moments"].append(moments)
    return result


def replica_mismatches(mirrored: Trainer) -> dict:
    """How many mirrored variables have two copies, and which of them differ between the copies."""
    variables = [w for m in models_of(mirrored.networks).values() for w in m.weights]
    variables += [v for o in vars(mirrored.optimizers).values() for v in o.variables]
    result = {"checked": 0, "replica_mismatch": []}
    for variable in variables:
        copies = [c.numpy() for c in variable.value.values]
        result["checked"] += len(copies) == 2
        if not all(np.array_equal(copies[0], c) for c in copies[1:]):
            result["replica_mismatch"].append(variable.path)
    return result


def float16_with_one_replica_overflowing(strategy: tf.distribute.Strategy, halves_fn) -> dict:
    """float16 with loss scaling, one replica's input infinite: every replica skips the step (no NaN summed in)."""
    config = tiny_config()
    with dtype_policy("mixed_float16"), strategy.scope():
        networks = build_networks(config, 68)
        optimizers = build_optimizers(config.optimizer, networks, loss_scale=True)
    before = {id(w): w.numpy() for m in models_of(networks).values() for w in m.trainable_weights}
    step = TrainStep(networks, optimizers, config.loss, 4)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: halves_fn(None, ctx)))
    tf.function(lambda it: strategy.run(step, args=(next(it),)))(iterator)
    weights = [w for m in models_of(networks).values() for w in m.trainable_weights]
    first = lambda w: w.value.values[0].numpy()
    return {
        "fp16_scales": [float(c.numpy()) for o in vars(optimizers).values() for c in o.dynamic_scale.value.values],
        "fp16_bad": [w.path for w in weights if not all(
            np.isfinite(c.numpy()).all() and np.array_equal(c.numpy(), first(w)) for c in w.value.values)],
        # Critic kernels are rewritten by spectral normalisation in the forward pass; the others only by updates.
        "fp16_updated": [w.path for w in networks.generator.trainable_weights
                         + networks.keypoint_detector.trainable_weights
                         if not np.array_equal(w.numpy(), before[id(w)])],
    }


if __name__ == "__main__":
    print("RESULT" + json.dumps(main(*sys.argv[1:])))

"""Images/s of one full training iteration as the original (critic, identity critic, keypoint detector, generator).

    python -m benchmarks.train_step --size 128 --conv_dim 64 --batch 8 --noperceptual
    python -m benchmarks.train_step --size 64 --conv_dim 32 --batch 16 --perceptual --json
    python -m benchmarks.train_step --generator warp_refine --size 64 --conv_dim 16 --res_blocks 3
    python -m benchmarks.train_step --strategy mirrored --batch 8 --mixed_precision    # every local GPU, 8 per GPU

Synthetic inputs of the real shapes, the library's own `TrainStep` run by `--strategy` (`distribution.make_strategy`)
as the trainer runs it, `--batch` frames per replica; images/s count the frames of all replicas. With `--perceptual` a
ResNet50 trunk with random weights stands in for the pretrained one: the cost is the same, and the benchmark measures
cost, never quality. Reports the median of `--iters` timed iterations after warm-up.
"""
import dataclasses
import json
import statistics
import time

from absl import app, flags

from benchmarks.common import benchmark_config, define_config_override_flag, set_threads

flags.DEFINE_enum("generator", "stargan", ["stargan", "warp_refine"], "Generator architecture "
                  "(model.generator.type).")
flags.DEFINE_integer("size", 128, "Face crop side in pixels.")
flags.DEFINE_integer("conv_dim", 64, "Generator / keypoint detector base width.")
flags.DEFINE_integer("res_blocks", 6, "Residual blocks of the generator and detector trunks.")
flags.DEFINE_integer("batch", 8, "Frames per iteration and replica.")
define_config_override_flag()
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                  "Distribution strategy (`distribution.make_strategy`): mirrored runs on every local GPU.")
flags.DEFINE_integer("num_points", 106, "Keypoints per face (the generator input is their map either way).")
flags.DEFINE_bool("perceptual", False, "Include the ResNet50 perceptual network in the generator update.")
flags.DEFINE_bool("jit_compile", False, "Compile the step with XLA.")
flags.DEFINE_bool("mixed_precision", False, "mixed_bfloat16 on CPU, mixed_float16 on GPU.")
flags.DEFINE_integer("iters", 5, "Timed iterations.")
flags.DEFINE_integer("warmup", 2, "Untimed iterations first (tracing, XLA compilation, allocator warm-up).")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0 = TF's default: all cores).")
flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0 = TF's default: all cores).")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from bigo_facegen import config as config_lib
    from bigo_facegen.distribution import make_strategy, precision_policy
    from bigo_facegen.models.perceptual import PerceptualNetwork
    from bigo_facegen.models.registry import data_needs
    from bigo_facegen.train_step import TrainStep, build_networks, build_optimizers

    set_threads(FLAGS.threads, FLAGS.inter_op_threads)
    policy = precision_policy(FLAGS.mixed_precision)
    keras.mixed_precision.set_global_policy(policy)
    strategy = make_strategy(FLAGS.strategy)
    replicas = strategy.num_replicas_in_sync

    cfg = benchmark_config(config_lib.paper(), {
        "data.image_size": FLAGS.size, "data.batch_per_replica": FLAGS.batch, "model.conv_dim": FLAGS.conv_dim,
        "model.res_blocks": FLAGS.res_blocks, "model.perceptual": "none", "model.generator.type": FLAGS.generator})
    with strategy.scope():
        networks = build_networks(cfg, FLAGS.num_points)
        if FLAGS.perceptual:
            backbone = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                                   input_shape=(FLAGS.size, FLAGS.size, 3))
            networks.perceptual = PerceptualNetwork(backbone, keras.applications.resnet50.preprocess_input)
        optimizers = build_optimizers(cfg.optimizer, networks, loss_scale=policy == "mixed_float16")
    train_step = TrainStep(networks, optimizers, cfg.loss, FLAGS.batch * replicas)

    b, s, n = FLAGS.batch, FLAGS.size, FLAGS.num_points
    images = lambda: tf.random.uniform((b, s, s, 3), -1.0, 1.0)
    batch = {"reference": images(), "target": images(), "reference_map": images(), "target_map": images(),
             "reference_points": tf.random.uniform((b, n, 2), 0.0, s), "target_points": tf.random.uniform(
                 (b, n, 2), 0.0, s), "reference_flags": tf.fill((b, n), 2), "target_flags": tf.fill((b, n), 2)}
    if "optical_flow" in data_needs(cfg.model):  # what `data.make_dataset` then adds
        batch.update({"target_flow": tf.random.uniform((b, s, s, 2), 0.0, s),
                      "target_flow_valid": tf.ones((b, s, s, 1))})
    replica_batches = strategy.experimental_distribute_values_from_function(lambda context: batch)
    replica_step = tf.function(train_step, jit_compile=FLAGS.jit_compile)

    @tf.function
    def step(replica_batches):
        losses = strategy.run(replica_step, args=(replica_batches,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses["generator"], axis=None)

    def iteration():
        float(step(replica_batches))  # wait for the step to finish

    for _ in range(FLAGS.warmup):
        iteration()
    times = []
    for _ in range(FLAGS.iters):
        start = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result = {"framework": f"tensorflow {tf.__version__}", "generator": FLAGS.generator, "size": s,
              "conv_dim": FLAGS.conv_dim, "res_blocks": FLAGS.res_blocks, "batch": b, "perceptual": FLAGS.perceptual,
              "jit_compile": FLAGS.jit_compile, "policy": policy, "strategy": FLAGS.strategy, "replicas": replicas,
              "generator_section": dataclasses.asdict(cfg.model.generator.active),
              "train_iter_s": seconds, "train_img_per_s": b * replicas / seconds}
    if FLAGS.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:16s} {value:.3f}" if isinstance(value, float) else f"{key:16s} {value}")


if __name__ == "__main__":
    app.run(main)

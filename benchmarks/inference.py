"""Inference speed: the generator alone against the machine's own peak, and end-to-end video generation.

    python -m benchmarks.inference --size 128 --conv_dim 64 --res_blocks 6
    python -m benchmarks.inference --size 224 --json
    python -m benchmarks.inference --noend_to_end --threads 2
    python -m benchmarks.inference --generator warp_refine --size 64 --conv_dim 16 --res_blocks 3 --nopeak
    python -m benchmarks.inference --generator warp_refine --size 64 --conv_dim 16 --res_blocks 3 --xla --nopeak
    python -m benchmarks.inference --batches 1,8,64 --size 224 --noend_to_end --nopeak --json    # the GPU check

1. Generator images/s at each of `--batches` (`--generator`: stargan or warp_refine): the library's generator in a
   `tf.function`, float inputs already on the device, timed call by call (each until the device has finished) after
   warm-up (`--warmup` calls and `--warmup_s` seconds, at least); the median of `--iters` calls, like
   `../shared/bench/torch_reference.py`. At batches above 1 also with one reference for all the targets, as `generate`
   sends a video's (`warp_refine` encodes it once). Threads as `experiments.generate` sets them
   (`distribution.configure_cpu_threads`) unless `--inter_op_threads` says otherwise. With `--xla`, the serving graph
   under XLA as `generate --xla` runs it instead of the generator alone. The first call (tracing; with `--xla`
   compiling too) is reported apart.
2. For stargan, its analytic forward FLOPs (`generator_forward_flops`, the reference script's formula) and the GFLOP/s
   achieved at the largest batch, next to the practical peak of the same machine measured in the same run (`--peak`):
   the best of a large fp32 matmul and a large 3x3 convolution (TF's defaults: on recent NVIDIA GPUs that includes
   TF32, for the generator as well).
3. End-to-end frames/s of `generation.VideoGenerator.generate_video` at the `cpu` preset's model (64 px crops, random
   weights: speed does not depend on them) on a real clip of `../shared/data/real_faces/dev`: crop, generate (batched,
   every frame generated: copy threshold 0), colour transfer, fusion, mp4 encoding; `shift`, `segment` and `warp`
   fusion.

Prints a table, or with --json one JSON line.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

from absl import app, flags

from benchmarks.common import REPO, benchmark_config, define_config_override_flag, set_threads

REAL_FACES = REPO.parent / "shared" / "data" / "real_faces" / "dev"

flags.DEFINE_enum("generator", "stargan", ["stargan", "warp_refine"], "Generator architecture "
                  "(model.generator.type).")
flags.DEFINE_integer("size", 128, "Face crop side in pixels (generator benchmark).")
flags.DEFINE_integer("conv_dim", 64, "Generator base width.")
flags.DEFINE_integer("res_blocks", 6, "Residual blocks of the generator trunk.")
define_config_override_flag()
flags.DEFINE_list("batches", ["1", "8"], "Batch sizes of the generator measurement.")
flags.DEFINE_integer("iters", 10, "Timed calls per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 3, "Untimed calls first (tracing, allocator warm-up), at least.")
flags.DEFINE_float("warmup_s", 1.0, "... and untimed calls for at least this many seconds: TF's batch-1 calls reach "
                   "their steady speed only after about 30 (stargan, cpu preset: 7.1-7.5 ms each at calls 2-10, "
                   "3.8-4.0 ms from call 31; torch's original is steady from its second call).")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0 = TF's default: all cores).")
flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0 = the library's inference setting, "
                     "`distribution.configure_cpu_threads`: one on CPU-only hosts, TF's default with GPUs).")
flags.DEFINE_bool("peak", True, "Also measure the machine's peak GFLOP/s (stargan: the fraction of it reached).")
flags.DEFINE_bool("end_to_end", True, "Also time end-to-end video generation at the cpu preset.")
flags.DEFINE_string("clip", "dpe_d", "Real clip (of ../shared/data/real_faces/dev) for the end-to-end run.")
flags.DEFINE_integer("frames", 50, "Frames generated in the end-to-end run.")
flags.DEFINE_bool("xla", False, "Time the generator as `generate --xla` runs it, under XLA: the export's "
                  "`ServingModule.prepare` (input checks, `warp_refine`'s spline) and `.compiled` (the network under "
                  "XLA), uint8 crops and keypoint rows in, the keypoint map drawn in the graph; and the first call "
                  "(tracing and compiling) apart.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def generator_forward_flops(size: int, conv_dim: int, res_blocks: int) -> int:
    """Multiply-adds x2 of the generator's convolutions for one image, as `generator_forward_flops` of
    ../shared/bench/torch_reference.py (a stride-2, 4x4 transposed conv costs 4 x C_in x C_out multiply-adds per
    OUTPUT pixel: each input pixel scatters 16 taps onto 4 output pixels)."""
    f, s, d = 0, size, conv_dim
    f += 2 * 6 * d * 49 * s * s
    for _ in range(2):
        s //= 2
        f += 2 * d * (2 * d) * 16 * s * s
        d *= 2
    f += res_blocks * 2 * (2 * d * d * 9 * s * s)
    for _ in range(2):
        f += 2 * d * (d // 2) * 16 * s * s
        s *= 2
        d //= 2
    f += 2 * d * 3 * 49 * s * s
    return f


def _median_seconds(fn, iters: int, warmup: int, warmup_s: float = 0.0) -> float:
    """Median wall time of `fn()` until every device has finished (`sync_devices`: 12 us on CPU, where reading one
    element of the result back took 156 us), after at least `warmup` untimed calls and `warmup_s` seconds of them."""
    import tensorflow as tf

    def call():
        fn()
        tf.test.experimental.sync_devices()

    deadline = time.perf_counter() + warmup_s
    calls = 0
    while calls < warmup or time.perf_counter() < deadline:
        call()
        calls += 1
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def generator_speed(generator_name: str, size: int, conv_dim: int, res_blocks: int, iters: int, warmup: int,
                    batches=(1, 8), num_points: int = 106, warmup_s: float = 0.0, xla: bool = False) -> dict:
    import dataclasses

    import tensorflow as tf

    from bigo_facegen import config as config_lib, export
    from bigo_facegen.models.registry import build_generator

    cfg = benchmark_config(config_lib.paper(), {"model.conv_dim": conv_dim, "model.res_blocks": res_blocks,
                                                "model.generator.type": generator_name, "data.image_size": size})
    generator = build_generator(cfg.model, size, num_points)
    if xla:
        module = export.ServingModule(generator, export.ServingSpec.from_config(cfg))
        forward = lambda inputs: module.compiled(**inputs, **module.prepare(**inputs))
        wanted, reference_side = module.spec.input_names, ("reference", "reference_keypoints")
    else:
        forward = tf.function(lambda inputs: generator(inputs, training=False))
        wanted, reference_side = None, ("reference", "reference_points", "reference_flags")
    result = {"generator_section": dataclasses.asdict(cfg.model.generator.active)}
    for batch in batches:
        inputs = {key: value for key, value in _random_inputs(batch, size, num_points, xla).items()
                  if wanted is None or key in wanted}
        start = time.perf_counter()
        forward(inputs)
        tf.test.experimental.sync_devices()
        result[f"first_call_s_b{batch}"] = time.perf_counter() - start
        seconds = _median_seconds(lambda: forward(inputs), iters, warmup, warmup_s)
        result[f"infer_img_per_s_b{batch}"] = batch / seconds
        if batch > 1:  # one reference for every target, as `generate` sends a video's
            one = {**inputs, **{key: inputs[key][:1] for key in reference_side if key in inputs}}
            seconds = _median_seconds(lambda: forward(one), iters, warmup, warmup_s)
            result[f"infer_img_per_s_b{batch}_one_reference"] = batch / seconds
    if generator_name == "stargan":  # the reference script's formula is for the StarGAN generator only
        flops = generator_forward_flops(size, conv_dim, res_blocks)
        result["generator_gflop_per_img"] = flops / 1e9
        result["infer_gflop_per_s"] = flops * result[f"infer_img_per_s_b{max(batches)}"] / 1e9
    return result


def _random_inputs(batch: int, size: int, num_points: int, serving: bool) -> dict:
    """Random inputs of `batch` faces: the generator's dict, or with `serving` the serving signature's (uint8 crops,
    [x, y, flag] rows) with every key either generator reads."""
    import tensorflow as tf

    points = lambda: tf.random.uniform((batch, num_points, 2), 0.0, size - 1.0)
    flags = tf.fill((batch, num_points), 2)
    if serving:
        crops = tf.cast(tf.random.uniform((batch, size, size, 3), 0, 256, tf.int32), tf.uint8)
        rows = lambda: tf.concat([points(), tf.cast(flags, tf.float32)[..., None]], axis=-1)
        return {"reference": crops, "reference_keypoints": rows(), "target_keypoints": rows()}
    images = lambda: tf.random.uniform((batch, size, size, 3), -1.0, 1.0)
    return {"reference": images(), "target_map": images(), "reference_points": points(), "target_points": points(),
            "reference_flags": flags, "target_flags": flags}


def peak_speed(iters: int, warmup: int) -> dict:
    """GFLOP/s of a large fp32 matmul and a large 3x3 convolution, sized for the device at hand."""
    import tensorflow as tf

    gpu = bool(tf.config.list_logical_devices("GPU"))
    n = 8192 if gpu else 2048
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.matmul(a, b))
    matmul_s = _median_seconds(matmul, iters, warmup)

    batch, side, channels = (64 if gpu else 4), 56, 256
    x = tf.random.normal((batch, side, side, channels))
    kernel = tf.random.normal((3, 3, channels, channels))
    conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    conv_s = _median_seconds(conv, iters, warmup)
    matmul_gflops = 2 * n ** 3 / matmul_s / 1e9
    conv_gflops = 2 * batch * side * side * channels * channels * 9 / conv_s / 1e9
    return {"peak_matmul_gflop_per_s": matmul_gflops, "peak_conv_gflop_per_s": conv_gflops,
            "peak_gflop_per_s": max(matmul_gflops, conv_gflops),
            "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()) and gpu}


def end_to_end_speed(clip: str, frames: int, generator_name: str = "stargan", compiled: bool = False) -> dict:
    """Frames/s of whole-video generation at the cpu preset, per fusion method, after one warm-up batch (`compiled`:
    under XLA, compiled for that batch's size in the warm-up)."""
    import numpy as np

    from bigo_facegen import annotations, config as config_lib, generation, video
    from bigo_facegen.face_model import FaceModel
    from bigo_facegen.generation_settings import GenerationSettings
    from bigo_facegen.models.registry import build_generator

    entry = {v.video: v for v in annotations.load(REAL_FACES / "annotations.json")}[f"{clip}.mp4"]
    reference = entry.face_frames()[0]
    frame = video.read_frame(REAL_FACES / entry.video_path, reference.index)
    targets = generation.frame_sequence(entry)
    targets = (targets * (frames // len(targets) + 1))[:frames]
    cfg = config_lib.override(config_lib.preset("cpu"),
                              {"data.layout": "ibug68", "model.generator.type": generator_name})
    model = FaceModel.from_generator(build_generator(cfg.model, cfg.data.image_size, 68), cfg, compiled=compiled)
    batch = cfg.data.batch_per_replica
    points, flags = np.zeros((batch, 68, 2)), np.full((batch, 68), 2)
    # One reference crop for the batch, as a video's batches have it (a compiled model compiles for these shapes).
    model.generate(np.zeros((1, 64, 64, 3), np.uint8), points, flags, points[:1], flags[:1])
    result = {"e2e_clip": clip, "e2e_frames": frames, "e2e_size": cfg.data.image_size,
              "e2e_frame_size": f"{frame.shape[1]}x{frame.shape[0]}"}
    with tempfile.TemporaryDirectory() as tmp:
        for fusion in ("shift", "segment", "warp"):
            start = time.perf_counter()
            maker = generation.VideoGenerator(model, frame, reference,
                                              GenerationSettings(fusion=fusion, copy_threshold=0.0, batch_size=batch))
            maker.generate_video(targets, os.path.join(tmp, f"{fusion}.mp4"), 25.0, progress=False)
            result[f"e2e_{fusion}_frames_per_s"] = frames / (time.perf_counter() - start)
            assert video.probe(os.path.join(tmp, f"{fusion}.mp4")).frame_count == frames
    return result


def main(argv):
    del argv
    import tensorflow as tf

    set_threads(FLAGS.threads, FLAGS.inter_op_threads)
    if not FLAGS.inter_op_threads:
        from bigo_facegen import distribution
        distribution.configure_cpu_threads()
    gpus = tf.config.list_physical_devices("GPU")
    result = {"framework": f"tensorflow {tf.__version__}", "device": "GPU" if gpus else "CPU",
              "cpu_cores": os.cpu_count(), "threads": FLAGS.threads,
              "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(), "generator": FLAGS.generator,
              "size": FLAGS.size, "conv_dim": FLAGS.conv_dim, "res_blocks": FLAGS.res_blocks}
    batches = [int(batch) for batch in FLAGS.batches]
    result.update(generator_speed(FLAGS.generator, FLAGS.size, FLAGS.conv_dim, FLAGS.res_blocks, FLAGS.iters,
                                  FLAGS.warmup, batches, warmup_s=FLAGS.warmup_s, xla=FLAGS.xla))
    if FLAGS.peak:
        result.update(peak_speed(max(3, FLAGS.iters // 2), 2))
        if "infer_gflop_per_s" in result:
            result["fraction_of_peak"] = result["infer_gflop_per_s"] / result["peak_gflop_per_s"]
    if FLAGS.end_to_end:
        if (REAL_FACES / "annotations.json").is_file():
            result.update(end_to_end_speed(FLAGS.clip, FLAGS.frames, FLAGS.generator, FLAGS.xla))
        else:
            result["e2e_skipped"] = f"no real footage at {REAL_FACES}"
    if FLAGS.json:
        print(json.dumps(result))
        return
    print(f"{FLAGS.generator} generator {FLAGS.size} px, conv_dim {FLAGS.conv_dim}, res_blocks {FLAGS.res_blocks} on "
          f"{result['device']} ({result['framework']})")
    labels = [(f"images/s, batch {batch}", f"infer_img_per_s_b{batch}") for batch in batches]
    labels += [(f"images/s, batch {batch}, one reference", f"infer_img_per_s_b{batch}_one_reference")
               for batch in batches if batch > 1]
    labels += [(f"first call, batch {batch} (s)", f"first_call_s_b{batch}") for batch in batches]
    labels += [("GFLOP per image", "generator_gflop_per_img"), (f"GFLOP/s, batch {max(batches)}", "infer_gflop_per_s"),
              ("peak GFLOP/s, matmul", "peak_matmul_gflop_per_s"), ("peak GFLOP/s, conv 3x3", "peak_conv_gflop_per_s"),
              ("fraction of peak", "fraction_of_peak")]
    if "e2e_frame_size" in result:
        labels += [(f"video frames/s, {fusion} ({result['e2e_frame_size']})", f"e2e_{fusion}_frames_per_s")
                   for fusion in ("shift", "segment", "warp")]
    rows = [(name, result[key]) for name, key in labels if key in result]
    for name, value in rows:
        print(f"{name:34s} {value:10.3f}")
    if "e2e_skipped" in result:
        print(f"end-to-end skipped: {result['e2e_skipped']}")


if __name__ == "__main__":
    app.run(main)

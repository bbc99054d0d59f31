"""The PyTorch original (`../shared/bench/torch_reference.py`) on a chosen device: its training iteration, and its
generator's inference at any batch sizes, as one JSON line beside ours (`benchmarks/gpu_check.sh`).

    python -m benchmarks.torch_on_device --device cuda --size 224 --conv_dim 64 --res_blocks 6 --batch 8 --json
    python -m benchmarks.torch_on_device --device cpu --size 32 --conv_dim 8 --res_blocks 1 --batch 2 --batches 1,8

The reference script is shared, read-only and written for the CPU: here its networks and tensors are created on
`--device` (torch's default device), and the clock its timing reads waits for the device first, so that its
figures hold on a GPU too. Its own `main` measures the training iteration; inference at `--batches` is timed here
the way it times batch 1 and 8 (generator left in train mode as the original: instance norm on each image's own
statistics; no_grad; the median of `--iters` calls after `--warmup`).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import statistics
import sys
import time
import types

from absl import app, flags

from benchmarks.common import REPO

TORCH_REFERENCE = REPO.parent / "shared" / "bench" / "torch_reference.py"

flags.DEFINE_string("device", "cpu", "torch device: cpu, cuda, cuda:1, ...")
flags.DEFINE_integer("size", 128, "Face crop side in pixels.")
flags.DEFINE_integer("conv_dim", 64, "Generator / keypoint detector base width.")
flags.DEFINE_integer("res_blocks", 6, "Residual blocks of the generator trunk.")
flags.DEFINE_integer("batch", 8, "Frames per training iteration.")
flags.DEFINE_list("batches", ["1", "8", "64"], "Batch sizes of the inference measurement.")
flags.DEFINE_bool("perceptual", False, "Include the ResNet50 perceptual network in the training iteration.")
flags.DEFINE_integer("iters", 5, "Timed iterations / calls per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 2, "Untimed iterations / calls first.")
flags.DEFINE_integer("threads", 0, "torch CPU threads (0 = torch's default).")
flags.DEFINE_string("torch_reference", str(TORCH_REFERENCE), "Path of the PyTorch reference script.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def load_reference(path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("torch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_clock(device):
    """`time.perf_counter` that first waits for the work queued on `device`."""
    import torch

    wait = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def clock() -> float:
        wait()
        return time.perf_counter()

    return clock


def reference_training(reference: types.ModuleType) -> dict:
    """The reference's own `main` (training iteration; its batch 1 and 8 inference too), its JSON line parsed."""
    argv = [FLAGS.torch_reference, "--size", str(FLAGS.size), "--conv-dim", str(FLAGS.conv_dim),
            "--res-blocks", str(FLAGS.res_blocks), "--batch", str(FLAGS.batch), "--iters", str(FLAGS.iters),
            "--warmup", str(FLAGS.warmup), "--threads", str(FLAGS.threads), "--json"]
    if not FLAGS.perceptual:
        argv.append("--no-perceptual")
    saved_argv, sys.argv = sys.argv, argv
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            reference.main()
    finally:
        sys.argv = saved_argv
    return json.loads(printed.getvalue().strip().splitlines()[-1])


def reference_inference(reference: types.ModuleType, clock, batches: list[int]) -> dict:
    import torch

    torch.manual_seed(0)
    generator = reference.Generator(FLAGS.conv_dim, FLAGS.res_blocks)
    result = {}
    with torch.no_grad():
        for batch in batches:
            faces = torch.rand(batch, 3, FLAGS.size, FLAGS.size) * 2 - 1
            maps = torch.rand(batch, 3, FLAGS.size, FLAGS.size) * 2 - 1
            for _ in range(FLAGS.warmup):
                generator(faces, maps)
            times = []
            for _ in range(max(FLAGS.iters, 5)):
                start = clock()
                generator(faces, maps)
                times.append(clock() - start)
            result[f"infer_img_per_s_b{batch}"] = batch / statistics.median(times)
    return result


def main(argv):
    del argv
    import torch

    device = torch.device(FLAGS.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"error: --device={FLAGS.device}, but this torch ({torch.__version__}) has no CUDA device: install a "
                 "CUDA build of torch for the GPU comparison")
    torch.set_default_device(device)
    reference = load_reference(FLAGS.torch_reference)
    clock = device_clock(device)
    reference.time = types.SimpleNamespace(perf_counter=clock)  # the only clock the reference's timing reads
    training = reference_training(reference)
    result = {"framework": training["framework"], "device": torch.cuda.get_device_name(device)
              if device.type == "cuda" else "CPU", "size": FLAGS.size, "conv_dim": FLAGS.conv_dim,
              "res_blocks": FLAGS.res_blocks, "batch": FLAGS.batch, "perceptual": FLAGS.perceptual,
              "tf32_conv": torch.backends.cudnn.allow_tf32 and device.type == "cuda",
              "train_img_per_s": training["train_img_per_s"],
              **reference_inference(reference, clock, [int(batch) for batch in FLAGS.batches])}
    if FLAGS.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:24s} {value:.3f}" if isinstance(value, float) else f"{key:24s} {value}")


if __name__ == "__main__":
    app.run(main)

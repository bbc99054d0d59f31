"""Ours against the original's PyTorch architecture and training step, at identical settings, in one run.

    python -m benchmarks.compare_original --size 64 --conv_dim 16 --res_blocks 3 --batch 8    # the cpu preset sizes
    python -m benchmarks.compare_original --size 128 --conv_dim 64 --batch 8 --no_perceptual
    python -m benchmarks.compare_original --size 64 --conv_dim 16 --res_blocks 3 --xla         # ours under XLA

Each side runs in its own process (TF and torch would otherwise fight over the same cores), alternating
ours / original `--rounds` times so that drift in the machine's speed hits both alike (`common.alternate`); the table
gives each side's median over the rounds and the ratio ours / original for training and for inference, the median of
the rounds' own ratios with the smallest and largest (`common.Spread`: a ratio measured once says little on a shared
CPU), and the CPU's name. With `--xla` our inference is the serving graph under XLA, as `generate --xla` runs it
(`benchmarks.inference --xla`; outputs within one level of float32's). The PyTorch side is `../shared/bench/
torch_reference.py`; it needs only `torch` (`pip install torch==2.13.0`, a CPU build). Without torch the comparison is
skipped with a message and ours alone is reported.
"""
import importlib.util
import json
import sys

from absl import app, flags

from benchmarks.common import REPO, Spread, alternate, cpu_name, run_json

TORCH_REFERENCE = REPO.parent / "shared" / "bench" / "torch_reference.py"

flags.DEFINE_integer("size", 128, "Face crop side in pixels.")
flags.DEFINE_integer("conv_dim", 64, "Generator / keypoint detector base width.")
flags.DEFINE_integer("res_blocks", 6, "Residual blocks of the generator trunk.")
flags.DEFINE_integer("batch", 8, "Training batch (frames of one video).")
flags.DEFINE_bool("no_perceptual", False, "Leave the ResNet50 perceptual network out of the training step.")
flags.DEFINE_integer("rounds", 3, "Alternations ours / original.")
flags.DEFINE_integer("iters", 5, "Timed iterations inside each run (each side reports its median).")
flags.DEFINE_integer("threads", 0, "Threads for both sides (0 = each framework's default: all cores).")
flags.DEFINE_bool("xla", False, "Our inference under XLA (`benchmarks.inference --xla`), as `generate --xla`.")
flags.DEFINE_string("torch_reference", str(TORCH_REFERENCE), "Path of the PyTorch reference script.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def _ours() -> dict:
    common = ["--size", str(FLAGS.size), "--conv_dim", str(FLAGS.conv_dim), "--res_blocks", str(FLAGS.res_blocks),
              "--threads", str(FLAGS.threads), "--json"]
    train = run_json(["-m", "benchmarks.train_step", *common, "--batch", str(FLAGS.batch),
                  "--iters", str(FLAGS.iters), "--perceptual" if not FLAGS.no_perceptual else "--noperceptual"],
                 "benchmarks.train_step")
    infer = run_json(["-m", "benchmarks.inference", *common, "--noend_to_end", f"--{'' if FLAGS.xla else 'no'}xla"],
                     "benchmarks.inference")
    return {"train_img_per_s": train["train_img_per_s"], "infer_img_per_s_b1": infer["infer_img_per_s_b1"],
            "infer_img_per_s_b8": infer["infer_img_per_s_b8"], "infer_gflop_per_s": infer["infer_gflop_per_s"]}


def _original() -> dict:
    cmd = [FLAGS.torch_reference, "--size", str(FLAGS.size), "--conv-dim", str(FLAGS.conv_dim),
           "--res-blocks", str(FLAGS.res_blocks), "--batch", str(FLAGS.batch), "--iters", str(FLAGS.iters),
           "--threads", str(FLAGS.threads), "--json"]
    if FLAGS.no_perceptual:
        cmd.append("--no-perceptual")
    return run_json(cmd, "torch_reference.py")


def main(argv):
    del argv
    have_torch = importlib.util.find_spec("torch") is not None
    if not have_torch:
        print("torch is not installed: reporting ours alone (pip install torch==2.13.0 for the comparison)",
              file=sys.stderr)
    runs = alternate({"ours": _ours, **({"original": _original} if have_torch else {})}, FLAGS.rounds)

    keys = ("train_img_per_s", "infer_img_per_s_b1", "infer_img_per_s_b8", "infer_gflop_per_s")
    spreads = {side: {k: Spread.of(figures[k]) for k in keys} for side, figures in runs.items()}
    ratios = {k: Spread.ratio(runs["ours"][k], runs["original"][k]) for k in keys} if have_torch else {}
    result = {"size": FLAGS.size, "conv_dim": FLAGS.conv_dim, "res_blocks": FLAGS.res_blocks, "batch": FLAGS.batch,
              "perceptual": not FLAGS.no_perceptual, "xla": FLAGS.xla, "rounds": FLAGS.rounds, "cpu": cpu_name()}
    for side, figures in spreads.items():
        for k, spread in figures.items():
            result.update(spread.fields(f"{side}_{k}"))
    for k, spread in ratios.items():
        result.update(spread.fields(f"ratio_{k}"))
    if FLAGS.json:
        print(json.dumps(result))
        return
    print(f"{cpu_name()}; size {FLAGS.size}, conv_dim {FLAGS.conv_dim}, res_blocks {FLAGS.res_blocks}, batch "
          f"{FLAGS.batch}, perceptual {not FLAGS.no_perceptual}, ours {'under XLA' if FLAGS.xla else 'float32'}; "
          f"medians of {FLAGS.rounds} alternating rounds, a ratio's smallest and largest round in brackets")
    print(f"{'figure':22s} {'ours':>10s} {'original':>10s}   ours/original")
    for k in keys:
        original = f"{spreads['original'][k].median:10.2f}" if have_torch else f"{'-':>10s}"
        ratio = f"{ratios[k]:.2f}" if have_torch else "-"
        print(f"{k:22s} {spreads['ours'][k].median:10.2f} {original}   {ratio}")


if __name__ == "__main__":
    app.run(main)

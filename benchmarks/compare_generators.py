"""Training and inference images/s of the warp_refine generator beside stargan's, at the same sizes.

    python -m benchmarks.compare_generators --size 64 --conv_dim 16 --res_blocks 3 --batch 8    # the cpu preset
    python -m benchmarks.compare_generators --size 128 --conv_dim 32 --rounds 3
    python -m benchmarks.compare_generators --size 64 --conv_dim 16 --res_blocks 3 --xla      # as `generate --xla`

Each measurement runs `benchmarks.train_step` or `benchmarks.inference` (generator alone, no end-to-end video) in a
fresh subprocess, so that neither generator inherits the other's threads, allocator or traced graphs; the two
generators alternate for `--rounds` rounds (`common.alternate`), so that a machine whose load drifts (other jobs,
thermal limits) slows both alike. Reports the median over rounds of: training images/s (one full four-network
iteration, as the original), generator inference images/s at batch 1 and 8 (8 references, and one reference for the 8
targets as `generate` sends a video's, which `warp_refine` encodes once), and warp_refine's ratio to stargan, the
median of the rounds' own ratios with the smallest and largest (`common.Spread`), on the CPU named. With `--xla`,
inference as `generate
--xla` runs it (under XLA, `warp_refine`'s spline fitted outside) and the first call's seconds, without training.
Each generator's own section is the `real` preset's unless `--config_override`s (given to every run) say otherwise,
e.g. `--config_override=model.generator.warp_refine.motion_downscale=1`.
"""
from __future__ import annotations

import json

from absl import app, flags

from benchmarks.common import Spread, alternate, config_override_args, cpu_name, define_config_override_flag, run_json

GENERATORS = ("stargan", "warp_refine")
FIGURES = (("train_img_per_s", "train_step"), ("infer_img_per_s_b1", "inference"),
           ("infer_img_per_s_b8", "inference"), ("infer_img_per_s_b8_one_reference", "inference"))
XLA_FIGURES = FIGURES[1:] + (("first_call_s_b1", "inference"), ("first_call_s_b8", "inference"))

flags.DEFINE_integer("size", 64, "Face crop side in pixels.")
flags.DEFINE_integer("conv_dim", 16, "Generator / keypoint detector base width.")
flags.DEFINE_integer("res_blocks", 3, "Residual blocks of the generator and detector trunks.")
define_config_override_flag()
flags.DEFINE_integer("batch", 8, "Frames per training iteration.")
flags.DEFINE_integer("rounds", 2, "Alternating rounds per generator (the median is reported).", lower_bound=1)
flags.DEFINE_integer("iters", 5, "Timed iterations per run.")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0 = TF's default: all cores).")
flags.DEFINE_bool("xla", False, "Inference as `generate --xla` runs it, under XLA (`benchmarks.inference --xla`), "
                  "and the first call's seconds (compiling) at each batch; no training runs.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def run_benchmark(module: str, generator: str) -> dict:
    """One run of `benchmarks.<module>` in its own process; its JSON line."""
    common = [f"--generator={generator}", f"--size={FLAGS.size}", f"--conv_dim={FLAGS.conv_dim}",
              f"--res_blocks={FLAGS.res_blocks}", f"--iters={FLAGS.iters}", f"--threads={FLAGS.threads}", "--json",
              *config_override_args()]
    extra = ([f"--batch={FLAGS.batch}"] if module == "train_step"
             else ["--noend_to_end", "--nopeak", f"--{'' if FLAGS.xla else 'no'}xla"])
    return run_json(["-m", f"benchmarks.{module}", *common, *extra], f"benchmarks.{module} --generator={generator}")


def main(argv):
    del argv
    wanted = XLA_FIGURES if FLAGS.xla else FIGURES
    sections = {}  # each generator's config section, as the runs measured it

    def measure(generator: str) -> dict[str, float]:
        figures = {}
        for module in sorted({source for _, source in wanted}, reverse=True):  # train_step first
            result = run_benchmark(module, generator)
            sections[generator] = result["generator_section"]
            figures.update({name: result[name] for name, source in wanted if source == module})
        return figures

    runs = alternate({generator: lambda generator=generator: measure(generator) for generator in GENERATORS},
                     FLAGS.rounds)
    medians = {g: {name: Spread.of(values).median for name, values in figures.items()} for g, figures in runs.items()}
    ratios = {name: Spread.ratio(runs["warp_refine"][name], runs["stargan"][name]) for name, _ in wanted}
    summary = {"size": FLAGS.size, "conv_dim": FLAGS.conv_dim, "res_blocks": FLAGS.res_blocks, "batch": FLAGS.batch,
               "generator_sections": sections, "rounds": FLAGS.rounds, "cpu": cpu_name(),
               **{f"{g}_{name}": value for g, figures in medians.items() for name, value in figures.items()},
               "xla": FLAGS.xla}
    for name, spread in ratios.items():
        summary.update(spread.fields(f"ratio_{name}"))
    if FLAGS.json:
        print(json.dumps(summary))
        return
    print(f"{cpu_name()}; {FLAGS.size} px, conv_dim {FLAGS.conv_dim}, res_blocks {FLAGS.res_blocks}, training batch "
          f"{FLAGS.batch}, warp_refine {sections['warp_refine']}; median of {FLAGS.rounds} alternating round(s), "
          f"each run in its own process, a ratio's smallest and largest round in brackets")
    print(f"{'images/s':32s} {'stargan':>10s} {'warp_refine':>12s}   ratio")
    for name, _ in wanted:
        print(f"{name:32s} {medians['stargan'][name]:10.2f} {medians['warp_refine'][name]:12.2f}   {ratios[name]:.2f}")


if __name__ == "__main__":
    app.run(main)

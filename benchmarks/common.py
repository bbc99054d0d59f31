"""What the benchmarks share: TF's thread pools from their flags, `warp_refine`'s options as the `real` preset sets them,
and (for the comparisons) running one benchmark in a process of its own and reading its JSON line."""
import json
import os
import subprocess
import sys
from pathlib import Path

from absl import flags

from bigo_facegen import config

REPO = Path(__file__).resolve().parents[1]


def run_json(args: list[str], what: str) -> dict:
    """Runs `args` (a Python module is `["-m", name, ...]`, a script its path) with this interpreter in the repository
    root and returns the last JSON line it printed. A fresh process per run keeps threads, allocators and traced
    graphs of one side from leaking into the other."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    for line in reversed(done.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{what} printed no JSON line; its output ended with:\n{done.stdout[-2000:]}")


def set_threads(intra_op: int, inter_op: int) -> None:
    """TF's intra-op and inter-op thread counts for this process, before its first op; 0 leaves that pool at TF's
    default (all cores)."""
    import tensorflow as tf

    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def define_warp_refine_flags() -> None:
    """The `warp_refine` options that change its cost, defaulting to the `real` preset's: a benchmark measures the
    generator as it is trained for real footage unless told otherwise."""
    real = config.real().model
    flags.DEFINE_integer("motion_downscale", real.motion_downscale, "warp_refine: the dense-motion network's "
                         "resolution as a divisor of the crop side (model.motion_downscale; default: the real preset's).")
    flags.DEFINE_bool("decoder_mouth_mask", real.decoder_mouth_mask, "warp_refine: the decoder also reads the target's "
                      "inner-mouth polygon (model.decoder_mouth_mask; default: the real preset's).")


def warp_refine_overrides() -> dict:
    """The config overrides of `define_warp_refine_flags`' flags, for `config.override`."""
    return {"model.motion_downscale": flags.FLAGS.motion_downscale,
            "model.decoder_mouth_mask": flags.FLAGS.decoder_mouth_mask}


def warp_refine_args() -> list[str]:
    """The same flags on a benchmark's command line, for a run in a process of its own."""
    return [f"--motion_downscale={flags.FLAGS.motion_downscale}",
            f"--{'' if flags.FLAGS.decoder_mouth_mask else 'no'}decoder_mouth_mask"]

"""What the benchmarks share: TF's thread pools from their flags, the config a benchmark measures (every generator's
section as the `real` preset sets it, then `--config_override`s), and (for the comparisons) running one benchmark in a
process of its own and reading its JSON line."""
import copy
import dataclasses
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


def define_config_override_flag() -> None:
    flags.DEFINE_multi_string(
        "config_override", [], "section.field=value for any config field, as experiments.train (e.g. "
        "model.generator.<name>.<field>=value); applied after the benchmark's own flags. The generators' sections "
        "default to the real preset's.")


def benchmark_config(base: config.ExperimentConfig, values: dict) -> config.ExperimentConfig:
    """`base` with every generator's section as the `real` preset sets it (a benchmark measures a generator as it is
    trained for real footage unless told otherwise; `base`'s generator type is kept), then `values` (the benchmark's
    own flags) and the `--config_override`s."""
    measured = copy.deepcopy(base)
    measured.model.generator = dataclasses.replace(config.real().model.generator, type=base.model.generator.type)
    measured = config.override(measured, values)
    return config.override(measured, dict(config.parse_override(text) for text in flags.FLAGS.config_override))


def config_override_args() -> list[str]:
    """The `--config_override`s on a benchmark's command line, for a run in a process of its own."""
    return [f"--config_override={text}" for text in flags.FLAGS.config_override]

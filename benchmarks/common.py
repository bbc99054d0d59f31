"""What the benchmarks share: TF's thread pools from their flags, and (for the comparisons) running one benchmark in a
process of its own and reading its JSON line."""
import json
import os
import subprocess
import sys
from pathlib import Path

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

"""What the benchmarks share: TF's thread pools from their flags, the config a benchmark measures (every generator's
section as the `real` preset sets it, then `--config_override`s), and (for the comparisons) running one benchmark in a
process of its own and reading its JSON line; and how a comparison measures in rounds and reports a ratio with its
noise (`alternate`, `Spread`)."""
import copy
import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

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


# The vector and matrix extensions that set what float32 and bfloat16 convolutions reach, by /proc/cpuinfo flag.
CPU_EXTENSIONS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"), ("amx_bf16", "AMX"))


def cpu_name() -> str:
    """The CPU's model name as `lscpu` gives it (/proc/cpuinfo's), its widest extensions and the logical CPUs this
    process may use: a speed ratio holds for the CPU it was measured on (a virtual machine's model name can be as
    plain as "Intel(R) Xeon(R) Processor")."""
    lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines() if Path("/proc/cpuinfo").is_file() else []
    field = lambda key: next((line.split(":", 1)[1].strip() for line in lines if line.split(":")[0].strip() == key),
                             "")
    present = set(field("flags").split())
    extensions = ", ".join(label for flag, label in CPU_EXTENSIONS if flag in present)
    return (f"{field('model name') or 'unknown CPU'}{f' ({extensions})' if extensions else ''}, "
            f"{len(os.sched_getaffinity(0))} logical CPUs")


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


def alternate(sides: Mapping[str, Callable[[], Mapping[str, float]]], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Measures each side (`sides[name]()`: its figures by name) once per round, the sides in turn, for `rounds`
    rounds, so that drift in the machine's speed (other jobs on a shared CPU) hits every side alike. Returns each
    side's figures, one value per round."""
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            for figure, value in measure().items():
                runs[name].setdefault(figure, []).append(value)
    return runs


@dataclasses.dataclass(frozen=True)
class Spread:
    """A figure measured once per round: the median over the rounds and the smallest and largest round's value. A
    ratio's rounds are each round's own ratio (`ratio`), both sides measured in that round."""
    minimum: float
    median: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            raise ValueError("a spread needs at least one round's value")
        return cls(min(values), statistics.median(values), max(values))

    @classmethod
    def ratio(cls, numerators: Sequence[float], denominators: Sequence[float]) -> "Spread":
        """The spread of `numerators[i] / denominators[i]`, the two sides of round i."""
        if len(numerators) != len(denominators):
            raise ValueError(f"a ratio pairs the rounds of its two sides: got {len(numerators)} and "
                             f"{len(denominators)} values")
        return cls.of([n / d for n, d in zip(numerators, denominators)])

    def fields(self, name: str) -> dict[str, float]:
        """JSON fields: `name` the median (what a single figure reported before), `name_min` and `name_max`."""
        return {name: self.median, f"{name}_min": self.minimum, f"{name}_max": self.maximum}

    def __format__(self, spec: str) -> str:
        """`median (minimum-maximum)`, each formatted by `spec` (e.g. `.2f`)."""
        return f"{self.median:{spec}} ({self.minimum:{spec}}-{self.maximum:{spec}})"

"""The table of `benchmarks/gpu_check.sh`: each row's figure from our run beside the same figure of the torch run.

    python -m benchmarks.gpu_table WORK_DIR TORCH_RUN "LABEL|RUN|FIGURE" ...

WORK_DIR holds, per run NAME, `NAME.out` (its output; the last JSON line counts), `NAME.err` and `NAME.status` (its
exit status; 124 is `timeout`'s). A row shows FIGURE of RUN, of TORCH_RUN and their ratio, or why a run has none.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from absl import app


def read_run(work: Path, name: str) -> tuple[dict | None, str]:
    """(the run's JSON result, "") or (None, why there is none)."""
    status = int((work / f"{name}.status").read_text())
    if status == 124:
        return None, "timed out"
    lines = (work / f"{name}.out").read_text().strip().splitlines()
    results = [line for line in lines if line.startswith("{")]
    if status == 0 and results:
        return json.loads(results[-1]), ""
    errors = [line.strip() for line in (work / f"{name}.err").read_text().splitlines() if line.strip()]
    return None, f"exit {status}: {errors[-1] if errors else 'no output'}"[:110]


def main(argv):
    if len(argv) < 4:
        sys.exit("error: usage: python -m benchmarks.gpu_table WORK_DIR TORCH_RUN 'LABEL|RUN|FIGURE' ...")
    work, torch_run, rows = Path(argv[1]), argv[2], [row.split("|") for row in argv[3:]]
    torch, torch_problem = read_run(work, torch_run)
    runs = {run: read_run(work, run) for _, run, _ in rows}
    described = next((result for result, _ in runs.values() if result), None)
    if described:
        print(f"{described['framework']}: {described['size']} px, conv_dim {described['conv_dim']}, "
              f"res_blocks {described['res_blocks']}")
    print(f"torch side: {torch['framework']} on {torch['device']}, float32, eager" if torch
          else f"torch side: {torch_problem}")
    print(f"{'images/s':40s} {'policy':>15s} {'replicas':>8s} {'ours':>10s} {'torch':>10s} {'ours/torch':>10s}")
    for label, run, figure in rows:
        result, problem = runs[run]
        if result is None:
            print(f"{label:40s} {problem}")
            continue
        ours, theirs = result[figure], torch[figure] if torch else None
        # Inference runs report neither policy nor replicas: they run in float32 on one device.
        torch_text, ratio = (f"{theirs:10.2f}", f"{ours / theirs:10.2f}") if theirs else (f"{'-':>10s}", f"{'-':>10s}")
        print(f"{label:40s} {result.get('policy', 'float32'):>15s} {result.get('replicas', 1):8d} {ours:10.2f} "
              f"{torch_text} {ratio}")


if __name__ == "__main__":
    app.run(main)

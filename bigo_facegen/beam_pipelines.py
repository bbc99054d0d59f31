"""Running this project's Apache Beam pipelines (`batch_generation`, the `bigo_face` data set build) on this machine:
options checked before a pipeline is built, a local runner that never reaches the network, and local worker
processes that end with the process that runs the pipeline.

- Beam's `DirectRunner` (2.78) first tries the Prism runner, whose binary it downloads from GitHub on every run
  (caching it under ~/.apache_beam), and falls back to Beam's in-process Python runner (`FnApiRunner`) when that
  fails. Nothing here may reach the network, so a pipeline with no runner named, or the DirectRunner, runs on
  `FnApiRunner` directly (`choose_runner`): the runner DirectRunner falls back to, with the same options
  (`direct_num_workers`, `direct_running_mode`), without the download. Any other runner (Prism itself, Dataflow,
  Flink, Spark) runs as named.
- `parse` turns NAME=VALUE options into `PipelineOptions`, refusing an unknown option, a bad value or a runner Beam
  does not know in one line (Beam would drop the one with a warning and, for the other, print its whole option list
  and exit). Options are always built from the flags given, never from this program's own (sys.argv, Beam's default,
  which it warns of as "unparseable args").
- The workers of `direct_running_mode=multi_processing` are processes of their own, started through a shell, so
  nothing ends them with the runner: killed, the runner would leave them running their bundles, and writing files,
  for tens of seconds. `workers_end_with_this_process` names the runner's process to the workers started inside it
  (through an environment variable they inherit), and `end_with_runner`, which a pipeline's code calls in its
  worker as it sets up, ends the worker when that process ends.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import select
import signal
import threading
from typing import Iterator, Sequence

from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct.direct_runner import DirectRunner
from apache_beam.runners.runner import PipelineRunner, create_runner

# The environment variable naming the process that runs a local pipeline to its worker processes.
RUNNER_PROCESS = "BIGO_FACEGEN_BEAM_RUNNER_PID"


class PipelineOptionsError(ValueError):
    """A Beam pipeline option is unknown or its value is not one it takes."""


def parse(options: Sequence[str], name: str = "--beam_pipeline_options") -> PipelineOptions:
    """`PipelineOptions` from NAME=VALUE items (as `tfds build --beam_pipeline_options` takes them); raises
    `PipelineOptionsError`, naming `name` and the option, for an unknown option or a bad value."""
    parsed = PipelineOptions([f"--{option}" for option in options])
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            given = parsed.get_all_options(retain_unknown_options=True)
    except SystemExit:
        # argparse printed its usage (every Beam option: 130 lines) and then, last, "prog: error: what".
        raise PipelineOptionsError(f"{name}: {printed.getvalue().strip().splitlines()[-1].split('error: ', 1)[-1]}"
                                   ) from None
    # Given no flags, `PipelineOptions` parses this program's own (sys.argv), and warns of each it does not know.
    unknown = sorted(set(given) - set(PipelineOptions([]).get_all_options()))
    if unknown:
        raise PipelineOptionsError(f"{name}: Beam has no option {', '.join(unknown)}")
    runner = parsed.view_as(StandardOptions).runner
    if runner is not None:
        _created(runner, f"{name}: runner")
    return parsed


def choose_runner(runner: str | PipelineRunner | None, options: PipelineOptions,
                  name: str = "runner") -> PipelineRunner:
    """The runner of a pipeline with `options`: `runner` (which Beam's `Pipeline` puts before the options' own), else
    the options' runner, except that none or the DirectRunner gives the in-process `FnApiRunner` (see the module
    doc). Raises `PipelineOptionsError` for a runner Beam does not know, naming `name` (what the caller calls
    `runner`: a flag) or the pipeline option."""
    named = runner if runner is not None else options.view_as(StandardOptions).runner
    if named is None or isinstance(named, str):
        named = _created(named or "DirectRunner", name if runner is not None else "pipeline option runner")
    if not isinstance(named, DirectRunner):
        return named
    logging.info("Beam: the in-process FnApiRunner, not the DirectRunner, which would first download Prism")
    # Built as the DirectRunner builds it (apache_beam/runners/direct/direct_runner.py), so that worker processes
    # get the pipeline options (a pickle library, say) too.
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def _created(runner: str, name: str) -> PipelineRunner:
    """The runner Beam knows by the name `runner` (or a PipelineRunner class's full name); `PipelineOptionsError`
    naming `name` where there is none."""
    try:
        return create_runner(runner)
    except (ValueError, ImportError, AttributeError) as e:  # no such name; no such module or class
        raise PipelineOptionsError(f"{name}: {e}") from None


@contextlib.contextmanager
def workers_end_with_this_process() -> Iterator[None]:
    """Names this process to the worker processes that a pipeline run inside the block starts (they inherit the
    environment), for `end_with_runner`."""
    previous = os.environ.get(RUNNER_PROCESS)
    os.environ[RUNNER_PROCESS] = str(os.getpid())
    try:
        yield
    finally:
        if previous is None:
            del os.environ[RUNNER_PROCESS]
        else:
            os.environ[RUNNER_PROCESS] = previous


@functools.cache  # once per process
def end_with_runner() -> None:
    """In a local worker process (one whose runner named itself, `workers_end_with_this_process`): ends this process
    as soon as the runner's process ends, however that ended. In the runner's own process (in-memory or
    multi-threaded workers) and on a cluster's workers (no such variable), nothing."""
    named = os.environ.get(RUNNER_PROCESS)
    if named is None or int(named) == os.getpid():
        return
    try:
        runner = os.pidfd_open(int(named))
    except ProcessLookupError:  # it ended before this worker got here
        os.kill(os.getpid(), signal.SIGKILL)
    except OSError as e:  # a kernel older than Linux 5.3 has no process file descriptors
        logging.warning("cannot watch the pipeline's process %s (%s): this worker may outlive it", named, e)
        return
    threading.Thread(target=_end_when_readable, args=(runner,), name="end-with-runner", daemon=True).start()


def _end_when_readable(process_fd: int) -> None:
    select.select([process_fd], [], [])  # a process's file descriptor becomes readable when the process ends
    # As the runner was: at once. Files it was writing are left as temporary files that the next writer of the same
    # output removes (`files.temporary_file`).
    os.kill(os.getpid(), signal.SIGKILL)

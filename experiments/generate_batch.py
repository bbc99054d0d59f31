"""Generate many face videos in one Apache Beam pipeline: one `experiments.generate` job per line of a JSONL file.

    python -m experiments.generate_batch --jobs=JOBS.jsonl [--failures=JOBS.failures.jsonl] [--runner=FnApiRunner] \\
        [--beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing]

A line is a JSON object, e.g. {"model": "exports/face", "annotations": "data/annotations.json", "video": "12008",
"output": "out/12008.mp4"}, with the optional keys of `bigo_facegen.batch_generation`. Relative paths in a line are
the jobs file's folder's, and a relative output must stay inside that folder with every link followed (a `..` or a
linked folder leading out of it is refused; an absolute one goes where it says).
Jobs whose outputs exist whole are skipped, so a failed run is re-run as it is. Jobs that fail are listed with their
reason in the failure list; the others go on. The exit status is 1 when some job failed.

Nothing reaches the network: with no runner named, or DirectRunner (which would first download Beam's Prism runner),
the pipeline runs on Beam's in-process FnApiRunner (`bigo_facegen.beam_pipelines`).
"""
import sys

from absl import app, flags

from bigo_facegen import batch_generation, beam_pipelines, distribution, files

flags.DEFINE_string("jobs", None, "JSONL file, one job per line; relative paths in it are its folder's, and relative "
                    "outputs stay inside that folder, links followed.", required=True)
flags.DEFINE_string("failures", None, "Where the failure list goes; default: JOBS.failures.jsonl beside the jobs.")
flags.DEFINE_string("runner", None, "Beam runner (FnApiRunner, DataflowRunner, FlinkRunner, SparkRunner, ...); "
                    "default, and for DirectRunner: FnApiRunner, Beam's in-process runner, which downloads nothing.")
flags.DEFINE_list("beam_pipeline_options", [], "More Beam pipeline options, comma-separated NAME=VALUE (as `tfds "
                  "build` takes them), e.g. direct_num_workers=2,direct_running_mode=multi_processing.")
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    options = beam_pipelines.parse(FLAGS.beam_pipeline_options)
    runner = beam_pipelines.choose_runner(FLAGS.runner, options, name="--runner")
    summary = batch_generation.generate_batch(FLAGS.jobs, FLAGS.failures, options, runner)
    for failure in summary.failures:
        print(f"error: {FLAGS.jobs}: line {failure.line}: {failure.reason}", file=sys.stderr)
    print(f"{FLAGS.jobs}: {summary.jobs} jobs (relative paths from {summary.root}): {summary.generated} generated, "
          f"{summary.skipped} skipped (outputs exist whole), {len(summary.failures)} failed (listed in "
          f"{summary.failure_list})")
    if summary.failures:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)

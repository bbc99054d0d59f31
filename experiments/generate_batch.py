"""Generate many face videos in one Apache Beam pipeline: one `experiments.generate` job per line of a JSONL file.

    python -m experiments.generate_batch --jobs=JOBS.jsonl [--failures=JOBS.failures.jsonl] [--runner=DirectRunner] \\
        [--beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing]

A line is a JSON object, e.g. {"model": "exports/face", "annotations": "data/annotations.json", "video": "12008",
"output": "out/12008.mp4"}, with the optional keys of `bigo_facegen.batch_generation`. Jobs whose output exists are
skipped, so a failed run is re-run as it is. Jobs that fail are listed with their reason in the failure list; the
others go on. The exit status is 1 when some job failed.
"""
import sys

from absl import app, flags
from apache_beam.options.pipeline_options import PipelineOptions

from bigo_facegen import batch_generation, files, inference

flags.DEFINE_string("jobs", None, "JSONL file, one job per line.", required=True)
flags.DEFINE_string("failures", None, "Where the failure list goes; default: JOBS.failures.jsonl beside the jobs.")
flags.DEFINE_string("runner", "DirectRunner", "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, "
                    "...).")
flags.DEFINE_list("beam_pipeline_options", [], "More Beam pipeline options, comma-separated NAME=VALUE (as `tfds "
                  "build` takes them), e.g. direct_num_workers=2,direct_running_mode=multi_processing.")
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    inference.configure_cpu_threads()
    options = PipelineOptions([f"--runner={FLAGS.runner}", *(f"--{option}" for option in FLAGS.beam_pipeline_options)])
    try:
        summary = batch_generation.generate_batch(FLAGS.jobs, FLAGS.failures, options)
    except (ValueError, OSError) as e:  # a jobs file or failure list path that cannot be used
        sys.exit(f"error: {e}")
    for failure in summary.failures:
        print(f"error: {FLAGS.jobs}: line {failure.line}: {failure.reason}", file=sys.stderr)
    print(f"{FLAGS.jobs}: {summary.jobs} jobs: {summary.generated} generated, {summary.skipped} skipped (output "
          f"exists), {len(summary.failures)} failed (listed in {summary.failure_list})")
    if summary.failures:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)

"""The web demo: animate a photo's face with a driving video in the browser, on this machine.

    python -m experiments.demo                          # http://127.0.0.1:7860, the shipped model
    python -m experiments.demo --model=exports/face --port=8080 [--examples=DIR] [--max_upload_mb=50] \\
        [--max_seconds=10] [--max_side=1024] [--keep_minutes=60] [--host=127.0.0.1]

Upload a photo and a driving video (or pick an example row made from the development clips), choose the motion mode,
the driving reference, the driving keypoints (tracked or detected on every frame) and whether the photo's irises follow
the driver's gaze, get the animated video back (`bigo_facegen.web_demo`). Uploads and results are deleted
`--keep_minutes` after they were made; Ctrl-C stops the demo and removes its temporary folder, where everything it
wrote lies.
"""
from pathlib import Path

from absl import app, flags, logging

# Only light modules here: `web_demo.serve` imports the rest once it has pointed the libraries' folders into its own.
from bigo_facegen import files, pretrained, web_demo

DEFAULT_EXAMPLES = "../shared/data/real_faces/dev"

flags.DEFINE_string("host", web_demo.DEFAULT_HOST, "Address to listen on; the default serves this machine alone.")
flags.DEFINE_integer("port", web_demo.DEFAULT_PORT, "Port to listen on.", lower_bound=1, upper_bound=65535)
flags.DEFINE_string("model", pretrained.NAME, f"{pretrained.NAME!r} (the model shipped in the package), or any "
                    f"other model experiments.animate takes.")
flags.DEFINE_string("examples", DEFAULT_EXAMPLES, "BIGO-layout folder (annotations.json, videos, MANIFEST.tsv) whose "
                    "clips make the example rows; by default none when the folder is absent.")
flags.DEFINE_float("max_upload_mb", web_demo.Limits.upload_mb, "Largest file accepted, in MB.", lower_bound=0.001)
flags.DEFINE_float("max_seconds", web_demo.Limits.driving_seconds, "Seconds of each driving video used, and never "
                   f"more frames than this many seconds at {web_demo.NOMINAL_FPS:g} fps, whatever frame rate the "
                   "video claims.", lower_bound=0.001)
flags.DEFINE_integer("max_side", web_demo.Limits.source_side, "Photos larger than this many pixels on a side are "
                     "scaled down.", lower_bound=1)
flags.DEFINE_float("keep_minutes", web_demo.Limits.keep_minutes, "Uploads and results are deleted this many minutes "
                   "after they were made (all of them when the demo stops).", lower_bound=0.001)
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    examples = FLAGS.examples
    if not FLAGS["examples"].present and not Path(examples).is_dir():
        logging.info("no example rows: %s is not a folder", examples)
        examples = None
    limits = web_demo.Limits(upload_mb=FLAGS.max_upload_mb, driving_seconds=FLAGS.max_seconds,
                             source_side=FLAGS.max_side, keep_minutes=FLAGS.keep_minutes)
    web_demo.serve(FLAGS.model, examples, FLAGS.host, FLAGS.port, limits)


if __name__ == "__main__":
    app.run(main)

"""Cross-identity evaluation: one person's face driven by another person's clip, over the person-disjoint test split.

    python -m experiments.evaluate_cross --data=../shared/data/real_faces/dev --output=runs/cross \\
        [--methods=copy,warp,pretrained,exports/face] [--sources_per_driver=1] [--max_frames=50] \\
        [--tracking=track|detect]

A command of its own rather than a flag of `experiments.evaluate`: it scores pairs of clips, not videos against their
true frames, with other metrics (identity kept, motion followed, jitter), and several methods in one run. Writes
OUTPUT/results.json, OUTPUT/results.md and OUTPUT/sheets/<source>__<driver>.png (`bigo_facegen.evaluation.
cross_identity`).
The mouth and eye measures of `experiments.evaluate` (`evaluation.regions`) need the source's true frames: none here.
"""

from absl import app, flags

from bigo_facegen import animate, distribution, files, pretrained
from bigo_facegen.evaluation import cross_identity, protocol
from experiments import motion_flags  # --mode, --driving_reference, --smoothing, --tracking

flags.DEFINE_string("data", None, "A BIGO-layout folder with dlib's 68 points (annotations.json + videos/, optional "
                    "MANIFEST.tsv for the persons).", required=True)
flags.DEFINE_string("output", None, "Folder for results.json, results.md and sheets/.", required=True)
flags.DEFINE_list("methods", ["copy", "warp", pretrained.NAME], f"copy, warp, {pretrained.NAME} (the model shipped "
                  f"in the package) and any export folder or training model_dir.")
flags.DEFINE_enum("split", "test", protocol.SPLITS, "Clips to pair: the person-disjoint test split, train, or all.")
flags.DEFINE_integer("sources_per_driver", 1, "Sources (other persons' clips) driven by each clip; 0: all.",
                     lower_bound=0)
flags.DEFINE_integer("max_frames", 50, "Driving frames per pair: the clip's first ones, consecutive.", lower_bound=3)
flags.DEFINE_integer("sheet_pairs", 3, "Pairs with a contact sheet.", lower_bound=0)
flags.DEFINE_integer("samples", 4, "Frames per contact sheet.", lower_bound=1)
flags.adopt_module_key_flags(motion_flags)  # listed in --help like this module's own
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    motion = motion_flags.settings()
    path = cross_identity.run(FLAGS.methods, FLAGS.data, FLAGS.output, split=FLAGS.split,
                              sources_per_driver=FLAGS.sources_per_driver or None, max_frames=FLAGS.max_frames,
                              motion=motion, sheet_pairs=FLAGS.sheet_pairs, samples=FLAGS.samples,
                              tracking=FLAGS.tracking or animate.DEFAULT_TRACKING)
    print((path.parent / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)

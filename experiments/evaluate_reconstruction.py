"""Reconstruction: each clip of a split drives its own first frame through animate's path, scored against its true
frames with the evaluation's metrics, per condition and per video (`bigo_facegen.evaluation.reconstruction`).

    python -m experiments.evaluate_reconstruction --data=../shared/data/real_faces/dev --output=runs/reconstruction \\
        [--split=test] [--frame_stride=2] [--model=pretrained] [--tracking=track|detect] [--methods=copy,warp] \\
        [--mode=relative] [--smoothing=gaussian|one_euro|none]

A command of its own rather than a flag of `experiments.evaluate`: the methods are given the targets animate makes
from each clip's own frames (its keypoints tracked or detected, moved onto its first frame, smoothed), not the
annotation file's. Writes OUTPUT/results.json (overall, per tier, per condition, per video: psnr, ssim, psnr_face,
ssim_face, identity_accuracy, keypoint_nme, keypoint_jitter, frames; the compared methods and the true frames under
`compared`), OUTPUT/results.md, OUTPUT/plots/ and OUTPUT/sheets/, as `experiments.evaluate` does.
"""

from absl import app, flags

from bigo_facegen import animate, distribution, files, pretrained
from bigo_facegen.evaluation import protocol, reconstruction
from experiments import motion_flags  # --mode, --driving_reference, --smoothing, --tracking

flags.DEFINE_string("data", None, "A BIGO-layout folder with dlib's 68 points (annotations.json + videos/, optional "
                    "MANIFEST.tsv for the persons).", required=True)
flags.DEFINE_string("output", None, "Folder for results.json, results.md, plots/ and sheets/.", required=True)
flags.DEFINE_string("model", pretrained.NAME, f"The method evaluated: {pretrained.NAME} (the model shipped in the "
                    f"package), an export folder, a training model_dir, copy or warp.")
flags.DEFINE_list("methods", [], "Methods scored beside --model (copy, warp, models), on the same targets.")
flags.DEFINE_enum("split", "test", protocol.SPLITS, "Clips to evaluate: the person-disjoint test split, train, or all.")
flags.DEFINE_integer("frame_stride", 1, "Score every N-th face frame after the reference (every frame still drives).",
                     lower_bound=1)
flags.DEFINE_integer("max_frames_per_video", None, "Score at most this many targets per clip, evenly strided "
                     "(default: all).", lower_bound=1)
flags.DEFINE_integer("samples_per_video", 4, "Targets per clip on the contact sheet.", lower_bound=1)
flags.adopt_module_key_flags(motion_flags)  # listed in --help like this module's own
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    path = reconstruction.run(FLAGS.model, FLAGS.data, FLAGS.output, split=FLAGS.split,
                              frame_stride=FLAGS.frame_stride, max_frames_per_video=FLAGS.max_frames_per_video,
                              tracking=FLAGS.tracking or animate.DEFAULT_TRACKING, motion=motion_flags.settings(),
                              compared=FLAGS.methods, samples_per_video=FLAGS.samples_per_video)
    print((path.parent / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)

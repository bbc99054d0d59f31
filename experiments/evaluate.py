"""Evaluate a trained model or a baseline with the challenge protocol and the dlib judge.

    python -m experiments.evaluate --model=exports/face --data=../shared/data/real_faces/dev --output=runs/eval
    python -m experiments.evaluate --model=warp --data=../shared/data/real_faces/dev --split=all --output=runs/warp
    python -m experiments.evaluate --model=copy --data=synthetic --output=runs/copy_synthetic --max_frames_per_video=8

For each video the first annotated frame is the reference and every later annotated frame a target. Writes
OUTPUT/results.json (overall, per tier, per condition, per video: psnr, ssim, psnr_face, ssim_face,
identity_accuracy, identity_distance, keypoint_nme, keypoint_accuracy, keypoint_jitter, frames, and the mouth and eye
measures of `bigo_facegen.evaluation.regions`: psnr_mouth, ssim_mouth, psnr_eyes, ssim_eyes, perceptual_face,
perceptual_mouth, teeth_hit, teeth_false, teeth_frames, eye_opening_error), OUTPUT/results.md,
OUTPUT/plots/<video>.png (metrics per frame) and OUTPUT/sheets/<video>.png (reference | truth | warp baseline | ours).
Without --model it evaluates the model shipped in the package.
"""

from absl import app, flags

from bigo_facegen import distribution, files, pretrained
from bigo_facegen.evaluation import protocol, report
from bigo_facegen.fusion import FUSIONS

FLAGS = flags.FLAGS
flags.DEFINE_string("model", pretrained.NAME, f"copy | warp | truth | {pretrained.NAME} (the model shipped in the "
                    f"package) | an export folder or a training model_dir.")
flags.DEFINE_string("data", None, "synthetic (generated into --cache_dir) or a BIGO-layout folder "
                    "(annotations.json + videos/, optional MANIFEST.tsv).", required=True)
flags.DEFINE_string("output", None, "Folder for results.json, results.md, plots/ and sheets/.", required=True)
flags.DEFINE_enum("split", "test", protocol.SPLITS,
                  "Videos to evaluate: the person-disjoint test split, train, or all.")
flags.DEFINE_integer("max_frames_per_video", None, "Score at most this many targets per video, evenly strided "
                     "(default: all).", lower_bound=1)
flags.DEFINE_integer("frame_stride", 1, "Score every N-th face frame after the reference (default: all).",
                     lower_bound=1)
flags.DEFINE_bool("truth", False, "Also score the true target frames: the judge's floor.")
flags.DEFINE_enum("fusion", None, FUSIONS, "How a model's faces are put into the frame (as experiments.generate; "
                  "default: warp for models that repaint, shift for the others).")
flags.DEFINE_integer("tune_steps", 0, "One-shot tuning of a model on each video's reference before generating its "
                     "frames (0: off; needs a training model_dir).", lower_bound=0)
flags.DEFINE_float("tune_lr", None, "Learning rate of one-shot tuning (default: the run's "
                   "optimizer.generator_lr).")
flags.DEFINE_bool("paint", True, "Let a model's painters (the shipped model's mouth and eyes) paint over its frames; "
                  "--nopaint scores the frames as its generator made them.")
flags.DEFINE_integer("samples_per_video", 4, "Targets per video on the contact sheet.", lower_bound=1)
flags.DEFINE_string("cache_dir", None, "Where --data=synthetic is generated (default ~/.cache/bigo_facegen).")


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    path = report.run(FLAGS.model, FLAGS.data, FLAGS.output, split=FLAGS.split,
                      max_frames_per_video=FLAGS.max_frames_per_video,
                      frame_stride=FLAGS.frame_stride, with_truth=FLAGS.truth,
                      fusion=FLAGS.fusion, samples_per_video=FLAGS.samples_per_video, cache_dir=FLAGS.cache_dir,
                      tune_steps=FLAGS.tune_steps, tune_lr=FLAGS.tune_lr, paint=FLAGS.paint)
    print((path.parent / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)

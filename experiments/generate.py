"""Generate a face video: a reference frame driven by the keypoint sequence of an annotated video.

    python -m experiments.generate --model=exports/face --annotations=data/annotations.json --video=12008 \\
        --output=out/12008.mp4 [--face_output=out/12008_face.mp4] [--reference=first_frame.png] \\
        [--fusion=shift|segment|warp|flow] [--border=replicate|reflect] [--copy_threshold=0.008] [--batch=8] \\
        [--tune_steps=50 --tune_lr=5e-4]

`--model` is the model shipped in the package (the default), an export (`experiments.export`) or a training
model_dir. The reference is `--reference` (an image of
the video's frame size) or, without it, the video's own frame `--reference_index` (default: the first annotated
face); the output has the reference's size and the video's frame rate (or `--fps`), one frame per annotated frame.
`--tune_steps` fine-tunes the generator on the reference alone first (one-shot tuning; a training model_dir only).
"""

from absl import app, flags

from bigo_facegen import distribution, files, generation, pretrained, video
from experiments import generation_flags  # --fusion, --border, --fill, --copy_threshold, --batch, --tune_steps, ...

flags.DEFINE_string("model", pretrained.NAME, f"{pretrained.NAME!r} (the model shipped in the package: "
                    f"bigo_facegen/pretrained/{pretrained.CARD_FILE}), an export folder (base or version), its "
                    f".tflite file, or a training model_dir.")
flags.DEFINE_string("annotations", None, "BIGO-layout annotation JSON holding the keypoint sequence.", required=True)
flags.DEFINE_string("video", None, "Video whose keypoints drive the face (its name, with or without .mp4).",
                    required=True)
flags.DEFINE_string("output", None, "Output mp4 of the full frame.", required=True)
flags.DEFINE_string("face_output", None, "Optional mp4 of the face crops alone (S x S).")
flags.DEFINE_string("reference", None, "Reference image (a frame of the video's size); default: a frame of the video.")
flags.DEFINE_integer("reference_index", None, "Annotated frame (1-based) whose box and keypoints describe the "
                     "reference; default: the first frame with a face.")
flags.DEFINE_string("videos_dir", None, "Folder holding the video files; default: the annotations' video_path.")
flags.DEFINE_bool("xla", False, "Run the model under XLA (not a .tflite file): faster once compiled, but it compiles "
                  "for seconds at the first batch of each size, so it pays off in long videos (see benchmarks/README).")
flags.DEFINE_float("fps", None, f"Output frame rate, above 0 and at most {video.MAX_FPS}; default: the video's, or 25 "
                   "without the video.")
flags.DEFINE_integer("max_frames", None, "Keep only the first frames of the sequence.", lower_bound=1)
flags.adopt_module_key_flags(generation_flags)  # listed in --help like this module's own
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    stats = generation.generate_from_annotations(
        FLAGS.model, FLAGS.annotations, FLAGS.video, FLAGS.output, reference_image=FLAGS.reference,
        reference_index=FLAGS.reference_index, videos_dir=FLAGS.videos_dir, face_output=FLAGS.face_output,
        fps=FLAGS.fps, max_frames=FLAGS.max_frames, compiled=FLAGS.xla, settings=generation_flags.settings())
    print(f"{FLAGS.output}: {stats.frames} frames ({stats.generated} generated, {stats.copied} copied from the "
          f"reference, {stats.repeated} repeated where no face was annotated)"
          + (f"; one-shot tuning took {stats.tune_seconds:.1f} s" if FLAGS.tune_steps else ""))


if __name__ == "__main__":
    app.run(main)

"""Animate any face: a photo (or a video frame) of one person driven by a video of anyone.

    python -m experiments.animate --source=photo.jpg --driving=driver.mp4 --output=out.mp4
    python -m experiments.animate --model=warp --source=photo.jpg --driving=driver.mp4 --output=out.mp4
    python -m experiments.animate --model=exports/face --source=clip.mp4 --source_frame=1 --driving=driver.mp4 \\
        --output=out.mp4 [--face_output=face.mp4] [--mode=relative|absolute] [--driving_reference=first|best] \\
        [--smoothing=gaussian|one_euro|none] [--tracking=track|detect | --driving_annotations=annotations.json] \\
        [--max_side=1920] [--nogaze]

dlib finds the face and its 68 points on the source; the driver's are dlib's followed through its frames by optical
flow and held to dlib (`--tracking=track`, the default) or dlib's on every frame (`--tracking=detect`), or they come
from `--driving_annotations`, a BIGO-layout file of dlib's layout, as they are. The driver's motion is moved onto the
source's face (`bigo_facegen.motion_transfer`), and the model (by default the one shipped in the package, or an export,
a training model_dir, or `warp`: the source warped by the keypoints alone) makes one frame per driving frame, at the
source's resolution (a source larger than `--max_side` pixels on a side is scaled down to it first, and the run says so)
and the driver's frame rate. With `--gaze` (the default), the photo's irises follow the driver's, found by MediaPipe's
iris model on both (`bigo_facegen.gaze`); a photo whose irises cannot be used (closed eyes, too small) says so in one
line and is animated without. The driving file must be a video: an image is refused. A model makes and places its faces
as the flags of `experiments.generate` of the same names say (`--fusion`, `--batch`, `--copy_threshold`, ...,
`--tune_steps`: `experiments.generation_flags`).

With `--stream`, the driving video is read frame by frame as a live source would give it, and each frame is animated
as it comes (`bigo_facegen.streaming`: the tracker's causal form, the motion from the first driving face, the model at
batch 1); the run prints the frames per second end to end and each frame's latency (median and 95th percentile), the
first frame, the warm-up, left out. Flags that need the driver whole are refused (`--driving_reference=best`,
`--driving_annotations`), and `--batch` (one face per call).
"""
import sys

from absl import app, flags

from bigo_facegen import animate, distribution, files, methods, pretrained, streaming
from experiments import generation_flags, motion_flags  # --fusion, --batch, ...; --mode, --tracking, ...

flags.DEFINE_string("model", pretrained.NAME, f"{pretrained.NAME!r} (the model shipped in the package: "
                    f"bigo_facegen/pretrained/{pretrained.CARD_FILE}), an export folder, a training model_dir, or "
                    f"{methods.WARP!r} (the source warped by the keypoints, no network).")
flags.DEFINE_string("source", None, "The face to animate: an image file, or a video with --source_frame.",
                    required=True)
flags.DEFINE_integer("source_frame", None, "With a video as --source: its frame (1-based) that is the source.",
                     lower_bound=1)
flags.DEFINE_string("driving", None, "The driving video: its face's motion is transferred.", required=True)
flags.DEFINE_string("driving_annotations", None, "BIGO-layout annotation file holding the driving video's keypoints "
                    "(dlib's 68-point layout), used as they are; default: found in the driving frames (--tracking).")
flags.DEFINE_string("output", None, "Output video (.mp4, .m4v or .mov).", required=True)
flags.DEFINE_string("face_output", None, "Optional video of the face crops alone.")
flags.DEFINE_integer("max_frames", None, "Use only the first driving frames.", lower_bound=1)
flags.DEFINE_integer("max_side", animate.DEFAULT_MAX_SIDE, "A source larger than this many pixels on a side is "
                     "scaled down to it (the output has the source's size); the run says so.", lower_bound=1)
flags.DEFINE_bool("gaze", animate.DEFAULT_GAZE, "Move the photo's irises, within the output's eye openings, to where "
                  "the driver looks (MediaPipe's iris model on both); --nogaze leaves the eyes as the model paints "
                  "them.")
flags.DEFINE_bool("xla", False, "Run the model under XLA (not --model=warp, not a .tflite file): faster once compiled, "
                  "but it compiles for seconds at the first batch of each size (as experiments.generate).")
flags.DEFINE_bool("stream", False, "Read the driving video frame by frame as a live source would give it, animate "
                  "each frame as it comes, and print the frames per second and each frame's latency.")
flags.adopt_module_key_flags(generation_flags)  # listed in --help like this module's own
flags.adopt_module_key_flags(motion_flags)
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    distribution.configure_cpu_threads()
    if FLAGS.stream:
        return _stream()
    motion = motion_flags.settings()
    stats = animate.animate(FLAGS.model, FLAGS.source, FLAGS.driving, FLAGS.output, face_output=FLAGS.face_output,
                            source_frame=FLAGS.source_frame, driving_annotations=FLAGS.driving_annotations,
                            motion=motion, max_frames=FLAGS.max_frames, max_side=FLAGS.max_side,
                            compiled=FLAGS.xla, settings=generation_flags.settings(), tracking=FLAGS.tracking,
                            gaze=FLAGS.gaze)
    print(f"{FLAGS.output}: {stats.frames} frames ({stats.lost} driving frames without a face kept the last motion)")
    if stats.scaled_from is not None:
        print(f"{FLAGS.source}: {stats.scaled_from[0]}x{stats.scaled_from[1]} pixels, scaled down to "
              f"--max_side={FLAGS.max_side} pixels on its longer side")


# What a live driver cannot have, by flag: the reason.
_NOT_LIVE = {"driving_reference": "chooses among all the driving frames, and a live source gives them one at a time",
             "driving_annotations": "reads the driving points from a file, and a live source has only its frames",
             "batch": "makes faces several frames at a time, and a live source's come one at a time"}


def _stream():
    """`main` with --stream: `streaming.stream`, and its rate and latencies printed."""
    for name, reason in _NOT_LIVE.items():
        if FLAGS[name].present and FLAGS[name].value != FLAGS[name].default:
            sys.exit(f"error: --{name}={FLAGS[name].value} {reason}: --stream refuses it")
    stats = streaming.stream(FLAGS.model, FLAGS.source, FLAGS.driving, FLAGS.output, face_output=FLAGS.face_output,
                             source_frame=FLAGS.source_frame, motion=motion_flags.settings(live=True),
                             max_frames=FLAGS.max_frames, max_side=FLAGS.max_side, compiled=FLAGS.xla,
                             settings=generation_flags.settings(),
                             tracking=FLAGS.tracking or animate.DEFAULT_TRACKING, gaze=FLAGS.gaze)
    print(f"{FLAGS.output}: {stats.frames} frames streamed ({stats.lost} driving frames without a face kept the last "
          f"motion)")
    if stats.frames_per_s is None:
        print("streaming: one frame, the warm-up alone: no rate to report")
    else:
        print(f"streaming: {stats.frames_per_s:.1f} frames/s end to end, latency per frame median "
              f"{1000 * stats.latency(50):.1f} ms, 95th percentile {1000 * stats.latency(95):.1f} ms (frames 2 to "
              f"{stats.frames}: the first, the warm-up, left out)")
    if stats.scaled_from is not None:
        print(f"{FLAGS.source}: {stats.scaled_from[0]}x{stats.scaled_from[1]} pixels, scaled down to "
              f"--max_side={FLAGS.max_side} pixels on its longer side")


if __name__ == "__main__":
    app.run(main)

"""Annotate a folder of videos with dlib into a BIGO-layout folder (the convention of ../shared/data/real_faces).

    python -m experiments.annotate VIDEO_DIR OUT_DIR [--link] [--max_frames=N] [--tracking=detect|track]

Writes OUT_DIR/annotations.json (68 iBUG points per frame, bbox = 1.6 x dlib's detector box centred on the
landmarks, `"bbox": []` and `"keypoint": []` where no face is found) and OUT_DIR/videos/ (copies, or hard links
with --link). The points are dlib's on every frame (`--tracking=detect`, the default: the convention of the shared
footage), or dlib's followed by optical flow and held to dlib (`--tracking=track`: they shake less; a point the flow
loses gets flag 1, occluded). Finished videos are cached in OUT_DIR/.annotate_cache, so an interrupted run resumes
where it stopped.
Needs dlib, which the package installs (dlib-bin, face-recognition-models).
"""

from absl import app, flags

from bigo_facegen import annotate, files

FLAGS = flags.FLAGS
flags.DEFINE_bool("link", False, "Hard-link the videos into OUT_DIR/videos instead of copying them (copies where "
                  "OUT_DIR is on another file system).")
flags.DEFINE_integer("max_frames", None, "Annotate only the first frames of each video (default: all).",
                     lower_bound=1)
flags.DEFINE_enum("tracking", annotate.DETECT, annotate.TRACKINGS, "How the points are found: detect (dlib on every "
                  "frame, the shared footage's convention) or track (dlib's points followed by optical flow and held "
                  "to dlib).")
flags.DEFINE_bool("progress", True, "Show progress bars.")


@files.entry_point
def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: python -m experiments.annotate VIDEO_DIR OUT_DIR [--link] [--max_frames=N] "
                             "[--tracking=detect|track]")
    path = annotate.annotate_folder(argv[1], argv[2], link=FLAGS.link, progress=FLAGS.progress,
                                    max_frames=FLAGS.max_frames, tracking=FLAGS.tracking)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)

"""The motion-transfer flags that `animate`, `evaluate_cross` and `evaluate_reconstruction` share, defined once, and
the settings they give."""
from absl import flags

from bigo_facegen import animate, annotate, motion_transfer

flags.DEFINE_enum("mode", "relative", motion_transfer.MODES, "relative: the driver's motion since its reference "
                  "frame, scaled to the source's face, added to the source's keypoints; absolute: the driver's "
                  "keypoints themselves (in normalised image coordinates), for the same person.")
flags.DEFINE_enum("driving_reference", "first", motion_transfer.REFERENCES, "The driving frame that counts as no "
                  "motion: the first with a face, or the one whose expression is nearest the source's.")
flags.DEFINE_enum("smoothing", None, motion_transfer.SMOOTHINGS,
                  "How the driving keypoint track is smoothed before the transfer: gaussian (over about a frame on "
                  "either side: no lag, needs the frames to come), one_euro (causal: trails slow motion by a few "
                  f"frames) or none. Default: {motion_transfer.DEFAULT_SMOOTHING}, and "
                  f"{motion_transfer.LIVE.smoothing} for a live driver (animate --stream).")
flags.DEFINE_enum("tracking", None, annotate.TRACKINGS, "How the driver's keypoints are found in its frames: track "
                  "(dlib's points followed by optical flow and held to dlib: they shake less) or detect (dlib on every "
                  f"frame). Default: {animate.DEFAULT_TRACKING}; animate refuses it with --driving_annotations, whose "
                  "points are used as they are.")
FLAGS = flags.FLAGS


def settings(live: bool = False) -> motion_transfer.MotionSettings:
    """The `MotionSettings` the flags ask for, for a whole driving video or (`live`) one given frame by frame."""
    default = motion_transfer.LIVE if live else motion_transfer.MotionSettings()
    return motion_transfer.MotionSettings(mode=FLAGS.mode, reference=FLAGS.driving_reference,
                                          smoothing=FLAGS.smoothing or default.smoothing)

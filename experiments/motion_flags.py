"""The motion-transfer flags that `animate` and `evaluate_cross` share, defined once, and the settings they give."""
from absl import flags

from bigo_facegen import motion_transfer

flags.DEFINE_enum("mode", "relative", motion_transfer.MODES, "relative: the driver's motion since its reference "
                  "frame, scaled to the source's face, added to the source's keypoints; absolute: the driver's "
                  "keypoints themselves (in normalised image coordinates), for the same person.")
flags.DEFINE_enum("driving_reference", "first", motion_transfer.REFERENCES, "The driving frame that counts as no "
                  "motion: the first with a face, or the one whose expression is nearest the source's.")
flags.DEFINE_enum("smoothing", motion_transfer.DEFAULT_SMOOTHING, motion_transfer.SMOOTHINGS,
                  "Smooth the driving keypoint track (One-Euro filter) before the transfer.")
FLAGS = flags.FLAGS


def settings() -> motion_transfer.MotionSettings:
    """The `MotionSettings` the flags ask for."""
    return motion_transfer.MotionSettings(mode=FLAGS.mode, reference=FLAGS.driving_reference,
                                          smoothing=FLAGS.smoothing)

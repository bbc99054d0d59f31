"""The generation-settings flags that `generate` and `animate` share, defined once (named as the settings name
themselves, `generation_settings.GenerationSettings.keys`), and the settings they give, checked by the settings."""
from absl import flags

from bigo_facegen.fusion import BORDERS, FILLS, FUSIONS
from bigo_facegen.generation_settings import GenerationSettings

_DEFAULTS = GenerationSettings()

flags.DEFINE_enum("fusion", _DEFAULTS.fusion, FUSIONS, "shift: move the whole reference frame; segment: move only the "
                  "person (GrabCut) over the inpainted background; warp: warp the whole frame by the keypoints, fixed "
                  "at the frame border (the face of a model that repaints then goes in only where it painted); flow: "
                  "as warp, but a model's own flow moves the frame inside the face box. Default: warp for models that "
                  "repaint, shift for the others.")
flags.DEFINE_enum("border", _DEFAULTS.border, sorted(BORDERS), "How to fill the borders a moved frame uncovers.")
flags.DEFINE_enum("fill", _DEFAULTS.fill, FILLS, "segment fusion: how to fill the background behind the person.")
flags.DEFINE_float("copy_threshold", _DEFAULTS.copy_threshold,
                   "Copy the reference face where the mean keypoint distance to the reference, as a fraction of the "
                   "face crop side, is below this (0: always generate).")
flags.DEFINE_bool("color_transfer", _DEFAULTS.color_transfer, "Match generated faces to the reference's colours "
                  "(Reinhard, Lab).")
flags.DEFINE_bool("paint", _DEFAULTS.paint, "Paint the interior of a mouth that opens beyond the reference's (teeth, "
                  "tongue, cavity) and eyes that close or open, with the painters the model ships (the shipped model "
                  "has them); --nopaint: the frames as the generator made them.")
flags.DEFINE_float("feather", _DEFAULTS.feather, "Soft edge of the pasted face, as a fraction of the crop side.")
flags.DEFINE_integer("batch", _DEFAULTS.batch_size, "Faces generated per model call.")
flags.DEFINE_integer("tune_steps", _DEFAULTS.tune_steps, "One-shot tuning: fine-tune the generator for this many "
                     "steps on augmented copies of the reference face before generating (0: off; needs a training "
                     "model_dir).")
flags.DEFINE_float("tune_lr", _DEFAULTS.tune_lr, "Learning rate of one-shot tuning (default: the run's "
                   "optimizer.generator_lr).")
FLAGS = flags.FLAGS


def settings() -> GenerationSettings:
    """The `GenerationSettings` the flags ask for."""
    return GenerationSettings.from_keys({key: FLAGS[key].value for key in GenerationSettings.keys()})

"""The model that ships inside the package: a `warp_refine` export trained on the shared real clips (how, for how
long and what it scores: MODEL_CARD.md beside this file). `experiments.animate`, `generate`, `evaluate`,
`evaluate_cross` and `demo` use it when no `--model` is given; it is read from the installed package, never
downloaded."""
import os
from importlib import resources
from pathlib import Path

# The model name that means this model wherever a model is asked for (`face_model.FaceModel.load`, the --model flags).
NAME = "pretrained"
# The export version folder (saved_model.pb, variables/, bigo_facegen.json) inside this package.
MODEL_FOLDER = "real_faces"
CARD_FILE = "MODEL_CARD.md"


def resolve(model: str | os.PathLike) -> Path:
    """The path of a model named where a model is asked for: this model's export folder for `NAME`, else `model`."""
    return path() if str(model) == NAME else Path(model)


def path() -> Path:
    """The shipped model's export folder, as `face_model.FaceModel.load` takes it."""
    return Path(str(resources.files(__package__) / MODEL_FOLDER))


def card() -> Path:
    """The shipped model's card: how it was made, its figures, what it is not good at."""
    return Path(str(resources.files(__package__) / CARD_FILE))

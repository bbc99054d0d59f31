"""How faces are made and put into the frames: `GenerationSettings`, the one settings object behind the flags of
`experiments.generate` and `experiments.animate`, `generation.VideoGenerator` and the lines of a batch jobs file, and
the rules its values are checked by.

    settings = GenerationSettings(fusion="segment", batch_size=4)         # checked here, once
    settings = GenerationSettings.from_keys({"fusion": "segment", "batch": 4})   # as flags and job lines name them

A setting is named in messages and in `from_keys` as the flags and job lines name it (`batch` for `batch_size`).
Values are checked as a JSON job line gives them, strictly: true is no integer, 2.0 no count.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Mapping

from bigo_facegen.fusion import BORDERS, DEFAULT_FEATHER, FILLS, FUSIONS

# Mean keypoint distance, as a fraction of the crop side, under which the reference face is copied: about twice the
# frame-to-frame jitter of dlib's landmarks (median 0.004 between consecutive frames of the shared real clips), so
# only frames whose face really is the reference's pose and expression are copied.
DEFAULT_COPY_THRESHOLD = 0.008


class SettingsError(ValueError):
    """A value a user gave (a flag, a key of a job line, an argument) breaks its rule."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a value given by a user must be: one that `accepts` is true of, described as `need`."""
    need: str
    accepts: Callable[[Any], bool]

    def check(self, name: str, value: Any) -> None:
        """Raises `SettingsError` naming `name` and `value` unless the value keeps this rule."""
        if not self.accepts(value):
            raise SettingsError(f"{name} must be {self.need}, got {_shown(value)}")


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def one_of(choices) -> Rule:
    choices = tuple(choices)
    return Rule(f"one of {', '.join(choices)}", lambda value: value in choices)


def at_least(low: int) -> Rule:
    return Rule(f"an integer of at least {low}", lambda value: _is_integer(value) and value >= low)


TEXT = Rule("a non-empty text", lambda value: isinstance(value, str) and value != "")
INTEGER = Rule("an integer", _is_integer)
COUNT = at_least(1)
NUMBER = Rule("a finite number",
              lambda value: (_is_integer(value) or isinstance(value, float)) and math.isfinite(value))
POSITIVE = Rule("a finite number > 0", lambda value: NUMBER.accepts(value) and value > 0)
BOOLEAN = Rule("true or false", lambda value: isinstance(value, bool))


def _setting(default: Any, rule: Rule, key: str | None = None) -> Any:
    """A field of `GenerationSettings`: its default, its rule, and its name in flags and job lines (default: its
    own). A field whose default is None also takes None."""
    return dataclasses.field(default=default, metadata={"rule": rule, "key": key})


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How `generation.VideoGenerator` makes and places the faces (the steps of `generation`'s module doc)."""
    fusion: str | None = _setting(None, one_of(FUSIONS))    # None: the model's own (`FaceModel.default_fusion`)
    border: str = _setting("replicate", one_of(sorted(BORDERS)))
    fill: str = _setting("inpaint", one_of(FILLS))
    copy_threshold: float = _setting(DEFAULT_COPY_THRESHOLD, NUMBER)
    color_transfer: bool = _setting(True, BOOLEAN)
    paint: bool = _setting(True, BOOLEAN)                       # the model's painters (mouth, eyes), if it ships any
    feather: float = _setting(DEFAULT_FEATHER, NUMBER)
    batch_size: int = _setting(8, COUNT, key="batch")           # faces per model call
    tune_steps: int = _setting(0, at_least(0))                  # one-shot tuning on the reference (model_dirs only)
    tune_lr: float | None = _setting(None, POSITIVE)            # None: the run's own generator learning rate

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None or field.default is not None:
                field.metadata["rule"].check(_key(field), value)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The settings' names in flags and job lines, in field order."""
        return tuple(_key(field) for field in dataclasses.fields(cls))

    @classmethod
    def from_keys(cls, values: Mapping[str, Any]) -> "GenerationSettings":
        """The settings that `values` give by their names in flags and job lines (some of `keys`); the others keep
        their defaults."""
        fields = {_key(field): field.name for field in dataclasses.fields(cls)}
        return cls(**{fields[key]: value for key, value in values.items()})


def _key(field: dataclasses.Field) -> str:
    return field.metadata["key"] or field.name

"""The rules a config value is checked by, and what a generator's config section declares: shared by `config` and the
generators' own config modules (`models/<generator>/config.py`), which `config` imports, so that neither imports the
other's and none imports TensorFlow.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from bigo_facegen.config import ExperimentConfig

# Whether a value keeps a rule, and the rule in words (after "key=value: ").
Rule = tuple[Callable[[Any], bool], str]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# By a field's type hint: whether a value has that type, and the type in words.
TYPES: dict[Any, Rule] = {
    bool: (lambda value: isinstance(value, bool), "true or false"),
    int: (is_int, "an integer"),
    float: (lambda value: is_int(value) or isinstance(value, float), "a number"),
    str: (lambda value: isinstance(value, str), "a string"),
    str | None: (lambda value: value is None or isinstance(value, str), "a string or null"),
}


def one_of(names) -> Rule:
    return (lambda value: value in names), f"must be one of {sorted(names)}"


def at_least(low: int) -> Rule:
    return (lambda value: value >= low), f"must be >= {low}"


POSITIVE: Rule = (lambda value: value > 0, "must be > 0")
RATE: Rule = (lambda value: 0 < value < math.inf, "must be a finite number > 0")
WEIGHT: Rule = (lambda value: 0 <= value < math.inf, "must be a finite number >= 0")
BETA: Rule = (lambda value: 0 <= value < 1, "must be in [0, 1)")


class GeneratorSection:
    """What a generator's own config section (a dataclass deriving from this, one field of `config.GeneratorConfig`)
    declares beside its fields, so that `config` checks, migrates and weighs it without naming a field of it:

    - `RULES`: field name -> the rule its values keep (fields without one take any value of their type);
    - `LOSS_WEIGHTS`: the fields that weigh the generator's own loss terms (`GeneratorSpec.loss_terms`, named as these
      fields), checked as weights; they change the training, not the networks (`config.network_fields`);
    - `LEGACY_KEYS`: where its fields were in a config.json written before generators owned their sections (flat
      `section.field` keys), each -> its field here, or None for a key that went away with nothing in its place;
    - `check`: the rules that tie its fields to the rest of the config (of the active section only)."""
    RULES: ClassVar[dict[str, Rule]] = {}
    LOSS_WEIGHTS: ClassVar[tuple[str, ...]] = ()
    LEGACY_KEYS: ClassVar[dict[str, str | None]] = {}

    def check(self, config: ExperimentConfig, where: str) -> None:
        """Raises ValueError naming the first field (`where`.field, or another section's) whose value the rest of
        `config` rules out."""

    def rules(self) -> dict[str, Rule]:
        return {**{name: WEIGHT for name in self.LOSS_WEIGHTS}, **self.RULES}

    def loss_weights(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.LOSS_WEIGHTS}

"""The generation settings: checked once, where they are built, each bad value named as the flags and the batch job
lines name it; those names map onto the fields."""
import math

import pytest

from bigo_facegen.generation_settings import GenerationSettings, SettingsError


def test_a_bad_value_is_named_as_flags_and_job_lines_name_it():
    cases = [
        (dict(batch_size=0), "batch must be an integer of at least 1, got 0"),
        (dict(batch_size=2.0), "batch must be an integer of at least 1, got 2.0"),
        (dict(fusion="blend"), 'fusion must be one of shift, segment, warp, flow, got "blend"'),
        (dict(border="wrap"), 'border must be one of reflect, replicate, got "wrap"'),
        (dict(fill=None), "fill must be one of inpaint, nearest, got null"),
        (dict(copy_threshold=math.nan), "copy_threshold must be a finite number, got NaN"),
        (dict(feather="wide"), 'feather must be a finite number, got "wide"'),
        (dict(color_transfer=1), "color_transfer must be true or false, got 1"),
        (dict(tune_steps=-1), "tune_steps must be an integer of at least 0, got -1"),
        (dict(tune_lr=0.0), "tune_lr must be a finite number > 0, got 0.0"),
    ]
    for values, message in cases:
        with pytest.raises(SettingsError) as error:
            GenerationSettings(**values)
        assert str(error.value) == message


def test_flag_and_job_line_names_map_onto_the_fields():
    assert GenerationSettings.keys() == ("fusion", "border", "fill", "copy_threshold", "color_transfer", "paint",
                                         "feather", "batch", "tune_steps", "tune_lr")
    assert GenerationSettings.from_keys({"batch": 2, "fusion": "segment", "tune_lr": None}) == GenerationSettings(
        fusion="segment", batch_size=2)
    assert GenerationSettings.from_keys({}) == GenerationSettings()  # None: the model's fusion, the run's rate
    with pytest.raises(SettingsError, match="batch must be an integer of at least 1, got -3"):
        GenerationSettings.from_keys({"batch": -3})

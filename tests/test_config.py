"""The experiment config: presets are valid, every bad value is refused where the config is built with a message naming
the field, the value and the rule, the names it accepts are those of the modules that use them, each generator's
fields live in its own section, and config files written before generators owned their sections load into the same
config."""
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bigo_facegen import config as configs
from bigo_facegen.models.warp_refine.config import WarpRefineConfig

REPO = Path(__file__).resolve().parents[1]
# `config.preset(name).to_json()` for each preset, and the `real` preset with every warp-and-refine lever changed, as
# written at commit de4b2bb, before generators owned their config sections.
BEFORE_SECTIONS = REPO / "tests" / "fixtures" / "config_de4b2bb"


@pytest.mark.parametrize("name", sorted(configs.PRESETS))
def test_presets_are_valid_and_survive_json(name):
    config = configs.preset(name)
    configs.validate(config)
    assert configs.ExperimentConfig.from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize("key, value, rule", [
    ("data.image_size", 63, "must be a positive multiple of 4"),
    ("data.image_size", 0, "must be a positive multiple of 4"),
    ("data.batch_per_replica", 0, "must be >= 1"),
    ("data.dot_radius", 0.0, "must be > 0"),
    ("data.scale_range", 1.0, "must be in [0, 1)"),
    ("data.tier", "expert", "must be one of ['all', 'easy', 'hard', 'medium']"),
    ("data.keypoint_style", "blobs", "must be one of ['dots', 'heatmap', 'lines']"),
    ("data.layout", "ibug98", "must be one of ['bigo106', 'ibug68']"),
    ("data.split", "validation", "must be one of ['all', 'test', 'train']"),
    ("data.dataset", "", "must name a data set"),
    ("model.generator.type", "", "must be one of ['stargan', 'warp_refine']"),
    ("model.generator.type", "tiny", "must be one of ['stargan', 'warp_refine']"),
    ("model.perceptual", "vgg19", "must be one of ['efficientnet_lite0', 'none', 'resnet50']"),
    ("model.conv_dim", 0, "must be >= 1"),
    ("model.res_blocks", -1, "must be >= 0"),
    ("model.generator.warp_refine.motion_correction", 2.5, "must be in [0, 2] (a share of half the crop side)"),
    ("model.generator.warp_refine.motion_downscale", 4, "must be one of [1, 2]"),
    ("loss.l1", -1.0, "must be a finite number >= 0"),
    ("model.generator.warp_refine.painted_l1", math.inf, "must be a finite number >= 0"),
    ("model.generator.warp_refine.flow", -1.0, "must be a finite number >= 0"),
    ("optimizer.generator_lr", 0.0, "must be a finite number > 0"),
    ("optimizer.detector_lr", math.nan, "must be a finite number > 0"),
    ("optimizer.beta_1", 1.0, "must be in [0, 1)"),
    ("optimizer.beta_2", -0.1, "must be in [0, 1)"),
    ("train.steps", -5, "must be >= 1"),
    ("train.steps", 0, "must be >= 1"),
    ("train.checkpoint_every", 0, "must be >= 1"),
    ("train.keep_checkpoints", 0, "must be >= 1"),
    ("train.strategy", "tpu", "must be one of ['default', 'mirrored', 'multi_worker']"),
    ("train.max_loss", 0.0, "must be > 0"),
    # Types: by the field's.
    ("train.steps", 2.5, "must be an integer"),
    ("train.steps", True, "must be an integer"),
    ("train.steps", "many", "must be an integer"),
    ("train.jit_compile", 1, "must be true or false"),
    ("loss.l1", "ten", "must be a number"),
    ("data.data_dir", 5, "must be a string or null"),
    ("model.generator.warp_refine.decoder_mouth_mask", "yes", "must be true or false"),
])
def test_bad_values_are_refused_naming_field_value_and_rule(key, value, rule):
    with pytest.raises(ValueError) as caught:
        configs.override(configs.cpu(), {key: value})
    assert str(caught.value).startswith(f"{key}={value!r}: {rule}")
    # The same from a config.json.
    *sections, field = key.split(".")
    saved = configs.cpu().to_dict()
    section = saved
    for name in sections:
        section = section[name]
    section[field] = value
    with pytest.raises(ValueError, match=f"^{key}="):
        configs.ExperimentConfig.from_dict(saved)


def test_every_rule_names_a_field():
    keys = {f"{section}.{field}" for section, values in configs.cpu().to_dict().items() for field in values}
    assert set(configs.RULES) <= keys and len(configs.RULES) > 30
    for name, section in configs.cpu().model.generator.sections().items():
        fields = set(configs.cpu().to_dict()["model"]["generator"][name])
        assert set(section.rules()) <= fields and set(section.LOSS_WEIGHTS) <= fields, name


def test_a_generator_section_holds_the_fields_of_that_generator_alone():
    layout = configs.real().to_dict()
    # In config.json: the type, and each section as its generator's package declares it, with what the preset sets.
    assert layout["model"]["generator"] == {"type": "warp_refine", "stargan": {}, "warp_refine": dataclasses.asdict(
        WarpRefineConfig(motion_correction=1.0, motion_downscale=2, decoder_mouth_mask=True, flow=20.0))}
    assert {"motion_correction", "motion_downscale", "decoder_mouth_mask", "painted_l1", "flow",
            "feature_warp"} <= layout["model"]["generator"]["warp_refine"].keys()
    # The shared sections name no generator's field.
    shared = {field for section in ("model", "loss", "data") for field in layout[section]}
    for name in configs.GeneratorConfig.section_types():
        assert layout["model"]["generator"][name].keys().isdisjoint(shared), name
    real = configs.real()
    assert real.model.generator.active is real.model.generator.warp_refine


def test_every_generator_section_has_its_registry_entry_and_every_entry_its_section():
    from bigo_facegen.models import registry

    sections = configs.GeneratorConfig.section_types()
    assert set(sections) == set(registry.GENERATORS)
    for name, spec in registry.GENERATORS.items():
        assert spec.config is sections[name], name


def test_override_replaces_converts_and_skips_unset():
    base = configs.cpu()
    config = configs.override(base, {"loss.l1": 10, "train.steps": 5, "data.tier": None})
    assert config.loss.l1 == 10.0 and isinstance(config.loss.l1, float)
    assert config.train.steps == 5 and config.data.tier == base.data.tier
    assert base.train.steps == 2000  # a copy
    # The result is checked, not the input: an override may mend an invalid config.
    broken = configs.cpu()
    broken.data.image_size = 63
    assert configs.override(broken, {"data.image_size": 64}).data.image_size == 64
    with pytest.raises(ValueError, match="^unknown config key 'train.speed'$"):
        configs.override(base, {"train.speed": 1})
    # A section is not a value.
    with pytest.raises(ValueError, match="^unknown config key 'model.generator.warp_refine'$"):
        configs.override(base, {"model.generator.warp_refine": {}})


def test_overrides_reach_the_generator_sections():
    config = configs.override(configs.cpu(), dict(configs.parse_override(text) for text in (
        "model.generator.type=warp_refine", "model.generator.warp_refine.motion_downscale=2",
        "model.generator.warp_refine.flow=5")))
    assert config.model.generator.type == "warp_refine"
    assert config.model.generator.warp_refine.motion_downscale == 2
    assert config.model.generator.warp_refine.flow == 5.0 and isinstance(config.model.generator.warp_refine.flow, float)


@pytest.mark.parametrize("old, new", [
    ("model.generator", "model.generator.type"),
    ("model.motion_correction", "model.generator.warp_refine.motion_correction"),
    ("model.motion_downscale", "model.generator.warp_refine.motion_downscale"),
    ("model.decoder_mouth_mask", "model.generator.warp_refine.decoder_mouth_mask"),
    ("loss.painted_l1", "model.generator.warp_refine.painted_l1"),
    ("loss.flow", "model.generator.warp_refine.flow"),
    ("loss.feature_warp", "model.generator.warp_refine.feature_warp"),
])
def test_an_override_of_a_key_from_before_the_sections_says_where_it_went(old, new):
    with pytest.raises(ValueError, match=f"^unknown config key '{old}' \\(now '{new}'\\)$"):
        configs.override(configs.cpu(), {old: 1})


def test_the_optical_flow_switch_went_away():
    """The data gives the optical flow when the generator's registry entry says its training needs it."""
    with pytest.raises(ValueError, match=r"^unknown config key 'data.optical_flow' \(no longer a setting\)$"):
        configs.override(configs.real(), {"data.optical_flow": True})


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "config.json"
    saved = configs.cpu().to_dict()
    saved["train"]["keep_checkpoints"] = 0
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=f"^{path}: train.keep_checkpoints=0: must be >= 1$"):
        configs.ExperimentConfig.from_json_file(str(path))
    path.write_text('{"data": ')
    with pytest.raises(ValueError, match=f"^{path}: Expecting value"):
        configs.ExperimentConfig.from_json_file(str(path))
    path.write_text('{"data": 5}')
    with pytest.raises(ValueError, match=f"^{path}: config.data: must be an object of fields, got 5$"):
        configs.ExperimentConfig.from_json_file(str(path))


def test_accepted_names_are_those_of_the_modules_that_use_them():
    from bigo_facegen import bigo_folder, keypoints
    from bigo_facegen.models import perceptual

    assert set(configs.PERCEPTUAL_BACKBONES) == set(perceptual.BACKBONES) | {"none"}
    assert set(configs.KEYPOINT_STYLES) == set(keypoints.STYLES)
    assert set(configs.LAYOUTS) == set(keypoints.LAYOUTS)
    assert set(configs.SPLITS) == set(bigo_folder.SPLITS)


def test_config_imports_no_tensorflow():
    """So that it names and checks everything without the heavy modules whose names it repeats."""
    code = "import sys, bigo_facegen.config; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_an_unknown_generator_is_refused_before_the_data_set_is_prepared(tmp_path):
    from bigo_facegen import data

    with pytest.raises(ValueError, match=r"^model.generator.type='tiny': must be one of \['stargan', 'warp_refine'\]$"):
        configs.override(configs.cpu(), {"model.generator.type": "tiny", "data.data_dir": str(tmp_path)})
    config = configs.override(configs.cpu(), {"data.data_dir": str(tmp_path)})
    config.model.generator.type = "tiny"  # built by hand, past `override`
    with pytest.raises(ValueError, match=r"^model.generator.type='tiny': must be one of \['stargan', 'warp_refine'\]$"):
        data.resolve_config(config)
    assert list(tmp_path.iterdir()) == []


def test_the_data_a_generator_needs_is_what_its_own_section_asks():
    """The optical flow for warp_refine's flow term when it is weighed, and for no stargan run whatever the inactive
    warp_refine section says."""
    from bigo_facegen.models import registry

    warp = configs.override(configs.cpu(), {"model.generator.type": "warp_refine"})
    assert registry.data_needs(warp.model) == frozenset()
    weighed = configs.override(warp, {"model.generator.warp_refine.flow": 5.0})
    assert registry.data_needs(weighed.model) == frozenset({"optical_flow"})
    assert registry.data_needs(configs.real().model) == frozenset({"optical_flow"})
    stargan = configs.override(weighed, {"model.generator.type": "stargan"})
    assert registry.data_needs(stargan.model) == frozenset()


def test_a_coarser_dense_motion_network_needs_a_crop_it_divides():
    warp = {"model.generator.type": "warp_refine", "model.generator.warp_refine.motion_downscale": 2}
    with pytest.raises(ValueError, match=r"^model.generator.warp_refine.motion_downscale=2: data.image_size=100 must "
                                         r"then be a multiple of 8$"):
        configs.override(configs.cpu(), {**warp, "data.image_size": 100})
    assert configs.override(configs.cpu(), {**warp, "data.image_size": 96}).data.image_size == 96
    # Only the chosen generator's section is held to the rest of the config.
    stargan = configs.override(configs.cpu(), {**warp, "model.generator.type": "stargan", "data.image_size": 100})
    assert stargan.model.generator.warp_refine.motion_downscale == 2


@pytest.mark.parametrize("name", ["cpu", "paper", "real"])
def test_a_preset_written_before_the_sections_loads_as_the_preset(name):
    written = json.loads((BEFORE_SECTIONS / f"{name}.json").read_text())
    assert isinstance(written["model"]["generator"], str)  # the layout of then
    assert configs.ExperimentConfig.from_dict(written) == configs.preset(name)


def test_every_lever_of_a_config_written_before_the_sections_lands_in_its_section(tmp_path):
    path = tmp_path / "config.json"
    path.write_text((BEFORE_SECTIONS / "warp_levers.json").read_text())
    config = configs.ExperimentConfig.from_json_file(str(path))
    assert config.model.generator.type == "warp_refine"
    assert config.model.generator.warp_refine == WarpRefineConfig(
        motion_correction=0.5, motion_downscale=1, decoder_mouth_mask=False, painted_l1=3.0, flow=5.0,
        feature_warp=8.0)
    assert config.loss.eyes_l1 == 2.0 and config.loss.mouth_l1 == 2.0
    assert config.data.dataset == "../shared/data/real_faces/dev"
    # Written again, it is today's layout, and reads back the same.
    assert configs.ExperimentConfig.from_dict(json.loads(config.to_json())) == config


def test_the_shipped_model_config_written_before_the_sections_loads_as_the_real_preset():
    from bigo_facegen import pretrained

    written = json.loads((pretrained.path() / "bigo_facegen.json").read_text())["config"]
    assert written["model"]["generator"] == "warp_refine" and written["data"]["optical_flow"] is True
    assert configs.ExperimentConfig.from_dict(written) == configs.override(configs.real(), {
        "data.dataset": "../shared/data/real_faces/dev", "data.layout": "ibug68", "data.split": "all"})


def test_a_config_of_before_the_sections_with_a_bad_value_names_the_field_where_it_is_now():
    written = json.loads((BEFORE_SECTIONS / "real.json").read_text())
    written["model"]["motion_downscale"] = 3
    with pytest.raises(ValueError, match=r"^model.generator.warp_refine.motion_downscale=3: must be one of \[1, 2\]$"):
        configs.ExperimentConfig.from_dict(written)
    written = json.loads((BEFORE_SECTIONS / "real.json").read_text())
    written["model"]["speed"] = 3
    with pytest.raises(ValueError, match=r"^config.model: unknown field\(s\) \['speed'\]"):
        configs.ExperimentConfig.from_dict(written)


@pytest.mark.parametrize("size", [0, -4, 30])
def test_check_image_size_is_the_rule_of_data_image_size(size):
    with pytest.raises(ValueError, match=f"^image_size={size}: {re.escape(configs.IMAGE_SIZE_RULE)}$"):
        configs.check_image_size(size)
    with pytest.raises(ValueError, match=f"^data.image_size={size}: {re.escape(configs.IMAGE_SIZE_RULE)}$"):
        configs.override(configs.cpu(), {"data.image_size": size})



def test_the_quick_start_preset_is_the_cpu_preset_with_the_recommended_generator():
    quick, cpu = configs.cpu_warp(), configs.cpu()
    assert quick.model.generator.type == "warp_refine" and quick.data.tier == "all"
    assert (quick.data.image_size, quick.model.conv_dim, quick.train.steps) == (
        cpu.data.image_size, cpu.model.conv_dim, cpu.train.steps)

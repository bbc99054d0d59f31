"""The experiment config: presets are valid, every bad value is refused where the config is built with a message naming
the field, the value and the rule, and the names it accepts are those of the modules that use them."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bigo_facegen import config as configs

REPO = Path(__file__).resolve().parents[1]


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
    ("model.generator", "", "must name a generator (one of models.GENERATORS)"),
    ("model.perceptual", "vgg19", "must be one of ['efficientnet_lite0', 'none', 'resnet50']"),
    ("model.conv_dim", 0, "must be >= 1"),
    ("model.res_blocks", -1, "must be >= 0"),
    ("model.motion_correction", 2.5, "must be in [0, 2] (a share of half the crop side)"),
    ("model.motion_downscale", 4, "must be one of [1, 2]"),
    ("loss.l1", -1.0, "must be a finite number >= 0"),
    ("loss.painted_l1", math.inf, "must be a finite number >= 0"),
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
])
def test_bad_values_are_refused_naming_field_value_and_rule(key, value, rule):
    with pytest.raises(ValueError) as caught:
        configs.override(configs.cpu(), {key: value})
    assert str(caught.value).startswith(f"{key}={value!r}: {rule}")
    # The same from a config.json.
    section, field = key.split(".")
    saved = configs.cpu().to_dict()
    saved[section][field] = value
    with pytest.raises(ValueError, match=f"^{key}="):
        configs.ExperimentConfig.from_dict(saved)


def test_every_rule_names_a_field():
    keys = {f"{section}.{field}" for section, values in configs.cpu().to_dict().items() for field in values}
    assert set(configs.RULES) <= keys and len(configs.RULES) > 30


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
    with pytest.raises(ValueError, match="unknown config key 'train.speed'"):
        configs.override(base, {"train.speed": 1})


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


def test_an_unregistered_generator_is_refused_before_the_data_set_is_prepared(tmp_path):
    from bigo_facegen import data

    config = configs.override(configs.cpu(), {"model.generator": "tiny", "data.data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"^model.generator='tiny': must be one of \['stargan', 'warp_refine'\]$"):
        data.resolve_config(config)
    assert list(tmp_path.iterdir()) == []


def test_a_flow_loss_needs_its_flow_and_a_generator_that_has_one(tmp_path):
    from bigo_facegen import data

    with pytest.raises(ValueError, match=r"^loss.flow=5.0 needs data.optical_flow=true"):
        configs.override(configs.cpu(), {"loss.flow": 5.0})
    config = configs.override(configs.cpu(), {"loss.flow": 5.0, "data.optical_flow": True,
                                              "data.data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"^loss.flow=5.0: the stargan generator has no flow to learn"):
        data.resolve_config(config)
    assert list(tmp_path.iterdir()) == []


def test_a_feature_warp_loss_needs_a_generator_with_warped_features(tmp_path):
    from bigo_facegen import data

    config = configs.override(configs.cpu(), {"loss.feature_warp": 8.0, "data.data_dir": str(tmp_path)})
    with pytest.raises(ValueError, match=r"^loss.feature_warp=8.0: the stargan generator has no flow to learn"):
        data.resolve_config(config)
    assert list(tmp_path.iterdir()) == []


def test_a_coarser_dense_motion_network_needs_a_crop_it_divides():
    with pytest.raises(ValueError, match=r"^model.motion_downscale=2: data.image_size=100 must then be a multiple of 8$"):
        configs.override(configs.cpu(), {"model.motion_downscale": 2, "data.image_size": 100})
    assert configs.override(configs.cpu(), {"model.motion_downscale": 2, "data.image_size": 96}).data.image_size == 96


@pytest.mark.parametrize("size", [0, -4, 30])
def test_check_image_size_is_the_rule_of_data_image_size(size):
    with pytest.raises(ValueError, match=f"^image_size={size}: {re.escape(configs.IMAGE_SIZE_RULE)}$"):
        configs.check_image_size(size)
    with pytest.raises(ValueError, match=f"^data.image_size={size}: {re.escape(configs.IMAGE_SIZE_RULE)}$"):
        configs.override(configs.cpu(), {"data.image_size": size})


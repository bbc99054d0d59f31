"""The generator contract: a generator defined here, known only by its own definition, its config section and its
registry entry, trains through the Trainer with a loss term of its own weighed in its section, exports, serves
through `serving_default` and generates a video."""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import checkpoints, config, export, generation, keypoints, losses, video
from bigo_facegen.config_rules import GeneratorSection, at_least
from bigo_facegen.face_model import FaceModel
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.models import registry
from bigo_facegen.models.contract import Capabilities, GeneratorSpec, from_unit, generator_inputs, to_unit
from bigo_facegen.training import Trainer

SIZE = 32
POINTS = 68
BATCH = 2


class TinyGenerator(keras.Model):
    """Reference crop, target keypoint map and the reference keypoints drawn as a heatmap -> a face, in two convs."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.hidden = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="hidden")
        self.head = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float32", name="head")

    def call(self, inputs, training=False):
        return self.compose(inputs, training=training)["image"]

    def compose(self, inputs: dict, training=False) -> dict:
        reference_map = keypoints.draw_map_tf(inputs["reference_points"], inputs["reference_flags"], SIZE,
                                              "heatmap", 1.0)
        x = keras.ops.concatenate([inputs["reference"], inputs["target_map"], reference_map], axis=-1)
        return {"image": self.head(self.hidden(x))}


@dataclasses.dataclass
class TinyConfig(GeneratorSection):
    width: int = 4
    # Weighs `smooth`, the tiny generator's own loss term: its face's mean absolute difference between neighbours.
    smooth: float = 0.0

    RULES = {"width": at_least(1)}
    LOSS_WEIGHTS = ("smooth",)


def smooth_term(section: TinyConfig, layers: dict, batch: dict, generator: keras.Model) -> dict:
    if not section.smooth:
        return {}
    image = layers["image"]
    return {"smooth": losses.l1(image[:, 1:], image[:, :-1])}


SPEC = GeneratorSpec(TinyConfig, lambda model_cfg, section, image_size, num_points: TinyGenerator(
    section.width, name="generator"), Capabilities(reads_reference_keypoints=True), loss_terms=smooth_term)


@dataclasses.dataclass
class WithTinyConfig(config.GeneratorConfig):
    """The one-of generator section with the tiny generator's beside the package's."""
    tiny: TinyConfig = dataclasses.field(default_factory=TinyConfig)


@pytest.fixture
def tiny_registered(monkeypatch):
    monkeypatch.setitem(registry.GENERATORS, "tiny", SPEC)
    # What `model.generator`'s sections are, by the name its type hint gives: config.json then reads back.
    monkeypatch.setattr(config, "GeneratorConfig", WithTinyConfig)


def batches(data_cfg, input_context):
    def image():
        return tf.random.uniform((BATCH, SIZE, SIZE, 3), -1.0, 1.0, seed=1)

    points = tf.random.uniform((BATCH, POINTS, 2), 0.0, SIZE, seed=2)
    flags = tf.fill((BATCH, POINTS), 2)
    return tf.data.Dataset.from_tensors({
        "reference": image(), "target": image(), "reference_map": image(), "target_map": image(),
        "reference_points": points, "target_points": points, "reference_flags": flags, "target_flags": flags,
    }).repeat()


def test_a_generator_defined_here_trains_exports_serves_and_generates(tiny_registered, real_faces_dir, tmp_path):
    base = config.preset("cpu")
    base.model.generator = WithTinyConfig()
    cfg = config.override(base, {
        "data.image_size": SIZE, "data.layout": "ibug68", "data.batch_per_replica": BATCH,
        "model.generator.type": "tiny", "model.generator.tiny.width": 3, "model.generator.tiny.smooth": 0.5,
        "model.conv_dim": 4, "model.critic_dim": 8, "model.critic_blocks": 2, "model.perceptual": "none",
        "train.steps": 1, "train.log_every": 1, "train.sample_every": 1, "train.checkpoint_every": 1})
    with pytest.raises(ValueError, match=r"^model.generator.tiny.width=0: must be >= 1$"):
        config.override(cfg, {"model.generator.tiny.width": 0})
    run = tmp_path / "run"
    trained = Trainer(cfg, run, batches).train()
    assert trained and all(np.isfinite(value) for value in trained.values())
    assert trained["generator_smooth"] > 0  # its own term, by its own name
    assert "generator_painted_l1" not in trained  # another generator's term
    grid = tf.io.decode_png((run / "samples" / "step-1.png").read_bytes())
    assert grid.shape == (BATCH * SIZE, 4 * SIZE, 3)

    version_dir = export.export_model(run, tmp_path / "export")
    sidecar = json.loads((version_dir / export.SIDECAR).read_text())
    assert sidecar["inputs"] == ["reference", "reference_keypoints", "target_keypoints"]
    assert sidecar["outputs"] == [export.OUTPUT]
    assert sidecar["spec"]["capabilities"] == {"reads_reference_keypoints": True, "repaint": False, "flow": False,
                                               "shares_reference": False, "fits_spline": False}
    assert sidecar["config"]["model"]["generator"]["tiny"] == {"width": 3, "smooth": 0.5}
    serve = tf.saved_model.load(str(version_dir)).signatures[export.SIGNATURE]
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (BATCH, SIZE, SIZE, 3), dtype=np.uint8)
    rows = np.concatenate([rng.uniform(0, SIZE, (BATCH, POINTS, 2)), np.full((BATCH, POINTS, 1), 2.0)], axis=-1)
    rows = rows.astype(np.float32)
    served = serve(reference=tf.constant(crops), reference_keypoints=tf.constant(rows),
                   target_keypoints=tf.constant(rows))
    assert sorted(served) == [export.OUTPUT]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"needs one crop per target_keypoints row set\]"):
        serve(reference=tf.constant(crops[:1]), reference_keypoints=tf.constant(rows[:1]),
              target_keypoints=tf.constant(rows))

    generator, trained_cfg = checkpoints.load_generator(run)
    assert trained_cfg == cfg and generator.hidden.filters == 3
    settings = export.ServingSpec.from_config(trained_cfg).map_settings
    expected = generator(generator_inputs(to_unit(crops), rows[..., :2], rows[..., 2], settings,
                                          reference_points=rows[..., :2], reference_flags=rows[..., 2]))
    difference = served[export.OUTPUT].numpy().astype(np.float32) - from_unit(expected.numpy())
    assert np.abs(difference).max() <= 0.5 + 1e-3

    out = tmp_path / "out.mp4"
    stats = generation.generate_from_annotations(version_dir, real_faces_dir / "annotations.json", "dpe_d", out,
                                                 max_frames=3, progress=False,
                                                 settings=GenerationSettings(copy_threshold=0.0))
    assert (stats.frames, stats.generated) == (3, 3)
    assert video.probe(out).frame_count == 3
    assert FaceModel.load(version_dir).default_fusion == "shift"

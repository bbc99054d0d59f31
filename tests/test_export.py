"""SavedModel export: versioned folders, the serving signature as TF Serving sees it, same faces as the Keras model."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import (
    annotations,
    checkpoints,
    config,
    export,
    files,
    geometry,
    keypoints,
    pretrained,
    training,
    video,
)
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.models import registry
from bigo_facegen.models.contract import Capabilities
from tests.older_exports import older_copy

SIZE = 32


def _tiny_config():
    return config.override(config.preset("cpu"), {
        "data.image_size": SIZE, "data.layout": "ibug68", "data.batch_per_replica": 2, "model.conv_dim": 8,
        "model.res_blocks": 1, "model.critic_dim": 8, "model.critic_blocks": 2, "train.steps": 2,
        "train.log_every": 1, "train.checkpoint_every": 2, "train.sample_every": 1000})


def _batches(input_context, data_cfg=None):
    """Batches of `data.make_dataset`'s layout, random content: two steps only need the shapes right."""
    b, n = 2, 68
    image = lambda: tf.random.uniform((b, SIZE, SIZE, 3), -1.0, 1.0, seed=1)
    points = lambda: tf.random.uniform((b, n, 2), 0.0, SIZE, seed=2)
    return tf.data.Dataset.from_tensors({
        "reference": image(), "target": image(), "reference_map": image(), "target_map": image(),
        "reference_points": points(), "target_points": points(),
        "reference_flags": tf.fill((b, n), 2), "target_flags": tf.fill((b, n), 2)}).repeat()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for two steps by the real Trainer, and its generator as checkpoints.load_generator gives
    it."""
    model_dir = tmp_path_factory.mktemp("run")
    training.Trainer(_tiny_config(), model_dir, _batches).train()
    generator, cfg = checkpoints.load_generator(model_dir)
    return model_dir, cfg, generator


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model_dir, _, _ = trained
    export_dir = tmp_path_factory.mktemp("exports") / "face"
    return export_dir, export.export_model(model_dir, export_dir)


@pytest.fixture(scope="module")
def serving(exported):
    """The stargan export's `serving_default`, as TF Serving calls it."""
    return tf.saved_model.load(str(exported[1])).signatures["serving_default"]


@pytest.fixture(scope="module")
def warp_export(tmp_path_factory):
    """An untrained warp-style generator (takes the reference keypoints, answers the repaint mask too), exported, with
    the `real` preset's half-resolution motion and decoder reading the target's mouth."""
    cfg = config.override(_tiny_config(), {"model.generator.type": "warp_refine",
                                           "model.generator.warp_refine.motion_downscale": 2,
                                           "model.generator.warp_refine.decoder_mouth_mask": True})
    generator = registry.build_generator(cfg.model, SIZE, 68)
    export_dir = tmp_path_factory.mktemp("warp_exports")
    version_dir = export.export(generator, cfg, export_dir)
    return export_dir, version_dir, generator, tf.saved_model.load(str(version_dir)).signatures["serving_default"]


@pytest.fixture(scope="module")
def real_batch(real_faces_dir):
    """Three real faces of one clip: the first frame's crop as reference, the keypoints of frames 1, 20 and 40."""
    entry = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["eamm_fear.mp4"]
    frames = video.read_all(real_faces_dir / entry.video_path)
    reference = entry.frames[0]
    crop, _ = geometry.crop(frames[0], reference.bbox, SIZE)
    rows = []
    for target in (entry.frames[0], entry.frames[19], entry.frames[39]):
        points = geometry.apply_affine(target.points, geometry.crop_matrix(target.bbox, SIZE))
        rows.append(np.concatenate([points, target.flags[:, None]], axis=1))
    return np.repeat(crop[None], 3, axis=0), np.stack(rows).astype(np.float32)


def _keras_faces(generator, cfg, crops, rows):
    face = crops.astype(np.float32) / 127.5 - 1.0
    target_map = keypoints.draw_map_tf(rows[..., :2], rows[..., 2].astype(np.int32), SIZE, cfg.data.keypoint_style,
                                       cfg.data.dot_radius, keypoints.IBUG68)
    out = generator({"reference": face, "target_map": target_map}, training=False).numpy()
    return (out + 1.0) * 127.5


def test_export_writes_a_versioned_saved_model_with_sidecar(exported, trained):
    export_dir, version_dir = exported
    assert version_dir == export_dir / "1"
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]  # no temporary folder left behind
    sidecar = json.loads((version_dir / export.SIDECAR).read_text())
    assert sidecar["inputs"] == ["reference", "target_keypoints"] and sidecar["outputs"] == ["generated"]
    assert sidecar["spec"]["image_size"] == SIZE and sidecar["spec"]["layout"] == "ibug68"
    assert sidecar["spec"]["num_points"] == 68
    assert config.ExperimentConfig.from_dict(sidecar["config"]) == trained[1]
    assert sidecar["spec"]["keypoint_style"] == trained[1].data.keypoint_style
    # What the generator reads and produces, once, as its registry entry declares it; compiled inference beside it.
    assert sidecar["spec"]["capabilities"] == {"reads_reference_keypoints": False, "repaint": False, "flow": False,
                                               "shares_reference": True, "fits_spline": False}
    assert sidecar["spec"]["compiled"] is True
    assert export.read_sidecar(version_dir).spec == export.ServingSpec.from_config(trained[1])


def test_next_version_and_no_overwrite(trained, tmp_path):
    model_dir, cfg, generator = trained
    assert export.export(generator, cfg, tmp_path, version=4) == tmp_path / "4"
    assert export.next_version(tmp_path) == 5
    assert export.export(generator, cfg, tmp_path) == tmp_path / "5"
    with pytest.raises(export.ExportError, match="version 4 already exists"):
        export.export(generator, cfg, tmp_path, version=4)
    with pytest.raises(export.ExportError, match="positive integer"):
        export.export(generator, cfg, tmp_path, version=0)


def test_version_folders_get_the_mode_mkdir_gives(trained, tmp_path):
    _, cfg, generator = trained
    previous = os.umask(0o027)  # neither mkdtemp's 0700 nor a fixed 0755
    try:
        version_dir = export.export(generator, cfg, tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(version_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((version_dir / export.SIDECAR).stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_serving_default_matches_the_keras_model(exported, trained, real_batch):
    _, version_dir = exported
    _, cfg, generator = trained
    crops, rows = real_batch
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = serve(reference=tf.constant(crops), target_keypoints=tf.constant(rows))
    assert list(out) == ["generated"]
    generated = out["generated"].numpy()
    assert generated.dtype == np.uint8 and generated.shape == (3, SIZE, SIZE, 3)
    expected = _keras_faces(generator, cfg, crops, rows)
    assert np.abs(generated.astype(np.float32) - expected).max() <= 0.5 + 1e-3  # uint8 rounding only
    assert np.abs(generated[0].astype(int) - generated[2].astype(int)).max() > 0  # the keypoints matter


def test_saved_model_cli_shows_the_signature(exported):
    _, version_dir = exported
    shown = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(version_dir),
         "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True).stdout
    blocks = {name: block for name, block in
              (chunk.split("]", 1) for chunk in shown.split("['")[1:])}
    assert set(blocks) == {"reference'", "target_keypoints'", "generated'"}
    assert "DT_UINT8" in blocks["reference'"] and f"(-1, {SIZE}, {SIZE}, 3)" in blocks["reference'"]
    assert "DT_FLOAT" in blocks["target_keypoints'"] and "(-1, 68, 3)" in blocks["target_keypoints'"]
    assert "DT_UINT8" in blocks["generated'"] and f"(-1, {SIZE}, {SIZE}, 3)" in blocks["generated'"]
    assert "Method name is: tensorflow/serving/predict" in shown


@pytest.mark.parametrize("reference_shape, rows_shape, message", [
    ((3, SIZE - 1, SIZE, 3), (3, 68, 3), rf"bad input reference: shape must be \(batch, {SIZE}, {SIZE}, 3\)"),
    ((3, SIZE, SIZE, 3), (3, 106, 3), r"bad input target_keypoints: shape must be \(batch, 68, 3\).*ibug68"),
    ((3, SIZE, SIZE, 3), (2, 68, 3), r"bad input reference: needs one crop per target_keypoints row set, or one"),
])
def test_wrong_shapes_are_rejected_with_a_readable_message(serving, reference_shape, rows_shape, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serving(reference=tf.zeros(reference_shape, tf.uint8), target_keypoints=tf.zeros(rows_shape))


def test_one_reference_crop_serves_every_target_of_the_batch(serving, warp_export, real_batch):
    """A single reference crop (and its keypoints) with three targets gives the faces that the crop repeated for each
    target gives: the same up to one level, the float rounding of a convolution run at another batch size."""
    crops, rows = real_batch
    one, repeated = tf.constant(crops[:1]), tf.constant(np.repeat(crops[:1], len(rows), axis=0))
    targets = tf.constant(rows)
    for serve, reference_rows in ((serving, {}), (warp_export[3], {"reference_keypoints": rows[:1]})):
        repeated_rows = {name: np.repeat(value, len(rows), axis=0) for name, value in reference_rows.items()}
        shared = serve(reference=one, target_keypoints=targets, **reference_rows)
        each = serve(reference=repeated, target_keypoints=targets, **repeated_rows)
        for name, value in each.items():
            assert shared[name].shape == value.shape == (len(rows), *value.shape[1:])
            difference = np.abs(shared[name].numpy().astype(np.float64) - value.numpy())
            assert difference.max() <= (1 if value.dtype == tf.uint8 else 1e-3), name
        assert np.ptp(each["generated"].numpy(), axis=0).max() > 0  # the targets do differ
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad input reference_keypoints: needs as many row sets"):
        warp_export[3](reference=one, reference_keypoints=tf.constant(rows), target_keypoints=targets)


def _spoiled(rows, column, value):
    rows = rows.copy()
    rows[1, 7, column] = value
    return tf.constant(rows)


NOT_FINITE = r"bad input {}: x, y and flag must be finite numbers"
BAD_FLAG = r"bad input {}: every flag must be 0 \(absent\), 1 \(occluded\) or 2 \(visible\)"


@pytest.mark.parametrize("column, value, message", [
    (0, np.nan, NOT_FINITE), (1, np.inf, NOT_FINITE), (0, -np.inf, NOT_FINITE), (2, np.nan, NOT_FINITE),
    (2, 3.0, BAD_FLAG), (2, -1.0, BAD_FLAG), (2, 1.5, BAD_FLAG),
])
def test_bad_keypoint_values_are_rejected_naming_the_input(serving, warp_export, real_batch, column, value, message):
    crops, rows = real_batch
    assert set(np.unique(rows[..., 2])) <= {0.0, 1.0, 2.0}  # the real rows alone pass
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.format("target_keypoints")):
        serving(reference=tf.constant(crops), target_keypoints=_spoiled(rows, column, value))
    warp_serving = warp_export[3]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.format("reference_keypoints")):
        warp_serving(reference=tf.constant(crops), reference_keypoints=_spoiled(rows, column, value),
                     target_keypoints=tf.constant(rows))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.format("target_keypoints")):
        warp_serving(reference=tf.constant(crops), reference_keypoints=tf.constant(rows),
                     target_keypoints=_spoiled(rows, column, value))


def test_an_empty_batch_gets_empty_outputs(serving, warp_export):
    rows = tf.zeros((0, 68, 3))
    out = serving(reference=tf.zeros((0, SIZE, SIZE, 3), tf.uint8), target_keypoints=rows)
    assert out["generated"].shape == (0, SIZE, SIZE, 3) and out["generated"].dtype == tf.uint8
    out = warp_export[3](reference=tf.zeros((0, SIZE, SIZE, 3), tf.uint8), reference_keypoints=rows,
                         target_keypoints=rows)
    assert out["generated"].shape == (0, SIZE, SIZE, 3) and out["generated"].dtype == tf.uint8
    assert out["repaint"].shape == (0, SIZE, SIZE, 1) and out["repaint"].dtype == tf.float32


def test_warp_style_generators_also_take_the_reference_keypoints(warp_export, real_batch):
    export_dir, version_dir, generator, serve = warp_export
    assert json.loads((version_dir / export.SIDECAR).read_text())["inputs"] == [
        "reference", "reference_keypoints", "target_keypoints"]
    crops, rows = real_batch
    reference_rows = np.repeat(rows[:1], 3, axis=0)  # the reference crop is frame 1, whose keypoints are rows[0]
    # The served graph must carry the decoder's mouth input: some target here opens its mouth.
    assert keypoints.mouth_mask_tf(rows[..., :2], rows[..., 2], SIZE).numpy().sum() > 0
    assert json.loads((version_dir / export.SIDECAR).read_text())["outputs"] == ["generated", "repaint", "flow"]
    served = serve(reference=tf.constant(crops), reference_keypoints=tf.constant(reference_rows),
                   target_keypoints=tf.constant(rows))
    flags = lambda r: r[..., 2].astype(np.int32)
    expected = generator.compose({"reference": crops.astype(np.float32) / 127.5 - 1.0, "target_map": np.zeros_like(
                                  crops, np.float32), "reference_points": reference_rows[..., :2], "reference_flags":
                                  flags(reference_rows), "target_points": rows[..., :2], "target_flags": flags(rows)},
                                 training=False)
    generated = served["generated"].numpy().astype(np.float32)
    assert np.abs(generated - (expected["image"].numpy() + 1.0) * 127.5).max() <= 0.5 + 1e-3
    np.testing.assert_allclose(served["repaint"], expected["repaint"], atol=1e-5)
    model = FaceModel.load(export_dir)
    with pytest.raises(GenerationError, match="needs the reference points"):
        model.generate(crops, rows[..., :2], rows[..., 2])


def test_the_warp_export_records_a_repaint_and_a_flow_and_serves_both(warp_export):
    sidecar = json.loads((warp_export[1] / export.SIDECAR).read_text())
    assert sidecar["spec"]["capabilities"] == {"reads_reference_keypoints": True, "repaint": True, "flow": True,
                                               "shares_reference": True, "fits_spline": True}
    assert sidecar["outputs"] == [export.OUTPUT, export.REPAINT_OUTPUT, export.FLOW_OUTPUT]


@pytest.mark.parametrize("fixture", ["exported", "warp_export"])
def test_an_export_whose_sidecar_has_flat_flags_loads_with_the_same_capabilities(fixture, request, tmp_path):
    """The layout of the shipped model's sidecar: `has_repaint` stood for the repaint and the flow outputs both."""
    version_dir = request.getfixturevalue(fixture)[1]
    loaded = export.load(older_copy(version_dir, tmp_path / "1"))
    assert loaded.spec == export.read_sidecar(version_dir).spec
    assert loaded.spec.output_names == tuple(json.loads((version_dir / export.SIDECAR).read_text())["outputs"])


@pytest.mark.parametrize("fixture", ["exported", "warp_export"])
def test_an_export_without_has_repaint_in_its_sidecar_still_loads(fixture, request, tmp_path):
    """Sidecars written before the registry declared `has_repaint`: the repaint and flow outputs went with the
    reference keypoints."""
    version_dir = request.getfixturevalue(fixture)[1]
    capabilities = export.load(older_copy(version_dir, tmp_path / "1", without=("has_repaint",))).spec.capabilities
    assert capabilities.repaint == capabilities.flow == capabilities.reads_reference_keypoints
    assert capabilities == export.read_sidecar(version_dir).spec.capabilities


def test_the_shipped_model_sidecar_of_flat_flags_reads_as_its_generator_declares():
    spec = export.read_sidecar(pretrained.path()).spec
    assert spec.capabilities == registry.GENERATORS["warp_refine"].capabilities
    assert spec.compiled and spec.output_names == (export.OUTPUT, export.REPAINT_OUTPUT, export.FLOW_OUTPUT)


def test_a_hand_written_sidecar_of_the_first_exports_reads_with_their_defaults():
    """The first exports' spec: no `has_repaint`, `shared_reference`, `fits_spline` nor `compiled`."""
    first = {"image_size": 96, "layout": "ibug68", "num_points": 68, "keypoint_style": "dots", "dot_radius": 1.0,
             "reads_reference_keypoints": True}
    spec = export.ServingSpec.from_sidecar(first)
    assert spec == export.ServingSpec(96, "ibug68", 68, "dots", 1.0, Capabilities(
        reads_reference_keypoints=True, repaint=True, flow=True, shares_reference=False, fits_spline=False),
        compiled=False)
    without_keypoints = export.ServingSpec.from_sidecar({**first, "reads_reference_keypoints": False})
    assert without_keypoints.capabilities == Capabilities(reads_reference_keypoints=False)
    assert without_keypoints.output_names == (export.OUTPUT,)


def test_face_model_loads_export_and_model_dir_alike(exported, trained, real_batch):
    export_dir, _ = exported
    model_dir, _, _ = trained
    crops, rows = real_batch
    from_export = FaceModel.load(export_dir)
    from_checkpoint = FaceModel.load(model_dir)
    assert from_export.image_size == from_checkpoint.image_size == SIZE
    assert from_export.num_points == from_checkpoint.num_points == 68
    a = from_export.generate(crops, rows[..., :2], rows[..., 2])
    b = from_checkpoint.generate(crops, rows[..., :2], rows[..., 2])
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(GenerationError, match=r"target points must be \(3, 68, 2\)"):
        from_export.generate(crops, rows[:, :60, :2], rows[:, :60, 2])


def test_loading_something_else_fails_clearly(tmp_path):
    with pytest.raises(GenerationError, match="no such model"):
        FaceModel.load(tmp_path / "missing")
    with pytest.raises(GenerationError, match="neither an export"):
        FaceModel.load(tmp_path)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(export.ExportError, match="no bigo_facegen.json"):
        export.load(tmp_path)


def test_export_dir_is_checked_before_the_checkpoint_is_loaded(tmp_path):
    (tmp_path / "exports").write_text("kept")
    face = tmp_path / "exports" / "face"
    # No model_dir at all: only a check made before loading can speak first.
    with pytest.raises(files.OutputPathError, match=f"^export_dir {face}: {tmp_path / 'exports'} is a file, not a "
                                                   f"folder$"):
        export.export_model(tmp_path / "no_run", face)
    assert os.listdir(tmp_path) == ["exports"] and (tmp_path / "exports").read_text() == "kept"


def test_export_entry_point(trained, tmp_path):
    model_dir, _, _ = trained
    for expected in ("1", "2"):
        done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model_dir={model_dir}",
                               f"--export_dir={tmp_path}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().endswith(f"/{expected}")
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model_dir={tmp_path / 'nothing'}",
                           f"--export_dir={tmp_path}"], capture_output=True, text=True)
    assert done.returncode != 0 and "error:" in done.stderr and "config.json" in done.stderr


def test_compiled_inference_gives_the_faces_of_serving_default(exported, warp_export, real_batch, tmp_path):
    """Each export loaded as `generate --xla` loads it: under XLA, with the warp generator's spline fitted outside by
    `prepare`, the outputs of `serving_default` within one level (XLA orders the arithmetic its own way), for one
    crop shared by three targets and for a crop per target, with the same input checks. The compiled network reads
    the spline it is given; an export written before compiled inference is refused."""
    crops, rows = real_batch
    for version_dir in (exported[1], warp_export[1]):
        plain = FaceModel.load(version_dir)
        compiled = FaceModel.load(version_dir, compiled=True)
        for reference in (crops[:1], crops):
            args = (reference, rows[..., :2], rows[..., 2], rows[:len(reference), :, :2], rows[:len(reference), :, 2])
            expected, got = plain.run(*args), compiled.run(*args)
            assert list(got) == list(expected)
            for name, value in expected.items():
                difference = np.abs(got[name].astype(np.float64) - value)
                assert difference.max() <= (1 if value.dtype == np.uint8 else 1e-3), (version_dir, name)
        # Two targets after three: padded to the three compiled for, not compiled again.
        args = (crops[:1], rows[:2, :, :2], rows[:2, :, 2], rows[:1, :, :2], rows[:1, :, 2])
        expected, got = plain.run(*args), compiled.run(*args)
        assert got["generated"].shape == (2, SIZE, SIZE, 3) and compiled._compiled_batches == {3}
        assert np.abs(got["generated"].astype(int) - expected["generated"]).max() <= 1
        spoiled = rows.copy()
        spoiled[1, 7, 0] = np.nan
        with pytest.raises(tf.errors.InvalidArgumentError, match=NOT_FINITE.format("target_keypoints")):
            compiled.run(crops, spoiled[..., :2], spoiled[..., 2], rows[..., :2], rows[..., 2])

    saved_model = tf.saved_model.load(str(warp_export[1]))
    inputs = {"reference": tf.constant(crops), "reference_keypoints": tf.constant(np.repeat(rows[:1], 3, axis=0)),
              "target_keypoints": tf.constant(rows)}
    prepared = saved_model.prepare(**inputs)
    assert list(prepared) == [export.SPLINE] and prepared[export.SPLINE].shape == (3, 68 + 3, 2)
    fitted = saved_model.compiled(**inputs, **prepared)["flow"].numpy()
    unmoved = saved_model.compiled(**inputs, spline=tf.zeros_like(prepared[export.SPLINE]))["flow"].numpy()
    assert np.abs(fitted - unmoved).max() > 1.0  # the faces moved: the spline given is the one used

    old = older_copy(warp_export[1], tmp_path / "old", without=("compiled", "fits_spline"))
    assert not FaceModel.load(old).spec.compiled
    with pytest.raises(GenerationError, match="predates compiled inference; export its model_dir again"):
        FaceModel.load(old, compiled=True)


def test_the_shipped_export_refuses_what_its_signature_would_cast_and_serves_as_before():
    """The checks are the caller's (`export.check_request`), so an export written before them, the shipped one,
    refuses a float crop that its signature would wrap round into uint8, and serves a right request as it always
    did (the signature called directly)."""
    from bigo_facegen import pretrained

    loaded = export.load(pretrained.path())
    s, n = loaded.spec.image_size, loaded.spec.num_points
    crop = np.random.default_rng(0).integers(0, 256, (1, s, s, 3), dtype=np.uint8)
    rows = np.concatenate([np.random.default_rng(1).uniform(0.3 * s, 0.7 * s, (1, n, 2)), np.full((1, n, 1), 2)],
                          axis=-1).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"^bad input reference: must be uint8 of shape "
                                                             rf"\(batch, {s}, {s}, 3\), got float64"):
        loaded.serve(reference=crop.astype(np.float64) * 300, reference_keypoints=rows, target_keypoints=rows)
    served = loaded.serve(reference=crop, reference_keypoints=rows, target_keypoints=rows)
    direct = loaded.saved_model.signatures[export.SIGNATURE](reference=crop, reference_keypoints=rows,
                                                             target_keypoints=rows)
    assert served.keys() == direct.keys()
    for name in served:
        np.testing.assert_array_equal(served[name].numpy(), direct[name].numpy(), err_msg=name)

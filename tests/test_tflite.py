"""TFLite export: the converted serving graph beside the SavedModel, loaded like it, its faces on real dev crops; the
shipped model's TFLite forms against it, made by the export command, and animating with one."""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import annotations, config, export, geometry, pretrained, tflite, video
from bigo_facegen.face_model import FaceModel
from bigo_facegen.models import registry
from tests import test_export
from tests.test_export import SIZE

REPO = Path(__file__).resolve().parents[1]

# test_export's fixtures, shared: pytest finds a fixture by its name in the test's module.
trained, real_batch = test_export.trained, test_export.real_batch

# int8 (dynamic range) against the SavedModel: mean absolute difference in pixel levels on the real crops. Weights are
# rounded to 255 levels per output channel and each convolution's input to 255 levels of its own range per call, so
# every output pixel carries the rounding of the whole chain of convolutions: 1.3 levels measured on this model (and
# 1.4 at the cpu preset, `benchmarks.formats`). 3 levels (1.2% of the range) is twice that and still fails a
# conversion that draws the keypoint map wrong (full-integer quantization of the keypoint rows: 58 levels).
INT8_MEAN_LEVELS = 3.0
# The shipped model's TFLite float32 and float16 forms against its SavedModel on real crops, in pixel levels: the
# mean and the 99.9th percentile of the absolute differences (the bound; measured: float32 0.000 and 0,
# float16 0.014 and 1 on 120 faces of 10 clips).
SHIPPED_MEAN_LEVELS, SHIPPED_P999_LEVELS = 1.0, 3.0
# Dev clips whose first face is the reference of 8 of its later frames' keypoints: people, poses and mouths apart.
SHIPPED_CLIPS = ("dpe_d", "eamm_fear", "lp_d3", "mead_W009_happy", "pcavs_00086", "sadtalker_BobMenendez")


@pytest.fixture(scope="module")
def tflite_exports(trained, tmp_path_factory):
    """One export version per quantization of the tiny stargan."""
    _, cfg, generator = trained
    export_dir = tmp_path_factory.mktemp("tflite_exports")
    return {quantize: tflite.export_generator(generator, cfg, export_dir, quantize=quantize)
            for quantize in tflite.QUANTIZATIONS}


@pytest.fixture(scope="module")
def warp_generator():
    """A tiny untrained warp_refine generator and its config."""
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": "ibug68",
                                                  "model.generator.type": "warp_refine", "model.conv_dim": 8,
                                                  "model.res_blocks": 1})
    return registry.build_generator(cfg.model, SIZE, 68), cfg


@pytest.fixture(scope="module")
def shipped_tflite(tmp_path_factory):
    """The shipped model written again with each TFLite form beside its SavedModel, one version per quantization."""
    export_dir = tmp_path_factory.mktemp("shipped_tflite")
    return {quantize: tflite.export_model(pretrained.NAME, export_dir, quantize=quantize)
            for quantize in tflite.QUANTIZATIONS}


@pytest.fixture(scope="module")
def shipped_inputs(real_faces_dir):
    """`FaceModel.generate`'s arguments for each of `SHIPPED_CLIPS`, at the shipped model's crop size: the crop of the
    clip's first face and its keypoints, and the keypoints of 8 later frames, in crop pixels."""
    size = export.read_sidecar(pretrained.path()).spec.image_size
    entries = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}
    inputs = []
    for clip in SHIPPED_CLIPS:
        faces = entries[f"{clip}.mp4"].face_frames()
        reference, targets = faces[0], faces[5::len(faces) // 8][:8]
        crop, matrix = geometry.crop(video.read_frame(real_faces_dir / entries[f"{clip}.mp4"].video_path,
                                                      reference.index), reference.bbox, size)
        points = np.stack([geometry.apply_affine(t.points, geometry.crop_matrix(t.bbox, size)) for t in targets])
        inputs.append((crop[None], points, np.stack([t.flags for t in targets]),
                       geometry.apply_affine(reference.points, matrix)[None], reference.flags[None]))
    return inputs


def _faces(model, crops, rows):
    return model.generate(crops, rows[..., :2], rows[..., 2]).astype(np.float32)


def test_each_version_holds_the_saved_model_and_its_tflite_file(tflite_exports):
    for quantize, version_dir in tflite_exports.items():
        sidecar = json.loads((version_dir / export.SIDECAR).read_text())
        assert sidecar["tflite"] == {"file": tflite.FILE_NAMES[quantize], "quantize": quantize,
                                     "batch": tflite.BATCH}
        assert sorted(p.name for p in version_dir.iterdir()) == sorted(
            [export.SIDECAR, "saved_model.pb", "variables", "assets", "fingerprint.pb", tflite.FILE_NAMES[quantize]])
    sizes = {q: (d / tflite.FILE_NAMES[q]).stat().st_size for q, d in tflite_exports.items()}
    assert sizes["int8"] < sizes["float16"] < 0.7 * sizes["none"], sizes  # a tiny model: the graph weighs too


def test_tflite_faces_match_the_saved_model_on_real_crops(tflite_exports, real_batch):
    crops, rows = real_batch
    expected = _faces(FaceModel.load(tflite_exports["none"]), crops, rows)
    errors = {}
    for quantize, version_dir in tflite_exports.items():
        model = FaceModel.load(version_dir / tflite.FILE_NAMES[quantize])
        assert (model.image_size, model.num_points, model.source) == (SIZE, 68, str(version_dir / tflite.FILE_NAMES[
            quantize]))
        errors[quantize] = np.abs(_faces(model, crops, rows) - expected).mean()
    # float32 and float16 weights: the same arithmetic in another order, then uint8 rounding
    assert errors["none"] <= 1.0 and errors["float16"] <= 1.0, errors
    assert errors["int8"] <= INT8_MEAN_LEVELS, errors


def test_the_runner_checks_inputs_as_the_saved_model_does(tflite_exports, real_batch):
    crops, rows = real_batch
    version_dir = tflite_exports["none"]
    served = tflite.load(version_dir / "float32.tflite").serve
    saved = export.load(version_dir).serve
    spoiled = rows.copy()
    spoiled[1, 7, 2] = 3.0
    for serve in (served, saved):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"bad input target_keypoints: every flag must be 0"):
            serve(reference=tf.constant(crops), target_keypoints=tf.constant(spoiled))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"bad input reference: shape must be \(batch, 32"):
            serve(reference=tf.constant(crops[:, 1:]), target_keypoints=tf.constant(rows))
    empty = served(reference=np.zeros((0, SIZE, SIZE, 3), np.uint8),
                   target_keypoints=np.zeros((0, 68, 3), np.float32))
    assert empty["generated"].shape == (0, SIZE, SIZE, 3) and empty["generated"].dtype == np.uint8
    one = served(reference=crops[:1], target_keypoints=rows[:1])["generated"]  # the batch changes: tensors resized
    three = served(reference=crops, target_keypoints=rows)["generated"]
    assert np.abs(one[0].astype(int) - three[0].astype(int)).max() <= 1
    shared = served(reference=crops[:1], target_keypoints=rows)["generated"]  # one crop for the three targets
    assert shared.shape == three.shape and np.abs(shared.astype(int) - three.astype(int)).max() <= 1
    for serve in (served, saved):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"bad input reference: needs one crop per"):
            serve(reference=tf.constant(crops[:2]), target_keypoints=tf.constant(rows))


def test_a_request_of_another_dtype_rank_or_inputs_is_refused_naming_the_input(tflite_exports, real_batch):
    """A SavedModel signature called from Python converts its inputs to its dtypes before its graph can check them
    (a float crop of 0..76500 wrapped round into uint8, int32 or float64 keypoints cast), and TFLite's interpreter
    answers with its own errors: both Python callers refuse such a request first, in one line naming the input."""
    crops, rows = real_batch
    version_dir = tflite_exports["none"]
    crop_shape, rows_shape = rf"\(batch, {SIZE}, {SIZE}, 3\)", r"\(batch, 68, 3\)"
    refused = [
        ({"reference": crops.astype(np.float64) * 300, "target_keypoints": rows},
         rf"bad input reference: must be uint8 of shape {crop_shape}, got float64 of shape \(3, {SIZE}, {SIZE}, 3\)"),
        ({"reference": crops[0], "target_keypoints": rows},
         rf"bad input reference: must be uint8 of shape {crop_shape}, got uint8 of shape \({SIZE}, {SIZE}, 3\)"),
        ({"reference": crops, "target_keypoints": rows.astype(np.int32)},
         rf"bad input target_keypoints: must be float32 of shape {rows_shape}, got int32 of shape \(3, 68, 3\)"),
        ({"reference": crops, "target_keypoints": rows.astype(np.float64)},
         rf"bad input target_keypoints: must be float32 of shape {rows_shape}, got float64 of shape \(3, 68, 3\)"),
        ({"reference": crops}, "bad input target_keypoints: missing; this model takes reference, target_keypoints"),
        ({"reference": crops, "target_keypoints": rows, "reference_keypoints": rows},
         "bad input reference_keypoints: unknown; this model takes reference, target_keypoints"),
        ({"reference": None, "target_keypoints": rows}, r"bad input reference: not an array \(Attempt to convert"),
    ]
    for serve in (tflite.load(version_dir / "float32.tflite").serve, export.load(version_dir).serve):
        for inputs, message in refused:
            with pytest.raises(tf.errors.InvalidArgumentError, match=f"^{message}"):
                serve(**inputs)
        assert serve(reference=crops, target_keypoints=rows)["generated"].shape == (3, SIZE, SIZE, 3)


def test_a_tflite_file_the_sidecar_does_not_name_is_refused(tflite_exports, tmp_path):
    version_dir = tmp_path / "1"
    shutil.copytree(tflite_exports["float16"], version_dir)
    shutil.copy(tflite_exports["none"] / "float32.tflite", version_dir)
    with pytest.raises(tflite.TFLiteError, match=r"not the TFLite file of the export.*names float16.tflite"):
        tflite.load(version_dir / "float32.tflite")
    with pytest.raises(tflite.TFLiteError, match="no such TFLite file"):
        tflite.load(version_dir / "int8.tflite")
    (version_dir / "float16.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(tflite.TFLiteError, match="float16.tflite: not a readable TFLite model"):
        FaceModel.load(version_dir / "float16.tflite")


def test_a_file_of_an_open_batch_written_before_loads_and_serves_a_batch_in_one_call(trained, real_batch, tmp_path):
    """Files converted before `tflite.BATCH` have an open batch and no batch in their sidecar entry: they still load
    and give the SavedModel's faces, the whole batch in one call; a batch the runner does not know is refused."""
    _, cfg, generator = trained
    module = export.ServingModule(generator, export.ServingSpec.from_config(cfg))
    content = tflite.convert(module, "none", batch=None)
    version_dir = export.export(generator, cfg, tmp_path, extra_files={"float32.tflite": content},
                                sidecar_entries={tflite.SIDECAR_ENTRY: {"file": "float32.tflite", "quantize": "none"}})
    loaded = tflite.load(version_dir / "float32.tflite")
    assert loaded.serve.__self__.batch is None
    crops, rows = real_batch
    faces = _faces(FaceModel.load(version_dir / "float32.tflite"), crops, rows)
    assert np.abs(faces - _faces(FaceModel.load(version_dir), crops, rows)).max() <= 1
    sidecar = json.loads((version_dir / export.SIDECAR).read_text())
    sidecar[tflite.SIDECAR_ENTRY]["batch"] = 8
    (version_dir / export.SIDECAR).write_text(json.dumps(sidecar))
    with pytest.raises(tflite.TFLiteError, match="float32.tflite: converted at batch 8; this version of bigo-facegen "
                                                 "runs TFLite files of batch 1 or of an open batch"):
        FaceModel.load(version_dir / "float32.tflite")


def test_a_network_that_fits_its_spline_itself_is_refused_naming_what_tflite_lacks(warp_generator):
    """A spec that does not say `fits_spline` (as sidecars written before it) leaves the float64 solve inside the
    network: refused in one line naming it, before the converter's pages of diagnostics."""
    generator, cfg = warp_generator
    spec = export.ServingSpec.from_config(cfg)
    solving = dataclasses.replace(spec, capabilities=dataclasses.replace(spec.capabilities, fits_spline=False))
    with pytest.raises(tflite.TFLiteError, match=r"computes in float64 or with operations that TFLite has no kernel "
                                                 r"for \(.*MatrixSolve.*\); export it as a SavedModel"):
        tflite.convert(export.ServingModule(generator, solving), "none")
    assert tflite.convert(export.ServingModule(generator, spec), "none")  # the spline fed in: it converts


def test_the_shipped_models_tflite_forms_match_its_saved_model_on_real_crops(shipped_tflite, shipped_inputs):
    """The warp generator's network converted with its spline fed in, the spline fitted by the runner: float32 and
    float16 within the issue's bound of the shipped SavedModel on real crops of six people, int8 (dynamic range)
    within the bound of the stargan test above; the repaint masks and flows alike."""
    saved = FaceModel.load(pretrained.NAME)
    expected = [saved.run(*inputs) for inputs in shipped_inputs]
    for quantize, version_dir in shipped_tflite.items():
        model = FaceModel.load(version_dir / tflite.FILE_NAMES[quantize])
        assert model.spec == saved.spec
        got = [model.run(*inputs) for inputs in shipped_inputs]
        differences = np.concatenate([np.abs(g["generated"].astype(np.float64) - e["generated"]).ravel()
                                      for g, e in zip(got, expected)])
        mean, p999 = differences.mean(), np.percentile(differences, 99.9)
        if quantize == "int8":
            assert mean <= INT8_MEAN_LEVELS, (quantize, mean, p999)
            continue
        assert mean <= SHIPPED_MEAN_LEVELS and p999 <= SHIPPED_P999_LEVELS, (quantize, mean, p999)
        flows = np.concatenate([np.abs(g["flow"] - e["flow"]).ravel() for g, e in zip(got, expected)])
        assert flows.mean() <= 0.01 and np.percentile(flows, 99.9) <= 0.1, (quantize, flows.mean())


def test_the_shipped_models_tflite_runner_takes_one_crop_or_one_per_target_and_checks_as_its_saved_model(
        shipped_tflite, shipped_inputs):
    """One call per target: one reference crop for all the targets, a crop per target and each target alone give the
    same faces; an empty batch gets empty outputs of every name; bad keypoints are refused with the SavedModel's
    messages, before the spline is fitted on them."""
    crop, points, flags, reference_points, reference_flags = shipped_inputs[0]
    rows = lambda p, f: np.concatenate([p, f[..., None]], axis=-1).astype(np.float32)
    inputs = {"reference": crop, "reference_keypoints": rows(reference_points, reference_flags),
              "target_keypoints": rows(points, flags)}
    served = tflite.load(shipped_tflite["none"] / "float32.tflite").serve
    shared = served(**inputs)
    per_target = served(reference=np.repeat(crop, len(points), axis=0), target_keypoints=inputs["target_keypoints"],
                        reference_keypoints=np.repeat(inputs["reference_keypoints"], len(points), axis=0))
    alone = served(**{**inputs, "target_keypoints": inputs["target_keypoints"][3:4]})
    for name in export.read_sidecar(pretrained.path()).spec.output_names:
        np.testing.assert_array_equal(shared[name], per_target[name], err_msg=name)
        np.testing.assert_array_equal(shared[name][3:4], alone[name], err_msg=name)
    empty = served(**{**inputs, "target_keypoints": inputs["target_keypoints"][:0]})
    assert {name: value.shape[0] for name, value in empty.items()} == {"generated": 0, "repaint": 0, "flow": 0}
    saved = export.load(pretrained.path()).serve
    spoiled = inputs["reference_keypoints"].copy()
    spoiled[0, 30, 1] = np.inf
    for serve in (served, saved):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="bad input reference_keypoints: x, y and flag must be finite numbers"):
            serve(**{**inputs, "reference_keypoints": spoiled})
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"bad input reference: shape must be \(batch, 96"):
            serve(**{**inputs, "reference": crop[:, 1:]})


def test_the_export_command_writes_the_shipped_models_tflite_form(shipped_tflite, shipped_inputs, tmp_path):
    """`experiments.export --model=pretrained --format=tflite`: the conversion of the fixture (the same faces), in a
    new export version whose sidecar records the shipped model's config; `--model_dir`, the flag's name before,
    still works."""
    done = subprocess.run([sys.executable, "-m", "experiments.export", "--model=pretrained",
                           f"--export_dir={tmp_path / 'shipped'}", "--format=tflite", "--quantize=float16"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    version_dir = tmp_path / "shipped" / "1"
    assert done.stdout.strip().endswith(str(version_dir))
    faces = [FaceModel.load(version / "float16.tflite").generate(*shipped_inputs[0])
             for version in (version_dir, shipped_tflite["float16"])]
    np.testing.assert_array_equal(*faces)
    assert export.read_sidecar(version_dir).config == export.read_sidecar(pretrained.path()).config
    done = subprocess.run([sys.executable, "-m", "experiments.export", "--model_dir=pretrained",
                           f"--export_dir={tmp_path / 'shipped'}", "--format=tflite", "--quantize=int7"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0 and "int7" in done.stderr
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["1"]


def test_an_export_whose_weights_do_not_fit_its_config_is_refused_in_one_line_writing_nothing(shipped_tflite,
                                                                                             tmp_path):
    """Writing an export again rebuilds its generator from its sidecar's config: a sidecar whose widths are not those
    of its SavedModel's weights is named, with the command's one error line, before anything is written."""
    version_dir = tmp_path / "edited" / "1"
    shutil.copytree(shipped_tflite["none"], version_dir)
    sidecar = json.loads((version_dir / export.SIDECAR).read_text())
    sidecar["config"]["model"]["conv_dim"] = 8
    (version_dir / export.SIDECAR).write_text(json.dumps(sidecar))
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model={version_dir}",
                           f"--export_dir={tmp_path / 'out'}", "--format=tflite"], capture_output=True, text=True,
                          cwd=REPO)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {version_dir}: its weights do not fit the generator that its {export.SIDECAR} builds"), errors
    assert not (tmp_path / "out").exists()


def test_animate_with_the_shipped_models_tflite_file_makes_its_saved_models_video(shipped_tflite, real_faces_dir,
                                                                                  tmp_path):
    """`experiments.animate --model=<file>.tflite` (float32 and float16) against the shipped model: the same video
    within one level on average, as the issue asks."""
    videos = real_faces_dir / "videos"
    outputs = {}
    for name, model in (("saved", pretrained.NAME), ("none", shipped_tflite["none"] / "float32.tflite"),
                        ("float16", shipped_tflite["float16"] / "float16.tflite")):
        outputs[name] = tmp_path / f"{name}.mp4"
        done = subprocess.run([sys.executable, "-m", "experiments.animate", f"--model={model}",
                               f"--source={videos / 'mead_W011_neutral.mp4'}", "--source_frame=30",
                               f"--driving={videos / 'dpe_d.mp4'}", f"--output={outputs[name]}", "--max_frames=6"],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    expected = video.read_all(outputs["saved"]).astype(np.float64)
    for name in ("none", "float16"):
        frames = video.read_all(outputs[name])
        assert frames.shape == expected.shape and np.abs(frames - expected).mean() <= 1.0, name


def test_export_entry_point_writes_the_tflite_file(trained, tmp_path):
    model_dir, _, _ = trained
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model={model_dir}",
                           f"--export_dir={tmp_path}", "--format=tflite", "--quantize=float16"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "1" / "float16.tflite").is_file()
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model_dir={model_dir}",
                           f"--export_dir={tmp_path}", "--format=tflite", "--quantize=int4"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "int4" in done.stderr

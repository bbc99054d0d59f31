"""TFLite export: the converted serving graph beside the SavedModel, loaded like it, its faces on real dev crops."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import config, export, tflite
from bigo_facegen.face_model import FaceModel
from bigo_facegen.models import registry
from tests import test_export
from tests.test_export import SIZE

# test_export's fixtures, shared: pytest finds a fixture by its name in the test's module.
trained, real_batch = test_export.trained, test_export.real_batch

# int8 (dynamic range) against the SavedModel: mean absolute difference in pixel levels on the real crops. Weights are
# rounded to 255 levels per output channel and each convolution's input to 255 levels of its own range per call, so
# every output pixel carries the rounding of the whole chain of convolutions: 1.3 levels measured on this model (and
# 1.4 at the cpu preset, `benchmarks.formats`). 3 levels (1.2% of the range) is twice that and still fails a
# conversion that draws the keypoint map wrong (full-integer quantization of the keypoint rows: 58 levels).
INT8_MEAN_LEVELS = 3.0


@pytest.fixture(scope="module")
def tflite_exports(trained, tmp_path_factory):
    """One export version per quantization of the tiny stargan."""
    _, cfg, generator = trained
    export_dir = tmp_path_factory.mktemp("tflite_exports")
    return {quantize: tflite.export_generator(generator, cfg, export_dir, quantize=quantize)
            for quantize in tflite.QUANTIZATIONS}


def _faces(model, crops, rows):
    return model.generate(crops, rows[..., :2], rows[..., 2]).astype(np.float32)


def test_each_version_holds_the_saved_model_and_its_tflite_file(tflite_exports):
    for quantize, version_dir in tflite_exports.items():
        sidecar = json.loads((version_dir / export.SIDECAR).read_text())
        assert sidecar["tflite"] == {"file": tflite.FILE_NAMES[quantize], "quantize": quantize}
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


def test_warp_refine_is_refused_naming_what_tflite_lacks(tmp_path):
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": "ibug68",
                                                  "model.generator.type": "warp_refine", "model.conv_dim": 8,
                                                  "model.res_blocks": 1})
    generator = registry.build_generator(cfg.model, SIZE, 68)
    with pytest.raises(tflite.TFLiteError, match="MatrixSolve"):
        tflite.export_generator(generator, cfg, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_export_entry_point_writes_the_tflite_file(trained, tmp_path):
    model_dir, _, _ = trained
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model_dir={model_dir}",
                           f"--export_dir={tmp_path}", "--format=tflite", "--quantize=float16"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "1" / "float16.tflite").is_file()
    done = subprocess.run([sys.executable, "-m", "experiments.export", f"--model_dir={model_dir}",
                           f"--export_dir={tmp_path}", "--format=tflite", "--quantize=int4"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "int4" in done.stderr

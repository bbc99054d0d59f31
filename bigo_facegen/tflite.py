"""TFLite: the export's serving graph converted for TFLite's interpreter (XNNPACK on CPU), written into an export
version beside its SavedModel (`export.export`'s extra files and sidecar entries: the export knows nothing of
TFLite), and the runner that `face_model.FaceModel` loads as it loads a SavedModel.

    python -m experiments.export --model=runs/cpu --export_dir=exports/face --format=tflite --quantize=int8
    # -> exports/face/<N>/{saved_model.pb, variables/, bigo_facegen.json, int8.tflite}
    python -m experiments.generate --model=exports/face/<N>/int8.tflite ...
    python -m experiments.export --model=pretrained --export_dir=exports/shipped --format=tflite   # the shipped model

The `.tflite` file has the inputs and outputs of `serving_default` (`export`), by name, with the keypoint maps drawn
inside the graph, at a batch of one (`BATCH`): the runner calls it once per target, one reference crop being given
to each, so `generate`'s batches of 8 and its shorter last batch need no padding. What is converted is
`ServingModule.network`: TFLite drops the assertions, so the runner makes the SavedModel's input checks itself
(`export.prepare`: `export.check_inputs`, the same messages), after those of any Python caller of an export
(`export.check_request`: inputs by name, dtype and rank), and answers an empty batch without calling the interpreter.
Files written before `BATCH` have an open batch and are called once per batch, as they were.

A generator that fits a thin-plate spline on the keypoints (capabilities `fits_spline`: the warp-and-refine one, the
shipped model) solves it in float64 with `tf.linalg.solve` (`warping.tps_fit`), and TFLite has no linear solve and no
float64 arithmetic (MatrixSolve is not among the TensorFlow operations that the converter may keep, and neither Python
interpreter links the Flex delegate that would run them; a float32 Gauss-Jordan solve in the graph disagreed with the
SavedModel by up to 99 levels under an open batch). So its network is converted as XLA compiles it, taking the spline
as an input (`ServingModule.network`, `export.SPLINE`), and the runner fits the spline with the SavedModel's own TF
code (`export.prepare`) before it calls the interpreter.

Quantization (`QUANTIZATIONS`): `none` keeps float32; `float16` stores the weights as float16, which the interpreter
widens to float32 at load (half the file, the same arithmetic); `int8` stores the weights as int8 (per output channel)
and the convolutions quantize their input activations at each call from that call's own range (dynamic-range
quantization). Full-integer quantization, with activation ranges calibrated on a representative data set, was tried
on frames of the training data and refused: it quantizes the keypoint rows too, and keypoint coordinates and flags
rounded to 256 levels per tensor draw the in-graph keypoint map wrong (58 pixel levels of mean error against the
SavedModel on real dev crops, where dynamic-range int8 stays within 2). How close each comes to the SavedModel, and
how fast: benchmarks/README.md (`benchmarks.formats`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bigo_facegen import export, files
from bigo_facegen.config import ExperimentConfig

QUANTIZATIONS = ("none", "float16", "int8")
FILE_NAMES = {"none": "float32.tflite", "float16": "float16.tflite", "int8": "int8.tflite"}
# The export sidecar's entry naming the version's TFLite file: {"file": its name, "quantize": one of QUANTIZATIONS,
# "batch": BATCH (absent in files of an open batch, written before)}.
SIDECAR_ENTRY = "tflite"
# The batch a file is converted at. With an open batch, shapes that the graph computes from its inputs' (the batch of
# a reshape, a transposed convolution's output shape, a broadcast) are unknown until a call, and XNNPACK takes no
# operation that depends on them: `stargan`'s transposed convolutions ran in TFLite's own kernels, and XNNPACK's
# delegate was cut into 18 parts. At a fixed batch every shape is a constant and XNNPACK runs all but a few
# operations; a batch of targets is one call per target.
BATCH = 1
# Neither a TFLite builtin nor one of the TensorFlow operations the converter may keep for the Flex delegate.
WITHOUT_TFLITE_KERNEL = frozenset({"MatrixSolve"})


class TFLiteError(ValueError):
    """A generator's serving graph cannot be converted to TFLite, or a file is not a bigo-facegen TFLite export."""


def check_quantize(quantize: str) -> None:
    if quantize not in QUANTIZATIONS:
        raise TFLiteError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")


def convert(module: export.ServingModule, quantize: str, batch: int | None = BATCH) -> bytes:
    """The TFLite conversion of `module.network` at `batch` (a `.tflite` file's bytes; None: an open batch, as files
    were written before `BATCH`) with the weights stored as `quantize` says."""
    check_quantize(quantize)
    network = module.network(batch).get_concrete_function()
    # The converter keeps Keras 3's variables as TFLite resource variables, read at every call, which XNNPACK cannot
    # pack ahead: they become constants here.
    frozen = convert_variables_to_constants_v2(network)
    # Refused before the converter, which would print pages of diagnostics first.
    lacking = sorted({op.type for op in frozen.graph.get_operations() if op.type in WITHOUT_TFLITE_KERNEL or any(
        output.dtype == tf.float64 for output in op.outputs)})
    if lacking:
        raise TFLiteError(f"the serving network of {type(module.generator).__name__} computes in float64 or with "
                          f"operations that TFLite has no kernel for ({', '.join(lacking)}); export it as a "
                          f"SavedModel")

    def run_frozen(reference, target_keypoints, reference_keypoints, spline=None):
        named = {"reference": reference, "target_keypoints": target_keypoints,
                 "reference_keypoints": reference_keypoints, export.SPLINE: spline}
        flat = frozen(*(named[spec.name] for spec in network.structured_input_signature[0]))
        return tf.nest.pack_sequence_as(network.structured_outputs, flat)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.signature_function(run_frozen, spline=True, batch=batch).get_concrete_function()], module)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export_generator(generator: keras.Model, config: ExperimentConfig, export_dir: str | os.PathLike,
                     version: int | None = None, quantize: str = "none",
                     painters: tuple[dict[str, bytes], dict] = ({}, {})) -> Path:
    """`export.export` with the TFLite conversion of the same serving graph (`quantize`) beside the SavedModel,
    named in the sidecar (`SIDECAR_ENTRY`), and the painters' files and entry (`export.painter_pieces`).
    Converted first: a generator that TFLite cannot run writes nothing."""
    content = convert(export.ServingModule(generator, export.ServingSpec.from_config(config)), quantize)
    extra, entries = painters
    return export.export(generator, config, export_dir, version, extra_files={**extra, FILE_NAMES[quantize]: content},
                         sidecar_entries={**entries, SIDECAR_ENTRY: {"file": FILE_NAMES[quantize],
                                                                     "quantize": quantize, "batch": BATCH}})


def export_model(model: str | os.PathLike, export_dir: str | os.PathLike, version: int | None = None,
                 quantize: str = "none", painters: Sequence[str | os.PathLike] = ()) -> Path:
    """`export.export_model` with the TFLite conversion (`quantize`) beside the SavedModel: `model` is a training
    model_dir or an export (`pretrained.NAME`: the shipped model), `painters` as there."""
    check_quantize(quantize)  # before the model is loaded
    files.check_output_folder(export_dir, "export_dir")
    pieces = export.painter_pieces(model, painters)
    generator, config = export.load_generator(model)
    return export_generator(generator, config, export_dir, version, quantize, pieces)


class TFLiteRunner:
    """A `.tflite` export in TFLite's interpreter: `serve(**inputs) -> {output name: array}` as the SavedModel's
    `serving_default` answers, input checks and empty batches included. `batch`: the file's batch (`BATCH`: one call
    per target), or None for an open batch (files written before `BATCH`)."""

    def __init__(self, path: Path, spec: export.ServingSpec, batch: int | None, threads: int | None = None):
        try:  # all the cores this process may use by default, as TF's own thread pools
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads or len(os.sched_getaffinity(0)))
        except ValueError as e:
            raise TFLiteError(f"{path}: not a readable TFLite model ({str(e).splitlines()[0]})") from None
        self._signature = self._interpreter.get_signature_runner(export.SIGNATURE)
        self.spec = spec
        self.batch = batch
        # `export.prepare` (the input checks, the spline) in TF's graph runtime: eagerly, its ops cost 1.5 ms a call
        # for the shipped model at batch 1 (0.25 ms as a function), half of `stargan`'s own time at the cpu preset.
        # Any shape of the right rank reaches it, so that a wrong one meets the checks' message.
        any_shape = {name: tf.TensorSpec([None] * wanted.shape.rank, wanted.dtype)
                     for name, wanted in spec.input_specs.items()}
        self._prepare = tf.function(lambda inputs: export.prepare(spec, **inputs), input_signature=[any_shape])

    def serve(self, **inputs) -> dict[str, np.ndarray]:
        inputs = export.check_request(self.spec, inputs)
        prepared = self._prepare(inputs)
        targets = len(inputs["target_keypoints"])
        if not targets:
            return {name: value.numpy() for name, value in export.empty_outputs(self.spec).items()}
        arrays = {**{name: np.asarray(inputs[name]) for name in self.spec.input_names},
                  **{name: value.numpy() for name, value in prepared.items()}}
        if self.batch is None:
            return self._call(arrays)
        # One reference side for all targets (`shares_reference`) is given to each of them.
        calls = [self._call({name: value[i:i + 1] if len(value) == targets else value
                             for name, value in arrays.items()}) for i in range(targets)]
        return {name: np.concatenate([outputs[name] for outputs in calls]) for name in self.spec.output_names}

    def _call(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._signature(**arrays)
        return {name: outputs[name] for name in self.spec.output_names}


@dataclasses.dataclass
class LoadedTFLite:
    """A loaded `.tflite` export: `serve` as `export.LoadedExport`'s."""
    path: Path
    spec: export.ServingSpec
    config: ExperimentConfig
    quantize: str
    serve: Callable[..., dict]


def is_tflite(path: str | os.PathLike) -> bool:
    """True for the path of a `.tflite` file (what `load` takes), rather than an export or model_dir folder."""
    return Path(path).suffix == ".tflite"


def load(path: str | os.PathLike, threads: int | None = None) -> LoadedTFLite:
    """Loads the `.tflite` file of an export version with the version's sidecar, which must name it."""
    path = Path(path)
    if not path.is_file():
        raise TFLiteError(f"{path}: no such TFLite file")
    sidecar = export.read_sidecar(path.parent)
    entry = sidecar.metadata.get(SIDECAR_ENTRY)
    if entry is None or entry["file"] != path.name:
        named = "no TFLite file" if entry is None else entry["file"]
        raise TFLiteError(f"{path}: not the TFLite file of the export in {path.parent} (its {export.SIDECAR} names "
                          f"{named}); export one with `python -m experiments.export --format=tflite`")
    if entry.get("batch") not in (None, BATCH):
        raise TFLiteError(f"{path}: converted at batch {entry['batch']}; this version of bigo-facegen runs TFLite "
                          f"files of batch {BATCH} or of an open batch")
    runner = TFLiteRunner(path, sidecar.spec, entry.get("batch"), threads)
    return LoadedTFLite(path, sidecar.spec, sidecar.config, entry["quantize"], runner.serve)

"""Export a trained generator as a SavedModel that TensorFlow Serving loads as is, and load such exports back.

Layout on disk (TF Serving's): `EXPORT_DIR/<version>/saved_model.pb` + `variables/`, one integer-named folder per
version, and beside `saved_model.pb` the sidecar `bigo_facegen.json` (the training config, the serving spec: keypoint
layout, crop size, the generator's capabilities; and the input and output names) so that generation and evaluation can
load an export exactly like a training `model_dir`. A version
folder is written under a temporary name and renamed when complete, so a server watching `EXPORT_DIR` never picks up
half an export, and an existing version is never overwritten.

Signature `serving_default` (method `tensorflow/serving/predict`):

inputs
  `reference`            uint8   (batch, S, S, 3)  RGB face crop of the reference frame, 0..255, cut as
                                 or (1, S, S, 3)    `geometry.crop(frame, bbox, S)` does (square box of side max(w, h)
                                                    centred on the BIGO bbox, scaled to S x S). Where the sidecar's
                                                    capabilities say `shares_reference` (every generator of this
                                                    package), one crop for the whole batch is the reference of every
                                                    target, and what depends on it alone is computed once (a video
                                                    from one frame: send it once).
  `target_keypoints`     float32 (batch, N, 3)     one [x, y, flag] row per point of the target expression: x, y in
                                                    pixels of the S x S crop (pixel centres at integers), flag 0 absent,
                                                    1 occluded, 2 visible. The keypoint map is drawn inside the graph
                                                    (`keypoints.draw_map_tf` with the training config's style and
                                                    radius), so clients send coordinates, not images.
  `reference_keypoints`  float32 (batch, N, 3)     only for generators that read them (capabilities
                                 or (1, N, 3)       `reads_reference_keypoints`): the reference crop's keypoints, same
                                                    layout, one row set per crop of `reference`.
outputs
  `generated`            uint8   (batch, S, S, 3)  the generated RGB face crop, 0..255, same size as `reference`.
  `repaint`              float32 (batch, S, S, 1)  only for generators whose capabilities say `repaint`: where, from
                                                    0 to 1, `generated` is the generator's painting rather than the
                                                    reference warped by its flow. A client that warps the
                                                    full-resolution reference frame itself (as `fusion.WarpFusion`
                                                    does) pastes the crop with this as its alpha and keeps its own
                                                    sharper pixels everywhere else.
  `flow`                 float32 (batch, S, S, 2)  only for generators whose capabilities say `flow`: for each pixel of
                                                    `generated`, the (x, y) pixel of the `reference` crop it shows (the
                                                    backward flow). A client moves its full-resolution reference frame
                                                    by it (`fusion.WarpFusion`).

S (crop side) and N (points of the layout: 106 for bigo106, 68 for ibug68) are fixed by the trained model and written
in the sidecar; the batch dimension (that of `target_keypoints`) is open (-1), and an empty batch gets empty outputs.
A request of the wrong shape, with a coordinate or flag that is NaN or infinite, or with a flag other than 0, 1 or 2
fails with an InvalidArgumentError that names the input and what it needs.

The signature accepts exactly the dtypes above, and nothing converts for a caller: a float crop's scale (0..1, -1..1,
0..255) cannot be told from its values. A SavedModel signature called from Python converts what it is given to its
own dtypes before its graph runs (a float64 reference of values up to 76500 wraps round into uint8, int32 and float64
keypoints are cast), so no check inside the graph can see a wrong dtype: the Python callers of an export, `load`'s
`serve` and the TFLite runner (`tflite`), make the checks that must come before that conversion (`check_request`:
every input present and none unknown, each of the dtype and rank above) and then the graph's. This holds for every
export, those written before these checks included, since it is the caller's. A client that calls the signature
itself (`tf.saved_model.load(...).signatures`, TF Serving) must send these dtypes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import tensorflow as tf

from bigo_facegen import checkpoints, files, keypoints, painting, pretrained
from bigo_facegen.config import ExperimentConfig
from bigo_facegen.models.contract import (
    FLOW_LAYER,
    Capabilities,
    KeypointMapSettings,
    from_unit,
    generator_inputs,
    keypoint_spline,
    to_unit,
)
from bigo_facegen.models.registry import build_generator, generator_spec

SIDECAR = "bigo_facegen.json"
# The sidecar entry listing the folders, beside the SavedModel, of the painters the export ships (`painting`).
PAINTERS_ENTRY, PAINTERS_FOLDER = "painters", "painters"
SIGNATURE = "serving_default"
OUTPUT = "generated"
REPAINT_OUTPUT = "repaint"
FLOW_OUTPUT = "flow"
# What `ServingModule.prepare` gives `compiled` for a generator that fits a spline.
SPLINE = "spline"


class ExportError(ValueError):
    """An export folder is missing, incomplete or not a bigo-facegen export, or a version already exists."""


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """What a served generator expects and gives: crop side, keypoint layout, how the keypoint map is drawn, what its
    registry entry declares it reads and produces (`capabilities`), and whether the SavedModel also holds `prepare`
    and `compiled` (`ServingModule`, compiled inference: exports written before it was recorded do not)."""
    image_size: int
    layout: str
    num_points: int
    keypoint_style: str
    dot_radius: float
    capabilities: Capabilities
    compiled: bool

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> "ServingSpec":
        layout = keypoints.get_layout(config.data.layout)
        return cls(image_size=config.data.image_size, layout=layout.name, num_points=layout.num_points,
                   keypoint_style=config.data.keypoint_style, dot_radius=config.data.dot_radius,
                   capabilities=generator_spec(config.model.generator.type).capabilities, compiled=True)

    @classmethod
    def from_sidecar(cls, recorded: dict) -> "ServingSpec":
        """The spec a sidecar's `spec` records, older sidecars' included: those whose capabilities are flat flags
        (`has_repaint` standing for the repaint and the flow outputs both, `shared_reference` for
        `shares_reference`), those written before `has_repaint` was recorded (the repaint output went with the
        reference keypoints), before `shared_reference` (a crop per target), before `fits_spline` and before
        `compiled` (no functions for compiled inference)."""
        recorded = dict(recorded)
        if "capabilities" in recorded:
            capabilities = recorded.pop("capabilities")
        else:
            reads = recorded.pop("reads_reference_keypoints")
            outputs = recorded.pop("has_repaint", reads)
            capabilities = {"reads_reference_keypoints": reads, "repaint": outputs, "flow": outputs,
                            "shares_reference": recorded.pop("shared_reference", False),
                            "fits_spline": recorded.pop("fits_spline", False)}
        return cls(**{"compiled": False, **recorded, "capabilities": Capabilities(**capabilities)})

    @property
    def map_settings(self) -> KeypointMapSettings:
        return KeypointMapSettings(self.keypoint_style, self.dot_radius, self.layout)

    @property
    def output_names(self) -> tuple[str, ...]:
        outputs = ((OUTPUT, True), (REPAINT_OUTPUT, self.capabilities.repaint), (FLOW_OUTPUT, self.capabilities.flow))
        return tuple(name for name, present in outputs if present)

    @property
    def input_names(self) -> tuple[str, ...]:
        if self.capabilities.reads_reference_keypoints:
            return ("reference", "reference_keypoints", "target_keypoints")
        return ("reference", "target_keypoints")

    @property
    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """The serving signature's inputs by name, in its order: dtype and shape, the batch open."""
        s, n = self.image_size, self.num_points
        return {name: tf.TensorSpec([None, s, s, 3], tf.uint8, name=name) if name == "reference"
                else tf.TensorSpec([None, n, 3], tf.float32, name=name) for name in self.input_names}


class ServingModule(tf.Module):
    """The generator with its serving graph: uint8 crop + keypoint rows in, uint8 crop (and, as its capabilities say,
    the repaint mask and the flow) out. `serve` is the
    `tf.function` exported as `serving_default`; inference calls the same function on checkpoints, so an export and
    the Keras model it came from compute the same thing.

    Compiled inference (`face_model.FaceModel(compiled=True)`) calls `prepare` and then `compiled` with the signature's
    inputs and what `prepare` returned: `prepare` makes the input checks and, for a generator whose capabilities say
    `fits_spline`, fits its `spline` (TF's solve: XLA's took 10x as long); `compiled` is the rest of `serve` for a
    non-empty batch, under XLA (`jit_compile`). Neither is a signature, so TF Serving never compiles them. TFLite
    converts `network`: `compiled` without XLA."""

    def __init__(self, generator: keras.Model, spec: ServingSpec):
        super().__init__(name="bigo_facegen")
        self.generator = generator
        self.spec = spec
        self.serve = self.signature_function(self._generate)
        self.prepare = self.signature_function(self._prepare)
        self.compiled = self.signature_function(self._run, spline=True, jit_compile=True)

    def network(self, batch: int | None = None):
        """The network alone at `batch` (None: open), without the input checks and the empty-batch branch, taking the
        spline as `compiled` does: what TFLite converts (`tflite`), whose runner makes the same checks
        (`check_inputs`) and fits the spline (`prepare`) before it calls the converted graph."""
        return self.signature_function(self._run, spline=True, batch=batch)

    def signature_function(self, body, spline: bool = False, jit_compile: bool = False, batch: int | None = None):
        """`body(reference, target_keypoints, reference_keypoints)` as a `tf.function` of the signature's inputs, by
        name (a SavedModel signature takes its input names from the Python parameters), at `batch` (None: open).
        `spline`: for a generator that fits one, also taking `prepare`'s `spline` (body's fourth argument).
        `jit_compile`: under XLA."""
        signature = [tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name=spec.name)
                     for spec in self.spec.input_specs.values()]
        if spline and self.spec.capabilities.fits_spline:
            signature.append(tf.TensorSpec([batch, self.spec.num_points + 3, 2], tf.float32, name=SPLINE))

            def function(reference, reference_keypoints, target_keypoints, spline):
                return body(reference, target_keypoints, reference_keypoints, spline)
        elif self.spec.capabilities.reads_reference_keypoints:
            def function(reference, reference_keypoints, target_keypoints):
                return body(reference, target_keypoints, reference_keypoints)
        else:
            def function(reference, target_keypoints):
                return body(reference, target_keypoints, None)
        return tf.function(function, input_signature=signature, jit_compile=jit_compile)

    def _generate(self, reference, target_keypoints, reference_keypoints=None):
        with tf.control_dependencies(check_inputs(self.spec, reference, _rows(target_keypoints, reference_keypoints))):
            batch = tf.shape(target_keypoints)[0]
        # TF's CPU convolutions answer an empty batch with their input's channels, which the next layer rejects or
        # passes on as a (0, S, S, C) face: an empty request never reaches the network.
        return tf.cond(batch > 0, lambda: self._run(reference, target_keypoints, reference_keypoints),
                       lambda: empty_outputs(self.spec))

    def _prepare(self, reference, target_keypoints, reference_keypoints):
        return prepare(self.spec, reference, target_keypoints, reference_keypoints)

    def _inputs(self, reference, target_keypoints, reference_keypoints) -> dict:
        reference_points, reference_flags = (None, None) if reference_keypoints is None else _split_rows(
            reference_keypoints)
        return generator_inputs(to_unit(reference), *_split_rows(target_keypoints), self.spec.map_settings,
                                reference_points=reference_points, reference_flags=reference_flags)

    def _run(self, reference, target_keypoints, reference_keypoints, spline=None):
        inputs = self._inputs(reference, target_keypoints, reference_keypoints)
        layers = (self.generator.compose(inputs, training=False) if spline is None
                  else self.generator.compose(inputs, training=False, spline=spline))
        pixels = tf.clip_by_value(tf.round(from_unit(tf.cast(layers["image"], tf.float32))), 0.0, 255.0)
        outputs = {OUTPUT: tf.cast(pixels, tf.uint8)}
        if self.spec.capabilities.repaint:
            outputs[REPAINT_OUTPUT] = tf.cast(layers["repaint"], tf.float32)
        if self.spec.capabilities.flow:
            outputs[FLOW_OUTPUT] = tf.cast(layers[FLOW_LAYER], tf.float32)
        return outputs


def prepare(spec: ServingSpec, reference, target_keypoints, reference_keypoints=None) -> dict[str, tf.Tensor]:
    """The signature's input checks (`check_inputs`) and then, for a generator whose capabilities say `fits_spline`,
    its spline fitted on the keypoint rows (`SPLINE`: `contract.keypoint_spline`): `ServingModule.prepare`, and what
    the TFLite runner runs before its network. Needs no generator."""
    with tf.control_dependencies(check_inputs(spec, reference, _rows(target_keypoints, reference_keypoints))):
        if not spec.capabilities.fits_spline:
            return {}
        return {SPLINE: keypoint_spline(*_split_rows(reference_keypoints), *_split_rows(target_keypoints),
                                        spec.image_size)}


def _rows(target_keypoints, reference_keypoints=None) -> dict:
    return {name: value for name, value in (("target_keypoints", target_keypoints),
                                             ("reference_keypoints", reference_keypoints)) if value is not None}


def empty_outputs(spec: ServingSpec) -> dict[str, tf.Tensor]:
    """The outputs of an empty batch."""
    s = spec.image_size
    outputs = {OUTPUT: tf.zeros([0, s, s, 3], tf.uint8)}
    if spec.capabilities.repaint:
        outputs[REPAINT_OUTPUT] = tf.zeros([0, s, s, 1], tf.float32)
    if spec.capabilities.flow:
        outputs[FLOW_OUTPUT] = tf.zeros([0, s, s, 2], tf.float32)
    return outputs


def check_request(spec: ServingSpec, inputs: dict) -> dict[str, tf.Tensor]:
    """The checks a Python caller of the serving signature makes before calling it (see the module doc): every input
    of `spec` given and no other, each of the signature's dtype and rank. Returns the inputs as tensors; raises the
    InvalidArgumentError of `check_inputs`, naming the input."""
    specs = spec.input_specs
    for name in [*specs, *inputs]:
        if name not in inputs or name not in specs:
            problem = "missing" if name in specs else "unknown"
            raise tf.errors.InvalidArgumentError(None, None, f"bad input {name}: {problem}; this model takes "
                                                 f"{', '.join(specs)}")
    tensors = {}
    for name, wanted in specs.items():
        try:
            given = tensors[name] = tf.convert_to_tensor(inputs[name])  # an array keeps its dtype
        except (TypeError, ValueError) as error:
            raise tf.errors.InvalidArgumentError(None, None, f"bad input {name}: not an array ({error})") from None
        if given.dtype != wanted.dtype or given.shape.rank != wanted.shape.rank:
            shape = ", ".join("batch" if size is None else str(size) for size in wanted.shape.as_list())
            raise tf.errors.InvalidArgumentError(None, None, f"bad input {name}: must be {wanted.dtype.name} of shape "
                                                 f"({shape}), got {given.dtype.name} of shape {tuple(given.shape)}")
    return tensors


def serve_checked(spec: ServingSpec, serve: Callable[..., dict]) -> Callable[..., dict]:
    """`serve` (a serving function called by input name) behind `check_request`."""
    def checked(**inputs) -> dict:
        return serve(**check_request(spec, inputs))

    return checked


def check_inputs(spec: ServingSpec, reference, rows: dict) -> list:
    """The serving signature's input checks: shapes first, then the keypoint values (`rows` by input name). In a
    graph, the assertions to depend on (in `prepare`, what the TFLite runner runs); run eagerly, the first failing one
    raises the same InvalidArgumentError naming the input."""
    checks = _shape_checks(spec, reference, rows)
    with tf.control_dependencies(checks):  # values are only looked at once their shape is known to be right
        checks += _value_checks(rows)
    return checks


def _shape_checks(spec: ServingSpec, reference, rows: dict) -> list:
    # The signature's fixed S and N are not enforced when the graph runs (TF Serving, signature calls): check here,
    # with messages a client can act on, before a mismatch surfaces as an obscure error deep in the network.
    # (No quotes in the messages: the Assert op prints them escaped.)
    s, n = spec.image_size, spec.num_points
    crops, batch = tf.shape(reference)[0], tf.shape(rows["target_keypoints"])[0]
    checks = [tf.debugging.assert_equal(
        tf.shape(reference)[1:], tf.constant([s, s, 3]),
        message=f"bad input reference: shape must be (batch, {s}, {s}, 3), RGB uint8 face crops of {s}x{s} pixels"),
        tf.debugging.Assert(
            (crops == batch) | ((crops == 1) & spec.capabilities.shares_reference),
            [f"bad input reference: needs one crop per target_keypoints row set"
             f"{', or one crop for all of them' if spec.capabilities.shares_reference else ''}"])]
    for name, value in rows.items():
        checks.append(tf.debugging.assert_equal(
            tf.shape(value)[1:], tf.constant([n, 3]),
            message=f"bad input {name}: shape must be (batch, {n}, 3), one [x, y, flag] row per point of the "
                    f"{spec.layout} layout"))
    if "reference_keypoints" in rows:
        checks.append(tf.debugging.assert_equal(
            tf.shape(rows["reference_keypoints"])[0], crops,
            message="bad input reference_keypoints: needs as many row sets as reference has crops"))
    return checks


def _value_checks(rows: dict) -> list:
    # A NaN or infinite point, or a flag the network was never trained on, would still give a face that looks
    # normal: refuse it instead.
    checks = []
    for name, value in rows.items():
        checks.append(tf.debugging.assert_all_finite(
            value, message=f"bad input {name}: x, y and flag must be finite numbers"))
        flags = value[..., 2]
        checks.append(tf.debugging.Assert(
            tf.reduce_all((flags == 0.0) | (flags == 1.0) | (flags == 2.0)),
            [f"bad input {name}: every flag must be 0 (absent), 1 (occluded) or 2 (visible)"]))
    return checks


def _split_rows(rows):
    return rows[..., :2], tf.cast(rows[..., 2], tf.int32)


def next_version(export_dir: str | os.PathLike) -> int:
    """1 + the largest integer-named version folder in `export_dir` (1 when there is none)."""
    export_dir = Path(export_dir)
    taken = [int(p.name) for p in export_dir.iterdir() if p.name.isdigit()] if export_dir.is_dir() else []
    return max(taken, default=0) + 1


def export(generator: keras.Model, config: ExperimentConfig, export_dir: str | os.PathLike,
           version: int | None = None, extra_files: Mapping[str, bytes] | None = None,
           sidecar_entries: Mapping[str, Any] | None = None) -> Path:
    """Writes `generator` (trained with `config`) to `export_dir/<version>/` and returns that folder. `version`
    defaults to the next free integer; an existing version is an error, never overwritten. `extra_files` (name ->
    content) go into the version folder beside the SavedModel, and `sidecar_entries` into its sidecar beside the
    entries written here (which they cannot replace), for what is built on an export (`tflite`)."""
    export_dir = Path(export_dir)
    files.check_output_folder(export_dir, "export_dir")
    version = next_version(export_dir) if version is None else version
    if not isinstance(version, int) or version < 1:
        raise ExportError(f"{export_dir}: version must be a positive integer, got {version!r}")
    target = export_dir / str(version)
    if target.exists():
        raise ExportError(f"{target}: version {version} already exists; pick another --version or leave it out")
    spec = ServingSpec.from_config(config)
    module = ServingModule(generator, spec)
    export_dir.mkdir(parents=True, exist_ok=True)
    # A dot-named temporary folder: TF Serving only looks at integer names, so it never sees a partial version.
    staging = files.temporary_folder(target)
    try:
        tf.saved_model.save(module, str(staging), signatures={SIGNATURE: module.serve})
        for name, content in (extra_files or {}).items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(content)
        metadata = {**(sidecar_entries or {}), "format": "bigo_facegen.export/1", "signature": SIGNATURE,
                    "inputs": list(spec.input_names), "outputs": list(spec.output_names),
                    "spec": dataclasses.asdict(spec), "config": config.to_dict()}
        (staging / SIDECAR).write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def export_model(model: str | os.PathLike, export_dir: str | os.PathLike, version: int | None = None,
                 painters: Sequence[str | os.PathLike] = ()) -> Path:
    """Exports the generator of `model` (`load_generator`: a training run's latest checkpoint, or an export, the shipped
    model's included, written again) with the painters `painter_pieces` finds."""
    files.check_output_folder(export_dir, "export_dir")  # before the model is loaded
    extra, entries = painter_pieces(model, painters)
    generator, config = load_generator(model)
    return export(generator, config, export_dir, version, extra, entries)


def painter_pieces(model: str | os.PathLike, painters: Sequence[str | os.PathLike] = ()
                   ) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files and the sidecar entry that carry painters (`painting`) into an export of `model`: those in the
    folders `painters` (`painter_training` writes them), else those `model` ships if it is an export, else none; at
    most one per region. Each is loaded here, so that a folder that holds none fails before any export."""
    if not painters:
        model = pretrained.resolve(model)
        if not is_export(model):
            return {}, {}
        version_dir = resolve_version(model)
        painters = [version_dir / folder for folder in read_sidecar(version_dir).metadata.get(PAINTERS_ENTRY, [])]
    regions = [painting.Painter.load(folder).config.region for folder in painters]
    if len(set(regions)) < len(regions):
        raise ExportError(f"painters {', '.join(map(str, painters))}: more than one paints the same region "
                          f"({', '.join(regions)})")
    extra = {f"{PAINTERS_FOLDER}/{region}/{name}": (Path(folder) / name).read_bytes()
             for region, folder in zip(regions, painters) for name in painting.FILES}
    return extra, ({PAINTERS_ENTRY: [f"{PAINTERS_FOLDER}/{region}" for region in regions]} if regions else {})


def painters_of(version_dir: str | os.PathLike) -> list[painting.Painter]:
    """The painters that the export in `version_dir` ships (its sidecar's `painters` entry), in their order."""
    version_dir = Path(version_dir)
    folders = [version_dir / folder for folder in read_sidecar(version_dir).metadata.get(PAINTERS_ENTRY, [])]
    for folder in folders:
        if not folder.resolve().is_relative_to(version_dir.resolve()):
            raise ExportError(f"{version_dir / SIDECAR}: painter folder {folder} is outside the export's folder")
    return [painting.Painter.load(folder) for folder in folders]


def load_generator(model: str | os.PathLike) -> tuple[keras.Model, ExperimentConfig]:
    """The Keras generator and training config of `model`: a training model_dir (its latest checkpoint,
    `checkpoints.load_generator`), or an export (base or version folder; `pretrained.NAME`: the model shipped in the
    package), whose generator is rebuilt from its sidecar's config with the weights of its SavedModel: so that an
    export can be written again in another form (its TFLite conversion, `tflite`)."""
    path = pretrained.resolve(model)
    if not is_export(path):
        return checkpoints.load_generator(path)
    version_dir = resolve_version(path)
    sidecar = read_sidecar(version_dir)
    generator = build_generator(sidecar.config.model, sidecar.spec.image_size, sidecar.spec.num_points)
    # An export's variables are a checkpoint of its `ServingModule`, which holds the generator as `generator`.
    try:
        tf.train.Checkpoint(generator=generator).read(
            str(version_dir / "variables" / "variables")).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise ExportError(f"{version_dir}: its weights do not fit the generator that its {SIDECAR} builds "
                          f"({checkpoints.error_summary(error)})") from None
    return generator, sidecar.config


def _versions(path: Path) -> list[Path]:
    """The complete version folders under a base folder, lowest version first."""
    if not path.is_dir():
        return []
    found = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    return sorted(found, key=lambda p: int(p.name))


def is_export(path: str | os.PathLike) -> bool:
    """True when `path` is an export version folder or a base folder holding integer-named versions."""
    path = Path(path)
    return (path / "saved_model.pb").is_file() or bool(_versions(path))


def resolve_version(path: str | os.PathLike) -> Path:
    """The version folder to load: `path` itself if it holds `saved_model.pb`, else its highest integer version."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = _versions(path)
    if not versions:
        raise ExportError(f"{path}: no saved_model.pb, and no version folder (1/, 2/, ...) holding one")
    return versions[-1]


@dataclasses.dataclass
class LoadedExport:
    """A loaded export: `serve(**inputs) -> {"generated": ...}` is the `serving_default` signature behind
    `check_request`."""
    path: Path
    spec: ServingSpec
    config: ExperimentConfig
    serve: object
    saved_model: object


@dataclasses.dataclass(frozen=True)
class Sidecar:
    """What an export version's `bigo_facegen.json` says: the serving spec, the training config, and all of it as
    read (`metadata`), entries that others wrote beside them (`export`'s `sidecar_entries`) included."""
    spec: ServingSpec
    config: ExperimentConfig
    metadata: dict


def read_sidecar(version_dir: Path) -> Sidecar:
    sidecar = version_dir / SIDECAR
    if not sidecar.is_file():
        raise ExportError(f"{version_dir}: no {SIDECAR} beside saved_model.pb: not a bigo-facegen export "
                          f"(export it with `python -m experiments.export`)")
    try:
        metadata = json.loads(sidecar.read_text(encoding="utf-8"))
        return Sidecar(ServingSpec.from_sidecar(metadata["spec"]), ExperimentConfig.from_dict(metadata["config"]),
                       metadata)
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{sidecar}: unreadable export metadata: {e}") from e


def load(path: str | os.PathLike) -> LoadedExport:
    """Loads an export (a version folder, or a base folder: its highest version) with its sidecar."""
    version_dir = resolve_version(path)
    sidecar = read_sidecar(version_dir)
    saved_model = tf.saved_model.load(str(version_dir))
    if SIGNATURE not in saved_model.signatures:
        raise ExportError(f"{version_dir}: the SavedModel has no {SIGNATURE!r} signature")
    return LoadedExport(version_dir, sidecar.spec, sidecar.config,
                        serve_checked(sidecar.spec, saved_model.signatures[SIGNATURE]), saved_model)

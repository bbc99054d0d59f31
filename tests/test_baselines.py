"""The copy and warp methods on real frames."""
import dataclasses

import numpy as np
import pytest
from scipy.spatial import Delaunay

from bigo_facegen import annotations, geometry, methods, video
from bigo_facegen.evaluation import metrics
from bigo_facegen.face_model import GenerationError


@pytest.fixture(scope="module")
def clip(real_faces_dir):
    entry = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == "lp_d0.mp4")
    return entry, video.read_all(real_faces_dir / entry.video_path)


def test_copy_repeats_the_reference(clip):
    entry, frames = clip
    out = [r.frame for r in methods.Copy().frames(frames[0], entry.frames[0], entry.frames[1:4])]
    assert len(out) == 3 and all(np.array_equal(frame, frames[0]) for frame in out)


def test_warp_onto_the_reference_points_returns_the_reference(clip):
    entry, frames = clip
    out = [r.frame for r in methods.Warp().frames(frames[0], entry.frames[0], [entry.frames[0]])]
    assert np.array_equal(out[0], frames[0])


def test_warp_translates_the_face_when_all_points_move_alike(clip):
    entry, frames = clip
    reference = entry.frames[0]
    shift = np.array([6.0, -4.0], np.float32)
    target = dataclasses.replace(reference, points=reference.points + shift)
    out = next(methods.Warp().frames(frames[0], reference, [target])).frame
    # Inside the hull of the face points every triangle is a pure translation.
    inner = Delaunay(reference.points + shift)
    ys, xs = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1)
    inside = (inner.find_simplex(pixels) >= 0).reshape(xs.shape)
    sx, sy = int(shift[0]), int(shift[1])
    expected = np.roll(frames[0], (sy, sx), axis=(0, 1))
    assert inside.sum() > 10000
    assert np.abs(out[inside].astype(int) - expected[inside]).max() <= 1
    # The frame border stays where it was.
    assert np.array_equal(out[0], frames[0][0]) and np.array_equal(out[:, -1], frames[0][:, -1])


def test_warp_ignores_absent_points(clip):
    entry, frames = clip
    reference = entry.frames[0]
    points, flags = reference.points.copy(), reference.flags.copy()
    points[10], flags[10] = (-500.0, 900.0), annotations.FLAG_ABSENT
    target = dataclasses.replace(reference, points=points, flags=flags)
    assert np.array_equal(next(methods.Warp().frames(frames[0], reference, [target])).frame, frames[0])


def test_warp_beats_copy_on_real_motion(clip):
    entry, frames = clip
    targets = entry.frames[20::10]
    warped = [r.frame for r in methods.Warp().frames(frames[0], entry.frames[0], targets)]
    warp_psnr = np.mean([metrics.psnr(frames[t.index - 1], w) for t, w in zip(targets, warped)])
    copy_psnr = np.mean([metrics.psnr(frames[t.index - 1], frames[0]) for t in targets])
    warp_ssim = np.mean([metrics.ssim(metrics.face_crop(frames[t.index - 1], t.bbox), metrics.face_crop(w, t.bbox))
                         for t, w in zip(targets, warped)])
    copy_ssim = np.mean([metrics.ssim(metrics.face_crop(frames[t.index - 1], t.bbox),
                                      metrics.face_crop(frames[0], t.bbox)) for t in targets])
    assert warp_psnr > copy_psnr and warp_ssim > copy_ssim



def test_the_classical_methods_are_loaded_by_name_and_their_faces_are_the_target_box(clip):
    entry, frames = clip
    targets = entry.frames[20:22]
    for name, kind in (("copy", "copied"), ("warp", "warped")):
        method = methods.load(name)
        assert method.model is None and method.face_size == methods.CLASSICAL_FACE_SIZE
        for target, result in zip(targets, method.frames(frames[0], entry.frames[0], targets), strict=True):
            assert (result.index, result.kind) == (target.index, kind)
            np.testing.assert_array_equal(result.face, geometry.crop(result.frame, target.bbox, method.face_size)[0])
    with pytest.raises(GenerationError, match="^'copy' is the reference frame as it is, not a network: there is "
                                              "nothing to compile$"):
        methods.load("copy", compiled=True)

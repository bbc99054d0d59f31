"""The optical-flow targets of the dense-motion network, on real face crops of the shared development footage."""
import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, geometry, optical_flow, video

SIZE = 96


@pytest.fixture(scope="module")
def crops(real_faces_dir):
    """A real clip's first face crop as the reference of four later face crops, each cut at its own face box."""
    clip = annotations.load(real_faces_dir / "annotations.json")[3]
    frames = video.read_all(annotations.resolve_video_path(clip, real_faces_dir))
    faces = [geometry.crop(frames[f.index - 1], f.bbox, SIZE)[0] for f in clip.face_frames()[:80:16]]
    return np.stack([faces[0]] * 4).astype(np.float32), np.stack(faces[1:]).astype(np.float32)


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_the_reference_moved_by_the_flow_shows_the_target(crops):
    references, targets = crops
    sources, valid = optical_flow.backward_flow(references, targets)
    assert sources.shape == (4, SIZE, SIZE, 2) and valid.shape == (4, SIZE, SIZE, 1)
    for reference, target, source, trusted in zip(references, targets, sources, valid):
        moved = cv2.remap(reference, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        assert _psnr(moved, target) > _psnr(reference, target) + 2.0
        assert trusted.mean() > 0.8


def test_a_shifted_crop_gives_the_shift_and_distrusts_what_left_the_crop(crops):
    reference = crops[0][:1]
    dx, dy = 3, -2
    shifted = cv2.warpAffine(reference[0], np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE),
                             borderMode=cv2.BORDER_REPLICATE)[None]
    sources, valid = optical_flow.backward_flow(reference, shifted)
    grid = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE)), axis=-1)
    trusted = valid[0, ..., 0] > 0
    # Content moved by (dx, dy): each target pixel shows the reference pixel (-dx, -dy) away.
    np.testing.assert_allclose(np.median((sources[0] - grid)[trusted], axis=0), [-dx, -dy], atol=0.25)
    # The bottom rows show the replicated border (their content would come from below the crop): not trusted.
    assert trusted[SIZE + dy:].mean() < 0.5 < trusted[8:-8, 8:-8].mean()


def test_rejects_batches_of_other_shapes(crops):
    references, targets = crops
    with pytest.raises(ValueError, match="two \\(B, S, S, 3\\) batches"):
        optical_flow.backward_flow(references, targets[:2])


def test_fills_an_augmentation_brought_in_are_not_trusted(crops):
    references, targets = crops
    _, trusted = optical_flow.backward_flow(references, targets)
    target_content = np.ones(targets.shape[:3] + (1,), np.float32)
    target_content[:, :, :20] = 0.0                      # the target's left band is a fill
    reference_content = np.ones_like(target_content)
    reference_content[:, :, 70:] = 0.0                   # the reference's right band is a fill
    sources, valid = optical_flow.backward_flow(references, targets, reference_content, target_content)
    assert not valid[:, :, :20].any()
    assert not valid[sources[..., 0] >= 70.5].any()      # nothing read from the reference's fill is trusted
    kept = (trusted[..., 0] > 0) & (sources[..., 0] < 69) & (np.arange(SIZE) >= 20)[None, None, :]
    assert valid[..., 0][kept].all()                      # everything else keeps its trust

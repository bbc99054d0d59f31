"""Metrics on crafted image pairs and against scikit-image on real frames."""
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bigo_facegen import annotations, video
from bigo_facegen.evaluation import metrics


@pytest.fixture(scope="module")
def real_frames(real_faces_dir):
    """(reference, later frame, later frame's annotation) of a 256 px and a 512 px clip."""
    out = []
    for name in ("mead_W011_neutral.mp4", "lp_d0.mp4"):
        entry = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == name)
        frames = video.read_all(real_faces_dir / entry.video_path)
        out.append((frames[0], frames[40], entry.frames[40]))
    return out


def _textured(seed=0, shape=(96, 128, 3)):
    rng = np.random.default_rng(seed)
    smooth = rng.uniform(70, 180, size=(shape[0] // 8, shape[1] // 8, shape[2]))
    return np.kron(smooth, np.ones((8, 8, 1))).round().astype(np.uint8)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    image = _textured()
    assert metrics.psnr(image, image.copy()) == float("inf")
    assert metrics.ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 12.0])
def test_gaussian_noise_gives_the_expected_psnr(sigma):
    image = _textured(1, (256, 256, 3))
    noise = np.random.default_rng(2).normal(0, sigma, image.shape)
    noisy = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
    # Rounding to integers adds a uniform error of variance 1/12.
    expected = 10 * np.log10(255.0 ** 2 / (sigma ** 2 + 1 / 12))
    assert metrics.psnr(image, noisy) == pytest.approx(expected, abs=0.1)
    assert metrics.ssim(image, noisy) < 1.0


def test_more_noise_means_lower_ssim():
    image = _textured(3, (128, 128, 3))
    rng = np.random.default_rng(4)
    values = [metrics.ssim(image, np.clip(np.round(image + rng.normal(0, s, image.shape)), 0, 255).astype(np.uint8))
              for s in (1, 4, 16)]
    assert values[0] > values[1] > values[2]


def test_psnr_and_ssim_match_scikit_image_on_real_frames(real_frames):
    for reference, truth, target in real_frames:
        assert metrics.psnr(truth, reference) == pytest.approx(
            peak_signal_noise_ratio(truth, reference, data_range=255), abs=1e-9)
        assert metrics.ssim(truth, reference) == pytest.approx(
            structural_similarity(truth, reference, channel_axis=-1, data_range=255), abs=1e-9)
        face_truth, face_reference = metrics.face_crop(truth, target.bbox), metrics.face_crop(reference, target.bbox)
        assert face_truth.shape == (metrics.FACE_SIZE, metrics.FACE_SIZE, 3)
        assert metrics.ssim(face_truth, face_reference) == pytest.approx(
            structural_similarity(face_truth, face_reference, channel_axis=-1, data_range=255), abs=1e-9)
        gray_truth, gray_reference = truth[..., 1], reference[..., 1]
        assert metrics.ssim(gray_truth, gray_reference) == pytest.approx(
            structural_similarity(gray_truth, gray_reference, data_range=255), abs=1e-9)


def test_metrics_reject_mismatched_images():
    image = _textured()
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(image, image[:-1])
    with pytest.raises(ValueError, match="uint8"):
        metrics.ssim(image, image.astype(np.float32))


def test_keypoint_nme_is_the_shift_over_the_outer_eye_corner_distance():
    rng = np.random.default_rng(5)
    target = rng.uniform(0, 100, (68, 2))
    target[36], target[45] = (20.0, 40.0), (60.0, 40.0)
    assert metrics.keypoint_nme(target + (3.0, 4.0), target, (36, 45)) == pytest.approx(5.0 / 40.0)
    assert metrics.keypoint_nme(target, target, (36, 45)) == 0.0
    target[45] = target[36]
    with pytest.raises(ValueError, match="coincide"):
        metrics.keypoint_nme(target, target, (36, 45))


def test_nearest_identity_picks_the_closest_reference():
    references = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    person, distances = metrics.nearest_identity(np.array([0.9, 0.2]), references, ["a", "b", "c"])
    assert person == "b"
    np.testing.assert_allclose(distances, [np.hypot(0.9, 0.2), np.hypot(0.1, 0.2), np.hypot(0.9, 0.8)])


def test_keypoint_jitter_ignores_steady_motion_and_measures_a_shake():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (68, 2))
    step = np.array([3.0, -1.0])
    assert metrics.keypoint_jitter(points, points + step, points + 2 * step, 50.0) == pytest.approx(0.0, abs=1e-12)
    # The middle frame shaken by 4 px: the second difference is 8 px at every point.
    shaken = points + np.array([4.0, 0.0])
    assert metrics.keypoint_jitter(points, shaken, points, 50.0) == pytest.approx(8.0 / 50.0)
    with pytest.raises(ValueError, match="inter-ocular"):
        metrics.keypoint_jitter(points, points, points, 0.0)

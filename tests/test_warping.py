"""Motion ops on real face crops: the thin-plate-spline grid is the identity for unmoved keypoints, reproduces an
affine motion of the keypoints as OpenCV's affine warp of the crop, follows real keypoint motion without folding,
falls back to identity without enough points, and matches SciPy's float64 thin-plate spline on real keypoint pairs;
bilinear sampling and grid downsampling agree with their definitions, a warp_refine generator gives the same faces
with these ops as with float64 SciPy ones, and everything compiles with XLA."""
import cv2
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage
from scipy.interpolate import RBFInterpolator

from bigo_facegen import annotations, config, geometry, video, warping
from bigo_facegen.models.contract import from_unit
from bigo_facegen.models.registry import build_generator

SIZE = 64
SMOOTHNESS = 1e-2  # tps_grid's default


@pytest.fixture(scope="module")
def real_faces(real_faces_dir):
    """Five 64-px crops of one real clip (RGB uint8) 10 frames apart, with their keypoints in crop pixels and flags."""
    clip = annotations.load(real_faces_dir / "annotations.json")[0]
    frames = video.read_all(annotations.resolve_video_path(clip, real_faces_dir))
    faces = []
    for frame in clip.face_frames()[:41:10]:
        crop, matrix = geometry.crop(frames[frame.index - 1], frame.bbox, SIZE)
        faces.append((crop, geometry.apply_affine(frame.points, matrix).astype(np.float32), frame.flags))
    return faces


@pytest.fixture(scope="module")
def real_pair(real_faces):
    """Two of them, 40 frames apart."""
    return real_faces[0], real_faces[-1]


@pytest.fixture(scope="module")
def real_keypoint_pairs(real_faces_dir):
    """Keypoint pairs of every real clip in crop pixels of SIZE-px crops: its first face (reference) and its middle
    one (target), each cut by its own box; (reference points, target points, pairs present in both)."""
    pairs = []
    for clip in annotations.load(real_faces_dir / "annotations.json"):
        faces = clip.face_frames()
        reference, target = faces[0], faces[len(faces) // 2]
        pairs.append([geometry.apply_affine(face.points, geometry.crop_matrix(face.bbox, SIZE)).astype(np.float32)
                      for face in (reference, target)] + [(reference.flags > 0) & (target.flags > 0)])
    return [np.stack(column) for column in zip(*pairs)]


def scipy_tps_grid(reference_points, target_points, valid, height, width):
    """`tps_grid` by SciPy in float64, one face at a time: the same spline in the same normalised coordinates (SciPy's
    kernel r^2 log r is half of U = r^2 log r^2, hence half the smoothing), without the affine ridge."""
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    scale = max(height, width) / 2
    pixels = np.stack(np.meshgrid(np.arange(width), np.arange(height)), axis=-1).reshape(-1, 2).astype(np.float64)
    grids = []
    for reference, target, present in zip(np.asarray(reference_points, np.float64),
                                          np.asarray(target_points, np.float64), np.asarray(valid)):
        spline = RBFInterpolator((target[present] - centre) / scale, (reference[present] - target[present]) / scale,
                                 kernel="thin_plate_spline", smoothing=SMOOTHNESS / 2, degree=1)
        grids.append(pixels + spline((pixels - centre) / scale) * scale)
    return np.stack(grids).reshape(-1, height, width, 2)


def scipy_bilinear_sample(image, grid):
    """`bilinear_sample` by SciPy in float64: linear interpolation, the border pixel repeated outside."""
    image, grid = np.asarray(image, np.float64), np.asarray(grid, np.float64)
    out = np.empty(grid.shape[:3] + image.shape[3:])
    for b in range(image.shape[0]):
        for c in range(image.shape[3]):
            out[b, ..., c] = ndimage.map_coordinates(image[b, ..., c], [grid[b, ..., 1], grid[b, ..., 0]], order=1,
                                                     mode="nearest")
    return out


def batch_of(*arrays):
    return [np.asarray(a)[None] for a in arrays]


def test_identical_keypoints_give_the_identity(real_pair):
    crop, points, flags = real_pair[0]
    reference_points, target_points, valid = batch_of(points, points, flags > 0)
    grid = warping.tps_grid(reference_points, target_points, valid, SIZE, SIZE)
    np.testing.assert_allclose(grid[0], warping.identity_grid(SIZE, SIZE), atol=1e-4)
    warped = warping.bilinear_sample(crop[None].astype(np.float32), grid)[0].numpy()
    np.testing.assert_allclose(warped, crop, atol=1e-2)


def test_affine_keypoint_motion_gives_the_affine_warp(real_pair):
    crop, points, flags = real_pair[0]
    matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 12.0, 1.05)
    matrix[:, 2] += (3.0, -2.0)
    moved = geometry.apply_affine(points, matrix).astype(np.float32)
    grid = warping.tps_grid(*batch_of(points, moved, flags > 0), SIZE, SIZE)[0].numpy()

    inverse = cv2.invertAffineTransform(matrix)
    expected_grid = warping.identity_grid(SIZE, SIZE).numpy() @ inverse[:, :2].T + inverse[:, 2]
    np.testing.assert_allclose(grid, expected_grid, atol=0.01)

    warped = warping.bilinear_sample(crop[None].astype(np.float32), grid[None])[0].numpy()
    expected = cv2.warpAffine(crop.astype(np.float32), matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    interior = (slice(6, -6), slice(6, -6))
    error = np.abs(warped[interior] - expected[interior])
    assert error.mean() < 0.1 and error.max() < 1.0
    # The motion is real: the warp differs from the unmoved crop.
    assert np.abs(crop[interior].astype(np.float32) - expected[interior]).mean() > 10.0


def test_tps_follows_real_keypoint_motion_without_folding(real_pair):
    (_, reference_points, reference_flags), (_, target_points, target_flags) = real_pair
    valid = (reference_flags > 0) & (target_flags > 0)
    grid = warping.tps_grid(*batch_of(reference_points, target_points, valid), SIZE, SIZE)
    # Each target keypoint reads (close to) its reference keypoint.
    read_at_targets = warping.bilinear_sample(grid, target_points[None, :, None, :])[0, :, 0].numpy()
    fit_error = np.linalg.norm(read_at_targets - reference_points, axis=-1)[valid]
    motion = np.linalg.norm(target_points - reference_points, axis=-1)[valid]
    assert fit_error.mean() < 0.5 < motion.mean()
    grid = grid[0].numpy()
    dx_dy, dx_dx = np.gradient(grid[..., 0])
    dy_dy, dy_dx = np.gradient(grid[..., 1])
    assert np.all(dx_dx * dy_dy - dx_dy * dy_dx > 0), "the warp folds over"


def test_only_pairs_present_in_both_count_and_too_few_give_identity(real_pair):
    (_, reference_points, _), (_, target_points, _) = real_pair
    valid = np.ones(len(reference_points), bool)
    valid[:10] = False
    garbage = target_points.copy()
    garbage[:10] = np.random.default_rng(0).uniform(-100, 100, (10, 2))
    np.testing.assert_allclose(
        warping.tps_grid(*batch_of(reference_points, garbage, valid), SIZE, SIZE),
        warping.tps_grid(*batch_of(reference_points, target_points, valid), SIZE, SIZE), atol=1e-4)

    two = np.zeros(len(reference_points), bool)
    two[[30, 48]] = True
    identity = warping.identity_grid(SIZE, SIZE).numpy()
    for valid in (two, np.zeros_like(two)):
        grid = warping.tps_grid(*batch_of(reference_points, target_points, valid), SIZE, SIZE)
        np.testing.assert_array_equal(grid[0], identity)

    # Collinear (and coincident) points leave the affine part underdetermined: still a finite, sensible grid.
    line = np.stack([np.linspace(10, 50, 68), np.full(68, 30.0)], axis=-1).astype(np.float32)
    line[1] = line[0]
    grid = warping.tps_grid(*batch_of(line, line + (2.0, 0.0), np.ones(68, bool)), SIZE, SIZE)[0].numpy()
    assert np.all(np.isfinite(grid))
    np.testing.assert_allclose(grid[30, 10:50] - identity[30, 10:50], np.tile([-2.0, 0.0], (40, 1)), atol=0.05)


def test_tps_grid_matches_scipy_float64_spline_on_real_keypoint_pairs(real_keypoint_pairs):
    reference_points, target_points, valid = real_keypoint_pairs
    grid = warping.tps_grid(reference_points, target_points, valid, SIZE, SIZE).numpy()
    expected = scipy_tps_grid(reference_points, target_points, valid, SIZE, SIZE)
    # Measured: at most 2.5e-4 px on 64-px crops of the 39 dev clips (1.4e-3 px on 224-px ones).
    np.testing.assert_allclose(grid, expected, atol=5e-3)
    # The motion is real: the faces moved by several pixels.
    motion = np.abs(expected - warping.identity_grid(SIZE, SIZE).numpy()).max(axis=(1, 2, 3))
    assert np.median(motion) > 2.0


def test_a_generator_gives_the_same_faces_with_float64_scipy_motion_ops(real_faces, monkeypatch):
    """A randomly initialised warp_refine generator (the cpu preset's sizes) on one real reference and four real
    target keypoint sets: its output with `tps_grid` and `bilinear_sample` against the same with their float64 SciPy
    counterparts differs by less than one level of 255 at every pixel."""
    (reference, reference_points, reference_flags), targets = real_faces[0], real_faces[1:]
    count = len(targets)
    inputs = {"reference": np.repeat(reference[None].astype(np.float32) / 127.5 - 1.0, count, axis=0),
              "reference_points": np.repeat(reference_points[None], count, axis=0),
              "reference_flags": np.repeat(reference_flags[None], count, axis=0),
              "target_points": np.stack([points for _, points, _ in targets]),
              "target_flags": np.stack([flags for _, _, flags in targets])}
    model_cfg = config.override(config.preset("cpu"), {"model.generator.type": "warp_refine"}).model
    tf.keras.utils.set_random_seed(0)
    generator = build_generator(model_cfg, SIZE, len(reference_points))
    fast = generator.compose(inputs)

    monkeypatch.setattr(warping, "tps_grid", lambda reference_points, target_points, valid, height, width: tf.constant(
        scipy_tps_grid(reference_points, target_points, valid, height, width), tf.float32))
    monkeypatch.setattr(warping, "bilinear_sample",
                        lambda image, grid: tf.constant(scipy_bilinear_sample(image, grid), image.dtype))
    exact = generator.compose(inputs)
    assert np.abs(exact["flow"] - warping.identity_grid(SIZE, SIZE)).max() > 2.0  # the faces moved
    levels = np.abs(from_unit(fast["image"]).numpy() - from_unit(exact["image"]).numpy())
    assert levels.max() < 1.0, f"outputs differ by up to {levels.max():.3f} of 255"


def test_bilinear_sample_interpolates_and_repeats_the_border(real_pair):
    crop = real_pair[0][0].astype(np.float32)[None]
    identity = warping.identity_grid(SIZE, SIZE).numpy()
    np.testing.assert_array_equal(warping.bilinear_sample(crop, identity[None]), crop)
    between = warping.bilinear_sample(crop, (identity + (0.5, 0.5))[None])[0].numpy()
    c = crop[0]
    np.testing.assert_allclose(between[:-1, :-1], (c[:-1, :-1] + c[:-1, 1:] + c[1:, :-1] + c[1:, 1:]) / 4, atol=1e-3)
    np.testing.assert_allclose(between[-1, :-1], (c[-1, :-1] + c[-1, 1:]) / 2, atol=1e-3)
    outside = warping.bilinear_sample(crop, np.full((1, 2, 2, 2), -7.0, np.float32))[0].numpy()
    np.testing.assert_array_equal(outside, np.broadcast_to(crop[0, 0, 0], (2, 2, 3)))


def test_bilinear_sample_is_differentiable_in_image_and_grid(real_pair):
    crop = tf.constant(real_pair[0][0].astype(np.float32)[None] / 255.0)
    grid = tf.constant((warping.identity_grid(SIZE, SIZE).numpy() + 0.3)[None])
    with tf.GradientTape() as tape:
        tape.watch([crop, grid])
        loss = tf.reduce_sum(warping.bilinear_sample(crop, grid) * tf.linspace(0.0, 1.0, SIZE)[:, None, None])
    image_gradient, grid_gradient = tape.gradient(loss, [crop, grid])
    assert np.abs(image_gradient.numpy()).sum() > 0 and np.abs(grid_gradient.numpy()).sum() > 0
    # The grid gradient is the image's slope: d/dx of the sampled value is the horizontal difference of neighbours.
    numeric = (warping.bilinear_sample(crop, grid + (1e-2, 0.0)) - warping.bilinear_sample(crop, grid)) / 1e-2
    expected = tf.reduce_sum(numeric * tf.linspace(0.0, 1.0, SIZE)[:, None, None], axis=-1)
    np.testing.assert_allclose(grid_gradient[..., 0], expected, atol=1e-2)


@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_grid_keeps_the_motion_at_feature_scale(factor):
    shift = np.array([4.0, -8.0], np.float32)
    grid = (warping.identity_grid(SIZE, SIZE) + shift)[None]
    small = warping.downsample_grid(grid, factor)[0].numpy()
    np.testing.assert_allclose(small, warping.identity_grid(SIZE // factor, SIZE // factor) + shift / factor,
                               atol=1e-5)


def test_xla_matches_eager(real_pair):
    (crop, reference_points, reference_flags), (_, target_points, target_flags) = real_pair
    args = batch_of(reference_points, target_points, (reference_flags > 0) & (target_flags > 0))

    def warp(reference_points, target_points, valid, image):
        grid = warping.tps_grid(reference_points, target_points, valid, SIZE, SIZE)
        return grid, warping.bilinear_sample(image, warping.downsample_grid(grid, 2))

    image = tf.image.resize(crop[None].astype(np.float32), [SIZE // 2, SIZE // 2])
    eager = warp(*args, image)
    compiled = tf.function(warp, jit_compile=True)(*args, image)
    np.testing.assert_allclose(compiled[0], eager[0], atol=1e-3)
    np.testing.assert_allclose(compiled[1], eager[1], atol=0.1)

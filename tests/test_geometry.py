"""Crops and affine transforms move image content and keypoints together, on real frames: a marker painted at a
keypoint lands where the transformed keypoint is, the keypoint map drawn from transformed points matches the
transformed map, and boxes leaving the frame repeat its border."""
import cv2
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from bigo_facegen import annotations, geometry, keypoints

SIZE = 224


@pytest.fixture(scope="module")
def real_frame(real_faces_dir, read_real_frame):
    """A real frame (RGB uint8) with its annotation."""
    clip = annotations.load(real_faces_dir / "annotations.json")[20]
    frame_annotation = clip.frames[10]
    return read_real_frame(clip, frame_annotation), frame_annotation


@pytest.fixture(scope="module")
def real_crop(real_frame):
    frame, frame_annotation = real_frame
    face, matrix = geometry.crop(frame, frame_annotation.bbox, SIZE)
    return face, geometry.apply_affine(frame_annotation.points, matrix), frame_annotation.flags


def _with_marker(image, x, y):
    """A float32 copy of `image` with +100 on the 3x3 block centred on integer pixel (x, y)."""
    marked = image.astype(np.float32)
    marked[y - 1:y + 2, x - 1:x + 2] += 100.0
    return marked


def _centroid(difference):
    """(x, y) centroid of a non-negative difference image (H, W) or (H, W, C)."""
    weights = difference.sum(axis=-1) if difference.ndim == 3 else difference
    y, x = ndimage.center_of_mass(np.clip(weights, 0, None))
    return np.array([x, y])


def _moved_marker(warp, image, point):
    """Where `warp` (an image -> image function) takes a marker painted at integer `point`."""
    x, y = (int(v) for v in point)
    return _centroid(warp(_with_marker(image, x, y)) - warp(image.astype(np.float32)))


def test_square_box_and_crop_matrix():
    assert geometry.square_box([10, 20, 30, 50]) == (25.0, 45.0, 50.0)
    matrix = geometry.crop_matrix([10, 20, 30, 50], 100)
    # The square box's edges go to the crop's edges, its centre to the crop's centre pixel.
    corners = geometry.apply_affine([[0, 20], [50, 70], [25, 45]], matrix)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [99.5, 99.5], [49.5, 49.5]], atol=1e-5)
    with pytest.raises(ValueError, match="non-positive width or height"):
        geometry.square_box([0, 0, 10, -1])


def test_matrix_helpers_agree_with_opencv():
    matrix = geometry.rotation_matrix((31.5, 12.0), 27.0, 1.3)
    cos, sin = 1.3 * np.cos(np.radians(27.0)), 1.3 * np.sin(np.radians(27.0))
    np.testing.assert_allclose(matrix[:, :2], [[cos, sin], [-sin, cos]], atol=1e-12)
    np.testing.assert_allclose(geometry.apply_affine([[31.5, 12.0]], matrix), [[31.5, 12.0]], atol=1e-5)
    points = np.array([[3.0, 4.0], [-10.0, 50.5]], np.float32)
    back = geometry.apply_affine(geometry.apply_affine(points, matrix), geometry.invert_affine(matrix))
    np.testing.assert_allclose(back, points, atol=1e-4)
    # Positive degrees turn counter-clockwise on screen: a point right of the centre goes up.
    np.testing.assert_allclose(geometry.apply_affine([[10.0, 0.0]], geometry.rotation_matrix((0, 0), 90)),
                               [[0.0, -10.0]], atol=1e-6)


def test_crop_moves_content_with_keypoints(real_frame):
    frame, frame_annotation = real_frame
    matrix = geometry.crop_matrix(frame_annotation.bbox, SIZE)
    face, same = geometry.crop(frame, frame_annotation.bbox, SIZE)
    assert face.shape == (SIZE, SIZE, 3) and face.dtype == np.uint8
    np.testing.assert_array_equal(same, matrix)

    def warp(image):
        return geometry.warp(image, matrix, SIZE)

    for index in (30, 36, 45, 48, 54, 8):  # nose tip, outer eye corners, mouth corners, chin
        point = np.round(frame_annotation.points[index])
        expected = geometry.apply_affine(point, matrix)
        np.testing.assert_allclose(_moved_marker(warp, frame, point), expected, atol=0.3)
        # ... and the keypoint map's dot for that point sits on the marker.
        dot = keypoints.draw_map(expected[None], [2], SIZE)[..., 0] + 1
        np.testing.assert_allclose(_centroid(dot), expected, atol=0.2)


def test_crop_outside_frame_replicates_border(real_frame):
    frame, _ = real_frame
    height, width = frame.shape[:2]
    bbox = [-60.0, -40.0, 160.0, 160.0]  # leaves the frame to the left and the top
    face, matrix = geometry.crop(frame, bbox, 64)
    source = geometry.apply_affine(np.stack(np.meshgrid(np.arange(64), np.arange(64)), -1).reshape(-1, 2),
                                   geometry.invert_affine(matrix)).reshape(64, 64, 2)
    left = (source[..., 0] <= 0) & (source[..., 1] >= 0)
    corner = (source[..., 0] <= 0) & (source[..., 1] <= 0)
    assert left.sum() > 100 and corner.sum() > 100
    # Left of the frame: the first column, interpolated along y; beyond the corner: the corner pixel.
    for channel in range(3):
        expected = np.interp(source[left][:, 1], np.arange(height), frame[:, 0, channel].astype(float))
        np.testing.assert_allclose(face[left][:, channel], expected, atol=1.5)
    np.testing.assert_array_equal(face[corner], np.broadcast_to(frame[0, 0], face[corner].shape))
    assert source[..., 0].max() < width


def test_affine_tf_matches_opencv_on_real_crop(real_crop):
    face, points, _ = real_crop
    degrees, scale = 23.0, 0.85
    warped, moved = geometry.affine_tf(face.astype(np.float32)[None], points[None], [degrees], [scale])
    matrix = geometry.rotation_matrix(((SIZE - 1) / 2, (SIZE - 1) / 2), degrees, scale)
    np.testing.assert_allclose(moved.numpy()[0], geometry.apply_affine(points, matrix), atol=1e-3)
    reference = geometry.warp(face.astype(np.float32), matrix, SIZE)
    difference = np.abs(warped.numpy()[0] - reference)
    # OpenCV quantises sampling positions to 1/32 pixel; a wrong centre or direction would give tens of levels.
    assert difference.mean() < 0.5 and np.percentile(difference, 99) < 4


def test_affine_tf_moves_markers_and_maps_with_points(real_crop):
    face, points, flags = real_crop
    degrees, scale = -31.0, 1.1

    def warp(image):
        return geometry.affine_tf(image[None], points[None], [degrees], [scale])[0].numpy()[0]

    _, moved = geometry.affine_tf(face[None], points[None], [degrees], [scale])
    moved = moved.numpy()[0]
    matrix = geometry.rotation_matrix(((SIZE - 1) / 2, (SIZE - 1) / 2), degrees, scale)
    for index in (30, 36, 45, 48, 54, 8):
        point = np.round(points[index])
        np.testing.assert_allclose(_moved_marker(warp, face, point), geometry.apply_affine(point, matrix), atol=0.3)

    # The map drawn from the moved points matches the map of the original points, moved.
    moved_map = warp(keypoints.draw_map(points, flags, SIZE)) + 1
    redrawn = keypoints.draw_map(moved, flags, SIZE) + 1
    labels, _ = ndimage.label(redrawn[..., 0] > 0)
    distance = np.linalg.norm(moved[:, None] - moved[None], axis=-1) + np.eye(len(moved)) * 1e9
    isolated = np.flatnonzero((distance.min(axis=1) > 7) & (moved >= 3).all(1) & (moved < SIZE - 3).all(1))
    assert len(isolated) >= 15
    for i in isolated:
        blob = labels == labels[int(round(moved[i, 1])), int(round(moved[i, 0]))]
        np.testing.assert_allclose(_centroid(np.where(blob, redrawn[..., 0], 0)), moved[i], atol=0.2)
        near = ndimage.binary_dilation(blob, iterations=2)
        np.testing.assert_allclose(_centroid(np.where(near, moved_map[..., 0], 0)), moved[i], atol=0.3)


def test_affine_tf_identity_and_unbatched(real_crop):
    face, points, _ = real_crop
    same, same_points = geometry.affine_tf(face, points, 0.0, 1.0)
    assert same.dtype == tf.uint8 and same.shape == face.shape
    np.testing.assert_array_equal(same.numpy(), face)
    np.testing.assert_allclose(same_points.numpy(), points, atol=1e-4)


def _fitted_rotation(before, after):
    """(degrees, scale) of the similarity taking centred `before` points to centred `after` points."""
    centre = (SIZE - 1) / 2
    a, b = before - centre, after - centre
    z = (b[:, 0] - 1j * b[:, 1]) / (a[:, 0] - 1j * a[:, 1])  # counter-clockwise on screen, y down
    return np.degrees(np.angle(z.mean())), np.abs(z.mean())


def test_random_affine_tf_is_seeded_and_in_range(real_crop):
    face, points, _ = real_crop
    images = np.stack([face] * 6)
    batch_points = np.stack([points] * 6)
    first = geometry.random_affine_tf(images, batch_points, 20.0, 0.1, tf.constant([7, 11]))
    again = geometry.random_affine_tf(images, batch_points, 20.0, 0.1, tf.constant([7, 11]))
    other = geometry.random_affine_tf(images, batch_points, 20.0, 0.1, tf.constant([8, 11]))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert not np.allclose(first[1].numpy(), other[1].numpy())
    fitted = np.array([_fitted_rotation(points, moved) for moved in first[1].numpy()])
    assert (np.abs(fitted[:, 0]) <= 20.0 + 1e-3).all() and (np.abs(fitted[:, 1] - 1) <= 0.1 + 1e-4).all()
    assert len(np.unique(np.round(fitted[:, 0], 3))) == 6, "each image gets its own draw"
    for image, moved, (degrees, scale) in zip(first[0].numpy(), first[1].numpy(), fitted):
        expected, _ = geometry.affine_tf(face, points, degrees, scale)
        assert np.abs(image.astype(int) - expected.numpy()).max() <= 1
        np.testing.assert_allclose(moved, geometry.apply_affine(
            points, geometry.rotation_matrix(((SIZE - 1) / 2,) * 2, degrees, scale)), atol=1e-2)


def test_random_affine_tf_in_data_pipeline(real_crop):
    face, points, _ = real_crop
    small = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    dataset = tf.data.Dataset.from_tensors((small, points * 64 / SIZE)).repeat(4).enumerate().map(
        lambda i, example: geometry.random_affine_tf(example[0], example[1], 15.0, 0.1, tf.stack([i, i + 1])),
        num_parallel_calls=2, deterministic=True)
    runs = [list(dataset.as_numpy_iterator()) for _ in range(2)]
    for (image_a, points_a), (image_b, points_b) in zip(*runs):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(points_a, points_b)
    assert runs[0][0][0].shape == (64, 64, 3) and runs[0][0][1].shape == (68, 2)
    assert not np.allclose(runs[0][0][1], runs[0][1][1])
    unchanged = geometry.random_affine_tf(small, points, 0.0, 0.0, tf.constant([1, 2]))
    np.testing.assert_array_equal(unchanged[0].numpy(), small)

"""Keypoint layouts and maps: dots land on the keypoints of real faces, colours follow flags, and the TF renderer
matches the NumPy one in eager mode, batched, under XLA and inside tf.data."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from bigo_facegen import annotations, geometry, keypoints
from bigo_facegen.keypoints import BIGO106, IBUG68, OCCLUDED_COLOR, VISIBLE_COLOR


@pytest.fixture(scope="module")
def real_face(real_faces_dir, read_real_frame):
    """A 224 px crop of a real frame and its 68 keypoints in crop pixels."""
    clip = annotations.load(real_faces_dir / "annotations.json")[5]
    frame_annotation = clip.frames[40]
    face, matrix = geometry.crop(read_real_frame(clip, frame_annotation), frame_annotation.bbox, 224)
    return face, geometry.apply_affine(frame_annotation.points, matrix), frame_annotation.flags


def _isolated(points, min_distance):
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
    return np.flatnonzero(distance.min(axis=1) > min_distance)


def _dot_centroids(channel, points, indices):
    """Intensity-weighted centroid (x, y) of the connected blob under each of `points[indices]`."""
    intensity = (channel + 1) / 2
    labels, _ = ndimage.label(intensity > 0)
    centroids = []
    for i in indices:
        label = labels[int(round(points[i, 1])), int(round(points[i, 0]))]
        assert label > 0, f"nothing drawn under point {i} at {points[i]}"
        y, x = ndimage.center_of_mass(intensity, labels, label)
        centroids.append((x, y))
    return np.array(centroids)


def test_layout_lookup():
    assert keypoints.layout_for_count(106) is BIGO106 and keypoints.layout_for_count(68) is IBUG68
    assert keypoints.get_layout("bigo106") is BIGO106 and keypoints.get_layout("ibug68") is IBUG68
    with pytest.raises(ValueError, match="no keypoint layout has 5 points"):
        keypoints.layout_for_count(5)
    with pytest.raises(ValueError, match="unknown keypoint layout 'dlib5'"):
        keypoints.get_layout("dlib5")


@pytest.mark.parametrize("layout, undrawn", [(BIGO106, {74, 77, 104, 105}), (IBUG68, set())])
def test_layout_polylines_cover_the_contours(layout, undrawn):
    drawn = {i for line in layout.polylines for i in line}
    assert drawn == set(range(layout.num_points)) - undrawn
    for part in (layout.left_eye, layout.right_eye, layout.mouth_inner, layout.jaw):
        assert set(part) <= drawn
    assert layout.left_eye_outer in layout.left_eye and layout.right_eye_outer in layout.right_eye
    assert all(a != b for a, b in layout.segments)


def test_ibug68_left_is_image_left_on_real_faces(real_face):
    _, points, _ = real_face
    assert points[IBUG68.left_eye_outer, 0] < points[IBUG68.right_eye_outer, 0]
    assert points[IBUG68.jaw[0], 0] < points[8, 0] < points[IBUG68.jaw[-1], 0]
    assert points[list(IBUG68.left_eye), 0].mean() < points[list(IBUG68.right_eye), 0].mean()


def test_dots_land_on_real_keypoints(real_face):
    _, points, flags = real_face
    keypoint_map = keypoints.draw_map(points, flags, 224, "dots", radius=1.5)
    assert keypoint_map.shape == (224, 224, 3) and keypoint_map.dtype == np.float32
    isolated = _isolated(points, min_distance=6)
    assert len(isolated) >= 20
    centroids = _dot_centroids(keypoint_map[..., 0], points, isolated)
    np.testing.assert_allclose(centroids, points[isolated], atol=0.2)  # half a pixel off would fail
    # The brightest pixel of each dot is the pixel the point falls in.
    for i in isolated:
        x, y = np.round(points[i]).astype(int)
        assert keypoint_map[y, x, 0] == keypoint_map[y - 3:y + 4, x - 3:x + 4, 0].max()


def test_heatmap_peaks_on_real_keypoints(real_face):
    _, points, flags = real_face
    heatmap = keypoints.draw_map(points, flags, 224, "heatmap", radius=1.5)
    for i in _isolated(points, min_distance=10):
        x, y = np.round(points[i]).astype(int)
        window = heatmap[y - 2:y + 3, x - 2:x + 3, 0]
        assert np.unravel_index(window.argmax(), window.shape) == (2, 2)


def test_colours_flags_and_crop_edges():
    points = np.array([[5, 5], [15, 5], [5, 15], [-0.7, 10], [-0.3, 18], [15, 15]], np.float32)
    flags = np.array([2, 1, 0, 2, 2, 2])
    keypoint_map = keypoints.draw_map(points, flags, 20, "dots", radius=1.5)
    np.testing.assert_array_equal(keypoint_map[5, 5], np.float32(VISIBLE_COLOR) * 2 - 1)
    np.testing.assert_array_equal(keypoint_map[5, 15], np.float32(OCCLUDED_COLOR) * 2 - 1)
    assert (keypoint_map[13:18, 3:8] == -1).all(), "a point with flag 0 was drawn"
    assert (keypoint_map[8:13, 0:3] == -1).all(), "a point off the crop was drawn"
    assert keypoint_map[18, 0, 0] > -1, "a point inside the crop's first pixel was not drawn"
    assert keypoint_map.min() == -1 and keypoint_map.max() == 1
    lit = (keypoint_map > -1).any(axis=-1)
    assert lit.sum() < 4 * 21, "more than four dots' worth of pixels lit"


def test_lines_follow_the_layout():
    rng = np.random.default_rng(1)
    points = rng.uniform(40, 60, (68, 2)).astype(np.float32)  # the rest of the face away from the eye
    points[36:42] = [[10, 10], [20, 10], [30, 10], [30, 20], [20, 20], [10, 20]]  # the image-left eye, a rectangle
    flags = np.full(68, 2)
    flags[39] = 1
    lines = keypoints.draw_map(points, flags, 64, "lines", radius=1.5)
    np.testing.assert_array_equal(lines[10, 15], np.float32(VISIBLE_COLOR) * 2 - 1)     # 36-37
    np.testing.assert_array_equal(lines[15, 10], np.float32(VISIBLE_COLOR) * 2 - 1)     # 41-36 closes the eye
    np.testing.assert_array_equal(lines[14, 30], np.float32(OCCLUDED_COLOR) * 2 - 1)    # 38-39, 39 occluded
    dots = keypoints.draw_map(points, flags, 64, "dots", radius=1.5)
    assert ((lines > -1).any(-1) >= (dots > -1).any(-1)).all(), "lines must keep the dots"
    flags[37] = 0
    assert (keypoints.draw_map(points, flags, 64, "lines")[10, 14:17] == -1).all(), "segment to an absent point"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown keypoint map style 'blobs'"):
        keypoints.draw_map(np.zeros((68, 2)), np.zeros(68), 8, "blobs")
    with pytest.raises(ValueError, match="68 points but 67 flags"):
        keypoints.draw_map(np.zeros((68, 2)), np.zeros(67), 8)
    with pytest.raises(ValueError, match="no keypoint layout has 5 points"):
        keypoints.draw_map_tf(np.zeros((5, 2)), np.zeros(5), 8, "lines")


def _random_points(batch, num_points, size, seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(-4, size + 4, (*batch, num_points, 2)).astype(np.float32)
    flags = rng.integers(0, 3, (*batch, num_points)).astype(np.int32)
    return points, flags


@pytest.mark.parametrize("style", keypoints.STYLES)
@pytest.mark.parametrize("num_points", [68, 106])
def test_tf_matches_numpy_batched_and_under_xla(style, num_points):
    points, flags = _random_points((2, 3), num_points, 40, seed=num_points)
    expected = np.stack([[keypoints.draw_map(p, f, 40, style, radius=1.2) for p, f in zip(ps, fs)]
                         for ps, fs in zip(points, flags)])
    assert (expected > -1).any()
    eager = keypoints.draw_map_tf(points, flags, 40, style, radius=1.2)
    assert eager.shape == (2, 3, 40, 40, 3) and eager.dtype == tf.float32
    np.testing.assert_allclose(eager.numpy(), expected, atol=1e-4)
    xla = tf.function(lambda p, f: keypoints.draw_map_tf(p, f, 40, style, radius=1.2), jit_compile=True)
    np.testing.assert_allclose(xla(points, flags).numpy(), expected, atol=1e-4)


def test_tf_in_data_pipeline_on_real_keypoints(real_face):
    _, points, flags = real_face
    dataset = tf.data.Dataset.from_tensors((points, flags)).map(
        lambda p, f: keypoints.draw_map_tf(p, f, 224, "dots"))
    (drawn,) = list(dataset.as_numpy_iterator())
    np.testing.assert_allclose(drawn, keypoints.draw_map(points, flags, 224, "dots"), atol=1e-4)


@pytest.mark.parametrize("style, size, radius", [
    ("dots", 24, 0.4), ("dots", 24, 2.5),
    ("heatmap", 48, 1.0),   # evaluated in windows around the points
    ("heatmap", 24, 3.0),   # a window as large as the crop: evaluated densely
])
def test_tf_matches_numpy_at_sub_pixel_positions_and_crop_edges(style, size, radius):
    """Points on every quarter pixel, exact halves included (where a point's window is tightest), plus points
    straddling the crop's edges and far off it; a batch of unknown size as in an exported model."""
    quarters = np.arange(0, 1, 0.25, dtype=np.float32)
    fx, fy = np.meshgrid(quarters, quarters)
    centres = np.stack([fx.ravel(), fy.ravel()], axis=-1)                       # 16 sub-pixel positions
    edges = np.array([[-0.5, 3], [-0.51, 9], [size - 0.51, 5], [size - 0.5, 15], [7, -0.5], [11, size - 0.6],
                      [1e6, 4], [-1e6, -1e6]], np.float32)
    points = np.stack([np.concatenate([centres + offset, edges]) for offset in ((6, 6), (size - 15, 12))])
    flags = np.stack([np.resize([2, 1, 2, 0], len(points[0])), np.resize([1, 2], len(points[0]))]).astype(np.int32)
    expected = np.stack([keypoints.draw_map(p, f, size, style, radius) for p, f in zip(points, flags)])
    spec = [tf.TensorSpec([None, len(points[0]), 2]), tf.TensorSpec([None, len(points[0])], tf.int32)]
    graph = tf.function(lambda p, f: keypoints.draw_map_tf(p, f, size, style, radius), input_signature=spec)
    np.testing.assert_allclose(graph(points, flags).numpy(), expected, atol=1e-4)
    assert (expected[:, :, 0] > -1).any() and (expected[:, :, -1] > -1).any(), "nothing drawn on the crop's edges"


def test_polygon_mask_is_the_inside_of_the_inner_lips_on_real_faces(real_faces_dir):
    """Against OpenCV's point-in-polygon test at every pixel centre, on the inner lips of a real clip's widest-open and
    most-closed mouths (frame pixels); an absent point empties its own face's mask only."""
    import cv2

    clip = annotations.load(real_faces_dir / "annotations.json")[0]
    faces = clip.face_frames()
    size = int(max(max(frame.points.max() for frame in faces) + 2, 64))
    lips = IBUG68.mouth_inner
    areas = [cv2.contourArea(frame.points[list(lips)].astype(np.float32)) for frame in faces]
    widest, closed = faces[int(np.argmax(areas))], faces[int(np.argmin(areas))]
    points = np.stack([widest.points, closed.points, widest.points]).astype(np.float32)
    flags = np.stack([widest.flags, closed.flags, widest.flags]).astype(np.int32)
    flags[2, lips[3]] = 0
    masks = keypoints.polygon_mask_tf(points, flags, lips, size)[..., 0].numpy()
    assert masks.shape == (3, size, size)

    polygon = points[0, list(lips)]
    centres = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).reshape(-1, 2).astype(np.float64)
    side = np.array([cv2.pointPolygonTest(polygon, tuple(c), True) for c in centres]).reshape(size, size)
    away_from_edges = np.abs(side) > 1e-3
    np.testing.assert_array_equal(masks[0][away_from_edges], (side > 0)[away_from_edges])
    assert masks[0].sum() > 20, "the widest-open mouth of the clip covers some pixels"
    assert masks[1].sum() < 0.2 * masks[0].sum()
    assert masks[2].sum() == 0

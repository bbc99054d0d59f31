"""The mouth and eye measures (`evaluation.regions`) on cases with a known answer: boxes grown by 0.15 IOD and clipped,
PSNR/SSIM that see only their box, a perceptual distance that is 0 for equal images and larger for blur than for faint
noise, teeth in a drawn mouth, the eye opening of known polygons, and the true frames scored as a method."""
import logging
import shutil

import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, methods, video
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import metrics, protocol, regions, report
from bigo_facegen.keypoints import IBUG68
from bigo_facegen.models import lite0_weights

CLIP = "mead_W009_neutral.mp4"
# The reference, two mouth-open targets whose truth shows teeth (5, 9), two whose truth shows none (15, 17), and two
# blinks (37, 86), relative to frame 1.
KEPT_FRAMES = (1, 5, 9, 15, 17, 37, 86)


def face(points: dict[int, tuple[float, float]], absent=()) -> FrameAnnotation:
    """An ibug68 face with the given points (the others at (50, 50)), every point visible but `absent`."""
    array = np.full((68, 2), 50.0, np.float32)
    for index, point in points.items():
        array[index] = point
    flags = np.full(68, 2, np.int32)
    flags[list(absent)] = 0
    return FrameAnnotation(index=2, bbox=np.array([0, 0, 300, 300], np.float32), points=array, flags=flags)


def outline(indices, x0, x1, y0, y1) -> dict[int, tuple[float, float]]:
    """Points `indices` spread on an ellipse spanning [x0, x1] x [y0, y1], starting at the left end."""
    angles = np.linspace(np.pi, -np.pi, len(indices), endpoint=False)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return {i: (cx + rx * np.cos(a), cy + ry * np.sin(a)) for i, a in zip(indices, angles)}


# Outer eye corners 100 px apart: boxes grow by 15 px.
CORNERS = {36: (100.0, 100.0), 45: (200.0, 100.0)}


@pytest.fixture(scope="module")
def clip(real_faces_dir):
    entry = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == CLIP)
    return entry, video.read_all(annotations.resolve_video_path(entry, real_faces_dir))


def test_a_box_grows_by_the_interocular_share_and_is_clipped_at_the_frame():
    mouth = face({**CORNERS, **outline(IBUG68.mouth_outer, 120, 180, 180, 200)})
    # [120 - 15, 180 + 15] x [180 - 15, 200 + 15]: the pixels whose centres lie in it, ends exclusive.
    assert regions.mouth_box(mouth, IBUG68, (300, 300, 3)) == (105, 165, 196, 216)
    assert regions.mouth_box(mouth, IBUG68, (210, 190, 3)) == (105, 165, 190, 210)
    left = face({**CORNERS, **outline(IBUG68.mouth_outer, -40, 10, 180, 200)})
    assert regions.mouth_box(left, IBUG68, (300, 300, 3)) == (0, 165, 26, 216)
    eyes = FrameAnnotation(index=2, bbox=mouth.bbox, points=hexagon_eyes(5), flags=mouth.flags)
    # Eyes over [100, 200] x [95, 105], outer corners 100 px apart.
    assert regions.eyes_box(eyes, IBUG68, (300, 300, 3)) == (85, 80, 216, 121)
    # A box off the frame, or one whose points are not all there, is no box.
    assert regions.mouth_box(mouth, IBUG68, (150, 300, 3)) is None
    assert regions.mouth_box(face({**CORNERS, **outline(IBUG68.mouth_outer, 120, 180, 180, 200)}, absent=[50]),
                             IBUG68, (300, 300, 3)) is None
    assert regions.mouth_box(face({**CORNERS, **outline(IBUG68.mouth_outer, 120, 180, 180, 200)}, absent=[45]),
                             IBUG68, (300, 300, 3)) is None


def test_region_scores_see_only_their_box(clip):
    entry, frames = clip
    target = entry.face_frames()[4]
    truth = frames[target.index - 1]
    box = regions.mouth_box(target, IBUG68, truth.shape)
    assert box is not None
    assert regions.box_scores(truth, truth.copy(), box) == (float("inf"), pytest.approx(1.0))
    # Changed everywhere but in the mouth box.
    generated = np.clip(truth.astype(int) + np.random.default_rng(0).integers(-20, 21, truth.shape), 0, 255)
    generated = generated.astype(np.uint8)
    x0, y0, x1, y1 = box
    generated[y0:y1, x0:x1] = truth[y0:y1, x0:x1]
    assert np.isfinite(metrics.psnr(truth, generated))
    assert regions.box_scores(truth, generated, box)[0] == float("inf")
    psnr_eyes, ssim_eyes = regions.box_scores(truth, generated, regions.eyes_box(target, IBUG68, truth.shape))
    assert np.isfinite(psnr_eyes) and ssim_eyes < 1
    # A box lower than SSIM's window still has a PSNR.
    assert regions.box_scores(truth, generated, (0, 0, 40, metrics.SSIM_WINDOW - 1))[1] is None
    assert np.isfinite(regions.box_scores(truth, generated, (0, 0, 40, metrics.SSIM_WINDOW - 1))[0])
    assert regions.box_scores(truth, generated, None) == (None, None)


def test_perceptual_distance_is_zero_for_equal_images_and_grows_with_blur(clip):
    entry, frames = clip
    target = entry.face_frames()[4]
    crop = metrics.face_crop(frames[target.index - 1], target.bbox)
    distance = regions.PerceptualDistance()
    assert distance(crop, crop.copy()) == 0.0
    assert distance.weights_path is not None
    noised = np.clip(crop + np.random.default_rng(0).normal(0, 3, crop.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(crop, (0, 0), 2.0)
    assert 0 < distance(crop, noised) < distance(crop, blurred)
    frame = frames[target.index - 1]
    patch = regions.mouth_patch(frame, regions.mouth_box(target, IBUG68, frame.shape))
    assert patch.shape == (regions.MOUTH_SIZE[1], regions.MOUTH_SIZE[0], 3)


def test_without_weights_perceptual_distances_are_none_said_once(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(lite0_weights, "packaged_state_dict_path", lambda: None)
    image = np.full((64, 64, 3), 128, np.uint8)
    distance = regions.PerceptualDistance()
    with caplog.at_level(logging.WARNING):
        assert distance(image, image) is None and distance(image, image) is None
    assert sum("Perceptual distances OFF" in r.getMessage() for r in caplog.records) == 1
    assert distance.weights_path is None
    assert not list(tmp_path.iterdir())


MOUTH = outline(IBUG68.mouth_inner, 50, 110, 48, 72)


@pytest.mark.parametrize("fill, teeth", [((235, 232, 225), True), ((70, 25, 30), False), ((215, 120, 120), False)])
def test_teeth_are_bright_unsaturated_pixels_inside_the_inner_lips(fill, teeth):
    rng = np.random.default_rng(0)
    image = np.clip(np.array([200, 140, 110]) + rng.normal(0, 4, (120, 160, 3)), 0, 255).astype(np.uint8)
    target = face({**CORNERS, **MOUTH})
    polygon = np.array([MOUTH[i] for i in IBUG68.mouth_inner], np.float64)
    cv2.fillPoly(image, [np.round(polygon).astype(np.int32)], fill)
    interior = regions.mouth_interior(target, IBUG68, image.shape)
    assert regions.shows_teeth(image, interior) is teeth


def test_teeth_need_over_a_share_of_the_mouth_and_a_mouth_to_look_in():
    image = np.full((120, 160, 3), (70, 25, 30), np.uint8)
    interior = regions.mouth_interior(face({**CORNERS, **MOUTH}), IBUG68, image.shape)
    (x0, y0, _, _), mask = interior
    ys, xs = np.nonzero(mask)
    for share, teeth in ((0.1, False), (0.2, True)):
        shown = image.copy()
        kept = int(share * len(ys))
        shown[ys[:kept] + y0, xs[:kept] + x0] = 240
        assert regions.shows_teeth(shown, interior) is teeth
    # cv2.fillPoly draws the edges too: a closed mouth's polygon is a line of pixels, here under 20 of them.
    closed = outline(IBUG68.mouth_inner, 50, 58, 60, 60.5)
    assert regions.mouth_interior(face({**CORNERS, **closed}), IBUG68, image.shape) is None
    assert regions.mouth_interior(face({**CORNERS, **MOUTH}, absent=[62]), IBUG68, image.shape) is None


def hexagon_eyes(height: float) -> np.ndarray:
    """68 points whose eyes are hexagons 30 px wide (corner to corner) and 2 x `height` high: area 4 * 10 * height,
    openness 40 height / 900."""
    points = np.zeros((68, 2), np.float32)
    shape = np.array([(0, 0), (10, -height), (20, -height), (30, 0), (20, height), (10, height)], np.float32)
    points[list(IBUG68.left_eye)] = shape + (100, 100)
    points[list(IBUG68.right_eye)] = shape + (170, 100)
    return points


def test_eye_opening_error_of_known_polygons():
    assert regions.eye_opening_error(hexagon_eyes(3), hexagon_eyes(1.5)) == pytest.approx(40 * 1.5 / 900)
    assert regions.eye_opening_error(hexagon_eyes(3), hexagon_eyes(3)) == 0.0
    assert regions.eye_opening_error(None, hexagon_eyes(3)) is None
    assert regions.eye_opening_error(hexagon_eyes(3), None) is None


def test_teeth_summary_counts_hits_and_false_teeth():
    pairs = [(True, True), (True, False), (False, False), (False, True), (False, False), (None, None)]
    scores = [protocol.FrameScore(index=i, psnr=30.0, ssim=0.9, psnr_face=30.0, ssim_face=0.9, teeth_truth=truth,
                                  teeth_output=output) for i, (truth, output) in enumerate(pairs)]
    summary = protocol.summarize(scores)
    assert (summary["teeth_hit"], summary["teeth_false"], summary["teeth_frames"]) == (0.5, pytest.approx(1 / 3), 2)
    summary = protocol.summarize(scores[:2])
    assert (summary["teeth_hit"], summary["teeth_false"], summary["teeth_frames"]) == (0.5, None, 2)


@pytest.fixture(scope="module")
def evaluation(real_faces_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    (root / "videos").mkdir()
    entry = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == CLIP)
    shutil.copyfile(real_faces_dir / entry.video_path, root / entry.video_path)
    entry.frames = [f for f in entry.frames if f.index in KEPT_FRAMES]
    annotations.dump([entry], root / "annotations.json")
    return protocol.evaluate(root, {"copy": methods.Copy(), protocol.TRUTH: None}, split="all",
                             samples_per_video=1, progress=False)


def test_the_truth_scored_as_a_method_is_the_regions_floor(evaluation):
    tables = report.method_tables(evaluation, protocol.TRUTH)
    truth, mouth_open, blink = tables["overall"], tables["conditions"]["mouth_open"], tables["conditions"]["blink"]
    assert (truth["teeth_hit"], truth["teeth_false"], truth["teeth_frames"]) == (1.0, 0.0, 2)
    assert mouth_open["frames"] == 4 and mouth_open["teeth_frames"] == 2 and blink["frames"] == 2
    assert truth["psnr_mouth"] == truth["psnr_eyes"] == float("inf")
    assert truth["ssim_mouth"] == pytest.approx(1.0) and truth["ssim_eyes"] == pytest.approx(1.0)
    assert truth["perceptual_face"] == truth["perceptual_mouth"] == 0.0
    assert truth["eye_opening_error"] == 0.0
    # The copy of the reference shows the reference's closed mouth and open eyes.
    copy = report.method_tables(evaluation, "copy")
    assert copy["overall"]["teeth_hit"] == 0.0 and copy["conditions"]["blink"]["eye_opening_error"] > 0.02
    assert np.isfinite(copy["overall"]["psnr_mouth"]) and copy["overall"]["perceptual_mouth"] > 0
    assert evaluation.settings["perceptual_weights"] is not None
    scores = {s.index: s for v in evaluation.videos for s in v.scores[protocol.TRUTH]}
    assert [i for i, s in scores.items() if s.teeth_truth is not None] == [5, 9, 15, 17]
    assert [i for i, s in scores.items() if s.eye_opening_error is not None] == [37, 86]

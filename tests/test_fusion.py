"""Colour transfer and background fusion on real frames of the shared development footage."""
import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, color, fusion, geometry, video


def _first_frame(real_faces_dir, clip):
    videos = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}
    entry = videos[f"{clip}.mp4"]
    frame = next(video.read_frames(real_faces_dir / entry.video_path))
    return frame, entry.face_frames()[0]


@pytest.fixture(scope="module")
def dpe(real_faces_dir):
    return _first_frame(real_faces_dir, "dpe_d")


@pytest.fixture(scope="module")
def retalk(real_faces_dir):
    return _first_frame(real_faces_dir, "retalk_2")


def _integer_box(bbox, side):
    """A square box of `side` px on pixel edges (pixel centres are at integers, so edges at half-integers) near the
    annotated one: cropping it at `side` px is a pure integer shift, so any difference after pasting back comes from
    the fusion, not from resampling."""
    cx, cy, _ = geometry.square_box(bbox)
    return np.array([round(cx - side / 2) - 0.5, round(cy - side / 2) - 0.5, side, side], np.float32)


def _max_difference(a, b):
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# --- colour transfer -----------------------------------------------------------------------------------------------

def test_color_transfer_matches_reference_lab_statistics(dpe, retalk):
    image, reference = dpe[0], retalk[0]
    mean_ref, std_ref = color.lab_stats(reference)
    mean_before, std_before = color.lab_stats(image)
    assert np.abs(mean_before - mean_ref).max() > 5.0  # the clips really differ in colour

    mean_after, std_after = color.lab_stats(color.transfer_color(image, reference))
    # Only 8-bit rounding and gamut clipping stand between the result and the target statistics.
    np.testing.assert_allclose(mean_after, mean_ref, atol=1.0)
    np.testing.assert_allclose(std_after, std_ref, atol=1.5)


def test_color_transfer_uses_masked_statistics(dpe, retalk):
    image, reference = dpe[0], retalk[0]
    face = np.zeros(reference.shape[:2], bool)
    x, y, w, h = retalk[1].bbox.astype(int)
    face[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4] = True
    mean_face, std_face = color.lab_stats(reference, face)
    mean_all, _ = color.lab_stats(reference)
    assert np.abs(mean_face - mean_all).max() > 3.0

    mean_after, std_after = color.lab_stats(color.transfer_color(image, reference, reference_mask=face))
    np.testing.assert_allclose(mean_after, mean_face, atol=1.5)
    np.testing.assert_allclose(std_after, std_face, atol=1.5)


def test_color_transfer_rejects_non_uint8_rgb(dpe):
    with pytest.raises(ValueError, match="uint8"):
        color.transfer_color(dpe[0].astype(np.float32), dpe[0])
    with pytest.raises(ValueError, match="mask selects no pixel"):
        color.lab_stats(dpe[0], np.zeros(dpe[0].shape[:2], bool))


# --- pasting the face ----------------------------------------------------------------------------------------------

def test_pasting_own_face_back_reproduces_the_frame(retalk):
    frame, annotation = retalk
    box = _integer_box(annotation.bbox, 288)
    face, _ = geometry.crop(frame, box, 288)
    out = fusion.paste_face(frame, face, box)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert _max_difference(out, frame) <= 1


def test_pasted_face_has_no_seam(retalk):
    frame, annotation = retalk
    box = _integer_box(annotation.bbox, 200)
    face, _ = geometry.crop(frame, box, 200)
    brighter = np.clip(face.astype(int) + 40, 0, 255).astype(np.uint8)

    def largest_step(out):
        # The pasted offset, seen as an image: a seam is a jump between neighbouring pixels of it.
        offset = out.astype(int) - frame.astype(int)
        return max(np.abs(np.diff(offset, axis=0)).max(), np.abs(np.diff(offset, axis=1)).max())

    assert largest_step(fusion.paste_face(frame, brighter, box, feather=0.005)) >= 20  # a hard paste shows the seam
    soft = fusion.paste_face(frame, brighter, box)
    assert largest_step(soft) <= 6
    x, y = round(box[0] + 0.5), round(box[1] + 0.5)
    assert _max_difference(soft[y + 100, x + 100], brighter[100, 100]) <= 1  # the face itself is kept whole


# --- shift fusion --------------------------------------------------------------------------------------------------

def test_shift_moves_content_by_the_box_offset(retalk):
    frame, annotation = retalk
    dx, dy = 23, -17
    target = annotation.bbox + np.array([dx, dy, 0, 0], np.float32)
    moved = fusion.ShiftFusion(frame, annotation.bbox).background(target)
    h, w = frame.shape[:2]
    np.testing.assert_array_equal(moved[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)],
                                  frame[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])


def test_shift_scales_the_box_onto_the_target(retalk):
    frame, annotation = retalk
    x, y, w, h = annotation.bbox
    target = np.array([x - w / 4, y - h / 4, 1.5 * w, 1.5 * h])
    matrix = fusion.box_to_box(annotation.bbox, target)
    corners = np.array([[x, y], [x + w, y + h]])
    np.testing.assert_allclose(geometry.apply_affine(corners, matrix),
                               [[target[0], target[1]], [target[0] + target[2], target[1] + target[3]]])


@pytest.mark.parametrize("border", ["replicate", "reflect"])
def test_uncovered_borders_are_filled_as_named(retalk, border):
    frame, annotation = retalk
    dx = 9
    moved = fusion.ShiftFusion(frame, annotation.bbox, border=border).background(
        annotation.bbox + np.array([dx, 0, 0, 0], np.float32))
    for k in range(dx):
        source_column = 0 if border == "replicate" else dx - k  # reflect mirrors about column 0 (gfedcb|abcdefgh)
        np.testing.assert_array_equal(moved[:, k], frame[:, source_column], err_msg=f"column {k}")


def test_unknown_border_and_fusion_are_rejected(retalk):
    frame, annotation = retalk
    with pytest.raises(ValueError, match="unknown border 'wrap'"):
        fusion.ShiftFusion(frame, annotation.bbox, border="wrap")
    with pytest.raises(ValueError, match="unknown fusion 'blend'"):
        fusion.make_fusion("blend", frame, annotation.bbox)


# --- segment fusion ------------------------------------------------------------------------------------------------

def test_grabcut_separates_the_person_from_the_background(retalk):
    frame, annotation = retalk
    person = fusion.segment_person(frame, annotation.bbox)
    cx, cy, side = geometry.square_box(annotation.bbox)
    assert person[int(cy), int(cx)]                      # the face
    assert person[frame.shape[0] - 5, int(cx)]           # the body under it
    assert not person[10, 10] and not person[10, -10]    # the wall map behind
    assert 0.1 < person.mean() < 0.7


def test_segment_fusion_moves_the_person_and_keeps_the_background(retalk):
    frame, annotation = retalk
    dx = 40
    target = annotation.bbox + np.array([dx, 0, 0, 0], np.float32)
    segment = fusion.SegmentFusion(frame, annotation.bbox)
    out = segment.background(target)
    still = ~fusion.segment_person(frame, annotation.bbox)
    far = still & np.roll(still, dx, axis=1) & np.roll(still, -dx, axis=1)
    far[:, :dx] = False
    # Away from the person the background stays where it was, where a shift would have moved it.
    assert np.abs(out[far].astype(int) - frame[far].astype(int)).mean() < 2.0
    shifted = fusion.ShiftFusion(frame, annotation.bbox).background(target)
    assert np.abs(shifted[far].astype(int) - frame[far].astype(int)).mean() > 5.0
    # The face moved with its box.
    cx, cy, _ = geometry.square_box(annotation.bbox)
    np.testing.assert_allclose(out[int(cy), int(cx) + dx], frame[int(cy), int(cx)], atol=2)


def test_nearest_fill_copies_the_nearest_known_pixel():
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, :30] = (200, 10, 10)
    frame[:, 30:] = (10, 10, 200)
    hole = np.zeros((40, 60), bool)
    hole[:, 20:40] = True
    filled = fusion.fill_background(frame, hole, "nearest")
    np.testing.assert_array_equal(filled[:, 20:29], 0 * filled[:, 20:29] + (200, 10, 10))
    np.testing.assert_array_equal(filled[:, 31:40], 0 * filled[:, 31:40] + (10, 10, 200))
    np.testing.assert_array_equal(filled[~hole], frame[~hole])


def test_inpaint_fill_continues_the_surroundings():
    frame = np.full((40, 60, 3), (90, 140, 60), np.uint8)
    frame[15:25, 25:35] = (255, 255, 255)  # the "person", to be removed
    hole = np.zeros((40, 60), bool)
    hole[13:27, 23:37] = True
    filled = fusion.fill_background(frame, hole, "inpaint")
    assert np.abs(filled.astype(int) - (90, 140, 60)).max() <= 2


def test_segment_fusion_pastes_the_face_over_the_person_only(retalk):
    frame, annotation = retalk
    target = annotation.bbox + np.array([30, 10, 0, 0], np.float32)
    segment = fusion.SegmentFusion(frame, annotation.bbox)
    background = segment.background(target)
    out = segment(np.full((64, 64, 3), 255, np.uint8), target)
    moved_matte = fusion.warp(segment.matte, fusion.box_to_box(annotation.bbox, target), segment.frame_size,
                              "replicate")
    cx, cy, side = geometry.square_box(target)
    inside_box = np.zeros(frame.shape[:2], bool)
    inside_box[int(cy - side / 2):int(cy + side / 2), int(cx - side / 2):int(cx + side / 2)] = True
    assert (out[inside_box & (moved_matte > 0.99)] == 255).mean() > 0.5  # the face went onto the person
    # ...and not onto the still background around it, even inside the crop's box.
    clear = inside_box & (moved_matte < 0.002)
    assert clear.sum() > 1000
    assert _max_difference(out[clear], background[clear]) <= 1


def test_segmentation_is_deterministic(retalk):
    frame, annotation = retalk
    first = fusion.segment_person(frame, annotation.bbox)
    np.random.default_rng(0).random(1000)
    cv2.randu(np.zeros((100, 100), np.float32), 0, 1)  # moves OpenCV's global RNG, which GrabCut's k-means uses
    np.testing.assert_array_equal(fusion.segment_person(frame, annotation.bbox), first)


# --- warp fusion ---------------------------------------------------------------------------------------------------

def _outside_square(shape, bbox, crop_size):
    """Pixels that a pasted crop of `crop_size` px cannot touch: outside the square face box of `bbox` by more than
    the one crop pixel that bilinear upsampling spreads its edge over."""
    cx, cy, side = geometry.square_box(bbox)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    half = side / 2 + side / crop_size
    return (np.abs(xs - cx) > half) | (np.abs(ys - cy) > half)


def test_warp_fusion_on_the_reference_keypoints_keeps_the_frame_outside_the_face(retalk):
    frame, annotation = retalk
    warp = fusion.make_fusion("warp", frame, annotation.bbox, reference_points=annotation.points,
                              reference_flags=annotation.flags)
    np.testing.assert_array_equal(warp.background(annotation.bbox, annotation.points, annotation.flags), frame)
    out = warp(np.full((64, 64, 3), 255, np.uint8), annotation.bbox, annotation.points, annotation.flags)
    outside = _outside_square(frame.shape, annotation.bbox, 64)
    assert outside.mean() > 0.3
    np.testing.assert_array_equal(out[outside], frame[outside])
    assert (out[~outside] == 255).mean() > 0.3  # the face went in


def test_warp_fusion_moves_the_background_with_the_face_and_holds_the_border(retalk):
    frame, annotation = retalk
    dx, dy = 12, -8
    target_points = annotation.points + np.array([dx, dy], np.float32)
    target_bbox = annotation.bbox + np.array([dx, dy, 0, 0], np.float32)
    moved = fusion.WarpFusion(frame, annotation.bbox, annotation.points, annotation.flags).background(
        target_bbox, target_points, annotation.flags)
    expected = np.roll(frame, (dy, dx), axis=(0, 1))
    # Just outside the face box the background moved (almost) with the face ...
    x, y, w, h = (int(v) for v in target_bbox)
    band = moved[y + h // 2 - 10:y + h // 2 + 10, x - 12:x - 4].astype(int)
    assert np.abs(band - expected[y + h // 2 - 10:y + h // 2 + 10, x - 12:x - 4]).mean() < \
        np.abs(band - frame[y + h // 2 - 10:y + h // 2 + 10, x - 12:x - 4]).mean()
    # ... and the frame border did not move at all.
    np.testing.assert_array_equal(moved[0], frame[0])
    np.testing.assert_array_equal(moved[:, -1], frame[:, -1])


@pytest.fixture(scope="module")
def warped_retalk(retalk):
    """Warp fusion of the reference frame on a 200-px integer box, and the target: every keypoint and the box moved
    by (5, 3) px: (fusion, target box, target points, flags, the warped background)."""
    frame, annotation = retalk
    box = _integer_box(annotation.bbox, 200)
    warp = fusion.WarpFusion(frame, box, annotation.points, annotation.flags)
    target_points = annotation.points + np.array([5, 3], np.float32)
    target_box = box + np.array([5, 3, 0, 0], np.float32)
    background = warp.background(target_box, target_points, annotation.flags)
    return warp, target_box, target_points, annotation.flags, background


def test_warp_fusion_pastes_without_a_seam(warped_retalk):
    warp, target_box, target_points, flags, background = warped_retalk
    face, _ = geometry.crop(background, target_box, 200)
    brighter = np.clip(face.astype(int) + 40, 0, 255).astype(np.uint8)
    offset = warp(brighter, target_box, target_points, flags).astype(int) - background.astype(int)
    assert max(np.abs(np.diff(offset, axis=0)).max(), np.abs(np.diff(offset, axis=1)).max()) <= 6
    assert offset[round(target_box[1] + 100.5), round(target_box[0] + 100.5)].min() >= 39  # the face is kept whole


def test_warp_fusion_pastes_a_warp_style_face_only_where_it_was_painted(warped_retalk):
    warp, target_box, target_points, flags, background = warped_retalk
    white = np.full((200, 200, 3), 255, np.uint8)
    # Nothing painted: the full-resolution warped frame is left exactly as it was.
    kept = warp(white, target_box, target_points, flags, repaint=np.zeros((200, 200), np.float32))
    np.testing.assert_array_equal(kept, background)
    # Painted only in the crop's lower middle (a mouth): the face goes in there and nowhere else.
    repaint = np.zeros((200, 200), np.float32)
    repaint[120:160, 70:130] = 1.0
    out = warp(white, target_box, target_points, flags, repaint=repaint)
    x0, y0 = round(target_box[0] + 0.5), round(target_box[1] + 0.5)
    assert (out[y0 + 125:y0 + 155, x0 + 75:x0 + 125] == 255).all()
    changed = np.any(out != background, axis=-1)
    assert changed.sum() <= 42 * 62 and not changed[:y0 + 118].any()
    # A whole-face painting is pasted whole, as by the other fusions.
    np.testing.assert_array_equal(warp(white, target_box, target_points, flags,
                                       repaint=np.ones((200, 200), np.float32)),
                                  warp(white, target_box, target_points, flags))


def test_warp_fusion_needs_keypoints(retalk):
    frame, annotation = retalk
    with pytest.raises(ValueError, match="needs the reference keypoints"):
        fusion.make_fusion("warp", frame, annotation.bbox)
    warp = fusion.WarpFusion(frame, annotation.bbox, annotation.points, annotation.flags)
    with pytest.raises(ValueError, match="needs the target points"):
        warp.background(annotation.bbox)


def test_border_anchors_ring_the_frame():
    anchors = fusion.border_anchors(100, 200, per_side=4)
    assert len(anchors) == 16 and len(np.unique(anchors, axis=0)) == 16
    for corner in ([0, 0], [199, 0], [199, 99], [0, 99]):
        assert any(np.allclose(a, corner) for a in anchors)
    on_border = (anchors[:, 0] == 0) | (anchors[:, 0] == 199) | (anchors[:, 1] == 0) | (anchors[:, 1] == 99)
    assert on_border.all()


def test_flow_fusion_moves_the_frame_by_a_generators_flow_inside_the_face_box(warped_retalk, retalk):
    frame, annotation = retalk
    keypoint_warp, target_box, target_points, flags, background = warped_retalk
    warp = fusion.make_fusion("flow", frame, keypoint_warp.reference_bbox, reference_points=annotation.points,
                              reference_flags=annotation.flags)
    size, white = 100, np.full((100, 100, 3), 255, np.uint8)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).astype(np.float32)
    nothing = np.zeros((size, size), np.float32)
    # A flow that shows each crop pixel the same pixel of the reference crop: inside the box, the reference frame's
    # face where the box moved to (the 200-px box at 100 px: 2 frame pixels per crop pixel). The region checked lies
    # inside the feathered edge (15% of 200 px).
    out = warp(white, target_box, target_points, flags, repaint=nothing, flow=grid)
    x0, y0 = round(target_box[0] + 0.5), round(target_box[1] + 0.5)
    rx, ry = round(warp.reference_bbox[0] + 0.5), round(warp.reference_bbox[1] + 0.5)
    moved = out[y0 + 40:y0 + 160, x0 + 40:x0 + 160].astype(int)
    assert np.abs(moved - frame[ry + 40:ry + 160, rx + 40:rx + 160]).mean() < 1.0
    # A flow moved by 4 crop pixels to the right reads 8 frame pixels further right.
    out = warp(white, target_box, target_points, flags, repaint=nothing, flow=grid + np.float32([4, 0]))
    moved = out[y0 + 40:y0 + 160, x0 + 40:x0 + 160].astype(int)
    assert np.abs(moved - frame[ry + 40:ry + 160, rx + 48:rx + 168]).mean() < 1.0
    # Outside the box the keypoints' warp is kept; the repaint mask still lays the painting over the moved frame.
    outside = _outside_square(frame.shape, target_box, size)
    np.testing.assert_array_equal(out[outside], background[outside])
    painted = warp(white, target_box, target_points, flags, repaint=np.ones((size, size), np.float32), flow=grid)
    assert (painted[y0 + 60:y0 + 140, x0 + 60:x0 + 140] == 255).all()
    # The warp fusion keeps the keypoints' warp whatever the flow; the flow fusion cannot do without one.
    np.testing.assert_array_equal(
        keypoint_warp(white, target_box, target_points, flags, repaint=nothing, flow=grid + np.float32([4, 0])),
        background)
    with pytest.raises(ValueError, match="needs the flow"):
        warp(white, target_box, target_points, flags, repaint=nothing)

"""Motion transfer in keypoint space on the real development tracks: relative and absolute modes, the driving
reference, boxes that follow the face, lost faces and smoothing."""
import dataclasses

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from bigo_facegen import annotations, geometry, motion_transfer
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import metrics
from bigo_facegen.motion_transfer import MotionError, MotionSettings

DRIVER = "lp_d0.mp4"      # 512 x 512, a face that talks and turns
SOURCE = "dpe_s.mp4"      # 256 x 256, another person
FPS = 25.0
RAW = MotionSettings(smoothing="none")   # the transfer alone, the driving track as dlib found it


@pytest.fixture(scope="module")
def tracks(real_faces_dir):
    videos = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}
    return videos[DRIVER].frames, videos[SOURCE].frames[0]


def _same(a: FrameAnnotation, b: FrameAnnotation, atol=1e-3):
    assert a.index == b.index
    np.testing.assert_allclose(a.points, b.points, atol=atol)
    np.testing.assert_allclose(geometry.square_box(a.bbox), geometry.square_box(b.bbox), atol=atol)
    np.testing.assert_array_equal(a.flags, b.flags)


def test_relative_with_the_drivers_own_first_frame_as_source_reproduces_absolute(tracks):
    driving, _ = tracks
    size = (512, 512)
    moved = max(np.abs(frame.points - driving[0].points).max() for frame in driving)
    assert moved > 10  # the driver really moves, so equality below is not two copies of the source
    for smoothing in motion_transfer.SMOOTHINGS:
        # The source: the driver's first face as the smoothing gives it (the One-Euro filter starts at it as it is).
        source = motion_transfer.smoothed(driving, FPS, MotionSettings(smoothing=smoothing))[0]
        relative = motion_transfer.transfer(source, size, driving, size, FPS,
                                            MotionSettings(mode="relative", smoothing=smoothing))
        absolute = motion_transfer.transfer(source, size, driving, size, FPS,
                                            MotionSettings(mode="absolute", smoothing=smoothing))
        assert len(relative) == len(absolute) == len(driving)
        for r, a in zip(relative, absolute):
            _same(r, a)
    raw = motion_transfer.transfer(driving[0], size, driving, size, FPS, MotionSettings(mode="absolute",
                                                                                      smoothing="none"))
    for a, d in zip(raw, driving, strict=True):
        _same(a, d)  # absolute at the same size, unsmoothed: the driving keypoints as they are


def test_absolute_mode_works_in_normalised_image_coordinates(tracks):
    driving, source = tracks
    targets = motion_transfer.transfer(source, (256, 128), driving[:5], (512, 512), FPS,
                                       MotionSettings(mode="absolute", smoothing="none"))
    for target, frame in zip(targets, driving[:5]):
        np.testing.assert_allclose(target.points, frame.points * [0.5, 0.25], atol=1e-4)
        np.testing.assert_allclose(target.bbox, frame.bbox * [0.5, 0.25, 0.5, 0.25], atol=1e-4)


def test_a_driver_that_only_translates_moves_the_source_by_the_scaled_translation(tracks):
    driving, source = tracks
    step = np.array([3.0, -2.0], np.float32)
    translated = [dataclasses.replace(driving[0], index=k + 1, points=driving[0].points + k * step,
                                      bbox=driving[0].bbox + np.array([*(k * step), 0, 0], np.float32))
                  for k in range(6)]
    targets = motion_transfer.transfer(source, (256, 256), translated, (512, 512), FPS, RAW)
    # FOMM's adapt_scale: the square root of the faces' convex hull areas (here by SciPy, as FOMM computes it).
    scale = np.sqrt(ConvexHull(source.points).volume / ConvexHull(driving[0].points).volume)
    assert 0.3 < scale < 0.8  # a 256-px face driven by a 512-px one
    source_x, source_y, source_side = geometry.square_box(source.bbox)
    for k, target in enumerate(targets):
        np.testing.assert_allclose(target.points, source.points + scale * k * step, atol=1e-3)
        x, y, side = geometry.square_box(target.bbox)
        np.testing.assert_allclose([x, y, side], [source_x + scale * k * step[0], source_y + scale * k * step[1],
                                                  source_side], atol=1e-3)


def test_the_box_scales_with_the_drivers_face(tracks):
    driving, source = tracks
    reference = driving[0]
    x, y, side = geometry.square_box(reference.bbox)
    closer = dataclasses.replace(reference, index=2, bbox=np.array([x - side, y - side, 2 * side, 2 * side],
                                                                   np.float32))
    targets = motion_transfer.transfer(source, (256, 256), [reference, closer], (512, 512), FPS, RAW)
    assert geometry.square_box(targets[1].bbox)[2] == pytest.approx(2 * geometry.square_box(source.bbox)[2])


def test_a_lost_face_keeps_the_last_motion(tracks):
    driving, source = tracks
    track = [FrameAnnotation(index=1), *driving[1:4], FrameAnnotation(index=5), FrameAnnotation(index=6),
             driving[6]]
    targets = motion_transfer.transfer(source, (256, 256), track, (512, 512), FPS, RAW)
    assert [t.index for t in targets] == [1, 2, 3, 4, 5, 6, 7] and all(t.has_face for t in targets)
    _same(targets[0], dataclasses.replace(source, index=1))  # before any face: the source as it is
    full = motion_transfer.transfer(source, (256, 256), driving[1:7], (512, 512), FPS, RAW)
    for lost in (4, 5):  # frames 5 and 6 keep frame 4's motion
        _same(targets[lost], dataclasses.replace(full[2], index=lost + 1))
    _same(targets[6], full[5])
    assert np.abs(targets[6].points - targets[5].points).max() > 0.5  # motion resumes with the face


def test_a_live_driver_given_frame_by_frame_gets_the_targets_of_the_whole_track(tracks):
    """The first face is the reference and the One-Euro filter runs one step per frame: the targets are `transfer`'s
    with the reference `first`, whether the face is lost before it, in between or not at all."""
    driving, source = tracks
    track = [FrameAnnotation(index=1), FrameAnnotation(index=2), *driving[2:30], FrameAnnotation(index=31),
             *driving[31:60]]
    for settings in (motion_transfer.LIVE, dataclasses.replace(motion_transfer.LIVE, mode="absolute"), RAW):
        live = motion_transfer.LiveTransfer(source, (256, 256), (512, 512), FPS, settings)
        given = [live(frame) for frame in track]
        expected = motion_transfer.transfer(source, (256, 256), track, (512, 512), FPS, settings)
        for a, b in zip(given, expected, strict=True):
            _same(a, b, atol=1e-5)
    smoothed = motion_transfer.LiveTransfer(source, (256, 256), (512, 512), FPS, motion_transfer.LIVE)
    assert np.abs([smoothed(frame) for frame in track][40].points - given[40].points).max() > 0.1  # the filter runs
    with pytest.raises(MotionError) as error:
        motion_transfer.LiveTransfer(source, (256, 256), (512, 512), FPS, MotionSettings(reference="best"))
    assert str(error.value) == ("driving reference 'best' chooses among all the driving frames, and a live driver "
                                "gives them one at a time: use 'first'")
    with pytest.raises(MotionError, match="^smoothing 'gaussian' averages each frame with the frames to come"):
        motion_transfer.LiveTransfer(source, (256, 256), (512, 512), FPS, MotionSettings())
    with pytest.raises(MotionError, match="the source has no face to drive"):
        motion_transfer.LiveTransfer(FrameAnnotation(index=1), (256, 256), (512, 512), FPS)


def test_best_reference_is_the_driving_face_nearest_the_sources_expression(tracks):
    driving, _ = tracks
    # The source: driving frame 40's face, half as large and elsewhere; its expression is frame 40's.
    chosen = driving[39]
    source = dataclasses.replace(chosen, index=1, points=chosen.points * 0.5 + 30, bbox=chosen.bbox * 0.5)
    assert motion_transfer.reference_frame(source, driving, "best") is chosen
    assert motion_transfer.reference_frame(source, driving, "first") is driving[0]
    targets = motion_transfer.transfer(source, (256, 256), driving, (512, 512), FPS,
                                       MotionSettings(reference="best", smoothing="none"))
    _same(targets[39], dataclasses.replace(source, index=40))  # no motion at the reference


def test_one_euro_smoothing_lowers_the_tracks_jitter(tracks):
    driving, _ = tracks
    smoothed = motion_transfer.smooth(driving, FPS)
    _same(smoothed[0], driving[0], atol=1e-4)  # the filter starts at the first value

    def jitter(track):
        unit = np.linalg.norm(track[0].points[36] - track[0].points[45])
        return np.mean([metrics.keypoint_jitter(a.points, b.points, c.points, unit)
                        for a, b, c in zip(track, track[1:], track[2:])])

    assert jitter(smoothed) < 0.8 * jitter(driving)
    still = [dataclasses.replace(driving[0], index=k) for k in range(1, 6)]
    for frame in motion_transfer.smooth(still, FPS):
        np.testing.assert_allclose(frame.points, driving[0].points, atol=1e-3)
    gap = [driving[0], FrameAnnotation(index=2), driving[2]]
    assert not motion_transfer.smooth(gap, FPS)[1].has_face


def test_gaussian_smoothing_steadies_the_track_without_lag_or_flattening(tracks):
    """The whole-video default: it halves the real track's shaking while staying within 2% of an eye distance of it,
    and, unlike the causal filter, does not lag."""
    driving, _ = tracks
    gaussian = motion_transfer.smooth_gaussian(driving, FPS)
    unit = np.linalg.norm(driving[0].points[36] - driving[0].points[45])

    def jitter(track):
        return np.mean([metrics.keypoint_jitter(a.points, b.points, c.points, unit)
                        for a, b, c in zip(track, track[1:], track[2:])])

    assert jitter(gaussian) < 0.5 * jitter(driving)
    assert np.abs(np.stack([f.points for f in gaussian]) - np.stack([f.points for f in driving])).mean() < 0.02 * unit
    # A syllable (the lower lip, points 56 to 58, down by 10 px and back over 10 frames) and a slow turn (every point
    # 0.5 px a frame to the right) on a still face: the Gaussian has its peak where the syllable has it and follows
    # the turn exactly, where the causal filter comes late to both.
    drop = np.concatenate([np.zeros(20), np.linspace(0, 10, 6), np.linspace(10, 0, 6)[1:], np.zeros(20)])
    syllable = []
    for k, dy in enumerate(drop):
        points = driving[0].points.copy()
        points[56:59, 1] += dy
        syllable.append(dataclasses.replace(driving[0], index=k + 1, points=points))
    for name, track in (("gaussian", motion_transfer.smooth_gaussian(syllable, FPS)),
                        ("one_euro", motion_transfer.smooth(syllable, FPS))):
        late = np.argmax([f.points[57, 1] for f in track]) - np.argmax(drop)
        assert late == 0 if name == "gaussian" else late > 0, (name, late)
    turn = [dataclasses.replace(driving[0], index=k + 1, points=driving[0].points + [0.5 * k, 0]) for k in range(40)]
    for name, track in (("gaussian", motion_transfer.smooth_gaussian(turn, FPS)),
                        ("one_euro", motion_transfer.smooth(turn, FPS))):
        behind = np.array([t.points[:, 0] - f.points[:, 0] for t, f in zip(turn, track)])[10:30].mean()
        assert behind < 1e-3 if name == "gaussian" else behind > 1.0, (name, behind)
    # A lost face ends a run: frames either side of it are not averaged across it.
    apart = [dataclasses.replace(driving[0], index=1), FrameAnnotation(index=2),
             dataclasses.replace(driving[0], index=3, points=driving[0].points + 50)]
    smoothed = motion_transfer.smooth_gaussian(apart, FPS)
    assert not smoothed[1].has_face
    np.testing.assert_allclose(smoothed[0].points, driving[0].points, atol=1e-4)
    np.testing.assert_allclose(smoothed[2].points, driving[0].points + 50, atol=1e-4)
    with pytest.raises(MotionError, match="Gaussian smoothing needs sigma > 0 seconds, got 0"):
        MotionSettings(sigma=0)


def test_points_absent_in_the_reference_stay_absent(tracks):
    driving, source = tracks
    reference = dataclasses.replace(driving[0], flags=driving[0].flags.copy())
    reference.flags[48:] = annotations.FLAG_ABSENT
    targets = motion_transfer.transfer(source, (256, 256), [reference, driving[5]], (512, 512), FPS, RAW)
    assert (targets[1].flags[48:] == annotations.FLAG_ABSENT).all() and (targets[1].flags[:48] > 0).all()


def test_bad_inputs_are_named(tracks):
    driving, source = tracks
    with pytest.raises(MotionError, match="unknown motion mode 'sideways'; choose one of relative, absolute"):
        MotionSettings(mode="sideways")
    with pytest.raises(MotionError, match="no frame with a face"):
        motion_transfer.transfer(source, (256, 256), [FrameAnnotation(index=1)], (512, 512), FPS)
    with pytest.raises(MotionError, match="106 points per face, the source's 68"):
        bigger = dataclasses.replace(driving[0], points=np.zeros((106, 2), np.float32),
                                     flags=np.full(106, 2, np.int32))
        motion_transfer.transfer(source, (256, 256), [bigger], (512, 512), FPS)
    with pytest.raises(MotionError, match="the source has no face"):
        motion_transfer.transfer(FrameAnnotation(index=1), (256, 256), driving, (512, 512), FPS)

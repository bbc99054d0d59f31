"""The keypoint tracker: sub-pixel on a known motion, no drift on a still face, points flagged while hidden and found
again, a lost face as dlib's, and on real clips points that shake less than detection's while staying on them."""
import itertools

import cv2
import numpy as np
import pytest

from bigo_facegen import annotations, tracking, video
from bigo_facegen.annotations import FLAG_OCCLUDED, FLAG_VISIBLE
from bigo_facegen.evaluation import metrics

SIZE = 256
DETECTOR_NOISE = 1.0   # px per coordinate: a detector that shakes about twice as much as dlib on a face this size


class KnownPoints:
    """A detector that knows the true points of the frame being tracked (`points`, set before the frame is handed
    over) and gives them with Gaussian noise; it finds no face while `points` is None."""

    unflowed = ()   # every point follows the flow: the texture has no mouth that opens

    def __init__(self, seed=0):
        self.points = None
        self.rng = np.random.default_rng(seed)

    def find(self, rgb):
        if self.points is None:
            return None
        low, high = self.points.min(axis=0), self.points.max(axis=0)
        side = 1.2 * (high - low).max()
        centre = (low + high) / 2
        return np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])

    def fit(self, rgb, box):
        return self.points + self.rng.normal(0.0, DETECTOR_NOISE, self.points.shape)


@pytest.fixture(scope="module")
def texture():
    # Structure at every scale from fine to coarse, as a face has; 512 px so that the moved frames never see its edge.
    noise = np.random.default_rng(0).normal(0.0, 1.0, (512, 512, 3)).astype(np.float32)
    layers = sum(cv2.GaussianBlur(noise, (0, 0), sigma) * sigma for sigma in (2, 4, 8, 16))
    return np.clip((layers - layers.mean()) / layers.std() * 40 + 128, 0, 255).astype(np.uint8)


def _motion(t):
    """The 2x3 map from texture to frame pixels at frame t: a smooth turn, zoom and drift."""
    angle, scale = 0.15 * np.sin(t / 20), 1 + 0.1 * np.sin(t / 31)
    centre = np.array([SIZE / 2 + 20 * np.sin(t / 17), SIZE / 2 + 15 * np.cos(t / 23)])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, (centre - rotation @ [256, 256])[:, None]])


# 68 points on a 9 x 8 grid 90 px wide around the texture's centre (where the frame's face would be).
GRID = np.stack(np.meshgrid(np.linspace(-45, 45, 9), np.linspace(-45, 45, 8)), -1).reshape(-1, 2)[:68] + 256


def _scene(texture, frames, blank=lambda t, frame: None):
    """(frames, true points) of the texture moved by `_motion`; `blank(t, frame)` may hide part of a frame in place
    and returns whether the whole face is hidden."""
    images, truths = [], []
    for t in range(frames):
        matrix = _motion(t)
        image = cv2.warpAffine(texture, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        hidden = blank(t, image)
        images.append(image)
        truths.append(None if hidden else GRID @ matrix[:, :2].T + matrix[:, 2])
    return images, truths


def _track(images, truths, detector, settings=tracking.TrackSettings()):
    def handed_over():
        for image, truth in zip(images, truths):
            detector.points = truth   # the tracker reads the frame as soon as it is handed over
            yield image
    tracker = tracking.Tracker(detector, settings)
    return tracker.track(handed_over()), tracker


def _errors(track, truths):
    return np.array([np.linalg.norm(frame.points - truth, axis=1) for frame, truth in zip(track, truths)])


def test_a_known_smooth_motion_is_followed_to_a_fraction_of_a_pixel(texture):
    images, truths = _scene(texture, 200)
    track, tracker = _track(images, truths, KnownPoints())
    assert [frame.index for frame in track] == list(range(1, 201))
    assert all(frame.has_face for frame in track)
    moved = np.abs(truths[-1] - truths[0]).max()
    assert moved > 10   # the points really travel
    errors = _errors(track, truths)
    detector_error = DETECTOR_NOISE * np.sqrt(np.pi / 2)   # the mean length of the detector's 2-D noise
    assert errors.mean() < 0.5 < detector_error
    assert np.median(errors, axis=0).max() < 1.0   # no point is left behind
    assert tracker.searches < 20   # the slow search ran on few frames
    visible = np.mean([(frame.flags == FLAG_VISIBLE).mean() for frame in track])
    assert visible > 0.9


def test_a_still_real_face_does_not_drift_over_1000_frames(real_faces_dir):
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["mead_W011_neutral.mp4"]
    still = next(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)))
    still = cv2.resize(still, (160, 160), interpolation=cv2.INTER_AREA)   # a face of 110 px: quick to follow
    noise = np.empty(still.shape, np.float32)
    detections = []

    class Recorded(tracking.DlibDetector):
        def fit(self, rgb, box):
            detections.append(super().fit(rgb, box))
            return detections[-1]

    def noisy():
        cv2.setRNGSeed(1)
        for _ in range(1000):
            yield cv2.add(still, cv2.randn(noise, 0, 4), dtype=cv2.CV_8U)

    track = tracking.track(noisy(), Recorded())
    assert len(track) == 1000 and all(frame.has_face for frame in track)
    points = np.stack([frame.points for frame in track]).astype(np.float64)
    detected = np.stack(detections)
    interocular = np.linalg.norm(points[0, 36] - points[0, 45])
    drift = np.linalg.norm(points[-100:].mean(axis=0) - points[:100].mean(axis=0), axis=1)
    assert drift.max() < 0.01 * interocular
    # The track stays on the detector's mean, and shakes far less than the detections do.
    assert np.linalg.norm(points.mean(axis=0) - detected.mean(axis=0), axis=1).mean() < 0.01 * interocular
    spread = np.linalg.norm(points - points.mean(axis=0), axis=2).mean()
    detected_spread = np.linalg.norm(detected - detected.mean(axis=0), axis=2).mean()
    assert spread < detected_spread / 3


def test_points_hidden_for_a_while_are_flagged_and_followed_again_once_seen(texture):
    hidden_columns = slice(160, None)   # the right part of the frame, a third of the points or so

    def occlude(t, image):
        if 30 <= t < 45:
            image[:, hidden_columns] = 0
        return False

    images, truths = _scene(texture, 100, occlude)
    track, _ = _track(images, truths, KnownPoints())
    occluded, seen = [], []
    for t in range(30, 45):
        covered = truths[t][:, 0] >= hidden_columns.start + 8   # clear of the occluder's edge
        clear = truths[t][:, 0] < hidden_columns.start - 8
        occluded.append((track[t].flags[covered] == FLAG_OCCLUDED).mean())
        seen.append((track[t].flags[clear] == FLAG_VISIBLE).mean())
    assert np.mean(occluded) > 0.8 and np.mean(seen) > 0.9
    after = slice(47, 62)
    assert _errors(track[after], truths[after]).mean() < 0.5
    assert np.mean([(frame.flags == FLAG_VISIBLE).mean() for frame in track[after]]) > 0.95


def test_a_lost_face_gives_faceless_frames_and_is_followed_again(texture):
    def hide(t, image):
        if 20 <= t < 25:
            image[:] = 0
            return True
        return False

    images, truths = _scene(texture, 60, hide)
    track, _ = _track(images, truths, KnownPoints())
    assert [frame.index for frame in track] == list(range(1, 61))
    assert [t for t, frame in enumerate(track) if not frame.has_face] == list(range(20, 25))
    assert track[20] == annotations.FrameAnnotation(index=21)
    assert _errors(track[35:], truths[35:]).mean() < 0.5


def _jitter(points):
    return np.mean([metrics.keypoint_jitter(points[t - 2], points[t - 1], points[t],
                                            np.linalg.norm(points[t][36] - points[t][45]))
                    for t in range(2, len(points))])


def test_on_a_real_clip_the_points_shake_less_than_dlibs_and_stay_on_them(real_faces_dir):
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["lp_d10.mp4"]
    frames = list(itertools.islice(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)), 60))
    tracker = tracking.Tracker()
    track = tracker.track(frames)
    detected = clip.frames[:60]   # dlib on every frame, as the folder was annotated
    assert all(frame.has_face for frame in track)

    assert _jitter([frame.points for frame in track]) < 0.8 * _jitter([frame.points for frame in detected])
    nme = np.mean([metrics.keypoint_nme(t.points, d.points, (36, 45)) for t, d in zip(track, detected)])
    assert nme < 0.03
    assert tracker.searches <= 3   # dlib's slow face search on a few of the 60 frames, not on every one


def test_the_inner_lips_open_as_dlib_sees_them_where_the_flow_alone_would_not(real_faces_dir):
    """lp_d12 opens its mouth wide from a closed first frame: flow from a key frame carries the inner lips only part
    of the way (teeth appear between them), so every frame takes them from its fit (`DlibDetector.unflowed`)."""
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["lp_d12.mp4"]
    frames = list(itertools.islice(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)), 60))

    class Flowed(tracking.DlibDetector):
        unflowed = ()

    def opening(points):
        points = np.asarray(points, np.float64)
        return (np.linalg.norm(points[[61, 62, 63]] - points[[67, 66, 65]], axis=1).mean()
                / np.linalg.norm(points[36] - points[45]))

    dlib = np.array([opening(frame.points) for frame in clip.frames[:60]])   # dlib on every frame
    assert np.ptp(dlib) > 0.15   # the mouth really opens and closes
    tracked = np.array([opening(frame.points) for frame in tracking.track(frames)])
    flowed = np.array([opening(frame.points) for frame in tracking.track(frames, Flowed())])
    assert np.corrcoef(tracked, dlib)[0, 1] > 0.97 and np.abs(tracked - dlib).mean() < 0.01
    assert np.corrcoef(flowed, dlib)[0, 1] < 0.85 and np.ptp(flowed) < 0.85 * np.ptp(dlib)   # 0.71 and 73% measured


def test_followed_frame_by_frame_each_frame_comes_at_once_and_nears_the_whole_tracks(real_faces_dir):
    """`follow`, for a live source: a frame's points are given before the next frame is seen, from the detections so
    far; they shake less than dlib's, stay on them, and near the points fused over the whole span as detections come."""
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["lp_d10.mp4"]
    frames = list(itertools.islice(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)), 60))
    tracker = tracking.Tracker()
    live = [tracker.follow(rgb) for rgb in frames]
    assert [frame.index for frame in live] == list(range(1, 61)) and all(frame.has_face for frame in live)
    detected = clip.frames[:60]
    assert _jitter([f.points for f in live]) < 0.85 * _jitter([f.points for f in detected])
    assert np.mean([metrics.keypoint_nme(t.points, d.points, (36, 45)) for t, d in zip(live, detected)]) < 0.03
    assert tracker.searches <= 3
    # The whole track's first frame has the 59 later detections fused in, the live one its own alone.
    whole = tracking.track(frames)
    gap = [np.linalg.norm(a.points - b.points, axis=1).mean() for a, b in zip(live, whole)]
    assert gap[0] > 2 * np.mean(gap[-10:]) and np.mean(gap[-10:]) < 1.0, np.round(gap, 2)   # px, a face ~200 px


def test_a_fast_turn_that_carries_the_flow_off_the_face_does_not_key_a_span_there(real_faces_dir):
    # From frame 12 the face moves about 100 px left in a few frames; the flow from the key lags, the fit in the box
    # it moved parts from it, and the span that begins there was keyed on the background (0.7 inter-ocular distances
    # off dlib, frames 14 to 51) until the next scheduled search.
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["vasahack_M2Ohb0FAaJU_1.mp4"]
    frames = list(itertools.islice(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)), 24))
    track = tracking.track(frames)
    nme = [metrics.keypoint_nme(t.points, d.points, (36, 45)) for t, d in zip(track, clip.frames[:24])]
    assert max(nme) < 0.1, np.round(nme, 3)


def test_a_real_clip_with_black_frames_has_no_face_there_as_dlib_would(real_faces_dir):
    clip = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}["lp_d10.mp4"]
    frames = list(itertools.islice(video.read_frames(annotations.resolve_video_path(clip, real_faces_dir)), 16))
    for t in (6, 7, 8):
        frames[t] = np.zeros_like(frames[t])
    track = tracking.track(frames)
    assert [frame.has_face for frame in track] == [t not in (6, 7, 8) for t in range(16)]
    for t in (5, 9, 15):
        assert metrics.keypoint_nme(track[t].points, clip.frames[t].points, (36, 45)) < 0.03


@pytest.mark.parametrize("bad, message", [
    (np.zeros((SIZE, SIZE), np.uint8), r"frame 3: expected an RGB uint8 image \(H, W, 3\), got uint8 \(256, 256\)"),
    (np.zeros((SIZE, SIZE, 3), np.float32), "frame 3: expected an RGB uint8 image .* got float32"),
    (np.zeros((SIZE, SIZE + 2, 3), np.uint8), "frame 3: 258x256, but the frames before it are 256x256")])
def test_a_frame_that_is_not_like_the_others_is_named(texture, bad, message):
    images, truths = _scene(texture, 4)
    images[2] = bad
    with pytest.raises(ValueError, match=message):
        _track(images, truths, KnownPoints())


@pytest.mark.parametrize("field, value", [("search_every", 0), ("rekey", 1.5), ("detector_sigma", 0.0),
                                          ("flow_preset", "slow"), ("flow_face_px", 8)])
def test_a_bad_setting_is_refused_naming_it(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        tracking.TrackSettings(**{field: value})

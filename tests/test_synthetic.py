"""The synthetic generator: keypoints lie on what is drawn, flags follow occlusion, tiers keep their promises, and the
written folder is a valid, deterministic BIGO-layout data set."""
import dataclasses
import json

import numpy as np
import pytest

from bigo_facegen import annotations, keypoints, synthetic, video
from bigo_facegen.synthetic import Part, features

FRONTAL = synthetic.Pose(center=(128.0, 120.0), scale=70.0)
FACE_PARTS = {Part.SKIN, Part.BROW, Part.EYE_WHITE, Part.IRIS, Part.PUPIL, Part.EYELID, Part.NOSE, Part.LIPS,
              Part.MOUTH_INTERIOR, Part.TEETH}


def _people(count=4):
    """Random identities without beards (a beard legitimately covers the jaw line the contour test looks at)."""
    found, i = [synthetic.Identity()], 0
    while len(found) < count:
        person = synthetic.random_identity(np.random.default_rng([99, i]))
        if not person.beard and person.hair_style not in ("long", "bob"):
            found.append(person)
        i += 1
    return found


def _near(labels, point, radius=1):
    x, y = (int(round(v)) for v in point)
    return set(np.unique(labels[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]).tolist())


def _at(array, point):
    x, y = (int(round(v)) for v in point)
    return array[y, x]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    path = synthetic.generate(out, num_videos=6, frames_per_video=8, frame_size=(96, 96), seed=5)
    return path


@pytest.mark.parametrize("yaw", [0.0, 25.0, -25.0])
def test_keypoints_lie_on_the_drawn_features(yaw):
    pose = dataclasses.replace(FRONTAL, yaw=yaw)
    for person in _people():
        frame = synthetic.render_frame(person, pose, synthetic.Expression(gaze=(0.4, 0.2)), with_labels=True)
        labels, image, p = frame.labels, frame.image.astype(int), frame.points
        # Points under the fringe are flagged hidden, and it is the hair that is drawn there.
        hidden = np.flatnonzero(frame.flags == annotations.FLAG_OCCLUDED)
        assert all(_at(labels, p[i]) == Part.HAIR for i in hidden), hidden
        assert set(hidden) <= set(range(33, 43)) | set(range(64, 72))
        for pupil in (104, 105):
            assert _at(labels, p[pupil]) == Part.PUPIL
            assert np.abs(_at(image, p[pupil]) - features.PUPIL).max() < 25
        # Corners and lids are on the eye's outline (the lash / lower-lid line drawn through them).
        for i in keypoints.BIGO106.left_eye + keypoints.BIGO106.right_eye:
            assert Part.EYELID in _near(labels, p[i]), i
        for centre in (74, 77):
            assert _at(labels, p[centre]) in {Part.EYE_WHITE, Part.IRIS, Part.PUPIL}
        for i in sorted((set(range(33, 43)) | set(range(64, 72))) - set(hidden)):
            assert Part.BROW in _near(labels, p[i]), i
        for i in range(84, 104):
            assert Part.LIPS in _near(labels, p[i]), i
        assert Part.NOSE in _near(labels, p[46], 2)
        # The near-side and lower contour is the face's outline: skin on one side, something else on the other.
        # A face turned toward image-right (yaw > 0) shows its image-left side.
        near = range(4, 29) if yaw == 0 else (range(2, 17) if yaw > 0 else range(16, 31))
        for i in near:
            around = _near(labels, p[i], 2)
            assert Part.SKIN in around and around - FACE_PARTS, (yaw, i, around)


def test_open_mouth_shows_its_interior_inside_the_inner_lips():
    for person in _people():
        frame = synthetic.render_frame(person, FRONTAL, synthetic.Expression(mouth_open=1.0), with_labels=True)
        middle = (frame.points[98] + frame.points[102]) / 2
        assert frame.points[102, 1] - frame.points[98, 1] > 10
        assert _at(frame.labels, middle) == Part.MOUTH_INTERIOR
        assert np.abs(_at(frame.image.astype(int), middle) - features.MOUTH_INTERIOR).max() < 25
        closed = synthetic.render_frame(person, FRONTAL, synthetic.Expression(mouth_open=0.0), with_labels=True)
        assert not (closed.labels == Part.MOUTH_INTERIOR).any()


def test_expressions_and_pose_move_the_keypoints():
    person = synthetic.Identity()

    def points(**kwargs):
        return synthetic.render_frame(person, FRONTAL, synthetic.Expression(**kwargs)).points

    neutral = points()
    assert (points(mouth_open=1.0)[102, 1] - points(mouth_open=1.0)[98, 1]) - (neutral[102, 1] - neutral[98, 1]) > 10
    assert (neutral[[84, 90], 1] - points(smile=1.0)[[84, 90], 1]).min() > 2            # corners rise
    assert (neutral[33:43, 1] - points(brow_raise=1.0)[33:43, 1]).min() > 3              # brows rise
    lid_gap = points(blink_left=1.0)[73, 1] - points(blink_left=1.0)[72, 1]
    assert lid_gap < 0.25 * (neutral[73, 1] - neutral[72, 1])
    turned = synthetic.render_frame(person, dataclasses.replace(FRONTAL, yaw=40.0)).points
    # The nose tip moves toward image-right relative to the contour's ends.
    offset = turned[46, 0] - turned[[0, 32], 0].mean() - (neutral[46, 0] - neutral[[0, 32], 0].mean())
    assert offset > 15
    # A real 3-D rotation, not a 2-D one: yaw narrows the face's far (image-right) half, widens the near one.
    assert abs(turned[32, 0] - turned[46, 0]) < 0.5 * abs(turned[46, 0] - turned[0, 0])


def test_flags_follow_self_occlusion_blinks_and_occluders():
    person = synthetic.Identity()
    frontal = synthetic.render_frame(person, FRONTAL)
    assert (frontal.flags == annotations.FLAG_VISIBLE).all()

    turned = synthetic.render_frame(person, dataclasses.replace(FRONTAL, yaw=55.0))
    assert (turned.flags[23:33] == annotations.FLAG_OCCLUDED).all()        # far side (image-right) contour
    assert (turned.flags[:13] == annotations.FLAG_VISIBLE).all()           # near side

    blink = synthetic.render_frame(person, FRONTAL, synthetic.Expression(blink_left=1.0))
    assert blink.flags[104] == annotations.FLAG_OCCLUDED and blink.flags[105] == annotations.FLAG_VISIBLE

    mouth = (frontal.points[84] + frontal.points[90]) / 2
    ball = synthetic.Occluder("ball", tuple(mouth), 0.45 * FRONTAL.scale, (40, 200, 40))
    covered = synthetic.render_frame(person, FRONTAL, occluder=ball, with_labels=True)
    mouth_flags = covered.flags[84:104]
    assert (mouth_flags == annotations.FLAG_OCCLUDED).all()
    assert (covered.flags[52:64] == annotations.FLAG_VISIBLE).all()
    assert (covered.points == frontal.points).all()
    assert all(_at(covered.labels, covered.points[i]) == Part.OCCLUDER for i in range(84, 104))

    sun = synthetic.render_frame(person, FRONTAL, accessories=synthetic.Accessories(glasses="sun"))
    assert (sun.flags[52:64] == annotations.FLAG_OCCLUDED).all() and (sun.flags[84:104] == 2).all()
    clear = synthetic.render_frame(person, FRONTAL, accessories=synthetic.Accessories(glasses="clear"))
    assert (clear.flags == annotations.FLAG_VISIBLE).all()
    hat = synthetic.render_frame(person, FRONTAL, accessories=synthetic.Accessories(hat="cap", hat_line=-0.55))
    assert (hat.flags[33:43] == annotations.FLAG_OCCLUDED).any() and (hat.flags[84:104] == 2).all()


def test_faces_at_and_beyond_the_border():
    person = synthetic.Identity()
    half_out = synthetic.render_frame(person, dataclasses.replace(FRONTAL, center=(10.0, 120.0)))
    outside = half_out.points[:, 0] < -0.5
    assert outside.any() and (half_out.flags[outside] == annotations.FLAG_OCCLUDED).all()
    assert half_out.bbox is not None and half_out.bbox[2] > 0
    # The box comes from the visible part: centred inside the frame though the face's centre is near the border.
    assert half_out.bbox[0] + half_out.bbox[2] / 2 > 10.0
    gone = synthetic.render_frame(person, dataclasses.replace(FRONTAL, center=(-200.0, 120.0)))
    assert gone.bbox is None


def test_identities_look_different():
    pose = synthetic.Pose(center=(64.0, 60.0), scale=35.0)
    people = [synthetic.random_identity(np.random.default_rng([1, 1, i])) for i in range(6)]
    images = [synthetic.render_frame(p, pose, frame_size=(128, 128)).image.astype(float) for p in people]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i] - images[j]).mean() > 4, (i, j)


def test_tiers_keep_their_pose_ranges_and_accessories():
    person = synthetic.Identity()
    spread, count = {}, {}
    for tier in synthetic.TIERS:
        plans = [synthetic.plan_video(np.random.default_rng([7, i]), tier, person, 24) for i in range(12)]
        spread[tier] = [np.ptp([pose.yaw for pose in plan.poses]) for plan in plans]
        count[tier] = [plan.accessories.count for plan in plans]
    assert max(spread["easy"]) < min(spread["medium"]) and max(spread["medium"]) < min(spread["hard"])
    assert max(spread["easy"]) <= 14.5 and min(spread["hard"]) >= 55
    assert max(count["easy"]) <= 1 and min(count["hard"]) >= 2


def test_generated_folder_loads_and_matches_its_videos(folder):
    videos = annotations.load(folder)
    assert [v.video for v in videos] == ["10000.mp4", "10001.mp4", "11000.mp4", "11001.mp4", "12000.mp4",
                                         "12001.mp4"]
    assert [v.tier for v in videos] == ["easy", "easy", "medium", "medium", "hard", "hard"]
    identities = [v.identity for v in videos]
    assert len(set(identities)) == 3 and all(identities.count(i) == 2 for i in identities)
    for person in set(identities):
        assert len({v.tier for v in videos if v.identity == person}) == 2       # one person, two tiers

    def yaw_proxy(frame):
        # Where the nose tip sits between the contour's ends: 0 facing the camera, about +-0.4 at 50 degrees.
        p = frame.points
        return (p[46, 0] - p[[0, 32], 0].mean()) / np.linalg.norm(p[32] - p[0])

    spread = {v.tier: [] for v in videos}
    for v in videos:
        spread[v.tier].append(np.ptp([yaw_proxy(f) for f in v.face_frames()]))
    assert min(spread["hard"]) > max(spread["easy"])
    for v in videos:
        assert v.video_path == f"videos/{v.video}"
        assert v.num_keypoints == keypoints.BIGO106.num_points
        info = video.probe(annotations.resolve_video_path(v, folder.parent))
        assert (info.width, info.height, info.frame_count) == (96, 96, len(v.frames)) == (96, 96, 8)
        assert [f.index for f in v.frames] == list(range(1, 9))
        for frame in v.face_frames():
            assert set(np.unique(frame.flags)) <= {1, 2} and frame.bbox[2] == frame.bbox[3] > 0


def test_a_face_that_leaves_the_frame_has_empty_annotations(folder):
    raw = {v["video"]: v for v in json.loads(folder.read_text())}
    leaving = raw["12001.mp4"]["annotations"]
    empty = [a["index"] for a in leaving if a["bbox"] == [] and a["keypoint"] == []]
    assert empty and len(empty) < len(leaving) and leaving[0]["bbox"] and leaving[-1]["bbox"]
    assert all(a["bbox"] for v in raw.values() if v["video"] != "12001.mp4" for a in v["annotations"])


def test_generation_is_deterministic(folder, tmp_path):
    again = synthetic.generate(tmp_path / "again", num_videos=6, frames_per_video=8, frame_size=(96, 96), seed=5)
    assert again.read_bytes() == folder.read_bytes()
    for name in ("10000.mp4", "12001.mp4"):
        assert np.array_equal(video.read_all(folder.parent / "videos" / name),
                              video.read_all(again.parent / "videos" / name))
    other = synthetic.generate(tmp_path / "other", num_videos=6, frames_per_video=8, frame_size=(96, 96), seed=6)
    assert other.read_bytes() != folder.read_bytes()
    assert not np.array_equal(video.read_all(folder.parent / "videos" / "10000.mp4"),
                              video.read_all(other.parent / "videos" / "10000.mp4"))

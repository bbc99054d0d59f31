"""Target conditions from real keypoints: the reference against itself meets none; opening its mouth, closing its eyes
or foreshortening one eye (as a head turn does) is each found; the shares over the real clips are those documented."""
import collections
import dataclasses

import numpy as np
import pytest

from bigo_facegen import annotations, keypoints
from bigo_facegen.evaluation import conditions

LAYOUT = keypoints.get_layout("ibug68")


@pytest.fixture(scope="module")
def videos(real_faces_dir):
    return annotations.load(real_faces_dir / "annotations.json")


@pytest.fixture(scope="module")
def face(videos):
    return videos[0].face_frames()[0]


def moved(face, indices, transform):
    points = face.points.copy()
    points[list(indices)] = transform(points[list(indices)])
    return dataclasses.replace(face, points=points)


def test_the_reference_itself_meets_no_condition(face):
    assert conditions.classify(face, face, LAYOUT) == ["other"]


def test_each_change_is_found_alone(face):
    unit = np.linalg.norm(face.points[LAYOUT.left_eye_outer] - face.points[LAYOUT.right_eye_outer])
    lower_lip = LAYOUT.mouth_inner[len(LAYOUT.mouth_inner) // 2:]
    mouth = moved(face, lower_lip, lambda p: p + [0.0, 0.25 * unit])
    assert conditions.classify(face, mouth, LAYOUT) == ["mouth_open"]

    def squash(p):
        centre = p.mean(axis=0)
        return centre + (p - centre) * [1.0, 0.2]

    blink = moved(moved(face, LAYOUT.left_eye, squash), LAYOUT.right_eye, squash)
    assert conditions.classify(face, blink, LAYOUT) == ["blink"]

    def narrow(p):
        centre = p.mean(axis=0)
        return centre + (p - centre) * 0.75  # the far eye of a turned head is foreshortened, its shape kept

    assert conditions.classify(face, moved(face, LAYOUT.right_eye, narrow), LAYOUT) == ["head_turn"]


def test_an_absent_point_leaves_the_frame_unclassified(face):
    unit = np.linalg.norm(face.points[LAYOUT.left_eye_outer] - face.points[LAYOUT.right_eye_outer])
    mouth = moved(face, LAYOUT.mouth_inner[4:], lambda p: p + [0.0, 0.25 * unit])
    flags = mouth.flags.copy()
    flags[LAYOUT.mouth_inner[0]] = 0
    assert conditions.classify(face, dataclasses.replace(mouth, flags=flags), LAYOUT) == ["other"]


def test_shares_over_the_real_clips_are_as_documented(videos):
    counts, targets = collections.Counter(), 0
    for video in videos:
        reference, *rest = video.face_frames()
        for target in rest:
            targets += 1
            counts.update(conditions.classify(reference, target, LAYOUT))
    shares = {name: counts[name] / targets for name in conditions.CONDITIONS}
    assert targets == 6644
    assert shares["mouth_open"] == pytest.approx(0.16, abs=0.01)
    assert shares["blink"] == pytest.approx(0.07, abs=0.01)
    assert shares["head_turn"] == pytest.approx(0.11, abs=0.01)

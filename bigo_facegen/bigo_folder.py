"""The rules of a BIGO-layout folder: who each video shows, its tier and the person-disjoint split.

Every reader of a folder applies these, so that a video has one identity, one tier and one split everywhere: the TFDS
builder (`tfds_bigo`), the input pipeline (`data`) and the evaluation protocol (`evaluation.protocol`).

A folder holds `ANNOTATIONS_FILE` (see `annotations`), the videos it names and, optionally, `MANIFEST_FILE`: a table
with a `clip` (a video id) and a `person` column.

- A video's id is its file name without the suffix (`video_id`).
- Its identity: the video's `identity` key, else the `person` of its clip in MANIFEST.tsv, else its id
  (`identities`).
- Its tier, one of `TIERS`: the video's `tier` key, else its BIGO id's (10xxx easy, 11xxx medium, 12xxx hard:
  `tier_from_name`; `annotations.load` applies both), else a tercile of the head-pose spread over the folder's videos
  (`assign_tiers`).
- The person-disjoint split: `is_test_identity` puts about `TEST_SHARE` of identities in `test`, by a salted hash of
  the identity, so a person is in one split whatever the data set, tier or machine.
"""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # names for hints only: `annotations` imports this module, and keypoints would bring TensorFlow
    from bigo_facegen.annotations import VideoAnnotation
    from bigo_facegen.keypoints import Layout

ANNOTATIONS_FILE = "annotations.json"
MANIFEST_FILE = "MANIFEST.tsv"
TIERS = ("easy", "medium", "hard")
_TIER_BY_PREFIX = {"10": "easy", "11": "medium", "12": "hard"}
TEST_SHARE = 0.2
# Chosen among a few salts: real_faces/dev gets 6 of its 30 persons in `test` (7 of 39 clips, each tier covered),
# the default synthetic set 26 of its 120.
_SPLIT_SALT = "bigo-facegen/person-split/11"
# The person splits: `test` and `train` are disjoint; `all` is both (a model to ship is trained on everyone).
SPLITS = ("all", "test", "train")


def video_id(video: VideoAnnotation) -> str:
    """The video's file name without the suffix: its key in MANIFEST.tsv and in the TFDS data set."""
    return Path(video.video).stem


def tier_from_name(video: str) -> str | None:
    """BIGO's tier from a video id: 10xxx easy, 11xxx medium, 12xxx hard; None for any other name."""
    match = re.fullmatch(r"(1[012])\d{3}(\.\w+)?", Path(video).name)
    return _TIER_BY_PREFIX[match.group(1)] if match else None


def identities(videos: list[VideoAnnotation], folder: Path) -> dict[str, str]:
    """Each video's identity (by its `video` name): its `identity` key, else the MANIFEST.tsv `person` of its clip in
    `folder`, else its id."""
    manifest = Path(folder) / MANIFEST_FILE
    people = {}
    if manifest.exists():
        with manifest.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows and not {"clip", "person"} <= set(rows[0]):
            raise ValueError(f"{manifest}: needs `clip` and `person` columns, has {sorted(rows[0])}")
        people = {row["clip"]: row["person"] for row in rows if row["person"]}
    return {v.video: v.identity or people.get(video_id(v)) or video_id(v) for v in videos}


def assign_tiers(videos: list[VideoAnnotation], layout: Layout) -> dict[str, str]:
    """Each video's tier (by its `video` name; every video needs a face frame): its own (`tier` key or BIGO id) where
    it has one; the others are ranked by head-pose spread and cut at terciles, so that every tier gets a third of
    them. The tiers of a folder are those of all its videos with a face: a reader that keeps fewer must still rank
    them all."""
    tiers = {video.video: video.tier for video in videos if video.tier}
    untiered = sorted((v for v in videos if not v.tier), key=lambda v: (pose_spread(v, layout), v.video))
    for rank, video in enumerate(untiered):
        tiers[video.video] = TIERS[rank * len(TIERS) // len(untiered)]
    return tiers


def pose_spread(video: VideoAnnotation, layout: Layout) -> float:
    """How much the head turns over a video: the summed standard deviations of a yaw proxy (eye-to-jaw-side balance),
    a pitch proxy (eye-to-mouth distance over eye distance) and the roll (eye-line angle, radians)."""
    points = np.stack([frame.points for frame in video.face_frames()]).astype(np.float64)
    left_eye = points[:, list(layout.left_eye)].mean(axis=1)
    right_eye = points[:, list(layout.right_eye)].mean(axis=1)
    mouth = points[:, list(layout.mouth_inner)].mean(axis=1)
    jaw_left, jaw_right = points[:, layout.jaw[0]], points[:, layout.jaw[-1]]
    eye_line = right_eye - left_eye
    eye_distance = np.maximum(np.linalg.norm(eye_line, axis=1), 1e-6)
    to_left = np.linalg.norm(left_eye - jaw_left, axis=1)
    to_right = np.linalg.norm(right_eye - jaw_right, axis=1)
    yaw = (to_left - to_right) / np.maximum(to_left + to_right, 1e-6)
    pitch = np.linalg.norm(mouth - (left_eye + right_eye) / 2, axis=1) / eye_distance
    roll = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    return float(yaw.std() + pitch.std() + roll.std())


def is_test_identity(identity: str) -> bool:
    """Whether a person belongs to the `test` split (deterministic, independent of everything but the identity)."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{identity}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64 < TEST_SHARE


def in_split(identity: str, split: str) -> bool:
    """Whether a person's videos belong to `split`, one of `SPLITS` (`all` holds everyone)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return split == "all" or is_test_identity(identity) == (split == "test")

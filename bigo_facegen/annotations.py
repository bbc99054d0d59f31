"""The BIGO annotation file: read, validate and write it.

The layout (that of the BIGO 2019 face-generation challenge release) is a JSON list with one object per video::

    [{"video": "12008.mp4", "video_path": "videos/12008.mp4",
      "annotations": [{"index": 1, "bbox": [x, y, w, h], "keypoint": [x0, y0, f0, x1, y1, f1, ...]}, ...]}]

`index` is the 1-based frame number, `bbox` the face box in frame pixels and `keypoint` one (x, y, flag) triplet per
point, for any number of points (106 in BIGO's release, 68 in dlib's). The optional keys `"tier"` and `"identity"` on
a video object are read and written (what they mean: `bigo_folder`; a video without a tier key gets its BIGO id's
tier); other extra keys are ignored, so files written by newer tools still load.

Decisions on the cases the format leaves open, applied by `load` and by `dump` alike:

- A frame with no face has `"bbox": []` and `"keypoint": []`; it loads as a `FrameAnnotation` whose `bbox`, `points`
  and `flags` are None. A box without keypoints (or keypoints without a box) is an error: nothing downstream can
  use half a face, and silently dropping it would hide a broken annotator.
- Flags are 0 (absent), 1 (present but occluded) or 2 (visible), as integers. A point with flag 0 keeps whatever
  coordinates the file gives (often 0, 0); consumers must mask by flag, never by coordinate.
- Points and boxes may lie partly or wholly outside the frame: faces at the border are real, crops replicate the
  border and keypoint maps skip off-crop points. Coordinates must be finite (also as the float32 they are kept in),
  box sides positive. How far out they may lie can only be seen with the frame size at hand: `check_on_frame` raises
  on a box or point more than `FRAME_REACH` frame sizes beyond an edge.
- Frames may be missing (gaps in `index`): such a frame simply has no annotation and is treated like a frame with no
  face. Frames are kept sorted by index; a repeated, non-positive or non-integer (also 2.0) index is an error.
- An annotation for a frame the video does not have can only be seen with the video at hand: `check_against_video`
  raises on it, and reports the frames that have no annotation.
- All face frames of a video, and all videos of a file, have the same number of points: a file is one data set with
  one keypoint layout.
- `video_path` is relative to the data directory and may not leave it: no absolute path, no `..` (checked on the
  text, by `load`), and no symbolic link out of it, the file's or a folder's on the way (checked on the files, by
  `resolve_video_path`, which every reader of a video goes through). Links that stay inside are fine.

Every problem raises one `AnnotationError` whose message names the file, the video, the frame and the problem.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterable

import numpy as np

from bigo_facegen import files
from bigo_facegen.bigo_folder import TIERS, tier_from_name

FLAG_ABSENT, FLAG_OCCLUDED, FLAG_VISIBLE = 0, 1, 2
# How far beyond each edge of its frame, in frame sizes, a face box or point may lie: faces leave the frame, but a
# point two frames away is no face's, and one far enough out (1e30) overflows the float32 arithmetic downstream.
FRAME_REACH = 2
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class AnnotationError(ValueError):
    """A BIGO annotation file, or one of its entries, is malformed."""


@dataclasses.dataclass
class FrameAnnotation:
    """One annotated frame. `bbox` is (4,) float32 x, y, w, h; `points` (N, 2) float32 x, y in frame pixels; `flags`
    (N,) int32. All three are None when the frame has no face."""
    index: int
    bbox: np.ndarray | None = None
    points: np.ndarray | None = None
    flags: np.ndarray | None = None

    @property
    def has_face(self) -> bool:
        return self.bbox is not None


@dataclasses.dataclass
class VideoAnnotation:
    """The annotations of one video, frames sorted by index. `video_path` is relative to the data directory."""
    video: str
    video_path: str
    frames: list[FrameAnnotation]
    tier: str | None = None
    identity: str | None = None

    @property
    def num_keypoints(self) -> int | None:
        """Points per face, or None when no frame has a face."""
        for frame in self.frames:
            if frame.has_face:
                return len(frame.points)
        return None

    def face_frames(self) -> list[FrameAnnotation]:
        return [frame for frame in self.frames if frame.has_face]


def resolve_video_path(video: VideoAnnotation, root: str | os.PathLike) -> Path:
    """The video's file under the data directory `root`; raises AnnotationError if `video_path` would leave it, by
    its text or through a symbolic link."""
    problem = _escape_problem(video.video_path)
    if problem:
        raise AnnotationError(f"{root}: video {video.video!r}: {problem}")
    path = Path(root) / video.video_path
    check_inside(path, root)
    return path


def video_file(video: VideoAnnotation, annotations_path: str | os.PathLike,
               videos_dir: str | os.PathLike | None = None) -> Path:
    """The file of an annotated video: its `video_path`'s name under `videos_dir`, default: `video_path` as the
    annotation file at `annotations_path` gives it (`resolve_video_path`)."""
    if videos_dir is not None:
        return Path(videos_dir) / Path(video.video_path).name
    return resolve_video_path(video, Path(annotations_path).parent)


def find_video(videos: list[VideoAnnotation], name: str, source: str) -> VideoAnnotation:
    """The video called `name` (with or without its extension) among `videos`, read from `source`."""
    for entry in videos:
        if name in (entry.video, Path(entry.video).stem):
            return entry
    known = ", ".join(v.video for v in videos[:10]) + (", ..." if len(videos) > 10 else "")
    raise AnnotationError(f"{source}: no video {name!r}; the file has {len(videos)} videos: {known or 'none'}")


def check_inside(path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Raises AnnotationError if the file `path` of the data directory `root` really lies outside it: a symbolic link
    (the file or a folder on its way) would have a reader take in a file that the folder does not hold."""
    path = Path(path)
    try:
        real, inside = path.resolve(), Path(root).resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symbolic link loop
        raise AnnotationError(f"{path}: cannot resolve its symbolic links: {e}") from e
    if not real.is_relative_to(inside):
        raise AnnotationError(f"{path}: leads out of the data directory {root} through a symbolic link (to {real})")


def load(path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> list[VideoAnnotation]:
    """Reads and validates a BIGO annotation file. `data_dir` (default: the file's folder) is the folder that
    `video_path` is relative to; it is named in errors about paths that would leave it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text: {e}") from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
    return parse(raw, source=str(path), data_dir=data_dir if data_dir is not None else path.parent)


def parse(raw: Any, source: str = "<annotations>", data_dir: str | os.PathLike | None = None) -> list[VideoAnnotation]:
    """Validates already-decoded JSON (see `load`); `source` names it in errors."""
    if not isinstance(raw, list):
        raise AnnotationError(f"{source}: top level is a JSON {_json_type(raw)}, not a list of videos")
    videos = [_parse_video(entry, position, source, data_dir) for position, entry in enumerate(raw)]
    _check_file_consistency(videos, source)
    return videos


def dump(videos: Iterable[VideoAnnotation], path: str | os.PathLike) -> None:
    """Writes videos in the BIGO layout, atomically (temp file + rename). What `load` would reject is not written."""
    path = Path(path)
    raw = [_video_to_json(video) for video in videos]
    parse(raw, source=str(path))
    text = json.dumps(raw, separators=(",", ":"))
    files.write_atomic(path, text)


def check_against_video(video: VideoAnnotation, frame_count: int, source: str = "<annotations>") -> list[int]:
    """Checks a video's annotations against the number of frames its file has. An annotation of a frame past the end
    raises AnnotationError (the annotation belongs to another cut of the video); frames with no annotation are
    allowed and returned, as 1-based indices, so callers can report or skip them."""
    beyond = [frame.index for frame in video.frames if frame.index > frame_count]
    if beyond:
        raise AnnotationError(
            f"{source}: video {video.video!r}, frame {beyond[0]}: annotated, but the video has only {frame_count} "
            f"frames ({len(beyond)} annotation(s) past its end)")
    annotated = {frame.index for frame in video.frames}
    return [index for index in range(1, frame_count + 1) if index not in annotated]


def check_on_frame(video: VideoAnnotation, width: int, height: int, source: str = "<annotations>") -> None:
    """Checks a video's face boxes and points against the size of its frames (those of its file, or of a reference
    image standing for them): one more than `FRAME_REACH` frame sizes beyond an edge, or not a number, raises
    AnnotationError naming the frame and the box or point."""
    size = np.array([width, height], np.float64)
    low, high = -FRAME_REACH * size, (1 + FRAME_REACH) * size
    where = f"{source}: video {video.video!r}"
    reach = f"more than {FRAME_REACH} frame sizes outside the {width}x{height} frame"
    for frame in video.face_frames():
        box = np.asarray(frame.bbox, np.float64)
        corners = np.stack([box[:2], box[:2] + box[2:]])
        if not ((corners >= low) & (corners <= high)).all():  # NaN fails it too
            raise AnnotationError(f"{where}, frame {frame.index}: bbox {box.tolist()} reaches {reach}")
        points = np.asarray(frame.points, np.float64)
        outside = np.flatnonzero(~((points >= low) & (points <= high)).all(axis=1))
        if outside.size:
            x, y = points[outside[0]]
            raise AnnotationError(f"{where}, frame {frame.index}: keypoint {outside[0]} at ({x:g}, {y:g}) lies {reach}")


def _parse_video(entry: Any, position: int, source: str, data_dir) -> VideoAnnotation:
    where = f"{source}: video #{position}"
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: is a JSON {_json_type(entry)}, not an object")
    name = entry.get("video")
    if isinstance(name, str) and name:
        where = f"{source}: video {name!r}"
    for key in ("video", "video_path", "annotations"):
        if key not in entry:
            raise AnnotationError(f"{where}: missing key {key!r}")
    for key in ("video", "video_path"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise AnnotationError(f"{where}: {key!r} must be a non-empty string, got {entry[key]!r}")
    problem = _escape_problem(entry["video_path"])
    if problem:
        inside = f" {data_dir}" if data_dir is not None else ""
        raise AnnotationError(f"{where}: {problem} (it must stay inside the data directory{inside})")
    tier = entry.get("tier")
    if tier is not None and tier not in TIERS:
        raise AnnotationError(f"{where}: tier {tier!r} is not one of {TIERS}")
    identity = entry.get("identity")
    if identity is not None and (not isinstance(identity, str) or not identity):
        raise AnnotationError(f"{where}: identity must be a non-empty string, got {identity!r}")
    if not isinstance(entry["annotations"], list):
        raise AnnotationError(f"{where}: 'annotations' is a JSON {_json_type(entry['annotations'])}, not a list")
    frames = [_parse_frame(frame, i, where) for i, frame in enumerate(entry["annotations"])]
    _check_video_consistency(frames, where)
    return VideoAnnotation(
        video=name, video_path=entry["video_path"], frames=sorted(frames, key=lambda f: f.index),
        tier=tier if tier is not None else tier_from_name(name), identity=identity)


def _parse_frame(raw: Any, position: int, video_where: str) -> FrameAnnotation:
    where = f"{video_where}, annotation #{position}"
    if not isinstance(raw, dict):
        raise AnnotationError(f"{where}: is a JSON {_json_type(raw)}, not an object")
    if "index" not in raw:
        raise AnnotationError(f"{where}: missing key 'index'")
    index = raw["index"]
    if not _is_int(index) or index < 1:
        raise AnnotationError(f"{where}: index {index!r} is not a positive integer (frames are numbered from 1)")
    where = f"{video_where}, frame {index}"
    for key in ("bbox", "keypoint"):
        if key not in raw:
            raise AnnotationError(f"{where}: missing key {key!r}")
        if not isinstance(raw[key], list):
            raise AnnotationError(f"{where}: {key!r} is a JSON {_json_type(raw[key])}, not a list")
    bbox, keypoint = raw["bbox"], raw["keypoint"]
    if not bbox and not keypoint:
        return FrameAnnotation(index=index)
    if not bbox or not keypoint:
        empty, given = ("bbox", "keypoint") if not bbox else ("keypoint", "bbox")
        raise AnnotationError(f"{where}: {empty!r} is empty but {given!r} is not; a frame without a face has both "
                              f"empty")
    return FrameAnnotation(index=index, bbox=_parse_bbox(bbox, where), **_parse_keypoints(keypoint, where))


def _parse_bbox(bbox: list, where: str) -> np.ndarray:
    if len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise AnnotationError(f"{where}: bbox must be 4 numbers [x, y, w, h], got {_short(bbox)}")
    if not all(abs(v) <= _FLOAT32_MAX for v in bbox):  # NaN fails it too
        raise AnnotationError(f"{where}: bbox {bbox} has a non-finite value (as float32)")
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise AnnotationError(f"{where}: bbox {bbox} has a non-positive width or height")
    return np.asarray(bbox, np.float32)


def _parse_keypoints(keypoint: list, where: str) -> dict[str, np.ndarray]:
    if len(keypoint) % 3:
        raise AnnotationError(f"{where}: keypoint has {len(keypoint)} numbers, not a multiple of 3 (x, y, flag)")
    for i, value in enumerate(keypoint):
        if not _is_number(value):
            raise AnnotationError(f"{where}: keypoint {i // 3} has the non-number {value!r}")
    triplets = np.asarray(keypoint, np.float64).reshape(-1, 3)
    bad = np.flatnonzero(~(np.abs(triplets[:, :2]) <= _FLOAT32_MAX).all(axis=1))  # NaN fails it too
    if bad.size:
        raise AnnotationError(f"{where}: keypoint {bad[0]} has a non-finite coordinate (as float32) "
                              f"{triplets[bad[0], :2].tolist()}")
    flags = triplets[:, 2]
    bad = np.flatnonzero(~np.isin(flags, (FLAG_ABSENT, FLAG_OCCLUDED, FLAG_VISIBLE)))
    if bad.size:
        raise AnnotationError(f"{where}: keypoint {bad[0]} has flag {keypoint[3 * bad[0] + 2]!r}, not 0 (absent), "
                              f"1 (occluded) or 2 (visible)")
    return {"points": triplets[:, :2].astype(np.float32), "flags": flags.astype(np.int32)}


def _check_video_consistency(frames: list[FrameAnnotation], where: str) -> None:
    seen: set[int] = set()
    for frame in frames:
        if frame.index in seen:
            raise AnnotationError(f"{where}, frame {frame.index}: index appears more than once")
        seen.add(frame.index)
    counts = [(frame.index, len(frame.points)) for frame in frames if frame.has_face]
    for index, count in counts[1:]:
        if count != counts[0][1]:
            raise AnnotationError(f"{where}, frame {index}: {count} keypoints, but frame {counts[0][0]} has "
                                  f"{counts[0][1]}; all frames of a video use one layout")


def _check_file_consistency(videos: list[VideoAnnotation], source: str) -> None:
    names: set[str] = set()
    first: VideoAnnotation | None = None
    for video in videos:
        if video.video in names:
            raise AnnotationError(f"{source}: video {video.video!r}: appears more than once")
        names.add(video.video)
        if video.num_keypoints is None:
            continue
        if first is None:
            first = video
        elif video.num_keypoints != first.num_keypoints:
            frame = video.face_frames()[0].index
            raise AnnotationError(
                f"{source}: video {video.video!r}, frame {frame}: {video.num_keypoints} keypoints, but video "
                f"{first.video!r} has {first.num_keypoints}; one file uses one keypoint layout")


def _video_to_json(video: VideoAnnotation) -> dict[str, Any]:
    out: dict[str, Any] = {"video": video.video, "video_path": video.video_path}
    if video.tier is not None:
        out["tier"] = video.tier
    if video.identity is not None:
        out["identity"] = video.identity
    out["annotations"] = [_frame_to_json(frame) for frame in video.frames]
    return out


def _frame_to_json(frame: FrameAnnotation) -> dict[str, Any]:
    if not frame.has_face:
        return {"index": int(frame.index), "bbox": [], "keypoint": []}
    keypoint: list[float | int] = []
    for (x, y), flag in zip(np.asarray(frame.points, np.float64).tolist(), np.asarray(frame.flags).tolist()):
        keypoint += [_compact(x), _compact(y), int(flag)]
    return {"index": int(frame.index), "bbox": [_compact(v) for v in np.asarray(frame.bbox, np.float64).tolist()],
            "keypoint": keypoint}


def _compact(value: float) -> float:
    # float32 values printed as float64 carry noise digits (0.1 -> 0.10000000149011612); 6 decimals keep 1e-6 px.
    return round(value, 6)


def _escape_problem(video_path: str) -> str | None:
    if PurePosixPath(video_path).is_absolute() or PureWindowsPath(video_path).is_absolute() or \
            PureWindowsPath(video_path).drive:
        return f"video_path {video_path!r} is absolute"
    if ".." in PureWindowsPath(video_path).parts:
        return f"video_path {video_path!r} contains '..'"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null", int: "number",
             float: "number"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."

"""Cross-identity evaluation, beside the same-person protocol (`protocol`): the face of one person (the source: the
first face frame of a clip of person A) driven by a clip of another person B, over the person-disjoint split.

    python -m experiments.evaluate_cross --data=../shared/data/real_faces/dev --methods=copy,warp,exports/face \\
        --output=runs/cross

Pairs (`make_pairs`): each clip of the split drives `sources_per_driver` sources, the first face frames of clips of
other persons (taken in turn from the clip after the driver's, by name, so that drivers get different sources). The
driving track is the clip's first `max_frames` frames, consecutive, their points found as `animate` finds them
(`animate.driving_track`: tracked or detected on every frame, `tracking`); `motion_transfer` turns it into the
source's targets, the same for every method (`methods.Method`: `copy` the source as it is, `warp`
the piecewise-affine warp of the source by the targets, and any model: an export or a training model_dir).

There is no true frame, so the scores are the judge's alone. dlib finds the face and its 68 points on each output
frame itself (`annotate.annotate_frame`: detector and predictor; a copied face is not where the targets say, so the
target box would flatter it), and its descriptor (`dlib_face.descriptor`):

- identity kept: the descriptor distance of each output frame to the source's, and the share of output frames whose
  face dlib finds within `SAME_PERSON_DISTANCE` (dlib's threshold) of the source's;
- motion followed: the output's points moved since the output's first frame, against the driver's motion since its
  first frame retargeted to the source (its annotated points, whatever the tracking: relative mode, first reference,
  no smoothing), the mean point distance over the source's outer-eye-corner distance;
- jitter: the output's points' mean acceleration over three consecutive frames (`metrics.keypoint_jitter`, over the
  source's eye-corner distance) divided by the driver's own (its annotated points, over its eye-corner distance):
  1 shakes as much as the driver, more than 1 shakes more.

Written to OUTPUT: results.json (settings, per method overall and per pair), results.md, sheets/<source>__<driver>.png
(source | driving frame | each method, a few frames) for the first `sheet_pairs` pairs. The folder appears whole: it
is built beside OUTPUT and renamed; into an existing OUTPUT its files are moved one by one, results.json last.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from bigo_facegen import (
    animate,
    annotate,
    dlib_face,
    files,
    generation,
    methods as methods_lib,
    motion_transfer,
    painting,
    video,
)
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.evaluation import metrics, protocol
from bigo_facegen.keypoints import IBUG68
from bigo_facegen.methods import Method
from bigo_facegen.motion_transfer import MotionSettings

# dlib's face descriptors of one person lie closer than this (dlib's own threshold, 99.38% on LFW).
SAME_PERSON_DISTANCE = 0.6
SUMMARY = ("identity_distance", "identity_kept", "motion_error", "jitter_ratio", "frames", "judged")
_TITLES = {"identity_distance": "identity dist", "identity_kept": f"identity < {SAME_PERSON_DISTANCE}",
           "motion_error": "motion error", "jitter_ratio": "jitter / driver's", "frames": "frames",
           "judged": "faces found"}
# The motion the outputs are measured against, whatever the methods were driven with.
YARDSTICK = MotionSettings(mode="relative", reference="first", smoothing="none")
_ENTRIES = {"results.json": False, "results.md": False, "sheets": True}


@dataclasses.dataclass(frozen=True)
class Pair:
    """The source (its clip's first face frame) and the driving clip: two persons."""
    source: protocol.Case
    driver: protocol.Case

    @property
    def name(self) -> str:
        return f"{Path(self.source.video.video).stem}__{Path(self.driver.video.video).stem}"


@dataclasses.dataclass
class MethodScores:
    """One method on one pair, per output frame: the identity distance (None: no face found), the motion error
    (None: no face found here or on the first frame), the jitter (None: the three frames' faces not all found)."""
    identity: list[float | None]
    motion: list[float | None]
    jitter: list[float | None]


@dataclasses.dataclass
class PairResult:
    pair: Pair
    driver_jitter: list[float]
    scores: dict[str, MethodScores]
    sheet: np.ndarray | None = None


def make_pairs(cases: Sequence[protocol.Case], sources_per_driver: int | None = 1) -> list[Pair]:
    """Each case drives `sources_per_driver` (None: all) cases of other persons, taken in turn from the case after it
    by video name."""
    cases = sorted(cases, key=lambda case: case.video.video)
    pairs = []
    for position, driver in enumerate(cases):
        others = [case for case in cases[position + 1:] + cases[:position] if case.identity != driver.identity]
        pairs += [Pair(source, driver) for source in others[:sources_per_driver]]
    if not pairs:
        raise ValueError("cross-identity pairs need clips of at least two persons in the split")
    return pairs


def evaluate(data_dir: str | os.PathLike, methods: dict[str, Method], split: str = "test",
             sources_per_driver: int | None = 1, max_frames: int = 50, motion: MotionSettings = MotionSettings(),
             sheet_pairs: int = 3, samples: int = 4, progress: bool = True,
             tracking: str = animate.DEFAULT_TRACKING) -> list[PairResult]:
    """Every method on every pair (see the module doc)."""
    annotate.check_tracking(tracking)
    if max_frames < 3:
        raise ValueError(f"max frames must be at least 3 (jitter needs three consecutive frames), got {max_frames}")
    cases = protocol.load_cases(data_dir, split)
    if cases[0].video.num_keypoints != IBUG68.num_points:
        raise ValueError(f"{data_dir}: cross-identity evaluation judges dlib's own 68 points; this folder has "
                         f"{cases[0].video.num_keypoints} per face")
    pairs = make_pairs(cases, sources_per_driver)
    results = []
    bar = tqdm(total=len(pairs) * len(methods), unit="run", desc="cross-identity", disable=not progress)
    for position, pair in enumerate(pairs):
        results.append(_evaluate_pair(pair, methods, max_frames, motion, tracking,
                                      samples if position < sheet_pairs else 0, bar))
    bar.close()
    return results


def _evaluate_pair(pair: Pair, methods: dict[str, Method], max_frames: int, motion: MotionSettings, tracking: str,
                   samples: int, bar) -> PairResult:
    source_image = video.read_frame(pair.source.path, pair.source.reference.index)
    source = pair.source.reference
    driver_info = video.probe(pair.driver.path)
    # The driver's annotated points are the yardstick of motion and jitter; the methods are driven as animate drives.
    annotated = generation.frame_sequence(pair.driver.video)[:max_frames]
    track = animate.driving_track(pair.driver.path, max_frames=len(annotated), progress=False, tracking=tracking)
    source_size, driver_size = (source_image.shape[1], source_image.shape[0]), (driver_info.width,
                                                                                driver_info.height)
    targets = motion_transfer.transfer(source, source_size, track, driver_size, driver_info.fps, motion)
    expected = motion_transfer.transfer(source, source_size, annotated, driver_size, driver_info.fps, YARDSTICK)
    source_descriptor = dlib_face.descriptor(source_image, source.points)
    unit = _interocular(source.points)
    rows = protocol.strided(list(range(len(targets))), samples) if samples else []
    cued = any(method.reads_teeth for method in methods.values())
    driving = (list(itertools.islice(video.read_frames(pair.driver.path), len(track))) if rows or cued else [])
    teeth = [painting.teeth_cue(frame, found) for frame, found in zip(driving, track)] if cued else None
    tiles = {("source", i): source_image for i in rows} | {("driving", i): driving[i] for i in rows}
    scores = {}
    for name, method in methods.items():
        judged = []
        for position, frame in enumerate(result.frame for result in method.frames(source_image, source, targets,
                                                                                  teeth)):
            face = annotate.annotate_frame(frame, targets[position].index)
            judged.append((face.points, dlib_face.descriptor(frame, face.points) if face.has_face else None))
            if position in rows:
                tiles[(name, position)] = frame
        scores[name] = _score(judged, expected, source_descriptor, unit)
        bar.update(1)
    sheet = _sheet(tiles, ["source", "driving", *methods], rows, targets) if rows else None
    return PairResult(pair, _driver_jitter(annotated), scores, sheet)


def _score(judged: list[tuple[np.ndarray | None, np.ndarray | None]], expected: list[FrameAnnotation],
           source_descriptor: np.ndarray, unit: float) -> MethodScores:
    points = [p for p, _ in judged]
    identity = [None if d is None else float(np.linalg.norm(d - source_descriptor)) for _, d in judged]
    motion = [None] * len(judged)
    if points[0] is not None:
        for t in range(1, len(judged)):
            if points[t] is not None:
                wanted = expected[t].points - expected[0].points
                moved = points[t] - points[0]
                motion[t] = float(np.linalg.norm(moved - wanted, axis=1).mean() / unit)
    jitter = [None, None] + [metrics.keypoint_jitter(a, b, c, unit) if all(p is not None for p in (a, b, c))
                             else None for a, b, c in zip(points, points[1:], points[2:])]
    return MethodScores(identity, motion, jitter[:len(judged)])


def _driver_jitter(track: list[FrameAnnotation]) -> list[float]:
    return [metrics.keypoint_jitter(a.points, b.points, c.points, _interocular(c.points))
            for a, b, c in zip(track, track[1:], track[2:]) if a.has_face and b.has_face and c.has_face]


def _interocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[IBUG68.left_eye_outer] - points[IBUG68.right_eye_outer]))


def summarize(results: list[PairResult], method: str) -> dict:
    """A method's means over the frames of `results` (see the module doc; jitter_ratio is the output's mean jitter
    over the drivers' mean jitter); a metric no frame could be judged on is None."""
    scores = [r.scores[method] for r in results]
    identity = [d for s in scores for d in s.identity]
    found = [d for d in identity if d is not None]
    motion = [m for s in scores for m in s.motion if m is not None]
    jitter = [j for s in scores for j in s.jitter if j is not None]
    driver = [j for r in results for j in r.driver_jitter]
    return {
        "identity_distance": float(np.mean(found)) if found else None,
        "identity_kept": float(np.mean([d is not None and d < SAME_PERSON_DISTANCE for d in identity])),
        "motion_error": float(np.mean(motion)) if motion else None,
        "jitter": float(np.mean(jitter)) if jitter else None,
        "driver_jitter": float(np.mean(driver)) if driver else None,
        "jitter_ratio": float(np.mean(jitter) / np.mean(driver)) if jitter and driver and np.mean(driver) > 0
        else None,
        "frames": len(identity),
        "judged": len(found),
    }


def run(method_names: Sequence[str], data: str | os.PathLike, output_dir: str | os.PathLike, split: str = "test",
        sources_per_driver: int | None = 1, max_frames: int = 50, motion: MotionSettings = MotionSettings(),
        sheet_pairs: int = 3, samples: int = 4, progress: bool = True, tracking: str = animate.DEFAULT_TRACKING
        ) -> Path:
    """The library function behind `experiments.evaluate_cross`: `method_names` are those `methods.load` takes
    (`copy`, `warp`, or a model: an export or a training model_dir, named by its path); writes the report to
    `output_dir` (checked first) and returns the path of its results.json."""
    _check_output_dir(output_dir)
    annotate.check_tracking(tracking)
    if not method_names:
        raise ValueError("no method to evaluate: give copy, warp or a model path")
    methods = {name: methods_lib.load(name) for name in dict.fromkeys(method_names)}
    results = evaluate(data, methods, split, sources_per_driver, max_frames, motion, sheet_pairs, samples, progress,
                       tracking)
    settings = {"data": str(data), "split": split, "sources_per_driver": sources_per_driver,
                "max_frames": max_frames, "tracking": tracking, "motion": dataclasses.asdict(motion),
                "same_person_distance": SAME_PERSON_DISTANCE, "pairs": len(results)}
    report = {"settings": settings,
              "overall": {name: summarize(results, name) for name in methods},
              "pairs": {r.pair.name: {name: summarize([r], name) for name in methods} for r in results}}
    return _write(output_dir, report, results)


def _markdown(report: dict) -> str:
    s = report["settings"]
    lines = ["# Cross-identity evaluation", "",
             f"Data: `{s['data']}`, split `{s['split']}`, {s['pairs']} pairs (source: the first face frame of a clip "
             f"of one person; driver: the first {s['max_frames']} frames of a clip of another, its keypoints found by "
             f"`{s['tracking']}`), motion `{s['motion']['mode']}`, driving reference `{s['motion']['reference']}`, "
             f"smoothing `{s['motion']['smoothing']}`.", "",
             f"- identity dist: dlib descriptor distance of each output frame to the source; identity < "
             f"{SAME_PERSON_DISTANCE}: the share of output frames whose face dlib finds that close (dlib's "
             f"same-person threshold).",
             "- motion error: the output's dlib points moved since its first frame against the driver's motion "
             "retargeted to the source, mean point distance over the source's outer-eye-corner distance.",
             "- jitter / driver's: the output's mean keypoint acceleration over the driver's own.", ""]
    keys = list(SUMMARY)

    def table(rows: dict, first: str) -> list[str]:
        out = [f"| {first} | " + " | ".join(_TITLES[k] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, summary in rows.items():
            out.append(f"| {name} | " + " | ".join(_cell(summary[k], k) for k in keys) + " |")
        return out

    lines += ["## Overall", ""] + table(report["overall"], "method") + ["", "## Per pair (source__driver)", ""]
    for pair, rows in report["pairs"].items():
        lines += [f"### {pair}", ""] + table(rows, "method") + [""]
    return "\n".join(lines)


def _cell(value, key: str) -> str:
    if value is None:
        return "n/a"
    if key in ("frames", "judged"):
        return str(value)
    return f"{value:.3f}" if key != "motion_error" else f"{value:.4f}"


def _sheet(tiles: dict, columns: list[str], rows: list[int], targets: list[FrameAnnotation]) -> np.ndarray:
    """Rows of sampled frames, columns source | driving frame | each method, each captioned."""
    lines = []
    for row in rows:
        cells = []
        for column in columns:
            tile = tiles[(column, row)]
            height, width = tile.shape[:2]
            size = (max(1, round(width * protocol.THUMBNAIL_HEIGHT / height)), protocol.THUMBNAIL_HEIGHT)
            tile = cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
            caption = f"driving frame {targets[row].index}" if column == "driving" else column
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (255, 255, 255), -1)
            cv2.putText(tile, caption[-32:], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (30, 30, 30), 1, cv2.LINE_AA)
            cells.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        lines.append(np.concatenate(cells, axis=1))
    width = max(line.shape[1] for line in lines)
    return np.concatenate([np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255)
                           for line in lines])


def _check_output_dir(output_dir: str | os.PathLike) -> None:
    output_dir = Path(output_dir)
    files.check_output_folder(output_dir, "output")
    for name, is_folder in _ENTRIES.items():
        entry = output_dir / name
        if os.path.lexists(entry) and entry.is_dir() != is_folder:
            raise files.OutputPathError(f"output {output_dir}: {entry} is in the way of the report's {name}; move "
                                        f"it away or choose another output folder")


def _write(output_dir: str | os.PathLike, report: dict, results: list[PairResult]) -> Path:
    output_dir = Path(output_dir)
    _check_output_dir(output_dir)

    def write(staging: Path) -> list[Path]:
        sheets = [Path("sheets") / f"{r.pair.name}.png" for r in results if r.sheet is not None]
        for path, result in zip(sheets, (r for r in results if r.sheet is not None)):
            files.write_png(staging / path, result.sheet)
        files.write_atomic(staging / "results.md", _markdown(report))
        files.write_atomic(staging / "results.json", json.dumps(report, indent=2))
        # results.json last: a reader that finds the new one finds the rest of the report beside it.
        return [*sheets, Path("results.md"), Path("results.json")]

    return files.publish_folder(output_dir, write) / "results.json"

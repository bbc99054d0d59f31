"""The challenge's evaluation protocol: one reference frame per video, every later annotated frame a target.

For each video the first annotated frame with a face is the reference; every later face frame is a target. A
method (`methods.Method`: copy, warp or a model) makes one full frame per target from the reference frame and its
annotation;
each generated frame is scored against the true one (`metrics`: PSNR and SSIM on the full frame and on the target's
face crop; `regions`: PSNR, SSIM and a perceptual distance around the target's mouth and eyes, the face's perceptual
distance, whether teeth show where the target opens its mouth, the eye opening where it blinks) and by the dlib judge
(`judges`: identity and keypoint error). Identity
accuracy: each generated frame is assigned to the person of the nearest reference descriptor among all evaluated
videos' references, and counts as right when that is its own person.

Persons (for identity and for the person-disjoint `test` split) and tiers are those the training data set gives
the same folder: `bigo_folder`'s.

What the methods are given is the annotation file's reference and targets, unless `evaluate` is told otherwise
(`drive`: `reconstruction` gives them the targets animate makes from the clip's own frames); the scores are always
against the true frames and the file's annotations of them.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from bigo_facegen import annotations as annotations_lib, bigo_folder, keypoints, video as video_lib
from bigo_facegen.annotations import FrameAnnotation, VideoAnnotation
from bigo_facegen.bigo_folder import ANNOTATIONS_FILE
from bigo_facegen.evaluation import conditions, metrics, regions
from bigo_facegen.evaluation.judges import DlibJudge
from bigo_facegen.methods import Method

# The name under which the true target frames are scored as if generated: the judge's floor.
TRUTH = "truth"
SPLITS = bigo_folder.SPLITS
METRICS = ("psnr", "ssim", "psnr_face", "ssim_face", "identity_accuracy", "identity_distance", "keypoint_nme",
           "keypoint_accuracy", "keypoint_jitter")
# Summaries of the mouth and the eyes (`regions`), a second table in results.md.
REGION_METRICS = ("psnr_mouth", "ssim_mouth", "psnr_eyes", "ssim_eyes", "perceptual_face", "perceptual_mouth",
                  "teeth_hit", "teeth_false", "teeth_frames", "eye_opening_error")
THUMBNAIL_HEIGHT = 192
# How the challenge's protocol is described in a report (`Evaluation.protocol`).
CHALLENGE = ("the first annotated frame of each video is the reference, every later annotated frame a target; each "
             "method is given the reference's and the targets' annotations.")


@dataclasses.dataclass
class Case:
    """One video under evaluation: who and which tier, the reference and the targets."""
    video: VideoAnnotation
    path: Path
    identity: str
    tier: str
    reference: FrameAnnotation
    targets: list[FrameAnnotation]


@dataclasses.dataclass(frozen=True)
class Given:
    """What the methods are given for a case: a reference annotation and one annotation per target, in the targets'
    order; `teeth`, where a driving frame is seen (animate's path), the driver's `painting.teeth_cue` per target."""
    reference: FrameAnnotation
    targets: list[FrameAnnotation]
    teeth: list[float | None] | None = None

    def subset(self, kept: Sequence[int]) -> "Given":
        return Given(self.reference, [self.targets[k] for k in kept],
                     None if self.teeth is None else [self.teeth[k] for k in kept])


@dataclasses.dataclass
class FrameScore:
    index: int
    psnr: float
    ssim: float
    psnr_face: float
    ssim_face: float
    identity_correct: bool | None = None    # None: the judge found no face to judge
    identity_distance: float | None = None  # to the video's own reference descriptor
    keypoint_nme: float | None = None       # None: the judge found no face to judge
    # The judge's points' acceleration over this and the two targets before it (`metrics.keypoint_jitter`); None
    # for a video's first two targets, or where the judge missed one of the three.
    keypoint_jitter: float | None = None
    # `regions`: None where the measure does not apply to the target (see there).
    psnr_mouth: float | None = None
    ssim_mouth: float | None = None
    psnr_eyes: float | None = None
    ssim_eyes: float | None = None
    perceptual_face: float | None = None
    perceptual_mouth: float | None = None
    teeth_truth: bool | None = None         # judged on mouth_open targets only
    teeth_output: bool | None = None
    eye_opening_error: float | None = None  # blink targets only


@dataclasses.dataclass
class Sample:
    """Thumbnails of one target for contact sheets: `frames` maps "reference", "truth" and method names to images."""
    index: int
    frames: dict[str, np.ndarray]


@dataclasses.dataclass
class VideoResult:
    case: Case
    scores: dict[str, list[FrameScore]]     # per method
    samples: list[Sample]


@dataclasses.dataclass
class Evaluation:
    data_dir: Path
    layout: str
    methods: list[str]
    videos: list[VideoResult]
    settings: dict
    protocol: str = CHALLENGE   # what the methods were given, in a sentence for the report


def load_cases(data_dir: str | Path, split: str = "all", max_frames_per_video: int | None = None,
               frame_stride: int = 1) -> list[Case]:
    """The videos of a BIGO-layout folder in `split` (all | test | train: the person-disjoint split of
    `bigo_folder.is_test_identity`), each with its reference and its targets: every `frame_stride`-th later face
    frame, then at most `max_frames_per_video` of those, evenly strided. Videos with fewer than two face frames have
    nothing to evaluate and are left out."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if frame_stride < 1:
        raise ValueError(f"frame stride must be at least 1, got {frame_stride}")
    data_dir = Path(data_dir)
    # Tiers are ranked over every video with a face, as in the training data set, though only some are evaluated.
    with_faces = [v for v in annotations_lib.load(data_dir / ANNOTATIONS_FILE) if v.face_frames()]
    videos = [v for v in with_faces if len(v.face_frames()) >= 2]
    if not videos:
        raise annotations_lib.AnnotationError(f"{data_dir / ANNOTATIONS_FILE}: no video has two face frames")
    tiers = bigo_folder.assign_tiers(with_faces, keypoints.layout_for_count(videos[0].num_keypoints))
    identities = bigo_folder.identities(videos, data_dir)
    cases = []
    for v in videos:
        identity = identities[v.video]
        if not bigo_folder.in_split(identity, split):
            continue
        faces = v.face_frames()
        cases.append(Case(video=v, path=annotations_lib.resolve_video_path(v, data_dir), identity=identity,
                          tier=tiers[v.video], reference=faces[0],
                          targets=strided(faces[1::frame_stride], max_frames_per_video)))
    if not cases:
        raise ValueError(f"{data_dir}: no video in the {split!r} split")
    return cases


def strided(items: list, limit: int | None) -> list:
    """At most `limit` items, evenly strided from the first (all of them when `limit` is None)."""
    if limit is None or len(items) <= limit:
        return list(items)
    if limit < 1:
        raise ValueError(f"max frames per video must be at least 1, got {limit}")
    return items[::math.ceil(len(items) / limit)][:limit]


def evaluate(data_dir: str | Path, methods: dict[str, Method | None], split: str = "all",
             max_frames_per_video: int | None = None, frame_stride: int = 1, samples_per_video: int = 4,
             sample_methods: dict[str, Method] | None = None, progress: bool = True,
             drive: Callable[[Case, np.ndarray], Given] | None = None, protocol: str = CHALLENGE) -> Evaluation:
    """Runs every method (and `TRUTH`, if named with a None method) over the videos of `data_dir`.

    `sample_methods` are only run on the contact-sheet samples (e.g. a baseline next to a model), not scored. `drive`
    gives what the methods are given for a case, from the case and its frames (default: its reference and targets as
    annotated), once per case for all of them; `protocol` says so in the report.
    """
    cases = load_cases(data_dir, split, max_frames_per_video, frame_stride)
    layout = keypoints.layout_for_count(cases[0].video.num_keypoints).name
    judge = DlibJudge(layout)
    gallery = _reference_gallery(cases, judge, progress)
    distance = regions.PerceptualDistance()
    results = []
    bar = tqdm(total=sum(len(c.targets) for c in cases) * len(methods), unit="frame", disable=not progress,
               desc="evaluate")
    for case in cases:
        frames = video_lib.read_all(case.path)
        annotations_lib.check_against_video(case.video, len(frames), source=str(case.path))
        annotations_lib.check_on_frame(case.video, frames[0].shape[1], frames[0].shape[0], source=str(case.path))
        given = drive(case, frames) if drive is not None else Given(case.reference, case.targets)
        scores = {name: _score_method(case, frames, given, method, judge, gallery, distance, bar)
                  for name, method in methods.items()}
        results.append(VideoResult(case, scores, _samples(case, frames, given,
                                                          {**methods, **(sample_methods or {})}, samples_per_video)))
    bar.close()
    settings = {"split": split, "max_frames_per_video": max_frames_per_video, "frame_stride": frame_stride,
                "face_crop_size": metrics.FACE_SIZE,
                "ssim": f"per RGB channel, {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW} uniform window (scikit-image "
                        f"defaults)", "nme_threshold": metrics.NME_THRESHOLD,
                "identity_gallery": len(gallery[0]), "region_growth": regions.GROWTH,
                "mouth_size": list(regions.MOUTH_SIZE), "perceptual_weights": distance.weights_path}
    return Evaluation(Path(data_dir), layout, list(methods), results, settings, protocol)


def _reference_gallery(cases: list[Case], judge: DlibJudge, progress: bool
                       ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray | None]]:
    """(descriptors (R, 128), their persons, each video's own reference descriptor or None)."""
    own: dict[str, np.ndarray | None] = {}
    for case in tqdm(cases, desc="references", unit="video", disable=not progress):
        reference_frame = video_lib.read_frame(case.path, case.reference.index)
        own[case.video.video] = judge.judge(reference_frame, case.reference).descriptor
    judged = [c for c in cases if own[c.video.video] is not None]
    descriptors = np.stack([own[c.video.video] for c in judged]) if judged else np.zeros((0, 128), np.float32)
    return descriptors, [c.identity for c in judged], own


def _score_method(case: Case, frames: np.ndarray, given: Given, method: Method | None, judge: DlibJudge, gallery,
                  distance: regions.PerceptualDistance, bar) -> list[FrameScore]:
    generated = _generated(case, frames, given, method)
    scores, judged_points = [], []
    for target, frame in zip(case.targets, generated):
        score, points = score_frame(frame, frames[target.index - 1], target, case, judge, gallery, distance)
        judged_points.append(points)
        if len(judged_points) >= 3 and all(p is not None for p in judged_points[-3:]):
            score.keypoint_jitter = metrics.keypoint_jitter(*judged_points[-3:], judge.interocular(target))
        scores.append(score)
        bar.update(1)
    if len(scores) != len(case.targets):
        raise ValueError(f"{case.path}: the method made {len(scores)} frames for {len(case.targets)} targets")
    return scores


def _generated(case: Case, frames: np.ndarray, given: Given, method: Method | None) -> Iterable[np.ndarray]:
    if method is None:
        return (frames[t.index - 1] for t in case.targets)
    return (result.frame for result in method.frames(frames[case.reference.index - 1], given.reference, given.targets,
                                                     given.teeth))


def score_frame(generated: np.ndarray, truth: np.ndarray, target: FrameAnnotation, case: Case, judge: DlibJudge,
                gallery, distance: regions.PerceptualDistance) -> tuple[FrameScore, np.ndarray | None]:
    """The frame's scores, and the judge's 68 points on it (None where it found no face)."""
    if generated.shape != truth.shape:
        raise ValueError(f"{case.path}, frame {target.index}: generated frame is {generated.shape}, the true one "
                         f"{truth.shape}")
    face_truth, face_generated = metrics.face_crop(truth, target.bbox), metrics.face_crop(generated, target.bbox)
    found = conditions.classify(case.reference, target, judge.layout)
    score = FrameScore(index=target.index, psnr=metrics.psnr(truth, generated), ssim=metrics.ssim(truth, generated),
                       psnr_face=metrics.psnr(face_truth, face_generated),
                       ssim_face=metrics.ssim(face_truth, face_generated),
                       perceptual_face=distance(face_truth, face_generated),
                       **regions.scores(truth, generated, target, judge.layout, distance,
                                        mouth_open="mouth_open" in found))
    judgement = judge.judge(generated, target)
    score.keypoint_nme = judgement.nme
    if "blink" in found:
        score.eye_opening_error = regions.eye_opening_error(judgement.points, judge.landmarks(truth, target))
    descriptors, persons, own = gallery
    reference = own[case.video.video]
    if judgement.descriptor is not None and reference is not None:
        person, _ = metrics.nearest_identity(judgement.descriptor, descriptors, persons)
        score.identity_correct = person == case.identity
        score.identity_distance = float(np.linalg.norm(judgement.descriptor - reference))
    return score, judgement.points


def _samples(case: Case, frames: np.ndarray, given: Given, methods: dict[str, Method | None], count: int
             ) -> list[Sample]:
    kept = strided(list(range(len(case.targets))), count)
    targets = [case.targets[k] for k in kept]
    sampled = given.subset(kept)
    reference = _thumbnail(frames[case.reference.index - 1])
    samples = [Sample(t.index, {"reference": reference, "truth": _thumbnail(frames[t.index - 1])}) for t in targets]
    for name, method in methods.items():
        if method is None:
            continue
        for sample, frame in zip(samples, _generated(dataclasses.replace(case, targets=targets), frames, sampled,
                                                     method)):
            sample.frames[name] = _thumbnail(frame)
    return samples


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    size = (max(1, round(width * THUMBNAIL_HEIGHT / height)), THUMBNAIL_HEIGHT)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def summarize(scores: list[FrameScore]) -> dict:
    """Means over frames of `METRICS` and `REGION_METRICS`, and the counts `frames` and `identity_frames`; a metric no
    frame could be judged on is None. `teeth_hit`: the share of the frames whose truth shows teeth (`teeth_frames`
    of them) where the output shows them too; `teeth_false`: the share of those whose truth shows none where the
    output paints some."""
    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    judged = [s for s in scores if s.identity_correct is not None]
    nme = [s.keypoint_nme for s in scores if s.keypoint_nme is not None]
    teeth = [(s.teeth_truth, s.teeth_output) for s in scores if s.teeth_truth is not None]
    return {
        "psnr": mean([s.psnr for s in scores]),
        "ssim": mean([s.ssim for s in scores]),
        "psnr_face": mean([s.psnr_face for s in scores]),
        "ssim_face": mean([s.ssim_face for s in scores]),
        "identity_accuracy": mean([float(s.identity_correct) for s in judged]),
        "identity_distance": mean([s.identity_distance for s in judged]),
        "keypoint_nme": mean(nme),
        "keypoint_accuracy": mean([float(v < metrics.NME_THRESHOLD) for v in nme]),
        "keypoint_jitter": mean([s.keypoint_jitter for s in scores]),
        "psnr_mouth": mean([s.psnr_mouth for s in scores]),
        "ssim_mouth": mean([s.ssim_mouth for s in scores]),
        "psnr_eyes": mean([s.psnr_eyes for s in scores]),
        "ssim_eyes": mean([s.ssim_eyes for s in scores]),
        "perceptual_face": mean([s.perceptual_face for s in scores]),
        "perceptual_mouth": mean([s.perceptual_mouth for s in scores]),
        "teeth_hit": mean([float(output) for truth, output in teeth if truth]),
        "teeth_false": mean([float(output) for truth, output in teeth if not truth]),
        "teeth_frames": sum(truth for truth, _ in teeth),
        "eye_opening_error": mean([s.eye_opening_error for s in scores]),
        "frames": len(scores),
        "identity_frames": len(judged),
    }

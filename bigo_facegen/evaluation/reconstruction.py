"""Reconstruction: each clip of a split drives its own first face frame through `animate`'s path, and the outputs are
scored against the clip's true frames (the same-identity protocol by which first-order-model, TPSMM and LivePortrait
report), with the evaluation's metrics, conditions and report.

    python -m experiments.evaluate_reconstruction --data=../shared/data/real_faces/dev --split=test --frame_stride=2 \\
        --model=pretrained --tracking=track --output=runs/reconstruction [--methods=copy,warp]

Per clip (`protocol.load_cases`: its first face frame the reference, every `frame_stride`-th later face frame a
target), as `animate --source=CLIP --source_frame=R --driving=CLIP` makes its frames (`drive`): the driving track is
every frame of the clip, its points found as `tracking` says (`animate.driving_track`); the source is the reference
frame, its face the track's own there (`animate.own_face`); `animate.transfer` turns the track into targets with the
motion settings (relative motion from the first driving face by default: the track itself, smoothed). Each method
makes the frames of the protocol's targets from them, unencoded, and `protocol` scores them against the true frames
and the annotation file's faces of them (face crop, dlib judge), as `experiments.evaluate` does. The true frames are
scored too (`protocol.TRUTH`): the judge's floor, and the jitter of the true faces that the outputs' shaking is read
against. The methods are the main one (`model`: a model, `copy` or `warp`) and any `compared`; the warp fills the
contact sheets' baseline column.

Written by `report.write_report`: results.json (`overall`, `tiers`, `conditions`, `videos` of the main method, the
others and the truth under `compared`), results.md, plots and sheets, checked before the work and appearing whole.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bigo_facegen import animate, annotate, methods as methods_lib, painting, video
from bigo_facegen.evaluation import protocol, report
from bigo_facegen.keypoints import IBUG68
from bigo_facegen.motion_transfer import MotionSettings

_PROTOCOL = ("reconstruction: each clip drives its own first face frame through animate's path (the driver's "
             "keypoints found on every frame of the clip by `{tracking}`, the source's face the track's own on its "
             "frame, {mode} motion, driving reference `{reference}`, smoothing `{smoothing}`), and the outputs at "
             "every later annotated frame (the targets) are scored against the true frames and their annotations.")


def drive(case: protocol.Case, frames: np.ndarray, tracking: str, motion: MotionSettings) -> protocol.Given:
    """What `animate` gives a method where the case's clip drives its reference frame: the source's face, the
    targets at the case's target frames and the driver's teeth there (the clip's own frame: the truth)."""
    info = video.probe(case.path)
    track = animate.driving_track(case.path, progress=False, tracking=tracking)
    image = frames[case.reference.index - 1]
    source = animate.own_face(track, case.reference.index, image, case.path)
    by_index = {target.index: target for target in animate.transfer(source, image, track, info, motion, case.path)}
    return protocol.Given(source, [by_index[target.index] for target in case.targets],
                          [painting.teeth_cue(frames[t.index - 1], track[t.index - 1]) for t in case.targets])


def run(model: str, data: str | os.PathLike, output_dir: str | os.PathLike, split: str = "test",
        frame_stride: int = 1, max_frames_per_video: int | None = None, tracking: str = animate.DEFAULT_TRACKING,
        motion: MotionSettings = MotionSettings(), compared: Sequence[str] = (), samples_per_video: int = 4,
        progress: bool = True) -> Path:
    """The library function behind `experiments.evaluate_reconstruction`: `model` and `compared` are names
    `methods.load` takes; writes the report to `output_dir` and returns the path of its results.json. The output
    folder, the tracking, the data and the methods are checked, in that order, before any work."""
    report.check_output_dir(output_dir)
    annotate.check_tracking(tracking)
    cases = protocol.load_cases(data, split, max_frames_per_video, frame_stride)
    if cases[0].video.num_keypoints != IBUG68.num_points:
        raise ValueError(f"{data}: reconstruction drives the clips by dlib's own 68 points, against which they are "
                         f"judged; this folder has {cases[0].video.num_keypoints} per face")
    main = methods_lib.load(model)
    name, label = ("model", f"model {model}") if main.model is not None else (model, model)
    methods = {name: main, **{other: methods_lib.load(other) for other in compared if other not in (model, name)},
               protocol.TRUTH: None}
    samples = {} if methods_lib.WARP in methods else {methods_lib.WARP: methods_lib.Warp()}
    evaluation = protocol.evaluate(
        data, methods, split=split, max_frames_per_video=max_frames_per_video, frame_stride=frame_stride,
        samples_per_video=samples_per_video, sample_methods=samples, progress=progress,
        drive=functools.partial(drive, tracking=tracking, motion=motion),
        protocol=_PROTOCOL.format(tracking=tracking, mode=motion.mode, reference=motion.reference,
                                  smoothing=motion.smoothing))
    evaluation.settings.update({"tracking": tracking, "motion": dataclasses.asdict(motion)})
    if main.model is not None:
        evaluation.settings["fusion"] = main.model.default_fusion
    return report.write_report(evaluation, output_dir, main=name, baseline=methods_lib.WARP, labels={name: label})

"""Live animation: a photo's face driven by frames given one at a time, as a camera or frames over a socket give
them, each output frame made at once; and `stream`, a driving video read that way, measured (`experiments.animate
--stream`).

    animator = LiveAnimator("pretrained", photo, fps=25.0)   # the photo's face found, the method set up on it, once
    for rgb in camera:                                        # RGB uint8 frames of one size
        result = animator(rgb)                                # FrameResult: .frame at the photo's size, .face its crop

Per driving frame, nothing of the frames to come used:
1. the driver's points: `tracking.Tracker.follow` (`track`, the default: the tracker's flow from its key frame, fit and
   fusion, each frame given out with the detections seen so far, the filter of the fusion `animate`'s track smooths
   with; the faster flow of `tracking.LIVE`) or dlib's on the frame alone (`detect`), as `annotate.TRACKINGS` name them;
2. their motion moved onto the photo's face (`motion_transfer.LiveTransfer`: the first driving face is the reference,
   the One-Euro filter one step per frame, `motion_transfer.LIVE`, where `animate` smooths with the frames to come);
   a frame without a face keeps the last motion, as in `animate`;
3. the frame: `methods.Method.frames` for this one target, so a model makes its face at batch 1 and pastes it back as
   `generation.VideoGenerator` does, what depends on the photo alone (its crop, the fusion's reference, tuning,
   colour statistics) made once, before the first frame (`methods.Method.prepare`); a mouth painter that reads the
   driver's teeth gets them from this driving frame (`painting.teeth_cue`), as in `animate`;
4. with `gaze` (`animate.DEFAULT_GAZE`), the photo's irises moved as the driver's move (`gaze.measure_frame` on the
   driving frame, `gaze.GazeFollower`, `animate.GazeRepaint`): `animate`'s gaze, which looks at no frame to come.

With dlib on every frame (`detect`) the targets are `animate`'s with the same motion settings (the driving reference
`first`, a causal smoothing), and so are the frames,
a model's up to the float rounding of another batch size; with `track` they differ by the live tracker's faster flow
and by what its fusion has seen, the reference most (frame 1's points as first seen, where `animate` has them fused
with their whole span's).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
from typing import Iterable, Iterator

import numpy as np

from bigo_facegen import (
    animate,
    annotate,
    files,
    gaze as gaze_lib,
    generation,
    iris,
    methods,
    motion_transfer,
    painting,
    tracking as tracking_lib,
    video,
)
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.face_model import GenerationError
from bigo_facegen.generation import FrameResult
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.methods import Method
from bigo_facegen.motion_transfer import MotionSettings


class LiveAnimator:
    """Animates the photo `image` (RGB uint8; its face `face`, or dlib's) by driving frames at `fps` given one at a
    time (see the module doc): `method` is a `methods.Method` or a name `methods.load` takes with `settings` and
    `compiled`; `tracking` (`annotate.TRACKINGS`) says how the driver's points are found; with `gaze` the photo's
    irises follow the driver's, in the face crops too where `face_size` is given (`source` names the photo in the
    line that says its irises cannot be used). `frames` and `lost` count the driving frames given and those without a
    face."""

    def __init__(self, method: Method | str | os.PathLike, image: np.ndarray, fps: float,
                 face: FrameAnnotation | None = None, motion: MotionSettings = motion_transfer.LIVE,
                 tracking: str = animate.DEFAULT_TRACKING, settings: GenerationSettings = GenerationSettings(),
                 compiled: bool = False, gaze: bool = animate.DEFAULT_GAZE, source: str | os.PathLike = "the photo",
                 face_size: int | None = None):
        generation.FRAME_RATE.check("fps", fps)
        motion_transfer.check_live(motion)
        annotate.check_tracking(tracking)
        self.method = method if isinstance(method, Method) else methods.load(method, settings, compiled)
        self.image = image
        self.face = face if face is not None else animate.find_face(image, "<source image>")
        self.method.prepare(image, self.face)
        self.fps, self.motion = fps, motion
        self._tracker = tracking_lib.Tracker(settings=tracking_lib.LIVE) if tracking == annotate.TRACK else None
        self._transfer: motion_transfer.LiveTransfer | None = None  # made at the first frame, which gives its size
        self._shape: tuple[int, ...] | None = None
        self.frames = 0
        self.lost = 0
        self._gaze = self._gaze_of(source, face_size) if gaze else None

    def _gaze_of(self, source: str | os.PathLike, face_size: int | None
                 ) -> tuple[iris.IrisFinder, gaze_lib.GazeFollower, animate.GazeRepaint] | None:
        finder = iris.IrisFinder()
        irises = animate.source_irises(finder, self.image, self.face, source)
        if irises is None:
            return None
        return finder, gaze_lib.GazeFollower(irises, self.fps), animate.GazeRepaint(irises, face_size)

    @property
    def follows_gaze(self) -> bool:
        """Whether the photo's irises follow the driver's (asked for, and the photo has an iris to move)."""
        return self._gaze is not None

    def __call__(self, rgb: np.ndarray) -> FrameResult:
        """The output frame (of the photo's size) and its face crop for the next driving frame (RGB uint8, of the
        first one's size)."""
        self._shape = tracking_lib.check_frame(rgb, self.frames + 1, self._shape)
        self.frames += 1
        found = self._points(rgb)
        self.lost += not found.has_face
        if self._transfer is None:
            self._transfer = motion_transfer.LiveTransfer(self.face, (self.image.shape[1], self.image.shape[0]),
                                                          (rgb.shape[1], rgb.shape[0]), self.fps, self.motion)
        target = self._transfer(found)
        teeth = [painting.teeth_cue(rgb, found)] if self.method.reads_teeth else None
        # The method is given the same photo and face objects every time: a model's maker for them is reused.
        result = next(self.method.frames(self.image, self.face, [target], teeth))
        if self._gaze is None:
            return result
        finder, follower, repaint = self._gaze
        return repaint(result, target, follower(gaze_lib.measure_frame(finder, rgb, found)))

    def _points(self, rgb: np.ndarray) -> FrameAnnotation:
        if self._tracker is None:
            return annotate.annotate_frame(rgb, self.frames)
        return self._tracker.follow(rgb)


@dataclasses.dataclass
class StreamStats:
    """What `stream` made and how fast: output frames, the driving frames without a face (they kept the last motion),
    each frame's latency (seconds from its driving frame read to its output frame written), the seconds from the
    first output frame written to the last, the source's (width, height) where it was scaled down and whether its
    irises followed the driver's gaze (as `animate.AnimateStats`). The first frame is the warm-up (a model's first
    call builds its graph): the rates leave it out."""
    frames: int
    lost: int
    latencies: list[float]
    seconds: float
    scaled_from: tuple[int, int] | None = None
    gaze: bool = False

    @property
    def frames_per_s(self) -> float | None:
        """Output frames after the first per second, end to end (reading, animating, writing); None for one frame."""
        return (self.frames - 1) / self.seconds if self.frames > 1 and self.seconds > 0 else None

    def latency(self, percentile: float) -> float | None:
        """The `percentile` (0 to 100) of the latencies after the first frame's, in seconds; None for one frame."""
        return float(np.percentile(self.latencies[1:], percentile)) if self.frames > 1 else None


def stream(method: Method | str | os.PathLike, source: str | os.PathLike, driving: str | os.PathLike,
           output: str | os.PathLike, face_output: str | os.PathLike | None = None, source_frame: int | None = None,
           motion: MotionSettings = motion_transfer.LIVE, max_frames: int | None = None,
           max_side: int = animate.DEFAULT_MAX_SIDE, progress: bool = True, compiled: bool = False,
           settings: GenerationSettings = GenerationSettings(), tracking: str = animate.DEFAULT_TRACKING,
           gaze: bool = animate.DEFAULT_GAZE) -> StreamStats:
    """Writes `output` (and `face_output`) as `animate.animate` does, from the frames of the video `driving` read one
    at a time and each animated as it comes (`LiveAnimator`), and measures the rate and each frame's latency. The
    arguments are `animate.animate`'s, less those a live source cannot have (the driving reference `best`, driving
    annotations from a file); the checks come in the same order, before any frame is made."""
    generation.check_max_frames(max_frames)
    files.check_output_files({"output": output, "face_output": face_output}, video.SUFFIXES,
                             {"source": source, "driving": driving})
    animate.check_max_side(max_side)
    motion_transfer.check_live(motion)
    annotate.check_tracking(tracking)
    if not isinstance(method, Method):
        method = methods.load(method, settings, compiled)
    image, size = animate.read_source(source, source_frame, max_side)
    info = video.probe(driving)
    animator = LiveAnimator(method, image, info.playback_fps, animate.find_face(image, source), motion, tracking,
                            gaze=gaze, source=source, face_size=method.face_size if face_output else None)
    clock: list[tuple[float, float]] = []
    count = info.frame_count if max_frames is None else min(max_frames, info.frame_count)
    try:
        generation.write_video(_timed(animator, itertools.islice(video.read_frames(driving), max_frames), clock),
                               count, output, info.playback_fps, (image.shape[1], image.shape[0]), face_output,
                               method.face_size, progress)
    except motion_transfer.MotionError as e:
        raise GenerationError(f"{driving}: {e}") from e
    scaled = size != (image.shape[1], image.shape[0])
    return StreamStats(frames=len(clock), lost=animator.lost, latencies=[end - start for start, end in clock],
                       seconds=clock[-1][1] - clock[0][1], scaled_from=size if scaled else None,
                       gaze=animator.follows_gaze)


def _timed(animator: LiveAnimator, frames: Iterable[np.ndarray], clock: list[tuple[float, float]]
           ) -> Iterator[FrameResult]:
    """`animator`'s frames for `frames`, each one's (read, written) times added to `clock`: the writer asks for the
    next frame once it has written this one."""
    for rgb in frames:
        start = time.perf_counter()
        yield animator(rgb)
        clock.append((start, time.perf_counter()))

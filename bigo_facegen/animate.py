"""Animate any face: a photo (or one frame of a video) of one person driven by a video of anyone, the library
function behind `experiments.animate`.

    animate("exports/face", "photo.jpg", "driver.mp4", "out.mp4")          # or method="warp"

1. The source image (`read_source`): an image file, or frame `source_frame` of a video, scaled down to `max_side`
   pixels on its longer side where it is larger (`AnimateStats.scaled_from` says so); dlib finds its face and 68
   points (`annotate.annotate_frame`, the convention of the shared footage).
2. The driving track (`driving_track`): dlib on every driving frame, or the driving video's entry in a BIGO-layout
   annotation file (`driving_annotations`, of dlib's `ibug68` layout like the source's points).
3. `motion_transfer.transfer` turns the track into target annotations in the source image's pixels (relative or
   absolute motion, the driving reference, smoothing, lost faces keeping the last motion).
4. The frames: a `methods.Method` makes them from the source image and its face, a model (an export or a training
   model_dir) through `generation.VideoGenerator`, or `warp`, the source image warped piecewise-affinely onto each
   target's keypoints. One output frame per driving frame, at the source's resolution and the driver's frame rate;
   `face_output` gets the method's face crops alone.

The output paths are checked first (none may be an input, by whatever path), then the method and the source are read,
then the driving video is probed: a bad input fails before the long part; the videos appear only when complete
(`video.VideoWriter`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bigo_facegen import annotate, annotations, files, generation, methods, motion_transfer, video
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.face_model import GenerationError
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.methods import Method
from bigo_facegen.motion_transfer import MotionSettings

# The longest side of a source image used as it is; a larger one is scaled down to it. Full HD's long side: a model
# paints faces of its crop size (256 px for the shipped one) whatever the photo's, and everything else a frame costs
# (fusion, dlib, encoding) grows with its pixels (an 8000 x 8000 photo took 94 s).
DEFAULT_MAX_SIDE = 1920


@dataclasses.dataclass
class AnimateStats:
    """What `animate` made: output frames, the driving frames where no face was found (they kept the last motion),
    and the source image's (width, height) where it was scaled down to `max_side` (None where it was used as it
    is)."""
    frames: int
    lost: int
    scaled_from: tuple[int, int] | None = None


def animate(method: Method | str | os.PathLike, source: str | os.PathLike, driving: str | os.PathLike,
            output: str | os.PathLike, face_output: str | os.PathLike | None = None, source_frame: int | None = None,
            driving_annotations: str | os.PathLike | None = None, motion: MotionSettings = MotionSettings(),
            max_frames: int | None = None, max_side: int = DEFAULT_MAX_SIDE, progress: bool = True,
            compiled: bool = False, settings: GenerationSettings = GenerationSettings()) -> AnimateStats:
    """Writes `output` (and `face_output`): the face of `source` driven by the video `driving` (see the module
    doc). `method` is a `methods.Method` or a name `methods.load` takes (`copy`, `warp`, the path of an export or a
    training model_dir, `pretrained`), loaded to make faces with `settings` and, with `compiled`, to run under XLA;
    `max_frames` keeps the first driving frames only; a source larger than `max_side` pixels on a side is scaled down
    to it."""
    generation.check_max_frames(max_frames)
    files.check_output_files({"output": output, "face_output": face_output}, video.SUFFIXES,
                             {"source": source, "driving": driving, "driving_annotations": driving_annotations})
    if max_side < 1:
        raise GenerationError(f"max_side {max_side}: a source image needs at least 1 pixel on a side")
    if not isinstance(method, Method):
        method = methods.load(method, settings, compiled)
    image, size = read_source(source, source_frame, max_side)
    source_face = annotate.annotate_frame(image, 1)
    if not source_face.has_face:
        raise GenerationError(f"{source}: dlib finds no face in the source image")
    info = video.probe(driving)
    track = driving_track(driving, driving_annotations, max_frames, progress)
    fps = info.fps if info.fps > 0 else video.DEFAULT_FPS
    try:
        targets = motion_transfer.transfer(source_face, (image.shape[1], image.shape[0]), track,
                                           (info.width, info.height), fps, motion)
    except motion_transfer.MotionError as e:
        raise GenerationError(f"{driving}: {e}") from e
    generation.write_video(method.frames(image, source_face, targets), len(targets), output, fps,
                           (image.shape[1], image.shape[0]), face_output, method.face_size, progress)
    return AnimateStats(frames=len(targets), lost=sum(not frame.has_face for frame in track),
                        scaled_from=size if size != (image.shape[1], image.shape[0]) else None)


def read_source(path: str | os.PathLike, frame: int | None = None,
                max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """The source image, RGB uint8, scaled down to `max_side` pixels on its longer side where it is longer (a JPEG
    decoded at a reduced size: `video.read_image`), and its (width, height) before: an image file, or frame `frame`
    (1-based) of a video."""
    path = Path(path)
    if frame is not None:
        if frame < 1:
            raise GenerationError(f"{path}: source frame {frame}: frames are numbered from 1")
        read = video.read_frame(path, frame)
        return video.scale_down(read, max_side), (read.shape[1], read.shape[0])
    if path.suffix.lower() in annotate.VIDEO_SUFFIXES:
        raise GenerationError(f"{path}: is a video; say which of its frames is the source (--source_frame=N)")
    return video.read_image(path, max_side), video.image_size(path)


def driving_track(driving: str | os.PathLike, annotations_path: str | os.PathLike | None = None,
                  max_frames: int | None = None, progress: bool = True) -> list[FrameAnnotation]:
    """One annotation per frame of the video `driving` (or of its first `max_frames`), a frame without a face where
    none was found: dlib on every frame, or the video's entry (by file name) in the annotation file
    `annotations_path`."""
    driving = Path(driving)
    info = video.probe(driving)
    count = info.frame_count if max_frames is None else min(max_frames, info.frame_count)
    if annotations_path is None:
        with tqdm(total=count, unit="frame", desc=f"{driving.name}: faces", disable=not progress) as bar:
            track = []
            for index, rgb in enumerate(video.read_frames(driving), start=1):
                track.append(annotate.annotate_frame(rgb, index))
                bar.update(1)
                if index == count:
                    break
        return track
    entry = annotations.find_video(generation.read_annotations(annotations_path), driving.name, str(annotations_path))
    annotations.check_against_video(entry, info.frame_count, source=str(annotations_path))
    annotations.check_on_frame(entry, info.width, info.height, source=str(annotations_path))
    by_index = {frame.index: frame for frame in entry.frames}
    return [by_index.get(index, FrameAnnotation(index=index)) for index in range(1, count + 1)]

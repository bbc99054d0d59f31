"""The frame pipeline: a face video from one reference frame and a keypoint sequence, through a `FaceModel`
(`face_model`), the Python API behind `experiments.generate`, usable frame by frame from a notebook.

    model = FaceModel.load("exports/face")                # an export (base or version folder) or a training model_dir
    maker = VideoGenerator(model, reference_frame, reference_annotation)  # fusion: the model's default
    # or, from a training model_dir, fine-tuned on the reference first: ..., GenerationSettings(tune_steps=50)
    frame, face = maker.generate_frame(target_annotation)  # one output frame and its face crop
    maker.generate_video(target_annotations, "out.mp4", fps=25.0, face_output="face.mp4")

Each output frame, as the original solution made it (its settings: `generation_settings.GenerationSettings`):
1. crop the target face box (`geometry.crop_matrix`) and move the target keypoints into that crop;
2. copy the reference face where the target keypoints lie within `copy_threshold` of the reference's (mean distance
   over the points present in both, as a fraction of the crop side: a face that barely moved is best left untouched,
   so the moved reference frame is used as it is, face included, at full resolution);
3. otherwise generate the face (batched, through the same serving graph as the export);
4. Reinhard colour transfer from the reference crop onto the generated face (`color`);
5. background fusion (`fusion`): the reference frame shifted onto the target box (`shift`), only the person moved
   over an inpainted background (`segment`), or the whole frame warped by the keypoints, fixed at the frame border
   (`warp`); the face pasted with a feathered edge. The face of a model that repaints goes into the warped frame only
   where its repaint mask says it painted: elsewhere the frame already shows the reference moved at full resolution;
6. the model's painters, if it ships any and `paint` is on (`painting`): the interior of a mouth that opens beyond the
   reference's, and eyes that close or open, repainted in the frame (the face crop stays the generator's).
Frames without a face repeat the last output (the reference frame itself before the first face).
With `tune_steps` > 0 (a training model_dir only: an export cannot be trained), the generator is first fine-tuned on
the reference alone (`tuning`); the loaded model keeps its own weights for other references.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from absl import logging
from tqdm import tqdm

from bigo_facegen import annotations, color, export, files, geometry, tuning, video
from bigo_facegen.annotations import FrameAnnotation, VideoAnnotation
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.fusion import make_fusion
from bigo_facegen.generation_settings import GenerationSettings, Rule

# What an output's frame rate may be (`--fps`, a job line's `fps`): what the video writer writes.
FRAME_RATE = Rule(f"a frame rate above 0 and at most {video.MAX_FPS}", video.is_frame_rate)


@dataclasses.dataclass
class Reference:
    """The reference frame and its face: the crop the generator starts from and its keypoints in crop pixels."""
    frame: np.ndarray
    annotation: FrameAnnotation
    crop: np.ndarray
    points: np.ndarray
    flags: np.ndarray

    @classmethod
    def from_frame(cls, frame: np.ndarray, annotation: FrameAnnotation, image_size: int) -> "Reference":
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise GenerationError(f"reference frame must be an RGB uint8 image (H, W, 3), got {frame.dtype} "
                                  f"{frame.shape}")
        if not annotation.has_face:
            raise GenerationError(f"reference frame {annotation.index} has no face annotation")
        _check_box_on_frame(annotation, frame.shape)
        crop, matrix = geometry.crop(frame, annotation.bbox, image_size)
        return cls(frame, annotation, crop, geometry.apply_affine(annotation.points, matrix).astype(np.float32),
                   annotation.flags)


def _check_box_on_frame(annotation: FrameAnnotation, shape) -> None:
    x, y, w, h = annotation.bbox
    height, width = shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise GenerationError(f"reference frame {annotation.index}: face box {list(np.round(annotation.bbox, 2))} "
                              f"lies outside the {width}x{height} image (annotations of another frame size?)")


@dataclasses.dataclass
class FrameResult:
    """One output frame: the full frame, its face crop, and how the face was made (generated | copied | repeated, and
    warped by `methods.Warp`)."""
    index: int
    frame: np.ndarray
    face: np.ndarray
    kind: str


@dataclasses.dataclass
class VideoStats:
    frames: int = 0
    generated: int = 0
    copied: int = 0
    repeated: int = 0
    tune_seconds: float = 0.0


class VideoGenerator:
    """Makes output frames for one reference frame: `generate_frame` for one target, `generate_frames` (batched)
    for a sequence, `generate_video` to write the mp4(s)."""

    def __init__(self, model: FaceModel, reference_frame: np.ndarray, reference_annotation: FrameAnnotation,
                 settings: GenerationSettings = GenerationSettings()):
        self.model = model
        self.settings = settings
        _check_point_count(reference_annotation, model, "reference")
        self.reference = Reference.from_frame(reference_frame, reference_annotation, model.image_size)
        self._reference_colour = color.lab_stats(self.reference.crop)   # what every face's colour is matched to
        self.fusion = make_fusion(settings.fusion or model.default_fusion, self.reference.frame,
                                  reference_annotation.bbox, settings.border, settings.feather, settings.fill,
                                  reference_annotation.points, reference_annotation.flags)
        self._painters = [functools.partial(painter.paint, reference=painter.reference(self.reference.frame,
                                                                                      reference_annotation))
                          for painter in (model.painters if settings.paint else ())]
        # Tuned once here, like the segment fusion's matte: every frame of the sequence uses the same weights.
        self.tuned: tuning.TuneResult | None = None
        if settings.tune_steps:
            tune = tuning.TuneSettings(settings.tune_steps, settings.tune_lr,
                                       batch_size=model.config.data.batch_per_replica)
            self.tuned = model.tuner.tune(self.reference.crop, self.reference.points, self.reference.flags, tune)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the output frames: the reference frame's."""
        return self.reference.frame.shape[1], self.reference.frame.shape[0]

    def keypoint_distance(self, target_points: np.ndarray, target_flags: np.ndarray) -> float:
        """Mean distance between target and reference points (both in their own crop's pixels) over the points present
        in both, as a fraction of the crop side; infinite when no point is present in both."""
        present = (np.asarray(target_flags) > 0) & (self.reference.flags > 0)
        if not present.any():
            return float("inf")
        gaps = np.linalg.norm(np.asarray(target_points)[present] - self.reference.points[present], axis=-1)
        return float(gaps.mean() / self.model.image_size)

    def generate_frame(self, target: FrameAnnotation) -> tuple[np.ndarray, np.ndarray]:
        """(full frame, face crop) for one target annotation with a face."""
        if not target.has_face:
            raise GenerationError(f"frame {target.index} has no face annotation: nothing to generate")
        result = next(self.generate_frames([target]))
        return result.frame, result.face

    def generate_frames(self, targets: Iterable[FrameAnnotation], teeth: Iterable[float | None] | None = None
                        ) -> Iterator[FrameResult]:
        """Output frames for a sequence of target annotations, generated `settings.batch_size` faces at a time;
        `teeth`, one per target, is the driver's `painting.teeth_cue` for a mouth painter that reads it (None: no
        driving frame is seen)."""
        last_frame, last_face = self.reference.frame, self.reference.crop
        cued = ((target, None) for target in targets) if teeth is None else zip(targets, teeth, strict=True)
        for chunk in _chunks(cued, self.settings.batch_size):
            faces = iter(self._faces([t for t, _ in chunk if t.has_face]))
            for target, cue in chunk:
                if not target.has_face:
                    yield FrameResult(target.index, last_frame, last_face, "repeated")
                    continue
                face, kind, repaint, flow = next(faces)
                # A copied face is already in the moved reference frame, at full resolution: paste nothing over it.
                last_frame = (self.fusion.background(target.bbox, target.points, target.flags) if kind == "copied"
                              else self.fusion(face, target.bbox, target.points, target.flags, repaint, flow))
                for paint in self._painters:
                    last_frame = paint(last_frame, target, teeth=cue)
                last_face = face
                yield FrameResult(target.index, last_frame, last_face, kind)

    def generate_video(self, targets: Iterable[FrameAnnotation], output: str | os.PathLike, fps: float,
                       face_output: str | os.PathLike | None = None, progress: bool = True) -> VideoStats:
        """Writes one frame per target (of the reference frame's size) to `output`, and the face crops to
        `face_output` if given, at `fps`. Files appear only when complete."""
        files.check_output_files({"output": output, "face_output": face_output}, video.SUFFIXES)
        targets = list(targets)
        if not targets:
            raise GenerationError(f"{output}: the keypoint sequence is empty: nothing to generate")
        kinds = write_video(self.generate_frames(targets), len(targets), output, fps, self.frame_size, face_output,
                            self.model.image_size, progress)
        return VideoStats(frames=sum(kinds.values()), tune_seconds=self.tuned.seconds if self.tuned else 0.0, **kinds)

    def _faces(self, targets: list[FrameAnnotation]
               ) -> list[tuple[np.ndarray, str, np.ndarray | None, np.ndarray | None]]:
        """(face crop, kind, repaint mask, flow) per target: the reference face where the keypoints barely moved, else
        a generated one; the repaint mask (S, S) and the backward flow (S, S, 2), from models whose capabilities say
        so, say where the crop was painted and which reference crop pixel each crop pixel shows."""
        if not targets:
            return []
        size = self.model.image_size
        for target in targets:
            _check_point_count(target, self.model, "target")
        points = np.stack([geometry.apply_affine(t.points, geometry.crop_matrix(t.bbox, size)) for t in targets])
        flags = np.stack([t.flags for t in targets])
        copy = [self.keypoint_distance(p, f) < self.settings.copy_threshold for p, f in zip(points, flags)]
        faces: list[tuple[np.ndarray, str, np.ndarray | None, np.ndarray | None]] = [
            (self.reference.crop, "copied", None, None)]
        faces *= len(targets)
        todo = [i for i, c in enumerate(copy) if not c]
        if todo:
            batch = len(todo)
            with (tuning.weights_swapped(self.model.generator, self.tuned.weights) if self.tuned
                  else contextlib.nullcontext()):
                outputs = self.model.run(self.reference.crop[None], points[todo], flags[todo],
                                         self.reference.points[None], self.reference.flags[None])
            capabilities = self.model.spec.capabilities
            repaints = outputs[export.REPAINT_OUTPUT][..., 0] if capabilities.repaint else [None] * batch
            flows = outputs[export.FLOW_OUTPUT] if capabilities.flow else [None] * batch
            for i, face, repaint, flow in zip(todo, outputs[export.OUTPUT], repaints, flows):
                if self.settings.color_transfer:
                    face = color.match_stats(face, *self._reference_colour)
                faces[i] = (face, "generated", repaint, flow)
        return faces


def _check_point_count(annotation: FrameAnnotation, model: FaceModel, what: str) -> None:
    if annotation.has_face and len(annotation.points) != model.num_points:
        raise GenerationError(
            f"{what} frame {annotation.index} has {len(annotation.points)} keypoints, but the model at {model.source} "
            f"was trained on the {model.spec.layout} layout ({model.num_points} points)")


def write_video(results: Iterable[FrameResult], count: int, output: str | os.PathLike, fps: float,
                frame_size: tuple[int, int], face_output: str | os.PathLike | None = None, face_size: int = 0,
                progress: bool = True) -> collections.Counter[str]:
    """Writes the frames of `results` ((width, height) `frame_size`) to `output`, and their face crops (`face_size`
    on a side) to `face_output` if given, at `fps`, with a progress bar of `count` frames; returns how many frames
    of each kind it wrote. Files appear only when complete."""
    kinds: collections.Counter[str] = collections.Counter()
    with contextlib.ExitStack() as stack:
        # The bar before the writers: a SIGTERM that lands once their temporary files exist (`files`) must not find
        # it half-built, whose finaliser would then print a traceback on the way out.
        bar = stack.enter_context(tqdm(total=count, unit="frame", disable=not progress, desc=Path(output).name))
        writer = stack.enter_context(video.VideoWriter(output, fps, frame_size))
        face_writer = (stack.enter_context(video.VideoWriter(face_output, fps, (face_size, face_size)))
                       if face_output else None)
        for result in results:
            writer.write(result.frame)
            if face_writer is not None:
                face_writer.write(result.face)
            kinds[result.kind] += 1
            bar.update()
    return kinds


# itertools.batched would do, but it is Python 3.12+ and setup.py allows 3.10.
def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def frame_sequence(entry: VideoAnnotation) -> list[FrameAnnotation]:
    """Every frame from 1 to the last annotated index; a gap in the annotations becomes a frame without a face, so
    the output keeps the source's timing."""
    by_index = {frame.index: frame for frame in entry.frames}
    last = max(by_index, default=0)
    return [by_index.get(i, FrameAnnotation(index=i)) for i in range(1, last + 1)]


def generate_from_annotations(model: FaceModel | str | os.PathLike, annotations_path: str | os.PathLike,
                              video_name: str, output: str | os.PathLike,
                              reference_image: str | os.PathLike | None = None,
                              reference_index: int | None = None, videos_dir: str | os.PathLike | None = None,
                              face_output: str | os.PathLike | None = None, fps: float | None = None,
                              max_frames: int | None = None, progress: bool = True, compiled: bool = False,
                              settings: GenerationSettings = GenerationSettings()) -> VideoStats:
    """The whole job of `experiments.generate`: the keypoint sequence of `video_name` in a BIGO annotation file,
    applied to a reference frame, written to `output`.

    The reference is `reference_image` (a frame of the video's size) or, without it, a frame of the video itself; its
    face box and keypoints are those of annotated frame `reference_index` (default: the first frame with a face).
    The video file (`annotations.video_file`) gives the frame rate; without it, `fps` or 25. `max_frames` keeps the
    first frames only. `compiled`: load `model` to run under XLA (`FaceModel`). `settings`: how `VideoGenerator`
    makes and places the faces. The annotations are read and the output paths checked (`files.check_output_files`,
    against the inputs too) before the model is loaded or anything generated."""
    check_max_frames(max_frames)
    if fps is not None:
        FRAME_RATE.check("fps", fps)
    annotations_path = Path(annotations_path)
    entry, video_path = job_video(read_annotations(annotations_path), annotations_path, video_name, output,
                                  face_output, reference_image, videos_dir)
    if not isinstance(model, FaceModel):
        model = FaceModel.load(model, compiled=compiled)
    if settings.tune_steps:
        model.check_tunable()
    where = f"{annotations_path}: video {entry.video!r}"
    frames = frame_sequence(entry)[:max_frames]
    faces = [f for f in frames if f.has_face]
    if not faces:
        kept = f" in its first {len(frames)} frames" if max_frames is not None and frames else ""
        raise GenerationError(f"{where}: no frame with a face{kept}: the keypoint sequence is empty")
    if entry.num_keypoints != model.num_points:
        raise GenerationError(f"{where} has {entry.num_keypoints} keypoints per face, but the model at {model.source} "
                              f"was trained on the {model.spec.layout} layout ({model.num_points} points)")
    reference = _reference_annotation(entry, reference_index, where)

    info = video.probe(video_path) if video_path.exists() else None
    if reference_image is not None:
        frame = video.read_image(reference_image)
        if info is not None and (frame.shape[1], frame.shape[0]) != (info.width, info.height):
            raise GenerationError(f"{reference_image}: reference image is {frame.shape[1]}x{frame.shape[0]}, but "
                                  f"{video_path} and its annotations are {info.width}x{info.height}")
    elif info is None:
        raise GenerationError(f"{video_path}: no such video; give --reference=IMAGE (a frame of the video) or "
                              f"--videos_dir=DIR (the folder holding {Path(entry.video_path).name})")
    else:
        frame = video.read_frame(video_path, reference.index)
    annotations.check_on_frame(entry, frame.shape[1], frame.shape[0], source=str(annotations_path))
    if fps is None:
        fps = info.playback_fps if info is not None else video.DEFAULT_FPS
        if info is None:
            logging.info("no video at %s: writing at %.1f fps", video_path, fps)

    maker = VideoGenerator(model, frame, reference, settings)
    return maker.generate_video(frames, output, fps, face_output=face_output, progress=progress)


def check_max_frames(max_frames: int | None) -> None:
    """Raises `GenerationError` unless `max_frames` (the first frames to keep) is None (all) or at least 1."""
    if max_frames is not None and max_frames < 1:
        raise GenerationError(f"max_frames must be at least 1 (or absent: every frame), got {max_frames}")


def read_annotations(path: str | os.PathLike) -> list[VideoAnnotation]:
    """The videos of a BIGO annotation file (`annotations.load`); `GenerationError` where there is no such file."""
    if Path(path).is_dir():
        raise GenerationError(f"{path}: is a folder, not an annotation file (the BIGO layout's annotations.json)")
    if not Path(path).is_file():
        raise GenerationError(f"{path}: no such annotation file")
    return annotations.load(path)


def job_video(videos: list[VideoAnnotation], annotations_path: str | os.PathLike, video_name: str,
              output: str | os.PathLike, face_output: str | os.PathLike | None = None,
              reference_image: str | os.PathLike | None = None, videos_dir: str | os.PathLike | None = None
              ) -> tuple[VideoAnnotation, Path]:
    """The annotations (of `videos`, read from `annotations_path`) and the file (`annotations.video_file`) of the video
    that a `generate_from_annotations` job generates from, once its outputs are checked (`files.check_output_files`)
    against every file it reads."""
    entry = annotations.find_video(videos, video_name, str(annotations_path))
    video_path = annotations.video_file(entry, annotations_path, videos_dir)
    files.check_output_files({"output": output, "face_output": face_output}, video.SUFFIXES,
                             {"annotations": annotations_path, "video": video_path, "reference": reference_image})
    return entry, video_path


def _reference_annotation(entry: VideoAnnotation, index: int | None, where: str) -> FrameAnnotation:
    faces = entry.face_frames()
    if index is None:
        return faces[0]
    for frame in faces:
        if frame.index == index:
            return frame
    raise GenerationError(f"{where}: frame {index} has no face annotation to use as the reference")

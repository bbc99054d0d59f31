"""Batch generation on Apache Beam: many `experiments.generate` jobs, one per line of a JSONL file, as one pipeline.

A job line is a JSON object with what `experiments.generate` takes: `model` (an export, a training model_dir, or
"pretrained", the model shipped in the package), `annotations` (a BIGO annotation file), `video` (the video in it
whose keypoints drive the face) and `output` (the mp4), and optionally `reference`, `reference_index`, `videos_dir`,
`face_output`, `fps`, `max_frames`, `fusion`, `border`, `fill`, `copy_threshold`, `color_transfer`, `feather` and
`batch`, meaning what the flags of those names mean there. For example:

    {"model": "exports/face", "annotations": "data/annotations.json", "video": "12008", "output": "out/12008.mp4"}

- Where paths lead: relative paths in a line are the jobs file's folder's, so a jobs file means the same from any
  current folder, and a relative `output` or `face_output` must stay inside that folder, compared by real paths
  (links followed): `a/../../b.mp4`, or `linked/b.mp4` where `linked` links out of it, is refused; an absolute path
  goes where it says. The summary names the folder.
- Every line is checked before the pipeline starts (`read_jobs`): valid JSON, the keys known and of the right type,
  the files it reads present and its video in its annotations, its output paths writable, none of them one of its
  inputs, another job's input or another job's output by whatever path (`files.check_distinct`), and each model
  loads. A bad line fails alone, with the reason.
- A job whose outputs exist whole (`video.is_whole`) is skipped; one that exists but is not whole (empty, cut short)
  is made again. Outputs appear whole or not at all, the output after its face video
  (`generation.VideoGenerator.generate_video`), so a pipeline that failed or was stopped is run again as it is and
  does only what is left: whole files are what this writer renames into place, and checking their boxes reads a few
  headers where decoding every frame of every finished output would cost a re-run minutes.
- Each model's jobs go through Beam's RunInference with `FaceModelHandler`, one job per batch, so each worker loads
  a model once for all its jobs. A job that fails (a corrupt file, keypoints of another layout) is listed with its
  reason and the others go on.
- The failure list (JSONL, one `{"line", "output", "reason"}` per failed job) is written whole at the end of every
  run, empty when nothing failed, in place of the last run's; a failure list that is the jobs file or a file of a
  job, by whatever path, is refused before anything runs.
- The runner is Beam's in-process one unless another is named, the options are checked first, and local worker
  processes end with the process that runs the pipeline (`beam_pipelines`).

Workers read and write the jobs' paths as they are, so on a cluster those paths must be the same on every worker.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import apache_beam as beam
from absl import logging
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineRunner

from bigo_facegen import beam_pipelines, distribution, files, generation, pretrained, video
from bigo_facegen.annotations import VideoAnnotation
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.generation_settings import COUNT, INTEGER, TEXT, GenerationSettings

REQUIRED_KEYS = ("model", "annotations", "video", "output")
# A job's own optional key -> what it takes and the keyword of `generation.generate_from_annotations` it fills.
JOB_KEYS = {
    "reference": (TEXT, "reference_image"),
    "reference_index": (INTEGER, "reference_index"),
    "videos_dir": (TEXT, "videos_dir"),
    "face_output": (TEXT, "face_output"),
    "fps": (generation.FRAME_RATE, "fps"),
    "max_frames": (COUNT, "max_frames"),
}
# The generation settings a job may give, by their flags' names and checked by the settings themselves: those of
# `experiments.generate` but one-shot tuning, which batch jobs do not offer.
SETTING_KEYS = tuple(key for key in GenerationSettings.keys() if key not in ("tune_steps", "tune_lr"))
OPTIONAL_KEYS = (*JOB_KEYS, *SETTING_KEYS)
_RULES = {**{key: TEXT for key in REQUIRED_KEYS}, **{key: rule for key, (rule, _) in JOB_KEYS.items()}}
_PATH_KEYS = ("model", "annotations", "output", "reference", "videos_dir", "face_output")
_OUTPUT_KEYS = ("output", "face_output")
# The paths a job reads: they must exist before it runs.
_READ_PATHS = ("model", "annotations", "reference", "videos_dir")


@dataclasses.dataclass(frozen=True)
class Job:
    """One line of a jobs file, checked, its paths absolute (`model` may be `pretrained.NAME`). `options` are
    keywords of `generation.generate_from_annotations`, `settings` the generation settings; `reads` the files it reads
    by what they are (annotations, video, reference), once its video is found in its annotations."""
    line: int
    model: str
    annotations: str
    video: str
    output: str
    options: dict[str, Any]
    settings: GenerationSettings
    reads: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, str]:
        """The files it writes, by key."""
        return {key: path for key, path in (("output", self.output), ("face_output", self.options.get("face_output")))
                if path is not None}

    def done(self) -> bool:
        """Whether its outputs exist whole (`video.is_whole`), as a finished run leaves them."""
        return all(video.is_whole(path) for path in self.outputs.values())

    def run(self, model: FaceModel) -> None:
        generation.generate_from_annotations(model, self.annotations, self.video, self.output, progress=False,
                                             settings=self.settings, **self.options)


@dataclasses.dataclass(frozen=True)
class Failure:
    """A job that failed: its line in the jobs file, its output (None where the line has none) and why."""
    line: int
    output: str | None
    reason: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a run did: of `jobs` (the non-blank lines), `generated` written, `skipped` found whole, and the
    `failures` of its failure list (`failure_list`); relative paths were `root`'s (the jobs file's folder)."""
    root: Path
    jobs: int
    generated: int
    skipped: int
    failures: list[Failure]
    failure_list: Path


class FaceModelHandler(ModelHandler[Job, "Failure | None", FaceModel]):
    """RunInference's handle on one model, whose "inference" on a job is the job's video: `FaceModel` loads an export
    with its sidecar and calls its signature by input name. Beam's TensorFlow handlers cannot: they load with
    `tf.keras.models.load_model`, which Keras 3 refuses for a SavedModel folder (and they need tensorflow_hub), and
    call the model with one stacked tensor. Its result for a job is None, or the job's `Failure`."""

    def __init__(self, model_path: str):
        super().__init__(max_batch_size=1)  # a batch is a job: a job's frames are batched inside it
        self._model_path = model_path

    def load_model(self) -> FaceModel:
        beam_pipelines.end_with_runner()  # a local worker process does not outlive the run
        distribution.configure_cpu_threads()  # a worker process of its own only generates
        return FaceModel.load(self._model_path)

    def run_inference(self, batch: Sequence[Job], model: FaceModel,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        return [PredictionResult(job, _run(job, model), self._model_path) for job in batch]


def _run(job: Job, model: FaceModel) -> Failure | None:
    try:
        job.run(model)
    except Exception as e:  # noqa: BLE001  one bad job must not stop the others: any error is its failure
        return Failure(job.line, job.output, _reason(e))
    return None


def _reason(error: Exception) -> str:
    # The library's errors about bad input (ValueError and OSError kinds) name the file and the problem already.
    return str(error) if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: {error}"


def default_failure_list(jobs_path: str | os.PathLike) -> Path:
    """`JOBS.failures.jsonl` beside `JOBS.jsonl`."""
    jobs_path = Path(jobs_path)
    return jobs_path.with_name(f"{jobs_path.stem}.failures.jsonl")


def read_jobs(jobs_path: str | os.PathLike) -> tuple[list[Job], list[Failure]]:
    """The jobs of a JSONL jobs file that pass every check of the module doc, and a `Failure` for each line that
    does not. Blank lines are skipped. Raises `GenerationError` when the file cannot be read."""
    jobs_path = Path(jobs_path)
    try:
        lines = jobs_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GenerationError(f"{jobs_path}: cannot read the jobs file: {e}") from e
    root = jobs_root(jobs_path)
    jobs, failures = [], []
    writers: dict[tuple, tuple[int, str]] = {}  # `files.file_key` of an output -> the line and path that write it
    annotation_files: dict[str, list[VideoAnnotation]] = {}  # each read once
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            job = _parse_job(text, number, root)
            for key, path in job.outputs.items():
                if files.file_key(path) in writers:
                    line, other = writers[files.file_key(path)]
                    raise ValueError(f"{key} {path}: line {line} writes it too" + (f" (as {other})" if other != path
                                                                                   else ""))
            if job.annotations not in annotation_files:
                annotation_files[job.annotations] = generation.read_annotations(job.annotations)
            _, video_path = generation.job_video(annotation_files[job.annotations], job.annotations, job.video,
                                                 job.output, job.options.get("face_output"),
                                                 job.options.get("reference_image"), job.options.get("videos_dir"))
        except ValueError as e:
            failures.append(Failure(number, _output_of(text, root), str(e)))
            continue
        writers.update({files.file_key(path): (number, path) for path in job.outputs.values()})
        reads = {"annotations": job.annotations, "video": str(video_path),
                 "reference": job.options.get("reference_image")}
        jobs.append(dataclasses.replace(job, reads={name: path for name, path in reads.items() if path is not None}))
    return _not_writing_what_others_read(jobs, failures), failures


def _not_writing_what_others_read(jobs: list[Job], failures: list[Failure]) -> list[Job]:
    """The jobs none of whose outputs is a file that another job reads, by whatever path; the others join `failures`.
    Beam runs jobs in any order, so the reader could get either file, and the writer would destroy the input."""
    readers = {}
    for job in jobs:
        for name, path in job.reads.items():
            readers.setdefault(files.file_key(path), f"the input {name} of line {job.line} {path}")
    kept = []
    for job in jobs:
        # A job's own inputs are refused as its outputs already (`generation.job_video`): any reader is another job.
        read = [(key, path) for key, path in job.outputs.items() if files.file_key(path) in readers]
        if read:
            key, path = read[0]
            failures.append(Failure(job.line, job.output, f"{key} {path}: is the same file as "
                                                          f"{readers[files.file_key(path)]}; writing it would "
                                                          f"destroy that input"))
        else:
            kept.append(job)
    return kept


def jobs_root(jobs_path: str | os.PathLike) -> Path:
    """The folder that the relative paths of a jobs file are relative to, and relative outputs stay in (by its real
    path: `_check_inside`): its own."""
    return Path(os.path.abspath(jobs_path)).parent


def _parse_job(text: str, number: int, root: Path) -> Job:
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(fields, dict):
        raise ValueError(f"a job is a JSON object, got {type(fields).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in fields]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = sorted(set(fields) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}; a job takes {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    for key, value in fields.items():
        if key in _RULES:
            _RULES[key].check(key, value)
    settings = GenerationSettings.from_keys({key: value for key, value in fields.items() if key in SETTING_KEYS})
    paths = {key: _resolve(value, root) for key, value in fields.items()
             if key in _PATH_KEYS and (key, value) != ("model", pretrained.NAME)}  # the shipped model's name stays
    for key in _OUTPUT_KEYS:
        if key in fields and not os.path.isabs(fields[key]):
            _check_inside(key, fields[key], paths[key], root)
    for key in _READ_PATHS:
        if key in paths and not os.path.exists(paths[key]):
            raise ValueError(f"{key} {paths[key]}: no such file or folder")
    fields.update(paths)
    options = {JOB_KEYS[key][1]: value for key, value in fields.items() if key in JOB_KEYS}
    return Job(number, fields["model"], fields["annotations"], fields["video"], fields["output"], options, settings)


def _resolve(path: str, root: Path) -> str:
    return os.path.normpath(os.path.join(root, path))  # an absolute `path` stays itself, normalised


def _check_inside(key: str, given: str, path: str, root: Path) -> None:
    """Raises ValueError unless `path`, the relative output `given` made absolute, is in the folder `root` once every
    link on the way is followed (`os.path.realpath`), as the writer's file will be."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, real_root]) != real_root:
        raise ValueError(f"{key} {given}: leads to {real}, outside the jobs file's folder {real_root} (links "
                         f"followed); a relative output stays in it (an absolute path writes where it says)")


def _output_of(text: str, root: Path) -> str | None:
    """The output a bad line names, where it names one as text."""
    try:
        output = json.loads(text).get("output")
    except (json.JSONDecodeError, AttributeError):
        return None
    return _resolve(output, root) if isinstance(output, str) and output else None


def _write_failure_list(failures: list[Failure], path: str) -> None:
    files.write_atomic(path, "".join(f"{failure.to_json()}\n"
                                     for failure in sorted(failures, key=lambda failure: failure.line)))


def _failure_of(result: PredictionResult) -> list[Failure]:
    return [result.inference] if result.inference is not None else []


def generate_batch(jobs_path: str | os.PathLike, failure_list: str | os.PathLike | None = None,
                   pipeline_options: PipelineOptions | None = None,
                   runner: str | PipelineRunner | None = None) -> Summary:
    """Runs the jobs of `jobs_path` (see the module doc) on Beam with `pipeline_options` on `runner` (default: the
    options' runner, or Beam's in-process runner: `beam_pipelines.choose_runner`) and writes the failure list to
    `failure_list` (default: `default_failure_list`)."""
    failure_list = Path(failure_list or default_failure_list(jobs_path)).absolute()
    files.check_output_file(failure_list, "failure list")
    pipeline_options = pipeline_options or PipelineOptions([])  # not from sys.argv: `beam_pipelines`
    runner = beam_pipelines.choose_runner(runner, pipeline_options)
    jobs, failures = read_jobs(jobs_path)
    # The failure list is written last, over whatever is there: never over the jobs file or a file of a job.
    files.check_distinct({**{f"{key} of line {job.line}": path for job in jobs for key, path in job.outputs.items()},
                          "failure list": failure_list},
                         {"jobs file": jobs_path, **{f"{name} of line {job.line}": path for job in jobs
                                                     for name, path in job.reads.items()}})
    jobs = _loadable(jobs, failures)
    pending = [job for job in jobs if not job.done()]
    for job in pending:
        if os.path.exists(job.output):
            logging.warning("%s: exists but is not a whole video (empty or cut short): making it again", job.output)
    by_model: dict[str, list[Job]] = {}
    for job in pending:
        by_model.setdefault(job.model, []).append(job)
    with beam_pipelines.workers_end_with_this_process(), beam.Pipeline(runner, pipeline_options) as pipeline:
        found = [pipeline | "FailedChecks" >> beam.Create(failures)]
        for number, (model, model_jobs) in enumerate(sorted(by_model.items()), start=1):
            found.append(pipeline
                         | f"Jobs{number}" >> beam.Create(model_jobs)
                         | f"Generate{number}" >> RunInference(FaceModelHandler(model))
                         | f"Failures{number}" >> beam.FlatMap(_failure_of))
        _ = (found
             | "AllFailures" >> beam.Flatten()
             | "Collect" >> beam.combiners.ToList()
             | "WriteFailureList" >> beam.Map(_write_failure_list, str(failure_list)))
    listed = [Failure(**json.loads(line)) for line in failure_list.read_text(encoding="utf-8").splitlines()]
    return Summary(root=jobs_root(jobs_path), jobs=len(jobs) + len(failures),
                   generated=sum(job.done() for job in pending), skipped=len(jobs) - len(pending), failures=listed,
                   failure_list=failure_list)


def _loadable(jobs: list[Job], failures: list[Failure]) -> list[Job]:
    """The jobs whose model loads here; the others join `failures`. A model that does not load would stop a Beam
    worker in its set-up, before any job's error could be caught."""
    reasons = {}
    for model in sorted({job.model for job in jobs}):
        try:
            FaceModel.load(model)
        except (ValueError, OSError) as e:
            reasons[model] = str(e)
    failures.extend(Failure(job.line, job.output, reasons[job.model]) for job in jobs if job.model in reasons)
    return [job for job in jobs if job.model not in reasons]

"""bigo_face: BIGO-layout face videos as TFDS examples, one example per video.

An example holds the video's face crops (JPEG, `crop_size` square, in the order of the video) with their keypoints in
crop pixels, flags, 1-based frame index (as in the BIGO annotations) and in-plane rotation angle, plus the video's id,
identity and tier. Frames without a face are skipped. Splits are the tiers `easy`, `medium`, `hard` (a tier with no
video has no split). `info.metadata` records the keypoint layout and one entry per video (identity, tier, frames).

Configs: `synthetic` (generated at build time by `bigo_facegen.synthetic`), `bigo` (the BIGO release, manual download)
and `folder` (any BIGO-layout folder given as the manual directory). Library code builds one dynamic config per folder
(see `folder_config`) so that different folders never share a data directory. From the command line:

    tfds build bigo_face --config=folder --manual_dir=../shared/data/real_faces/dev --imports=tfds_bigo
    tfds build bigo_face --config='{"name": "folder_rot15", "source": "folder", "rotations": [-15, 15]}' \
        --manual_dir=DIR --imports=tfds_bigo

A config's name stays the same when its folder's files change, and `--config=folder` serves every folder, so a
prepared data set records what it was built from (`info.metadata["source"]`: the folder's real path and its
`content_key`). Given a manual directory, `download_and_prepare` rebuilds, where TFDS would reuse, a data set prepared
from another folder or from this one before it changed; without one (`tfds.load`), the prepared data set is used.
Every file the build reads must lie inside the folder: a symbolic link out of it is refused, and a folder given as the
manual directory is checked (`read_folder`) before anything is written.

The `bigo` and `folder` sources build on Apache Beam, one video per element, when the download config names a Beam
runner or Beam options (`tfds build --beam_pipeline_options=...`), and in this process otherwise; both ways turn a
video into its example by the same `VideoExamples`, so they store the same examples. The Beam workers read the folder
with OpenCV at the manual directory's path: on a cluster it must be mounted at that path on every worker. With no
runner named, or the DirectRunner, the build runs on Beam's in-process FnApiRunner (the DirectRunner would first
download Beam's Prism runner), and local worker processes end with the build (`bigo_facegen.beam_pipelines`).

    tfds build bigo_face --config=folder --manual_dir=../shared/data/real_faces/dev --imports=tfds_bigo \
        --beam_pipeline_options="runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

The `synthetic` source is generated into a scratch folder of this process, so it always builds here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from bigo_facegen import annotations as annotations_lib, bigo_folder, geometry, keypoints, synthetic, video as video_lib
from bigo_facegen.bigo_folder import ANNOTATIONS_FILE, MANIFEST_FILE

JPEG_QUALITY = 95

_MANUAL_LAYOUT = """\
Place a BIGO-layout folder in the manual directory (`--manual_dir=DIR`, default `<data_dir>/downloads/manual/`):

    DIR/annotations.json    a JSON list, one object per video:
                            {"video": "12008.mp4", "video_path": "videos/12008.mp4",
                             "annotations": [{"index": 1, "bbox": [x, y, w, h], "keypoint": [x0, y0, f0, ...]}, ...]}
    DIR/videos/<id>.mp4     the videos that `video_path` names (relative to DIR)
    DIR/MANIFEST.tsv        optional: a `clip` (video file stem) and a `person` column give identities

Tiers come from a video's `tier` key, else from BIGO video ids (10xxx easy, 11xxx medium, 12xxx hard), else from the
spread of the head pose over each video (terciles over the folder). Identities come from a video's `identity` key,
else from MANIFEST.tsv, else the video id.
"""


@dataclasses.dataclass(eq=False)
class BigoFaceConfig(tfds.core.BuilderConfig):
    """`source`: synthetic | bigo | folder. `rotations`: build-time augmentation, one extra rotated copy of every face
    frame per angle (degrees, counter-clockwise in the image; face and keypoints turned alike about the crop centre).
    The `synthetic_*` fields size the generated set of the `synthetic` source."""
    source: str = "folder"
    crop_size: int = 256
    rotations: tuple[float, ...] = ()
    synthetic_videos: int = 240
    synthetic_frames: int = 48
    synthetic_frame_size: int = 192
    synthetic_seed: int = 0


def folder_config(folder: str | Path) -> BigoFaceConfig:
    """The `folder` config under a name of its own for one folder: `folder_<slug>_<hash of the absolute path>`."""
    folder = Path(folder).expanduser().resolve()
    slug = re.sub(r"[^a-z0-9]+", "_", f"{folder.parent.name}_{folder.name}".lower()).strip("_")[-40:] or "root"
    digest = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:8]
    return dataclasses.replace(Builder.builder_configs["folder"], name=f"folder_{slug}_{digest}",
                               description=f"The BIGO-layout folder {folder}.")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for bigo_face."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        BigoFaceConfig(name="synthetic", source="synthetic", crop_size=128,
                       description="Procedural faces with exact bigo106 keypoints, generated at build time."),
        BigoFaceConfig(name="bigo", source="bigo", crop_size=256,
                       description="The BIGO PRCV 2019 face-generation release (manual download)."),
        BigoFaceConfig(name="folder", source="folder", crop_size=256,
                       description="Any BIGO-layout folder (annotations.json + videos/), given as the manual dir."),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "synthetic"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Config `bigo`: ask the BIGO PRCV 2019 face-generation challenge organisers for the release (videos and their "
        "106-point annotations); config `folder`: any folder in the same layout (e.g. ../shared/data/real_faces/dev).\n"
        + _MANUAL_LAYOUT)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.crop_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "video_id": tfds.features.Text(doc="The video file's name without suffix."),
                "identity": tfds.features.Text(doc="The person shown; videos of one identity share it."),
                "tier": tfds.features.Text(doc="easy | medium | hard"),
                "image": tfds.features.Sequence(
                    tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
                    doc="Face crops (T, S, S, 3), RGB."),
                "keypoints": tfds.features.Tensor(
                    shape=(None, None, 2), dtype=np.float32, encoding="bytes",
                    doc="(T, N, 2) x, y in crop pixels (pixel centres at integers)."),
                "flags": tfds.features.Tensor(
                    shape=(None, None), dtype=np.int32, encoding="bytes",
                    doc="(T, N) 0 absent, 1 occluded, 2 visible."),
                "frame_index": tfds.features.Tensor(shape=(None,), dtype=np.int32,
                                                    doc="(T,) 1-based frame number in the video."),
                "rotation": tfds.features.Tensor(shape=(None,), dtype=np.float32,
                                                 doc="(T,) build-time rotation of the crop, degrees."),
            }),
            supervised_keys=None,
            metadata=tfds.core.MetadataDict(),
        )

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs) -> None:
        """TFDS's, plus, for a folder given as the manual directory, the check of what a prepared data set was built
        from (see the module doc) and of the folder itself, so that a bad folder fails before anything is written;
        and, on Beam, the runner that reaches no network and workers that end with this process (`beam_pipelines`)."""
        config = download_config or tfds.download.DownloadConfig()
        if self.builder_config.source != "synthetic" and config.manual_dir is not None:
            config = self._checked_folder(Path(config.manual_dir).expanduser().resolve(), config)
        if not _builds_on_beam(self.builder_config, config):
            super().download_and_prepare(download_dir=download_dir, download_config=config, **kwargs)
            return
        from apache_beam.options.pipeline_options import PipelineOptions  # only a Beam build pays for importing Beam

        from bigo_facegen import beam_pipelines
        options = config.beam_options or PipelineOptions([])  # not from sys.argv: `beam_pipelines`
        config = config.replace(beam_runner=beam_pipelines.choose_runner(config.beam_runner, options),
                                beam_options=options)
        with beam_pipelines.workers_end_with_this_process():
            super().download_and_prepare(download_dir=download_dir, download_config=config, **kwargs)

    def _checked_folder(self, root: Path, config: tfds.download.DownloadConfig) -> tfds.download.DownloadConfig:
        """`config`, switched to TFDS's rebuild mode where the prepared data set is not `root`'s; reads the folder
        first whenever a build follows."""
        # The condition on which TFDS reuses a data set.
        if config.download_mode == tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS and self.data_path.exists():
            change = _change_since_prepared(self.info.metadata.get("source"), root)
            if change is None:
                return config
            logging.warning("bigo_face/%s: %s; rebuilding %s", self.builder_config.name, change, self.data_dir)
            config = config.replace(download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS)
        read_folder(root)
        return config

    def _download_and_prepare(self, dl_manager, download_config):
        self._on_beam = _builds_on_beam(self.builder_config, download_config)
        # The synthetic source is generated into a scratch folder that must outlive `_split_generators` (the example
        # generators run after it returns) and no longer than the build.
        with tempfile.TemporaryDirectory(prefix="bigo_face_") as scratch:
            self._scratch = Path(scratch)
            return super()._download_and_prepare(dl_manager, download_config)

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self._source_folder(dl_manager)
        annotation_file = root / ANNOTATIONS_FILE
        videos = [video for video in read_folder(root) if _has_faces(video, annotation_file)]
        if not videos:
            raise annotations_lib.AnnotationError(f"{annotation_file}: no video has a face frame")
        layout = _layout_of(videos, annotation_file)
        tiers = bigo_folder.assign_tiers(videos, layout)
        identities = bigo_folder.identities(videos, root)
        copies = 1 + len(self.builder_config.rotations)
        if self.builder_config.source != "synthetic":
            paths = sorted(video.video_path for video in videos)
            self.info.metadata["source"] = {"folder": str(root), "videos": paths,
                                            "content_key": content_key(root, paths)}
        self.info.metadata.update({
            "layout": layout.name,
            "num_keypoints": layout.num_points,
            "crop_size": self.builder_config.crop_size,
            "rotations": list(self.builder_config.rotations),
            "videos": {bigo_folder.video_id(v): {"identity": identities[v.video], "tier": tiers[v.video],
                                                 "frames": copies * len(v.face_frames())} for v in videos},
        })
        example_of = VideoExamples(root, annotation_file, self.builder_config.crop_size,
                                   tuple(self.builder_config.rotations), tiers, identities)
        return {tier: self._generate_examples([v for v in videos if tiers[v.video] == tier], example_of)
                for tier in bigo_folder.TIERS if tier in tiers.values()}

    def _generate_examples(self, videos, example_of: VideoExamples):
        """The (key, example) of each of `videos`: a Beam transform on Beam (see the module doc), else a generator."""
        if self._on_beam:
            import apache_beam as beam  # only a Beam build pays for importing Beam
            return "Videos" >> beam.Create(videos) | "Examples" >> beam.Map(_example_on_worker, example_of)
        return (example_of(video) for video in videos)

    def _source_folder(self, dl_manager) -> Path:
        config = self.builder_config
        if config.source == "synthetic":
            out = self._scratch / "synthetic"
            logging.info("bigo_face: generating %d synthetic videos into %s", config.synthetic_videos, out)
            size = config.synthetic_frame_size
            synthetic.generate(out, num_videos=config.synthetic_videos, frames_per_video=config.synthetic_frames,
                               frame_size=(size, size), seed=config.synthetic_seed)
            return out
        return Path(dl_manager.manual_dir).resolve()


def _builds_on_beam(builder_config: BigoFaceConfig, download_config: tfds.download.DownloadConfig) -> bool:
    """Whether a build runs on Beam: a source other than `synthetic`, with a Beam runner or Beam options."""
    return builder_config.source != "synthetic" and (
        download_config.beam_runner is not None or download_config.beam_options is not None)


def _example_on_worker(video: annotations_lib.VideoAnnotation, example_of: VideoExamples) -> tuple[str, dict]:
    from bigo_facegen import beam_pipelines
    beam_pipelines.end_with_runner()  # a local worker process does not outlive the build
    return example_of(video)


@dataclasses.dataclass(frozen=True)
class VideoExamples:
    """One video's (key, example), the unit of work of a build: called in this process, or pickled to a Beam worker
    (so it holds only plain values). `tiers` and `identities` map each video's `video` name to its tier and
    identity; `rotations` are the config's."""
    root: Path
    annotation_file: Path
    crop_size: int
    rotations: tuple[float, ...]
    tiers: dict[str, str]
    identities: dict[str, str]

    def __call__(self, video: annotations_lib.VideoAnnotation) -> tuple[str, dict]:
        """Crops, encodes and collects the face frames of `video`; any failure names the video file."""
        path = annotations_lib.resolve_video_path(video, self.root)
        try:
            info = video_lib.probe(path)
            annotations_lib.check_against_video(video, info.frame_count, source=str(self.annotation_file))
            annotations_lib.check_on_frame(video, info.width, info.height, source=str(self.annotation_file))
            example = self._crop_frames(path, video)
        except (annotations_lib.AnnotationError, video_lib.VideoError):
            raise
        except Exception as e:
            raise video_lib.VideoError(f"{path}: cannot build its example: {type(e).__name__}: {e}") from e
        video_id = bigo_folder.video_id(video)
        example.update(video_id=video_id, identity=self.identities[video.video], tier=self.tiers[video.video])
        return video_id, example

    def _crop_frames(self, path: Path, video) -> dict:
        size = self.crop_size
        angles = (0.0, *self.rotations)
        centre = ((size - 1) / 2.0, (size - 1) / 2.0)
        faces = {frame.index: frame for frame in video.face_frames()}
        last = max(faces)
        out = {key: [] for key in ("image", "keypoints", "flags", "frame_index", "rotation")}
        for index, frame in enumerate(video_lib.read_frames(path), start=1):
            face = faces.get(index)
            if face is not None:
                for angle in angles:
                    # Rotating the frame before cropping keeps real pixels in the crop's corners.
                    matrix = _compose(geometry.rotation_matrix(centre, angle), geometry.crop_matrix(face.bbox, size))
                    crop = geometry.warp(frame, matrix, size)
                    out["image"].append(_encode_jpeg(crop, path, index))
                    out["keypoints"].append(geometry.apply_affine(face.points, matrix))
                    out["flags"].append(face.flags)
                    out["frame_index"].append(index)
                    out["rotation"].append(angle)
            if index >= last:
                break  # nothing to crop after the last face frame
        return {
            "image": out["image"],
            "keypoints": np.asarray(out["keypoints"], np.float32),
            "flags": np.asarray(out["flags"], np.int32),
            "frame_index": np.asarray(out["frame_index"], np.int32),
            "rotation": np.asarray(out["rotation"], np.float32),
        }


def read_folder(root: Path) -> list[annotations_lib.VideoAnnotation]:
    """The annotated videos of the BIGO-layout folder `root`, checked as far as can be without decoding a video: the
    annotation file is valid and every file a build reads lies inside `root`."""
    annotation_file = root / ANNOTATIONS_FILE
    if not annotation_file.exists():
        raise FileNotFoundError(f"{annotation_file}: not found; expected a BIGO-layout folder.\n{_MANUAL_LAYOUT}")
    for name in (ANNOTATIONS_FILE, MANIFEST_FILE):
        annotations_lib.check_inside(root / name, root)
    videos = annotations_lib.load(annotation_file)
    for video in videos:
        annotations_lib.resolve_video_path(video, root)
    return videos


def content_key(root: Path, video_paths) -> str:
    """A hash of what a build of the folder `root` reads: the bytes of its annotations.json and MANIFEST.tsv, and the
    size and modification time of each of `video_paths` (hashing the videos would cost a read of the whole folder at
    every check). A missing file counts as content too, so deleting one changes the key; a file that leads out of the
    folder raises AnnotationError, as in a build."""
    files = [_file_hash(root / ANNOTATIONS_FILE, root), _file_hash(root / MANIFEST_FILE, root)]
    videos = [[path, *_size_and_mtime(root / path, root)] for path in sorted(video_paths)]
    return hashlib.sha256(json.dumps([files, videos]).encode("utf-8")).hexdigest()


def _change_since_prepared(source: dict | None, root: Path) -> str | None:
    """Why the data set built from `source` (its recorded `info.metadata["source"]`) is not that of `root`, or None.
    The recorded video paths stand for the folder's current ones: they come from annotations.json, whose bytes are in
    the key, so whenever they differ the key does too."""
    if source is None:
        return "it does not record the folder it was built from"
    if source["folder"] != str(root):
        return f"it was built from {source['folder']}, not {root}"
    if content_key(root, source["videos"]) != source["content_key"]:
        return f"{root} changed since it was built"
    return None


def _file_hash(path: Path, root: Path) -> str | None:
    annotations_lib.check_inside(path, root)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _size_and_mtime(path: Path, root: Path) -> list[int | None]:
    annotations_lib.check_inside(path, root)
    try:
        stat = path.stat()
    except OSError:
        return [None, None]
    return [stat.st_size, stat.st_mtime_ns]


def _layout_of(videos, annotation_file: Path) -> keypoints.Layout:
    count = videos[0].num_keypoints
    try:
        return keypoints.layout_for_count(count)
    except ValueError as e:
        raise annotations_lib.AnnotationError(f"{annotation_file}: {e}") from e


def _has_faces(video, annotation_file: Path) -> bool:
    if video.face_frames():
        return True
    logging.warning("bigo_face: %s: video %r has no face frame; skipped", annotation_file, video.video)
    return False


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine map `outer(inner(p))`."""
    return (np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]]))[:2]


def _encode_jpeg(rgb: np.ndarray, path: Path, index: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise video_lib.VideoError(f"{path}: frame {index}: JPEG encoding of the crop failed")
    return data.tobytes()

"""Data set build speed: the `bigo_face` `folder` build in this process against the same build on Beam's DirectRunner
with 1 and 2 worker processes.

    python -m benchmarks.build [--clips 8] [--json]

Builds `--clips` clips of `../shared/data/real_faces/dev` (the first ones by name, whole; copied into a temporary
folder, as a build refuses links out of its folder) three ways, each in a fresh process into an empty data dir: the
plain build (`tfds build` without Beam options) and Beam builds with `direct_running_mode=multi_processing` and
`direct_num_workers` 1 and 2. Each time is the whole `download_and_prepare`, Beam's start-up (worker processes that
import TensorFlow) included. Prints videos/s and frames/s (face crops written) of each and the ratios to the plain
build, or with --json one JSON line.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from absl import app, flags

from benchmarks.common import REPO, run_json

REAL_FACES = REPO.parent / "shared" / "data" / "real_faces" / "dev"
# (name, Beam workers): no workers is the plain build.
BUILDS = (("plain", None), ("beam_1_worker", 1), ("beam_2_workers", 2))

flags.DEFINE_integer("clips", 8, "Dev clips built.", lower_bound=1)
flags.DEFINE_string("folder", None, "Internal: the BIGO-layout folder one child process builds.")
flags.DEFINE_integer("workers", None, "Internal: the Beam workers of one child process's build (none: plain).")
flags.DEFINE_bool("json", False, "print one JSON line instead of the table")
FLAGS = flags.FLAGS


def subset_folder(source: Path, out: Path, clips: int) -> tuple[int, int]:
    """A BIGO-layout copy of the first `clips` clips of `source` (by name) in `out`; returns (clips, face frames)."""
    from bigo_facegen import annotations
    videos = sorted(annotations.load(source / "annotations.json"), key=lambda v: v.video)[:clips]
    for entry in videos:
        (out / entry.video_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / entry.video_path, out / entry.video_path)
    annotations.dump(videos, out / "annotations.json")
    shutil.copyfile(source / "MANIFEST.tsv", out / "MANIFEST.tsv")
    return len(videos), sum(len(entry.face_frames()) for entry in videos)


def build_seconds(folder: Path, workers: int | None) -> float:
    """Seconds of one `folder` build of `folder` into a new data dir; on Beam with `workers` processes if given."""
    import tensorflow_datasets as tfds
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfds_bigo.bigo_face import folder_config
    beam_options = None if workers is None else PipelineOptions(
        ["--runner=DirectRunner", f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"])
    with tempfile.TemporaryDirectory(prefix="build_bench_") as data_dir:
        builder = tfds.builder("bigo_face", config=folder_config(folder), data_dir=data_dir)
        start = time.perf_counter()
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=str(folder), beam_options=beam_options))
        return time.perf_counter() - start


def main(argv):
    del argv
    if FLAGS.folder:
        print(json.dumps({"seconds": build_seconds(Path(FLAGS.folder), FLAGS.workers)}))
        return
    with tempfile.TemporaryDirectory(prefix="build_bench_clips_") as folder:
        clips, frames = subset_folder(REAL_FACES, Path(folder), FLAGS.clips)
        seconds = {}
        for name, workers in BUILDS:
            args = ["-m", "benchmarks.build", f"--folder={folder}"]
            seconds[name] = run_json(args + ([f"--workers={workers}"] if workers else []), f"the {name} build")[
                "seconds"]
    result = {"clips": clips, "frames": frames, "cpu_cores": os.cpu_count()}
    for name, _ in BUILDS:
        result[name] = {"seconds": round(seconds[name], 2), "videos_per_s": round(clips / seconds[name], 3),
                        "frames_per_s": round(frames / seconds[name], 1),
                        "speed_vs_plain": round(seconds["plain"] / seconds[name], 2)}
    if FLAGS.json:
        print(json.dumps(result))
        return
    print(f"bigo_face folder build of {clips} dev clips ({frames} face frames, {os.cpu_count()} CPU cores)")
    print(f"  {'build':<18}{'seconds':>9}{'videos/s':>10}{'frames/s':>10}{'vs plain':>10}")
    for name, _ in BUILDS:
        row = result[name]
        print(f"  {name:<18}{row['seconds']:>9.2f}{row['videos_per_s']:>10.3f}{row['frames_per_s']:>10.1f}"
              f"{row['speed_vs_plain']:>9.2f}x")


if __name__ == "__main__":
    app.run(main)

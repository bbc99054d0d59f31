"""Animate speed: frames/s of `bigo_facegen.animate.animate` end to end, a dev-set photo of one person driven by a
dev-set clip of another, against the driving video's real time.

    python -m benchmarks.animate                                   # warp and the shipped model, detect and track
    python -m benchmarks.animate --models=warp,runs/real --keypoints=detect,track,file --json
    python -m benchmarks.animate --models=pretrained --keypoints=track --stream     # and streamed, with latencies
    python -m benchmarks.animate --keypoints=detect,track --gaze=off,on             # what the gaze costs
    python -m benchmarks.animate --keypoints=track --paint=off,on                    # what the painters cost

End to end: the source photo read and its face found by dlib, the driving keypoints (dlib on every driving frame,
`detect`; dlib's points followed by optical flow and held to dlib, `track`, which runs dlib's face search on few frames;
or read from the folder's annotations.json, `file`), the motion transfer (default settings), every output frame made
(`warp`: the piecewise-affine warp of the photo; a model: `generation.VideoGenerator` with its defaults) and
H.264-encoded, the photo's irises following the driver's gaze (`--gaze=on`, animate's default) or not (`off`), and a
model's painters laying mouths and eyes over its frames (`--paint=on`, the default) or not (`off`; no row for the warp,
which has none). A model
and dlib's models are loaded before the clock starts (a model's first batch, traced, is timed). The real-time ratio is
frames/s over the driving video's frame rate: above 1 keeps up with the video.

With --stream, each model and found keypoint source (`detect`, `track`) is also streamed (`bigo_facegen.streaming`,
`experiments.animate --stream`: the driving frames read and animated one at a time, the model at batch 1), and the row
adds each frame's latency, from its driving frame read to its output frame written (median and 95th percentile); a
streamed row's rate and latencies leave out the first frame (the warm-up: a model's first call builds its graph).

Prints a table, or with --json one JSON line.
"""
from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path

import cv2
from absl import app, flags

from benchmarks.common import REPO

REAL_FACES = REPO.parent / "shared" / "data" / "real_faces" / "dev"
# The keypoints read from the folder's annotation file; the others are `annotate.TRACKINGS`, found in the frames.
FILE = "file"
GAZE = PAINT = {"on": True, "off": False}

flags.DEFINE_list("models", ["warp", "pretrained"], "warp, pretrained (the model shipped in the package) and/or export "
                  "folders or training model_dirs.")
flags.DEFINE_list("keypoints", ["detect", "track"], "Where the driving keypoints come from: detect (dlib on every "
                  "frame), track (dlib's points tracked) and/or file (the folder's annotations.json).")
flags.DEFINE_string("source_clip", "sadtalker_BobMenendez", "Dev clip whose first frame is the source photo.")
flags.DEFINE_string("driving_clip", "dpe_d", "Dev clip of another person that drives it.")
flags.DEFINE_integer("frames", 250, "Driving frames (250: 10 s at 25 fps).", lower_bound=3)
flags.DEFINE_list("gaze", ["on"], "Whether the photo's irises follow the driver's gaze: on (animate's default) and/or "
                  "off.")
flags.DEFINE_list("paint", ["on"], "Whether a model's painters paint mouths and eyes: on (animate's default) and/or "
                  "off.")
flags.DEFINE_bool("stream", False, "Also stream each model with each found keypoint source, and report the latency "
                  "per frame.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from bigo_facegen import animate, annotate, distribution, dlib_face, methods, streaming, video
    from bigo_facegen.generation_settings import GenerationSettings

    unknown = sorted(set(FLAGS.keypoints) - {*annotate.TRACKINGS, FILE})
    if unknown:
        raise app.UsageError(f"--keypoints: unknown {', '.join(unknown)}; choose among "
                             f"{', '.join([*annotate.TRACKINGS, FILE])}")
    for name, chosen in (("gaze", FLAGS.gaze), ("paint", FLAGS.paint)):
        if not set(chosen) <= set(GAZE):
            raise app.UsageError(f"--{name}: {', '.join(chosen)}; choose among {', '.join(GAZE)}")
    distribution.configure_cpu_threads()
    dlib_face.require()
    driving = REAL_FACES / "videos" / f"{FLAGS.driving_clip}.mp4"
    info = video.probe(driving)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "source.png"
        first = next(video.read_frames(REAL_FACES / "videos" / f"{FLAGS.source_clip}.mp4"))
        cv2.imwrite(str(photo), cv2.cvtColor(first, cv2.COLOR_RGB2BGR))
        for name, paint in itertools.product(FLAGS.models, FLAGS.paint):
            method = methods.load(name, GenerationSettings(paint=PAINT[paint]))
            if method.model is None and paint == "off":
                continue
            for keypoints, gaze in itertools.product(FLAGS.keypoints, FLAGS.gaze):
                found = keypoints != FILE
                start = time.perf_counter()
                stats = animate.animate(method, photo, driving, Path(tmp) / "out.mp4",
                                        driving_annotations=None if found else REAL_FACES / "annotations.json",
                                        max_frames=FLAGS.frames, progress=False, tracking=keypoints if found else None,
                                        gaze=GAZE[gaze])
                seconds = time.perf_counter() - start
                rows.append({"model": name, "keypoints": keypoints, "gaze": gaze, "paint": paint, "path": "animate",
                             "frames": stats.frames,
                             "seconds": round(seconds, 2), "frames_per_s": round(stats.frames / seconds, 2),
                             "real_time": round(stats.frames / seconds / info.fps, 3)})
                if FLAGS.stream and found:
                    live = streaming.stream(method, photo, driving, Path(tmp) / "live.mp4", max_frames=FLAGS.frames,
                                            progress=False, tracking=keypoints, gaze=GAZE[gaze])
                    rows.append({"model": name, "keypoints": keypoints, "gaze": gaze, "paint": paint, "path": "stream",
                                 "frames": live.frames,
                                 "seconds": round(live.seconds, 2), "frames_per_s": round(live.frames_per_s, 2),
                                 "real_time": round(live.frames_per_s / info.fps, 3),
                                 "latency_p50_ms": round(1000 * live.latency(50), 1),
                                 "latency_p95_ms": round(1000 * live.latency(95), 1)})
    result = {"source": f"{FLAGS.source_clip} frame 1 ({first.shape[1]}x{first.shape[0]})",
              "driving": f"{FLAGS.driving_clip} ({info.width}x{info.height} at {info.fps:g} fps)", "rows": rows}
    if FLAGS.json:
        print(json.dumps(result))
        return
    print(f"animate: source {result['source']}, driving {result['driving']}")
    print(f"{'model':<28} {'keypoints':<10} {'gaze':<5} {'paint':<6} {'path':<8} {'frames':>7} {'seconds':>8} "
          f"{'frames/s':>9} {'x real time':>12} {'p50 ms':>7} {'p95 ms':>7}")
    for row in rows:
        latencies = "".join(f" {row[key]:>7.1f}" if key in row else f" {'-':>7}"
                            for key in ("latency_p50_ms", "latency_p95_ms"))
        print(f"{row['model']:<28} {row['keypoints']:<10} {row['gaze']:<5} {row['paint']:<6} {row['path']:<8} "
              f"{row['frames']:>7} "
              f"{row['seconds']:>8.2f} "
              f"{row['frames_per_s']:>9.2f} {row['real_time']:>12.3f}{latencies}")


if __name__ == "__main__":
    app.run(main)

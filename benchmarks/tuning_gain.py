"""What one-shot reference tuning buys and what it costs: image quality and seconds per video, by tuning steps.

    python -m benchmarks.tuning_gain --model=runs/cpu_hard --data=synthetic --steps=0,25,100
    python -m benchmarks.tuning_gain --model=runs/real --data=../shared/data/real_faces/dev --split=all --videos=2

For the first `--videos` videos of the evaluation protocol's split (`evaluation.protocol.load_cases`: the first face
frame is the reference, later face frames the targets, at most `--max_frames` of them), each number of tuning steps
generates every target through `generation.VideoGenerator` (as `experiments.generate`, every face generated: copy
threshold 0) and scores it against the true frame: PSNR and SSIM of the full frame and of the target's face crop
(`evaluation.metrics`; no dlib judge, so any layout works). Reports the means over all frames, the tuning seconds
per video and the generation seconds per video.
"""
from __future__ import annotations

import json
import time

from absl import app, flags

flags.DEFINE_string("model", None, "A training model_dir (one-shot tuning needs the Keras generator).", required=True)
flags.DEFINE_string("data", "synthetic", "synthetic or a BIGO-layout folder (annotations.json + videos/).")
flags.DEFINE_enum("split", "test", ["all", "test", "train"], "Videos to use: the person-disjoint split.")
flags.DEFINE_integer("videos", 2, "Videos to use (the split's first ones).", lower_bound=1)
flags.DEFINE_integer("max_frames", 16, "Targets per video, evenly strided.", lower_bound=1)
flags.DEFINE_list("steps", ["0", "25", "100"], "Tuning steps to compare (0: no tuning).")
flags.DEFINE_float("tune_lr", None, "Tuning learning rate (default: the run's optimizer.generator_lr).")
flags.DEFINE_enum("fusion", None, ["shift", "segment", "warp"], "Background fusion (default: the model's own).")
flags.DEFINE_string("cache_dir", None, "Where --data=synthetic is generated (default ~/.cache/bigo_facegen).")
flags.DEFINE_bool("json", False, "Print one JSON line per setting instead of the table.")
FLAGS = flags.FLAGS


def measure(model, cases, frames_of, steps: int, learning_rate: float, fusion: str | None) -> dict:
    import numpy as np

    from bigo_facegen import generation
    from bigo_facegen.evaluation import metrics
    from bigo_facegen.generation_settings import GenerationSettings

    scores, tune_seconds, generate_seconds = [], [], []
    for case in cases:
        frames = frames_of[case.video.video]
        settings = GenerationSettings(fusion=fusion, copy_threshold=0.0, tune_steps=steps, tune_lr=learning_rate)
        maker = generation.VideoGenerator(model, frames[case.reference.index - 1], case.reference, settings)
        tune_seconds.append(maker.tuned.seconds if maker.tuned else 0.0)
        start = time.perf_counter()
        generated = [result.frame for result in maker.generate_frames(case.targets)]
        generate_seconds.append(time.perf_counter() - start)
        for target, frame in zip(case.targets, generated):
            truth = frames[target.index - 1]
            face_truth, face = metrics.face_crop(truth, target.bbox), metrics.face_crop(frame, target.bbox)
            scores.append((metrics.psnr(truth, frame), metrics.ssim(truth, frame), metrics.psnr(face_truth, face),
                           metrics.ssim(face_truth, face)))
    psnr, ssim, psnr_face, ssim_face = np.mean(scores, axis=0)
    return {"tune_steps": steps, "tune_lr": learning_rate, "videos": len(cases), "frames": len(scores),
            "psnr": psnr, "ssim": ssim, "psnr_face": psnr_face, "ssim_face": ssim_face,
            "tune_s_per_video": float(np.mean(tune_seconds)), "generate_s_per_video": float(np.mean(generate_seconds))}


def main(argv):
    del argv
    from bigo_facegen import video
    from bigo_facegen.evaluation import protocol, report
    from bigo_facegen.face_model import FaceModel

    data_dir = report.synthetic_data(FLAGS.cache_dir) if FLAGS.data == report.SYNTHETIC else FLAGS.data
    cases = protocol.load_cases(data_dir, FLAGS.split, FLAGS.max_frames)[:FLAGS.videos]
    frames_of = {case.video.video: video.read_all(case.path) for case in cases}
    model = FaceModel.load(FLAGS.model)
    learning_rate = FLAGS.tune_lr or model.config.optimizer.generator_lr
    rows = [measure(model, cases, frames_of, int(steps), learning_rate, FLAGS.fusion) for steps in FLAGS.steps]
    if FLAGS.json:
        for row in rows:
            print(json.dumps({"model": FLAGS.model, "data": str(data_dir), **row}))
        return
    print(f"{FLAGS.model} on {data_dir} ({FLAGS.split}): videos {', '.join(c.video.video for c in cases)}, "
          f"{rows[0]['frames']} frames, {FLAGS.fusion} fusion, tuning lr {learning_rate:g}")
    print(f"{'steps':>5s} {'PSNR':>7s} {'SSIM':>6s} {'PSNR face':>9s} {'SSIM face':>9s} {'tune s/video':>12s} "
          f"{'generate s/video':>16s}")
    for row in rows:
        print(f"{row['tune_steps']:5d} {row['psnr']:7.2f} {row['ssim']:6.3f} {row['psnr_face']:9.2f} "
              f"{row['ssim_face']:9.3f} {row['tune_s_per_video']:12.1f} {row['generate_s_per_video']:16.1f}")


if __name__ == "__main__":
    app.run(main)

"""Inference formats at batch 1: the SavedModel against its TFLite conversions and mixed_bfloat16, speed and fidelity.

    python -m benchmarks.formats                                 # both generators at the cpu and real preset sizes,
                                                                 # and the shipped model
    python -m benchmarks.formats --presets=cpu --generators=stargan --models= --json
    python -m benchmarks.formats --generators= --models=runs/real    # a trained run (or an export) alone

For each generator (`--generators`) at each preset's sizes (`--presets`: crop side, widths and blocks), with its
initial weights, and for each trained model (`--models`: `pretrained`, the shipped model, an export or a training
model_dir, at its own sizes), one export is written to a temporary folder per format and loaded by
`face_model.FaceModel.load`, as `generate` loads it: `saved_model` (the export's `serving_default`), `tflite_float32`,
`tflite_float16`, `tflite_int8` (`tflite.convert`; a generator without a TFLite conversion gets the reason instead of
figures), and `bfloat16`, the serving graph of the generator rebuilt under Keras' mixed_bfloat16 policy with the same
weights (float32 in and out, bfloat16 inside). Each format generates faces of real dev crops (`--clip` of
../shared/data/real_faces/dev: the first frame's crop as the reference, the keypoints of the following frames as
targets) one at a time: frames/s at batch 1 (each round, every format in turn times `--iters` calls after
`--warmup`, `common.alternate`, so that drift of the machine's speed hits them alike; the median call of a round
is that round's figure), its ratio to the SavedModel's (the median of the `--rounds` rounds' own ratios, with the
smallest and largest: `common.Spread`), and its faces' PSNR against the SavedModel's (inf: identical) and their
largest difference in levels. Then the fastest format generates `--e2e_frames` frames of the clip end to end as
`experiments.generate` does (crop, batches of 8, colour transfer, the model's default fusion, mp4). The CPU's name
and the machine's load average (before and after: the CPU is shared) head the table.

Prints a table, or with --json one JSON line.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from absl import app, flags

from benchmarks.common import REPO, Spread, alternate, cpu_name, set_threads

REAL_FACES = REPO.parent / "shared" / "data" / "real_faces" / "dev"
FORMATS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "bfloat16")
TFLITE_QUANTIZE = {"tflite_float32": "none", "tflite_float16": "float16", "tflite_int8": "int8"}

flags.DEFINE_list("generators", ["stargan", "warp_refine"], "Generators (model.generator.type), initial weights.")
flags.DEFINE_list("presets", ["cpu", "real"], "Presets whose sizes the generators run at.")
flags.DEFINE_list("models", ["pretrained"], "Trained models measured too, at their own sizes: pretrained (the shipped "
                  "model), exports or training model_dirs.")
flags.DEFINE_string("clip", "dpe_d", "Real clip of ../shared/data/real_faces/dev giving the faces.")
flags.DEFINE_integer("frames", 16, "Target frames of the clip (the PSNR is over all of them).")
flags.DEFINE_integer("iters", 20, "Timed batch-1 calls per format and round.")
flags.DEFINE_integer("warmup", 3, "Untimed calls per format and round first.")
flags.DEFINE_integer("rounds", 5, "Rounds over all formats (the median round is reported, with the extremes).",
                     lower_bound=1)
flags.DEFINE_integer("e2e_frames", 50, "Frames of the end-to-end video run with the fastest format (0: skip).")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0 = TF's default: all cores); TFLite uses all cores.")
flags.DEFINE_bool("json", False, "Print one JSON line instead of the table.")
FLAGS = flags.FLAGS


def real_inputs(clip: str, frames: int, size: int, num_points: int):
    """(reference crop (S, S, 3) uint8, its points and flags, target points (T, N, 2), target flags (T, N)) from the
    first annotated frame of `clip` and the next `frames`, keypoints in crop pixels."""
    import numpy as np

    from bigo_facegen import annotations, geometry, video

    entry = {v.video: v for v in annotations.load(REAL_FACES / "annotations.json")}[f"{clip}.mp4"]
    if entry.frames[0].points.shape[0] != num_points:
        raise ValueError(f"{clip} has {entry.frames[0].points.shape[0]} points per face, the model {num_points}")
    faces = entry.face_frames()
    reference = faces[0]
    frame = video.read_frame(REAL_FACES / entry.video_path, reference.index)
    crop, matrix = geometry.crop(frame, reference.bbox, size)
    to_crop = lambda annotation: geometry.apply_affine(annotation.points, geometry.crop_matrix(annotation.bbox, size))
    targets = faces[1:frames + 1]
    return (crop, geometry.apply_affine(reference.points, matrix), reference.flags,
            np.stack([to_crop(t) for t in targets]), np.stack([t.flags for t in targets]))


def _models(generator, cfg, export_dir: Path) -> tuple[dict, dict[str, str]]:
    """FaceModel per format, as `face_model.FaceModel.load` loads each export, and the reason for each format that
    has none."""
    from bigo_facegen import distribution, export, keypoints, tflite
    from bigo_facegen.face_model import FaceModel
    from bigo_facegen.models.registry import build_generator

    models = {"saved_model": FaceModel.load(export.export(generator, cfg, export_dir))}
    unavailable = {}
    for name, quantize in TFLITE_QUANTIZE.items():
        try:
            version = tflite.export_generator(generator, cfg, export_dir, quantize=quantize)
        except tflite.TFLiteError as e:
            unavailable[name] = str(e)
            continue
        models[name] = FaceModel.load(version / tflite.FILE_NAMES[quantize])
    with distribution.dtype_policy("mixed_bfloat16"):
        bfloat16 = build_generator(cfg.model, cfg.data.image_size, keypoints.get_layout(cfg.data.layout).num_points)
    bfloat16.set_weights(generator.get_weights())
    models["bfloat16"] = FaceModel.from_generator(bfloat16, cfg, source="mixed_bfloat16")
    return models, unavailable


def end_to_end_frames_per_s(model, clip: str, frames: int) -> float:
    """Frames/s of `VideoGenerator.generate_video` as `experiments.generate` runs it (the model's default fusion,
    batches of 8, every frame generated: copy threshold 0, mp4 encoding), after one warm-up batch."""
    import numpy as np

    from bigo_facegen import annotations, generation, video
    from bigo_facegen.generation_settings import GenerationSettings

    entry = {v.video: v for v in annotations.load(REAL_FACES / "annotations.json")}[f"{clip}.mp4"]
    reference = entry.face_frames()[0]
    frame = video.read_frame(REAL_FACES / entry.video_path, reference.index)
    targets = generation.frame_sequence(entry)
    targets = (targets * (frames // len(targets) + 1))[:frames]
    s, n = model.image_size, model.num_points
    points, flags = np.zeros((8, n, 2)), np.full((8, n), 2)
    model.generate(np.zeros((8, s, s, 3), np.uint8), points, flags, points, flags)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        maker = generation.VideoGenerator(model, frame, reference,
                                          GenerationSettings(copy_threshold=0.0, batch_size=8))
        maker.generate_video(targets, Path(tmp) / "out.mp4", 25.0, progress=False)
        return frames / (time.perf_counter() - start)


def measure(case: str, generator_name: str | None, preset: str | None) -> dict:
    """The figures of one case: `generator_name` at `preset`'s sizes with its initial weights, or (both None) the
    trained model `case` (`export.load_generator`)."""
    import numpy as np

    from bigo_facegen import config as config_lib, export
    from bigo_facegen.evaluation import metrics
    from bigo_facegen.models.registry import build_generator

    if generator_name is None:
        generator, cfg = export.load_generator(case)
    else:
        cfg = config_lib.override(config_lib.preset(preset), {"data.layout": "ibug68",
                                                               "model.generator.type": generator_name})
        generator = build_generator(cfg.model, cfg.data.image_size, 68)
    size = cfg.data.image_size
    crop, ref_points, ref_flags, target_points, target_flags = real_inputs(FLAGS.clip, FLAGS.frames, size, 68)
    count = len(target_points)
    with tempfile.TemporaryDirectory() as tmp:
        runnable, unavailable = _models(generator, cfg, Path(tmp))
        one = lambda model, i: model.generate(crop[None], target_points[i:i + 1], target_flags[i:i + 1],
                                              ref_points[None], ref_flags[None])
        faces = {name: np.concatenate([one(model, i) for i in range(count)]) for name, model in runnable.items()}

        def frames_per_s(model) -> dict[str, float]:
            for i in range(FLAGS.warmup):
                one(model, i % count)
            times = []
            for i in range(FLAGS.iters):
                start = time.perf_counter()
                one(model, i % count)
                times.append(time.perf_counter() - start)
            return {"frames_per_s": 1.0 / statistics.median(times)}

        rounds = alternate({name: lambda model=model: frames_per_s(model) for name, model in runnable.items()},
                           FLAGS.rounds)
        speeds = {name: figures["frames_per_s"] for name, figures in rounds.items()}
        fastest = max(runnable, key=lambda name: statistics.median(speeds[name]))
        end_to_end = end_to_end_frames_per_s(runnable[fastest], FLAGS.clip, FLAGS.e2e_frames) if FLAGS.e2e_frames \
            else None
    result = {"case": case, "generator": cfg.model.generator.type, "size": size, "conv_dim": cfg.model.conv_dim,
              "res_blocks": cfg.model.res_blocks, "frames": count, "fastest": fastest,
              "fastest_e2e_frames_per_s": end_to_end}
    for name in FORMATS:
        if name in unavailable:
            result[f"{name}_unavailable"] = unavailable[name]
            continue
        result.update(Spread.of(speeds[name]).fields(f"{name}_frames_per_s"))
        result.update(Spread.ratio(speeds[name], speeds["saved_model"]).fields(f"{name}_ratio"))
        result[f"{name}_psnr"] = metrics.psnr(faces[name], faces["saved_model"])
        result[f"{name}_max_levels"] = int(np.abs(faces[name].astype(int) - faces["saved_model"]).max())
    return result


def main(argv):
    del argv
    set_threads(FLAGS.threads, 0)
    from bigo_facegen import distribution
    distribution.configure_cpu_threads()
    load_before = os.getloadavg()[0]
    cases = [(f"{g} {p}", g, p) for p in FLAGS.presets for g in FLAGS.generators]
    results = [measure(*case) for case in cases + [(model, None, None) for model in FLAGS.models]]
    machine = {"cpu": cpu_name(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
               "rounds": FLAGS.rounds, "iters": FLAGS.iters}
    if FLAGS.json:
        print(json.dumps({**machine, "results": results}))
        return
    print(f"{machine['cpu']}, load average {load_before:.1f} before and {machine['load_average_after']:.1f} after")
    print(f"batch 1, real crops of {FLAGS.clip}; frames/s (median of {FLAGS.rounds} rounds), x SavedModel (median "
          f"of the rounds' ratios, smallest and largest in brackets), PSNR dB and largest difference in levels against "
          f"the SavedModel")
    print(f"{'case':22s} {'format':15s} {'frames/s':>9s}   {'ratio':17s} {'PSNR':>7s} {'max':>4s}")
    for r in results:
        for name in FORMATS:
            if f"{name}_unavailable" in r:
                print(f"{r['case']:22s} {name:15s} unavailable: {r[name + '_unavailable']}")
                continue
            ratio = Spread(r[f"{name}_ratio_min"], r[f"{name}_ratio"], r[f"{name}_ratio_max"])
            print(f"{r['case']:22s} {name:15s} {r[name + '_frames_per_s']:9.1f}   {ratio:.2f} "
                  f"{r[name + '_psnr']:7.2f} {r[name + '_max_levels']:4d}")
        if r["fastest_e2e_frames_per_s"] is not None:
            print(f"{r['case']:22s} end to end ({r['fastest']}, default fusion, batch 8): "
                  f"{r['fastest_e2e_frames_per_s']:.1f} frames/s")


if __name__ == "__main__":
    app.run(main)

"""The main job end to end on the embedded synthetic data, no download: train, export, generate, evaluate.

    python -m experiments.quickstart                      # ~10 minutes on a 2-core CPU
    python -m experiments.quickstart --steps=6000 --output=runs/quickstart_long

1. trains the `cpu` preset on the synthetic BIGO-layout set (built by TFDS on first use) into OUTPUT/model;
   a second call resumes where the first stopped;
2. exports the latest checkpoint as a SavedModel for TF Serving into OUTPUT/export/<version>/;
3. generates a video of a person the model never saw (the person-disjoint test split) into OUTPUT/<video>.mp4;
4. evaluates the export and the copy and warp baselines on the synthetic test split into OUTPUT/eval_*/ and prints
   their tables (PSNR, SSIM, identity accuracy and keypoint NME, judged by dlib).

CI runs a short form of the same path: --steps=40 --eval_frames=2.
"""
import sys
from pathlib import Path

from absl import app, flags, logging

from bigo_facegen import bigo_folder, config as config_lib, data, dlib_face, export, files, generation
from bigo_facegen.evaluation import protocol, report
from bigo_facegen.training import Trainer

flags.DEFINE_string("output", "runs/quickstart", "Folder for the model, the export, the video and the evaluations.")
flags.DEFINE_integer("steps", 2000, "Training steps (the cpu preset runs ~5 steps/s on 2 cores).")
flags.DEFINE_string("tier", "all", "Tier set to train on: easy | medium | hard | all.")
flags.DEFINE_integer("eval_frames", 8, "Targets scored per test video.")
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    output = Path(FLAGS.output)
    try:
        config = config_lib.override(config_lib.cpu(), {"data.tier": FLAGS.tier, "train.steps": FLAGS.steps})
        files.check_output_folder(output, "--output")
        # Step 4 needs the dlib judge: a broken install is said now, not after ten minutes of training.
        dlib_face.require()
        config = data.resolve_config(config)
    except dlib_face.DlibUnavailableError as error:
        sys.exit(f"error: the evaluation needs the dlib judge: {error}")
    except (ValueError, OSError) as error:
        sys.exit(f"error: {error}")

    logging.info("1/4 training the cpu preset on the synthetic set into %s", output / "model")
    Trainer(config, output / "model").train()

    logging.info("2/4 exporting")
    export_dir = export.export_model_dir(output / "model", output / "export")

    logging.info("3/4 generating a video of an unseen person")
    eval_data = report.synthetic_data()
    # The first video of the evaluation's own test split: a person by the same rule the training split used.
    unseen = protocol.load_cases(eval_data, split="test")[0].video
    movie = output / f"{bigo_folder.video_id(unseen)}.mp4"
    generation.generate_from_annotations(export_dir, eval_data / bigo_folder.ANNOTATIONS_FILE, unseen.video, movie,
                                         face_output=output / f"{bigo_folder.video_id(unseen)}_face.mp4")

    logging.info("4/4 evaluating the model and the baselines on the synthetic test split")
    tables = {}
    for name, model in (("model", str(export_dir)), ("copy", "copy"), ("warp", "warp")):
        results = report.run(model, report.SYNTHETIC, output / f"eval_{name}",
                             max_frames_per_video=FLAGS.eval_frames)
        tables[name] = (results.parent / "results.md").read_text(encoding="utf-8")
    for name, table in tables.items():
        print(f"\n## {name}\n{table}")
    print(f"\nmodel: {output / 'model'}\nexport: {export_dir}\nvideo: {movie}\nevaluations: {output}/eval_*/")


if __name__ == "__main__":
    app.run(main)

"""Screen a motion lever in minutes: train a generator's motion alone on the optical flow, then score it.

    python -m experiments.motion_probe --data=../shared/data/real_faces/dev
    python -m experiments.motion_probe --data=../shared/data/real_faces/dev --steps=4000 \\
        --config_override=model.generator.warp_refine.motion_downscale=2 --output=runs/probe_half.json

Starts from a preset (default `real`), applies `--config_override`s as `experiments.train` does, trains the
generator's flow alone on the train split (`bigo_facegen.evaluation.motion_probe`: no painting, no critics) and
prints, for the train and the person-disjoint test split, the end-point error against OpenCV's DIS flow and the PSNR
of the reference crop moved by the flow: at initialisation (the keypoint prior), after training, and for DIS itself.
Screen a lever here before paying for a training run: a flow that gets closer to DIS without getting sharper on the
test split will not lift `experiments.evaluate`'s figures.
With --output, also writes the figures and the resolved config as JSON (written whole or not at all).
"""
from __future__ import annotations

import dataclasses
import json

from absl import app, flags
from tqdm import tqdm

from bigo_facegen import config as configs, data, files
from bigo_facegen.evaluation import motion_probe

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "A BIGO-layout folder (annotations.json + videos/) or `synthetic`.", required=True)
flags.DEFINE_enum("preset", "real", sorted(configs.PRESETS), "Configuration to start from (its generator must have "
                  "a flow).")
flags.DEFINE_integer("steps", 4000, "Flow-only training steps.", lower_bound=0)
flags.DEFINE_integer("pairs", 320, "Crop pairs of each split to score (whole batches).", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the figures and the config here as JSON.")
flags.DEFINE_multi_string("config_override", [], "section.field=value for any config field, as experiments.train.")


def resolve_config() -> configs.ExperimentConfig:
    config = configs.override(configs.preset(FLAGS.preset), {"data.dataset": FLAGS.data})
    config = configs.override(config, dict(configs.parse_override(text) for text in FLAGS.config_override))
    motion_probe.check_probe_config(config)
    return data.resolve_config(config)


def table(scores: dict) -> str:
    rows = ["| flow | train: end-point error (px) | train: PSNR | test: end-point error (px) | test: PSNR |",
            "|---|---|---|---|---|"]
    names = {"before": "at initialisation (the keypoint prior)", "after": "after flow-only training",
             "optical_flow": "DIS optical flow (the ceiling)"}
    for flow, name in names.items():
        cells = [f"{scores[split][flow].end_point_error:.3f} | {scores[split][flow].psnr:.2f}"
                 for split in ("train", "test")]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)


@files.entry_point
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = resolve_config()
    if FLAGS.output:
        files.check_output_file(FLAGS.output, "--output", (".json",))
    with tqdm(total=FLAGS.steps, desc="flow-only training", unit="step") as bar:
        def progress(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        scores = motion_probe.run(config, FLAGS.steps, FLAGS.pairs, progress)
    print(f"{config.model.generator.type}, {config.data.image_size} px crops, {FLAGS.steps} flow-only steps, "
          f"{FLAGS.pairs} pairs per split scored")
    print(table(scores))
    if FLAGS.output:
        result = {"steps": FLAGS.steps, "pairs": FLAGS.pairs, "config": config.to_dict(),
                  "scores": {split: {flow: dataclasses.asdict(score) for flow, score in flows.items()}
                             for split, flows in scores.items()}}
        files.write_atomic(FLAGS.output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)

"""Train a painter: what paints teeth, tongue and the dark cavity where a mouth opens beyond the reference's
(`--region=mouth`), or lids where an eye closes or opens (`--region=eyes`).

    python -m experiments.train_painter --data=../shared/data/real_faces/dev --output=runs/mouth [--split=train]
    python -m experiments.train_painter --data=../shared/data/real_faces/dev --output=runs/eyes --region=eyes
    python -m experiments.train_painter --data=../shared/data/real_faces/dev --output=runs/mouth_cue \
        --config_override=teeth_cue=true --init=runs/mouth
    python -m experiments.export --model=pretrained --painter=runs/mouth --painter=runs/eyes --export_dir=exports/new

It learns from every mouth or eye of the folder's clips (`painter_training`: aligned crops, the part blanked, another
frame of the same clip as the reference; L1, EfficientNet-Lite0 perceptual and local adversarial losses) and writes
`OUT/painter.json` and `OUT/painter.weights.h5`, whole or not at all. `experiments.export --painter=OUT` ships it
inside a model's export, whose frames it then paints (`--nopaint` in generate, animate and the demo leaves them as
the generator made them). The region's settings (`PainterConfig`, `EYES`) are the start; any field is set by
`--config_override=field=value`. `--init` starts from a trained painter's weights (a mouth painter given the driver's
teeth, `teeth_cue`, from one without it).
"""
from __future__ import annotations

import dataclasses
import json

from absl import app, flags

from bigo_facegen import files, painter_training
from bigo_facegen.evaluation import protocol
from bigo_facegen.models.painter.config import EYES, REGIONS, PainterConfig

flags.DEFINE_string("data", None, "A BIGO-layout folder of real clips (annotations.json + videos/).", required=True)
flags.DEFINE_string("output", None, "The folder the painter is written to.", required=True)
flags.DEFINE_enum("split", "train", protocol.SPLITS, "Which clips to learn from: the person-disjoint train split "
                  "(default), the test split, or all.")
flags.DEFINE_enum("region", "mouth", REGIONS, "What to paint: the interior of an opened mouth, or the eyes.")
flags.DEFINE_multi_string("config_override", [], "field=value for any `PainterConfig` field (values are JSON), e.g. "
                          "steps=3000, seed=1.")
flags.DEFINE_string("init", None, "A painter folder whose weights training starts from (same region, crop and "
                    "width; one without the teeth cue gets a zero kernel for it).")
FLAGS = flags.FLAGS


def config(region: str, overrides: list[str]) -> PainterConfig:
    """The painter config of `region` with the overrides, checked whole."""
    fields = {field.name for field in dataclasses.fields(PainterConfig)}
    values = {}
    for override in overrides:
        name, _, value = override.partition("=")
        if name not in fields or not value:
            raise ValueError(f"--config_override={override}: expected field=value with a field of "
                             f"{', '.join(sorted(fields))}")
        try:
            values[name] = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"--config_override={override}: the value is not JSON ({e.msg})") from None
    return dataclasses.replace(EYES if region == "eyes" else PainterConfig(), **values)


@files.entry_point
def main(argv):
    del argv
    print(painter_training.train(FLAGS.data, FLAGS.output, config(FLAGS.region, FLAGS.config_override), FLAGS.split,
                                 init=FLAGS.init))


if __name__ == "__main__":
    app.run(main)

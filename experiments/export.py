"""Export a trained generator (a training run's latest checkpoint, or an export again) as a SavedModel for TensorFlow
Serving, and optionally TFLite.

    python -m experiments.export --model=runs/hard --export_dir=exports/face [--version=N]
    python -m experiments.export --model=runs/hard --export_dir=exports/face --format=tflite \
        [--quantize=none|float16|int8]
    python -m experiments.export --model=pretrained --export_dir=exports/shipped --format=tflite

writes `exports/face/<N>/saved_model.pb` (+ `variables/`, + the sidecar `bigo_facegen.json`); N defaults to the next
free integer, and an existing version is never overwritten. The export also loads in `experiments.generate
--model=exports/face` and `experiments.evaluate`. With `--format=tflite` the version also holds the TFLite conversion
of the same serving graph, `float32.tflite`, `float16.tflite` or `int8.tflite` by `--quantize` (`bigo_facegen.tflite`),
which `--model=exports/face/<N>/int8.tflite` loads. `--model` (`--model_dir` before) is a training run, or an export
written again: `pretrained`, the model shipped in the package, gets its TFLite form this way.

## The serving signature (`serving_default`)

| name | dtype | shape | meaning |
|---|---|---|---|
| input `reference` | uint8 | (batch, S, S, 3) | RGB face crop of the reference frame, 0..255 (`geometry.crop`) |
| input `target_keypoints` | float32 | (batch, N, 3) | [x, y, flag] per point in crop pixels (flag 0 absent, 1 hidden) |
| input `reference_keypoints` | float32 | (batch, N, 3) | only for generators that read them (warp-style ones) |
| output `generated` | uint8 | (batch, S, S, 3) | the generated RGB face crop, 0..255 |

S is the training crop size (`data.image_size`, 224 for the paper preset, 64 for cpu) and N the layout's point count
(106 bigo106, 68 ibug68); both are in `<N>/bigo_facegen.json` and in `saved_model_cli show --dir exports/face/1
--tag_set serve --signature_def serving_default`. The keypoint map is drawn inside the graph. A request of the wrong
shape, with a NaN or infinite number, or with a flag other than 0, 1 or 2 is answered with an error naming the input
and what it needs; an empty batch gets empty outputs.

## Serving it

    docker run --rm -p 8501:8501 \\
        -v "$PWD/exports/face:/models/face" -e MODEL_NAME=face tensorflow/serving

TF Serving loads the highest version under `/models/face` and picks up new versions as they appear. A REST request
(one face, shown with N=2 points for brevity; a real request sends all N rows and all S x S pixels):

    curl -X POST http://localhost:8501/v1/models/face:predict -d '{
      "signature_name": "serving_default",
      "inputs": {
        "reference": [[[[120, 98, 87], [121, 99, 88], ...], ...]],
        "target_keypoints": [[[20.5, 31.0, 2], [43.5, 31.2, 2]]]
      }}'

answers `{"outputs": [[[[r, g, b], ...], ...]]}`, one (S, S, 3) uint8 image per input row.
"""

from absl import app, flags

from bigo_facegen import export, files, tflite

flags.DEFINE_string("model", None, "What to export: a training run folder (config.json + checkpoints), an export "
                    "(to write it again, e.g. with its TFLite form) or pretrained, the model shipped in the package.",
                    required=True)
flags.DEFINE_alias("model_dir", "model")
flags.DEFINE_string("export_dir", None, "Base folder of the export; the version goes in a numbered sub-folder.",
                    required=True)
flags.DEFINE_integer("version", None, "Version number (a positive integer); default: the next free one.")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "saved_model, or tflite: the SavedModel and "
                  "beside it its TFLite conversion.")
flags.DEFINE_enum("quantize", "none", list(tflite.QUANTIZATIONS), "--format=tflite: the weights as float32 (none), "
                  "float16, or int8 (dynamic-range: activations quantized per call).")
flags.DEFINE_multi_string("painter", [], "A painter's folder (`python -m experiments.train_painter`) to ship in the "
                          "export, one per region (mouth, eyes); default: those --model ships, if it is an export.")
FLAGS = flags.FLAGS


@files.entry_point
def main(argv):
    del argv
    if FLAGS.format == "tflite":
        path = tflite.export_model(FLAGS.model, FLAGS.export_dir, FLAGS.version, FLAGS.quantize,
                                   FLAGS.painter)
    else:
        path = export.export_model(FLAGS.model, FLAGS.export_dir, FLAGS.version, FLAGS.painter)
    print(path)


if __name__ == "__main__":
    app.run(main)

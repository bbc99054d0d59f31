"""Writing an `Evaluation`: results.json, results.md, per-frame metric plots and contact sheets.

    OUT/results.json          the main method's metrics overall, per tier, per condition (`conditions`) and per video
                              (+ any compared methods)
    OUT/results.md            the same as Markdown tables, with the settings and what did not apply
    OUT/plots/<video>.png     PSNR, SSIM and (where it applies) keypoint NME per frame over time, one curve per method
    OUT/sheets/<video>.png    a few targets: reference | truth | baseline | ours
    OUT/sheets/condition_<condition>.png
                              the same for the sampled targets of every video that meet a condition (`conditions`)

`run` is the library function behind `experiments.evaluate`. The report appears whole or not at all: it is built in
a temporary folder, which is renamed to OUT when OUT does not exist yet. Into an existing OUT its files are moved
one by one (renames within one folder, results.json last) once every name the report uses has been checked to be
free or of the right kind: an earlier report's files of the same names are replaced, other files in OUT left alone.

Infinite PSNR (a frame equal to the truth) is written as the string "inf" so that results.json stays strict JSON.
Plots are drawn by matplotlib's Agg renderer into images, so no display is needed.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bigo_facegen import files, keypoints, methods as methods_lib
from bigo_facegen.annotations import TIERS
from bigo_facegen.evaluation import conditions, metrics, protocol, regions
from bigo_facegen.evaluation.protocol import METRICS, REGION_METRICS, Evaluation, Sample, VideoResult
from bigo_facegen.generation_settings import GenerationSettings

SYNTHETIC = "synthetic"
RESULTS = "results.json"
# The entries of a report folder, and whether each is a folder.
_ENTRIES = {RESULTS: False, "results.md": False, "plots": True, "sheets": True}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TITLES = {"psnr": "PSNR", "ssim": "SSIM", "psnr_face": "PSNR face", "ssim_face": "SSIM face",
           "identity_accuracy": "identity acc", "identity_distance": "identity dist", "keypoint_nme": "keypoint NME",
           "keypoint_accuracy": "NME<0.05", "keypoint_jitter": "jitter", "frames": "frames",
           "identity_frames": "identity frames", "psnr_mouth": "PSNR mouth", "ssim_mouth": "SSIM mouth",
           "psnr_eyes": "PSNR eyes", "ssim_eyes": "SSIM eyes", "perceptual_face": "perceptual face",
           "perceptual_mouth": "perceptual mouth", "teeth_hit": "teeth hit", "teeth_false": "teeth false",
           "teeth_frames": "teeth frames", "eye_opening_error": "eye opening err"}
# The panels of a video's plot: metric, panel title, y axis label.
_PANELS = (("psnr", "PSNR, full frame", "dB"), ("ssim", "SSIM, full frame", "SSIM"),
           ("ssim_face", "SSIM, face crop", "SSIM"), ("keypoint_nme", "keypoint NME (dlib judge)", "NME"))


def run(model: str, data: str, output_dir: str | os.PathLike, split: str = "test",
        max_frames_per_video: int | None = None, frame_stride: int = 1, with_truth: bool = False,
        fusion: str | None = None, samples_per_video: int = 4, cache_dir: str | os.PathLike | None = None,
        progress: bool = True, tune_steps: int = 0, tune_lr: float | None = None, paint: bool = True) -> Path:
    """Evaluates `model` (`truth`, or a method `methods.load` takes: `copy`, `warp`, an export or a training
    model_dir) on `data` (`synthetic` or a BIGO-layout folder) and writes the report to `output_dir`; returns the
    path of results.json. A model's faces are fused by `fusion` (default: the model's own,
    `face_model.FaceModel.default_fusion`), after `tune_steps` of one-shot tuning on each reference (`tuning`,
    model_dirs only), and its painters lay mouths and eyes over the frames unless `paint` is false. The `warp` method
    fills the contact sheets' baseline column; `with_truth` also scores the true frames (the judge's floor).
    `output_dir` is checked before the evaluation starts."""
    check_output_dir(output_dir)
    settings = GenerationSettings(fusion=fusion, tune_steps=tune_steps, tune_lr=tune_lr, paint=paint)
    data_dir = synthetic_data(cache_dir) if data == SYNTHETIC else Path(data)
    method = None if model == protocol.TRUTH else methods_lib.load(model, settings)
    if method is None or method.model is None:
        methods, label = {model: method}, model
    else:
        fusion = fusion or method.model.default_fusion
        methods, label = {"model": method}, f"model {model}"
    if with_truth and protocol.TRUTH not in methods:
        methods[protocol.TRUTH] = None
    samples = {} if methods_lib.WARP in methods else {methods_lib.WARP: methods_lib.Warp()}
    evaluation = protocol.evaluate(data_dir, methods, split=split, max_frames_per_video=max_frames_per_video,
                                   frame_stride=frame_stride, samples_per_video=samples_per_video,
                                   sample_methods=samples, progress=progress)
    if "model" in methods:
        evaluation.settings.update({"fusion": fusion, "tune_steps": tune_steps,
                                    "tune_lr": tune_lr if tune_steps else None,
                                    "painters": [p.config.region for p in method.model.painters] if paint else []})
    return write_report(evaluation, output_dir, main=next(iter(methods)), baseline="warp",
                        labels={"model": label} if "model" in methods else None)


def synthetic_data(cache_dir: str | os.PathLike | None = None, num_videos: int = 12, frames_per_video: int = 24,
                   frame_size: tuple[int, int] = (256, 256), seed: int = 0) -> Path:
    """The synthetic evaluation set (`bigo_facegen.synthetic.generate`), generated once into a cache folder (default
    `~/.cache/bigo_facegen`), atomically: a folder with annotations.json is complete."""
    from bigo_facegen import synthetic

    cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "bigo_facegen"
    target = cache_dir / f"synthetic_eval_v{num_videos}_f{frames_per_video}_{frame_size[0]}x{frame_size[1]}_s{seed}"
    if (target / protocol.ANNOTATIONS_FILE).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = files.temporary_folder(target)
    try:
        synthetic.generate(building, num_videos=num_videos, frames_per_video=frames_per_video, frame_size=frame_size,
                           seed=seed)
        os.replace(building, target)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (target / protocol.ANNOTATIONS_FILE).exists():   # not merely another process having finished first
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def method_tables(evaluation: Evaluation, method: str) -> dict:
    """`{"overall": summary, "tiers": {tier: summary}, "conditions": {condition: summary}, "videos": {video: summary
    + tier + identity}}`; conditions (`conditions.CONDITIONS`) with no target frame are left out."""
    all_scores = [s for v in evaluation.videos for s in v.scores[method]]
    order = {tier: i for i, tier in enumerate(TIERS)}
    tiers = sorted({v.case.tier for v in evaluation.videos}, key=lambda t: (order.get(t, len(order)), t))
    layout = keypoints.get_layout(evaluation.layout)
    by_condition: dict[str, list] = {name: [] for name in conditions.CONDITIONS}
    for v in evaluation.videos:
        for target, score in zip(v.case.targets, v.scores[method], strict=True):
            for name in conditions.classify(v.case.reference, target, layout):
                by_condition[name].append(score)
    return {
        "overall": protocol.summarize(all_scores),
        "tiers": {tier: protocol.summarize([s for v in evaluation.videos if v.case.tier == tier
                                            for s in v.scores[method]]) for tier in tiers},
        "conditions": {name: protocol.summarize(scores) for name, scores in by_condition.items() if scores},
        "videos": {v.case.video.video: {**protocol.summarize(v.scores[method]), "tier": v.case.tier,
                                        "identity": v.case.identity} for v in evaluation.videos},
    }


def check_output_dir(output_dir: str | os.PathLike, stems: Iterable[str] = ()) -> None:
    """Raises `files.OutputPathError` unless a report can be written to `output_dir`: a writable folder, or one that
    can be made, in which each name the report uses (and `plots/<stem>.png`, `sheets/<stem>.png` for `stems`) is
    absent or of the kind the report writes there."""
    output_dir = Path(output_dir)
    files.check_output_folder(output_dir, "output")
    wanted = {**_ENTRIES, **{name: False for name in _pictures(stems)}}
    for name, is_folder in wanted.items():
        entry = output_dir / name
        if os.path.lexists(entry) and entry.is_dir() != is_folder:
            have, need = ("a folder", "file") if entry.is_dir() else ("not a folder", "folder")
            raise files.OutputPathError(f"output {output_dir}: {entry} is {have}, but the report writes its {name} "
                                        f"{need} there; move it away or choose another output folder")
        if is_folder and entry.is_dir() and not os.access(entry, os.W_OK | os.X_OK):
            raise files.OutputPathError(f"output {output_dir}: no permission to write in {entry}")


def _pictures(stems: Iterable[str]) -> list[str]:
    """The report's plot and sheet files of `stems` (videos; a condition's has its sheet only), relative to its
    folder, each once."""
    return list(dict.fromkeys(f"{folder}/{stem}.png" for stem in stems for folder in ("plots", "sheets")
                              if folder == "sheets" or not stem.startswith("condition_")))


def condition_samples(evaluation: Evaluation, limit: int = 8) -> dict[str, list[Sample]]:
    """The contact-sheet samples of all videos whose target meets each condition (at most `limit`, evenly strided
    over the videos), for the conditions that have any."""
    layout = keypoints.get_layout(evaluation.layout)
    found: dict[str, list[Sample]] = {name: [] for name in conditions.CONDITIONS}
    for video in evaluation.videos:
        targets = {target.index: target for target in video.case.targets}
        for sample in video.samples:
            for name in conditions.classify(video.case.reference, targets[sample.index], layout):
                found[name].append(sample)
    return {name: protocol.strided(samples, limit) for name, samples in found.items() if samples}


def write_report(evaluation: Evaluation, output_dir: str | os.PathLike, main: str | None = None,
                 baseline: str | None = "warp", labels: dict[str, str] | None = None) -> Path:
    """Writes everything under `output_dir`, whole or not at all (see the module's docstring); `main` (default: the
    first method) is "ours" on the contact sheets, `baseline` the column beside it. Returns the path of
    results.json."""
    output_dir = Path(output_dir)
    main = main or evaluation.methods[0]
    labels = labels or {}
    by_condition = condition_samples(evaluation)
    stems = [Path(video.case.video.video).stem for video in evaluation.videos]
    stems += [f"condition_{name}" for name in by_condition]
    check_output_dir(output_dir, stems)
    tables = {name: method_tables(evaluation, name) for name in evaluation.methods}
    results = {"method": labels.get(main, main), "data": str(evaluation.data_dir), "layout": evaluation.layout,
               "settings": evaluation.settings,
               **tables[main],
               "compared": {labels.get(n, n): {"overall": t["overall"], "tiers": t["tiers"],
                                               "conditions": t["conditions"]}
                            for n, t in tables.items() if n != main}}
    def write(staging: Path) -> list[Path]:
        for stem, video in zip(stems, evaluation.videos):
            files.write_png(staging / "plots" / f"{stem}.png", metric_plot(video, labels))
            files.write_png(staging / "sheets" / f"{stem}.png", contact_sheet(video.samples, main, baseline, labels))
        for name, samples in by_condition.items():
            files.write_png(staging / "sheets" / f"condition_{name}.png",
                            contact_sheet(samples, main, baseline, labels))
        files.write_atomic(staging / "results.md", _markdown(evaluation, tables, main, labels))
        files.write_atomic(staging / RESULTS, json.dumps(_strict(results), indent=2))
        # results.json last: a reader that finds the new one finds the rest of the report beside it.
        return [*map(Path, _pictures(stems)), Path("results.md"), Path(RESULTS)]

    files.publish_folder(output_dir, write)
    return output_dir / RESULTS


def _strict(value):
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


# --- Markdown ---

def _cell(value, key: str) -> str:
    if value is None:
        return "n/a"
    if key in ("frames", "identity_frames", "teeth_frames"):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if key.startswith("psnr"):
        return f"{value:.2f}"
    if key in ("keypoint_nme", "keypoint_jitter", "perceptual_face", "perceptual_mouth", "eye_opening_error"):
        return f"{value:.4f}"
    return f"{value:.3f}"


def _tables(rows: list[tuple[str, dict]], first: str) -> list[str]:
    """The rows' frame and face metrics, then their mouth and eye ones (`regions`): one table would be too wide."""
    return [*_table(rows, first, [*METRICS, "frames", "identity_frames"]), "",
            *_table(rows, first, [*REGION_METRICS, "frames"])]


def _table(rows: list[tuple[str, dict]], first: str, keys: list[str]) -> list[str]:
    lines = [f"| {first} | " + " | ".join(_TITLES[k] for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for name, summary in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(summary[k], k) for k in keys) + " |")
    return lines


def _markdown(evaluation: Evaluation, tables: dict, main: str, labels: dict[str, str]) -> str:
    name = lambda m: labels.get(m, m)  # noqa: E731
    s = evaluation.settings
    lines = [f"# Evaluation: {name(main)}", "",
             f"Data: `{evaluation.data_dir}` ({evaluation.layout} keypoints), split `{s['split']}`, "
             f"{len(evaluation.videos)} videos, {tables[main]['overall']['frames']} target frames"
             + (f", every {s['frame_stride']}th face frame" if s["frame_stride"] > 1 else "")
             + (f", at most {s['max_frames_per_video']} per video" if s["max_frames_per_video"] else "") + ".",
             "", f"Protocol: {evaluation.protocol} Metrics are means over target frames.", "",
             f"- PSNR / SSIM: full frame and the target's face box (square, resampled to {s['face_crop_size']} px); "
             f"SSIM {s['ssim']}.",
             f"- Identity: dlib descriptor of each generated frame assigned to the nearest of "
             f"{s['identity_gallery']} reference descriptors; accuracy = share assigned to its own person; distance "
             f"= to its own reference.",
             f"- Mouth and eyes (second tables; `bigo_facegen.evaluation.regions`): PSNR / SSIM in the box of the "
             f"target's outer lips, and of its eyes, grown by {s['region_growth']} x the outer-eye-corner distance, "
             f"at native resolution (SSIM n/a where the box is under {metrics.SSIM_WINDOW} px). Perceptual: "
             f"EfficientNet-Lite0 features at strides 2-16, unit-normalised over channels, squared distance averaged "
             f"(0 = identical), on the face crop and on the mouth box resized to {s['mouth_size'][0]}x"
             f"{s['mouth_size'][1]}" + ("" if s["perceptual_weights"] else " (n/a: no Lite0 weights)") + ". Teeth, "
             f"on `mouth_open` targets: a frame shows teeth when over {regions.TEETH_SHARE:.0%} of the target's "
             f"inner-lip polygon is bright and unsaturated; hit = share of the `teeth frames` (truth shows teeth) "
             f"where the output does, false = share of the others where the output paints some. Eye opening error, "
             f"on `blink` targets: |eye openness of the judge's points on the output - on the truth|."]
    nme = (f"mean error over the target's outer-eye-corner distance (NME), and the share of frames with NME < "
           f"{s['nme_threshold']}.")
    if evaluation.layout == keypoints.IBUG68.name:
        lines.append(f"- Keypoints: dlib's 68 points predicted in the target's detector box (bbox / 1.6), {nme}")
    else:
        lines.append(f"- Keypoints: dlib's 68 points predicted in the face box dlib's detector finds, against the "
                     f"{evaluation.layout} points that correspond to them, {nme} Identity and keypoints are judged "
                     f"only on frames where dlib's detector finds a face (column `identity frames`); n/a where none.")
    lines += ["", "## Overall", ""]
    lines += _tables([(name(m), tables[m]["overall"]) for m in evaluation.methods], "method")
    lines += ["", "## Per tier", ""]
    for tier in tables[main]["tiers"]:
        lines += [f"### {tier}", ""]
        lines += _tables([(name(m), tables[m]["tiers"][tier]) for m in evaluation.methods], "method")
        lines.append("")
    lines += ["## Per condition", "",
              "Each target against its reference, from the keypoints (`bigo_facegen.evaluation.conditions`): "
              "`mouth_open` opens the mouth beyond the reference's, `blink` closes the eyes, `head_turn` turns the "
              "head (eye-width ratio), `other` none of these; a frame can meet several.", ""]
    for condition in tables[main]["conditions"]:
        lines += [f"### {condition}", ""]
        lines += _tables([(name(m), tables[m]["conditions"][condition]) for m in evaluation.methods], "method")
        lines.append("")
    lines += [f"## Per video ({name(main)})", ""]
    lines += _tables([(f"{v} ({t['tier']})", t) for v, t in tables[main]["videos"].items()], "video")
    lines += ["", "Plots: `plots/<video>.png` (metrics per frame over time). Contact sheets: `sheets/<video>.png`, "
              "and per condition `sheets/condition_<condition>.png`.", ""]
    return "\n".join(lines)


# --- Images ---

def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45,
          colour=(30, 30, 30)) -> None:
    cv2.putText(image, text, origin, _FONT, scale, colour, 1, cv2.LINE_AA)


def metric_plot(video: VideoResult, labels: dict[str, str] | None = None) -> np.ndarray:
    """The per-frame metrics of one video over time as an RGB uint8 image: a panel per metric (`_PANELS`; keypoint NME
    where the judge found faces), a line per method, each method in one colour throughout."""
    labels = labels or {}
    colours = {method: f"C{i}" for i, method in enumerate(video.scores)}
    panels = [(title, unit, series) for key, title, unit in _PANELS if (series := _per_method(video, key))]
    figure = Figure(figsize=(8, 0.9 + 1.9 * len(panels)), dpi=100, layout="constrained")
    figure.suptitle(video.case.video.video)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for panel, (title, unit, series) in zip(axes, panels):
        panel.set_title(title, fontsize="medium", loc="left")
        panel.set_ylabel(unit)
        _draw_lines(panel, {method: (x, y, colours[method]) for method, (x, y) in series.items()})
    axes[-1].set_xlabel("frame")
    shown = dict.fromkeys(method for _, _, series in panels for method in series)
    figure.legend([Line2D([], [], color=colours[m]) for m in shown], [labels.get(m, m) for m in shown],
                  loc="outside lower center", ncols=len(shown), frameon=False)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _per_method(video: VideoResult, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Frame indices and values of metric `key` per method; a frame the judge found no face in is a gap (NaN), a
    method without any value is left out."""
    series = {}
    for method, scores in video.scores.items():
        values = np.array([np.nan if getattr(s, key) is None else getattr(s, key) for s in scores], np.float64)
        if not np.isnan(values).all():
            series[method] = (np.array([s.index for s in scores]), values)
    return series


def _draw_lines(panel, series: dict[str, tuple[np.ndarray, np.ndarray, str]]) -> None:
    """One line per method (x, y, colour) on `panel`, scaled to the finite values; an infinite value (a frame equal to
    the truth) is drawn at the top."""
    finite = np.concatenate([y[np.isfinite(y)] for _, y, _ in series.values()])
    if finite.size == 0:
        panel.text(0.5, 0.5, "no finite values", transform=panel.transAxes, ha="center", va="center")
        return
    low, high = float(finite.min()), float(finite.max())
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    for x, y, colour in series.values():
        panel.plot(x, np.clip(y, low, high), color=colour, linewidth=1.2, marker="." if len(x) < 30 else None)
    if any(np.isposinf(y).any() for _, y, _ in series.values()):
        panel.text(0.99, 0.98, "inf drawn at the top", transform=panel.transAxes, ha="right", va="top",
                   fontsize="small", color="0.4")
        high += 5 * pad     # room above the line of infinite values for it and the note
    panel.set_ylim(low, high)
    panel.grid(True, color="0.9")


def contact_sheet(samples: list[Sample], main: str, baseline: str | None, labels: dict[str, str] | None = None
                  ) -> np.ndarray:
    """Rows of targets, columns reference | truth | baseline | ours (a column whose method was not run is left
    out; the baseline column too when the baseline is the main method)."""
    labels = labels or {}
    columns = [("reference", "reference"), ("truth", "truth")]
    if baseline and baseline != main:
        columns.append((baseline, f"baseline: {labels.get(baseline, baseline)}"))
    columns.append((main, f"ours: {labels.get(main, main)}"))
    rows = []
    for sample in samples:
        present = [(key, title) for key, title in columns if key in sample.frames]
        tiles = []
        for key, title in present:
            tile = np.ascontiguousarray(sample.frames[key]).copy()
            caption = title if key != "truth" else f"truth (frame {sample.index})"
            cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (255, 255, 255), -1)
            _text(tile, caption, (4, 13), 0.42)
            tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)

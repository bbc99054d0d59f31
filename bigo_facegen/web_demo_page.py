"""The demo's web page (Gradio) and what it does with a request: `animate.animate` on the uploads, checked first.

Import it only where `web_demo.serve` has pointed Gradio's folder (GRADIO_TEMP_DIR, read when Gradio is imported,
when the page and its app are made and on every request) into the demo's temporary folder.

Each request is refused with one line naming the user's file (as text, never as HTML): a source that is not an image
or is damaged or too large to decode (`video.read_image`, which reads its size from its header first), a driving file
that is not a video (an image is not one), a source without a face (animate's own check); uploads over the size limit
are refused by Gradio's upload route. The driving video is cut to its first `Limits.driving_seconds`, and to no more
than `Limits.driving_frame_cap` frames whatever frame rate it claims; a source larger than `Limits.source_side` pixels
on a side is scaled down; one request runs at a time; uploads and results are deleted `Limits.keep_minutes` after
they were made.
"""
from __future__ import annotations

import dataclasses
import html
import os
import shutil
import tempfile
from pathlib import Path

import gradio as gr
from absl import logging

from bigo_facegen import animate, annotate, annotations, bigo_folder, files, motion_transfer, video
from bigo_facegen.methods import Method
from bigo_facegen.motion_transfer import MotionSettings
from bigo_facegen.web_demo import NOMINAL_FPS, Limits

# Example rows offered from an examples folder: pairs of persons, in name order.
EXAMPLE_ROWS = 3
# System fonts: Gradio's default theme fetches its fonts from Google, and the demo asks for no network.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
# How often Gradio looks for the files older than `Limits.keep_minutes` to delete them (more often for shorter times).
DELETE_EVERY_SECONDS = 60


class RequestError(ValueError):
    """A request the demo refuses or could not do; the message names the user's files by their names."""


@dataclasses.dataclass(frozen=True)
class Upload:
    """A file the page sent: where the server keeps it, and the name the user gave it (the one messages show)."""
    path: Path
    name: str

    @classmethod
    def from_payload(cls, payload: dict) -> Upload:
        """From Gradio's file payload (`gradio.FileData` as a dict: `path`, `orig_name`, ...)."""
        path = Path(payload["path"])
        return cls(path, payload["orig_name"] or path.name)


@dataclasses.dataclass(frozen=True)
class Result:
    """What a request made: the video, and animate's counts."""
    video: Path
    stats: animate.AnimateStats


def build_page(method: Method, results: Path, examples: list[list[str]], limits: Limits) -> gr.Blocks:
    """The demo's page; each request's video is written into a new folder under `results`. Gradio deletes the files
    it was given or served (uploads, results; not the examples) `limits.keep_minutes` after they were made."""
    keep_seconds = max(1, round(limits.keep_minutes * 60))
    with gr.Blocks(title="bigo-facegen: animate a face", analytics_enabled=False,
                   delete_cache=(min(DELETE_EVERY_SECONDS, keep_seconds), keep_seconds)) as page:
        gr.Markdown(_introduction(limits))
        with gr.Row():
            source = gr.Image(label="Source photo", sources=["upload"], elem_id="source")
            driving = gr.Video(label="Driving video", sources=["upload"], elem_id="driving")
            output = gr.Video(label="Animated", interactive=False, elem_id="output")
        with gr.Row():
            mode = gr.Radio(list(motion_transfer.MODES), value="relative", label="Motion", elem_id="mode",
                            info="relative: the driver's motion added to the photo's face (anyone); absolute: the "
                                 "driver's keypoints themselves (the same person)")
            reference = gr.Radio(list(motion_transfer.REFERENCES), value="first", label="Driving reference",
                                 elem_id="reference", info="the driving frame that counts as no motion: the first "
                                                           "with a face, or the one nearest the photo's expression")
            tracking = gr.Radio(list(annotate.TRACKINGS), value=animate.DEFAULT_TRACKING, label="Driving keypoints",
                                elem_id="tracking", info="track: dlib's points followed by optical flow and held to "
                                                         "dlib (steadier); detect: dlib on every frame")
            gaze = gr.Checkbox(value=animate.DEFAULT_GAZE, label="Follow the driver's gaze", elem_id="gaze",
                               info="the photo's irises move where the driver's look (MediaPipe's iris model)")
        run = gr.Button("Animate", variant="primary", elem_id="run")
        summary = gr.Markdown(elem_id="summary")
        if examples:
            gr.Examples(examples, inputs=[source, driving], label="Examples (development clips)",
                        cache_examples=False)

        # `progress`, though unused, asks Gradio for a progress bar that follows animate's tqdm bars.
        def on_run(source_payload, driving_payload, mode_value, reference_value, tracking_value, gaze_value,
                   progress=gr.Progress(track_tqdm=True)):
            if source_payload is None or driving_payload is None:
                raise _refusal("Give a source photo and a driving video (or pick an example) first.")
            try:
                motion = MotionSettings(mode=mode_value, reference=reference_value)
                result = animate_uploads(method, Upload.from_payload(source_payload),
                                         Upload.from_payload(driving_payload), motion, results, limits,
                                         tracking_value, gaze_value)
            # RequestError and MotionError (a mode or reference the page does not offer) are ValueErrors.
            except ValueError as e:
                raise _refusal(str(e)) from e
            lost = f"; {result.stats.lost} driving frames without a face kept the last motion" if result.stats.lost \
                else ""
            return str(result.video), (f"{result.stats.frames} frames, {motion.mode} motion, driving reference "
                                       f"{motion.reference}, driving keypoints by {tracking_value}"
                                       f"{_gaze_summary(gaze_value, result.stats.gaze)}{lost}.")

        # Unprocessed payloads: Gradio's image preprocessing would fail on a non-image with a message of its own, and
        # the payload keeps the user's file name for ours. The uploads are still checked to lie in Gradio's folder.
        # One request at a time: each uses every core.
        run.click(on_run, [source, driving, mode, reference, tracking, gaze], [output, summary], preprocess=False,
                  concurrency_limit=1)
    return page


def _gaze_summary(asked: bool, followed: bool) -> str:
    if not asked:
        return ""
    return ", the driver's gaze followed" if followed else ", the photo's irises could not follow the driver's gaze"


def _refusal(message: str) -> gr.Error:
    """The page shows the message, escaped (Gradio renders it as HTML, and it holds the user's file names); the
    console gets it as one line rather than Gradio's traceback."""
    logging.info("request refused: %s", message)
    return gr.Error(html.escape(message), print_exception=False)


def _introduction(limits: Limits) -> str:
    return (
        "# Animate a face\n"
        "Upload a photo of a face and a video of someone moving: dlib finds the face's 68 points on the photo and the "
        "driver's are followed through its frames (or found by dlib on every frame), the driver's motion is moved "
        "onto the photo's face, and the model makes one frame per driving frame, at the photo's size and the driver's "
        "frame rate.\n\n"
        f"Limits: files up to {limits.upload_mb:g} MB; the first {limits.driving_seconds:g} s of the driving video "
        f"are used, and at most {limits.driving_frame_cap} frames of it ({limits.driving_seconds:g} s at "
        f"{NOMINAL_FPS:g} fps); photos larger than {limits.source_side} pixels on a side are scaled down; one video "
        "is made at a time. It all runs on this machine: uploads and results stay in a temporary folder, and are "
        f"deleted {limits.keep_minutes:g} minutes after they were made, and all of them when the demo stops.")


def animate_uploads(method: Method, source: Upload, driving: Upload, motion: MotionSettings,
                    results: Path, limits: Limits, tracking: str = animate.DEFAULT_TRACKING,
                    gaze: bool = animate.DEFAULT_GAZE) -> Result:
    """Animates an uploaded photo with an uploaded video, its keypoints found as `tracking` says
    (`annotate.TRACKINGS`), the photo's irises following the driver's with `gaze`, into a new folder under `results`.
    Raises RequestError, naming the uploads by their users' names, and leaves nothing behind."""
    results.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=results))
    source_image = folder / "source.png"
    names = {source.path: source.name, source_image: source.name, driving.path: driving.name}
    try:
        # Scaled down before it is written: animate reads an image file, and the upload's name may not say it is one.
        files.write_png(source_image, video.read_image(source.path, limits.source_side))
        info = video.probe(driving.path)
        fps = info.playback_fps
        output = folder / "animated.mp4"
        stats = animate.animate(method, source_image, driving.path, output, motion=motion,
                                max_frames=limits.driving_frames(fps), max_side=limits.source_side, tracking=tracking,
                                gaze=gaze)
    # GenerationError, MotionError, VideoError, ImageError, OutputPathError are ValueErrors.
    except (ValueError, OSError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        message = str(e)
        for path, name in names.items():
            message = message.replace(str(path), name)
        raise RequestError(message) from e
    source_image.unlink()
    return Result(output, stats)


def example_rows(folder: str | os.PathLike, into: Path, count: int = EXAMPLE_ROWS) -> list[list[str]]:
    """Up to `count` rows of [source photo, driving clip] from the BIGO-layout `folder`: its persons in name order,
    two by two; the first one's first clip gives the photo (its first frame with a face, written as a PNG into
    `into`), the second one's first clip drives."""
    folder = Path(folder)
    videos = sorted(annotations.load(folder / bigo_folder.ANNOTATIONS_FILE), key=lambda v: v.video)
    people = bigo_folder.identities(videos, folder)
    first_clip = {}
    for entry in videos:
        first_clip.setdefault(people[entry.video], entry)
    persons = sorted(first_clip)
    rows = []
    for source_person, driving_person in zip(persons[0::2], persons[1::2]):
        source = first_clip[source_person]
        face_frames = source.face_frames()
        if not face_frames:
            continue
        photo = into / f"{bigo_folder.video_id(source)}_{face_frames[0].index}.png"
        files.write_png(photo, video.read_frame(annotations.resolve_video_path(source, folder), face_frames[0].index))
        rows.append([str(photo), str(annotations.resolve_video_path(first_clip[driving_person], folder))])
        if len(rows) == count:
            break
    logging.info("%d example rows from %s", len(rows), folder)
    return rows

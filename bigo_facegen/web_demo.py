"""The web demo behind `experiments.demo`: `animate.animate` in a browser page, on this machine alone.

    serve("pretrained", examples="../shared/data/real_faces/dev")      # http://127.0.0.1:7860 until Ctrl-C

The page (`web_demo_page`, Gradio) takes a source photo and a driving video, uploaded or picked from example rows made
from a BIGO-layout folder (a frame of one person's clip as the photo, another person's clip as the driver), the motion
mode, the driving reference, how the driving keypoints are found (tracked, the default, or detected on every frame)
and whether the photo's irises follow the driver's gaze (on by default), and gives back the animated video, with a
progress bar.

Everything the demo writes lies in one temporary folder, removed when it stops: Gradio's uploads, the files it serves
and each request's result, and the folders its libraries would otherwise make in the home folder or the system's
temporary folder. Gradio, Keras and matplotlib choose those when they are first imported, so `serve` points them into
the folder before it imports the page, and must run in a process that has not imported them yet. It asks for no
network: no analytics or version check, no share link, system fonts. Uploads and results are deleted
`Limits.keep_minutes` after they were made (Gradio's `delete_cache`): a demo that runs for weeks keeps what the
requests of its last `keep_minutes` gave and made, not all of them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# The demo's folder for the files Gradio keeps and serves: uploads, example photos, results.
SERVED_FOLDER = "gradio"
_MB = 1024 * 1024
# The frame rate at which `Limits.driving_seconds` counts frames at most: a file may claim any rate (one of 277 KB
# claimed 1000 fps, and one request found faces in all its 1000 frames, 53 s), and phones record at 30.
NOMINAL_FPS = 30.0
# The libraries that choose their folders when first imported (see `_library_folders`).
_FOLDER_CHOOSING_LIBRARIES = ("gradio", "keras", "matplotlib")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of this machine, and how long the demo keeps what it was given and made."""
    upload_mb: float = 50.0
    driving_seconds: float = 10.0
    source_side: int = 1024
    keep_minutes: float = 60.0

    def __post_init__(self):
        for name in ("upload_mb", "driving_seconds", "source_side", "keep_minutes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"demo limit {name} must be > 0, got {getattr(self, name)}")

    @property
    def driving_frame_cap(self) -> int:
        """The most driving frames a request uses, whatever frame rate the video claims: `driving_seconds` at
        `NOMINAL_FPS`."""
        return max(1, int(self.driving_seconds * NOMINAL_FPS))

    def driving_frames(self, fps: float) -> int:
        """The driving frames a request uses of a video at `fps`: its first `driving_seconds`, at most
        `driving_frame_cap`."""
        return max(1, min(int(self.driving_seconds * fps), self.driving_frame_cap))


def serve(model: str, examples: str | os.PathLike | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          limits: Limits = Limits()) -> None:
    """Serves the demo at http://host:port until interrupted (Ctrl-C, or SIGTERM with `files.unwind_on_sigterm`),
    then removes its temporary folder. `model` names the method that makes the frames, as `methods.load` takes it
    (a model, or `warp`); `examples` a BIGO-layout folder (None: no example rows)."""
    imported = [name for name in _FOLDER_CHOOSING_LIBRARIES if name in sys.modules]
    if imported:
        raise RuntimeError(f"web_demo.serve: {', '.join(imported)} already imported, with folders outside the "
                           f"demo's; serve the demo from a process of its own (python -m experiments.demo)")
    folder = Path(tempfile.mkdtemp(prefix="bigo_facegen_demo_"))
    try:
        with _library_folders(folder):
            # Imported here, once the libraries' folders point into the demo's (see the module doc).
            from bigo_facegen import distribution, methods, web_demo_page

            distribution.configure_cpu_threads()
            method = methods.load(model)
            served = folder / SERVED_FOLDER
            rows = web_demo_page.example_rows(examples, served / "examples") if examples is not None else []
            page = web_demo_page.build_page(method, served / "results", rows, limits)
            # No share link, server-side rendering (Node) or MCP endpoint, whatever Gradio's environment variables say.
            page.launch(server_name=host, server_port=port, share=False, max_file_size=int(limits.upload_mb * _MB),
                        prevent_thread_lock=True, ssr_mode=False, mcp_server=False, theme=web_demo_page.THEME)
            try:
                page.block_thread()
            finally:
                page.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _library_folders(folder: Path) -> Iterator[None]:
    """Points the libraries' folders into `folder` (created), and back as they were at the end."""
    variables = {
        # Gradio's uploads and served files (it has no argument for them); read on every request too.
        "GRADIO_TEMP_DIR": folder / SERVED_FOLDER,
        # Everything else's temporary files: the upload parser's, ffmpeg's (Gradio probes videos with it).
        "TMPDIR": folder / "tmp",
        # matplotlib's font cache (TensorFlow imports matplotlib) and Keras's keras.json, written on import.
        "MPLCONFIGDIR": folder / "matplotlib",
        "KERAS_HOME": folder / "keras",
    }
    previous = {name: os.environ.get(name) for name in variables}
    previous_tempdir = tempfile.tempdir
    for name, path in variables.items():
        path.mkdir()
        os.environ[name] = str(path)
    # `tempfile` keeps the folder it found first.
    tempfile.tempdir = str(variables["TMPDIR"])
    try:
        yield
    finally:
        tempfile.tempdir = previous_tempdir
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value

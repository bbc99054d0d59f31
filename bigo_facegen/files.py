"""Writing outputs so that no reader ever sees half of one and no run leaves debris: paths checked before the work,
files and folders built under a temporary name beside the target, then one rename.

Temporary files and folders get the mode a plain `open()` or `mkdir()` would give (0o666 / 0o777 less the umask):
`tempfile.mkstemp` and `mkdtemp` create them 0600 / 0700, and the rename would hand that mode on to the output,
hiding it from every other user.
"""
from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

# Tries at a free random name; as `tempfile`'s, only a crowded folder or a broken random source exhausts them.
_NAME_TRIES = 100


class OutputPathError(ValueError):
    """An output path cannot be written: it is a folder where a file is wanted (or the reverse), lies under a file,
    sits in a folder without write permission, or has a suffix the writer does not know."""


def check_output_file(path: str | os.PathLike, name: str, suffixes: Iterable[str] = ()) -> None:
    """Raises `OutputPathError` unless a file can be written at `path` (`name` says which input it is); `suffixes`,
    if given, are the lower-case suffixes allowed. Checks only, creates nothing: call it before the work."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{name} {path}: is an existing folder; give the path of a file to write")
    suffixes = sorted(suffixes)
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{name} {path}: cannot write {path.suffix or 'suffix-less'} files; use one of "
                              f"{', '.join(suffixes)}")
    _check_creatable(path, name)


def check_output_folder(path: str | os.PathLike, name: str) -> None:
    """Raises `OutputPathError` unless `path` is a writable folder or one that can be created."""
    path = Path(path)
    if os.path.lexists(path):
        if not path.is_dir():
            raise OutputPathError(f"{name} {path}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputPathError(f"{name} {path}: no permission to write in this folder")
        return
    _check_creatable(path, name)


def _check_creatable(path: Path, name: str) -> None:
    # The nearest folder that exists is where the first new entry would be made (the target or its first missing
    # parent), so it alone decides.
    folder = path.absolute().parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"{name} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name} {path}: no permission to create files in {folder}")


def temporary_file(beside: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file with a random hidden name in the folder of `beside` (which must exist), ending in `suffix`,
    with the mode `open()` gives."""
    return _create_unique(Path(beside), suffix, _create_file)


def temporary_folder(beside: str | os.PathLike) -> Path:
    """A new empty folder with a random hidden name in the folder of `beside` (which must exist), with the mode
    `mkdir` gives."""
    return _create_unique(Path(beside), ".tmp", lambda p: os.mkdir(p, 0o777))


def publish_folder(output_dir: str | os.PathLike, write: Callable[[Path], list[Path]]) -> Path:
    """Writes a folder of files whole or not at all: `write(staging)` fills a temporary folder and returns the paths
    it wrote, relative to it, in the order they are to appear (a reader's entry point last). The temporary folder is
    renamed to `output_dir` when that does not exist yet; into an existing one the files are moved one by one
    (renames within one file system), replacing files of the same names and leaving the others alone. Returns
    `output_dir`."""
    output_dir = Path(output_dir)
    fresh = not os.path.lexists(output_dir)
    if fresh:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_folder(output_dir if fresh else output_dir / output_dir.name)
    try:
        pieces = write(staging)
        if fresh:
            os.rename(staging, output_dir)
        else:
            for piece in pieces:
                (output_dir / piece).parent.mkdir(exist_ok=True)
                os.replace(staging / piece, output_dir / piece)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _create_unique(beside: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    for _ in range(_NAME_TRIES):
        candidate = beside.with_name(f".{beside.name}.{secrets.token_hex(4)}{suffix}")
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{beside.parent}: no free temporary name after {_NAME_TRIES} tries")


def write_atomic(path: str | os.PathLike, content: str | bytes) -> None:
    """Writes `content` (text as UTF-8) to `path`, creating its folder; on any failure the old file stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path)
    try:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """An RGB uint8 image as a PNG file, atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_atomic(path, encoded.tobytes())


def unwind_on_sigterm() -> None:
    """Makes SIGTERM (what `kill`, job schedulers and container runtimes send) leave the process the way Ctrl-C
    does, through every `with` and `except` on the stack, so that writers remove their temporary files; its default
    action ends the process where it stands and leaves them behind. The exit status is 128 + 15, as a shell reports
    a process killed by it. For entry points: signal handlers belong to the main program."""
    signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def entry_point(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    """An entry point's `main` (for `absl.app.run`) that ends on a signal the way its user expects, every `with` and
    `except` on the stack unwound first, so that writers remove their temporary files: SIGTERM as
    `unwind_on_sigterm` says, Ctrl-C (SIGINT) with one line rather than Python's traceback and the exit status a shell
    reports for it, 128 + 2."""

    @functools.wraps(main)
    def run(argv: list[str]) -> object:
        unwind_on_sigterm()
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(128 + signal.SIGINT) from None

    return run

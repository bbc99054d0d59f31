"""Writing outputs so that no reader ever sees half of one and no run leaves debris: paths checked before the work,
files and folders built under a temporary name beside the target, then one rename.

Temporary files and folders get the mode a plain `open()` or `mkdir()` would give (0o666 / 0o777 less the umask):
`tempfile.mkstemp` and `mkdtemp` create them 0600 / 0700, and the rename would hand that mode on to the output,
hiding it from every other user.

A process killed outright (`kill -9`, the OOM killer, a power cut) runs no clean-up, so its temporary files stay.
Each temporary file is locked (`fcntl.flock`) by its writer for as long as it writes, and the kernel drops the lock
with the process: the next writer of the same target removes those of its temporary files whose lock it can take,
and never a live writer's, in this process or another.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import shutil
import signal
import stat
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

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


def file_key(path: str | os.PathLike) -> tuple:
    """What names the file at `path`: its device and inode where it exists (so that a symbolic or hard link to it,
    or a path through a linked folder or a `..`, is the same file), else its real path (symbolic links and `..`
    resolved, as a writer creating it would)."""
    real = os.path.realpath(path)
    try:
        status = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        return ("path", real)
    return ("file", status.st_dev, status.st_ino)


def check_distinct(outputs: Mapping[str, str | os.PathLike | None],
                   inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Raises `OutputPathError` naming both paths where one of `outputs` (name -> path; None: absent) is another of
    them or one of the existing `inputs`, by whatever path (`file_key`): writing it would destroy the other. Checks
    only: call it before the work."""
    taken = {file_key(path): f"the input {name} {path}; writing it would destroy that input"
             for name, path in inputs.items() if path is not None and os.path.exists(path)}
    for name, path in outputs.items():
        if path is None:
            continue
        key = file_key(path)
        if key in taken:
            raise OutputPathError(f"{name} {path}: is the same file as {taken[key]}")
        taken[key] = f"{name} {path}; one would overwrite the other"


def check_output_files(outputs: Mapping[str, str | os.PathLike | None], suffixes: Iterable[str] = (),
                       inputs: Mapping[str, str | os.PathLike | None] | None = None) -> None:
    """Raises `OutputPathError` unless every one of `outputs` (name -> path; None or empty: absent) can be written
    (`check_output_file` with `suffixes`) and they are different files, none of them one of `inputs` by any path
    (`check_distinct`). Checks only: call it before the work."""
    outputs = {name: path or None for name, path in outputs.items()}
    for name, path in outputs.items():
        if path is not None:
            check_output_file(path, name, suffixes)
    check_distinct(outputs, inputs or {})


def check_output_folder(path: str | os.PathLike, name: str) -> None:
    """Raises `OutputPathError` unless `path` is a writable folder or one that can be created."""
    path = Path(path)
    if os.path.lexists(path):
        if not path.is_dir():
            raise OutputPathError(f"{name} {path}: {_unresolvable(path) or 'exists and is not a folder'}")
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
        raise OutputPathError(f"{name} {path}: {folder} {_unresolvable(folder) or 'is a file, not a folder'}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name} {path}: no permission to create files in {folder}")


def _unresolvable(path: Path) -> str | None:
    """Why `path`, a name that exists, leads nowhere (a symbolic link loop, a link to nothing), or None where it leads
    to a file or folder."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link loop: it cannot be resolved"
        if error.errno == errno.ENOENT:
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return f"cannot be resolved ({error.strerror})"
    return None


@contextlib.contextmanager
def temporary_file(beside: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A new empty file with a random hidden name in the folder of `beside` (which must exist), `.NAME.<8 hex
    digits>SUFFIX`, with the mode `open()` gives, for the `with` block: this process holds a lock (`fcntl.flock`) on
    it meanwhile, and it is removed at the end unless it was renamed away. The ones of `beside` and `suffix` that no
    process holds, left by a process that was killed (`kill -9`, a power cut), are removed first: a live writer's,
    of this process or another, never."""
    beside = Path(beside)
    _remove_abandoned(beside, suffix)
    path, held = _create_held(beside, suffix)
    try:
        yield path
    finally:
        try:
            _remove_if_held(path, held)
        finally:
            os.close(held)  # which releases the lock


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


def _temporary_name(beside: Path, suffix: str) -> Path:
    return beside.with_name(f".{beside.name}.{secrets.token_hex(4)}{suffix}")


def _create_unique(beside: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    for _ in range(_NAME_TRIES):
        candidate = _temporary_name(beside, suffix)
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{beside.parent}: no free temporary name after {_NAME_TRIES} tries")


def _create_held(beside: Path, suffix: str) -> tuple[Path, int]:
    """A new temporary file and a descriptor of it holding its lock."""
    for _ in range(_NAME_TRIES):
        candidate = _temporary_name(beside, suffix)
        try:
            held = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        fcntl.flock(held, fcntl.LOCK_EX)
        if os.fstat(held).st_nlink:  # another run, between the creation and the lock, took it for abandoned
            return candidate, held
        os.close(held)
    raise FileExistsError(f"{beside.parent}: no free temporary name after {_NAME_TRIES} tries")


def _remove_abandoned(beside: Path, suffix: str) -> None:
    """Removes the temporary files of `beside` and `suffix` (`temporary_file`'s names) whose lock no process holds."""
    name = re.compile(re.escape(f".{beside.name}.") + "[0-9a-f]{8}" + re.escape(suffix))
    try:
        candidates = [entry for entry in os.listdir(beside.parent) if name.fullmatch(entry)]
    except FileNotFoundError:
        return
    for candidate in candidates:
        try:
            held = os.open(beside.parent / candidate, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, a symbolic link, or not readable: not one to judge
            continue
        try:
            if stat.S_ISREG(os.fstat(held).st_mode):
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _remove_if_held(beside.parent / candidate, held)
        except BlockingIOError:  # its writer is alive
            pass
        finally:
            os.close(held)


def _remove_if_held(path: Path, held: int) -> None:
    """Removes `path` if it still names the file of the descriptor `held`."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:  # renamed into place, or removed
        return
    mine = os.fstat(held)
    if (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
        os.unlink(path)


def write_atomic(path: str | os.PathLike, content: str | bytes) -> None:
    """Writes `content` (text as UTF-8) to `path`, creating its folder; on any failure the old file stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_file(path) as tmp:
        tmp.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)


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


# What a user's input or machine can cause, each naming its file and problem: AnnotationError, VideoError,
# GenerationError, SettingsError, MotionError, OutputPathError are ValueErrors; a missing file or disk space an
# OSError; a missing optional package (dlib, an extra) an ImportError.
USER_ERRORS = (ValueError, OSError, ImportError)


def entry_point(main: Callable[[list[str]], object]) -> Callable[[list[str]], object]:
    """An entry point's `main` (for `absl.app.run`) that ends the way its user expects, every `with` and `except` on
    the stack unwound first, so that writers remove their temporary files: on `USER_ERRORS` with the one line
    `error: <message>` and exit status 1, not Python's traceback; on SIGTERM as `unwind_on_sigterm` says; on Ctrl-C
    (SIGINT) with one line and the exit status a shell reports for it, 128 + 2."""

    @functools.wraps(main)
    def run(argv: list[str]) -> object:
        unwind_on_sigterm()
        try:
            return main(argv)
        except USER_ERRORS as e:
            sys.exit(f"error: {e}")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(128 + signal.SIGINT) from None

    return run

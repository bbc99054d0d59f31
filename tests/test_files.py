"""Atomic writes with the modes a plain open() gives, output paths checked before the work (none an input by another
path), temporary files of killed writers removed, and SIGTERM unwinding."""
import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigo_facegen import files
from bigo_facegen.files import OutputPathError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=[0o027, 0o002])
def umask(request):
    """Runs the test under an unusual umask (neither mkstemp's 0600 nor a fixed 0644 can pass), restoring it after."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_folders_get_the_umask_mode(tmp_path, umask):
    files.write_atomic(tmp_path / "config.json", "{}\n")
    files.write_png(tmp_path / "grid.png", np.zeros((4, 4, 3), np.uint8))
    folder = files.temporary_folder(tmp_path / "report")
    assert _mode(tmp_path / "config.json") == _mode(tmp_path / "grid.png") == 0o666 & ~umask
    assert _mode(folder) == 0o777 & ~umask
    assert folder.parent == tmp_path and folder.name.startswith(".report.")


def test_write_atomic_replaces_whole_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "metrics.jsonl"
    files.write_atomic(path, "one\n")
    files.write_atomic(path, b"two\n")
    assert path.read_text() == "two\n"
    with pytest.raises(TypeError):
        files.write_atomic(path, 3)  # fails half way, after the temporary file exists
    assert path.read_text() == "two\n" and os.listdir(tmp_path) == ["metrics.jsonl"]
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError):
        files.write_atomic(tmp_path / "taken", "x")  # the rename fails
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl", "taken"] and os.listdir(tmp_path / "taken") == []


def test_temporary_names_are_fresh_hidden_and_keep_the_suffix(tmp_path):
    with contextlib.ExitStack() as stack:
        made = {stack.enter_context(files.temporary_file(tmp_path / "clip.mp4", suffix=".mp4")) for _ in range(20)}
        assert len(made) == 20 and all(p.parent == tmp_path and p.name.startswith(".clip.mp4.") and p.suffix == ".mp4"
                                       and p.stat().st_size == 0 for p in made)
    assert os.listdir(tmp_path) == []  # each removed at the end of its block


def _hold_temporary_file(target, suffix):
    """A process that makes a temporary file of `target` with `temporary_file` and waits in its block; its name."""
    code = ("import sys; from bigo_facegen import files\n"
            f"with files.temporary_file({str(target)!r}, {suffix!r}) as tmp:\n"
            "    print(tmp.name, flush=True); sys.stdin.read()\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    return process, process.stdout.readline().strip()


def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    """`kill -9` runs no clean-up: the next writer of the same target removes what the dead one left, and neither a
    live writer's temporary file (another process's or its own) nor anything of another name."""
    target = tmp_path / "clip.mp4"
    killed, left = _hold_temporary_file(target, ".mp4")
    alive, kept = _hold_temporary_file(target, ".mp4")
    try:
        killed.kill()
        killed.wait(timeout=60)
        others = [".clip.mp4.notes.mp4", ".clip.mp4.0123abcd.tmp", ".other.mp4.0123abcd.mp4", "clip.mp4.0123abcd.mp4"]
        for name in others:
            (tmp_path / name).write_text("not a temporary file of clip.mp4")
        (tmp_path / ".clip.mp4.89abcdef.mp4").mkdir()  # a folder of that name is not a file to remove
        assert {left, kept} <= set(os.listdir(tmp_path))
        with files.temporary_file(target, ".mp4") as mine, files.temporary_file(target, ".mp4") as second:
            assert sorted(os.listdir(tmp_path)) == sorted([kept, mine.name, second.name, ".clip.mp4.89abcdef.mp4",
                                                           *others])
        assert sorted(os.listdir(tmp_path)) == sorted([kept, ".clip.mp4.89abcdef.mp4", *others])
    finally:
        alive.communicate("", timeout=60)
    assert alive.returncode == 0 and kept not in os.listdir(tmp_path)


def test_check_distinct_finds_the_same_file_by_any_path(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"the user's video")
    os.link(clip, tmp_path / "hard.mp4")
    os.symlink(clip, tmp_path / "soft.mp4")
    os.symlink(tmp_path, tmp_path / "folder")
    out = tmp_path / "out.mp4"
    for output in (clip, tmp_path / "hard.mp4", tmp_path / "soft.mp4", tmp_path / "folder" / "clip.mp4",
                   tmp_path / "new" / ".." / "clip.mp4"):
        with pytest.raises(OutputPathError) as error:
            files.check_distinct({"output": output}, {"driving": clip, "source": None})
        assert str(error.value) == (f"output {output}: is the same file as the input driving {clip}; writing it "
                                    f"would destroy that input")
    with pytest.raises(OutputPathError) as error:  # outputs that do not exist yet, one through a linked folder
        files.check_distinct({"output": out, "face_output": tmp_path / "folder" / "out.mp4"}, {"driving": clip})
    assert str(error.value) == (f"face_output {tmp_path / 'folder' / 'out.mp4'}: is the same file as output {out}; "
                                f"one would overwrite the other")
    files.check_distinct({"output": out, "face_output": None}, {"driving": clip, "annotations": tmp_path / "no.json"})
    files.check_distinct({"output": out}, {"source": clip, "driving": tmp_path / "soft.mp4"})  # inputs may repeat
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "folder", "hard.mp4", "soft.mp4"]
    assert clip.read_bytes() == b"the user's video"


def test_check_output_file_accepts_new_and_existing_files(tmp_path):
    (tmp_path / "old.mp4").write_bytes(b"previous")
    files.check_output_file(tmp_path / "old.mp4", "output", (".mp4",))
    files.check_output_file(tmp_path / "new" / "deeper" / "out.MP4", "output", (".mp4",))
    assert os.listdir(tmp_path) == ["old.mp4"]  # checking creates nothing


@pytest.mark.parametrize("target, message", [
    ("out.mp4", "output {path}: is an existing folder; give the path of a file to write"),
    ("notes/out.mp4", "output {path}: {d}/notes is a file, not a folder"),
    ("notes/a/b/out.mp4", "output {path}: {d}/notes is a file, not a folder"),
    ("out.gif", "output {path}: cannot write .gif files; use one of .avi, .mp4"),
    ("out", "output {path}: cannot write suffix-less files; use one of .avi, .mp4"),
    ("loop/out.mp4", "output {path}: {d}/loop is a symbolic link loop: it cannot be resolved"),
    ("loop/a/b/out.mp4", "output {path}: {d}/loop is a symbolic link loop: it cannot be resolved"),
    ("gone/out.mp4", "output {path}: {d}/gone is a symbolic link to {d}/nothing, which does not exist"),
], ids=["existing_folder", "parent_is_a_file", "ancestor_is_a_file", "unknown_suffix", "no_suffix", "link_loop",
        "under_a_link_loop", "link_to_nothing"])
def test_check_output_file_rejects(tmp_path, target, message):
    (tmp_path / "out.mp4").mkdir()
    (tmp_path / "notes").write_text("x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    os.symlink(tmp_path / "nothing", tmp_path / "gone")
    path = tmp_path / target
    with pytest.raises(OutputPathError) as error:
        files.check_output_file(path, "output", (".mp4", ".avi"))
    assert str(error.value) == message.format(path=path, d=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["gone", "loop", "notes", "out.mp4"]
    assert os.listdir(tmp_path / "out.mp4") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: permissions cannot be tested")
def test_check_output_paths_reject_an_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputPathError, match=f"no permission to create files in {locked}"):
        files.check_output_file(locked / "sub" / "out.mp4", "output")
    with pytest.raises(OutputPathError, match="no permission to write in this folder"):
        files.check_output_folder(locked, "output")


def test_check_output_folder(tmp_path):
    files.check_output_folder(tmp_path, "output")
    files.check_output_folder(tmp_path / "new" / "report", "output")
    (tmp_path / "report").write_text("x")
    with pytest.raises(OutputPathError, match=f"^output {tmp_path / 'report'}: exists and is not a folder$"):
        files.check_output_folder(tmp_path / "report", "output")
    with pytest.raises(OutputPathError, match=f"^output {tmp_path}/report/sub: {tmp_path}/report is a file"):
        files.check_output_folder(tmp_path / "report" / "sub", "output")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(OutputPathError, match=f"^output {tmp_path / 'loop'}: is a symbolic link loop: it cannot be "
                                              f"resolved$"):
        files.check_output_folder(tmp_path / "loop", "output")
    assert sorted(os.listdir(tmp_path)) == ["loop", "report"]


def test_sigterm_unwinds_so_temporary_files_are_removed(tmp_path):
    # A process killed by SIGTERM in the middle of writing: the writer's cleanup still runs.
    code = ("import sys, time; from bigo_facegen import files\n"
            "files.unwind_on_sigterm()\n"
            f"with files.temporary_file({str(tmp_path / 'out.json')!r}):\n"
            "    print('writing', flush=True); time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline() == "writing\n"
    assert len(os.listdir(tmp_path)) == 1
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr
    assert os.listdir(tmp_path) == []

"""Batch generation on Beam (`experiments.generate_batch`): real clips, tiny exported models, bad jobs and options,
re-runs, no network, and a killed run whose workers end with it."""
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from apache_beam.options.pipeline_options import StandardOptions

from bigo_facegen import batch_generation, config, export, fusion, generation, video
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.models import registry

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
FRAMES = 3


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports of two tiny untrained generators (ibug68, as the real clips): two models, two RunInferences."""
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": "ibug68",
                                                 "model.conv_dim": 8, "model.res_blocks": 1})
    root = tmp_path_factory.mktemp("exports")
    return [export.export(registry.build_generator(cfg.model, SIZE, 68), cfg, root / name).parent
            for name in ("first", "second")]


def _write_jobs(path: Path, jobs) -> Path:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    return path


def _generate_batch(jobs: Path, *options: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.generate_batch", f"--jobs={jobs}", *options],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300, env=env)


def test_bad_jobs_fail_alone_and_a_rerun_does_what_is_left(exports, real_faces_dir, tmp_path, offline):
    """Two runs without the network (Beam's DirectRunner would download Prism): the good jobs are done, the bad ones
    listed; then only what is missing or not whole is made again."""
    annotations = str(real_faces_dir / "annotations.json")
    out = tmp_path / "out"
    jobs = [
        {"model": str(exports[0]), "annotations": annotations, "video": "dpe_d", "output": str(out / "dpe_d.mp4"),
         "max_frames": FRAMES, "copy_threshold": 0},
        {"model": str(exports[1]), "annotations": annotations, "video": "lp_d0.mp4",
         "output": str(out / "lp_d0.mp4"), "face_output": str(out / "lp_d0_face.mp4"), "max_frames": FRAMES},
        {"model": str(exports[0]), "annotations": annotations, "video": "no_such_clip",
         "output": str(out / "no_such_clip.mp4"), "max_frames": FRAMES},
        # A model that does not load fails its jobs, not the pipeline.
        {"model": str(tmp_path), "annotations": annotations, "video": "dpe_d", "output": str(out / "other.mp4")},
    ]
    jobs_file = _write_jobs(tmp_path / "jobs.jsonl", jobs)
    failure_list = tmp_path / "jobs.failures.jsonl"

    done = _generate_batch(jobs_file, env=offline.env)
    assert done.returncode == 1, done.stderr[-3000:]
    offline.check()
    reason = (f"{annotations}: no video 'no_such_clip'; the file has 39 videos: dpe_d.mp4, dpe_s.mp4, "
              f"eamm_disgusted.mp4, eamm_fear.mp4, eamm_surprised.mp4, lp_d0.mp4, lp_d10.mp4, lp_d12.mp4, "
              f"lp_d13.mp4, lp_d19.mp4, ...")
    with pytest.raises(GenerationError) as not_loaded:
        FaceModel.load(tmp_path)
    not_a_model = str(not_loaded.value)
    assert f"error: {jobs_file}: line 3: {reason}\nerror: {jobs_file}: line 4: {not_a_model}\n" in done.stderr
    assert done.stdout.endswith(f"{jobs_file}: 4 jobs (relative paths from {tmp_path}): 2 generated, 0 skipped "
                                f"(outputs exist whole), 2 failed (listed in {failure_list})\n")
    assert [json.loads(line) for line in failure_list.read_text().splitlines()] == [
        {"line": 3, "output": str(out / "no_such_clip.mp4"), "reason": reason},
        {"line": 4, "output": str(out / "other.mp4"), "reason": not_a_model}]
    # The good jobs' videos, whole; nothing of the bad ones, no temporary file.
    assert sorted(os.listdir(out)) == ["dpe_d.mp4", "lp_d0.mp4", "lp_d0_face.mp4"]
    assert video.probe(out / "lp_d0_face.mp4").frame_count == FRAMES
    # The same video as the one-job API gives, from the same export and options.
    single = tmp_path / "single.mp4"
    generation.generate_from_annotations(FaceModel.load(exports[0]), annotations, "dpe_d", single, max_frames=FRAMES,
                                         progress=False, settings=GenerationSettings(copy_threshold=0))
    batch_frames, single_frames = video.read_all(out / "dpe_d.mp4"), video.read_all(single)
    assert batch_frames.shape == single_frames.shape == (FRAMES, 256, 256, 3)
    assert np.abs(batch_frames.astype(int) - single_frames.astype(int)).mean() < 0.5

    # A re-run, DirectRunner named, after the bad job is mended (to the model shipped in the package, by its name),
    # with its output there as an empty file and one face video cut short, as a copy or a full disk might leave
    # them: only the jobs without whole outputs are done again, and the failure list is replaced.
    jobs[2].update(model="pretrained", video="lp_d12", output=str(out / "lp_d12.mp4"))
    _write_jobs(jobs_file, jobs[:3])
    (out / "lp_d12.mp4").write_bytes(b"")
    whole_face = (out / "lp_d0_face.mp4").read_bytes()
    (out / "lp_d0_face.mp4").write_bytes(whole_face[:len(whole_face) // 2])
    kept = (out / "dpe_d.mp4").stat().st_mtime_ns
    again = _generate_batch(jobs_file, "--runner=DirectRunner", env=offline.env)
    assert again.returncode == 0, again.stderr[-3000:]
    offline.check()
    assert again.stdout.endswith(f"{jobs_file}: 3 jobs (relative paths from {tmp_path}): 2 generated, 1 skipped "
                                 f"(outputs exist whole), 0 failed (listed in {failure_list})\n")
    assert (out / "dpe_d.mp4").stat().st_mtime_ns == kept
    assert failure_list.read_text() == ""
    assert sorted(os.listdir(out)) == ["dpe_d.mp4", "lp_d0.mp4", "lp_d0_face.mp4", "lp_d12.mp4"]
    for name in os.listdir(out):
        assert video.is_whole(out / name) and len(video.read_all(out / name)) == FRAMES, name


def test_job_lines_are_checked_before_the_pipeline(exports, real_faces_dir, tmp_path, monkeypatch):
    annotations = str(real_faces_dir / "annotations.json")
    good = {"model": str(exports[0]), "annotations": annotations, "video": "dpe_d"}
    own_video = real_faces_dir / "videos" / "dpe_d.mp4"
    (tmp_path / "folder.mp4").mkdir()
    lines = [
        json.dumps({**good, "output": "a.mp4"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"model": str(exports[0]), "video": "dpe_d"}),
        json.dumps({**good, "output": "b.mp4", "speed": 2}),
        json.dumps({**good, "output": "c.mp4", "reference_index": True}),
        json.dumps({**good, "output": "d.mp4", "fusion": "blend"}),
        json.dumps({**good, "output": "a.mp4"}),
        json.dumps({**good, "annotations": "missing.json", "output": "e.mp4"}),
        json.dumps({**good, "output": str(tmp_path / "folder.mp4")}),
        "",
        json.dumps({**good, "output": "f.avi"}),
        json.dumps({**good, "output": "sub/../../g.mp4"}),
        json.dumps({**good, "output": "h.mp4", "max_frames": -48}),
        json.dumps({**good, "output": "i.mp4", "batch": 0}),
        json.dumps({**good, "output": str(tmp_path / "clips" / "dpe_d.mp4")}),
        json.dumps({**good, "output": "j.mp4", "face_output": str(real_faces_dir / "videos" / "dpe_d.mp4")}),
        json.dumps({**good, "output": "linked/a.mp4"}),
        json.dumps({**good, "model": "pretrained", "output": "sub/../k.mp4", "max_frames": 1}),
        json.dumps({**good, "output": str(tmp_path.parent / "elsewhere.mp4")}),
        json.dumps({**good, "output": "lnkout/x.mp4"}),
        json.dumps({**good, "output": "l.mp4", "face_output": "lnkout/sub/../l_face.mp4"}),
        json.dumps({**good, "output": "clips/m.mp4"}),
        json.dumps({**good, "output": "n.mp4", "fps": 1e9}),
    ]
    os.symlink(real_faces_dir / "videos", tmp_path / "clips")
    os.symlink(tmp_path, tmp_path / "linked")
    os.symlink(tmp_path.parent, tmp_path / "lnkout")  # a folder outside the jobs file's
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative paths are the jobs file's folder's, not the current one's

    def leads_out(output: str, path: Path) -> str:
        return (f"{output}: leads to {os.path.realpath(path)}, outside the jobs file's folder "
                f"{os.path.realpath(tmp_path)} (links followed); a relative output stays in it (an absolute path "
                f"writes where it says)")

    jobs, failures = batch_generation.read_jobs(jobs_file)
    assert [(job.line, job.model, job.output) for job in jobs] == [
        (1, str(exports[0]), str(tmp_path / "a.mp4")), (19, "pretrained", str(tmp_path / "k.mp4")),
        (20, str(exports[0]), str(tmp_path.parent / "elsewhere.mp4"))]  # an absolute path goes where it says
    assert jobs[0].options == {} and jobs[0].annotations == annotations
    assert [(f.line, f.output, f.reason) for f in failures] == [
        (2, None, "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (3, None, "a job is a JSON object, got list"),
        (4, None, "missing annotations, output"),
        (5, str(tmp_path / "b.mp4"), "unknown speed; a job takes model, annotations, video, output, reference, "
                                     "reference_index, videos_dir, face_output, fps, max_frames, fusion, border, "
                                     "fill, copy_threshold, color_transfer, paint, feather, batch"),
        (6, str(tmp_path / "c.mp4"), "reference_index must be an integer, got true"),
        (7, str(tmp_path / "d.mp4"), f'fusion must be one of {", ".join(fusion.FUSIONS)}, got "blend"'),
        (8, str(tmp_path / "a.mp4"), f"output {tmp_path / 'a.mp4'}: line 1 writes it too"),
        (9, str(tmp_path / "e.mp4"), f"annotations {tmp_path / 'missing.json'}: no such file or folder"),
        (10, str(tmp_path / "folder.mp4"), f"output {tmp_path / 'folder.mp4'}: is an existing folder; give the "
                                           f"path of a file to write"),
        (12, str(tmp_path / "f.avi"), f"output {tmp_path / 'f.avi'}: cannot write .avi files; use one of .m4v, "
                                      f".mov, .mp4"),
        (13, str(tmp_path.parent / "g.mp4"), leads_out("output sub/../../g.mp4", tmp_path.parent / "g.mp4")),
        (14, str(tmp_path / "h.mp4"), "max_frames must be an integer of at least 1, got -48"),
        (15, str(tmp_path / "i.mp4"), "batch must be an integer of at least 1, got 0"),
        (16, str(tmp_path / "clips" / "dpe_d.mp4"),  # absolute: where it says, and an input there
         f"output {tmp_path / 'clips' / 'dpe_d.mp4'}: is the same file as the input video {own_video}; writing it "
         f"would destroy that input"),
        (17, str(tmp_path / "j.mp4"), f"face_output {own_video}: is the same file as the input video {own_video}; "
                                      f"writing it would destroy that input"),
        (18, str(tmp_path / "linked" / "a.mp4"),
         f"output {tmp_path / 'linked' / 'a.mp4'}: line 1 writes it too (as {tmp_path / 'a.mp4'})"),
        # Relative outputs through a linked folder that leads out (`linked` above leads back in), by real paths.
        (21, str(tmp_path / "lnkout" / "x.mp4"), leads_out("output lnkout/x.mp4", tmp_path.parent / "x.mp4")),
        (22, str(tmp_path / "l.mp4"),
         leads_out("face_output lnkout/sub/../l_face.mp4", tmp_path.parent / "l_face.mp4")),
        (23, str(tmp_path / "clips" / "m.mp4"), leads_out("output clips/m.mp4", real_faces_dir / "videos" / "m.mp4")),
        (24, str(tmp_path / "n.mp4"), "fps must be a frame rate above 0 and at most 1000, got 1000000000.0"),
    ]
    assert sorted(os.listdir(tmp_path)) == ["clips", "elsewhere", "folder.mp4", "jobs.jsonl", "linked", "lnkout"]
    assert os.listdir(tmp_path / "elsewhere") == [] and not (tmp_path.parent / "elsewhere.mp4").exists()
    assert not {"x.mp4", "l_face.mp4", "g.mp4"} & set(os.listdir(tmp_path.parent))


def test_bad_beam_options_are_refused_in_one_line(exports, real_faces_dir, tmp_path):
    no_runner = (f"Unexpected pipeline runner: Bad. Valid values are {', '.join(StandardOptions.KNOWN_RUNNER_NAMES)} "
                 f"or the fully qualified name of a PipelineRunner subclass.")
    jobs_file = _write_jobs(tmp_path / "jobs.jsonl", [
        {"model": str(exports[0]), "annotations": str(real_faces_dir / "annotations.json"), "video": "dpe_d",
         "output": str(tmp_path / "out.mp4"), "max_frames": FRAMES}])
    for flags, message in [
        (["--beam_pipeline_options=direct_num_workers=abc"],
         "error: --beam_pipeline_options: argument --direct_num_workers: invalid int value: 'abc'"),
        (["--beam_pipeline_options=direct_num_worker=2,no_such_option"],
         "error: --beam_pipeline_options: Beam has no option direct_num_worker, no_such_option"),
        (["--runner=Bad"], f"error: --runner: {no_runner}"),
        (["--beam_pipeline_options=runner=Bad"], f"error: --beam_pipeline_options: runner: {no_runner}"),
        (["--runner=no_such_module.Runner"], "error: --runner: No module named 'no_such_module'"),
    ]:
        done = _generate_batch(jobs_file, *flags)
        assert done.returncode == 1 and "Traceback" not in done.stderr and "usage:" not in done.stderr
        assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [message]
    assert os.listdir(tmp_path) == ["jobs.jsonl"]


def test_a_relative_output_through_a_link_out_of_the_jobs_folder_is_refused(exports, real_faces_dir, tmp_path):
    """`lnkout/x.mp4` where `lnkout` links out of the jobs file's folder: refused in one line naming the line, the
    path it leads to and the folder; the run (its pipeline without jobs) logs no Beam warning of arguments it was
    given from this program's command line."""
    jobs_dir, outside = Path(os.path.realpath(tmp_path / "jobs")), Path(os.path.realpath(tmp_path / "outside"))
    jobs_dir.mkdir()
    outside.mkdir()
    os.symlink(outside, jobs_dir / "lnkout")
    jobs_file = _write_jobs(jobs_dir / "jobs.jsonl", [
        {"model": str(exports[0]), "annotations": str(real_faces_dir / "annotations.json"), "video": "dpe_d",
         "output": "lnkout/x.mp4", "max_frames": FRAMES}])
    done = _generate_batch(jobs_file)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {jobs_file}: line 1: output lnkout/x.mp4: leads to {outside / 'x.mp4'}, outside the jobs file's "
        f"folder {jobs_dir} (links followed); a relative output stays in it (an absolute path writes where it says)"]
    assert "Discarding unparseable args" not in done.stderr, done.stderr[-3000:]
    assert os.listdir(outside) == [] and sorted(os.listdir(jobs_dir)) == ["jobs.failures.jsonl", "jobs.jsonl", "lnkout"]


def _temporary_videos(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".")] if folder.is_dir() else []


def test_workers_end_with_a_killed_run_and_the_next_run_cleans_up(exports, real_faces_dir, tmp_path):
    """`kill -9` of a run on worker processes (multi_processing): its workers, which Beam starts through a shell,
    end with it rather than going on with their jobs (and writing) for tens of seconds; the next run removes the
    temporary videos they left and does the jobs."""
    annotations = str(real_faces_dir / "annotations.json")
    out = tmp_path / "out"
    clips = ("dpe_d", "dpe_s", "eamm_fear", "lp_d10")
    jobs_file = _write_jobs(tmp_path / "jobs.jsonl", [
        {"model": str(exports[0]), "annotations": annotations, "video": clip, "output": str(out / f"{clip}.mp4"),
         "max_frames": 60, "batch": 1, "copy_threshold": 0} for clip in clips])
    run = subprocess.Popen([sys.executable, "-m", "experiments.generate_batch", f"--jobs={jobs_file}",
                            "--beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing"],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 240  # a guard against a hang, not a speed test
        while not _temporary_videos(out) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = psutil.Process(run.pid).children(recursive=True)
        run.kill()
        run.wait(timeout=60)
        assert _temporary_videos(out) and workers, "caught while its workers were writing"
        # They end within milliseconds; without the watch they went on for 20-45 s, so 10 s tells the two apart.
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == []
    finally:
        run.kill()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    left = _temporary_videos(out)
    assert left and all(re.fullmatch(r"\.[a-z_0-9]+\.mp4\.[0-9a-f]{8}\.mp4", name) for name in left), left

    again = _generate_batch(jobs_file)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(os.listdir(out)) == sorted(f"{clip}.mp4" for clip in clips)
    assert all(video.probe(out / f"{clip}.mp4").frame_count == 60 for clip in clips)


def test_an_output_that_another_job_reads_is_refused(exports, real_faces_dir, tmp_path):
    """A job's output that is another job's input (its video here, one a cut that leaves trailing bytes makes no
    whole MP4, so a run would not skip it as done) is refused, in either order of the lines: Beam runs jobs in any
    order, so the reader could get either file, and the input would be lost."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for clip in ("mead_W011_happy", "mead_W011_neutral"):
        (clips / f"{clip}.mp4").write_bytes((real_faces_dir / "videos" / f"{clip}.mp4").read_bytes() + b"\0" * 100)
    inputs = {path: path.read_bytes() for path in clips.iterdir()}
    good = {"model": str(exports[0]), "annotations": str(real_faces_dir / "annotations.json"), "videos_dir": "clips",
            "max_frames": FRAMES}
    jobs_file = _write_jobs(tmp_path / "jobs.jsonl", [
        {**good, "video": "mead_W011_neutral", "output": "clips/mead_W011_happy.mp4"},
        {**good, "video": "mead_W011_happy", "output": "out/happy.mp4"},
        {**good, "video": "mead_W011_happy", "output": "out/happy_face_first.mp4",
         "face_output": "clips/mead_W011_neutral.mp4"}])
    done = _generate_batch(jobs_file)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    happy, neutral = clips / "mead_W011_happy.mp4", clips / "mead_W011_neutral.mp4"
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {jobs_file}: line 1: output {happy}: is the same file as the input video of line 2 {happy}; "
        f"writing it would destroy that input",
        f"error: {jobs_file}: line 3: face_output {neutral}: is the same file as the input video of line 1 "
        f"{neutral}; writing it would destroy that input"]
    assert {path: path.read_bytes() for path in clips.iterdir()} == inputs
    assert os.listdir(tmp_path / "out") == ["happy.mp4"]
    assert len(video.read_all(tmp_path / "out" / "happy.mp4")) == FRAMES


def test_a_failure_list_that_is_the_jobs_file_or_a_file_of_a_job_is_refused(exports, real_faces_dir, tmp_path):
    clip = tmp_path / "mead_W011_happy.mp4"
    clip.write_bytes((real_faces_dir / "videos" / clip.name).read_bytes())
    jobs_file = _write_jobs(tmp_path / "jobs.jsonl", [
        {"model": str(exports[0]), "annotations": str(real_faces_dir / "annotations.json"), "video": "mead_W011_happy",
         "videos_dir": str(tmp_path), "output": "out.mp4", "max_frames": FRAMES}])
    os.symlink(clip, tmp_path / "link.mp4")
    before = {path: path.read_bytes() for path in (clip, jobs_file)}
    for failure_list, message in [
        (jobs_file, f"the input jobs file {jobs_file}; writing it would destroy that input"),
        (tmp_path / "link.mp4", f"the input video of line 1 {clip}; writing it would destroy that input"),
        (tmp_path / "out.mp4", f"output of line 1 {tmp_path / 'out.mp4'}; one would overwrite the other"),
    ]:
        done = _generate_batch(jobs_file, f"--failures={failure_list}")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
            f"error: failure list {failure_list}: is the same file as {message}"]
        assert {path: path.read_bytes() for path in (clip, jobs_file)} == before
        assert sorted(os.listdir(tmp_path)) == ["jobs.jsonl", "link.mp4", "mead_W011_happy.mp4"]

"""Batch generation on Beam (`experiments.generate_batch`): real clips, tiny exported models, a bad job, a re-run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigo_facegen import batch_generation, config, export, fusion, inference, video
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


def _generate_batch(jobs: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.generate_batch", f"--jobs={jobs}",
                           "--runner=DirectRunner", *options],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)


def test_bad_jobs_fail_alone_and_a_rerun_does_what_is_left(exports, real_faces_dir, tmp_path):
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

    done = _generate_batch(jobs_file)
    assert done.returncode == 1, done.stderr[-3000:]
    reason = (f"{annotations}: no video 'no_such_clip'; the file has 39 videos: dpe_d.mp4, dpe_s.mp4, "
              f"eamm_disgusted.mp4, eamm_fear.mp4, eamm_surprised.mp4, lp_d0.mp4, lp_d10.mp4, lp_d12.mp4, "
              f"lp_d13.mp4, lp_d19.mp4, ...")
    with pytest.raises(inference.GenerationError) as not_loaded:
        inference.FaceModel.load(tmp_path)
    not_a_model = str(not_loaded.value)
    assert f"error: {jobs_file}: line 3: {reason}\nerror: {jobs_file}: line 4: {not_a_model}\n" in done.stderr
    assert done.stdout.endswith(f"{jobs_file}: 4 jobs: 2 generated, 0 skipped (output exists), 2 failed (listed in "
                                f"{failure_list})\n")
    assert [json.loads(line) for line in failure_list.read_text().splitlines()] == [
        {"line": 3, "output": str(out / "no_such_clip.mp4"), "reason": reason},
        {"line": 4, "output": str(out / "other.mp4"), "reason": not_a_model}]
    # The good jobs' videos, whole; nothing of the bad ones, no temporary file.
    assert sorted(os.listdir(out)) == ["dpe_d.mp4", "lp_d0.mp4", "lp_d0_face.mp4"]
    assert video.probe(out / "lp_d0_face.mp4").frame_count == FRAMES
    # The same video as the one-job API gives, from the same export and options.
    single = tmp_path / "single.mp4"
    inference.generate_from_annotations(inference.FaceModel.load(exports[0]), annotations, "dpe_d", single,
                                        max_frames=FRAMES, copy_threshold=0, progress=False)
    batch_frames, single_frames = video.read_all(out / "dpe_d.mp4"), video.read_all(single)
    assert batch_frames.shape == single_frames.shape == (FRAMES, 256, 256, 3)
    assert np.abs(batch_frames.astype(int) - single_frames.astype(int)).mean() < 0.5

    # A re-run after the bad job is mended and one output lost (a pipeline that stopped half way): only what is
    # missing is made, and the failure list is replaced.
    jobs[2].update(video="lp_d12", output=str(out / "lp_d12.mp4"))
    _write_jobs(jobs_file, jobs[:3])
    (out / "lp_d0.mp4").unlink()
    kept = (out / "dpe_d.mp4").stat().st_mtime_ns
    again = _generate_batch(jobs_file)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.endswith(f"{jobs_file}: 3 jobs: 2 generated, 1 skipped (output exists), 0 failed (listed "
                                 f"in {failure_list})\n")
    assert (out / "dpe_d.mp4").stat().st_mtime_ns == kept
    assert failure_list.read_text() == ""
    for name in ("lp_d0.mp4", "lp_d12.mp4"):
        assert video.probe(out / name).frame_count == FRAMES


def test_job_lines_are_checked_before_the_pipeline(exports, real_faces_dir, tmp_path, monkeypatch):
    annotations = str(real_faces_dir / "annotations.json")
    good = {"model": str(exports[0]), "annotations": annotations, "video": "dpe_d"}
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
    ]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # relative paths are the current folder's
    jobs, failures = batch_generation.read_jobs(jobs_file)
    assert [(job.line, job.output) for job in jobs] == [(1, str(tmp_path / "a.mp4"))]
    assert jobs[0].options == {} and jobs[0].annotations == annotations
    assert [(f.line, f.output, f.reason) for f in failures] == [
        (2, None, "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (3, None, "a job is a JSON object, got list"),
        (4, None, "missing annotations, output"),
        (5, str(tmp_path / "b.mp4"), "unknown speed; a job takes model, annotations, video, output, reference, "
                                     "reference_index, videos_dir, face_output, fps, max_frames, fusion, border, "
                                     "fill, copy_threshold, color_transfer, feather, batch"),
        (6, str(tmp_path / "c.mp4"), "reference_index must be an integer, got true"),
        (7, str(tmp_path / "d.mp4"), f'fusion must be one of {", ".join(fusion.FUSIONS)}, got "blend"'),
        (8, str(tmp_path / "a.mp4"), f"output {tmp_path / 'a.mp4'}: line 1 writes it too"),
        (9, str(tmp_path / "e.mp4"), f"annotations {tmp_path / 'missing.json'}: no such file or folder"),
        (10, str(tmp_path / "folder.mp4"), f"output {tmp_path / 'folder.mp4'}: is an existing folder; give the "
                                           f"path of a file to write"),
        (12, str(tmp_path / "f.avi"), f"output {tmp_path / 'f.avi'}: cannot write .avi files; use one of .m4v, "
                                      f".mov, .mp4"),
    ]

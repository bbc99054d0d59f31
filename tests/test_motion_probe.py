"""The motion probe on real clips (two people of the train split, one of the test split, cut short): before training
it scores the keypoint spline, DIS's own flow beats it, training moves only the flow, and the command line refuses a
generator without a flow in one line and writes its figures whole."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigo_facegen import config as configs, data, warping
from bigo_facegen.evaluation import motion_probe
from tests.real_clips import cut_folder

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("dpe_d", "dpe_s", "lp_d0")   # lp_d0's person is in the test split, the others in the train split
SIZE, PAIRS = 32, 8
OVERRIDES = {"data.image_size": SIZE, "data.batch_per_replica": 4, "model.conv_dim": 4, "model.res_blocks": 1,
             "model.generator.warp_refine.motion_correction": 1.0}


@pytest.fixture(scope="module")
def clips_dir(real_faces_dir, tmp_path_factory):
    return cut_folder(real_faces_dir, tmp_path_factory.mktemp("probe_clips"), CLIPS, 30)


@pytest.fixture(scope="module")
def probe_config(clips_dir, tmp_path_factory):
    config = configs.override(configs.real(), {**OVERRIDES, "data.dataset": str(clips_dir),
                                               "data.data_dir": str(tmp_path_factory.mktemp("tfds"))})
    return data.resolve_config(config)


def _spline_score(config, split: str) -> tuple[float, float]:
    """The keypoint spline's end-point error against DIS and its warped crops' PSNR, computed here from the
    batches."""
    errors, psnrs = [], []
    for batch in motion_probe.scoring_batches(config, split, PAIRS):
        valid = (batch["reference_flags"] > 0) & (batch["target_flags"] > 0)
        spline = warping.tps_grid(batch["reference_points"], batch["target_points"], valid, SIZE, SIZE).numpy()
        trusted = batch["target_flow_valid"].numpy()[..., 0] > 0.5
        errors.append(np.linalg.norm(spline - batch["target_flow"].numpy(), axis=-1)[trusted])
        moved = warping.bilinear_sample(batch["reference"], spline).numpy()
        mse = np.mean(((moved - batch["target"].numpy()) / 2.0) ** 2, axis=(1, 2, 3))
        psnrs.append(-10.0 * np.log10(mse))
    return float(np.mean(np.concatenate(errors))), float(np.mean(np.concatenate(psnrs)))


def test_before_training_it_scores_the_spline_and_dis_beats_it(probe_config):
    losses = []
    scores = motion_probe.run(probe_config, 30, PAIRS, lambda step, loss: losses.append((step, loss)))
    for split in ("train", "test"):
        error, psnr = _spline_score(probe_config, split)
        assert scores[split]["before"].end_point_error == pytest.approx(error, abs=1e-4)
        assert scores[split]["before"].psnr == pytest.approx(psnr, abs=1e-3)
        # The faces move: the spline is off DIS by a fraction of a pixel or more, and DIS moves the crop closer.
        assert error > 0.1
        assert scores[split]["optical_flow"].end_point_error == 0.0
        assert scores[split]["optical_flow"].psnr > psnr + 1.0
        # Thirty steps moved the flow.
        assert scores[split]["after"].end_point_error != pytest.approx(error, abs=1e-4)
    assert [step for step, _ in losses] == list(range(1, 31))
    assert all(np.isfinite(loss) and loss > 0 for _, loss in losses)


def test_refuses_a_generator_without_a_flow(probe_config):
    with pytest.raises(ValueError, match=r"^model.generator.type='stargan' has no flow to probe"):
        motion_probe.run(configs.override(probe_config, {"model.generator.type": "stargan"}), 1, PAIRS)


def test_the_probe_asks_the_data_for_the_flow_whatever_the_flow_weight(probe_config):
    unweighed = configs.override(probe_config, {"model.generator.warp_refine.flow": 0.0})
    batch = motion_probe.scoring_batches(unweighed, "test", 1)[0]
    assert batch["target_flow"].shape == (4, SIZE, SIZE, 2) and batch["target_flow_valid"].shape == (4, SIZE, SIZE, 1)


def test_command_line(clips_dir, probe_config, tmp_path):
    output = tmp_path / "probe.json"
    overrides = [f"--config_override={key}={json.dumps(value)}" for key, value in OVERRIDES.items()]
    overrides.append(f"--config_override=data.data_dir={probe_config.data.data_dir}")
    command = [sys.executable, "-m", "experiments.motion_probe", f"--data={clips_dir}", f"--output={output}",
               f"--pairs={PAIRS}", *overrides]
    refused = subprocess.run([*command, "--preset=cpu"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == ("error: model.generator.type='stargan' has no flow to probe "
                                                        "(only generators whose capabilities say flow do)")
    assert not output.exists()
    done = subprocess.run([*command, "--steps=3"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| DIS optical flow (the ceiling) | 0.000 |" in done.stdout
    result = json.loads(output.read_text())
    assert result["steps"] == 3 and result["config"]["model"]["generator"]["type"] == "warp_refine"
    assert set(result["scores"]) == {"train", "test"}
    assert all(set(flows) == set(motion_probe.FLOWS) for flows in result["scores"].values())
    assert list(tmp_path.iterdir()) == [output]


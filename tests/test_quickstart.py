"""The quick start's closing line: which method wins, by how much, and what the model is."""
from experiments import quickstart

# The overall figures of a 2000-step cpu_warp run and of the warp on the synthetic test split (2026-12-07).
MODEL = {"psnr": 15.8202, "ssim": 0.59680, "psnr_face": 15.7480, "identity_accuracy": 1.0}
WARP = {"psnr": 15.7822, "ssim": 0.59605, "psnr_face": 15.6172, "identity_accuracy": 1.0}


def test_verdict_names_the_winner_and_the_gaps():
    line = quickstart.verdict("cpu_warp", 2000, MODEL, WARP)
    assert "\n" not in line
    assert line.startswith("The model matches or beats the warp on all three: PSNR 15.82 against the warp's 15.78 dB "
                           "(+0.04), SSIM 0.597 against the warp's 0.596 (+0.001), face PSNR 15.75 against the warp's "
                           "15.62 dB (+0.13); identity accuracy 1.00. 2000 steps of the cpu_warp preset on cartoon "
                           "faces are a demonstration, not the shipped model")
    assert "python -m experiments.animate" in line


def test_verdict_counts_what_the_model_loses():
    line = quickstart.verdict("cpu", 2000, {**MODEL, "psnr": 15.46, "ssim": 0.570, "identity_accuracy": None}, WARP)
    assert line.startswith("The model matches or beats the warp on 1 of 3: PSNR 15.46 against the warp's 15.78 dB "
                           "(-0.32), SSIM 0.570 against the warp's 0.596 (-0.026)")
    assert "identity accuracy n/a" in line

"""How the ratio benchmarks measure in rounds and report a ratio's noise (`benchmarks.common`): the sides in turn each
round, each round's own ratio, its median with the smallest and largest, and the CPU named."""
import shutil
import subprocess

import pytest

from benchmarks.common import Spread, alternate, cpu_name


def test_the_sides_take_turns_each_round_and_keep_one_value_per_round():
    calls = []

    def side(name):
        def measure():
            calls.append(name)
            return {"images_per_s": float(len(calls)), "round_of_" + name: float(calls.count(name))}
        return measure

    runs = alternate({"ours": side("ours"), "original": side("original")}, rounds=3)
    assert calls == ["ours", "original"] * 3
    assert runs == {"ours": {"images_per_s": [1.0, 3.0, 5.0], "round_of_ours": [1.0, 2.0, 3.0]},
                    "original": {"images_per_s": [2.0, 4.0, 6.0], "round_of_original": [1.0, 2.0, 3.0]}}


def test_a_ratio_is_taken_within_each_round_before_its_median():
    """The machine twice as slow in the second round and faster in the third: each round's ratio compares the two
    sides under the same load. The ratio of the sides' medians (100 / 80) would hide that ours won two rounds by
    1.5x and more."""
    ratio = Spread.ratio([100.0, 60.0, 200.0], [80.0, 40.0, 100.0])
    assert ratio == Spread(minimum=1.25, median=1.5, maximum=2.0)
    assert Spread.of([3.0, 1.0, 2.0, 10.0]) == Spread(1.0, 2.5, 10.0)
    with pytest.raises(ValueError, match="a ratio pairs the rounds of its two sides: got 3 and 2 values"):
        Spread.ratio([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one round"):
        Spread.of([])


def test_a_spread_reads_as_its_median_with_the_extremes_in_the_table_and_the_json():
    spread = Spread(0.934, 1.051, 1.127)
    assert f"{spread:.2f}" == "1.05 (0.93-1.13)"
    assert spread.fields("ratio_infer_img_per_s_b1") == {"ratio_infer_img_per_s_b1": 1.051,
                                                         "ratio_infer_img_per_s_b1_min": 0.934,
                                                         "ratio_infer_img_per_s_b1_max": 1.127}


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="lscpu is not installed")
def test_the_cpu_is_named_as_lscpu_names_it():
    listed = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    model = next(line.split(":", 1)[1].strip() for line in listed.splitlines() if line.startswith("Model name"))
    assert cpu_name().startswith(model) and cpu_name().endswith("logical CPUs")

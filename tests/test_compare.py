"""tpusim compare: ratios checked against hand-made runs, real runs through the CLI, bad input."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import tpusim
from tpusim.comparison import compare, write_comparison

from .conftest import SCALESIM

RESNET18 = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"


def _run_dir(path, layers, latency, energy_j, hbm=1000.0):
    """A run folder by hand: ``layers`` is [(name, count, latency_s, energy_pj, intensity,
    achieved_tops)], totals given explicitly."""
    path.mkdir(parents=True)
    df = pd.DataFrame(layers, columns=["name", "count", "latency_s", "energy_pj", "intensity",
                                       "achieved_tops"])
    df["bound"] = "compute"
    df.to_csv(path / "layers.csv", index=False)
    (path / "summary.json").write_text(json.dumps({
        "config": "hand", "workload": "w", "format": "int8", "batch": 1,
        "total_cycles": latency * 1e9, "latency_s": latency, "throughput_per_s": 1 / latency,
        "achieved_tops": 1.0, "utilization": 0.5, "energy_per_inference_j": energy_j,
        "hbm_bytes": hbm, "tpusim_version": "0"}))
    return path


@pytest.fixture
def two_runs(tmp_path):
    # a: layer x (2 instances of 1 us, 10 pJ each), layer y (1 instance of 4 us, 100 pJ)
    a = _run_dir(tmp_path / "a", [("x", 2, 1e-6, 10.0, 5.0, 1.0), ("y", 1, 4e-6, 100.0, 50, 2.0)],
                 latency=6e-6, energy_j=120e-12)
    # b: x twice as fast per instance (0.5 us) at the same energy, y 4 us -> 8 us, 25 pJ.
    b = _run_dir(tmp_path / "b", [("x", 2, 0.5e-6, 10.0, 5.0, 2.0), ("y", 1, 8e-6, 25.0, 50, 1.0)],
                 latency=9e-6, energy_j=45e-12, hbm=2000.0)
    return a, b


def test_ratios_match_hand_computed(two_runs):
    a, b = two_runs
    c = compare([a, b])
    lay = c.layers.set_index("name")
    # x: baseline 2 x 1 us = 2 us, run 2 x 0.5 us = 1 us -> speedup 2; energy 20 pJ both -> 1.
    assert lay.loc["x", "base_time_s"] == pytest.approx(2e-6)
    assert lay.loc["x", "speedup"] == pytest.approx(2.0)
    assert lay.loc["x", "energy_ratio"] == pytest.approx(1.0)
    # y: 4 us -> 8 us: speedup 0.5; 100 pJ -> 25 pJ: energy ratio 0.25.
    assert lay.loc["y", "speedup"] == pytest.approx(0.5)
    assert lay.loc["y", "energy_ratio"] == pytest.approx(0.25)
    s = c.summary[c.summary["run"] == "b"].set_index("metric")
    assert s.loc["latency_s", "ratio"] == pytest.approx(1.5)
    assert s.loc["latency_s", "change_pct"] == pytest.approx(50.0)
    assert s.loc["energy_per_inference_j", "ratio"] == pytest.approx(45 / 120)
    assert s.loc["hbm_bytes", "change_pct"] == pytest.approx(100.0)
    # largest change first: y lost 4 us, x saved 1 us
    assert list(c.top_changes(2)["name"]) == ["y", "x"]


def test_writes_csv_and_html(two_runs, tmp_path):
    a, b = two_runs
    written = write_comparison(compare([a, b]), tmp_path / "out")
    assert {p.name for p in written} == {"compare.csv", "compare.html"}
    df = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert set(df["scope"]) == {"run", "layer"}
    assert df[df["scope"] == "layer"]["speedup"].tolist() == pytest.approx([2.0, 0.5])
    page = (tmp_path / "out" / "compare.html").read_text()
    assert "cmp-0" in page and "cmp-1" in page and "Largest changes" in page


def test_cli_real_runs(cli, tmp_path):
    """Real run folders and a CONFIG:WORKLOAD pair: compare's speedups are the ratios of the two
    layers.csv files' times, and the same run as the baseline compares at exactly 1x."""
    ra, rb = tmp_path / "a", tmp_path / "b"
    assert cli("run", "default", RESNET18, "--out", ra, "--no-html")[0] == 0
    assert cli("run", "default", RESNET18, "--out", rb, "--no-html",
               "--set", "array.rows=256")[0] == 0
    code, out, err = cli("compare", ra, rb, f"default:{RESNET18}", "--out", tmp_path / "c")
    assert code == 0, err
    assert "baseline: a" in out and "largest changes" in out
    # the per-run rows fit 80 columns (layer names shortened with an ellipsis where needed)
    assert all(len(line) <= 80 for line in out.splitlines() if line.startswith("  "))
    df = pd.read_csv(tmp_path / "c" / "compare.csv")
    la, lb = pd.read_csv(ra / "layers.csv"), pd.read_csv(rb / "layers.csv")
    got = df[(df["scope"] == "layer") & (df["run"] == "b")]["speedup"].to_numpy()
    want = (la["latency_s"] * la["count"]) / (lb["latency_s"] * lb["count"])
    assert got == pytest.approx(want.to_numpy())
    same = df[(df["scope"] == "layer") & (df["run"] != "b")]
    assert same["speedup"].dropna().tolist() == pytest.approx([1.0] * same["speedup"].notna().sum())


def test_python_api_takes_results():
    r = tpusim.simulate("default", str(RESNET18))
    c = tpusim.compare([r, r])
    assert c.runs[1].label.endswith("(2)")
    assert c.layers["speedup"].dropna().eq(1.0).all()


@pytest.mark.parametrize("kind", ["not_run", "missing_layers", "mismatch_count", "mismatch_name"])
def test_bad_input_one_line_exit_2(cli, tmp_path, two_runs, kind):
    a, b = two_runs
    if kind == "not_run":
        other = tmp_path / "empty"
        other.mkdir()
        needle = "not a run folder"
    elif kind == "missing_layers":
        other = tmp_path / "b"
        (other / "layers.csv").unlink()
        needle = "no layers.csv"
    elif kind == "mismatch_count":
        other = _run_dir(tmp_path / "c", [("x", 2, 1e-6, 10.0, 5.0, 1.0)], 2e-6, 20e-12)
        needle = "rows: got 1; the baseline"
    else:
        other = _run_dir(tmp_path / "c", [("x", 2, 1e-6, 10.0, 5.0, 1.0),
                                          ("z", 1, 4e-6, 100.0, 50, 2.0)], 6e-6, 120e-12)
        needle = "row 2"
    out = tmp_path / "out"
    code, stdout, err = cli("compare", a, other, "--out", out)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_one_run_is_usage_error(cli, two_runs):
    code, _, err = cli("compare", two_runs[0])
    assert code == 2 and "at least two" in err


@pytest.mark.parametrize("col, value, why", [
    ("latency_s", "abc", "line 3, column latency_s: got 'abc'; a number >= 0"),
    ("latency_s", -1, "line 3, column latency_s: got -1"),
    ("count", "abc", "line 3, column count: got 'abc'; an integer >= 1"),
    ("count", 1.5, "line 3, column count: got 1.5; an integer >= 1"),
    ("energy_pj", "", "line 3, column energy_pj: got nan; a number >= 0"),
])
def test_a_bad_cell_in_a_run_folder_is_one_line(cli, tmp_path, two_runs, col, value, why):
    a, b = two_runs
    df = pd.read_csv(b / "layers.csv")
    df[col] = df[col].astype(object)
    df.loc[1, col] = value
    df.to_csv(b / "layers.csv", index=False)
    code, _, err = cli("compare", a, b, "--out", tmp_path / "out")
    assert code == 2 and f"{b / 'layers.csv'}: {why}" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_summary_value_that_is_not_a_number_is_one_line(cli, tmp_path, two_runs):
    a, b = two_runs
    s = json.loads((b / "summary.json").read_text())
    s["hbm_bytes"] = "lots"
    (b / "summary.json").write_text(json.dumps(s))
    code, _, err = cli("compare", a, b, "--out", tmp_path / "out")
    assert code == 2 and "summary.json: hbm_bytes: got 'lots'; a number >= 0 (or null)" in err


def test_a_simulated_side_that_differs_names_itself_not_a_layers_csv(cli, tmp_path):
    # CONFIG:WORKLOAD sides are simulated: there is no layers.csv to point at
    code, _, err = cli("compare", "default:mlp0", "tpu_v4:mlp1", "--out", tmp_path / "c")
    assert code == 2 and "tpu_v4:mlp1: row 1: got \"layer 'fc' x4\"" in err
    assert "layers.csv" not in err


def test_a_run_against_itself_reports_no_changes(cli, tmp_path):
    # the stored layers.csv rounds to 10 digits: a fresh run of the same thing differs by
    # rounding, which is no change to rank
    code, _, err = cli("run", "default", "mlp0", "--no-html", "--out", tmp_path / "r")
    assert code == 0, err
    code, _, err = cli("compare", tmp_path / "r", "default:mlp0", "--out", tmp_path / "c")
    assert code == 0, err
    assert "No layer's time changed." in (tmp_path / "c" / "compare.html").read_text()


def test_zero_time_layers_stay_off_the_roofline(cli, tmp_path):
    # resnet50 on default: fused batch norms take no time; the overlay draws only layers that do
    import pandas as pd

    from tpusim.compare_page import roofline_overlay
    from tpusim.comparison import compare
    code, _, err = cli("run", "default", "resnet50", "--no-html", "--out", tmp_path / "r")
    assert code == 0, err
    c = compare([str(tmp_path / "r"), "default:resnet50"])
    layers = pd.read_csv(tmp_path / "r" / "layers.csv")
    timed = int((layers["latency_s"] > 0).sum())
    assert timed < len(layers)
    fig = roofline_overlay(c).to_dict()
    points = next(t for t in fig["data"] if t.get("mode") == "markers")
    assert len(points["x"]) == timed

"""Area and cost of every run and sweep point, Pareto front over latency x energy x area, units."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tpusim
from tpusim.area import area_summary, mac_area_um2, sram_area_mm2
from tpusim.sweep_metrics import add_derived, pareto_3d
from tpusim import units


def test_run_summary_has_area_from_the_area_model():
    chip = tpusim.load_config("default")
    r = tpusim.simulate(chip, "resnet50")
    s = r.summary
    # by hand from the model's parts: PEs x one int8 MAC, and all three SRAM buffers
    sram = chip.memory.sram
    assert s["array_mm2"] == pytest.approx(chip.pes * mac_area_um2("int8", chip.energy.node_nm)
                                           / 1e6)
    assert s["sram_mm2"] == pytest.approx(sram_area_mm2(
        sram.input_kib + sram.weight_kib + sram.output_kib, chip.energy.node_nm))
    assert s["chip_mm2"] == pytest.approx(s["array_mm2"] + s["sram_mm2"])
    assert s["tops_per_mm2"] == pytest.approx(s["peak_tops"] / s["chip_mm2"])
    assert s["chip_mm2_is_lower_bound"] is True


def test_area_grows_with_the_array():
    small = tpusim.load_config("default", **{"array.rows": 32, "array.cols": 32})
    big = tpusim.load_config("default", **{"array.rows": 64, "array.cols": 64})
    a, b = area_summary(small, "int8", 1.0), area_summary(big, "int8", 1.0)
    assert b["array_mm2"] == pytest.approx(4 * a["array_mm2"])   # 4x the PEs
    assert b["sram_mm2"] == pytest.approx(a["sram_mm2"])         # same buffers


def test_derived_columns_by_hand():
    df = pd.DataFrame({"energy_j": [2.0, 1.0], "latency_s": [4.0, 0.0], "achieved_tops": [3.0, 1],
                       "batch": [4, 1], "throughput_per_s": [10.0, 5.0], "chip_mm2": [5.0, 0.0]})
    d = add_derived(df)
    assert d.loc[0, "avg_power_w"] == 0.5 and d.loc[0, "tops_per_w"] == 6.0
    assert d.loc[0, "inferences_per_j"] == 2.0 and d.loc[0, "throughput_per_mm2"] == 2.0
    assert d.loc[0, "achieved_tops_per_mm2"] == pytest.approx(0.6)
    assert np.isnan(d.loc[1, "avg_power_w"]) and np.isnan(d.loc[1, "throughput_per_mm2"])


def test_pareto_3d_by_hand():
    df = pd.DataFrame({"latency_s": [1, 2, 1, 3, 1], "energy_per_inference_j": [1, 2, 2, 0.5, 1],
                       "chip_mm2": [1, 2, 0.5, 1, 1]})
    # row 1 is beaten by row 0 in all three; row 4 repeats row 0; 0, 2 and 3 each win somewhere
    assert pareto_3d(df) == [0, 2, 3]


def test_sweep_cli_prints_pareto_and_writes_area_columns(cli, tmp_path):
    out = tmp_path / "sw"
    code, stdout, err = cli("sweep", "default", "resnet50", "--rows", "32,64", "--cols", "32",
                            "--jobs", "1", "--out", out)
    assert code == 0, err
    assert "Pareto front over latency x energy x area" in stdout and "by perf/W" in stdout
    df = pd.read_csv(out / "sweep.csv")
    for col in ("array_mm2", "sram_mm2", "chip_mm2", "tops_per_mm2", "throughput_per_mm2",
                "tops_per_w"):
        assert df[col].notna().all(), col
    assert (df["throughput_per_mm2"] == df["throughput_per_s"] / df["chip_mm2"]).all()
    page = (out / "sweep.html").read_text()
    assert "Static power is" in page and "latency x energy x area" in page


def test_units_human():
    assert units.seconds(0.0001459) == "145.9 µs"
    assert units.seconds(0.015619) == "15.62 ms"
    assert units.nbytes(1.636e4 * 2**20) == "15.98 GiB"
    assert units.nbytes(512) == "512 B"
    assert units.joules(2.767e-3) == "2.767 mJ"
    assert units.number(15619800.0) == "15,619,800"
    assert units.number(float("nan")) == "—" and units.seconds(0) == "0 s"


def test_run_prints_human_units(cli, tmp_path):
    code, out, err = cli("run", "default", "resnet50", "--out", tmp_path / "r", "--no-html")
    assert code == 0, err
    assert "µs (" in out and "MiB" in out and "mJ" in out and "e+" not in out
    assert "mm²" in out and "TOPS/mm²" in out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["chip_mm2"] > s["sram_mm2"] > 0


def test_configs_table_and_json(cli):
    code, out, err = cli("configs")
    assert code == 0, err
    assert "TOPS" in out and "GB/s" in out and "GMAC" in out and "resnet50.csv" in out
    code, out, err = cli("configs", "--json")
    assert code == 0, err
    data = json.loads(out)
    v4 = next(c for c in data["presets"] if c["name"] == "tpu_v4")
    assert v4["peak_tops"] == pytest.approx(tpusim.load_config("tpu_v4").peak_tops("bf16"))
    rn = next(w for w in data["workloads"] if w["name"] == "resnet50.csv")
    # the same total the simulator's summary counts, by another path
    assert rn["gmac"] == pytest.approx(tpusim.simulate("default", "resnet50").summary["macs"] / 1e9)
    # the default slice run --chips / train / infer take (run --help points here), ICI only
    assert v4["slice"] == tpusim.load_config("tpu_v4").ici.slice
    assert next(c for c in data["presets"] if c["name"] == "tpu_v1")["slice"] is None
    code, out, _ = cli("configs")
    assert f"tpu_v5e {tpusim.load_config('tpu_v5e').ici.slice}" in " ".join(out.split())


def test_run_json_on_stdout(cli, tmp_path):
    code, out, err = cli("run", "default", "resnet50", "--json", "--no-html", "--out",
                         tmp_path / "r")
    assert code == 0, err
    assert json.loads(out) == json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "wrote" in err


def test_result_repr_html_human_units():
    r = tpusim.simulate("default", "resnet50")
    page = r._repr_html_()
    assert page.startswith("<table>") and "resnet50 on default" in page
    assert units.seconds(r.summary["latency_s"]) in page and "e+" not in page and "e-" not in page


def test_sweep_chart_shows_the_3d_front_coloured_by_area():
    """The energy-latency chart of a sweep rings exactly the latency x energy x area front,
    colours every point by its chip area and puts latency in the page's unit (µs here)."""
    from tpusim.sweep_plots import pareto_figure, sweep_figures
    df = tpusim.sweep("default", "tpu_v1/mlp0", {"array.rows": [32, 64, 128],
                                                 "array.cols": [32, 128]}, jobs=1)
    fig = pareto_figure(df, "t")
    ok = df[df.status == "ok"]
    front3 = ok.loc[pareto_3d(ok)]
    ring = next(t for t in fig.data if t.name == "front: latency × energy × area")
    scale = 1e-6 if fig.layout.xaxis.title.text == "latency (µs)" else 1e-3
    assert fig.layout.xaxis.title.text in ("latency (µs)", "latency (ms)")
    assert sorted(np.asarray(ring.x) * scale) == pytest.approx(sorted(front3.latency_s))
    points = fig.data[0]
    assert list(points.marker.color) == pytest.approx(list(ok.chip_mm2))
    assert list(np.asarray(points.x) * scale) == pytest.approx(list(ok.latency_s))
    # the 3-D front holds more than the energy-latency front when area trades against both
    two_d = next(t for t in fig.data if t.name == "front: latency × energy")
    assert len(ring.x) >= len(two_d.x)
    # heatmap colour bars are labelled in plain numbers, not 5e+03
    for f in sweep_figures(df)[0]:
        for t in f.data:
            if t.type == "heatmap":
                assert not any("e+" in s or "e-" in s for s in t.colorbar.ticktext or ())


def test_report_page_shows_the_chip_area(cli, tmp_path):
    out = tmp_path / "r"
    code, _, err = cli("run", "default", "tpu_v1/mlp0", "--out", out)
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    page = (out / "report.html").read_text()
    assert f"≥ {units.number(s['chip_mm2'])} mm²" in page
    assert f"{units.number(s['tops_per_mm2'])} peak TOPS/mm²" in page

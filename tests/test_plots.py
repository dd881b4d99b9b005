"""Charts and pages: the chart shows the table's numbers, pages are self-contained and
deterministic, time parts add up, and ``tpusim roofline`` writes what it says."""
from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

import tpusim
from tpusim.plots import time_parts
from tpusim.report_pages import report_html
from tpusim.roofline_plots import plotted_layers, roofline_chart
from tpusim.roofline import chip_roofs, layer_table, workload_table

from .conftest import run_cli

MLP = """
name,op,m,k,n,elements,weight_dtype,act_dtype,count
fc1,matmul,200,2000,2000,,int8,int8,
act1,tanh,,,,400000,int8,int8,
fc2,matmul,200,2000,2000,,int8,int8,2
fc3,matmul,200,2000,500,,int8,int8,
"""
CNN = """
name,op,batch,in_h,in_w,in_c,out_c,kernel_h,kernel_w,stride,padding,elements,fused
conv1,conv2d,8,56,56,64,64,3,3,1,1,,
relu1,relu,,,,,,,,,,1605632,true
conv2,conv2d,8,56,56,64,128,3,3,2,1,,
pool,pool,,,,,,,,,,802816,
conv3,conv2d,8,28,28,128,256,3,3,1,1,,
"""


def no_cdn(page: str) -> None:
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page, re.I)
    assert page.count("* plotly.js v") == 1  # the bundle, inlined once


def figure_data(page: str, div_id: str) -> list[dict]:
    """The trace list a page passes to ``Plotly.newPlot(div_id, ...)``, typed arrays decoded."""
    start = page.index(f'"{div_id}",', page.index("Plotly.newPlot(")) + len(div_id) + 3
    start = page.index("[", start)
    data, _ = json.JSONDecoder().raw_decode(page, start)

    def decode(v):
        if isinstance(v, dict) and "bdata" in v:
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
        return v
    return [{k: decode(v) for k, v in tr.items()} for tr in data]


# ------------------------------------------------------------------ in-process

@pytest.fixture(scope="module")
def mlp_result(tmp_path_factory):
    p = tmp_path_factory.mktemp("w") / "mlp.csv"
    p.write_text(MLP.strip() + "\n")
    return tpusim.simulate("tpu_v1", tpusim.load_workload(p))


@pytest.mark.parametrize("model", ["pipelined", "scalesim"])
def test_time_parts_add_up_to_cycles(write_csv, model):
    chip = tpusim.load_config("tpu_v1", **{"timing.model": model,
                                           "timing.overhead_cycles_per_op": 100})
    res = tpusim.simulate(chip, tpusim.load_workload(write_csv(CNN)))
    parts = time_parts(res.layers)
    assert (parts.to_numpy() >= 0).all()
    np.testing.assert_allclose(parts.sum(axis=1), res.layers["cycles"] * res.layers["count"])


def test_roofline_chart_shows_the_table(mlp_result):
    chip = mlp_result.config
    roofs = chip_roofs(chip)
    table = layer_table(mlp_result.layers, chip, roofs, "mlp")
    fig = roofline_chart(table, roofs)
    shown = {}
    for tr in fig.data:
        if (tr.meta or {}).get("kind") == "layers":
            for x, y, cd in zip(tr.x, tr.y, tr.customdata):
                shown[cd[11]] = (x, y, cd[0], tr.marker.color)
    want = plotted_layers(table)
    assert sorted(shown) == list(want.index) == [0, 1, 2, 3]
    hi = 10 ** fig.layout.xaxis.range[1]
    for i, r in want.iterrows():
        x, y, name, color = shown[i]
        assert name == r["name"] and y == r["achieved_tops"]
        assert x == pytest.approx(r["ops_per_hbm_byte"] if math.isfinite(r["ops_per_hbm_byte"])
                                  else hi / 2, rel=1e-12)
        assert color == {"hbm": "#e76f51", "vector": "#577590", "compute": "#2a9d8f"}[r["bound"]]
    # the roof line: peak at and past the ridge, bandwidth x intensity before it
    roof = next(tr for tr in fig.data if tr.name.startswith("int8 roof"))
    for x, y in zip(roof.x, roof.y):
        assert y == pytest.approx(min(roofs.compute_tops["int8"], 34e9 * x / 1e12))
    assert roofs.ridge("int8") in roof.x


def test_per_workload_chart_shows_the_workload_table(mlp_result, write_csv):
    chip = mlp_result.config
    roofs = chip_roofs(chip)
    cnn = tpusim.simulate(chip, tpusim.load_workload(write_csv(CNN)))
    tables = [layer_table(mlp_result.layers, chip, roofs, "mlp"),
              layer_table(cnn.layers, chip, roofs, "cnn")]
    wt = workload_table(tables, roofs).set_index("workload")
    fig = roofline_chart(tables, roofs, per_workload=True)
    pts = {t: (x, y) for tr in fig.data if (tr.meta or {}).get("kind") == "workloads"
           for t, x, y in zip(tr.text, tr.x, tr.y)}
    assert set(pts) == {"mlp", "cnn"}
    for w, (x, y) in pts.items():
        assert x == wt.loc[w, "ops_per_hbm_byte"] and y == wt.loc[w, "achieved_tops"]
        assert y == pytest.approx({"mlp": mlp_result, "cnn": cnn}[w].summary["achieved_tops"])


def test_report_page_is_self_contained_and_deterministic(mlp_result):
    page = report_html(mlp_result)
    no_cdn(page)
    assert page == report_html(mlp_result)
    for i in range(3):
        assert f'id="plot-{i}"' in page
    for heading in ("Roofline", "Time per layer", "Energy", "Heaviest layers", "Assumptions"):
        assert f"<h2>{heading}</h2>" in page
    assert "HBM-bound" in page and "vector-bound" in page
    s = mlp_result.summary
    assert f"{s['latency_s'] * 1e3:.4g} ms" in page


# ------------------------------------------------------------------ the CLI

def test_roofline_cli_writes_chart_table_and_csv(tmp_path, monkeypatch, write_csv):
    mlp, cnn = write_csv(MLP, "mlp.csv"), write_csv(CNN, "cnn.csv")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("roofline", "default", mlp, cnn, "--format", "int8,bf16")
    assert code == 0, err
    html_path = tmp_path / "results" / "roofline-default-mlp+cnn.html"
    csv_path = html_path.with_suffix(".csv")
    assert f"wrote {html_path.relative_to(tmp_path)}" in out
    assert "Roofline per layer" in out and "Roofline per workload" in out
    table = pd.read_csv(csv_path)
    assert len(table) == 2 * (4 + 5)
    assert set(zip(table["workload"], table["format"])) == {
        (w, f) for w in ("mlp", "cnn") for f in ("int8", "bf16")}
    page = html_path.read_text()
    no_cdn(page)
    # the chart's points are the CSV's rows
    points = {(cd[10], cd[0], cd[2]): (x, y)
              for tr in figure_data(page, "plot-0")
              if (tr.get("meta") or {}).get("kind") == "layers"
              for x, y, cd in zip(tr["x"], tr["y"], tr["customdata"])}
    shown = table[(table["achieved_tops"] > 0) & (table["time_s"] > 0)]
    assert len(points) == len(shown)
    for r in shown.itertuples():
        x, y = points[(r.workload, r.name, r.format)]
        assert y == pytest.approx(r.achieved_tops, rel=1e-9)
        if math.isfinite(r.ops_per_hbm_byte):
            assert x == pytest.approx(r.ops_per_hbm_byte, rel=1e-9)


def test_roofline_cli_per_workload(tmp_path, write_csv):
    mlp, cnn = write_csv(MLP, "mlp.csv"), write_csv(CNN, "cnn.csv")
    ref = write_csv("name,ops_per_byte,tops\npaper MLP,400,12.3\n", "ref.csv")
    out = tmp_path / "o" / "apps.html"
    code, stdout, err = run_cli("roofline", "tpu_v1", mlp, cnn, "--per-workload",
                                "--reference", ref, "--out", out)
    assert code == 0, err
    wt = pd.read_csv(out.with_suffix(".csv"))
    assert list(wt["workload"]) == ["mlp", "cnn"]
    assert "Roofline per layer" not in stdout
    data = figure_data(out.read_text(), "plot-0")
    refs = [tr for tr in data if tr.get("name") == "reference"]
    assert refs and refs[0]["x"] == [400] and refs[0]["y"] == [12.3]


def test_roofline_png_without_kaleido_is_one_line_exit_2(tmp_path, monkeypatch, write_csv):
    import sys
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if not installed
    mlp = write_csv(MLP, "mlp.csv")
    out = tmp_path / "x.html"
    code, stdout, err = run_cli("roofline", "tpu_v1", mlp, "--out", out,
                                "--png", tmp_path / "x.png")
    assert code == 2
    assert err.count("\n") == 1 and "pip install 'tpusim[png]'" in err
    assert not out.exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("args, needle", [
    (["--format", "int8,fp8_e4m3"], "fp8_e4m3"),
    (["--format", "int8,"], "--format"),
])
def test_roofline_cli_bad_input(tmp_path, write_csv, args, needle):
    mlp = write_csv(MLP, "mlp.csv")
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "x.html", *args)
    assert code == 2 and err.count("\n") == 1 and needle in err
    assert not (tmp_path / "x.html").exists()


def test_bad_reference_file(tmp_path, write_csv):
    mlp = write_csv(MLP, "mlp.csv")
    ref = write_csv("name,ops_per_byte,tops\nA,400,-1\n", "ref.csv")
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--reference", ref,
                           "--out", tmp_path / "x.html")
    assert code == 2 and "line 2, column tops" in err and "ref.csv" in err


def test_run_writes_report(tmp_path, write_csv):
    mlp = write_csv(MLP, "mlp.csv")
    code, _, err = run_cli("run", "tpu_v1", mlp, "--out", tmp_path / "r")
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    no_cdn(page)
    assert "<h2>Roofline</h2>" in page


def test_roofline_png_is_written_beside_the_chart(tmp_path, monkeypatch, write_csv):
    """With kaleido present, the PNG's bytes are what plotly's exporter returns (stubbed here:
    the real exporter needs Chrome), written atomically with the HTML and CSV."""
    import sys
    import types

    import plotly.graph_objects as go
    fake = b"\x89PNG\r\n\x1a\nfake"
    monkeypatch.setitem(sys.modules, "kaleido", types.ModuleType("kaleido"))
    monkeypatch.setattr("tpusim.cli.roofline.have_kaleido", lambda: True)
    monkeypatch.setattr(go.Figure, "to_image", lambda self, **kw: fake)
    mlp = write_csv(MLP, "mlp.csv")
    for png in (tmp_path / "x.png", tmp_path / "other" / "x.png"):
        code, out, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "x.html",
                                 "--png", png)
        assert code == 0, err
        assert png.read_bytes() == fake and (tmp_path / "x.csv").exists()
        assert not list(png.parent.glob(".*.tmp"))


def test_roofline_png_export_failure_is_one_line(tmp_path, monkeypatch, write_csv):
    import sys
    import types

    import plotly.graph_objects as go

    def boom(self, **kw):
        raise RuntimeError("Chrome not found\nmore detail")
    monkeypatch.setitem(sys.modules, "kaleido", types.ModuleType("kaleido"))
    monkeypatch.setattr("tpusim.cli.roofline.have_kaleido", lambda: True)
    monkeypatch.setattr(go.Figure, "to_image", boom)
    mlp = write_csv(MLP, "mlp.csv")
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "x.html",
                           "--png", tmp_path / "x.png")
    assert code == 1 and err.count("\n") == 1 and "Chrome not found" in err
    assert not (tmp_path / "x.html").exists()

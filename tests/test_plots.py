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


def _aggregate(rows: pd.DataFrame) -> tuple[float, float]:
    """Where rows merged into one marker belong: their ops over their HBM bytes and time."""
    ops = (rows["ops"] * rows["count"]).sum()
    hbm = (rows["hbm_bytes"] * rows["count"]).sum()
    return (ops / hbm if hbm else math.nan), ops / rows["time_s"].sum() / 1e12


def _layer_markers(fig):
    """{row index: (x, y, first name, colour, symbol, rows merged)} of the layer markers."""
    shown = {}
    for tr in fig.data:
        if (tr.meta or {}).get("kind") == "layers":
            colors = tr.marker.color
            for j, (x, y, cd) in enumerate(zip(tr.x, tr.y, tr.customdata)):
                for i in cd[11]:
                    assert i not in shown         # every row in one marker only
                    shown[i] = (x, y, cd[0], colors, tr.marker.symbol, cd[11])
    return shown


def test_roofline_chart_shows_the_table(mlp_result):
    chip = mlp_result.config
    roofs = chip_roofs(chip)
    table = layer_table(mlp_result.layers, chip, roofs, "mlp")
    fig = roofline_chart(table, roofs)
    shown = _layer_markers(fig)
    want = plotted_layers(table)
    assert sorted(shown) == list(want.index) == [0, 1, 2, 3]
    gutter = fig.layout.shapes[0]
    ticks = fig.layout.xaxis.tickvals
    g0, g1 = gutter["x0"], gutter["x1"]
    for i, r in want.iterrows():
        x, y, name, color, _, rows = shown[i]
        agg = table.loc[rows]
        assert y == pytest.approx(_aggregate(agg)[1], rel=1e-12)
        assert name == table["name"][rows[0]]
        assert agg[["kind", "format", "m", "k", "n", "roof", "bound"]].astype(str).nunique().max() == 1
        if len(rows) == 1:
            assert y == r["achieved_tops"]
        if r["on_chip"]:    # the tanh moves no DDR3 byte: in the gutter, right of every tick
            assert g0 < x < g1 and x > max(ticks)
        else:
            assert x == pytest.approx(_aggregate(agg)[0], rel=1e-12) and x < g0
        # coloured by the roof that binds at its intensity, not by the timing bound
        assert color == {"hbm": "#e76f51", "vector": "#577590", "compute": "#2a9d8f",
                         "sram": "#e9c46a"}[r["roof"]]
    assert any("on chip" in a.text for a in fig.layout.annotations)
    # TPUv1's off-chip memory is DDR3, and the chart says so
    assert "DDR3" in fig.layout.xaxis.title.text
    assert any(a.text.startswith("DDR3 ") for a in fig.layout.annotations)
    # the roof line: peak at and past the ridge, bandwidth x intensity before it
    roof = next(tr for tr in fig.data if tr.name.startswith("int8 roof"))
    for x, y in zip(roof.x, roof.y):
        assert y == pytest.approx(min(roofs.compute_tops["int8"], 34e9 * x / 1e12))
    assert roofs.ridge("int8") in roof.x


def test_identical_layers_are_one_marker_and_colour_is_the_binding_roof(write_csv):
    """Three FCs of one shape (one a count-2 row) are one marker x3 with their names, at the
    point their sums make; on TPUv1 a layer whose DDR3 roof is below the compute peak is
    coloured for the DDR3 slope, whatever the timing model calls it."""
    trace = write_csv("name,op,m,k,n,count\nbig,matmul,2048,2048,2048,\na,matmul,256,256,256,\n"
                      "b,matmul,256,256,256,2\nc,matmul,256,256,256,\n"
                      "big2,matmul,2048,2048,2048,\n")
    r = tpusim.simulate("tpu_v1", tpusim.load_workload(trace))
    roofs = chip_roofs(r.config)
    table = layer_table(r.layers, r.config, roofs, "t")
    assert table.loc[[1, 2, 3], "cycles"].nunique() > 1     # same shape, different carry
    fig = roofline_chart(table, roofs)
    shown = _layer_markers(fig)
    assert sorted(shown[1][5]) == [1, 2, 3] and sorted(shown[0][5]) == [0, 4]
    tr = next(t for t in fig.data if (t.meta or {}).get("kind") == "layers")
    cd = next(cd for cd in tr.customdata if sorted(cd[11]) == [1, 2, 3])
    assert cd[14] == " ×3: a, b, c" and cd[4] == 4 and cd[15] == ["a", "b", "c"]
    x, y = _aggregate(table.loc[[1, 2, 3]])
    assert shown[1][0] == pytest.approx(x) and shown[1][1] == pytest.approx(y)
    # the merged point stays under its roof: the same rule as the per-workload point
    j = tr.customdata.index(cd)
    assert tr.y[j] <= cd[8] * (1 + 1e-12)
    for i, v in shown.items():
        roof = table["roof"][i]
        assert v[3] == {"hbm": "#e76f51", "compute": "#2a9d8f"}[roof]
        if roof == "hbm":
            assert table["attainable_tops"][i] < roofs.compute_tops["int8"]


def test_several_series_are_coloured_by_series(mlp_result, write_csv):
    chip = mlp_result.config
    roofs = chip_roofs(chip)
    cnn = tpusim.simulate(chip, tpusim.load_workload(write_csv(CNN)))
    tables = [layer_table(mlp_result.layers, chip, roofs, "mlp"),
              layer_table(cnn.layers, chip, roofs, "cnn")]
    fig = roofline_chart(tables, roofs)
    by_series = {}
    for tr in fig.data:
        if (tr.meta or {}).get("kind") == "layers":
            by_series.setdefault(tr.meta["series"], set()).add(tr.marker.color)
            # the symbol says the roof
            assert tr.marker.symbol == {"compute": "circle", "hbm": "square", "sram": "diamond",
                                        "vector": "triangle-up"}[tr.meta["roof"]]
    assert all(len(c) == 1 for c in by_series.values())
    assert by_series[0] != by_series[1]


def test_edge_tpu_off_chip_memory_is_usb(write_csv):
    trace = write_csv("name,op,m,k,n\nfc,matmul,64,1024,1024\n")
    r = tpusim.simulate("edge_tpu", tpusim.load_workload(trace))
    page = report_html(r)
    assert "USB3 traffic" in page and "ops per USB3 byte" in page and "HBM" not in page


def test_labels_do_not_overlap():
    """Six workloads at nearby points get label boxes that overlap no other label and no point."""
    from tpusim.chart_labels import label_box, overlap, place, to_px
    pts = [(100, 10, "mlp0"), (110, 11, "mlp1"), (95, 9.5, "lstm0"), (105, 10.5, "lstm1"),
           (120, 9, "cnn0"), (90, 11.5, "cnn1 int8")]
    xr, yr = (0.0, 4.0), (-1.0, 3.0)
    offsets = place(pts, xr, yr)
    px = [to_px(x, y, xr, yr, (1000, 500)) for x, y, _ in pts]
    boxes = [label_box(a, b, o, t) for (a, b), o, (_, _, t) in zip(px, offsets, pts)]
    for i in range(len(boxes)):
        for j in range(i):
            assert overlap(boxes[i], boxes[j]) == 0, (pts[i], pts[j])
        for a, b in px:      # nor any marker (16 px)
            assert overlap(boxes[i], (a - 8, b - 8, a + 8, b + 8)) == 0
    # alone, a label sits right above its point
    (ax, ay), = place([(10, 1, "a")], xr, yr)
    assert ax == 0 and -30 < ay < 0


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
    assert "DDR3-bound" in page and "vector-bound" in page   # TPUv1: DDR3 off chip
    s = mlp_result.summary
    from tpusim import units
    assert units.seconds(s["latency_s"]) in page
    # one definition of utilization, beside the two numbers it divides
    assert (f"{units.number(s['achieved_tops'])} of {units.number(s['peak_tops'])} TOPS peak "
            f"for int8: {s['utilization']:.1%}") in page
    assert s["utilization"] == pytest.approx(s["achieved_tops"] / s["peak_tops"])


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
    assert "inf" not in csv_path.read_text()      # no byte moved: empty, as the JSON's null
    assert table["ops_per_hbm_byte"].isna().eq(table["on_chip"]).all()
    assert set(zip(table["workload"], table["format"])) == {
        (w, f) for w in ("mlp", "cnn") for f in ("int8", "bf16")}
    page = html_path.read_text()
    no_cdn(page)
    # the chart's points are the CSV's rows
    points = {(cd[10], name, cd[2]): (x, y, cd[15])
              for tr in figure_data(page, "plot-0")
              if (tr.get("meta") or {}).get("kind") == "layers"
              for x, y, cd in zip(tr["x"], tr["y"], tr["customdata"]) for name in cd[15]}
    shown = table[(table["achieved_tops"] > 0) & (table["time_s"] > 0)]
    assert len(points) == len(shown)
    for r in shown.itertuples():
        x, y, names = points[(r.workload, r.name, r.format)]
        rows = shown[(shown["workload"] == r.workload) & (shown["format"] == r.format)
                     & shown["name"].isin(names)]
        ax, ay = _aggregate(rows)
        assert y == pytest.approx(ay, rel=1e-9)
        if len(rows) == 1:
            assert y == pytest.approx(r.achieved_tops, rel=1e-9)
        if not r.on_chip:
            assert x == pytest.approx(ax, rel=1e-9)


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


def test_roofline_png_never_replaces_a_file_tpusim_did_not_write(tmp_path, monkeypatch,
                                                                   write_csv):
    """--png replaces only a PNG (its signature), and never another output's file: checked
    before the chart is drawn (kaleido stubbed: the PNG's bytes are not what is tested)."""
    import struct
    import zlib

    import tpusim.cli.roofline as rl
    from tpusim._io import mark_png

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I",
                                                                       zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))
    monkeypatch.setattr(rl, "have_kaleido", lambda: True)
    monkeypatch.setattr(rl, "_png", lambda fig: mark_png(png))   # what _png returns: marked
    mlp = write_csv(MLP, "mlp.csv")
    figs = tmp_path / "figs"
    figs.mkdir()
    mine = figs / "fig5.png"
    for theirs in (b"my figure\n", png):     # a user's file, and a user's PNG (no tpusim mark)
        mine.write_bytes(theirs)
        code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "c.html",
                               "--png", mine)
        assert code == 2 and err.strip().endswith("fig5.png: exists and was not written by "
                                                  "tpusim; choose another --png or move it"), err
        assert mine.read_bytes() == theirs and not (tmp_path / "c.html").exists()
    assert run_cli("run", "tpu_v1", mlp, "--out", tmp_path / "r")[0] == 0
    before = (tmp_path / "r" / "summary.json").read_bytes()
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "d.html", "--png",
                           tmp_path / "r" / "summary.json")
    assert code == 2 and "belongs to the tpusim run output" in err and "--png" in err
    assert (tmp_path / "r" / "summary.json").read_bytes() == before
    mine.unlink()
    for png_path in (mine, tmp_path / "c.png"):   # its own PNG, in or out of the chart's folder
        for _ in range(2):                          # written, then replaced
            code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "c.html",
                                   "--png", png_path)
            assert code == 0, err
        assert png_path.read_bytes() == mark_png(png)


@pytest.mark.parametrize("args, needle", [
    (["--format", "int8,fp8_e4m3"], "fp8_e4m3"),
    (["--format", "int8,"], "--format"),
])
def test_roofline_cli_bad_input(tmp_path, write_csv, args, needle):
    mlp = write_csv(MLP, "mlp.csv")
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--out", tmp_path / "x.html", *args)
    assert code == 2 and err.count("\n") == 1 and needle in err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize("text, says", [
    ("name,ops_per_byte,tops\nA,400,-1\n", "line 2, column tops: got -1"),
    ("name,ops_per_byte,tops,foo\nA,400,1,2\n",
     "line 1, column 'foo': unknown column; allowed: name, ops_per_byte, tops"),
    ("# mine\nname,tops,ops_per_byte,tops\nA,1,400,2\n",
     "line 2, column 'tops': column appears twice in the header"),
])
def test_bad_reference_file(tmp_path, write_csv, text, says):
    mlp = write_csv(MLP, "mlp.csv")
    ref = write_csv(text, "ref.csv")
    code, _, err = run_cli("roofline", "tpu_v1", mlp, "--reference", ref,
                           "--out", tmp_path / "x.html")
    assert code == 2 and f"ref.csv: {says}" in err and err.count("\n") == 1, err


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

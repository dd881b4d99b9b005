"""``timing.model: scalesim`` against SCALE-Sim 3.0.0 itself.

``tests/data/scalesim_golden.csv`` holds what the real SCALE-Sim reported for 193 layers (three
dataflows, square and non-square arrays, layers smaller/larger than the array, strides, 1x1 and
non-square filters, depthwise ``DP`` layers, GEMM form), made by
``benchmarks/scalesim_golden.py``. In CALC bandwidth mode SCALE-Sim never stalls, so its "Total
Cycles" are its compute cycles. The slow test re-runs SCALE-Sim live when it is importable.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tpusim.config import load_config
from tpusim.importers.scalesim import topology_rows
from tpusim.timing import array_timing
from tpusim.workload import make_layer

GOLDEN = Path(__file__).parent / "data" / "scalesim_golden.csv"
CONV = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filter", "stride")


def _golden() -> list[dict]:
    with open(GOLDEN) as fh:
        return list(csv.DictReader(fh))


def _layer(row: dict, tmp: Path):
    if row["form"] == "gemm":
        text = f"Layer,M,N,K,\n{row['name']},{row['m']},{row['n']},{row['k']},\n"
    else:
        name = row["name"].split("Channel_")[0] if "DP" in row["name"] else row["name"]
        text = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                "Num Filter, Strides,\n" + ",".join([name] + [row[c] for c in CONV]) + ",\n")
    p = tmp / "topo.csv"
    p.write_text(text)
    (r,) = topology_rows(p)
    return make_layer(r)


def _chip(row: dict):
    return load_config("default", **{"array.rows": int(row["rows"]),
                                     "array.cols": int(row["cols"]),
                                     "array.dataflow": row["dataflow"], "array.count": 1,
                                     "timing.model": "scalesim"})


def test_golden_covers_the_cases():
    rows = _golden()
    assert len(rows) >= 150
    assert {r["dataflow"] for r in rows} == {"ws", "os", "is"}
    assert {r["form"] for r in rows} == {"conv", "gemm"}
    assert any(r["rows"] != r["cols"] for r in rows)
    assert any("DP" in r["name"] for r in rows)


def test_compute_cycles_equal_scalesim(tmp_path):
    mismatches = []
    for row in _golden():
        if row["bandwidth_mode"] != "CALC":
            continue
        layer = _layer(row, tmp_path)
        assert layer.m * layer.k * layer.n > 0
        ours = array_timing(layer, _chip(row), "int8").compute_cycles
        if ours != int(row["total_cycles"]):
            mismatches.append((row["case"], row["name"], ours, row["total_cycles"]))
    assert not mismatches, mismatches[:10]


def test_user_mode_total_is_compute_plus_stalls(tmp_path):
    """USER bandwidth mode adds SCALE-Sim's memory stalls on top of the same compute cycles."""
    for row in _golden():
        if row["bandwidth_mode"] != "USER":
            continue
        ours = array_timing(_layer(row, tmp_path), _chip(row), "int8").compute_cycles
        assert int(row["total_cycles"]) - int(row["stall_cycles"]) == ours, row["name"]


def test_gemm_shapes_equal_scalesim(tmp_path):
    for row in _golden():
        layer = _layer(row, tmp_path)
        assert (layer.m, layer.n, layer.k) == (int(row["m"]), int(row["n"]), int(row["k"]))


@pytest.mark.slow
def test_live_scalesim(tmp_path):
    """Run SCALE-Sim 3.0.0 on a fresh mixed topology (if it is installed) and compare."""
    python = os.environ.get("TPUSIM_SCALESIM_PYTHON")
    if not python:
        try:
            import scalesim  # noqa: F401
            python = sys.executable
        except ImportError:
            pytest.skip("SCALE-Sim 3.0.0 not installed: set TPUSIM_SCALESIM_PYTHON to the python "
                        "of a venv with `pip install scalesim 'numpy<2.4'`")
    shared = Path(__file__).resolve().parent / "data" / "scalesim"
    topo = tmp_path / "t.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nC1,23,17,3,2,5,37,2,\nC2DP,12,12,3,3,3,9,1,\n"
                    "C3,9,9,1,1,40,20,1,\n")
    for df in ("ws", "os", "is"):
        cfg = tmp_path / f"{df}.cfg"
        cfg.write_text((shared / "configs" / "scale.cfg").read_text()
                       .replace("ArrayHeight:    32", "ArrayHeight:    12")
                       .replace("ArrayWidth:     32", "ArrayWidth:     20")
                       .replace("Dataflow : ws", f"Dataflow : {df}"))
        out = tmp_path / f"out_{df}"
        subprocess.run([python, "-m", "scalesim.scale", "-c", str(cfg), "-t", str(topo),
                        "-p", str(out), "-l", str(shared / "layouts" / "conv_nets" / "test.csv")],
                       check=True, capture_output=True, cwd=tmp_path)
        report = next(out.rglob("COMPUTE_REPORT.csv"))
        theirs = [int(r[2]) for r in list(csv.reader(open(report)))[1:]]
        chip = load_config(cfg)
        ours = []
        for r in topology_rows(topo):
            layer = make_layer(r)
            ours += [array_timing(layer, chip, "int8").compute_cycles] * layer.count
        assert ours == theirs, df

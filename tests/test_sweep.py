"""Sweeps: the product of points, per-point equality with simulate(), failures recorded, keys,
resume after a kill or Ctrl-C, identical numbers in-process / process pool / Dask, the page."""
from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import tpusim
from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.sweep_plots import pareto_front, sweep_figures, sweep_html, varying_axes
from tpusim.sweeps import JOURNAL_DIR, flatten_summary, plan_sweep, sweep

from .conftest import ROOT, SCALESIM

RESNET18 = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"
TRACE = """name,op,batch,m,k,n,in_h,in_w,in_c,out_c,kernel_h,kernel_w,stride,padding,elements
conv1,conv2d,1,,,,56,56,64,128,3,3,1,1,
relu1,relu,,,,,,,,,,,,,401408
fc1,matmul,,256,512,1000,,,,,,,,,
fc2,matmul,,64,1000,300,,,,,,,,,
"""
# int8 accumulates in 4-byte int32 (formats.py): a double-buffered r x c accumulator tile needs
# 2*r*c*4 bytes, so 64 KiB holds it for r*c <= 8192 (64x128 fits exactly) but not 128x128.
SMALL_OUT_KIB = 64


def _drop_timing(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["simulator_seconds"], errors="ignore").reset_index(drop=True)


@pytest.fixture
def trace(tmp_path) -> Path:
    p = tmp_path / "tiny.csv"
    p.write_text(TRACE)
    return p


@pytest.fixture
def small_chip():
    return load_config("default", **{"memory.sram.output_kib": SMALL_OUT_KIB})


def test_product_columns_and_equality_with_simulate(trace):
    axes = {"array.rows": [16, 64], "array.cols": [32, 128, 256], "format": ["int8", "bf16"]}
    df = sweep("default", [trace], axes, jobs=1)
    assert len(df) == 12 and df.attrs == {"points": 12, "computed": 12, "reused": 0, "failed": 0}
    assert list(df.columns[:4]) == ["workload", "array.rows", "array.cols", "format"]
    got = set(zip(df["array.rows"], df["array.cols"], df["format"]))
    assert got == set(itertools.product([16, 64], [32, 128, 256], ["int8", "bf16"]))
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    for col in ("bound_share.hbm", "energy_breakdown_j.mac", "stall_cycles.weight",
                "throughput_per_s", "energy_per_inference_j", "utilization"):
        assert col in df.columns
    for _, row in df.iterrows():
        chip = load_config("default", **{"array.rows": int(row["array.rows"]),
                                         "array.cols": int(row["array.cols"])})
        want = flatten_summary(tpusim.simulate(chip, str(trace), format=row["format"]).summary)
        for k, v in want.items():
            if k not in ("simulator_seconds", "workload", "format"):
                assert row[k] == v, k
        assert row["format"] == want["format"]
    # Flattened dicts keep their laws: time shares sum to 1, energy parts to the total.
    shares = df[[c for c in df.columns if c.startswith("bound_share.")]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx(1.0)
    parts = df[[c for c in df.columns if c.startswith("energy_breakdown_j.")]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(df["energy_j"].to_numpy())


def test_square_pairs_rows_with_cols(cli, trace, tmp_path):
    out = tmp_path / "sq"
    code, stdout, err = cli("sweep", "default", trace, "--rows", "16,32,64", "--square",
                            "--out", out)
    assert code == 0, err
    df = pd.read_parquet(out / "sweep.parquet")
    assert list(zip(df["array.rows"], df["array.cols"])) == [(16, 16), (32, 32), (64, 64)]
    assert stdout.strip().splitlines()[-1] == "3 points: 3 computed, 0 reused"
    assert err == ""  # not a terminal: no progress bar
    code, _, err = cli("sweep", "default", trace, "--rows", "16,32", "--cols", "16",
                       "--square", "--out", tmp_path / "sq2")
    assert code == 2 and "--square" in err


def test_failed_point_is_recorded_and_sweep_goes_on(trace, small_chip, tmp_path):
    axes = {"array.rows": [64, 128], "array.cols": [64, 128]}
    df = sweep(small_chip, trace, axes, jobs=1, out_dir=tmp_path / "f")
    failed = df[df["status"] == "failed"]
    assert list(zip(failed["array.rows"], failed["array.cols"])) == [(128, 128)]
    err = failed["error"].iloc[0]
    assert "memory.sram.output_kib" in err and "128x128" in err and "\n" not in err
    assert failed["latency_s"].isna().all()
    assert (df.loc[df["status"] == "ok", "latency_s"] > 0).all()
    assert df.attrs["failed"] == 1 and df.attrs["computed"] == 4
    on_disk = pd.read_csv(tmp_path / "f" / "sweep.csv")
    assert list(on_disk["status"]) == ["ok", "ok", "ok", "failed"]
    # A deterministic failure is a result too: the re-run reuses it.
    again = sweep(small_chip, trace, axes, jobs=1, out_dir=tmp_path / "f")
    assert again.attrs["reused"] == 4 and again.attrs["computed"] == 0


def test_cli_counts_failures_before_last_line(cli, trace, tmp_path):
    code, stdout, _ = cli("sweep", "default", trace, "--rows", "64,128", "--cols", "128",
                          "--set", f"memory.sram.output_kib={SMALL_OUT_KIB}",
                          "--jobs", "1", "--out", tmp_path / "c")
    lines = stdout.strip().splitlines()
    assert code == 0
    assert lines[-1] == "2 points: 2 computed, 0 reused"
    assert lines[-2].startswith("1 failed") and "output_kib" in lines[-2]
    df = pd.read_csv(tmp_path / "c" / "sweep.csv")
    assert list(df.columns[:4]) == ["workload", "array.rows", "array.cols",
                                    "memory.sram.output_kib"]


def test_a_sweep_whose_every_point_fails_is_an_error(cli, trace, tmp_path):
    # both arrays' accumulator tiles overfill the shrunken output buffer: nothing to show
    code, _, err = cli("sweep", "default", trace, "--rows", "128", "--cols", "128,256",
                       "--set", f"memory.sram.output_kib={SMALL_OUT_KIB}", "--jobs", "1",
                       "--out", tmp_path / "all")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "every one of the 2 points failed" in err and "output_kib" in err


def test_resume_reuses_points_and_extends(cli, trace, tmp_path):
    out = tmp_path / "r"
    base = ("sweep", "default", trace, "--cols", "32,64", "--jobs", "1", "--out", out)
    code, first, _ = cli(*base, "--rows", "16,32")
    assert code == 0 and first.splitlines()[-1] == "4 points: 4 computed, 0 reused"
    df1 = pd.read_parquet(out / "sweep.parquet")
    code, second, _ = cli(*base, "--rows", "16,32")
    assert second.splitlines()[-1] == "4 points: 0 computed, 4 reused"
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), df1)
    code, third, _ = cli(*base, "--rows", "16,32,48")
    assert third.splitlines()[-1] == "6 points: 2 computed, 4 reused"
    assert not (out / JOURNAL_DIR).exists()


def test_key_is_content_not_spelling(trace, tmp_path):
    out = tmp_path / "k"
    sweep("default", trace, {"array.rows": [64, 128]}, jobs=1, out_dir=out)
    # The default is 128x128: overriding cols to 128 gives the same config content.
    df = sweep("default", trace, {"array.cols": [128, 256]}, jobs=1, out_dir=out)
    assert (df.attrs["reused"], df.attrs["computed"]) == (1, 1)
    # Same bytes under another name: reused, labelled with the new name.
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(trace.read_bytes())
    df = sweep("default", copy, {"array.cols": [128, 256]}, jobs=1, out_dir=out)
    assert df.attrs["reused"] == 2 and set(df["workload"]) == {"renamed"}
    # Changed content: recomputed.
    copy.write_text(TRACE.replace("1000,", "1001,"))
    df = sweep("default", copy, {"array.cols": [128, 256]}, jobs=1, out_dir=out)
    assert df.attrs["computed"] == 2


def test_keys_change_with_config_content_and_format(trace):
    a = plan_sweep("default", trace, {"clock_ghz": [1.0, 2.0], "format": ["int8", "bf16"]})
    keys = [p.key for p in a.points]
    assert len(set(keys)) == 4
    b = plan_sweep("default", trace, {"format": ["bf16", "int8"], "clock_ghz": [2.0, 1.0]})
    assert set(p.key for p in b.points) == set(keys)


@pytest.mark.parametrize("args,needles", [
    (["--rows", "16,abc"], ["--rows", "abc", "positive integers"]),
    (["--rows", "16,-4"], ["--rows", "-4"]),
    (["--cols", "16,,32"], ["--cols"]),
    (["--set", "array.rowz=1,2"], ["array.rowz", "allowed fields"]),
    (["--set", "clock_ghz=1,fast"], ["clock_ghz", "fast"]),
    (["--set", "array.dataflow=ws,xy"], ["array.dataflow", "xy"]),
    (["--set", "array.rows=8", "--rows", "16"], ["array.rows", "twice"]),
    (["--format", "int8,int3"], ["int3"]),
    (["--jobs", "0"], ["--jobs"]),
])
def test_bad_input_one_line_exit_2_nothing_runs(cli, trace, tmp_path, args, needles):
    out = tmp_path / "bad"
    code, stdout, err = cli("sweep", "default", trace, *args, "--out", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    assert not out.exists()


def test_dask_missing_is_one_line(cli, trace, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    code, _, err = cli("sweep", "default", trace, "--rows", "16", "--scheduler",
                       "tcp://127.0.0.1:8786", "--out", tmp_path / "d")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'tpusim[dask]'" in err
    assert not (tmp_path / "d" / "sweep.parquet").exists()


def test_process_pool_matches_in_process(trace, tmp_path):
    axes = {"array.rows": [16, 32, 128], "array.cols": [16, 64, 128], "format": ["int8", "bf16"]}
    ref = sweep("default", trace, axes, jobs=1)
    pool = sweep("default", trace, axes, jobs=2, out_dir=tmp_path / "p")
    pd.testing.assert_frame_equal(_drop_timing(pool), _drop_timing(ref))
    disk = pd.read_parquet(tmp_path / "p" / "sweep.parquet")
    pd.testing.assert_frame_equal(_drop_timing(disk), _drop_timing(ref))


@pytest.mark.slow
def test_dask_cluster_matches_local(trace, small_chip, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    axes = {"array.rows": [16, 64, 128], "array.cols": [32, 128], "format": ["int8", "bf16"]}
    ref = sweep(small_chip, [trace, RESNET18], axes, jobs=1)
    assert ref.attrs["failed"] == 4  # 128x128 on both workloads and formats
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        got = sweep(small_chip, [trace, RESNET18], axes, scheduler=cluster.scheduler_address,
                        out_dir=tmp_path / "dask")
    pd.testing.assert_frame_equal(_drop_timing(got), _drop_timing(ref))
    assert got.attrs == ref.attrs


# Big enough (128 points) that the sweep is still running when the signal arrives.
INTERRUPT_AXES = {"array.rows": [8, 16, 24, 32, 48, 64, 96, 128],
                  "array.cols": [16, 32, 64, 128, 256, 512, 1024, 2048],
                  "format": ["int8", "bf16"]}


def _sweep_cmd(out: Path, *extra: str) -> list[str]:
    ax = {k: ",".join(map(str, v)) for k, v in INTERRUPT_AXES.items()}
    return [sys.executable, "-m", "tpusim", "sweep", "default", str(RESNET18),
            "--rows", ax["array.rows"], "--cols", ax["array.cols"],
            "--format", ax["format"], "--jobs", "1", "--out", str(out), *extra]


def _kill_after_first_chunk(out: Path, sig: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(_sweep_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    journal = out / JOURNAL_DIR
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_dir() and any(journal.glob("*.jsonl")):
            break
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_sweep_resumes_to_the_same_result(tmp_path, sig):
    out = tmp_path / "int"
    killed = _kill_after_first_chunk(out, sig)
    assert killed.returncode == (-9 if sig == signal.SIGKILL else 130), killed.stderr
    if sig == signal.SIGINT:
        assert killed.stderr.strip().splitlines()[-1] == "tpusim: aborted"
        assert pd.read_parquet(out / "sweep.parquet")["status"].eq("ok").all()
    # Whatever is on disk is whole: journal lines parse, no temp file was renamed in.
    for f in (out / JOURNAL_DIR).glob("*.jsonl") if (out / JOURNAL_DIR).exists() else []:
        assert all(json.loads(line)["key"] for line in f.read_text().splitlines())
    resumed = subprocess.run(_sweep_cmd(out), capture_output=True, text=True, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr
    last = resumed.stdout.strip().splitlines()[-1]
    n, computed, reused = (int(s) for s in
                           last.replace(" points:", "").replace(" computed,", "")
                           .replace(" reused", "").split())
    assert n == 128 and computed + reused == 128 and 0 < reused < 128, last
    fresh = sweep("default", RESNET18, INTERRUPT_AXES, jobs=1)
    pd.testing.assert_frame_equal(_drop_timing(pd.read_parquet(out / "sweep.parquet")),
                                  _drop_timing(fresh))
    assert not (out / JOURNAL_DIR).exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")
                and p.name != ".tpusim-sweep.json"]   # the manifest of the files written


def test_checkpoints_as_points_finish(trace, tmp_path, monkeypatch):
    import tpusim.sweeps as sweeps_mod
    monkeypatch.setattr(sweeps_mod, "CONSOLIDATE_EVERY_S", -1.0)  # consolidate after every chunk
    seen = []

    def progress(done, total):
        seen.append((done, total))
    out = tmp_path / "ck"
    df = sweep("default", trace, {"array.rows": list(range(8, 72, 8)),
                                      "array.cols": [16, 32]}, jobs=1, out_dir=out,
                   progress=progress)
    assert seen[-1] == (16, 16) and len(seen) == 4  # 16 points in chunks of 4
    assert len(pd.read_parquet(out / "sweep.parquet")) == len(df) == 16


def test_sweep_page_has_heatmaps_pareto_and_embedded_plotly(trace, tmp_path):
    axes = {"array.rows": [16, 32, 64], "array.cols": [16, 64], "format": ["int8", "bf16"]}
    df = sweep("default", trace, axes, jobs=1, out_dir=tmp_path / "h")
    figs, _ = sweep_figures(df)
    kinds = [t.type for f in figs for t in f.data]
    # per format a 2x2 grid of METRICS and one of EFFICIENCY (perf/area, perf/W, area, power)
    assert kinds.count("heatmap") == 2 * 8
    heat = figs[0].data[0]  # throughput, int8: rows down, cols across
    row = df[(df["format"] == "int8") & (df["array.rows"] == 32) & (df["array.cols"] == 64)]
    value = row["throughput_per_s"].iloc[0]
    assert heat.text[1][1] == value and heat.z[1][1] == pytest.approx(math.log10(value))
    page = (tmp_path / "h" / "sweep.html").read_text()
    assert "Pareto front" in page and "Lowest EDP" in page
    assert "plotly.js v" in page and '<script src="http' not in page  # embedded, offline


def test_one_dimensional_sweeps_draw_lines(trace):
    df = sweep("default", trace, {("array.rows", "array.cols"): [(16, 16), (64, 64)]},
                   jobs=1)
    assert varying_axes(df) == ["array.rows"]
    figs, _ = sweep_figures(df)
    assert [t.type for t in figs[0].data] == ["scatter"] * 4
    assert "array.rows = array.cols" in figs[0].layout.title.text
    assert list(figs[0].data[0].y) == list(df["throughput_per_s"])
    assert "Pareto front" in sweep_html(df)


def test_pareto_front_hand_made():
    lat = pd.Series([1.0, 2.0, 3.0, 2.0, 4.0, 1.0])
    en = pd.Series([5.0, 3.0, 3.0, 4.0, 1.0, 6.0])
    # (1,5) beats (1,6); (2,3) beats (2,4) and (3,3); (4,1) is cheapest.
    assert pareto_front(lat, en) == [0, 1, 4]


def test_api_errors_are_input_errors(trace):
    with pytest.raises(InputError, match="empty"):
        sweep("default", trace, {"array.rows": []})
    with pytest.raises(InputError, match="expected 2 values"):
        sweep("default", trace, {("array.rows", "array.cols"): [(16,)]})
    with pytest.raises(InputError, match="^jobs: "):
        sweep("default", trace, {"array.rows": [16]}, jobs=0)


def test_tpusim_sweep_is_the_function(trace):
    import importlib
    importlib.import_module("tpusim.sweeps")
    assert tpusim.sweep is sweep
    assert len(tpusim.sweep("default", trace, {"array.rows": [32]}, jobs=1)) == 1
    assert tpusim.sweep is sweep  # importing the module does not shadow the function


@pytest.mark.parametrize("workloads,axes,needle", [
    (["resnet50", "resnet50"], {"array.rows": [32]}, "the same workload as resnet50"),
    (["resnet50", str(ROOT / "workloads" / "resnet50.csv")], {"array.rows": [32]},
     "the same workload as resnet50"),
    (["resnet50"], {"memory.hbm.bandwidth_gbps": [600, 600.0]}, "got '600 and 600.0'; the same "
     "value twice"),
    (["resnet50"], {"format": ["int8", "i8"]}, "got 'int8 and i8'; the same value twice"),
])
def test_a_point_given_twice_is_refused_before_anything_runs(workloads, axes, needle):
    # spelt differently, the same trace or value would run (and write) every point twice
    with pytest.raises(InputError, match=needle):
        plan_sweep(load_config("default"), workloads, axes)

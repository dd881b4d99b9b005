"""The timeline and its Chrome/Perfetto trace (``tpusim run --trace``).

Truths: the trace-event format's rules (required keys and types per phase, ts monotone per track,
slices on one track never overlapping); conservation (each layer's busy and stall slices tile
its cycles, its DMA slices and the HBM counter carry its HBM bytes); a two-layer run computed by
hand from the flow-shop recurrence; and the recurrence's makespan.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

import tpusim
from tpusim.simulator import walk
from tpusim.timeline import BUSY_TRACKS, DMA_TRACKS, build_timeline
from tpusim.timing.overlap import flow_shop_cycles
from tpusim.timing.schedule import flow_shop_schedule
from tpusim.trace_events import trace_events

from .conftest import run_cli

TWO = """
name,op,m,k,n,weight_dtype,act_dtype
a,matmul,16,8,8,int8,int8
b,matmul,16,8,8,int8,int8
"""
# One 8x8 array at 1 GHz with 4 B/cycle: one fold of 16 streamed rows in 2 blocks per layer.
TINY = ["--set", "array.count=1", "--set", "array.rows=8", "--set", "array.cols=8",
        "--set", "clock_ghz=1", "--set", "memory.hbm.bandwidth_gbps=4"]


def validate(trace: dict) -> dict[int, list[dict]]:
    """Check ``trace`` against the trace-event format; returns the X events per resource."""
    assert isinstance(trace, dict) and isinstance(trace["traceEvents"], list)
    names, by_tid, counters = {}, defaultdict(list), []
    for e in trace["traceEvents"]:
        assert e["ph"] in ("M", "X", "C"), e
        assert isinstance(e["pid"], int) and isinstance(e["name"], str), e
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "thread_sort_index"), e
            if e["name"] == "thread_name":
                assert isinstance(e["args"]["name"], str)
                names[e["tid"]] = e["args"]["name"]
            elif e["name"] == "thread_sort_index":
                assert isinstance(e["args"]["sort_index"], int)
            continue
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert isinstance(e["tid"], int) and isinstance(e["dur"], (int, float)), e
            assert e["dur"] > 0 and isinstance(e.get("args", {}), dict), e
            by_tid[e["tid"]].append(e)
        else:
            assert e["args"] and all(isinstance(v, (int, float)) for v in e["args"].values())
            counters.append(e)
    assert set(by_tid) <= set(names), "every track is named"
    for tid, evs in by_tid.items():
        for a, b in zip(evs, evs[1:]):
            assert b["ts"] >= a["ts"], (names[tid], a, b)                   # monotone
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-5, (names[tid], a, b)  # no overlap
        assert len({e["cat"] for e in evs}) == 1       # one resource per track
    assert all(b["ts"] >= a["ts"] for a, b in zip(counters, counters[1:]))
    # by resource (``cat``: the off-chip tracks are shown named by the memory's kind)
    return {evs[0]["cat"]: evs for evs in by_tid.values()} | {"counter": counters,
                                                              "names": names}


def integral_bytes(counters: list[dict]) -> float:
    """∫ GB/s dt over the counter (piecewise constant, µs): bytes."""
    return sum(a["args"]["GB/s"] * (b["ts"] - a["ts"]) * 1e3 for a, b in zip(counters, counters[1:]))


def test_schedule_of_a_hand_plan():
    # bw 10 B/cycle, 2 slots: block 2 waits for block 0 to free its slot and writes its 50 B first
    s = flow_shop_schedule([(10, 100, 50), (10, 100, 50), (10, 0, 50)], 10.0, 2)
    assert [(b.load_start, b.load_end, b.compute_start, b.compute_end) for b in s.blocks] == \
        [(0, 10, 10, 20), (10, 20, 20, 30), (20, 25, 30, 40)]
    assert (s.tail_start, s.tail_bytes, s.makespan) == (40, 100, 50)


def test_schedule_makespan_is_the_models():
    rng = random.Random(7)
    for _ in range(300):
        plan = [(rng.uniform(0, 50), rng.uniform(0, 400), rng.uniform(0, 200))
                for _ in range(rng.randint(1, 12))]
        bw, depth = rng.uniform(0.5, 20), rng.randint(1, 4)
        assert flow_shop_schedule(plan, bw, depth).makespan == pytest.approx(
            flow_shop_cycles(plan, bw, depth), rel=1e-12)


def test_two_layers_by_hand(tmp_path):
    """a: weights 64 B and inputs 128 B from HBM (output stays on chip); blocks (16 cycles,
    128 B) and (22, 64): loads [0,32) and [32,48), compute [32,70). b: input on chip, its 64 B
    tile prefetched in a's idle channel [54,70); compute [70,108); 128 B out [108,140)."""
    (tmp_path / "two.csv").write_text(TWO.strip() + "\n")
    code, out, err = run_cli("run", "default", tmp_path / "two.csv", *TINY, "--no-html",
                             "--out", tmp_path / "r", "--trace", tmp_path / "t.json")
    assert code == 0, err
    assert "wrote" in out and "t.json" in out
    tracks = validate(json.loads((tmp_path / "t.json").read_text()))
    got = lambda track: [(e["args"]["layer"], e["name"], e["ts"] * 1e3, e["dur"] * 1e3)
                         for e in tracks[track]]
    assert got("layers") == [("a", "a", 0, 70), ("b", "b", 70, 70)]
    assert got("MXU 0") == [("a", "a", 32, 38), ("b", "b", 70, 38)]
    assert got("HBM weights") == [("a", "a", 0, 16), ("b", "prefetch", 54, 16)]
    assert got("HBM inputs") == [("a", "a", 16, 16), ("a", "a", 32, 16)]
    assert got("HBM outputs") == [("b", "b", 108, 32)]
    w, i = 32 * 64 / 192, 32 * 128 / 192   # a's 32-cycle wait split by its bytes (layers.csv)
    stalls = [(l, n, pytest.approx(t, abs=1e-3), pytest.approx(d, abs=1e-3))
              for l, n, t, d in got("stalls")]
    assert stalls == [("a", "stall: weights", 0, w), ("a", "stall: inputs", w, i),
                      ("b", "stall: weights", 108, w), ("b", "stall: outputs", 108 + w, i)]
    c = [(e["ts"] * 1e3, e["args"]["GB/s"]) for e in tracks["counter"]]
    assert c == [(0, 4), (48, 0), (54, 4), (70, 0), (108, 4), (140, 0)]
    assert integral_bytes(tracks["counter"]) == pytest.approx(64 + 128 + 64 + 128)
    assert "HBM2 weights" in tracks["names"].values()   # the default chip's off-chip kind


CASES = [("default", "resnet50", None), ("tpu_v1", "tpu_v1/mlp0", None),
         ("edge_tpu", "mobilenet_v2", None), ("tpu_v4", "bert_base", None),
         ("examples/scale.cfg", "examples/Resnet18.csv", None),
         ("tpu_v1", "tpu_v1/lstm0", "event")]


@pytest.mark.parametrize("config,workload,engine", CASES)
@pytest.mark.parametrize("detail", ["blocks", "layers"])
def test_conservation(config, workload, engine, detail):
    r = tpusim.simulate(config, workload, engine=engine)
    df = r.layers
    tl = build_timeline(r, detail, walk)
    tracks = validate(trace_events(tl))
    us = 1e6 / (r.config.clock_ghz * 1e9)
    busy, moved = defaultdict(float), defaultdict(float)
    for name in BUSY_TRACKS:
        for e in tracks.get(name, []):
            busy[e["args"]["row"]] += e["dur"]
    for name in DMA_TRACKS:
        for e in tracks.get(name, []):
            moved[e["args"]["row"]] += e["args"]["bytes"]
            # a DMA slice moves its bytes at the chip's full bandwidth
            assert e["args"]["bytes"] == pytest.approx(
                e["dur"] / us * r.config.hbm_bytes_per_cycle, rel=1e-4, abs=1e-3)
    for i, row in enumerate(df.itertuples()):
        assert busy[i] == pytest.approx(row.cycles * row.count * us, rel=1e-6, abs=1e-5), row.name
        hbm = (row.hbm_read_bytes + row.hbm_write_bytes) * row.count
        assert moved[i] == pytest.approx(hbm, rel=1e-9, abs=1e-6), row.name
    layers = tracks["layers"]
    # every row that takes time, in order (a fused op wholly hidden under its producer: none),
    # then the fixed per-inference cost (timing.invoke_cycles per batch element) as its own row
    invoke_us = r.config.timing.invoke_cycles * r.summary["batch"] * us
    rows = [i for i, c in enumerate(df.cycles) if c > 0] + ([len(df)] if invoke_us else [])
    assert [e["args"]["row"] for e in layers] == rows
    if invoke_us:
        assert layers[-1]["dur"] == pytest.approx(invoke_us) and "invoke" in layers[-1]["name"]
        assert busy[len(df)] == pytest.approx(invoke_us)
    # the layers track fills the run: it ends at the summary's latency
    assert sum(e["dur"] for e in layers) == pytest.approx(r.summary["latency_s"] * 1e6, rel=1e-6)
    assert max(e["ts"] + e["dur"] for e in layers) == pytest.approx(
        r.summary["latency_s"] * 1e6, rel=1e-6)
    assert integral_bytes(tracks["counter"]) == pytest.approx(r.summary["hbm_bytes"], rel=1e-5)
    assert tl.unplaced_bytes == 0
    if detail == "blocks" and engine is None and r.config.timing.model == "pipelined":
        assert tl.blocks_drawn > 0


SMALL_BIG = """
name,op,m,k,n,weight_dtype,act_dtype
small,matmul,64,128,128,bf16,bf16
big,matmul,64,2048,2048,bf16,bf16
"""


@pytest.mark.parametrize("detail", ["blocks", "layers"])
def test_each_mxu_a_layer_uses_has_its_slices(detail, tmp_path):
    """A layer on k of N arrays: MXU 0 .. k-1 carry the same busy slices, the others none."""
    from tpusim.timing import array_timing
    # SCALE-Sim's mapping gives each array whole tiles: a one-tile layer leaves 7 of 8 idle
    chip = tpusim.load_config("tpu_v4", **{"timing.model": "scalesim"})
    (tmp_path / "sb.csv").write_text(SMALL_BIG.strip() + "\n")
    r = tpusim.simulate(chip, tpusim.load_workload(tmp_path / "sb.csv"))
    tl = build_timeline(r, detail, walk)
    assert tl.tracks[1:9] == tuple(f"MXU {i}" for i in range(8))
    busy = defaultdict(lambda: defaultdict(list))
    for s in tl.slices:
        if s.track.startswith("MXU"):
            busy[s.row][int(s.track.split()[1])].append((s.start, s.dur))
    fewer = 0
    for i, (layer, f) in enumerate(zip(r.workload.layers, r.layers["format"])):
        if layer.kind != "gemm":
            assert i not in busy
            continue
        used = array_timing(layer, r.config, f).arrays_used
        assert sorted(busy[i]) == list(range(used))
        assert all(busy[i][k] == busy[i][0] for k in range(used))
        fewer += used < 8
    assert fewer > 0


def test_over_the_block_budget_instances_are_totals(monkeypatch):
    import tpusim.timeline as T
    r = tpusim.simulate("tpu_v1", "tpu_v1/cnn0")
    repeats = sum(n - 1 for layer, _, _, v in walk(r.config, r.workload, list(r.layers.format),
                                                    "analytic")
                  if layer.kind == "gemm" for n, _ in v)
    assert repeats > 0
    full = build_timeline(r, "blocks", walk)
    monkeypatch.setattr(T, "BLOCK_BUDGET", 1)
    cut = build_timeline(r, "blocks", walk)
    # the first of each distinct instance is always drawn block by block, repeats as totals
    assert full.totals_drawn == 0 and cut.totals_drawn == repeats
    assert 0 < cut.blocks_drawn < full.blocks_drawn
    for tl in (full, cut):
        per = defaultdict(float)
        for s in tl.slices:
            if s.track in BUSY_TRACKS:
                per[s.row] += s.dur
        want = r.layers.cycles * r.layers["count"]
        assert [per[i] for i in range(len(want))] == [pytest.approx(w) for w in want]
    validate(trace_events(cut))


def test_result_timeline_is_a_plotly_figure():
    import plotly.graph_objects as go
    r = tpusim.simulate("default", "resnet50")
    fig = r.timeline()
    assert isinstance(fig, go.Figure)
    names = {t.name for t in fig.data}
    assert {"arrays (MXUs)", "vector unit", "HBM2 weights"} <= names
    layers = [t for t in fig.data if t.name.startswith("layer:")]
    total_us = sum(sum(t.x) for t in layers)
    assert total_us == pytest.approx(r.summary["latency_s"] * 1e6, rel=1e-9)
    assert len(r.timeline("blocks").data) >= len(fig.data)
    with pytest.raises(tpusim.InputError, match="allowed: layers|blocks"):
        r.timeline("cycles")


def test_report_has_the_timeline(tmp_path):
    code, _, err = run_cli("run", "tpu_v1", "tpu_v1/mlp0", "--out", tmp_path / "r")
    assert code == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Timeline</h2>" in page and "Timeline: mlp0 on tpu_v1" in page


@pytest.mark.parametrize("make,why", [
    (lambda d: (d / "file").write_text("x") and d / "file" / "t.json", "cannot write here"),
    (lambda d: d, "is a directory"),
    (lambda d: (d / "link.json").symlink_to(d / "x.json") or d / "link.json", "symlink"),
])
def test_bad_trace_path_is_one_line_and_writes_nothing(tmp_path, make, why):
    target = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli("run", "default", "tpu_v1/mlp0", "--out", tmp_path / "r",
                             "--trace", target)
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # no results, no trace


def test_trace_in_a_missing_folder_creates_it_as_out_does(tmp_path):
    target = tmp_path / "new" / "deeper" / "t.json"
    code, _, err = run_cli("run", "default", "tpu_v1/mlp0", "--out", tmp_path / "r",
                           "--trace", target)
    assert code == 0, err
    assert json.loads(target.read_text())["traceEvents"]


def test_trace_replaces_only_a_regular_file(tmp_path):
    t = tmp_path / "t.json"
    t.write_text("old")                  # a user's file: refused, kept
    args = ("run", "tpu_v1", "tpu_v1/mlp0", "--out", tmp_path / "r", "--no-html", "--trace", t)
    code, _, err = run_cli(*args)
    assert code == 2 and "t.json: exists and was not written by tpusim" in err
    assert t.read_text() == "old" and not (tmp_path / "r").exists()
    t.unlink()
    code, _, err = run_cli(*args)        # a trace tpusim wrote: replaced, its mode kept
    assert code == 0, err
    t.chmod(0o600)
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert json.loads(t.read_text())["otherData"]["workload"] == "mlp0"
    assert t.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.json")]   # no temp left


def test_trace_in_the_output_folder_is_one_of_the_runs_files(tmp_path):
    out = tmp_path / "r"   # does not exist yet: the run creates it
    code, _, err = run_cli("run", "tpu_v1", "tpu_v1/mlp0", "--out", out, "--trace",
                           out / "trace.json")
    assert code == 0, err
    run_id = json.loads((out / "summary.json").read_text())["provenance"]["run_id"]
    assert json.loads((out / "trace.json").read_text())["otherData"]["run_id"] == run_id
    code, _, err = run_cli("run", "tpu_v1", "tpu_v1/mlp0", "--out", out)
    assert code == 0, err
    assert not (out / "trace.json").exists()   # a rerun leaves no trace of the earlier run
    code, _, err = run_cli("run", "tpu_v1", "tpu_v1/mlp0", "--out", out, "--trace",
                           out / "summary.json")
    assert code == 2 and "one of the run's own files" in err


@pytest.mark.parametrize("cmd", [("run", "tpu_v1", "tpu_v1/mlp0"),
                                 ("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8")])
@pytest.mark.parametrize("where,why", [(".", "is the --out folder"),
                                       ("layers.csv/t.json", "lies under layers.csv"),
                                       ("report.html/t.json", "lies under report.html")])
def test_a_trace_the_runs_own_writes_would_clash_with_is_refused_first(tmp_path, cmd, where,
                                                                       why):
    # the folder does not exist yet, so only the run's own file names can tell: refused before
    # anything is simulated or written
    out = tmp_path / "r"
    code, _, err = run_cli(*cmd, "--out", out, "--trace", out / where)
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_sharded_runs_trace_takes_no_name_of_a_plain_runs_files(tmp_path):
    out = tmp_path / "r"
    code, _, err = run_cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8", "--out", out,
                           "--trace", out / "summary.json")
    assert code == 2 and "one of the run's own files" in err and not out.exists()

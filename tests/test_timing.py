"""Systolic timing: hand-computed cases for both models, invariants as properties, and the
closed-form fast path against the simpy event engine."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tpusim
from tpusim.config import load_config
from tpusim.timing import array_timing
from tpusim.importers import WORKLOAD_DIR, load_workload
from tpusim.workload import Workload, make_layer


def chip(rows=4, cols=4, dataflow="ws", count=1, model="pipelined", bw=1e6, **kw):
    over = {"array.rows": rows, "array.cols": cols, "array.dataflow": dataflow,
            "array.count": count, "timing.model": model, "memory.hbm.bandwidth_gbps": bw,
            "clock_ghz": 1.0}
    over.update(kw)
    return load_config("default", **over)


def gemm(m, k, n, **kw):
    return make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n,
                       "weight_dtype": "int8", "act_dtype": "int8", **kw})


@pytest.mark.parametrize("df,expected", [
    # folds x (2R + C + T - 2) - 1 for ws/is, folds x (R + C + T - 2) - 1 for os (SCALE-Sim v3)
    ("ws", 2 * (2 * 4 + 4 + 10 - 2) - 1),   # Sr=k=8, Sc=n=4, T=m=10: 2 folds
    ("os", 3 * (4 + 4 + 8 - 2) - 1),        # Sr=m=10, Sc=n=4, T=k=8: 3 folds
    ("is", 2 * 3 * (2 * 4 + 4 + 4 - 2) - 1),  # Sr=k=8, Sc=m=10, T=n=4: 2x3 folds
])
def test_scalesim_model_hand_cases(df, expected):
    at = array_timing(gemm(10, 8, 4), chip(dataflow=df, model="scalesim"), "int8")
    assert at.compute_cycles == expected


def test_pipelined_hand_case():
    # 2 folds of T=10 rows, tile shift L=4: L + max(T, L) + T + (R + C - 2) = 4 + 10 + 10 + 6
    at = array_timing(gemm(10, 8, 4), chip(), "int8")
    assert at.compute_cycles == 30 and at.weight_shift_cycles == 4
    # T < L: the shift is exposed on every fold: 4 + 4 + 2 + 6
    at = array_timing(gemm(2, 8, 4), chip(), "int8")
    assert at.compute_cycles == 16 and at.weight_shift_cycles == 4 + (4 - 2)


def test_pipelined_beats_scalesim_on_many_folds():
    layer = gemm(64, 512, 512)
    fast = array_timing(layer, chip(32, 32), "int8").compute_cycles
    slow = array_timing(layer, chip(32, 32, model="scalesim"), "int8").compute_cycles
    assert fast < slow


def test_arrays_split_folds_and_streams():
    one = array_timing(gemm(1024, 128, 128), chip(32, 32), "int8")
    four = array_timing(gemm(1024, 128, 128), chip(32, 32, count=4), "int8")
    assert one.tiles == four.tiles == 16 and four.steps == 4 and four.arrays_used == 4
    single = array_timing(gemm(1024, 32, 32), chip(32, 32, count=4), "int8")
    assert single.tiles == 1 and single.arrays_used == 4 and single.stream_cycles == 256


def test_emulated_format_takes_passes():
    c = chip(**{"array.rows": 8})
    base = array_timing(gemm(800, 8, 4), c, "bf16").stream_cycles
    assert array_timing(gemm(800, 8, 4), c, "fp32").stream_cycles == 6 * base


def _sim(c, layers, fmt=None):
    return tpusim.simulate(c, Workload("w", tuple(layers)), format=fmt)


def test_memory_bound_layer_stalls_on_weights():
    # 1 KiB/cycle would feed it; 1 byte/cycle makes the 64 KiB of weights take 64k cycles.
    c = chip(16, 16, bw=1.0)
    r = _sim(c, [gemm(16, 256, 256)])
    row = r.layers.iloc[0]
    assert row["bound"] == "hbm"
    assert row["cycles"] >= 256 * 256 + 16 * 256 + 16 * 256  # every byte crosses the channel
    assert row["stall_weight_cycles"] > row["stall_input_cycles"] > 0


layer_st = st.tuples(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
chip_st = st.fixed_dictionaries({
    "rows": st.sampled_from([4, 8, 16, 32]), "cols": st.sampled_from([4, 8, 16, 32]),
    "dataflow": st.sampled_from(["ws", "os", "is"]), "count": st.integers(1, 4),
    "model": st.sampled_from(["pipelined", "scalesim"]),
    "bw": st.sampled_from([0.5, 4.0, 64.0, 1e4]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chip_st, layer_st, st.sampled_from(["int8", "bf16", "fp32"]))
def test_invariants(cfg, mkn, fmt):
    m, k, n = mkn
    c = chip(**cfg)
    r = _sim(c, [gemm(m, k, n)], fmt)
    row = r.layers.iloc[0]
    assert row["macs"] == m * k * n                                  # conservation
    peak_per_cycle = c.peak_macs_per_cycle(fmt)
    assert row["cycles"] >= math.ceil(m * k * n / peak_per_cycle)     # no faster than peak
    assert 0 < row["utilization"] <= 1
    assert row["achieved_tops"] <= row["roof_tops"] * (1 + 1e-9)     # never above the roof
    b = tpusim.formats.get_format(fmt).bytes_per_element
    compulsory = (m * k + k * n + m * n) * b
    assert row["hbm_read_bytes"] + row["hbm_write_bytes"] >= compulsory - 1e-6
    assert row["cycles"] == pytest.approx(row["compute_cycles"] + row["stall_cycles"]
                                          + row["overhead_cycles"])


@settings(max_examples=60, deadline=None)
@given(chip_st, layer_st, st.sampled_from([1.5, 4.0]))
# found by hypothesis: the bigger SRAM made layer 1 faster, so it left the channel idle for less
# time and layer 2 prefetched 2 bytes less of its first tile (34,736 cycles against 34,735)
@example({"rows": 16, "cols": 32, "dataflow": "is", "count": 1, "model": "pipelined",
          "bw": 4.0}, (83, 273, 114), 1.5)
# and again (CI, a random draw): layer 1 43,027 -> 30,709 cycles, layer 2 55,474 -> 55,485
@example({"rows": 4, "cols": 4, "dataflow": "ws", "count": 1, "model": "pipelined",
          "bw": 0.5}, (55, 55, 112), 1.5)
# the known one-layer step (test_more_sram_never_slower_one_layer): layer 1 55,484 -> 55,495
@example({"rows": 4, "cols": 4, "dataflow": "ws", "count": 1, "model": "pipelined",
          "bw": 0.5}, (55, 112, 55), 1.5)
def test_more_bandwidth_or_sram_never_slower(cfg, mkn, factor):
    # What never gets slower is the run, and with more bandwidth its first layer. A later layer
    # may: the faster its predecessor, the shorter the idle channel time its prefetch had (it
    # loses at most what the predecessor saved, so the run's end never moves later). With more
    # SRAM the first layer itself may lose a few cycles (the xfail below), the run not.
    m, k, n = mkn
    layers = [gemm(m, k, n), gemm(m, n, k)]
    base = chip(**cfg, **{"memory.sram.input_kib": 4, "memory.sram.weight_kib": 8,
                          "memory.sram.output_kib": 8})
    t0 = _sim(base, layers).layers["cycles"].to_numpy()
    faster = chip(**{**cfg, "bw": cfg["bw"] * factor},
                  **{"memory.sram.input_kib": 4, "memory.sram.weight_kib": 8,
                     "memory.sram.output_kib": 8})
    bigger = chip(**cfg, **{"memory.sram.input_kib": 4 * factor, "memory.sram.weight_kib": 8
                            * factor, "memory.sram.output_kib": 8 * factor})
    for c in (faster, bigger):
        t = _sim(c, layers).layers["cycles"].to_numpy()
        assert t.sum() <= t0.sum() + 1e-9
    assert _sim(faster, layers).layers["cycles"].to_numpy()[0] <= t0[0] + 1e-9


@pytest.mark.xfail(strict=True, reason="known: with 1.5x SRAM the output-stationary order picks "
                   "a block with fewer bytes in all but more weight bytes (passes 5 -> 7), which "
                   "load with the first block, so the layer's prologue grows (26,887 -> 26,889)")
def test_more_sram_never_slower_one_layer():
    # found by a random scan of test_more_bandwidth_or_sram_never_slower's space; no carry here
    cfg = {"rows": 16, "cols": 4, "dataflow": "ws", "model": "pipelined", "bw": 64.0}
    small, big = ({"memory.sram.input_kib": 4 * f, "memory.sram.weight_kib": 8 * f,
                   "memory.sram.output_kib": 8 * f} for f in (1.0, 1.5))
    t0 = _sim(chip(**cfg, **small), [gemm(157, 131, 74)]).layers["cycles"].iloc[0]
    assert _sim(chip(**cfg, **big), [gemm(157, 131, 74)]).layers["cycles"].iloc[0] <= t0


def _shipped():
    return sorted(p for p in WORKLOAD_DIR.rglob("*.csv"))


# The calibrated tpu_v4 runs DMA and compute serially (one buffer slot) in a GEMM that fits its
# buffers (double_buffered: auto). There the two engines
# differ by design (docs/design.md): the event engine lets one array's load use the channel
# while the others compute, the closed form gives every array a fixed share. They are compared
# with the slot count at which both overlap; its fitted HBM efficiency (0.45) makes many layers
# memory-bound, where the fixed share matters most: 1.4% apart on mlp1 (measured), so 1.5%.
OVERLAPPED = {"tpu_v4": {"timing.weight_fifo_depth": 2}}
AGREE = {"tpu_v4": 0.015}


@pytest.mark.parametrize("preset", ["default", "tpu_v1", "tpu_v4", "edge_tpu", "finn_zc706"])
def test_fast_path_agrees_with_event_engine(preset):
    paths = _shipped()
    if not paths:
        pytest.skip("no shipped workloads")
    chip = load_config(preset, **OVERLAPPED.get(preset, {}))
    fmt = chip.default_format if len(chip.formats) == 1 else None  # int8-only chips
    for p in paths:
        lacks = {l.format for l in load_workload(p).layers} - set(chip.formats) - {None}
        if lacks and fmt is None:   # e.g. a BNN trace on a chip without binary: run elsewhere
            continue
        fast = tpusim.simulate(chip, p, format=fmt, engine="analytic")
        event = tpusim.simulate(chip, p, format=fmt, engine="event")
        a, b = fast.summary["total_cycles"], event.summary["total_cycles"]
        # Known gap: TPUv1's CNN1 spills its activations over the Edge TPU's USB link in layers
        # of thousands of blocks, and the fast path's merged middle blocks (MAX_BLOCKS) lose
        # overlap there: +6.9% over the unmerged flow shop, the event engine +2.0%.
        tol = 0.05 if (preset, Path(p).name) == ("edge_tpu", "cnn1.csv") else AGREE.get(preset, 0.01)
        assert abs(b / a - 1) <= tol, f"{Path(p).name} on {preset}: {a} vs {b}"


def test_depthwise_groups_pack_block_diagonally():
    # 32 depthwise groups of a 3x3 conv (k=9, n=1) on a 64x64 ws array: 7 groups per tile
    dw = make_layer({"name": "dw", "op": "conv2d", "in_h": 16, "in_w": 16, "in_c": 32,
                     "out_c": 32, "kernel_h": 3, "kernel_w": 3, "padding": 1, "groups": 32})
    c = chip(64, 64)
    at = array_timing(dw, c, "int8")
    assert at.tiles == 5                     # ceil(32 / 7)
    assert at.compute_cycles == 64 + 4 * max(256, 64) + 256 + 126
    os_ = array_timing(dw, chip(64, 64, dataflow="os"), "int8")
    assert os_.tiles == 32 * 4               # os cannot pack: 32 groups x ceil(256/64) folds
    r = _sim(c, [dw])
    assert r.layers.loc[0, "macs"] == 16 * 16 * 32 * 9


def test_timing_path_is_decided_once():
    """scalesim has no overlap to simulate, so the engine does not change its path; a bad
    engine is an input error naming the argument."""
    from tpusim.timing.path import timing_path
    pipe, scale = load_config("default"), load_config("default", **{"timing.model": "scalesim"})
    assert timing_path(pipe) == "analytic" and timing_path(pipe, "event") == "event"
    assert timing_path(scale, "event") == timing_path(scale, "analytic") == "scalesim"
    with pytest.raises(tpusim.InputError, match="engine.*allowed: analytic|event"):
        timing_path(pipe, "simpy")
    wl = tpusim.load_workload("resnet50")
    a = tpusim.simulate(scale, wl, engine="event").layers
    b = tpusim.simulate(scale, wl, engine="analytic").layers
    assert a["cycles"].tolist() == b["cycles"].tolist()


def test_event_engine_simulates_identical_instances_once():
    from tpusim.timing import overlap_event
    overlap_event._makespan.cache_clear()
    chip = load_config("tpu_v4")
    r = tpusim.simulate(chip, "llama3_8b_decode", engine="event")
    info = overlap_event._makespan.cache_info()
    assert info.hits > info.misses      # count = 32 rows repeat the same instance
    overlap_event._makespan.cache_clear()
    again = tpusim.simulate(chip, "llama3_8b_decode", engine="event")
    assert again.summary["total_cycles"] == r.summary["total_cycles"]


def test_event_engine_two_arrays_stand_for_all(monkeypatch):
    # simulating 2 of the 4 identical arrays of a core on 2/4 of its channel share stays
    # within 5e-3 of simulating all 4 on the calibrated tpu_v4 (the bound the module states)
    from tpusim.timing import overlap_event
    chip = load_config("tpu_v4", **OVERLAPPED["tpu_v4"])
    assert chip.array.count > 2
    for name in ("resnet50", "bert_base", "mlp1"):
        overlap_event._makespan.cache_clear()
        two = tpusim.simulate(chip, name, engine="event").summary["total_cycles"]
        monkeypatch.setattr(overlap_event, "SIM_ARRAYS", 10**6)
        overlap_event._makespan.cache_clear()
        every = tpusim.simulate(chip, name, engine="event").summary["total_cycles"]
        monkeypatch.setattr(overlap_event, "SIM_ARRAYS", 2)
        assert abs(two / every - 1) <= 5e-3, name
    overlap_event._makespan.cache_clear()


def test_event_engine_simulates_every_block(monkeypatch):
    # every plan is simulated whole: the totals equal the simpy model run on each whole plan,
    # also where a run of identical blocks cut short and extended linearly was 1.5% off the
    # total (tpu_v3 bert_base with three weight slots) and on vgg16's runs of 27 blocks
    from tpusim.timing import overlap_event
    for preset, over, name in (("tpu_v3", {"timing.weight_fifo_depth": 3}, "bert_base"),
                               ("tpu_v4", {}, "vgg16")):
        chip = load_config(preset, **over)
        overlap_event._makespan.cache_clear()
        fast = tpusim.simulate(chip, name, engine="event").summary["total_cycles"]
        def whole(bw, depth, arrays, plan):   # the simpy model on the whole plan, no memo
            sim = min(arrays, overlap_event.SIM_ARRAYS)
            return overlap_event._run(list(plan), bw * sim / arrays, depth, sim)
        monkeypatch.setattr(overlap_event, "_makespan", whole)
        ref = tpusim.simulate(chip, name, engine="event").summary["total_cycles"]
        monkeypatch.undo()
        assert fast == ref, (preset, name)


@pytest.mark.parametrize("plan,bw,depth,arrays,expect", [
    # one array, one slot: load 10, compute 10, load 10, compute 10, write 2
    ([(10, 20, 0), (10, 20, 4)], 2, 1, 1, 42.0),
    # two slots: the second load runs under the first block's compute
    ([(10, 20, 0), (10, 20, 4)], 2, 2, 1, 32.0),
    # two arrays queue FIFO for the channel: loads 0-10 and 10-20, computes end at 20 and 30
    ([(10, 20, 0)], 2, 1, 2, 30.0),
    # a freed slot's write goes out before the next load (flow_shop_cycles' rule): write
    # 15-25, load 25-35, compute 35-40, write 40-50
    ([(5, 10, 10), (5, 10, 10)], 1, 1, 1, 50.0),
    # two arrays, two slots: A.l1 0-10, B.l1 10-20, A.l2 20-30, A.w1 30-40, B.l2 40-50,
    # B.w1 50-60, A.w2 60-70, B.w2 70-80 (requests served in the order made)
    ([(5, 10, 10), (5, 10, 10)], 1, 2, 2, 80.0),
])
def test_event_engine_small_plans_by_hand(plan, bw, depth, arrays, expect):
    from tpusim.timing.overlap_event import _run
    assert _run(plan, bw, depth, arrays) == expect

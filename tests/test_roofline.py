"""Roofline analysis: roofs from the chip, intensities in closed form, no layer above its roof,
the hbm -> compute crossover at the ridge point, reasons, per-model aggregates."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tpusim
from tpusim.config import load_config
from tpusim.roofline import (BOUNDS, chip_roofs, derived_sram_bytes_per_cycle, layer_table,
                             ridge_point, workload_summary, workload_table)
from tpusim.workload import Workload, make_layer

REL = 1e-6  # cycle counts are rounded up to whole cycles with a 1e-6 slack (timing/overlap.py)


def fc_workload(m: int, k: int, n: int, name: str = "fc", dtype: str = "int8") -> Workload:
    row = {"name": name, "op": "matmul", "m": m, "k": k, "n": n, "weight_dtype": dtype,
           "act_dtype": dtype}
    return Workload(name=name, layers=(make_layer(row, "test"),), source="test")


def chain(*rows: dict, name: str = "chain") -> Workload:
    return Workload(name=name, layers=tuple(make_layer(r, "test", i + 2)
                                            for i, r in enumerate(rows)), source="test")


def analyse(chip, wl, **kw):
    res = tpusim.simulate(chip, wl, **kw)
    roofs = chip_roofs(res.config)
    return res, roofs, layer_table(res.layers, res.config, roofs, wl.name)


# ------------------------------------------------------------------ roofs

def test_tpu_v1_roofs_match_the_paper_numbers():
    roofs = chip_roofs(load_config("tpu_v1"))
    # 256 x 256 MACs x 2 ops x 700 MHz = 91.75 TOPS; 34 GB/s (Jouppi 2017).
    assert roofs.compute_tops["int8"] == pytest.approx(2 * 256 * 256 * 0.7e9 / 1e12)
    assert roofs.hbm_bytes_s == pytest.approx(34e9)
    # Paper: ridge 1350 MACs per weight byte = 2700 ops per byte (92 TOPS / 34 GB/s).
    assert roofs.ridge("int8") == pytest.approx(91.7504e12 / 34e9)
    assert roofs.ridge("int8") == pytest.approx(2700, rel=0.01)
    assert roofs.vector_tops == pytest.approx(256 * 0.7e9 / 1e12)
    assert not roofs.sram_limits
    assert any("derived" in a for a in roofs.assumptions)


def test_roofs_per_format_and_configured_sram():
    chip = load_config("default", **{"memory.sram.bandwidth_bytes_per_cycle": 512,
                                     "memory.hbm.efficiency": 0.5})
    roofs = chip_roofs(chip)
    assert set(roofs.compute_tops) == set(chip.formats)
    pes, clock = 128 * 128 * 4, 1.05e9
    assert roofs.compute_tops["bf16"] == pytest.approx(2 * pes * clock / 1e12)
    assert roofs.compute_tops["fp32"] == pytest.approx(2 * pes * clock / 6 / 1e12)  # 6 passes
    assert roofs.hbm_bytes_s == pytest.approx(614e9 * 0.5)
    assert roofs.sram_limits
    assert roofs.sram_bytes_s["int8"] == pytest.approx(512 * 4 * clock)
    assert roofs.ridge("int8", "sram") == pytest.approx(roofs.compute_tops["int8"] * 1e12
                                                        / (512 * 4 * clock))


def test_derived_sram_bandwidth_closed_form():
    chip = load_config("tpu_v1")
    # int8, 32-bit accumulators, 256x256 array, tile shifts in over 256 cycles:
    # (256 + 256) x 1 B + 2 x 256 x 4 B + 256 x 256 x 1 B / 256 = 512 + 2048 + 256 bytes.
    assert derived_sram_bytes_per_cycle(chip, "int8") == pytest.approx(2816)


def test_attainable_is_the_lowest_roof():
    roofs = chip_roofs(load_config("tpu_v1"))
    ridge = roofs.ridge("int8")
    assert roofs.attainable("int8", ridge / 10) == (pytest.approx(roofs.compute_tops["int8"] / 10),
                                                    "hbm")
    assert roofs.attainable("int8", ridge * 10)[1] == "compute"
    assert roofs.attainable("int8", math.inf) == (roofs.compute_tops["int8"], "compute")
    assert roofs.attainable(None, 1e9, vector=True) == (roofs.vector_tops, "vector")


# ------------------------------------------------------------------ intensity closed forms

@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2048))
def test_square_gemm_intensity_is_closed_form(n):
    """A lone n x n x n int8 GEMM reads its input and weights once and writes its output once
    (first input and last output live in HBM; the default chip's 128 MiB weight buffer and
    16 MiB activation buffer hold them whole), so ops / HBM byte = 2 n^3 / (3 n^2) = 2n/3."""
    res, roofs, t = analyse("default", fc_workload(n, n, n))
    row = t.iloc[0]
    assert row["hbm_bytes"] == 3 * n * n
    assert row["ops_per_hbm_byte"] == pytest.approx(2 * n / 3, rel=1e-12)
    assert res.layers["intensity"].iloc[0] == pytest.approx(2 * n / 3, rel=1e-12)


def test_fc_intensity_closed_form_on_tpu_v1():
    """m x k x n int8 FC alone on TPUv1: HBM bytes = k n (weights) + m k (in) + m n (out)."""
    m, k, n = 200, 2000, 2000
    _, _, t = analyse("tpu_v1", fc_workload(m, k, n))
    assert t["ops_per_hbm_byte"].iloc[0] == pytest.approx(2 * m * k * n / (k * n + m * k + m * n))


# ------------------------------------------------------------------ no layer above its roof

@st.composite
def chips(draw):
    rows = draw(st.sampled_from([8, 16, 32, 64, 128, 256]))
    cols = draw(st.sampled_from([8, 16, 32, 64, 128, 256]))
    tile_kib = 2 * rows * cols * 4 / 1024  # a double-buffered fp32/accumulator tile
    over = {
        "array.rows": rows, "array.cols": cols,
        "array.count": draw(st.sampled_from([1, 2, 4])),
        "array.dataflow": draw(st.sampled_from(["ws", "os", "is"])),
        "timing.model": draw(st.sampled_from(["pipelined", "scalesim"])),
        "memory.hbm.bandwidth_gbps": draw(st.floats(5, 5000)),
        "memory.hbm.efficiency": draw(st.floats(0.3, 1.0)),
        "memory.sram.input_kib": tile_kib * draw(st.sampled_from([1, 4, 64, 4096])),
        "memory.sram.weight_kib": tile_kib * draw(st.sampled_from([1, 4, 64, 4096])),
        "memory.sram.output_kib": tile_kib * draw(st.sampled_from([1, 4, 64])),
        "vector.ops_per_cycle": draw(st.sampled_from([16, 256, 2048])),
        "timing.overhead_cycles_per_op": draw(st.sampled_from([0, 500])),
    }
    sram_bw = draw(st.sampled_from([None, 16, 256, 4096]))
    if sram_bw:
        over["memory.sram.bandwidth_bytes_per_cycle"] = sram_bw
    return load_config("default", **over)


dims = st.integers(1, 2048)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chip=chips(), m=dims, k=dims, n=dims, m2=dims, fmt=st.sampled_from(["int8", "bf16",
                                                                            "fp32"]),
       engine=st.sampled_from(["analytic", "event"]))
def test_no_layer_above_its_roof(chip, m, k, n, m2, fmt, engine):
    wl = chain({"name": "a", "op": "matmul", "m": m, "k": k, "n": n},
               {"name": "act", "op": "gelu", "elements": m * n},
               {"name": "b", "op": "matmul", "m": m, "k": n, "n": m2})
    res, roofs, t = analyse(chip, wl, format=fmt, engine=engine)
    for r in t.itertuples():
        assert r.achieved_tops <= r.attainable_tops * (1 + REL), r
        assert r.attainable_tops <= r.peak_tops * (1 + 1e-12)
    lay = res.layers
    assert (lay["achieved_tops"] <= lay["roof_tops"] * (1 + REL)).all()
    # The table's attainable roof adds the SRAM slope to layers.csv's HBM roof: never above it.
    assert (t["attainable_tops"] <= lay["roof_tops"] * (1 + 1e-12)).all()
    same = (t["ops_per_hbm_byte"] == lay["intensity"]) | (t["on_chip"] & lay["intensity"].isna())
    assert same.all()
    # no HBM byte: no intensity (NaN) and the on_chip flag, in both tables
    assert (lay["on_chip"] == (lay["hbm_read_bytes"] + lay["hbm_write_bytes"] == 0)).all()
    assert (lay["intensity"].isna() == lay["on_chip"]).all() and (t["on_chip"] == lay["on_chip"]).all()
    ws = workload_summary(t, roofs)
    assert ws["achieved_tops"] <= ws["attainable_tops"] * (1 + REL)
    assert ws["headroom"] >= 1 - REL
    line = min(roofs.compute_tops[fmt], roofs.hbm_bytes_s * ws["ops_per_hbm_byte"] / 1e12)
    assert ws["attainable_tops"] <= line * (1 + 1e-9)


# ------------------------------------------------------------------ bound vs batch

def test_fc_bound_flips_from_hbm_to_compute_at_the_ridge():
    """Sweep the batch of a 6144 -> 65536 FC layer on TPUv1. Its intensity 2 m k n / (k n + m k +
    m n) grows with m (towards 2 k n / (k + n), above the ridge); the simulator calls it
    hbm-bound while HBM time exceeds array time and compute-bound after. The flip must land where the intensity crosses peak / bandwidth (within
    the ~1% the array's fill/drain and first weight shift add to its time). Up to m = 2048 the
    4 MiB of accumulators and the 24 MiB Unified Buffer hold every row, so every operand moves
    between HBM and the chip exactly once."""
    chip = load_config("tpu_v1")
    k, n = 6144, 65536
    ridge = ridge_point(chip.peak_tops("int8"), 34e9)
    base = fc_workload(1, k, n)
    roofs = chip_roofs(chip)

    def at(batch):
        res = tpusim.simulate(chip, base, batch=batch)
        return layer_table(res.layers, chip, roofs).iloc[0]

    bounds = [(b, at(b)["bound"]) for b in range(128, 2049, 128)]
    flips = [i for i in range(1, len(bounds)) if bounds[i][1] != bounds[i - 1][1]]
    assert bounds[0][1] == "hbm" and bounds[-1][1] == "compute"
    assert len(flips) == 1, bounds
    lo, hi = bounds[flips[0] - 1][0], bounds[flips[0]][0]
    while hi - lo > 1:  # bisect to the first compute-bound batch
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if at(mid)["bound"] == "hbm" else (lo, mid)
    before, after = at(lo), at(hi)
    assert before["ops_per_hbm_byte"] < ridge * 1.01
    assert after["ops_per_hbm_byte"] >= ridge
    assert after["ops_per_hbm_byte"] == pytest.approx(ridge, rel=0.01)
    # and the closed form of the intensity at the crossover
    assert after["ops_per_hbm_byte"] == pytest.approx(2 * hi * k * n / (k * n + hi * k + hi * n))


# ------------------------------------------------------------------ reasons

def test_reason_weights_refetched():
    # 2000 x 2000 int8 weights (3.8 MiB) through a 256 KiB weight FIFO, in m-chunks bounded by
    # a small accumulator buffer: weights come from HBM once per chunk.
    chip = load_config("tpu_v1", **{"memory.sram.output_kib": 512})
    _, _, t = analyse(chip, fc_workload(4096, 2000, 2000))
    assert "weights re-fetched" in t["reason"].iloc[0]
    assert "0.25 MiB weight buffer" in t["reason"].iloc[0]


def test_reason_activation_spilled_and_read_back():
    # 8 MiB + 8 MiB activations do not fit a 4 MiB activation buffer.
    chip = load_config("tpu_v1", **{"memory.sram.input_kib": 4096})
    wl = chain({"name": "a", "op": "matmul", "m": 4096, "k": 2048, "n": 2048},
               {"name": "b", "op": "matmul", "m": 4096, "k": 2048, "n": 256})
    res, _, t = analyse(chip, wl)
    assert not res.layers["output_on_chip"].iloc[0]
    assert "spilled to DDR3" in t["reason"].iloc[0] and "4 MiB activation buffer" in t["reason"][0]
    assert "read back from DDR3" in t["reason"].iloc[1]   # TPUv1: DDR3


def test_reason_vector_and_hbm_bound():
    wl = chain({"name": "fc", "op": "matmul", "m": 200, "k": 2000, "n": 2000},
               {"name": "act", "op": "tanh", "elements": 200 * 2000},
               {"name": "fc2", "op": "matmul", "m": 200, "k": 2000, "n": 2000})
    _, roofs, t = analyse("tpu_v1", wl)
    assert list(t["bound"]) == ["hbm", "vector", "hbm"]
    assert t["reason"][1].startswith("vector-bound")
    assert t["reason"][0].startswith("DDR3-bound") and "mostly weights" in t["reason"][0]
    assert t["roof"][1] == "vector" and t["peak_tops"][1] == roofs.vector_tops


def test_reason_weight_shift_bound():
    # Unlimited HBM: 64 rows stream per tile but a tile takes 256 cycles to shift in.
    chip = load_config("tpu_v1", **{"memory.hbm.bandwidth_gbps": 1e6})
    _, _, t = analyse(chip, fc_workload(64, 2048, 2048))
    assert t["bound"][0] == "compute"
    assert "weight-load (shift) bound" in t["reason"][0]


# ------------------------------------------------------------------ per model

def test_workload_summary_agrees_with_the_simulator():
    wl = chain({"name": "fc", "op": "matmul", "m": 200, "k": 2000, "n": 2000},
               {"name": "act", "op": "tanh", "elements": 200 * 2000},
               {"name": "fc2", "op": "matmul", "m": 800, "k": 2000, "n": 2000, "count": 3})
    res, roofs, t = analyse("tpu_v1", wl)
    ws = workload_summary(t, roofs)
    s = res.summary
    assert ws["time_s"] == pytest.approx(s["latency_s"])
    assert ws["achieved_tops"] == pytest.approx(s["achieved_tops"])
    assert ws["hbm_bytes"] == pytest.approx(s["hbm_bytes"])
    assert t["time_share"].sum() == pytest.approx(1.0)
    shares = [ws[f"share_{b}"] for b in BOUNDS]
    assert sum(shares) == pytest.approx(1.0)
    for b in BOUNDS:
        assert ws[f"share_{b}"] == pytest.approx(s["bound_share"][b])
    assert ws["memory_bound_fraction"] == pytest.approx(ws["share_hbm"] + ws["share_sram"])
    assert ws["ops_per_hbm_byte"] == pytest.approx(2 * s["macs"] / s["hbm_bytes"])
    assert ws["headroom"] >= 1.0
    wt = workload_table([t, t], roofs)
    assert len(wt) == 2 and wt["achieved_tops"].iloc[1] == ws["achieved_tops"]


def test_tpu_v1_apps_land_where_the_paper_puts_them():
    """Jouppi 2017 Fig. 5: MLP0/MLP1/LSTM0/LSTM1 under the memory slope, CNN0 near the compute
    roof (stand-ins in workloads/tpu_v1)."""
    names = ["mlp0", "mlp1", "lstm0", "lstm1", "cnn0", "cnn1"]
    try:
        wls = [tpusim.load_workload(n) for n in names]
    except tpusim.InputError:
        pytest.skip("TPUv1 stand-ins not in workloads/tpu_v1")
    chip = load_config("tpu_v1")
    roofs = chip_roofs(chip)
    tables = [layer_table(tpusim.simulate(chip, w).layers, chip, roofs, w.name) for w in wls]
    wt = workload_table(tables, roofs).set_index("workload")
    ridge = roofs.ridge("int8")
    for app in names[:4]:
        assert wt.loc[app, "ops_per_hbm_byte"] < ridge / 4
        assert wt.loc[app, "bound"] == "hbm"
        assert wt.loc[app, "achieved_tops"] > 0.8 * wt.loc[app, "attainable_tops"]
    assert wt.loc["cnn0", "bound"] == "compute"
    assert wt.loc["cnn0", "achieved_tops"] > 0.5 * roofs.compute_tops["int8"]


def test_fused_vector_op_takes_no_time_and_says_so():
    wl = chain({"name": "fc", "op": "matmul", "m": 512, "k": 512, "n": 512},
               {"name": "relu", "op": "relu", "elements": 512 * 512, "fused": True})
    _, _, t = analyse("tpu_v1", wl)
    assert t["cycles"][1] == 0 and t["time_share"][1] == 0 and t["hbm_bytes"][1] == 0
    assert t["reason"][1].startswith("fused")
    assert t["time_share"][0] == 1.0


# ------------------------------------------------------------------ one source per quantity

def test_softmax_row_has_one_intensity_everywhere():
    """A lone softmax of E int8 elements reads E bytes and writes E bytes and does 5 element ops
    per element (exp, sum, max, subtract, divide), so ops / HBM byte = 5E / 2E = 2.5 in
    layers.csv and in the roofline table alike, against the vector roof."""
    e = 4096
    wl = chain({"name": "sm", "op": "softmax", "elements": e})
    res, roofs, t = analyse("default", wl)
    row = res.layers.iloc[0]
    assert (row["kind"], bool(row["fused"]), row["ops"]) == ("vector", False, 5 * e)
    assert row["intensity"] == pytest.approx(2.5) and t["ops_per_hbm_byte"][0] == row["intensity"]
    assert row["roof_tops"] == pytest.approx(min(roofs.vector_tops,
                                                 roofs.hbm_bytes_s * 2.5 / 1e12))
    latency = row["cycles"] / 1.05e9
    assert row["achieved_tops"] == pytest.approx(5 * e / latency / 1e12)
    assert t["achieved_tops"][0] == row["achieved_tops"]
    assert t["peak_tops"][0] == roofs.vector_tops == pytest.approx(1024 * 1.05e9 / 1e12)


def test_fused_op_never_runs_above_the_vector_roof():
    """A fused ReLU longer than its tiny producer shows only its excess cycles; its rate is over
    the vector cycles it streams for (ceil(ops / 1024) on the default chip), so at most the
    vector roof, and it is flagged fused without moving HBM bytes."""
    wl = chain({"name": "fc", "op": "matmul", "m": 8, "k": 128, "n": 128},
               {"name": "relu", "op": "relu", "elements": 1 << 20, "fused": True})
    res, roofs, _ = analyse("default", wl)
    relu = res.layers.iloc[1]
    assert bool(relu["fused"]) and relu["cycles"] > 0 and math.isnan(relu["intensity"])
    assert bool(relu["on_chip"])
    assert relu["achieved_tops"] == pytest.approx((1 << 20) / (math.ceil((1 << 20) / 1024)
                                                               / 1.05e9) / 1e12)
    assert relu["achieved_tops"] <= roofs.vector_tops * (1 + 1e-12)


def test_utilization_is_the_fraction_of_the_formats_peak():
    """fp32 on the default chip is six bf16 passes, so its peak is 1/6 of the PE slots:
    utilization = macs / (cycles x PEs / 6) = achieved / fp32 peak, per layer and per run; a
    mixed run counts each layer's MACs at its own format's rate."""
    pes = 128 * 128 * 4
    wl = chain({"name": "a", "op": "matmul", "m": 2048, "k": 1024, "n": 1024,
                "weight_dtype": "fp32", "act_dtype": "fp32"},
               {"name": "b", "op": "matmul", "m": 2048, "k": 1024, "n": 1024,
                "weight_dtype": "int8", "act_dtype": "int8"})
    res = tpusim.simulate("default", wl)
    a, b = res.layers.iloc[0], res.layers.iloc[1]
    assert a["format"] == "fp32" and b["format"] == "int8"
    assert a["utilization"] == pytest.approx(a["macs"] / (a["cycles"] * pes / 6))
    assert b["utilization"] == pytest.approx(b["macs"] / (b["cycles"] * pes))
    s = res.summary
    busy = a["macs"] * 6 / pes + b["macs"] / pes
    assert s["utilization"] == pytest.approx(busy / (a["cycles"] + b["cycles"]))
    one = tpusim.simulate("default", wl, format="fp32").summary
    assert one["utilization"] == pytest.approx(one["achieved_tops"] / one["peak_tops"])
    assert 0 < one["utilization"] <= 1

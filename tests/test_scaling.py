"""Cost independent of a layer's size: the block plan is closed form, and a ``count`` row is
timed exactly (instances until the carried state repeats), checked against brute force."""
from __future__ import annotations

import math

import pytest

import tpusim
from tpusim import simulator as S
from tpusim.config import load_config
from tpusim.formats import get_format
from tpusim.memory import gemm_traffic_options, plan_residency, plan_weight_cache
from tpusim.timing import array_timing
from tpusim.timing.overlap import MAX_BLOCKS, blocks, fold_bytes
from tpusim.workload import Workload, make_layer


def _expanded_plan(at, traffic, preloaded):
    """The plan built the long way (a list entry per block of the first and last folds, then
    merged), as the model was first written: what ``blocks`` must equal."""
    w, i, o = fold_bytes(at, traffic)
    s, n = at.substeps, at.steps
    step = max(at.stream_cycles, at.load_cycles)

    def fold(f):
        c = (step if f < n - 1 else at.stream_cycles) / s
        return [(c, i / s + (w / s if f < n - 1 else 0.0), o / s)] * s
    if n <= 3:
        seq = [b for f in range(n) for b in fold(f)]
    else:  # the identical middle folds as min(64, s (n-2)) equal parts of their sum
        parts = min(MAX_BLOCKS, s * (n - 2))
        body = [math.fsum(b[k] for b in fold(1)) * (n - 2) / parts for k in range(3)]
        seq = fold(0) + [tuple(body)] * parts + fold(n - 1)
    seq[0] = (seq[0][0] + at.load_cycles, seq[0][1] + w - min(w, preloaded), seq[0][2])
    seq[-1] = (seq[-1][0] + at.fill_drain_cycles, seq[-1][1], seq[-1][2])
    if len(seq) <= MAX_BLOCKS + 2:
        return seq
    mid = seq[1:-1]
    size = math.ceil(len(mid) / MAX_BLOCKS)
    merged = [tuple(math.fsum(x[k] for x in mid[a:a + size]) for k in range(3))
              for a in range(0, len(mid), size)]
    return [seq[0], *merged, seq[-1]]


@pytest.mark.parametrize("m,k,n", [(7, 5, 3), (300, 40, 9), (5000, 64, 64), (20000, 200, 130),
                                   (999, 33, 257)])
@pytest.mark.parametrize("preloaded", [0.0, 50.0, 1e9])
def test_blocks_equal_the_expanded_plan(m, k, n, preloaded):
    chip = load_config("default", **{"array.rows": 16, "array.cols": 16,
                                     "timing.weight_load_cycles": 4})
    layer = make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n})
    at = array_timing(layer, chip, "int8")
    for traffic in gemm_traffic_options(layer, chip, get_format("int8"), False, False):
        got, want = blocks(at, traffic, preloaded), _expanded_plan(at, traffic, preloaded)
        assert len(got) == len(want) <= MAX_BLOCKS + 2
        for g, w in zip(got, want):
            assert g == pytest.approx(w, rel=1e-12, abs=1e-9)


def test_huge_layer_is_planned_in_bounded_blocks():
    """m = 10^15 used to die with MemoryError: one list entry per block of the first fold."""
    chip = load_config("tpu_v4")
    layer = make_layer({"name": "g", "op": "matmul", "m": 10**15, "k": 1024, "n": 1024})
    at = array_timing(layer, chip, "bf16")
    assert at.substeps > 10**9
    traffic = gemm_traffic_options(layer, chip, get_format("bf16"), False, False)[0]
    plan = blocks(at, traffic)
    assert len(plan) <= MAX_BLOCKS + 2
    # the plan conserves the layer's bytes and its busy cycles
    assert sum(b[1] + b[2] for b in plan) == pytest.approx(traffic.hbm_total_bytes / at.arrays_used,
                                                           rel=1e-9)
    r = tpusim.simulate(chip, Workload("one", (layer,)))
    assert r.summary["total_cycles"] >= at.compute_cycles


def _brute_force_cycles(chip, wl):
    """Every instance of every row timed one after another, carry passed along."""
    fmts = [get_format(S._resolve_format(l, chip, None, "")) for l in wl.layers]
    res = plan_residency(list(wl.layers), chip, fmts)
    cached = plan_weight_cache(list(wl.layers), chip, fmts)
    carry, rows = S._Carry(), []
    for layer, f, r, c in zip(wl.layers, fmts, res, cached):
        rows.append(sum(S._instance(chip, layer, f, i, o, carry, "analytic", c)["cycles"]
                        for n, i, o in r.instances(layer.count) for _ in range(n)))
    return rows


def test_count_rows_equal_every_instance_timed():
    """TPUv1 LSTM0: a count = 23 row whose instances alternate; 16 equal-weight samples gave
    45,109.8 cycles per instance instead of the exact 45,125.5."""
    chip = load_config("tpu_v1")
    wl = tpusim.load_workload("workloads/tpu_v1/lstm0.csv")
    r = tpusim.simulate(chip, wl)
    brute = _brute_force_cycles(chip, wl)
    got = (r.layers["cycles"] * r.layers["count"]).tolist()
    assert got == pytest.approx(brute, rel=1e-12)
    assert r.summary["total_cycles"] == pytest.approx(sum(brute), rel=1e-12)


def test_run_instances_cycle_is_exact():
    """A carry that alternates a, b, a, b ...: odd n gives the first state once more."""
    carry = S._Carry()
    seq = iter([3.0, 5.0, 3.0, 5.0, 3.0, 5.0])

    def run():
        c = next(seq)
        carry.cycles = c
        carry.idle_bytes = c
        return {"cycles": c}
    out = S._run_instances(7, run, carry)
    assert sum(w for w, _ in out) == 7
    assert sum(w * v["cycles"] for w, v in out) == 3 + 5 + 3 + 5 + 3 + 5 + 3
    assert carry.cycles == 3.0   # the 7th instance left a

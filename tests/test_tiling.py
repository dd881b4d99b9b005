"""The output-stationary loop order: an accumulator block stays while both operands stream past
it. Bytes counted by hand on a 4x4 int8 chip (1-byte operands, 4-byte accumulators, buffers
single-buffered so the whole buffer is usable), and the two simulation paths on shapes that pick it."""
from __future__ import annotations

import pytest

import tpusim
from tpusim.columnar import evaluate, prepare
from tpusim.config import load_config
from tpusim.formats import get_format
from tpusim.memory import gemm_traffic_options
from tpusim.results import layers_csv
from tpusim.simulator import _Carry, _gemm
from tpusim.timing.path import timing_path
from tpusim.workload import Workload, make_layer

INT8 = get_format("int8")


def tiny(**more):
    """4x4 ws array; 256 B input, weight and accumulator buffers (64 int32 partial sums)."""
    return load_config("default", **{
        "array.rows": 4, "array.cols": 4, "array.count": 1, "array.dataflow": "ws",
        "memory.sram.input_kib": 0.25, "memory.sram.weight_kib": 0.25,
        "memory.sram.output_kib": 0.25, "memory.sram.double_buffered": False, **more})


def wgrad(m=16, k=64, n=16, **extra):
    """A weight-gradient shape: long k (tokens), small m x n output."""
    return make_layer({"name": "dw", "op": "matmul", "m": m, "k": k, "n": n,
                       "weight_dtype": "int8", "act_dtype": "int8", **extra})


def test_output_stationary_halves_the_reads_of_a_weight_gradient():
    """16x64x16: 1,024 B input, 1,024 B weights, neither fits its 256 B buffer.
    Weights outer: a 64 x 4 weight strip (256 B) fits, one m-chunk of 16 rows, but the input is
    re-read for each of the 4 column strips: 1,024 + 4 x 1,024 = 5,120 B.
    Inputs outer: 4 rows of input (4 x 64 B) fit, so 4 m-chunks each re-read the weights:
    4 x 1,024 + 1,024 = 5,120 B.
    Output stationary: 64 accumulators hold an 8 x 8 block (the square, sqrt(64) = 8); the 2 x 2
    blocks read the input once per block column (2x) and the weights once per block row (2x):
    2 x 1,024 + 2 x 1,024 = 4,096 B, so it replaces inputs outer."""
    wo, os_ = gemm_traffic_options(wgrad(), tiny(), INT8, False, False)
    assert (wo.weight_passes, wo.input_passes) == (1, 4)
    assert wo.hbm_read_bytes == 1024 + 4 * 1024
    assert (os_.weight_passes, os_.input_passes) == (2, 2)
    assert (os_.hbm_weight_bytes, os_.hbm_input_bytes, os_.hbm_output_bytes) == (2048, 2048, 256)
    # SRAM: weights read from the weight buffer once per m-chunk (2 x 1,024) plus the HBM fill
    assert os_.sram_weight_bytes == 2 * 1024 + 2048
    # the input still streams once per 4-column fold of the array (4 x 1,024) plus its fill,
    # and the 256 finished outputs are written once and sent to HBM once
    assert os_.sram_input_bytes == 4 * 1024 + 256 + 2048 + 256


def test_slow_hbm_picks_the_order_with_fewest_bytes():
    """With HBM at 1 GB/s every order is HBM-bound, so the fastest moves least: 4,096 B read."""
    chip = tiny(**{"memory.hbm.bandwidth_gbps": 1})
    traffic, _, _, _ = _gemm(chip, wgrad(), INT8, False, False, False, _Carry(), timing_path(chip))
    assert (traffic.hbm_read_bytes, traffic.weight_passes, traffic.input_passes) == (4096, 2, 2)


def test_resident_input_makes_weight_reads_all_that_count():
    """Input on chip: only weight passes cost HBM bytes. Output stationary then takes the tallest
    block (16 x 4: all of m, so weights once) -- the same passes as weights outer, so one order
    is left (inputs outer would read the weights 4x)."""
    (t,) = gemm_traffic_options(wgrad(), tiny(), INT8, True, False)
    assert (t.hbm_weight_bytes, t.hbm_input_bytes, t.weight_passes) == (1024, 0, 1)


def test_operands_that_fit_are_read_once_and_blocks_change_nothing():
    """Both operands fit 2 KiB buffers: every order reads each once; no second order."""
    (t,) = gemm_traffic_options(wgrad(), tiny(**{"memory.sram.input_kib": 2,
                                                "memory.sram.weight_kib": 2}), INT8, False, False)
    assert (t.hbm_weight_bytes, t.hbm_input_bytes) == (1024, 1024)


def test_v6e_weight_gradient_streams_both_operands_fewer_times():
    """Llama-3.1-8B's MLP weight gradient on v6e (m = 4,096, k = 65,536 tokens, n = 14,336,
    bf16): 4 MiB of the double-buffered 8 MiB accumulators hold a 1,024 x 1,024 fp32 block, so
    the k x n operand (1,792 MiB) is read m / 1,024 = 4 times and the m x k one (512 MiB)
    n / 1,024 = 14 times: 14,336 MiB, where the inputs-outer order alone read the 1,792 MiB
    16 times (28.6 GiB) and left the layer HBM-bound at 2.2x its compute cycles."""
    chip = load_config("tpu_v6e")
    bf16 = get_format("bf16")
    layer = make_layer({"name": "dw", "op": "matmul", "m": 4096, "k": 65536, "n": 14336})
    ts = gemm_traffic_options(layer, chip, bf16, False, False)
    best = min(ts, key=lambda t: t.hbm_read_bytes)
    assert (best.weight_passes, best.input_passes) == (4, 14)
    assert best.hbm_read_bytes == 4 * 65536 * 14336 * 2 + 14 * 4096 * 65536 * 2
    traffic, lt, _, _ = _gemm(chip, layer, bf16, False, False, False, _Carry(), timing_path(chip))
    assert traffic.hbm_read_bytes == best.hbm_read_bytes
    # compute-bound within the overlap of the fold blocks: under 15% over the array's cycles
    assert lt.cycles < 1.15 * lt.compute_cycles


def _same(chip, wl):
    ref = tpusim.simulate(chip, wl, core="reference")
    col = tpusim.simulate(chip, wl)
    assert layers_csv(col) == layers_csv(ref)
    s_ref, s_col = dict(ref.summary), dict(col.summary)
    s_ref.pop("simulator_seconds"), s_col.pop("simulator_seconds")
    assert s_col == s_ref


@pytest.mark.parametrize("chip", ["tiny", "tiny_db", "tpu_v6e", "tpu_v5p", "tpu_v4"])
def test_both_paths_agree_where_output_stationary_is_chosen(chip):
    """Weight-gradient and MoE-expert shapes, repeated (residency variants), grouped, cached."""
    cfg = {"tiny": lambda: tiny(), "tiny_db": lambda: tiny(**{
        "memory.sram.double_buffered": True, "memory.sram.output_kib": 0.5,
        "memory.sram.input_kib": 0.5, "memory.sram.weight_kib": 0.5})}.get(
        chip, lambda: load_config(chip))()
    small = chip.startswith("tiny")
    s = 1 if small else 256
    L = lambda **k: make_layer(k)   # noqa: E731
    wl = Workload("dw", (
        L(name="dw", op="matmul", m=16 * s, k=64 * s, n=16 * s, count=3),
        L(name="moe", op="matmul", m=8 * s, k=16 * s, n=56 * s, count=2),
        L(name="grp", op="matmul", m=16 * s, k=48 * s, n=12 * s, batch=2, weights="dynamic"),
        L(name="odd", op="matmul", m=13 * s + 1, k=70 * s + 3, n=9 * s + 5),
    ))
    _same(cfg, wl)
    batched = evaluate([prepare(cfg, wl, None)])[0].summary()
    assert batched["total_cycles"] == tpusim.simulate(cfg, wl, core="reference").summary[
        "total_cycles"]

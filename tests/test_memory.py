"""Memory: bytes per stream for both SRAM loop orders, activation residency between rows and the
persistent weight cache, each on a 4x4 chip small enough to count every byte by hand."""
from __future__ import annotations

import pytest

from tpusim.config import load_config
from tpusim.formats import get_format
from tpusim.memory import (Residency, gemm_traffic_options, plan_residency, plan_weight_cache,
                           vector_traffic)
from tpusim.workload import make_layer

INT8 = get_format("int8")   # 1-byte operands, 4-byte (int32) accumulators


def tiny(input_kib=1.0, weight_kib=1.0, output_kib=1.0, **more):
    """One 4x4 weight-stationary array, single-buffered SRAM (the whole buffer holds a tile)."""
    return load_config("default", **{
        "array.rows": 4, "array.cols": 4, "array.count": 1, "array.dataflow": "ws",
        "memory.sram.input_kib": input_kib, "memory.sram.weight_kib": weight_kib,
        "memory.sram.output_kib": output_kib, "memory.sram.double_buffered": False, **more})


def mm(m, k, n, name="mm", **extra):
    return make_layer({"name": name, "op": "matmul", "m": m, "k": k, "n": n,
                       "weight_dtype": "int8", "act_dtype": "int8", **extra})


# ------------------------------------------------------------------ loop orders

def test_everything_fits_one_order_compulsory_bytes():
    """8x8x8 int8 on 1 KiB buffers: 64 B input, 64 B weights, 64 B output, all fit, so both
    loop orders coincide and HBM moves each tensor once. SRAM (ws, 2 k folds, 2 n folds): the
    input is streamed once per n fold (2 x 64), weights once (64), partial sums written and
    read once per k fold (2 x 64 outputs x 4 B each way), finished outputs written once (64)."""
    (t,) = gemm_traffic_options(mm(8, 8, 8), tiny(), INT8, False, False)
    assert (t.hbm_weight_bytes, t.hbm_input_bytes, t.hbm_output_bytes) == (64, 64, 64)
    assert (t.weight_passes, t.input_passes) == (1, 1)
    assert t.sram_read_bytes == 2 * 64 + 64 + 2 * 64 * 4 + 64      # + the output to HBM
    assert t.sram_write_bytes == 64 + 2 * 64 * 4 + 64 + 64         # + both HBM fills
    assert t.sram_weight_bytes == 64 + 64
    assert t.note == ""


def test_inputs_outer_saves_input_refetches():
    """64x8x8: the 512 B input does not fit a 256 B input buffer, so weights-outer re-reads it
    for each of the 2 column strips (1,024 B); the accumulators (256 B / (4 cols x 4 B) = 16
    rows) cut m into 4 chunks, and inputs-outer, keeping each chunk while the 64 B of weights
    (which fit) stream past, reads the input once."""
    wo, io = gemm_traffic_options(mm(64, 8, 8), tiny(input_kib=0.25, output_kib=0.25), INT8,
                                  False, False)
    assert (wo.weight_passes, wo.input_passes) == (1, 2)
    assert (wo.hbm_weight_bytes, wo.hbm_input_bytes, wo.hbm_output_bytes) == (64, 1024, 512)
    assert "input re-fetched 2x" in wo.note
    assert (io.weight_passes, io.input_passes) == (1, 1)
    assert (io.hbm_weight_bytes, io.hbm_input_bytes, io.hbm_output_bytes) == (64, 512, 512)


def test_weights_that_do_not_fit_are_refetched_per_chunk_under_inputs_outer():
    """Same layer with a 32 B weight buffer: one 8 x 4 weight strip (32 B) fits, so
    weights-outer still reads weights once; inputs-outer must re-read all 64 B of weights for
    each of its 4 m-chunks (256 B) and says so."""
    wo, io = gemm_traffic_options(mm(64, 8, 8), tiny(input_kib=0.25, weight_kib=1 / 32,
                                                     output_kib=0.25), INT8, False, False)
    assert wo.hbm_weight_bytes == 64 and wo.hbm_input_bytes == 1024
    assert io.weight_passes == 4 and io.hbm_weight_bytes == 4 * 64
    assert io.hbm_input_bytes == 512 and "weights re-fetched 4x" in io.note


def test_resident_operands_and_cached_weights_move_no_hbm_bytes():
    chip = tiny(input_kib=0.25, output_kib=0.25)
    for t in gemm_traffic_options(mm(64, 8, 8), chip, INT8, True, True, weights_cached=True):
        assert t.hbm_total_bytes == 0 and t.input_passes == 0
    v = vector_traffic(make_layer({"name": "r", "op": "relu", "elements": 100}), INT8,
                       False, True)
    assert (v.hbm_input_bytes, v.hbm_output_bytes) == (100, 0)
    fused = make_layer({"name": "r", "op": "relu", "elements": 100, "fused": True})
    assert vector_traffic(fused, INT8, False, False).hbm_total_bytes == 0


# ------------------------------------------------------------------ residency

def test_residency_chain_by_hand():
    """1 KiB activation buffer. a: 256 B in + 256 B out fit, so its output stays; b: 256 B in +
    1,024 B out do not, so its output goes to HBM; c: 512 + 64 fit but it is the last row, whose
    output always goes to HBM. A fused ReLU after a passes a's residency through."""
    chip = tiny()
    rows = [mm(16, 16, 16, "a"), make_layer({"name": "r", "op": "relu", "elements": 256,
                                             "fused": True}),
            mm(16, 16, 64, "b"), mm(16, 32, 4, "c")]
    res = plan_residency(rows, chip, [INT8] * 4)
    assert res == [Residency(False, True, True), Residency(True, True, True),
                   Residency(True, False, False), Residency(False, True, False)]


def test_repeated_row_instances():
    r = Residency(first_input=False, inner=True, last_output=False)
    assert r.instances(1) == [(1, False, False)]
    assert r.instances(2) == [(1, False, True), (1, True, False)]
    assert r.instances(5) == [(1, False, True), (3, True, True), (1, True, False)]


# ------------------------------------------------------------------ weight cache

def test_weight_cache_fills_in_trace_order_while_it_fits():
    """256 B weight buffer minus two 4x4 int8 tiles (32 B) leaves 224 B: a (256 B) never fits;
    b (64 B) and c (8 x 16 = 128 B) fit in turn (160 B, then 32 B left); d (64 B) no longer
    fits; dynamic operands and vector rows are never cached; a row's count multiplies its need."""
    chip = tiny(weight_kib=0.25, **{"memory.sram.weights_persistent": True})
    rows = [mm(4, 16, 16, "a"), mm(4, 8, 8, "b"), mm(4, 8, 16, "c"), mm(4, 8, 8, "d"),
            mm(4, 2, 2, "kv", weights="dynamic"),
            make_layer({"name": "r", "op": "relu", "elements": 4})]
    assert plan_weight_cache(rows, chip, [INT8] * 6) == [False, True, True, False, False, False]
    twice = [mm(4, 8, 8, "b", count=4)]        # 4 x 64 B = 256 B > 224 B
    assert plan_weight_cache(twice, chip, [INT8]) == [False]
    assert plan_weight_cache(rows, tiny(weight_kib=0.25), [INT8] * 6) == [False] * 6


@pytest.mark.parametrize("dataflow", ["os", "is"])
def test_sram_reads_per_dataflow(dataflow):
    """8x8x8 int8 on the 4x4 array. os: outputs accumulate in the PEs (no accumulator traffic),
    the input is re-read per n fold (2 x 64) and weights per row fold of m (ceil(8/4) x 64).
    is: the input is read once, weights per column fold of m (ceil(8/4) x 64)."""
    (t,) = gemm_traffic_options(mm(8, 8, 8), tiny(**{"array.dataflow": dataflow}), INT8,
                                False, False)
    if dataflow == "os":
        assert t.sram_output_bytes == 0
        assert t.sram_weight_bytes == 2 * 64 + 64
        assert t.sram_read_bytes == 2 * 64 + 2 * 64 + 64
    else:
        assert t.sram_weight_bytes == 2 * 64 + 64
        assert t.sram_read_bytes == 64 + 2 * 64 + 2 * 64 * 4 + 64

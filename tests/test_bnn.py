"""Binary and ternary networks on an XNOR-popcount datapath: energy and area below int4/int8,
ternary numerics by hand, FINN's engine cycle count, the first/last-layer rule, CNV end to end,
and the FINN-like preset against FINN's published CNV frame rate."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tpusim
from tpusim.area import mac_area_um2
from tpusim.config import load_config
from tpusim.energy import mac_pj
from tpusim.formats import FORMATS, datapath_format
from tpusim.numerics import datapath_matmul, quantize
from tpusim.workload import Workload, make_layer

XNOR_ORDER = ["int8", "int4", "ternary", "binary"]


def test_binary_and_ternary_mac_energy_and_area_below_int4_and_int8():
    e = [FORMATS[f].mac_pj_45nm for f in XNOR_ORDER]
    a = [mac_area_um2(f) for f in XNOR_ORDER]
    assert all(x > y for x, y in zip(e, e[1:])), dict(zip(XNOR_ORDER, e))
    assert all(x > y for x, y in zip(a, a[1:])), dict(zip(XNOR_ORDER, a))
    chip = load_config("finn_zc706")   # and on a chip, at its node
    assert mac_pj(chip, "binary") < mac_pj(chip, "ternary") < mac_pj(chip, "int8")


def test_binary_mac_energy_is_xnor_popcount_and_a_shared_accumulate():
    # per product: XNOR + one popcount-tree full adder, each an 8-bit add / 8 (Horowitz 0.03 pJ),
    # plus the int32 accumulate (0.1 pJ) once per 32-bit word; ternary pays two popcounts
    fa = 0.03 / 8
    assert FORMATS["binary"].mac_pj_45nm == pytest.approx(2 * fa + 0.1 / 32)
    assert FORMATS["ternary"].mac_pj_45nm == pytest.approx(2 * (2 * fa + 0.1 / 32))


def test_ternary_quantization_and_gemm_by_hand():
    # mean|x| = 1.325, threshold 0.9275: -2 and 3 kept (scale = mean(2, 3) = 2.5), the rest 0
    q, s = quantize(np.array([-2.0, 0.1, 3.0, -0.2]), "ternary")
    assert list(q) == [-1, 0, 1, 0] and s == pytest.approx(2.5)
    # a = [4, -4] -> [1, -1] x 4; b = [[1], [0.1]] -> mean 0.55, threshold 0.385: [1, 0] x 1
    c = datapath_matmul(np.array([[4.0, -4.0]]), np.array([[1.0], [0.1]]), "ternary")
    assert c[0, 0] == pytest.approx(4.0)


def test_binary_weights_with_int8_activations_run_in_int8():
    assert datapath_format("binary", "int8") == "int8"
    assert datapath_format("binary", "binary") == "binary"
    assert datapath_format("ternary", "binary") == "ternary"


def _fc(name, k, n, dt="int8"):
    return make_layer({"name": name, "op": "matmul", "m": 1, "k": k, "n": n,
                       "weight_dtype": dt, "act_dtype": dt})


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_forced_binary_keeps_first_and_last_gemm_in_their_format(core):
    relu = make_layer({"name": "r", "op": "relu", "elements": 64, "fused": True})
    wl = Workload("mlp", (_fc("fc1", 64, 64), relu, _fc("fc2", 64, 64), _fc("fc3", 64, 10)))
    r = tpusim.simulate("finn_zc706", wl, format="binary", core=core)
    assert list(r.layers["format"]) == ["int8", "binary", "binary", "int8"]
    # int8 forced: no exception, every layer
    assert set(tpusim.simulate("finn_zc706", wl, format="int8", core=core).layers["format"]) \
        == {"int8"}


def test_engine_cycles_follow_finns_fold_formula():
    # FINN: a layer on P PEs x SIMD lanes takes pixels x ceil(n / P) x ceil(k / SIMD) cycles; the
    # pipelined model adds the array's fill and drain (rows + cols - 2) and one weight shift
    # (rows cycles) once per layer
    chip = load_config("finn_zc706")
    p, simd = chip.array.cols, chip.formats["binary"].rate
    r = tpusim.simulate(chip, "cnv_bnn").layers.set_index("name")
    for name, pixels, k, n in (("conv1_2", 28 * 28, 576, 64), ("conv2_2", 10 * 10, 1152, 128),
                               ("fc2", 1, 512, 512)):
        fold = pixels * math.ceil(n / p) * math.ceil(k / simd)
        assert r.loc[name, "compute_cycles"] == fold + chip.array.rows + p - 2 + 1, name
        assert r.loc[name, "format"] == "binary"


def test_cnv_runs_end_to_end_with_int8_first_layer_and_free_thresholds():
    r = tpusim.simulate("finn_zc706", "cnv_bnn")
    df = r.layers.set_index("name")
    assert df.loc["conv1_1", "format"] == "int8"         # the 8-bit image
    thr = df[df["op"] == "threshold"]
    assert len(thr) == 8 and (thr["cycles"] == 0).all() and (thr["hbm_read_bytes"] == 0).all()
    assert (thr["vector_energy_pj"] > 0).all()           # the compares still cost energy
    assert r.summary["macs"] == 59_461_376
    # conservation: cycles >= MACs at each format's peak
    busy = sum(row.macs * row.count / r.config.peak_macs_per_cycle(row.format)
               for row in r.layers.itertuples())
    assert r.summary["total_cycles"] >= busy


def test_finn_like_engine_against_finns_published_cnv_rate():
    # FINN (Umuroglu et al. 2017, abstract): CNV at 21,906 frames/s on the ZC706, measured on a
    # dataflow pipeline of nine engines (six conv, three FC) running at once at 200 MHz. The preset
    # is one engine of 32 x 32 lanes run layer after layer (tpusim predicts ~2,670 frames/s), so
    # it must be slower than the pipeline, and nine such engines' worth of lanes faster than it
    # (true if the pipeline's engines average at most 1,024 lanes): a bracket, nothing fitted.
    fps = tpusim.simulate("finn_zc706", "cnv_bnn").summary["throughput_per_s"]
    assert fps < 21_906 < 9 * fps


def test_xnor_pe_lanes_share_one_popcount_tree_and_accumulator():
    from tpusim.area import chip_area, pe_cells
    # 32 lanes: 32 XNORs, a 32-input popcount tree of 32 - 1 = 31 full adders, one int32
    # accumulator (32 full adders), 3 operand bits per lane + the 32-bit partial sum
    assert pe_cells("binary", 32) == {"multiplier": {"xnor2": 32},
                                      "popcount": {"full_adder": 31},
                                      "accumulator_adder": {"full_adder": 32},
                                      "registers": {"flip_flop": 3 * 32 + 32}}
    assert pe_cells("binary") == {"multiplier": {"xnor2": 1},
                                  "accumulator_adder": {"full_adder": 32},
                                  "registers": {"flip_flop": 35}}
    chip = load_config("finn_zc706")
    per_mac = {f: chip_area(chip, f, r).mac_um2 for f, r in
               (("int8", 1), ("int4", 1), ("ternary", 16), ("binary", 32))}
    assert per_mac["binary"] < per_mac["ternary"] < per_mac["int4"] < per_mac["int8"], per_mac
    assert per_mac["binary"] < chip_area(chip, "binary", 1).mac_um2 / 4   # sharing pays


def test_forced_binary_keeps_first_and_last_in_a_format_the_chip_runs():
    """A bf16 trace forced to binary on a binary/ternary/int8 engine: the first and last GEMMs
    cannot stay bf16 (the chip lacks it) and must not be binary, so they run in int8 — on both
    simulation paths (this used to be an error: every shipped trace must run somewhere)."""
    for core in ("columnar", "reference"):
        r = tpusim.simulate("finn_zc706", "bert_base", format="binary", core=core)
        gemm = r.layers[r.layers["kind"] == "gemm"]
        assert gemm["format"].iloc[0] == gemm["format"].iloc[-1] == "int8"
        assert set(gemm["format"].iloc[1:-1]) == {"binary"}

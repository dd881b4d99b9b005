"""Bit-accurate GEMM numerics: rounding equals ml_dtypes, accumulation order and rounding by hand,
int32 saturation, bf16 emulation of fp32, and the error ordering across formats."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from tpusim import load_config
from tpusim.errors import InputError
from tpusim.numerics import (_bf16_pieces, datapath_matmul, emulated_matmul, fp32_matmul,
                             gemm_rel_error, quantize, random_gemm, rel_error, round_to,
                             saturating_int_matmul)


@pytest.mark.parametrize("fmt, dtype", [("bf16", ml_dtypes.bfloat16),
                                        ("fp8_e4m3", ml_dtypes.float8_e4m3fn),
                                        ("fp8_e5m2", ml_dtypes.float8_e5m2),
                                        ("fp16", np.float16)])
def test_rounding_equals_ml_dtypes(fmt, dtype):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-3, 3, 5000),
                        [0.0, -0.0, 1.0, 0.5, 2.0 ** -9]])
    expect = x.astype(dtype).astype(np.float64)
    assert np.array_equal(round_to(x, fmt), expect)


def test_rounding_ties_to_even_by_hand():
    # bf16 keeps 7 mantissa bits: ulp(1) = 2^-7
    assert round_to([1 + 2 ** -8], "bf16")[0] == 1.0            # half ulp -> even (1.0)
    assert round_to([1 + 3 * 2 ** -8], "bf16")[0] == 1 + 2 ** -6  # 1.5 ulp -> even
    # E4M3: 3 mantissa bits, largest finite 448
    assert round_to([1.0625], "fp8_e4m3")[0] == 1.0
    assert round_to([448.0], "fp8_e4m3")[0] == 448.0
    assert round_to([1.125 + 0.0625], "fp8_e4m3")[0] == 1.25    # tie 1.1875 -> even (1.25)


def test_integer_and_binary_quantization_by_hand():
    q, s = quantize(np.array([-1.0, 0.5, 1.0]), "int8")
    assert s == pytest.approx(1 / 127) and list(q) == [-127, 64, 127]  # 63.5 -> 64 (even)
    q, s = quantize(np.array([-3.5, 1.0, 0.2]), "int4")
    assert s == pytest.approx(0.5) and list(q) == [-7, 2, 0]            # 0.4 -> 0
    q, s = quantize(np.array([-2.0, 0.0, 4.0]), "binary")
    assert list(q) == [-1, 1, 1] and s == pytest.approx(2.0)


def test_fp32_accumulation_order_by_hand():
    # 1 + 2^-24 rounds back to 1 in fp32 (tie to even), twice; float64 keeps 1 + 2^-23
    a = np.array([[1.0, 1.0, 1.0]])
    b = np.array([[1.0], [2.0 ** -24], [2.0 ** -24]])
    assert datapath_matmul(a, b, "fp32")[0, 0] == 1.0
    # the small terms first: 2^-23 is exact, then 1 + 2^-23 is representable
    assert datapath_matmul(a, b[::-1], "fp32")[0, 0] == 1 + 2 ** -23
    # a systolic column sums each tile from zero: tiles (1, 2^-24) and (2^-24) -> still 1
    assert fp32_matmul(a, b, tile_k=2)[0, 0] == 1.0
    # tile (2^-24, 2^-24) = 2^-23 first, then added to 1 -> 1 + 2^-23
    assert fp32_matmul(a, b[::-1], tile_k=2)[0, 0] == 1 + 2 ** -23


def test_bf16_gemm_rounds_inputs_then_accumulates_in_fp32():
    a = np.array([[1.0, 1.0]])
    b = np.array([[1 + 2 ** -8], [1 + 3 * 2 ** -8]])    # -> 1 and 1 + 2^-6 in bf16
    assert datapath_matmul(a, b, "bf16")[0, 0] == 2 + 2 ** -6


def test_int8_gemm_is_exact_integer_product_rescaled():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 4))
    qa, sa = quantize(a, "int8")
    qb, sb = quantize(b, "int8")
    expect = (qa.astype(np.int64) @ qb.astype(np.int64)) * (sa * sb)
    assert np.array_equal(datapath_matmul(a, b, "int8"), expect)


def test_binary_gemm_by_hand():
    # signs [1, 1] . [1, 1] = 2, scaled by mean|a| = 3 and mean|b| = 2 -> 12 (exact: 14)
    assert datapath_matmul(np.array([[2.0, 4.0]]), np.array([[1.0], [3.0]]), "binary")[0, 0] == 12
    assert datapath_matmul(np.array([[2.0, -2.0]]), np.array([[1.0], [3.0]]), "binary")[0, 0] == 0


def test_saturating_accumulator_by_hand():
    # int16 accumulator: 16129, 32258, 32767 (clamped, not 48387), then 32767 - 16129 = 16638
    a = np.array([[127, 127, 127, -127]])
    b = np.array([[127], [127], [127], [127]])
    assert saturating_int_matmul(a, b, acc_bits=16)[0, 0] == 16638
    # the exact sum (32258) fits in int16: it is the clamped intermediate that changed it
    assert (a @ b)[0, 0] == 32258
    # both limits in one run: 16129, 32258, 32767, then down 16638, 509, -15620, -31749,
    # -32768 (clamped, not -47878), -32768
    a2 = np.array([[127] * 3 + [-127] * 6])
    assert saturating_int_matmul(a2, np.full((9, 1), 127), acc_bits=16)[0, 0] == -32768
    a3 = np.array([[127] * 3 + [-127] * 5 + [127]])
    assert saturating_int_matmul(a3, np.full((9, 1), 127), acc_bits=16)[0, 0] == -32768 + 16129


def test_int8_overflow_saturates_int32():
    k = 140_000  # 127 * 127 * k > 2^31 - 1 (overflow after 133,145 products)
    a = np.full((1, k), 127)
    b = np.full((k, 1), 127)
    assert saturating_int_matmul(a, b)[0, 0] == 2 ** 31 - 1
    assert saturating_int_matmul(-a, b)[0, 0] == -(2 ** 31)


def test_bf16_pieces_reconstruct_fp32():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(10_000).astype(np.float32)
    hi, mid, lo = _bf16_pieces(x, 3)
    assert np.array_equal(hi.astype(np.float64) + mid + lo, x.astype(np.float64))
    for p in (hi, mid, lo):
        assert np.array_equal(round_to(p, "bf16"), p.astype(np.float64))


def test_fp32_error_below_1e6_native_and_emulated():
    chip = load_config("default")  # fp32 = 6 bf16 passes on 128-row arrays
    assert gemm_rel_error("fp32", 256, 256, 256, seed=0) < 1e-6
    assert gemm_rel_error("fp32", 256, 256, 256, seed=0, chip=chip) < 1e-6
    a, b = random_gemm(64, 64, 64, seed=2)
    a32, b32 = round_to(a, "fp32"), round_to(b, "fp32")
    assert rel_error(emulated_matmul(a32, b32, 6), a32 @ b32) < 1e-6
    # fewer passes, less precision: 1 pass is plain bf16
    assert rel_error(emulated_matmul(a32, b32, 1), a32 @ b32) > 1e-4
    assert rel_error(emulated_matmul(a32, b32, 3), a32 @ b32) < \
        rel_error(emulated_matmul(a32, b32, 1), a32 @ b32)


def test_error_ordering_across_formats():
    err = {f: gemm_rel_error(f, 128, 128, 128, seed=0) for f in
           ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "binary")}
    assert err["fp32"] < err["fp16"] < err["bf16"] < err["fp8_e4m3"] < err["fp8_e5m2"], err
    assert err["bf16"] < err["int8"] < err["int4"] < err["binary"], err
    # on Gaussian data int8 (per-tensor) beats FP8 E4M3, as van Baalen et al. 2023 report
    assert err["int8"] < err["fp8_e4m3"]
    # bf16 keeps 8 significant bits: relative rounding error ~ 2^-9; the GEMM error is of that order
    assert 2 ** -12 < err["bf16"] < 2 ** -7


def test_gemm_error_deterministic_and_validated():
    assert gemm_rel_error("bf16", 32, 32, 32, seed=7) == gemm_rel_error("bf16", 32, 32, 32, seed=7)
    assert gemm_rel_error("bf16", 32, 32, 32, seed=7) != gemm_rel_error("bf16", 32, 32, 32, seed=8)
    with pytest.raises(InputError, match="k: got 0"):
        gemm_rel_error("int8", 4, 0, 4)
    with pytest.raises(InputError, match="allowed: int8"):
        gemm_rel_error("int7", 4, 4, 4)


def test_vectorised_saturation_matches_step_by_step():
    # random walks that hit the upper limit, the lower limit, and both, against a plain loop
    rng = np.random.default_rng(11)
    for trial in range(20):
        a = rng.integers(-127, 128, size=(3, 300))
        b = rng.integers(-127, 128, size=(300, 4))
        b[:, 0] = np.sign(a[0]) * 127     # row 0 x col 0 climbs to the limit
        acc_bits = 18
        lo, hi = -(2 ** 17), 2 ** 17 - 1
        expect = np.zeros((3, 4), dtype=np.int64)
        for kk in range(300):
            expect = np.clip(expect + np.multiply.outer(a[:, kk], b[kk, :]), lo, hi)
        assert np.array_equal(saturating_int_matmul(a, b, acc_bits), expect), trial
        tiled = np.zeros((3, 4), dtype=np.int64)
        for t0 in range(0, 300, 64):
            ps = np.zeros((3, 4), dtype=np.int64)
            for kk in range(t0, min(t0 + 64, 300)):
                ps = np.clip(ps + np.multiply.outer(a[:, kk], b[kk, :]), lo, hi)
            tiled = np.clip(tiled + ps, lo, hi)
        assert np.array_equal(saturating_int_matmul(a, b, acc_bits, tile_k=64), tiled), trial


def test_run_numerics_adds_per_layer_error(cli, tmp_path, write_csv):
    import pandas as pd
    trace = write_csv("name,op,m,k,n,elements\nfc1,matmul,32,48,16,\nact,relu,,,,512\n"
                      "fc2,matmul,300,64,100,\n")
    out = tmp_path / "r"
    code, stdout, err = cli("run", "tpu_v4", trace, "--format", "fp32", "--numerics",
                            "--out", out, "--no-html")
    assert code == 0, err
    df = pd.read_csv(out / "layers.csv").set_index("name")
    chip = load_config("tpu_v4")
    # fc1 whole; fc2 sampled to 64 x 64 x 64; both as tpu_v4 runs fp32 (6 bf16 passes)
    assert df.loc["fc1", "gemm_rel_error"] == pytest.approx(
        gemm_rel_error("fp32", 32, 48, 16, 0, chip=chip))
    assert df.loc["fc2", "gemm_rel_error"] == pytest.approx(
        gemm_rel_error("fp32", 64, 64, 64, 0, chip=chip))
    assert np.isnan(df.loc["act", "gemm_rel_error"])
    assert "numerics: worst GEMM error" in stdout


def test_emulation_schemes_the_numerics_cannot_model_are_named():
    one_pass = load_config("tpu_v1", **{"formats": {"int8": {"rate": 1},
                                                    "int4": {"emulate": "int8", "passes": 1}}})
    assert gemm_rel_error("int4", 16, 16, 16, chip=one_pass) == gemm_rel_error("int4", 16, 16, 16)
    odd = load_config("tpu_v4", **{"formats": {"bf16": {"rate": 1},
                                               "fp32": {"emulate": "bf16", "passes": 4}}})
    with pytest.raises(InputError, match="tpu_v4: formats.fp32: got '4 x bf16'"):
        gemm_rel_error("fp32", 8, 8, 8, chip=odd)

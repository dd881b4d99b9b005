"""Bit-accurate GEMM numerics: compute C = A @ B the way a MAC datapath does, and its error.

Inputs are rounded to the format first: floats to the nearest representable value with
``ml_dtypes`` (bf16, fp8 E4M3 / E5M2; fp16 and fp32 with numpy's own types; round to nearest even;
a value beyond the largest finite one becomes inf, or NaN for E4M3, which has no infinity, as the
``ml_dtypes`` types define), integers by symmetric per-tensor
quantization (scale = max|x| / (2^(n-1) - 1), round to nearest even, clip), binary to sign(x) with
a per-tensor scale mean|x| (XNOR-Net, Rastegari et al. 2016), ternary to {-1, 0, +1} with the
threshold 0.7 mean|x| and the scale mean|x| over the kept values (TWN, Li & Liu 2016).

Then every product is added, in the array's order, to an accumulator of the format's accumulator
type, rounding after each add:

- float formats accumulate in fp32: ``acc = fp32(acc + fp32(a_ik * b_kj))`` for k = 0, 1, ...
  (products of bf16/fp16/fp8 values are exact in fp32; an fp32 product is rounded to fp32);
- integer, binary and ternary formats accumulate in int32 with saturation (the adder clamps at
  +-(2^31 - 1) / -2^31 instead of wrapping), then the result is rescaled;
- with ``tile_k`` (the array's rows under weight-stationary dataflow), each group of ``tile_k``
  products is summed down a column from zero, and the tile's partial sums are added to the
  accumulator in tile order, as a systolic array does;
- an emulated format (``fp32`` as 6 bf16 passes, ``fp16`` as 3) splits each operand into bf16
  pieces (hi = bf16(x), mid = bf16(x - hi), lo = bf16(x - hi - mid)), runs one bf16 GEMM with fp32
  accumulation per cross product kept (3 passes: hi*hi, hi*lo, lo*hi with two pieces; 6 passes:
  those of three pieces whose weight is at least 2^-16 of hi*hi), and sums the passes in fp32 from
  the smallest to the largest (assumption: XLA's bf16_6x / bf16_3x schemes).

The loop runs over k with numpy vectorised over m x n, so 256^3 takes well under a second.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .formats import Format, get_format

_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def _np_type(f: Format):
    import ml_dtypes
    return {
        "bf16": ml_dtypes.bfloat16,
        "fp16": np.float16,
        "fp32": np.float32,
        "fp8_e4m3": ml_dtypes.float8_e4m3fn,
        "fp8_e5m2": ml_dtypes.float8_e5m2,
    }[f.name]


def round_to(x: np.ndarray, fmt: str | Format) -> np.ndarray:
    """``x`` rounded to a float format, returned as float64 (exact values of that format)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    if f.kind != "float":
        raise InputError(None, "format", f.name, "round_to takes a float format; use quantize")
    return np.asarray(x, dtype=np.float64).astype(_np_type(f)).astype(np.float64)


def quantize(x: np.ndarray, fmt: str | Format) -> tuple[np.ndarray, float]:
    """``(q, scale)`` with ``x ~ q * scale``: q holds exact values of the format as float64.

    Floats: q = x rounded to the format, scale 1. Integers: symmetric per-tensor quantization.
    Binary: q = sign(x) (0 counts as +1), scale = mean |x|. Ternary: q = sign(x) where
    |x| > 0.7 mean|x|, else 0; scale = mean |x| over those kept.
    """
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    x = np.asarray(x, dtype=np.float64)
    if f.kind == "float":
        return round_to(x, f), 1.0
    if f.kind == "binary":
        scale = float(np.mean(np.abs(x))) if x.size else 1.0
        return np.where(x >= 0, 1.0, -1.0), (scale or 1.0)
    if f.kind == "ternary":
        keep = np.abs(x) > 0.7 * float(np.mean(np.abs(x))) if x.size else np.zeros(0, bool)
        scale = float(np.mean(np.abs(x[keep]))) if keep.any() else 1.0
        return np.where(keep, np.sign(x), 0.0), scale
    qmax = 2 ** (f.bits - 1) - 1
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    scale = amax / qmax if amax > 0 else 1.0
    return np.clip(np.rint(x / scale), -qmax, qmax), scale


def _clamped_sum(acc: np.ndarray, p: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``acc`` after adding ``p[..., 0]``, ``p[..., 1]``, ... with a clamp to [lo, hi] after each.

    Vectorised over the last axis: where only the upper limit is reached the running value is
    the one-sided reflection s_j = C_j - max(0, max_{i<=j} C_i - hi) of the plain cumulative sum
    C (and symmetrically for the lower limit), which is exact; an element that meets both limits
    within one chunk is redone step by step.
    """
    c = acc[..., None] + np.cumsum(p, axis=-1)
    if c.size == 0:
        return acc
    if c.max() <= hi and c.min() >= lo:
        return c[..., -1]
    s_up = c - np.maximum.accumulate(np.maximum(c - hi, 0), axis=-1)
    s_dn = c - np.minimum.accumulate(np.minimum(c - lo, 0), axis=-1)
    ok_up = s_up.min(axis=-1) >= lo
    ok_dn = s_dn.max(axis=-1) <= hi
    out = np.where(ok_up, s_up[..., -1], s_dn[..., -1])
    both = ~(ok_up | ok_dn)
    if both.any():
        seq = acc[both].copy()
        for j in range(p.shape[-1]):
            seq = np.clip(seq + p[both][..., j], lo, hi)
        out[both] = seq
    return out


def saturating_int_matmul(qa: np.ndarray, qb: np.ndarray, acc_bits: int = 32,
                          tile_k: int | None = None) -> np.ndarray:
    """Integer GEMM with a saturating ``acc_bits`` accumulator, products added in k order
    (within ``tile_k`` groups summed from zero, then tile by tile into the accumulator)."""
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    a = np.asarray(qa, dtype=np.int64)
    b = np.asarray(qb, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    tile = tile_k or k
    # no partial sum can leave the range: the exact integer product is the answer (computed in
    # float64, exact because every partial sum is an integer below 2^53)
    bound = (np.abs(a).max(initial=0) * np.abs(b).max(initial=0)) * k
    if bound <= min(hi, -lo) and bound < 2 ** 53:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    chunk = max(1, min(tile, (1 << 22) // max(1, m * n)))
    bt = b.T
    acc = np.zeros((m, n), dtype=np.int64)
    for t0 in range(0, k, tile):
        t1 = min(t0 + tile, k)
        psum = np.zeros((m, n), dtype=np.int64)
        for c0 in range(t0, t1, chunk):
            c1 = min(c0 + chunk, t1)
            prods = a[:, None, c0:c1] * bt[None, :, c0:c1]
            psum = _clamped_sum(psum, prods, lo, hi)
        acc = psum if tile >= k else np.clip(acc + psum, lo, hi)
    return acc


def fp32_matmul(a: np.ndarray, b: np.ndarray, tile_k: int | None = None) -> np.ndarray:
    """GEMM of fp32-representable inputs: each product and each add rounded to fp32, k order."""
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    m, k = a32.shape
    n = b32.shape[1]
    tile = tile_k or k
    acc = np.zeros((m, n), dtype=np.float32)
    prod = np.empty((m, n), dtype=np.float32)
    for t0 in range(0, k, tile):
        psum = np.zeros((m, n), dtype=np.float32)
        for kk in range(t0, min(t0 + tile, k)):
            np.multiply.outer(a32[:, kk], b32[kk, :], out=prod)
            psum += prod
        if tile == k:
            acc = psum
        else:
            acc += psum
    return acc.astype(np.float64)


def _bf16_pieces(x: np.ndarray, n: int) -> list[np.ndarray]:
    """``x`` (fp32 values) split into ``n`` bf16 pieces, largest first."""
    pieces, rest = [], np.asarray(x, dtype=np.float32)
    for _ in range(n):
        p = round_to(rest, "bf16").astype(np.float32)
        pieces.append(p)
        rest = rest - p  # exact in fp32 (Sterbenz-style: p is rest rounded)
    return pieces


# Emulation schemes: passes -> (pieces per operand, cross products (i, j) kept).
_SCHEMES = {
    1: (1, [(0, 0)]),
    3: (2, [(0, 0), (0, 1), (1, 0)]),
    6: (3, [(0, 0), (0, 1), (1, 0), (0, 2), (2, 0), (1, 1)]),
    9: (3, [(i, j) for i in range(3) for j in range(3)]),
}


def emulated_matmul(a: np.ndarray, b: np.ndarray, passes: int,
                    tile_k: int | None = None) -> np.ndarray:
    """fp32 (or fp16) GEMM emulated by bf16 passes with fp32 accumulation (module docstring)."""
    if passes not in _SCHEMES:
        raise InputError(None, "passes", passes, "bf16 emulation schemes: "
                         + "|".join(map(str, _SCHEMES)))
    npieces, pairs = _SCHEMES[passes]
    pa = _bf16_pieces(a, npieces)
    pb = _bf16_pieces(b, npieces)
    # smallest terms first: order by piece rank sum, descending
    results = [fp32_matmul(pa[i], pb[j], tile_k).astype(np.float32)
               for i, j in sorted(pairs, key=lambda p: -(p[0] + p[1]))]
    total = np.zeros_like(results[0])
    for r in results:
        total += r
    return total.astype(np.float64)


def datapath_matmul(a: np.ndarray, b: np.ndarray, fmt: str | Format, *, emulate: str | None = None,
                    passes: int = 1, tile_k: int | None = None) -> np.ndarray:
    """C = A @ B as a datapath in ``fmt`` computes it (``emulate``/``passes``: a chip that runs
    ``fmt`` as passes of another format; bf16 is the emulating format supported)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise InputError(None, "shapes", f"{a.shape} @ {b.shape}", "need (m,k) @ (k,n)")
    if emulate is not None:
        if get_format(emulate).name != "bf16" or f.kind != "float":
            raise InputError(None, "emulate", emulate, "float formats emulated by bf16 passes")
        # the operands are held in fp32 (fp16 values are exact there) and split into bf16 pieces
        qa, qb = round_to(a, f), round_to(b, f)
        return emulated_matmul(qa, qb, passes, tile_k)
    qa, sa = quantize(a, f)
    qb, sb = quantize(b, f)
    if f.kind == "float":
        return fp32_matmul(qa, qb, tile_k)
    acc = saturating_int_matmul(qa, qb, f.accumulator_bits, tile_k)
    return acc.astype(np.float64) * (sa * sb)


def random_gemm(m: int, k: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded standard-normal operands (float64): the well-conditioned test GEMM."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)), rng.standard_normal((k, n))


def rel_error(c: np.ndarray, ref: np.ndarray) -> float:
    """Relative Frobenius error ||c - ref|| / ||ref||."""
    den = float(np.linalg.norm(ref))
    return float(np.linalg.norm(c - ref)) / den if den > 0 else float(np.linalg.norm(c))


def gemm_rel_error(fmt: str, m: int = 256, k: int = 256, n: int = 256, seed: int = 0, *,
                   chip=None, tile_k: int | None = None) -> float:
    """Relative Frobenius error of a seeded random GEMM computed in ``fmt`` against float64.

    With ``chip``, a format the chip emulates is computed as its emulation (``formats.<fmt>.
    emulate``/``passes``) and ``tile_k`` defaults to the array's rows (weight-stationary order).
    """
    f = get_format(fmt)
    for name, v in (("m", m), ("k", k), ("n", n)):
        if int(v) < 1:
            raise InputError(None, name, v, "must be >= 1")
    a, b = random_gemm(m, k, n, seed)
    emulate, passes = None, 1
    if chip is not None:
        sup = chip.formats.get(f.name)
        if sup is not None and sup.emulate:
            emulate, passes = sup.emulate, sup.passes
            if sup.passes == 1:  # one pass on a wider datapath holds the format's values exactly
                emulate = None
            elif get_format(sup.emulate).name != "bf16" or f.kind != "float" \
                    or passes not in _SCHEMES:
                raise InputError(chip.name, f"formats.{f.name}", f"{passes} x {sup.emulate}",
                                 "numerics model float formats as 3, 6 or 9 bf16 passes, or any "
                                 "format as 1 pass of a wider one")
        if tile_k is None and chip.array.dataflow == "ws":
            tile_k = chip.array.rows
    c = datapath_matmul(a, b, f, emulate=emulate, passes=passes, tile_k=tile_k)
    return rel_error(c, a @ b)


def layer_errors(result, sample: int = 64, max_k: int = 2048, seed: int = 0) -> list[float]:
    """Per layer of a simulated run, the error of its GEMM in the format it ran in.

    Each GEMM layer (m, k, n) is sampled as a (min(m, sample), min(k, max_k), min(n, sample))
    GEMM of seeded standard-normal data (the trace holds shapes, not tensors: an assumption that
    the operands are well scaled), computed as the chip runs that format; vector layers get NaN.
    Layers of the same sampled shape and format share one computation.
    """
    import pandas as pd

    chip = result.config
    memo: dict[tuple, float] = {}
    out = []
    for _, row in result.layers.iterrows():
        m, k, n = row.get("m"), row.get("k"), row.get("n")
        if any(pd.isna(v) or int(v) < 1 for v in (m, k, n)):
            out.append(float("nan"))
            continue
        key = (row["format"], min(int(m), sample), min(int(k), max_k), min(int(n), sample))
        if key not in memo:
            memo[key] = gemm_rel_error(key[0], key[1], key[2], key[3], seed, chip=chip)
        out.append(memo[key])
    return out

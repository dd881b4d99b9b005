"""Attention as the flash kernels run it in training: the forward (:func:`flash_attention`) and
the backward (:func:`flash_backward`), one row instance per (query block, key block) tile, or
per inner compute step of a tile when the kernel splits its key block (block sizes per pass:
``pod/flash_blocks.py``).

The backward follows FlashAttention-2 (Dao 2023, Algorithm 2), which the JAX Pallas splash kernel
runs as one fused kernel when ``use_fused_bwd_kernel`` is set (dQ, dK and dV in a single kernel).
Per tile: S = Q K^T recomputed, P = exp(S - L) from the saved log-sum-exp L, dV += P^T dO,
dP = dO V^T, dS = P * (dP - D), dQ += dS K, dK += dS^T Q: five GEMMs, with S, P, dP and dS
score-sized tiles that stay in VMEM. D = rowsum(dO * O) is computed once per row before the
tiles. Unfused (splash's default, MaxText ``sa_use_fused_bwd_kernel: False``), two kernels with
blocks of their own: the dK/dV kernel (key blocks outer, query blocks inner: S, P, dV, dP, dS, dK;
four GEMMs) and the dQ kernel (query blocks outer, key blocks inner: S, P and dP recomputed a
second time, dS, dQ += dS K; three GEMMs), seven GEMMs per tile in all.

HBM bytes are the kernels' own (each tile row says which of its streams cross HBM on every
repeat, the ``hbm`` field; the rest stay in VMEM across the tile loop), per (layer, sequence,
KV head) with G query heads per KV head, S query rows, d the head dimension, bq x bk tiles, nq
query and nk key blocks and T tiles (each pass its own), in elements of the activation dtype:

* forward (FA2 Algorithm 1: query blocks outer): K_j and V_j per tile, Q_i read and O_i written
  once per query block: 2 T bk d + 2 G S d.
* fused backward (FA2 Algorithm 2: key blocks outer): D's pre-pass reads dO and O (2 G S d); per
  tile Q_i and dO_i read and dQ_i read and written (4 G bq d); per key block K_j and V_j read and
  dK_j and dV_j written (4 bk d): 2 G S d + 4 T G bq d + 4 nk bk d.
* unfused backward: D's pre-pass (2 G S d); the dK/dV kernel reads Q_i and dO_i per tile and
  K_j, V_j, writes dK_j, dV_j per key block (2 T G bq d + 4 nk bk d); the dQ kernel reads K_j
  and V_j per tile and Q_i, dO_i, writes dQ_i per query block (2 T bk d + 3 nq G bq d).

An inner compute step (``kv_compute``, ``kv_dkv_compute``: bkc keys of the key block already in
VMEM) runs the tile's GEMMs at bq x d x bkc and its fused vector work on bq x bkc scores; it moves
no bytes of its own beyond the forward's K and V slices. The forward rescales its O accumulator
once per inner step (alpha O + PV: 2 ops per element of G bq x d, ``attn_rescale``). Assumption:
the softmax's 5 ops per score already cover one running-max update and rescale per tile (the
divide, which flash defers to the end, is one of them), so ``attn_rescale`` counts the further
steps only; the dK/dV kernel's steps accumulate into disjoint slices of dK and dV, no extra work.

Launch cost: each kernel is one launch whose grid steps each pay one op's fixed cost
(``timing.overhead_cycles_per_op``; assumption: a Pallas grid step costs what one XLA op's launch
does). The first GEMM of a tile row set pays it; the tile's other rows, its inner steps and the
per-block rows run inside the same step (``continues``). Assumption: the grid steps above the
diagonal, which a causal kernel visits without computing or fetching, cost nothing. The
forward's grid runs heads in parallel (splash's first grid axis is ``parallel``): on a chip of
several cores each core takes whole KV heads of a layer (a tile instance is ``cores`` heads'
tiles, one per core, ``batch`` = cores), so K_j and V_j cross HBM once per tile, not once
per core. The backward kernels' grids have no parallel axis (splash: "the prefetch schedule
assumes no megacore"), so on v4/v5p they run on one of the two cores: their rows are priced
on one core (:func:`single_core`, ``pod/costs.py``); D's pre-pass is an XLA op of its own,
split between the cores.

Assumptions: the fp32 per-row statistics (L written by the forward, L and D read per backward
tile, D written by the pre-pass) are left out, 2/d of the O bytes each. The G query heads of a KV
head are stacked as the rows of one tile (splash's grid runs one query head per step, so its
forward and dQ kernels fetch K_j and V_j once per query head: G times the bytes above, which
keep those kernels compute-bound all the same). The per-block rows (``attn_out``, ``attn_bwd_kv``,
``attn_dq_in``, ``attn_dq_out``) run after their tiles, so their HBM time is not overlapped with
the tile GEMMs as the kernel's prefetch would (an over-count of at most their HBM time).
"""
from __future__ import annotations

from typing import Any

from .flash_blocks import FLASH_BLOCK, FlashBlocks, tiling

# Vector ops per score element of the backward, fused into the GEMM that produces their input:
# after S, minus L (1 subtract) and exp (1) -- splash's backward kernels compute exp(S - L), the
# softmax scale being folded into Q before the kernel; after dP, minus D (1 subtract), times P
# (1 multiply). Assumption: the causal mask of the diagonal tiles is free.
P_OPS, DS_OPS = 2, 2
D_OPS = 2                 # D = rowsum(dO * O): one multiply and one add per element of dO
# Vector ops per element of a block written once (assumption): the forward's O_i / l_i at the
# end of its row block; the backward's casts of dK_j and dV_j to the operand dtype.
OUT_OPS = 1
# Rows that run inside a kernel step an earlier row launched (module docstring: launch cost).
INSIDE = {"continues": True}
RESCALE_OPS = 2           # the forward's O <- alpha O + P V per inner step: multiply, add
# Vector ops per element the dQ kernel loads once per query block (Q_i, dO_i): its cast of dO
# to the operand dtype (assumption; the row exists to charge the bytes).
LOAD_OPS = 1
# The forward rows :func:`flash_attention` writes, which the backward kernel's rows replace.
FORWARD_ROWS = ("attn_qk", "attn_qk_step", "attn_softmax", "attn_av", "attn_rescale", "attn_out")


def single_core(name: str) -> bool:
    """Whether row ``name`` belongs to a backward kernel, whose grid has no parallel axis and so
    runs on one core of a chip of several (module docstring)."""
    return name.startswith(("attn_bwd_", "attn_dq_")) and name != "attn_bwd_d"


def _dtype(row: dict[str, Any]) -> dict[str, Any]:
    """The activation dtype of ``row`` (if set), for the vector rows a kernel adds beside it."""
    return {k: v for k, v in row.items() if k == "act_dtype"}


def _steps(bk: int, compute: int) -> tuple[int, int]:
    """(inner block, inner steps) of a bk-key block split into ``compute``-key steps."""
    bkc = min(compute, bk)
    return bkc, -(-bk // bkc)


def flash_attention(rows: list[dict[str, Any]], group: int, seq: int,
                    block: int = FLASH_BLOCK, causal: bool = True,
                    blocks: FlashBlocks | None = None, cores: int = 1) -> list[dict[str, Any]]:
    """Attention as a tiled fused kernel (flash attention; MaxText's recipes run ``attention:
    flash``, the splash kernel): per (query block, key block) tile a QK^T GEMM, the softmax fused
    into its output pipeline, then the AV GEMM that consumes the scores where they are. ``group``
    query heads share a KV head (the trace stacks them as rows). Causal prefill skips the tiles
    above the diagonal. ``blocks``: the forward's ``q``, ``kv`` and ``kv_compute`` (default:
    every block ``block``). ``cores``: the chip's cores, each taking whole KV heads (module
    docstring; where they do not divide the heads, every tile is split between them).

    Each inner step of a tile is one instance of the three rows (``count`` = layers x sequences
    x KV heads x tiles x steps; QK^T's first step per tile is ``attn_qk``, the further ones
    ``attn_qk_step``); the score tile stays in VMEM between QK^T, softmax and AV. Per
    step K and V slices come from HBM (the GEMMs' second operands, ``hbm="w"``), Q_i and the
    O_i accumulator stay in VMEM; ``attn_rescale`` rescales O on each step after a tile's first;
    after the tiles ``attn_out`` (one instance per query block) reads Q_i and writes O_i, the
    bytes the kernel moves once per query block (module docstring), so ``o_proj`` reads O from
    HBM."""
    names = {r["name"]: r for r in rows}
    qk, av, sm = names.get("attn_qk"), names.get("attn_av"), names.get("attn_softmax")
    if qk is None or av is None or sm is None:
        return rows
    fb = blocks or FlashBlocks.square(block)
    bq, bk, tiles, _ = tiling(seq, qk["n"], fb.q, fb.kv, causal)
    bkc, steps = _steps(bk, fb.kv_compute)
    heads = qk.get("count", 1) * qk.get("batch", 1)       # layers x sequences x KV heads
    # one layer's heads side by side, one per core (a layer's tiles never pair with the next's)
    c = cores if cores > 1 and qk.get("batch", 1) % cores == 0 else 1
    count = heads // c * tiles * steps
    vec = _dtype(sm)
    first = {**qk, "batch": c, "m": group * bq, "n": bkc, "count": heads // c * tiles, "hbm": "w"}
    new = {
        # a tile's first inner step launches its grid step; the further steps run inside it
        "attn_qk": [first] + ([{**first, "name": "attn_qk_step", "count": count - first["count"],
                                **INSIDE}] if steps > 1 else []),
        "attn_softmax": [{**sm, "elements": c * group * bq * bkc, "fused": True, "count": count,
                          **INSIDE}],
        "attn_av": [{**av, "batch": c, "m": group * bq, "k": bkc, "count": count, "hbm": "w",
                     **INSIDE}],
    }
    out = [x for r in rows for x in new.get(r["name"], [r])]
    at = next(i for i, r in enumerate(out) if r["name"] == "attn_av") + 1
    o_elems = c * group * bq * qk["k"]
    extra = [{"name": "attn_rescale", "op": "elementwise", "elements": o_elems,
              "ops_per_element": RESCALE_OPS, "fused": True,
              "count": heads // c * tiles * (steps - 1), **vec, **INSIDE}] if steps > 1 else []
    io = {"name": "attn_out", "op": "elementwise", "elements": o_elems,
          "ops_per_element": OUT_OPS, "count": heads // c * -(-seq // bq), "hbm": "io", **vec,
          **INSIDE}
    return out[:at] + extra + [io] + out[at:]


def _tile_rows(specs: list[tuple], count: int, steps: int, base: dict[str, Any],
               vec: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """A tile's rows from ``specs`` ((name, m, k, n, hbm) GEMMs, (name, elements, ops) fused
    vector rows), ``count`` tiles: the first inner step with its HBM streams, the further
    ``steps - 1`` (rows named ``..._step``) with none (the blocks are already in VMEM). Only
    the first row of the first step pays the grid step's launch cost (module docstring)."""
    def rows(n: int, suffix: str, first: bool) -> list[dict[str, Any]]:
        out = []
        for i, s in enumerate(specs):
            inside = INSIDE if i or not first else {}
            if len(s) == 5:
                name, mm, kk, nn, hbm = s
                out.append({**base, "name": prefix + name + suffix, "m": mm, "k": kk, "n": nn,
                            "count": n, "hbm": hbm if first else "none", **inside})
            else:
                name, elements, ops = s
                out.append({"name": prefix + name + suffix, "op": "elementwise",
                            "elements": elements, "ops_per_element": ops, "fused": True,
                            "count": n, **vec, **inside})
        return out
    return rows(count, "", True) + (rows(count * (steps - 1), "_step", False) if steps > 1
                                    else [])


def flash_backward(fwd: list[dict[str, Any]], group: int, seq: int, block: int = FLASH_BLOCK,
                   causal: bool = True, blocks: FlashBlocks | None = None
                   ) -> list[dict[str, Any]] | None:
    """The backward kernels' rows for the tile rows of :func:`flash_attention` (module
    docstring), or None when ``fwd`` has no attention tiles. ``blocks``: the same blocks the
    forward was tiled with (default: every block ``block``, fused).

    Fused, per tile of (``q_dkv``, ``kv_dkv``) (``count`` = layers x sequences x KV heads x
    tiles): ``attn_bwd_s`` (group bq x d x bk), ``attn_bwd_p`` (fused, P_OPS per score),
    ``attn_bwd_dv`` (bk x group bq x d), ``attn_bwd_dp`` (group bq x d x bk), ``attn_bwd_ds``
    (fused, DS_OPS per score), ``attn_bwd_dq`` (group bq x bk x d), ``attn_bwd_dk`` (bk x group
    bq x d); before them ``attn_bwd_d`` (D, once per layer). HBM per tile: S reads Q_i (its
    input), dV reads dO_i (its second operand), dP's input stream carries dQ_i's read (the same
    size; dO_i is already on chip), dQ writes dQ_i, dK moves nothing. After the tiles
    ``attn_bwd_kv`` (one instance per key block) reads K_j and V_j and writes dK_j and dV_j.
    ``attn_bwd_d`` reads dO and O (its elements: both tensors; D_OPS per element of dO) and
    keeps D on chip. With ``kv_dkv_compute`` < ``kv_dkv`` each GEMM runs bk / bkc steps of bkc
    keys (:func:`_tile_rows`).

    Unfused: the same rows less ``attn_bwd_dq`` (and dP moves nothing), then the dQ kernel's
    per tile of (``q_dq``, ``kv_dq``): ``attn_dq_s`` and ``attn_dq_dp`` (group bq x d x bk,
    reading K_j and V_j, their second operands), ``attn_dq_p``, ``attn_dq_ds`` (fused) and
    ``attn_dq_dq`` (group bq x bk x d, K_j already on chip); per query block ``attn_dq_in``
    (reads Q_i and dO_i) and ``attn_dq_out`` (writes dQ_i)."""
    names = {r["name"]: r for r in fwd}
    qk, av = names.get("attn_qk"), names.get("attn_av")
    if qk is None or av is None or "attn_softmax" not in names:
        return None
    fb = blocks or FlashBlocks.square(block)
    d = qk["k"]
    tiles_f = tiling(seq, seq, fb.q, fb.kv, causal)[2]
    heads = qk["count"] * qk.get("batch", 1) // tiles_f        # layers x sequences x KV heads
    layers = names.get("attn_norm", {}).get("count", 1)
    base = {k: v for k, v in qk.items() if k not in ("name", "m", "k", "n", "batch", "count")}
    vec = _dtype(names["attn_softmax"])

    bq, bk, tiles, nk = tiling(seq, seq, fb.q_dkv, fb.kv_dkv, causal)
    bkc, steps = _steps(bk, fb.kv_dkv_compute)
    m = group * bq
    specs = [("s", m, d, bkc, "i"), ("p", m * bkc, P_OPS), ("dv", bkc, m, d, "w"),
             ("dp", m, d, bkc, "i" if fb.fused_bwd else "none"), ("ds", m * bkc, DS_OPS)]
    specs += [("dq", m, bkc, d, "o")] if fb.fused_bwd else []
    specs += [("dk", bkc, m, d, "none")]
    out = [{"name": "attn_bwd_d", "op": "elementwise",
            "elements": 2 * (heads // layers) * group * seq * d, "ops_per_element": D_OPS / 2,
            "count": layers, "hbm": "i", **vec}]
    out += _tile_rows(specs, heads * tiles, steps, base, vec, "attn_bwd_")
    out.append({"name": "attn_bwd_kv", "op": "elementwise", "elements": 2 * bk * d,
                "ops_per_element": OUT_OPS, "count": heads * nk, "hbm": "io", **vec, **INSIDE})
    if fb.fused_bwd:
        return out
    bq, bk, tiles, _ = tiling(seq, seq, fb.q_dq, fb.kv_dq, causal)
    m = group * bq
    specs = [("s", m, d, bk, "w"), ("p", m * bk, P_OPS), ("dp", m, d, bk, "w"),
             ("ds", m * bk, DS_OPS), ("dq", m, bk, d, "none")]
    out += _tile_rows(specs, heads * tiles, 1, base, vec, "attn_dq_")
    per_q = heads * -(-seq // bq)
    return out + [
        {"name": "attn_dq_in", "op": "elementwise", "elements": 2 * m * d,
         "ops_per_element": LOAD_OPS, "count": per_q, "hbm": "i", **vec, **INSIDE},
        {"name": "attn_dq_out", "op": "elementwise", "elements": m * d,
         "ops_per_element": OUT_OPS, "count": per_q, "hbm": "o", **vec, **INSIDE}]


__all__ = ["flash_attention", "flash_backward", "FLASH_BLOCK", "FlashBlocks", "FORWARD_ROWS",
           "OUT_OPS"]

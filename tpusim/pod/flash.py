"""Attention as the flash kernels run it in training: the forward (:func:`flash_attention`) and
the backward (:func:`flash_backward`), one row instance per (query block, key block) tile.

The backward follows FlashAttention-2 (Dao 2023, Algorithm 2), which the JAX Pallas splash kernel
runs as one fused kernel when ``use_fused_bwd_kernel`` is set (dQ, dK and dV in a single kernel;
the unfused variant recomputes S and dP a second time in a separate dQ kernel). Per tile:
S = Q K^T recomputed, P = exp(S - L) from the saved log-sum-exp L, dV += P^T dO, dP = dO V^T,
dS = P * (dP - D), dQ += dS K, dK += dS^T Q: five GEMMs, with S, P, dP and dS score-sized tiles
that stay in VMEM. D = rowsum(dO * O) is computed once per row before the tiles.

HBM bytes are the kernels' own (each tile row says which of its streams cross HBM on every
repeat, the ``hbm`` field; the rest stay in VMEM across the tile loop), per (layer, sequence,
KV head) with G query heads per KV head, S query rows, d the head dimension, bq x bk tiles, nk
key blocks and T tiles, in elements of the activation dtype:

* forward (FA2 Algorithm 1: query blocks outer): K_j and V_j per tile, Q_i read and O_i written
  once per query block: 2 T bk d + 2 G S d.
* backward (FA2 Algorithm 2: key blocks outer): D's pre-pass reads dO and O (2 G S d); per tile
  Q_i and dO_i read and dQ_i read and written (4 G bq d); per key block K_j and V_j read and
  dK_j and dV_j written (4 bk d): 2 G S d + 4 T G bq d + 4 nk bk d.

Assumption: the fp32 per-row statistics (L written by the forward, L and D read per backward
tile, D written by the pre-pass) are left out, 2/d of the O bytes each. The per-block rows
(``attn_out``, ``attn_bwd_kv``) run after their tiles, so their HBM time is not overlapped with
the tile GEMMs as the kernel's prefetch would (an over-count of at most their HBM time).
"""
from __future__ import annotations

from typing import Any

FLASH_BLOCK = 1024        # flash-attention tile edge (assumption; MaxText recipes: sa_block 1024-2048)
# Vector ops per score element of the backward, fused into the GEMM that produces their input:
# after S, the softmax scale (1 multiply), minus L (1 subtract), exp (1); after dP, minus D
# (1 subtract), times P (1 multiply). Assumption: the causal mask of the diagonal tiles is free.
P_OPS, DS_OPS = 3, 2
D_OPS = 2                 # D = rowsum(dO * O): one multiply and one add per element of dO
# Vector ops per element of a block written once (assumption): the forward's O_i / l_i at the
# end of its row block; the backward's softmax scale on dK_j (dV_j's cast rides along).
OUT_OPS = 1
# The forward rows :func:`flash_attention` writes, which the backward kernel's rows replace.
FORWARD_ROWS = ("attn_qk", "attn_softmax", "attn_av", "attn_out")


def _dtype(row: dict[str, Any]) -> dict[str, Any]:
    """The activation dtype of ``row`` (if set), for the vector rows a kernel adds beside it."""
    return {k: v for k, v in row.items() if k == "act_dtype"}


def _tiling(seq: int, kv: int, block: int, causal: bool) -> tuple[int, int, int, int]:
    """(bq, bk, tiles, key blocks): causal prefill runs nq (nq + 1) / 2 of the nq^2 tiles."""
    bq, bk = min(block, seq), min(block, kv)
    nq, nk = -(-seq // bq), -(-kv // bk)
    tiles = nq * (nq + 1) // 2 if causal and seq == kv and bq == bk else nq * nk
    return bq, bk, tiles, nk


def flash_attention(rows: list[dict[str, Any]], group: int, seq: int,
                    block: int = FLASH_BLOCK, causal: bool = True) -> list[dict[str, Any]]:
    """Attention as a tiled fused kernel (flash attention; MaxText's recipes run ``attention:
    flash``, the splash kernel): per (query block, key block) tile a QK^T GEMM, the softmax fused
    into its output pipeline, then the AV GEMM that consumes the scores where they are. ``group``
    query heads share a KV head (the trace stacks them as rows). Causal prefill skips the tiles
    above the diagonal.

    Each tile is one instance of the three rows (``count`` = layers x sequences x KV heads x
    tiles); the score tile stays in VMEM between QK^T, softmax and AV. Per tile K_j and V_j
    come from HBM (the GEMMs' second operands, ``hbm="w"``), Q_i and the O_i accumulator stay
    in VMEM; after the tiles ``attn_out`` (one instance per query block) reads Q_i and writes
    O_i, the bytes the kernel moves once per query block (module docstring), so ``o_proj``
    reads O from HBM."""
    names = {r["name"]: r for r in rows}
    qk, av, sm = names.get("attn_qk"), names.get("attn_av"), names.get("attn_softmax")
    if qk is None or av is None or sm is None:
        return rows
    bq, bk, tiles, _ = _tiling(seq, qk["n"], block, causal)
    heads = qk.get("count", 1) * qk.get("batch", 1)       # layers x sequences x KV heads
    count = heads * tiles
    vec = _dtype(sm)
    new = {
        "attn_qk": {**qk, "batch": 1, "m": group * bq, "n": bk, "count": count, "hbm": "w"},
        "attn_softmax": {**sm, "elements": group * bq * bk, "fused": True, "count": count},
        "attn_av": {**av, "batch": 1, "m": group * bq, "k": bk, "count": count, "hbm": "w"},
    }
    out = [new.get(r["name"], r) for r in rows]
    at = next(i for i, r in enumerate(out) if r["name"] == "attn_av") + 1
    io = {"name": "attn_out", "op": "elementwise", "elements": group * bq * qk["k"],
          "ops_per_element": OUT_OPS, "count": heads * -(-seq // bq), "hbm": "io", **vec}
    return out[:at] + [io] + out[at:]


def flash_backward(fwd: list[dict[str, Any]], group: int, seq: int, block: int = FLASH_BLOCK,
                   causal: bool = True) -> list[dict[str, Any]] | None:
    """The backward kernel's rows for the tile rows of :func:`flash_attention` (module
    docstring), or None when ``fwd`` has no attention tiles. Rows, per tile (``count`` = layers
    x sequences x KV heads x tiles): ``attn_bwd_s`` (group bq x d x bk), ``attn_bwd_p`` (fused,
    P_OPS per score), ``attn_bwd_dv`` (bk x group bq x d), ``attn_bwd_dp`` (group bq x d x bk),
    ``attn_bwd_ds`` (fused, DS_OPS per score), ``attn_bwd_dq`` (group bq x bk x d),
    ``attn_bwd_dk`` (bk x group bq x d); before them ``attn_bwd_d`` (D, once per layer).

    HBM traffic is the kernel's (module docstring), each row's ``hbm`` naming the streams that
    cross HBM on every tile, everything else in VMEM across the tile loop: S reads Q_i (its
    input), dV reads dO_i (its second operand), dP's input stream carries dQ_i's read (the same
    size; dO_i is already on chip), dQ writes dQ_i, dK moves nothing. After the tiles
    ``attn_bwd_kv`` (one instance per key block) reads K_j and V_j and writes dK_j and dV_j.
    ``attn_bwd_d`` reads dO and O (its elements: both tensors; D_OPS per element of dO) and
    keeps D on chip."""
    names = {r["name"]: r for r in fwd}
    qk, av = names.get("attn_qk"), names.get("attn_av")
    if qk is None or av is None or "attn_softmax" not in names:
        return None
    m, d, bk = qk["m"], qk["k"], qk["n"]        # the forward's tile: group bq x d x bk
    count = qk["count"]
    layers = names.get("attn_norm", {}).get("count", 1)
    bq, _, tiles, nk = _tiling(seq, seq, block, causal)
    base = {k: v for k, v in qk.items() if k not in ("name", "m", "k", "n", "batch")}
    vec = _dtype(names["attn_softmax"])

    def gemm(name: str, mm: int, kk: int, nn: int, hbm: str) -> dict[str, Any]:
        return {**base, "name": name, "m": mm, "k": kk, "n": nn, "count": count, "hbm": hbm}

    def fused(name: str, ops: int) -> dict[str, Any]:
        return {"name": name, "op": "elementwise", "elements": m * bk, "ops_per_element": ops,
                "fused": True, "count": count, **vec}

    rows_per_layer = count // (layers * tiles) * (m // bq) * seq   # sequences x heads x seq
    return [
        {"name": "attn_bwd_d", "op": "elementwise", "elements": 2 * rows_per_layer * d,
         "ops_per_element": D_OPS / 2, "count": layers, "hbm": "i", **vec},
        gemm("attn_bwd_s", m, d, bk, "i"), fused("attn_bwd_p", P_OPS),
        gemm("attn_bwd_dv", bk, m, d, "w"), gemm("attn_bwd_dp", m, d, bk, "i"),
        fused("attn_bwd_ds", DS_OPS),
        gemm("attn_bwd_dq", m, bk, d, "o"), gemm("attn_bwd_dk", bk, m, d, "none"),
        {"name": "attn_bwd_kv", "op": "elementwise", "elements": 2 * bk * d,
         "ops_per_element": OUT_OPS, "count": count // tiles * nk, "hbm": "io", **vec},
    ]


__all__ = ["flash_attention", "flash_backward", "FLASH_BLOCK", "FORWARD_ROWS", "OUT_OPS"]

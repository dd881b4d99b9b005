"""Attention as the flash kernels run it in training: the forward (:func:`flash_attention`) and
the backward (:func:`flash_backward`), one row instance per (query block, key block) tile.

The backward follows FlashAttention-2 (Dao 2023, Algorithm 2), which the JAX Pallas splash kernel
runs as one fused kernel when ``use_fused_bwd_kernel`` is set (dQ, dK and dV in a single kernel;
the unfused variant recomputes S and dP a second time in a separate dQ kernel). Per tile:
S = Q K^T recomputed, P = exp(S - L) from the saved log-sum-exp L, dV += P^T dO, dP = dO V^T,
dS = P * (dP - D), dQ += dS K, dK += dS^T Q: five GEMMs, with S, P, dP and dS score-sized tiles
that stay in VMEM (``memory.plan_residency`` keeps an output on chip when it fits). D = rowsum(dO *
O) is computed once per row before the tiles.
"""
from __future__ import annotations

from typing import Any

FLASH_BLOCK = 1024        # flash-attention tile edge (assumption; MaxText recipes: sa_block 1024-2048)
# Vector ops per score element of the backward, fused into the GEMM that produces their input:
# after S, the softmax scale (1 multiply), minus L (1 subtract), exp (1); after dP, minus D
# (1 subtract), times P (1 multiply). Assumption: the causal mask of the diagonal tiles is free.
P_OPS, DS_OPS = 3, 2
D_OPS = 2                 # D = rowsum(dO * O): one multiply and one add per element of dO


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
    tiles), so a score tile of group x bq x bk stays in VMEM between QK^T, softmax and AV whenever
    it and its inputs fit the activation buffer (``memory.plan_residency``). Per tile Q and K
    are read from HBM (Q once per tile rather than once per row block: assumption) and V too;
    the output block fits on chip, so the residency plan keeps it there for ``o_proj``."""
    names = {r["name"]: r for r in rows}
    qk, av, sm = names.get("attn_qk"), names.get("attn_av"), names.get("attn_softmax")
    if qk is None or av is None or sm is None:
        return rows
    bq, bk, tiles, _ = _tiling(seq, qk["n"], block, causal)
    count = qk.get("count", 1) * qk.get("batch", 1) * tiles
    new = {
        "attn_qk": {**qk, "batch": 1, "m": group * bq, "n": bk, "count": count},
        "attn_softmax": {**sm, "elements": group * bq * bk, "fused": True, "count": count},
        "attn_av": {**av, "batch": 1, "m": group * bq, "k": bk, "count": count},
    }
    return [new.get(r["name"], r) for r in rows]


def flash_backward(fwd: list[dict[str, Any]], group: int, seq: int, block: int = FLASH_BLOCK,
                   causal: bool = True) -> list[dict[str, Any]] | None:
    """The backward kernel's rows for the tile rows of :func:`flash_attention` (module
    docstring), or None when ``fwd`` has no attention tiles. Rows, per tile (``count`` = layers
    x sequences x KV heads x tiles): ``attn_bwd_s`` (group bq x d x bk), ``attn_bwd_p`` (fused,
    P_OPS per score), ``attn_bwd_dv`` (bk x group bq x d), ``attn_bwd_dp`` (group bq x d x bk),
    ``attn_bwd_ds`` (fused, DS_OPS per score), ``attn_bwd_dq`` (group bq x bk x d),
    ``attn_bwd_dk`` (bk x group bq x d); before them ``attn_bwd_d`` (D, once per layer).

    HBM traffic is what the single-chip row machinery charges this chain: each GEMM's second
    operand is read from HBM (per tile: K twice, V, dO and Q, where the kernel reads Q and dO
    once per tile and K and V once per key block: an over-count of the small blocks), every
    score-sized tile stays in VMEM, and the dQ, dK, dV accumulators fit VMEM so the residency
    plan writes none of them to HBM (an under-count of 2 x group bq x d per tile for dQ's
    read-modify-write and of dK, dV once per key block). ``attn_bwd_d`` reads dO and writes a
    tensor of its size, standing for FA2's read of dO and O (the same bytes)."""
    names = {r["name"]: r for r in fwd}
    qk, av = names.get("attn_qk"), names.get("attn_av")
    if qk is None or av is None or "attn_softmax" not in names:
        return None
    m, d, bk = qk["m"], qk["k"], qk["n"]        # the forward's tile: group bq x d x bk
    count = qk["count"]
    layers = names.get("attn_norm", {}).get("count", 1)
    bq, _, tiles, _ = _tiling(seq, seq, block, causal)
    base = {k: v for k, v in qk.items() if k not in ("name", "m", "k", "n", "batch")}
    vec = {k: v for k, v in names["attn_softmax"].items()
           if k in ("act_dtype",)}

    def gemm(name: str, mm: int, kk: int, nn: int) -> dict[str, Any]:
        return {**base, "name": name, "m": mm, "k": kk, "n": nn, "count": count}

    def fused(name: str, ops: int) -> dict[str, Any]:
        return {"name": name, "op": "elementwise", "elements": m * bk, "ops_per_element": ops,
                "fused": True, "count": count, **vec}

    rows_per_layer = count // (layers * tiles) * (m // bq) * seq   # sequences x heads x seq
    return [
        {"name": "attn_bwd_d", "op": "elementwise", "elements": rows_per_layer * d,
         "ops_per_element": D_OPS, "count": layers, **vec},
        gemm("attn_bwd_s", m, d, bk), fused("attn_bwd_p", P_OPS),
        gemm("attn_bwd_dv", bk, m, d), gemm("attn_bwd_dp", m, d, bk), fused("attn_bwd_ds", DS_OPS),
        gemm("attn_bwd_dq", m, bk, d), gemm("attn_bwd_dk", bk, m, d),
    ]


__all__ = ["flash_attention", "flash_backward", "FLASH_BLOCK"]

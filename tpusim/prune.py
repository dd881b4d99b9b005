"""Channel pruning as a transformation of a trace: ``tpusim workload prune``.

Removing a fraction of a layer's output channels removes the matching input channels of the
layer that consumes them, so both shrink. A trace does not name the edges between layers, so the
chain is taken as known only where it can be read off the rows: the next static matmul/conv row
after a producer (in trace order) takes exactly the producer's output channels as its input
(conv ``in_c`` = producer's ``out_c``; matmul ``k`` = producer's ``n``, or after a conv its
``out_c`` (pooled) or ``out_c`` x output pixels (flattened)), and no binary vector op
(add, residual, mul, sub, div, concat) lies between them, which would tie the channels to another
branch (a ResNet shortcut). A depthwise conv (groups = in_c = out_c) passes the pruned channels
through. Where the chain is not known the producer's outputs stay dense.

Kept dense: the first layer's input channels (the image or embedding) and the last static
matmul/conv row's output channels (the classes or logits), and grouped (non-depthwise) convs.
Vector rows between a pruned producer and its consumer whose ``elements`` are a multiple of the
producer's channels (its output, pooled or not) shrink with it. A row with ``count`` > 1 is pruned as one row (each instance
alike). Pruned channels are kept as round(channels x (1 - fraction)), at least 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .workload import GEMM_OPS, make_layer

_BINARY = {"add", "residual", "mul", "sub", "div", "concat"}


@dataclass
class _Out:
    """The pruned output of the latest GEMM row, for its consumer."""

    index: int         # row index of the producer
    kind: str          # "conv2d" or "matmul"
    channels: int      # dense output channels
    kept: int          # output channels kept
    pixels: int        # output pixels per sample (conv), 1 for matmul
    out_elements: int  # dense output tensor


def _static_gemm(row: dict[str, Any]) -> str | None:
    op = GEMM_OPS.get(str(row.get("op", "")).strip().lower())
    return op if op and row.get("weights") != "dynamic" else None


def _consumes(row: dict[str, Any], op: str, prev: _Out) -> str | None:
    """Which input column of ``row`` carries ``prev``'s channels (None: chain not known)."""
    if op == "conv2d" and int(row["in_c"]) == prev.channels:
        return "in_c"
    if op == "matmul" and prev.kind == "matmul" and int(row["k"]) == prev.channels:
        return "k"
    if op == "matmul" and prev.kind == "conv2d" and int(row["k"]) in (
            prev.channels, prev.channels * prev.pixels):
        return "k"
    return None


def prune_rows(rows: list[dict[str, Any]], fraction: float, source: str = "") \
        -> tuple[list[dict[str, Any]], list[str]]:
    """``rows`` (trace rows as column -> value) with ``fraction`` of the output channels
    removed where the module docstring allows; and one line per pruned producer."""
    keep = 1.0 - fraction
    layers = [make_layer(r, source, i) for i, r in enumerate(rows, start=2)]
    gemms = [i for i, r in enumerate(rows) if _static_gemm(r)]
    last = gemms[-1] if gemms else -1
    out = [dict(r) for r in rows]
    notes: list[str] = []
    prev: _Out | None = None     # the pruned producer waiting for its consumer
    between: list[int] = []      # vector rows since prev
    blocked = False              # a binary vector op since the latest GEMM
    for i, r in enumerate(rows):
        op = _static_gemm(r)
        if op is None:
            if GEMM_OPS.get(str(r.get("op", "")).strip().lower()):   # dynamic matmul
                prev, blocked = None, True
            elif str(r["op"]).strip().lower() in _BINARY:
                blocked = True
            else:
                between.append(i)
            continue
        # the consumer side: take the producer's pruned channels
        depthwise = False
        groups = int(r.get("groups", 1) or 1)
        if prev is not None and not blocked:
            col = _consumes(r, op, prev)
            if col is not None:
                depthwise = op == "conv2d" and groups > 1 and groups == int(r["in_c"]) \
                    == int(r["out_c"])
                if op == "conv2d" and groups > 1 and not depthwise:
                    col = None
            if col is not None:
                _apply(out, rows, layers, prev, between, col, i, depthwise)
        # the producer side: prune this row's outputs (a depthwise conv already passed them)
        nxt = None
        if not depthwise and i != last and groups == 1:
            ch = int(r["out_c"] if op == "conv2d" else r["n"])
            kept = max(1, round(ch * keep))
            if kept < ch:
                lay = layers[i]
                batch = int(r.get("batch", 1) or 1)
                pixels = lay.out_elements // (batch * ch) if op == "conv2d" else 1
                nxt = _Out(i, op, ch, kept, pixels, lay.out_elements)
        elif depthwise and prev is not None:
            nxt = _Out(i, op, int(rows[i]["out_c"]), int(out[i]["out_c"]),
                       layers[i].out_elements // (int(r.get("batch", 1) or 1)
                                                  * int(rows[i]["out_c"])),
                       layers[i].out_elements)
        prev, between, blocked = nxt, [], False
    return out, notes + [f"{out[j]['name']}: {_desc(rows[j], out[j])}"
                         for j in range(len(rows)) if out[j] != rows[j]]


def _apply(out, rows, layers, prev: _Out, between, col: str, i: int, depthwise: bool) -> None:
    """Prune ``prev``'s outputs and the matching input of row ``i`` (and rows between)."""
    p = out[prev.index]
    p["out_c" if prev.kind == "conv2d" else "n"] = prev.kept
    dense_in = int(rows[i][col])
    out[i][col] = prev.kept * (dense_in // prev.channels)
    if depthwise:
        out[i]["out_c"] = out[i]["groups"] = prev.kept
    for j in between:
        el = int(rows[j].get("elements", 0) or 0)
        if el % prev.channels == 0:
            out[j]["elements"] = el // prev.channels * prev.kept


def _desc(before: dict[str, Any], after: dict[str, Any]) -> str:
    return ", ".join(f"{c} {before[c]} -> {after[c]}" for c in after if after[c] != before[c])

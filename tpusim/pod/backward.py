"""The backward pass of a forward trace, row by row, and the step's compute by forward row.

For every matmul row the input-gradient GEMM (``_dgrad``: m x n x k) and the weight-gradient GEMM
(``_wgrad``: k x m x n, its "weights" the incoming gradient); a residual add's, an add's and
RoPE's backward cost what their forward does (the residual's is the one add where the branch's
gradient meets the skip's, an add passes its gradient through and sums it, RoPE's is the inverse
rotation); every other vector op's backward costs twice its forward (``_bwd``: it reads its input
and the incoming gradient: assumption); the embedding's backward is a scatter-add of its size
into a gradient table it first zero-fills (``_fill``: vocabulary x hidden values written, as
JAX's transpose of a gather does; priced as an identity row of half the table's values, which
reads as much as it writes, so it moves the table's bytes once: a vector row has no write-only
form); the flash attention tiles' rows give way to the flash backward kernel's
(``pod/flash.py``). ``pod/train.py`` prices these rows; :func:`time_by_op`
folds their seconds back onto the forward rows they came from (``train.json``'s
``time_by_op``).
"""
from __future__ import annotations

import re
from typing import Any

from .flash import FORWARD_ROWS

_SUFFIX = re.compile(r"_(dgrad|wgrad|bwd|fill)$")
# vector ops whose backward costs one forward (module docstring)
ONE_PASS = frozenset({"residual", "add", "rope"})


def backward_rows(rows: list[dict[str, Any]],
                  attention: list[dict[str, Any]] | None = None,
                  table: int = 0) -> list[dict[str, Any]]:
    """The backward pass of forward trace rows (module docstring); ``attention``: the flash
    backward kernel's rows (``pod/flash.py``), put in place of the attention tiles' rows;
    ``table``: the embedding gradient's values on this chip (vocabulary shard x hidden; 0: no
    zero-fill row)."""
    out = []
    for r in rows:
        if attention is not None and r["name"] in FORWARD_ROWS:
            if r["name"] == "attn_qk":
                out += attention
            continue
        if r["op"] == "matmul":
            dgrad = {**r, "name": r["name"] + "_dgrad", "k": r["n"], "n": r["k"]}
            wgrad = {**r, "name": r["name"] + "_wgrad", "m": r["k"], "k": r["m"],
                     "weights": "dynamic"}
            out += [dgrad, wgrad]
        elif r["op"] == "embedding":
            if table:
                out.append({**r, "name": r["name"] + "_fill", "op": "identity",
                            "elements": -(-table // 2)})
            out.append({**r, "name": r["name"] + "_bwd", "op": "add"})
        else:
            passes = 1 if r["op"] in ONE_PASS else 2
            out.append({**r, "name": r["name"] + "_bwd", "count": passes * r.get("count", 1)})
    return out


def with_loss(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training's forward ``rows`` with the cross-entropy loss after the LM head: a softmax over
    each token's logits (the chip's vocabulary shard; with tp the shards' max and sum cross
    chips in a few bytes per token, not priced: assumption), its backward the gradient of the
    logits."""
    out = []
    for r in rows:
        out.append(r)
        if r["name"] == "lm_head":
            out.append({"name": "loss", "op": "softmax", "elements": r["m"] * r["n"],
                        "n": r["n"], "act_dtype": r.get("act_dtype", "bf16")})
    return out


def places(fwd: list[dict[str, Any]], bwd: list[dict[str, Any]],
           outside: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Each forward and backward row's place in the program: ``pre`` (before the blocks: the
    embedding), ``block`` or ``post`` (after them: the LM head and loss); ``outside``: the row
    names not in a block."""
    first = next(i for i, r in enumerate(fwd) if r["name"] not in outside)
    where = ["block" if r["name"] not in outside else "pre" if i < first else "post"
             for i, r in enumerate(fwd)]
    home = {r["name"]: w for r, w in zip(fwd, where)}
    return where, [home.get(forward_name(r["name"]), "block") for r in bwd]


def forward_name(name: str) -> str:
    """The forward row a backward row of :func:`backward_rows` came from (its name less
    ``_dgrad``, ``_wgrad`` or ``_bwd``); a flash backward row's name comes back as it is."""
    return _SUFFIX.sub("", name)


def time_by_op(fwd: list[dict[str, Any]], bwd: list[dict[str, Any]], per_row, redo: set[str],
               microbatches: int, flash_bwd: set[str]) -> tuple[dict[str, Any], ...]:
    """The step's compute by forward row: ``forward_s``, ``backward_s`` (its input- and
    weight-gradient GEMMs or its vector op's backward) and ``recompute_s`` over the
    microbatches. The flash kernels' forward and backward rows (``flash_bwd``: the backward
    kernel's row names) are one unit, ``attention``. ``per_row``: (seconds, MACs) of
    ``fwd + bwd``; ``redo``: the rows the recompute reruns."""
    def unit(name: str) -> str:
        base = forward_name(name)
        return "attention" if base in FORWARD_ROWS or name in flash_bwd else base

    out: dict[str, list[float]] = {}
    for r, (t, _) in zip(fwd, per_row):
        u = out.setdefault(unit(r["name"]), [0.0, 0.0, 0.0])
        u[0] += t
        if r["name"] in redo:
            u[2] += t
    for r, (t, _) in zip(bwd, per_row[len(fwd):]):
        out.setdefault(unit(r["name"]), [0.0, 0.0, 0.0])[1] += t
    return tuple({"name": k, "forward_s": microbatches * f, "backward_s": microbatches * b,
                  "recompute_s": microbatches * rc} for k, (f, b, rc) in out.items())


__all__ = ["backward_rows", "forward_name", "time_by_op", "with_loss", "places"]

"""Tensor parallelism (Megatron-style) for serving: one step on N chips = shard GEMMs + all-reduces.

With TP = N every chip holds 1/N of each block's attention heads and FFN columns: the QKV, gate
and up projections split their output columns (``n / N``), the output and down projections their
input rows (``k / N``), attention runs 1/N of the KV heads (``batch / N``; with fewer KV heads
than chips each chip keeps one, replicated), and the LM head 1/N of the vocabulary. Norms,
residual adds and the embedding gather run replicated on every chip. Each block then all-reduces
its attention and its FFN output (``tokens x hidden`` activations), two all-reduces a block.

The all-reduce is a bidirectional ring (:func:`ring_all_reduce_s`): a reduce-scatter then an
all-gather, each moving (N-1)/N of the data per chip, half each way round (jax-ml scaling-book,
sharding chapter), plus one hop latency per ring step. This is the one function a multi-chip
collectives model can replace. Assumptions, one each: the all-reduces do not overlap compute
(an upper bound on time; collective matmuls would hide some); sampling reads the sharded logits
without gathering them; the chips of a slice form one ring (a 2 x 4 v5e-8 has a Hamiltonian
cycle).
"""
from __future__ import annotations

import math
import re
from typing import Any

from ..errors import InputError
from ..generation import StepCost, StepCostModel

# One-way ICI bandwidth per link, bytes/s: 4.5e10 for v4 and v5e, 9e10 for v5p (jax-ml
# scaling-book, TPU chapter, "ICI bandwidth" table).
ICI_LINK_BYTES_S = {"tpu_v4": 4.5e10, "tpu_v4_calibrated": 4.5e10, "tpu_v5e": 4.5e10,
                    "tpu_v5p": 9e10}
# Per-hop ICI latency: not published per chip; assumption: 1 us, the order the scaling-book
# quotes for a collective's latency term on small messages.
ICI_HOP_S = 1e-6

_COLS = ("qkv_proj", "ffn_gate", "ffn_up", "lm_head")     # split n
_ROWS = ("o_proj", "ffn_down")                            # split k
_HEADS = ("attn_qk", "attn_av")                           # split batch (KV heads)
_ELEMS = ("rope", "attn_softmax", "ffn_silu", "ffn_gelu", "ffn_relu", "ffn_gate_mul")


def ring_all_reduce_s(nbytes: float, chips: int, link_bytes_s: float,
                      hop_s: float = ICI_HOP_S) -> float:
    """All-reduce of ``nbytes`` per chip over a bidirectional ring of ``chips``:
    2 x (N-1)/N x D / (2 b) + 2 x ceil((N-1)/2) x hop latency; 0 for one chip."""
    if chips <= 1:
        return 0.0
    n = chips
    return 2 * (n - 1) / n * nbytes / (2 * link_bytes_s) + 2 * math.ceil((n - 1) / 2) * hop_s


def _div(v: int, tp: int) -> int:
    return max(1, -(-v // tp))


def shard_row(row: dict[str, Any], tp: int, kv_heads: int) -> dict[str, Any]:
    """One chip's share of a trace row under TP = ``tp`` (module docstring)."""
    if tp == 1:
        return row
    r = dict(row)
    name = re.sub(r"_\d+x\d+$", "", r["name"])      # attention of one group: attn_qk_1x300
    if name in _COLS:
        r["n"] = _div(r["n"], tp)
    elif name in _ROWS:
        r["k"] = _div(r["k"], tp)
    elif name in _HEADS:
        seqs = r["batch"] // kv_heads
        r["batch"] = seqs * _div(kv_heads, tp)
    elif name in _ELEMS:
        r["elements"] = _div(r["elements"], tp)
    return r


class ShardedStepCost(StepCostModel):
    """:class:`StepCostModel` of one chip's shard of a step, plus the step's all-reduces."""

    def __init__(self, config, model, dtype: str = "bf16", tp: int = 1,
                 link_bytes_s: float | None = None, format: str | None = None):
        super().__init__(config, model, dtype, format)
        if not isinstance(tp, int) or tp < 1:
            raise InputError("--parallel", "tp", tp, "an integer >= 1")
        self.tp = tp
        self.link_bytes_s = link_bytes_s or ICI_LINK_BYTES_S.get(self.chip.name, 4.5e10)

    def _layer(self, row):
        return super()._layer(shard_row(row, self.tp, self.model.kv_heads))

    def step(self, decode_kv=(), prefill_tokens: int = 0, prefill_kv: int | None = None):
        s = super().step(decode_kv, prefill_tokens, prefill_kv)
        if self.tp == 1:
            return s
        tokens = len(decode_kv) + prefill_tokens
        act = 1 if self.dtype in ("int8", "int4") else 2
        comm = 2 * self.model.layers * ring_all_reduce_s(
            tokens * self.model.hidden * act, self.tp, self.link_bytes_s)
        return StepCost(cycles=s.cycles, latency_s=s.latency_s + comm, energy_j=s.energy_j,
                        hbm_bytes=s.hbm_bytes, macs=s.macs, new_tokens=s.new_tokens)

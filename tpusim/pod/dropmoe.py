"""MoE with a capacity factor: what MaxText's "dropped" dense path executes, as trace rows.

MaxText's ``RoutedMoE`` (AI-Hypercomputer/maxtext, ``MaxText/layers/moe.py`` at commit
0077e52aa46b1a24a6ee4d3a1c5a8228a724e5bd) runs ``dense_matmul`` when ``sparse_matmul`` is off; with
``capacity_factor > 0`` in training it drops tokens past each expert's capacity. What it runs per
layer, B sequences of S tokens, M hidden, E experts, top_k = k, H the FFN width:

* capacity per sequence (``generate_masks``): C = int(max(ceil(S k / E) x CF, CF)); the mask is
  built per sequence (``BSEC``), so every sequence has its own C slots per expert;
* the masks: a one-hot of each kept pair's position in its expert's slots times its routing
  weight, the combine mask [B, S, E, C] (bf16), the dispatch mask its cast to bool;
* dispatch ``BSM,BSEC -> EBCM``: per sequence an (E C x S) @ (S x M) GEMM, B E C S M MACs;
* experts ``EBCM,EMH -> EBCH`` (wi_0, wi_1) and ``EBCH,EHM -> EBCM`` (wo): E batched GEMMs of
  B C rows each, the padded (empty) slots computed whole;
* combine ``EBCM,BSEC -> BSM``: per sequence an (S x E C) @ (E C x M) GEMM, B S E C M MACs.

Backward: the expert GEMMs and the combine get both gradients as every matmul does; the
dispatch only its input gradient (d inputs = mask @ d dispatch, S x E C x M per sequence), since
the bool dispatch mask has none. The combine mask does carry a gradient (it is the router
weights times a one-hot), so the combine keeps both of its backward GEMMs.

Assumptions, one each: the mask construction costs one vector op per element of the
[B, S, E, C] combine mask (its cumsums over [B, S k, E] are k C / E times smaller); XLA runs a
one-hot einsum as the dense GEMM its shape says (it cannot know the operand is one-hot). With
expert parallelism (ep > 1), each chip dispatches its own B sequences to all E experts (the
einsum runs where its operands live, batch-sharded), and the [E, B, C, M] buffer is all-to-all'd
to the expert shards, which then hold E / ep experts x (B ep) sequences' slots: every shard runs
the same fixed E B C rows, so no shard waits for a busier one (capacity bounds the load;
dropped tokens are not computed), unlike the dropless path's busiest-shard pace (``pod/moe.py``).
The all-to-all carries the E C slots per sequence (CF x the dropless path's S k pairs). With
tp > 1 every tensor shard runs the dispatch and combine whole over the hidden size (assumption;
no validated recipe uses tp with this path).
Memory: the dispatched buffer, the expert outputs and the combine mask are block outputs, so the
backward working set counts them (``pod/train.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

_ALLOWED = "allowed: megablox (or dropless) | dropped:CF with a capacity factor CF > 0, " \
    "e.g. dropped:1.25"
# Rows of the dropless trace (importers/llm.py) that the dropped path does not run.
_DROPLESS_ONLY = ("moe_permute", "expert_local_sort", "expert_local_unsort", "expert_combine")
DISPATCH, COMBINE, MASKS = "moe_dispatch", "moe_combine", "moe_masks"


@dataclass(frozen=True)
class MoeKernel:
    """How an MoE layer's experts run: ``megablox`` (dropless grouped matmuls, ``pod/moe.py``)
    or ``dropped`` with ``capacity_factor`` (this module)."""
    kind: str = "megablox"
    capacity_factor: float = 0.0

    @property
    def dropped(self) -> bool:
        return self.kind == "dropped"

    def label(self) -> str:
        return f"dropped:{self.capacity_factor:g}" if self.dropped else "megablox"


def parse_moe(value: "str | MoeKernel") -> MoeKernel:
    """``megablox``/``dropless`` or ``dropped:CF``; one-line InputError otherwise."""
    if isinstance(value, MoeKernel):
        return value
    text = value.strip() if isinstance(value, str) else value
    if text in ("megablox", "dropless"):
        return MoeKernel()
    if isinstance(text, str) and text.startswith("dropped:"):
        try:
            cf = float(text.removeprefix("dropped:"))
        except ValueError:
            cf = float("nan")
        if math.isfinite(cf) and cf > 0:
            return MoeKernel("dropped", cf)
    raise InputError("--moe", None, value, _ALLOWED)


def check_kernel(kernel: MoeKernel, model) -> None:
    """A dropped (capacity-factor) kernel on a dense model is an error, as ep > 1 on one is
    (``pod/sharding.py``): it has no experts to drop tokens at. The dropless default is no
    choice the user made, so it stays silent."""
    if kernel.dropped and not model.moe:
        raise InputError("--moe", None, kernel.label(), f"{model.name} has no experts (dense "
                         "model); --moe applies to MoE models")


def expert_capacity(seq: int, top_k: int, experts: int, capacity_factor: float) -> int:
    """Slots per expert per sequence, as MaxText's ``generate_masks`` rounds them:
    int(max(ceil(seq top_k / experts) x CF, CF)) (the int() truncates)."""
    return int(max(math.ceil(seq * top_k / experts) * capacity_factor, capacity_factor))


def dropped_rows(fwd: list[dict[str, Any]], model, batch: int, seq: int,
                 capacity_factor: float) -> list[dict[str, Any]]:
    """The forward trace ``fwd`` of one chip's shard ``model`` (``pod/sharding.shard_config``:
    ``experts``, ``expert_shards``, ``ffn`` split tp ways) on ``batch`` sequences of ``seq``,
    with its dropless MoE rows replaced by the dropped path's (module docstring)."""
    E, ep, M = model.experts, model.expert_shards, model.hidden
    C = expert_capacity(seq, model.top_k, E, capacity_factor)
    if C < 1:
        raise InputError("--moe", None, f"dropped:{capacity_factor:g}", f"gives 0 slots per "
                         f"expert for {seq} tokens x top_{model.top_k} over {E} experts; "
                         "use a larger capacity factor")
    local, rows_e = E // ep, batch * ep * C          # experts on this chip, slots per expert
    out: list[dict[str, Any]] = []
    for r in fwd:
        name = r["name"]
        if name in _DROPLESS_ONLY:
            continue
        if name == "moe_router":
            dt = {k: r[k] for k in ("act_dtype", "weight_dtype") if k in r}
        if name == "moe_router_softmax":
            out.append(r)
            out += [{"name": MASKS, "op": "mul", "elements": batch * seq * E * C,
                     "count": r.get("count", 1), **dt},
                    {"name": DISPATCH, "op": "matmul", "batch": batch, "m": E * C, "k": seq,
                     "n": M, "count": r.get("count", 1), "weights": "dynamic", **dt}]
        elif name.startswith("expert_") and r["op"] == "matmul":
            out.append({**r, "batch": local, "m": rows_e})
        elif name.startswith("expert_"):                  # activation, gate multiply
            out.append({**r, "elements": local * rows_e * model.ffn})
            continue
        else:
            out.append(r)
        if name == "expert_down":
            out.append({**r, "name": COMBINE, "batch": batch, "m": seq, "k": E * C, "n": M})
    for r in out:
        if r.get("count", 1) == 1:
            r.pop("count", None)
    if C > seq:     # padding past every token: check the sizes here, to name the option
        from ..workload import make_layer
        try:
            for r in out:
                make_layer(r, "shard")
        except InputError as exc:
            if "2^53" not in str(exc):
                raise
            raise InputError("--moe", None, f"dropped:{capacity_factor:g}", f"gives {C:,} slots "
                             "per expert, rows past 2^53 elements (the largest size the model "
                             "computes exactly); no token is dropped from capacity factor "
                             f"{E / model.top_k:g} up") from None
    return out


def without_mask_gradients(bwd: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The backward rows less the dispatch's gradient with respect to its bool mask."""
    return [r for r in bwd if r["name"] != DISPATCH + "_dgrad"]


def all_to_all_rows(model, seq: int, kernel: MoeKernel) -> float:
    """Rows (of hidden-size vectors) per sequence each MoE all-to-all carries: the top_k pairs
    of every token (dropless), or every expert's C slots (dropped)."""
    if not kernel.dropped:
        return float(seq * model.top_k)
    return float(model.experts * expert_capacity(seq, model.top_k, model.experts,
                                                 kernel.capacity_factor))


__all__ = ["MoeKernel", "parse_moe", "check_kernel", "expert_capacity", "dropped_rows",
           "without_mask_gradients", "all_to_all_rows", "DISPATCH", "COMBINE", "MASKS"]

"""What one chip of a training step holds: its share of the parameters, and its HBM (and pinned
host memory) account, checked before anything is simulated.

HBM per chip is the sharded state (``STATE_BYTES`` per parameter: bf16 weight and gradient, fp32
master weight and two Adam moments, sharded over fsdp as ZeRO-3 does), two layers' gathered
weights (the layer running and the one prefetched), the activations the remat policy keeps in
HBM, and the working set of the layer being back-propagated. What the policy offloads is counted
in host memory, not HBM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .remat import WIRE_BYTES, Remat, kept_per_layer, saved_per_layer
from .sharding import ParallelSpec, Placement

STATE_BYTES = 16          # bf16 weight + bf16 grad + fp32 master + 2 fp32 moments per parameter
GIB = 2 ** 30


@dataclass(frozen=True)
class Params:
    """One chip's parameters: ``dense`` and ``expert`` of one layer before fsdp sharding,
    ``head`` the embedding and LM head before it, ``shard`` everything the chip keeps after it."""
    dense: float
    expert: float
    head: float
    shard: float


def layer_params(model, spec: ParallelSpec) -> tuple[float, float]:
    """(dense, expert) parameters of one layer on one chip before fsdp sharding."""
    h, hd = model.hidden, model.head_dim
    attn = h * (model.heads + 2 * model.kv_heads) * hd + model.heads * hd * h
    ffn = (3 if model.gated else 2) * h * model.ffn
    if model.moe:
        return attn / spec.tp + h * model.experts, ffn * model.experts / (spec.tp * spec.ep)
    return (attn + ffn) / spec.tp, 0.0


def chip_params(model, spec: ParallelSpec, pl: Placement, layers: int) -> Params:
    """Dense weights (and the embedding and LM head) are sharded over fsdp and ep, expert
    weights over fsdp (ep already splits the experts)."""
    dense, expert = layer_params(model, spec)
    head = model.vocab * model.hidden / spec.tp * (1 if model.tied_embeddings else 2)
    shard = ((layers * dense + head) / math.prod(a.size for a in pl.of("fsdp", "ep"))
             + layers * expert / math.prod(a.size for a in pl.of("fsdp")))
    return Params(dense, expert, head, shard)


@dataclass(frozen=True)
class Account:
    """Bytes per chip: ``state``, ``prefetch`` (gathered weights), ``keep`` (activations in
    HBM), ``working`` (the backward's working set) and ``host`` (offloaded, not HBM)."""
    state: float
    prefetch: float
    keep: float
    working: float
    host: float
    host_per_layer: float    # what one layer of one microbatch offloads

    @property
    def total(self) -> float:
        """The HBM bytes (host memory excluded)."""
        return self.state + self.prefetch + self.keep + self.working

    def gib(self) -> dict[str, float]:
        """``train.json``'s ``memory_gib``."""
        return {"weights_grads_optimizer": self.state / GIB,
                "gathered_weights": self.prefetch / GIB, "activations": self.keep / GIB,
                "backward_working_set": self.working / GIB, "host_offload": self.host / GIB}


def account(chip, fwd: list[dict[str, Any]], policy: Remat, spec: ParallelSpec,
            params: Params, layers: int, microbatches: int) -> Account:
    """The chip's HBM and host account; a one-line InputError where it does not fit."""
    sp = spec.tp if spec.sequence_parallel else 1
    in_hbm, on_host = kept_per_layer(fwd, sp, policy)
    live = min(spec.pp, microbatches)              # 1F1B: stage 1 holds pp microbatches
    # The layer being back-propagated has its whole forward live at once (what remat dropped is
    # recomputed for it, what it offloaded is back): one layer's every block output beyond what
    # the policy keeps in HBM. Assumption: the next layer's offloaded tensors, fetched ahead,
    # land in that layer's working set (their buffer is not counted twice).
    acc = Account(state=STATE_BYTES * params.shard,
                  prefetch=2 * (params.dense + params.expert) * WIRE_BYTES,
                  keep=layers * in_hbm * live, working=saved_per_layer(fwd, sp)["none"] - in_hbm,
                  host=layers * on_host * live, host_per_layer=on_host)
    cap = chip.memory.hbm.capacity_gib
    if cap is not None and acc.total > cap * GIB:
        # full already keeps only the block inputs: keeping less means offloading them
        less = ("offload the block inputs (--remat offload:input)" if policy.kind == "full"
                else "use --remat full")
        raise InputError("train", "memory", f"{acc.total / GIB:.1f} GiB per chip",
                         f"does not fit the {cap:g} GiB of HBM by "
                         f"{(acc.total - cap * GIB) / GIB:.1f} GiB; shard more (fsdp/tp/pp), "
                         f"{less} or a smaller batch")
    host_cap = chip.memory.host_gib_per_chip
    if host_cap is not None and acc.host > host_cap * GIB:
        raise InputError("--remat", None, policy.label(), f"offloads {acc.host / GIB:.1f} GiB "
                         f"per chip, which does not fit the {host_cap:g} GiB of host DRAM per "
                         f"chip by {(acc.host - host_cap * GIB) / GIB:.1f} GiB; offload fewer "
                         "tensors")
    return acc


__all__ = ["STATE_BYTES", "Params", "Account", "layer_params", "chip_params", "account"]

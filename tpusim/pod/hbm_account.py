"""What one chip of a training step holds: its share of the parameters, and its HBM (and pinned
host memory) account, checked before anything is simulated.

HBM per chip is the sharded state (``STATE_BYTES`` per parameter: bf16 weight and gradient, fp32
master weight and two Adam moments, sharded over fsdp as ZeRO-3 does) and the activations the
remat policy keeps in HBM, plus the larger of two moments of the step (the peak):

* inside the layers: two layers' gathered weights (the layer running and the one prefetched;
  none where nothing shards them) and the working set of the layer being back-propagated;
* at the loss, between the forward and the backward: the logits and their gradient (bf16, the
  microbatch's tokens x vocabulary / tp each; assumption: both live at once, as the LM head's
  backward reads the gradient while the loss still holds the logits), the gathered LM head (or
  embedding, the larger one matrix) and the last layer's gathered weights, prefetched for its
  backward.

``memory_gib`` names the pieces of the larger moment, so they add up to ``hbm_gib_per_chip``.
What the policy offloads is counted in host memory, not HBM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from .remat import WIRE_BYTES, Remat, kept_per_layer, saved_per_layer
from .sharding import ParallelSpec, Placement

STATE_BYTES = 16          # bf16 weight + bf16 grad + fp32 master + 2 fp32 moments per parameter
GIB = 2 ** 30


@dataclass(frozen=True)
class Params:
    """One chip's parameters before fsdp sharding: ``dense`` and ``expert`` of one layer,
    ``head`` the embedding and LM head (``matrix``: the larger one of them); ``dense_split`` and
    ``expert_split``: the fsdp (and ep, for dense weights and the head) degrees that shard them,
    so that a layer gathers them before it runs where a degree exceeds 1."""
    dense: float
    expert: float
    head: float
    matrix: float
    layers: int
    dense_split: int
    expert_split: int

    @property
    def block(self) -> float:
        """One layer's parameters this chip keeps after fsdp sharding."""
        return self.dense / self.dense_split + self.expert / self.expert_split

    @property
    def head_shard(self) -> float:
        """The embedding's and LM head's parameters this chip keeps after fsdp sharding."""
        return self.head / self.dense_split

    @property
    def shard(self) -> float:
        """Every parameter this chip keeps after fsdp sharding."""
        return self.layers * self.block + self.head_shard

    @property
    def gathers(self) -> bool:
        """Whether fsdp or ep shards anything, so that weights are gathered before they run."""
        return self.dense_split > 1 or self.expert_split > 1

    def layer_gathered(self) -> float:
        """Bytes of one layer's weights gathered (bf16 on the wire), 0 where nothing shards them."""
        return (self.dense * (self.dense_split > 1)
                + self.expert * (self.expert_split > 1)) * WIRE_BYTES


def kv_params(model, spec: ParallelSpec) -> float:
    """One layer's K and V projection parameters on one chip: its kv_heads / tp heads, or one
    head replicated on tp / kv_heads chips where tp exceeds the KV heads (``shard_config``)."""
    return 2 * model.hidden * model.head_dim * max(1, model.kv_heads // spec.tp)


def layer_params(model, spec: ParallelSpec) -> tuple[float, float]:
    """(dense, expert) parameters of one layer on one chip before fsdp sharding."""
    h, hd = model.hidden, model.head_dim
    attn = 2 * h * model.heads * hd / spec.tp + kv_params(model, spec)
    ffn = (3 if model.gated else 2) * h * model.ffn
    if model.moe:
        return attn + h * model.experts, ffn * model.experts / (spec.tp * spec.ep)
    return attn + ffn / spec.tp, 0.0


def chip_params(model, spec: ParallelSpec, pl: Placement, layers: int) -> Params:
    """Dense weights (and the embedding and LM head) are sharded over fsdp and ep, expert
    weights over fsdp (ep already splits the experts). With pp the first stage holds the
    embedding and the last the LM head, one matrix each (tied, each keeps a copy: assumption,
    as Megatron-LM does), so a stage's ``head`` is one matrix."""
    dense, expert = layer_params(model, spec)
    matrix = model.vocab * model.hidden / spec.tp
    heads = 1 if model.tied_embeddings or spec.pp > 1 else 2
    return Params(dense, expert, matrix * heads, matrix, layers,
                  math.prod(a.size for a in pl.of("fsdp", "ep")),
                  math.prod(a.size for a in pl.of("fsdp")))


@dataclass(frozen=True)
class Account:
    """Bytes per chip at the step's HBM peak (module docstring): ``state``, ``prefetch``
    (gathered weights), ``keep`` (activations in HBM), ``working`` (the backward's working set;
    0 when the peak is at the loss), ``logits`` (logits and their gradient; 0 when the peak is
    in the layers) and ``host`` (offloaded, not HBM)."""
    state: float
    prefetch: float
    keep: float
    working: float
    host: float
    host_per_layer: float    # what one layer of one microbatch offloads
    logits: float = 0.0

    @property
    def total(self) -> float:
        """The HBM bytes (host memory excluded)."""
        return self.state + self.prefetch + self.keep + self.working + self.logits

    def gib(self) -> dict[str, float]:
        """``train.json``'s ``memory_gib``."""
        return {"weights_grads_optimizer": self.state / GIB,
                "gathered_weights": self.prefetch / GIB, "activations": self.keep / GIB,
                "backward_working_set": self.working / GIB, "logits": self.logits / GIB,
                "host_offload": self.host / GIB}


def account(chip, fwd: list[dict[str, Any]], policy: Remat, spec: ParallelSpec,
            params: Params, layers: int, microbatches: int, logits: float = 0.0) -> Account:
    """The chip's HBM and host account; a one-line InputError where it does not fit.
    ``logits``: the elements of one microbatch's logits on this chip. With pp, the larger of
    the first stage's (the embedding, min(pp, microbatches) microbatches of activations live
    under 1F1B, no loss) and the last stage's (the LM head and the logits, one microbatch
    live); either not fitting is the error. Its ``host`` is the larger stage's host memory
    (the first's, whose live microbatches offload more)."""
    if spec.pp > 1:
        first = _account(chip, fwd, policy, spec, params, layers, min(spec.pp, microbatches),
                         0.0, loss=False, stage="pp's first stage")
        last = _account(chip, fwd, policy, spec, params, layers, 1, logits,
                        stage="pp's last stage")
        worst = max(first, last, key=lambda a: a.total)
        return replace(worst, host=max(first.host, last.host))
    return _account(chip, fwd, policy, spec, params, layers, 1, logits)


def _account(chip, fwd: list[dict[str, Any]], policy: Remat, spec: ParallelSpec,
             params: Params, layers: int, live: int, logits: float, loss: bool = True,
             stage: str = "") -> Account:
    """One stage's account: ``live`` microbatches' activations kept; ``loss``: whether the
    stage holds the LM head's moment (the gathered head and the logits); ``stage``: its name in
    a refusal."""
    sp = spec.tp if spec.sequence_parallel else 1
    in_hbm, on_host = kept_per_layer(fwd, sp, policy)
    # The layer being back-propagated has its whole forward live at once (what remat dropped is
    # recomputed for it, what it offloaded is back): one layer's every block output beyond what
    # the policy keeps in HBM. Assumption: the next layer's offloaded tensors, fetched ahead,
    # land in that layer's working set (their buffer is not counted twice).
    saved = saved_per_layer(fwd, sp)
    layer = params.layer_gathered()
    working = saved["none"] - in_hbm
    head = params.matrix * WIRE_BYTES if params.gathers and loss else 0.0
    turn = 2 * logits * WIRE_BYTES          # the logits and their gradient
    if 2 * layer + working >= layer + head + turn:      # the peak is inside the layers
        prefetch, turn = 2 * layer, 0.0
    else:                                               # the peak is at the loss
        prefetch, working = layer + head, 0.0
    acc = Account(state=STATE_BYTES * params.shard, prefetch=prefetch, keep=layers * in_hbm * live,
                  working=working, host=layers * on_host * live, host_per_layer=on_host,
                  logits=turn)
    cap = chip.memory.hbm.capacity_gib
    if cap is not None and acc.total > cap * GIB:
        # full keeps only the block inputs: keeping less means offloading them; a policy that
        # keeps no more than full in HBM leaves only sharding and the batch to change
        less = ("offload the block inputs (--remat offload:input), " if policy.kind == "full"
                else "use --remat full, " if in_hbm > saved["full"] else "")
        ways = "fsdp/tp/pp" + ("/ep" if params.expert else "")
        if spec.dp > 1:                  # dp keeps a whole copy of the state per replica
            ways += ", fsdp in place of dp"
        # activations, working set and logits are one microbatch's: more microbatches shrink them
        raise InputError("train", "memory", f"{acc.total / GIB:.1f} GiB per chip"
                         + (f" on {stage}" if stage else ""),
                         f"does not fit the {cap:g} GiB of HBM by "
                         f"{(acc.total - cap * GIB) / GIB:.1f} GiB; shard more ({ways}), "
                         f"{less}or use more --microbatches or a smaller batch")
    host_cap = chip.memory.host_gib_per_chip
    if host_cap is not None and acc.host > host_cap * GIB:
        raise InputError("--remat", None, policy.label(), f"offloads {acc.host / GIB:.1f} GiB "
                         f"per chip, which does not fit the {host_cap:g} GiB of host DRAM per "
                         f"chip by {(acc.host - host_cap * GIB) / GIB:.1f} GiB; offload fewer "
                         "tensors")
    return acc


__all__ = ["STATE_BYTES", "Params", "Account", "layer_params", "kv_params", "chip_params",
           "account"]

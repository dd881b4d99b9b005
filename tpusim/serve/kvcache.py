"""The paged KV cache: fixed-size blocks of tokens, handed out per request (vLLM's PagedAttention).

Capacity (:func:`kv_blocks`) is the chips' HBM minus the weights and the activations of the
largest step, divided by the bytes of one block (``block`` tokens of K and V for every layer and
every KV head a chip holds). A request holds ``ceil(tokens / block)`` blocks; a decode step that
needs a new block when none is free preempts a running request (recompute: its blocks are freed
and its prompt plus generated tokens are prefilled again later). With prefix caching, full blocks
of a shared prefix (same ``prefix`` id, same block index) are kept and reference-counted, so a
later request with that prefix skips their prefill; a cached block nobody holds is evicted
(least recently freed first) when a block is needed.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..errors import InputError
from ..formats import FORMATS


def dtype_bytes(name: str, where: str) -> float:
    if name not in FORMATS:
        from .._input import suggest
        raise InputError(where, None, name, f"unknown dtype{suggest(name, FORMATS)}; allowed: "
                         + "|".join(FORMATS))
    return FORMATS[name].bits / 8


@dataclass(frozen=True)
class KvBudget:
    hbm_bytes: float          # per chip
    weight_bytes: float       # per chip
    activation_bytes: float   # per chip
    block_bytes: float        # per chip, one block
    blocks: int


def kv_blocks(chip, model, tp: int, weight_dtype: str, kv_dtype: str, block: int,
              max_tokens: int, max_seqs: int, hbm_scale: float = 1.0) -> KvBudget:
    """KV blocks the ``tp`` chips hold together (module docstring). Activations (assumption:
    the live buffers of the largest step): ``max_tokens x (3 x hidden + 2 x ffn / tp)`` values in
    the weight dtype plus fp32 logits for ``max_seqs`` x vocab / tp."""
    if not isinstance(block, int) or block < 1:
        raise InputError("--kv-block", None, block, "an integer >= 1 (tokens per KV block)")
    cap = chip.memory.hbm.capacity_gib
    if cap is None:
        raise InputError(chip.name, "memory.hbm.capacity_gib", None,
                         "serving needs the HBM capacity; set it with --set "
                         "memory.hbm.capacity_gib=16")
    hbm = cap * 2**30 * hbm_scale
    wb = dtype_bytes(weight_dtype, "--weights")
    # the shard's own parameters (pod/infer.py): KV heads replicated past tp, norms whole
    from ..pod.sharding import ParallelSpec, shard_config
    weights = shard_config(model, ParallelSpec(tp=tp)).param_count() * wb
    act = (max_tokens * (3 * model.hidden + 2 * model.ffn / tp) * wb
           + max_seqs * model.vocab / tp * 4)
    kvh = -(-model.kv_heads // tp)
    block_bytes = 2 * model.layers * kvh * model.head_dim * dtype_bytes(kv_dtype, "--kv-dtype") \
        * block
    free = hbm - weights - act
    if free < block_bytes:
        where, gib = f"{model.name} on {tp} x {chip.name}", f"{cap * hbm_scale:g} GiB"
        if weights >= hbm:
            raise InputError(where, "HBM", gib, f"weights {weights / 2**30:.3g} GiB per chip do "
                             "not fit; use more chips (--chips, --parallel tp=) or smaller "
                             "--weights")
        if free <= 0:
            raise InputError(where, "HBM", gib, f"weights {weights / 2**30:.3g} GiB + "
                             f"activations {act / 2**30:.3g} GiB per chip (a step of "
                             f"{max_tokens} tokens, logits of {max_seqs} sequences) leave no room "
                             "for a KV block; lower --max-batch or --chunked-prefill, or use "
                             "more chips")
        per_token = block_bytes / block
        raise InputError("--kv-block", None, block, f"a block of {block} tokens needs "
                         f"{block_bytes / 2**30:.3g} GiB per chip and {free / 2**30:.3g} GiB are "
                         f"free after the weights and activations: at most "
                         f"{int(free // per_token)} tokens")
    return KvBudget(hbm, weights, act, block_bytes, int(free // block_bytes))


class BlockManager:
    """Free-block accounting with optional prefix caching (module docstring)."""

    def __init__(self, blocks: int, block: int, prefix_caching: bool = False):
        self.total, self.block, self.prefix_caching = blocks, block, prefix_caching
        self.free = blocks
        self.cached: dict[tuple[str, int], int] = {}       # (prefix, index) -> holders
        self.idle: OrderedDict[tuple[str, int], None] = OrderedDict()   # cached, unheld

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block)

    @property
    def used(self) -> int:
        return self.total - self.free - len(self.idle)

    def available(self) -> int:
        return self.free + len(self.idle)

    def take(self, n: int) -> bool:
        """Reserve ``n`` blocks (evicting idle cached ones if needed); False if impossible."""
        if n > self.available():
            return False
        while self.free < n:
            key, _ = self.idle.popitem(last=False)
            del self.cached[key]
            self.free += 1
        self.free -= n
        return True

    def give(self, n: int) -> None:
        self.free += n
        assert 0 <= self.free <= self.total

    def hit_prefix(self, prefix: str | None, prefix_tokens: int) -> int:
        """Full cached blocks of ``prefix`` at the start, now held by one more request."""
        if not (self.prefix_caching and prefix):
            return 0
        hits = 0
        while (hits + 1) * self.block <= prefix_tokens and (prefix, hits) in self.cached:
            key = (prefix, hits)
            self.cached[key] += 1
            self.idle.pop(key, None)
            hits += 1
        return hits

    def publish_prefix(self, prefix: str | None, prefix_tokens: int, held: int) -> int:
        """After its prefill, a request's full prefix blocks beyond the ``held`` cached ones
        become cached (it keeps holding them); returns how many of its own blocks moved."""
        if not (self.prefix_caching and prefix):
            return 0
        moved = 0
        for i in range(held, prefix_tokens // self.block):
            key = (prefix, i)
            if key in self.cached:       # someone cached it meanwhile: keep our own copy
                break
            self.cached[key] = 1
            moved += 1
        return moved

    def release_prefix(self, prefix: str | None, n: int) -> None:
        """A request holding ``n`` cached prefix blocks lets them go (they stay cached, idle)."""
        for i in range(n):
            key = (prefix, i)
            self.cached[key] -= 1
            if self.cached[key] == 0:
                self.idle[key] = None

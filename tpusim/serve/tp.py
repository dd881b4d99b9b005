"""Tensor parallelism (Megatron-style) for serving: one step on N chips = shard GEMMs + collectives.

With TP = N every chip runs :func:`tpusim.pod.sharding.shard_config` of the model: 1/N of each
block's attention heads and FFN columns (KV heads replicated when fewer than N) and 1/N of the
vocabulary, through the single-chip :class:`~tpusim.generation.StepCostModel`. After each block
the attention and FFN outputs (``tokens x hidden`` activations) are all-reduced over the TP
axes (one all-reduce for parallel-block models), one sums the vocabulary-split embedding's
lookups, partial sums travel in at least bf16, and the vocabulary-split logits of the sampled
tokens are all-gathered, as :func:`tpusim.pod.infer.infer_step` prices a step; the collective
times are :mod:`tpusim.pod.collectives` over the chip config's ICI (``ici`` section) on the
slice :func:`tpusim.pod.topology.make_slice` makes of N chips. Assumption (as pods'): the
collectives do not overlap compute (collective matmuls would hide some).
"""
from __future__ import annotations

from ..errors import InputError
from ..formats import get_format
from ..generation import StepCost, StepCostModel
from ..importers.llm import LlmConfig, get_preset
from ..pod.remat import WIRE_BYTES


class ShardedStepCost(StepCostModel):
    """:class:`StepCostModel` of one chip's shard of a step, plus the step's collectives."""

    def __init__(self, config, model: LlmConfig | str, dtype: str = "bf16", tp: int = 1,
                 format: str | None = None, kv_dtype: str | None = None):
        from ..config import ChipConfig, load_config
        chip = config if isinstance(config, ChipConfig) else load_config(config)
        full = get_preset(model) if isinstance(model, str) else model
        if not isinstance(tp, int) or tp < 1:
            raise InputError("--parallel", "tp", tp, "an integer >= 1")
        self.full, self.tp, self.axes = full, tp, ()
        shard = full
        if tp > 1:
            from ..pod.sharding import ParallelSpec, check_spec, place
            from ..pod.topology import ONE_SLICE, make_slice
            from ..pod.sharding import shard_config
            spec = ParallelSpec(tp=tp)
            check_spec(spec, tp, full, source="--chips")   # serve splits TP over every chip
            sl = make_slice(chip.ici, chip.dcn, chips=tp, source="--chips", beyond=ONE_SLICE)
            self.axes = place(spec, sl).of("tp")
            shard = shard_config(full, spec)
        super().__init__(chip, shard, dtype, format, kv_dtype=kv_dtype)
        # partial sums and logits travel in at least bf16 (as pod/infer.py: int8 accumulates
        # wider and is rescaled before the all-reduce)
        self.elem = max(get_format(dtype).bytes_per_element, WIRE_BYTES)
        self._comm: dict[tuple[int, int], float] = {}

    def collectives_s(self, tokens: int, sampled: int) -> float:
        """All-reduces of ``tokens`` new tokens' activations per block, all-gather of the
        ``sampled`` tokens' logits."""
        if self.tp == 1:
            return 0.0
        key = (tokens, sampled)
        t = self._comm.get(key)
        if t is None:
            t = self._comm[key] = self.reduce_s(tokens) + self.gather_s(sampled)
        return t

    def reduce_s(self, tokens: int) -> float:
        """The blocks' all-reduces of ``tokens`` new tokens' activations (0 without TP)."""
        if self.tp == 1:
            return 0.0
        from ..pod.collectives import all_reduce
        m = self.full
        per_block = 1 if getattr(m, "parallel_block", False) else 2
        # and one summing the vocab-split embedding's lookups, as pod/infer.py
        return (m.layers * per_block + 1) * all_reduce(tokens * m.hidden * self.elem,
                                                       self.axes).total_s

    def gather_s(self, sampled: int) -> float:
        """The all-gather of ``sampled`` tokens' vocabulary-split logits (0 without TP)."""
        if self.tp == 1:
            return 0.0
        from ..pod.collectives import all_gather
        return all_gather(sampled * self.model.vocab * self.tp * self.elem, self.axes).total_s

    def step(self, decode_kv=(), prefill_tokens: int = 0, prefill_kv: int | None = None):
        s = super().step(decode_kv, prefill_tokens, prefill_kv)
        if self.tp == 1:
            return s
        seqs = len(decode_kv) + (1 if prefill_tokens else 0)
        comm = self.collectives_s(len(decode_kv) + prefill_tokens, seqs)
        return StepCost(cycles=s.cycles, latency_s=s.latency_s + comm, energy_j=s.energy_j,
                        hbm_bytes=s.hbm_bytes, macs=s.macs, new_tokens=s.new_tokens)

"""Sharded LLM inference: one prefill or decode step of a tensor- and data-parallel model.

dp replicas each serve ``batch / dp`` sequences; inside a replica tp chips split the attention
heads (KV heads replicated when tp exceeds them), the FFN columns and the vocabulary
(Megatron-style). Each chip runs its shard's trace (``importers/llm.py``) through the single-chip
``simulate`` (prefill attention as the flash kernel of ``pod/train.py``); on the critical path
after it, per block, sit the all-reduces of the attention
output and the FFN output (one for parallel blocks) over the tp axes, and after the LM head an
all-gather of the vocabulary-split logits. Nothing overlaps them: a decode step is a chain of
dependent kernels (assumption: no collective-matmul overlap). Memory per chip: the weight shard
in the run's dtype plus the KV cache of its sequences and KV heads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InputError
from ..formats import get_format
from ..importers.llm import LlmConfig, llm_rows
from ..importers.llm_step_args import step_defaults
from .collectives import all_gather, all_reduce
from .sharding import ParallelSpec, check_spec, place
from .topology import Slice
from .costs import simulate_rows
from .train import flash_attention, shard_config


@dataclass(frozen=True)
class InferResult:
    phase: str
    latency_s: float
    compute_s: float
    collectives_s: float
    tokens_per_s: float
    tokens_per_s_per_chip: float
    hbm_gib_per_chip: float
    weights_gib_per_chip: float
    kv_cache_gib_per_chip: float
    parallel: str
    chips: int
    topology: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def infer_step(chip, model: LlmConfig, sl: Slice, spec: ParallelSpec,
               phase: Literal["prefill", "decode"], batch: int, seq: int | None = None,
               kv_len: int | None = None, dtype: str = "bf16",
               logits: Literal["all", "last"] = "last", too_big: str | None = None,
               source: str = "infer", spec_source: str = "--parallel",
               checked: bool = False) -> InferResult:
    """Latency of one step for ``batch`` sequences over the whole slice (module docstring).
    ``too_big``: what the caller's user can change when the step does not fit HBM (default:
    ``tpusim infer``'s options). ``source``: what a memory error names first (``run`` on a
    trace names the trace file). ``spec_source``: the option a bad spec is blamed on
    (``pod.sharding.spec_source``: ``--chips`` where tp defaulted to the chips). ``checked``:
    the caller has checked the step arguments (``importers.llm_step_args.check_step_args``,
    naming its options), so :func:`llm_rows` does not check them again."""
    check_spec(spec, sl.chips, model, sl.slices, source=spec_source)
    if spec.fsdp > 1 or spec.pp > 1 or spec.ep > 1:
        raise InputError("--parallel", None, spec.label(), "inference shards with tp and dp only")
    if not isinstance(batch, int) or batch < 1 or batch % spec.dp:
        raise InputError("--batch", None, batch, f"must be a positive multiple of dp={spec.dp}")
    pl = place(spec, sl)
    b = batch // spec.dp
    shard = shard_config(model, spec)
    rows = llm_rows(shard, phase, batch=b, seq=seq, kv_len=kv_len, dtype=dtype, logits=logits,
                    checked=checked)
    seq, kv_len = step_defaults(phase, seq, kv_len)    # llm_rows has checked (or its caller)
    if phase == "prefill":      # as in training: a flash kernel, causal tiles skipped
        rows = flash_attention(rows, shard.heads // shard.kv_heads, seq)
    compute = sum(t for t, _ in simulate_rows(chip, rows))

    elem = get_format(dtype, "--dtype", "dtype").bytes_per_element
    tp_axes = pl.of("tp")
    act = b * seq * model.hidden * elem
    per_block = 1 if model.parallel_block else 2
    comm = model.layers * per_block * all_reduce(act, tp_axes).total_s
    head_tok = b if logits == "last" else b * seq
    comm += all_gather(head_tok * shard.vocab * spec.tp * elem, tp_axes).total_s
    latency = compute + comm

    gib = 2 ** 30
    weights = model.param_count() * elem / spec.tp
    kv = 2 * model.layers * shard.kv_heads * model.head_dim * kv_len * b * elem
    total = weights + kv
    cap = chip.memory.hbm.capacity_gib
    if cap is not None and total > cap * gib:
        raise InputError(source, "memory", f"{total / gib:.1f} GiB per chip",
                         f"does not fit the {cap:g} GiB of HBM by {(total - cap * gib) / gib:.1f}"
                         " GiB; " + (too_big or "raise tp (--chips, --parallel tp=), lower "
                                     "--batch or use a narrower --dtype (e.g. int8)"))
    new_tokens = batch * seq
    return InferResult(
        phase=phase, latency_s=latency, compute_s=compute, collectives_s=comm,
        tokens_per_s=new_tokens / latency, tokens_per_s_per_chip=new_tokens / latency / sl.chips,
        hbm_gib_per_chip=total / gib, weights_gib_per_chip=weights / gib,
        kv_cache_gib_per_chip=kv / gib, parallel=spec.label(), chips=sl.chips,
        topology=sl.label())


__all__ = ["InferResult", "infer_step"]

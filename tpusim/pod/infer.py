"""Sharded LLM inference: one prefill or decode step of a tensor- and data-parallel model.

dp replicas each serve ``batch / dp`` sequences; inside a replica tp chips split the attention
heads (KV heads replicated when tp exceeds them), the FFN columns and the vocabulary
(Megatron-style). Each chip runs its shard's trace (``importers/llm.py``) through the single-chip
``simulate`` (prefill attention as the flash kernel of ``pod/train.py``); on the critical path
after it, per block, sit the all-reduces of the attention
output and the FFN output (one for parallel blocks) over the tp axes, and after the LM head an
all-gather of the vocabulary-split logits; before the blocks one all-reduce sums the lookups
of the vocabulary-split embedding. Partial sums and logits go on the wire in the run's dtype,
at least bf16 (an int8 run's int32 partial sums are rescaled to bf16 first: assumption).
Nothing overlaps them: a decode step is a chain of dependent kernels (assumption: no
collective-matmul overlap). Memory per chip: the shard's own weights in the run's dtype (a
tp-th of heads, FFN and vocabulary; KV heads replicated past tp, norms and learned positions
whole) plus the KV cache of its sequences and KV heads in the cache's dtype (``kv_dtype``,
default the run's; attention reads K and V in it).

:meth:`InferResult.schedule` lays the step out in time for ``--trace`` (the Chrome/Perfetto
format of ``tpusim train --trace``, ``pod/schedule_view.py``): the pre-block rows, then each
block's rows in trace order, each taking its row's time over the layers (assumption: every
layer of a row costs the same), the embedding's all-reduce right after its lookup, an
all-reduce before each residual add (Megatron's places: after the attention's output
projection and after the FFN's down projection; a parallel block has one, before its last add),
the rows after the blocks, then the logits all-gather. The compute track waits through each
collective, so its spans tile the step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError
from ..formats import get_format
from ..importers.llm import LlmConfig, llm_rows
from ..importers.llm_step_args import step_defaults
from ..step_trace import check_kv_dtype, kv_operands
from .collectives import all_gather, all_reduce
from .sharding import ParallelSpec, check_spec, place, shard_config
from .topology import Slice
from .costs import simulate_rows
from .flash_blocks import FlashBlocks
from .remat import WIRE_BYTES
from .schedule import BLOCKING, COMPUTE, Schedule, Span
from .train import flash_attention

BLOCK_ROWS = ("attn_norm", "ffn_residual")   # a block's first and last trace rows (llm_rows)
TP_ALL_REDUCE, LOGITS_GATHER = "TP all-reduce", "logits all-gather"


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
    # the per-chip compute by trace row: {"name", "op", "instances", "seconds"}, in trace order
    time_by_op: tuple[dict[str, Any], ...] = ()
    # the critical path's collectives: one tp all-reduce (seconds), how many, the logits gather
    collectives: dict[str, Any] = field(default_factory=dict)
    layers: int = 0
    parallel_block: bool = False
    kv_dtype: str = ""          # the KV cache's format (the run's dtype unless given)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    def schedule(self) -> Schedule:
        """The step laid out in time (module docstring): compute spans per row and layer, the
        collectives on the blocking track with the compute's waits for them."""
        spans: list[Span] = []
        now = 0.0
        waits = {TP_ALL_REDUCE: 0.0, LOGITS_GATHER: 0.0}

        def compute(name: str, dur: float) -> None:
            nonlocal now
            spans.append(Span(COMPUTE, self.phase, name, now, dur, 0))
            now += dur

        def collective(kind: str, name: str, dur: float, nbytes: float) -> None:
            nonlocal now
            if dur <= 0:
                return
            spans.append(Span(BLOCKING, kind, name, now, dur, 0, ici_bytes=nbytes))
            spans.append(Span(COMPUTE, f"wait: {kind}", name, now, dur, 0))
            waits[kind] += dur
            now += dur

        ops = self.time_by_op
        names = [o["name"] for o in ops]
        first, last = names.index(BLOCK_ROWS[0]), names.index(BLOCK_ROWS[1])
        block = ops[first:last + 1]
        adds = [i for i, o in enumerate(block) if o["name"].endswith("_residual")]
        if self.parallel_block:
            adds = adds[-1:]
        tp = self.collectives.get("tp_all_reduce_s", 0.0)
        tp_b = self.collectives.get("tp_all_reduce_bytes", 0.0)   # each chip receives, per call
        for o in ops[:first]:            # the lookups are summed before anything reads them
            compute(o["name"], o["seconds"])
            if o["name"] == "embed":
                collective(TP_ALL_REDUCE, "embedding", tp, tp_b)
        for layer in range(self.layers):
            for i, o in enumerate(block):
                if i in adds:
                    collective(TP_ALL_REDUCE,
                               f"layer {layer} {o['name'].removesuffix('_residual')}", tp, tp_b)
                compute(f"{o['name']} (layer {layer})", o["seconds"] / self.layers)
        for o in ops[last + 1:]:
            compute(o["name"], o["seconds"])
        collective(LOGITS_GATHER, "lm_head", self.collectives.get("logits_all_gather_s", 0.0),
                   self.collectives.get("logits_all_gather_bytes", 0.0))
        return Schedule(step_s=now, compute_s=sum(s.dur for s in spans if s.track == COMPUTE
                                                   and s.kind == self.phase),
                        waits_s={k: v for k, v in waits.items() if v > 0}, spans=spans)


def infer_step(chip, model: LlmConfig, sl: Slice, spec: ParallelSpec,
               phase: Literal["prefill", "decode"], batch: int, seq: int | None = None,
               kv_len: int | None = None, dtype: str = "bf16",
               logits: Literal["all", "last"] = "last", too_big: str | None = None,
               source: str = "infer", spec_source: str = "--parallel",
               checked: bool = False, kv_dtype: str | None = None) -> InferResult:
    """Latency of one step for ``batch`` sequences over the whole slice (module docstring).
    ``too_big``: what the caller's user can change when the step does not fit HBM (default:
    ``tpusim infer``'s options). ``source``: what a memory error names first (``run`` on a
    trace names the trace file). ``spec_source``: the option a bad spec is blamed on
    (``pod.sharding.spec_source``: ``--chips`` where tp defaulted to the chips). ``checked``:
    the caller has checked the step arguments (``importers.llm_step_args.check_step_args``,
    naming its options), so :func:`llm_rows` does not check them again. ``kv_dtype``: the KV
    cache's format (default ``dtype``): its bytes per chip and attention's K/V operands."""
    check_spec(spec, sl.chips, model, sl.slices, source=spec_source)
    if spec.fsdp > 1 or spec.pp > 1 or spec.ep > 1 or spec.sequence_parallel:
        why = ("no sp: a step's all-reduces are priced whole" if spec.sequence_parallel else
               "weights stay whole per tp shard, and a step runs every layer")
        raise InputError("--parallel", None, spec.label(), "inference shards with tp and dp only "
                         f"({why})")
    if not isinstance(batch, int) or batch < 1 or batch % spec.dp:
        raise InputError("--batch", None, batch, f"must be a positive multiple of dp={spec.dp}")
    if dtype not in chip.formats:   # before the shard's trace names its rows in the error
        raise InputError(*(("--dtype", None) if source == "infer" else (source, "dtype")), dtype,
                         f"chip {chip.name!r} runs {'|'.join(chip.formats)}")
    kv_dtype = kv_dtype or dtype
    check_kv_dtype(chip, kv_dtype, dtype)
    pl = place(spec, sl)
    b = batch // spec.dp
    shard = shard_config(model, spec)
    rows = kv_operands(llm_rows(shard, phase, batch=b, seq=seq, kv_len=kv_len, dtype=dtype,
                                logits=logits, checked=checked), dtype, kv_dtype)
    seq, kv_len = step_defaults(phase, seq, kv_len)    # llm_rows has checked (or its caller)
    # HBM before anything is simulated (a sequence too long to fit fails at once)
    elem, gib = get_format(dtype, "--dtype", "dtype").bytes_per_element, 2 ** 30
    # the shard's own parameters: a tp-th of the heads, FFN and vocabulary; replicated KV
    # heads (tp > kv_heads), norms and learned positions whole on every chip
    weights = shard.param_count() * elem
    kv = 2 * model.layers * shard.kv_heads * model.head_dim * kv_len * b \
        * get_format(kv_dtype).bytes_per_element
    total = weights + kv
    cap = chip.memory.hbm.capacity_gib
    if cap is not None and total > cap * gib:
        raise InputError(source, "memory", f"{total / gib:.1f} GiB per chip",
                         f"does not fit the {cap:g} GiB of HBM by {(total - cap * gib) / gib:.1f}"
                         " GiB; " + (too_big or "raise tp (--chips, --parallel tp=), lower "
                                     "--batch or use a narrower --dtype or --kv-dtype "
                                     "(e.g. int8)"))
    if phase == "prefill":      # as in training: a flash kernel (a decoder skips causal tiles)
        rows = flash_attention(rows, shard.heads // shard.kv_heads, seq, causal=model.lm_head,
                               blocks=FlashBlocks.for_seq(seq), cores=chip.array.cores)
    times = simulate_rows(chip, rows)
    compute = sum(t for t, _ in times)

    # Partial sums of a row-parallel matmul and logits travel in at least bf16: an int8 or fp8
    # matmul accumulates wider and is rescaled before the all-reduce (assumption: to bf16).
    wire = max(elem, WIRE_BYTES)
    tp_axes = pl.of("tp")
    act = b * seq * model.hidden * wire
    per_block = 1 if model.parallel_block else 2
    tp_c = all_reduce(act, tp_axes)
    head_tok = b if logits == "last" else b * seq
    gather_c = all_gather(head_tok * shard.vocab * spec.tp * wire, tp_axes)
    tp_ar, gather = tp_c.total_s, gather_c.total_s
    # each block's all-reduces, and one summing the vocab-split embedding's lookups
    n_ar = model.layers * per_block + 1 if tp_ar > 0 else 0
    comm = n_ar * tp_ar + gather
    latency = compute + comm

    new_tokens = batch * seq
    return InferResult(
        phase=phase, latency_s=latency, compute_s=compute, collectives_s=comm,
        tokens_per_s=new_tokens / latency, tokens_per_s_per_chip=new_tokens / latency / sl.chips,
        hbm_gib_per_chip=total / gib, weights_gib_per_chip=weights / gib,
        kv_cache_gib_per_chip=kv / gib, parallel=spec.label(), chips=sl.chips,
        topology=sl.label(),
        time_by_op=tuple({"name": r["name"], "op": r["op"], "instances": r.get("count", 1),
                          "seconds": t} for r, (t, _) in zip(rows, times)),
        collectives={"tp_all_reduce_s": tp_ar, "tp_all_reduces": n_ar,
                     "logits_all_gather_s": gather,
                     # what each chip receives over ICI in one all-reduce and in the gather
                     "tp_all_reduce_bytes": tp_c.ici_bytes,
                     "logits_all_gather_bytes": gather_c.ici_bytes},
        layers=model.layers, parallel_block=model.parallel_block, kv_dtype=kv_dtype)


__all__ = ["InferResult", "infer_step"]

"""Sharding search: every split of the chips into tp, ep, pp, fsdp and dp (across slices dp, or
fsdp spanning them; inside a slice dp with fsdp: hybrid sharding) that divides the model, with
and without sequence parallelism, under each remat policy and microbatch count, priced by
:func:`pod.train.train_step`; the fastest that fit HBM come first. Candidates share shards (the
same tp and ep and per-microbatch batch give the same chip program whatever the dp/fsdp split,
remat or layers per stage), and ``pod/costs.py`` simulates each distinct shard once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from ..importers.llm import LlmConfig
from . import costs
from .dropmoe import check_kernel, parse_moe
from .sharding import ParallelSpec
from .topology import Slice
from .train import REMATS, TrainResult, check_sizes, train_step


@dataclass(frozen=True)
class Candidate:
    spec: ParallelSpec
    remat: str
    microbatches: int
    result: TrainResult


def _divisors(n: int, cap: int) -> list[int]:
    return [d for d in range(1, min(n, cap) + 1) if n % d == 0]


def candidate_specs(model: LlmConfig, sl: Slice, max_tp: int = 64,
                    max_pp: int = 16) -> list[ParallelSpec]:
    """Specs whose degrees multiply to the chips and divide the model: tp, ep and pp, the rest
    split between fsdp and data parallelism inside the slice (hybrid sharding, HSDP), times
    the slices as data parallel over DCN or, where the in-slice dp is no multiple of the
    slices, as fsdp over DCN."""
    per_slice = sl.chips_per_slice
    out = []
    for tp in _divisors(per_slice, max_tp):
        if model.heads % tp or model.ffn % tp or (model.kv_heads % tp and tp % model.kv_heads):
            continue
        for ep in (_divisors(model.experts, per_slice // tp) if model.moe else [1]):
            if (per_slice // tp) % ep:
                continue
            for pp in _divisors(model.layers, min(max_pp, per_slice // (tp * ep))):
                rest = per_slice // (tp * ep * pp)
                if rest * tp * ep * pp != per_slice:
                    continue
                for dp in _divisors(rest, rest):
                    out.append(ParallelSpec(dp=sl.slices * dp, fsdp=rest // dp, tp=tp, pp=pp,
                                            ep=ep))
                    # fsdp across the slices instead (MaxText's dcn_fsdp_parallelism): the
                    # state shards over every chip, the gathers cross DCN; sharding.dcn_kind
                    # gives DCN to fsdp when dp is no multiple of the slices
                    if sl.slices > 1 and dp % sl.slices:
                        out.append(ParallelSpec(dp=dp, fsdp=sl.slices * rest // dp, tp=tp,
                                                pp=pp, ep=ep))
    return out


def microbatch_counts(spec: ParallelSpec, per_chip: int, most: int = 16) -> list[int]:
    """Microbatch counts that divide a chip's sequences: gradient accumulation without pp, and
    with pp at least pp microbatches (fewer leave stages idle beyond the bubble); every divisor
    from pp up to ``most`` x pp (a count that is no doubling of a smaller one, 3 of 6
    sequences, may be the only one whose activations fit)."""
    top = min(per_chip, most * spec.pp)
    return [d for d in range(spec.pp, top + 1) if per_chip % d == 0]


def candidates(model: LlmConfig, sl: Slice, global_batch: int,
               remats: tuple[str, ...] = REMATS,
               microbatches: int | None = None) -> list[tuple[ParallelSpec, str, int]]:
    """(spec, remat, microbatches) layouts the search prices: every spec of
    :func:`candidate_specs` whose replicas divide the batch, with and without sequence
    parallelism when tp > 1, times the remat policies and the microbatch counts
    (``microbatches`` alone where given and it divides the sequences per replica)."""
    out = []
    for spec in candidate_specs(model, sl):
        if global_batch % spec.replicas:
            continue
        per_chip = global_batch // spec.replicas
        specs = [spec, replace(spec, sequence_parallel=True)] if spec.tp > 1 else [spec]
        for sp in specs:
            counts = (microbatch_counts(sp, per_chip) if microbatches is None else
                      [microbatches] if per_chip % microbatches == 0 else [])
            for mb in counts:
                out += [(sp, remat, mb) for remat in remats]
    return out


def _none_divides(model: LlmConfig, sl: Slice, global_batch: int,
                  microbatches: int | None) -> str:
    """Why :func:`candidates` found no layout for ``global_batch`` sequences."""
    specs = [s for s in candidate_specs(model, sl) if global_batch % s.replicas == 0]
    if not specs:
        return (f"--global-batch {global_batch} is not a multiple of any layout's "
                "data-parallel replicas (dp x fsdp x ep)")
    if microbatches is not None:
        return (f"--microbatches {microbatches} divides no layout's sequences per replica "
                f"(e.g. {global_batch // specs[0].replicas} for {specs[0].label()})")
    return (f"--global-batch {global_batch} leaves each layout that divides it (e.g. "
            f"{specs[0].label()}) fewer sequences per replica than its pipeline stages; raise "
            "--global-batch or give --parallel and --microbatches")


def search(chip, model: LlmConfig, sl: Slice, seq: int, global_batch: int, top: int = 5,
           remats: tuple[str, ...] = REMATS, attention: str = "causal",
           stats: dict | None = None, flash=None, moe: str = "megablox",
           microbatches: int | None = None) -> list[Candidate]:
    """The ``top`` fastest layouts of :func:`candidates` that fit, fastest first; InputError if
    none fits. A layout that does not fit HBM is dropped before its shard is simulated
    (``train_step`` checks memory first), and layouts that share a shard share its simulation
    (``pod/costs.py``). ``stats``, if given, receives ``candidates``, ``fit``, ``pruned`` (not
    priced: more microbatches than two that fit, without pp) and ``programs`` (distinct shards
    simulated). ``flash``: the flash kernels' blocks (``train_step``); ``moe``:
    the MoE kernel (``pod/dropmoe.py``), for every layout; ``microbatches``: the one count to
    try (default: :func:`microbatch_counts`)."""
    # the lines train_step gives, not "no sharding fits (...)" after trying every layout
    check_sizes(seq, global_batch, model=model)
    check_kernel(parse_moe(moe), model)
    found: list[Candidate] = []
    why = None
    before = costs.distinct_programs()
    layouts = candidates(model, sl, global_batch, remats, microbatches)
    if not layouts:
        why = _none_divides(model, sl, global_batch, microbatches)
    # Without pp, gradient accumulation only re-gathers the weights per microbatch and shrinks
    # the GEMMs: past the second count that fits a (spec, remat), larger counts are not priced
    # (assumption: a step does not get faster with more microbatches when no bubble shrinks).
    fitted: dict[tuple[ParallelSpec, str], int] = {}
    pruned = 0
    for spec, remat, mb in layouts:
        if spec.pp == 1 and fitted.get((spec, remat), 0) >= 2:
            pruned += 1
            continue
        try:
            r = train_step(chip, model, sl, spec, seq, global_batch, remat, mb, attention,
                           flash=flash, moe=moe)
        except InputError as exc:
            if exc.source == "--remat":   # a policy naming no block row: no layout helps
                raise
            why = str(exc)
            continue
        found.append(Candidate(spec, r.remat, mb, r))
        fitted[spec, remat] = fitted.get((spec, remat), 0) + 1
    if stats is not None:
        stats.update(candidates=len(layouts), fit=len(found), pruned=pruned,
                     programs=max(0, costs.distinct_programs() - before))
    if not found:
        raise InputError("train", "search", f"{model.name} on {sl.label()}",
                         f"no sharding fits ({why or 'no candidate divides the model'})")
    found.sort(key=lambda c: c.result.step_s)
    return found[:top]


__all__ = ["Candidate", "candidate_specs", "candidates", "microbatch_counts", "search"]

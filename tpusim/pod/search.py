"""Sharding search: every split of the chips into tp, ep, pp, fsdp and dp (dp across slices, and
inside a slice with fsdp: hybrid sharding) that divides the model, under each remat policy, priced by :func:`pod.train.train_step`; the fastest
that fit HBM come first. Candidates share shards (the same tp/ep/pp and per-chip batch give the
same chip program), and ``train_step`` simulates each distinct shard once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..importers.llm import LlmConfig
from .sharding import ParallelSpec
from .topology import Slice
from .train import REMATS, TrainResult, train_step


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
    the slices as data parallel over DCN."""
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
    return out


def search(chip, model: LlmConfig, sl: Slice, seq: int, global_batch: int, top: int = 5,
           remats: tuple[str, ...] = REMATS, attention: str = "causal") -> list[Candidate]:
    """The ``top`` fastest (spec, remat) that fit, fastest first; InputError if none fits."""
    found: list[Candidate] = []
    why = None
    for spec in candidate_specs(model, sl):
        per_chip = global_batch // spec.replicas if global_batch % spec.replicas == 0 else 0
        if per_chip == 0:
            why = why or f"--global-batch {global_batch} is not a multiple of {spec.replicas}"
            continue
        mbs = [m for m in (spec.pp, 2 * spec.pp, 4 * spec.pp) if per_chip % m == 0] \
            if spec.pp > 1 else [1]
        for mb in mbs[:1] or []:
            for remat in remats:
                try:
                    r = train_step(chip, model, sl, spec, seq, global_batch, remat, mb,
                                   attention)
                except InputError as exc:
                    why = str(exc)
                    continue
                found.append(Candidate(spec, remat, mb, r))
    if not found:
        raise InputError("train", "search", f"{model.name} on {sl.label()}",
                         f"no sharding fits ({why or 'no candidate divides the model'})")
    found.sort(key=lambda c: c.result.step_s)
    return found[:top]


__all__ = ["Candidate", "candidate_specs", "search"]

"""Parallelism specs and their placement on a slice's axes.

A spec gives the degree of each kind of parallelism; their product is the number of chips:

* ``dp``: data parallel (whole model per replica; gradients all-reduced);
* ``fsdp``: fully sharded data parallel, ZeRO-3 (weights all-gathered per layer, gradients
  reduce-scattered; optimizer state sharded);
* ``tp``: tensor parallel (attention heads and FFN columns split; an all-reduce, or with
  ``sequence_parallel`` an all-gather plus a reduce-scatter, per block);
* ``pp``: pipeline parallel (layers split into stages; activations sent stage to stage);
* ``ep``: expert parallel (MoE experts split; tokens all-to-all'd to their experts).

:func:`check_spec` rejects, in one line each, degrees that do not multiply to the chips or do not
divide the model (heads and FFN width for tp, experts for ep, layers for pp, slices for the kind
that spans them).

Across slices (:func:`dcn_kind`): ``dp`` takes the DCN axis when its degree is a multiple of the
slices (slices are data parallel, as before); otherwise ``fsdp`` does when its degree is, so
``fsdp=128,tp=4`` on two 256-chip slices is MaxText's ``dcn_fsdp_parallelism: 2,
ici_fsdp_parallelism: 64`` (each layer's all-gather and reduce-scatter span DCN and ICI). The
degrees stay totals, as a user counts them; no new keyword is needed, and the one layout this
rule cannot name (dp and fsdp both multiples of the slices, fsdp over DCN) is HSDP turned inside
out, which no public recipe uses.

:func:`place` lays the degrees onto the slice's physical axes the way mesh builders do: the DCN
axis goes first to the kind above, then ICI axes are handed out in the order tp, ep, fsdp, dp,
pp, so the chattiest kind gets the nearest chips. A degree that does not fill an axis
takes a factor of it: the first factor taken from an axis is a contiguous run of chips (a line: it
has no wraparound of its own); a later factor strides over the earlier ones, so each of its hops
crosses ``stride`` links that ``stride`` groups share at once: bandwidth / stride per group,
latency x stride per hop, and a ring only if the axis wraps and the factor completes it (a
pair that completes it, half the ring apart, uses both ways round: a line at twice that bandwidth).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import InputError
from .topology import Axis, Slice

if TYPE_CHECKING:  # pragma: no cover
    from ..importers.llm import LlmConfig

KINDS = ("dp", "fsdp", "tp", "pp", "ep")
_ICI_ORDER = ("tp", "ep", "fsdp", "dp", "pp")


@dataclass(frozen=True)
class ParallelSpec:
    dp: int = 1
    fsdp: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    sequence_parallel: bool = False

    @property
    def chips(self) -> int:
        return self.dp * self.fsdp * self.tp * self.pp * self.ep

    @property
    def replicas(self) -> int:
        """Chips that see different data: the batch is split dp x fsdp (x ep: experts share
        the data axes' chips, each with its own tokens)."""
        return self.dp * self.fsdp * self.ep

    def label(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in KINDS if getattr(self, k) > 1]
        if self.sequence_parallel:
            parts.append("sp")
        return ",".join(parts) or "dp=1"


def parse_spec(text: str, source: str = "--parallel") -> ParallelSpec:
    """``"fsdp=16,tp=4"`` (``sp`` alone switches sequence parallelism on) -> ParallelSpec."""
    got: dict[str, object] = {}
    for item in (p.strip().lower() for p in str(text).split(",")):   # FSDP=8,SP as fsdp=8,sp
        if not item:       # 'fsdp=8,': a stray comma would name a second, different layout
            raise InputError(source, None, text, "an empty item; expected KIND=DEGREE items "
                             "joined by commas, e.g. fsdp=16,tp=4")
        if item.startswith("sp=") and item not in ("sp=1", "sp=true"):
            raise InputError(source, "sp", item, "sp takes no degree: give sp alone (sequence "
                             "parallelism over the tp chips)")
        if item in ("sp", "sp=1", "sp=true"):
            if "sequence_parallel" in got:      # as fsdp=2,fsdp=2: a repeat is a typo
                raise InputError(source, "sp", item, "given twice")
            got["sequence_parallel"] = True
            continue
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or key not in KINDS:
            raise InputError(source, None, item, "expected KIND=DEGREE with KIND one of "
                             + "|".join(KINDS) + " (or sp), e.g. fsdp=16,tp=4")
        if key in got:
            raise InputError(source, key, item, "given twice")
        try:
            degree = int(val)
        except ValueError:
            degree = 0
        if degree < 1:
            raise InputError(source, key, val, "must be a positive integer")
        got[key] = degree
    if not got:
        raise InputError(source, None, text, "give at least one degree, e.g. fsdp=16,tp=4")
    return ParallelSpec(**got)


def dcn_kind(spec: ParallelSpec, slices: int) -> str | None:
    """The kind whose collectives cross the DCN between ``slices`` slices (module docstring):
    ``dp`` if its degree is a multiple of them, else ``fsdp`` if its degree is, else None (one
    slice: None)."""
    if slices <= 1:
        return None
    for kind in ("dp", "fsdp"):
        if getattr(spec, kind) % slices == 0:
            return kind
    return None


def check_spec(spec: ParallelSpec, chips: int, model: "LlmConfig | None" = None,
               slices: int = 1, source: str = "--parallel") -> None:
    """One-line InputError unless the spec fits ``chips`` chips and ``model``'s dimensions."""
    if spec.sequence_parallel and spec.tp == 1:   # as ep on a dense model: nothing to split over
        raise InputError(source, "sp", spec.label(), "sequence parallelism splits activations "
                         "over tp; it needs tp > 1")
    if spec.chips != chips:
        raise InputError(source, None, spec.label(), f"degrees multiply to {spec.chips} "
                         f"chip{'s' if spec.chips != 1 else ''}; "
                         f"the slice{'s have' if slices > 1 else ' has'} {chips}")
    if slices > 1 and dcn_kind(spec, slices) is None:
        raise InputError(source, None, spec.label(), f"dp or fsdp must be a multiple of "
                         f"--slices={slices} (the DCN between slices goes to dp, else to fsdp)")
    if model is None:
        return
    m = model
    if m.heads % spec.tp:
        raise InputError(source, "tp", spec.tp, f"must divide the {m.heads} attention heads "
                         f"of {m.name}")
    if m.kv_heads % spec.tp and spec.tp % m.kv_heads:
        raise InputError(source, "tp", spec.tp, f"must divide, or be a multiple of, the "
                         f"{m.kv_heads} KV heads of {m.name}")
    if m.ffn % spec.tp:
        raise InputError(source, "tp", spec.tp, f"must divide the FFN width {m.ffn} of {m.name}")
    if spec.ep > 1 and not m.moe:
        raise InputError(source, "ep", spec.ep, f"{m.name} has no experts (dense model)")
    if m.moe and m.experts % spec.ep:
        raise InputError(source, "ep", spec.ep, f"must divide the {m.experts} experts of "
                         f"{m.name}")
    if m.layers % spec.pp:
        raise InputError(source, "pp", spec.pp, f"must divide the {m.layers} layers of {m.name}")


def spec_source(parallel: str | None, chips: int | None, topology: str | None = None) -> str:
    """The option an error about the parallel spec names: ``--parallel`` when given, else the
    option that sized the slice whose chips tp defaults to (``serve`` names ``--chips`` too)."""
    if parallel:
        return "--parallel"
    if chips is not None:
        return "--chips"
    return "--topology" if topology else "--chips (not given: tp over the config's slice)"


@dataclass(frozen=True)
class Placement:
    """The axes each kind of parallelism runs its collectives over."""

    spec: ParallelSpec
    axes: dict[str, tuple[Axis, ...]]

    def of(self, *kinds: str) -> tuple[Axis, ...]:
        return tuple(ax for k in kinds for ax in self.axes.get(k, ()))


def shard_config(model: "LlmConfig", spec: ParallelSpec) -> "LlmConfig":
    """The model one chip runs: heads, KV heads, FFN and vocabulary split tp ways (KV heads
    replicated when tp exceeds them), experts ep ways (``expert_shards``), layers pp ways."""
    kv = max(1, model.kv_heads // spec.tp)
    return replace(model, name=f"{model.name}[{spec.label()}]", heads=model.heads // spec.tp,
                   kv_heads=kv, head_size=model.head_dim, ffn=model.ffn // spec.tp,
                   vocab=-(-model.vocab // spec.tp), layers=model.layers // spec.pp,
                   expert_shards=spec.ep)


def _factor_axis(base: Axis, wraps: bool, size: int, stride: int, total: int, name: str) -> Axis:
    """A factor of ``size`` chips taken from a physical axis of ``total`` chips, whose earlier
    factors multiply to ``stride`` (see the module docstring)."""
    if size == total:
        return Axis(size, base.kind, base.bandwidth_bytes_per_s, base.hop_latency_s, name)
    if stride == 1:
        return Axis(size, "line", base.bandwidth_bytes_per_s, base.hop_latency_s, name)
    closes = wraps and stride * size == total
    if closes and size == 2:
        # a pair half the ring apart: two disjoint paths of ``stride`` hops, one each way round
        # (a 2-ring would be priced as a line, one direction only)
        return Axis(2, "line", 2 * base.bandwidth_bytes_per_s / stride,
                    base.hop_latency_s * stride, name)
    return Axis(size, "ring" if closes else "line", base.bandwidth_bytes_per_s / stride,
                base.hop_latency_s * stride, name)


def leading_group(axes: tuple[Axis, ...], size: int) -> tuple[Axis, ...]:
    """The axes of ``size`` neighbouring ranks of a group laid on ``axes`` (the first axis the
    fastest-varying rank, as :func:`place` lays factors): axis by axis the greatest common
    factor of what is left and the axis, the whole axis or its first chips (a line). Where the
    ranks would wrap onto a second row (6 of a 4 x 3) this is the nearest rectangle (2 x 3)."""
    out, left = [], size
    for ax in axes:
        f = math.gcd(left, ax.size)
        if f > 1:
            out.append(ax if f == ax.size else
                       Axis(f, "line", ax.bandwidth_bytes_per_s, ax.hop_latency_s, ax.name))
            left //= f
    return tuple(out)


def place(spec: ParallelSpec, sl: Slice, source: str = "--parallel") -> Placement:
    """Lay ``spec`` onto ``sl``'s axes (module docstring). When the degrees multiply to the
    chips this always succeeds: each kind takes, axis by axis, the greatest common factor of
    what it still needs and what the axis has left, so every prime factor finds a home."""
    check_spec(spec, sl.chips, slices=sl.slices, source=source)
    out: dict[str, list[Axis]] = {k: [] for k in KINDS}
    left = {k: getattr(spec, k) for k in KINDS}
    across = dcn_kind(spec, sl.slices)
    if across is not None:
        out[across].append(sl.dcn_axis())
        left[across] //= sl.slices
    remaining = list(sl.shape)          # chips of each physical axis not yet handed out
    used = [1] * len(sl.shape)          # product of the factors already taken from each axis
    phys = sl.axes
    for kind in _ICI_ORDER:
        for i in range(len(remaining)):
            f = math.gcd(left[kind], remaining[i])
            if f > 1:
                out[kind].append(_factor_axis(phys[i], sl.wrap[i], f, used[i], sl.shape[i],
                                              f"{kind}:{phys[i].name}"))
                left[kind] //= f
                remaining[i] //= f
                used[i] *= f
    return Placement(spec, {k: tuple(v) for k, v in out.items()})


__all__ = ["ParallelSpec", "Placement", "KINDS", "parse_spec", "check_spec", "dcn_kind", "place",
           "leading_group", "spec_source", "shard_config"]

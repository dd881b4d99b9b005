"""Collectives over a slice's axes: closed-form time of all-gather, reduce-scatter, all-reduce,
all-to-all and permute, with a latency and a bandwidth term (the alpha-beta model).

One axis of ``N`` chips, ``b`` = one-way bandwidth per direction of the axis (links per direction x
link bandwidth), ``a`` = per-hop latency, ``D`` = bytes per chip (the *gathered* array for
all-gather, the *input* array for reduce-scatter and all-reduce, the local buffer for all-to-all,
the message for permute). Time = steps x a + transfer. Rings are bidirectional, as TPU runtimes run
them: half the data goes each way round (jax-ml scaling-book, sharding chapter).

=================  ===================================  ===========================  ==========
collective         ring (wraparound)                    line (no wraparound)         steps r/l
=================  ===================================  ===========================  ==========
all-gather         (N-1)/N x D / (2b)                   (N-1)/N x D / b              ceil((N-1)/2) / N-1
reduce-scatter     same as all-gather                   same as all-gather           same
all-reduce         2 x all-gather (reduce-scatter, then all-gather)                  2 x
all-to-all         c_ring(N) x D/N / b                  floor(N^2/4) x D/N / b       floor(N/2) / N-1
permute (shift k)  h x D / b, h = min(k, N-k); k = N/2: /2 min(k, N-k) x D / b      h / k
=================  ===================================  ===========================  ==========

Derivations. All-gather on a ring: each chip's shard D/N must reach the other N-1 chips; sending
half of them clockwise and half counter-clockwise puts (N-1)/2 shards on every link direction, so
(N-1)/2 x D/N / b; the farthest shard travels ceil((N-1)/2) hops. On a line the link next to an end
carries N-1 shards in one direction. All-to-all: chip i sends D/N to each chip; on a ring a chunk
for distance d rides d links, the shortest way round (distance N/2 split between both ways), so
each link direction carries c_ring(N) = N^2/8 chunks (N even) or (N^2-1)/8 (N odd): a quarter of an
all-gather of the same shards, as the scaling-book says. On a line the middle link carries
(N/2)(N/2) chunks. Permute: every chip sends to the chip k ahead at once, so each link direction on
the route carries h messages; on a ring, half the ring round (k = N/2) both ways are as short, so
half the message goes each way; on a line the shift is not cyclic (the last k chips send nothing),
so a link carries at most min(k, N-k) messages, over k hops. The DCN between slices is a
``switch`` axis: a chip's NIC bounds it, so all-gather and reduce-scatter cost (N-1)/N x D / b
over N-1 ring steps, all-to-all the same bytes in one step, permute D / b.

Several axes: a collective over axes (X, Y, ...) runs as per-axis phases. *Sequential*: one axis
after the other (all-gather grows the data each phase, reduce-scatter shrinks it; all-reduce is a
reduce-scatter over the axes then an all-gather back). *Concurrent*: the data is cut into one part
per axis and part j runs the phases in the order rotated by j, so at every step each axis carries
exactly one part and all links work at once (how XLA uses every torus axis). A step lasts as long
as its slowest part. The time is the faster schedule over all axis orders; on m equal wrapped axes
of P chips in all the concurrent all-gather costs (P-1)/P x D / (2 m b), the scaling-book's
V / (W_ici x n_axes). *Hierarchical* (DCN and ICI axes mixed, as fsdp across slices has them):
the DCN axes run as their own collective on the data each chip holds across slices, the ICI
axes as theirs with its fastest schedule (concurrent included): an all-gather gathers the
1/P_ici shard over DCN first, then over ICI; a reduce-scatter reduces over ICI first and sends
only the 1/P_ici part over DCN; an all-reduce is the ICI reduce-scatter, the DCN all-reduce of
the part, the ICI all-gather. Over one DCN axis of K slices and ICI of P_ici chips (P = K P_ici,
b_d the DCN bandwidth) the DCN term is (K-1)/K x D / (P_ici b_d) where DCN last (first, for the
reduce-scatter) would cost (K-1)/K x D / b_d: gathering over DCN first wins by P_ici x on the DCN
term, at the price of the ICI phases' carrying all D; for K = 2 on one ring of N chips the other
order loses (N-1)/N x D/2 x (1/b_d - 1/(2b)), positive whenever b_d < 2b, as on every TPU.
Assumptions, one each: latency and transfer add (the scaling-book takes their max; adding is the
Hockney model and never optimistic); the reduction arithmetic of reduce-scatter hides under link
time; a phase on one axis does not slow another axis' links; a hierarchical schedule's DCN and
ICI parts run one after the other (no pipelining of chunks between them: never optimistic); an
all-reduce is always a reduce-scatter then an all-gather (no one-shot variant for small
messages, which halves the hops: pessimistic for decode's all-reduces, 14.6 against 9.3 us for
16 KB over a v5e line of 8); a concurrent schedule splits the data evenly over its axis orders
(on unequal axes an uneven split is faster: v5e 8x16 all-gather 0.47 against about 0.34 D/b).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Iterable, Literal

from ..errors import InputError
from .topology import Axis

Kind = Literal["all_gather", "reduce_scatter", "all_reduce", "all_to_all", "permute"]
KINDS: tuple[str, ...] = ("all_gather", "reduce_scatter", "all_reduce", "all_to_all", "permute")


@dataclass(frozen=True)
class Phase:
    """One step of a schedule: the axes it uses, its latency and transfer terms and the bytes
    each chip receives in it over ICI and over DCN (:func:`axis_bytes`)."""

    axes: tuple[str, ...]
    latency_s: float
    transfer_s: float
    ici_bytes: float = 0.0
    dcn_bytes: float = 0.0


@dataclass(frozen=True)
class Cost:
    """Time of one collective: ``latency_s + transfer_s``, with the schedule's phases."""

    kind: str
    nbytes: float
    latency_s: float
    transfer_s: float
    schedule: str = "none"
    phases: tuple[Phase, ...] = ()

    @property
    def total_s(self) -> float:
        return self.latency_s + self.transfer_s

    # cached: a Cost is shared (the schedules are memoised) and read by every step priced
    @cached_property
    def ici_bytes(self) -> float:
        """Bytes each chip receives over ICI links in the whole collective."""
        return sum(p.ici_bytes for p in self.phases)

    @cached_property
    def dcn_bytes(self) -> float:
        """Bytes each chip receives over DCN (its NIC) in the whole collective."""
        return sum(p.dcn_bytes for p in self.phases)


ZERO = Cost("none", 0.0, 0.0, 0.0)


def axis_time(kind: str, axis: Axis, nbytes: float, shift: int = 1) -> tuple[float, float]:
    """(latency_s, transfer_s) of one collective on one axis (the table in the docstring)."""
    n, b, a = axis.size, axis.bandwidth_bytes_per_s, axis.hop_latency_s
    if n <= 1 or nbytes <= 0:
        return 0.0, 0.0
    ring = axis.kind == "ring" and n > 2
    if kind in ("all_gather", "reduce_scatter"):
        frac = (n - 1) / n * nbytes
        if ring:
            return math.ceil((n - 1) / 2) * a, frac / (2 * b)
        return (n - 1) * a, frac / b
    if kind == "all_reduce":
        lat, tr = axis_time("all_gather", axis, nbytes)
        return 2 * lat, 2 * tr
    if kind == "all_to_all":
        chunk = nbytes / n
        if axis.kind == "switch":
            return a, (n - 1) * chunk / b
        if ring:
            load = n * n / 8 if n % 2 == 0 else (n * n - 1) / 8
            return (n // 2) * a, load * chunk / b
        return (n - 1) * a, (n * n // 4) * chunk / b
    if kind == "permute":
        if not 1 <= shift < n:
            raise InputError("permute", "shift", shift, f"must be in 1..{n - 1} on an axis of {n}")
        if axis.kind == "switch":
            return a, nbytes / b
        if not ring:                        # not cyclic: only the first n - shift chips send
            return shift * a, min(shift, n - shift) * nbytes / b
        hops = min(shift, n - shift)
        both = 2 if 2 * shift == n else 1   # half the ring round: half each way
        return hops * a, hops * nbytes / (both * b)
    raise InputError("collective", "kind", kind, "allowed: " + "|".join(KINDS))


def axis_bytes(kind: str, axis: Axis, nbytes: float) -> float:
    """Bytes each chip receives in one collective on one axis of N chips (``nbytes`` as in
    :func:`axis_time`): what it lacks of the gathered array, (N-1)/N x D, for all-gather; the
    N-1 partial chunks it reduces, (N-1)/N x D, for reduce-scatter; both for all-reduce; the
    N-1 chunks of D/N addressed to it for all-to-all; the message for permute. Routing along the
    axis does not change these (a chunk forwarded over several hops of it is received once where
    it ends). Over several axes each axis is its own phase: an all-to-all's phase on a later
    axis forwards chunks the chip received in an earlier one, so they count once per axis."""
    n = axis.size
    if n <= 1 or nbytes <= 0:
        return 0.0
    if kind == "permute":
        return float(nbytes)
    share = (n - 1) / n * nbytes
    return 2 * share if kind == "all_reduce" else share


def _phase(axes: tuple[Axis, ...], lat: float, tr: float,
           moved: list[tuple[str, Axis, float]]) -> Phase:
    """A :class:`Phase` over ``axes`` receiving ``moved`` ((kind, axis, bytes) per part)."""
    got = [(ax.kind == "switch", axis_bytes(k, ax, d)) for k, ax, d in moved]
    return Phase(tuple(ax.name for ax in axes), lat, tr,
                 sum(b for dcn, b in got if not dcn), sum(b for dcn, b in got if dcn))


def _as_axes(axes: Axis | Iterable[Axis]) -> tuple[Axis, ...]:
    if isinstance(axes, Axis):
        axes = (axes,)
    return tuple(ax for ax in axes if ax.size > 1)


def _steps(kind: str, order: tuple[Axis, ...], nbytes: float) -> list[tuple[Axis, float, str]]:
    """(axis, bytes per chip, per-axis kind) for each phase of ``kind`` in axis ``order``."""
    p = math.prod(ax.size for ax in order)
    if kind == "all_gather":
        out, grown = [], nbytes / p
        for ax in order:
            grown *= ax.size
            out.append((ax, grown, "all_gather"))
        return out
    if kind == "reduce_scatter":
        out, left = [], nbytes
        for ax in order:
            out.append((ax, left, "reduce_scatter"))
            left /= ax.size
        return out
    if kind == "all_reduce":
        rs = _steps("reduce_scatter", order, nbytes)
        return rs + [(ax, d, "all_gather") for ax, d, _ in reversed(rs)]
    if kind == "all_to_all":
        return [(ax, nbytes, "all_to_all") for ax in order]
    raise InputError("collective", "kind", kind, "allowed: " + "|".join(KINDS[:4]))


def _sequential(kind: str, order: tuple[Axis, ...], nbytes: float) -> Cost:
    phases = []
    for ax, d, k in _steps(kind, order, nbytes):
        lat, tr = axis_time(k, ax, d)
        phases.append(_phase((ax,), lat, tr, [(k, ax, d)]))
    return Cost(kind, nbytes, sum(p.latency_s for p in phases),
                sum(p.transfer_s for p in phases), "sequential", tuple(phases))


def _concurrent(kind: str, order: tuple[Axis, ...], nbytes: float) -> Cost:
    m = len(order)
    parts = [_steps(kind, order[j:] + order[:j], nbytes / m) for j in range(m)]
    phases = []
    for s in range(len(parts[0])):
        times = [axis_time(k, ax, d) for ax, d, k in (part[s] for part in parts)]
        # A step lasts as long as its slowest part: charge that part's latency and transfer.
        lat, tr = max(times, key=lambda t: t[0] + t[1])
        step = [part[s] for part in parts]
        phases.append(_phase(tuple(ax for ax, _, _ in step), lat, tr,
                             [(k, ax, d) for ax, d, k in step]))
    lat = sum(p.latency_s for p in phases)
    tr = sum(p.transfer_s for p in phases)
    return Cost(kind, nbytes, lat, tr, "concurrent", tuple(phases))


def _chain(kind: str, nbytes: float, parts: list[Cost]) -> Cost:
    """Collectives run one after another, as one cost."""
    phases = tuple(ph for c in parts for ph in c.phases)
    return Cost(kind, nbytes, sum(c.latency_s for c in parts), sum(c.transfer_s for c in parts),
                "hierarchical", phases)


def _hierarchical(kind: str, axes: tuple[Axis, ...], nbytes: float) -> Cost | None:
    """DCN outside ICI: the switch axes as their own collective on the small data, the ICI
    axes with their fastest schedule (concurrent included) on the large (module docstring)."""
    dcn = tuple(ax for ax in axes if ax.kind == "switch")
    ici = tuple(ax for ax in axes if ax.kind != "switch")
    if not dcn or not ici or kind == "all_to_all":
        return None
    small = nbytes / math.prod(ax.size for ax in ici)   # what each chip holds across DCN
    if kind == "all_gather":
        return _chain(kind, nbytes, [_best(kind, dcn, small), _best(kind, ici, nbytes)])
    if kind == "reduce_scatter":
        return _chain(kind, nbytes, [_best(kind, ici, nbytes), _best(kind, dcn, small)])
    return _chain(kind, nbytes, [_best("reduce_scatter", ici, nbytes),
                                 _best("all_reduce", dcn, small),
                                 _best("all_gather", ici, nbytes)])


@lru_cache(maxsize=65536)
def _best(kind: str, axes: tuple[Axis, ...], nbytes: float) -> Cost:
    best: Cost | None = None
    for order in itertools.permutations(axes):
        cands = [_sequential(kind, order, nbytes)]
        if len(order) > 1:
            cands.append(_concurrent(kind, order, nbytes))
        for c in cands:
            if best is None or c.total_s < best.total_s:
                best = c
    nested = _hierarchical(kind, axes, nbytes)
    if nested is not None and nested.total_s <= best.total_s:   # a tie: name the DCN order
        best = nested
    return best


def collective(kind: str, nbytes: float, axes: Axis | Iterable[Axis]) -> Cost:
    """Time of ``kind`` over ``axes`` for ``nbytes`` per chip (see the module docstring for what
    ``nbytes`` means for each kind): the fastest per-axis schedule."""
    if kind not in KINDS[:4]:
        raise InputError("collective", "kind", kind, "allowed: " + "|".join(KINDS[:4]))
    if not isinstance(nbytes, (int, float)) or nbytes < 0 or math.isnan(nbytes):
        raise InputError("collective", "bytes", nbytes, "must be a number >= 0")
    axes = _as_axes(axes)
    if not axes or nbytes == 0:
        return Cost(kind, float(nbytes), 0.0, 0.0)
    return _best(kind, axes, float(nbytes))


def all_gather(nbytes: float, axes: Axis | Iterable[Axis]) -> Cost:
    """Every chip ends with the whole ``nbytes`` array, starting from its 1/P shard."""
    return collective("all_gather", nbytes, axes)


def reduce_scatter(nbytes: float, axes: Axis | Iterable[Axis]) -> Cost:
    """Every chip holds an ``nbytes`` partial sum and ends with its reduced 1/P shard."""
    return collective("reduce_scatter", nbytes, axes)


def all_reduce(nbytes: float, axes: Axis | Iterable[Axis]) -> Cost:
    """Every chip holds an ``nbytes`` partial sum and ends with the whole sum."""
    return collective("all_reduce", nbytes, axes)


def all_to_all(nbytes: float, axes: Axis | Iterable[Axis]) -> Cost:
    """Every chip sends 1/P of its ``nbytes`` buffer to each chip (MoE dispatch, resharding)."""
    return collective("all_to_all", nbytes, axes)


def permute(nbytes: float, axis: Axis, shift: int = 1) -> Cost:
    """Every chip sends ``nbytes`` to the chip ``shift`` ahead on ``axis`` (pipeline stages)."""
    if not isinstance(nbytes, (int, float)) or nbytes < 0:
        raise InputError("permute", "bytes", nbytes, "must be a number >= 0")
    lat, tr = axis_time("permute", axis, nbytes, shift) if axis.size > 1 else (0.0, 0.0)
    return Cost("permute", float(nbytes), lat, tr, "sequential",
                (_phase((axis,), lat, tr, [("permute", axis, nbytes)]),))


__all__ = ["Cost", "Phase", "KINDS", "axis_time", "axis_bytes", "collective", "all_gather",
           "reduce_scatter", "all_reduce", "all_to_all", "permute"]

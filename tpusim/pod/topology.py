"""Interconnect of a TPU slice: the ICI torus (or mesh, or ring) and the DCN between slices.

A *slice* is a set of chips joined by ICI links into a 1-D ring or a 2-/3-D torus or mesh. Every
chip links to its two neighbours along each axis; ``links_per_chip / (2 * dims)`` links run in each
direction of an axis, each carrying ``link_bandwidth_bytes_per_s`` one way (links are full duplex).
An axis has a *wraparound* link (it is a ring, not a line) on a torus when its size is a multiple
of ``wrap_multiple`` (v5e/v6e: only a full axis of 16), always on a ``ring``, never on a
``mesh``; with ``wrap_rule: cube`` (TPU v4/v5p, whose wraps are closed by optical switches that
join whole 4x4x4 cubes) every axis wraps when the slice is whole cubes, every axis a multiple of
``wrap_multiple`` on all ``dims`` axes, and none does otherwise (a 2x2x4 or 2x4x4 slice has no
wraparound: scaling-book, TPUs chapter). Axes of one or two chips are lines:
two chips have one link between them however they are wired (assumption). Slices talk to each
other over the data-centre network (DCN) at ``dcn.bandwidth_bytes_per_s`` per chip, each way.

The chip config carries these as the optional ``ici`` and ``dcn`` sections (:class:`IciConfig`,
:class:`DcnConfig`); :func:`make_slice` turns them and a shape (``"16x16"``, ``"4x4x8"``) into a
:class:`Slice` whose :class:`Axis` objects the collectives (``pod/collectives.py``) price.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from .._input import InputModel
from ..errors import InputError


class _Section(InputModel):
    """A pod config section: frozen, no unknown fields, finite numbers, no booleans for numbers."""


def parse_shape(text: str | tuple[int, ...] | list[int], source: str = "topology",
                where: str | None = None) -> tuple[int, ...]:
    """``"4x4x8"`` -> ``(4, 4, 8)``; every size a positive integer."""
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = str(text).lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise InputError(source, where, text, "expected sizes joined by x, e.g. 16x16 or 4x4x8") \
            from None
    if not shape or any(s <= 0 for s in shape):
        raise InputError(source, where, text, "every size must be a positive integer")
    return shape


class IciConfig(_Section):
    """The inter-chip interconnect of a slice (see the module docstring)."""

    topology: Literal["ring", "torus", "mesh"] = Field(
        description="ring (1-D, wrapped), torus (wraparound per wrap_multiple) or mesh (none)")
    dims: int = Field(ge=1, le=3, description="axes of the physical network")
    links_per_chip: int = Field(gt=0, description="ICI ports per chip (2 per axis per link)")
    link_bandwidth_bytes_per_s: float = Field(gt=0, description="one-way bandwidth of one link")
    hop_latency_s: float = Field(ge=0, description="fixed cost of one hop over one link")
    wrap_multiple: int | None = Field(
        None, gt=0, description="torus axes whose size is a multiple of this wrap around; "
        "None: every torus axis of 3+ chips")
    wrap_rule: Literal["axis", "cube"] = Field(
        "axis", description="axis: each axis wraps by its own size; cube: all axes or none, "
        "as whole cubes of wrap_multiple")
    slice: str = Field(description="default slice shape, e.g. 16x16 or 4x4x4")
    max_chips: int | None = Field(None, gt=0, description="largest slice ICI can join")

    @model_validator(mode="after")
    def _check(self) -> "IciConfig":
        if self.topology == "ring" and self.dims != 1:
            raise ValueError(f"ici.dims: a ring has 1 axis, got {self.dims}")
        if self.links_per_chip % (2 * self.dims):
            raise ValueError(f"ici.links_per_chip: {self.links_per_chip} is not a multiple of "
                             f"2 x dims = {2 * self.dims} (two directions per axis)")
        try:
            shape = parse_shape(self.slice, "ici.slice")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        if len(shape) > self.dims:
            raise ValueError(f"ici.slice: {self.slice} has more axes than dims={self.dims}")
        return self

    @property
    def links_per_direction(self) -> int:
        return self.links_per_chip // (2 * self.dims)


class DcnConfig(_Section):
    """The data-centre network between slices, per chip."""

    bandwidth_bytes_per_s: float = Field(gt=0, description="DCN bandwidth per chip, one way")
    latency_s: float = Field(ge=0, description="fixed cost of one DCN message")


@dataclass(frozen=True)
class Axis:
    """One axis of a slice (or the DCN between slices) as the collectives see it.

    ``kind``: ``ring`` (wraparound: both directions of a closed ring), ``line`` (no wraparound)
    or ``switch`` (DCN: any chip reaches any other in one hop through its NIC).
    ``bandwidth_bytes_per_s`` is one way per direction: links per direction x link bandwidth.
    """

    size: int
    kind: Literal["ring", "line", "switch"]
    bandwidth_bytes_per_s: float
    hop_latency_s: float
    name: str = ""


@dataclass(frozen=True)
class Slice:
    """Chips on an ICI torus/mesh of ``shape``, ``slices`` of them joined over DCN."""

    shape: tuple[int, ...]
    wrap: tuple[bool, ...]
    links_per_direction: int
    link_bandwidth_bytes_per_s: float
    hop_latency_s: float
    slices: int = 1
    dcn_bandwidth_bytes_per_s: float | None = None
    dcn_latency_s: float = 0.0

    @property
    def chips_per_slice(self) -> int:
        return math.prod(self.shape)

    @property
    def chips(self) -> int:
        return self.chips_per_slice * self.slices

    def axis(self, i: int) -> Axis:
        n = self.shape[i]
        return Axis(n, "ring" if self.wrap[i] else "line",
                    self.links_per_direction * self.link_bandwidth_bytes_per_s,
                    self.hop_latency_s, name=f"ici{i}")

    @property
    def axes(self) -> tuple[Axis, ...]:
        return tuple(self.axis(i) for i in range(len(self.shape)))

    @property
    def inbound_bytes_per_s(self) -> float:
        """ICI bandwidth into one chip, averaged over the slice, over the links its shape wires:
        both neighbours' on a ring axis (2 b), on a line of n chips the 2(n-1) directed links
        shared by n chips (an end chip has one neighbour), nothing on an axis of one chip."""
        return sum(2 * ax.bandwidth_bytes_per_s * (1.0 if ax.kind == "ring" and ax.size > 2
                                                   else (ax.size - 1) / ax.size)
                   for ax in self.axes)

    def link_busy(self, ici_bytes: float, seconds: float) -> float:
        """The share of ``seconds``' inbound ICI capacity (:attr:`inbound_bytes_per_s`) that
        ``ici_bytes`` received per chip fill."""
        capacity = self.inbound_bytes_per_s * seconds
        return ici_bytes / capacity if capacity > 0 else 0.0

    def dcn_axis(self) -> Axis:
        if self.slices > 1 and self.dcn_bandwidth_bytes_per_s is None:
            raise InputError("chip config", "dcn", None,
                             "joining slices needs a dcn section (bandwidth_bytes_per_s)")
        return Axis(self.slices, "switch", self.dcn_bandwidth_bytes_per_s or 1.0,
                    self.dcn_latency_s, name="dcn")

    def label(self) -> str:
        s = "x".join(map(str, self.shape))
        return f"{self.slices} x {s}" if self.slices > 1 else s


def _wraps(ici: IciConfig, shape: tuple[int, ...]) -> tuple[bool, ...]:
    """Which axes of ``shape`` wrap around (module docstring)."""
    def one(size: int) -> bool:
        if size <= 2 or ici.topology == "mesh":
            return False
        if ici.topology == "ring" or ici.wrap_multiple is None:
            return True
        return size % ici.wrap_multiple == 0
    if ici.wrap_rule == "cube" and ici.topology == "torus":
        cubes = len(shape) == ici.dims and all(one(s) for s in shape)
        return tuple(cubes and s > 2 for s in shape)
    return tuple(one(s) for s in shape)


def default_shape(ici: IciConfig, chips: int) -> tuple[int, ...]:
    """A slice shape of ``chips`` chips: the preset's default slice if it has that many chips,
    else the factorisation into ``dims`` axes with the smallest longest axis (the most
    cube-like shape, as Cloud TPU's standard slice shapes are: v6e-16 is 4x4, v5e-32 4x8,
    v4's 8 chips 2x2x2), then the most wrapped axes, then the smaller axes from the longest down
    (v5p's 16 chips 2x2x4, not 4x4, as Cloud's v5p-32)."""
    base = parse_shape(ici.slice)
    if math.prod(base) == chips:
        return base
    best: tuple | None = None
    for combo in itertools.product(_divisors(chips), repeat=ici.dims - 1):
        rest = chips // math.prod(combo) if chips % math.prod(combo) == 0 else 0
        if rest == 0:
            continue
        shape = tuple(sorted((*combo, rest)))
        key = (max(shape), -sum(_wraps(ici, tuple(s for s in shape if s > 1))),
               tuple(sorted(shape, reverse=True)), shape)
        if best is None or key < best:
            best = key
    return tuple(s for s in best[3] if s > 1) or (1,)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


ONE_SLICE = "inference runs on one slice: use fewer chips"   # make_slice's beyond= for infer/serve


def make_slice(ici: IciConfig | None, dcn: DcnConfig | None = None,
               shape: str | tuple[int, ...] | None = None, chips: int | None = None,
               slices: int = 1, source: str = "--topology",
               beyond: str = "use --slices") -> Slice:
    """The slice a run uses: ``shape`` if given (checked against ``chips``), else a shape of
    ``chips`` chips (:func:`default_shape`), else the preset's default slice. ``beyond``: what
    the error for more chips than one slice holds tells the user to do."""
    if ici is None:
        if chips == 1 and slices == 1 and shape in (None, "1", (1,)):   # one chip: no links
            return Slice(shape=(1,), wrap=(False,), links_per_direction=1,
                         link_bandwidth_bytes_per_s=1.0, hop_latency_s=0.0)
        raise InputError("chip config", "ici", None, "this chip has no ici section; multi-chip "
                         "runs need one (see configs/tpu_v5p.yaml)")
    if not isinstance(slices, int) or slices < 1:
        raise InputError("--slices", None, slices, "must be a positive integer")
    if chips is not None and (not isinstance(chips, int) or chips < 1):
        raise InputError("--chips", None, chips, "must be a positive integer")
    if shape is not None:
        dims = parse_shape(shape, source)
        while len(dims) > ici.dims and dims[-1] == 1:   # 2x4x1 on a 2-D chip is its 2x4
            dims = dims[:-1]
        if len(dims) > ici.dims:
            raise InputError(source, None, shape, f"this chip's ICI has {ici.dims} axes "
                             f"({ici.topology})")
    else:
        per = None
        if chips is not None:
            if chips % slices:
                raise InputError("--chips", None, chips, f"must be a multiple of --slices={slices}")
            per = chips // slices
            if ici.max_chips is not None and per > ici.max_chips:   # before shaping it
                raise InputError("--chips", None, chips, f"{per} chips per slice; ICI joins at "
                                 f"most {ici.max_chips} chips in one slice; {beyond}")
        dims = default_shape(ici, per) if per is not None else parse_shape(ici.slice)
    n = math.prod(dims)
    if chips is not None and n * slices != chips:
        raise InputError("--chips", None, chips, f"topology {'x'.join(map(str, dims))} x "
                         f"{slices} slice(s) has {n * slices} chips")
    if ici.max_chips is not None and n > ici.max_chips:
        raise InputError(source, None, "x".join(map(str, dims)),
                         f"ICI joins at most {ici.max_chips} chips in one slice; {beyond}")
    if slices > 1 and dcn is None:
        raise InputError("chip config", "dcn", None, "joining slices needs a dcn section")
    return Slice(shape=dims, wrap=_wraps(ici, dims),
                 links_per_direction=ici.links_per_direction,
                 link_bandwidth_bytes_per_s=ici.link_bandwidth_bytes_per_s,
                 hop_latency_s=ici.hop_latency_s, slices=slices,
                 dcn_bandwidth_bytes_per_s=dcn.bandwidth_bytes_per_s if dcn else None,
                 dcn_latency_s=dcn.latency_s if dcn else 0.0)


__all__ = ["IciConfig", "DcnConfig", "Axis", "Slice", "make_slice", "default_shape",
           "ONE_SLICE", "parse_shape"]

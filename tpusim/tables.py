"""Energy and area tables: every per-action number the energy and area models look up, in one
place that a user can swap.

A :class:`Tables` holds four lookups, as Accelergy's hwcomponents plug-ins estimate one
component class each:

- ``mac_pj_45nm``: energy of one MAC (multiply + accumulator add) by format, pJ at 45 nm;
- ``sram_pj_per_bit_45nm``: (capacity bytes, pJ per bit read) points of an SRAM macro, 45 nm;
  :func:`tpusim.energy.sram_pj_per_bit_45nm` interpolates them log-log;
- ``offchip_pj_per_bit``: pJ per bit moved by off-chip memory kind (DDR3, HBM2 ...);
- ``cell_um2`` (full adder, flip-flop, 2:1 mux, XNOR at 45 nm) with the placement and SRAM macro
  fractions, which :mod:`tpusim.area` turns PE cell counts into square micrometres with.

The models never copy a number at import: they call :func:`current` each time, so a table
installed with ``with tpusim.tables.use(my_table): ...`` (or :func:`set_current`) changes every
energy and area computed while it is active. Off-chip energy is a config field
(``memory.hbm.energy_pj_per_bit``) filled from ``kind`` when a config is loaded, so load the config
inside the ``with`` block for a swapped off-chip table to apply. A table is per thread/task
(a :class:`contextvars.ContextVar`); :func:`tpusim.sweep` hands the caller's table to its worker
processes and keys its resume journal by it.
:func:`load` reads a YAML file of the same keys (any subset; the rest stay the defaults).

The default numbers are the published constants below (:data:`CONSTANTS` for the MAC parts,
:data:`ENERGY_CONSTANTS`, :data:`OFFCHIP_CONSTANTS`, :data:`AREA_CONSTANTS`), each with its
source.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import InputError


@dataclass(frozen=True)
class Constant:
    """A number taken from a public source (or a stated assumption), with its unit."""

    value: float
    unit: str
    source: str


_HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm 0.9 V"
_DEAN = "Dean, 'The Deep Learning Revolution and Its Implications for ...', ISSCC 2020"
_CACTI = ("CACTI 7 (Balasubramonian et al., ACM TACO 2017) via Accelergy's CACTI plug-in, "
          "45 nm, pJ per bit read")
_OFFCHIP = ("component-model libraries (Accelergy/Timeloop tables; no primary source agrees, so "
            "a config may set memory.hbm.energy_pj_per_bit)")
_NANGATE = "Nangate 45 nm Open Cell Library, typical corner (NangateOpenCellLibrary_typical.lib)"

CONSTANTS: dict[str, Constant] = {
    "int8_mult_pj": Constant(0.2, "pJ", _HOROWITZ),
    "int8_add_pj": Constant(0.03, "pJ", _HOROWITZ),
    "int32_add_pj": Constant(0.1, "pJ", _HOROWITZ),
    "int32_mult_pj": Constant(3.1, "pJ", _HOROWITZ),
    "fp16_mult_pj": Constant(1.1, "pJ", _HOROWITZ),
    "fp16_add_pj": Constant(0.4, "pJ", _HOROWITZ),
    "fp32_mult_pj": Constant(3.7, "pJ", _HOROWITZ),
    "fp32_add_pj": Constant(0.9, "pJ", _HOROWITZ),
    "fp16_mult_full_adders": Constant(121, "full adders", _DEAN + ": (10+1)^2"),
}

ENERGY_CONSTANTS: dict[str, Constant] = {
    "sram_8kib_pj_per_bit": Constant(0.096, "pJ/bit", _CACTI),
    "sram_32kib_pj_per_bit": Constant(0.27, "pJ/bit", _CACTI),
    "sram_1mib_pj_per_bit": Constant(0.98, "pJ/bit", _CACTI),
    "vector_op_pj": Constant(0.9, "pJ", "assumption: one vector element op costs one fp32 add, "
                             "0.9 pJ at 45 nm (Horowitz 2014)"),
}

OFFCHIP_CONSTANTS: dict[str, Constant] = {
    "DDR3": Constant(70.0, "pJ/bit", _OFFCHIP),
    "LPDDR4": Constant(8.0, "pJ/bit", _OFFCHIP),
    "HBM2": Constant(3.9, "pJ/bit", _OFFCHIP),
    "HBM3": Constant(4.0, "pJ/bit", _OFFCHIP),
}

AREA_CONSTANTS: dict[str, Constant] = {
    "full_adder_um2": Constant(4.256, "um^2", _NANGATE + ": FA_X1"),
    "flip_flop_um2": Constant(4.522, "um^2", _NANGATE + ": DFF_X1"),
    "mux2_um2": Constant(1.862, "um^2", _NANGATE + ": MUX2_X1"),
    "xnor2_um2": Constant(1.596, "um^2", _NANGATE + ": XNOR2_X1"),
    "logic_utilization": Constant(0.7, "fraction", "assumption: standard cells fill 70% of the "
                                  "placed area (routing and spacing take the rest)"),
    "sram_bitcell_um2": Constant(0.346, "um^2", "Intel 45 nm high-k/metal-gate 6T SRAM cell, "
                                 "Mistry et al., IEDM 2007"),
    "sram_array_efficiency": Constant(0.7, "fraction", "assumption: bit cells fill 70% of an SRAM "
                                      "macro (decoders, sense amplifiers, I/O the rest)"),
}


def _c(key: str) -> float:
    return CONSTANTS[key].value


def _float_mult_pj(mantissa_bits: int) -> float:
    """Float multiplier energy scaled from fp16 by the (M+1)^2 full-adder count (Dean 2020)."""
    return _c("fp16_mult_pj") * (mantissa_bits + 1) ** 2 / _c("fp16_mult_full_adders")


def default_mac_pj_45nm() -> dict[str, float]:
    """MAC energy per format at 45 nm from Horowitz's multiply and add energies."""
    return {
        "int8": _c("int8_mult_pj") + _c("int32_add_pj"),
        # int4: multiplier cells scale as n^2 (Dean 2020), so 1/4 of int8's; int32 accumulate.
        "int4": _c("int8_mult_pj") / 4 + _c("int32_add_pj"),
        "bf16": _float_mult_pj(7) + _c("fp32_add_pj"),
        "fp16": _c("fp16_mult_pj") + _c("fp32_add_pj"),
        "fp32": _c("fp32_mult_pj") + _c("fp32_add_pj"),
        # fp8 products summed in fp16-class adders keeps the MAC 50-180% above int8, as van
        # Baalen et al. 2023 report (assumption: the numerics still accumulate in fp32).
        "fp8_e4m3": _float_mult_pj(3) + _c("fp16_add_pj"),
        "fp8_e5m2": _float_mult_pj(2) + _c("fp16_add_pj"),
        "binary": xnor_popcount_mac_pj(1),
        "ternary": xnor_popcount_mac_pj(2),
    }


# A W-input popcount tree holds about W full adders (W - popcount(W) exactly), so one per binary
# product; the word's popcount is added into the int32 accumulator once per this many products
# (assumption: 32-bit words, as XNOR-Net and FINN pack binary operands).
POPCOUNT_WORD_BITS = 32


def full_adder_pj() -> float:
    """One full adder's switching energy: Horowitz's 8-bit add over its 8 bits (assumption:
    a ripple adder's energy is proportional to its width)."""
    return _c("int8_add_pj") / 8


def xnor_popcount_mac_pj(popcounts: int) -> float:
    """One binary (``popcounts`` = 1) or ternary (2: the masked XNOR word and the mask word are
    each popcounted) MAC at 45 nm: per popcount an XNOR (assumption: no more than one full
    adder's energy), its full adder in the popcount tree, and 1/32 of the int32 accumulate."""
    return popcounts * (2 * full_adder_pj() + _c("int32_add_pj") / POPCOUNT_WORD_BITS)


_MAPPINGS = ("mac_pj_45nm", "offchip_pj_per_bit", "cell_um2")
_CELLS = ("full_adder", "flip_flop", "mux2", "xnor2")


@dataclass(frozen=True)
class Tables:
    """The numbers behind energy and area (see the module docstring for each field's unit)."""

    mac_pj_45nm: Mapping[str, float]
    sram_pj_per_bit_45nm: tuple[tuple[float, float], ...]
    vector_op_pj_45nm: float
    offchip_pj_per_bit: Mapping[str, float]
    cell_um2: Mapping[str, float]
    logic_utilization: float
    sram_bitcell_um2: float
    sram_array_efficiency: float
    name: str = field(default="custom", compare=False)

    def replace(self, **changes: Any) -> "Tables":
        """A copy with ``changes``; a mapping field is merged (``mac_pj_45nm={"int8": 0.1}``
        changes int8 only)."""
        for key in _MAPPINGS:
            if key in changes:
                changes[key] = {**getattr(self, key), **changes[key]}
        if "sram_pj_per_bit_45nm" in changes:
            changes["sram_pj_per_bit_45nm"] = tuple(
                (float(a), float(b)) for a, b in changes["sram_pj_per_bit_45nm"])
        changes.setdefault("name", "custom")
        return dataclasses.replace(self, **changes)

    def mac_pj(self, fmt: str) -> float:
        try:
            return self.mac_pj_45nm[fmt]
        except KeyError:
            raise InputError(f"energy table {self.name!r}", f"mac_pj_45nm.{fmt}", "missing",
                             "give every format the chip runs a MAC energy") from None

    def cell(self, cell: str) -> float:
        try:
            return self.cell_um2[cell]
        except KeyError:
            raise InputError(f"area table {self.name!r}", f"cell_um2.{cell}", "missing",
                             "cells: " + "|".join(_CELLS)) from None


DEFAULT = Tables(
    mac_pj_45nm=default_mac_pj_45nm(),
    sram_pj_per_bit_45nm=((8 * 1024, ENERGY_CONSTANTS["sram_8kib_pj_per_bit"].value),
                          (32 * 1024, ENERGY_CONSTANTS["sram_32kib_pj_per_bit"].value),
                          (1024 * 1024, ENERGY_CONSTANTS["sram_1mib_pj_per_bit"].value)),
    vector_op_pj_45nm=ENERGY_CONSTANTS["vector_op_pj"].value,
    offchip_pj_per_bit={k: c.value for k, c in OFFCHIP_CONSTANTS.items()},
    cell_um2={c: AREA_CONSTANTS[f"{c}_um2"].value for c in _CELLS},
    logic_utilization=AREA_CONSTANTS["logic_utilization"].value,
    sram_bitcell_um2=AREA_CONSTANTS["sram_bitcell_um2"].value,
    sram_array_efficiency=AREA_CONSTANTS["sram_array_efficiency"].value,
    name="default",
)

_CURRENT: contextvars.ContextVar[Tables] = contextvars.ContextVar("tpusim_tables",
                                                                   default=DEFAULT)


def current() -> Tables:
    """The table the energy and area models read now."""
    return _CURRENT.get()


def set_current(table: Tables) -> Tables:
    """Install ``table`` until changed again; returns the one it replaces."""
    old = _CURRENT.get()
    _CURRENT.set(_check(table))
    return old


@contextlib.contextmanager
def use(table: "Tables | str | Path") -> Iterator[Tables]:
    """Within the ``with`` block, energy and area read ``table`` (a :class:`Tables` or the path
    of a YAML table file, see :func:`load`)."""
    t = load(table) if isinstance(table, (str, Path)) else _check(table)
    token = _CURRENT.set(t)
    try:
        yield t
    finally:
        _CURRENT.reset(token)


def _check(table: Tables) -> Tables:
    if not isinstance(table, Tables):
        raise InputError("tables.use", None, type(table).__name__,
                         "a tpusim.tables.Tables (e.g. tables.DEFAULT.replace(...)) or a path")
    return table


_SCALARS = ("vector_op_pj_45nm", "logic_utilization", "sram_bitcell_um2",
            "sram_array_efficiency")


def load(path: str | Path, base: Tables = DEFAULT) -> Tables:
    """A table from a YAML file whose keys are :class:`Tables` fields (any subset; mappings are
    merged into ``base``). Every number must be > 0."""
    from ._input import load_yaml, read_text, suggest

    src = str(path)
    data = load_yaml(read_text(path, "YAML table"), src)   # UTF-8, no key given twice
    if not isinstance(data, dict):
        raise InputError(src, None, type(data).__name__, "a mapping of table fields")
    allowed = (*_MAPPINGS, "sram_pj_per_bit_45nm", *_SCALARS)
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            raise InputError(src, str(key), message=f"unknown field{suggest(key, allowed)}; "
                             "allowed: " + "|".join(allowed))
        if key in _MAPPINGS:
            if not isinstance(value, dict):
                raise InputError(src, key, value, "a mapping of name: number")
            changes[key] = {str(k): _positive(src, f"{key}.{k}", v) for k, v in value.items()}
        elif key == "sram_pj_per_bit_45nm":
            pts = value if isinstance(value, list) else None
            if not pts or len(pts) < 2 or not all(isinstance(p, list) and len(p) == 2
                                                  for p in pts):
                raise InputError(src, key, value, "two or more [capacity_bytes, pj_per_bit]")
            changes[key] = sorted((_positive(src, f"{key}[{i}]", a),
                                   _positive(src, f"{key}[{i}]", b))
                                  for i, (a, b) in enumerate(pts))
            caps = [a for a, _ in changes[key]]
            if len(set(caps)) < len(caps):   # a log-log segment between them would be 0 wide
                dup = next(a for a in caps if caps.count(a) > 1)
                raise InputError(src, key, f"{dup:g} bytes twice", "each capacity once")
        else:
            changes[key] = _positive(src, key, value)
    out = base.replace(**changes)
    return dataclasses.replace(out, name=Path(path).stem)


def _positive(src: str, where: str, value: Any) -> float:
    if isinstance(value, bool):   # float(True) is 1.0: a boolean is not a number here
        raise InputError(src, where, str(value).lower(), "a finite number > 0, not a boolean")
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not x > 0 or x == float("inf"):
        raise InputError(src, where, value, "a finite number > 0")
    return x

"""Silicon area of a MAC datapath, a MAC array and a chip's SRAM, from standard-cell counts.

A processing element (PE) is counted in cells, part by part, then converted to square micrometres
with the cell areas of one public 45 nm library and scaled to the chip's node:

- multiplier: (M+1)^2 full adders for a float with an M-bit mantissa (Dean 2020: fp32 576, fp16
  121, bf16 64), n^2 for an n-bit integer, one XNOR gate for binary (+-1), an XNOR and its mask
  gate (sized as an XNOR, assumption) for ternary ({-1, 0, +1});
- floats only: the exponent adder (E+1 full adders), the alignment shifter that lines the product
  up with the accumulator (a barrel shifter: ceil(log2 W) stages of W 2:1 muxes, W the
  accumulator's significand width, plus an exponent-difference adder) and the normalisation
  after the add (a second such shifter plus the exponent adjust);
- the accumulator adder (as wide as the accumulator: 32 full adders for int32, 25 for an fp32
  significand plus sign) and the registers: the stationary weight and its shadow copy (weights
  preload while the array computes), the activation passed to the next PE, and the partial sum.
- binary and ternary PEs of ``lanes`` XNOR lanes (a format's ``rate``) share one popcount tree
  (W - popcount(W) full adders sum W one-bit products; ternary has two, for the masked XNOR word
  and the mask) and one accumulator; each lane keeps its own gate and operand registers.

The model counts cells only: no wires, no clock tree, so its numbers are lower bounds of a real
layout; the placement utilisation below is the one allowance for that. Cell areas and the
placement and SRAM-macro fractions are read from :func:`tpusim.tables.current` at each call
(cited in :data:`tpusim.tables.AREA_CONSTANTS`); the node table is Stillmaker & Baas 2017.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import InputError
from . import tables
from .formats import XNOR_KINDS, Constant, Format, accumulator_of, get_format
from .tables import AREA_CONSTANTS  # noqa: F401  (re-exported: the cited cell areas)

_STILLMAKER = ("Stillmaker & Baas, 'Scaling equations for the accurate prediction of CMOS device "
               "performance from 180 nm to 7 nm', Integration 58 (2017), area scaling from 45 nm")

# Area at a node relative to 45 nm (Stillmaker & Baas 2017, area factors from the 45 nm row).
NODE_AREA_SCALE: dict[int, Constant] = {
    node: Constant(factor, "x area at 45 nm", _STILLMAKER)
    for node, factor in ((180, 19.0), (130, 6.4), (90, 2.8), (65, 1.5), (45, 1.0), (32, 0.46),
                         (20, 0.21), (16, 0.19), (14, 0.17), (10, 0.1), (7, 0.059))
}

NODE_RANGE_NM = (min(NODE_AREA_SCALE), max(NODE_AREA_SCALE))


def check_node(node_nm: float, source: str | None = None,
               where: str = "energy.node_nm") -> float:
    """``node_nm`` as a float if the node scaling table covers it, else an :class:`InputError`."""
    lo, hi = NODE_RANGE_NM
    try:
        x = float(node_nm)
    except (TypeError, ValueError):
        x = math.nan
    if not (lo <= x <= hi):
        raise InputError(source, where, node_nm, f"the node scaling table covers {lo}-{hi} nm "
                         "(Stillmaker & Baas 2017)")
    return x


def area_scale(node_nm: float, source: str | None = None,
               where: str = "energy.node_nm") -> float:
    """Area at ``node_nm`` relative to 45 nm: the Stillmaker & Baas table, log-log interpolated
    between its nodes (assumption); a node outside 7-180 nm is an :class:`InputError`."""
    x = check_node(node_nm, source, where)
    nodes = sorted(NODE_AREA_SCALE)
    if x in NODE_AREA_SCALE:
        return NODE_AREA_SCALE[int(x)].value
    i = next(i for i in range(len(nodes) - 1) if nodes[i] < x < nodes[i + 1])
    (x0, x1) = nodes[i], nodes[i + 1]
    y0, y1 = NODE_AREA_SCALE[x0].value, NODE_AREA_SCALE[x1].value
    t = math.log(x / x0) / math.log(x1 / x0)
    return y0 * (y1 / y0) ** t


@dataclass(frozen=True)
class PEArea:
    """One PE of a datapath for ``format``: cells per part and area (um^2) at ``node_nm``."""

    format: str
    node_nm: float
    cells: dict[str, dict[str, int]] = field(default_factory=dict)
    parts_um2: dict[str, float] = field(default_factory=dict)

    @property
    def total_um2(self) -> float:
        return sum(self.parts_um2.values())

    @property
    def full_adders(self) -> int:
        return sum(c.get("full_adder", 0) for c in self.cells.values())


def _shifter_muxes(width: int) -> int:
    """2:1 muxes in a barrel shifter over ``width`` bits: ceil(log2 width) stages of ``width``."""
    return width * math.ceil(math.log2(width))


def pe_cells(fmt: str | Format, lanes: int = 1) -> dict[str, dict[str, int]]:
    """Cells of one PE of a weight-stationary array in ``fmt``, by part (see module docstring);
    ``lanes``: XNOR lanes of a binary or ternary PE (other formats: one MAC)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    acc = accumulator_of(f)
    cells: dict[str, dict[str, int]] = {}
    if f.kind in XNOR_KINDS:
        popcounts = 1 if f.kind == "binary" else 2
        cells["multiplier"] = {"xnor2": popcounts * lanes}
        tree = popcounts * (lanes - bin(lanes).count("1"))
        if tree:
            cells["popcount"] = {"full_adder": tree}
        cells["accumulator_adder"] = {"full_adder": acc.bits}
        cells["registers"] = {"flip_flop": 3 * f.bits * lanes + acc.bits}
        return cells
    cells["multiplier"] = {"full_adder": f.multiplier_full_adders}
    if f.kind == "float":
        w = acc.significand_bits if acc.kind == "float" else acc.bits
        e_acc = acc.exponent_bits
        cells["exponent_adder"] = {"full_adder": f.exponent_bits + 1}
        cells["alignment"] = {"mux2": _shifter_muxes(w), "full_adder": e_acc + 1}
        cells["normalisation"] = {"mux2": _shifter_muxes(w), "full_adder": e_acc}
        cells["accumulator_adder"] = {"full_adder": w + 1}
    else:
        cells["accumulator_adder"] = {"full_adder": acc.bits}
    # weight + shadow weight + activation pass-through (format bits), partial sum (accumulator).
    cells["registers"] = {"flip_flop": 3 * f.bits + acc.bits}
    return cells


def pe_area(fmt: str | Format, node_nm: float = 45, source: str | None = None,
            lanes: int = 1) -> PEArea:
    """Area of one PE in ``fmt`` at ``node_nm`` (cells / placement utilisation x node scale)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    t = tables.current()
    scale = area_scale(node_nm, source) / t.logic_utilization
    cells = pe_cells(f, lanes)
    parts = {part: scale * sum(n * t.cell(c) for c, n in cs.items())
             for part, cs in cells.items()}
    return PEArea(format=f.name, node_nm=float(node_nm), cells=cells, parts_um2=parts)


def mac_area_um2(fmt: str | Format, node_nm: float = 45, source: str | None = None) -> float:
    return pe_area(fmt, node_nm, source).total_um2


def sram_area_mm2(kib: float, node_nm: float = 45, source: str | None = None) -> float:
    """Area of ``kib`` KiB of SRAM: bit cells over the macro's array efficiency, node-scaled."""
    bits = kib * 1024 * 8
    t = tables.current()
    per_bit = t.sram_bitcell_um2 / t.sram_array_efficiency
    return bits * per_bit * area_scale(node_nm, source) / 1e6


@dataclass(frozen=True)
class ChipArea:
    """Area of a chip's MAC arrays (built for ``format``) and SRAM buffers, mm^2."""

    format: str
    mac_um2: float
    pes: int
    macs_per_pe: float
    array_mm2: float
    sram_mm2: float

    @property
    def total_mm2(self) -> float:
        return self.array_mm2 + self.sram_mm2


def chip_area(chip, fmt: str, macs_per_pe: float = 1.0) -> ChipArea:
    """Arrays (rows x cols x count PEs, each holding ``macs_per_pe`` MACs of ``fmt``) + SRAM."""
    node = chip.energy.node_nm
    f = get_format(fmt)
    if f.kind in XNOR_KINDS and macs_per_pe >= 1 and float(macs_per_pe).is_integer():
        # the lanes of one XNOR-popcount PE share its popcount tree and accumulator
        mac = pe_area(f, node, chip.name, int(macs_per_pe)).total_um2 / macs_per_pe
    else:
        mac = mac_area_um2(fmt, node, chip.name)
    s = chip.memory.sram
    sram = sram_area_mm2(s.input_kib + s.weight_kib + s.output_kib, node, chip.name)
    return ChipArea(format=get_format(fmt).name, mac_um2=mac, pes=chip.pes,
                    macs_per_pe=macs_per_pe, array_mm2=chip.pes * macs_per_pe * mac / 1e6,
                    sram_mm2=sram)


def hardware_area(chip, fmt: str) -> ChipArea:
    """The area of the datapath that runs ``fmt`` on ``chip``: an emulated format runs on the
    arrays of the format it is emulated with, a native one on arrays of its own PEs, each PE
    holding the format's rate of MACs. A rate below 1 is one MAC taking more than a cycle (as
    tpu_v4's fitted fp16 rate), not a fraction of a PE: the PE still holds one MAC (assumption:
    no narrower, iterated multiplier)."""
    sup = chip.formats.get(fmt)
    if sup is not None and sup.emulate:
        return chip_area(chip, sup.emulate, max(1.0, chip.formats[sup.emulate].rate))
    return chip_area(chip, fmt, max(1.0, sup.rate) if sup is not None else 1.0)


def area_summary(chip, fmt: str, peak_tops: float) -> dict[str, float | bool | str]:
    """The area fields of a run's summary (and of every sweep point): ``array_mm2``,
    ``sram_mm2``, ``chip_mm2`` = their sum and ``tops_per_mm2`` = ``peak_tops`` / ``chip_mm2``.

    ``chip_mm2`` counts the MAC arrays and the on-chip SRAM only (standard cells and bit cells,
    no wires, no vector unit, no off-chip PHY or interconnect), so it is a lower bound of the
    die (``chip_mm2_is_lower_bound``) and ``tops_per_mm2`` an upper bound. The one function
    every summary builder calls, so the fields stay the same whichever path simulates."""
    hw = hardware_area(chip, fmt if fmt in chip.formats else chip.default_format)
    chip_mm2 = hw.total_mm2
    return {"array_mm2": hw.array_mm2, "sram_mm2": hw.sram_mm2, "chip_mm2": chip_mm2,
            "chip_mm2_is_lower_bound": True,
            "area_counts": "MAC arrays + on-chip SRAM (cells only)",
            "tops_per_mm2": peak_tops / chip_mm2 if chip_mm2 > 0 else math.nan}

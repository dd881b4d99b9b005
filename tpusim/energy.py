"""Energy = sum over actions of (count x energy per action), in picojoules.

Actions: MACs (per format), vector element ops, SRAM bytes (per buffer, by its size), off-chip
bytes (per memory kind), and static power over time. Constants are 45 nm figures (Horowitz ISSCC
2014; CACTI 7 via Accelergy) scaled to the chip's node; a config can override each
(``energy.*``, ``memory.hbm.energy_pj_per_bit``). The 45 nm numbers are read from
:func:`tpusim.tables.current` at every call (cited in :data:`tpusim.tables.ENERGY_CONSTANTS` and
:data:`tpusim.tables.CONSTANTS`), so ``tpusim.tables.use(my_table)`` swaps them.

Node scaling (assumption): dynamic energy per operation scales linearly with feature size
(switched capacitance ~ node, supply voltage roughly flat below 28 nm), so E(node) = E45 x node/45.
Public sources disagree on this factor (Stillmaker & Baas 2017's PTM fits fall faster than linear,
Google's 45 nm -> 7 nm comparisons slower), so the linear rule stays a stated assumption; it is
valid over the same 7-180 nm range as the cited area table (:mod:`tpusim.area`), and a node outside
it is an input error. Off-chip energy per bit is an interface property and is not scaled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import tables
from .area import check_node
from .config import ChipConfig
from .formats import Format
from .offchip import OFFCHIP_PJ_PER_BIT, offchip_pj_per_bit  # noqa: F401  (re-exported)
from .tables import ENERGY_CONSTANTS, OFFCHIP_CONSTANTS  # noqa: F401  (re-exported)


def node_scale(node_nm: float, source: str | None = None) -> float:
    """Dynamic energy at ``node_nm`` relative to 45 nm: node/45 (linear; an assumption, see the
    module docstring), for nodes in 7-180 nm; outside that range an :class:`InputError`."""
    return check_node(node_nm, source) / 45.0


def sram_pj_per_bit_45nm(capacity_bytes: float) -> float:
    """Piecewise power law through the table's SRAM points (default: CACTI 7), interpolated
    log-log, end slopes kept."""
    pts = tables.current().sram_pj_per_bit_45nm
    x = max(capacity_bytes, 1.0)
    if x <= pts[0][0]:
        (x0, y0), (x1, y1) = pts[0], pts[1]
    elif x >= pts[-1][0]:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
    else:
        i = next(i for i in range(len(pts) - 1) if pts[i][0] <= x <= pts[i + 1][0])
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    slope = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** slope


def sram_pj_per_bit(chip: ChipConfig, buffer_kib: float) -> float:
    """Energy per bit of one access to a buffer: a bank of at most ``bank_kib`` is touched."""
    if chip.energy.sram_pj_per_bit is not None:
        return chip.energy.sram_pj_per_bit
    size = min(buffer_kib, chip.memory.sram.bank_kib) * 1024
    return sram_pj_per_bit_45nm(size) * node_scale(chip.energy.node_nm, chip.name)


def native_mac_pj(chip: ChipConfig, fmt: str) -> float:
    """Energy of one MAC on a datapath built for ``fmt`` at the chip's node (no emulation)."""
    if fmt in chip.energy.mac_pj:
        return chip.energy.mac_pj[fmt]
    return tables.current().mac_pj(fmt) * node_scale(chip.energy.node_nm, chip.name)


def mac_pj(chip: ChipConfig, fmt: str) -> float:
    """Energy of one MAC in ``fmt`` on this chip (emulated formats: passes x the base MAC)."""
    if fmt in chip.energy.mac_pj:
        return chip.energy.mac_pj[fmt]
    sup = chip.formats.get(fmt)
    if sup is not None and sup.emulate:
        return sup.passes * mac_pj(chip, sup.emulate)
    return native_mac_pj(chip, fmt)


def vector_op_pj(chip: ChipConfig) -> float:
    if chip.energy.vector_op_pj is not None:
        return chip.energy.vector_op_pj
    return tables.current().vector_op_pj_45nm * node_scale(chip.energy.node_nm, chip.name)


@dataclass(frozen=True)
class Energy:
    """One layer instance's energy by component, pJ; ``total_pj`` is their sum."""

    mac_pj: float
    vector_pj: float
    sram_pj: float
    hbm_pj: float
    static_pj: float

    @property
    def total_pj(self) -> float:
        return self.mac_pj + self.vector_pj + self.sram_pj + self.hbm_pj + self.static_pj


def layer_energy(chip: ChipConfig, fmt: Format, macs: float, vector_ops: float,
                 sram_input_bytes: float, sram_weight_bytes: float, sram_output_bytes: float,
                 hbm_bytes: float,
                 latency_s: float) -> Energy:
    """Energy of one layer instance in pJ, by action: ``macs`` in ``fmt`` (emulated formats
    pay their passes), ``vector_ops`` element ops, the bytes through each SRAM buffer at that
    buffer's pJ/bit (its size picks the CACTI point), ``hbm_bytes`` at the off-chip pJ/bit, and
    static power over ``latency_s``."""
    s = chip.memory.sram
    sram = 8 * (sram_input_bytes * sram_pj_per_bit(chip, s.input_kib)
                + sram_weight_bytes * sram_pj_per_bit(chip, s.weight_kib)
                + sram_output_bytes * sram_pj_per_bit(chip, s.output_kib))
    return Energy(mac_pj=macs * mac_pj(chip, fmt.name),
                  vector_pj=vector_ops * vector_op_pj(chip),
                  sram_pj=sram,
                  hbm_pj=8 * hbm_bytes * chip.memory.hbm.energy_pj_per_bit,
                  static_pj=chip.energy.static_w * latency_s * 1e12)

"""Off-chip memory kinds and their energy per bit moved, the one table a chip config reads.

It lives apart from :mod:`tpusim.energy` so that :mod:`tpusim.config` can fill a config's default
``memory.hbm.energy_pj_per_bit`` from its ``kind`` without importing the energy model.
"""
from __future__ import annotations

from .errors import InputError
from .formats import Constant

_OFFCHIP = ("assumption: typical figures of architecture component-model libraries (no primary"
            " source agrees; configurable per config; docs/references.md)")

OFFCHIP_CONSTANTS: dict[str, Constant] = {
    "DDR3": Constant(70.0, "pJ/bit", _OFFCHIP),
    "LPDDR4": Constant(8.0, "pJ/bit", _OFFCHIP),
    "HBM2": Constant(3.9, "pJ/bit", _OFFCHIP),
    "HBM3": Constant(4.0, "pJ/bit", _OFFCHIP),
}
# Off-chip memory kinds, pJ per bit moved (keep configurable: a config may set its own).
OFFCHIP_PJ_PER_BIT: dict[str, float] = {k: c.value for k, c in OFFCHIP_CONSTANTS.items()}


def offchip_pj_per_bit(kind: str, source: str | None = None,
                       where: str = "memory.hbm.kind") -> float:
    """Energy per bit of an off-chip memory kind (``DDR3``, ``LPDDR4``, ``HBM2``, ``HBM3``).

    ``HBM2e`` counts as HBM2 (same interface class; assumption). Unknown kinds are an
    :class:`InputError` naming the known ones; a config may instead set
    ``memory.hbm.energy_pj_per_bit`` itself.
    """
    key = str(kind).strip().upper()
    key = {"HBM2E": "HBM2", "LPDDR4X": "LPDDR4"}.get(key, key)
    try:
        return OFFCHIP_PJ_PER_BIT[key]
    except KeyError:
        raise InputError(source, where, kind, "known memory kinds: "
                         + "|".join(OFFCHIP_PJ_PER_BIT)
                         + " (or set memory.hbm.energy_pj_per_bit)") from None

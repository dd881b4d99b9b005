"""Off-chip memory kinds and their energy per bit moved, the one table a chip config reads.

It lives apart from :mod:`tpusim.energy` so that :mod:`tpusim.config` can fill a config's default
``memory.hbm.energy_pj_per_bit`` from its ``kind`` without importing the energy model. The
numbers come from :func:`tpusim.tables.current` when the config is loaded.
"""
from __future__ import annotations

from . import tables
from .errors import InputError
from .tables import OFFCHIP_CONSTANTS  # noqa: F401  (re-exported)

# The default table's kinds, pJ per bit moved (the swappable ones: tables.current()).
OFFCHIP_PJ_PER_BIT: dict[str, float] = dict(tables.DEFAULT.offchip_pj_per_bit)


def offchip_pj_per_bit(kind: str, source: str | None = None,
                       where: str = "memory.hbm.kind") -> float:
    """Energy per bit of an off-chip memory kind (``DDR3``, ``LPDDR4``, ``HBM2``, ``HBM3``).

    ``HBM2e`` counts as HBM2 (same interface class; assumption). Unknown kinds are an
    :class:`InputError` naming the known ones; a config may instead set
    ``memory.hbm.energy_pj_per_bit`` itself.
    """
    key = str(kind).strip().upper()
    key = {"HBM2E": "HBM2", "LPDDR4X": "LPDDR4"}.get(key, key)
    table = tables.current().offchip_pj_per_bit
    try:
        return table[key]
    except KeyError:
        raise InputError(source, where, kind, "known memory kinds: "
                         + "|".join(table)
                         + " (or set memory.hbm.energy_pj_per_bit)") from None

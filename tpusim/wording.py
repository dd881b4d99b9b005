"""Phrases every view of a run shares (terminal, report page, notebook), so each says the same.

One definition of utilization: the share of the peak of the format each layer runs in
(``summary.json``'s ``utilization``; for one format it equals achieved / peak TOPS), always
written beside the two numbers it divides, and for an emulated format with how it is emulated.
"""
from __future__ import annotations

from typing import Any

from . import units


def bound_label(bound: str, offchip: str = "HBM") -> str:
    """What the timing model says holds a layer (``layers.csv``'s ``bound``) in words."""
    return {"compute": "compute-bound", "hbm": f"{offchip}-bound", "sram": "SRAM-bound",
            "vector": "vector-bound"}.get(bound, str(bound))


def offchip(chip: Any) -> str:
    """The off-chip memory's name: its kind from the config (DDR3, USB3, HBM2 ...)."""
    return str(chip.memory.hbm.kind)


def format_note(chip: Any, fmt: str) -> str:
    """``(emulated: 6 bf16 passes)`` for an emulated format, ``(packed: 2 per PE)`` for a packed
    one, else nothing."""
    sup = chip.formats.get(fmt) if fmt in getattr(chip, "formats", {}) else None
    if sup is None:
        return ""
    if sup.emulate:
        return f" (emulated: {sup.passes} {sup.emulate} passes per MAC)"
    if sup.rate > 1:
        return f" (packed: {units.number(sup.rate)} MACs per PE per cycle)"
    return ""


def peak_phrase(summary: dict, chip: Any) -> str:
    """``15.53 of 22.94 TOPS peak for fp32 (emulated: 6 bf16 passes per MAC): 67.7%``."""
    s = summary
    ach, peak, util = s["achieved_tops"], s["peak_tops"], s["utilization"]
    if s["format"] == "mixed":
        return (f"{units.number(ach)} TOPS: {util:.1%} of the peak of each layer's format "
                f"({', '.join(s['formats'])})")
    return (f"{units.number(ach)} of {units.number(peak)} TOPS peak for {s['format']}"
            f"{format_note(chip, s['format'])}: {util:.1%}")

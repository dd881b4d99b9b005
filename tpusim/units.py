"""Numbers in the units people read: seconds as ms/µs, bytes as GiB/MiB, joules as mJ/µJ.

Each formatter picks the largest unit in which the value is at least 1 (so ``0.0001459 s`` reads
``145.9 µs`` and ``17,155,735,552 B`` reads ``15.98 GiB``), keeps four significant digits and
writes thousands separators for values of 1,000 or more in the smallest unit. Zero, NaN and
infinities are written as they are (``0 s``, ``—``, ``∞``).
"""
from __future__ import annotations

import math

_TIME = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
_ENERGY = (("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12))
_MACS = (("TMAC", 1e12), ("GMAC", 1e9), ("MMAC", 1e6), ("kMAC", 1e3), ("MAC", 1.0))
_BYTES = (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10), ("B", 1.0))


def number(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits, thousands separators, no exponent from 1e-6
    to 1e15 (beyond, as 1.000e+300 or 5.000e-301: hundreds of digits read as none)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}" if abs(x) < 1e15 else f"{x:.{digits - 1}e}"
    if abs(x) < 1e-6:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    out = f"{x:,.{decimals}f}"
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out


def _scaled(x: float, scale: tuple[tuple[str, float], ...], digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0 or math.isinf(x):
        return f"{number(x, digits)} {_base(scale)}"
    for unit, size in scale:
        if abs(x) >= size:
            return f"{number(x / size, digits)} {unit}"
    unit, size = scale[-1]
    return f"{number(x / size, digits)} {unit}"


def _base(scale: tuple[tuple[str, float], ...]) -> str:
    return next(u for u, s in scale if s == 1.0)


def seconds(x: float, digits: int = 4) -> str:
    return _scaled(x, _TIME, digits)


def joules(x: float, digits: int = 4) -> str:
    return _scaled(x, _ENERGY, digits)


def nbytes(x: float, digits: int = 4) -> str:
    return _scaled(x, _BYTES, digits)


def macs(x: float, digits: int = 4) -> str:
    return _scaled(x, _MACS, digits)


def unit_for(x: float, kind: str = "energy") -> tuple[str, float]:
    """(unit, size) the formatters would write ``x`` in (``kind``: time, energy, bytes), so a
    page can state every number of that kind in the one unit its headline uses."""
    scale = {"time": _TIME, "energy": _ENERGY, "bytes": _BYTES}[kind]
    if x is None or not math.isfinite(x) or x == 0:
        return next((u, s) for u, s in scale if s == 1.0)
    return next(((u, s) for u, s in scale if abs(x) >= s), scale[-1])


def in_unit(x: float, unit: tuple[str, float], digits: int = 4) -> str:
    """``x`` in the given (unit, size): ``in_unit(0.0012, ("mJ", 1e-3))`` is ``1.2 mJ``."""
    return f"{number(x / unit[1], digits)} {unit[0]}"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: ``1 chip``, ``8 chips``, ``1,024 chips``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"

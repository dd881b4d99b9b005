"""Roofline: pure functions. Attainable throughput is min(peak, bandwidth x intensity)."""
from __future__ import annotations

import math


def roof_tops(peak_tops: float, bandwidth_bytes_s: float, intensity: float) -> float:
    """Attainable TOPS at ``intensity`` ops per HBM byte."""
    if math.isinf(intensity):
        return peak_tops
    return min(peak_tops, bandwidth_bytes_s * intensity / 1e12)


def ridge_point(peak_tops: float, bandwidth_bytes_s: float) -> float:
    """Intensity (ops/byte) where the memory slope meets the compute roof."""
    return peak_tops * 1e12 / bandwidth_bytes_s


def bound_of(kind: str, lt) -> str:
    """What limits a layer: the largest of its compute, HBM and SRAM times."""
    if lt.stall_sram > 0:
        return "sram"
    if kind == "vector":
        return "hbm" if lt.hbm_cycles > lt.compute_cycles else "vector"
    return "hbm" if lt.hbm_cycles > lt.compute_cycles else "compute"

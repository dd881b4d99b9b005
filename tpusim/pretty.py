"""HTML tables with headers people read and cells in human units (:mod:`tpusim.units`).

A column's header and format follow from its name: ``latency_s`` is "latency" in ms/µs,
``energy_per_inference_j`` "energy per inference" in one energy unit for the whole table (the
page's, when it passes one), ``hbm_bytes`` in MiB/GiB, ``utilization`` a percentage,
``chip_mm2`` "chip mm²". Config paths (``array.rows``) and plain words stay as they are.
"""
from __future__ import annotations

import html
import math
import numbers
from typing import Any, Callable

from . import units

HEADERS = {
    "latency_s": "latency", "throughput_per_s": "throughput (/s)",
    "energy_per_inference_j": "energy per inference", "energy_j": "energy",
    "edp_j_s": "EDP (energy × latency)", "utilization": "utilization",
    "hbm_bytes": "off-chip traffic", "chip_mm2": "chip mm² (≥)", "array_mm2": "arrays mm²",
    "sram_mm2": "SRAM mm²", "tops_per_w": "TOPS/W", "tops_per_mm2": "TOPS/mm²",
    "throughput_per_mm2": "inferences/s/mm²", "achieved_tops_per_mm2": "achieved TOPS/mm²",
    "avg_power_w": "average power (W)", "inferences_per_j": "inferences/J",
    "multiplier_full_adders": "multiplier full adders", "mac_area_um2": "MAC µm²",
    "mac_energy_pj": "MAC pJ", "array_area_mm2": "array mm²", "peak_tops": "peak TOPS",
    "gemm_rel_error": "GEMM relative error", "achieved_tops": "achieved TOPS",
    "error": "why", "points": "points",
    # serving (serve.json)
    "ttft_s": "TTFT (time to first token)", "tpot_s": "TPOT (time per output token)",
    "e2e_s": "end-to-end latency", "simulated_s": "simulated time",
    "mean_in_system": "mean requests in system", "kv_blocks": "KV blocks",
    "offered_rate": "offered rate (/s)",
}


def header(col: str) -> str:
    """The words for a column name."""
    if col in HEADERS:
        return HEADERS[col]
    if "." in col:                        # a config path: what the user typed
        return col
    for suffix, unit in (("_mm2", " mm²"), ("_um2", " µm²"), ("_pj", " pJ"), ("_w", " (W)")):
        if col.endswith(suffix):
            return col[: -len(suffix)].replace("_", " ") + unit
    if col.endswith("_per_s"):            # a rate: requests_per_s is "requests/s"
        return col[: -len("_per_s")].replace("_", " ") + "/s"
    for suffix in ("_s", "_j", "_bytes"):
        if col.endswith(suffix):
            return col[: -len(suffix)].replace("_", " ")
    return col.replace("_", " ")


def formatter(col: str, values: list, energy_unit: tuple[str, float] | None = None
              ) -> Callable[[Any], str]:
    """How the cells of ``col`` are written (one unit per column for energy)."""
    nums = [abs(float(v)) for v in values if _num(v) and math.isfinite(float(v)) and v != 0]
    mid = sorted(nums)[len(nums) // 2] if nums else 0.0
    if col == "utilization" or col.startswith("share_") or col.endswith("_fraction"):
        return lambda v: f"{float(v):.1%}"
    if col == "edp_j_s":       # the table's energy unit times the time unit that reads best
        eu = energy_unit or units.unit_for(math.sqrt(mid) if mid else 0.0)

        def edp(v: Any) -> str:
            t = float(v) / eu[1]
            tu = units.unit_for(t, "time")
            return f"{units.number(t / tu[1])} {eu[0]}·{tu[0]}"
        return edp
    if col.endswith("_j") or col == "energy_j":
        unit = energy_unit or units.unit_for(mid)
        return lambda v: units.in_unit(float(v), unit)
    if "_per_" in col or col.endswith("_w"):     # rates and watts: plain numbers
        return lambda v: units.number(float(v))
    if col.endswith("_s"):
        return lambda v: units.seconds(float(v))
    if col.endswith("_bytes"):
        return lambda v: units.nbytes(float(v))
    if col == "gemm_rel_error":
        return lambda v: f"{float(v):.2e}"
    return lambda v: units.number(float(v))


def _num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool,)) and type(v).__name__ != "bool_"


def _cell(v: Any, fmt: Callable[[Any], str]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if not _num(v):
        return str(v)
    try:
        return fmt(v)
    except (TypeError, ValueError):
        return str(v)


def html_table(df, energy_unit: tuple[str, float] | None = None) -> str:
    """``df`` as an HTML table: readable headers, human units, text columns left-aligned."""
    if not len(df):
        return ""
    cols = list(df.columns)
    fmts = {c: formatter(c, list(df[c]), energy_unit) for c in cols}
    text = {c: not any(_num(v) for v in df[c]) for c in cols}
    head = "".join(f"<th{' class=l' if text[c] else ''}>{html.escape(header(c))}</th>"
                   for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=l' if text[c] else ''}>"
                         f"{html.escape(_cell(v, fmts[c]))}</td>" for c, v in zip(cols, row))
        + "</tr>" for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"

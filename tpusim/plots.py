"""Plotly figures of one run built from its DataFrames only: time per layer by cause, energy by
component, and the colours and labels every report shares.

Every page embeds plotly.js (no CDN), so it opens from file:// with no network. Figures get fixed
div ids, so the same result gives a byte-identical page.

Figures here are :class:`tpusim.figure.Figure` dicts, not plotly ``graph_objects`` (whose import
and per-property validation were most of a report's time); :func:`figures_html` writes them with
the ``plotly_white`` template's JSON read from plotly's package data, and writes plotly figures
made elsewhere (sweeps, fidelity, formats) through ``plotly.io``.
"""
from __future__ import annotations

import pandas as pd

from .figure import Figure
from .html_page import CSS, TEMPLATE, figures_html, page  # noqa: F401  (re-exported)

BOUND_COLORS = {"compute": "#2a9d8f", "hbm": "#e76f51", "sram": "#e9c46a", "vector": "#577590"}
BOUND_LABELS = {"compute": "compute-bound", "hbm": "HBM-bound", "sram": "SRAM-bound",
                "vector": "vector-bound"}
# One colour per series (workload, format, run) where colour means the series, not the bound.
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon",
           "triangle-down", "pentagon")
ROOF_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

# Parts of a layer's time, in stacking order: (label, colour).
TIME_PARTS = {
    "array busy": "#2a9d8f", "weight shift": "#8ab17d", "fill/drain": "#b5d6b2",
    "vector unit": "#577590", "stall: weights": "#e76f51", "stall: inputs": "#f4a261",
    "stall: outputs": "#e9c46a", "stall: SRAM": "#9c6644", "per-op overhead": "#adb5bd",
}
ENERGY_PARTS = {"mac": ("MACs", "#2a9d8f"), "vector": ("vector unit", "#577590"),
                "sram": ("SRAM", "#e9c46a"), "hbm": ("HBM / DRAM", "#e76f51"),
                "static": ("static", "#adb5bd")}


# ------------------------------------------------------------------ time and energy

def time_parts(df: pd.DataFrame) -> pd.DataFrame:
    """Cycles of each layer (x count) split into the parts of ``TIME_PARTS``; sums to cycles."""
    cnt = df["count"]
    vec = (df["kind"] == "vector").to_numpy()
    compute = df["compute_cycles"].astype(float)
    shift = df["weight_shift_cycles"].astype(float).where(~vec, 0.0)
    fill = df["fill_drain_cycles"].astype(float).where(~vec, 0.0)
    busy = (compute - shift - fill).clip(lower=0).where(~vec, 0.0)
    out = pd.DataFrame({
        "array busy": busy, "weight shift": shift, "fill/drain": fill,
        "vector unit": compute.where(vec, 0.0),
        "stall: weights": df["stall_weight_cycles"], "stall: inputs": df["stall_input_cycles"],
        "stall: outputs": df["stall_output_cycles"], "stall: SRAM": df["stall_sram_cycles"],
        "per-op overhead": df["overhead_cycles"],
    }).astype(float)
    return out.mul(cnt, axis=0)


def time_per_layer_figure(df: pd.DataFrame, clock_ghz: float | None = None):
    """Stacked bars: each layer's time (x count) by compute part, stall cause and overhead."""
    from . import units
    parts = time_parts(df)
    scale, unit = 1.0, "cycles"
    if clock_ghz:   # the unit of the longest layer's time, for every bar
        unit, size = units.unit_for(float(parts.sum(axis=1).max() or 0) / (clock_ghz * 1e9),
                                    "time")
        scale = 1 / (clock_ghz * 1e9 * size)
    fig = Figure()
    x = _unique_names(df["name"])
    for label, color in TIME_PARTS.items():
        y = parts[label] * scale
        if y.sum() > 0:
            fig.add_bar(x=x, y=y, name=label, marker_color=color,
                        hovertemplate=f"%{{x}}<br>{label}: %{{y:,.4g}} {unit}<extra></extra>")
    # legend above the plot: long layer names below it would run into it
    fig.update_layout(barmode="stack", title="Time per layer (x count)",
                      xaxis={"title": "layer", "automargin": True}, yaxis_title=unit,
                      height=520, legend={"orientation": "h", "y": 1.0, "yanchor": "bottom",
                                          "x": 0, "traceorder": "normal"},
                      margin={"t": 90, "b": 40})
    return fig


def energy_figure(summary: dict, df: pd.DataFrame | None = None, offchip: str = "HBM / DRAM",
                  unit: tuple[str, float] | None = None):
    """Donut of the run's energy by component; with the layers ``df``, beside it each layer's
    energy (x count) stacked by component. Every energy is in ``unit`` (default: the unit of
    the run's total, :func:`tpusim.units.unit_for`); ``offchip`` names the memory part."""
    from . import units
    unit = unit or units.unit_for(summary["energy_j"])
    uname, usize = unit
    names = {**{k: v[0] for k, v in ENERGY_PARTS.items()}, "hbm": offchip}
    br = summary["energy_breakdown_j"]
    keys = [k for k in br if br[k] > 0]
    pie = dict(labels=[names.get(k, k) for k in keys],
               values=[br[k] / usize for k in keys], hole=0.45, sort=False,
               showlegend=df is None,
               marker_colors=[ENERGY_PARTS.get(k, ("", None))[1] for k in keys],
               textinfo="percent", textposition="inside", insidetextorientation="horizontal",
               hovertemplate=f"%{{label}}: %{{value:,.4g}} {uname} (%{{percent}})<extra></extra>")
    title = f"Energy by component ({units.in_unit(summary['energy_j'], unit)} per run)"
    fig = Figure()
    if df is None:
        fig.add_pie(**pie)
        fig.update_layout(title=title, height=420)
        return fig
    # two panels as make_subplots(cols=2, column_widths=[0.36, 0.64], horizontal_spacing=0.08)
    # lays them out: the donut left, the bars right
    fig.add_pie(**pie, domain={"x": [0.0, 0.3312], "y": [0.0, 1.0]})
    fig.update_layout(xaxis={"anchor": "y", "domain": [0.4112, 1.0]},
                      yaxis={"anchor": "x", "domain": [0.0, 1.0]})
    x = _unique_names(df["name"])
    for key, (label, color) in ENERGY_PARTS.items():
        label = names[key]
        y = df[f"{key}_energy_pj"] * df["count"] * 1e-12 / usize
        if y.sum() > 0:
            fig.add_bar(x=x, y=y, name=label, marker_color=color,
                        hovertemplate=f"%{{x}}<br>{label}: %{{y:,.4g}} {uname}<extra></extra>",
                        xaxis="x", yaxis="y")
    fig.update_yaxes(title_text=f"{uname} per layer (x count)")
    fig.update_layout(title=title, barmode="stack", height=520,
                      legend={"orientation": "h", "y": 1.04, "yanchor": "bottom", "x": 0.4,
                              "traceorder": "normal"},
                      xaxis={"automargin": True}, margin={"t": 90, "b": 40})
    return fig


def _unique_names(names: pd.Series) -> list[str]:
    """Layer names as bar categories; repeated names get a #2, #3 suffix so bars stay apart."""
    seen: dict[str, int] = {}
    out = []
    for n in names.astype(str):
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out

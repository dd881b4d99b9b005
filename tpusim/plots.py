"""Plotly figures built from result DataFrames only, and the self-contained HTML pages.

Every page embeds plotly.js (no CDN), so it opens from file:// with no network.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pandas as pd

from .roofline import ridge_point

if TYPE_CHECKING:
    from .simulate import Result

BOUND_COLORS = {"compute": "#2a9d8f", "hbm": "#e76f51", "sram": "#e9c46a", "vector": "#577590"}


def time_per_layer_figure(df: pd.DataFrame):
    import plotly.graph_objects as go
    fig = go.Figure()
    total = df["count"]
    parts = [("compute_cycles", "compute"), ("stall_weight_cycles", "stall: weights"),
             ("stall_input_cycles", "stall: inputs"), ("stall_output_cycles", "stall: outputs"),
             ("stall_sram_cycles", "stall: SRAM"), ("overhead_cycles", "per-op overhead")]
    for col, label in parts:
        if (df[col] * total).sum() > 0:
            fig.add_bar(x=df["name"], y=df[col] * total, name=label)
    fig.update_layout(barmode="stack", title="Cycles per layer (x count)",
                      xaxis_title="layer", yaxis_title="cycles", legend_orientation="h")
    return fig


def energy_figure(summary: dict):
    import plotly.graph_objects as go
    br = summary["energy_breakdown_j"]
    fig = go.Figure(go.Pie(labels=list(br), values=list(br.values()), hole=0.4))
    fig.update_layout(title=f"Energy breakdown ({summary['energy_j']:.3g} J)")
    return fig


def roofline_figure(df: pd.DataFrame, peak_tops: float, bandwidth_bytes_s: float,
                    title: str = "Roofline"):
    import plotly.graph_objects as go
    g = df[(df["macs"] > 0)].copy()
    fig = go.Figure()
    finite = g["intensity"].replace(math.inf, float("nan")).dropna()
    lo = max(min(finite.min() if len(finite) else 1.0, 1.0) / 4, 1e-3)
    ridge = ridge_point(peak_tops, bandwidth_bytes_s)
    hi = max(finite.max() if len(finite) else ridge, ridge) * 4
    xs = [lo, ridge, hi]
    fig.add_scatter(x=xs, y=[min(peak_tops, bandwidth_bytes_s * x / 1e12) for x in xs],
                    mode="lines", name="roof", line={"color": "black"})
    fig.add_scatter(x=[ridge], y=[peak_tops], mode="markers", name=f"ridge {ridge:.3g} ops/B",
                    marker={"symbol": "diamond", "size": 10, "color": "black"})
    share = g["cycles"] * g["count"]
    size = 6 + 30 * (share / share.max()) ** 0.5 if len(g) else []
    for bound, sub in g.groupby("bound"):
        fig.add_scatter(
            x=sub["intensity"].clip(upper=hi), y=sub["achieved_tops"], mode="markers",
            name=bound, marker={"color": BOUND_COLORS.get(bound), "size": size[sub.index]},
            customdata=sub[["name", "m", "k", "n", "format", "cycles", "hbm_read_bytes"]],
            hovertemplate="%{customdata[0]}<br>m=%{customdata[1]} k=%{customdata[2]} "
                          "n=%{customdata[3]}<br>%{customdata[4]}, %{customdata[5]:.4g} cycles"
                          "<br>HBM read %{customdata[6]:.4g} B<br>%{x:.3g} ops/B, "
                          "%{y:.3g} TOPS<extra></extra>")
    fig.update_layout(title=title, xaxis_type="log", yaxis_type="log",
                      xaxis_title="operational intensity (ops per HBM byte)",
                      yaxis_title="TOPS")
    return fig


def page(title: str, body_parts: list[str]) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;"
            "margin:2em;max-width:1200px}} table{border-collapse:collapse} td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            + "".join(body_parts) + "</body></html>")


def figures_html(figs) -> list[str]:
    out = []
    for i, fig in enumerate(figs):
        out.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    return out


def report_html(result: "Result") -> str:
    s = result.summary
    chip = result.config
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in s.items() if not isinstance(v, dict))
    bw = chip.memory.hbm.bandwidth_gbps * 1e9 * chip.memory.hbm.efficiency
    figs = [time_per_layer_figure(result.layers), energy_figure(s),
            roofline_figure(result.layers, s["peak_tops"], bw,
                            f"Roofline: {s['workload']} on {s['config']}")]
    return page(f"tpusim: {s['workload']} on {s['config']}",
                [f"<h1>{html.escape(s['workload'])} on {html.escape(s['config'])}</h1>",
                 f"<p>{html.escape(chip.description)}</p><table>{rows}</table>",
                 *figures_html(figs)])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)

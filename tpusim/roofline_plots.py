"""The roofline chart: log-log, a compute roof per format and the vector roof over the HBM slope,
ridge points marked, one point per layer (or per workload) coloured by what bounds it.

Built from :func:`tpusim.roofline.layer_table` tables only, so the chart shows the numbers the
CSV holds.
"""
from __future__ import annotations

import math

import pandas as pd

from .figure import Figure
from .plots import BOUND_COLORS, BOUND_LABELS, ROOF_DASHES, SYMBOLS
from .roofline import BOUNDS, ChipRoofs, ridge_point, workload_summary

def _shape(r) -> str:
    if r.kind == "vector" or pd.isna(r.m):
        return "vector op"
    return f"{r.m}x{r.k}x{r.n}"


def _x_range(xs: list[float], ridges: list[float]) -> tuple[float, float]:
    vals = [v for v in [*xs, *ridges] if v > 0 and math.isfinite(v)]
    if not vals:
        return 0.1, 1e4
    return min(vals) / 4, max(vals) * 4


def _roof_line(lo: float, hi: float, peak: float, bw: float) -> tuple[list[float], list[float]]:
    ridge = ridge_point(peak, bw)
    xs = [lo] + ([ridge] if lo < ridge < hi else []) + [hi]
    return xs, [min(peak, bw * x / 1e12) for x in xs]


def roofline_chart(tables: list[pd.DataFrame] | pd.DataFrame, roofs: ChipRoofs,
                   title: str = "Roofline", per_workload: bool = False,
                   reference: pd.DataFrame | None = None):
    """Log-log roofline of one or more ``roofline.layer_table`` tables (one per workload and
    format): a roof per format and the vector roof over the HBM slope, ridges marked, one point
    per layer (area ~ share of the series' time, colour = bound), or with ``per_workload`` one
    point per table. SRAM points (x = ops per SRAM byte) and the SRAM slope are in the legend,
    hidden until clicked unless the config sets an SRAM bandwidth. Layers with no HBM traffic
    (infinite intensity) are drawn at half the right edge of the axis; their hover says so.
    ``reference``: extra points with columns ``name, ops_per_byte, tops``.
    """
    tables = [tables] if isinstance(tables, pd.DataFrame) else list(tables)
    if per_workload:
        points = pd.DataFrame([workload_summary(t, roofs) for t in tables])
        xs = list(points["ops_per_hbm_byte"]) if len(points) else []
    else:
        xs = [x for t in tables for x in t["ops_per_hbm_byte"]]
    fmts = sorted({f for t in tables for f in t.loc[t["kind"] == "gemm", "format"]})
    fmts = fmts or list(roofs.compute_tops)[:1]
    has_vec = not per_workload and any((t["kind"] == "vector").any() for t in tables)
    ridges = [roofs.ridge(f) for f in fmts] + ([roofs.vector_ridge] if has_vec else [])
    if reference is not None and len(reference):
        xs += list(reference["ops_per_byte"])
    lo, hi = _x_range(xs, ridges)
    fig = Figure()

    # Roofs: one compute roof per format over the HBM slope, then the vector roof.
    for i, f in enumerate(fmts):
        peak = roofs.compute_tops[f]
        x, y = _roof_line(lo, hi, peak, roofs.hbm_bytes_s)
        fig.add_scatter(x=x, y=y, mode="lines", name=f"{f} roof {peak:.4g} TOPS",
                        line={"color": "#222", "width": 2.5, "dash": ROOF_DASHES[i % 5]},
                        hovertemplate=f"{f} roof<br>%{{x:.4g}} ops/B → %{{y:.4g}} TOPS"
                                      "<extra></extra>")
    if has_vec:
        x, y = _roof_line(lo, hi, roofs.vector_tops, roofs.hbm_bytes_s)
        fig.add_scatter(x=x, y=y, mode="lines", name=f"vector roof {roofs.vector_tops:.3g} TOPS",
                        line={"color": BOUND_COLORS["vector"], "width": 2, "dash": "dot"},
                        hoverinfo="skip")
    rx = [roofs.ridge(f) for f in fmts]
    fig.add_scatter(x=rx, y=[roofs.compute_tops[f] for f in fmts], mode="markers+text",
                    name="ridge point", text=[f"ridge {r:,.0f} ops/B" for r in rx],
                    textposition="top left", marker={"symbol": "diamond", "size": 11,
                                                     "color": "#222"},
                    hovertemplate="ridge %{x:.4g} ops/B at %{y:.4g} TOPS<extra></extra>")
    fig.add_annotation(x=math.log10(lo * 1.5), y=math.log10(roofs.hbm_bytes_s * lo * 1.5 / 1e12),
                       text=f"HBM {roofs.hbm_bytes_s / 1e9:.4g} GB/s", showarrow=False,
                       yshift=12, xanchor="left", font={"size": 11, "color": "#444"})

    if per_workload:
        _workload_points(fig, points, hi)
    else:
        _layer_points(fig, tables, hi)
        _sram_layer(fig, tables, roofs, fmts, lo, hi)
    if reference is not None and len(reference):
        fig.add_scatter(x=reference["ops_per_byte"], y=reference["tops"], mode="markers+text",
                        name="reference", text=reference["name"], textposition="bottom right",
                        marker={"symbol": "circle-open", "size": 12, "color": "#555",
                                "line": {"width": 2}},
                        hovertemplate="%{text} (reference)<br>%{x:.4g} ops/B, %{y:.4g} TOPS"
                                      "<extra></extra>")
    ys = [y for tr in fig.data if tr.y is not None for y in tr.y
          if y is not None and y > 0 and math.isfinite(y)]
    y_lo = max(min(ys) / 3, 1e-9) if ys else 1e-3
    y_hi = max(ys) * 3 if ys else 1e3
    fig.update_layout(
        title=title, height=640, hovermode="closest",
        xaxis={"type": "log", "title": "operational intensity (ops per HBM byte)",
               "range": [math.log10(lo), math.log10(hi)]},
        yaxis={"type": "log", "title": "throughput (TOPS, 1 MAC = 2 ops)",
               "range": [math.log10(y_lo), math.log10(y_hi)]},
        legend={"itemsizing": "constant"}, margin={"t": 60})
    return fig


def _label(t: pd.DataFrame) -> str:
    fmts = sorted(set(t.loc[t["kind"] == "gemm", "format"])) or sorted(set(t["format"]))
    wl = str(t["workload"].iloc[0]) if len(t) else ""
    return " ".join(p for p in (wl, "/".join(fmts)) if p)


def plotted_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a layer table that appear on the chart: those that took time and did work."""
    return table[(table["achieved_tops"] > 0) & (table["time_s"] > 0)]


def _layer_points(fig, tables: list[pd.DataFrame], hi: float) -> None:
    several = len(tables) > 1
    for s, t in enumerate(tables):
        g = plotted_layers(t)
        if not len(g):
            continue
        share = g["time_share"] / g["time_share"].max()
        size = 7 + 33 * share ** 0.5
        label = _label(t)
        for bound in BOUNDS:
            sub = g[g["bound"] == bound]
            if not len(sub):
                continue
            x = sub["ops_per_hbm_byte"].where(sub["ops_per_hbm_byte"] < math.inf, hi / 2)
            custom = [[r.name, _shape(r), r.format, r.cycles, r.count, r.hbm_bytes, r.sram_bytes,
                       r.time_share * 100, r.attainable_tops, r.reason, r.workload, r.Index,
                       "∞ (on chip)" if math.isinf(r.ops_per_hbm_byte)
                       else f"{r.ops_per_hbm_byte:.4g}"]
                      for r in sub.itertuples()]
            fig.add_scatter(
                x=x, y=sub["achieved_tops"], mode="markers",
                name=f"{label} · {BOUND_LABELS[bound]}" if several else BOUND_LABELS[bound],
                legendgroup=f"s{s}", customdata=custom,
                meta={"series": s, "kind": "layers", "label": label},
                marker={"color": BOUND_COLORS[bound], "size": size[sub.index],
                        "symbol": SYMBOLS[s % len(SYMBOLS)], "opacity": 0.85,
                        "line": {"width": 1, "color": "white"}},
                hovertemplate=(
                    "<b>%{customdata[0]}</b> (%{customdata[10]})<br>shape m×k×n "
                    "%{customdata[1]}, %{customdata[2]}<br>%{customdata[3]:,.0f} cycles × "
                    "%{customdata[4]} = %{customdata[7]:.1f}% of time<br>HBM "
                    "%{customdata[5]:,.0f} B, SRAM %{customdata[6]:,.0f} B<br>"
                    "%{customdata[12]} ops/B → %{y:.4g} TOPS (roof %{customdata[8]:.4g})"
                    "<br>%{customdata[9]}<extra></extra>"))


def _sram_layer(fig, tables: list[pd.DataFrame], roofs: ChipRoofs, fmts: list[str], lo: float,
                hi: float) -> None:
    f = fmts[0]
    bw = roofs.sram_bytes_s.get(f)
    if bw is None:
        return
    derived = "" if roofs.sram_limits else ", derived"
    visible = True if roofs.sram_limits else "legendonly"  # shown when it can bind
    xs = [lo / 100, hi]
    fig.add_scatter(x=xs, y=[min(roofs.compute_tops[f], bw * x / 1e12) for x in xs],
                    mode="lines", name=f"SRAM slope {bw / 1e12:.3g} TB/s (x = ops/SRAM B{derived})",
                    legendgroup="sram", visible=visible,
                    line={"color": BOUND_COLORS["sram"], "width": 2, "dash": "dash"},
                    hoverinfo="skip")
    for s, t in enumerate(tables):
        g = plotted_layers(t)
        g = g[g["ops_per_sram_byte"] < math.inf]
        if not len(g):
            continue
        fig.add_scatter(x=g["ops_per_sram_byte"], y=g["achieved_tops"], mode="markers",
                        name=f"{_label(t)} per SRAM byte" if len(tables) > 1
                        else "layers per SRAM byte", legendgroup="sram", visible=visible,
                        meta={"series": s, "kind": "sram"}, text=g["name"],
                        marker={"symbol": SYMBOLS[s % len(SYMBOLS)] + "-open", "size": 9,
                                "color": BOUND_COLORS["sram"]},
                        hovertemplate="%{text}<br>%{x:.4g} ops per SRAM byte, %{y:.4g} TOPS"
                                      "<extra></extra>")


def _workload_points(fig, points: pd.DataFrame, hi: float) -> None:
    several = points["format"].nunique() > 1
    points = points.assign(text=points["workload"] + (" " + points["format"] if several else ""))
    for bound in BOUNDS:
        sub = points[points["bound"] == bound]
        if not len(sub):
            continue
        custom = [[r.workload, r.format, r.time_s * 1e3, r.hbm_bytes, r.ops,
                   r.memory_bound_fraction * 100, r.headroom, r.attainable_tops]
                  for r in sub.itertuples()]
        fig.add_scatter(
            x=sub["ops_per_hbm_byte"].where(sub["ops_per_hbm_byte"] < math.inf, hi / 2),
            y=sub["achieved_tops"], mode="markers+text", text=sub["text"],
            textposition="top center", name=f"mostly {BOUND_LABELS[bound]}",
            customdata=custom, meta={"kind": "workloads"},
            marker={"color": BOUND_COLORS[bound], "size": 16, "line": {"width": 1,
                                                                         "color": "white"}},
            hovertemplate=("<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{customdata[2]:.4g} ms, "
                           "%{customdata[4]:.4g} ops, HBM %{customdata[3]:,.0f} B<br>"
                           "%{x:.4g} ops/B → %{y:.4g} TOPS (roof %{customdata[7]:.4g})<br>"
                           "memory-bound %{customdata[5]:.0f}% of time, headroom "
                           "%{customdata[6]:.2f}x<extra></extra>"))


def roofline_figure(df: pd.DataFrame, peak_tops: float, bandwidth_bytes_s: float,
                    title: str = "Roofline"):
    """Single-roof chart straight from ``layers.csv`` columns (intensity, achieved_tops, bound).

    Kept for callers with only a layers table; :func:`roofline_chart` draws the full
    hierarchical chart from :func:`tpusim.roofline.layer_table`.
    """
    g = df[(df["kind"] == "gemm") & (df["achieved_tops"] > 0)].copy()
    fig = Figure()
    finite = [v for v in g["intensity"] if math.isfinite(v)]
    ridge = ridge_point(peak_tops, bandwidth_bytes_s)
    lo, hi = _x_range(finite, [ridge])
    x, y = _roof_line(lo, hi, peak_tops, bandwidth_bytes_s)
    fig.add_scatter(x=x, y=y, mode="lines", name="roof", line={"color": "black"})
    fig.add_scatter(x=[ridge], y=[peak_tops], mode="markers", name=f"ridge {ridge:.4g} ops/B",
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

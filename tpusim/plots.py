"""Plotly figures built from result DataFrames only, and the self-contained HTML pages.

Every page embeds plotly.js (no CDN), so it opens from file:// with no network. Figures get fixed
div ids, so the same result gives a byte-identical page.

Figures here are :class:`tpusim.figure.Figure` dicts, not plotly ``graph_objects`` (whose import
and per-property validation were most of a report's time); :func:`figures_html` writes them with
the ``plotly_white`` template's JSON read from plotly's package data, and writes plotly figures
made elsewhere (sweeps, fidelity, formats) through ``plotly.io``.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pandas as pd

from .figure import Figure, figure_div, template
from .roofline import BOUNDS, ChipRoofs, chip_roofs, layer_table, ridge_point, workload_summary

if TYPE_CHECKING:
    from .simulator import Result

BOUND_COLORS = {"compute": "#2a9d8f", "hbm": "#e76f51", "sram": "#e9c46a", "vector": "#577590"}
BOUND_LABELS = {"compute": "compute-bound", "hbm": "HBM-bound", "sram": "SRAM-bound",
                "vector": "vector-bound"}
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon",
           "triangle-down", "pentagon")
ROOF_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
TEMPLATE = "plotly_white"

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
    parts = time_parts(df)
    scale, unit = (1.0, "cycles") if not clock_ghz else (1e6 / (clock_ghz * 1e9), "µs")
    fig = Figure()
    x = _unique_names(df["name"])
    for label, color in TIME_PARTS.items():
        y = parts[label] * scale
        if y.sum() > 0:
            fig.add_bar(x=x, y=y, name=label, marker_color=color,
                        hovertemplate=f"%{{x}}<br>{label}: %{{y:.4g}} {unit}<extra></extra>")
    fig.update_layout(barmode="stack", title="Time per layer (x count)",
                      xaxis_title="layer", yaxis_title=unit, height=460,
                      legend={"orientation": "h", "y": -0.25, "traceorder": "normal"},
                      margin={"t": 50, "b": 40})
    return fig


def energy_figure(summary: dict, df: pd.DataFrame | None = None):
    """Donut of the run's energy by component; with the layers ``df``, beside it each layer's
    energy (x count) stacked by component, in µJ."""
    br = summary["energy_breakdown_j"]
    keys = [k for k in br if br[k] > 0]
    pie = dict(labels=[ENERGY_PARTS.get(k, (k,))[0] for k in keys],
               values=[br[k] for k in keys], hole=0.45, sort=False, showlegend=df is None,
               marker_colors=[ENERGY_PARTS.get(k, ("", None))[1] for k in keys],
               textinfo="percent", textposition="inside", insidetextorientation="horizontal",
               hovertemplate="%{label}: %{value:.4g} J (%{percent})<extra></extra>")
    title = f"Energy by component ({summary['energy_j']:.4g} J per run)"
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
        y = df[f"{key}_energy_pj"] * df["count"] * 1e-6
        if y.sum() > 0:
            fig.add_bar(x=x, y=y, name=label, marker_color=color,
                        hovertemplate=f"%{{x}}<br>{label}: %{{y:.4g}} µJ<extra></extra>",
                        xaxis="x", yaxis="y")
    fig.update_yaxes(title_text="µJ per layer (x count)")
    fig.update_layout(title=title, barmode="stack", height=460,
                      legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
                      margin={"t": 80, "b": 40})
    return fig


def _unique_names(names: pd.Series) -> list[str]:
    """Layer names as bar categories; repeated names get a #2, #3 suffix so bars stay apart."""
    seen: dict[str, int] = {}
    out = []
    for n in names.astype(str):
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


# ------------------------------------------------------------------ roofline

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


# ------------------------------------------------------------------ pages

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;
 max-width:1240px;padding:0 1.5em;color:#222}
h1{margin-bottom:.1em} h2{margin-top:1.6em;border-bottom:2px solid #eee;padding-bottom:.2em}
.sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{flex:1 1 130px;border:1px solid #e3e3e3;border-radius:8px;padding:10px 14px;
 background:#fafafa}
.card .v{font-size:1.5em;font-weight:600} .card .k{color:#666;font-size:.85em}
.row{display:flex;flex-wrap:wrap;gap:12px} .row>div{flex:1 1 480px;min-width:0}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{padding:3px 9px;border-bottom:1px solid #e5e5e5;text-align:right;vertical-align:top}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.bound{display:inline-block;padding:0 6px;border-radius:4px;color:white;font-size:.85em}
.note{color:#666;font-size:.85em}
"""


def page(title: str, body_parts: list[str]) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(body_parts) + "</body></html>")


def figures_html(figs, first_id: int = 0) -> list[str]:
    """Each figure as a div; plotly.js is inlined once, with the first (no CDN)."""
    out = []
    config = {"displaylogo": False, "responsive": True}
    for i, fig in enumerate(figs):
        div_id = f"plot-{first_id + i}"
        if isinstance(fig, Figure):
            d = fig.to_dict()
            d["layout"] = {"template": template(TEMPLATE), **d["layout"]}
            out.append(figure_div(d, div_id, i == 0, config))
        else:   # a plotly graph_objects figure
            out.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=div_id,
                                   config=config))
    return out


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _card(value: str, key: str) -> str:
    return f"<div class='card'><div class='v'>{html.escape(value)}</div>" \
           f"<div class='k'>{html.escape(key)}</div></div>"


def _bound_badge(b: str) -> str:
    return f"<span class='bound' style='background:{BOUND_COLORS.get(b, '#888')}'>" \
           f"{html.escape(b)}</span>"


def layer_table_html(table: pd.DataFrame, top: int | None = 12) -> str:
    """The heaviest layers (by time) of a roofline table as an HTML table."""
    t = table.sort_values("time_share", ascending=False, kind="stable")
    if top:
        t = t.head(top)
    several = table["workload"].nunique() > 1
    head = ("<tr>" + ("<th class='l'>workload</th>" if several else "")
            + "<th class='l'>layer</th><th class='l'>shape m×k×n</th><th>format</th>"
            "<th>time</th><th>ops/HBM B</th><th>achieved / attainable TOPS</th>"
            "<th class='l'>bound</th><th class='l'>why</th></tr>")
    rows = []
    for r in t.itertuples():
        x = "∞" if math.isinf(r.ops_per_hbm_byte) else _num(r.ops_per_hbm_byte)
        wl = f"<td class='l'>{html.escape(str(r.workload))}</td>" if several else ""
        rows.append(
            f"<tr>{wl}<td class='l'>{html.escape(str(r.name))}</td>"
            f"<td class='l'>{html.escape(_shape(r))}</td><td>{html.escape(r.format)}</td>"
            f"<td>{r.time_share:.1%}</td><td>{x}</td>"
            f"<td>{r.achieved_tops:.4g} / {r.attainable_tops:.4g}</td>"
            f"<td class='l'>{_bound_badge(r.bound)}</td>"
            f"<td class='l note'>{html.escape(r.reason)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def report_html(result: "Result") -> str:
    """The page ``tpusim run`` writes: summary cards, time per layer, energy, roofline, the
    heaviest layers with their bound and its reason, and the roofline's assumptions."""
    s = result.summary
    chip = result.config
    roofs = chip_roofs(chip)
    table = layer_table(result.layers, chip, roofs, s["workload"])
    ws = workload_summary(table, roofs)
    headroom = "—" if not math.isfinite(ws["headroom"]) else f"{ws['headroom']:.2f}x"
    cards = [
        _card(f"{s['latency_s'] * 1e3:.4g} ms", f"latency ({s['total_cycles']:,.0f} cycles)"),
        _card(f"{s['throughput_per_s']:,.4g}/s", f"inferences per second (batch {s['batch']})"),
        _card(f"{s['achieved_tops']:.4g} TOPS", f"achieved of {s['peak_tops']:.4g} peak "
              f"({s['utilization']:.1%} utilization)"),
        _card(f"{s['energy_per_inference_j'] * 1e3:.4g} mJ", "energy per inference"),
        _card(f"{s['hbm_bytes'] / 2**20:,.4g} MiB", "HBM traffic"),
        _card(f"{ws['memory_bound_fraction']:.0%}", "of time memory-bound"),
        _card(headroom, "headroom: time / time at the roofs"),
    ]
    shares = ", ".join(f"{BOUND_LABELS[b]} {v:.0%}" for b, v in s["bound_share"].items() if v)
    figs = [roofline_chart(table, roofs, f"Roofline: {s['workload']} on {s['config']}"),
            time_per_layer_figure(result.layers, chip.clock_ghz),
            energy_figure(s, result.layers)]
    divs = figures_html(figs)
    from .provenance import describe_chip  # from the resolved fields, never the preset's text
    sub = (f"{describe_chip(chip)} · format {s['format']} · batch {s['batch']} · "
           f"{s['timing_model']} timing ({s['engine']})")
    assumptions = "".join(f"<li>{html.escape(a)}</li>" for a in roofs.assumptions)
    foot = (f"tpusim {s.get('tpusim_version', '')}; simulated in "
            f"{s.get('simulator_seconds', 0) * 1e3:.3g} ms.")
    return page(f"tpusim: {s['workload']} on {s['config']}", [
        f"<h1>{html.escape(s['workload'])} on {html.escape(s['config'])}</h1>",
        f"<p class='sub'>{html.escape(sub)}</p>", "<div class='cards'>", *cards, "</div>",
        f"<p>Time by bound: {html.escape(shares)}.</p>",
        "<h2>Roofline</h2>", divs[0],
        "<h2>Time per layer</h2>", divs[1],
        "<h2>Energy</h2>", divs[2],
        "<h2>Heaviest layers</h2>", layer_table_html(table),
        "<h2>Assumptions</h2>", f"<ul class='note'>{assumptions}</ul>",
        f"<p class='note'>{html.escape(foot)}</p>"])


def roofline_page(fig, title: str, tables_html: list[str], notes: list[str]) -> str:
    """The page ``tpusim roofline`` writes: the chart, then tables and notes."""
    return page(title, [f"<h1>{html.escape(title)}</h1>", *figures_html([fig]), *tables_html,
                        "<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>"
                                                      for n in notes) + "</ul>"])


def _inf_num(x: float, spec: str = ".4g") -> str:
    return "∞" if isinstance(x, float) and math.isinf(x) else format(x, spec)


def workload_table_html(wt: pd.DataFrame) -> str:
    """The per-workload roofline table (``roofline.workload_table``) as an HTML table."""
    head = ("<tr><th class='l'>workload</th><th>format</th><th>time</th><th>ops/HBM B</th>"
            "<th>achieved / attainable TOPS</th><th>headroom</th><th>memory-bound</th>"
            "<th class='l'>bound</th></tr>")
    rows = "".join(
        f"<tr><td class='l'>{html.escape(str(r.workload))}</td><td>{html.escape(str(r.format))}"
        f"</td><td>{r.time_s * 1e3:.4g} ms</td><td>{_inf_num(r.ops_per_hbm_byte, ',.4g')}</td>"
        f"<td>{r.achieved_tops:.4g} / {r.attainable_tops:.4g}</td><td>{r.headroom:.2f}x</td>"
        f"<td>{r.memory_bound_fraction:.0%}</td><td class='l'>{html.escape(str(r.bound))}</td>"
        "</tr>" for r in wt.itertuples())
    return f"<table>{head}{rows}</table>"

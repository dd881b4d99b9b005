"""The roofline chart: log-log, a compute roof per format and the vector roof over the off-chip
memory slope, ridge points marked, one point per layer shape (or per workload).

Built from :func:`tpusim.roofline.layer_table` tables only, so the chart shows the numbers the
CSV holds. What a point's place and colour mean:

* a layer's colour is the roof that binds it (the lowest roof at its intensity: the compute
  roof, the off-chip slope, the SRAM slope or the vector roof), so a layer on the memory slope is
  never coloured "compute"; its hover adds what the timing model says holds it there;
* with several series (workloads, formats) colours are the series and the symbol is the roof;
* rows with the same shape, format and numbers are one marker, "×N" (hover lists them);
* rows that move no off-chip byte (``on_chip``: no intensity) sit in a shaded gutter right of
  the axis, labelled as such, not at a made-up x;
* the off-chip memory is named by its kind (``memory.hbm.kind``: DDR3, USB3, HBM2 ...);
* text labels are placed so they do not overlap (:mod:`tpusim.chart_labels`).
"""
from __future__ import annotations

import math

import pandas as pd

from . import units
from .chart_labels import place
from .figure import Figure
from .plots import BOUND_COLORS, ROOF_DASHES, SERIES_COLORS
from .roofline import BOUNDS, ChipRoofs, ridge_point, workload_summary
from .wording import bound_label  # noqa: F401  (re-exported; defined without pandas)

ROOF_SYMBOLS = {"compute": "circle", "hbm": "square", "sram": "diamond", "vector": "triangle-up"}
GUTTER = (1.25, 8.0)   # the on-chip gutter spans hi x these factors on the log axis


def roof_label(roof: str, offchip: str = "HBM") -> str:
    """A point class in words: the roof that binds it."""
    return {"compute": "compute roof", "hbm": f"{offchip} slope", "sram": "SRAM slope",
            "vector": "vector roof"}[roof]


def _shape(r) -> str:
    if r.kind == "vector" or pd.isna(r.m):
        return "vector op"
    return "x".join(f"{int(d)}" for d in (r.m, r.k, r.n))   # 12544x147x64, not 12544.0x..


def _x_range(xs: list[float], ridges: list[float]) -> tuple[float, float]:
    vals = [v for v in [*xs, *ridges] if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return 0.1, 1e4
    return min(vals) / 4, max(vals) * 4


def _roof_line(lo: float, hi: float, peak: float, bw: float) -> tuple[list[float], list[float]]:
    ridge = ridge_point(peak, bw)
    xs = [lo] + ([ridge] if lo < ridge < hi else []) + [hi]
    return xs, [min(peak, bw * x / 1e12) for x in xs]


def _on_chip(t: pd.DataFrame) -> pd.Series:
    if "on_chip" in t:
        return t["on_chip"].astype(bool)
    return ~t["ops_per_hbm_byte"].map(lambda v: v > 0 and math.isfinite(v))


def gutter_x(hi: float) -> float:
    """Where on-chip points sit: the middle of the gutter (log scale)."""
    return hi * math.sqrt(GUTTER[0] * GUTTER[1])


def _ticks(lo: float, hi: float) -> dict:
    """Decade ticks over the real axis only: none under the gutter."""
    k0, k1 = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    vals = [10.0 ** k for k in range(k0, k1 + 1)]
    return {"tickvals": vals, "ticktext": [units.number(v) for v in vals]}


def roofline_chart(tables: list[pd.DataFrame] | pd.DataFrame, roofs: ChipRoofs,
                   title: str = "Roofline", per_workload: bool = False,
                   reference: pd.DataFrame | None = None):
    """Log-log roofline of one or more ``roofline.layer_table`` tables (one per workload and
    format): a roof per format and the vector roof over the off-chip slope, ridges marked, one
    marker per distinct layer (area ~ share of the series' time; see the module docstring for
    colours), or with ``per_workload`` one point per table, coloured by workload. SRAM points
    (x = ops per SRAM byte) and the SRAM slope are in the legend, hidden until clicked unless
    the config sets an SRAM bandwidth. ``reference``: extra points with columns
    ``name, ops_per_byte, tops``.
    """
    tables = [tables] if isinstance(tables, pd.DataFrame) else list(tables)
    mem = roofs.offchip
    if per_workload:
        points = pd.DataFrame([workload_summary(t, roofs) for t in tables])
        xs = list(points["ops_per_hbm_byte"]) if len(points) else []
        gutter = False
    else:
        xs = [x for t in tables for x, on in zip(t["ops_per_hbm_byte"], _on_chip(t)) if not on]
        gutter = any(_on_chip(plotted_layers(t)).any() for t in tables)
    fmts = sorted({f for t in tables for f in t.loc[t["kind"] == "gemm", "format"]})
    fmts = fmts or list(roofs.compute_tops)[:1]
    has_vec = not per_workload and any((t["kind"] == "vector").any() for t in tables)
    ridges = [roofs.ridge(f) for f in fmts] + ([roofs.vector_ridge] if has_vec else [])
    if reference is not None and len(reference):
        xs += list(reference["ops_per_byte"])
    lo, hi = _x_range(xs, ridges)
    x_hi = hi * GUTTER[1] if gutter else hi
    fig = Figure()

    # Roofs: one compute roof per format over the off-chip slope, then the vector roof.
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

    if per_workload:
        labelled = _workload_points(fig, points)
    else:
        labelled = []
        _layer_points(fig, tables, hi, mem)
        _sram_layer(fig, tables, roofs, fmts, lo, hi)
    if reference is not None and len(reference):
        fig.add_scatter(x=reference["ops_per_byte"], y=reference["tops"], mode="markers+text",
                        name="reference", text=reference["name"], textposition="bottom right",
                        marker={"symbol": "circle-open", "size": 12, "color": "#555",
                                "line": {"width": 2}}, meta={"kind": "reference"},
                        hovertemplate="%{text} (reference)<br>%{x:.4g} ops/B, %{y:.4g} TOPS"
                                      "<extra></extra>")
        labelled.append(fig.data[-1])
    same_roof: dict[float, list[str]] = {}   # formats with one peak share a ridge and label
    for f in fmts:
        same_roof.setdefault(roofs.compute_tops[f], []).append(f)
    rx = [ridge_point(p, roofs.hbm_bytes_s) for p in same_roof]
    fig.add_scatter(x=rx, y=list(same_roof), mode="markers+text",
                    name="ridge point", meta={"kind": "ridges"},
                    text=[f"{'/'.join(fs)} ridge {units.number(r)} ops/B"
                          for fs, r in zip(same_roof.values(), rx)],
                    marker={"symbol": "diamond", "size": 11, "color": "#222"},
                    hovertemplate="ridge %{x:.4g} ops/B at %{y:.4g} TOPS<extra></extra>")
    labelled.append(fig.data[-1])
    ys = [y for tr in fig.data if tr.y is not None for y in tr.y
          if y is not None and y > 0 and math.isfinite(y)]
    y_lo = max(min(ys) / 3, 1e-9) if ys else 1e-3
    y_hi = max(ys) * 3 if ys else 1e3
    xr, yr = (math.log10(lo), math.log10(x_hi)), (math.log10(y_lo), math.log10(y_hi))
    _place_labels(fig, labelled, xr, yr)
    x0 = lo * 1.5   # the slope's name, where the slope starts
    fig.add_annotation(x=math.log10(x0), y=math.log10(roofs.hbm_bytes_s * x0 / 1e12),
                       text=f"{mem} {roofs.hbm_bytes_s / 1e9:.4g} GB/s", showarrow=False,
                       yshift=12, xanchor="left", font={"size": 11, "color": "#444"})
    if gutter:
        fig.update_layout(shapes=[{"type": "rect", "xref": "x", "yref": "paper",
                                   "x0": hi * GUTTER[0], "x1": x_hi, "y0": 0, "y1": 1,
                                   "fillcolor": "#f1f1f1", "line": {"width": 0},
                                   "layer": "below"}])
        fig.add_annotation(x=math.log10(gutter_x(hi)), y=1, yref="paper", yanchor="top",
                           text=f"on chip:<br>no {mem}<br>bytes", showarrow=False,
                           font={"size": 11, "color": "#555"})
    fig.update_layout(
        title=title, height=640, hovermode="closest",
        xaxis={"type": "log", "title": f"operational intensity (ops per {mem} byte)",
               "range": list(xr), **_ticks(lo, hi)},
        yaxis={"type": "log", "title": "throughput (TOPS, 1 MAC = 2 ops)", "range": list(yr)},
        legend={"itemsizing": "constant"}, margin={"t": 60})
    return fig


def _place_labels(fig, traces: list, xr: tuple[float, float],
                  yr: tuple[float, float]) -> None:
    """Each labelled point's text as an annotation placed clear of the others
    (:func:`tpusim.chart_labels.place`), joined to its point by a thin leader line."""
    pts = []
    for tr in traces:
        tr["mode"] = "markers"
        for x, y, t in zip(tr.x, tr.y, tr.text):
            if x and y and x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
                pts.append((x, y, str(t)))
    others = []
    for tr in fig.data:
        if (tr.meta or {}).get("kind") == "layers" and tr.visible is not False:
            sizes = tr.marker.size
            sizes = sizes if isinstance(sizes, list) else [sizes or 8] * len(tr.x)
            others += [(x, y, sz) for x, y, sz in zip(tr.x, tr.y, sizes)]
    for (x, y, t), (ax, ay) in zip(pts, place(pts, xr, yr, obstacles=others)):
        fig.add_annotation(x=math.log10(x), y=math.log10(y), text=t, ax=ax, ay=ay,
                           showarrow=True, arrowhead=0, arrowwidth=1, arrowcolor="#999",
                           xanchor="center", yanchor="middle", font={"size": 11},
                           name="point label")


def _label(t: pd.DataFrame) -> str:
    fmts = sorted(set(t.loc[t["kind"] == "gemm", "format"])) or sorted(set(t["format"]))
    wl = str(t["workload"].iloc[0]) if len(t) else ""
    return " ".join(p for p in (wl, "/".join(fmts)) if p)


def plotted_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a layer table that appear on the chart: those that took time and did work."""
    return table[(table["achieved_tops"] > 0) & (table["time_s"] > 0)]


_SAME = ("kind", "op", "format", "m", "k", "n", "ops", "roof", "bound")


def merged_points(table: pd.DataFrame) -> pd.DataFrame:
    """The plotted rows of one shape (kind, op, format, m x k x n, ops) that the same roof and
    the same bound hold as one point: ``rows`` (their indices), ``names``, ``count``,
    ``time_s`` and ``time_share`` summed, and the point where their sums put it (x = their ops /
    their HBM bytes, y = their ops / their time, ``attainable_tops`` = their ops / the time at
    their roofs: the per-workload point's rules), so it is one layer's point when alone."""
    g = plotted_layers(table)
    if not len(g):
        return g.assign(rows=[], names=[])
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for i, r in zip(g.index, g.to_dict("records")):   # plain dicts: pandas per group is slow
        groups.setdefault(tuple(str(r[c]) for c in _SAME), []).append((i, r))
    out = []
    for members in groups.values():
        first = dict(members[0][1])
        rs = [r for _, r in members]
        if len(rs) > 1:
            ops = sum(r["ops"] * r["count"] for r in rs)
            hbm = sum(r["hbm_bytes"] * r["count"] for r in rs)
            sram = sum(r["sram_bytes"] * r["count"] for r in rs)
            n = sum(r["count"] for r in rs)
            roof_t = sum(r["ops"] * r["count"] / (r["attainable_tops"] * 1e12) for r in rs)
            first.update(
                ops_per_hbm_byte=ops / hbm if hbm > 0 else math.nan, on_chip=hbm <= 0,
                ops_per_sram_byte=ops / sram if sram > 0 else math.inf,
                achieved_tops=ops / sum(r["time_s"] for r in rs) / 1e12,
                attainable_tops=ops / roof_t / 1e12 if roof_t > 0 else math.inf,
                cycles=sum(r["cycles"] * r["count"] for r in rs) / n,
                hbm_bytes=hbm / n, sram_bytes=sram / n)
        first.update(rows=[i for i, _ in members], names=[str(r["name"]) for r in rs],
                     count=int(sum(r["count"] for r in rs)),
                     time_share=float(sum(r["time_share"] for r in rs)),
                     time_s=float(sum(r["time_s"] for r in rs)))
        out.append(first)
    return pd.DataFrame(out)   # groups in order of their first row


def _names(names: list[str], limit: int = 6) -> str:
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _layer_points(fig, tables: list[pd.DataFrame], hi: float, mem: str) -> None:
    several = len(tables) > 1
    for s, t in enumerate(tables):
        g = merged_points(t)
        if not len(g):
            continue
        share = g["time_share"] / g["time_share"].max()
        g = g.assign(size=7 + 33 * share ** 0.5)
        label = _label(t)
        for roof in BOUNDS:
            sub = g[g["roof"] == roof]
            if not len(sub):
                continue
            on = _on_chip(sub)
            x = sub["ops_per_hbm_byte"].where(~on, gutter_x(hi))
            custom = [[r.names[0], _shape(r), r.format, r.cycles, r.count,
                       units.nbytes(r.hbm_bytes), units.nbytes(r.sram_bytes),
                       r.time_share * 100, r.attainable_tops, r.reason, r.workload, r.rows,
                       f"on chip (no {mem} bytes)" if oc
                       else f"{units.number(r.ops_per_hbm_byte)} ops/B",
                       bound_label(r.bound, mem),
                       f" ×{len(r.rows)}: " + _names(r.names) if len(r.rows) > 1 else "",
                       r.names]
                      for r, oc in zip(sub.itertuples(), on)]
            name = f"under the {roof_label(roof, mem)}"
            fig.add_scatter(
                x=x, y=sub["achieved_tops"], mode="markers+text",
                name=f"{label} · {name}" if several else name,
                legendgroup=f"s{s}", customdata=custom,
                text=[f"×{len(r)}" if len(r) > 1 and sz >= 16 else ""
                      for r, sz in zip(sub["rows"], sub["size"])],
                textposition="middle center", textfont={"size": 9, "color": "white"},
                meta={"series": s, "kind": "layers", "label": label, "roof": roof},
                marker={"color": SERIES_COLORS[s % len(SERIES_COLORS)] if several
                        else BOUND_COLORS[roof], "size": sub["size"],
                        "symbol": ROOF_SYMBOLS[roof] if several else "circle", "opacity": 0.85,
                        "line": {"width": 1, "color": "white"}},
                hovertemplate=(
                    "<b>%{customdata[0]}</b>%{customdata[14]} (%{customdata[10]})<br>shape "
                    "m×k×n %{customdata[1]}, %{customdata[2]}<br>%{customdata[3]:,.0f} cycles "
                    "× %{customdata[4]} = %{customdata[7]:.1f}% of time<br>" + mem
                    + " %{customdata[5]}, SRAM %{customdata[6]} per instance (mean)<br>"
                    "%{customdata[12]} → %{y:.4g} TOPS (roof %{customdata[8]:.4g})<br>"
                    "timing: %{customdata[13]}; %{customdata[9]}<extra></extra>"))


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
                        marker={"symbol": "circle-open", "size": 9,
                                "color": SERIES_COLORS[s % len(SERIES_COLORS)]
                                if len(tables) > 1 else BOUND_COLORS["sram"]},
                        hovertemplate="%{text}<br>%{x:.4g} ops per SRAM byte, %{y:.4g} TOPS"
                                      "<extra></extra>")


def _workload_points(fig, points: pd.DataFrame) -> list:
    """One point per workload, each its own colour, symbol = the bound most of its time."""
    several = points["format"].nunique() > 1
    out = []
    for i, r in enumerate(points.itertuples()):
        text = r.workload + (f" {r.format}" if several else "")
        custom = [[r.workload, r.format, units.seconds(r.time_s), r.hbm_bytes, r.ops,
                   r.memory_bound_fraction * 100, r.headroom, r.attainable_tops,
                   bound_label(r.bound)]]
        fig.add_scatter(
            x=[r.ops_per_hbm_byte], y=[r.achieved_tops], mode="markers+text", text=[text],
            name=text, customdata=custom, meta={"kind": "workloads"},
            marker={"color": SERIES_COLORS[i % len(SERIES_COLORS)], "size": 16,
                    "symbol": ROOF_SYMBOLS.get(r.bound, "circle"),
                    "line": {"width": 1, "color": "white"}},
            hovertemplate=("<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{customdata[2]}, "
                           "%{customdata[4]:.4g} ops, %{customdata[3]:,.0f} B off chip<br>"
                           "%{x:.4g} ops/B → %{y:.4g} TOPS (roof %{customdata[7]:.4g})<br>"
                           "mostly %{customdata[8]}; memory-bound %{customdata[5]:.0f}% of "
                           "time, headroom %{customdata[6]:.2f}x<extra></extra>"))
        out.append(fig.data[-1])
    return out


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

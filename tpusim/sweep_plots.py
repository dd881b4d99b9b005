"""Figures of a sweep frame (``tpusim.sweeps.sweep``'s output) and the ``sweep.html`` page.

- two swept config axes (``array.rows`` x ``array.cols`` when both vary): heatmaps of
  throughput, energy per inference, EDP and utilization, one grid per workload/format/other values;
- one swept config axis (``--square`` counts as one): the same four metrics as lines;
- always: energy against latency per workload, coloured by chip area, with the points of the
  latency x energy x area front ringed and the energy-latency front as a line.

Figures are built from the DataFrame only; the page embeds plotly.js (opens offline).
"""
from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from .html_page import figures_html, page

# (column, title, unit) of the four metrics every view shows.
METRICS = (
    ("throughput_per_s", "throughput", "inferences/s"),
    ("energy_per_inference_j", "energy per inference", "J"),
    ("edp_j_s", "EDP (energy x latency)", "J·s"),
    ("utilization", "utilization", ""),
)
# perf/area and perf/W (tpusim.sweep_metrics), a second grid of four.
EFFICIENCY = (
    ("throughput_per_mm2", "perf/area", "inferences/s/mm²"),
    ("tops_per_w", "perf/W (achieved TOPS / average power)", "TOPS/W"),
    ("chip_mm2", "chip area (arrays + SRAM, lower bound)", "mm²"),
    ("avg_power_w", "average power", "W"),
)
LOWER_IS_BETTER = ("energy_per_inference_j", "edp_j_s", "chip_mm2", "avg_power_w")
MAX_GRIDS = 12  # heatmap grids on one page; more are summarised in a note
NOT_AXES = ("workload", "format")
SUMMARY_START = "config"  # first non-swept column of a sweep frame


def swept_columns(df: pd.DataFrame) -> list[str]:
    """The swept columns: everything before the summary fields."""
    cols = list(df.columns)
    return cols[:cols.index(SUMMARY_START)] if SUMMARY_START in cols else []


def varying_axes(df: pd.DataFrame) -> list[str]:
    """Swept config paths with more than one value; a path that moves in lockstep with an
    earlier one (``--square``) is left out."""
    axes = [c for c in swept_columns(df) if c not in NOT_AXES and df[c].nunique() > 1]
    out: list[str] = []
    for c in axes:
        if any(df.groupby(o)[c].nunique().max() == 1 and df.groupby(c)[o].nunique().max() == 1
               for o in out):
            continue
        out.append(c)
    return out


def pareto_front(latency: pd.Series, energy: pd.Series) -> list:
    """Index labels of the points no other point beats in both latency and energy (ties: the
    first one), sorted by latency."""
    order = sorted(latency.index, key=lambda i: (latency[i], energy[i]))
    front, best = [], float("inf")
    for i in order:
        if energy[i] < best:
            front.append(i)
            best = energy[i]
    return front


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"].copy()
    if len(ok):
        ok["edp_j_s"] = ok["energy_per_inference_j"] * ok["latency_s"]
    return ok


def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _groups(df: pd.DataFrame, by: list[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    if not by:
        return [({}, df)]
    return [(dict(zip(by, k if isinstance(k, tuple) else (k,))), g)
            for k, g in df.groupby(by, sort=False)]


# Domains of the 2x2 grid (x, y), in METRICS order, and where each colorbar goes.
_GRID = (((0.0, 0.40), (0.58, 1.0)), ((0.57, 0.97), (0.58, 1.0)),
         ((0.0, 0.40), (0.0, 0.42)), ((0.57, 0.97), (0.0, 0.42)))


def _log_ticks(values: list[float]) -> dict:
    """Colorbar ticks at 1, 2, 5 x 10^k inside the range of ``values`` (colour is log10)."""
    if not values:
        return {}
    lo, hi = math.log10(min(values)), math.log10(max(values))
    ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo - 1e-9 <= math.log10(t) <= hi + 1e-9] or [min(values)]
    from .units import number
    return {"tickvals": [math.log10(t) for t in ticks], "ticktext": [number(t, 3) for t in ticks]}


def heatmap_grid(df: pd.DataFrame, x: str, y: str, title: str, metrics=METRICS):
    """Four heatmaps (``metrics``: METRICS or EFFICIENCY) of one group over ``y`` (rows) x ``x`` (columns); cells of failed
    points stay blank. Built as one layout dict: make_subplots costs ~0.1 s a figure."""
    import plotly.graph_objects as go

    xs = sorted(df[x].unique())
    ys = sorted(df[y].unique())
    ok = _ok(df)
    traces, layout = [], {"title": {"text": title}, "height": 760, "annotations": []}
    for i, ((col, name, unit), (xd, yd)) in enumerate(zip(metrics, _GRID)):
        n = "" if i == 0 else str(i + 1)
        if len(ok):
            grid = ok.pivot_table(index=y, columns=x, values=col, aggfunc="first")
            grid = grid.reindex(index=ys, columns=xs)
            z = [[None if pd.isna(v) else float(v) for v in r] for r in grid.to_numpy()]
        else:
            z = [[None] * len(xs) for _ in ys]
        util = col == "utilization"
        bar = {"x": xd[1] + 0.01, "y": (yd[0] + yd[1]) / 2, "len": yd[1] - yd[0],
               "thickness": 12, "title": {"text": unit}}
        color = z
        if not util:  # these span decades: colour by log10, label in the metric's unit
            color = [[math.log10(v) if v and v > 0 else None for v in r] for r in z]
            bar.update(_log_ticks([v for r in z for v in r if v and v > 0]))
        traces.append(go.Heatmap(
            x=[str(v) for v in xs], y=[str(v) for v in ys], z=color, text=z, xaxis=f"x{n}",
            yaxis=f"y{n}", texttemplate="%{text:,.3~r}", colorscale="Viridis",
            reversescale=col in LOWER_IS_BETTER,
            zmin=0 if util else None, zmax=1 if util else None, colorbar=bar,
            hovertemplate=f"{y}=%{{y}}<br>{x}=%{{x}}<br>{name}: %{{text:,.4~r}} {unit}"
                          "<extra></extra>"))
        layout[f"xaxis{n}"] = {"domain": xd, "anchor": f"y{n}", "type": "category",
                               "title": {"text": x}}
        layout[f"yaxis{n}"] = {"domain": yd, "anchor": f"x{n}", "type": "category",
                               "title": {"text": y}}
        layout["annotations"].append({"text": name, "x": sum(xd) / 2, "y": yd[1], "xref": "paper",
                                      "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                      "showarrow": False})
    return go.Figure(data=traces, layout=layout)


def line_figure(df: pd.DataFrame, x: str, series: list[str], title: str,
                x_title: str | None = None, metrics=METRICS):
    """The four metrics against one swept axis, a line per combination of ``series``."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[m[1] for m in metrics],
                        horizontal_spacing=0.12, vertical_spacing=0.16)
    ok = _ok(df)
    if not len(ok):
        return fig
    numeric = pd.api.types.is_numeric_dtype(df[x])
    for gi, (vals, g) in enumerate(_groups(ok, series)):
        # a categorical axis may mix types (double_buffered: true, false, auto): sort as text
        g = g.sort_values(x) if numeric else g.sort_values(x, key=lambda c: c.astype(str))
        for i, (col, name, _) in enumerate(metrics):
            color = qualitative.Plotly[gi % len(qualitative.Plotly)]
            fig.add_scatter(x=g[x], y=g[col], mode="lines+markers", name=_label(vals) or name,
                            legendgroup=str(gi), showlegend=i == 0, line={"color": color},
                            row=i // 2 + 1, col=i % 2 + 1)
    for i, (col, _, unit) in enumerate(metrics):
        fig.update_yaxes(title_text=unit, type=None if col == "utilization" else "log",
                         row=i // 2 + 1, col=i % 2 + 1)
    log = numeric and ok[x].min() > 0 and ok[x].max() / ok[x].min() >= 8
    fig.update_xaxes(title_text=x_title or x, type="log" if log else None)
    fig.update_layout(title=title, height=720)
    return fig


def pareto_figure(df: pd.DataFrame, title: str, energy_unit: str = "J"):
    """Energy per inference against latency (in the unit of the median latency), every
    successful point coloured by chip area when the sweep has it; the points of the latency x
    energy x area front ringed, and the energy-latency front as a line."""
    import plotly.graph_objects as go

    from .sweep_metrics import pareto_3d
    from .units import unit_for
    ok = _ok(df)
    swept = [c for c in swept_columns(df) if c != "workload"]
    fig = go.Figure()
    if not len(ok):
        return fig
    tname, tsize = unit_for(float(ok["latency_s"].median()), "time")
    area = "chip_mm2" in ok and ok["chip_mm2"].notna().all() and ok["chip_mm2"].nunique() > 1
    color_by = "format" if "format" in swept and ok["format"].nunique() > 1 else None
    cols = [*swept, *(["chip_mm2"] if "chip_mm2" in ok else [])]
    hover = "<br>".join(f"{c}=%{{customdata[{i}]}}" for i, c in enumerate(swept))
    if "chip_mm2" in ok:
        hover += f"<br>chip ≥ %{{customdata[{len(swept)}]:,.4g}} mm²"
    hover += f"<br>%{{x:,.4g}} {tname}, %{{y:,.4g}} {energy_unit}"
    symbols = ("circle", "square", "triangle-up", "cross", "x", "star")
    for gi, (vals, g) in enumerate(_groups(ok, [color_by] if color_by else [])):
        marker = {"size": 9, "symbol": symbols[gi % len(symbols)]}
        if area:   # colour is the third Pareto axis; the symbol tells formats apart
            marker.update(color=g["chip_mm2"], colorscale="Viridis", reversescale=True,
                          cmin=float(ok["chip_mm2"].min()), cmax=float(ok["chip_mm2"].max()),
                          showscale=gi == 0, colorbar={"title": {"text": "chip mm²"}})
        fig.add_scatter(x=g["latency_s"] / tsize, y=g["energy_per_inference_j"], mode="markers",
                        name=_label(vals) or "points", customdata=g[cols].astype(object).values,
                        marker=marker, hovertemplate=hover + "<extra></extra>")
    if "chip_mm2" in ok:
        f3 = ok.loc[pareto_3d(ok)]
        fig.add_scatter(x=f3["latency_s"] / tsize, y=f3["energy_per_inference_j"],
                        mode="markers", name="front: latency × energy × area",
                        marker={"symbol": "circle-open", "size": 17, "color": "crimson",
                                "line": {"width": 2}},
                        customdata=f3[cols].astype(object).values,
                        hovertemplate=hover + "<extra>3-D front</extra>")
    front = pareto_front(ok["latency_s"], ok["energy_per_inference_j"])
    f = ok.loc[front]
    fig.add_scatter(x=f["latency_s"] / tsize, y=f["energy_per_inference_j"], mode="lines+markers",
                    name="front: latency × energy", line={"color": "black", "shape": "hv"},
                    marker={"symbol": "diamond-open", "size": 11, "color": "black"},
                    customdata=f[cols].astype(object).values,
                    hovertemplate=hover + "<extra>front</extra>")
    fig.update_layout(title=title, xaxis_title=f"latency ({tname})", xaxis_type="log",
                      yaxis_title=f"energy per inference ({energy_unit})", yaxis_type="log",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _table(df: pd.DataFrame, energy_unit: tuple[str, float] | None = None) -> str:
    from .pretty import html_table
    return html_table(df, energy_unit)


def in_page_units(df: pd.DataFrame) -> tuple[pd.DataFrame, tuple, str]:
    """``df`` with energy (and EDP) in the page's one energy unit (that of the median energy per
    inference), the metrics titled in it, and the unit's name; only for drawing."""
    from .units import unit_for
    ok = _ok(df)
    name, size = unit_for(float(ok["energy_per_inference_j"].median()) if len(ok) else 0.0)
    df = df.copy()
    for col in ("energy_per_inference_j", "edp_j_s"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce") / size
    metrics = tuple((c, t, {"energy_per_inference_j": name, "edp_j_s": f"{name}·s"}.get(c, u))
                    for c, t, u in METRICS)
    return df, metrics, name


def sweep_figures(df: pd.DataFrame) -> tuple[list, list[str]]:
    """The figures for ``df`` and notes on what was left out."""
    figs, notes = [], []
    # list-valued config fields (array.sparsity) as their text, so they group and compare
    df = df.apply(lambda s: s.map(lambda v: str(v) if isinstance(v, list) else v)
                  if s.dtype == object else s)
    df, metrics, eunit = in_page_units(df)
    axes = varying_axes(df)
    if "array.rows" in axes and "array.cols" in axes:
        x, y = "array.cols", "array.rows"
    elif len(axes) >= 2:
        x, y = axes[1], axes[0]
    else:
        x = y = None
    facets = [c for c in swept_columns(df) if c not in (x, y) and df[c].nunique() > 1]
    if x is not None:
        groups = _groups(df, facets)
        for vals, g in groups[:MAX_GRIDS]:
            label = f"{y} x {x}" + (f": {_label(vals)}" if vals else "")
            figs.append(heatmap_grid(g, x, y, label, metrics))
            if "chip_mm2" in g:
                figs.append(heatmap_grid(g, x, y, f"perf/area and perf/W, {label}", EFFICIENCY))
        if len(groups) > MAX_GRIDS:
            notes.append(f"heatmaps shown for the first {MAX_GRIDS} of {len(groups)} "
                         f"combinations of {', '.join(facets)}")
    elif len(axes) == 1:
        series = [c for c in NOT_AXES if c in swept_columns(df) and df[c].nunique() > 1]
        lockstep = [c for c in swept_columns(df) if c not in NOT_AXES and c != axes[0]
                    and df[c].nunique() > 1]
        name = " = ".join([axes[0], *lockstep])
        fig = line_figure(df, axes[0], series, f"against {name}", name, metrics)
        figs.append(fig)
    for vals, g in _groups(df, ["workload"]):
        figs.append(pareto_figure(g, f"Energy vs latency: {vals['workload']}", eunit))
    return figs, notes


def static_power_note(df: pd.DataFrame) -> str:
    """What the energy of every point assumes about static power, in one sentence."""
    static = pd.to_numeric(df.get("energy_breakdown_j.static", pd.Series(dtype=float)),
                           errors="coerce")
    zero = "" if (static > 0).any() else "; here it is 0 W, so energy is dynamic energy alone"
    return ("Static power is the config's energy.static_w, the same watts at every point (it "
            "does not grow with array or SRAM area), so it adds energy in proportion to latency "
            f"only{zero}.")


def pareto_section(ok: pd.DataFrame, swept: list[str],
                   energy_unit: tuple[str, float] | None = None) -> list[str]:
    """The latency x energy x area Pareto points of each workload as a table."""
    from .sweep_metrics import PARETO_AXES, pareto_3d
    if "chip_mm2" not in ok:
        return []
    cols = [*swept, *PARETO_AXES, "throughput_per_mm2", "tops_per_w"]
    out = ["<h2>Pareto front: latency x energy x area</h2>",
           "<p>Points no other point beats in all three (lower is better in each); chip area "
           "is arrays + SRAM, a lower bound of the die.</p>"]
    for vals, g in _groups(ok, ["workload"]):
        front = pareto_3d(g)
        out.append(_table(g.loc[front, [c for c in cols if c in g]], energy_unit))
    return out


def sweep_html(df: pd.DataFrame, title: str = "tpusim sweep") -> str:
    """The self-contained ``sweep.html`` page."""
    figs, notes = sweep_figures(df)
    n = len(df)
    failed = df[df["status"] == "failed"] if n else df
    swept = swept_columns(df)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{n} points, {n - len(failed)} ok, {len(failed)} failed. "
             f"Swept: {html.escape(', '.join(swept))}.</p>"]
    ok = _ok(df)
    if len(ok):
        by = [c for c in ("workload", "format") if c in swept]
        best = ok.loc[ok.groupby(by)["edp_j_s"].idxmin()] if by else ok.nsmallest(1, "edp_j_s")
        cols = [*swept, "latency_s", "throughput_per_s", "energy_per_inference_j", "edp_j_s",
                "utilization"]
        from .units import unit_for   # one energy unit for the page's tables
        eu = unit_for(float(ok["energy_per_inference_j"].median()))
        parts += ["<h2>Lowest EDP</h2>", _table(best[cols], eu)]
        parts += pareto_section(ok, swept, eu)
    if len(failed):
        reasons = failed.groupby("error").size().reset_index(name="points")
        parts += ["<h2>Failed points</h2>", _table(reasons)]
    parts += [f"<p><i>{html.escape(n)}</i></p>" for n in notes]
    parts.append(f"<p class='note'>{html.escape(static_power_note(df))}</p>")
    parts += figures_html(figs)
    return page(title, parts)

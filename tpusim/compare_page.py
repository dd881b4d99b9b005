"""``compare.html``: the page of a :class:`tpusim.comparison.Comparison`.

Three views: the summary (each metric of each run beside the baseline's, with its change), an
overlaid roofline (each run's roofs and layers, and a line from each layer's baseline point to
its point in the run, so a layer's move reads at a glance) and the per-layer speedup over the
baseline, then the layers whose time changed most. Layers with no off-chip traffic have no
place on the intensity axis; they sit in a shaded gutter right of it, labelled "on chip"
(as on every roofline, :mod:`tpusim.roofline_plots`).
"""
from __future__ import annotations

import html
import math

from .figure import Figure, figure_div, template
from . import units

_COLOURS = ("#264653", "#e76f51", "#2a9d8f", "#e9c46a", "#8338ec", "#f4a261", "#3a86ff")
_CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:12px 0;font-size:.9em}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .note{color:#666;font-size:.85em}
.better{color:#2a9d8f} .worse{color:#e76f51}
"""


def _value(v: float, unit: str) -> str:
    if unit == "s":
        return units.seconds(v)
    if unit == "J":
        return units.joules(v)
    if unit == "B":
        return units.nbytes(v)
    if unit == "":
        return f"{v:.1%}"
    return f"{units.number(v)} {unit}"


def _finite_pos(x) -> bool:
    try:
        return math.isfinite(float(x)) and float(x) > 0
    except (TypeError, ValueError):
        return False


def _achieved(layers):
    """A layer's achieved TOPS where it takes time (a zero-time fused row has no place on the
    chart: its rate is the model's convention, not a measurement of anything)."""
    ach = layers["achieved_tops"]
    return ach.where(layers["latency_s"] > 0) if "latency_s" in layers else ach


def roofline_overlay(c) -> Figure:
    """Every run's roofs and layer points on one log-log chart, each layer's move drawn."""
    fig = Figure()
    from .roofline_plots import GUTTER, gutter_x
    xs = [float(x) for r in c.runs for x in r.layers["intensity"] if _finite_pos(x)]
    lo, hi = (min(xs) / 3, max(xs) * 3) if xs else (0.1, 1e4)
    gx = gutter_x(hi)

    def at(x, y):   # a layer's x: its intensity, or the gutter when it moves no off-chip byte
        return float(x) if _finite_pos(x) else (gx if _finite_pos(y) else None)
    on_chip = any(not _finite_pos(x) and _finite_pos(y) for r in c.runs
                  for x, y in zip(r.layers["intensity"], _achieved(r.layers)))
    for i, run in enumerate(c.runs):
        colour = _COLOURS[i % len(_COLOURS)]
        if run.chip is not None:
            from .roofline import chip_roofs
            roofs = chip_roofs(run.chip)
            fmt = str(run.summary.get("format"))
            peak = roofs.compute_tops.get(fmt, max(roofs.compute_tops.values()))
            ridge = peak * 1e12 / roofs.hbm_bytes_s
            x = [min(lo, ridge / 3), ridge, hi]
            fig.add_scatter(x=x, y=[roofs.hbm_bytes_s * x[0] / 1e12, peak, peak],
                            mode="lines", name=f"{run.label} roof", legendgroup=run.label,
                            line={"color": colour, "width": 1.5, "dash": "dash"},
                            hoverinfo="skip")
        l = run.layers.assign(achieved_tops=_achieved(run.layers))
        ok = [at(a, b) is not None for a, b in zip(l["intensity"], l["achieved_tops"])]
        sub = l[ok]
        fig.add_scatter(x=[at(a, b) for a, b in zip(sub["intensity"], sub["achieved_tops"])],
                        y=sub["achieved_tops"], mode="markers",
                        name=run.label, legendgroup=run.label, text=sub["name"].astype(str),
                        marker={"color": colour, "size": 7, "opacity": 0.8},
                        hovertemplate="%{text}<br>%{x:.4g} ops/B<br>%{y:.4g} TOPS<extra>"
                                      + html.escape(run.label) + "</extra>")
    base = c.runs[0].layers
    for run in c.runs[1:]:
        mx, my = [], []
        for (ax, ay, bx, by) in zip(base["intensity"], _achieved(base),
                                    run.layers["intensity"], _achieved(run.layers)):
            if all(v is not None for v in (at(ax, ay), at(bx, by))):
                mx += [at(ax, ay), at(bx, by), None]
                my += [float(ay), float(by), None]
        fig.add_scatter(x=mx, y=my, mode="lines", name=f"move to {run.label}",
                        line={"color": "#999", "width": 1}, hoverinfo="skip")
    x_hi = hi * GUTTER[1] if on_chip else hi
    if on_chip:
        fig.update_layout(shapes=[{"type": "rect", "xref": "x", "yref": "paper",
                                   "x0": hi * GUTTER[0], "x1": x_hi, "y0": 0, "y1": 1,
                                   "fillcolor": "#f1f1f1", "line": {"width": 0},
                                   "layer": "below"}])
        fig.add_annotation(x=math.log10(gx), y=1, yref="paper", yanchor="top",
                           text="on chip:<br>no off-chip<br>bytes", showarrow=False,
                           font={"size": 11, "color": "#555"})
    k0, k1 = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    ticks = [10.0 ** k for k in range(k0, k1 + 1)]
    fig.update_layout(title="Roofline: each layer's move from the baseline",
                      xaxis={"type": "log", "title": "ops per off-chip byte",
                             "range": [math.log10(lo), math.log10(x_hi)], "tickvals": ticks,
                             "ticktext": [units.number(t) for t in ticks]},
                      yaxis={"type": "log", "title": "achieved TOPS"}, height=520)
    return fig


def speedup_figure(c) -> Figure:
    """Per-layer speedup over the baseline (log scale; 1 = unchanged)."""
    fig = Figure()
    for i, run in enumerate(c.runs[1:], start=1):
        d = c.layers[c.layers["run"] == run.label]
        x = [f"{j}: {n}" for j, n in zip(d["layer_index"], d["name"])]
        # bars grow from 1 (unchanged) up to a speedup or down to a slowdown
        sp = [float(v) if _finite_pos(v) else None for v in d["speedup"]]
        fig.add_bar(x=x, y=[v - 1 if v is not None else None for v in sp], base=1,
                    customdata=sp, name=run.label, marker_color=_COLOURS[i % len(_COLOURS)],
                    hovertemplate="%{x}: %{customdata:.4g}×<extra>" + html.escape(run.label)
                                  + "</extra>")
    fig.update_layout(title="Speedup per layer (baseline time / run time; 1 = unchanged)",
                      barmode="group",
                      yaxis={"type": "log", "title": "speedup"}, height=420,
                      xaxis={"title": "layer", "showticklabels": len(c.runs[0].layers) <= 60})
    return fig


def _summary_table(c) -> str:
    rows = []
    for r in c.summary.itertuples():
        if r.run == c.runs[0].label:
            continue
        better = (r.value < r.baseline_value) == r.lower_is_better and r.value != r.baseline_value
        cls = "better" if better else ("worse" if r.value != r.baseline_value else "")
        change = "—" if not math.isfinite(r.change_pct) else f"{r.change_pct:+.1f}%"
        rows.append(f"<tr><td class='l'>{html.escape(r.run)}</td><td class='l'>"
                    f"{html.escape(r.label)}</td><td>{_value(r.baseline_value, r.unit)}</td>"
                    f"<td>{_value(r.value, r.unit)}</td><td class='{cls}'>{change}</td>"
                    f"<td>{units.number(r.ratio)}×</td></tr>")
    return ("<table><tr><th class='l'>run</th><th class='l'>metric</th><th>baseline</th>"
            "<th>run</th><th>change</th><th>ratio</th></tr>" + "".join(rows) + "</table>")


def _top_table(c, n: int = 10) -> str:
    if c.top_changes(n).empty:
        return "<p>No layer's time changed.</p>"
    rows = "".join(
        f"<tr><td class='l'>{html.escape(r.run)}</td><td class='l'>{r.layer_index}: "
        f"{html.escape(r.name)}</td><td>{units.seconds(r.base_time_s)}</td>"
        f"<td>{units.seconds(r.time_s)}</td><td>{units.number(r.speedup)}×</td>"
        f"<td>{units.number(r.energy_ratio)}×</td></tr>"
        for r in c.top_changes(n).itertuples())
    return ("<table><tr><th class='l'>run</th><th class='l'>layer</th><th>baseline time</th>"
            "<th>run time</th><th>speedup</th><th>energy ratio</th></tr>" + rows + "</table>")


def compare_html(c, provenance: dict | None = None) -> str:
    base = c.runs[0]
    title = "tpusim compare: " + " vs ".join(r.label for r in c.runs)
    figs = [roofline_overlay(c), speedup_figure(c)]
    divs = []
    for i, f in enumerate(figs):
        d = f.to_dict()
        d["layout"] = {"template": template("plotly_white"), **d["layout"]}
        divs.append(figure_div(d, f"cmp-{i}", i == 0, {"displaylogo": False}))
    off = sum(1 for x in base.layers["intensity"] if not _finite_pos(x))
    notes = [f"Baseline: {base.label}. Speedup > 1: the run is faster; energy ratio < 1: it "
             "spends less. Times and energies are per layer over its count instances.",
             f"{off} of {len(base.layers)} baseline layers move no off-chip bytes (or do no "
             "work) and have no place on the intensity axis; those that take time are drawn "
             "in the roofline's \"on chip\" gutter.", *c.notes]
    sources = "".join(f"<li>{html.escape(r.label)}: {html.escape(str(r.summary.get('config')))}"
                      f" / {html.escape(str(r.summary.get('workload')))} "
                      f"({html.escape(str(r.summary.get('format')))}, batch "
                      f"{r.summary.get('batch')})</li>" for r in c.runs)
    from .html_page import GENERATOR, provenance_footer
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>" + GENERATOR +
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{sources}</ul>"
            "<h2>Summary</h2>" + _summary_table(c)
            + "<h2>Roofline</h2>" + divs[0] + "<h2>Speedup per layer</h2>" + divs[1]
            + "<h2>Largest changes</h2>" + _top_table(c)
            + "<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            + "</ul>" + provenance_footer(provenance) + "</body></html>")

"""The HTML pages of a run and of a roofline: summary cards, the figures, the heaviest layers with
their bound and its reason, and the roofline's per-workload table and notes.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import pandas as pd

from . import units
from .html_page import figures_html, page, provenance_footer
from .plots import BOUND_COLORS, energy_figure, time_per_layer_figure
from .roofline import chip_roofs, layer_table, workload_summary
from .roofline_plots import _shape, bound_label, roofline_chart
from .wording import offchip, peak_phrase

if TYPE_CHECKING:
    from .simulator import Result

def _num(x: float) -> str:
    return units.number(x, 3) if abs(x) < 100 else f"{x:,.0f}"


def _card(value: str, key: str) -> str:
    return f"<div class='card'><div class='v'>{html.escape(value)}</div>" \
           f"<div class='k'>{html.escape(key)}</div></div>"


def _bound_badge(b: str, mem: str = "HBM") -> str:
    return f"<span class='bound' style='background:{BOUND_COLORS.get(b, '#888')}'>" \
           f"{html.escape(bound_label(b, mem))}</span>"


def layer_table_html(table: pd.DataFrame, top: int | None = 12, mem: str = "HBM") -> str:
    """The heaviest layers (by time) of a roofline table as an HTML table; ``mem`` names the
    off-chip memory."""
    t = table.sort_values("time_share", ascending=False, kind="stable")
    if top:
        t = t.head(top)
    several = table["workload"].nunique() > 1
    head = ("<tr>" + ("<th class='l'>workload</th>" if several else "")
            + "<th class='l'>layer</th><th class='l'>shape m×k×n</th><th>format</th>"
            f"<th>share of time</th><th>ops per {html.escape(mem)} byte</th>"
            "<th>achieved / attainable TOPS</th><th class='l'>bound</th>"
            "<th class='l'>why</th></tr>")
    rows = []
    for r in t.itertuples():
        x = "on chip" if r.on_chip else _num(r.ops_per_hbm_byte)
        wl = f"<td class='l'>{html.escape(str(r.workload))}</td>" if several else ""
        rows.append(
            f"<tr>{wl}<td class='l'>{html.escape(str(r.name))}</td>"
            f"<td class='l'>{html.escape(_shape(r))}</td><td>{html.escape(r.format)}</td>"
            f"<td>{r.time_share:.1%}</td><td>{x}</td>"
            f"<td>{units.number(r.achieved_tops)} / {units.number(r.attainable_tops)}</td>"
            f"<td class='l'>{_bound_badge(r.bound, mem)}</td>"
            f"<td class='l note'>{html.escape(r.reason)}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def fusion_table_html(fusion: dict) -> str:
    """What each fused group of a ``run --fuse`` saved (its ``fusion`` summary record)."""
    head = ("<tr><th class='l'>producer</th><th class='l'>fused into it</th><th>HBM bytes saved"
            "</th><th>cycles saved</th><th>launches saved</th></tr>")
    rows = [f"<tr><td class='l'>{html.escape(g['producer'])}</td>"
            f"<td class='l'>{html.escape(', '.join(g['fused']))}</td>"
            f"<td>{_num(g['hbm_bytes_saved'])}</td><td>{_num(g['cycles_saved'])}</td>"
            f"<td>{g['launches_saved']}</td></tr>" for g in fusion["groups"]]
    t = fusion["total"]
    rows.append(f"<tr><th class='l'>total</th><td></td><th>{_num(t['hbm_bytes_saved'])}</th>"
                f"<th>{_num(t['cycles_saved'])}</th><th>{t['launches_saved']}</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def report_html(result: "Result", provenance: dict | None = None) -> str:
    """The page ``tpusim run`` writes: summary cards, time per layer, energy, roofline, the
    heaviest layers with their bound and its reason, and the roofline's assumptions."""
    s = result.summary
    chip = result.config
    roofs = chip_roofs(chip)
    table = layer_table(result.layers, chip, roofs, s["workload"])
    ws = workload_summary(table, roofs)
    headroom = "—" if not math.isfinite(ws["headroom"]) else f"{ws['headroom']:.2f}x"
    mem = offchip(chip)
    energy_unit = units.unit_for(s["energy_j"])   # one energy unit on the page
    cards = [
        _card(units.seconds(s["latency_s"]), f"latency ({s['total_cycles']:,.0f} cycles)"),
        _card(f"{units.number(s['throughput_per_s'])}/s",
              f"inferences per second (batch {s['batch']})"),
        _card(f"{units.number(s['achieved_tops'])} TOPS",
              "achieved: " + peak_phrase(s, chip) + " utilization"),
        _card(units.in_unit(s["energy_j"], energy_unit),
              "energy per run" + (f" ({units.in_unit(s['energy_per_inference_j'], energy_unit)}"
                                  " per inference)" if s["batch"] > 1 else "")),
        _card(units.nbytes(s["hbm_bytes"]), f"{mem} traffic"),
        _card(f"{ws['memory_bound_fraction']:.0%}", "of time memory-bound"),
        _card(headroom, "headroom: time / time at the roofs"),
    ]
    if s.get("chip_mm2") is not None:   # arrays + SRAM: a lower bound of the die
        cards.append(_card(f"≥ {units.number(s['chip_mm2'])} mm²",
                           f"chip area (arrays {units.number(s['array_mm2'])} + SRAM "
                           f"{units.number(s['sram_mm2'])}), "
                           f"{units.number(s['tops_per_mm2'])} peak TOPS/mm²"))
    shares = ", ".join(f"{bound_label(b, mem)} {v:.0%}" for b, v in s["bound_share"].items()
                       if v)
    figs = [roofline_chart(table, roofs, f"Roofline: {s['workload']} on {s['config']}"),
            time_per_layer_figure(result.layers, chip.clock_ghz),
            energy_figure(s, result.layers, offchip=mem, unit=energy_unit),
            _timeline(result, mem)]
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
        "<h2>Timeline</h2>", divs[3],
        f"<p class='note'>{html.escape(TIMELINE_NOTE.format(mem=mem))}</p>",
        "<h2>Heaviest layers</h2>", layer_table_html(table, mem=mem),
        *(["<h2>Fusion: saving per fused group</h2>", fusion_table_html(s["fusion"])]
          if s.get("fusion") else []),
        "<h2>Assumptions</h2>", f"<ul class='note'>{assumptions}</ul>",
        f"<p class='note'>{html.escape(foot)}</p>", provenance_footer(provenance)])


TIMELINE_NOTE = ("Each layer's totals on each resource, in run order: the arrays (or the "
                 "vector unit) busy, then their stalls by cause and the launch overhead, and "
                 "the layer's {mem} weights, inputs and outputs at full bandwidth; within a layer "
                 "the order is not drawn here. `tpusim run ... --trace trace.json` writes every "
                 "block of the model's schedule for ui.perfetto.dev.")


def _timeline(result: "Result", mem: str):
    from .timeline import build_timeline
    from .timeline_plot import timeline_figure
    return timeline_figure(build_timeline(result, "layers"), offchip=mem)


def roofline_page(fig, title: str, tables_html: list[str], notes: list[str],
                  provenance: dict | None = None) -> str:
    """The page ``tpusim roofline`` writes: the chart, then tables, notes and what ran."""
    return page(title, [f"<h1>{html.escape(title)}</h1>", *figures_html([fig]), *tables_html,
                        "<ul class='note'>" + "".join(f"<li>{html.escape(n)}</li>"
                                                      for n in notes) + "</ul>",
                        provenance_footer(provenance)])


def _inf_num(x: float) -> str:
    return "on chip" if isinstance(x, float) and not math.isfinite(x) else units.number(x)


def workload_table_html(wt: pd.DataFrame, mem: str = "HBM") -> str:
    """The per-workload roofline table (``roofline.workload_table``) as an HTML table."""
    head = ("<tr><th class='l'>workload</th><th>format</th><th>time</th>"
            f"<th>ops per {html.escape(mem)} byte</th>"
            "<th>achieved / attainable TOPS</th><th>headroom</th><th>memory-bound</th>"
            "<th class='l'>bound</th></tr>")
    rows = "".join(
        f"<tr><td class='l'>{html.escape(str(r.workload))}</td><td>{html.escape(str(r.format))}"
        f"</td><td>{units.seconds(r.time_s)}</td><td>{_inf_num(r.ops_per_hbm_byte)}</td>"
        f"<td>{units.number(r.achieved_tops)} / {units.number(r.attainable_tops)}</td>"
        f"<td>{r.headroom:.2f}x</td><td>{r.memory_bound_fraction:.0%}</td>"
        f"<td class='l'>{html.escape(bound_label(str(r.bound), mem))}</td>"
        "</tr>" for r in wt.itertuples())
    return f"<table>{head}{rows}</table>"

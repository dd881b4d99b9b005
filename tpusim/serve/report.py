"""The serving report page: latency distributions, KV-cache use over time and, for a rate
sweep, the throughput-latency curve; self-contained like the other pages (tpusim/html_page.py)."""
from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd


def serve_html(title: str, runs: list[tuple[float, dict[str, Any], pd.DataFrame]],
               curve: list[dict[str, Any]] | None, notes: list[str],
               provenance: dict[str, Any] | None = None) -> str:
    import plotly.graph_objects as go

    from ..html_page import figures_html, page

    figs = []
    if curve and len(curve) > 1:
        from ..units import unit_for
        f = go.Figure()
        xs = [p["output_tokens_per_s"] for p in curve]
        keys = (("ttft_p50_s", "TTFT p50"), ("ttft_p99_s", "TTFT p99"), ("tpot_p50_s", "TPOT p50"))
        ys = sorted(p[k] for p in curve for k, _ in keys if p.get(k))
        uname, usize = unit_for(ys[len(ys) // 2] if ys else 0.0, "time")   # the median's unit
        for key, name in keys:
            f.add_scatter(x=xs, y=[p[key] / usize if p[key] is not None else None
                                   for p in curve], mode="lines+markers", name=name,
                          text=[f"rate {p['rate']:g}/s" for p in curve])
        f.update_layout(title="Throughput vs latency (one point per offered rate)",
                        xaxis_title="output tokens/s", yaxis_title=uname, yaxis_type="log")
        figs.append(f)
    rate, s, table = runs[-1]
    fin = table[table["finished"]]
    from ..units import unit_for
    for col, name in (("ttft_s", "time to first token"), ("tpot_s", "time per output token"),
                      ("e2e_s", "end-to-end latency")):
        # in the unit of the median (ms, µs), as the tables above write it
        uname, usize = unit_for(float(fin[col].median()) if len(fin) else 0.0, "time")
        f = go.Figure(go.Histogram(x=fin[col] / usize, nbinsx=60,
                                   hovertemplate=f"%{{x}} {uname}: %{{y}} requests"
                                                 "<extra></extra>"))
        f.update_layout(title=f"{name} (rate {rate:g}/s)", xaxis_title=uname,
                        yaxis_title="requests")
        figs.append(f)
    pts = s["kv_utilisation"]["over_time"]
    f = go.Figure(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines"))
    f.update_layout(title=f"KV cache in use (rate {rate:g}/s)", xaxis_title="simulated s",
                    yaxis_title="fraction of blocks", yaxis_range=[0, 1])
    figs.append(f)
    body = [f"<h1>{html.escape(title)}</h1>",
            "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
            *(t for r, summ, _ in runs for t in summary_tables(summ, r))]   # every rate
    from ..html_page import provenance_footer
    return page(title, body + figures_html(figs) + [provenance_footer(provenance)])


def summary_tables(s: dict[str, Any], rate: float) -> list[str]:
    """A run's serve.json summary as two tables in human units: the counts and rates, and each
    latency's mean and percentiles (serve.json keeps every number in seconds)."""
    from ..pretty import formatter, header
    from ..units import seconds
    scalars = [(k, v) for k, v in s.items() if isinstance(v, (int, float, str))
               and not isinstance(v, bool)]
    dists = [(k, v) for k, v in s.items() if isinstance(v, dict)
             and v and all(isinstance(x, (int, float)) for x in v.values())]
    def shown(k: str, v) -> str:   # an infinite offered rate: every request at t = 0
        if isinstance(v, float) and math.isinf(v) or v == "inf":
            return "∞ (all at t = 0)"
        return str(v) if isinstance(v, str) else formatter(k, [v])(v)
    rows = "".join(f"<tr><td class='l'>{html.escape(header(k))}</td><td>"
                   f"{html.escape(shown(k, v))}</td></tr>" for k, v in scalars)
    cols = list(dict.fromkeys(c for _, v in dists for c in v))
    drows = "".join(
        f"<tr><td class='l'>{html.escape(header(k))}</td>"
        + "".join(f"<td>{seconds(v[c]) if c in v and v[c] is not None else ''}</td>"
                  for c in cols) + "</tr>" for k, v in dists)
    return [f"<h2>Rate {rate:g}/s</h2><table><tr><th class='l'>metric</th><th>value</th></tr>"
            f"{rows}</table>",
            "<table><tr><th class='l'>latency</th>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + f"</tr>{drows}</table>"]

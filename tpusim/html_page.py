"""A self-contained HTML page: one stylesheet, figures as divs with plotly.js inlined once.

Every page tpusim writes (run report, roofline, sweep, formats, validation, serving) is built
with :func:`page` and :func:`figures_html`, so it opens from file:// with no network (unless
``--plotlyjs cdn``: :mod:`tpusim.plotlyjs`), and figures
get fixed div ids, so the same result gives the same page but for its last line (which run,
which command: :func:`provenance_footer`).
"""
from __future__ import annotations

import html

from .figure import Figure, figure_div, template

TEMPLATE = "plotly_white"

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


# the tag every page carries: how a later write knows a page in its folder for tpusim's
GENERATOR = "<meta name='generator' content='tpusim'>"


def page(title: str, body_parts: list[str]) -> str:
    """A complete HTML document: ``title``, the stylesheet and ``body_parts`` in order."""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>" + GENERATOR +
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(body_parts) + "</body></html>")


def provenance_footer(prov: dict | None) -> str:
    """A page's last line: which tpusim, which run, which command (its JSON has the rest);
    empty without a provenance record."""
    if not prov:
        return ""
    cmd = (f" &middot; <code>{html.escape(str(prov['command']))}</code>"
           if prov.get("command") else "")
    return (f"<p style='color:#666'>tpusim {html.escape(str(prov.get('tpusim_version', '')))} "
            f"&middot; run {html.escape(str(prov.get('run_id', '')))}{cmd}</p>")


def figures_html(figs, first_id: int = 0) -> list[str]:
    """Each figure as a div; plotly.js is loaded once, with the first: inlined, or from
    ``plotly.min.js`` beside the page or the CDN (:mod:`tpusim.plotlyjs`)."""
    out = []
    config = {"displaylogo": False, "responsive": True}
    for i, fig in enumerate(figs):
        div_id = f"plot-{first_id + i}"
        if isinstance(fig, Figure):
            d = fig.to_dict()
            d["layout"] = {"template": template(TEMPLATE), **d["layout"]}
            out.append(figure_div(d, div_id, i == 0, config))
        else:   # a plotly graph_objects figure
            from .plotlyjs import for_plotly
            out.append(fig.to_html(full_html=False, include_plotlyjs=for_plotly() if i == 0
                                   else False, div_id=div_id, config=config))
    return out

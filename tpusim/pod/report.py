"""The report pages of ``tpusim train`` (and, smaller, of ``infer`` and ``run --chips``): one
self-contained HTML file each.

It shows the step's headline numbers, where the time goes (compute, exposed collectives, bubble,
optimizer) as a bar per part, each collective with whether it overlaps compute and what the
compute waits on, the step's per-layer schedule as a Gantt (``pod/schedule_view.py``; the only
script on the page, plotly.js, comes with it), the memory per chip, and the shardings the
search compared.
"""
from __future__ import annotations

from html import escape
from typing import Any

from ..html_page import provenance_footer


_ASYNC = "overlapped with compute where it can (waits below)"


def _bar(value: float, total: float) -> str:
    width = 100 * value / total if total > 0 else 0
    return (f'<div style="background:#4c78a8;height:12px;width:{width:.1f}%;'
            f'min-width:1px"></div>')


# train.json's keys as a reader names them
NAMES = {"exposed_collectives": "exposed collectives", "dp_all_reduce": "DP all-reduce",
         "ep_all_to_all": "EP all-to-all", "fsdp_all_gather": "FSDP all-gather",
         "fsdp_reduce_scatter": "FSDP reduce-scatter", "pp_permute": "PP send/receive",
         "tp_all_reduce": "TP all-reduce", "weights_grads_optimizer":
         "weights, gradients and optimizer state", "gathered_weights": "gathered weights",
         "logits": "logits and their gradient",
         "host_offload": "offloaded activations (pinned host memory, not HBM)"}


def _name(key: str) -> str:
    return escape(NAMES.get(key, key.replace("_", " ")))


def _gib(v: float) -> str:
    from ..units import nbytes
    return nbytes(v * 2**30)


def _how(rec: dict[str, Any], key: str, total: float, seconds) -> str:
    """How a collective runs: exposed, async, or (tp under sp) partly under the backward's
    GEMMs, the part the compute never waits for (its total less its waits)."""
    if not rec["exposed"][key]:
        return _ASYNC
    hidden = total - rec.get("exposed_s", {}).get("TP all-reduce", total) \
        if key == "tp_all_reduce" else 0.0
    if hidden > 1e-12 * total:
        return (f"exposed (critical path) but for {seconds(hidden)} under the backward's "
                "GEMMs (sequence-parallel reduce-scatters and weight-gradient gathers)")
    return "exposed (critical path)"


def _received(moved: dict[str, float] | None) -> str:
    """Bytes a chip receives ({"ici", "dcn"}) as text: ICI, and DCN where there is any."""
    if not moved:
        return ""
    from ..units import nbytes
    dcn = f" + {nbytes(moved['dcn'])} DCN" if moved.get("dcn") else ""
    return f"{nbytes(moved.get('ici', 0.0))} ICI{dcn}"


def _sum(moved: dict[str, dict[str, float]]) -> dict[str, float]:
    return {w: sum(v.get(w, 0.0) for v in moved.values()) for w in ("ici", "dcn")}


TABLE = "<table class='pod'>{}</table>"   # the house stylesheet (html_page.CSS) and POD_CSS
# names and descriptions read left-aligned; the house style right-aligns numbers
POD_CSS = ("<style>table.pod td:first-child,table.pod th:first-child,table.pod td.l"
           "{text-align:left}</style>")


def _page(title: str, body: str) -> str:
    """The whole page, built as every tpusim page is (:func:`tpusim.html_page.page`);
    ``title``: already escaped HTML, also the ``<h1>``."""
    from html import unescape

    from ..html_page import page
    return page(unescape(title), [POD_CSS, f"<h1>{title}</h1>", body]) + "\n"


def _model_line(rec: dict[str, Any]) -> str:
    """The model's dimensions as simulated (defaults resolved), where the record has them."""
    s = rec.get("model_summary")
    return f"<p class='note'>{escape(s)}</p>" if s else ""


def _table(head: str, rows: str) -> str:
    """A table: ``head`` its header cells (``<th>`` HTML), ``rows`` its ``<tr>`` rows."""
    return TABLE.format(f"<tr>{head}</tr>{rows}")


def _time_table(parts: dict[str, float], step: float) -> str:
    """Each part of a step (name HTML: seconds) with its share of ``step`` and a bar."""
    from ..units import seconds
    rows = "".join(f"<tr><td>{k}</td><td>{seconds(v)}</td><td>{v / step:.1%}</td>"
                   f"<td style='width:50%'>{_bar(v, step)}</td></tr>" for k, v in parts.items())
    return _table("<th>part</th><th>time</th><th>share</th><th></th>", rows)


def _memory_table(mem: dict[str, float]) -> str:
    """HBM per chip: name HTML: GiB."""
    rows = "".join(f"<tr><td>{k}</td><td>{_gib(v)}</td></tr>" for k, v in mem.items())
    return _table("<th>what</th><th>HBM</th>", rows)


def train_report(rec: dict[str, Any], timeline=None) -> str:
    """HTML for a train.json record; ``timeline``: the step's Gantt figure, if drawn."""
    t = rec["time_s"]
    parts = ("compute", "exposed_collectives", "bubble", "optimizer")
    step = rec["step_s"]
    from ..units import counted, number, seconds
    moved = rec.get("collective_bytes_per_chip", {})
    rows_coll = "".join(
        f"<tr><td>{_name(k)}</td><td>{seconds(v)}</td><td>{_received(moved.get(k))}</td>"
        f"<td class='l'>{_how(rec, k, v, seconds)}</td></tr>"
        for k, v in rec["collectives_s"].items() if v > 0) or \
        "<tr><td colspan='4'>none: one chip's worth of work, nothing to exchange</td></tr>"
    busy = (f"<p>Each chip receives {_received(_sum(moved))} per step; over ICI that fills "
            f"{rec['ici_link_busy']:.1%} of the inbound bandwidth of the links its slice's "
            "shape wires, across the step.</p>"
            if moved and "ici_link_busy" in rec else "")
    waits = {k: v for k, v in rec.get("exposed_s", {}).items() if v > 0}
    rows_wait = "".join(f"<tr><td>{escape(k)}</td><td>{seconds(v)}</td>"
                        f"<td>{v / step:.1%}</td></tr>" for k, v in waits.items()) or \
        "<tr><td colspan='3'>nothing: every collective hides under compute</td></tr>"
    gantt = ""
    if timeline is not None:
        from ..html_page import figures_html
        gantt = ("<h2>Timeline of the step</h2><p>One chip (every chip of its shard runs the "
                 "same program): forward blocks in order, backward in reverse, the FSDP "
                 "all-gathers prefetched one layer ahead and the gradient reduce-scatters on "
                 "the async ICI stream; red: the compute waiting.</p>"
                 + "".join(figures_html([timeline])))
    rows_alt = "".join(
        f"<tr><td>{escape(a['parallel'])}</td><td>{escape(a['remat'])}</td>"
        f"<td>{a['microbatches']}</td><td>{seconds(a['step_s'])}</td><td>{a['mfu']:.1%}</td>"
        f"<td>{_gib(a['hbm_gib_per_chip'])}</td></tr>" for a in rec["alternatives"])
    title = (f"{escape(rec['model'])} on {escape(rec['config'])} {escape(rec['topology'])} "
             f"({counted(rec['chips'], 'chip')})")
    head = (f"<p>sharding {escape(rec['parallel'])} ({escape(rec['sharding'])}), remat "
            f"{escape(rec['remat'])}, {rec['global_batch']} x {rec['seq']} tokens per step</p>"
            f"<p><b>step {seconds(step)}</b> &middot; {number(rec['tokens_per_s_per_chip'])} "
            "tokens/s "
            f"per chip &middot; MFU {rec['mfu']:.1%} &middot; HFU {rec['hfu']:.1%} &middot; "
            f"{_gib(rec['hbm_gib_per_chip'])} HBM per chip</p>")
    return _page(title, f"{_model_line(rec)}{head}<h2>Time</h2>"
                 + _time_table({_name(p): t[p] for p in parts}, step)
                 + "<h2>Collectives on ICI</h2>" + busy
                 + _table("<th>collective</th><th>time</th><th>received per chip</th>"
                          "<th class='l'>on the step</th>", rows_coll)
                 + "<h2>What the compute waits for (exposed)</h2>"
                 + _table("<th>collective</th><th>time</th><th>share of step</th>", rows_wait)
                 + gantt + _compute_by_op(rec) + "<h2>Memory per chip</h2>"
                 + "<p class='note'>At the step's HBM peak, the larger of two moments: inside "
                 "the layers (two layers' gathered weights and a layer's backward working set) "
                 "or at the loss (the logits and their gradient, the gathered LM head and last "
                 "layer); the other moment's parts read 0.</p>"
                 + _memory_table({_name(k): v for k, v in rec["memory_gib"].items()})
                 + "<h2>Shardings compared</h2>"
                 + _table("<th>parallel</th><th>remat</th><th>microbatches</th><th>step</th>"
                          "<th>MFU</th><th>HBM/chip</th>", rows_alt)
                 + provenance_footer(rec.get("provenance")))


def _compute_by_op(rec: dict[str, Any]) -> str:
    """train.json's ``time_by_op`` as a table, largest first: each forward row's forward,
    backward and recompute time and its share of the compute (empty without it)."""
    ops = rec.get("time_by_op")
    if not ops:
        return ""
    from ..units import seconds
    total = {o["name"]: o["forward_s"] + o["backward_s"] + o["recompute_s"] for o in ops}
    compute = sum(total.values())
    rows = "".join(
        f"<tr><td><code>{escape(o['name'])}</code></td><td>{seconds(o['forward_s'])}</td>"
        f"<td>{seconds(o['backward_s'])}</td><td>{seconds(o['recompute_s'])}</td>"
        f"<td>{seconds(total[o['name']])}</td><td>{total[o['name']] / compute:.1%}</td>"
        f"<td style='width:25%'>{_bar(total[o['name']], compute)}</td></tr>"
        for o in sorted(ops, key=lambda o: -total[o["name"]]))
    return ("<h2>Compute by op</h2><p>Each row of the chip's shard, every layer and "
            "microbatch: its forward, its backward (input- and weight-gradient GEMMs, a vector "
            "op's backward) and what the recompute reruns of it; attention is the flash "
            "kernels' forward and backward.</p>"
            + _table("<th>row</th><th>forward</th><th>backward</th><th>recompute</th>"
                     "<th>total</th><th>share of compute</th><th></th>", rows))


def step_report(rec: dict[str, Any], kind: str) -> str:
    """HTML for an ``infer.json`` or ``run --chips``'s ``sharded.json`` record (``kind``: the
    command's name): one sharded prefill or decode step, its time split into the per-chip
    compute and the TP all-reduces on its critical path, its memory per chip."""
    from ..units import counted, number, seconds
    step = rec["latency_s"]
    parts = {"compute (per chip)": rec["compute_s"],
             "all-reduces + logits all-gather (critical path)": rec["collectives_s"]}
    mem = {"weights": rec["weights_gib_per_chip"], "KV cache": rec["kv_cache_gib_per_chip"],
           "total": rec["hbm_gib_per_chip"]}
    what = rec.get("model") or rec.get("workload")
    title = (f"{escape(str(what))} {escape(rec['phase'])} on {escape(rec['config'])} "
             f"{escape(rec['topology'])} ({counted(rec['chips'], 'chip')})")
    shape = ", ".join(f"{k.replace('_', ' ')} {escape(str(rec[k]))}"
                      for k in ("batch", "sequences", "seq", "kv_len", "dtype")
                      if rec.get(k) is not None)
    head = (f"<p>sharding {escape(rec['parallel'])}; {shape}</p>"
            f"<p><b>{seconds(step)}</b> per step &middot; {number(rec['tokens_per_s'])} tokens/s "
            f"({number(rec['tokens_per_s_per_chip'])} per chip) &middot; "
            f"{_gib(rec['hbm_gib_per_chip'])} HBM per chip</p>")
    return _page(title, f"{_model_line(rec)}{head}<h2>Time (tpusim {escape(kind)})</h2>"
                 + _time_table(parts, step) + _ops_table(rec, step)
                 + "<h2>Memory per chip</h2>" + _memory_table(mem)
                 + provenance_footer(rec.get("provenance")))


def _ops_table(rec: dict[str, Any], step: float) -> str:
    """The step's time by trace row (all its instances: every layer) and by collective, each
    with its share of the step, largest first (empty for a record without ``time_by_op``)."""
    ops = rec.get("time_by_op")
    if not ops:
        return ""
    from ..units import seconds
    c = rec.get("collectives", {})
    parts = [(f"<code>{escape(o['name'])}</code>", escape(o["op"]), o["instances"], o["seconds"])
             for o in ops]
    if c.get("tp_all_reduces"):
        parts.append(("TP all-reduce", "collective", c["tp_all_reduces"],
                      c["tp_all_reduces"] * c["tp_all_reduce_s"]))
    if c.get("logits_all_gather_s"):
        parts.append(("logits all-gather", "collective", 1, c["logits_all_gather_s"]))
    rows = "".join(f"<tr><td>{n}</td><td class='l'>{op}</td><td>{k}</td><td>{seconds(t)}</td>"
                   f"<td>{t / step:.1%}</td><td style='width:35%'>{_bar(t, step)}</td></tr>"
                   for n, op, k, t in sorted(parts, key=lambda x: -x[3]))
    return ("<h2>Time by op</h2><p>Each row of the chip's shard of the trace, all its "
            "instances (every layer), and the collectives on the critical path.</p>"
            + _table("<th>row</th><th class='l'>op</th><th>instances</th><th>time</th>"
                     "<th>share</th><th></th>", rows))


__all__ = ["train_report", "step_report"]

"""A training step's schedule (``pod/schedule.py``) as a Chrome/Perfetto trace and as a Gantt.

``tpusim train ... --trace FILE.json`` writes :func:`schedule_trace`: the trace-event format of
``tpusim run --trace`` (:mod:`tpusim.trace_events`): one process (the simulated chip, standing
for every chip of its shard), one thread per track of the schedule that has spans (compute, the
async ICI stream, blocking collectives; ``tpusim infer --trace`` lays out an inference step the
same way, ``pod/infer.py``), every span a complete event (``"ph": "X"``, ``ts``/``dur`` in
µs) sorted by start on its track, its ``args`` naming the unit, what it is, its microbatch and,
for a collective, the bytes each chip receives in it; and a counter of those bytes per second.
:func:`schedule_figure` draws the same spans as a :class:`tpusim.figure.Figure` for the train
report page (no plotly import).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..figure import Figure
from ..trace_events import PID, _r
from .schedule import TP_HIDDEN, TRACKS, Schedule

COLORS = {"forward": "#4c78a8", "prefill": "#4c78a8", "decode": "#4c78a8",
          "backward": "#72b7b2", "recompute": "#b279a2",
          "optimizer": "#54a24b", "pipeline bubble": "#bab0ac",
          "FSDP all-gather": "#f58518", "gradient reduce-scatter": "#9467bd",
          "DP all-reduce": "#9d755d", "TP all-reduce": "#eeca3b", TP_HIDDEN: "#f2dc8c",
          "EP all-to-all": "#ff9da6",
          "PP send": "#8c6d31", "DCN all-reduce": "#7f7f7f", "logits all-gather": "#e45756"}
WAIT_COLOR = "#d62728"


def schedule_trace(sched: Schedule, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace-event JSON object of ``sched`` (recorded with its spans)."""
    name = (meta or {}).get("name", "training step")
    ev: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": PID, "tid": 0,
                                 "args": {"name": f"{name} (one chip per shard)"}}]
    used = {s.track for s in sched.spans or ()}
    tids = {t: i + 1 for i, t in enumerate(t for t in TRACKS if t in used)}
    for t, tid in tids.items():
        ev.append({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
                   "args": {"name": t}})
        ev.append({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid,
                   "args": {"sort_index": tid}})
    for s in sorted(sched.spans or (), key=lambda s: (tids[s.track], s.start)):
        moved = {k: v for k, v in (("ici_bytes", s.ici_bytes), ("dcn_bytes", s.dcn_bytes)) if v}
        ev.append({"name": f"{s.kind}: {s.name}", "cat": s.kind, "ph": "X",
                   "ts": _r(s.start * 1e6), "dur": _r(s.dur * 1e6) or s.dur * 1e6,
                   "pid": PID, "tid": tids[s.track],
                   "args": {"unit": s.name, "what": s.kind, "microbatch": s.microbatch,
                            "seconds": s.dur, **moved}})
    ev += _received_counter(sched.spans or ())
    other = {"tool": "tpusim", "step_s": sched.step_s, "compute_s": sched.compute_s,
             "exposed_collectives_s": sched.exposed_s, "waits_s": sched.waits_s,
             "bubble_s": sched.bubble_s, "optimizer_s": sched.optimizer_s, **(meta or {})}
    return {"traceEvents": ev, "displayTimeUnit": "ns", "otherData": other}


def _received_counter(spans) -> list[dict[str, Any]]:
    """A counter track of the bytes per second the chip receives over ICI and over DCN: each
    collective span's bytes spread evenly over its time, concurrent spans summed (its area is
    train.json's collective_bytes_per_chip)."""
    edges: dict[float, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in spans:
        if s.dur > 0 and (s.ici_bytes or s.dcn_bytes):
            for t, sign in ((s.start, 1.0), (s.start + s.dur, -1.0)):
                edges[t][0] += sign * s.ici_bytes / s.dur
                edges[t][1] += sign * s.dcn_bytes / s.dur
    out, ici, dcn = [], 0.0, 0.0
    for t in sorted(edges):
        ici, dcn = ici + edges[t][0], dcn + edges[t][1]
        ici, dcn = (0.0 if abs(x) < 1e-3 else x for x in (ici, dcn))   # float residue of a sum
        out.append({"name": "received (GB/s)", "ph": "C", "pid": PID, "ts": _r(t * 1e6),
                    "args": {"ICI": ici / 1e9, "DCN": dcn / 1e9}})
    return out


def schedule_trace_json(sched: Schedule, meta: dict[str, Any] | None = None) -> str:
    return json.dumps(schedule_trace(sched, meta), separators=(",", ":")) + "\n"


def write_schedule_trace(sched: Schedule, path: str | Path,
                         meta: dict[str, Any] | None = None) -> Path:
    """Write the trace to ``path`` atomically (checked by the caller first)."""
    from .._io import atomic_write_text
    p = Path(path)
    atomic_write_text(p, schedule_trace_json(sched, meta))
    return p


def schedule_figure(sched: Schedule, title: str = "Timeline of one training step") -> Figure:
    """The Gantt chart of ``sched``: its tracks top to bottom, time along x in ms (or s for
    steps over 10 s); the compute track's waits in red, named by what they wait on."""
    scale, unit = (1.0, "s") if sched.step_s >= 10 else (1e3, "ms")
    groups: dict[str, list] = defaultdict(list)
    for s in sched.spans or ():
        groups[s.kind].append(s)
    fig = Figure()
    for kind, spans in groups.items():
        waiting = kind.startswith("wait: ")
        color = WAIT_COLOR if waiting else COLORS.get(kind, "#888")
        fig.add_bar(y=[s.track for s in spans], x=[s.dur * scale for s in spans],
                    base=[s.start * scale for s in spans], orientation="h", name=kind,
                    marker={"color": color, "line": {"color": "white", "width": 0.3}},
                    opacity=0.75 if waiting else 1.0,
                    customdata=[[s.name, s.microbatch, s.start * scale] for s in spans],
                    hovertemplate=(f"%{{customdata[0]}} (microbatch %{{customdata[1]}})<br>"
                                   f"{kind}: %{{x:.4g}} {unit} from %{{customdata[2]:.4g}} "
                                   f"{unit}<extra></extra>"))
    fig.update_layout(barmode="overlay", bargap=0.3, title=title,
                      xaxis={"title": {"text": f"time ({unit})"}},
                      yaxis={"categoryorder": "array", "categoryarray": list(reversed(TRACKS)),
                             "fixedrange": True},
                      height=340, legend={"orientation": "h", "y": -0.3},
                      margin={"t": 50, "b": 40, "l": 150})
    return fig


__all__ = ["schedule_trace", "schedule_trace_json", "write_schedule_trace", "schedule_figure"]

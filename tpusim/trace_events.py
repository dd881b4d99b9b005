"""A run's timeline in the Chrome trace-event format, which ui.perfetto.dev and chrome://tracing
open: ``tpusim run CONFIG WORKLOAD --trace trace.json``.

One process (the chip running the workload), one thread per resource track of
:mod:`tpusim.timeline` (``layers``, ``MXU 0`` .., ``vector unit``, ``stalls``, HBM by stream) (named by ``thread_name`` metadata events and kept in that order by
``thread_sort_index``), every slice a complete event (``"ph": "X"``, ``ts`` and ``dur`` in
microseconds) sorted by ``ts`` on its track, and a counter (``"ph": "C"``) of the off-chip (HBM)
bandwidth in use in GB/s, which integrates over time to the bytes moved. Each slice's ``args`` name its
layer (``layer``, the row's index in ``layers.csv`` as ``row``), its cycles, and for DMA slices
the bytes; the ``layers`` slices carry the row's op, shape, format, count and bound.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import InputError
from .timeline import DMA_TRACKS, Timeline

PID = 1
RUN_NAMES = ("layers.csv", "summary.json", "config.yaml", "report.html")   # write_result's


def _r(x: float) -> float:
    return round(x, 9)   # 1 fs in µs: exact to far below a cycle, and a lighter file


def trace_events(tl: Timeline, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace-event JSON object of ``tl``."""
    us = 1.0 / (tl.clock_ghz * 1e3)
    ev: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": PID, "tid": 0,
         "args": {"name": f"{tl.workload} on {tl.config}"}}]
    tids = {t: i + 1 for i, t in enumerate(tl.tracks)}
    for t, tid in tids.items():
        ev.append({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
                   "args": {"name": tl.label(t)}})
        ev.append({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid,
                   "args": {"sort_index": tid}})
    rows = tl.rows
    for s in sorted(tl.slices, key=lambda s: (tids[s.track], s.start)):
        args: dict[str, Any] = {"layer": s.name, "row": s.row, "cycles": s.dur}
        if s.track == "layers":
            r = rows[s.row]
            args.update({k: r[k] for k in ("op", "shape", "format", "count", "bound",
                                           "cycles_per_instance")})
        if s.nbytes:
            args["bytes"] = s.nbytes
        ev.append({"name": s.label or s.name, "cat": s.track, "ph": "X", "ts": _r(s.start * us),
                   "dur": _r(s.dur * us) or s.dur * us, "pid": PID, "tid": tids[s.track], "args": args})
    ev.extend(_counter(tl, us))
    other = {"tool": "tpusim", "config": tl.config, "workload": tl.workload,
             "clock_ghz": tl.clock_ghz, "detail": tl.detail, "blocks_drawn": tl.blocks_drawn,
             "instances_as_totals": tl.totals_drawn, **(meta or {})}
    return {"traceEvents": ev, "displayTimeUnit": "ns", "otherData": other}


def _counter(tl: Timeline, us: float) -> list[dict[str, Any]]:
    """The HBM counter: each DMA slice's rate over it, 0 between (slices never overlap)."""
    dma = sorted((s for s in tl.slices if s.track in DMA_TRACKS), key=lambda s: s.start)
    out: list[dict[str, Any]] = []

    def point(t: float, v: float) -> None:
        ts = _r(t * us)
        if out and out[-1]["ts"] >= ts:   # the later value holds from here
            out.pop()
        if out and out[-1]["args"]["GB/s"] == v:
            return
        out.append({"name": f"{tl.offchip} bandwidth in use", "ph": "C", "ts": ts, "pid": PID, "args": {"GB/s": v}})

    for s in dma:
        point(s.start, s.nbytes / s.dur * tl.clock_ghz)
        point(s.start + s.dur, 0.0)
    return out


def check_trace_path(path: str | Path, out_dir: str | Path | None = None,
                     own: tuple[str, ...] = RUN_NAMES) -> Path:
    """``path`` as a place to write a trace: its directory is a folder or can be made one (a
    missing one is created when the trace is written, as ``--out``'s is), it is absent or a
    regular file holding a trace tpusim wrote (:func:`is_trace`), and it is none of the
    command's ``own`` files in ``out_dir`` nor a file another output there lists; else
    :class:`InputError` (one line) before anything is written."""
    from ._io import check_dir, check_writable, is_trace
    from .ownership import check_lone_file
    if str(path).endswith(("/", os.sep)):      # Path() would drop the slash: a folder meant
        raise InputError(str(path), None, message="names a folder; --trace takes a file path "
                         "such as trace.json")
    p = Path(path)
    if p.is_dir():
        raise InputError(str(p), None, message="is a directory; --trace takes a file path "
                         "such as trace.json")
    if out_dir is not None:   # a path the run's own writes will turn into a folder or a file
        rel = Path(os.path.relpath(os.path.abspath(p), os.path.abspath(out_dir)))
        if rel == Path("."):
            raise InputError(str(p), None, message="is the --out folder; --trace takes a file "
                             "path such as trace.json")
        if len(rel.parts) > 1 and rel.parts[0] in own:
            raise InputError(str(p), None, message=f"lies under {rel.parts[0]}, one of the "
                             "run's own files; name the trace something else, such as "
                             "trace.json")
    if in_dir(p, out_dir) and p.name in own:
        raise InputError(str(p), None, message="is one of the run's own files; name the trace "
                         "something else, such as trace.json")
    # in the run's folder its own write checks the other outputs there
    check_lone_file(p, is_trace, "--trace path", others=not in_dir(p, out_dir))
    check_dir(p.parent, "--trace path")
    check_writable(p.parent, p)
    return p


def in_dir(path: Path, out_dir: str | Path | None) -> bool:
    """Whether ``path`` names a file directly in ``out_dir``."""
    return out_dir is not None and os.path.abspath(path.parent) == os.path.abspath(out_dir)


def trace_json(tl: Timeline, meta: dict[str, Any] | None = None) -> str:
    return json.dumps(trace_events(tl, meta), separators=(",", ":")) + "\n"


def write_trace(tl: Timeline, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``tl`` to ``path`` atomically (a temporary file renamed over it when complete)."""
    from ._io import atomic_write_text
    p = check_trace_path(path)
    atomic_write_text(p, trace_json(tl, meta))
    return p

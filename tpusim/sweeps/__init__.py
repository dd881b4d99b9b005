"""Design-space sweeps: :func:`sweep` runs one simulation per point of a product of config values.

A sweep is a list of *points*. Each point is one workload, one value per swept config path
(``array.rows``, ``array.cols``, any ``--set`` path) and optionally a forced ``format``. The
product is expanded in :func:`plan_sweep`, which validates every listed value against the
config before anything runs, so a typo fails in a second instead of after an hour.

Each point has a *key*: a hash of the config content after its overrides, the workload file's
content, the format and the tpusim version. With an output directory the sweep is resumable:
finished points are appended, a chunk at a time, to small JSON-lines files under
``DIR/.sweep-journal/`` (each written under a temporary name and renamed), and consolidated into
``DIR/sweep.parquet`` and ``DIR/sweep.csv`` (all-or-nothing renames) every
:data:`CONSOLIDATE_EVERY_S` seconds (longer once rewriting the files takes over a tenth of
that) and at the end. A re-run reads both and skips every point
whose key is already there; a kill loses only the chunks in flight. Rows of an earlier sweep with
other points stay in the files (results accumulate, keyed by the full config), and one sweep at
a time may write a directory (an exclusive ``flock`` on it).

Points run in chunks (consecutive points, so a worker reuses its config and workload) on one of
three executors: in this process (``jobs=1``), a local process pool (default, all cores), or a
Dask distributed cluster (``scheduler="tcp://host:port"``). All three run the same function on
the same inputs, so they give the same numbers; only ``simulator_seconds`` differs.

A point that fails with :class:`~tpusim.errors.InputError` (say, an array whose tile does not
fit SRAM) is recorded with ``status = failed`` and the error's line; the sweep goes on.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from .. import tables
from ..errors import InputError
from .executors import (  # noqa: F401  (MAX_CHUNK, flatten_summary: re-exported)
    INTERNAL, MAX_CHUNK, _cpu_count, _dask_client, _Payload, _plain, _run_dask, _run_inline,
    _run_pool, check_address, flatten_summary)
from .columns import Columns
from .journal import JOURNAL_DIR, _Store
from .plan import FORMAT, Plan, Point, _sha, plan_sweep  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd

CONSOLIDATE_EVERY_S = 30.0
WRITE_SHARE = 10.0      # consolidations wait at least this many times their last write's time

__all__ = ["sweep", "plan_sweep", "Plan", "Point", "JOURNAL_DIR", "flatten_summary"]


def _reusable(rec: dict[str, Any] | None) -> bool:
    if rec is None:
        return False
    return rec.get("status") == "ok" or not str(rec.get("error") or "").startswith(INTERNAL)


@contextmanager
def _progress_bar(total: int, progress: Any, label: str) -> Iterator[Callable[[int], None]]:
    """A rich bar with ETA on stderr (``progress`` True, or None and stderr a terminal); a
    callable ``progress(done, total)`` is called instead; otherwise nothing."""
    if callable(progress):
        state = {"done": 0}

        def call(n: int) -> None:
            state["done"] += n
            progress(state["done"], total)
        yield call
        return
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class _Subset(Sequence):
    """Points ``idx`` of a plan, built when reached (a resumed sweep's points still to run)."""

    def __init__(self, points: Sequence[Point], idx: list[int]):
        self.points, self.idx = points, np.array(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.points[int(j)] for j in self.idx[i]]
        return self.points[int(self.idx[i])]

    def __iter__(self) -> Iterator[Point]:
        return (self.points[j] for j in self.idx.tolist())


def _frame(results: Columns, last: bool = False) -> "pd.DataFrame":
    """The finished points' frame with the derived per-point metrics (perf/area, perf/W);
    ``last``: the sweep's final frame, which empties ``results`` as it is built."""
    from ..sweep_metrics import add_derived
    return add_derived(results.frame(consume=last), inplace=True)


def sweep(config: str | Path | ChipConfig, workloads: Any, axes: dict[Any, Iterable], *,
              jobs: int | None = None, scheduler: Any = None, out_dir: str | Path | None = None,
              progress: Any = None, html: bool = True,
              record: dict[str, Any] | None = None) -> pd.DataFrame:
    """Simulate every point of the product of ``workloads`` and ``axes``; one row per point.

    ``axes`` maps a dotted config path (``"array.rows"``) or ``"format"`` to its values; a tuple
    of paths maps to tuples of values that vary together (``--square``). ``jobs=1`` runs in this
    process, otherwise a pool of ``jobs`` processes (default: every core); ``scheduler`` (an
    address such as ``"tcp://host:8786"`` or a ``distributed.Client``) runs the chunks on Dask.
    With ``out_dir`` the sweep is resumable and writes ``sweep.parquet``, ``sweep.csv`` and
    (unless ``html=False``) ``sweep.html`` there; the files keep the rows of earlier, different
    sweeps into the same directory (this frame and ``sweep.html`` hold this sweep's points).
    The frame's ``attrs`` hold ``points``, ``computed``, ``reused``, ``failed`` and, when
    ``out_dir`` held rows of other points, ``kept`` (how many stay in the files). ``record``
    (JSON values, e.g. the command's provenance) goes to ``sweep.json`` with those counts.
    """
    plan = plan_sweep(config, workloads, axes)
    if jobs is not None and jobs < 1:
        raise InputError("jobs", None, jobs, "must be >= 1")
    check_address(scheduler)
    store = _Store(Path(out_dir)) if out_dir is not None else None
    if store is None:
        return _sweep(plan, None, {}, jobs, scheduler, progress, html, None)
    made = not Path(out_dir).exists()
    store.lock(html=html, record=record is not None)
    try:
        known = store.load()
        store.keep_foreign(known, plan)
        return _sweep(plan, store, known, jobs, scheduler, progress, html, record)
    except InputError:   # e.g. no scheduler at that address: leave no empty folder behind
        if made and not any(Path(out_dir).iterdir()):
            Path(out_dir).rmdir()
        raise
    finally:
        store.release()


def _sweep(plan: Plan, store: "_Store | None", known: dict[str, dict[str, Any]],
           jobs: int | None, scheduler: Any, progress: Any, html: bool,
           record: dict[str, Any] | None) -> pd.DataFrame:
    """Run ``plan``'s points not in ``known``; write to ``store`` (locked by the caller)."""
    results = Columns(plan)
    todo: Sequence[Point] = plan.points
    if known:
        left: list[int] = []
        again: list[dict[str, Any]] = []
        for p in plan.points:
            rec = known.get(p.key)
            if _reusable(rec):
                again.append({**rec, "index": p.index})
            else:
                left.append(p.index)
        for i in range(0, len(again), 4096):
            results.add(again[i:i + 4096])
        del again
        todo = _Subset(plan.points, left)
    reused = len(results)

    table = tables.current()
    token = plan.base.model_dump_json() + ("" if table == tables.DEFAULT else repr(table))
    payload = _Payload(_sha(token), plan.base, plan.workloads, table)
    jobs = jobs or _cpu_count()
    if not todo:
        batches: Iterator[list[dict]] = iter(())
    elif scheduler is not None:  # connect now, so a bad address fails before any point runs
        batches = _run_dask(payload, todo, *_dask_client(scheduler))
    elif jobs == 1 or len(todo) == 1:
        batches = _run_inline(payload, todo)
    else:
        batches = _run_pool(payload, todo, jobs)

    last, pause = time.monotonic(), CONSOLIDATE_EVERY_S
    try:
        with _progress_bar(len(todo), progress, "sweep") as advance:
            for records in batches:
                # Held before journalled: a Ctrl-C between the two still writes these rows
                # (the interrupt's consolidation drops every journal file it has seen).
                results.add(records)
                if store:
                    store.append(records, plan)
                advance(len(records))
                if store and time.monotonic() - last > pause:
                    began = time.monotonic()
                    store.write(_frame(results))
                    last = time.monotonic()
                    # Each consolidation rewrites every row so far: space them so that they
                    # take at most ~1/WRITE_SHARE of the sweep (the journal keeps it resumable).
                    if CONSOLIDATE_EVERY_S > 0:   # <= 0: after every chunk (tests)
                        pause = max(CONSOLIDATE_EVERY_S, (last - began) * WRITE_SHARE)
    except InputError:   # the cluster failed mid-sweep: keep what finished, as below
        if store and len(results) > reused:
            store.write(_frame(results))
            store.close()
        raise
    except KeyboardInterrupt:
        if store:  # keep what finished; the re-run resumes from here
            batches_close = getattr(batches, "close", None)
            if batches_close:
                batches_close()
            store.write(_frame(results))
            store.close()
        raise
    finally:
        getattr(batches, "close", lambda: None)()

    df = _frame(results, last=True)
    del results
    counts = {"points": len(plan.points), "computed": len(plan.points) - reused,
              "reused": reused, "failed": int((df["status"] == "failed").sum())}
    if store:
        page = None
        if html:
            from ..sweep_plots import sweep_html
            page = sweep_html(df, title=f"Sweep of {', '.join(plan.labels)} on {plan.base.name}")
        extra = {}
        if record is not None:
            import json
            text = json.dumps({**record, **counts,
                               "kept_from_earlier_sweeps": len(store.foreign)},
                              indent=2, sort_keys=True) + "\n"
            extra["sweep.json"] = lambda p: p.write_text(text)
        store.write(df, page, extra)
        store.close()
    df.attrs.update(counts)
    if store and store.foreign:
        df.attrs["kept"] = len(store.foreign)
    return df

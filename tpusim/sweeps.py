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
:data:`CONSOLIDATE_EVERY_S` seconds and at the end. A re-run reads both and skips every point
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

import hashlib
import itertools
import json
import math
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from . import __version__, tables
from .config import ChipConfig, load_config
from .errors import InputError
from .importers import find_workload, load_workload
from .sweep_metrics import DERIVED, add_derived
from .workload import Workload

JOURNAL_DIR = ".sweep-journal"
CONSOLIDATE_EVERY_S = 30.0
MAX_CHUNK = 32          # points per chunk: small enough that a kill loses little
CHUNKS_PER_WORKER = 4   # enough chunks per worker to even out uneven point costs
FORMAT = "format"       # the one swept name that is not a config path
INTERNAL = "internal error: "  # prefix of failures that are bugs, not bad input: retried on resume

__all__ = ["sweep", "plan_sweep", "Plan", "Point", "JOURNAL_DIR"]


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Point:
    """One simulation: ``values`` maps each swept path (and ``format``) to its value."""

    index: int
    workload: int                       # index into Plan.workloads
    values: tuple[tuple[str, Any], ...]
    key: str

    @property
    def overrides(self) -> dict[str, Any]:
        return {p: v for p, v in self.values if p != FORMAT}

    @property
    def format(self) -> str | None:
        return dict(self.values).get(FORMAT)


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the base chip, the loaded workloads and every point in order."""

    base: ChipConfig
    workloads: tuple[Workload, ...]
    labels: tuple[str, ...]             # the ``workload`` column, one per workload
    columns: tuple[str, ...]            # swept paths in column order (``format`` included)
    points: tuple[Point, ...]


@dataclass(frozen=True)
class _Payload:
    """What every worker needs once: the base chip and the workloads (no file access needed)."""

    token: str
    base: ChipConfig
    workloads: tuple[Workload, ...]
    table: tables.Tables = tables.DEFAULT   # the energy/area table the caller had installed


def _sha(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _workload_hash(arg: Any, wl: Workload) -> str:
    """The workload file's content hash; an in-memory workload hashes its layer records."""
    if isinstance(arg, Workload):
        return _sha(repr(wl.layers))
    return _sha(find_workload(arg).read_bytes())


def _normalise_axes(axes: dict) -> list[tuple[tuple[str, ...], list[tuple]]]:
    """``{"array.rows": [16, 32]}`` or zipped ``{("array.rows", "array.cols"): [(16, 16)]}``."""
    out: list[tuple[tuple[str, ...], list[tuple]]] = []
    seen: set[str] = set()
    for key, values in axes.items():
        paths = (key,) if isinstance(key, str) else tuple(key)
        for p in paths:
            if not isinstance(p, str) or not p:
                raise InputError("axes", None, p, "expected a dotted config path, e.g. array.rows")
            if p in seen:
                raise InputError("axes", p, message="swept twice; give each path once")
            seen.add(p)
        values = list(values)
        if not values:
            raise InputError("axes", ",".join(paths), message="empty list of values")
        if len(paths) == 1:
            rows = [(v,) for v in values]
        else:
            rows = [tuple(v) for v in values]
            bad = [v for v in rows if len(v) != len(paths)]
            if bad:
                raise InputError("axes", ",".join(paths), bad[0],
                                 f"expected {len(paths)} values per point")
        out.append((paths, rows))
    return out


def plan_sweep(config: str | Path | ChipConfig, workloads: Any,
               axes: dict) -> Plan:
    """Expand and validate a sweep. Raises :class:`InputError` before anything runs when a
    config, workload, path or value is bad: each listed value is applied to the config alone."""
    base = load_config(config)
    if isinstance(workloads, (str, Path, Workload)):
        workloads = [workloads]
    workloads = list(workloads)
    if not workloads:
        raise InputError("workloads", None, message="need at least one workload")
    wls = [load_workload(w) for w in workloads]
    hashes = [_workload_hash(a, w) for a, w in zip(workloads, wls)]
    labels = [w.name for w in wls]
    if len(set(labels)) < len(labels):  # two files share a name: label them as given
        labels = [w.name if isinstance(w, Workload) else str(w) for w in workloads]

    norm = _normalise_axes(axes)
    for paths, rows in norm:
        for row in rows:
            over = {p: v for p, v in zip(paths, row) if p != FORMAT}
            chip = load_config(base, **over) if over else base
            for p, v in zip(paths, row):
                if p == FORMAT:
                    if not isinstance(v, str):
                        raise InputError("format", None, v, "expected a format name")
                    chip.check_format(v, "format")
    columns = tuple(p for paths, _ in norm for p in paths)

    table = tables.current()
    table_key = "" if table == tables.DEFAULT else _sha(repr(table))
    chips: dict[str, str] = {}          # overrides JSON -> config content after overrides
    points: list[Point] = []
    combos = list(itertools.product(*[rows for _, rows in norm]))
    for wi, combo in itertools.product(range(len(wls)), combos):
        values = tuple((p, v) for (paths, _), row in zip(norm, combo) for p, v in zip(paths, row))
        over = {p: v for p, v in values if p != FORMAT}
        over_json = json.dumps(over, sort_keys=True, default=str)
        content = chips.get(over_json)
        if content is None:
            try:
                content = load_config(base, **over).model_dump_json()
            except InputError:          # fails in combination only: the point records why
                content = base.model_dump_json() + over_json
            chips[over_json] = content
        ident = {"config": _sha(content), "workload": hashes[wi],
                 "format": dict(values).get(FORMAT), "tpusim": __version__}
        if table_key:   # a swapped energy/area table gives other energies: other points
            ident["tables"] = table_key
        key = _sha(json.dumps(ident, sort_keys=True))[:24]
        points.append(Point(len(points), wi, values, key))
    return Plan(base, tuple(wls), tuple(labels), columns, tuple(points))


# ---------------------------------------------------------------- running one chunk

_WORKER: dict[str, Any] = {"chips": {}}   # per process: payload and a small config cache


def _plain(v: Any) -> Any:
    """A JSON/Parquet-friendly scalar: numpy scalars unboxed, NaN as None."""
    if v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Scalar summary fields as they are, dicts as ``name.sub`` columns, lists joined by ``,``."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            for sk, sv in v.items():
                out[f"{k}.{sk}"] = _plain(sv)
        elif isinstance(v, (list, tuple)):
            out[k] = ",".join(map(str, v))
        else:
            out[k] = _plain(v)
    return out


def _chip_for(payload: _Payload, overrides: dict[str, Any]) -> ChipConfig:
    cache = _WORKER["chips"]
    key = (payload.token, json.dumps(overrides, sort_keys=True, default=str))
    chip = cache.get(key)
    if chip is None:
        if len(cache) > 256:
            cache.clear()
        chip = load_config(payload.base, **overrides) if overrides else payload.base
        cache[key] = chip
    return chip


def _run_chunk(payload: _Payload, chunk: Sequence[tuple]) -> list[dict[str, Any]]:
    """Simulate each ``(index, key, workload, overrides, format)``; failures become records."""
    from .simulator import simulate
    with tables.use(payload.table):
        return _run_points(payload, chunk, simulate)


def _run_points(payload: _Payload, chunk: Sequence[tuple], simulate) -> list[dict[str, Any]]:
    out = []
    for index, key, wi, overrides, fmt in chunk:
        rec: dict[str, Any] = {"index": index, "key": key}
        try:
            chip = _chip_for(payload, overrides)
            summary = simulate(chip, payload.workloads[wi], format=fmt).summary
            rec.update(flatten_summary(summary), status="ok", error=None)
        except InputError as exc:
            rec.update(status="failed", error=str(exc))
        except Exception as exc:  # a bug, not bad input: record it, retry it on resume
            msg = f"{INTERNAL}{type(exc).__name__}: {exc}".replace("\n", " ")
            rec.update(status="failed", error=msg)
        out.append(rec)
    return out


def _die_with_parent(parent: int) -> None:
    """Make this worker exit when the sweep process ``parent`` dies (SIGKILL, a CI timeout):
    Linux delivers SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and
    for a parent that died before that call, a daemon thread polls ``os.getppid()``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)   # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)
    import threading
    threading.Thread(target=watch, name="tpusim-parent-watch", daemon=True).start()


def _init_pool_worker(payload: _Payload, parent: int | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if parent is not None:
        _die_with_parent(parent)
    _WORKER["payload"] = payload


def _pool_chunk(chunk: Sequence[tuple]) -> list[dict[str, Any]]:
    return _run_chunk(_WORKER["payload"], chunk)


# ---------------------------------------------------------------- executors

def _chunks(points: Sequence[Point], workers: int) -> list[list[tuple]]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(points) / (workers * CHUNKS_PER_WORKER))))
    items = [(p.index, p.key, p.workload, p.overrides, p.format) for p in points]
    return [items[i:i + size] for i in range(0, len(items), size)]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_inline(payload: _Payload, points: Sequence[Point]) -> Iterator[list[dict]]:
    for chunk in _chunks(points, 1):
        yield _run_chunk(payload, chunk)


def _run_pool(payload: _Payload, points: Sequence[Point], jobs: int) -> Iterator[list[dict]]:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    chunks = _chunks(points, jobs)
    workers = min(jobs, len(chunks))
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_pool_worker,
                               initargs=(payload, os.getpid()))
    futures: set = set()
    try:
        futures = {pool.submit(_pool_chunk, c) for c in chunks}
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    finally:
        if futures:  # stopped early (Ctrl-C, an error): drop the chunks in flight, now
            for f in futures:
                f.cancel()
            _terminate_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool) -> None:
    stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if stop is not None:
        stop()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()


def _dask_client(scheduler: Any):
    """A client for ``scheduler`` (an address, or a ``distributed.Client`` we do not own)."""
    if not isinstance(scheduler, (str, Path)):
        return scheduler, False
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError("scheduler", None, message="Dask is not installed; "
                         "pip install 'tpusim[dask]'") from None
    try:
        return Client(str(scheduler), timeout="15s", set_as_default=False), True
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError("scheduler", None, str(scheduler),
                         f"could not connect to a Dask scheduler ({exc})") from None


def _run_dask(payload: _Payload, points: Sequence[Point], client: Any,
              owned: bool) -> Iterator[list[dict]]:
    from dask.distributed import as_completed

    futures: list = []
    try:
        threads = max(1, sum(client.nthreads().values()))
        # Scattered once: each worker deserialises the workloads once, not per chunk.
        shared = client.scatter(payload, broadcast=True, hash=False)
        futures = [client.submit(_run_chunk, shared, c, pure=False)
                   for c in _chunks(points, threads)]
        for f in as_completed(futures, loop=client.loop):
            yield f.result()
    finally:
        if futures:
            client.cancel(futures)
        if owned:
            client.close()


# ---------------------------------------------------------------- the output directory

class _Store:
    """``sweep.parquet``/``sweep.csv`` and the journal of chunks finished since their last write.

    The files hold every point any sweep into the directory finished, keyed by ``key`` (a hash
    of the full config, workload content, format and version): a later sweep with other values
    adds its rows and keeps the earlier ones (:meth:`keep_foreign`). One sweep at a time holds
    an exclusive ``flock`` on the directory itself; a second one refuses with one line.
    """

    def __init__(self, out_dir: Path):
        self.dir = out_dir
        self.journal = out_dir / JOURNAL_DIR
        self.pending: list[Path] = []   # journal files not yet consolidated
        self.seq = 0
        self.run_id = f"{int(time.time() * 1000):x}-{os.getpid()}"
        self.foreign: list[dict[str, Any]] = []   # rows of earlier sweeps, not in this plan
        self._lock: Any = None

    def lock(self) -> None:
        """Hold ``DIR/.sweep.lock`` until :meth:`release`, or raise one line if it is held."""
        from ._io import check_dir
        check_dir(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        fd = os.open(self.dir, os.O_RDONLY)   # the directory itself: no lock file to leave
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(str(self.dir), None, message="another tpusim is writing this "
                             "folder; wait for it to finish or choose another --out") from None
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)   # closing the descriptor drops the flock
            self._lock = None

    def keep_foreign(self, known: dict[str, dict[str, Any]], plan: "Plan") -> None:
        """Remember the loaded rows whose points this plan does not have; every write keeps them."""
        mine = {p.key for p in plan.points}
        self.foreign = [_as_row(r) for k, r in known.items() if k not in mine]

    def load(self) -> dict[str, dict[str, Any]]:
        """Records by key from the last consolidation and any journal files after it."""
        records: dict[str, dict[str, Any]] = {}
        main = self.dir / "sweep.parquet"
        if main.is_file():
            try:
                df = pd.read_parquet(main)
            except Exception as exc:
                raise InputError(str(main), None, message=f"cannot read earlier results ({exc}); "
                                 "delete the file or choose another --out") from None
            if "key" not in df.columns:
                raise InputError(str(main), "key", message="not a tpusim sweep (no key column); "
                                 "choose another --out")
            for rec in df.to_dict("records"):
                rec = {k: _plain(v) for k, v in rec.items()}
                records[rec["key"]] = rec
        if self.journal.is_dir():
            for tmp in self.journal.glob(".*.tmp"):  # left by a kill mid-write; never renamed
                tmp.unlink(missing_ok=True)
            for path in sorted(self.journal.glob("*.jsonl")):
                for line in path.read_text().splitlines():
                    if line.strip():
                        rec = json.loads(line)
                        records[rec["key"]] = rec
                self.pending.append(path)
        for tmp in self.dir.glob(".sweep.*.tmp"):
            tmp.unlink(missing_ok=True)
        return records

    def append(self, records: list[dict[str, Any]], plan: "Plan | None" = None) -> None:
        """Journal finished records; with ``plan``, each carries its workload and swept values
        (``_workload``, ``_values``) so that a later, different sweep can keep it as a row."""
        from ._io import atomic_path
        self.seq += 1
        path = self.journal / f"{self.run_id}-{self.seq:06d}.jsonl"
        if plan is not None:
            records = [{**r, "_workload": plan.labels[plan.points[r["index"]].workload],
                        "_values": dict(plan.points[r["index"]].values)} for r in records]
        text = "".join(json.dumps(r, default=_plain) + "\n" for r in records)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        self.pending.append(path)

    def write(self, df: pd.DataFrame, html: str | None = None) -> list[Path]:
        """Write the files all-or-nothing, then drop the journal files they now contain."""
        from ._io import csv_safe
        from .results import write_all
        df = _with_rows(df, self.foreign)
        files = {
            "sweep.parquet": lambda p: df.to_parquet(p, index=False),
            "sweep.csv": lambda p: p.write_text(csv_safe(df).to_csv(index=False)),
        }
        if html is not None:
            files["sweep.html"] = lambda p: p.write_text(html)
        written = write_all(files, self.dir, group="sweep", locked=self._lock is not None)
        for path in self.pending:
            path.unlink(missing_ok=True)
        self.pending = []
        return written

    def close(self) -> None:
        try:
            self.journal.rmdir()
        except OSError:  # not empty (another run's files) or already gone
            pass


# ---------------------------------------------------------------- assembling the frame

def _as_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A stored record as a frame row: parquet rows already are; journal records carry their
    workload and swept values (records of an older tpusim without them keep what they have)."""
    row = {k: v for k, v in rec.items() if k not in ("index", "_workload", "_values")}
    if "_workload" in rec:
        row = {"workload": rec["_workload"], **(rec.get("_values") or {}), **row}
    return row


def _with_rows(df: pd.DataFrame, extra: list[dict[str, Any]]) -> pd.DataFrame:
    """``df`` followed by ``extra`` rows (earlier sweeps'); columns only they have go after the
    swept columns, integer columns stay integers where a row lacks them."""
    if not extra:
        return df
    more = pd.DataFrame(extra)
    new = [c for c in more.columns if c not in df.columns]
    lead = list(df.columns[:list(df.columns).index("config")]) if "config" in df.columns else []
    cols = lead + new + [c for c in df.columns if c not in lead]
    both = pd.concat([df, more], ignore_index=True, sort=False).reindex(columns=cols)
    for c in cols:
        if any(c in f.columns and f[c].dtype.kind in "iu" for f in (df, more)):
            vals = pd.to_numeric(both[c], errors="coerce")
            if vals.notna().sum() == both[c].notna().sum() and (vals.dropna() % 1 == 0).all():
                both[c] = vals.astype("Int64")
    return both


def _reusable(rec: dict[str, Any] | None) -> bool:
    if rec is None:
        return False
    return rec.get("status") == "ok" or not str(rec.get("error") or "").startswith(INTERNAL)


def _frame(plan: Plan, results: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """One row per finished point, in plan order: swept values, summary fields, status, error."""
    lead = ["workload", *plan.columns]
    rows, extra = [], {}
    for i in sorted(results):
        p = plan.points[i]
        rec = results[i]
        row: dict[str, Any] = {"workload": plan.labels[p.workload], **dict(p.values)}
        for k, v in rec.items():
            if k not in row and k not in ("index", "key", "status", "error", "_workload",
                                          "_values", *DERIVED):
                row[k] = _plain(v)
                extra.setdefault(k, None)
        row.setdefault("config", plan.base.name)
        row.update(status=rec.get("status"), error=rec.get("error"), key=p.key)
        rows.append(row)
    cols = [*lead, "config", *[k for k in extra if k != "config"], "status", "error", "key"]
    return add_derived(pd.DataFrame(rows, columns=cols))


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


# ---------------------------------------------------------------- the entry point

def sweep(config: str | Path | ChipConfig, workloads: Any, axes: dict[Any, Iterable], *,
              jobs: int | None = None, scheduler: Any = None, out_dir: str | Path | None = None,
              progress: Any = None, html: bool = True) -> pd.DataFrame:
    """Simulate every point of the product of ``workloads`` and ``axes``; one row per point.

    ``axes`` maps a dotted config path (``"array.rows"``) or ``"format"`` to its values; a tuple
    of paths maps to tuples of values that vary together (``--square``). ``jobs=1`` runs in this
    process, otherwise a pool of ``jobs`` processes (default: every core); ``scheduler`` (an
    address such as ``"tcp://host:8786"`` or a ``distributed.Client``) runs the chunks on Dask.
    With ``out_dir`` the sweep is resumable and writes ``sweep.parquet``, ``sweep.csv`` and
    (unless ``html=False``) ``sweep.html`` there; the files keep the rows of earlier, different
    sweeps into the same directory (this frame and ``sweep.html`` hold this sweep's points).
    The frame's ``attrs`` hold ``points``, ``computed``, ``reused``, ``failed`` and, when
    ``out_dir`` held rows of other points, ``kept`` (how many stay in the files).
    """
    plan = plan_sweep(config, workloads, axes)
    if jobs is not None and jobs < 1:
        raise InputError("jobs", None, jobs, "must be >= 1")
    store = _Store(Path(out_dir)) if out_dir is not None else None
    if store is None:
        return _sweep(plan, None, {}, jobs, scheduler, progress, html)
    store.lock()
    try:
        known = store.load()
        store.keep_foreign(known, plan)
        return _sweep(plan, store, known, jobs, scheduler, progress, html)
    finally:
        store.release()


def _sweep(plan: Plan, store: "_Store | None", known: dict[str, dict[str, Any]],
           jobs: int | None, scheduler: Any, progress: Any, html: bool) -> pd.DataFrame:
    """Run ``plan``'s points not in ``known``; write to ``store`` (locked by the caller)."""
    results: dict[int, dict[str, Any]] = {}
    todo: list[Point] = []
    for p in plan.points:
        rec = known.get(p.key)
        if _reusable(rec):
            results[p.index] = rec
        else:
            todo.append(p)
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

    last = time.monotonic()
    try:
        with _progress_bar(len(todo), progress, "sweep") as advance:
            for records in batches:
                if store:
                    store.append(records, plan)
                for rec in records:
                    results[rec["index"]] = rec
                advance(len(records))
                if store and time.monotonic() - last > CONSOLIDATE_EVERY_S:
                    store.write(_frame(plan, results))
                    last = time.monotonic()
    except KeyboardInterrupt:
        if store:  # keep what finished; the re-run resumes from here
            batches_close = getattr(batches, "close", None)
            if batches_close:
                batches_close()
            store.write(_frame(plan, results))
            store.close()
        raise
    finally:
        getattr(batches, "close", lambda: None)()

    df = _frame(plan, results)
    if store:
        page = None
        if html:
            from .sweep_plots import sweep_html
            page = sweep_html(df, title=f"Sweep of {', '.join(plan.labels)} on {plan.base.name}")
        store.write(df, page)
        store.close()
    df.attrs.update(points=len(plan.points), computed=len(plan.points) - reused, reused=reused,
                    failed=int((df["status"] == "failed").sum()))
    if store and store.foreign:
        df.attrs["kept"] = len(store.foreign)
    return df

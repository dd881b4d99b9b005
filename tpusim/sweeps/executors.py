"""Running a sweep's points: chunks on one of three executors, each chunk one columnar call.

Points run in chunks (consecutive points, so a worker reuses its config and workload) in this
process (``jobs=1``), a local process pool, or a Dask distributed cluster. All three run
:func:`_run_chunk` on the same inputs, so they give the same numbers; only
``simulator_seconds`` differs. A chunk's points are prepared one by one (a point that fails with
:class:`~tpusim.errors.InputError` becomes a failed record) and then evaluated together by the
columnar core (:func:`tpusim.columnar.evaluate`), summary only: the per-call overhead of the
array code is paid once per chunk, not once per point.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import tables
from ..config import ChipConfig, load_config
from ..errors import InputError
from ..workload import Workload
from .plan import Point

MAX_CHUNK = 64          # points per chunk: one array call, and small enough that a kill loses little
CHUNKS_PER_WORKER = 4   # enough chunks per worker to even out uneven point costs
DASK_MAX_CHUNK = 256    # points per Dask task: Dask's own cost per task (~3 ms of worker and
                        # 4-5 ms of scheduler and client CPU, measured) spread over 4x the points
IN_FLIGHT = 3           # chunks submitted per worker ahead of the results read back
INTERNAL = "internal error: "  # prefix of failures that are bugs, not bad input: retried on resume


@dataclass(frozen=True)
class _Payload:
    """What every worker needs once: the base chip and the workloads (no file access needed)."""

    token: str
    base: ChipConfig
    workloads: tuple[Workload, ...]
    table: tables.Tables = tables.DEFAULT   # the energy/area table the caller had installed


_WORKER: dict[str, Any] = {"chips": {}}   # per process: payload and a small config cache


def _plain(v: Any) -> Any:
    """A JSON/Parquet-friendly scalar: numpy scalars unboxed, NaN as None."""
    kind = type(v)
    if kind is str or kind is int or kind is bool or v is None:   # most summary fields
        return v
    if kind is float:
        return None if v != v else v
    pd = sys.modules.get("pandas")   # only a frame read back holds pandas' NA
    if pd is not None and v is pd.NA:
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
    """Simulate each ``(index, key, workload, overrides, format)``; failures become records.

    The chunk's points go through the columnar core together; ``simulator_seconds`` is the
    chunk's time shared equally by its points. A point the batch cannot run (a bug, not bad
    input) is isolated by running the chunk's points one by one.
    """
    with tables.use(payload.table):
        return _run_points(payload, chunk)


def _run_points(payload: _Payload, chunk: Sequence[tuple]) -> list[dict[str, Any]]:
    from ..columnar import evaluate, prepare
    from ..timing.path import timing_path
    t0 = time.perf_counter()
    out: list[dict[str, Any]] = []
    ready: list[tuple[dict, Any]] = []
    for index, key, wi, overrides, fmt in chunk:
        rec: dict[str, Any] = {"index": index, "key": key}
        out.append(rec)
        try:
            chip = _chip_for(payload, overrides)
            wl = payload.workloads[wi]
            forced = chip.check_format(fmt, "format") if fmt else None
            if timing_path(chip) == "event":   # the event engine is not columnar
                from ..simulator import simulate
                rec.update(flatten_summary(simulate(chip, wl, format=fmt).summary),
                           status="ok", error=None)
            else:
                ready.append((rec, prepare(chip, wl, forced)))
        except Exception as exc:
            _failed(rec, exc)
    if ready:
        try:
            results: list[Any] = [c.summary() for c in evaluate([pt for _, pt in ready])]
        except Exception:
            results = []
            for _, pt in ready:
                try:
                    results.append(evaluate([pt])[0].summary())
                except Exception as exc:
                    results.append(exc)
        share = (time.perf_counter() - t0) / max(1, len(chunk))
        for (rec, _), res in zip(ready, results):
            if isinstance(res, Exception):
                _failed(rec, res)
            else:
                res["simulator_seconds"] = share
                rec.update(flatten_summary(res), status="ok", error=None)
    return out


def _failed(rec: dict[str, Any], exc: Exception) -> None:
    if isinstance(exc, InputError):
        rec.update(status="failed", error=str(exc))
    else:  # a bug, not bad input: record it, retry it on resume
        msg = f"{INTERNAL}{type(exc).__name__}: {exc}".replace("\n", " ")
        rec.update(status="failed", error=msg)


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


def _chunk_size(points: Sequence[Point], workers: int, most: int | None = None) -> int:
    most = MAX_CHUNK if most is None else most
    return max(1, min(most, math.ceil(len(points) / (workers * CHUNKS_PER_WORKER))))


def _chunks(points: Sequence[Point], workers: int,
            most: int | None = None) -> Iterator[list[tuple]]:
    """The points' chunks, each built when reached (a long sweep never holds them all)."""
    size = _chunk_size(points, workers, most)
    chunk: list[tuple] = []
    for p in points:
        chunk.append((p.index, p.key, p.workload, p.overrides, p.format))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    workers = min(jobs, math.ceil(len(points) / _chunk_size(points, jobs)))
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_pool_worker,
                               initargs=(payload, os.getpid()))
    futures: set = set()
    try:
        # A bounded window of chunks in flight: the parent never holds every chunk's points.
        for c in itertools.islice(chunks, workers * IN_FLIGHT):
            futures.add(pool.submit(_pool_chunk, c))
        while futures:
            done, futures = wait(futures, return_when=FIRST_COMPLETED)
            for c in itertools.islice(chunks, len(done)):
                futures.add(pool.submit(_pool_chunk, c))
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


def check_address(scheduler: Any) -> None:
    """One line, before any folder is made or any point runs, for a scheduler address Dask
    cannot parse (``notaurl``, a tcp address without its port): the client would otherwise
    spend its whole connect timeout on it and print a traceback as it is collected."""
    if not isinstance(scheduler, (str, Path)):
        return
    try:
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port
    except ImportError:
        raise InputError("scheduler", None, message="Dask is not installed; "
                         "pip install 'tpusim[dask]'") from None
    try:
        scheme, where = parse_address(str(scheduler))
        if scheme in ("tcp", "tls"):
            parse_host_port(where)
    except ValueError as exc:
        raise InputError("--scheduler", None, str(scheduler), f"a Dask scheduler address such "
                         f"as tcp://host:8786 ({exc})") from None


def _dask_client(scheduler: Any):
    """A client for ``scheduler`` (an address, or a ``distributed.Client`` we do not own)."""
    if not isinstance(scheduler, (str, Path)):
        return scheduler, False
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError("scheduler", None, message="Dask is not installed; "
                         "pip install 'tpusim[dask]'") from None
    import threading
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = Client(str(scheduler), timeout=f"{CONNECT_S}s",
                                   set_as_default=False)
        except BaseException as exc:   # whatever a listener that is not Dask makes it raise
            box["error"] = exc

    # in a thread, so that a listener that accepts and never answers (not a Dask scheduler)
    # cannot hold the sweep past the connect timeout
    t = threading.Thread(target=connect, daemon=True, name="tpusim-dask-connect")
    t.start()
    t.join(CONNECT_S + 5)
    if t.is_alive() or "error" in box:
        why = (f"no Dask scheduler answered within {CONNECT_S} s" if t.is_alive() else
               f"could not connect to a Dask scheduler ({_first_line(box['error'])})")
        raise InputError("--scheduler", None, str(scheduler), why)
    client = box["client"]
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=CONNECT_S)
        except Exception:
            client.close()
            raise InputError("--scheduler", None, str(scheduler), f"the scheduler has no "
                             f"workers (none joined in {CONNECT_S} s); start some with `dask "
                             f"worker {scheduler}`") from None
    return client, True


CONNECT_S = 15   # seconds a scheduler (and, without any, a first worker) may take to answer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _dask_chunk(payload: _Payload, chunk: bytes) -> bytes:
    """A pool worker's chunk on a Dask worker: the chunk and its records cross as one pickle
    each, as the pool's pipe carries them. Dask would otherwise walk the chunk's tuples on the
    client and scheduler and, worse, serialise and size a list of records one dict at a time:
    measured on a 2-core LocalCluster, about 4 ms more worker CPU and 4 ms more client and
    scheduler CPU per 64-point chunk (~86 ms of compute) than one pickle each way."""
    return pickle.dumps(_run_chunk(payload, pickle.loads(chunk)), pickle.HIGHEST_PROTOCOL)


def _run_dask(payload: _Payload, points: Sequence[Point], client: Any,
              owned: bool) -> Iterator[list[dict]]:
    from dask.distributed import as_completed

    def submit(chunk: list[tuple]):
        f = client.submit(_dask_chunk, shared, pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL),
                          pure=False)
        live.add(f)
        ready.add(f)

    live: set = set()
    try:
        threads = max(1, sum(client.nthreads().values()))
        where = str(getattr(getattr(client, "scheduler", None), "address", "the scheduler"))
        # Scattered once: each worker deserialises the workloads once, not per chunk.
        try:
            shared = client.scatter(payload, broadcast=True, hash=False)
        except Exception as exc:   # a worker without (this) tpusim cannot unpickle it
            raise InputError("--scheduler", None, where, "the workers could not take the "
                             f"sweep ({_first_line(exc)}); each needs tpusim installed "
                             "(pip install 'tpusim[dask]')") from None
        chunks = _chunks(points, threads, DASK_MAX_CHUNK)
        # As in the pool, a bounded window of chunks in flight: neither the parent nor the
        # cluster holds every chunk's points or results, and a finished chunk's result is
        # dropped from the cluster as soon as it is read back. ``with_results`` fetches
        # results in the background as chunks finish, not one round trip at a time.
        ready = as_completed(loop=client.loop, with_results=True)
        for c in itertools.islice(chunks, threads * IN_FLIGHT):
            submit(c)
        done = iter(ready)
        while True:
            # a lost scheduler or worker, or a task that raised: as_completed raises it or
            # (some versions) hands the exception over as the result
            try:
                f, blob = next(done)
            except StopIteration:
                break
            except Exception as exc:
                blob = exc
            if isinstance(blob, BaseException) or f.status != "finished":
                raise InputError("--scheduler", None, where, "a chunk of points was lost or "
                                 f"failed on the cluster ({_first_line(blob)}); the points "
                                 "done so far are kept: run the sweep again to resume")
            live.discard(f)
            for c in itertools.islice(chunks, 1):
                submit(c)
            f.release()
            yield pickle.loads(blob)
    finally:
        if live:  # stopped early (Ctrl-C, an error): drop the chunks in flight
            client.cancel(list(live))
        if owned:
            client.close()

"""What a serving run reports: per-request latencies and the run's summary.

Per request: TTFT (arrival to the step that samples its first token), TPOT (the rest of its
time over its other output tokens), end-to-end latency. The summary's rates are finished work
over ``simulated_s`` (first arrival at t >= 0 to the last completion, or ``--duration``), as
serving benchmarks count them. ``mean_in_system`` is the engine's own time-average of requests
present (its integral kept at every arrival and departure), so Little's law, mean in system =
throughput x mean latency, is a check on the simulation, not an identity of this module.

``arrivals_per_s`` is the rate the requests arrived at (all but the first over the first to the
last arrival: a sampled Poisson stream's own rate, not the nominal one) and
``steady_requests_per_s`` the completions in that window moved a median latency later, over
its length: an engine that keeps up completes each request about a latency after it arrives,
so the two agree however few requests ran (``requests_per_s`` reads low by the drain's share of
``simulated_s``); a saturated one completes them at its service rate, lower. The saturation
rate is judged on their ratio (on ``requests_per_s`` over the nominal rate where either is
None: under two arrivals or no completion).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

REQUEST_COLUMNS = ("request", "arrival_s", "input_tokens", "output_tokens", "ttft_s", "tpot_s",
                   "e2e_s", "finish_s", "preempted", "finished")


def request_table(outcome) -> pd.DataFrame:
    rows = []
    for r in outcome.requests:
        q = r.req
        done = not math.isnan(r.done_s)
        ttft = r.first_s - q.arrival_s if not math.isnan(r.first_s) else math.nan
        e2e = r.done_s - q.arrival_s if done else math.nan
        tpot = (e2e - ttft) / (q.output_tokens - 1) if done and q.output_tokens > 1 else (
            0.0 if done else math.nan)
        rows.append((q.rid, q.arrival_s, q.input_tokens, q.output_tokens, ttft, tpot, e2e,
                     r.done_s, r.preempted, done))
    return pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))


def _pcts(x: pd.Series) -> dict[str, float | None]:
    x = x.dropna()
    if x.empty:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
            "p90": float(np.percentile(x, 90)), "p99": float(np.percentile(x, 99))}


def _thin(points: list[tuple[float, float]], n: int = 400) -> list[list[float]]:
    if len(points) <= n:
        return [list(p) for p in points]
    idx = np.linspace(0, len(points) - 1, n).round().astype(int)
    return [list(points[i]) for i in idx]


def summarise(outcome, table: pd.DataFrame, arrived_by: float | None = None) -> dict[str, Any]:
    t = outcome.end_s
    fin = table[table["finished"]]
    arrived = table[table["arrival_s"] <= (t if arrived_by is None else arrived_by)]
    util = [u for _, u in outcome.kv_util]
    return {
        "requests": int(len(table)),
        "finished": int(len(fin)),
        "unfinished": int(len(arrived) - len(fin)),
        "not_arrived": int(len(table) - len(arrived)),
        "simulated_s": t,
        "requests_per_s": len(fin) / t if t > 0 else 0.0,
        "arrivals_per_s": arrival_rate(table["arrival_s"]),
        "steady_requests_per_s": steady_rate(fin["finish_s"], table["arrival_s"],
                                             fin["e2e_s"]),
        "input_tokens_per_s": float(fin["input_tokens"].sum()) / t if t > 0 else 0.0,
        "output_tokens_per_s": float(fin["output_tokens"].sum()) / t if t > 0 else 0.0,
        "ttft_s": _pcts(fin["ttft_s"]),
        "tpot_s": _pcts(fin["tpot_s"]),
        "e2e_s": _pcts(fin["e2e_s"]),
        "mean_in_system": outcome.in_system_area / t if t > 0 else 0.0,
        "preemptions": int(outcome.preemptions),
        "engine_steps": int(outcome.steps),
        "kv_blocks": int(outcome.blocks),
        "kv_utilisation": {"mean": float(np.mean(util)) if util else 0.0,
                           "max": float(max(util)) if util else 0.0,
                           "over_time": _thin(outcome.kv_util)},
        "prefix_hit_tokens": int(outcome.prefix_hit_tokens),
    }


def arrival_rate(arrival_s: pd.Series) -> float | None:
    """Arrivals per second after the first, over the first to the last arrival (None for
    fewer than two distinct arrival times)."""
    span = float(arrival_s.max() - arrival_s.min()) if len(arrival_s) > 1 else 0.0
    return (len(arrival_s) - 1) / span if span > 0 else None


def steady_rate(finish_s: pd.Series, arrival_s: pd.Series, e2e_s: pd.Series) -> float | None:
    """Completions per second in the arrival window moved one median latency later (module
    docstring), counted as :func:`arrival_rate` counts arrivals; None where it is undefined."""
    if finish_s.empty or arrival_rate(arrival_s) is None:
        return None
    lag = float(e2e_s.median())
    start, end = float(arrival_s.min()) + lag, float(arrival_s.max()) + lag
    inside = int(((finish_s > start) & (finish_s <= end)).sum())
    return inside / (end - start)


def saturation(curve: list[dict[str, Any]], keep_up: float = 0.9) -> float | None:
    """The highest offered rate the engine keeps up with: achieved >= ``keep_up`` x offered
    (the steady completion rate over the arrivals' own rate where both are known, module
    docstring), and so at every lower rate (None if it keeps up with none)."""
    best = None
    for p in sorted(curve, key=lambda p: p["rate"]):
        got, came = p.get("steady_requests_per_s"), p.get("arrivals_per_s")
        if got is None or came is None:
            got, came = p["requests_per_s"], p["rate"]
        if math.isinf(p["rate"]) or got < keep_up * came:
            break
        best = p["rate"]
    return best

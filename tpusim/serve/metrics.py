"""What a serving run reports: per-request latencies and the run's summary.

Per request: TTFT (arrival to the step that samples its first token), TPOT (the rest of its
time over its other output tokens), end-to-end latency. The summary's rates are finished work
over ``simulated_s`` (first arrival at t >= 0 to the last completion, or ``--duration``), as
serving benchmarks count them. ``mean_in_system`` is the engine's own time-average of requests
present (its integral kept at every arrival and departure), so Little's law, mean in system =
throughput x mean latency, is a check on the simulation, not an identity of this module.

``arrivals_per_s`` is the rate the requests arrived at (all but the first over the first to the
last arrival: a sampled Poisson stream's own rate, not the nominal one) and
``steady_requests_per_s`` the rate the engine serves them at, read off the latencies: an engine
that keeps up finishes each request a bounded time after it arrives, so the end-to-end latency
has no trend over the run; one that serves mu requests/s of lam arriving (waiting to be admitted
or slowed in an ever larger batch) finishes the i-th at about i/mu, so its latency grows by
lam/mu - 1 seconds per second of arrivals. With s the least-squares slope of e2e latency on
arrival time, the served rate is lam / (1 + max(s, 0)): lam when keeping up however few
requests ran (``requests_per_s`` reads low by the drain's share of ``simulated_s``), mu when
saturated. A run cut off by ``--duration`` fits only the requests that arrived before the first
one left unfinished (their latencies are all known). The saturation rate is judged on the two
(on ``requests_per_s`` over the nominal rate where either is None: under three such requests,
or arrivals all at one time).
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
        # one output token has no time between tokens: its TPOT is undefined (NaN), left out
        # of the percentiles as vLLM's benchmark leaves it
        tpot = (e2e - ttft) / (q.output_tokens - 1) if done and q.output_tokens > 1 else math.nan
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
        "arrivals_per_s": arrival_rate(arrived["arrival_s"]),
        "steady_requests_per_s": steady_rate(arrived["arrival_s"], arrived["e2e_s"]),
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


def steady_rate(arrival_s: pd.Series, e2e_s: pd.Series) -> float | None:
    """The rate requests are served at: :func:`arrival_rate` over 1 + the slope of e2e latency
    on arrival time, if it grows, the slope fitted over the requests that arrived before the
    first unfinished one (module docstring); None under three of them or with their arrivals
    all at one time."""
    lam = arrival_rate(arrival_s)
    left = arrival_s[e2e_s.isna()]
    keep = arrival_s < left.min() if not left.empty else arrival_s.notna()
    a, lat = arrival_s[keep].to_numpy(float), e2e_s[keep].to_numpy(float)
    if lam is None or len(a) < 3 or np.ptp(a) <= 0:
        return None
    slope = float(np.polyfit(a, lat, 1)[0])
    return lam / (1.0 + max(slope, 0.0))


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

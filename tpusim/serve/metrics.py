"""What a serving run reports: per-request latencies and the run's summary.

Per request: TTFT (arrival to the step that samples its first token), TPOT (the rest of its
time over its other output tokens), end-to-end latency. The summary's rates are finished work
over ``simulated_s`` (first arrival at t >= 0 to the last completion, or ``--duration``), as
serving benchmarks count them. ``mean_in_system`` is the engine's own time-average of requests
present (its integral kept at every arrival and departure), so Little's law, mean in system =
throughput x mean latency, is a check on the simulation, not an identity of this module.
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


def saturation(curve: list[dict[str, Any]], keep_up: float = 0.9) -> float | None:
    """The highest offered rate the engine keeps up with: achieved >= ``keep_up`` x offered,
    and so at every lower rate (None if it keeps up with none)."""
    best = None
    for p in sorted(curve, key=lambda p: p["rate"]):
        if math.isinf(p["rate"]) or p["requests_per_s"] < keep_up * p["rate"]:
            break
        best = p["rate"]
    return best

"""Serving simulation speed and the step timer's bucketing error (issue 14, speed target).

    python benchmarks/bench_serve.py [--repeat 3]

Times, in-process and from a cold step cache each time, the JetStream case: 1,000 requests of
Llama-2-7B (219 in, 292 out tokens, all at t=0) on a TPU v5e-8 with TP=8 (``tpusim.serve``),
goal under 5 s on 2 cores; the real-time factor (simulated seconds per wall second, goal >= 100:
LLMServingSim's own logs show 0.41); and the step timer's largest relative error against exact
per-length evaluation (:meth:`StepCostModel.step` with every sequence's own KV length) over
random ragged steps of that run's shapes. Medians; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timings  # noqa: E402


def _jetstream():
    from tpusim.serve import serve, setup
    from tpusim.serve.requests import synthetic_requests
    reqs = synthetic_requests("in=219,out=292", 1000, math.inf)
    return serve(setup("tpu_v5e", "llama2_7b", chips=8), reqs)[0].summary


def bucket_error(samples: int = 12, seed: int = 0) -> float:
    """Max |timer / exact - 1| over random steps: B in 1..256 sequences with KV lengths in
    220..511 (this run's range), half with a 219-token prefill."""
    import numpy as np
    from tpusim.serve import setup
    st = setup("tpu_v5e", "llama2_7b", chips=8)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for i in range(samples):
        b = int(rng.integers(1, 257))
        kv = rng.integers(220, 512, b).tolist()
        p = 219 if i % 2 else 0
        exact = st.cost.step(kv, p, p if p else None).latency_s
        got = st.timer.latency(b, int(sum(kv)), p, p)
        worst = max(worst, abs(got / exact - 1))
    return worst


def measure(repeat: int = 3) -> list[dict]:
    box = {}

    def once():
        box["s"] = _jetstream()
    took = statistics.median(timings(once, repeat))
    s = box["s"]
    return [
        {"target": "14: 1,000 Llama-2-7B requests on a v5e-8 (TP=8), wall", "goal": 5.0,
         "measured": took, "unit": "s", "better": "lower"},
        {"target": "14: same, simulated seconds per wall second", "goal": 100.0,
         "measured": s["simulated_s"] / took, "unit": "x real time", "better": "higher"},
        {"target": "14: step timer bucketing, max rel. error vs per-length steps", "goal": 0.05,
         "measured": bucket_error(), "unit": "", "better": "lower"},
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for row in measure(args.repeat):
        print(f"{row['target']:66s} {row['measured']:10.4g} {row['unit']:12s} "
              f"(goal {row['goal']:g}, {row['better']} is better)")

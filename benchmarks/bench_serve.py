"""Serving simulation speed and the step timer's bucketing error (issue 14, speed target).

    python benchmarks/bench_serve.py [--repeat 3]

Times, in-process and from a cold step cache each time, the JetStream case: 1,000 requests of
Llama-2-7B (219 in, 292 out tokens, all at t=0) on a TPU v5e-8 with TP=8 (``tpusim.serve``),
goal under 5 s on 2 cores; the real-time factor (simulated seconds per wall second, goal >= 100:
LLMServingSim's own logs show 0.41); the step timer's largest relative error against exact
per-length evaluation (:meth:`StepCostModel.step` with every sequence's own KV length) over
random ragged steps of that run's shapes, and what the batch at its mean KV missed; and the
whole run's output tokens/s with the timer against the same run with every step exact
(``setup(exact=True)``). Medians; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timings  # noqa: E402


def _jetstream(**kw):
    from tpusim.serve import serve, setup
    from tpusim.serve.requests import synthetic_requests
    reqs = synthetic_requests("in=219,out=292", 1000, math.inf)
    return serve(setup("tpu_v5e", "llama2_7b", chips=8, **kw), reqs)[0].summary


def bucket_error(samples: int = 12, seed: int = 0) -> tuple[float, float]:
    """Over random ragged steps of this run's shapes (B in 1..256 sequences, KV lengths in
    220..511, half with a 219-token prefill): max |timer / exact - 1| (the timer's per-part
    tables against :meth:`StepCostModel.step` of the ragged step, every sequence's attention at
    its own KV), and max |mean-KV / exact - 1| (what the batch at its mean KV, the model before
    ragged costing, missed)."""
    import numpy as np
    from tpusim.serve import setup
    st = setup("tpu_v5e", "llama2_7b", chips=8)
    rng = np.random.default_rng(seed)
    bucket = ragged = 0.0
    for i in range(samples):
        b = int(rng.integers(1, 257))
        kv = rng.integers(220, 512, b).tolist()
        p = 219 if i % 2 else 0
        exact = st.cost.step(kv, p, p if p else None).latency_s
        bucket = max(bucket, abs(st.timer.latency(kv, p, p) / exact - 1))
        mean = sum(kv) / b
        lo, hi = int(mean), int(mean) + 1     # the batch at its (fractional) mean KV
        f = mean - lo
        at = (st.cost.step([lo] * b, p, p if p else None).latency_s * (1 - f)
              + st.cost.step([hi] * b, p, p if p else None).latency_s * f)
        ragged = max(ragged, abs(at / exact - 1))
    return bucket, ragged


def measure(repeat: int = 3) -> list[dict]:
    box = {}

    def once():
        box["s"] = _jetstream()
    took = statistics.median(timings(once, repeat))
    s = box["s"]
    bucket, ragged = bucket_error()
    exact = _jetstream(exact=True)["output_tokens_per_s"]
    return [
        {"target": "14: 1,000 Llama-2-7B requests on a v5e-8 (TP=8), wall", "goal": 5.0,
         "measured": took, "unit": "s", "better": "lower"},
        {"target": "14: same, simulated seconds per wall second", "goal": 100.0,
         "measured": s["simulated_s"] / took, "unit": "x real time", "better": "higher"},
        {"target": "14: step timer (per-part tables), max rel. error vs exact", "goal": 0.05,
         "measured": bucket, "unit": "", "better": "lower"},
        {"target": "14: mean-KV batch (before ragged costing) vs exact, max rel.", "goal": 0.1,
         "measured": ragged, "unit": "", "better": "lower"},
        {"target": "14: run's output tokens/s, timer vs every step exact, rel.", "goal": 0.01,
         "measured": abs(s["output_tokens_per_s"] / exact - 1), "unit": "", "better": "lower"},
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for row in measure(args.repeat):
        print(f"{row['target']:66s} {row['measured']:10.4g} {row['unit']:12s} "
              f"(goal {row['goal']:g}, {row['better']} is better)")

"""LLM generation speed and the step cost model's interpolation error (issue 12, target 5).

    python benchmarks/bench_generation.py [--repeat 3] [--before] [--errors]

Times, in-process, Llama-2-70B on ``tpu_v4``: a prefill of 2,048 tokens + 1,000 decode steps
(KV 2,049 ... 3,048), every step exact (``tpusim.generation.generate``), and interpolated
(``kv_stride=64, rtol=1e-4``), with the interpolation's largest per-step relative error against
the exact run. ``--before``: the same run as one ``simulate()`` per step (the only way before),
timed on 50 steps and scaled to 1,000. ``--errors``: the interpolation error over several
models, chips and batches (the bound README states). Medians; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timings  # noqa: E402

PROMPT, STEPS = 2048, 1000
STRIDE, RTOL = 64, 1e-4


def _run(model="llama2_70b", config="tpu_v4", batch=1, prompt=PROMPT, steps=STEPS, **kw):
    from tpusim.generation import generate
    return generate(config, model, prompt, steps, batch=batch, **kw)


def _max_error(exact, approx) -> float:
    import numpy as np
    return float(max(np.abs(approx.decode_latency_s / exact.decode_latency_s - 1).max(),
                     np.abs(approx.decode_energy_j / exact.decode_energy_j - 1).max()))


def measure(repeat: int = 3) -> list[dict]:
    exact_t = statistics.median(timings(_run, repeat))
    approx_t = statistics.median(timings(lambda: _run(kv_stride=STRIDE, rtol=RTOL), repeat))
    err = _max_error(_run(), _run(kv_stride=STRIDE, rtol=RTOL))
    return [
        {"target": "5: Llama-2-70B 2048 prefill + 1000 decode, exact", "goal": 1.0,
         "measured": exact_t, "unit": "s", "better": "lower"},
        {"target": f"5: same, interpolated (stride {STRIDE}, rtol {RTOL:g})", "goal": 1.0,
         "measured": approx_t, "unit": "s", "better": "lower"},
        {"target": "5: interpolation max per-step rel. error", "goal": 4 * RTOL,
         "measured": err, "unit": "", "better": "lower"},
    ]


def before(steps: int = 50) -> float:
    """Seconds for prefill + 1,000 decode steps as one ``simulate()`` per step (scaled)."""
    import tpusim
    from tpusim.importers.llm import llm_workload
    chip = tpusim.load_config("tpu_v4")
    t0 = time.perf_counter()
    tpusim.simulate(chip, llm_workload("llama2_70b", "prefill", 1, PROMPT, PROMPT,
                                       logits="last"))
    pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    for j in range(steps):
        tpusim.simulate(chip, llm_workload("llama2_70b", "decode", 1, 1, PROMPT + 1 + j))
    return pre + (time.perf_counter() - t0) * STEPS / steps


def errors() -> None:
    cases = [("llama2_70b", "tpu_v4", 1), ("llama2_70b", "tpu_v4", 16),
             ("llama3_8b", "tpu_v4", 1), ("llama3_8b", "tpu_v4", 64),
             ("llama3_8b", "tpu_v5e", 8), ("gpt2", "tpu_v4", 32), ("gpt2", "default", 8)]
    print(f"{'model':12s} {'chip':8s} {'batch':>5s} {'exact s':>8s} {'interp s':>8s} "
          f"{'max rel err':>11s}")
    for model, chip, batch in cases:
        t0 = time.perf_counter()
        e = _run(model, chip, batch, prompt=1024)
        t1 = time.perf_counter()
        a = _run(model, chip, batch, prompt=1024, kv_stride=STRIDE, rtol=RTOL)
        t2 = time.perf_counter()
        print(f"{model:12s} {chip:8s} {batch:5d} {t1 - t0:8.3f} {t2 - t1:8.3f} "
              f"{_max_error(e, a):11.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", action="store_true")
    ap.add_argument("--errors", action="store_true")
    args = ap.parse_args()
    for r in measure(args.repeat):
        print(f"{r['target']:58s} {r['measured']:10.4g} {r['unit']:2s} (goal {r['goal']:g})")
    if args.before:
        print(f"{'before: one simulate() per step (50 steps, scaled)':58s} {before():10.4g} s")
    if args.errors:
        errors()


if __name__ == "__main__":
    main()

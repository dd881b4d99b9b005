"""Target 1: the cost of one layer does not grow with its size (numbers, not a test).

    python benchmarks/bench_scaling.py [--repeat 5]

Times ``simulate`` of one matmul (k = n = 1024, ``tpu_v4``, pipelined closed form) for
m = 10^3 ... 10^15, median of ``--repeat`` runs, and its peak Python memory (tracemalloc).
Goals: the slowest m within 2x of the fastest, and peak memory within 2x as well. The old code
took 88 s and 2.5 GB at m = 10^10 and raised MemoryError at 10^15 (the block list grew with m).
"""
from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import tpusim
from tpusim.workload import Workload, make_layer

EXPONENTS = (3, 6, 9, 10, 12, 15)


def _one(m: int, count: int = 1) -> Workload:
    return Workload("one", (make_layer({"name": "mm", "op": "matmul", "m": m, "k": 1024,
                                        "n": 1024, "count": count}),))


def table(repeat: int = 5, count: int = 1) -> list[tuple[int, float, float]]:
    """(exponent, median seconds, peak bytes) per m = 10^exponent."""
    chip = tpusim.load_config("tpu_v4")
    tpusim.simulate(chip, _one(1000, count))          # imports and caches warm
    rows = []
    for e in EXPONENTS:
        wl = _one(10**e, count)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            tpusim.simulate(chip, wl).layers
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        tpusim.simulate(chip, wl).layers
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((e, statistics.median(times), float(peak)))
    return rows


def measure(repeat: int = 5) -> list[dict]:
    rows = table(repeat)
    times, peaks = [r[1] for r in rows], [r[2] for r in rows]
    return [
        {"target": "1: slowest / fastest m = 1e3..1e15 (one matmul)", "goal": 2.0,
         "measured": max(times) / min(times), "unit": "x", "better": "lower"},
        {"target": "1: peak memory, largest / smallest m", "goal": 2.0,
         "measured": max(peaks) / min(peaks), "unit": "x", "better": "lower"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for count in (1, 80):
        print(f"count = {count}")
        for e, t, peak in table(args.repeat, count):
            print(f"  m = 1e{e:<3d} {t * 1e3:8.2f} ms   peak {peak / 1024:8.1f} KiB")
    for r in measure(args.repeat):
        print(f"{r['target']:52s} {r['measured']:10.4g} {r['unit']:3s} (goal {r['goal']:g})")


if __name__ == "__main__":
    main()

"""Timing helper shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def best_of(fn: Callable[[], object], repeat: int) -> float:
    return min(timings(fn, repeat))


def median_of(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(timings(fn, repeat))

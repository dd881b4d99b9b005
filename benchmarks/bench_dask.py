"""Target 4, Dask half: the same sweep rate per core on Dask workers as in the local pool.

    python benchmarks/bench_dask.py [--repeat 3]

``measure()`` starts a loopback ``dask.distributed.LocalCluster`` with 2 single-threaded worker
processes, warms it with a small sweep (worker start-up is not timed), then times a 1,000- and a
10,000-point ResNet-50 sweep (no files) alternately on the cluster and on the local process pool
with ``jobs=2`` (pool start-up included, as a user pays it), ``repeat`` times each. Rows: points/s
per worker core on Dask, and its ratio to the pool's per-core rate in the same session (goal 1.0;
medians). On a shared machine both numbers move with the load; the ratio less so.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import tpusim
from tpusim.sweeps import sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sweep import AXES_1000, _axes, workload_arg  # noqa: E402

WORKERS = 2


def _rate(fn) -> float:
    t0 = time.perf_counter()
    n = len(fn())
    return n / (time.perf_counter() - t0) / WORKERS


def measure(repeat: int = 3) -> list[dict]:
    try:
        from dask.distributed import LocalCluster
    except ImportError:   # the runner reports a failed module as a note, not a row
        raise RuntimeError("dask not installed: pip install -e '.[dask]'") from None
    chip = tpusim.load_config("default")
    wl = workload_arg("resnet50")
    sweep(chip, wl, {"array.rows": [16]}, jobs=1, progress=False)   # imports warm
    out = []
    with LocalCluster(n_workers=WORKERS, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        sweep(chip, wl, {"array.rows": [16, 32]}, scheduler=addr, progress=False)  # warm-up
        for n in (1000, 10_000):
            axes = AXES_1000 if n == 1000 else _axes(n)
            local, dask = [], []
            for _ in range(max(1, repeat)):   # alternated, so both see the same load
                local.append(_rate(lambda: sweep(chip, wl, axes, jobs=WORKERS, progress=False)))
                dask.append(_rate(lambda: sweep(chip, wl, axes, scheduler=addr,
                                                progress=False)))
            loc, dk = statistics.median(local), statistics.median(dask)
            out.append({"target": f"4: Dask points/s per worker core ({n:,} points)",
                        "goal": loc, "measured": dk, "unit": "pt/s", "better": "higher"})
            out.append({"target": f"4: Dask / local pool per-core rate ({n:,} points)",
                        "goal": 1.0, "measured": dk / loc, "unit": "x", "better": "higher"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for r in measure(args.repeat):
        print(f"{r['target']:50s} {r['measured']:10.4g} {r['unit']} (goal {r['goal']:.4g})")


if __name__ == "__main__":
    main()

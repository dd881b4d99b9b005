"""Target 4: sweep speed (numbers go into the issue notes; nothing here asserts a time).

    python benchmarks/bench_sweep.py [--workload resnet50] [--jobs 2] [--dask-points 200] [--big]

``measure()`` (for the runner): points per second of a 1,000-point ResNet-50 sweep with 2
processes, no files (goal 1,000); the parent's peak memory per point, from a 200- and a
1,000-point sweep (tracemalloc; the output row itself is ~0.5 KiB); with ``big=True`` also the
wall time of a 100,000-point sweep (goal 180 s). The script prints, in addition:

1. One ``simulate`` in-process (median of 10): the floor of a point's cost.
2. A 1,000-point local sweep (10 rows x 10 cols x 2 formats x 5 HBM bandwidths) with ``--jobs``
   processes, writing sweep.parquet/csv/html to a temporary directory; then the same command
   again, which reuses every point (the cost of resuming).
3. ``--dask-points`` points on a loopback Dask ``LocalCluster`` with 1 and then 2 worker
   processes (one thread each), after a warm-up sweep so that worker start-up is not timed.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import tpusim
from tpusim.sweeps import sweep

ROOT = Path(__file__).resolve().parent.parent
FALLBACK = ROOT / "tests" / "data" / "scalesim" / "topologies" / "mlperf" / "Resnet50.csv"  # MIT copy

AXES_1000 = {
    "array.rows": [8, 16, 24, 32, 48, 64, 96, 128, 192, 256],
    "array.cols": [8, 16, 24, 32, 48, 64, 96, 128, 192, 256],
    "format": ["int8", "bf16"],
    "memory.hbm.bandwidth_gbps": [150, 300, 600, 1200, 2400],
}


def workload_arg(name: str) -> str:
    try:
        tpusim.load_workload(name)
        return name
    except tpusim.InputError:
        return str(FALLBACK)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _axes(points: int) -> dict:
    """The first ``points`` points of a rows x cols x formats x bandwidths product."""
    bws = [150 * 2 ** (i / 4) for i in range(max(1, points // 200))]
    return {**{k: v for k, v in AXES_1000.items() if k != "memory.hbm.bandwidth_gbps"},
            "memory.hbm.bandwidth_gbps": bws}


def measure(jobs: int = 2, big: bool = False) -> list[dict]:
    chip = tpusim.load_config("default")
    wl = workload_arg("resnet50")
    sweep(chip, wl, {"array.rows": [16]}, jobs=1, progress=False)   # imports warm
    t, df = timed(lambda: sweep(chip, wl, AXES_1000, jobs=jobs, progress=False))
    out = [{"target": f"4: ResNet-50 sweep points/s ({jobs} processes, 1,000 points)",
            "goal": 1000.0, "measured": len(df) / t, "unit": "points/s", "better": "higher"}]
    peaks = []
    for n in (200, 1000):
        axes = _axes(n)
        tracemalloc.start()
        df = sweep(chip, wl, axes, jobs=jobs, progress=False)
        peaks.append((len(df), tracemalloc.get_traced_memory()[1]))
        tracemalloc.stop()
    (n0, p0), (n1, p1) = peaks
    out.append({"target": "4: parent memory per extra sweep point", "goal": 2.0,
                "measured": (p1 - p0) / (n1 - n0) / 1024, "unit": "KiB", "better": "lower"})
    if big:
        axes = _axes(100_000)
        with tempfile.TemporaryDirectory() as tmp:
            t, df = timed(lambda: sweep(chip, wl, axes, jobs=jobs, progress=False,
                                        out_dir=Path(tmp) / "big", html=False))
        out.append({"target": f"4: {len(df):,}-point sweep, files written", "goal": 180.0,
                    "measured": t, "unit": "s", "better": "lower"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet50")
    ap.add_argument("--config", default="default")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dask-points", type=int, default=200)
    ap.add_argument("--big", action="store_true", help="also the 100,000-point sweep")
    args = ap.parse_args()
    for r in measure(args.jobs, args.big):
        print(f"{r['target']:58s} {r['measured']:10.4g} {r['unit']} (goal {r['goal']:g})")
    wl_arg = workload_arg(args.workload)
    wl = tpusim.load_workload(wl_arg)
    chip = tpusim.load_config(args.config)

    times = [timed(lambda: tpusim.simulate(chip, wl))[0] for _ in range(10)]
    one = statistics.median(times)
    print(f"workload {wl.name} ({wl_arg}): {len(wl.layers)} layers; one simulate "
          f"{one * 1e3:.1f} ms in-process (median of 10)")

    n = 1
    for v in AXES_1000.values():
        n *= len(v)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        t, df = timed(lambda: sweep(chip, wl_arg, AXES_1000, jobs=args.jobs, out_dir=out))
        print(f"local, {args.jobs} processes: {n} points in {t:.1f} s ({n / t:.0f} points/s; "
              f"{df.attrs['failed']} failed; {t / n * 1e3 * args.jobs:.1f} ms per point-core), "
              f"files written")
        t, df = timed(lambda: sweep(chip, wl_arg, AXES_1000, jobs=args.jobs, out_dir=out))
        print(f"resume with every point done: {t:.2f} s ({df.attrs['reused']} reused)")

    try:
        from dask.distributed import LocalCluster
    except ImportError:
        print("dask not installed: skipping the cluster runs")
        return
    axes = dict(AXES_1000)
    axes["memory.hbm.bandwidth_gbps"] = [150, 600]
    axes["array.rows"] = axes["array.rows"][: max(1, args.dask_points // 40)]
    pts = len(axes["array.rows"]) * 10 * 2 * 2
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                          dashboard_address=None) as cluster:
            addr = cluster.scheduler_address
            sweep(chip, wl_arg, {"array.rows": [16, 32]}, scheduler=addr)  # warm-up
            t, df = timed(lambda a=addr: sweep(chip, wl_arg, axes, scheduler=a))
            print(f"dask, {workers} worker(s): {pts} points in {t:.1f} s "
                  f"({pts / t:.0f} points/s)")


if __name__ == "__main__":
    main()

"""Run every benchmark and print one table: target, goal, measured, ratio, pass.

    python benchmarks/run_all.py [--only generation,event] [--repeat N]

Each ``benchmarks/bench_*.py`` (and ``vs_scalesim.py``) that defines ``measure()`` returns a list
of dicts with ``target``, ``goal``, ``measured``, ``unit`` and ``better`` ("lower"/"higher").
A module that is missing, has no ``measure``, or fails is reported as a row and skipped.
``ratio`` is goal / measured for "lower" and measured / goal for "higher": >= 1 passes.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
# in issue-target order; modules written on other branches may not be here yet
MODULES = ["bench_scaling", "bench_columnar", "bench_startup", "bench_sweep", "bench_dask",
           "bench_generation", "bench_event", "bench_serve", "bench_timeline", "vs_scalesim"]


def ratio(row: dict) -> float:
    goal, got = float(row["goal"]), float(row["measured"])
    if row.get("better", "lower") == "higher":
        return got / goal if goal else float("inf")
    return goal / got if got else float("inf")


def collect(names: list[str], repeat: int | None) -> tuple[list[dict], list[str]]:
    sys.path.insert(0, str(HERE))
    rows, notes = [], []
    for name in names:
        if not (HERE / f"{name}.py").exists():
            notes.append(f"{name}: not present, skipped")
            continue
        try:
            mod = importlib.import_module(name)
        except Exception as exc:   # a broken module must not stop the others
            notes.append(f"{name}: import failed ({type(exc).__name__}: {exc}), skipped")
            continue
        fn = getattr(mod, "measure", None)
        if fn is None:
            notes.append(f"{name}: no measure(), skipped")
            continue
        kw = {}
        if repeat is not None and "repeat" in inspect.signature(fn).parameters:
            kw["repeat"] = repeat
        t0 = time.perf_counter()
        try:
            got = fn(**kw)
        except Exception as exc:
            notes.append(f"{name}: measure() failed ({type(exc).__name__}: {exc})")
            traceback.print_exc(file=sys.stderr)
            continue
        for r in got:
            rows.append({**r, "module": name})
        notes.append(f"{name}: {len(got)} rows in {time.perf_counter() - t0:.1f} s")
    return rows, notes


def table(rows: list[dict]) -> str:
    head = f"{'target':62s} {'goal':>10s} {'measured':>10s} {'unit':5s} {'ratio':>7s} pass"
    lines = [head, "-" * len(head)]
    for r in rows:
        q = ratio(r)
        lines.append(f"{str(r['target'])[:62]:62s} {float(r['goal']):10.4g} "
                     f"{float(r['measured']):10.4g} {str(r.get('unit', '')):5s} {q:7.3g} "
                     f"{'yes' if q >= 1 else 'NO'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None,
                    help="comma-separated module names without bench_ (e.g. generation,event)")
    ap.add_argument("--repeat", type=int, default=None, help="passed to measure(repeat=N)")
    args = ap.parse_args()
    names = MODULES
    if args.only:
        want = {w.strip() for w in args.only.split(",")}
        names = [n for n in MODULES if n in want or n.removeprefix("bench_") in want]
    rows, notes = collect(names, args.repeat)
    print(table(rows))
    for n in notes:
        print("  " + n)
    if any(ratio(r) < 1 for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

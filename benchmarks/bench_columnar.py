"""Target 2: the columnar core's speed in-process (numbers, not a test).

    python benchmarks/bench_columnar.py [--repeat 30]

Medians of ``--repeat`` calls of ``simulate`` on ``tpu_v4`` (pipelined closed form):
ResNet-50 summary only (goal 2 ms), ResNet-50 with the layer table built (goal 5 ms), and a
10,000-row trace (ResNet-50's rows repeated; goal 100 ms, with the table). The per-layer
reference path (``core="reference"``) is timed on the same inputs for the speed-up.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import tpusim


def _median(fn, repeat: int) -> float:
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def _trace(rows: int) -> tpusim.Workload:
    wl = tpusim.load_workload("resnet50")
    layers = [wl.layers[i % len(wl.layers)] for i in range(rows)]
    return dataclasses.replace(wl, name=f"resnet50 x {rows} rows", layers=tuple(layers))


def _simulate(chip, wl, core: str, table: bool):
    kw = {} if core == "columnar" else {"core": core}
    r = tpusim.simulate(chip, wl, **kw)
    return r.layers if table else r.summary


def measure(repeat: int = 30, reference: bool = False) -> list[dict]:
    chip = tpusim.load_config("tpu_v4")
    r50, big = tpusim.load_workload("resnet50"), _trace(10_000)
    core = "reference" if reference else "columnar"
    rows = [
        ("2: ResNet-50 simulate(), summary", 2e-3, r50, False, repeat),
        ("2: ResNet-50 simulate(), with layer table", 5e-3, r50, True, repeat),
        ("2: 10,000-row trace simulate(), with table", 0.1, big, True, max(3, repeat // 10)),
    ]
    return [{"target": name, "goal": goal,
             "measured": _median(lambda: _simulate(chip, wl, core, table), n),
             "unit": "s", "better": "lower"} for name, goal, wl, table, n in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    col = measure(args.repeat)
    ref = measure(max(3, args.repeat // 6), reference=True)
    for c, r in zip(col, ref):
        print(f"{c['target']:46s} {c['measured'] * 1e3:9.2f} ms (goal {c['goal'] * 1e3:g} ms)"
              f"   reference {r['measured'] * 1e3:9.1f} ms   x{r['measured'] / c['measured']:.1f}")


if __name__ == "__main__":
    main()

"""The timeline's cost (issue 16, part 1).

    python benchmarks/bench_timeline.py [--repeat 5]

In-process wall times, medians: the report's timeline chart (each layer's totals, built from
the layer table: what every ``tpusim run`` with a report now pays), and the block-by-block
Chrome/Perfetto trace ``run --trace`` writes (walk the run again, schedule every block, write
the JSON) for ResNet-50 on the default chip and a Llama-3-8B prefill on TPUv4 (past the block
budget: the size of the file is reported too). Nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_of  # noqa: E402

# goals: the report's chart adds well under the report's own ~0.1 s; a trace stays interactive
GOALS = {"report timeline": 0.03, "trace": 1.0, "trace MiB": 16.0}


def measure(repeat: int = 5) -> list[dict]:
    import tpusim
    from tpusim.simulator import walk
    from tpusim.timeline import build_timeline
    from tpusim.timeline_plot import timeline_figure
    from tpusim.trace_events import write_trace

    rows = []
    r = tpusim.simulate("default", "resnet50")
    rows.append({"target": "16.1: report timeline, resnet50 on default",
                 "goal": GOALS["report timeline"], "unit": "s", "better": "lower",
                 "measured": median_of(lambda: timeline_figure(build_timeline(r)).to_dict(),
                                       repeat)})
    for cfg, wl in (("default", "resnet50"), ("tpu_v4", "llama3_8b_prefill")):
        res = tpusim.simulate(cfg, wl)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.json"
            t = median_of(lambda: write_trace(build_timeline(res, "blocks", walk), path), repeat)
            size = os.path.getsize(path) / 2**20
        rows.append({"target": f"16.1: run --trace, {wl} on {cfg}", "goal": GOALS["trace"],
                     "measured": t, "unit": "s", "better": "lower"})
        rows.append({"target": f"16.1: trace size, {wl} on {cfg}", "goal": GOALS["trace MiB"],
                     "measured": size, "unit": "MiB", "better": "lower"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    for row in measure(ap.parse_args().repeat):
        print(f"{row['target']:52s} {row['measured']:8.3f} {row['unit']}  (goal {row['goal']:g})")


if __name__ == "__main__":
    main()

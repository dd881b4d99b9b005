"""Core speed benchmarks (numbers go into the issue notes; nothing here asserts a time).

    python benchmarks/bench_core.py [--workload resnet50] [--repeat 20]

Measures, in-process: one ``simulate`` of the workload on ``tpu_v4`` with the pipelined model
(closed form and simpy event engine) and the scalesim model; and, as a whole process,
``tpusim --help``. Reports the median of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tpusim
from _timing import median_of as median_time




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="resnet50")
    ap.add_argument("--config", default="tpu_v4")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    wl = tpusim.load_workload(args.workload)
    t_load = median_time(lambda: tpusim.load_workload(args.workload), 5)
    print(f"workload {wl.name}: {len(wl.layers)} layers, {wl.macs / 1e9:.3f} GMAC; "
          f"load {t_load * 1e3:.1f} ms")
    for label, over, engine in (("pipelined, closed form", {}, "analytic"),
                                ("pipelined, simpy event engine", {}, "event"),
                                ("scalesim", {"timing.model": "scalesim"}, "analytic")):
        chip = tpusim.load_config(args.config, **over)
        t = median_time(lambda: tpusim.simulate(chip, wl, engine=engine), args.repeat)
        cyc = tpusim.simulate(chip, wl, engine=engine).summary["total_cycles"]
        print(f"{args.config} {label:32s} {t * 1e3:8.1f} ms   ({cyc:.6g} cycles)")
    exe = Path(sys.executable).with_name("tpusim")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "tpusim", "--help"]
    t = median_time(lambda: subprocess.run(cmd, capture_output=True, check=True), 10)
    print(f"`tpusim --help` whole process        {t * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()

"""Side by side with SCALE-Sim 3.0.0: same .cfg, same topology, whole process each.

    python benchmarks/vs_scalesim.py --scalesim /path/to/scalesim-venv/bin/python \
        [--cfg examples/scale.cfg] [--topology TOPO.csv] [--gemm]

SCALE-Sim installs in its own venv: ``python -m venv ss && ss/bin/pip install scalesim
"numpy<2.4"``. The script runs ``python -m scalesim.scale`` and ``tpusim run`` (timing model
``scalesim``, read from the .cfg) as separate processes, measuring wall time and peak RSS of each
(``resource.getrusage`` of the child), then compares per-layer compute cycles: SCALE-Sim's
COMPUTE_REPORT "Total Cycles" (CALC bandwidth mode has no stalls) against tpusim's
``compute_cycles`` (a ``DP`` row's ``count`` channels are SCALE-Sim's per-channel layers).
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SCALESIM_DATA = HERE.parent / "examples"   # SCALE-Sim's own scale.cfg and Resnet18.csv (MIT)


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process."""
    code = ("import resource,subprocess,sys,time;t=time.perf_counter();"
            "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);"
            "w=time.perf_counter()-t;"
            "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024);"
            "sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, *cmd], cwd=cwd, capture_output=True,
                         text=True, check=True)
    wall, rss = out.stdout.split()
    return float(wall), float(rss)


def scalesim_cycles(report: Path) -> list[int]:
    with open(report) as fh:
        rows = list(csv.reader(fh))
    return [int(r[2]) for r in rows[1:] if r and r[0].strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scalesim", required=True, help="python of a venv with scalesim 3.0.0")
    ap.add_argument("--cfg", default=str(SCALESIM_DATA / "scale.cfg"))
    ap.add_argument("--topology", default=str(SCALESIM_DATA / "Resnet18.csv"))
    ap.add_argument("--gemm", action="store_true")
    args = ap.parse_args()
    tpusim_exe = Path(sys.executable).with_name("tpusim")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ss_cmd = [args.scalesim, "-m", "scalesim.scale", "-c", args.cfg, "-t", args.topology,
                  "-p", str(tmp / "ss"), "-s", "N",
                  # SCALE-Sim insists on a layout file even when the config does not use one
                  "-l", str(SHARED / "layouts" / "conv_nets" / "test.csv")]
        ss_cmd += ["-i", "gemm"] if args.gemm else []
        ss_wall, ss_rss = run_measured(ss_cmd, tmp)
        tp_cmd = [str(tpusim_exe), "run", args.cfg, args.topology, "--out", str(tmp / "tp"),
                  "--no-html"]
        tp_wall, tp_rss = run_measured(tp_cmd, tmp)
        report = next((tmp / "ss").rglob("COMPUTE_REPORT.csv"))
        ss = scalesim_cycles(report)
        layers = pd.read_csv(tmp / "tp" / "layers.csv")
        ours = [int(c) for c, n in zip(layers["compute_cycles"], layers["count"])
                for _ in range(int(n))]
    same = sum(a == b for a, b in zip(ss, ours))
    print(f"config {Path(args.cfg).name}, topology {Path(args.topology).name}")
    print(f"SCALE-Sim 3.0.0: {ss_wall:8.2f} s wall, {ss_rss:8.1f} MiB peak RSS, "
          f"{sum(ss)} compute cycles over {len(ss)} layers")
    print(f"tpusim:          {tp_wall:8.2f} s wall, {tp_rss:8.1f} MiB peak RSS, "
          f"{sum(ours)} compute cycles over {len(ours)} layers")
    print(f"speed-up {ss_wall / tp_wall:.0f}x; identical compute cycles on {same}/{len(ss)} "
          "layers")
    if len(ss) != len(ours) or same != len(ss):
        for i, (a, b) in enumerate(zip(ss, ours)):
            if a != b:
                print(f"  layer {i}: SCALE-Sim {a}, tpusim {b}")
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

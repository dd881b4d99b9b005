"""Whole-process start-up and writing (issue 12, target 3).

    python benchmarks/bench_startup.py [--repeat 5] [--imports]

Wall time of separate processes: ``tpusim --help``; ``tpusim run default resnet50 --no-html``;
``tpusim run default resnet50`` (with report.html). Each run writes into a fresh temporary
folder. ``--imports``: which modules a ``run --no-html`` process imports (pandas, plotly).
Medians; nothing here asserts a time.

The children run with Python's bytecode cache as an installed tpusim has it
(``PYTHONDONTWRITEBYTECODE`` is dropped from their environment: without ``.pyc`` files every
process recompiles tpusim's modules, ~0.1 s). Besides wall time each case reports the child's CPU
seconds (user + system), which a loaded machine inflates far less.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {"--help": 0.2, "run --no-html": 0.5, "run (with report)": 1.0}


def _exe() -> list[str]:
    exe = Path(sys.executable).with_name("tpusim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tpusim"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _time(args: list[str], repeat: int) -> tuple[float, float]:
    """(median wall s, median CPU s) of ``tpusim ARGS`` as a separate process."""
    walls, cpus = [], []
    for i in range(repeat + 1):   # the first run writes the .pyc files and is not counted
        with tempfile.TemporaryDirectory() as tmp:
            argv = [a.replace("{tmp}", tmp) for a in args]
            c0, t0 = _cpu(), time.perf_counter()
            subprocess.run(_exe() + argv, capture_output=True, check=True, cwd=tmp, env=_env())
            if i:
                walls.append(time.perf_counter() - t0)
                cpus.append(_cpu() - c0)
    return statistics.median(walls), statistics.median(cpus)


def measure(repeat: int = 5) -> list[dict]:
    cases = {
        "--help": ["--help"],
        "run --no-html": ["run", "default", "resnet50", "--no-html", "--out", "{tmp}/o"],
        "run (with report)": ["run", "default", "resnet50", "--out", "{tmp}/o"],
    }
    rows = []
    for name, args in cases.items():
        wall, cpu = _time(args, repeat)
        rows.append({"target": f"3: tpusim {name}", "goal": GOALS[name], "measured": wall,
                     "unit": "s", "better": "lower"})
        rows.append({"target": f"3: tpusim {name} (CPU s)", "goal": GOALS[name],
                     "measured": cpu, "unit": "s", "better": "lower"})
    return rows


def imported(args: list[str]) -> list[str]:
    """Heavy top-level packages a ``tpusim ARGS`` process has imported when it exits."""
    code = ("import sys, atexit\n"
            "atexit.register(lambda: print('\\nIMPORTED', ' '.join(sorted({m.split('.')[0] "
            "for m in sys.modules}))))\n"
            "from tpusim.cli import main\n"
            f"main({args!r})\n")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp)
    line = next((l for l in r.stdout.splitlines() if l.startswith("IMPORTED")), "IMPORTED")
    heavy = {"pandas", "plotly", "numpy", "pydantic", "yaml", "rich", "simpy", "pyarrow"}
    return sorted(set(line.split()[1:]) & heavy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--imports", action="store_true")
    args = ap.parse_args()
    for r in measure(args.repeat):
        print(f"{r['target']:34s} {r['measured']:7.3f} s   (goal {r['goal']:g} s)")
    if args.imports:
        for a in (["--help"], ["run", "default", "resnet50", "--no-html", "--out", "o"]):
            print(f"tpusim {' '.join(a)}: imports {', '.join(imported(a)) or 'none of note'}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Speed of the numerics and of ``tpusim formats``: the numbers go in the issue notes, not tests.

Measures, best of ``--repeat`` runs:

- ``gemm_rel_error(fmt, 256, 256, 256)`` for every format, natively and as the ``default`` chip
  runs it (fp16/fp32 as bf16 passes on 128-row arrays);
- ``format_rows(default, all formats)``: the whole table in-process (area, energy, rates, errors);
- ``tpusim formats default`` end to end in a fresh interpreter (imports, table, CSV, HTML page).

Run::

    python benchmarks/bench_numerics.py            # about 10 s on one core
    python benchmarks/bench_numerics.py --repeat 5 --size 512
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from _timing import best_of




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=256, help="m = k = n of the GEMM")
    args = ap.parse_args()

    import tpusim
    from tpusim.format_report import format_rows
    from tpusim.formats import FORMAT_NAMES
    from tpusim.numerics import gemm_rel_error

    chip = tpusim.load_config("default")
    s = args.size
    print(f"gemm_rel_error, {s}^3, best of {args.repeat} (seconds)")
    print(f"{'format':10s} {'native s':>10s} {'on default s':>13s} {'error (default)':>16s}")
    for f in FORMAT_NAMES:
        t_native = best_of(lambda: gemm_rel_error(f, s, s, s, 0), args.repeat)
        t_chip = best_of(lambda: gemm_rel_error(f, s, s, s, 0, chip=chip), args.repeat)
        err = gemm_rel_error(f, s, s, s, 0, chip=chip)
        print(f"{f:10s} {t_native:10.4f} {t_chip:13.4f} {err:16.3e}")

    t_rows = best_of(lambda: format_rows(chip, list(FORMAT_NAMES)), args.repeat)
    print(f"\nformat_rows(default, 8 formats), in-process: {t_rows:.3f} s")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tpusim", "formats", "default", "--out", str(Path(tmp) / "f")]
        def cli():
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t_cli = best_of(cli, args.repeat)
    print(f"tpusim formats default, fresh interpreter, end to end: {t_cli:.3f} s")


if __name__ == "__main__":
    main()

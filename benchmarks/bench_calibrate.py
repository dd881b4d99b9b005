"""Speed of calibration and validation (numbers go into the issue notes; nothing asserts a time).

    python benchmarks/bench_calibrate.py --measurements tpu_v4_gemm_calibration.csv

(the measured TPU v4 matmuls, see the README; ``shared/measurements/`` beside the clone, or the
workplace copy, is used when present and no path is given)

Measures, in-process: one prediction of every measured kernel (the fast path the optimiser
calls), one full ``calibrate`` with the recipe recorded in ``configs/tpu_v4.yaml``
(fit on all kernels + k-fold cross-validation) and how many parameter points it simulated, and
one ``run_checks`` (everything ``tpusim validate`` computes).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tpusim import calibrate as cal_mod
from tpusim.config import load_config

ROOT = Path(__file__).resolve().parent.parent
BESIDE = next((d / "measurements" / "tpu_v4_gemm_calibration.csv"
               for d in (ROOT.parent / "shared", Path("/work/shared"))
               if (d / "measurements" / "tpu_v4_gemm_calibration.csv").is_file()), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measurements", type=Path, default=BESIDE)
    args = ap.parse_args()
    if args.measurements is None:
        ap.error("pass --measurements tpu_v4_gemm_calibration.csv (see the README)")
    rec = cal_mod.read_recipe(ROOT / "configs" / "tpu_v4.yaml")
    ms = cal_mod.read_measurements(args.measurements)
    chip = load_config(rec["base"], **rec["set"])
    fmts = cal_mod.formats_for(chip, ms, rec["format"])
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        cal_mod.predict_us(chip, ms, fmts)
    per_pass = (time.perf_counter() - t0) / reps
    print(f"predict {len(ms)} kernels: {per_pass * 1e3:.1f} ms "
          f"({len(ms) / per_pass:,.0f} kernels/s)")

    t0 = time.perf_counter()
    fit = {k: tuple(v) for k, v in rec["fit"].items()} if rec.get("fit") else None
    cal = cal_mod.calibrate(rec["base"], ms, fit_spec=fit, folds=rec["folds"], seed=rec["seed"],
                            fmt=rec["format"], loss=rec["loss"], overrides=rec["set"])
    wall = time.perf_counter() - t0
    print(f"calibrate (fit + {rec['folds']}-fold CV): {wall:.2f} s, {cal.points} parameter points "
          f"simulated ({cal.points * len(ms):,} kernel simulations), CV median "
          f"{cal.stats['cv']['median']:.1%}")

    from tpusim.fidelity import run_checks
    t0 = time.perf_counter()
    table = run_checks(measurements=args.measurements)
    print(f"validate (all checks): {time.perf_counter() - t0:.2f} s, {len(table)} rows")


if __name__ == "__main__":
    main()

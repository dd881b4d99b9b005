"""Which TPU v4 matmul recipe extrapolates from small kernels to large ones?

For each recipe (``--set`` fields fixed, ``--fit`` fields fitted, as ``tpusim calibrate`` takes
them) this prints the error |predicted/measured - 1| (median/p90, %) in-sample and by 5-fold CV
(seed 0) on all kernels, and small->large: fitted on the smaller half of the kernels by MACs
(m*k*n, stable order) and scored on the larger half. It uses the calibrate command's own
machinery (tpusim.calibrate.calibrate) and kernel data only. docs/design.md, "TPU v4
calibration", has the table and the rule that chose the shipped recipe.

    python examples/v4_recipe_holdout.py path/to/tpu_v4_gemm_calibration.csv

(the measured TPU v4 matmuls; the README says where to get them).
"""
from __future__ import annotations

import sys

import numpy as np

from tpusim.calibrate import calibrate, error_stats, predict_us
from tpusim.errors import InputError
from tpusim.importers.measurements import Measurements, read_measurements

FIT4 = {"timing.overhead_cycles_per_op": None, "memory.hbm.efficiency": None,
        "formats.fp16.rate": None, "timing.wave_cycles": None}
RECIPES = {
    # shipped: serial for a kernel whose operands fit the buffers (every measured one), pipelined beyond
    "auto (shipped)": {"memory.sram.double_buffered": "auto", "timing.weight_fifo_depth": 1},
    "serial DMA": {"memory.sram.double_buffered": False, "timing.weight_fifo_depth": 1},
    "double-buffered DMA": {"memory.sram.double_buffered": True, "timing.weight_fifo_depth": 1},
}


def split_by_macs(ms: Measurements) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the smaller and the larger half of the kernels by MACs."""
    macs = np.array([r.layer.m * r.layer.k * r.layer.n for r in ms.rows])
    order = np.argsort(macs, kind="stable")
    half = len(ms) // 2
    return np.sort(order[:half]), np.sort(order[half:])


def main(path: str) -> None:
    ms = read_measurements(path)
    small, large = split_by_macs(ms)
    sub = Measurements(ms.source, ms.sha256, tuple(ms.rows[i] for i in small))

    def pct(s: dict) -> str:
        return f"{100 * s['median']:.1f}/{100 * s['p90']:.1f}"

    print(f"{'recipe':24s} {'in-sample':>10s} {'5-fold CV':>10s} {'small->large':>13s}")
    for name, sets in RECIPES.items():
        kw = dict(fit_spec=FIT4, folds=5, seed=0, fmt="fp16", loss="median", overrides=sets)
        full = calibrate("tpu_v4", ms, **kw)
        part = calibrate("tpu_v4", sub, **kw)
        sl = error_stats(predict_us(part.chip, ms, full.formats, large), ms.latency_us[large])
        print(f"{name:24s} {pct(full.stats['after']):>10s} {pct(full.stats['cv']):>10s} "
              f"{pct(sl):>13s}  (bias {100 * sl['bias']:+.1f}%; small-half fit {part.values})")


if __name__ == "__main__":
    try:
        main(sys.argv[1] if len(sys.argv) > 1 else "tpu_v4_gemm_calibration.csv")
    except InputError as exc:     # a missing or malformed measurements file: one line, exit 2
        print(f"v4_recipe_holdout: error: {exc}", file=sys.stderr)
        sys.exit(2)

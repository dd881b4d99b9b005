"""The "tpu_v4 vector ops" check of ``tpusim validate``: measured TPU v4 vector-kernel latencies
(layer norm, add, activations; Dang et al., arXiv 2603.22535; not shipped, passed with
``--measurements``) against the ``tpu_v4`` preset, whose vector section was fitted on such a file.

* The file the preset was fitted on (same sha256 as the recipe in the preset's vector comment):
  the preset's own predictions would be in-sample, so the rows are k-fold cross-validated instead
  (every kernel predicted by a fit on the other folds, the recipe's folds and seed).
* Any other file (e.g. the held-out half): the preset as shipped is scored on it directly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .check_rows import check_row
from .config import CONFIG_DIR

CHECK = "tpu_v4 vector ops"
from .calibrate_vector import TAG


def vector_recipe(path: Path) -> dict[str, Any] | None:
    """The vector-fit record in a config's comments (``# tpusim-calibrate-vector: {json}``)."""
    from .errors import InputError
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("#") and TAG in line:
            try:
                return json.loads(line.split(TAG, 1)[1])
            except ValueError:
                raise InputError(str(path), f"line {lineno}", message="damaged "
                                 f"{TAG} record: expected JSON") from None
    return None


def tpu_v4_vector_checks(ms) -> list[dict[str, Any]]:
    """Rows of the vector check for the measurements ``ms`` (already read)."""
    from .calibrate import formats_for, predict_us
    from .calibrate_vector import calibrate_vector
    from .config import load_config

    preset = load_config("tpu_v4")
    rec = vector_recipe(CONFIG_DIR / "tpu_v4.yaml") or {}
    name = Path(ms.source).name
    cases = [f"{r.layer.op} {r.layer.elements} elements, n={r.layer.n} (line {r.line})"
             for r in ms.rows]
    meas = ms.latency_us
    fitted = f"vector.* of tpu_v4 fitted on {rec.get('measurements', '?')} " \
             f"(sha256 {str(rec.get('sha256', '?'))[:12]})"
    same = rec.get("sha256") == ms.sha256
    if not same:
        pre = predict_us(preset, ms, formats_for(preset, ms, None))
        return [check_row(check=CHECK, case=c, metric="latency (tpu_v4 preset)", unit="us",
                          predicted=float(p), measured=float(m), fitted_on=fitted, status="ok",
                          note=f"{name} is not the fit's file: out of sample")
                for c, p, m in zip(cases, pre, meas)]
    rows = []
    folds, seed = int(rec.get("folds", 5)), int(rec.get("seed", 0))
    cal = calibrate_vector(rec.get("base", "tpu_v4"), ms, folds=folds, seed=seed,
                           loss=rec.get("loss", "mean"))
    fold_of = {int(i): f for f, test in enumerate(cal.folds) for i in test}
    for i, (c, p, m) in enumerate(zip(cases, cal.cv_us, meas)):
        rows.append(check_row(
            check=CHECK, case=c, metric=f"latency (tpu_v4 vector, {folds}-fold CV)", unit="us",
            predicted=float(p), measured=float(m), status="ok",
            fitted_on=(f"vector.launch_cycles, hbm_efficiency, cycles_per_element: the "
                       f"{folds - 1} other folds of {name} (fold {fold_of[i] + 1} held out; "
                       f"seed {seed})"), note="same file as the preset's fit"))
    return rows


def split_measurements(paths) -> tuple[Path | None, list[dict[str, Any]]]:
    """``--measurements`` files: the matmul file (at most one) for the matmul check, and the rows
    of the vector check for every vector file. A file named but missing is an InputError."""
    from .calibrate_vector import is_vector_file
    from .errors import InputError
    from .importers.measurements import read_measurements

    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    gemm: Path | None = None
    rows: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise InputError(str(p), "--measurements", message="file not found")
        ms = read_measurements(p)
        if is_vector_file(ms):
            rows += tpu_v4_vector_checks(ms)
        elif gemm is not None:
            raise InputError(str(p), "--measurements", message=f"a second matmul file (after "
                             f"{gemm}); give one matmul file and any vector files")
        else:
            gemm = p
    if not rows:
        rows.append(check_row(check=CHECK, case="all", metric="latency", unit="us",
                              fitted_on="vector.* of tpu_v4", status="skipped: pass "
                              "--measurements tpu_v4_vector_calibration.csv (measured TPU v4 "
                              "vector-op latencies; the README says where to get them)"))
    return gemm, rows

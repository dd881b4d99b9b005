"""The "tpu_v4 vector ops" check of ``tpusim validate``: measured TPU v4 vector-kernel latencies
(layer norm, add, activations; Dang et al., arXiv 2603.22535; not shipped, passed with
``--measurements``) against the ``tpu_v4`` preset, whose vector section was fitted on such a file.

* Kernels the preset's vector fit used (its fingerprints, :mod:`tpusim.fit_kernels`; without
  them, every kernel of a file with the fit's sha256): the preset's own predictions would be
  in-sample, so the file is k-fold cross-validated instead (every kernel predicted by a fit on
  the other folds, the recipe's folds, seed and ``--set`` fields), and its other kernels scored
  on the preset as well.
* A file none of whose kernels the fit used (e.g. the held-out half): the preset as shipped is
  scored on it directly.

The preset is ``--calibrated`` when given (its vector record and fingerprints), else the shipped
``tpu_v4``.
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
                rec = json.loads(line.split(TAG, 1)[1])
            except (ValueError, RecursionError):
                rec = None
            kinds = {"base": str, "folds": int, "seed": int, "loss": str, "set": dict}
            bad = ["a JSON object"] if not isinstance(rec, dict) else \
                [k for k, t in kinds.items() if k in rec and type(rec[k]) is not t]
            if bad:
                raise InputError(str(path), f"line {lineno}", message=f"damaged {TAG[:-1]} "
                                 f"record ({', '.join(bad)}); rerun tpusim calibrate")
            return rec
    return None


def tpu_v4_vector_checks(ms, calibrated: Path | None = None) -> list[dict[str, Any]]:
    """Rows of the vector check for the measurements ``ms`` (already read) on ``calibrated``
    (default: the shipped ``tpu_v4``)."""
    from .calibrate import formats_for, predict_us
    from .calibrate_vector import calibrate_vector
    from .config import load_config
    from .calibrated_config import recipe_base
    from .fidelity_v4 import IN_SAMPLE
    from .fit_kernels import fitted_rows

    path = Path(calibrated) if calibrated else CONFIG_DIR / "tpu_v4.yaml"
    preset = load_config(path)
    rec = vector_recipe(path)
    name = Path(ms.source).name
    cases = [f"{r.layer.op} {r.layer.elements} elements, n={r.layer.n} (line {r.line})"
             for r in ms.rows]
    meas = ms.latency_us
    label = path.stem
    if rec is None:
        fitted = f"none: {path.name} carries no {TAG[:-1]} record; no vector parameter fitted"
    else:
        fitted = (f"vector.* of {label} fitted on {rec.get('measurements', '?')} (sha256 "
                  f"{str(rec.get('sha256', '?'))[:12]})")
    seen = fitted_rows(rec, ms, path, "vector")
    pre = predict_us(preset, ms, formats_for(preset, ms, None))
    rows = [check_row(check=CHECK, case=c, metric=f"latency ({label} preset)", unit="us",
                      predicted=float(p), measured=float(m),
                      fitted_on=fitted + (", this kernel among them" if s else ""),
                      status=IN_SAMPLE if s else "ok",
                      note="in the fit's kernels: scored by the CV rows" if s else
                           f"{name}: a kernel the fit did not see (out of sample)")
            for c, p, m, s in zip(cases, pre, meas, seen)]
    if not any(seen):
        return rows
    folds, seed = int(rec.get("folds", 5)), int(rec.get("seed", 0))
    if len(ms) < folds:
        return rows + [check_row(check=CHECK, case="all", metric=f"latency ({label} vector, "
                                 f"{folds}-fold CV)", unit="us", fitted_on=fitted,
                                 status=f"skipped: {len(ms)} kernels in {name}, fewer than the "
                                        f"recipe's {folds} folds")]
    cal = calibrate_vector(recipe_base(str(rec.get("base", "tpu_v4")), path), ms,
                           folds=folds, seed=seed, loss=rec.get("loss", "mean"),
                           overrides=rec.get("set") or {})
    what = ", ".join(sorted(cal.values)) if len(cal.values) <= 4 else \
        f"{len(cal.values)} vector parameters ({', '.join(sorted(cal.values))})"
    fold_of = {int(i): f for f, test in enumerate(cal.folds) for i in test}
    for i, (c, p, m) in enumerate(zip(cases, cal.cv_us, meas)):
        rows.append(check_row(
            check=CHECK, case=c, metric=f"latency ({label} vector, {folds}-fold CV)", unit="us",
            predicted=float(p), measured=float(m), status="ok",
            fitted_on=(f"{what}: the {folds - 1} other folds of {name} (fold "
                       f"{fold_of[i] + 1} held out; seed {seed})"),
            note=f"the preset's fit {'saw' if seen[i] else 'did not see'} this kernel"))
    return rows


def split_measurements(paths, calibrated: Path | None = None
                       ) -> tuple[Path | None, list[dict[str, Any]]]:
    """``--measurements`` files: the matmul file (at most one) for the matmul check, and the rows
    of the vector check for every vector file. A file named but missing is an InputError."""
    from .calibrate_vector import check_not_mixed, is_vector_file
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
        check_not_mixed(ms)
        if is_vector_file(ms):
            rows += tpu_v4_vector_checks(ms, calibrated)
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

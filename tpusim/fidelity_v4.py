"""The TPU v4 matmul section of ``tpusim validate``: measured single-kernel latencies (Dang et
al., arXiv 2603.22535; not shipped, passed as ``--measurements``) against the ``tpu_v4`` preset.

The preset carries values fitted by ``tpusim calibrate`` with the recipe its header records
(:func:`tpusim.calibrated_config.read_recipe`). Two groups of rows:

* ``latency (tpu_v4 preset)``: the preset as users get it. Kernels it was fitted on (by the
  fingerprints the config ends with, :mod:`tpusim.fit_kernels`; without them, every kernel of a
  file with the fit's sha256) are in-sample, shown but not scored (status ``in-sample``); the
  others (the held-out half) are true predictions and scored.
* ``latency (tpu_v4, k-fold CV)``: the recipe re-run on the given file by k-fold
  cross-validation, every kernel predicted by parameters fitted on the other folds; scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .check_rows import check_row, shipped_name

CHECK = "tpu_v4 matmuls"
DEFAULT_DATA = "tpu_v4_gemm_calibration.csv"
NO_FIT = "none: the config names no tpusim-calibrate record; no parameter fitted"
IN_SAMPLE = "in-sample"


def _fitted(rec: dict) -> list[str]:
    return sorted((rec.get("values") or {}).keys())


def _what(rec: dict) -> str:
    names = _fitted(rec)
    return f"{len(names)} parameters ({', '.join(names)})"


def tpu_v4_checks(measurements: Path | None = None,
                  calibrated: Path | None = None) -> list[dict[str, Any]]:
    """Rows of the TPU v4 matmul check (module docstring); ``calibrated`` defaults to the
    shipped ``tpu_v4`` preset."""
    from .calibrate import calibrate, formats_for, predict_us, read_measurements, read_recipe
    from .calibrated_config import recipe_base
    from .fit_kernels import fitted_rows
    from .config import CONFIG_DIR, load_config
    from .errors import InputError

    explicit = calibrated is not None
    calibrated = Path(calibrated) if calibrated else CONFIG_DIR / "tpu_v4.yaml"
    if explicit and not calibrated.is_file():   # named by the user: never a silent skip
        raise InputError(str(calibrated), "--calibrated", message="file not found")
    rec = read_recipe(calibrated) if calibrated.is_file() else None
    if explicit:
        if rec is None:
            raise InputError(str(calibrated), "--calibrated", message="no tpusim-calibrate "
                             "record in its header; expected a config written by tpusim "
                             "calibrate")
        load_config(calibrated)   # the config itself must load, too
    data = (rec or {}).get("measurements", DEFAULT_DATA)
    if measurements is None:
        return [check_row(check=CHECK, case="all", metric="latency", unit="us",
                          fitted_on=_what(rec) + f" fitted on {data}" if rec else NO_FIT,
                          status=f"skipped: pass --measurements {data} (measured TPU v4 "
                                 "matmul latencies; the README says where to get them)")]
    path = Path(measurements)
    if not path.is_file():   # named by the user: an error, not a silent skip
        raise InputError(str(path), "--measurements", message="file not found")
    ms = read_measurements(path)
    meas = ms.latency_us
    cases = [f"m={r.layer.m} k={r.layer.k} n={r.layer.n}" for r in ms.rows]
    label = calibrated.stem
    chip = load_config(calibrated)
    fmt = (rec or {}).get("format")
    pre = predict_us(chip, ms, formats_for(chip, ms, fmt))
    seen = fitted_rows(rec, ms, calibrated, "matmul")
    fit_of = (f"{_what(rec)} fitted on the {rec.get('rows', '?')} kernels of {data} (sha256 "
              f"{str(rec.get('sha256'))[:12]})") if rec else NO_FIT
    note = f"{shipped_name(calibrated)}, format {fmt or chip.default_format}"
    rows = [check_row(check=CHECK, case=c, metric=f"latency ({label} preset)", unit="us",
                      predicted=float(p), measured=float(m),
                      fitted_on=fit_of + (", this kernel among them" if s else
                                          f", not on this kernel of {path.name}" if rec else ""),
                      status=IN_SAMPLE if s else "ok", error=float(p / m - 1),
                      error_kind="relative", note=note)
            for c, p, m, s in zip(cases, pre, meas, seen)]
    if rec is None:
        rows.append(check_row(check=CHECK, case="calibrated (cross-validated)", metric="latency",
                              unit="us", fitted_on=NO_FIT, status="skipped: missing a "
                              f"tpusim-calibrate record in {shipped_name(calibrated)}"))
        return rows
    if len(ms) < int(rec["folds"]):
        rows.append(check_row(check=CHECK, case="calibrated (cross-validated)", metric="latency",
                              unit="us", fitted_on=fit_of, status=f"skipped: {len(ms)} kernels "
                              f"in {path.name}, fewer than the recipe's {rec['folds']} folds"))
        return rows
    fit = rec.get("fit")
    fit_spec = {k: tuple(v) for k, v in fit.items()} if fit else None
    cal = calibrate(recipe_base(rec["base"], calibrated), ms, fit_spec=fit_spec,
                    folds=int(rec["folds"]), seed=int(rec["seed"]), fmt=rec.get("format"),
                    loss=rec.get("loss", "mean"), overrides=rec.get("set") or {})
    k = len(cal.folds)
    fitted_cv = (f"{_what(rec)} fitted by {k}-fold CV on the {len(ms)} kernels of {path.name}: "
                 f"each kernel predicted by the fit on the other {k - 1} folds (its own held "
                 f"out; seed {cal.seed})")
    fold_of = {int(i): f for f, test in enumerate(cal.folds) for i in test}
    rows += [check_row(check=CHECK, case=c, metric=f"latency ({label}, {k}-fold CV)", unit="us",
                       predicted=float(p), measured=float(m), status="ok", fitted_on=fitted_cv,
                       note=f"fold {fold_of[i] + 1}; the preset's fit "
                            f"{'saw' if seen[i] else 'did not see'} this kernel")
             for i, (c, p, m) in enumerate(zip(cases, cal.cv_us, meas))]
    return rows


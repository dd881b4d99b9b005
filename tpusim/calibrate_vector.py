"""Fitting the vector unit's physical parameters to measured vector-kernel latencies, with k-fold CV.

The model is :mod:`tpusim.timing.vector` (lanes model): a kernel takes
``launches x launch_cycles + max(VPU cycles, HBM cycles)``, VPU cycles = vector registers per core
x ``cycles_per_element[function]``, HBM cycles = operand and result bytes over the channel at
``hbm_efficiency``, plus ``row_cycles[function]`` per row of the lane axis on each core. Fitted:
``vector.launch_cycles``, ``vector.hbm_efficiency`` and one ``vector.cycles_per_element`` and
``vector.row_cycles`` entry per function in the file; the register shape (sublanes,
lanes, cores) is the published one and is never fitted. The loss is the mean ``|log(predicted /
measured)|`` (as :mod:`tpusim.calibrate`). The optimiser is deterministic and nested: launch and
efficiency on a grid, then Nelder-Mead; for each candidate pair every function's cycles per
register and per row are solved on its own kernels (a grid, then golden-section search), since
functions share nothing else. While fitting, kernels are evaluated in closed form with
numpy; every reported prediction comes from the simulator itself (:func:`tpusim.calibrate.predict_us`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import check_not_mixed, error_stats, formats_for, kfold, predict_us
from .config import ChipConfig, load_config
from .errors import InputError
from .formats import get_format
from .importers.measurements import Measurements, read_measurements
from .optimise import golden_section, nelder_mead
from .timing.vector import BINARY, LAUNCHES

LAUNCH, EFF = "vector.launch_cycles", "vector.hbm_efficiency"
CPE, ROW = "vector.cycles_per_element", "vector.row_cycles"
# Search boxes: launch 0..5000 cycles (0..~5 µs at 1 GHz), efficiency 2..100 % of the channel,
# 0..400 VPU cycles per register, 0..40 cycles per reduced row.
BOXES = {LAUNCH: (0.0, 5000.0), EFF: (0.02, 1.0), CPE: (0.0, 400.0), ROW: (0.0, 40.0)}


def is_vector_file(ms: Measurements) -> bool:
    """True when every kernel of ``ms`` is a vector op."""
    return all(r.layer.kind == "vector" for r in ms.rows)


@dataclass(frozen=True)
class _Kernels:
    """What the closed form needs per kernel (same quantities as :func:`vector_cost`)."""

    func: np.ndarray        # index into ``names``
    names: tuple[str, ...]
    regs: np.ndarray        # vector registers per core
    rows: np.ndarray        # rows per core (kernels with a lane axis n; else 1)
    launches: np.ndarray
    bytes_: np.ndarray      # HBM bytes at one read per operand (input x reads + output)
    bpc: float
    clock_ghz: float

    @classmethod
    def of(cls, chip: ChipConfig, ms: Measurements, fmts: list[str]) -> "_Kernels":
        v = chip.vector
        names = tuple(sorted({r.layer.op for r in ms.rows}))
        b = np.array([get_format(f).bytes_per_element for f in fmts])
        el = np.array([r.layer.elements for r in ms.rows], dtype=float)
        last = np.array([r.layer.n for r in ms.rows], float)
        rows = np.where(last > 0, np.ceil(np.ceil(el / np.maximum(last, 1)) / v.cores), 1.0)
        reads = np.array([2.0 if r.layer.op in BINARY else 1.0 for r in ms.rows])
        inp = np.array([r.layer.in_elements for r in ms.rows], dtype=float) * b
        out = np.array([r.layer.out_elements for r in ms.rows], dtype=float) * b
        return cls(np.array([names.index(r.layer.op) for r in ms.rows]), names,
                   np.ceil(np.ceil(el / (v.lanes * v.sublanes)) / v.cores), rows,
                   np.array([LAUNCHES.get(r.layer.op, 1) for r in ms.rows], dtype=float),
                   inp * reads + out, chip.hbm_bytes_per_cycle, chip.clock_ghz)

    def us(self, x: np.ndarray) -> np.ndarray:
        """Predicted µs for ``x`` = (launch, efficiency, cpe per function, row cycles per
        function)."""
        nf = len(self.names)
        vec = np.ceil(self.regs * x[2:2 + nf][self.func]
                      + self.rows * x[2 + nf:][self.func] - 1e-9)
        hbm = np.ceil(self.bytes_ / (self.bpc * x[1]) - 1e-6)
        return (self.launches * x[0] + np.maximum(vec, hbm)) / (self.clock_ghz * 1e3)


def _best_function(k: _Kernels, meas: np.ndarray, sel: np.ndarray, x: np.ndarray,
                   loss: str) -> tuple[float, float, float]:
    """(cycles per register, cycles per row, loss) of one function over its kernels ``sel``,
    launch and efficiency in ``x`` held: functions share nothing else. A 2-D grid when the
    kernels have reduced rows (a 1-D one otherwise), then golden-section on each coordinate."""
    launch = k.launches[sel] * x[0]
    hbm = np.ceil(k.bytes_[sel] / (k.bpc * x[1]) - 1e-6)
    regs, rows, m = k.regs[sel], k.rows[sel], meas[sel]
    scale = k.clock_ghz * 1e3

    def losses(c: np.ndarray, r: np.ndarray) -> np.ndarray:
        vec = np.ceil(regs[None, :] * c[:, None] + rows[None, :] * r[:, None] - 1e-9)
        a = np.abs(np.log((launch + np.maximum(vec, hbm)) / scale / m))
        return np.median(a, axis=1) if loss == "median" else a.mean(axis=1)
    (c_lo, c_hi), (r_lo, r_hi) = BOXES[CPE], BOXES[ROW]
    has_rows = bool((rows > 1).any())
    cg = np.linspace(c_lo, c_hi, 81 if has_rows else 401)
    rg = np.linspace(r_lo, r_hi, 21) if has_rows else np.zeros(1)
    cc, rr = np.meshgrid(cg, rg, indexing="ij")
    ls = losses(cc.ravel(), rr.ravel()).reshape(cc.shape)
    i, j = np.unravel_index(int(np.argmin(ls)), ls.shape)
    c, r, best = float(cg[i]), float(rg[j]), float(ls[i, j])
    steps = [(cg[1] - cg[0], c_lo, c_hi, 0)] + ([(rg[1] - rg[0], r_lo, r_hi, 1)]
                                                  if has_rows else [])
    for _ in range(2 if has_rows else 1):
        for step, lo, hi, which in steps:
            cur = (c, r)

            def f(v: float, which=which, cur=cur) -> float:
                arg = (v, cur[1]) if which == 0 else (cur[0], v)
                return float(losses(np.array([arg[0]]), np.array([arg[1]]))[0])
            v = golden_section(f, max(lo, cur[which] - step), min(hi, cur[which] + step),
                               step * 1e-3)
            lv = f(v)
            if lv <= best:
                best = lv
                c, r = (v, r) if which == 0 else (c, v)
    return c, r, best


def _fit(k: _Kernels, meas: np.ndarray, idx: np.ndarray, x0: np.ndarray, loss: str,
         grid: int = 7) -> tuple[np.ndarray, float]:
    """Launch and efficiency on a grid then by Nelder-Mead, each function's cycles per register
    (and per row) solved inside for every candidate pair."""
    nf = len(k.names)
    groups = [(j, idx[k.func[idx] == j]) for j in range(nf)]
    groups = [(j, r) for j, r in groups if len(r)]
    n = len(idx)
    (l_lo, l_hi), (e_lo, e_hi) = BOXES[LAUNCH], BOXES[EFF]

    def solve(u: np.ndarray) -> tuple[float, np.ndarray]:
        x = x0.copy()
        x[0] = l_lo + (l_hi - l_lo) * min(1.0, max(0.0, u[0]))
        x[1] = e_lo + (e_hi - e_lo) * min(1.0, max(0.0, u[1]))
        total = 0.0
        for j, sel in groups:
            x[2 + j], x[2 + nf + j], lj = _best_function(k, meas, sel, x, loss)
            total += lj * len(sel)   # mean over all kernels (median: weighted, an approximation)
        return total / n, x
    axis = np.linspace(0.0, 1.0, grid)
    best_u, best = None, math.inf
    for a in axis:
        for b in axis:
            f, _ = solve(np.array([a, b]))
            if f < best:
                best_u, best = np.array([a, b]), f
    u, best, _, _ = nelder_mead(lambda u: solve(u)[0], best_u, step=0.5 / (grid - 1),
                                max_iter=60, xtol=1e-3, ftol=1e-7)
    f, x = solve(u)
    return x, f


def _values(k: _Kernels, x: np.ndarray, idx: np.ndarray | None = None) -> dict[str, float]:
    present = set(k.func.tolist() if idx is None else k.func[idx].tolist())
    out = {LAUNCH: float(f"{x[0]:.4g}"), EFF: float(f"{x[1]:.4g}")}
    nf = len(k.names)
    for i, name in enumerate(k.names):
        if i in present:
            out[f"{CPE}.{name}"] = round(float(x[2 + i]), 2)   # hundredths of a cycle
    for i, name in enumerate(k.names):
        sel = k.func == i if idx is None else k.func[idx] == i
        rows = k.rows if idx is None else k.rows[idx]
        if i in present and (rows[sel] > 1).any():
            out[f"{ROW}.{name}"] = round(float(x[2 + nf + i]), 2)
    return out


def chip_with(base: ChipConfig, values: dict[str, float]) -> ChipConfig:
    """``base`` with fitted vector values (``vector.cycles_per_element.NAME`` merged)."""
    tables = {CPE: dict(base.vector.cycles_per_element), ROW: dict(base.vector.row_cycles)}
    plain = {}
    for path, v in values.items():
        head, _, name = path.rpartition(".")
        if head in tables:
            tables[head][name] = v
        else:
            plain[path] = v
    return load_config(base, **plain, **tables)


@dataclass(frozen=True)
class VectorCalibration:
    base: ChipConfig
    chip: ChipConfig
    values: dict[str, float]
    measurements: Measurements
    formats: tuple[str, ...]
    preset_us: np.ndarray
    after_us: np.ndarray
    cv_us: np.ndarray
    folds: tuple[np.ndarray, ...]
    fold_values: tuple[dict[str, float], ...]
    loss: str
    seed: int

    @property
    def ops(self) -> np.ndarray:
        return np.array([r.layer.op for r in self.measurements.rows])

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        m = self.measurements.latency_us
        return {"preset": error_stats(self.preset_us, m), "after": error_stats(self.after_us, m),
                "cv": error_stats(self.cv_us, m)}

    def by_function(self) -> dict[str, dict[str, dict[str, float]]]:
        m, ops = self.measurements.latency_us, self.ops
        return {op: {key: error_stats(pred[ops == op], m[ops == op]) for key, pred in
                     (("preset", self.preset_us), ("after", self.after_us), ("cv", self.cv_us))}
                for op in sorted(set(ops.tolist()))}


def calibrate_vector(config: ChipConfig | str, measurements: Measurements | str,
                     folds: int = 5, seed: int = 0, loss: str = "mean",
                     overrides: dict[str, Any] | None = None) -> VectorCalibration:
    """Fit the vector unit of ``config`` (which must set ``vector.lanes``) on all kernels and by
    ``folds``-fold cross-validation (the same seeded folds as :func:`tpusim.calibrate.kfold`)."""
    if loss not in ("mean", "median"):
        raise InputError("loss", None, loss, "allowed: mean|median")
    preset = load_config(config)
    base = load_config(preset, **(overrides or {}))
    if base.vector.lanes is None:
        raise InputError(base.name, "vector.lanes", None, "the vector fit needs the lanes model: "
                         "set vector.lanes (and sublanes, cores), e.g. --set vector.lanes=128")
    ms = measurements if isinstance(measurements, Measurements) \
        else read_measurements(measurements)
    if not is_vector_file(ms):
        check_not_mixed(ms)
        raise InputError(ms.source, None, message="no vector ops: a matmul file")
    fmts = formats_for(base, ms, None)
    k = _Kernels.of(base, ms, fmts)
    meas = ms.latency_us
    x0 = np.array([base.vector.launch_cycles if base.vector.launch_cycles is not None
                   else base.timing.overhead_cycles_per_op, base.vector.hbm_efficiency]
                  + [base.vector.cycles_per_element.get(n, 1.0) for n in k.names]
                  + [base.vector.row_cycles.get(n, 0.0) for n in k.names], dtype=float)
    n = len(ms)
    x, _ = _fit(k, meas, np.arange(n), x0, loss)
    values = _values(k, x)
    chip = chip_with(base, values)
    cv = np.zeros(n)
    fold_values = []
    tests = kfold(n, folds, seed, ms.source)
    for test in tests:
        train = np.setdiff1d(np.arange(n), test)
        xf, _ = _fit(k, meas, train, x0, loss)
        fv = _values(k, xf, train)
        fold_values.append(fv)
        cv[test] = predict_us(chip_with(base, fv), ms, fmts, test)
    if not math.isfinite(float(np.sum(cv))):
        raise InputError(ms.source, None, message="cross-validated predictions are not finite")
    return VectorCalibration(base, chip, values, ms, tuple(fmts),
                             predict_us(preset, ms, formats_for(preset, ms, None)),
                             predict_us(chip, ms, fmts), cv, tuple(tests), tuple(fold_values),
                             loss, seed)


def vector_yaml(cal: VectorCalibration, base_source: Path | str | None, name: str,
                command: str, base: str | None = None,
                overrides: dict | None = None) -> str:
    """The calibrated config: the base YAML with the vector fields rewritten in place under a
    header (command, data sha256, errors, the ``tpusim-calibrate-vector`` record)."""
    import json

    from .calibrated_config import fmt_stats, yaml_with_marks

    ms, st = cal.measurements, cal.stats
    # base: the CONFIG as given (a preset name or a file), so that validate can re-run the fit
    rec = {"base": base or cal.base.name, "measurements": Path(ms.source).name,
           "sha256": ms.sha256, "rows": len(ms), "folds": len(cal.folds), "seed": cal.seed,
           "loss": cal.loss, "set": overrides or {}}
    header = [f"# {name}: {cal.base.name} with its vector unit fitted by tpusim calibrate on "
              "measured vector-kernel latencies. Re-create with:", f"#   {command}",
              f"# measurements: {Path(ms.source).name}, {len(ms)} kernels, sha256 {ms.sha256}",
              f"#   {'as shipped:':<24}{fmt_stats(st['preset'])}",
              f"#   {'fitted, in-sample:':<24}{fmt_stats(st['after'])}",
              f"#   {f'{len(cal.folds)}-fold CV (seed {cal.seed}):':<24}{fmt_stats(st['cv'])}",
              f"# {TAG} {json.dumps(rec, sort_keys=True)}", ""]
    values = {p: v for p, v in cal.values.items()}
    shape = {"vector.lanes": cal.base.vector.lanes, "vector.sublanes": cal.base.vector.sublanes,
             "vector.cores": cal.base.vector.cores}
    marks = [(path, v, "fitted (see header)" if path in values else "register shape used by the fit")
             for path, v in {**shape, **values}.items()]
    text, check = yaml_with_marks(header, base_source, cal.chip, name, marks, ("vector", ms))
    if check.vector != cal.chip.vector:
        raise RuntimeError("calibrated YAML does not round-trip the vector section")
    return text


TAG = "tpusim-calibrate-vector:"

"""Fitting the parameters a preset leaves open to measured kernel latencies, with cross-validation.

Measurements are read by :mod:`tpusim.importers.measurements`. Every kernel is simulated alone, operands read from HBM and the result written
back, exactly as ``tpusim run`` simulates a one-row trace (:func:`kernel_cycles`).

Only parameters that public sources leave open are fitted; by default the fixed cost per op
(``timing.overhead_cycles_per_op``), the achievable fraction of HBM bandwidth
(``memory.hbm.efficiency``) and the arrays' issue efficiency (``timing.issue_efficiency``). The loss
is the mean (or median) of ``|log(predicted / measured)|``, which weighs a 2x over- and a 2x
under-prediction alike and a 1 µs kernel as much as a 30 µs one. The optimiser
(:mod:`tpusim.optimise`) is deterministic and numpy-only: a grid over the parameter box, then
Nelder-Mead from the best grid point. The
fixed cost adds the same cycles to every kernel, so for each candidate of the other parameters it
is solved exactly enough by a scan plus golden-section search (it never needs the simulator).

k-fold cross-validation (folds drawn by a seeded permutation) predicts every kernel with
parameters fitted on the other folds only; that out-of-fold error is the one to quote. The
calibrated config is the base YAML edited in place (:mod:`tpusim.yaml_edit`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# The calibrated config file and the measurement reader live in their own modules; their names
# stay importable from here.
from .calibrated_config import (RECIPE_TAG, calibrated_yaml, fmt_stats,  # noqa: F401
                                load_config_text, read_recipe, recipe)
from .config import ChipConfig, load_config
from .errors import InputError
from .formats import get_format
from .importers.measurements import (MEASUREMENT_COLUMNS, Measurement,  # noqa: F401
                                     Measurements, read_measurements)
from .optimise import best_overhead, grid_points, log_loss, nelder_mead
from .workload import Layer

OVERHEAD = "timing.overhead_cycles_per_op"

# Default parameters and their search boxes (low, high). Overhead: 0 to 20 µs at 1 GHz.
DEFAULT_FIT: dict[str, tuple[float, float]] = {
    OVERHEAD: (0.0, 20000.0),
    "memory.hbm.efficiency": (0.05, 1.0),
    "timing.issue_efficiency": (0.05, 1.0),
}
# Boxes of other parameters a --fit may name without a range. Wave cost: 0 to 2 µs at 1 GHz;
# a format's rate: 0.05 to 1 MAC per PE per cycle.
KNOWN_BOXES: dict[str, tuple[float, float]] = {
    "timing.wave_cycles": (0.0, 2000.0),
    "formats.fp16.rate": (0.05, 1.0), "formats.bf16.rate": (0.05, 1.0),
    "formats.int8.rate": (0.05, 4.0),
}


class FitError(RuntimeError):
    """The optimiser did not converge; nothing should be written."""


# ---------------------------------------------------------------- the model of one kernel

def kernel_cycles(chip: ChipConfig, layer: Layer, fmt: str) -> float:
    """Cycles of one kernel run alone, without the per-op overhead (what ``simulate`` gives for
    a one-layer workload: input from HBM, output to HBM)."""
    from .simulator import layer_time

    lt = layer_time(chip, layer, fmt)
    return lt.cycles - lt.overhead_cycles


def _total_cycles(chip: ChipConfig, layer: Layer, fmt: str, overhead: float) -> float:
    """A matmul's cycles with ``overhead`` added; a vector op's with its own launch cost."""
    if layer.kind == "gemm":
        return kernel_cycles(chip, layer, fmt) + overhead
    from .simulator import layer_time
    return layer_time(chip, layer, fmt).cycles


def formats_for(chip: ChipConfig, ms: Measurements, forced: str | None) -> list[str]:
    """The format each kernel runs in: ``forced``, else its dtype column, else the trace dtypes,
    else the chip's default."""
    from .memory import check_tile_fits

    out = []
    for r in ms.rows:
        fmt = forced or r.dtype or r.layer.format or chip.default_format
        out.append(chip.check_format(fmt, f"{ms.source}: line {r.line}"))
    for f in sorted(set(out)):
        check_tile_fits(chip, get_format(f), chip.name)
    return out


def predict_us(chip: ChipConfig, ms: Measurements, fmts: Sequence[str],
               idx: Sequence[int] | None = None) -> np.ndarray:
    """Predicted latency (µs, overhead included) of the kernels ``idx`` (default: all)."""
    idx = range(len(ms)) if idx is None else idx
    oh = chip.timing.overhead_cycles_per_op
    cyc = np.array([_total_cycles(chip, ms.rows[i].layer, fmts[i], oh) for i in idx])
    return cyc / (chip.clock_ghz * 1e3)


def relative_errors(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Signed relative error ``pred / meas - 1``."""
    return np.asarray(pred, float) / np.asarray(meas, float) - 1.0


def error_stats(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    """median, p90 and max of ``|pred / meas - 1|``, and the median signed error (bias)."""
    e = relative_errors(pred, meas)
    a = np.abs(e)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "max": float(a.max()), "bias": float(np.median(e)), "n": int(len(a))}


# ---------------------------------------------------------------- the optimiser

@dataclass(frozen=True)
class FitParam:
    path: str
    low: float
    high: float
    integer: bool = False

    def value(self, u: float) -> float:
        v = self.low + (self.high - self.low) * min(1.0, max(0.0, u))
        return float(round(v)) if self.integer else v


def _field_annotation(path: str) -> Any:
    """The type of the config field at ``path``; a mapping's key is a path part too
    (``formats.fp16.rate``)."""
    cls: Any = ChipConfig
    ann = None
    parts = path.split(".")
    i = 0
    while i < len(parts):
        fields = getattr(cls, "model_fields", None)
        if not fields or parts[i] not in fields:
            from ._input import suggest
            known = sorted(fields or ())
            raise InputError("--fit", path, message=f"unknown config field {parts[i]!r}"
                             + suggest(parts[i], known) + ("; fields here: " + ", ".join(known)
                                                           if known else ""))
        ann = fields[parts[i]].annotation
        i += 1
        if getattr(ann, "__origin__", None) is dict and i < len(parts):
            ann = ann.__args__[1]   # dict[str, Section]: skip the key
            i += 1
        cls = ann
    return ann


def make_params(spec: dict[str, tuple[float, float] | None] | None) -> list[FitParam]:
    """Fit parameters from ``{path: (low, high) or None (default box)}``."""
    spec = dict(DEFAULT_FIT) if not spec else spec
    out = []
    for path, box in spec.items():
        ann = _field_annotation(path)
        text = str(ann)
        if not any(t in text for t in ("float", "int")) or "bool" in text:
            raise InputError("fit_spec", path, message="only numeric fields can be fitted")
        if box is None:
            box = DEFAULT_FIT.get(path) or KNOWN_BOXES.get(path)
            if box is None:
                raise InputError("fit_spec", path, message="give a range: PATH=LOW:HIGH")
        lo, hi = float(box[0]), float(box[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError("fit_spec", path, f"{lo}:{hi}", "LOW:HIGH with LOW < HIGH")
        out.append(FitParam(path, lo, hi, integer=("int" in text and "float" not in text)))
    return out


@dataclass
class _Model:
    """Base predictions (cycles without overhead) for every kernel, memoised by parameter values;
    shared by the folds of one cross-validation so that each point is simulated once."""

    base: ChipConfig
    ms: Measurements
    fmts: list[str]
    shape_params: list[FitParam]
    cache: dict = field(default_factory=dict)
    evaluations: int = 0

    def chip(self, values: dict[str, float]) -> ChipConfig:
        return load_config(self.base, **values) if values else self.base

    def cycles(self, values: tuple[float, ...]) -> tuple[np.ndarray, float]:
        key = tuple(round(v, 12) for v in values)
        hit = self.cache.get(key)
        if hit is None:
            chip = self.chip(dict(zip((p.path for p in self.shape_params), values)))
            self.evaluations += 1
            cyc = np.array([kernel_cycles(chip, r.layer, f)
                            for r, f in zip(self.ms.rows, self.fmts)])
            hit = (cyc, chip.clock_ghz)
            self.cache[key] = hit
        return hit


@dataclass(frozen=True)
class FitResult:
    values: dict[str, float]
    loss: float
    converged: bool
    iterations: int
    message: str


def fit(model: _Model, params: list[FitParam], idx: np.ndarray, kind: str = "mean",
        max_iter: int = 200) -> FitResult:
    """Fit ``params`` on the kernels ``idx``."""
    meas = model.ms.latency_us[idx]
    shape = model.shape_params
    oh = next((p for p in params if p.path == OVERHEAD), None)
    fixed_oh = model.base.timing.overhead_cycles_per_op

    def evaluate(u: np.ndarray) -> tuple[float, float]:
        vals = tuple(p.value(x) for p, x in zip(shape, u))
        cyc, clock = model.cycles(vals)
        b = cyc[idx]
        if oh is not None:
            o, loss = best_overhead(b, meas, clock, oh.low, oh.high, kind)
            return loss, o
        return log_loss((b + fixed_oh) / (clock * 1e3), meas, kind), fixed_oh

    d = len(shape)
    g = grid_points(d)
    axis = np.linspace(0.0, 1.0, g)
    best_u, best = None, math.inf
    for combo in np.array(np.meshgrid(*([axis] * d), indexing="ij")).reshape(d, -1).T \
            if d else [np.zeros(0)]:
        loss, _ = evaluate(combo)
        if loss < best - 1e-12:
            best_u, best = combo, loss
    converged, iters = True, 0
    if d:
        x, best, converged, iters = nelder_mead(lambda u: evaluate(u)[0], best_u,
                                                 step=0.5 / (g - 1), max_iter=max_iter,
                                                 xtol=1e-3, ftol=1e-7)
        best_u = x
    loss, o = evaluate(best_u)
    values = {p.path: p.value(x) for p, x in zip(shape, best_u)}
    if oh is not None:
        values[OVERHEAD] = o
    values = {p.path: values[p.path] for p in params}
    msg = (f"converged after {iters} iterations" if converged else
           f"did not converge in {max_iter} Nelder-Mead iterations")
    if not math.isfinite(loss):
        converged, msg = False, "the loss is not finite (a prediction is zero or negative)"
    return FitResult(values, loss, converged, iters, msg)


def round_values(values: dict[str, float], params: list[FitParam]) -> dict[str, float]:
    """Four significant digits (integers for integer fields): what the YAML records."""
    out = {}
    for p in params:
        v = values[p.path]
        out[p.path] = int(round(v)) if p.integer else float(f"{v:.4g}")
    return out


def check_not_mixed(ms: Measurements) -> None:
    """One-line InputError for a file of matmuls and vector ops together: each has its own fit
    (a vector op in the matmul fit would be priced as a matmul kernel's launch)."""
    vector = [r.layer.kind == "vector" for r in ms.rows]
    if any(vector) and not all(vector):
        first = ms.rows[vector.index(not vector[0])]   # the first row of the other kind
        raise InputError(ms.source, f"line {first.line}", first.layer.op, "mixes matmuls and "
                         "vector ops; calibrate and validate them from separate files")


def kfold(n: int, folds: int, seed: int, source: str = "measurements") -> list[np.ndarray]:
    """Test-index sets of ``folds`` disjoint folds covering ``range(n)`` (seeded permutation)."""
    if folds < 2:
        raise InputError(source, "folds", folds, "cross-validation needs at least 2 folds")
    if folds > n:
        raise InputError(source, "folds", folds, f"{folds}-fold cross-validation needs at least "
                         f"{folds} kernels; the file has {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, folds)]


# ---------------------------------------------------------------- the whole calibration

@dataclass(frozen=True)
class Calibration:
    base: ChipConfig          # the config fitted (with --set overrides applied)
    chip: ChipConfig          # calibrated: base + fitted values
    params: tuple[FitParam, ...]
    values: dict[str, float]  # fitted on all kernels (rounded as written)
    measurements: Measurements
    formats: tuple[str, ...]
    preset_us: np.ndarray     # the config as given, without --set overrides
    before_us: np.ndarray     # the base config's predictions (overrides applied)
    after_us: np.ndarray      # the calibrated config's predictions (in-sample)
    cv_us: np.ndarray         # out-of-fold predictions
    folds: tuple[np.ndarray, ...]
    fold_values: tuple[dict[str, float], ...]
    fit: FitResult
    loss: str
    seed: int
    points: int = 0           # distinct parameter points simulated (all kernels each)

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        meas = self.measurements.latency_us
        return {"preset": error_stats(self.preset_us, meas),
                "before": error_stats(self.before_us, meas),
                "after": error_stats(self.after_us, meas),
                "cv": error_stats(self.cv_us, meas)}


def calibrate(config: ChipConfig | str, measurements: Measurements | str | Path,
              fit_spec: dict[str, tuple[float, float] | None] | None = None, folds: int = 5,
              seed: int = 0, fmt: str | None = None, loss: str = "mean",
              overrides: dict[str, Any] | None = None) -> Calibration:
    """Fit ``fit_spec`` (default :data:`DEFAULT_FIT`) on all kernels and by ``folds``-fold CV.

    Raises :class:`FitError` when the fit on all kernels does not converge.
    """
    if loss not in ("mean", "median"):
        raise InputError("loss", None, loss, "allowed: mean|median")
    preset = load_config(config)
    base = load_config(preset, **(overrides or {}))
    if base.timing.model != "pipelined" and fit_spec is None:
        raise InputError(base.name, "timing.model", base.timing.model,
                         "the default fit needs the pipelined model; name parameters with --fit")
    ms = measurements if isinstance(measurements, Measurements) \
        else read_measurements(measurements)
    check_not_mixed(ms)
    forced = base.check_format(fmt, "fmt") if fmt else None
    fmts = formats_for(base, ms, forced)
    params = make_params(fit_spec)
    shape = [p for p in params if p.path != OVERHEAD]
    model = _Model(base, ms, fmts, shape)
    n = len(ms)
    test_sets = kfold(n, folds, seed, ms.source)

    full = fit(model, params, np.arange(n), loss)
    if not full.converged:
        raise FitError(f"calibration of {base.name} on {ms.source} did not converge "
                       f"({full.message}); the config was not written")
    values = round_values(full.values, params)
    chip = load_config(base, **values)
    cv = np.zeros(n)
    fold_values = []
    for test in test_sets:
        train = np.setdiff1d(np.arange(n), test)
        fr = fit(model, params, train, loss)
        fv = round_values(fr.values, params)
        fold_values.append(fv)
        cv[test] = predict_us(load_config(base, **fv), ms, fmts, test)
    return Calibration(base=base, chip=chip, params=tuple(params), values=values,
                       measurements=ms, formats=tuple(fmts),
                       preset_us=predict_us(preset, ms, formats_for(preset, ms, forced)),
                       before_us=predict_us(base, ms, fmts), after_us=predict_us(chip, ms, fmts),
                       cv_us=cv, folds=tuple(test_sets), fold_values=tuple(fold_values),
                       fit=full, loss=loss, seed=seed, points=model.evaluations)

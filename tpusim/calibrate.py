"""Fitting the parameters a preset leaves open to measured kernel latencies, with cross-validation.

A measurement file has one row per kernel: its shape as in a trace (``m,k,n``, or any columns of a
trace row), optionally ``dtype`` (the format it ran in), the measured ``latency_us`` and optionally
``latency_std_us``. Every kernel is simulated alone, operands read from HBM and the result written
back, exactly as ``tpusim run`` simulates a one-row trace (:func:`kernel_cycles`).

Only parameters that public sources leave open are fitted; by default the fixed cost per op
(``timing.overhead_cycles_per_op``), the achievable fraction of HBM bandwidth
(``memory.hbm.efficiency``) and the arrays' issue efficiency (``timing.issue_efficiency``). The loss
is the mean (or median) of ``|log(predicted / measured)|``, which weighs a 2x over- and a 2x
under-prediction alike and a 1 µs kernel as much as a 30 µs one. The optimiser is deterministic
and numpy-only: a grid over the parameter box, then Nelder-Mead from the best grid point. The
fixed cost adds the same cycles to every kernel, so for each candidate of the other parameters it
is solved exactly enough by a scan plus golden-section search (it never needs the simulator).

k-fold cross-validation (folds drawn by a seeded permutation) predicts every kernel with
parameters fitted on the other folds only; that out-of-fold error is the one to quote.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._input import check_unique_header, csv_rows, decode, load_yaml
from .config import ChipConfig, load_config
from .errors import InputError
from .formats import get_format
from .workload import TRACE_COLUMNS, Layer, make_layer

MEASUREMENT_COLUMNS = ("latency_us", "latency_std_us", "dtype")
OVERHEAD = "timing.overhead_cycles_per_op"

# Default parameters and their search boxes (low, high). Overhead: 0 to 20 µs at 1 GHz.
DEFAULT_FIT: dict[str, tuple[float, float]] = {
    OVERHEAD: (0.0, 20000.0),
    "memory.hbm.efficiency": (0.05, 1.0),
    "timing.issue_efficiency": (0.05, 1.0),
}


class FitError(RuntimeError):
    """The optimiser did not converge; nothing should be written."""


@dataclass(frozen=True)
class Measurement:
    name: str
    layer: Layer
    dtype: str | None
    latency_us: float
    std_us: float | None
    line: int


@dataclass(frozen=True)
class Measurements:
    source: str
    sha256: str
    rows: tuple[Measurement, ...]

    @property
    def latency_us(self) -> np.ndarray:
        return np.array([r.latency_us for r in self.rows], dtype=float)

    def __len__(self) -> int:
        return len(self.rows)


# ---------------------------------------------------------------- reading measurements

def _positive(src: str, where: str, text: str, allow_zero: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(src, where, text, "must be a number >= 0" if allow_zero
                         else "must be a number > 0")
    return v


def read_measurements(path: str | Path) -> Measurements:
    """Read and validate a measurement CSV (``#`` lines are comments)."""
    path = Path(path)
    src = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(src, None, message=f"cannot read measurements ({exc.strerror})") from None
    text = decode(data, src, "measurement CSV")
    numbered = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1)
                if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise InputError(src, None, message="empty: expected a header with m,k,n,latency_us")
    rows = csv_rows([ln for _, ln in numbered], [i for i, _ in numbered], src)
    header = [h.strip() for h in rows[0]]
    hline = numbered[0][0]
    allowed = set(TRACE_COLUMNS) | set(MEASUREMENT_COLUMNS)
    for col in header:
        if col not in allowed:
            raise InputError(src, f"line {hline}, column {col!r}",
                             message="unknown column; allowed: "
                             + ", ".join(MEASUREMENT_COLUMNS + TRACE_COLUMNS))
    check_unique_header(header, src, hline)
    missing = [c for c in ("latency_us",) if c not in header]
    if "op" not in header:  # without an op column every row is a matmul
        missing += [c for c in ("m", "k", "n") if c not in header]
    if missing:
        raise InputError(src, f"line {hline}", message="required column(s) missing: "
                         + ", ".join(missing) + "; need latency_us and a shape (m,k,n or a trace "
                         "row's columns)")
    out: list[Measurement] = []
    for cells, (lineno, _) in zip(rows[1:], numbered[1:]):
        if len(cells) != len(header):
            raise InputError(src, f"line {lineno}", len(cells),
                             f"expected {len(header)} cells as in the header")
        row = {h: c.strip() for h, c in zip(header, cells)}
        lat = _positive(src, f"line {lineno}, column latency_us", row.pop("latency_us"))
        std_text = row.pop("latency_std_us", "")
        std = (_positive(src, f"line {lineno}, column latency_std_us", std_text, allow_zero=True)
               if std_text else None)
        dtype = row.pop("dtype", "") or None
        if dtype is not None:
            dtype = get_format(dtype, src, f"line {lineno}, column dtype").name
        trace = {k: v for k, v in row.items() if v != ""}
        trace.setdefault("op", "matmul")
        trace.setdefault("name", f"kernel{len(out) + 1}")
        layer = make_layer(trace, src, lineno)
        if layer.count != 1:
            raise InputError(src, f"line {lineno}, column count", layer.count,
                             "a measurement is one kernel: count must be 1")
        out.append(Measurement(layer.name, layer, dtype, lat, std, lineno))
    if not out:
        raise InputError(src, None, message="no measurement rows after the header")
    return Measurements(src, hashlib.sha256(data).hexdigest(), tuple(out))


# ---------------------------------------------------------------- the model of one kernel

def kernel_cycles(chip: ChipConfig, layer: Layer, fmt: str) -> float:
    """Cycles of one kernel run alone, without the per-op overhead (what ``simulate`` gives for
    a one-layer workload: input from HBM, output to HBM)."""
    from .simulator import layer_time

    lt = layer_time(chip, layer, fmt)
    return lt.cycles - lt.overhead_cycles


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
    cyc = np.array([kernel_cycles(chip, ms.rows[i].layer, fmts[i]) + oh for i in idx])
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


def fmt_stats(s: dict[str, float]) -> str:
    return (f"median {s['median']:.1%}, p90 {s['p90']:.1%}, max {s['max']:.1%} "
            f"(bias {s['bias']:+.1%}, n={s['n']})")


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
    cls: Any = ChipConfig
    ann = None
    for part in path.split("."):
        fields = getattr(cls, "model_fields", None)
        if not fields or part not in fields:
            raise InputError("--fit", path, message="unknown config field")
        ann = fields[part].annotation
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
            raise InputError("--fit", path, message="only numeric fields can be fitted")
        if box is None:
            if path not in DEFAULT_FIT:
                raise InputError("--fit", path, message="give a range: PATH=LOW:HIGH")
            box = DEFAULT_FIT[path]
        lo, hi = float(box[0]), float(box[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError("--fit", path, f"{lo}:{hi}", "LOW:HIGH with LOW < HIGH")
        out.append(FitParam(path, lo, hi, integer=("int" in text and "float" not in text)))
    return out


def _loss(pred: np.ndarray, meas: np.ndarray, kind: str) -> float:
    a = np.abs(np.log(pred / meas))
    return float(np.median(a) if kind == "median" else a.mean())


def _golden(f: Callable[[float], float], a: float, b: float, tol: float) -> float:
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def best_overhead(base_cycles: np.ndarray, meas_us: np.ndarray, clock_ghz: float,
                  low: float, high: float, kind: str) -> tuple[float, float]:
    """The fixed cost (cycles) in [low, high] that minimises the loss, and that loss."""
    scale = clock_ghz * 1e3

    def f(o: float) -> float:
        return _loss((base_cycles + o) / scale, meas_us, kind)

    grid = np.linspace(low, high, 81)
    preds = (base_cycles[None, :] + grid[:, None]) / scale
    a = np.abs(np.log(preds / meas_us[None, :]))
    losses = np.median(a, axis=1) if kind == "median" else a.mean(axis=1)
    i = int(np.argmin(losses))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    o = _golden(f, lo, hi, tol=max(1e-3, (high - low) * 1e-7))
    o = round(o, 1)
    lo_f = f(o)
    if losses[i] < lo_f:
        o, lo_f = float(grid[i]), float(losses[i])
    return float(o), float(lo_f)


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


def _nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, step: float,
                 max_iter: int, xtol: float, ftol: float) -> tuple[np.ndarray, float, bool, int]:
    """Minimise ``f`` over the unit cube (points clipped into it), deterministically."""
    d = len(x0)
    clip = lambda x: np.clip(x, 0.0, 1.0)  # noqa: E731
    pts = [clip(x0)]
    for j in range(d):
        e = np.zeros(d)
        e[j] = step if x0[j] + step <= 1.0 else -step
        pts.append(clip(x0 + e))
    vals = [f(p) for p in pts]
    for it in range(1, max_iter + 1):
        order = np.argsort(vals, kind="stable")
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        spread = max(float(np.max(np.abs(p - pts[0]))) for p in pts[1:])
        if spread < xtol or (vals[-1] - vals[0] < ftol and spread < 10 * xtol):
            return pts[0], vals[0], True, it
        centroid = np.mean(pts[:-1], axis=0)
        xr = clip(centroid + (centroid - pts[-1]))
        fr = f(xr)
        if vals[0] <= fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
            continue
        if fr < vals[0]:
            xe = clip(centroid + 2 * (centroid - pts[-1]))
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
            continue
        xc = clip(centroid + 0.5 * (pts[-1] - centroid))
        fc = f(xc)
        if fc < vals[-1]:
            pts[-1], vals[-1] = xc, fc
            continue
        for i in range(1, len(pts)):
            pts[i] = clip(pts[0] + 0.5 * (pts[i] - pts[0]))
            vals[i] = f(pts[i])
    i = int(np.argmin(vals))
    return pts[i], vals[i], False, max_iter


def _grid_points(d: int) -> int:
    return {0: 1, 1: 17, 2: 9, 3: 5}.get(d, 3)


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
        return _loss((b + fixed_oh) / (clock * 1e3), meas, kind), fixed_oh

    d = len(shape)
    g = _grid_points(d)
    axis = np.linspace(0.0, 1.0, g)
    best_u, best = None, math.inf
    for combo in np.array(np.meshgrid(*([axis] * d), indexing="ij")).reshape(d, -1).T \
            if d else [np.zeros(0)]:
        loss, _ = evaluate(combo)
        if loss < best - 1e-12:
            best_u, best = combo, loss
    converged, iters = True, 0
    if d:
        x, best, converged, iters = _nelder_mead(lambda u: evaluate(u)[0], best_u,
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


def kfold(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """Test-index sets of ``folds`` disjoint folds covering ``range(n)`` (seeded permutation)."""
    if folds < 2 or folds > n:
        raise InputError("--folds", None, folds, f"must be between 2 and the {n} measurements")
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
        raise InputError("--loss", None, loss, "allowed: mean|median")
    preset = load_config(config)
    base = load_config(preset, **(overrides or {}))
    if base.timing.model != "pipelined" and fit_spec is None:
        raise InputError(base.name, "timing.model", base.timing.model,
                         "the default fit needs the pipelined model; name parameters with --fit")
    ms = measurements if isinstance(measurements, Measurements) \
        else read_measurements(measurements)
    forced = base.check_format(fmt, "--format") if fmt else None
    fmts = formats_for(base, ms, forced)
    params = make_params(fit_spec)
    shape = [p for p in params if p.path != OVERHEAD]
    model = _Model(base, ms, fmts, shape)
    n = len(ms)
    test_sets = kfold(n, folds, seed)
    meas = ms.latency_us

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


# ---------------------------------------------------------------- the calibrated YAML

RECIPE_TAG = "tpusim-calibrate:"


def _yaml_scalar(v: Any) -> str:
    import yaml
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...").strip()


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the last line of the block that starts after ``start`` (children indented
    more than ``indent``)."""
    j = start + 1
    last = start
    while j < len(lines):
        s = lines[j]
        if s.strip() and not s.lstrip().startswith("#"):
            if len(s) - len(s.lstrip()) <= indent:
                break
            last = j
        j += 1
    return last + 1


def set_yaml_value(lines: list[str], path: str, value: Any, comment: str) -> list[str]:
    """Set ``path`` in block-style YAML ``lines`` (keeping every other line and comment)."""
    parts = path.split(".")
    lo, hi, indent = 0, len(lines), -1
    for depth, key in enumerate(parts):
        pat = re.compile(rf"^(\s*){re.escape(key)}\s*:(.*)$")
        found = None
        child_indent = None
        for j in range(lo, hi):
            s = lines[j]
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            ind = len(s) - len(s.lstrip())
            if ind <= indent:
                continue
            if child_indent is None:
                child_indent = ind
            if ind != child_indent:
                continue
            if pat.match(s):
                found = j
                break
        if child_indent is None:
            child_indent = indent + 2 if indent >= 0 else 0
        last = depth == len(parts) - 1
        if found is None:
            pad = " " * child_indent
            new = ([f"{pad}{key}: {_yaml_scalar(value)}  # {comment}"] if last else
                   [f"{pad}{key}:"])
            at = hi
            lines = lines[:at] + new + lines[at:]
            found = at
            if last:
                return lines
            lo, hi, indent = found + 1, found + 1, child_indent
            continue
        if last:
            pad = " " * child_indent
            lines = list(lines)
            lines[found] = f"{pad}{key}: {_yaml_scalar(value)}  # {comment}"
            return lines
        text, _, old_comment = pat.match(lines[found]).group(2).partition("#")
        if text.strip().startswith("{"):  # a one-line flow mapping: edit it in place
            import yaml
            flow = yaml.safe_load(text) or {}
            node = flow
            for sub in parts[depth + 1:-1]:
                node = node.setdefault(sub, {})
            node[parts[-1]] = value
            flow_text = yaml.safe_dump(flow, default_flow_style=True, sort_keys=False).strip()
            was = f" (was {text.strip()}: {old_comment.strip()})" if old_comment.strip() \
                else f" (was {text.strip()})"
            lines = list(lines)
            lines[found] = f"{' ' * child_indent}{key}: {flow_text}  # {comment}{was}"
            return lines
        end = _block_end(lines, found, child_indent)
        lo, hi, indent = found + 1, end, child_indent
    return lines


def _old_value(chip: ChipConfig, path: str) -> Any:
    node: Any = chip
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def recipe(cal: Calibration, base_name: str, overrides: dict[str, Any], fmt: str | None,
           fit_spec: dict | None) -> dict[str, Any]:
    """The machine-readable record of how a calibrated config was made."""
    return {"base": base_name, "measurements": Path(cal.measurements.source).name,
            "sha256": cal.measurements.sha256, "rows": len(cal.measurements),
            "set": overrides, "format": fmt,
            "fit": {p.path: [p.low, p.high] for p in cal.params} if fit_spec else None,
            "folds": len(cal.folds), "seed": cal.seed, "loss": cal.loss,
            "values": cal.values}


def calibrated_yaml(cal: Calibration, base_source: str | Path | None, name: str,
                    command: str, record: dict[str, Any]) -> str:
    """The calibrated config as YAML: the base file with the fitted (and ``--set``) fields
    rewritten in place, under a header that records what it was fitted on."""
    import yaml

    st = cal.stats
    ms = cal.measurements
    header = [
        f"# {name}: {cal.base.name} calibrated against measured kernel latencies by tpusim.",
        "# Generated; do not edit by hand. Re-create with:",
        f"#   {command}",
        f"# measurements: {Path(ms.source).name}, {len(ms)} kernels, sha256 {ms.sha256}",
        f"# formats run: {', '.join(sorted(set(cal.formats)))}",
        f"# fitted on all {len(ms)} kernels, loss {cal.loss} |log(predicted/measured)| "
        f"({cal.fit.message}):",
    ]
    for p in cal.params:
        header.append(f"#   {p.path} = {cal.values[p.path]:g}  (was "
                      f"{_old_value(cal.base, p.path)}; searched {p.low:g}..{p.high:g})")
    header += [
        "# error |predicted/measured - 1| over the kernels:",
        f"#   {'as shipped:':<24}{fmt_stats(st['preset'])}",
        f"#   {'with the --set fields:':<24}{fmt_stats(st['before'])}",
        f"#   {'calibrated, in-sample:':<24}{fmt_stats(st['after'])}",
        f"#   {len(cal.folds)}-fold cross-validation (seed {cal.seed}; each kernel predicted by a "
        "fit that never saw it):",
        f"#     {fmt_stats(st['cv'])}",
        f"# {RECIPE_TAG} {json.dumps(record, sort_keys=True)}",
        "",
    ]
    edits = dict(record.get("set") or {})
    values = dict(cal.values)
    if base_source is not None and Path(base_source).suffix in (".yaml", ".yml"):
        lines = Path(base_source).read_text().splitlines()
        for path, v in edits.items():
            lines = set_yaml_value(lines, path, v, "set for the calibration (see header)")
        for path, v in values.items():
            old = _old_value(cal.base, path) if path not in edits else edits[path]
            lines = set_yaml_value(lines, path, v, f"fitted (was {old}; see header)")
        lines = set_yaml_value(lines, "name", name, "calibrated (see header)")
        body = "\n".join(lines) + "\n"
    else:
        raw = cal.chip.model_dump(mode="json")
        raw["name"] = name
        body = yaml.safe_dump(raw, sort_keys=False)
    text = "\n".join(header) + body
    check = load_config_text(text, name)
    for path, v in {**edits, **values}.items():
        if _old_value(check, path) != v:
            raise RuntimeError(f"calibrated YAML does not round-trip {path}: "
                               f"{_old_value(check, path)!r} != {v!r}")
    return text


def load_config_text(text: str, name: str) -> ChipConfig:
    import yaml
    from pydantic import ValidationError

    from .config import validation_to_input_error
    raw = load_yaml(text, name)
    if not isinstance(raw, dict):
        raise InputError(name, None, message="expected a YAML mapping of config fields")
    try:
        return ChipConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_to_input_error(err, name) from None


RECIPE_KEYS = ("base", "measurements", "sha256", "folds", "seed")


def read_recipe(path: str | Path) -> dict[str, Any] | None:
    """The record a calibrated config's header carries, or None; a damaged one is an InputError."""
    from ._input import read_text
    src = str(path)
    for lineno, line in enumerate(read_text(path, "calibrated config").splitlines(), start=1):
        if not line.startswith("#"):
            break
        if RECIPE_TAG in line:
            try:
                rec = json.loads(line.split(RECIPE_TAG, 1)[1])
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record is not "
                                 "a JSON object; rerun tpusim calibrate to write it again")
            missing = [k for k in RECIPE_KEYS if k not in rec]
            if missing:
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record lacks "
                                 + ", ".join(missing) + "; rerun tpusim calibrate")
            bad = [k for k in ("folds", "seed") if type(rec[k]) is not int]
            bad += [k for k in ("base", "measurements") if not isinstance(rec[k], str)]
            if bad:
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record has "
                                 f"a malformed {', '.join(bad)}; rerun tpusim calibrate")
            return rec
    return None

"""Deterministic, numpy-only minimisers the calibration uses: golden-section search in one
dimension, Nelder-Mead over the unit cube, and the log-ratio loss they minimise.

Deterministic means no random restarts: the same inputs give the same optimum, so a calibrated
config can be re-created bit for bit from its recorded recipe.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def log_loss(pred: np.ndarray, meas: np.ndarray, kind: str) -> float:
    """Mean (or median, ``kind="median"``) of ``|log(pred / meas)|``."""
    a = np.abs(np.log(pred / meas))
    return float(np.median(a) if kind == "median" else a.mean())


def golden_section(f: Callable[[float], float], a: float, b: float, tol: float) -> float:
    """The minimiser of a unimodal ``f`` on [a, b], to within ``tol``."""
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


def nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, step: float,
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


def grid_points(d: int) -> int:
    """Points per axis of the starting grid over a ``d``-dimensional box."""
    return {0: 1, 1: 17, 2: 9, 3: 5}.get(d, 3)


def best_overhead(base_cycles: np.ndarray, meas_us: np.ndarray, clock_ghz: float,
                  low: float, high: float, kind: str) -> tuple[float, float]:
    """The fixed cost (cycles) in [low, high] that minimises the loss, and that loss."""
    scale = clock_ghz * 1e3

    def f(o: float) -> float:
        return log_loss((base_cycles + o) / scale, meas_us, kind)

    grid = np.linspace(low, high, 81)
    preds = (base_cycles[None, :] + grid[:, None]) / scale
    a = np.abs(np.log(preds / meas_us[None, :]))
    losses = np.median(a, axis=1) if kind == "median" else a.mean(axis=1)
    i = int(np.argmin(losses))
    lo, hi = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    o = golden_section(f, lo, hi, tol=max(1e-3, (high - low) * 1e-7))
    o = round(o, 1)
    lo_f = f(o)
    if losses[i] < lo_f:
        o, lo_f = float(grid[i]), float(losses[i])
    return float(o), float(lo_f)

"""Per-point figures of merit of a sweep and its Pareto front over latency, energy and area.

Every successful point gets, from its summary fields:

- ``avg_power_w`` = ``energy_j`` / ``latency_s`` (dynamic energy plus the config's static power
  over the run);
- ``tops_per_w`` = ``achieved_tops`` / ``avg_power_w`` and ``inferences_per_j`` = ``batch`` /
  ``energy_j`` (perf/W);
- ``throughput_per_mm2`` = ``throughput_per_s`` / ``chip_mm2`` and ``achieved_tops_per_mm2``
  (perf/area; ``chip_mm2`` is arrays + SRAM, a lower bound of the die, so these are upper bounds).

:func:`pareto_3d` keeps the points no other point beats in all of latency, energy per inference
and chip area (lower is better in each; a point equal in all three to an earlier one is dropped).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:     # pandas is imported by the functions, so that DERIVED costs nothing
    import pandas as pd

DERIVED = ("avg_power_w", "tops_per_w", "inferences_per_j", "throughput_per_mm2",
           "achieved_tops_per_mm2")
PARETO_AXES = ("latency_s", "energy_per_inference_j", "chip_mm2")


def _div(a: pd.Series, b: pd.Series) -> pd.Series:
    import pandas as pd
    a, b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    return a / b.where(b > 0)


def add_derived(df: pd.DataFrame, inplace: bool = False) -> pd.DataFrame:
    """``df`` with the :data:`DERIVED` columns (NaN where a point failed or lacks a field);
    ``inplace`` adds them to ``df`` itself (a frame nobody else holds: no copy of it)."""
    import pandas as pd
    col = lambda c: df[c] if c in df else pd.Series(np.nan, index=df.index)  # noqa: E731
    out = df if inplace else df.copy()
    power = _div(col("energy_j"), col("latency_s"))
    out["avg_power_w"] = power
    out["tops_per_w"] = _div(col("achieved_tops"), power)
    out["inferences_per_j"] = _div(col("batch"), col("energy_j"))
    out["throughput_per_mm2"] = _div(col("throughput_per_s"), col("chip_mm2"))
    out["achieved_tops_per_mm2"] = _div(col("achieved_tops"), col("chip_mm2"))
    return out


def pareto_3d(df: pd.DataFrame, axes: tuple[str, ...] = PARETO_AXES) -> list:
    """Index labels of the non-dominated points of ``df`` over ``axes`` (all minimised), sorted
    by the first axis. Rows with a missing value are left out."""
    import pandas as pd
    sub = df[list(axes)].apply(pd.to_numeric, errors="coerce").dropna()
    if sub.empty:
        return []
    v = sub.to_numpy(dtype=float)
    keep = []
    for i in range(len(v)):
        le = (v <= v[i]).all(axis=1)
        lt = (v < v[i]).any(axis=1)
        dominated = (le & lt).any()
        duplicate = (v[:i] == v[i]).all(axis=1).any()
        if not dominated and not duplicate:
            keep.append(sub.index[i])
    return sorted(keep, key=lambda i: tuple(sub.loc[i]))

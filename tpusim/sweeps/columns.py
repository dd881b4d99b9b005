"""The parent's store of finished sweep points: records kept by column, the frame built from it.

Workers return one dict per point; keeping those dicts until the end cost ~4.5 KiB per point in
the parent. Here each batch of records becomes one array per column instead (8 bytes a value
where a batch's column is all floats, all ints or all bools; a list otherwise), and the results
frame is built column by column, in plan order, with the same columns, order and dtypes as a
frame built from the records one row at a time. The workload label and swept values come from
the plan and are not stored per point at all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .executors import _plain
from ..sweep_metrics import DERIVED

if TYPE_CHECKING:
    import pandas as pd

    from .plan import Plan

_MISSING = object()   # a column a record does not have (None is a value: "no number")
# Derived per-point metrics (perf/area, perf/W) are recomputed from the frame, never stored.
_SKIP = ("index", "key", "_workload", "_values", *DERIVED)
_TYPED = {float: np.float64, int: np.int64, bool: np.bool_}


def _packed(col: list) -> Any:
    """``col`` as a numpy array when every value has one plain type, else the list itself."""
    kind = type(col[0]) if col else None
    dtype = _TYPED.get(kind)   # exact types: a bool is not an int, a numpy scalar was unboxed
    if dtype is None or any(type(v) is not kind for v in col):
        return col
    try:
        return np.array(col, dtype=dtype)
    except OverflowError:      # an int beyond 64 bits: keep it as Python has it
        return col


class Columns:
    """Finished records by column; :meth:`frame` is one row per point in plan order."""

    def __init__(self, plan: "Plan"):
        self.plan = plan
        self.lead = {"workload", *plan.columns}      # come from the plan, not the record
        # One entry per batch: (plan indices, columns, column -> (plan index, place) first
        # seen). A single append, so a Ctrl-C mid-batch leaves the store whole.
        self.batches: list[tuple[np.ndarray, dict[str, Any], dict[str, tuple[int, int]]]] = []

    def __len__(self) -> int:
        return len({int(i) for ix, _, _ in self.batches for i in ix})

    def add(self, records: list[dict[str, Any]]) -> None:
        cols: dict[str, list] = {}
        first: dict[str, tuple[int, int]] = {}
        idx = []
        for j, rec in enumerate(records):
            i = rec["index"]
            idx.append(i)
            for place, (k, v) in enumerate(rec.items()):
                if k in _SKIP or k in self.lead:
                    continue
                col = cols.get(k)
                if col is None:
                    col = cols[k] = [_MISSING] * j
                if k in ("status", "error"):
                    col.append(v)
                    continue
                if k not in first or (i, place) < first[k]:
                    first[k] = (i, place)
                col.append(_plain(v))
            for col in cols.values():
                if len(col) <= j:
                    col.append(_MISSING)
        packed = {k: _packed(v) for k, v in cols.items()}
        self.batches.append((np.array(idx, dtype=np.int64), packed, first))

    def _column(self, name: str, order: np.ndarray, fill: Any, consume: bool = False) -> Any:
        parts = [b.pop(name, None) if consume else b.get(name) for _, b, _ in self.batches]
        sizes = [len(ix) for ix, _, _ in self.batches]
        if all(isinstance(p, np.ndarray) for p in parts) and len({p.dtype for p in parts}) == 1:
            return np.concatenate(parts)[order]
        flat: list = []
        for p, n in zip(parts, sizes):
            if p is None:
                flat.extend([fill] * n)
            else:
                flat.extend(p.tolist() if isinstance(p, np.ndarray) else
                            [fill if v is _MISSING else v for v in p])
        return [flat[o] for o in order]

    def frame(self, consume: bool = False) -> "pd.DataFrame":
        """One row per finished point, in plan order: workload, swept values, summary fields,
        ``config`` (the base chip's name where a record has none), status, error, key.
        ``consume`` empties the store column by column as the frame is built (the last frame
        of a sweep: the parent's peak is then about one frame, not two)."""
        import pandas as pd
        plan = self.plan
        allidx = (np.concatenate([ix for ix, _, _ in self.batches]) if self.batches
                  else np.zeros(0, np.int64))
        # A re-finished point (a retried failure) keeps its latest record, as a dict would.
        _, from_end = np.unique(allidx[::-1], return_index=True)   # by point index
        order = (len(allidx) - 1 - from_end).astype(np.int64)
        pidx = allidx[order]
        labels = np.empty(len(plan.labels), dtype=object)
        labels[:] = list(plan.labels)
        data: dict[str, Any] = {"workload": labels[plan.points.workloads(pidx)].tolist()}
        for c in plan.columns:
            data[c] = plan.points.values(c, pidx)
        seen: dict[str, tuple[int, int]] = {}
        for _, _, first in self.batches:
            for k, at in first.items():
                if k not in seen or at < seen[k]:
                    seen[k] = at
        extra = sorted(seen, key=seen.__getitem__)
        data["config"] = self._column("config", order, plan.base.name, consume)
        for k in extra:
            if k != "config":
                data[k] = self._column(k, order, None, consume)
        data["status"] = self._column("status", order, None, consume)
        data["error"] = self._column("error", order, None, consume)
        data["key"] = plan.points.keys(pidx)
        cols = ["workload", *plan.columns, "config", *[k for k in extra if k != "config"],
                "status", "error", "key"]
        # the columns were made for this frame: no copy of them (copy=False)
        return pd.DataFrame(data, columns=cols, copy=False)

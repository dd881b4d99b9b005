"""One row of the fidelity table: a predicted number next to a measured one, its error, and
which data fitted which parameter (``fitted_on``). Shared by every section of ``tpusim validate``
(:mod:`tpusim.fidelity`, :mod:`tpusim.pod.fidelity`).
"""
from __future__ import annotations

from typing import Any

COLUMNS = ("check", "case", "metric", "unit", "predicted", "measured", "error", "error_kind",
           "fitted_on", "status", "note")


def check_row(**kw: Any) -> dict[str, Any]:
    """A row with every column; ``error`` is predicted/measured - 1 (or the difference when
    ``error_kind`` is ``absolute``) for rows whose status is ``ok``."""
    row = {c: None for c in COLUMNS}
    row.update(kw)
    p, m = row["predicted"], row["measured"]
    if row["error"] is None and p is not None and m is not None and row["status"] == "ok":
        if row["error_kind"] == "absolute":
            row["error"] = p - m
        elif m:
            row["error_kind"] = "relative"
            row["error"] = p / m - 1
    return row

"""One row of the fidelity table: a predicted number next to a measured one, its error, and
which data fitted which parameter (``fitted_on``). Shared by every section of ``tpusim validate``
(:mod:`tpusim.fidelity`, :mod:`tpusim.pod.fidelity`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = ("check", "case", "metric", "unit", "predicted", "measured", "error", "error_kind",
           "fitted_on", "status", "note")


def check_row(**kw: Any) -> dict[str, Any]:
    """A row with every column; ``error`` is predicted/measured - 1 (or the difference when
    ``error_kind`` is ``absolute``) for rows whose status is ``ok`` or ``in-sample``."""
    row = {c: None for c in COLUMNS}
    row.update(kw)
    p, m = row["predicted"], row["measured"]
    if row["error"] is None and p is not None and m is not None \
            and row["status"] in ("ok", "in-sample"):
        if row["error_kind"] == "absolute":
            row["error"] = p - m
        elif m:
            row["error_kind"] = "relative"
            row["error"] = p / m - 1
    return row


def skipped_row(check: str, case: str, metric: str, unit: str, measured: float | None,
                missing: str, fitted_on: str) -> dict[str, Any]:
    """A check whose input file is missing: a row that says which."""
    return check_row(check=check, case=case, metric=metric, unit=unit, measured=measured,
                     fitted_on=fitted_on, status=f"skipped: missing {missing}")


def shipped_name(path: Path) -> str:
    """A shipped file by its repository name (``workloads/...``, ``configs/...``), wherever the
    package is installed; any other path as given."""
    from .config import CONFIG_DIR
    from .importers import WORKLOAD_DIR
    for root, name in ((WORKLOAD_DIR, "workloads"), (CONFIG_DIR, "configs")):
        try:
            return f"{name}/{path.resolve().relative_to(root.resolve()).as_posix()}"
        except ValueError:
            pass
    return str(path)

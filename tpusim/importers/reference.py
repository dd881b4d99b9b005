"""Reference points to overlay on a roofline chart: a CSV of ``name,ops_per_byte,tops`` (for
example a paper's measured workloads). ``#`` lines are comments; both numbers must be > 0.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def _header(path: str | Path) -> tuple[list[str], int]:
    """The first line that is not a comment or blank, split into column names, and its number."""
    import csv
    from .._input import read_text
    for no, line in enumerate(read_text(path, "reference CSV").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            return [c.strip() for c in next(csv.reader([line]))], no
    raise InputError(str(path), None, message="no header line; columns needed: "
                     "name,ops_per_byte,tops")


def read_reference(path: str | Path):
    """The points as a DataFrame with columns ``name, ops_per_byte, tops``."""
    import pandas as pd

    try:
        df = pd.read_csv(path, comment="#")
    except Exception as exc:  # pandas raises several parser error types
        raise InputError(str(path), None, message=f"not a CSV ({exc})") from None
    need = ["name", "ops_per_byte", "tops"]
    header, lineno = _header(path)
    from .._input import check_unique_header
    check_unique_header(header, str(path), lineno)
    unknown = [c for c in header if c not in need]
    if unknown:
        raise InputError(str(path), f"line {lineno}, column {unknown[0]!r}",
                         message="unknown column; allowed: " + ", ".join(need))
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(str(path), "header", ",".join(map(str, df.columns)),
                         "columns needed: name,ops_per_byte,tops")
    for col in need[1:]:
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = df.index[~(vals > 0)]
        if len(bad):
            raise InputError(str(path), f"line {int(bad[0]) + 2}, column {col}",
                             df[col].iloc[bad[0]], "a number > 0")
        df[col] = vals
    return df[need]

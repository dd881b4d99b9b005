"""tpusim's own trace CSV: one row per layer, columns as in SPEC.md (``TRACE_COLUMNS``).

Lines starting with ``#`` are comments (a shipped trace says there where its shapes come from).
Empty cells mean "does not apply". Unknown columns are an error, never ignored.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from .._input import check_unique_header, csv_rows, read_text, suggest
from .._io import atomic_write_text, safe_cell
from ..errors import InputError
from ..workload import TRACE_COLUMNS, Layer, Workload, check_first_launches, make_layer


def _data_lines(text: str) -> tuple[list[str], list[int], list[str]]:
    """Non-comment, non-blank lines with their 1-based line numbers, and the comments."""
    lines, numbers, notes = [], [], []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            notes.append(s.lstrip("#").strip())
            continue
        lines.append(line)
        numbers.append(i)
    return lines, numbers, notes


def read_trace_rows(path: str | Path) -> tuple[list[tuple[dict[str, str], int]], list[str]]:
    """The rows of a trace as (column -> cell text, non-empty cells only; line number), and
    its comments. Checks the header, not the rows (:func:`read_trace` builds the layers)."""
    path = Path(path)
    src = str(path)
    lines, numbers, notes = _data_lines(read_text(path, "CSV file"))
    if not lines:
        raise InputError(src, None, message="empty trace: expected a header line with name,op,...")
    rows = csv_rows(lines, numbers, src)
    header = [h.strip() for h in rows[0]]
    while header and header[-1] == "":
        header.pop()
    for col in header:
        if col not in TRACE_COLUMNS:
            raise InputError(src, f"line {numbers[0]}, column {col!r}",
                             message=f"unknown column{suggest(col, TRACE_COLUMNS)}; allowed "
                             "columns: " + ", ".join(TRACE_COLUMNS))
    check_unique_header(header, src, numbers[0])
    for col in ("name", "op"):
        if col not in header:
            raise InputError(src, f"line {numbers[0]}", message=f"required column {col!r} missing")
    out = []
    for cells, lineno in zip(rows[1:], numbers[1:]):
        extra = [c for c in cells[len(header):] if c.strip()]
        if extra:
            raise InputError(src, f"line {lineno}", extra[0],
                             f"more cells than the {len(header)} header columns")
        out.append(({h: c.strip() for h, c in zip(header, cells) if c.strip() != ""}, lineno))
    if not out:
        raise InputError(src, None, message="trace has a header but no layer rows")
    return out, notes


def read_trace(path: str | Path) -> Workload:
    path = Path(path)
    rows, notes = read_trace_rows(path)
    layers = [make_layer(row, str(path), lineno) for row, lineno in rows]
    check_first_launches(layers, str(path))
    return Workload(name=path.stem, layers=tuple(layers), source=str(path), notes=tuple(notes))


def rows_to_csv(rows: Iterable[dict[str, Any]], comments: Iterable[str] = ()) -> str:
    """Trace rows as CSV text, columns in canonical order, only those any row uses."""
    rows = list(rows)
    used = [c for c in TRACE_COLUMNS if any(r.get(c) not in (None, "") for r in rows)]
    buf = io.StringIO()
    for line in _comment_lines(comments):
        buf.write(f"# {line}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(used)
    for r in rows:
        w.writerow(["" if r.get(c) is None else _cell(r[c]) for c in used])
    return buf.getvalue()


def _comment_lines(comments: Iterable[str]) -> list[str]:
    """One entry per ``#`` line written: a comment with a newline in it is several comment
    lines (a bare second line would be read back as a data row)."""
    return [line for c in comments for line in (str(c).splitlines() or [""])]


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return safe_cell(v) if isinstance(v, str) else str(v)


def write_trace(rows: Iterable[dict[str, Any]], path: str | Path,
                comments: Iterable[str] = ()) -> Path:
    """Validate every row (by building its layer), then write the CSV atomically."""
    rows, comments = list(rows), list(comments)
    first = len(_comment_lines(comments)) + 2     # the line the first row gets in the file,
    layers = [make_layer({k: v for k, v in r.items() if v not in (None, "")}, str(path), i)
              for i, r in enumerate(rows, start=first)]   # after the comments and the header
    check_first_launches(layers, str(path))
    atomic_write_text(path, rows_to_csv(rows, comments))
    return Path(path)

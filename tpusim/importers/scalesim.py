"""SCALE-Sim topology CSVs (conv form and GEMM form), as SCALE-Sim 3.0.0 reads them.

Conv form: ``name, ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filter, stride,``; GEMM
form (header ``Layer, M, N, K``): ifmap M x K times filter K x N. Rows end with a comma; blank and
all-empty rows are skipped; columns past the eighth (SCALE-Sim's own notes) are ignored.
SCALE-Sim computes E = ceil((H - R + s) / s) output rows (a partial last window, no padding): the
importer expresses that as the smallest symmetric padding that gives the same E, so MACs and GEMM
shapes equal SCALE-Sim's. A layer whose name contains ``DP`` is run by SCALE-Sim as ``channels``
single-channel convs with all ``num_filter`` filters: it becomes one row with ``count=channels``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .._input import check_size, read_text
from ..errors import InputError
from ..workload import Workload, make_layer

_CONV_FIELDS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filter", "stride")


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, line) of the file, decoded (a UTF-8 BOM is dropped)."""
    return list(enumerate(read_text(path, "CSV file").splitlines(), start=1))


def _cells(line: str, src: str, lineno: int) -> list[str]:
    try:
        return next(csv.reader([line]), [])
    except csv.Error as exc:
        raise InputError(src, f"line {lineno}", message=f"not a CSV line ({exc})") from None


def _header_of(lines: list[tuple[int, str]], src: str) -> list[str]:
    for lineno, line in lines:
        if line.strip():
            return [c.strip().lower() for c in _cells(line, src, lineno)]
    return []


def _header(path: Path) -> list[str]:
    return _header_of(_lines(path), str(path))


def is_topology(path: str | Path) -> bool:
    """True when the CSV's header is SCALE-Sim's (first cell 'Layer name' or 'Layer'/'L')."""
    try:
        head = _header(Path(path))
    except InputError:   # not text: the trace reader says why
        return False
    return bool(head) and head[0] in ("layer name", "layer", "l") and "op" not in head


def _is_gemm_header(head: list[str]) -> bool:
    return len(head) >= 4 and head[1:4] == ["m", "n", "k"]


def _same_e_padding(size: int, kernel: int, stride: int) -> int:
    """Symmetric padding whose floor-based output size equals SCALE-Sim's ceil((H-R+s)/s)."""
    extra = (stride - (size - kernel) % stride) % stride
    return -(-extra // 2)


def topology_rows(path: str | Path, gemm: bool | None = None) -> list[dict[str, Any]]:
    """The topology as tpusim trace rows (dicts of trace columns)."""
    path = Path(path)
    src = str(path)
    lines = _lines(path)
    head = _header_of(lines, src)
    if gemm is None:
        gemm = _is_gemm_header(head)
    rows: list[dict[str, Any]] = []
    first = True
    for lineno, line in lines:
        if not line.strip():
            continue
        if first:
            first = False
            continue
        cells = [c.strip() for c in _cells(line, src, lineno)]
        if not any(cells):
            continue
        need = 4 if gemm else 8
        vals = cells[1:need]
        if len(cells) < need or any(v == "" for v in vals):
            raise InputError(src, f"line {lineno}", line.strip(),
                             f"a {'GEMM' if gemm else 'conv'} topology row needs {need} cells: "
                             + ("name, M, N, K" if gemm else "name, " + ", ".join(_CONV_FIELDS)))
        nums = []
        fields = ("M", "N", "K") if gemm else _CONV_FIELDS
        for f, v in zip(fields, vals):
            try:
                x = int(v)
            except ValueError:
                raise InputError(src, f"line {lineno}, column {f}", v,
                                 "expected a positive integer") from None
            if x <= 0:
                raise InputError(src, f"line {lineno}, column {f}", x, "must be > 0")
            nums.append(check_size(x, src, f"line {lineno}, column {f}"))
        name = cells[0] or f"layer{len(rows)}"
        if gemm:
            m, n, k = nums
            rows.append({"name": name, "op": "matmul", "m": m, "k": k, "n": n,
                         "weight_dtype": "int8", "act_dtype": "int8"})
            continue
        h, w, r, s, c, nf, st = nums
        if r > h or s > w:
            raise InputError(src, f"line {lineno}", f"{r}x{s} filter on {h}x{w} ifmap",
                             "the filter must fit the ifmap (SCALE-Sim does not pad)")
        row = {"name": name, "op": "conv2d", "batch": 1, "in_h": h, "in_w": w, "in_c": c,
               "out_c": nf, "kernel_h": r, "kernel_w": s, "stride": st,
               "pad_h": _same_e_padding(h, r, st), "pad_w": _same_e_padding(w, s, st),
               "weight_dtype": "int8", "act_dtype": "int8"}
        if "DP" in name:
            row.update(in_c=1, count=c)
        rows.append(row)
    if not rows:
        raise InputError(src, None, message="topology has no layer rows")
    return rows


def load_topology(path: str | Path, gemm: bool | None = None) -> Workload:
    rows = topology_rows(path, gemm)
    src = str(path)
    layers = tuple(make_layer({k: v for k, v in r.items() if v is not None}, src, i)
                   for i, r in enumerate(rows, start=2))
    return Workload(name=Path(path).stem, layers=layers, source=src,
                    notes=("SCALE-Sim topology",))

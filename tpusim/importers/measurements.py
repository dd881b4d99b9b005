"""Measured kernel latencies: the CSV a calibration (and ``tpusim validate``) fits and checks.

One row per kernel: its shape as in a trace (``m,k,n``, or any columns of a trace row; a vector
op as ``op`` and ``elements`` or ``shape``, dimensions joined by ``x``), optionally ``dtype`` (the
format it ran in), the measured ``latency_us`` and optionally ``latency_std_us``; ``n_repeats``
and ``source_path`` are read and ignored. ``#`` lines are comments. Every value is checked on reading; a bad cell is
an :class:`~tpusim.errors.InputError` naming the file, line and column.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .._input import check_unique_header, csv_rows, decode
from ..errors import InputError
from ..formats import get_format
from ..workload import TRACE_COLUMNS, Layer, make_layer

MEASUREMENT_COLUMNS = ("latency_us", "latency_std_us", "dtype", "shape", "n_repeats",
                       "source_path")
# Informational columns: read, checked where they must agree, never simulated.
_INFO = ("n_repeats", "source_path")
# A measurement file's activation "linear" is the identity function, not a matmul (a row with
# elements and no m, k).
_VECTOR_ALIASES = {"linear": "identity"}


def _lane_axis(op: str, shape: str) -> int:
    """The axis a vector op's rows run along (``n``): a reduction's last axis (the one it
    reduces); for an elementwise op the longest axis (assumption: the compiler lays the longest
    axis along the lanes; on TPU v4 the extra time of 3-D activations follows elements / longest
    axis, not the last axis)."""
    from ..timing.vector import LAUNCHES
    dims = [int(d) for d in shape.lower().split("x")]
    return dims[-1] if op.strip().lower() in LAUNCHES else max(dims)


def _shape_elements(src: str, where: str, text: str) -> int:
    """The element count of a ``shape`` cell (dimensions joined by ``x``)."""
    try:
        dims = [int(d) for d in text.lower().split("x")]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        raise InputError(src, where, text, "must be positive dimensions joined by x, e.g. 2x128")
    return math.prod(dims)


@dataclass(frozen=True)
class Measurement:
    """One measured kernel: its layer record, format and latency (µs) and the line it came from."""

    name: str
    layer: Layer
    dtype: str | None
    latency_us: float
    std_us: float | None
    line: int
    key: str = ""     # the kernel as read (layer, shape, dtype): tpusim.fit_kernels


@dataclass(frozen=True)
class Measurements:
    """A measurement file: its path, its SHA-256 (recorded in calibrated configs) and rows."""

    source: str
    sha256: str
    rows: tuple[Measurement, ...]

    @property
    def latency_us(self) -> np.ndarray:
        return np.array([r.latency_us for r in self.rows], dtype=float)

    def __len__(self) -> int:
        return len(self.rows)


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
    text = decode(data, src, "measurement CSV")   # UTF-8; a BOM (Excel) is dropped
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
        for col in _INFO:
            row.pop(col, None)
        shape = row.pop("shape", "")
        if shape:
            n_el = _shape_elements(src, f"line {lineno}, column shape", shape)
            if row.get("elements", "") == "":
                row["elements"] = str(n_el)
            elif row["elements"] != str(n_el):
                raise InputError(src, f"line {lineno}, column elements", row["elements"],
                                 f"must be the product of shape {shape} ({n_el})")
            if row.get("n", "") == "" and not {"m", "k"} & {c for c, v in row.items() if v}:
                row["n"] = str(_lane_axis(row.get("op", ""), shape))
        trace = {k: v for k, v in row.items() if v != ""}
        if "elements" in trace and not {"m", "k"} & set(trace):
            trace["op"] = _VECTOR_ALIASES.get(trace.get("op", ""), trace.get("op", ""))
        trace.setdefault("op", "matmul")
        trace.setdefault("name", f"kernel{len(out) + 1}")
        layer = make_layer(trace, src, lineno)
        if layer.count != 1:
            raise InputError(src, f"line {lineno}, column count", layer.count,
                             "a measurement is one kernel: count must be 1")
        dims = "x".join(str(int(float(d))) for d in shape.split("x")) if shape else ""
        key = f"{replace(layer, name='', line=0)!r};shape={dims};dtype={dtype}"
        out.append(Measurement(layer.name, layer, dtype, lat, std, lineno, key))
    if not out:
        raise InputError(src, None, message="no measurement rows after the header")
    return Measurements(src, hashlib.sha256(data).hexdigest(), tuple(out))

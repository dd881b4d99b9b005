"""Importers: the only code that knows file formats. Each returns a :class:`tpusim.Workload`.

:func:`load_workload` picks the importer by what a path holds: an ``.onnx`` model
(:mod:`.onnx`, imported only when used), a SCALE-Sim topology (:mod:`.scalesim`) or a trace CSV
(:mod:`.trace_csv`); a bare name is a trace shipped in ``workloads/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .._data import zoo_dir
from .._input import suggest
from ..errors import InputError
from ..workload import Workload

WORKLOAD_DIR = zoo_dir()   # workloads/ in the repository, tpusim/zoo/ in the wheel


def find_workload(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix.lower() in (".csv", ".onnx") or p.exists():
        if p.is_dir():
            raise InputError(str(p), None, message="is a directory, not a workload file")
        if not p.is_file():
            raise InputError(str(p), None, message="workload file not found")
        return p
    hits = sorted(WORKLOAD_DIR.rglob(f"{name_or_path}.csv"))
    if hits:
        return hits[0]
    names = sorted({h.stem for h in WORKLOAD_DIR.rglob("*.csv")})
    raise InputError(str(name_or_path), "workload", message="not a file and not a shipped "
                     f"workload{suggest(name_or_path, names)}; shipped: " + ", ".join(names))


def load_workload(name_or_path: str | Path | Workload, **kwargs: Any) -> Workload:
    """Load a trace CSV, a SCALE-Sim topology CSV, an ONNX model or a shipped workload name.

    Extra keyword arguments go to the importer (``input_shapes=`` for ONNX, ``gemm=`` for
    SCALE-Sim topologies).
    """
    if isinstance(name_or_path, Workload):
        return name_or_path
    path = find_workload(name_or_path)
    if path.suffix.lower() == ".onnx":
        from . import onnx as onnx_importer  # heavy: import lazily
        return onnx_importer.load_onnx_workload(path, **kwargs)
    from . import scalesim, trace_csv
    if "input_shapes" in kwargs:   # an option that would silently do nothing
        raise InputError(str(path), "--input-shape", message="applies to .onnx models only; a "
                         "CSV workload's shapes are in its rows")
    if scalesim.is_topology(path):
        return scalesim.load_topology(path, **kwargs)
    if kwargs:
        raise InputError(str(path), None, message="a trace CSV takes no importer options ("
                         + ", ".join(sorted(kwargs)) + ")")
    return trace_csv.read_trace(path)

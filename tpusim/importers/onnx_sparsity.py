"""Weight sparsity read from an ONNX initialiser: the fraction of non-zeros and an N:M pattern.

The pattern is checked along the reduction dimension, where sparse arrays group it: a conv's
input channels (weight axis 1 of O x I x kh x kw), a Gemm's k (axis 1 with transB, else 0) and a
MatMul's second-to-last axis. Patterns tried, first that holds: 2:4, 1:4, 4:8 (2:4 first, as the
pattern sparse tensor cores run; a 1:4 tensor is also 2:4). A tensor whose data is not in the
file (external data not loaded) gives nothing.
"""
from __future__ import annotations

from typing import Any

PATTERNS = ((2, 4), (1, 4), (4, 8))


def _holds(w: Any, axis: int, n: int, m: int) -> bool:
    import numpy as np
    x = np.moveaxis(w, axis, -1)
    if x.shape[-1] % m or x.shape[-1] == 0:
        return False
    groups = (x.reshape(*x.shape[:-1], x.shape[-1] // m, m) != 0).sum(axis=-1)
    return bool((groups <= n).all())


def sparsity_by_axis(tensor: Any) -> dict[int, dict[str, Any]]:
    """Per reduction axis (non-negative), ``{"density": d}`` plus ``{"sparsity": "N:M"}`` where
    one holds, for a tensor with zeros; ``{}`` for a dense, all-zero or unreadable one."""
    try:
        from onnx import numpy_helper
        w = numpy_helper.to_array(tensor)
    except Exception:   # external data or an odd dtype: no sparsity known
        return {}
    if w.size == 0 or w.ndim < 2:
        return {}
    nz = int((w != 0).sum())
    if nz in (0, w.size):
        return {}
    out: dict[int, dict[str, Any]] = {}
    for axis in range(w.ndim):
        got: dict[str, Any] = {"density": nz / w.size}
        for n, m in PATTERNS:
            if _holds(w, axis, n, m):
                got["sparsity"] = f"{n}:{m}"
                break
        out[axis] = got
    return out

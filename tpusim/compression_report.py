"""Per-row sparsity report: a sparse run next to the same trace run dense.

:func:`with_sparse_report` adds to the sparse run's layer table (only for a trace with a
``sparsity`` or ``density`` column) what each row's weights are and what they bought:
``density``, ``sparsity``, ``sparse_skipped`` (what the array skipped), the stored weight bytes
split into values and index (``weight_value_bytes``, ``weight_index_bytes``, per instance),
``sparse_speedup`` (dense cycles / sparse cycles) and ``sparse_why`` (compute saved vs memory
saved vs overhead, in words). The table's ``k`` and ``macs`` are what the array runs (a 2:4 row
on a sparse array: half the dense k). The summary gains ``dense_latency_s`` and
``sparse_speedup``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .compression import DEQUANT_SUFFIX, plan
from .config import ChipConfig
from .formats import get_format
from .workload import Workload

if TYPE_CHECKING:
    import pandas as pd

SPARSE_COLUMNS = ("density", "sparsity", "sparse_skipped", "weight_value_bytes",
                  "weight_index_bytes", "sparse_speedup", "sparse_why")


def _why(p: Any, row: dict, dense_row: dict, speedup: float) -> str:
    parts = []
    if p is None:
        return "dense weights"
    if p.skipped:
        parts.append(f"{p.skipped} zeros skipped on the array: k {p.k_dense} -> {p.k_run}, "
                     f"MACs x{dense_row['macs'] / max(row['macs'], 1):.2f} fewer")
    elif p.density < 1:
        parts.append("array runs every MAC (it does not skip this sparsity)")
    if p.index:
        parts.append(f"weights stored with {p.index}: {p.stored_bytes / p.dense_weight_bytes:.0%}"
                     f" of dense bytes ({p.index_bytes / max(p.stored_bytes, 1e-30):.0%} index)")
    elif p.density < 1:
        parts.append("stored dense (a bitmap would be larger)")
    if p.packed_bits:
        parts.append(f"weight values packed at {p.packed_bits} bits"
                     + (", dequantized on the vector unit" if p.dequantize_ops else ""))
    dh = dense_row["hbm_read_bytes"] + dense_row["hbm_write_bytes"]
    sh = row["hbm_read_bytes"] + row["hbm_write_bytes"]
    if dh > 0 and sh != dh:
        parts.append(f"HBM bytes {sh / dh - 1:+.0%}")
    parts.append(f"{row['bound']}-bound")
    if speedup < 1:
        parts.append("slower than dense: the overhead outweighs the saving")
    return "; ".join(parts)


def _augment(wl: Workload, chip: ChipConfig, forced: str | None, sparse: "pd.DataFrame",
             dense: "pd.DataFrame") -> "pd.DataFrame":
    import numpy as np
    out = sparse.copy()
    cols: dict[str, list] = {c: [] for c in SPARSE_COLUMNS}
    layers = iter(wl.layers)
    last = None
    for (_, row), (_, drow) in zip(sparse.iterrows(), dense.iterrows()):
        if str(row["name"]).endswith(DEQUANT_SUFFIX) and row["op"] == "dequantize" \
                and row["fused"]:
            what = ("the previous row's packed KV cache" if last is not None and
                    str(row["name"]) == last + DEQUANT_SUFFIX else "the next row's packed weights")
            for c, v in zip(SPARSE_COLUMNS, (np.nan, "", "", np.nan, np.nan, np.nan,
                                             "dequantizes " + what)):
                cols[c].append(v)
            continue
        last = str(row["name"])
        layer = next(layers)
        p = plan(layer, chip, forced)
        speedup = drow["cycles"] / row["cycles"] if row["cycles"] > 0 else 1.0
        kind = layer.kind == "gemm"
        dens = (p.density if p else 1.0) if kind else np.nan
        cols["density"].append(dens)
        cols["sparsity"].append(layer.sparsity or "")
        cols["sparse_skipped"].append(p.skipped if p else "")
        cols["weight_value_bytes"].append(p.value_bytes if p else (
            layer.weight_elements * get_format(row["format"]).bytes_per_element if kind
            else np.nan))
        cols["weight_index_bytes"].append(p.index_bytes if p else (0.0 if kind else np.nan))
        cols["sparse_speedup"].append(speedup)
        cols["sparse_why"].append(_why(p, row, drow, speedup) if kind else "")
    for c in SPARSE_COLUMNS:
        out[c] = cols[c]
    return out


def with_sparse_report(wl: Workload, chip: ChipConfig, forced: str | None, sparse: Any,
                       dense: Any) -> Any:
    """``sparse`` (a :class:`tpusim.simulator.Result`) with the sparsity columns and summary;
    ``forced``: the format the run was forced to, if any."""
    forced = chip.check_format(forced, "format") if forced else None
    table = (lambda s=sparse, d=dense: _augment(wl, chip, forced, s.layers, d.layers))
    res = type(sparse)(config=sparse.config, workload=sparse.workload, summary=sparse.summary,
                       table=table)
    lat, dlat = sparse.summary["latency_s"], dense.summary["latency_s"]
    res.summary["dense_latency_s"] = dlat
    res.summary["sparse_speedup"] = dlat / lat if lat > 0 else 1.0
    return res

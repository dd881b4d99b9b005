"""Compressed weights on a chip: the one lowering both simulation paths run before timing.

A trace row may say its weights are sparse (``sparsity`` N:M, ``density`` d) or stored in a
narrower format than its datapath (``weight_dtype`` int4 under bf16 activations, binary under
int8). :func:`lower` turns such a row into the plain GEMM the array actually runs, so the per-layer
reference (:mod:`tpusim.simulator`) and the columnar core (:mod:`tpusim.columnar`) time the same
thing and need no sparsity logic of their own:

* **Reduction depth** ``k``: an array that supports the row's N:M pattern
  (``array.sparsity``) skips the zero MACs: k becomes N of every M (:func:`sparsity.kept_reduction`).
  An array that supports ``unstructured`` skips zeros up to its fullest column: k becomes the
  expected maximum non-zeros of a column over the array's columns, per ``array.rows``-deep tile
  (:func:`sparsity.expected_max_binomial`). Any other array runs every MAC (zeros included).
* **Stored weight bytes** (HBM traffic, on-chip weight cache): the row's ``weight_elements``
  becomes the stored bytes over the datapath format's bytes per element (a float). Kept values
  are stored at the weight format's width (packed: int4 0.5 B, binary 1/8 B); N:M adds
  ceil(log2 M) metadata bits per kept value, unstructured a 1-bit-per-position bitmap, used only
  when it is smaller than the dense tensor. Assumption: weights enter the weight buffer as
  stored (its writes are the stored bytes, as read from HBM) and are decompressed (zeros filled
  in or dropped by the array's metadata) and widened or dequantized as the array reads them, so
  the buffer's reads, and the tiles it must hold, count at the datapath width.
* **Dequantize**: integer or binary weights under a float datapath (W4A16) are dequantized on the
  vector unit, 2 element ops per stored value (scale and convert, ``VECTOR_OPS["dequantize"]``),
  as a fused vector row ``<name>.dequantize`` before the GEMM: it moves no bytes of its own and
  shows only where it exceeds the previous row's time (assumption: the next layer's weights are
  dequantized while the previous layer runs, as they are prefetched). Narrower integer or binary
  weights under a wider integer datapath (W4A8, binary + int8) are sign-extended on the way into
  the array (assumption: free).

A dynamic second operand (attention's K and V read from a KV cache stored in int8 under a bf16
datapath) gets the same stored bytes and never sparsity; the attention kernel dequantizes each
block it has read while the next streams in, so its dequantize row (the same 2 ops per stored
value) comes after the GEMM, fused into it: only the part longer than the GEMM's time shows
(at 2 ops per 1-byte value it stays under the stream on v5e at its fitted 0.45 HBM efficiency,
0.74 of its 1,536 G ops/s; on v6e's nominal 1,638 GB/s it does not). Assumption: it and a
softmax fused under the same QK^T GEMM each hide under that GEMM alone (their sharing of the
vector unit is not modelled). Float caches narrower than the datapath (fp8 under bf16) convert
on the way in, free, as packed float weights do (assumption).

A forced format (``format=``, ``--format``) is the format of every operand, so under it only
sparsity changes a row. Rows without any of this are returned as they are (the same objects), so a trace without
compression, or with density 1.0, gives byte-identical results.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .config import ChipConfig
from .formats import Format, get_format
from .sparsity import (bitmap_bits, expected_max_binomial, kept_reduction,
                       metadata_bits_per_kept, parse_nm)
from .workload import VECTOR_OPS, Layer, Workload

DEQUANT_SUFFIX = ".dequantize"


@dataclass(frozen=True)
class Plan:
    """What compression does to one GEMM row on one chip (bytes per instance)."""

    k_dense: int
    k_run: int                   # reduction depth the array runs
    density: float               # fraction of non-zero weights
    dense_weight_bytes: float    # all weights at the datapath width
    value_bytes: float           # the stored (kept) values, packed at the weight format's width
    index_bytes: float           # N:M metadata or bitmap
    index: str                   # "", "N:M metadata", "bitmap"
    skipped: str                 # "", "N:M", "unstructured": what the array skips
    dequantize_ops: float        # vector element ops to dequantize the stored values
    packed_bits: int = 0         # storage bits of a weight narrower than the datapath, else 0

    @property
    def stored_bytes(self) -> float:
        return self.value_bytes + self.index_bytes


def has_sparsity(wl: Workload) -> bool:
    return any(l.sparsity or l.density is not None for l in wl.layers)


def _datapath(layer: Layer, chip: ChipConfig, forced: str | None) -> Format | None:
    name = forced or layer.format or chip.default_format
    return get_format(name) if name in chip.formats or forced else None


def plan(layer: Layer, chip: ChipConfig, forced: str | None = None) -> Plan | None:
    """The compression plan of ``layer`` on ``chip``, or None when nothing changes."""
    if layer.kind != "gemm":
        return None
    # a dynamic second operand (attention's K/V cache) can be stored narrower, never pruned
    static = layer.weights == "static"
    f = _datapath(layer, chip, forced)
    if f is None:   # a format the chip does not run: resolve_format reports it later
        return None
    # a forced format (--format) is every operand's format: the trace's dtypes no longer apply
    w = get_format(layer.weight_dtype) if layer.weight_dtype and not forced else f
    value_bits = min(w.bits, f.bits)
    packed = value_bits < f.bits
    if not static and not packed:
        return None
    d = layer.density if layer.density is not None and static else 1.0
    nm = parse_nm(layer.sparsity) if layer.sparsity and static else None
    if nm:   # a measured density (ONNX) may be below the pattern's bound
        d = min(d, nm[0] / nm[1])
    if not packed and d >= 1.0:
        return None
    e = float(layer.weight_elements)
    dense_bytes = e * f.bits / 8
    k_run, skipped, index = layer.k, "", ""
    value_bytes, index_bytes = e * value_bits / 8, 0.0
    if nm and layer.sparsity in chip.array.sparsity:
        k_run, skipped, index = kept_reduction(layer.k, *nm), "N:M", "N:M metadata"
        kept = e * k_run / layer.k
        value_bytes = kept * value_bits / 8
        index_bytes = kept * metadata_bits_per_kept(nm[1]) / 8
    elif d < 1.0:
        bitmap = bitmap_bits(e, d, value_bits) / 8
        if bitmap < value_bytes:
            value_bytes, index_bytes, index = e * d * value_bits / 8, e / 8, "bitmap"
        if "unstructured" in chip.array.sparsity and index == "bitmap":
            depth = min(layer.k, chip.array.rows)
            busiest = expected_max_binomial(depth, d, min(layer.n, chip.array.cols))
            k_run = min(layer.k, math.ceil(layer.k * busiest / depth))
            skipped = "unstructured"
    stored_values = value_bytes * 8 / value_bits
    deq = (VECTOR_OPS["dequantize"] * stored_values
           if packed and w.kind != "float" and f.kind == "float" else 0.0)
    return Plan(layer.k, k_run, d, dense_bytes, value_bytes, index_bytes, index, skipped, deq,
                value_bits if packed else 0)


def lower(wl: Workload, chip: ChipConfig, forced: str | None = None) -> Workload:
    """The workload the array runs (module docstring); ``wl`` itself when nothing changes."""
    if not any(l.sparsity or l.density is not None or (
            not forced and l.weight_dtype and l.act_dtype and l.weight_dtype != l.act_dtype)
            for l in wl.layers):
        return wl   # weights are narrower than the datapath only under other (trace) dtypes
    out: list[Layer] = []
    changed = False
    for layer in wl.layers:
        p = plan(layer, chip, forced)
        if p is None:
            out.append(layer)
            continue
        changed = True
        f = _datapath(layer, chip, forced)
        deq = [Layer(name=layer.name + DEQUANT_SUFFIX, op="dequantize", kind="vector",
                     count=layer.count, elements=math.ceil(p.dequantize_ops / 2),
                     ops_per_element=float(VECTOR_OPS["dequantize"]),
                     weight_dtype=f.name, act_dtype=f.name, fused=True,
                     line=layer.line)] if p.dequantize_ops else []
        # Lowered: explicit datapath dtypes and no sparsity left, so lowering it again is a no-op.
        gemm = dataclasses.replace(layer, k=p.k_run, weight_elements=p.stored_bytes * 8 / f.bits,
                                   sparsity=None, density=None, weight_dtype=f.name,
                                   act_dtype=f.name)
        # static weights: dequantized under the previous row; a KV cache: under its own GEMM
        out.extend(deq + [gemm] if layer.weights == "static" else [gemm] + deq)
    return dataclasses.replace(wl, layers=tuple(out)) if changed else wl


def dense(wl: Workload) -> Workload:
    """``wl`` with every weight dense (sparsity and density dropped), formats kept."""
    return dataclasses.replace(wl, layers=tuple(
        dataclasses.replace(l, sparsity=None, density=None) for l in wl.layers))

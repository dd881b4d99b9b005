"""Mapping a GEMM onto R x C systolic arrays, and the compute cycles that takes.

One parameterised model serves the three dataflows. Each names which GEMM dimensions lie on the
array's rows and columns (spatial, ``Sr`` and ``Sc``) and which streams through in time (``T``):

====  ==============  ==============  =========  ========================
 df   Sr (rows)        Sc (cols)       T          stationary operand
====  ==============  ==============  =========  ========================
 ws   k (reduction)    n (outputs)     m          weights
 os   m (outputs)      n (outputs)     k          output accumulators
 is   k (reduction)    m (inputs)      n          inputs
====  ==============  ==============  =========  ========================

The GEMM is cut into ``ceil(Sr/R) x ceil(Sc/C)`` folds (tiles of the stationary operand).

``scalesim`` reproduces SCALE-Sim v3: every fold pays its own fill and drain, folds run one after
another, ``cycles = folds x per_fold - 1`` with per-fold ``2R + C + T - 2`` (ws, is) or
``R + C + T - 2`` (os).

``pipelined`` is what a TPU does: the next fold's stationary tile shifts in (``L`` cycles, TPUv1:
256 for a 256x256 tile) while the current fold streams its ``T`` rows, so a fold costs
``max(T, L)``; fill and drain (``R + C - 2``) are paid once per layer, the first tile's shift once.
Small groups of a grouped or depthwise conv share a tile block-diagonally (:func:`group_packing`).
Several arrays share the work evenly at row granularity: the busiest array loads
``ceil(tiles / arrays)`` tiles and streams ``T x tiles / arrays`` rows in all (fewer tiles than
arrays: the stream is split). ``timing.issue_efficiency`` (< 1) stretches the stream for issue
slots the feed path leaves empty. ``timing.wave_cycles`` is a fixed cost per wave of output
tiles (:func:`output_waves`), paid with the drain: the latency of the DMA that brings a wave's
operands from HBM into VMEM and takes its results back, which streaming does not hide
(assumption: one exposed round trip per wave).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ChipConfig
from ..workload import Layer


@dataclass(frozen=True)
class ArrayTiming:
    """Compute-side timing of one layer instance on the chip's arrays (no memory stalls)."""

    compute_cycles: float      # busy time of the slowest array, fill/drain and shifts included
    fill_drain_cycles: float   # skew fill and drain paid (once, or once per fold for scalesim)
    weight_shift_cycles: float # stationary-tile loads not hidden behind streaming
    steps: int                 # folds (tiles) run by the busiest array
    stream_cycles: float       # cycles one fold streams its T rows
    load_cycles: float         # cycles to shift one stationary tile into the array
    arrays_used: int
    tiles: int                 # folds over all groups
    substeps: int = 1          # DMA blocks per fold: the stream moves in blocks of ~L rows


def fold_dims(m: int, k: int, n: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of an m x k x n GEMM for ``dataflow``."""
    if dataflow == "ws":
        return k, n, m
    if dataflow == "os":
        return m, n, k
    return k, m, n


def fold_shape(layer: Layer, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of one group's GEMM for ``dataflow``."""
    return fold_dims(layer.m * layer.shared_weights, layer.k, layer.n, dataflow)


def mapped_fraction(sr: int, sc: int, rows: int, cols: int) -> float:
    """Share of the rows x cols PEs the folds of an Sr x Sc stationary operand cover."""
    return sr * sc / (math.ceil(sr / rows) * rows * math.ceil(sc / cols) * cols)


def _stream_cycles(t: int, chip: ChipConfig, fmt: str) -> float:
    """Cycles to stream ``t`` rows: packed formats take several per cycle, emulated ones several
    passes."""
    return math.ceil(t / chip.native_rate(fmt))


def group_packing(layer: Layer, chip: ChipConfig) -> int:
    """Groups of a grouped/depthwise conv that share one stationary tile (pipelined model).

    Small groups are packed block-diagonally: under ws, ``p`` groups' k x n weight blocks sit on
    the tile's diagonal and the input row carries the ``p`` groups' patches side by side; under
    is, ``p`` groups' input patches stack on the rows and the weight stream visits each group's
    filters in turn. Output-stationary columns share one input row, so os cannot pack
    (assumption: the compiler packs as many whole groups as fit).
    """
    if layer.groups <= 1:
        return 1
    r, c = chip.array.rows, chip.array.cols
    if chip.array.dataflow == "ws" and layer.k <= r and layer.n <= c:
        return max(1, min(r // layer.k, c // layer.n, layer.groups))
    if chip.array.dataflow == "is" and layer.k <= r:
        return max(1, min(r // layer.k, layer.groups))
    return 1


def output_waves(layer: Layer, chip: ChipConfig, pack: int = 1) -> int:
    """Waves of output tiles: each array computes one rows x cols tile of the m x n output per
    wave, so ``ceil(tiles / arrays)`` waves (all groups' tiles dealt out together; ``pack``
    groups packed in one tile share their tiles, their outputs side by side along n)."""
    tiles = (math.ceil(layer.m * layer.shared_weights / chip.array.rows)
             * math.ceil(pack * layer.n / chip.array.cols) * math.ceil(layer.groups / pack))
    return math.ceil(tiles / chip.array.count)


def array_timing(layer: Layer, chip: ChipConfig, fmt: str) -> ArrayTiming:
    """Compute cycles of one instance of GEMM ``layer`` in ``fmt`` on the chip's arrays, with
    every operand on chip (memory stalls are added later, by :mod:`.overlap`).

    The GEMM folds into ceil(Sr / rows) x ceil(Sc / cols) stationary tiles per group, (Sr, Sc, T)
    being (k, n, m) under ``ws``, (m, n, k) under ``os`` and (k, m, n) under ``is``. With
    ``timing.model: scalesim`` every fold pays its own fill and drain as SCALE-Sim v3 counts
    them; with ``pipelined`` the next tile shifts in (``weight_load_cycles``, default rows)
    while the current one streams its T rows, so a fold costs max(stream, load) and fill/drain
    (rows + cols - 2) is paid once. Small groups share an array when several fit side by side.
    """
    r, c, arrays = chip.array.rows, chip.array.cols, chip.array.count
    sr, sc, t = fold_shape(layer, chip.array.dataflow)
    folds = math.ceil(sr / r) * math.ceil(sc / c)
    tiles = folds * layer.groups
    if chip.timing.model == "scalesim":
        per_fold_fixed = (r + c - 2) if chip.array.dataflow == "os" else (2 * r + c - 2)
        stream = _stream_cycles(t, chip, fmt)
        if layer.groups >= arrays:
            runs, steps = math.ceil(layer.groups / arrays), folds
        else:
            runs, steps = 1, math.ceil(folds / max(1, arrays // layer.groups))
        used = min(arrays, tiles)
        cycles = runs * (steps * (per_fold_fixed + stream) - 1)
        return ArrayTiming(compute_cycles=cycles, fill_drain_cycles=runs * steps * per_fold_fixed,
                           weight_shift_cycles=0.0, steps=runs * steps, stream_cycles=stream,
                           load_cycles=0.0, arrays_used=used, tiles=tiles)

    load = chip.timing.weight_load_cycles or r
    pack = group_packing(layer, chip)
    if pack > 1:
        sr, sc, t = ((pack * sr, pack * sc, t) if chip.array.dataflow == "ws"
                     else (pack * sr, sc, pack * t))
        folds = math.ceil(sr / r) * math.ceil(sc / c)
        tiles = folds * math.ceil(layer.groups / pack)
    # The arrays share the streamed rows of all tiles evenly, so none idles while another streams
    # a whole extra tile (assumption: with fewer tiles than arrays, a share that straddles two
    # tiles loads the second behind its stream).
    steps = math.ceil(tiles / arrays)           # stationary tiles the busiest array loads
    used = min(arrays, tiles * t)
    rows = math.ceil(t * tiles / (used * steps))  # rows it streams through each of them
    stream = math.ceil(_stream_cycles(rows, chip, fmt) / chip.timing.issue_efficiency)
    step = max(stream, load)
    fill_drain = r + c - 2 + output_waves(layer, chip, pack) * chip.timing.wave_cycles
    compute = load + (steps - 1) * step + stream + fill_drain
    shift = load + (steps - 1) * (step - stream)
    return ArrayTiming(compute_cycles=compute, fill_drain_cycles=fill_drain,
                       weight_shift_cycles=shift, steps=steps, stream_cycles=stream,
                       load_cycles=load, arrays_used=used, tiles=tiles,
                       substeps=max(1, math.ceil(stream / load)))

"""Overlapping compute with HBM traffic: the fast path.

Each array runs its folds as blocks of about ``L`` streamed rows (:func:`blocks`). A block needs
its HBM loads (its share of the inputs and a slice of the next fold's stationary tile, which is
prefetched in the background; the first tile arrives before the first block) before it runs,
and writes its outputs after. DMA runs ahead through ``depth`` buffer slots, so compute and
transfer overlap. :func:`flow_shop_cycles` computes the makespan of that block list through two
resources in series (the HBM channel, then the array) as a recurrence over at most ~66 blocks
(long runs of identical folds are merged); arrays are symmetric and each sees its fair share of
the bandwidth. :mod:`tpusim.timing.overlap_event` runs the same blocks as simpy processes sharing one FIFO
channel, and the two agree within 1% on every shipped workload (1.5% on the calibrated
tpu_v4 with two buffer slots). With one slot (DMA and compute serial, as the calibrated tpu_v4
runs a GEMM that fits its buffers) they differ by design, up to 25% on the shipped workloads:
the event engine lets one array's load use the whole channel while the others compute, the
closed form gives every array a fixed share (assumption: the fair share, which the calibration was fitted with).

Every byte crosses the channel, so ``cycles >= hbm_bytes / bandwidth``, and every fold runs, so
``cycles >= compute``. Stall cycles (``cycles - compute``) are split by cause in proportion to
the bytes of each stream: weights, inputs, outputs (TPUv1's "weight stall" is the first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ChipConfig
from ..memory import Traffic
from .systolic import ArrayTiming
from .vector import VectorCost


@dataclass(frozen=True)
class LayerTime:
    """Time of one layer instance, in cycles of the chip clock, by where it goes.

    ``cycles`` = ``compute_cycles`` (arrays or vector unit busy; for a GEMM it includes
    ``fill_drain_cycles`` and ``weight_shift_cycles``) + ``stall_cycles`` (waiting on HBM, split
    by the stream that caused it, or on SRAM bandwidth) + ``overhead_cycles`` (fixed launch cost).
    ``hbm_cycles`` and ``sram_cycles`` are the transfer times alone (the memory roofs in cycles),
    which overlap compute and so are not summed into ``cycles``.
    """

    compute_cycles: float
    stall_weight_cycles: float = 0.0
    stall_input_cycles: float = 0.0
    stall_output_cycles: float = 0.0
    stall_sram_cycles: float = 0.0
    overhead_cycles: float = 0.0
    fill_drain_cycles: float = 0.0
    weight_shift_cycles: float = 0.0
    hbm_cycles: float = 0.0        # bytes / bandwidth, the HBM roof in cycles
    sram_cycles: float = 0.0

    @property
    def stall_cycles(self) -> float:
        return (self.stall_weight_cycles + self.stall_input_cycles + self.stall_output_cycles
                + self.stall_sram_cycles)

    @property
    def cycles(self) -> float:
        return self.compute_cycles + self.stall_cycles + self.overhead_cycles


def split_stall(stall: float, traffic: Traffic) -> tuple[float, float, float]:
    total = traffic.hbm_total_bytes
    if stall <= 0 or total <= 0:
        return 0.0, 0.0, 0.0
    return (stall * traffic.hbm_weight_bytes / total, stall * traffic.hbm_input_bytes / total,
            stall * traffic.hbm_output_bytes / total)


def fold_bytes(at: ArrayTiming, traffic: Traffic) -> tuple[float, float, float]:
    """HBM bytes of one fold on one array: (weights, inputs, outputs), spread evenly."""
    folds = max(at.arrays_used, 1) * max(at.steps, 1)
    return (traffic.hbm_weight_bytes / folds, traffic.hbm_input_bytes / folds,
            traffic.hbm_output_bytes / folds)


MAX_BLOCKS = 64


def block_pieces(at: ArrayTiming, traffic: Traffic) -> tuple[tuple[tuple[float, float, float],
                                                                 int], ...]:
    """The block stream of one array before merging, run-length encoded: ``(value, count)``.

    Fold ``f`` is ``substeps`` equal blocks; folds before the last also prefetch a slice of the
    next tile and last ``max(T, L)``, the last one streams ``T``. With more than three folds the
    identical middle folds come as ``min(64, substeps x (folds - 2))`` equal parts of their sum.
    """
    w, i, o = fold_bytes(at, traffic)
    s = at.substeps
    step = max(at.stream_cycles, at.load_cycles)
    n = at.steps
    a = (step / s, i / s + w / s, o / s)
    z = (at.stream_cycles / s, i / s, o / s)
    if n <= 1:
        return ((z, s),)
    if n <= 3:
        return ((a, s * (n - 1)), (z, s))
    parts = min(MAX_BLOCKS, s * (n - 2))
    body = tuple(v * s * (n - 2) / parts for v in a)
    return ((a, s), (body, parts), (z, s))


def blocks(at: ArrayTiming, traffic: Traffic,
           preloaded: float = 0.0) -> list[tuple[float, float, float]]:
    """(compute cycles, load bytes, store bytes) of each block one array runs, merged.

    The first fold's stationary tile arrives with the first block, less the ``preloaded`` bytes
    of it that came in while the previous layer left the channel idle; every later tile is
    prefetched a slice per block during the fold before it (the weight FIFO fills in the
    background while the inputs stream). Beyond ``MAX_BLOCKS + 2`` blocks the middle ones are
    summed in runs of equal length (``merge_size``); each sum is a value times a count read off
    :func:`block_pieces`, so the cost does not grow with the layer.
    """
    pieces = block_pieces(at, traffic)
    total = sum(c for _, c in pieces)
    size = merge_size(total)
    out = []
    # the expanded stream's entries 0 and total-1 stay single; 1 .. total-2 merge in runs
    for lo, hi in [(0, 1)] + [(a, min(a + size, total - 1)) for a in range(1, total - 1, size)] \
            + ([(total - 1, total)] if total > 1 else []):
        out.append(_range_sum(pieces, lo, hi))
    w = fold_bytes(at, traffic)[0]
    c, ld, st = out[0]
    out[0] = (c + at.load_cycles, ld + w - min(w, preloaded), st)
    c, ld, st = out[-1]
    out[-1] = (c + at.fill_drain_cycles, ld, st)
    return out


def merge_size(total: int) -> int:
    """Blocks per merged middle block when the stream has ``total`` blocks."""
    return 1 if total <= MAX_BLOCKS + 2 else -(-(total - 2) // MAX_BLOCKS)


def _range_sum(pieces, lo: int, hi: int) -> tuple[float, float, float]:
    """Sum of the expanded stream's entries ``lo .. hi-1``."""
    acc = None
    start = 0
    for v, cnt in pieces:
        k = min(hi, start + cnt) - max(lo, start)
        start += cnt
        if k <= 0:
            continue
        term = v if k == 1 else (v[0] * k, v[1] * k, v[2] * k)
        acc = term if acc is None else (acc[0] + term[0], acc[1] + term[1], acc[2] + term[2])
    return acc


def buffer_depth(chip: ChipConfig) -> int:
    """Buffer slots of a block pipeline on ``chip``, whose ``double_buffered`` the caller has
    resolved for the layer (``auto``: :func:`tpusim.memory.double_buffered`)."""
    db = chip.memory.sram.double_buffered
    if db == "auto":
        raise ValueError("buffer_depth: resolve double_buffered: auto for the layer first "
                         "(tpusim.memory.with_double_buffered)")
    return max(2 if db else 1, chip.timing.weight_fifo_depth)


def flow_shop_cycles(plan: list[tuple[float, float, float]], bw: float, depth: int,
                     record: list | None = None) -> float:
    """Makespan of blocks (compute, load bytes, store bytes) through channel then array.

    A block's load starts when the channel is free and a buffer slot is (the block ``depth``
    before it has been computed); the writes of that earlier block go out first. Arrays are
    symmetric and share the channel fairly, so each sees ``bw`` = its share of the bandwidth.
    ``record``: if given, each block's (load start, load end, compute start, compute end, bytes
    stored ahead of its load) is appended to it (``timing.schedule.flow_shop_schedule``).
    """
    chan = 0.0
    comp_end: list[float] = []
    load_end = 0.0
    for j, (c, load, _) in enumerate(plan):
        start = chan
        extra = 0.0
        if j >= depth:
            start = max(start, comp_end[j - depth])
            extra = plan[j - depth][2]
        load_end = start + (load + extra) / bw
        chan = load_end
        prev = comp_end[-1] if comp_end else 0.0
        begin = max(prev, load_end)
        comp_end.append(begin + c)
        if record is not None:
            record.append((start, load_end, begin, begin + c, extra))
    tail = sum(b[2] for b in plan[max(0, len(plan) - depth):])
    return max(comp_end[-1], chan) + tail / bw


def sram_cycles(chip: ChipConfig, at: ArrayTiming, traffic: Traffic) -> float:
    bw = chip.memory.sram.bandwidth_bytes_per_cycle
    if bw is None:
        return 0.0
    return (traffic.sram_read_bytes + traffic.sram_write_bytes) / (bw * max(at.arrays_used, 1))


def last_block_cycles(at: ArrayTiming) -> float:
    """Compute cycles of an array's last block in :func:`blocks` (its fill and drain included):
    the channel idles through it, since every load is done when it starts and the stores of the
    last ``depth`` blocks wait until it ends (:func:`flow_shop_cycles`), so a layer takes at
    least its transfers plus this. Assumption: the event engine, whose write-backs may use the
    channel then, leaves the next layer as much."""
    s = at.substeps
    z = at.stream_cycles / s
    if s == 1 and at.steps <= 1:      # one block: it also shifts in the first tile
        return (z + at.load_cycles) + at.fill_drain_cycles
    return z + at.fill_drain_cycles


def first_tile_bytes(at: ArrayTiming, traffic: Traffic) -> float:
    """HBM bytes of each array's first stationary tile: what the previous layer can prefetch."""
    return fold_bytes(at, traffic)[0]


def scalesim_total(chip: ChipConfig, at: ArrayTiming, traffic: Traffic) -> float:
    """SCALE-Sim's compute cycles, with memory time only where it exceeds them (it has no
    overlap model of its own: stalls are the roofline excess)."""
    return max(at.compute_cycles, traffic.hbm_total_bytes / chip.hbm_bytes_per_cycle)


def pipelined_total(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                    preloaded: float = 0.0) -> float:
    """Flow-shop makespan of the block plan with ``preloaded`` bytes of the first tile already
    on chip.

    Every start and end time in :func:`flow_shop_cycles` is a max of sums that all contain the
    first block's load time (the channel starts with it and everything else waits behind it),
    so the preload shortens the makespan by exactly its transfer time: the plan is timed once,
    without it, and the saving subtracted. Bytes prefetched during the previous layer still
    crossed the channel: the roofline stays a bound (:func:`finish_gemm_time`).
    """
    bw = chip.hbm_bytes_per_cycle / max(at.arrays_used, 1)
    w = fold_bytes(at, traffic)[0]
    return (flow_shop_cycles(blocks(at, traffic), bw, buffer_depth(chip))
            - min(w, preloaded) / bw)


def finish_gemm_time(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                     total: float, split_by: Traffic | None = None) -> LayerTime:
    """The :class:`LayerTime` of a GEMM whose compute and memory took ``total`` cycles (from the
    fast path or the event engine): whole cycles, never under the compute or the HBM roof,
    stalls split by stream."""
    hbm = traffic.hbm_total_bytes / chip.hbm_bytes_per_cycle
    total = max(float(at.compute_cycles), float(math.ceil(max(total, hbm) - 1e-6)))
    sram = sram_cycles(chip, at, traffic)
    sw, si, so = split_stall(total - at.compute_cycles, split_by or traffic)
    return LayerTime(compute_cycles=at.compute_cycles, stall_weight_cycles=sw,
                     stall_input_cycles=si, stall_output_cycles=so, stall_sram_cycles=max(0.0, sram - total),
                     overhead_cycles=chip.timing.overhead_cycles_per_op,
                     fill_drain_cycles=at.fill_drain_cycles,
                     weight_shift_cycles=at.weight_shift_cycles, hbm_cycles=hbm,
                     sram_cycles=sram)


def vector_cycles(chip: ChipConfig, ops: float) -> float:
    return math.ceil(ops / chip.vector.ops_per_cycle)


def vector_time(chip: ChipConfig, cost: VectorCost, traffic: Traffic, fused: bool,
                producer_cycles: float = 0.0) -> LayerTime:
    """A vector op streams through the vector unit while its operands stream from HBM
    (``cost``: :func:`tpusim.timing.vector.vector_cost`).

    A fused op runs in its producer's output pipeline: only the part of its work longer than the
    producer's cycles shows, and it has no memory pass or launch overhead of its own.
    """
    vec = cost.compute_cycles
    if fused:
        return LayerTime(compute_cycles=max(0.0, vec - producer_cycles))
    hbm = cost.hbm_cycles(traffic.hbm_total_bytes, traffic.hbm_input_bytes,
                          chip.hbm_bytes_per_cycle)
    sw, si, so = split_stall(max(0.0, math.ceil(hbm - 1e-6) - vec), traffic)
    return LayerTime(compute_cycles=vec, stall_weight_cycles=sw, stall_input_cycles=si,
                     stall_output_cycles=so, overhead_cycles=cost.launch_cycles, hbm_cycles=hbm)

"""Where the time goes, resource by resource: the timeline of a run.

One track per resource (:meth:`Timeline.tracks`): ``layers`` (one slice per trace row, over
all its instances), ``MXU 0`` .. ``MXU N-1`` (the arrays computing: the arrays a layer uses run
the same block plan on equal shares of the bandwidth, as the model has them, so their slices
are the same and an array the layer leaves idle has none), ``vector unit``, ``stalls``
(the arrays or the vector unit waiting, by cause as ``layers.csv`` splits it, and the per-op
launch overhead) and the HBM channel by stream (``HBM weights``, ``HBM inputs``, ``HBM outputs``:
the channel is serial, so no two DMA slices overlap; a slice moves ``nbytes`` over all arrays at
the full bandwidth). Per layer, the slices on ``MXU 0``, ``vector unit`` and ``stalls`` tile the
layer's time exactly (they sum to ``cycles x count``) and its DMA slices move its HBM bytes.

Two levels of detail:

* ``blocks`` (``tpusim run --trace``): every instance of every row as the pipelined model times
  it. The reference path is walked again (:func:`tpusim.simulator.walk`), and each GEMM
  instance's block plan (:func:`tpusim.timing.overlap.blocks`) is scheduled by
  :func:`tpusim.timing.schedule.flow_shop_schedule`, the recurrence the model's makespan comes
  from. Bytes of a tile the model prefetched while the channel was idle during the layer before
  (TPUv1's weight FIFO) are drawn in the channel's latest idle gaps before the layer starts.
  The first instance of each distinct instance of a row is always drawn so; further repeats
  while fewer than :data:`BLOCK_BUDGET` blocks are drawn, then as totals. Vector ops, ``timing.model: scalesim`` (no overlap
  model) and the event engine (its own schedule, within 1% of this one) are drawn as totals.
* ``layers`` (``report.html``, :meth:`tpusim.simulator.Result.timeline`): each row's totals from
  the layer table, drawn as totals; nothing is re-simulated, so a report costs nothing extra.

Drawn as totals, a layer (or instance) is: launch overhead, then the compute, then its stalls
by cause, on the compute tracks; and from the end of the overhead its weights, inputs and
outputs one after another on the channel (assumption: the order inside a layer is not modelled
there; the amounts are).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from .timing.overlap import blocks, buffer_depth, first_tile_bytes
from .timing.schedule import flow_shop_schedule

DMA_TRACKS = ("HBM weights", "HBM inputs", "HBM outputs")
BUSY_TRACKS = ("MXU 0", "vector unit", "stalls")   # per layer, these tile its time


def mxu(i: int) -> str:
    return f"MXU {i}"
STALL_NAMES = ("stall: weights", "stall: inputs", "stall: outputs")

# Repeated instances are drawn block by block until this many blocks are drawn, then as
# totals (a Perfetto trace stays a few MB; the numbers do not change).
BLOCK_BUDGET = 5_000


@dataclass(slots=True)
class Slice:
    """``dur`` cycles of ``track`` from ``start`` (cycles from the run's start) for row ``row``;
    a DMA slice moves ``nbytes`` HBM bytes. ``label`` names what it is (a stall's cause, a
    prefetch); ``name`` is the layer's."""

    track: str
    name: str
    start: float
    dur: float
    row: int
    nbytes: float = 0.0
    label: str = ""


@dataclass
class Timeline:
    """The slices of a run, in cycles of a ``clock_ghz`` clock, and a record per row."""

    config: str
    workload: str
    clock_ghz: float
    bytes_per_cycle: float
    detail: str
    arrays: int
    offchip: str = "HBM"         # the off-chip memory's kind, named on its tracks
    slices: list[Slice] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    blocks_drawn: int = 0
    totals_drawn: int = 0      # instances drawn as totals
    unplaced_bytes: float = 0.0  # prefetched bytes no idle gap before their layer could hold

    @property
    def tracks(self) -> tuple[str, ...]:
        return ("layers", *(mxu(i) for i in range(self.arrays)), "vector unit", "stalls",
                *DMA_TRACKS)

    def label(self, track: str) -> str:
        """A track's name as shown: the off-chip memory by its kind (``DDR3 weights``)."""
        return track.replace("HBM", self.offchip, 1) if track in DMA_TRACKS else track

    @property
    def cycles(self) -> float:
        return max((r["start"] + r["cycles"] for r in self.rows), default=0.0)

    def us(self, cycles: float) -> float:
        """Cycles as microseconds."""
        return cycles / (self.clock_ghz * 1e3)


class _Builder:
    def __init__(self, tl: Timeline):
        self.tl = tl
        self.bw = tl.bytes_per_cycle
        self.chan: list[tuple[float, float]] = []   # the channel's busy intervals, sorted

    def add(self, track: str, name: str, start: float, dur: float, row: int,
            nbytes: float = 0.0, label: str = "") -> None:
        if dur <= 0 or (dur < 1e-6 and not nbytes):   # float noise in a gap: not a stall
            return
        self.tl.slices.append(Slice(track, name, start, dur, row, nbytes, label))
        if track in DMA_TRACKS:
            bisect.insort(self.chan, (start, start + dur))

    def stalls(self, start: float, dur: float, shares: tuple[float, float, float], name: str,
               row: int) -> float:
        """A wait of ``dur`` cycles split by cause in ``shares``; returns where it ends."""
        for label, f in zip(STALL_NAMES, shares):
            self.add("stalls", name, start, dur * f, row, label=label)
            start += dur * f
        return start

    def prefetch(self, nbytes: float, before: float, name: str, row: int) -> None:
        """Draw ``nbytes`` of weights in the channel's idle gaps before ``before``, latest
        first (the weight FIFO fills whenever the channel is free)."""
        need = nbytes / self.bw
        t, i = before, bisect.bisect_left(self.chan, (before, before))
        pieces = []
        while need > 1e-12 * max(1.0, before) and t > 0:
            if i > 0 and self.chan[i - 1][1] >= t - 1e-12 * max(1.0, t):
                t, i = min(t, self.chan[i - 1][0]), i - 1
                continue
            lo = self.chan[i - 1][1] if i > 0 else 0.0
            take = min(need, t - lo)
            pieces.append((t - take, take))
            need -= take
            t -= take
        for s, d in pieces:
            self.add("HBM weights", name, s, d, row, d * self.bw, "prefetch")
        self.tl.unplaced_bytes += max(0.0, need) * self.bw

    def compute(self, used: int, name: str, start: float, dur: float, row: int) -> None:
        """The arrays busy: ``used`` of them (0: the vector unit)."""
        for i in range(used) if used else ():
            self.add(mxu(i), name, start, dur, row)
        if not used:
            self.add("vector unit", name, start, dur, row)

    def totals(self, t0: float, name: str, row: int, used: int, compute: float,
               stalls: tuple[float, float, float, float], overhead: float,
               dma: tuple[float, float, float]) -> None:
        """One layer or instance drawn as totals (the module docstring's layout); ``used``:
        the arrays it runs on (0: a vector op)."""
        self.add("stalls", name, t0, overhead, row, label="per-op overhead")
        self.compute(used, name, t0 + overhead, compute, row)
        t = t0 + overhead + compute
        for label, d in zip(STALL_NAMES + ("stall: SRAM",), stalls):
            self.add("stalls", name, t, d, row, label=label)
            t += d
        t = t0 + overhead
        for tr, b in zip(DMA_TRACKS, dma):
            self.add(tr, name, t, b / self.bw, row, b)
            t += b / self.bw


def _shares(w: float, i: float, o: float) -> tuple[float, float, float]:
    total = w + i + o
    return (w / total, i / total, o / total) if total > 0 else (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Weights:
    """A traffic with only the weight stream: :func:`blocks` of it is each block's weights."""

    hbm_weight_bytes: float
    hbm_input_bytes: float = 0.0
    hbm_output_bytes: float = 0.0


def _gemm_blocks(b: _Builder, chip, layer, fmt, m: dict, t0: float, row: int,
                 first: bool) -> bool:
    """Draw one GEMM instance from its block schedule; False when it must be drawn as totals
    (over the budget, or a schedule that does not fit the instance's cycles)."""
    from .timing import array_timing
    lt, tr = m["_time"], m["_traffic"]
    at = array_timing(layer, chip, fmt.name)
    arrays = max(at.arrays_used, 1)
    pre = min(first_tile_bytes(at, tr), m["_idle"])
    plan = blocks(at, tr, pre)
    if not first and b.tl.blocks_drawn + len(plan) > BLOCK_BUDGET:
        return False
    share = b.bw / arrays
    from .cores import gemm_double_buffered
    from .memory import with_double_buffered
    depth = buffer_depth(with_double_buffered(chip, gemm_double_buffered(chip, layer, fmt)))
    s = flow_shop_schedule(plan, share, depth)
    ov, sram = lt.overhead_cycles, lt.stall_sram_cycles
    span = lt.cycles - ov - sram
    if s.makespan > span + 1e-6 * max(1.0, span):
        return False
    b.tl.blocks_drawn += len(plan)
    name = layer.name
    if pre > 0:
        b.prefetch(pre * arrays, t0, name, row)
    wplan = blocks(at, _Weights(tr.hbm_weight_bytes), pre)
    b.add("stalls", name, t0, ov, row, label="per-op overhead")
    base = t0 + ov
    for blk, (_, load, _), (_, wload, _) in zip(s.blocks, plan, wplan):
        t = base + blk.load_start
        for track, nb in (("HBM outputs", blk.stored), ("HBM weights", wload),
                          ("HBM inputs", load - wload)):
            b.add(track, name, t, nb / share, row, nb * arrays)
            t += nb / share
    b.add("HBM outputs", name, base + s.tail_start, s.tail_bytes / share, row,
          s.tail_bytes * arrays)
    shares = _shares(tr.hbm_weight_bytes, tr.hbm_input_bytes, tr.hbm_output_bytes)
    cursor = 0.0
    runs: list[list[float]] = []
    for blk in s.blocks:    # back-to-back blocks are one busy slice
        if runs and blk.compute_start <= runs[-1][1] + 1e-9 * max(1.0, blk.compute_start):
            runs[-1][1] = blk.compute_end
        else:
            runs.append([blk.compute_start, blk.compute_end])
    for start, end in runs:
        b.stalls(base + cursor, start - cursor, shares, name, row)
        b.compute(arrays, name, base + start, end - start, row)
        cursor = end
    b.stalls(base + cursor, span - cursor, shares, name, row)
    b.add("stalls", name, base + span, sram, row, label="stall: SRAM")
    return True


def _row_record(r: Any, index: int, start: float, cycles: float) -> dict[str, Any]:
    shape = "" if r.kind != "gemm" else f"{r.m}x{r.k}x{r.n}"
    return {"index": index, "name": str(r.name), "op": str(r.op), "kind": str(r.kind),
            "count": int(r.count), "format": str(r.format), "bound": str(r.bound),
            "shape": shape, "start": start, "cycles": cycles,
            "cycles_per_instance": float(r.cycles)}


def _layer_totals(b: _Builder, r: Any, t0: float, index: int, used: int) -> None:
    n = r.count
    b.totals(t0, str(r.name), index, used, r.compute_cycles * n,
             (r.stall_weight_cycles * n, r.stall_input_cycles * n, r.stall_output_cycles * n,
              r.stall_sram_cycles * n), r.overhead_cycles * n,
             (r.hbm_weight_read_bytes * n, r.hbm_input_read_bytes * n, r.hbm_write_bytes * n))


def _used(chip, layer, fmt) -> int:
    """Arrays a layer runs on (0 for a vector op)."""
    if layer.kind != "gemm":
        return 0
    from .timing import array_timing
    return max(array_timing(layer, chip, fmt.name).arrays_used, 1)


def build_timeline(result: Any, detail: str = "layers", walk: Any = None) -> Timeline:
    """The timeline of ``result``: ``detail`` is ``layers`` (each row's totals, from the layer
    table) or ``blocks`` (every instance from its block schedule): ``walk`` runs the reference
    path again (:func:`tpusim.simulator.walk`, passed in so this module never imports the
    simulator back)."""
    chip, df = result.config, result.layers
    s = result.summary
    tl = Timeline(s["config"], s["workload"], chip.clock_ghz, chip.hbm_bytes_per_cycle, detail,
                  chip.array.count, chip.memory.hbm.kind)
    b = _Builder(tl)
    t = 0.0
    if detail == "layers":
        from .formats import get_format
        for idx, (r, layer) in enumerate(zip(df.itertuples(index=False),
                                             result.workload.layers)):
            _layer_totals(b, r, t, idx, _used(chip, layer, get_format(str(r.format))))
            b.add("layers", str(r.name), t, float(r.cycles) * r.count, idx)
            tl.rows.append(_row_record(r, idx, t, float(r.cycles) * r.count))
            t += float(r.cycles) * r.count
        _invoke(b, chip, int(s.get("batch") or 1), t)
        return tl
    if detail != "blocks" or walk is None:
        raise ValueError(f"detail: {detail!r}; allowed: layers, or blocks with walk=")
    from .timing.path import timing_path
    path = timing_path(chip, s.get("engine"))
    recs = list(df.itertuples(index=False))
    for idx, (layer, fmt, _, variants) in enumerate(
            walk(chip, result.workload, list(df["format"]), path)):
        t0 = t
        for n, m in variants:
            lt, tr = m["_time"], m["_traffic"]
            for k in range(n):
                if not (layer.kind == "gemm" and path == "analytic"
                        and _gemm_blocks(b, chip, layer, fmt, m, t, idx, k == 0)):
                    pre = 0.0
                    used = _used(chip, layer, fmt)
                    if layer.kind == "gemm" and path != "scalesim":
                        from .timing import array_timing
                        at = array_timing(layer, chip, fmt.name)
                        pre = min(first_tile_bytes(at, tr), m["_idle"]) * max(at.arrays_used, 1)
                        if pre > 0:
                            b.prefetch(pre, t, layer.name, idx)
                    tl.totals_drawn += 1
                    b.totals(t, layer.name, idx, used, lt.compute_cycles,
                             (lt.stall_weight_cycles, lt.stall_input_cycles,
                              lt.stall_output_cycles, lt.stall_sram_cycles), lt.overhead_cycles,
                             (tr.hbm_weight_bytes - pre, tr.hbm_input_bytes,
                              tr.hbm_output_bytes))
                t += lt.cycles
        b.add("layers", layer.name, t0, t - t0, idx)
        tl.rows.append(_row_record(recs[idx], idx, t0, t - t0))
    _invoke(b, chip, int(s.get("batch") or 1), t)
    return tl


def _invoke(b: _Builder, chip: Any, batch: int, t: float) -> None:
    """The fixed per-inference cost (``timing.invoke_cycles`` per batch element, which the
    summary adds outside every layer row: layer_rules.run_summary) after the last layer, as
    one row of its own on the layers and stalls tracks, so the timeline ends at the latency."""
    cycles = chip.timing.invoke_cycles * batch
    if cycles <= 0:
        return
    idx = len(b.tl.rows)
    name = f"invoke ({batch} x fixed per-inference cost)"
    b.tl.rows.append({"index": idx, "name": name, "op": "invoke", "kind": "overhead",
                      "count": batch, "format": "", "bound": "invoke", "shape": "", "start": t,
                      "cycles": cycles, "cycles_per_instance": chip.timing.invoke_cycles})
    b.add("layers", name, t, cycles, idx)
    b.add("stalls", name, t, cycles, idx, label="invoke")

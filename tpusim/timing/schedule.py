"""The block schedule the pipelined timing model computes, with every start and end kept.

:func:`flow_shop_schedule` is :func:`tpusim.timing.overlap.flow_shop_cycles` step for step (the
same recurrence over the same block plan), but it returns when each block's load ran on the
HBM channel and when the array computed it, instead of the makespan alone; ``makespan`` equals
``flow_shop_cycles`` (tests/test_timeline.py checks it). It is not on the simulation path, so
a run that draws no timeline pays nothing for it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """One block of one array, in cycles from the layer's start (after its launch overhead).

    Its load runs on the channel over ``[load_start, load_end)``: first ``stored`` bytes of the
    outputs of the block ``depth`` before it (written first, as the recurrence has it), then
    the block's own load bytes; the array computes it over ``[compute_start, compute_end)``."""

    load_start: float
    load_end: float
    compute_start: float
    compute_end: float
    stored: float


@dataclass(frozen=True)
class Schedule:
    blocks: tuple[Block, ...]
    tail_start: float    # the last ``depth`` blocks' outputs go out from here ...
    tail_bytes: float
    makespan: float      # ... and the layer ends when they are written


def flow_shop_schedule(plan: list[tuple[float, float, float]], bw: float,
                       depth: int) -> Schedule:
    """The schedule of blocks ``(compute, load bytes, store bytes)`` through the channel (at
    ``bw`` bytes per cycle, one array's share) then the array, ``depth`` buffer slots."""
    chan = 0.0
    comp_end: list[float] = []
    out = []
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
        out.append(Block(start, load_end, begin, begin + c, extra))
    tail = sum(b[2] for b in plan[max(0, len(plan) - depth):])
    tail_start = max(comp_end[-1], chan)
    return Schedule(tuple(out), tail_start, tail, tail_start + tail / bw)

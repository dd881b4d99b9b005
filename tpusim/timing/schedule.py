"""The block schedule the pipelined timing model computes, with every start and end kept.

:func:`flow_shop_schedule` runs :func:`tpusim.timing.overlap.flow_shop_cycles` itself (one
recurrence) with its per-block record on, and returns when each block's load ran on the HBM
channel and when the array computed it, besides the makespan. A run that draws no timeline
never asks for the record.
"""
from __future__ import annotations

from dataclasses import dataclass

from .overlap import flow_shop_cycles


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
    ``bw`` bytes per cycle, one array's share) then the array, ``depth`` buffer slots: the
    model's own recurrence (:func:`~tpusim.timing.overlap.flow_shop_cycles`) with each block's
    times recorded."""
    rec: list = []
    makespan = flow_shop_cycles(plan, bw, depth, rec)
    out = tuple(Block(*r) for r in rec)
    tail = sum(b[2] for b in plan[max(0, len(plan) - depth):])
    # the outputs left go out once the last block is computed and the channel is free
    tail_start = max(out[-1].compute_end, out[-1].load_end)
    return Schedule(out, tail_start, tail, makespan)

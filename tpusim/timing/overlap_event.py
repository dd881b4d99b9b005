"""The event engine: simpy processes for DMA, double buffers and arrays sharing one HBM channel.

Blocks of a fold are the events, never cycles. Each array runs its folds in order, each fold as
``substeps`` blocks of about ``L`` streamed rows; a loader process per array fetches a block's HBM
bytes (the fold's stationary tile with its first block, plus the block's share of the inputs)
into one of ``depth`` buffer slots (the next fold's tile is prefetched a slice per block), queueing FIFO for the single HBM channel behind every other
array's loads and every output write-back; the array takes a loaded block, computes, frees the
slot and hands the block's outputs to a writer. The layer ends when the last array and the last
write are done.

This is the reference the closed form in :mod:`tpusim.timing.overlap` is checked against; it
models the ``pipelined`` timing model (``scalesim`` has no overlap to simulate). Long runs of
identical middle blocks are merged (bytes and cycles add up) so the event count stays bounded;
the first and last blocks, which set the prologue and epilogue, are never merged.
"""
from __future__ import annotations

import simpy

from ..config import ChipConfig
from ..memory import Traffic
from .overlap import (LayerTime, blocks, buffer_depth, finish_gemm_time,
                              gemm_time)
from .systolic import ArrayTiming

def simulate_gemm(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                  preloaded: float = 0.0) -> float:
    """Cycles of one GEMM layer instance: compute and memory stalls, no per-op overhead."""
    bw = chip.hbm_bytes_per_cycle
    plan = blocks(at, traffic, preloaded)
    depth = buffer_depth(chip)
    env = simpy.Environment()
    channel = simpy.Resource(env, capacity=1)

    def transfer(nbytes: float):
        if nbytes <= 0:
            return
        with channel.request() as req:
            yield req
            yield env.timeout(nbytes / bw)

    def loader(slots: simpy.Container, ready: simpy.Store):
        for idx, (_, load, _) in enumerate(plan):
            yield slots.get(1)
            yield from transfer(load)
            yield ready.put(idx)

    def array(slots: simpy.Container, ready: simpy.Store):
        for cycles, _, store in plan:
            yield ready.get()
            yield env.timeout(cycles)
            yield slots.put(1)
            env.process(transfer(store))

    for _ in range(max(at.arrays_used, 1)):
        slots = simpy.Container(env, capacity=depth, init=depth)
        ready = simpy.Store(env)
        env.process(loader(slots, ready))
        env.process(array(slots, ready))
    env.run()
    return env.now


def gemm_time_event(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                    preloaded: float = 0.0) -> LayerTime:
    """A :class:`~tpusim.timing.LayerTime` whose stalls come from the event engine."""
    if chip.timing.model != "pipelined":
        return gemm_time(chip, at, traffic, preloaded)
    return finish_gemm_time(chip, at, traffic, simulate_gemm(chip, at, traffic, preloaded))

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
identical middle blocks are merged (bytes and cycles add up) so the event count stays bounded
(at most ``MAX_BLOCKS + 2`` blocks a plan); the first and last blocks, which set the prologue
and epilogue, are never merged. To keep it usable as a check (within ~3x of the closed form):
identical instances are simulated once (a memo on everything a run depends on), of ``N``
identical arrays two are simulated, on ``2/N`` of the channel (:data:`SIM_ARRAYS`), and the
runs go through :func:`tpusim.timing.event_loop.run`, which replays :func:`_run`'s simpy
schedule on a bare event loop (the same float, at about a quarter of the time). Every plan is
simulated whole: cutting a long run of identical blocks to 8 and 16 and extending it linearly
was up to 2.4% off one instance's makespan (tpu_v3 bert_base with three weight slots, 1.5% of
its total cycles; measured), and with plans bounded it saved at most about half the events.
"""
from __future__ import annotations

from functools import lru_cache

import simpy

from ..config import ChipConfig
from ..memory import Traffic
from .event_loop import run as _loop
from .overlap import blocks, buffer_depth
from .systolic import ArrayTiming


def simulate_gemm(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                  preloaded: float = 0.0) -> float:
    """Cycles of one GEMM layer instance: compute and memory stalls, no per-op overhead."""
    return plan_makespan(chip.hbm_bytes_per_cycle, buffer_depth(chip), at.arrays_used,
                         blocks(at, traffic, preloaded))


def plan_makespan(bw: float, depth: int, arrays: int,
                  plan: list[tuple[float, float, float]]) -> float:
    """Cycles of ``arrays`` identical arrays each running the block ``plan`` (as
    :func:`tpusim.timing.overlap.blocks` lays it out) on a channel of ``bw`` bytes per cycle.

    The run depends on nothing else, so identical instances (a ``count`` row's repeats, a
    repeated shape, a sweep's unchanged layers) are simulated once."""
    return _makespan(bw, depth, max(arrays, 1), tuple(plan))


# Arrays run identical plans; simulating two of them on their share of the channel keeps the
# FIFO contention between arrays and write-backs (within 4e-4 of simulating all of them on every
# shipped workload and preset, measured; up to 4e-3 (mlp1) on the calibrated tpu_v4, whose
# fitted HBM efficiency makes more layers memory-bound) at a fraction of the events.
SIM_ARRAYS = 2


@lru_cache(maxsize=8192)
def _makespan(bw: float, depth: int, arrays: int, plan: tuple) -> float:
    sim = min(arrays, SIM_ARRAYS)
    return _loop(list(plan), bw * sim / arrays, depth, sim)


def _run(plan: list[tuple[float, float, float]], bw: float, depth: int, arrays: int) -> float:
    """Makespan of ``arrays`` arrays running ``plan`` with loads and writes on one channel.

    The simpy model, kept as the reference: runs go through :func:`.event_loop.run`, the same
    schedule on a bare event loop (the same float on every shipped plan, tests/test_event_loop.py).

    A block's buffer slot is the event of the block ``depth`` before it leaving the array and
    its data the event of its load ending (plain events, not a Container and a Store: the
    same schedule, every makespan equal to the last bit on every shipped workload and preset,
    measured, at under half the steps)."""
    env = simpy.Environment()
    channel = simpy.Resource(env, capacity=1)
    timeout, event, request, release = env.timeout, env.event, channel.request, channel.release
    loads = [ld / bw if ld > 0 else None for _, ld, _ in plan]
    stores = [st / bw if st > 0 else None for _, _, st in plan]
    cycles = [c for c, _, _ in plan]
    n = len(plan)

    def transfer(t: float):
        req = request()
        yield req
        yield timeout(t)
        release(req)

    def loader(loaded: list, freed: list):
        for idx in range(n):
            if idx >= depth:
                yield freed[idx - depth]
            t = loads[idx]
            if t is not None:
                req = request()
                yield req
                yield timeout(t)
                release(req)
            loaded[idx].succeed()

    def array(loaded: list, freed: list):
        for idx in range(n):
            yield loaded[idx]
            yield timeout(cycles[idx])
            freed[idx].succeed()
            t = stores[idx]
            if t is not None:
                env.process(transfer(t))

    for _ in range(arrays):
        loaded = [event() for _ in range(n)]
        freed = [event() for _ in range(n)]
        env.process(loader(loaded, freed))
        env.process(array(loaded, freed))
    env.run()
    return env.now

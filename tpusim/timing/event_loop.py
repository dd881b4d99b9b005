"""A bare event loop that replays :func:`tpusim.timing.overlap_event._run`'s simpy model step for step.

simpy spends most of the event engine's time on its own machinery (event objects, callbacks,
process bookkeeping). This module runs the same processes (a loader and an array per array,
a transfer per write-back) on the same single FIFO channel with the same scheduling rules as
simpy 4, so every tie between simultaneous events breaks the same way and the makespan is the
same float, bit for bit (checked on every shipped plan, tests/test_timing.py):

* the queue is a heap on ``(time, priority, serial)``: a process's start is urgent (0),
  everything else normal (1), and the serial orders what was scheduled first;
* an event fires by running its callbacks in the order they were added; a process that
  yields an event already fired goes on at once, else it waits on the event;
* a request is granted at once if the channel is free (the oldest waiting request is served
  first), and a release frees the channel at once but grants the next waiting request only
  when the release event itself fires (simpy's ``Release`` runs ``_trigger_put`` as its
  callback).

simpy also schedules a process's own end; nothing waits on it and it takes no time, so it is
left out (serials only order, so the gap changes no order).
"""
from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from itertools import count

URGENT, NORMAL = 0, 1


def run(plan: list[tuple[float, float, float]], bw: float, depth: int, arrays: int) -> float:
    """Makespan of ``arrays`` arrays running ``plan``: the same as ``overlap_event._run``.

    Each simpy process is written out as callbacks, one per point where its generator would
    resume: the loader at the top of block ``idx`` (``l_top``: wait for the slot of block
    ``idx - depth``), after it (``l_go``: request the channel), granted (``l_load``), loaded
    (``l_done``: release, hand the block over); the array waiting for block ``idx`` (``a_top``),
    computing it (``a_go``), done (``a_done``: free its slot, start its write-back); a write-back
    starting (``t_start``), granted (``t_load``), done (``t_end``). Every event has one
    callback at most, so a heap entry carries it: ``(time, priority, serial, function,
    argument)``. A timeout and a request are waited on the moment they are made; a block's
    "loaded" and "freed" events are flags (fired, waited on), and a process that would wait on
    one already fired goes on at once, as simpy's does.
    """
    loads = [ld / bw if ld > 0 else None for _, ld, _ in plan]
    stores = [st / bw if st > 0 else None for _, _, st in plan]
    cycles = [c for c, _, _ in plan]
    n = len(plan)
    queue: list = []
    now = 0.0
    serial = count(1).__next__   # simpy's event ids: they only order
    waiting: deque = deque()     # the callbacks of requests queued for the channel, oldest first
    busy = False

    def request(fn, arg) -> None:
        # a new request, waited on by ``fn(arg)``; if the channel is free the oldest waiting
        # request is granted, maybe not this one (a release still to fire has freed it)
        nonlocal busy
        waiting.append((fn, arg))
        if not busy:
            busy = True
            heappush(queue, (now, NORMAL, serial(), *waiting.popleft()))

    def grant(_) -> None:        # a release firing
        nonlocal busy
        if waiting and not busy:
            busy = True
            heappush(queue, (now, NORMAL, serial(), *waiting.popleft()))

    def release() -> None:
        nonlocal busy
        busy = False
        heappush(queue, (now, NORMAL, serial(), grant, None))

    def t_start(t) -> None:
        request(t_load, t)

    def t_load(t) -> None:
        heappush(queue, (now + t, NORMAL, serial(), t_end, None))

    def t_end(_) -> None:
        release()

    def make():
        loaded, loaded_wait = [False] * n, [False] * n
        freed, freed_wait = [False] * n, [False] * n

        def l_top(idx) -> None:
            # the loader at the top of block idx
            while idx < n:
                if idx >= depth and not freed[idx - depth]:
                    freed_wait[idx - depth] = True
                    return
                if loads[idx] is not None:
                    request(l_load, idx)
                    return
                heappush(queue, (now, NORMAL, serial(), l_fire, idx))
                idx += 1

        def l_go(idx) -> None:   # the slot of block idx freed: on from there
            if loads[idx] is not None:
                request(l_load, idx)
                return
            heappush(queue, (now, NORMAL, serial(), l_fire, idx))
            l_top(idx + 1)

        def l_load(idx) -> None:
            heappush(queue, (now + loads[idx], NORMAL, serial(), l_done, idx))

        def l_done(idx) -> None:
            release()
            heappush(queue, (now, NORMAL, serial(), l_fire, idx))
            l_top(idx + 1)

        def l_fire(idx) -> None:   # block idx's "loaded" event firing
            loaded[idx] = True
            if loaded_wait[idx]:
                a_go(idx)

        def f_fire(idx) -> None:   # block idx's "freed" event firing
            freed[idx] = True
            if freed_wait[idx]:
                l_go(idx + depth)

        def a_top(idx) -> None:
            if idx >= n:
                return
            if loaded[idx]:
                a_go(idx)
            else:
                loaded_wait[idx] = True

        def a_go(idx) -> None:
            heappush(queue, (now + cycles[idx], NORMAL, serial(), a_done, idx))

        def a_done(idx) -> None:
            heappush(queue, (now, NORMAL, serial(), f_fire, idx))
            t = stores[idx]
            if t is not None:
                heappush(queue, (now, URGENT, serial(), t_start, t))
            a_top(idx + 1)

        return l_top, a_top

    for _ in range(arrays):
        l_top, a_top = make()
        heappush(queue, (now, URGENT, serial(), l_top, 0))
        heappush(queue, (now, URGENT, serial(), a_top, 0))
    while queue:
        now, _, _, fn, arg = heappop(queue)
        fn(arg)
    return now

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
    """Makespan of ``arrays`` arrays running ``plan``: the same as ``overlap_event._run``."""
    loads = [ld / bw if ld > 0 else None for _, ld, _ in plan]
    stores = [st / bw if st > 0 else None for _, _, st in plan]
    cycles = [c for c, _, _ in plan]
    n = len(plan)
    queue: list = []
    now = 0.0
    serial = count(1).__next__   # simpy's event ids: they only order
    waiting: deque = deque()     # requests queued for the channel, oldest first
    busy = False

    def timeout(d: float) -> list:
        ev = [[]]                # [callbacks]; callbacks is None once the event has fired
        heappush(queue, (now + d, NORMAL, serial(), ev))
        return ev

    def request() -> list:
        nonlocal busy
        ev = [[]]
        waiting.append(ev)
        if not busy:             # the oldest waiting request goes first, maybe not this one
            busy = True
            heappush(queue, (now, NORMAL, serial(), waiting.popleft()))
        return ev

    def grant() -> None:
        nonlocal busy
        if waiting and not busy:
            busy = True
            heappush(queue, (now, NORMAL, serial(), waiting.popleft()))

    def release() -> None:
        nonlocal busy
        busy = False
        heappush(queue, (now, NORMAL, serial(), [[grant]]))

    def schedule(ev: list, prio: int = NORMAL) -> None:
        heappush(queue, (now, prio, serial(), ev))

    def process(gen) -> None:
        def resume() -> None:
            while True:
                try:
                    ev = next(gen)
                except StopIteration:
                    return
                cbs = ev[0]
                if cbs is not None:
                    cbs.append(resume)
                    return
        schedule([[resume]], URGENT)

    def transfer(t: float):
        yield request()
        yield timeout(t)
        release()

    def loader(loaded: list, freed: list):
        for idx in range(n):
            if idx >= depth:
                yield freed[idx - depth]
            t = loads[idx]
            if t is not None:
                yield request()
                yield timeout(t)
                release()
            schedule(loaded[idx])

    def array(loaded: list, freed: list):
        for idx in range(n):
            yield loaded[idx]
            yield timeout(cycles[idx])
            schedule(freed[idx])
            t = stores[idx]
            if t is not None:
                process(transfer(t))

    for _ in range(arrays):
        loaded = [[[]] for _ in range(n)]
        freed = [[[]] for _ in range(n)]
        process(loader(loaded, freed))
        process(array(loaded, freed))
    while queue:
        now, _, _, ev = heappop(queue)
        cbs = ev[0]
        ev[0] = None
        for cb in cbs:
            cb()
    return now

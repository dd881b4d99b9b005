"""The simpy event engine on the columnar core: each GEMM row's block plan read off the arrays.

The columnar kernels lay out every row's block plan at once (:func:`.kernels._block_plan`, the
same numbers as :func:`tpusim.timing.overlap.blocks` with nothing preloaded); a row timed by
the event engine takes its plan from there, less the first tile's bytes the previous layer
prefetched, and runs it through :func:`tpusim.timing.overlap_event.plan_makespan`. The carry
pass calls :class:`EventTotals` where the closed form would subtract the preload: the same
plan, the same simulation as the per-layer reference path, so the same cycles.
"""
from __future__ import annotations

import numpy as np

from ..timing.overlap_event import plan_makespan
from . import kernels as K


class EventTotals:
    """``(row, option, idle bytes) -> total cycles`` of a GEMM row's instance on the event
    engine, for the rows where ``rows`` is true (the rows of points run with it)."""

    def __init__(self, kr: dict, rows: np.ndarray):
        g, at, opts, pg = kr["event_in"]
        self.pos = np.full(len(rows), -1, dtype=np.int64)
        self.pos[g] = np.arange(len(g))
        self.g, self.ev = g, rows
        self.at, self.opts = at, opts
        self.bpc, self.depth = pg["bpc"].tolist(), pg["depth"].tolist()
        self.used = np.maximum(at["used"], 1).astype(np.int64).tolist()
        self.w1 = [K.first_tile(at, t).tolist() for t in opts]
        self._grid: list = [None, None]   # per option: (cyc, ld, st) padded, blocks per row
        self._plans: dict = {}

    def _plan(self, i: int, o: int) -> list:
        key = (i, o)
        plan = self._plans.get(key)
        if plan is None:
            if self._grid[o] is None:
                sel = np.flatnonzero(self.ev[self.g])
                part = K._block_plan({k: v[sel] for k, v in self.at.items()},
                                     {k: v[sel] for k, v in self.opts[o].items()})
                col = np.full(len(self.used), -1, dtype=np.int64)
                col[sel] = np.arange(len(sel))
                self._grid[o] = (part, K._block_counts({k: v[sel] for k, v in self.at.items()}),
                                 col)
            (cyc, ld, st), nblk, col = self._grid[o]
            j = int(col[i])
            lo = cyc.shape[0] - int(nblk[j])
            plan = list(zip(cyc[lo:, j].tolist(), ld[lo:, j].tolist(), st[lo:, j].tolist()))
            self._plans[key] = plan
        return plan

    def __call__(self, r: int, o: int, idle: float) -> float:
        i = int(self.pos[r])
        plan = self._plan(i, o)
        w = self.w1[o][i]
        pre = min(w, idle)   # the first tile's bytes the previous layer fetched
        c, ld, st = plan[0]
        # blocks() adds the first tile to the first block's loads as ``ld + w - min(w, pre)``:
        # the columnar plan holds ``ld + w`` already
        plan = [(c, ld - min(w, pre), st)] + plan[1:]
        return plan_makespan(self.bpc[i], int(self.depth[i]), self.used[i], plan)

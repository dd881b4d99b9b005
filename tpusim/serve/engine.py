"""A serving run as a simpy discrete-event simulation: arrivals, a continuous-batching
scheduler, a paged KV cache, and engine steps whose latency the step cost model gives.

Each engine step (vLLM-style continuous batching, prefill and decode interleaved) carries one
new token for every running sequence plus at most one prefill chunk: the partly prefilled
request, else the oldest waiting one if a batch slot (``max_batch``) and its KV blocks are free.
Without ``chunked_prefill`` a prompt is prefilled whole; with it, a step's tokens (decodes plus
the chunk) stay within that budget. A decode that needs a KV block when none is free preempts
the youngest running request (recompute), counted. Assumption: one prefill per step (packing
several short prompts into one step's budget is not modelled). :mod:`tpusim.serve.shapes` pads
steps as a compiled engine does (prompt chunks, a fixed decode batch, attention blocks) and can
hold decodes back while prompts are prefilled (JetStream's offline policy).

Step latency is :class:`~tpusim.serve.timer.StepTimer`'s: every decode sequence's attention at its
own KV length, the rest of the step shared by the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from .kvcache import BlockManager
from .requests import Request
from .shapes import StepShapes
from .timer import StepTimer


@dataclass(eq=False)
class _Req:
    req: Request
    computed: int = 0          # tokens whose K/V are in the cache
    generated: int = 0         # output tokens sampled so far
    target: int = 0            # tokens the current prefill must reach
    taken: int = 0             # blocks this request reserved itself
    held: int = 0              # cached prefix blocks it holds (not in ``taken``)
    moved: int = 0             # of ``taken``, blocks published to the prefix cache
    first_s: float = math.nan
    done_s: float = math.nan
    preempted: int = 0
    pos: int = 0               # index among the run's records

    @property
    def blocks(self) -> int:
        return self.taken + self.held


_ROWS = ("request", "computed", "generated", "output", "taken", "held", "capacity")
_IDX, _COMP, _GEN, _OUT, _TAKEN, _HELD, _CAP = range(len(_ROWS))


@dataclass
class Outcome:
    """What a run leaves: per-request records and the engine's own counters."""

    requests: list[_Req]
    end_s: float
    in_system_area: float      # integral of requests in system dt over [0, end_s]
    preemptions: int
    steps: int
    kv_util: list[tuple[float, float]] = field(default_factory=list)
    blocks: int = 0
    prefix_hit_tokens: int = 0


class Engine:
    """The scheduler and the step loop (module docstring). The running decodes are kept as
    arrays over the batch (record index, tokens computed and generated, output length, blocks
    taken and held), so a step's bookkeeping is a few array operations whatever its batch; a
    request's :class:`_Req` is brought up to date when it leaves the batch."""

    def __init__(self, timer: StepTimer, kv: BlockManager, max_batch: int = 256,
                 chunked_prefill: int | None = None, shapes: StepShapes = StepShapes()):
        self.timer, self.kv, self.shapes = timer, kv, shapes
        self.max_batch, self.chunk = max_batch, chunked_prefill

    def run(self, requests: list[Request], duration: float | None = None) -> Outcome:
        env = simpy.Environment()
        self.env = env
        self.waiting: list[_Req] = []
        self.prefilling: _Req | None = None
        self.records = [_Req(r) for r in requests]
        self._set_batch([])                     # decoding, in admission order
        self.n_in, self.area, self.last_t = 0, 0.0, 0.0
        self.preemptions = self.steps = self.hits = 0
        self.util: list[tuple[float, float]] = []
        self.wake = env.event()
        self.left = len(requests)
        env.process(self._arrivals())
        done = env.process(self._loop())
        env.run(until=done if duration is None else min_event(env, done, duration))
        self._count(0)
        self._sync(np.arange(self.n))
        return Outcome(self.records, env.now, self.area, self.preemptions, self.steps,
                       self.util, self.kv.total, self.hits)

    # ------------------------------------------------------------------ the running batch

    def _set_batch(self, recs: list[_Req]) -> None:
        """The running batch, ``self.B[:, :self.n]``: one column per request in admission order,
        rows ``_ROWS`` (the blocks' capacity in tokens kept with them)."""
        self.B = np.zeros((len(_ROWS), self.max_batch + 1), dtype=np.int64)
        self.n = 0
        for r in recs:
            self._append(r)

    def _append(self, r: _Req) -> None:
        self.B[:, self.n] = (r.pos, r.computed, r.generated, r.req.output_tokens, r.taken,
                             r.held, (r.taken + r.held) * self.kv.block)
        self.n += 1

    def _sync(self, pos) -> None:
        """Write the batch's columns ``pos`` back to their records."""
        B = self.B
        for j in np.asarray(pos).tolist():
            r = self.records[int(B[_IDX, j])]
            r.computed, r.generated, r.taken = (int(B[_COMP, j]), int(B[_GEN, j]),
                                                int(B[_TAKEN, j]))

    def _keep(self, mask) -> None:
        m = int(np.count_nonzero(mask))
        self.B[:, :m] = self.B[:, :self.n][:, mask]
        self.n = m

    # ------------------------------------------------------------------ events

    def _count(self, delta: int) -> None:
        now = self.env.now
        self.area += self.n_in * (now - self.last_t)
        self.last_t, self.n_in = now, self.n_in + delta

    def _arrivals(self):
        env = self.env
        for i, r in enumerate(self.records):
            if r.req.arrival_s > env.now:
                yield env.timeout(r.req.arrival_s - env.now)
            self._count(+1)
            r.target, r.pos = r.req.input_tokens, i
            self.waiting.append(r)
            if not self.wake.triggered:
                self.wake.succeed()

    def _finish(self, r: _Req) -> None:
        r.done_s = self.env.now
        self._free(r)
        self._count(-1)
        self.left -= 1

    def _free(self, r: _Req) -> None:
        self.kv.give(r.taken - r.moved)
        self.kv.release_prefix(r.req.prefix, r.held + r.moved)
        r.taken = r.held = r.moved = 0

    def _grow(self, r: _Req, tokens: int) -> bool:
        need = self.kv.blocks_for(tokens) - r.blocks
        if need <= 0:
            return True
        if not self.kv.take(need):
            return False
        r.taken += need
        return True

    def _preempt(self, r: _Req) -> None:
        self._free(r)
        r.computed, r.target = 0, r.req.input_tokens + r.generated
        r.preempted += 1
        self.preemptions += 1
        self.waiting.insert(0, r)

    def _blocks_for_decodes(self) -> None:
        """A decode adds one token: at most one new block each. When the free blocks cover
        every decode that needs one, all take theirs at once; else in admission order, each
        shortfall preempting the youngest running request (the one short itself when it is
        the youngest)."""
        b = self.B[:, :self.n]
        need = b[_COMP] + 1 > b[_CAP]
        n = int(np.count_nonzero(need))
        if not n:
            return
        if self.kv.take(n):
            b[_TAKEN] += need
            b[_CAP] += need * self.kv.block
            return
        self._sync(np.arange(self.n))
        run = [self.records[i] for i in b[_IDX].tolist()]
        blk = self.kv.block
        i = 0
        while i < len(run):
            r = run[i]
            if r.computed + 1 > (r.taken + r.held) * blk:
                while not self.kv.take(1):
                    victim = run.pop()      # the youngest; r itself when it is the last
                    self._preempt(victim)
                    if victim is r:
                        break
                else:
                    r.taken += 1
                    i += 1
                    continue
                break
            i += 1
        self._set_batch(run)

    def _schedule(self):
        """The step's prefill chunk, after the decodes' blocks (module docstring); decodes held
        back (``shapes.decode_hold``) while a prompt is prefilled and few slots are filled."""
        sh = self.shapes
        hold = bool(sh.decode_hold and self.n <= sh.decode_hold * self.max_batch and (
            self.prefilling is not None or (self.waiting and self.n < self.max_batch)))
        if not hold:
            self._blocks_for_decodes()
        decodes = 0 if hold else self.n
        p = self.prefilling
        if p is None and self.waiting and self.n < self.max_batch:
            p = self.waiting[0]
            prefix = min(p.req.prefix_tokens, p.target - 1)
            p.held = self.kv.hit_prefix(p.req.prefix, prefix)
            p.computed = p.held * self.kv.block
            self.hits += p.computed
        chunk = 0
        if p is not None:
            chunk = p.target - p.computed
            if self.chunk:
                chunk = min(chunk, self.chunk - decodes)
            if sh.prefill_chunks:
                chunk = min(chunk, sh.chunk_for(p.target))
            if chunk > 0 and self._grow(p, p.computed + chunk):
                if p is not self.prefilling:
                    self.waiting.pop(0)
                    self.prefilling = p
            else:
                if p is not self.prefilling:      # not admitted: give the hits back
                    self.kv.release_prefix(p.req.prefix, p.held)
                    self.hits -= p.computed
                    p.held = p.computed = 0
                p, chunk = None, 0
        if hold and p is None:                    # nothing to hold them for
            self._blocks_for_decodes()
            decodes = self.n
        return decodes, p, chunk

    def _latency(self, decodes: int, p: _Req | None, chunk: int) -> float:
        """The step's latency as the engine's shapes pad it (:mod:`tpusim.serve.shapes`)."""
        sh = self.shapes
        kv = self.B[_COMP, :decodes] + 1
        if sh.attention_block > 1:
            kv = -(-kv // sh.attention_block) * sh.attention_block
        tokens = chunk
        if p is not None and sh.prefill_chunks:
            tokens = sh.chunk_for(p.target)
        batch = self.max_batch if sh.fixed_batch and decodes else 0
        sampled = max(decodes, batch) + tokens if sh.all_logits else None
        return self.timer.latency(kv, tokens, (p.computed + tokens) if p else 0, batch, sampled)

    def _loop(self):
        env = self.env
        while self.left:
            decodes, p, chunk = self._schedule()
            if not decodes and p is None:
                if self.prefilling:
                    raise RuntimeError("scheduler stalled with work in hand")  # a bug, not input
                self.wake = env.event()
                yield self.wake
                continue
            b = self.B[:, :decodes]
            yield env.timeout(self._latency(decodes, p, chunk))
            self.steps += 1
            if decodes:
                b[_COMP:_GEN + 1] += 1
                done = b[_GEN] >= b[_OUT]
                if done.any():
                    pos = np.flatnonzero(done)
                    self._sync(pos)
                    for j in b[_IDX, pos].tolist():
                        self._finish(self.records[j])
                    self._keep(~done)
            if p is not None:
                p.computed += chunk
                if p.computed >= p.target:
                    self.prefilling = None
                    p.generated += 1
                    if math.isnan(p.first_s):
                        p.first_s = env.now
                    p.moved = self.kv.publish_prefix(p.req.prefix, min(
                        p.req.prefix_tokens, p.computed), p.held)
                    if p.generated >= p.req.output_tokens:
                        self._finish(p)
                    else:
                        self._append(p)
            self.util.append((env.now, self.kv.used / self.kv.total))


def min_event(env: simpy.Environment, done, duration: float):
    """An event that fires when ``done`` does or at ``duration``, whichever is first."""
    return env.any_of([done, env.timeout(duration)])

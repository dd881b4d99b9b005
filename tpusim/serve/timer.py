"""The latency of one serving step, ragged decode batches included, in O(1) table look-ups.

A step carries one new token for each decode sequence, each attending to its own KV length, and
at most one prefill chunk. Its exact cost is :meth:`tpusim.generation.StepCostModel.step` of the
step's trace: the rows that do not depend on KV run all ``T`` new tokens together (the *body*:
embedding, norms, projections, FFN), the LM head runs the ``s`` sampled tokens, the attention
rows (QK^T, softmax, AV) run once per distinct KV length, and with TP the all-reduces (``T``
tokens) and the logits' all-gather (``s`` tokens) follow. :class:`StepTimer` adds these parts:

    step = body(T) + head(s) + sum over the decodes of attention(KV)
           - (distinct KV lengths - 1) x fixed + prefill attention

* ``body(T)`` (with the all-reduces), ``head(s)`` (with the all-gather) and one sequence's
  decode ``attention(KV)`` are :class:`FoldCurve` tables over every integer: exact at both ends
  of every array fold (``W`` = the array's width; the tiling jumps between folds), refined where
  the straight line misses an interval's midpoint by more than ``rtol``, linear between. Within
  a fold these curves are straight lines with at most a kink (weight-bound to compute-bound), so
  the error stays about ``2 x rtol`` (:func:`tpusim.generation._interpolated` says why);
* several decodes at one KV length are one batched attention row in the exact step: such a
  group is evaluated on its own (memoised);
* the decodes' attention is one kernel per layer (:mod:`tpusim.step_trace`): every distinct KV
  length after the first gives back its rows' per-op fixed cost, which each table entry (a
  group timed alone) includes;
* a prefill chunk's attention is evaluated with its tokens rounded up to ``tok_q`` and
  interpolated linearly between KV lengths that are multiples of ``kv_q``.

Assumption: a part's cost does not depend on the rows around it (the prefetch state and
on-chip residency carried across the part's edges are ignored); with the interpolation this
keeps the timer within 0.5% of the exact ragged step (``benchmarks/bench_serve.py``, README).
A step then costs a few array look-ups and one sum over the batch; the tables grow a fold at a
time, each level of refinement one call of the columnar core (:func:`tpusim.columnar.evaluate`,
equal to :func:`tpusim.simulate`). ``exact=True`` costs every step by its own ragged trace.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..step_trace import _ATTENTION, _attention_rows
from ..timing.vector import layer_vector_cost

_HEAD = ("final_norm", "lm_head")


class FoldCurve:
    """``f(x)`` at every integer ``x >= 1`` from a few evaluations (module docstring): ``rows(x)``
    are the trace rows whose latency is timed, ``extra(x)`` seconds added to it (collectives).
    Folds are built when first needed, several curves' together (:func:`build`)."""

    def __init__(self, rows: Callable[[int], list[dict]], extra: Callable[[int], float] | None,
                 width: int, rtol: float = 1e-3):
        self.rows, self.extra, self.width, self.rtol = rows, extra, max(1, int(width)), rtol
        self.table = np.zeros(1)          # table[x]; x = 0 and unbuilt folds unused
        self.built: list[bool] = []      # per fold
        self.evaluated = 0

    def missing(self, lo: int, hi: int) -> list[int]:
        """Folds not yet built among those holding ``lo .. hi``."""
        f0, f1 = (lo - 1) // self.width, (hi - 1) // self.width
        if f1 < len(self.built) and (self.built[f0] if f0 == f1 else all(self.built[f0:f1 + 1])):
            return []
        return [f for f in range(f0, f1 + 1) if f >= len(self.built) or not self.built[f]]

    def builder(self, folds: list[int]):
        """A generator that builds ``folds``: it yields the ``x`` it needs and is sent their
        values, level by level of refinement."""
        w = self.width
        todo = [(f * w + 1, (f + 1) * w) for f in folds]
        known: dict[int, float] = {}
        want = [e for ab in todo for e in ab]
        while todo:
            want += [(a + b) // 2 for a, b in todo if b - a > 1]
            new = [v for v in dict.fromkeys(want) if v not in known]
            known.update(zip(new, (yield new)))
            self.evaluated += len(new)
            want, split = [], []
            for a, b in todo:
                if b - a <= 1:
                    continue
                m = (a + b) // 2
                line = known[a] + (m - a) / (b - a) * (known[b] - known[a])
                if abs(line - known[m]) > self.rtol * abs(known[m]):
                    split += [(a, m), (m, b)]
            todo = split
        top = (max(folds) + 1) * w + 1
        if top > len(self.table):
            self.table = np.concatenate([self.table, np.zeros(top - len(self.table))])
            self.built += [False] * (top // w - len(self.built))
        for f in folds:
            xs = [x for x in sorted(known) if f * w < x <= (f + 1) * w]
            self.table[f * w + 1:(f + 1) * w + 1] = np.interp(
                np.arange(f * w + 1, (f + 1) * w + 1), xs, [known[x] for x in xs])
            self.built[f] = True

    def at(self, lo: int, hi: int, latencies) -> np.ndarray:
        """The table, built over ``lo .. hi``."""
        folds = self.missing(lo, hi)
        if folds:
            build([(self, folds)], latencies)
        return self.table


def build(work: list[tuple[FoldCurve, list[int]]], latencies) -> None:
    """Build each curve's folds, every level of every curve in one ``latencies`` call (a list
    of row lists -> their latencies)."""
    gens = [(c, c.builder(folds)) for c, folds in work if folds]
    asks = [(c, g, next(g)) for c, g in gens]
    while asks:
        lats = latencies([c.rows(x) for c, _, xs in asks for x in xs])
        nxt, i = [], 0
        for c, g, xs in asks:
            vals = [lat + (c.extra(x) if c.extra else 0.0)
                    for lat, x in zip(lats[i:i + len(xs)], xs)]
            i += len(xs)
            try:
                nxt.append((c, g, g.send(vals)))
            except StopIteration:
                pass
        asks = nxt


class StepTimer:
    """Step latency from the parts' tables, ragged batches per sequence (module docstring)."""

    def __init__(self, cost, exact: bool = False, tok_q: int = 16, kv_q: int = 128,
                 rtol: float = 1e-3):
        self.cost, self.exact, self.tok_q, self.kv_q = cost, exact, tok_q, kv_q
        chip = cost.chip
        width = min(chip.array.rows, chip.array.cols)
        self.memo: dict = {}
        self.groups: dict[tuple[int, int], float] = {}    # (KV, sequences) -> attention
        self.prefills: dict[tuple[int, int], float] = {}  # (tokens, KV) -> attention
        self.body = FoldCurve(self._body_rows, getattr(cost, "reduce_s", None), width, rtol)
        self.head = FoldCurve(self._head_rows, getattr(cost, "gather_s", None), width, rtol)
        self.one = FoldCurve(lambda k: self._attention_rows(1, k, 1), None, width, rtol)
        self.fixed = self._fixed_s()

    # ------------------------------------------------------------------ evaluation

    def _latencies(self, row_lists: list[list[dict]]) -> list[float]:
        """Latency of each list of trace rows as a workload of its own, in one columnar call
        (the event engine, which has no columnar form, through the step model); 0 for none."""
        from ..workload import Workload
        c = self.cost
        todo = [i for i, rows in enumerate(row_lists) if rows]
        out = [0.0] * len(row_lists)
        if not todo:
            return out
        if getattr(c, "path", None) == "event" or c.chip.timing.engine == "event":
            lats = [c._evaluate(c._lowered(row_lists[i]), 0).latency_s for i in todo]
        else:      # prepare() lowers each part as simulate does
            from ..columnar import evaluate, prepare
            hz, engine = c.chip.clock_ghz * 1e9, c.chip.timing.engine
            wls = [Workload(name=f"part{n}", source=f"llm:{c.model.name}",
                            layers=tuple(c._layer(r) for r in row_lists[i]))
                   for n, i in enumerate(todo)]
            lats = [float((col.cols["cycles"] * col.point.shape.count).sum()) / hz
                    for col in evaluate([prepare(c.chip, wl, c.forced, 1, engine)
                                         for wl in wls])]
        for i, lat in zip(todo, lats):
            out[i] = lat
        return out

    def _rows(self, tokens: int) -> list[dict]:
        from ..importers.llm import llm_rows
        c = self.cost
        return llm_rows(c.model, "prefill", 1, tokens, tokens, c.dtype, "all")

    def _body_rows(self, t: int) -> list[dict]:
        """``t`` new tokens' rows that do not depend on KV (head and attention left out)."""
        return [r for r in self._rows(t) if r["name"] not in _ATTENTION + _HEAD]

    def _head_rows(self, s: int) -> list[dict]:
        """The final norm and LM head of ``s`` sampled tokens."""
        return [r for r in self._rows(s) if r["name"] in _HEAD]

    def _attention_rows(self, seq: int, k: int, n: int) -> list[dict]:
        """Attention rows of ``n`` sequences of ``seq`` new tokens at KV ``k``."""
        c = self.cost
        return _attention_rows(c.model, seq, k, n, c.dtype, False, kv_dtype=c.kv_dtype)

    def _fixed_s(self) -> float:
        """Seconds of per-op fixed cost in one decode group's attention rows (over their
        counts): a GEMM's ``timing.overhead_cycles_per_op``, an unfused vector op's launch."""
        c = self.cost
        chip, total = c.chip, 0.0
        for r in self._attention_rows(1, 1, 1):
            layer = c._layer(r)
            if layer.kind == "gemm":
                total += layer.count * chip.timing.overhead_cycles_per_op
            elif not layer.fused:
                total += layer.count * layer_vector_cost(chip, layer).launch_cycles
        return total / (chip.clock_ghz * 1e9)

    def prepare(self, tokens: int, seqs: int, kv: int) -> None:
        """Build the tables up to ``tokens`` new tokens, ``seqs`` sampled ones and KV length
        ``kv`` (each capped at 16 folds; the rest are built when first needed), together."""
        if self.exact:
            return
        cap = 16 * self.body.width
        build([(c, c.missing(1, min(n, cap))) for c, n in
               ((self.body, tokens), (self.head, seqs), (self.one, kv)) if n >= 1],
              self._latencies)

    # ------------------------------------------------------------------ the step

    def decode_attention(self, kv: np.ndarray) -> float:
        """Every decode's attention at its own KV length; sequences at one length together."""
        if len(kv) == 1:
            k = int(kv[0])
            return float(self.one.at(k, k, self._latencies)[k])
        srt = np.sort(kv)
        table = self.one.at(int(srt[0]), int(srt[-1]), self._latencies)
        if not (srt[1:] == srt[:-1]).any():
            return float(table[kv].sum()) - (len(kv) - 1) * self.fixed
        ks, ns = np.unique(srt, return_counts=True)
        single = ns == 1
        many = list(zip(ks[~single].tolist(), ns[~single].tolist()))
        new = [g for g in many if g not in self.groups]
        self.groups.update(zip(new, self._latencies(
            [self._attention_rows(1, k, n) for k, n in new])))
        return (float(table[ks[single]].sum()) + sum(self.groups[g] for g in many)
                - (len(ks) - 1) * self.fixed)

    def prefill_attention(self, tokens: int, kv: int) -> float:
        """A prefill chunk's attention: tokens up to ``tok_q``, linear in KV between multiples
        of ``kv_q`` (module docstring)."""
        p = -(-tokens // self.tok_q) * self.tok_q
        k0 = max(p, kv // self.kv_q * self.kv_q)
        k1 = max(p, -(-kv // self.kv_q) * self.kv_q)
        pre = self.prefills
        if (p, k0) not in pre or (p, k1) not in pre:
            new = list(dict.fromkeys((k0, k1)))
            pre.update(zip([(p, k) for k in new], self._latencies(
                [self._attention_rows(p, k, 1) for k in new])))
        a0, a1 = pre[(p, k0)], pre[(p, k1)]
        return a0 if k1 == k0 else a0 + (max(kv, p) - k0) / (k1 - k0) * (a1 - a0)

    def latency(self, kv: Sequence[int], prefill: int = 0, prefill_kv: int = 0,
                batch: int = 0, sampled: int | None = None) -> float:
        """The step of decode sequences at KV lengths ``kv`` (each its new token included) and a
        prefill chunk of ``prefill`` tokens attending to ``prefill_kv`` keys (module docstring);
        ``batch``: the rows that do not depend on KV run at least this many decode tokens (a
        fixed compiled batch, its idle slots' attention skipped); ``sampled``: the tokens the LM
        head runs (default: one per decode, one for a prefill)."""
        if self.exact:
            if batch > len(kv):
                raise InputError("--fixed-batch", None, batch,
                                 "padding the batch needs the table timer (exact=False)")
            if sampled is not None and sampled != len(kv) + (1 if prefill else 0):
                raise InputError("--all-logits", None, message="logits of every token need "
                                 "the table timer (exact=False)")
            key = (tuple(sorted(int(k) for k in kv)), prefill, prefill_kv)
            lat = self.memo.get(key)
            if lat is None:
                lat = self.memo[key] = self.cost.step(
                    list(kv), prefill, prefill_kv if prefill else None).latency_s
            return lat
        kv = np.asarray(kv, dtype=np.int64)
        b = len(kv)
        t = max(b, batch) + prefill
        s = sampled if sampled is not None else max(b, batch) + (1 if prefill else 0)
        lats = self._latencies
        lat = float(self.body.at(t, t, lats)[t]) + float(self.head.at(s, s, lats)[s])
        if b:
            lat += self.decode_attention(kv)
        if prefill:
            lat += self.prefill_attention(prefill, max(prefill_kv, prefill))
        return lat


__all__ = ["FoldCurve", "StepTimer", "build"]

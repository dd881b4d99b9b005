"""The latency of one serving step, ragged decode batches included, fast enough for a whole run.

A step carries one new token for each decode sequence, each attending to its own KV length, and
at most one prefill chunk. Its exact cost is :meth:`tpusim.generation.StepCostModel.step` of the
step's trace, where the shared rows (projections, FFN, LM head) run all new tokens together and
the attention rows (QK^T, softmax, AV) run once per distinct KV length. Each distinct shape costs
a simulation and a ragged batch is nearly always a new shape, so :class:`StepTimer` splits it:

* **the batch at its mean KV** on a grid, ``batch_q`` sequences (powers of two below) by
  ``kv_q`` KV tokens, interpolated bilinearly between (the step is close to linear in both
  between array-width folds), prefill chunks padded up to ``tok_q`` tokens and their KV to
  ``kv_q``;
* **plus the ragged batch's attention**: the attention rows of each (KV length, sequences)
  group evaluated on their own, minus those of the grid batches the mean was interpolated from.
  The shared rows do not depend on KV, so they cancel; what is left is every sequence's
  attention at its own length. Assumption: the attention rows' cost does not depend on the rows
  around them (the carried prefetch state and on-chip residency at their edges are ignored).

Missing grid points are evaluated together in one call of the columnar core
(:func:`tpusim.columnar.evaluate`, equal to :func:`tpusim.simulate`), and one sequence's
attention at every ``attn_q``-th KV length of an array fold (``W`` lengths) at once. ``batch_q = tok_q =
kv_q = 1`` is exact: the step's own ragged trace. ``benchmarks/bench_serve.py`` measures the
timer against exact ragged steps and states the error in README.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

_Key = tuple[int, int, int, int]     # (decode sequences, KV, prefill tokens, prefill KV)


class StepTimer:
    """Memoised step latency on shape buckets, ragged batches per sequence (module docstring)."""

    def __init__(self, cost, batch_q: int = 8, tok_q: int = 16, kv_q: int = 128,
                 attn_q: int = 32):
        self.cost, self.batch_q, self.tok_q, self.kv_q = cost, batch_q, tok_q, kv_q
        self.attn_q = attn_q
        self.memo: dict = {}
        self.attn: dict[tuple[int, int], float] = {}
        self._one = np.zeros(1)       # one sequence's attention at KV 0 .. len - 1 (0 unused)

    @property
    def exact(self) -> bool:
        return self.batch_q == self.tok_q == self.kv_q == 1

    @staticmethod
    def _up(v: int, q: int) -> int:
        return -(-v // q) * q

    # ------------------------------------------------------------------ evaluation

    def _columnar(self, workloads: list) -> list[float] | None:
        """Latency of each workload (its cycles over the clock), in one columnar call; None for
        the event engine, which has no columnar form."""
        c = self.cost
        if getattr(c, "path", None) == "event" or c.chip.timing.engine == "event":
            return None
        from ..columnar import evaluate, prepare
        hz, engine = c.chip.clock_ghz * 1e9, c.chip.timing.engine
        return [float((col.cols["cycles"] * col.point.shape.count).sum()) / hz
                for col in evaluate([prepare(c.chip, wl, c.forced, 1, engine)
                                     for wl in workloads])]

    def _fill(self, keys: list[_Key], groups: list[tuple[int, int]] = ()) -> None:
        """Grid steps not yet known (the step's trace, plus the TP collectives if any) and
        attention rows of (KV, sequences) groups on their own, in one columnar call."""
        keys = [k for k in dict.fromkeys(keys) if k not in self.memo]
        groups = [g for g in dict.fromkeys(groups) if g not in self.attn]
        if not keys and not groups:
            return
        from ..step_trace import _attention_rows
        from ..workload import Workload
        c = self.cost
        wls = [c.trace([k] * b, p, pk if p else None) for b, k, p, pk in keys]
        wls += [Workload(name=f"attn_{k}x{n}", source=f"llm:{c.model.name}", layers=tuple(
            c._layer(r) for r in _attention_rows(c.model, 1, k, n, c.dtype, False)))
            for k, n in groups]
        lats = self._columnar(wls)
        comm = getattr(c, "collectives_s", None)
        for i, (b, k, p, pk) in enumerate(keys):
            if lats is None:
                self.memo[(b, k, p, pk)] = c.step([k] * b, p, pk if p else None).latency_s
            else:
                extra = comm(b + p, b + (1 if p else 0)) if comm and c.tp > 1 else 0.0
                self.memo[(b, k, p, pk)] = lats[i] + extra
        for i, g in enumerate(groups, len(keys)):
            self.attn[g] = lats[i] if lats is not None else \
                c._evaluate(list(wls[i].layers), 0).latency_s

    def _attention(self, groups: list[tuple[int, int]]) -> None:
        self._fill([], groups)

    def _extend(self, k: int) -> None:
        """One sequence's attention at every KV length up to ``k``, a fold (``W`` lengths) at a
        time: exact at the fold's ends (where the tiling jumps) and every ``attn_q`` lengths,
        linear between (within a fold it rises by small rounding steps only)."""
        chip = self.cost.chip
        width = min(chip.array.rows, chip.array.cols)
        while k >= len(self._one):
            lo = len(self._one)
            hi = (lo - 1) // width * width + width
            at = sorted(set(range(lo, hi, self.attn_q)) | {hi})
            self._attention([(j, 1) for j in at])
            lat = np.interp(np.arange(lo, hi + 1), at, [self.attn.pop((j, 1)) for j in at])
            self._one = np.concatenate([self._one, lat])

    # ------------------------------------------------------------------ the step

    def ragged(self, kv: Sequence[int], corners) -> float:
        """What costing each distinct KV length's attention on its own adds to the batch at its
        mean KV: the step's groups' attention rows minus the grid batches' (``corners``:
        (weight, sequences, KV) the mean was interpolated from)."""
        arr = np.asarray(kv)
        self._extend(int(arr.max()))
        ks, ns = np.unique(arr, return_counts=True)
        one = ns == 1
        many = list(zip(ks[~one].tolist(), ns[~one].tolist()))
        grid = [(k, b) for f, b, k in corners if f]
        self._attention(many + grid)
        own = float(self._one[ks[one]].sum()) + sum(self.attn[g] for g in many)
        return own - sum(f * self.attn[(k, b)] for f, b, k in corners if f)

    def latency(self, kv: Sequence[int], prefill: int = 0, prefill_kv: int = 0) -> float:
        """The step of decode sequences at KV lengths ``kv`` (each its new token included) and a
        prefill chunk of ``prefill`` tokens attending to ``prefill_kv`` keys (module docstring)."""
        batch = len(kv)
        if self.exact:
            key = (tuple(sorted(kv)), prefill, prefill_kv)
            lat = self.memo.get(key)
            if lat is None:
                lat = self.memo[key] = self.cost.step(
                    list(kv), prefill, prefill_kv if prefill else None).latency_s
            return lat
        p = self._up(prefill, self.tok_q) if prefill else 0
        pk = max(self._up(prefill_kv, self.kv_q), p) if prefill else 0
        memo = self.memo
        if not batch:
            self._fill([(0, 0, p, pk)])
            return memo[(0, 0, p, pk)]
        mean = sum(kv) / batch
        bq, kq = self.batch_q, self.kv_q
        if batch >= bq:          # grid: multiples of batch_q, powers of two below
            b0 = (batch // bq) * bq
            b1 = b0 if b0 == batch else b0 + bq
        else:
            b0 = 1 << (batch.bit_length() - 1)
            b1 = b0 if b0 == batch else min(2 * b0, bq)
        k0 = max(1, int(mean // kq) * kq)
        k1 = k0 if k0 == mean else self._up(math.ceil(mean), kq)
        corners = [(b0, k0, p, pk), (b0, k1, p, pk), (b1, k0, p, pk), (b1, k1, p, pk)]
        if any(c not in memo for c in corners):   # the corners and their attention, one call
            self._fill(corners, [(k, b) for b, k, _, _ in corners if b > 1])
        fb = 0.0 if b1 == b0 else (batch - b0) / (b1 - b0)
        fk = 0.0 if k1 == k0 else (mean - k0) / (k1 - k0)
        lo = memo[corners[0]] * (1 - fk) + (memo[corners[1]] * fk if fk else 0.0)
        if fb:
            hi = memo[corners[2]] * (1 - fk) + (memo[corners[3]] * fk if fk else 0.0)
            lo = lo * (1 - fb) + hi * fb
        if min(kv) != max(kv):
            lo += self.ragged(kv, (((1 - fb) * (1 - fk), b0, k0), ((1 - fb) * fk, b0, k1),
                                   (fb * (1 - fk), b1, k0), (fb * fk, b1, k1)))
        return lo


__all__ = ["StepTimer"]

"""LLM generation and the cost of one engine step: a prefill, then decode steps whose KV grows.

A step's trace (:func:`tpusim.step_trace.step_rows`) changes with the KV lengths only in its
attention rows (QK^T, softmax, AV); every other row has the same shape
in every step with the same number of new tokens. :class:`StepCostModel` evaluates a step's rows
with the simulator's own per-instance model, in the order and with the carried state that
:func:`tpusim.simulate` uses, and memoises each instance on everything it depends on: the layer,
its format, where its input and output live, weight caching, and the part of the carried state
that can change it. For a GEMM that part is the prefetchable idle-channel bytes clamped at its
largest first weight tile (more cannot be prefetched); for a fused vector op, the producer's
cycles clamped at its own (more hide it completely); an unfused vector op depends on none. So a
step pays only for instances it has not seen, and its totals equal ``simulate()`` of its trace
(up to the order of floating-point additions). Within a row the carried state repeats after a
few instances, so a ``count = 80`` row costs a handful of evaluations.

:func:`generate` runs a prefill of ``prompt`` tokens and ``steps`` decode steps (KV
``prompt + 1 ... prompt + steps``). Each decode step has its own KV length, so exact evaluation
still costs one set of attention instances per step; ``kv_stride > 1`` evaluates exactly every
``kv_stride``-th KV length (and the last), refines where a straight line misses an interval's
midpoint by more than ``rtol``, and interpolates latency and energy linearly in between
(:func:`_interpolated` says why the error stays about ``2 x rtol``; measured against exact
evaluation by ``benchmarks/bench_generation.py`` and stated in README).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import ChipConfig, load_config
from .compression import lower
from .cores import core_chip, split_gemm
from .errors import InputError
from .formats import get_format
from .importers.llm import LlmConfig, get_preset, llm_rows
from .importers.llm_step_args import check_positions
from .step_trace import _attention_rows, _groups, _shared_rows, continued, step_rows  # noqa: F401
from .memory import (check_tile_fits, double_buffered, gemm_traffic_options, plan_residency,
                     plan_weight_cache, with_double_buffered)
from . import simulator as _sim
from .layer_rules import invoke_cost, resolve_format as _resolve_format
from .simulator import _Carry
from .timing import array_timing
from .timing.overlap import first_tile_bytes
from .timing.vector import layer_vector_cost
from .timing.path import timing_path
from .workload import Layer, make_layer

_TOTALS = ("cycles", "energy_pj", "hbm_read_bytes", "hbm_write_bytes", "macs")


@dataclass(frozen=True)
class StepCost:
    """Totals of one engine step (over every row's ``count``)."""

    cycles: float
    latency_s: float
    energy_j: float
    hbm_bytes: float
    macs: float
    new_tokens: int


class StepCostModel:
    """Latency and energy of one engine step of ``model`` on ``config``, memoised (see module).

    ``step(decode_kv, prefill_tokens, prefill_kv)`` is exact: it equals ``simulate()`` of the
    step's trace (:meth:`trace`). Evaluated instances are kept for the model's lifetime.
    """

    def __init__(self, config: ChipConfig | str, model: LlmConfig | str, dtype: str = "bf16",
                 format: str | None = None, logits: str = "last", kv_dtype: str | None = None):
        self.chip = config if isinstance(config, ChipConfig) else load_config(config)
        self.model = get_preset(model) if isinstance(model, str) else model
        self.dtype, self.logits, self.kv_dtype = dtype, logits, kv_dtype
        self.forced = self.chip.check_format(format, "--format") if format else None
        self.path = timing_path(self.chip, None)   # the simulator's one choice of path
        self._layers: dict[tuple, Layer] = {}
        self._instances: dict[tuple, tuple[dict[str, Any], tuple[float, float]]] = {}
        self._rows: dict[tuple, tuple[tuple[float, ...], tuple[float, float]]] = {}
        self._clamp: dict[tuple, float] = {}
        self._formats: dict[int, Any] = {}
        self._checked: set[str] = set()
        self._pieces: dict[tuple, Any] = {}
        self._lowered_memo: dict[tuple, list[Layer]] = {}

    def rows(self, decode_kv: Sequence[int] = (), prefill_tokens: int = 0,
             prefill_kv: int | None = None) -> list[dict[str, Any]]:
        return step_rows(self.model, decode_kv, prefill_tokens, prefill_kv, self.dtype,
                         self.logits, self.kv_dtype)

    def trace(self, decode_kv: Sequence[int] = (), prefill_tokens: int = 0,
              prefill_kv: int | None = None):
        """The step as a :class:`~tpusim.workload.Workload` for :func:`tpusim.simulate`."""
        from .workload import Workload
        src = f"llm:{self.model.name}"
        layers = tuple(self._layer(r) for r in self.rows(decode_kv, prefill_tokens, prefill_kv))
        return Workload(name=f"{self.model.name}_step", layers=layers, source=src)

    def step(self, decode_kv: Sequence[int] = (), prefill_tokens: int = 0,
             prefill_kv: int | None = None) -> StepCost:
        """Cost of one step (arguments as :func:`step_rows`); its layers are built from pieces
        kept per (tokens, sequences) and per attention group, equal to :meth:`trace`'s."""
        groups, tokens, seqs = _groups(decode_kv, prefill_tokens, prefill_kv)
        shared = self._pieces.get((tokens, seqs))
        if shared is None:
            shared = self._pieces[(tokens, seqs)] = tuple(
                [self._layer(r) for r in part]
                for part in _shared_rows(self.model, tokens, seqs, self.dtype, self.logits))
        many = len(groups) > 1
        layers = list(shared[0])
        for (seq, kv), n, more in continued(groups):
            key = (seq, kv, n, many, more)
            attn = self._pieces.get(key)
            if attn is None:
                attn = self._pieces[key] = self._lowered(_attention_rows(
                    self.model, seq, kv, n, self.dtype, many, more, self.kv_dtype))
            layers += attn
        return self._evaluate(layers + shared[1], tokens)

    def _lowered(self, rows: list[dict[str, Any]]) -> list[Layer]:
        """The rows' layers as the array runs them (``compression.lower``, as ``simulate``
        lowers a trace): a K/V cache narrower than the datapath streams its own bytes."""
        from .workload import Workload
        layers = tuple(self._layer(r) for r in rows)
        key = tuple(map(id, layers))       # the row layers are kept: their ids are stable
        out = self._lowered_memo.get(key)
        if out is None:     # kept too, for the id-keyed memos below
            out = self._lowered_memo[key] = list(
                lower(Workload(name="piece", layers=layers), self.chip, self.forced).layers)
        return out

    def _layer(self, row: dict[str, Any]) -> Layer:
        key = tuple(sorted(row.items()))
        layer = self._layers.get(key)
        if layer is None:
            layer = self._layers[key] = make_layer(row, f"llm:{self.model.name}")
        return layer

    def _format(self, layer: Layer):
        f = self._formats.get(id(layer))
        if f is None:
            name = _resolve_format(layer, self.chip, self.forced, f"llm:{self.model.name}")
            f = self._formats[id(layer)] = get_format(name)
        return f

    def _evaluate(self, layers: list[Layer], new_tokens: int) -> StepCost:
        chip = self.chip
        fmts = [self._format(l) for l in layers]
        for f in fmts:
            if f.name not in self._checked:
                check_tile_fits(chip, f, chip.name)
                self._checked.add(f.name)
        residency = plan_residency(layers, chip, fmts)
        cached = plan_weight_cache(layers, chip, fmts)
        carry = (0.0, 0.0)
        cycles = energy = hbm = macs = 0.0
        for layer, fmt, res, cache in zip(layers, fmts, residency, cached):
            i, o = res.instances(1 if layer.count == 1 else 2)[0][1:]
            key = (id(layer), fmt.name, res, cache, self._seen(layer, fmt, i, o, cache, carry))
            hit = self._rows.get(key)
            if hit is None:
                hit = self._rows[key] = self._row(layer, fmt, res, cache, carry)
            totals, out = hit
            if not layer.fused:
                carry = out
            cycles += totals[0]
            energy += totals[1]
            hbm += totals[2] + totals[3]
            macs += totals[4]
        invoke, idle_pj = invoke_cost(chip)   # one invoke per step, as simulate(trace) pays
        cycles, energy = cycles + invoke, energy + idle_pj
        return StepCost(cycles=cycles, latency_s=cycles / (chip.clock_ghz * 1e9),
                        energy_j=energy * 1e-12, hbm_bytes=hbm, macs=macs,
                        new_tokens=new_tokens)

    def _row(self, layer: Layer, fmt, res, cache: bool, carry: tuple[float, float]):
        """A row's totals over its count and the state it leaves, as ``simulate`` times it.

        Each run of identical-residency instances is timed by the simulator's own
        ``_run_instances`` (until the carried state repeats) over the memoised instances."""
        variants = []
        for n, i, o in res.instances(layer.count):
            c = _Carry(*carry)

            def one(layer=layer, i=i, o=o, c=c):
                row, out = self._instance(layer, fmt, i, o, cache, (c.cycles, c.idle_bytes))
                c.cycles, c.idle_bytes = out
                return row
            variants += _sim._run_instances(n, one, c)
            carry = (c.cycles, c.idle_bytes)
        # the row's totals: sum over instances of (share x per-instance value), as simulate()
        # gets them from its averaged row times count (equal up to rounding)
        totals = tuple(sum(n * v[k] for n, v in variants) for k in _TOTALS)
        return totals, carry

    def _seen(self, layer: Layer, fmt, i: bool, o: bool, cache: bool,
              carry: tuple[float, float]) -> tuple[float, float]:
        """The part of the carried state an instance's numbers depend on (module docstring)."""
        if layer.kind == "gemm":
            static = (id(layer), fmt.name, i, o, cache)
            clamp = self._clamp.get(static)
            if clamp is None:
                one, part = core_chip(self.chip), split_gemm(layer, self.chip).layer
                one = with_double_buffered(one, double_buffered(one, part, fmt))
                at = array_timing(part, one, fmt.name)
                clamp = self._clamp[static] = max(
                    first_tile_bytes(at, t)
                    for t in gemm_traffic_options(part, one, fmt, i, o, cache))
            return (0.0, min(carry[1], clamp))
        if layer.fused:
            return (min(carry[0], layer_vector_cost(self.chip, layer).compute_cycles), 0.0)
        return (0.0, 0.0)

    def _instance(self, layer: Layer, fmt, i: bool, o: bool, cache: bool,
                  carry: tuple[float, float]):
        """One instance, memoised on the carried state it can see; returns (row, carry out)."""
        seen = self._seen(layer, fmt, i, o, cache, carry)
        key = (id(layer), fmt.name, i, o, cache, seen)
        hit = self._instances.get(key)
        if hit is None:
            c = _Carry(*seen)
            row = _sim._instance(self.chip, layer, fmt, i, o, c, self.path, cache)
            hit = self._instances[key] = (row, (c.cycles, c.idle_bytes))
        row, out = hit
        return row, (carry if layer.fused else out)


@dataclass
class Generation:
    """A prefill then ``len(decode_kv)`` decode steps of ``batch`` sequences."""

    config: str
    model: str
    batch: int
    prompt: int
    prefill: StepCost
    decode_kv: np.ndarray          # KV length of each decode step (its new token included)
    decode_latency_s: np.ndarray
    decode_energy_j: np.ndarray
    kv_stride: int = 1
    rtol: float | None = None

    @property
    def steps(self) -> int:
        return len(self.decode_kv)

    @property
    def total_s(self) -> float:
        return self.prefill.latency_s + float(self.decode_latency_s.sum())

    @property
    def output_tokens(self) -> int:
        """The prefill samples each sequence's first token, every decode step one more."""
        return self.batch * (1 + self.steps)

    def summary(self) -> dict[str, Any]:
        decode_s = float(self.decode_latency_s.sum())
        return {
            "config": self.config, "model": self.model, "batch": self.batch,
            "prompt_tokens": self.prompt, "decode_steps": self.steps,
            "kv_stride": self.kv_stride, "rtol": self.rtol,
            "time_to_first_token_s": self.prefill.latency_s,
            # no decode step, no time per decoded token (None: JSON null, not a 0 that reads
            # as infinitely fast)
            "ms_per_output_token": decode_s / self.steps * 1e3 if self.steps else None,
            "output_tokens": self.output_tokens,
            "tokens_per_s": self.output_tokens / self.total_s if self.total_s > 0 else 0.0,
            "total_s": self.total_s,
            "energy_j": self.prefill.energy_j + float(self.decode_energy_j.sum()),
            "prefill_energy_j": self.prefill.energy_j,
        }


def generate(config: ChipConfig | str, model: LlmConfig | str, prompt: int, steps: int,
             batch: int = 1, dtype: str = "bf16", format: str | None = None,
             kv_stride: int = 1, rtol: float = 1e-4,
             cost: StepCostModel | None = None) -> Generation:
    """Prefill ``batch`` prompts of ``prompt`` tokens (the LM head on each one's last token),
    then ``steps`` decode steps, step ``j`` attending to ``prompt + j`` keys.

    ``kv_stride = 1``: every step exact. Larger (capped at the array's rows and columns): steps
    every ``kv_stride`` KV lengths are exact and the rest interpolated, refined until each
    interval's midpoint is within ``rtol`` (:func:`_interpolated`)."""
    for name, v, low in (("prompt", prompt, 1), ("steps", steps, 0), ("batch", batch, 1),
                         ("kv_stride", kv_stride, 1)):
        if not isinstance(v, (int, np.integer)) or v < low:
            raise InputError("generate", name, v, f"must be an integer >= {low}")
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise InputError("generate", "rtol", rtol, "must be a number in (0, 1)")
    cost = cost or StepCostModel(config, model, dtype, format)
    check_positions(cost.model, prompt + steps, "generate", "prompt + steps")
    prefill_rows = llm_rows(cost.model, "prefill", batch, prompt, prompt, dtype, "last")
    prefill = cost._evaluate([cost._layer(r) for r in prefill_rows], batch * prompt)
    kv = np.arange(prompt + 1, prompt + steps + 1, dtype=np.int64)
    if kv_stride == 1 or steps < 3:   # every step exact: recorded as stride 1
        kv_stride = 1
        at = [cost.step([int(k)] * batch) for k in kv]
        lat = np.array([s.latency_s for s in at], dtype=float)
        en = np.array([s.energy_j for s in at], dtype=float)
    else:
        # a fold more every array width: at most one such jump per starting interval, so
        # two equal jumps cannot hide each other from the midpoint test
        chip = cost.chip
        kv_stride = min(kv_stride, chip.array.rows, chip.array.cols)
        lat, en = _interpolated(cost, batch, kv, kv_stride, rtol)
    name = config if isinstance(config, str) else cost.chip.name
    return Generation(config=str(name), model=cost.model.name, batch=batch, prompt=prompt,
                      prefill=prefill, decode_kv=kv, decode_latency_s=lat, decode_energy_j=en,
                      kv_stride=kv_stride, rtol=rtol if kv_stride > 1 else None)


def _interpolated(cost: StepCostModel, batch: int, kv: np.ndarray, stride: int,
                  rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """Step latency and energy at every KV length in ``kv``, exact at anchors and linear between.

    Anchors start every ``stride`` KV lengths (and the last); each interval's midpoint is then
    evaluated exactly and, when the straight line misses it by more than ``rtol`` (relative, in
    latency or energy), the interval is split, down to adjacent integers. Step cost rises with
    KV length linearly between jumps (a fold more at an array-width boundary, a tile that stops
    fitting); a jump J inside an interval puts the midpoint J/2 off the line, so every jump over
    ``2 x rtol`` of the step is pinned between two anchors, provided an interval holds one jump
    (two equal ones can cancel at the midpoint: hence the stride cap in :func:`generate`).
    Measured (``benchmarks/bench_generation.py``, README): error <= 4 x rtol per step."""
    exact: dict[int, tuple[float, float]] = {}

    def at(k: int) -> tuple[float, float]:
        if k not in exact:
            s = cost.step([k] * batch)
            exact[k] = (s.latency_s, s.energy_j)
        return exact[k]

    lo, hi = int(kv[0]), int(kv[-1])
    marks = list(range(lo, hi, stride)) + [hi]
    todo = list(zip(marks, marks[1:]))
    while todo:
        a, b = todo.pop()
        (la, ea), (lb, eb) = at(a), at(b)
        if b - a <= 1:
            continue
        m = (a + b) // 2
        lm, em = at(m)
        f = (m - a) / (b - a)
        if (abs(la + f * (lb - la) - lm) > rtol * lm
                or abs(ea + f * (eb - ea) - em) > rtol * em):
            todo += [(a, m), (m, b)]
    keys = np.array(sorted(exact), dtype=np.int64)
    lat = np.array([exact[k][0] for k in keys])
    en = np.array([exact[k][1] for k in keys])
    return np.interp(kv, keys, lat), np.interp(kv, keys, en)


__all__ = ["StepCost", "StepCostModel", "Generation", "generate", "step_rows"]

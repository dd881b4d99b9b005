"""Per-layer costs of a chip's shard program, memoised across the candidates of a search.

Every chip of an evenly sharded SPMD program runs the same rows; ``simulate_rows`` prices them
through the single-chip ``simulate`` and remembers the answer, keyed by what the cost depends
on: the chip config and the rows' shapes (names, kinds, dims, formats), so a search pays once
per distinct shard, however many layouts (dp/fsdp splits, remat policies, microbatch counts at
the same per-microbatch batch) share it.

Two ways to price a row's ``count`` instances:

* ``per_instance=False`` (inference, the single-chip trace semantics): the rows run as one
  trace, each row's instances back to back, as ``tpusim run`` times it;
* ``per_instance=True`` (training): one instance of every row is simulated, in block order (the
  rows of a layer follow one another, as a layer executes; the first block row follows the rows
  before the blocks), and its time is multiplied by ``count``. Assumption: every layer of a
  stage costs what one layer costs when it runs after the previous row of its own block. This
  is how a training step runs (layer by layer, not each matmul ``layers`` times back to back),
  and it makes the cost independent of the layer count, so shards that differ only in layers
  per pipeline stage share one simulation. It moves the dense presets' step times by under
  0.05% against back-to-back instances and Mixtral's expert matmuls by 3% (back to back, an
  expert dgrad instance waits on the previous one's HBM traffic).
"""
from __future__ import annotations

import json
from typing import Any

_SIMULATED: dict[tuple[str, bool, str], tuple[tuple[float, float], ...]] = {}
_MAX_ENTRIES = 1024


def clear() -> None:
    """Forget every memoised program (benchmarks time cold runs with it)."""
    _SIMULATED.clear()


def distinct_programs() -> int:
    """How many distinct programs have been simulated since the last :func:`clear`."""
    return len(_SIMULATED)


def _shape_key(rows: list[dict[str, Any]], per_instance: bool) -> str:
    """The rows minus what their cost does not depend on: names always, and counts when each
    instance is priced once (the count only multiplies)."""
    drop = ("name", "count") if per_instance else ("name",)
    return json.dumps([{k: v for k, v in r.items() if k not in drop} for r in rows],
                      sort_keys=True)


def _simulate(chip, rows: list[dict[str, Any]],
              per_instance: bool) -> tuple[tuple[float, float], ...]:
    """(seconds, MACs) per priced unit: per instance, or per row (all its instances). On a chip
    of several cores, the rows of a kernel that runs on one core (:func:`flash.single_core`)
    are priced on one core (:func:`cores.core_chip`: its arrays, vector unit, and its share of
    HBM bandwidth, assumption: a core running alone draws no more than when both run), each
    run of such rows as a program of its own (what a row carries over from the one before,
    its prefetch, is not carried across the boundary)."""
    from ..cores import core_chip
    from .flash import single_core
    runs: list[tuple[bool, list[dict[str, Any]]]] = []
    for r in rows:
        one = chip.array.cores > 1 and single_core(r["name"])
        if runs and runs[-1][0] == one:
            runs[-1][1].append(r)
        else:   # a program's first row launches its own kernel
            runs.append((one, [{k: v for k, v in r.items() if k != "continues"}]))
    out: list[tuple[float, float]] = []
    for one, part in runs:
        out += _priced(core_chip(chip) if one else chip, part, per_instance)
    return tuple(out)


def _priced(chip, rows: list[dict[str, Any]],
            per_instance: bool) -> tuple[tuple[float, float], ...]:
    """:func:`_simulate` of rows that run as one program on ``chip``."""
    from ..compression import DEQUANT_SUFFIX
    from ..simulator import simulate
    from ..workload import Workload, make_layer
    run = [{**r, "count": 1} for r in rows] if per_instance else rows
    wl = Workload(name="shard", layers=tuple(make_layer(r, "shard") for r in run),
                  source="shard")
    df = simulate(chip, wl).layers
    secs = (df["cycles"] * df["count"] / (chip.clock_ghz * 1e9)).tolist()
    macs = (df["macs"] * df["count"]).tolist()
    # The lowering adds a dequantize row to a GEMM whose stored operand is narrower than its
    # datapath (compression.py: before static weights' GEMM, after a KV cache's); its time is
    # that GEMM's. Walk the results in order against the rows given.
    out = [[0.0, 0.0] for _ in rows]
    i = 0
    for name, t, m in zip(df["name"].tolist(), secs, macs):
        if i < len(rows) and name == rows[i]["name"]:
            j, i = i, i + 1
        else:           # an added row: its GEMM is the one just priced, or (static) the next
            j = i - 1 if i and name == rows[i - 1]["name"] + DEQUANT_SUFFIX else i
        out[j][0] += t
        out[j][1] += m
    return tuple((t, m) for t, m in out)


def simulate_rows(chip, rows: list[dict[str, Any]], per_instance: bool = False,
                  memo: bool = True) -> tuple[tuple[float, float], ...]:
    """(seconds, MACs) of every row of ``rows`` (all ``count`` instances) on ``chip`` (module
    docstring). ``memo=False`` simulates afresh and leaves the memo alone (the reference the
    memo must reproduce exactly)."""
    if memo:
        # names are not in the shape key, but the rows priced on one core are chosen by name
        from .flash import single_core
        one = tuple(i for i, r in enumerate(rows) if single_core(r["name"])) \
            if chip.array.cores > 1 else ()
        key = (chip.model_dump_json(), per_instance, _shape_key(rows, per_instance), one)
        got = _SIMULATED.get(key)
        if got is None:
            if len(_SIMULATED) >= _MAX_ENTRIES:
                _SIMULATED.clear()
            got = _SIMULATED[key] = _simulate(chip, rows, per_instance)
    else:
        got = _simulate(chip, rows, per_instance)
    if not per_instance:
        return got
    return tuple((s * r.get("count", 1), m * r.get("count", 1)) for (s, m), r in zip(got, rows))


__all__ = ["simulate_rows", "clear", "distinct_programs"]

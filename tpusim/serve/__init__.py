"""Request-level LLM serving on simulated chips: traffic, a continuous-batching scheduler, a
paged KV cache and tensor-parallel steps, timed by the first-principles step cost model.

:func:`serve` runs one or more offered rates over the same request lengths and returns a
:class:`ServeRun` per rate; :func:`write_outputs` writes ``requests.csv``, ``serve.json`` and
``report.html``. Modules: ``requests`` (traffic), ``kvcache`` (blocks and capacity), ``tp``
(sharded steps and all-reduces), ``timer`` (step latency, ragged batches per sequence),
``engine`` (the simpy simulation), ``shapes`` (padding as a compiled engine does), ``metrics``,
``report``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import InputError
from .kvcache import BlockManager, dtype_bytes, kv_blocks
from .requests import Request, check_rate, with_arrivals
from .shapes import StepShapes
from ..step_trace import check_kv_dtype
from .timer import StepTimer
from .tp import ShardedStepCost

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ServeRun:
    rate: float
    summary: dict[str, Any]
    table: pd.DataFrame


@dataclass
class Setup:
    cost: ShardedStepCost
    timer: StepTimer
    blocks: int
    notes: list[str]


def setup(config, model, chips: int = 1, tp: int | None = None, weights: str = "bf16",
          kv_dtype: str | None = None, kv_block: int = 16, max_batch: int = 256,
          chunked_prefill: int | None = None, max_prompt: int = 2048, hbm_scale: float = 1.0,
          exact: bool = False, rtol: float = 1e-3) -> Setup:
    """The step model, its timer and the KV capacity for ``model`` on ``chips`` chips;
    ``exact``: every step costed by its own ragged trace (slow), else from the timer's tables
    refined to ``rtol`` (:mod:`tpusim.serve.timer`); ``kv_dtype``: the KV cache's format
    (default: the weights')."""
    tp = chips if tp is None else tp
    kv_dtype = kv_dtype or weights
    for name, v in (("--chips", chips), ("--max-batch", max_batch)):
        if not isinstance(v, int) or v < 1:
            raise InputError(name, None, v, "an integer >= 1")
    if tp != chips:
        raise InputError("--parallel", "tp", tp, f"tensor parallelism over all chips: tp={chips}"
                         f" (other splits are not modelled; for tp={tp} give --chips {tp})")
    if chunked_prefill is not None and (not isinstance(chunked_prefill, int)
                                        or chunked_prefill <= max_batch):
        raise InputError("--chunked-prefill", None, chunked_prefill,
                         f"a token budget > --max-batch={max_batch}")
    dtype_bytes(weights, "--weights")      # named by option before the cost model meets it
    cost = ShardedStepCost(config, model, weights, tp,
                           kv_dtype=kv_dtype if kv_dtype != weights else None)
    if not cost.full.lm_head:
        raise InputError(cost.full.name, None, message="is an encoder (no LM head) and "
                         "generates no tokens; tpusim serve takes decoder models")
    runs = cost.chip.formats
    if weights not in runs:   # before a step's row names it
        raise InputError("--weights", None, weights, f"chip {cost.chip.name!r} runs "
                         f"{'|'.join(runs)}: pass one of them")
    check_kv_dtype(cost.chip, kv_dtype, weights)
    cost.chip.hbm_bytes_per_cycle   # noqa: B018  (the config is complete)
    step_tokens = chunked_prefill or (max_batch + max_prompt)
    budget = kv_blocks(cost.chip, cost.full, tp, weights, kv_dtype, kv_block, step_tokens,
                       max_batch, hbm_scale)
    timer = StepTimer(cost, exact=exact, rtol=rtol)
    notes = [f"{cost.full.name} on {chips} x {cost.chip.name}, TP={tp}, weights {weights}, "
             f"KV {kv_dtype}, block {kv_block} tokens",
             f"per chip: weights {budget.weight_bytes / 2**30:.3g} GiB, activations "
             f"{budget.activation_bytes / 2**30:.3g} GiB, KV {budget.blocks} blocks of "
             f"{budget.block_bytes / 2**20:.3g} MiB",
             f"max batch {max_batch}, chunked prefill "
             f"{chunked_prefill or 'off'}; step latency "
             + ("exact per step" if exact else f"from per-part tables refined to {rtol:g}")]
    return Setup(cost, timer, budget.blocks, notes)


def serve(st: Setup, requests: Sequence[Request], rates: Sequence[float] | None = None,
          kv_block: int = 16, max_batch: int = 256, chunked_prefill: int | None = None,
          prefix_caching: bool = False, duration: float | None = None,
          seed: int = 0, offered: float | None = None,
          shapes: StepShapes = StepShapes()) -> list[ServeRun]:
    """Serve ``requests`` (arrivals as given, or re-timed at each of ``rates``); ``offered``:
    the rate the given arrivals were drawn at, for the labels (None: inf); ``shapes``: how the
    engine pads its steps (:mod:`tpusim.serve.shapes`)."""
    from .engine import Engine            # simpy and pandas: imported by the run, not the package
    from .metrics import request_table, summarise
    if chunked_prefill and shapes.prefill_chunks:
        raise InputError("--prefill-chunks", None, ",".join(map(str, shapes.prefill_chunks)),
                         "give --chunked-prefill or --prefill-chunks, not both")
    if shapes.fixed_batch and st.timer.exact:
        raise InputError("--fixed-batch", None, True, "padding the batch needs the table timer")
    if shapes.all_logits and st.timer.exact:
        raise InputError("--all-logits", None, True, "logits of every token need the table "
                         "timer")
    if duration is not None and not (duration > 0):
        raise InputError("--duration", None, duration, "a time > 0 (seconds)")
    cap = st.blocks * kv_block
    if shapes.attention_block > cap:
        raise InputError("--attention-block", None, shapes.attention_block, f"at most the KV "
                         f"cache's {cap} tokens (keys a decode's attention reads at a time)")
    from ..importers.llm_step_args import check_positions
    for r in requests:
        check_positions(st.cost.full, r.input_tokens + r.output_tokens, "requests",
                        f"request {r.rid}")
        if r.input_tokens + r.output_tokens > cap:
            raise InputError("requests", f"request {r.rid}", r.input_tokens + r.output_tokens,
                             f"tokens must fit the KV cache ({cap} tokens on these chips)")
    prompt = max((r.input_tokens for r in requests), default=1)
    longest = max((r.input_tokens + r.output_tokens for r in requests), default=1)
    prompt = max(prompt, shapes.chunk_for(prompt) or 0)
    st.timer.prepare(min(max_batch + prompt, chunked_prefill or math.inf), max_batch, longest)
    runs = []
    for rate in (rates or [None]):
        reqs = list(requests) if rate is None else with_arrivals(list(requests),
                                                                 check_rate(rate), seed)
        eng = Engine(st.timer, BlockManager(st.blocks, kv_block, prefix_caching), max_batch,
                     chunked_prefill, shapes)
        out = eng.run(reqs, duration)
        table = request_table(out)
        s = summarise(out, table)
        label = (math.inf if offered is None else offered) if rate is None else rate
        s["offered_rate"] = label if math.isfinite(label) else "inf"
        runs.append(ServeRun(label, s, table))
    return runs


def curve_points(runs: list[ServeRun]) -> list[dict[str, Any]]:
    return [{"rate": r.rate, "requests_per_s": r.summary["requests_per_s"],
             "steady_requests_per_s": r.summary.get("steady_requests_per_s"),
             "arrivals_per_s": r.summary.get("arrivals_per_s"),
             "output_tokens_per_s": r.summary["output_tokens_per_s"],
             "ttft_p50_s": r.summary["ttft_s"]["p50"], "ttft_p99_s": r.summary["ttft_s"]["p99"],
             "tpot_p50_s": r.summary["tpot_s"]["p50"], "e2e_p50_s": r.summary["e2e_s"]["p50"]}
            for r in runs]


def write_outputs(runs: list[ServeRun], out: Path, notes: list[str], html: bool = True,
                  provenance: dict[str, Any] | None = None, chip=None) -> list[str]:
    """``requests.csv`` and ``serve.json`` (one run), or ``requests-rate-R.csv`` and
    ``serve-rate-R.json`` per rate plus a ``serve.json`` with the curve and the saturation rate;
    and ``report.html``. With ``provenance`` (:func:`tpusim.provenance.command_provenance`)
    ``serve.json`` carries it and the resolved ``chip`` goes to ``config.yaml``. All or
    nothing, and no file of an earlier serve run is left beside them
    (:func:`tpusim.results.write_all`, group ``serve``)."""
    from .._io import finite
    from ..results import write_all
    from .metrics import saturation
    from .report import serve_html

    def _json(obj: Any):
        text = json.dumps(finite(obj), indent=1, default=lambda v: None) + "\n"   # inf: null
        return lambda p: p.write_text(text)

    def _csv(table: pd.DataFrame):
        return lambda p: p.write_text(table.to_csv(index=False))

    files: dict[str, Any] = {}
    prov = {"provenance": provenance} if provenance is not None else {}
    if provenance is not None and chip is not None:
        from ..results import config_file
        files.update(config_file(out, chip, provenance["run_id"], "serve THIS_FILE MODEL ..."))
    curve = None
    if len(runs) == 1:
        files["requests.csv"] = _csv(runs[0].table)
        files["serve.json"] = _json({**runs[0].summary, "notes": notes, **prov})
    else:
        curve = curve_points(runs)
        for r in runs:
            files[f"requests-rate-{r.rate:g}.csv"] = _csv(r.table)
            files[f"serve-rate-{r.rate:g}.json"] = _json(r.summary)
        files["serve.json"] = _json({
            "curve": [{**p, "rate": p["rate"] if math.isfinite(p["rate"]) else "inf"}
                      for p in curve],
            "saturation_rate": saturation(curve), "notes": notes,
            "runs": {f"{r.rate:g}": r.summary for r in runs}, **prov})
    if html:
        page = serve_html("tpusim serve", [(r.rate, r.summary, r.table) for r in runs], curve,
                          notes, provenance)
        files["report.html"] = lambda p: p.write_text(page)
    write_all(files, out, group="serve", run_id=provenance["run_id"] if provenance else None)
    return list(files)


__all__ = ["serve", "setup", "write_outputs", "ServeRun", "Setup", "curve_points", "Request"]

"""Token-level metrics of one LLM trace: what a prefill or decode step means to a user.

A trace written by ``tpusim workload llm`` (or built by :func:`tpusim.importers.llm.llm_workload`)
carries the note ``NAME PHASE: batch B, seq S new tokens, kv_len K, ...`` (a ``#`` comment line
in the CSV). From it a run's latency becomes tokens: a decode step gives each of its ``B``
sequences one token, so ``B / latency`` tokens/s at ``latency`` per output token; a prefill of
``B x S`` prompt tokens ends with each sequence's first token, so its latency is the time to
first token. ``run --batch N`` multiplies the sequences by ``N``.
"""
from __future__ import annotations

import re
from typing import Any

_NOTE = re.compile(r"^(?P<model>\S+) (?P<phase>prefill|decode): batch (?P<batch>\d+), "
                   r"seq (?P<seq>\d+) new tokens, kv_len (?P<kv>\d+)")


def llm_step(notes) -> dict[str, Any] | None:
    """(model, phase, sequences, new tokens per sequence, kv_len) from a trace's notes."""
    for n in notes or ():
        m = _NOTE.match(n)
        if m:
            return {"model": m["model"], "phase": m["phase"], "sequences": int(m["batch"]),
                    "new_tokens": int(m["seq"]), "kv_len": int(m["kv"])}
    return None


def token_metrics(notes, latency_s: float, run_batch: int = 1) -> dict[str, Any] | None:
    """Token metrics of a run of the trace, or None when the notes name no LLM step."""
    step = llm_step(notes)
    if step is None or latency_s <= 0:
        return None
    seqs = step["sequences"] * run_batch
    tokens = seqs * step["new_tokens"]
    out = {**step, "sequences": seqs, "tokens": tokens, "tokens_per_s": tokens / latency_s}
    if step["phase"] == "decode":
        out["ms_per_output_token"] = latency_s * 1e3 / step["new_tokens"]
    else:
        out["time_to_first_token_s"] = latency_s
    return out

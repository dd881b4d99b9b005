"""The trace of one LLM engine step: decode sequences, each at its own KV length, plus a prefill.

Rows that do not depend on KV (embedding, projections, FFN, LM head) run all of the step's new
tokens together; attention (QK^T, softmax, AV) runs once per distinct (new tokens, KV length),
its sequences batched. Assumption: the decodes' attention is one paged-attention kernel per
layer for the whole ragged batch (JetStream's Pallas paged attention, vLLM's), so only the first
decode group's rows pay the per-op fixed cost and the later ones are marked ``continues``; a
prefill chunk's attention is a kernel of its own. :class:`tpusim.generation.StepCostModel`
costs these rows.
"""
from __future__ import annotations

from typing import Any, Sequence

from .errors import InputError
from .importers.llm import LlmConfig, llm_rows

_ATTENTION = ("attn_qk", "attn_softmax", "attn_av")


def step_rows(cfg: LlmConfig, decode_kv: Sequence[int] = (), prefill_tokens: int = 0,
              prefill_kv: int | None = None, dtype: str = "bf16",
              logits: str = "last", kv_dtype: str | None = None) -> list[dict[str, Any]]:
    """Trace rows of one engine step: one new token for each decode sequence (attending to its
    KV length, itself included) plus a prefill chunk of ``prefill_tokens`` tokens of one sequence
    attending to ``prefill_kv`` keys (default: the chunk itself). Rows that do not depend on KV
    run all new tokens together; attention runs once per distinct (new tokens, KV length), its
    sequences batched. ``logits="last"``: the LM head runs on one token per sequence (the one it
    samples next), ``"all"`` on every new token. A uniform decode batch gives exactly
    ``llm_rows(cfg, "decode", batch, 1, kv)``. ``kv_dtype``: the KV cache's format where it
    differs from ``dtype`` (attention reads K and V in it: :func:`_attention_rows`)."""
    groups, tokens, seqs = _groups(decode_kv, prefill_tokens, prefill_kv)
    before, after = _shared_rows(cfg, tokens, seqs, dtype, logits)
    many = len(groups) > 1
    return before + [r for (seq, kv), n, more in continued(groups)
                     for r in _attention_rows(cfg, seq, kv, n, dtype, many, more, kv_dtype)] \
        + after


def continued(groups):
    """``((new tokens, KV), sequences, continues)`` per group: every decode group after the
    first runs in the first one's kernel (module docstring)."""
    first = next((i for i, ((seq, _), _) in enumerate(groups) if seq == 1), None)
    return [(g, n, g[0] == 1 and i != first) for i, (g, n) in enumerate(groups)]


def _groups(decode_kv: Sequence[int], prefill_tokens: int, prefill_kv: int | None):
    """The step's sequences as sorted ((new tokens, KV length), sequences), tokens, sequences."""
    decode_kv = [int(k) for k in decode_kv]
    if any(k < 1 for k in decode_kv):
        raise InputError("step", "decode_kv", min(decode_kv), "KV lengths must be >= 1")
    if prefill_tokens < 0:
        raise InputError("step", "prefill_tokens", prefill_tokens, "must be >= 0")
    groups: dict[tuple[int, int], int] = {}
    for k in decode_kv:
        groups[(1, k)] = groups.get((1, k), 0) + 1
    if prefill_tokens:
        kv = prefill_tokens if prefill_kv is None else int(prefill_kv)
        if kv < prefill_tokens:
            raise InputError("step", "prefill_kv", kv, f"must be >= prefill_tokens="
                             f"{prefill_tokens} (the new tokens attend to themselves)")
        groups[(prefill_tokens, kv)] = groups.get((prefill_tokens, kv), 0) + 1
    if not groups:
        raise InputError("step", None, message="a step needs a decode sequence or prefill tokens")
    tokens = len(decode_kv) + prefill_tokens
    return sorted(groups.items()), tokens, len(decode_kv) + (1 if prefill_tokens else 0)


def _shared_rows(cfg: LlmConfig, tokens: int, seqs: int, dtype: str, logits: str):
    """The rows before and after attention for ``tokens`` new tokens of ``seqs`` sequences."""
    if logits not in ("last", "all"):
        raise InputError("step", "logits", logits, "allowed: all|last")
    shared = llm_rows(cfg, "prefill", 1, tokens, tokens, dtype, "all")
    if logits == "last" and seqs != tokens:
        head = {r["name"]: r for r in llm_rows(cfg, "prefill", seqs, 1, 1, dtype, "all")
                if r["name"] in ("final_norm", "lm_head")}
        shared = [head.get(r["name"], r) for r in shared]
    first = next(i for i, r in enumerate(shared) if r["name"] in _ATTENTION)
    return shared[:first], [r for r in shared[first:] if r["name"] not in _ATTENTION]


def kv_operands(rows: list[dict[str, Any]], dtype: str, kv_dtype: str | None):
    """``rows`` with attention's K and V (the QK^T and AV GEMMs' second operands) in the KV
    cache's format ``kv_dtype`` where it differs from ``dtype``."""
    if not kv_dtype or kv_dtype == dtype:
        return rows
    return [{**r, "weight_dtype": kv_dtype} if r["name"] in ("attn_qk", "attn_av")
            and r["op"] == "matmul" else r for r in rows]


def check_kv_dtype(chip, kv_dtype: str, dtype: str, option: str = "--kv-dtype") -> None:
    """One-line InputError unless a ``kv_dtype`` cache under ``dtype`` activations is a format
    of numbers the chip can attend over (``datapath_format`` of the two among its formats; any
    number format without a ``chip``)."""
    from .formats import FORMATS, datapath_format
    numbers = [f for f in FORMATS if f not in ("binary", "ternary")]
    if kv_dtype not in FORMATS:
        from ._input import suggest
        raise InputError(option, None, kv_dtype, f"unknown dtype{suggest(kv_dtype, numbers)}; "
                         "allowed: " + "|".join(numbers))
    if kv_dtype not in numbers:     # K and V are values attention multiplies with
        raise InputError(option, None, kv_dtype, "a KV cache holds numbers: " + "|".join(numbers))
    attention = datapath_format(kv_dtype, dtype)
    if chip is not None and attention not in chip.formats:   # int8-only chip, bf16 cache
        raise InputError(option, None, kv_dtype, f"attention over a {kv_dtype} cache under "
                         f"{dtype} weights runs in {attention}, which chip {chip.name!r} does "
                         f"not run ({'|'.join(chip.formats)}); pass {option} {dtype}")


def _attention_rows(cfg: LlmConfig, seq: int, kv: int, n: int, dtype: str, named: bool,
                    continues: bool = False, kv_dtype: str | None = None):
    """QK^T, softmax and AV of ``n`` sequences of ``seq`` new tokens attending to ``kv`` keys;
    ``named``: the row names carry the group (a step with several); ``continues``: the rows run
    in an earlier group's kernel (no per-op fixed cost); ``kv_dtype``: K and V, the two GEMMs'
    second operands, are read from a cache in that format (an int8 cache under bf16 queries is
    stored and streamed at 1 byte and rescaled inside the kernel: ``compression.py``)."""
    rows = kv_operands([r for r in llm_rows(cfg, "decode" if seq == 1 else "prefill", n, seq,
                                            kv, dtype) if r["name"] in _ATTENTION],
                       dtype, kv_dtype)
    for r in rows:
        if named:
            r["name"] = f"{r['name']}_{seq}x{kv}"
        if continues:
            r["continues"] = True
    return rows


__all__ = ["continued", "step_rows", "kv_operands", "check_kv_dtype"]

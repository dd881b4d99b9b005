"""The arguments of one LLM step (phase, batch, seq, kv_len, dtype, logits), checked once.

:func:`tpusim.importers.llm.llm_rows` checks them for library callers, whose errors name the
keyword (``llm: kv_len: got 0``); the CLI commands that take them as options (``tpusim infer``,
``tpusim workload llm``) check them first with ``options=True``, so the error names the option
the user typed (``--kv-len: got 0``) rather than a field they never saw, and then pass
``checked=True`` on (``llm_rows``, ``pod.infer.infer_step``) so that they are not checked again.
"""
from __future__ import annotations

from .._input import check_size, suggest
from ..errors import InputError

OPTIONS = {"phase": "--phase", "batch": "--batch", "seq": "--seq", "kv_len": "--kv-len",
           "dtype": "--dtype", "logits": "--logits"}


def check_positions(cfg, positions: int, option: str, where: str | None = None) -> None:
    """A model with a learned position table (``max_positions``: GPT-2's 1,024, BERT's 512) has
    no embedding for a later position, so a sequence longer than the table is a one-line
    InputError naming ``option`` (RoPE models have no table and no such bound)."""
    if cfg.max_positions and positions > cfg.max_positions:
        raise InputError(option, where, positions, f"{cfg.name} has {cfg.max_positions:,} learned "
                         "positions; a sequence (prompt and output) is at most that long")


def step_defaults(phase: str, seq: int | None, kv_len: int | None) -> tuple[int, int | None]:
    """``(seq, kv_len)`` with their defaults: seq 128 for prefill and 1 for decode, kv_len seq
    (decode has no default kv_len: :func:`check_step_args` requires it)."""
    if seq is None:
        seq = 128 if phase == "prefill" else 1
    if kv_len is None and phase != "decode":
        kv_len = seq
    return seq, kv_len


def check_step_args(phase: str, batch: int, seq: int | None, kv_len: int | None,
                    dtype: str = "bf16", logits: str = "all", *,
                    options: bool = False) -> tuple[int, int]:
    """``(seq, kv_len)`` with their defaults (prefill: seq 128, kv_len seq; decode: seq 1,
    kv_len required); a one-line InputError for a bad argument, naming the CLI option when
    ``options`` else the keyword."""
    from ..formats import FORMATS

    def bad(field: str, value: object, allowed: str) -> InputError:
        if options:
            return InputError(OPTIONS[field], None, value, allowed)
        return InputError("llm", field, value, allowed)

    if phase not in ("prefill", "decode"):
        raise bad("phase", phase, "allowed: prefill|decode")
    seq, kv_len = step_defaults(phase, seq, kv_len)
    if kv_len is None:
        raise bad("kv_len", None, "decode needs the KV-cache length, e.g. --kv-len 2048")
    for f, v in (("batch", batch), ("seq", seq), ("kv_len", kv_len)):
        if not isinstance(v, int) or v <= 0:
            raise bad(f, v, "must be a positive integer")
        check_size(v, None if options else "llm", OPTIONS[f] if options else f)
    if kv_len < seq:
        raise bad("kv_len", kv_len, f"must be >= seq={seq} (the new tokens attend to "
                  "themselves)")
    if logits not in ("all", "last"):
        raise bad("logits", logits, "allowed: all|last")
    if dtype not in FORMATS:
        raise bad("dtype", dtype, f"unknown dtype{suggest(dtype, FORMATS)}; allowed: "
                  + "|".join(FORMATS))
    return seq, kv_len


__all__ = ["OPTIONS", "check_step_args", "step_defaults"]

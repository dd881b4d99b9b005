"""Transformer (LLM) traces from a model config: prefill and decode, with a KV cache.

One decoder/encoder block is written once with ``count = layers``. Per block, for ``batch``
sequences of ``seq`` new tokens attending to ``kv_len`` keys (the KV cache plus the new tokens):

* norm, fused QKV projection (static weights), RoPE (rotary models);
* attention scores QK^T and the weighted sum AV as ``weights: dynamic`` matmuls;
* softmax over the ``kv_len`` scores, output projection, residual add;
* norm, FFN (gated: gate, up, act, gate*up, down; otherwise up, act, down), residual add.

Around the blocks: token embedding (a gather), learned position add (GPT-2, BERT), final norm and
the LM head. Assumptions, one each:
prefill computes the full seq x kv_len score block (causal masking saves no MACs on a systolic
array that works in whole tiles); biases are added in the matmul output pipeline and cost nothing;
the LM head runs on every new token unless ``logits="last"`` (serving prefill needs only the last).

GQA: the ``heads / kv_heads`` query heads of a group share one K and one V, so attention is
``batch = batch x kv_heads`` independent products with the group's query heads stacked as rows
(``m = group x seq``): the MACs equal ``batch x heads`` separate products, and each K/V is read
once per group, as GQA kernels do. With ``kv_heads == heads`` this is ``batch x heads`` products.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from ..errors import InputError
from .llm_config import LlmConfig
from .llm_presets import PRESETS, get_preset, preset_choices
from .llm_step_args import check_step_args, step_defaults
from ..workload import Workload, make_layer


def custom_config(**fields: Any) -> LlmConfig:
    """An LlmConfig from keyword fields, checked: heads divide hidden, kv_heads divide heads."""
    try:
        cfg = LlmConfig(name=fields.pop("name", "llm"), **fields)
    except TypeError as exc:
        raise InputError("llm config", None, message=str(exc)) from None
    _check_config(cfg)
    return cfg


def _check_config(cfg: LlmConfig) -> None:
    for f in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab"):
        v = getattr(cfg, f)
        if not isinstance(v, int) or v <= 0:
            raise InputError("llm config", f, v, "must be a positive integer")
    if not cfg.head_size and cfg.hidden % cfg.heads:
        raise InputError("llm config", "heads", cfg.heads, f"must divide hidden={cfg.hidden} "
                         "(or give head_size, --head-dim)")
    if cfg.heads % cfg.kv_heads:
        raise InputError("llm config", "kv_heads", cfg.kv_heads,
                         f"must divide heads={cfg.heads}")
    for f in ("head_size", "experts", "top_k"):
        v = getattr(cfg, f)
        if not isinstance(v, int) or v < 0:
            raise InputError("llm config", f, v, "must be an integer >= 0")
    if cfg.moe and not 1 <= cfg.top_k <= cfg.experts:
        raise InputError("llm config", "top_k", cfg.top_k, f"must be in 1..experts={cfg.experts}")
    if not cfg.moe and cfg.top_k > 1:
        raise InputError("llm config", "top_k", cfg.top_k, "needs experts > 1")
    if not isinstance(cfg.expert_shards, int) or cfg.expert_shards < 1 or \
            (cfg.moe and cfg.experts % cfg.expert_shards):
        raise InputError("llm config", "expert_shards", cfg.expert_shards,
                         f"must be a positive divisor of experts={cfg.experts}")


def llm_rows(cfg: LlmConfig, phase: Literal["prefill", "decode"] = "prefill", batch: int = 1,
             seq: int | None = None, kv_len: int | None = None, dtype: str = "bf16",
             logits: Literal["all", "last"] = "all", *,
             checked: bool = False) -> list[dict[str, Any]]:
    """Trace rows for one forward pass: ``batch`` sequences, ``seq`` new tokens each, attending
    to ``kv_len`` keys. Prefill: seq defaults to 128 and kv_len to seq. Decode: seq defaults
    to 1 (one new token per step) and kv_len is required (the context length, new token
    included). ``checked``: the caller has run :func:`check_step_args` on these arguments
    (naming its own options), so they are not checked again. An encoder (no LM head) has no
    decode step: one-line InputError."""
    _check_config(cfg)
    if phase == "decode" and not cfg.lm_head:
        raise InputError("--phase", None, phase, f"{cfg.name.split('[')[0]} is an encoder (no "
                         "LM head) and generates no tokens: it has no decode step; use --phase "
                         "prefill")
    if checked:
        seq, kv_len = step_defaults(phase, seq, kv_len)
    else:
        seq, kv_len = check_step_args(phase, batch, seq, kv_len, dtype, logits)
    h, hd, hq, hkv = cfg.hidden, cfg.head_dim, cfg.heads, cfg.kv_heads
    group = hq // hkv
    tok = batch * seq
    dt = {"weight_dtype": dtype, "act_dtype": dtype}
    adt = {"act_dtype": dtype}
    L = cfg.layers

    def vec(name: str, op: str, elements: int, count: int = 1, **kw: Any) -> dict[str, Any]:
        return {"name": name, "op": op, "elements": elements, "count": count, **adt, **kw}

    def mm(name: str, m: int, k: int, n: int, count: int = 1, **kw: Any) -> dict[str, Any]:
        return {"name": name, "op": "matmul", "m": m, "k": k, "n": n, "count": count,
                "weights": "static", **dt, **kw}

    rows: list[dict[str, Any]] = [vec("embed", "embedding", tok * h)]
    if cfg.positions == "learned":
        rows.append(vec("pos_add", "add", tok * h))
    if cfg.embed_norm:
        rows.append(vec("embed_norm", cfg.norm, tok * h))
    rows += [
        vec("attn_norm", cfg.norm, tok * h, L),
        mm("qkv_proj", tok, h, (hq + 2 * hkv) * hd, L),
    ]
    if cfg.positions == "rope":
        rows.append(vec("rope", "rope", tok * (hq + hkv) * hd, L))
    rows += [
        {"name": "attn_qk", "op": "matmul", "batch": batch * hkv, "m": group * seq, "k": hd,
         "n": kv_len, "count": L, "weights": "dynamic", **dt},
        vec("attn_softmax", "softmax", batch * hq * seq * kv_len, L),
        {"name": "attn_av", "op": "matmul", "batch": batch * hkv, "m": group * seq, "k": kv_len,
         "n": hd, "count": L, "weights": "dynamic", **dt},
        mm("o_proj", tok, hq * hd, h, L),
        vec("attn_residual", "residual", tok * h, L),
    ]
    if not cfg.parallel_block:
        rows.append(vec("ffn_norm", cfg.norm, tok * h, L))
    if cfg.moe:
        rows += _moe_rows(cfg, tok, L, dt, vec, mm)
    elif cfg.gated:
        rows += [mm("ffn_gate", tok, h, cfg.ffn, L), mm("ffn_up", tok, h, cfg.ffn, L),
                 vec(f"ffn_{cfg.act}", cfg.act, tok * cfg.ffn, L),
                 vec("ffn_gate_mul", "mul", tok * cfg.ffn, L)]
    else:
        rows += [mm("ffn_up", tok, h, cfg.ffn, L), vec(f"ffn_{cfg.act}", cfg.act, tok * cfg.ffn, L)]
    if not cfg.moe:
        rows.append(mm("ffn_down", tok, cfg.ffn, h, L))
    rows.append(vec("ffn_residual", "residual", tok * h, L))
    if cfg.lm_head:
        head_tok = batch if logits == "last" else tok
        if cfg.final_norm:
            rows.append(vec("final_norm", cfg.norm, head_tok * h))
        rows.append(mm("lm_head", head_tok, h, cfg.vocab))
    for r in rows:
        if r["count"] == 1:
            del r["count"]
    return rows


def _moe_rows(cfg: LlmConfig, tok: int, L: int, dt: dict, vec, mm) -> list[dict[str, Any]]:
    """Router, then each active expert's FFN as one batched matmul with a k x n operand per
    expert. Assumption: routing is balanced, so min(experts, tok x top_k) experts each get
    ceil(tok x top_k / active) tokens (exact MACs when that divides)."""
    h, f = cfg.hidden, cfg.ffn
    # Expert parallelism: a chip holds experts / expert_shards experts and, routing balanced,
    # receives as many token-expert pairs (tok x top_k) as its tokens send out.
    active = min(cfg.experts // cfg.expert_shards, tok * cfg.top_k)
    m = -(-tok * cfg.top_k // active)

    def expert(name: str, k: int, n: int) -> dict[str, Any]:
        return {"name": name, "op": "matmul", "batch": active, "m": m, "k": k, "n": n,
                "count": L, "weights": "dynamic", **dt}

    # Dropless MoE (MaxText's megablox path) sorts each token's hidden vector into its top_k
    # experts' groups before the grouped matmuls (a gather: one copy per token-expert pair) and
    # unsorts after them (``expert_combine``: the gather back and the weighted sum).
    rows = [mm("moe_router", tok, h, cfg.experts, L),
            vec("moe_router_softmax", "softmax", tok * cfg.experts, L),
            vec("moe_permute", "transpose", tok * cfg.top_k * h, L)]
    # With expert shards the received pairs are sorted again by local expert and unsorted
    # before they go back (MaxText RoutedMoE.local_permute): two more gathers of them.
    local = [vec("expert_local_sort", "transpose", tok * cfg.top_k * h, L)] \
        if cfg.expert_shards > 1 else []
    rows += local
    if cfg.gated:
        rows += [expert("expert_gate", h, f), expert("expert_up", h, f),
                 vec(f"expert_{cfg.act}", cfg.act, active * m * f, L),
                 vec("expert_gate_mul", "mul", active * m * f, L)]
    else:
        rows += [expert("expert_up", h, f), vec(f"expert_{cfg.act}", cfg.act, active * m * f, L)]
    return rows + [expert("expert_down", f, h)] + \
        [{**r, "name": "expert_local_unsort"} for r in local] + \
        [vec("expert_combine", "mul", tok * cfg.top_k * h, L)]


def llm_macs(cfg: LlmConfig, batch: int, seq: int, kv_len: int, logits: str = "all") -> int:
    """Closed form: tokens x linear params + 2 x batch x layers x heads x seq x kv_len x head_dim
    (QK^T and AV), the LM head on the last token only when ``logits == "last"``."""
    tok = batch * seq
    lin = cfg.linear_params() - (cfg.vocab * cfg.hidden if cfg.lm_head else 0)
    head = (batch if logits == "last" else tok) * cfg.vocab * cfg.hidden if cfg.lm_head else 0
    return tok * lin + head + 2 * batch * cfg.layers * cfg.heads * seq * kv_len * cfg.head_dim


def llm_workload(cfg: LlmConfig | str, phase: str = "prefill", batch: int = 1,
                 seq: int | None = None, kv_len: int | None = None, dtype: str = "bf16",
                 logits: str = "all") -> Workload:
    if isinstance(cfg, str):
        cfg = get_preset(cfg)
    rows = llm_rows(cfg, phase, batch, seq, kv_len, dtype, logits)
    src = f"llm:{cfg.name}"
    layers = tuple(make_layer(r, src) for r in rows)
    return Workload(name=f"{cfg.name}_{phase}", layers=layers, source=src,
                    notes=(describe(cfg, phase, batch, seq, kv_len, dtype),))


def describe(cfg: LlmConfig, phase: str, batch: int, seq: int | None, kv_len: int | None,
             dtype: str, kv_dtype: str | None = None) -> str:
    seq = seq if seq is not None else (128 if phase == "prefill" else 1)
    kv_len = kv_len if kv_len is not None else seq
    fields = {k: v for k, v in asdict(cfg).items()
              if k in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "gated", "norm")}
    kv = f", KV cache {kv_dtype}" if kv_dtype and kv_dtype != dtype else ""
    return (f"{cfg.name} {phase}: batch {batch}, seq {seq} new tokens, kv_len {kv_len}, {dtype}"
            f"{kv}; "
            + ", ".join(f"{k} {v}" for k, v in fields.items())
            + (f"; dims from {cfg.source}" if cfg.source else ""))


__all__ = ["LlmConfig", "PRESETS", "get_preset", "preset_choices", "custom_config", "llm_rows",
           "llm_macs", "llm_workload", "describe"]

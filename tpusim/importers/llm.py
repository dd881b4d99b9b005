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

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import InputError
from .._input import check_size, suggest
from ..workload import Workload, make_layer


@dataclass(frozen=True)
class LlmConfig:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    gated: bool = False              # gated FFN (SwiGLU: gate, up, down)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    act: Literal["gelu", "silu", "relu"] = "gelu"
    positions: Literal["learned", "rope"] = "learned"
    max_positions: int = 0           # learned position table size (parameter count only)
    type_vocab: int = 0              # BERT token-type table size (parameter count only)
    biases: bool = False             # linear layers carry biases (parameter count only)
    tied_embeddings: bool = False    # LM head shares the token embedding (parameter count only)
    lm_head: bool = True             # decoder LMs: yes; BERT as an encoder: no
    pooler: bool = False             # BERT's pooler dense layer (parameter count only)
    embed_norm: bool = False         # a norm right after the embeddings (BERT)
    final_norm: bool = True          # a norm before the LM head (GPT-2, Llama)
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def param_count(self) -> int:
        """Parameters as the published checkpoints count them (embeddings, norms, biases)."""
        h, hd, f = self.hidden, self.head_dim, self.ffn
        qkv_n = (self.heads + 2 * self.kv_heads) * hd
        norm_p = (2 if self.norm == "layernorm" else 1) * h
        per = h * qkv_n + self.heads * hd * h + (3 if self.gated else 2) * h * f + 2 * norm_p
        if self.biases:
            per += qkv_n + h + (2 if self.gated else 1) * f + h
        total = self.layers * per + self.vocab * h
        total += (self.max_positions + self.type_vocab) * h
        total += norm_p * (int(self.embed_norm) + int(self.final_norm))
        if self.lm_head and not self.tied_embeddings:
            total += self.vocab * h
        if self.pooler:
            total += h * h + (h if self.biases else 0)
        return total

    def linear_params(self) -> int:
        """Weights of the matmuls one token passes through (blocks + LM head, no embeddings)."""
        h, hd = self.hidden, self.head_dim
        per = (h * (self.heads + 2 * self.kv_heads) * hd + self.heads * hd * h
               + (3 if self.gated else 2) * h * self.ffn)
        return self.layers * per + (self.vocab * h if self.lm_head else 0)


# Published configs (dims only). Each source is the model's config.json on the Hugging Face hub
# (and the paper); published parameter counts are checked in tests/test_llm.py.
PRESETS: dict[str, LlmConfig] = {
    # Radford et al. 2019; huggingface.co/gpt2 config.json: n_embd 768, n_layer 12, n_head 12,
    # n_positions 1024, vocab_size 50257, n_inner = 4 x 768, gelu, LayerNorm, tied LM head.
    # 124,439,808 parameters.
    "gpt2": LlmConfig("gpt2", hidden=768, layers=12, heads=12, kv_heads=12, ffn=3072,
                      vocab=50257, act="gelu", norm="layernorm", max_positions=1024,
                      biases=True, tied_embeddings=True,
                      source="GPT-2 124M, huggingface.co/gpt2 config.json"),
    # Devlin et al. 2019; huggingface.co/bert-base-uncased config.json: hidden 768, 12 layers,
    # 12 heads, intermediate 3072, vocab 30522, max_position 512, type_vocab 2, gelu.
    # 109,482,240 parameters (with pooler). Encoder only: no LM head.
    "bert_base": LlmConfig("bert_base", hidden=768, layers=12, heads=12, kv_heads=12, ffn=3072,
                           vocab=30522, act="gelu", norm="layernorm", max_positions=512,
                           type_vocab=2, biases=True, lm_head=False, pooler=True,
                           embed_norm=True, final_norm=False,
                           source="BERT-base uncased, huggingface.co/bert-base-uncased "
                                  "config.json"),
    # Meta Llama 3 (2024); huggingface.co/meta-llama/Meta-Llama-3-8B config.json: hidden 4096,
    # intermediate 14336, 32 layers, 32 heads, 8 KV heads, vocab 128256, RMSNorm, SiLU, RoPE.
    # 8,030,261,248 parameters.
    "llama3_8b": LlmConfig("llama3_8b", hidden=4096, layers=32, heads=32, kv_heads=8,
                           ffn=14336, vocab=128256, gated=True, act="silu", norm="rmsnorm",
                           positions="rope",
                           source="Llama-3-8B, huggingface.co/meta-llama/Meta-Llama-3-8B "
                                  "config.json"),
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-70b-hf config.json: hidden 8192,
    # intermediate 28672, 80 layers, 64 heads, 8 KV heads, vocab 32000. 68,976,648,192 params.
    "llama2_70b": LlmConfig("llama2_70b", hidden=8192, layers=80, heads=64, kv_heads=8,
                            ffn=28672, vocab=32000, gated=True, act="silu", norm="rmsnorm",
                            positions="rope",
                            source="Llama-2-70B, huggingface.co/meta-llama/Llama-2-70b-hf "
                                   "config.json"),
}


def get_preset(name: str) -> LlmConfig:
    key = name.lower().replace("-", "_")
    if key not in PRESETS:
        raise InputError("llm preset", None, name, f"unknown preset{suggest(key, PRESETS)}; "
                         "allowed: " + "|".join(PRESETS))
    return PRESETS[key]


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
    if cfg.hidden % cfg.heads:
        raise InputError("llm config", "heads", cfg.heads, f"must divide hidden={cfg.hidden}")
    if cfg.heads % cfg.kv_heads:
        raise InputError("llm config", "kv_heads", cfg.kv_heads,
                         f"must divide heads={cfg.heads}")


def llm_rows(cfg: LlmConfig, phase: Literal["prefill", "decode"] = "prefill", batch: int = 1,
             seq: int | None = None, kv_len: int | None = None, dtype: str = "bf16",
             logits: Literal["all", "last"] = "all") -> list[dict[str, Any]]:
    """Trace rows for one forward pass: ``batch`` sequences, ``seq`` new tokens each, attending
    to ``kv_len`` keys. Prefill: seq defaults to 128 and kv_len to seq. Decode: seq defaults
    to 1 (one new token per step) and kv_len is required (the context length, new token
    included)."""
    _check_config(cfg)
    if phase not in ("prefill", "decode"):
        raise InputError("llm", "phase", phase, "allowed: prefill|decode")
    if seq is None:
        seq = 128 if phase == "prefill" else 1
    if kv_len is None:
        if phase == "decode":
            raise InputError("llm", "kv_len", None, "decode needs the KV-cache length, "
                             "e.g. --kv-len 2048")
        kv_len = seq
    for f, v in (("batch", batch), ("seq", seq), ("kv_len", kv_len)):
        if not isinstance(v, int) or v <= 0:
            raise InputError("llm", f, v, "must be a positive integer")
        check_size(v, "llm", f)
    if kv_len < seq:
        raise InputError("llm", "kv_len", kv_len, f"must be >= seq={seq} (the new tokens "
                         "attend to themselves)")
    if logits not in ("all", "last"):
        raise InputError("llm", "logits", logits, "allowed: all|last")
    from ..formats import FORMATS
    if dtype not in FORMATS:
        raise InputError("llm", "dtype", dtype, "allowed: " + "|".join(FORMATS))
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
        vec("ffn_norm", cfg.norm, tok * h, L),
    ]
    if cfg.gated:
        rows += [mm("ffn_gate", tok, h, cfg.ffn, L), mm("ffn_up", tok, h, cfg.ffn, L),
                 vec(f"ffn_{cfg.act}", cfg.act, tok * cfg.ffn, L),
                 vec("ffn_gate_mul", "mul", tok * cfg.ffn, L)]
    else:
        rows += [mm("ffn_up", tok, h, cfg.ffn, L), vec(f"ffn_{cfg.act}", cfg.act, tok * cfg.ffn, L)]
    rows += [mm("ffn_down", tok, cfg.ffn, h, L), vec("ffn_residual", "residual", tok * h, L)]
    if cfg.lm_head:
        head_tok = batch if logits == "last" else tok
        if cfg.final_norm:
            rows.append(vec("final_norm", cfg.norm, head_tok * h))
        rows.append(mm("lm_head", head_tok, h, cfg.vocab))
    for r in rows:
        if r["count"] == 1:
            del r["count"]
    return rows


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
             dtype: str) -> str:
    seq = seq if seq is not None else (128 if phase == "prefill" else 1)
    kv_len = kv_len if kv_len is not None else seq
    fields = {k: v for k, v in asdict(cfg).items()
              if k in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "gated", "norm")}
    return (f"{cfg.name} {phase}: batch {batch}, seq {seq} new tokens, kv_len {kv_len}, {dtype}; "
            + ", ".join(f"{k} {v}" for k, v in fields.items())
            + (f"; dims from {cfg.source}" if cfg.source else ""))


__all__ = ["LlmConfig", "PRESETS", "get_preset", "custom_config", "llm_rows", "llm_macs",
           "llm_workload", "describe"]

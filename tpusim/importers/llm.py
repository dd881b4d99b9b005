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
from .._input import suggest
from .llm_step_args import check_step_args, step_defaults
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
    head_size: int = 0               # per-head dim when heads x head_dim != hidden (PaLM); 0: hidden/heads
    parallel_block: bool = False     # attention and FFN read one norm's output (PaLM, GPT-J)
    experts: int = 0                 # MoE: FFN experts per layer (0: dense)
    top_k: int = 0                   # MoE: experts each token is routed to
    expert_shards: int = 1           # MoE shard of one chip: it holds experts / expert_shards

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @property
    def moe(self) -> bool:
        return self.experts > 1

    def _ffn_params(self, experts: int) -> int:
        """FFN weights of ``experts`` experts plus the router (MoE), one layer."""
        per = (3 if self.gated else 2) * self.hidden * self.ffn
        return experts * per + (self.hidden * self.experts if self.moe else 0)

    def param_count(self) -> int:
        """Parameters as the published checkpoints count them (embeddings, norms, biases).
        A layernorm carries a bias only in models with biases (PaLM has none anywhere)."""
        h, hd, f = self.hidden, self.head_dim, self.ffn
        qkv_n = (self.heads + 2 * self.kv_heads) * hd
        norm_p = (2 if self.norm == "layernorm" and self.biases else 1) * h
        norms = 1 if self.parallel_block else 2
        per = (h * qkv_n + self.heads * hd * h + self._ffn_params(max(self.experts, 1))
               + norms * norm_p)
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
        """Weights of the matmuls one token passes through (blocks + LM head, no embeddings);
        for MoE the ``top_k`` experts a token visits and the router (active parameters)."""
        h, hd = self.hidden, self.head_dim
        per = (h * (self.heads + 2 * self.kv_heads) * hd + self.heads * hd * h
               + self._ffn_params(self.top_k if self.moe else 1))
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
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-7b-hf config.json: hidden 4096,
    # intermediate 11008, 32 layers, 32 heads, 32 KV heads (MHA), vocab 32000. 6,738,415,616 params.
    "llama2_7b": LlmConfig("llama2_7b", hidden=4096, layers=32, heads=32, kv_heads=32,
                           ffn=11008, vocab=32000, gated=True, act="silu", norm="rmsnorm",
                           positions="rope",
                           source="Llama-2-7B, huggingface.co/meta-llama/Llama-2-7b-hf "
                                  "config.json"),
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-70b-hf config.json: hidden 8192,
    # intermediate 28672, 80 layers, 64 heads, 8 KV heads, vocab 32000. 68,976,648,192 params.
    "llama2_70b": LlmConfig("llama2_70b", hidden=8192, layers=80, heads=64, kv_heads=8,
                            ffn=28672, vocab=32000, gated=True, act="silu", norm="rmsnorm",
                            positions="rope",
                            source="Llama-2-70B, huggingface.co/meta-llama/Llama-2-70b-hf "
                                   "config.json"),
}


def _llama(name: str, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int,
           source: str, **kw: Any) -> LlmConfig:
    return LlmConfig(name, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, ffn=ffn,
                     vocab=vocab, gated=True, act="silu", norm="rmsnorm", positions="rope",
                     source=source, **kw)


PRESETS.update({
    # Llama 3.1 (Dubey et al. 2024, Table 3); huggingface.co/meta-llama/Llama-3.1-8B config.json:
    # the Llama-3-8B dimensions (longer RoPE context only). 8,030,261,248 parameters.
    "llama3_1_8b": _llama("llama3_1_8b", 4096, 32, 32, 8, 14336, 128256,
                          "Llama-3.1-8B, huggingface.co/meta-llama/Llama-3.1-8B config.json"),
    # huggingface.co/meta-llama/Llama-3.1-70B config.json: hidden 8192, intermediate 28672,
    # 80 layers, 64 heads, 8 KV heads, vocab 128256. 70,553,706,496 parameters.
    "llama3_1_70b": _llama("llama3_1_70b", 8192, 80, 64, 8, 28672, 128256,
                           "Llama-3.1-70B, huggingface.co/meta-llama/Llama-3.1-70B config.json"),
    # huggingface.co/meta-llama/Llama-3.1-405B config.json: hidden 16384, intermediate 53248,
    # 126 layers, 128 heads, 8 KV heads, vocab 128256. 405,853,388,800 parameters.
    "llama3_1_405b": _llama("llama3_1_405b", 16384, 126, 128, 8, 53248, 128256,
                            "Llama-3.1-405B, huggingface.co/meta-llama/Llama-3.1-405B "
                            "config.json"),
    # Jiang et al. 2024 ("Mixtral of Experts"); huggingface.co/mistralai/Mixtral-8x7B-v0.1
    # config.json: hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 KV heads, vocab 32000,
    # 8 experts, 2 per token. 46,702,792,704 parameters.
    "mixtral_8x7b": _llama("mixtral_8x7b", 4096, 32, 32, 8, 14336, 32000,
                           "Mixtral-8x7B, huggingface.co/mistralai/Mixtral-8x7B-v0.1 config.json",
                           experts=8, top_k=2),
    # huggingface.co/mistralai/Mixtral-8x22B-v0.1 config.json: hidden 6144, intermediate 16384,
    # 56 layers, 48 heads, 8 KV heads, vocab 32000, 8 experts, 2 per token.
    "mixtral_8x22b": _llama("mixtral_8x22b", 6144, 56, 48, 8, 16384, 32000,
                            "Mixtral-8x22B, huggingface.co/mistralai/Mixtral-8x22B-v0.1 "
                            "config.json", experts=8, top_k=2),
    # Chowdhery et al. 2022 ("PaLM"), Table 1 and Section 2: d_model 18432, 118 layers, 48 heads
    # of 256 (heads x head_dim != d_model), multi-query attention (1 KV head), SwiGLU FFN of
    # 4 x d_model, parallel attention + FFN blocks, RoPE, 256k vocabulary, shared input/output
    # embeddings, no biases. 540.35 B parameters (Table 1).
    "palm_540b": LlmConfig("palm_540b", hidden=18432, layers=118, heads=48, kv_heads=1,
                           ffn=73728, vocab=256000, gated=True, act="silu", norm="layernorm",
                           positions="rope", tied_embeddings=True, head_size=256,
                           parallel_block=True,
                           source="PaLM-540B, Chowdhery et al. 2022, Table 1"),
    # Wang & Komatsuzaki 2021; huggingface.co/EleutherAI/gpt-j-6b config.json: n_embd 4096,
    # 28 layers, 16 heads of 256, n_inner 16384, vocab 50400, rotary, gelu, parallel block,
    # untied LM head. 6,053,381,344 parameters (mesh-transformer-jax README).
    "gptj_6b": LlmConfig("gptj_6b", hidden=4096, layers=28, heads=16, kv_heads=16, ffn=16384,
                         vocab=50400, act="gelu", norm="layernorm", positions="rope",
                         biases=True, parallel_block=True,
                         source="GPT-J-6B, huggingface.co/EleutherAI/gpt-j-6b config.json"),
})


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
    if not cfg.head_size and cfg.hidden % cfg.heads:
        raise InputError("llm config", "heads", cfg.heads, f"must divide hidden={cfg.hidden} "
                         "(or give head_dim)")
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
    (naming its own options), so they are not checked again."""
    _check_config(cfg)
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

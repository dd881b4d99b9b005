"""Published LLM configs (``tpusim workload llm PRESET``, ``train``, ``infer``, ``serve``): each
with its primary source (paper table and/or Hugging Face config.json) and published parameter count
in a comment; tests/test_llm.py checks :meth:`LlmConfig.param_count` against those counts."""
from __future__ import annotations

from typing import Any

from .._input import suggest
from ..errors import InputError
from .llm_config import LlmConfig


def _llama(name: str, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int,
           source: str, **kw: Any) -> LlmConfig:
    return LlmConfig(name, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, ffn=ffn,
                     vocab=vocab, gated=True, act="silu", norm="rmsnorm", positions="rope",
                     source=source, **kw)


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
    "llama3_8b": _llama("llama3_8b", 4096, 32, 32, 8, 14336, 128256,
                        "Llama-3-8B, huggingface.co/meta-llama/Meta-Llama-3-8B config.json"),
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-7b-hf config.json: hidden 4096,
    # intermediate 11008, 32 layers, 32 heads, 32 KV heads (MHA), vocab 32000. 6,738,415,616 params.
    "llama2_7b": _llama("llama2_7b", 4096, 32, 32, 32, 11008, 32000,
                        "Llama-2-7B, huggingface.co/meta-llama/Llama-2-7b-hf config.json"),
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-70b-hf config.json: hidden 8192,
    # intermediate 28672, 80 layers, 64 heads, 8 KV heads, vocab 32000. 68,976,648,192 params.
    "llama2_70b": _llama("llama2_70b", 8192, 80, 64, 8, 28672, 32000,
                         "Llama-2-70B, huggingface.co/meta-llama/Llama-2-70b-hf config.json"),
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
    # Brown et al. 2020 ("Language Models are Few-Shot Learners"), Table 2.1, GPT-3 175B (MLPerf
    # Training's gpt3 benchmark): 96 layers, d_model 12288, 96 heads of 128, d_ff 4 x d_model,
    # context 2048, GPT-2 BPE vocabulary (50257), learned positions, LayerNorm, GELU, biases,
    # tied LM head (GPT-2 style). "175.0B" (Table 2.1); our count 174,604,259,328 (0.23% under:
    # the paper rounds, and does not list its bias/norm layout).
    "gpt3_175b": LlmConfig("gpt3_175b", hidden=12288, layers=96, heads=96, kv_heads=96,
                           ffn=49152, vocab=50257, act="gelu", norm="layernorm",
                           max_positions=2048, biases=True, tied_embeddings=True,
                           source="GPT-3 175B, Brown et al. 2020, Table 2.1"),
    # Touvron et al. 2023; huggingface.co/meta-llama/Llama-2-13b-hf config.json: hidden 5120,
    # intermediate 13824, 40 layers, 40 heads, 40 KV heads (MHA), vocab 32000.
    # 13,015,864,320 parameters.
    "llama2_13b": _llama("llama2_13b", 5120, 40, 40, 40, 13824, 32000,
                         "Llama-2-13B, huggingface.co/meta-llama/Llama-2-13b-hf config.json"),
    # Meta Llama 3 (2024); huggingface.co/meta-llama/Meta-Llama-3-70B config.json: hidden 8192,
    # intermediate 28672, 80 layers, 64 heads, 8 KV heads, vocab 128256 (the Llama-3.1-70B
    # dimensions; 3.1 only lengthens the RoPE context). 70,553,706,496 parameters.
    "llama3_70b": _llama("llama3_70b", 8192, 80, 64, 8, 28672, 128256,
                         "Llama-3-70B, huggingface.co/meta-llama/Meta-Llama-3-70B config.json"),
    # Jiang et al. 2023 ("Mistral 7B"); huggingface.co/mistralai/Mistral-7B-v0.1 config.json:
    # hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 KV heads, vocab 32000, SwiGLU,
    # RMSNorm, RoPE, untied LM head. 7,241,732,096 parameters. Not modelled: its sliding-window
    # attention (window 4096): attention here is over all kv_len keys, exact up to 4096 and an
    # overestimate beyond (attention over min(kv_len, 4096) keys would be the refinement).
    "mistral_7b": _llama("mistral_7b", 4096, 32, 32, 8, 14336, 32000,
                         "Mistral-7B-v0.1, huggingface.co/mistralai/Mistral-7B-v0.1 "
                         "config.json"),
    # Gemma Team 2024 ("Gemma: Open Models Based on Gemini Research and Technology"), Table 1;
    # huggingface.co/google/gemma-7b config.json: hidden 3072, 28 layers, 16 heads of head_dim
    # 256 (16 x 256 = 4096 != hidden), 16 KV heads, intermediate 24576 (GeGLU: gate and up of
    # 24576 each; Table 1's "49152" counts both), vocab 256000, RMSNorm, RoPE, tied embeddings.
    # 8,537,680,896 parameters (embeddings included). Its RMSNorm's (1 + weight) scale and the
    # sqrt(hidden) embedding scale cost nothing here; the GELU is the tanh form, priced as gelu.
    "gemma_7b": LlmConfig("gemma_7b", hidden=3072, layers=28, heads=16, kv_heads=16, ffn=24576,
                          vocab=256000, gated=True, act="gelu", norm="rmsnorm", positions="rope",
                          tied_embeddings=True, head_size=256,
                          source="Gemma-7B, huggingface.co/google/gemma-7b config.json (Gemma "
                                 "Team 2024, Table 1)"),
}


# MaxText's base.yml model at global_parameter_scale S (its READMEs' "16B" .. "1024B" scaling
# runs), ``maxtext_scale_S``: emb 2048, 16 query and 16 KV heads of 128, MLP 7168, 16 layers,
# vocab 32000, decoder_block llama2 (RMSNorm, RoPE, SiLU-gated MLP, untied LM head); pyconfig's
# get_individual_scales multiplies heads and MLP by 2^(b + (r > 0)), the embedding by
# 2^(b + (r > 1)) and layers by 2^b, where b, r = divmod(log2 S, 3)
# (AI-Hypercomputer/maxtext, MaxText/pyconfig.py and configs/base.yml).
SCALED_PREFIX = "maxtext_scale_"
_SCALE_DIGITS = 20


def _scaled(name: str, key: str) -> LlmConfig:
    text = key[len(SCALED_PREFIX):]
    # ASCII digits only: str.isdigit also passes '²' (int() then raises) and other scripts'
    # digits; the length bound keeps int() under Python's 4,300-digit conversion limit.
    digits = text.isascii() and text.isdigit() and len(text) <= _SCALE_DIGITS
    scale = int(text) if digits else 0
    if scale < 1 or scale & (scale - 1):
        raise InputError("llm preset", None, name, "maxtext_scale_S takes a power of 2 for S "
                         f"(MaxText's global_parameter_scale; at most {_SCALE_DIGITS} digits), "
                         "e.g. maxtext_scale_32")
    b, r = divmod(scale.bit_length() - 1, 3)
    heads, emb = 16 << (b + (r > 0)), 2048 << (b + (r > 1))
    return LlmConfig(key, hidden=emb, layers=16 << b, heads=heads, kv_heads=heads,
                     head_size=128 if heads * 128 != emb else 0, ffn=7168 << (b + (r > 0)),
                     vocab=32000, gated=True, act="silu", norm="rmsnorm", positions="rope",
                     source=f"MaxText base.yml at global_parameter_scale {scale} (pyconfig "
                            "get_individual_scales)")


def preset_choices() -> str:
    """Every preset name, and the scaled family's pattern, as ``a|b|..|maxtext_scale_S``."""
    return "|".join(PRESETS) + f"|{SCALED_PREFIX}S"


def get_preset(name: str) -> LlmConfig:
    key = name.lower().replace("-", "_")
    if key.startswith(SCALED_PREFIX):
        return _scaled(name, key)
    if key not in PRESETS:
        raise InputError("llm preset", None, name, f"unknown preset{suggest(key, PRESETS)}; "
                         "allowed: " + preset_choices())
    return PRESETS[key]

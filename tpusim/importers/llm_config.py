"""An LLM's dimensions (:class:`LlmConfig`) and the parameter counts the published checkpoints
give: the model that the trace builder (``importers/llm.py``) writes rows for."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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

    def dims(self) -> dict:
        """The dimensions as simulated (defaults resolved) and the parameter count: what a
        train.json / infer.json records of its model."""
        from dataclasses import asdict
        d = {k: v for k, v in asdict(self).items() if k not in ("name", "source")}
        return {**d, "head_dim": self.head_dim, "params": self.param_count()}

    def summary(self) -> str:
        """One line of the dimensions a page shows: hidden, layers, heads, FFN, vocabulary,
        experts, parameters."""
        kv = f" ({self.kv_heads} KV)" if self.kv_heads != self.heads else ""
        moe = f", {self.experts} experts top-{self.top_k}" if self.moe else ""
        return (f"hidden {self.hidden}, {self.layers} layers, {self.heads} heads{kv} of "
                f"{self.head_dim}, FFN {self.ffn}{' gated' if self.gated else ''} {self.act}, "
                f"vocabulary {self.vocab}{moe}; {self.param_count() / 1e9:.3g} B parameters")

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

"""How an engine shapes its steps beyond continuous batching: the static shapes a compiled
engine pads its work to, and when it lets decodes run.

The defaults pad nothing (a vLLM-style engine with ragged kernels). JetStream's experimental JAX
engine, whose offline Llama-2-7B run on a v5e-8 is a ``validate`` check, documents in its code
(AI-Hypercomputer/JetStream, ``experimental/jax/inference/runtime/engine.py``
``InferenceParams``, ``batch_scheduler.py``, ``model_executor.py`` and
``kernel/attention_ops.py``): ``prefill_chunk_sizes = [128, 256, 512, 1024]`` (a prompt is
prefilled in chunks of the smallest size that holds it, or of the largest, each chunk padded to
its size); a generate step compiled for all ``max_num_seqs = 160`` slots; paged decode attention
that reads each sequence's keys in compute blocks of ``pages_per_compute_block = 4`` pages of
``page_size = 128`` tokens (512 keys); offline, decodes held back while a prompt is waiting
unless more than 0.95 of the slots hold a decode; and (``model/llama.py``) the LM head and the
logits' all-gather over every token of the step, not only the sampled ones. :data:`JETSTREAM`
collects these.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class StepShapes:
    """``prefill_chunks``: chunk sizes prompts are padded to (empty: unpadded); ``fixed_batch``:
    a step with decodes runs all ``max_batch`` slots through the rows that do not depend on KV;
    ``attention_block``: decode attention reads KV in blocks of this many tokens (1: exactly);
    ``decode_hold``: decodes wait while a prompt is prefilled unless more than this fraction of
    the slots hold one (0: never wait); ``all_logits``: the LM head (and with TP the logits'
    all-gather) runs every token of the step (False: the sampled ones, a decode's token and a
    prefill's last)."""

    prefill_chunks: tuple[int, ...] = ()
    fixed_batch: bool = False
    attention_block: int = 1
    decode_hold: float = 0.0
    all_logits: bool = False

    def chunk_for(self, tokens: int) -> int | None:
        """The padded chunk size a prompt of ``tokens`` tokens is prefilled in (None: whole,
        unpadded)."""
        if not self.prefill_chunks:
            return None
        return next((c for c in self.prefill_chunks if c >= tokens), self.prefill_chunks[-1])


# JetStream experimental/jax defaults (module docstring); with --max-batch 160 --kv-block 128
JETSTREAM = StepShapes(prefill_chunks=(128, 256, 512, 1024), fixed_batch=True,
                       attention_block=512, decode_hold=0.95, all_logits=True)


def step_shapes(prefill_chunks: str | None = None, fixed_batch: bool = False,
                attention_block: int = 1, decode_hold: float = 0.0,
                all_logits: bool = False) -> StepShapes:
    """:class:`StepShapes` from the CLI's options, checked (one line each way)."""
    chunks: tuple[int, ...] = ()
    if prefill_chunks:
        try:
            chunks = tuple(int(c) for c in prefill_chunks.split(","))
        except ValueError:
            chunks = (0,)
        if any(c < 1 for c in chunks) or list(chunks) != sorted(set(chunks)):
            raise InputError("--prefill-chunks", None, prefill_chunks,
                             "increasing token counts >= 1, e.g. 128,256,512,1024")
    if not isinstance(attention_block, int) or attention_block < 1:
        raise InputError("--attention-block", None, attention_block,
                         "an integer >= 1 (keys a decode's attention reads at a time)")
    if not (isinstance(decode_hold, (int, float)) and 0 <= decode_hold < 1):
        raise InputError("--decode-hold", None, decode_hold, "a fraction in [0, 1)")
    return StepShapes(chunks, bool(fixed_batch), attention_block, float(decode_hold),
                      bool(all_logits))


__all__ = ["StepShapes", "JETSTREAM", "step_shapes"]

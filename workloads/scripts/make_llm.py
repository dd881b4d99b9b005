"""Regenerate the transformer traces in workloads/ with tpusim's LLM builder.

Dims come from the published configs (tpusim/importers/llm.py PRESETS, each with its source);
the builder's MAC totals are checked against closed forms in tests/test_llm.py.
Run: python workloads/scripts/make_llm.py
"""
from __future__ import annotations

from pathlib import Path

from tpusim.importers.llm import describe, get_preset, llm_rows
from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

DIR = Path(__file__).resolve().parent.parent
ENCODERS = {"bert_base"}
# file -> (preset, phase, batch, seq, kv_len, dtype)
TRACES = {
    "bert_base.csv": ("bert_base", "prefill", 1, 128, 128, "bf16"),
    "gpt2.csv": ("gpt2", "prefill", 1, 1024, 1024, "bf16"),
    "llama3_8b_prefill.csv": ("llama3_8b", "prefill", 1, 2048, 2048, "bf16"),
    "llama3_8b_decode.csv": ("llama3_8b", "decode", 8, 1, 2048, "bf16"),
}


def main() -> None:
    for fname, (preset, phase, batch, seq, kv, dtype) in TRACES.items():
        cfg = get_preset(preset)
        rows = llm_rows(cfg, phase, batch, seq, kv, dtype)
        macs = sum(make_layer(r).macs * r.get("count", 1) for r in rows)
        # The note starts as `tpusim workload llm` writes it (MODEL PHASE: batch B, seq S ...):
        # `run` reads the step from it (tokens/s, --chips); a prefix would hide it.
        # BERT is an encoder: its trace stays one inference (inferences/s, no time to first
        # token), so its note keeps a prefix that `run` does not read as an LLM step.
        prefix = "shapes: " if preset in ENCODERS else ""
        write_trace(rows, DIR / fname, comments=[
            prefix + describe(cfg, phase, batch, seq, kv, dtype)
            + f"; same as: tpusim workload llm {preset} --phase {phase} --batch {batch} "
            f"--seq {seq} --kv-len {kv} --dtype {dtype}"
            + "; regenerate: python workloads/scripts/make_llm.py",
            f"{macs / 1e9:.6g} GMAC; {cfg.param_count():,} parameters",
        ])
        print(f"wrote {fname}: {len(rows)} rows, {macs / 1e9:.6g} GMAC")


if __name__ == "__main__":
    main()

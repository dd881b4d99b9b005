"""``tpusim workload llm``: build LLM prefill/decode traces from a model config."""
from __future__ import annotations

from pathlib import Path

import click

from .common import dim_flags, given_dims, model_dim_options


@click.group()
def workload():
    """Build workload traces.

    \b
    Example:
      tpusim workload llm llama3_8b --phase decode --batch 8 --kv-len 4096 --out l3-dec.csv
    """


@workload.command()
@click.argument("preset", required=False)
@click.option("--phase", type=click.Choice(["prefill", "decode"]), default="prefill",
              show_default=True, help="Prefill (seq new tokens) or decode (one token per step).")
@click.option("--batch", type=int, default=1, show_default=True, help="Sequences.")
@click.option("--seq", type=int, default=None,
              help="New tokens per sequence (default 128 for prefill, 1 for decode).")
@click.option("--kv-len", type=int, default=None,
              help="Keys attended per token, new ones included (default seq; needed for decode).")
@click.option("--dtype", default="bf16", show_default=True,
              help="Weight and activation dtype (int8|bf16|fp16|fp32|fp8_e4m3|...).")
@click.option("--kv-dtype", default=None,
              help="KV-cache dtype (default: --dtype): the format attention reads K and V in.")
@click.option("--logits", type=click.Choice(["all", "last"]), default="all", show_default=True,
              help="LM head on every new token, or on the last one only (serving prefill).")
@model_dim_options("custom model or override of PRESET: ")
@click.option("--norm", type=click.Choice(["layernorm", "rmsnorm"]), default=None,
              help="Norm type.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trace CSV to write (default NAME_PHASE.csv in the current dir).")
def llm(preset, phase, batch, seq, kv_len, dtype, kv_dtype, logits, norm, out, **dims):
    """Write an LLM trace for PRESET or a custom config (no PRESET, or ``custom``, with the
    dimensions as options). PRESET: gpt2, bert_base, gpt3_175b,
    gptj_6b, llama2_7b, llama2_13b, llama2_70b, llama3_8b, llama3_70b, llama3_1_8b, llama3_1_70b,
    llama3_1_405b, mistral_7b, gemma_7b, mixtral_8x7b, mixtral_8x22b, palm_540b, or
    maxtext_scale_S (MaxText's base.yml model at global_parameter_scale S).

    \b
    Example:
      tpusim workload llm gpt2 --phase prefill --seq 1024 --out gpt2.csv
      tpusim workload llm llama3_8b --phase decode --batch 8 --kv-len 4096
      tpusim workload llm --hidden 2048 --layers 16 --heads 16 --kv-heads 4 --vocab 32000 \\
          --gated --norm rmsnorm --seq 512
    """
    from dataclasses import asdict

    from ..errors import InputError
    from ..importers.llm import (custom_config, describe, get_preset, llm_macs, llm_rows,
                                 preset_choices)
    from ..importers.llm_step_args import check_positions, check_step_args
    from ..importers.trace_csv import write_trace
    from ..workload import make_layer

    over = {**given_dims(dims), **({"norm": norm} if norm else {})}
    flags = dim_flags({k: v for k, v in over.items() if k != "norm"}) \
        + (f" --norm {norm}" if norm else "")
    if preset == "custom":     # as train and infer spell it: the dimensions are the options
        preset = None
    if preset:
        cfg = get_preset(preset)
        if over:
            cfg = custom_config(**{**asdict(cfg), **over, "name": cfg.name + "_custom",
                                   "source": f"{cfg.source}, with {flags} given"})
    else:
        missing = [f"--{f}" for f in ("hidden", "layers", "heads", "vocab") if f not in over]
        if missing:
            raise InputError("tpusim workload llm", None, message="give a PRESET ("
                             + preset_choices() + ") or " + ", ".join(missing))
        over.setdefault("kv_heads", over["heads"])
        over.setdefault("ffn", 4 * over["hidden"])
        if over.get("gated"):
            over.setdefault("act", "silu")
        cfg = custom_config(name="llm", **over)
    # checked here, once, so that errors name the options typed, not the builder's fields
    s, kv = check_step_args(phase, batch, seq, kv_len, dtype, logits, options=True)
    check_positions(cfg, kv, "--kv-len" if kv_len is not None else "--seq")
    from ..step_trace import check_kv_dtype, kv_operands
    if kv_dtype is not None:
        check_kv_dtype(None, kv_dtype, dtype)
    rows = kv_operands(llm_rows(cfg, phase, batch, seq, kv_len, dtype, logits, checked=True),
                       dtype, kv_dtype)
    from .common import trace_target
    out = trace_target(out, Path(f"{cfg.name}_{phase}.csv"))
    macs = sum(make_layer(r, f"llm {cfg.name} {phase}: layer {r['name']!r}").macs
               * r.get("count", 1) for r in rows)
    exact = llm_macs(cfg, batch, s, kv, logits)
    # the experts' batched GEMM gives each of them ceil(pairs / experts) token slots
    # (importers/llm.py _moe_rows): where that does not divide, the trace counts padding
    pad = (f"; {(macs - exact) / 1e9:.6g} GMAC of them the experts' padded token slots "
           f"({exact / 1e9:.6g} GMAC of the model's)") if macs > exact * (1 + 1e-9) else ""
    write_trace(rows, out, comments=[
        describe(cfg, phase, batch, seq, kv_len, dtype, kv_dtype)
        + f"; regenerate: tpusim workload llm {preset or 'custom'} {flags + ' ' if flags else ''}"
        f"--phase {phase} --batch {batch} --seq {s} --kv-len {kv} --dtype {dtype}"
        + (f" --kv-dtype {kv_dtype}" if kv_dtype and kv_dtype != dtype else "")
        + (f" --logits {logits}" if logits != "all" else ""),
        f"{macs / 1e9:.6g} GMAC{pad}",
    ])
    click.echo(f"{cfg.name} {phase}: {len(rows)} rows, {macs / 1e9:.6g} GMAC "
               f"({cfg.param_count() / 1e6:.1f} M parameters){pad}")
    click.echo(f"wrote {out}")


@workload.command()
@click.argument("trace")
@click.option("--channels", type=float, required=True,
              help="Fraction of output channels to remove (0 <= f < 1).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output trace CSV [default: <trace>_pruned.csv].")
def prune(trace, channels, out):
    """Channel-prune a trace CSV: drop a fraction of each conv/matmul's output channels and the
    matching input channels of the next layer, where the trace shows the chain.

    The first layer's inputs and the last layer's outputs stay dense; so do outputs that feed a
    residual add (see tpusim.prune).

    \b
    Example:
      tpusim workload prune vgg16 --channels 0.5 --out vgg16_half.csv
    """
    import math

    from ..errors import InputError
    from ..importers import find_workload
    from ..importers.trace_csv import read_trace_rows, write_trace
    from ..prune import prune_rows
    from ..workload import make_layer

    if not (math.isfinite(channels) and 0 <= channels < 1):
        raise InputError("--channels", None, channels, "must be a fraction 0 <= f < 1")
    path = find_workload(trace)
    if path.suffix.lower() == ".onnx":
        raise InputError(str(path), None, message="prune works on trace CSVs; convert the model "
                         "with `tpusim import` first")
    rows, comments = read_trace_rows(path)
    dense = [make_layer(r, str(path), n) for r, n in rows]
    pruned, notes = prune_rows([r for r, _ in rows], channels, str(path))
    from .common import trace_target
    out = trace_target(out, Path(f"{path.stem}_pruned.csv"), path)
    write_trace(pruned, out, comments=list(comments) + [
        f"channel-pruned by tpusim workload prune --channels {channels:g} from {path.name}"])
    after = sum(make_layer(r, str(out), i).macs * make_layer(r, str(out), i).count
                for i, r in enumerate(pruned, start=2))
    before = sum(l.macs * l.count for l in dense)
    from ..units import macs
    click.echo(f"{path.stem}: {len(notes)} rows changed, {macs(before)} -> "
               f"{macs(after)} ({after / before if before else 1:.1%})")
    for n in notes[:8]:
        click.echo("  " + n)
    if len(notes) > 8:
        click.echo(f"  ... {len(notes) - 8} more")
    click.echo(f"wrote {out}")

"""``tpusim train``: one LLM training step on a multi-chip slice (tpusim/pod/train.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from .common import (checked_trace, command_provenance_of, default_out, dim_flags, given_dims,
                     loaded_chip, model_dim_options, plotlyjs_option, set_option, write_outputs)


def _default_microbatches(spec, global_batch: int) -> int:
    """Without ``--microbatches``: 1 without pp; with pp the smallest count from pp up that
    divides a replica's sequences (the search's first), or a line saying why none does."""
    if spec.pp == 1:
        return 1
    if global_batch % spec.replicas:
        return spec.pp                  # train_step names the batch's problem
    from ..errors import InputError
    from ..pod.search import microbatch_counts
    per = global_batch // spec.replicas
    counts = microbatch_counts(spec, per)
    if not counts:
        raise InputError("--parallel", None, spec.label(), f"pp={spec.pp} needs at least "
                         f"{spec.pp} microbatches to fill its stages, and a replica trains "
                         f"on {per} sequence{'s' if per != 1 else ''}; raise --global-batch, or "
                         f"give --microbatches (a divisor of {per}: stages wait longer)")
    return counts[0]


@click.command()
@click.argument("config")
@click.argument("model")
@click.option("--chips", type=int, default=None,
              help="Chips in all (default: the preset's slice times --slices).")
@click.option("--topology", default=None, metavar="AxB[xC]",
              help="Slice shape, e.g. 16x16 or 4x4x8 (default: derived from --chips).")
@click.option("--slices", type=int, default=1, show_default=True,
              help="Slices joined over DCN: dp spans them if a multiple of them, else fsdp.")
@click.option("--seq", type=int, default=None,
              help="Tokens per sequence (default 2048, or fewer where the model's learned "
                   "position table is shorter: GPT-2's 1024).")
@click.option("--global-batch", type=int, default=None, help="Sequences per step.")
@click.option("--batch-per-chip", type=int, default=None,
              help="Sequences per chip (global batch = this x chips); default 1.")
@click.option("--parallel", default=None, metavar="fsdp=..,tp=..,dp=..,pp=..,ep=..[,sp]",
              help="Parallelism degrees; without it, search the shardings that fit.")
@click.option("--remat", default=None,
              metavar="none|minimal|full|save:NAMES|offload:NAMES|save:NAMES+offload:NAMES",
              help="Recompute policy (default full; none/minimal/full searched when --parallel "
                   "is not given). NAMES: block rows (qkv_proj, o_proj, ffn_up, ..) or input, "
                   "kept in HBM (save) or pinned host memory (offload); the rest recomputed.")
@click.option("--microbatches", type=click.IntRange(min=1), default=None,
              help="Microbatches per step (pipeline / gradient accumulation; default 1, or with "
                   "pp the smallest count from pp up that divides a replica's sequences; "
                   "searched without --parallel).")
@click.option("--attention", type=click.Choice(["causal", "full"]), default="causal",
              show_default=True, help="MFU counts causal attention FLOPs halved (MaxText) or not.")
@click.option("--flash-blocks", "flash_blocks", default=None,
              metavar="q=..,kv=..,kv_compute=..,q_dkv=..,kv_dkv=..,kv_dkv_compute=..,q_dq=..,"
                      "kv_dq=..,fused_bwd=0|1",
              help="Flash-attention block sizes per pass (the splash kernel's, MaxText's "
                   "sa_block_* keys) and the fused or unfused backward; keys not given keep "
                   "the default: 1024 (or the largest block from 128 that divides --seq), fused.")
@click.option("--moe", default="megablox", show_default=True,
              metavar="megablox|dropless|dropped:CF",
              help="MoE experts: dropless grouped matmuls (megablox), or MaxText's dense path "
                   "with capacity factor CF (tokens past it dropped; MFU still counts every "
                   "token's FLOPs, as MaxText does), e.g. dropped:1.25.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Search: how many of the best shardings to report.")
@model_dim_options("custom MODEL: ")
@click.option("--trace", "trace_path", default=None, metavar="FILE.json",
              help="Also write the step's per-layer schedule (compute, ICI collectives) as a "
                   "Chrome/Perfetto trace (open it in ui.perfetto.dev).")
@plotlyjs_option()
@set_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for train.json (default results/train-<config>-<model>[-<options>]/, "
                   "named for every option given that changes the step).")
def train(config, model, chips, topology, slices, seq, global_batch, batch_per_chip, parallel,
          remat, microbatches, attention, flash_blocks, moe, top, trace_path, sets, out_dir,
          **dims_given):
    """One training step of MODEL (an LLM preset, e.g. llama2_70b, or ``custom`` with its
    dimensions as options) on chip CONFIG's slice.

    Writes DIR/train.json: step_s, tokens_per_s(_per_chip), mfu, hfu, hbm_gib_per_chip, the
    parallelism and the time split (compute, exposed collectives, bubble, optimizer), and
    DIR/report.html, the same as a page with a Gantt of the step's per-layer schedule
    (``--trace FILE.json``: the schedule as a Chrome/Perfetto trace); train.json's provenance
    records the command, options and resolved config, which DIR/config.yaml holds.

    \b
    Example:
      tpusim train tpu_v5p llama2_70b --chips 256 --seq 4096 --batch-per-chip 4 \\
          --parallel fsdp=256 --trace step.json
      tpusim train tpu_v4 palm_540b --chips 6144 --slices 2 --parallel dp=2,fsdp=256,tp=12,sp
    """
    from ..errors import InputError
    from ..importers.llm import custom_config, get_preset
    from ..pod.search import search
    from ..pod.sharding import parse_spec
    from ..pod.topology import make_slice
    from ..pod.remat import parse_remat
    from ..pod.train import train_step

    from ..pod.dropmoe import parse_moe
    policy = parse_remat(remat) if remat is not None else None   # syntax, before anything runs
    from ..pod.flash_blocks import FlashBlocks
    kernel = parse_moe(moe)
    chip, overrides = loaded_chip(config, sets)
    dims = given_dims(dims_given)
    if model == "custom":
        missing = [f"--{f}" for f in ("hidden", "layers", "heads", "vocab") if f not in dims]
        if missing:
            raise InputError("tpusim train", "custom", None,
                             "a custom MODEL needs " + ", ".join(missing))
        dims.setdefault("kv_heads", dims["heads"])
        dims.setdefault("ffn", 4 * dims["hidden"])
        cfg = custom_config(name="custom", norm="rmsnorm", positions="rope", **dims)
    elif dims:
        raise InputError("tpusim train", None, dim_flags(dims),
                         "model dimensions go with MODEL custom; presets have theirs")
    else:
        cfg = get_preset(model)
    from click.core import ParameterSource
    if not cfg.moe and click.get_current_context().get_parameter_source("moe") \
            is ParameterSource.COMMANDLINE:     # given, not the default: it would do nothing
        raise InputError("--moe", None, moe, f"{cfg.name} has no experts (dense model); --moe "
                         "applies to MoE models")
    if seq is None:
        seq = min(2048, cfg.max_positions or 2048)
    flash = None
    if flash_blocks is not None and isinstance(seq, int) and seq > 0:
        # keys not given keep the sequence's default blocks; all must divide it
        flash = FlashBlocks.parse(flash_blocks, base=FlashBlocks.for_seq(seq))
        flash.check_divides(seq)
    out = out_dir or default_out("train", config, cfg.name)
    trace_path = checked_trace(trace_path, out, ("train.json", "config.yaml", "report.html"))
    sl = make_slice(chip.ici, chip.dcn, shape=topology, chips=chips, slices=slices)
    if global_batch is not None and batch_per_chip is not None:
        raise InputError("--global-batch", None, global_batch,
                         "give --global-batch or --batch-per-chip, not both")
    if batch_per_chip is not None and batch_per_chip < 1:
        raise InputError("--batch-per-chip", None, batch_per_chip, "must be a positive integer")
    gb = global_batch if global_batch is not None else (batch_per_chip or 1) * sl.chips
    if parallel is not None:
        spec = parse_spec(parallel)
        mbs = microbatches or _default_microbatches(spec, gb)
        r = train_step(chip, cfg, sl, spec, seq, gb, policy or "full", mbs, attention,
                       flash=flash, moe=kernel)
        picked = [(spec.label(), r.remat, mbs, r)]
        how = "given"
    else:
        found = search(chip, cfg, sl, seq, gb, top=top, microbatches=microbatches,
                       remats=(policy,) if policy else ("none", "minimal", "full"),
                       attention=attention, flash=flash, moe=kernel)
        picked = [(c.spec.label(), c.remat, c.microbatches, c.result) for c in found]
        how = "searched"
    best = picked[0][3]
    record = {**best.as_dict(), "remat": picked[0][1], "microbatches": picked[0][2],
              "sharding": how, "config": chip.name, "model": cfg.name,
              "model_dims": cfg.dims(), "model_summary": cfg.summary(), "seq": seq,
              "global_batch": gb, "attention": attention,
              "flash_blocks": dataclasses.asdict((flash or FlashBlocks.for_seq(seq)).clipped(seq)),
              "alternatives": [{"parallel": p, "remat": rm, "microbatches": m,
                                "step_s": x.step_s, "mfu": x.mfu,
                                "hbm_gib_per_chip": x.hbm_gib_per_chip}
                               for p, rm, m, x in picked]}
    record["provenance"] = prov = command_provenance_of(chip, config, overrides)
    from ..pod.report import train_report
    from ..pod.schedule_view import schedule_figure, schedule_trace_json
    sched = best.schedule()
    title = f"{cfg.name} on {chip.name} {sl.label()}, {picked[0][0]}"
    page = train_report(record, schedule_figure(sched, f"Timeline of one step: {title}"))
    trace = trace_path and (trace_path, schedule_trace_json(
        sched, {"name": title, "parallel": picked[0][0], "run_id": prov["run_id"]}))
    written = write_outputs(out, "train", record, page, chip, prov["run_id"],
                            "train THIS_FILE MODEL", trace)
    from ..units import counted, number, seconds
    for p, rm, m, x in picked:
        click.echo(f"{p:28s} remat {rm:7s} mb {m:3d}  step {seconds(x.step_s):>9s}  "
                   f"MFU {x.mfu:6.1%}  HFU {x.hfu:6.1%}  {number(x.tokens_per_s_per_chip):>9s} "
                   f"tok/s/chip  {x.hbm_gib_per_chip:6.1f} GiB/chip")
    t = best.time_s
    click.echo(f"{cfg.name} on {chip.name} {sl.label()} ({counted(sl.chips, 'chip')}), {how} "
               f"sharding {picked[0][0]}: compute {seconds(t['compute'])}, exposed collectives "
               f"{seconds(t['exposed_collectives'])}, bubble {seconds(t['bubble'])}, optimizer "
               f"{seconds(t['optimizer'])}")
    if best.host_offload_bytes_per_step:
        from ..units import nbytes
        click.echo(f"remat {best.remat}: {nbytes(best.memory_gib['host_offload'] * 2**30)} of "
                   f"activations per chip in host memory, "
                   f"{nbytes(best.host_offload_bytes_per_step)} to host and back per step "
                   "(transfers taken as hidden under compute)")
    for note in best.notes[1:]:          # the first (per-chip batch, policy, shard) is above
        click.echo(note)
    click.echo("wrote " + ", ".join(str(p) for p in written))
    if trace_path is not None:
        click.echo(f"wrote {trace_path} (open it in ui.perfetto.dev)")

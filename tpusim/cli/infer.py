"""``tpusim infer``: one sharded LLM prefill or decode step on a slice (tpusim/pod/infer.py)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (checked_trace, command_provenance_of, default_out, loaded_chip, set_option,
                     trace_option, write_outputs)


@click.command()
@click.argument("config")
@click.argument("model")
@click.option("--chips", type=int, default=None, help="Chips (default: the preset's slice).")
@click.option("--topology", default=None, metavar="AxB[xC]", help="Slice shape, e.g. 2x4.")
@click.option("--parallel", default=None, metavar="tp=..[,dp=..]",
              help="Tensor and data parallel degrees (default: tp over every chip).")
@click.option("--phase", type=click.Choice(["prefill", "decode"]), default="decode",
              show_default=True, help="Prefill (seq new tokens) or one decode step.")
@click.option("--batch", type=int, default=1, show_default=True, help="Sequences in all.")
@click.option("--seq", type=int, default=None,
              help="New tokens per sequence (default 128 for prefill, 1 for decode).")
@click.option("--kv-len", type=int, default=None,
              help="Keys attended per token, new ones included (needed for decode).")
@click.option("--dtype", default="bf16", show_default=True, help="Weight and activation dtype.")
@click.option("--kv-dtype", default=None,
              help="KV-cache dtype (default: --dtype): its bytes per chip and the bytes "
                   "attention reads (int8 under bf16: 1 byte a value, rescaled in the kernel).")
@set_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for infer.json and report.html (default "
                   "results/infer-<config>-<model>[-<options>]/, named for every option given).")
@trace_option()
def infer(config, model, chips, topology, parallel, phase, batch, seq, kv_len, dtype, kv_dtype,
          sets, out_dir, trace_path):
    """One sharded inference step of MODEL (an LLM preset) on chip CONFIG's slice.

    Writes DIR/infer.json: latency_s, compute_s, collectives_s (tp all-reduces on the critical
    path), tokens/s, HBM per chip (weights + KV cache), the provenance (command, options,
    resolved config); DIR/config.yaml holds the resolved config; DIR/report.html shows the step's
    time split, its time by op and memory per chip. --trace FILE.json lays the step out in time
    (each block's rows, the all-reduces between them) for ui.perfetto.dev.

    \b
    Example:
      tpusim infer tpu_v5e llama2_70b --chips 8 --parallel tp=8 --dtype int8 \\
          --phase decode --batch 8 --kv-len 2048 --trace decode.json
    """
    from ..importers.llm import get_preset
    from ..importers.llm_step_args import check_positions, check_step_args
    from ..pod.infer import infer_step
    from ..pod.sharding import ParallelSpec, parse_spec, spec_source
    from ..pod.topology import ONE_SLICE, make_slice

    chip, overrides = loaded_chip(config, sets)
    cfg = get_preset(model)
    out = out_dir or default_out("infer", config, cfg.name)
    trace_path = checked_trace(trace_path, out, OWN)
    # checked here, once, so that errors name the options typed, not the builder's fields
    new, kv = check_step_args(phase, batch, seq, kv_len, dtype, options=True)
    check_positions(cfg, kv, "--kv-len" if kv_len is not None else "--seq")
    sl = make_slice(chip.ici, chip.dcn, shape=topology, chips=chips, beyond=ONE_SLICE)
    spec = parse_spec(parallel) if parallel else ParallelSpec(tp=sl.chips)
    r = infer_step(chip, cfg, sl, spec, phase, batch, seq, kv_len, dtype,
                   spec_source=spec_source(parallel, chips, topology), checked=True,
                   kv_dtype=kv_dtype)
    record = {**r.as_dict(), "config": chip.name, "model": cfg.name, "batch": batch,
              "seq": new, "kv_len": kv, "dtype": dtype,      # as resolved (decode: seq 1)
              "model_dims": cfg.dims(), "model_summary": cfg.summary()}
    record["provenance"] = prov = command_provenance_of(chip, config, overrides)
    from ..pod.report import step_report
    page = step_report(record, "infer")
    trace = trace_path and (trace_path, step_trace_json(r, f"{cfg.name} {phase} on {chip.name} "
                                                    f"{r.topology}", prov["run_id"]))
    written = write_outputs(out, "infer", record, page, chip, prov["run_id"],
                            "infer THIS_FILE MODEL", trace)
    click.echo(step_line(record, "all-reduces"))
    click.echo("wrote " + ", ".join(str(p) for p in written))
    if trace_path is not None:
        click.echo(f"wrote {trace_path} (open it in ui.perfetto.dev)")


OWN = ("infer.json", "config.yaml", "report.html")   # infer's files, which --trace must not name


def step_line(rec: dict, comm: str) -> str:
    """The one-line summary of a sharded step's record (infer.json, sharded.json); ``comm``
    names its collectives."""
    from .. import units
    chips = f"{rec['chips']} chip{'s' if rec['chips'] != 1 else ''}"
    return (f"{rec['model']} {rec['phase']} on {rec['config']} {rec['topology']} ({chips}, "
            f"{rec['parallel']}): {units.seconds(rec['latency_s'])} "
            f"({units.seconds(rec['compute_s'])} compute + "
            f"{units.seconds(rec['collectives_s'])} {comm}), "
            f"{units.number(rec['tokens_per_s'])} tokens/s, {rec['hbm_gib_per_chip']:.1f} GiB/chip")


def step_trace_json(r, name: str, run_id: str) -> str:
    """The trace file of one sharded inference step (``InferResult.schedule``)."""
    from ..pod.schedule_view import schedule_trace_json
    return schedule_trace_json(r.schedule(), {"name": name, "parallel": r.parallel,
                                              "run_id": run_id})

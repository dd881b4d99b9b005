"""``tpusim run`` and ``tpusim configs``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import parse_sets, set_option


def print_summary(result, out_dir: Path | None, written: list | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    t = Table(title=f"{s['workload']} on {s['config']} ({s['timing_model']}, {s['format']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("latency", f"{s['latency_s'] * 1e3:.4g} ms ({s['total_cycles']:.6g} cycles)"),
        _throughput(result),
        ("achieved / peak", f"{s['achieved_tops']:.4g} / {s['peak_tops']:.4g} TOPS"),
        ("utilization", f"{s['utilization']:.1%}"),
        ("energy / inference", f"{s['energy_per_inference_j'] * 1e3:.4g} mJ"),
        ("HBM traffic", f"{s['hbm_bytes'] / 2**20:.4g} MiB"),
        ("time by bound", ", ".join(f"{k} {v:.0%}" for k, v in s["bound_share"].items() if v)),
        ("simulated in", f"{s['simulator_seconds'] * 1e3:.3g} ms"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console(highlight=False).print(t)
    if out_dir is not None:
        click.echo(f"wrote {out_dir}/" + ", ".join(Path(p).name for p in written))


def _throughput(result) -> tuple[str, str]:
    """Tokens for an LLM step trace (its note says sequences and new tokens), else inferences."""
    from ..serve.tokens import token_metrics

    s = result.summary
    tm = token_metrics(result.workload.notes, s["latency_s"], s["batch"])
    if tm is None:
        return ("throughput", f"{s['throughput_per_s']:.4g} inferences/s (batch {s['batch']})")
    if tm["phase"] == "decode":
        return ("tokens", f"{tm['tokens_per_s']:.4g} tokens/s, {tm['ms_per_output_token']:.4g} "
                          f"ms per output token ({tm['sequences']} sequences, KV {tm['kv_len']})")
    return ("prefill", f"time to first token {tm['time_to_first_token_s'] * 1e3:.4g} ms, "
                       f"{tm['tokens_per_s']:.4g} prompt tokens/s ({tm['sequences']} x "
                       f"{tm['new_tokens']} tokens)")


@click.command()
@click.argument("config")
@click.argument("workload")
@click.option("--format", "fmt", default=None, help="Run every GEMM layer in this format.")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Samples per inference (scales batch, rows and elements).")
@set_option()
@click.option("--engine", type=click.Choice(["analytic", "event"]), default=None,
              help="Closed-form fast path or the simpy event engine (default: config's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/<config>-<workload>[-<options>]/, named "
                   "for every option that changes the numbers).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=1x3x224x224",
              help="Fix a dynamic input dim of an .onnx WORKLOAD (repeatable).")
@click.option("--numerics", is_flag=True,
              help="Add gemm_rel_error per layer: its GEMM, sampled, computed bit-accurately.")
@click.option("--chips", type=int, default=None,
              help="LLM step trace: shard it over this many chips (writes DIR/sharded.json).")
@click.option("--parallel", default=None, metavar="tp=..[,dp=..]",
              help="With --chips: tensor and data parallel degrees (default tp over all chips).")
def run(config, workload, fmt, batch, sets, engine, out_dir, no_html, input_shapes,
        numerics, chips, parallel):
    """Simulate WORKLOAD on chip CONFIG; write layers.csv, summary.json, config.yaml, report.html.

    summary.json records the resolved config, the overrides, the command line, the version and
    the sha256 of each input; `tpusim run DIR/config.yaml WORKLOAD` (with the same --format,
    --batch, --engine) reproduces the run. Files of an earlier run in DIR are replaced or
    removed, so every file there comes from this run; other files are left alone.

    CONFIG is a preset name (default, tpu_v1, tpu_v4, ...), a YAML file or a SCALE-Sim .cfg.
    WORKLOAD is a trace .csv, a SCALE-Sim topology .csv, an .onnx model or a shipped name.

    \b
    Example:
      tpusim run default resnet50
      tpusim run tpu_v4 bert_base --format bf16 --set array.rows=256 --out results/v4
      tpusim run scale.cfg Resnet18.csv
      tpusim run tpu_v5e llama2_70b_decode.csv --chips 8 --parallel tp=8
    """
    import tpusim
    from .._io import check_dir
    from ..provenance import (coverage_warning, default_run_dir, mark_overrides, new_run_id,
                              run_provenance)
    from ..results import write_result

    overrides = parse_sets(sets)
    if chips is not None or parallel is not None:
        return _sharded(config, workload, overrides, chips, parallel, batch, out_dir)
    out = out_dir or default_run_dir(config, workload, fmt=fmt, batch=batch, engine=engine,
                                     overrides=overrides, input_shapes=input_shapes,
                                     numerics=numerics)
    check_dir(out)
    chip = mark_overrides(tpusim.load_config(config, **overrides), overrides)
    if input_shapes:
        from ..importers.onnx import parse_input_shapes
        wl = tpusim.load_workload(workload, input_shapes=parse_input_shapes(input_shapes))
    else:
        wl = tpusim.load_workload(workload)
    result = tpusim.simulate(chip, wl, format=fmt, batch=batch, engine=engine)
    if numerics:
        from ..numerics import layer_errors
        result.layers["gemm_rel_error"] = layer_errors(result)
        result.summary["max_gemm_rel_error"] = float(result.layers["gemm_rel_error"].max())
    ctx = click.get_current_context()
    argv = (ctx.find_object(dict) or {}).get("argv")
    prov = run_provenance(result, run_id=new_run_id(), config_arg=config, workload_arg=workload,
                          overrides=overrides, argv=argv, out_dir=out,
                          options={"format": fmt, "batch": batch, "engine": engine,
                                   "input_shapes": list(input_shapes), "numerics": numerics})
    written = write_result(result, out, html=not no_html, provenance=prov)
    warning = coverage_warning(result)
    if warning:
        click.echo(f"tpusim: {warning}", err=True)
    print_summary(result, out, written)
    if numerics and result.layers["gemm_rel_error"].notna().any():
        worst = result.layers.loc[result.layers["gemm_rel_error"].idxmax()]
        click.echo(f"numerics: worst GEMM error {worst['gemm_rel_error']:.3g} "
                   f"(layer {worst['name']}, {worst['format']}; sampled operands)")


def _sharded(config, workload, overrides, chips, parallel, batch, out_dir) -> None:
    """``--chips``/``--parallel``: the LLM step sharded (tpusim/pod/sharded_run.py)."""
    from ..config import load_config
    from ..pod.sharded_run import run_sharded

    r = run_sharded(load_config(config, **overrides), workload, chips, parallel, batch, out_dir)
    click.echo(f"{r['model']} {r['phase']} on {r['config']} {r['topology']} ({r['chips']} chips, "
               f"{r['parallel']}): {r['latency_s'] * 1e3:.4g} ms ({r['compute_s'] * 1e3:.4g} ms "
               f"compute + {r['collectives_s'] * 1e3:.4g} ms all-reduces on the critical path), "
               f"{r['tokens_per_s']:.4g} tokens/s, {r['hbm_gib_per_chip']:.1f} GiB/chip")
    click.echo(f"wrote {r['out']}")


@click.command()
def configs():
    """List chip presets and shipped workloads.

    \b
    Example:
      tpusim configs
    """
    from ..config import load_config, preset_names
    from ..importers import WORKLOAD_DIR

    for name in preset_names():
        c = load_config(name)
        click.echo(f"{name:10s} {c.description}")
    click.echo("")
    for p in sorted(WORKLOAD_DIR.rglob("*.csv")):
        click.echo(f"workload  {p.relative_to(WORKLOAD_DIR)}")

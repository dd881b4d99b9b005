"""``tpusim run`` and ``tpusim configs``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import default_out, parse_sets, set_option


def print_summary(result, out_dir: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    t = Table(title=f"{s['workload']} on {s['config']} ({s['timing_model']}, {s['format']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("latency", f"{s['latency_s'] * 1e3:.4g} ms ({s['total_cycles']:.6g} cycles)"),
        ("throughput", f"{s['throughput_per_s']:.4g} inferences/s (batch {s['batch']})"),
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
        click.echo(f"wrote {out_dir}/layers.csv, summary.json, report.html")


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
              help="Output directory (default results/<config>-<workload>/).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=1x3x224x224",
              help="Fix a dynamic input dim of an .onnx WORKLOAD (repeatable).")
@click.option("--numerics", is_flag=True,
              help="Add gemm_rel_error per layer: its GEMM, sampled, computed bit-accurately.")
def run(config, workload, fmt, batch, sets, engine, out_dir, no_html, input_shapes,
        numerics):
    """Simulate WORKLOAD on chip CONFIG; write layers.csv, summary.json and report.html.

    CONFIG is a preset name (default, tpu_v1, tpu_v4, ...), a YAML file or a SCALE-Sim .cfg.
    WORKLOAD is a trace .csv, a SCALE-Sim topology .csv, an .onnx model or a shipped name.

    \b
    Example:
      tpusim run default resnet50
      tpusim run tpu_v4 bert_base --format bf16 --set array.rows=256 --out results/v4
      tpusim run scale.cfg Resnet18.csv
    """
    import tpusim
    from ..results import write_result

    chip = tpusim.load_config(config, **parse_sets(sets))
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
    out = out_dir or default_out(config, workload)
    write_result(result, out, html=not no_html)
    print_summary(result, out)
    if numerics and result.layers["gemm_rel_error"].notna().any():
        worst = result.layers.loc[result.layers["gemm_rel_error"].idxmax()]
        click.echo(f"numerics: worst GEMM error {worst['gemm_rel_error']:.3g} "
                   f"(layer {worst['name']}, {worst['format']}; sampled operands)")


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

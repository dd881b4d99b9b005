"""``tpusim import onnx`` and ``tpusim import scalesim``: other formats to a tpusim trace CSV."""
from __future__ import annotations

from pathlib import Path

import click


@click.group(name="import")
def import_():
    """Convert an ONNX model or a SCALE-Sim topology into a tpusim trace CSV.

    \b
    Example:
      tpusim import onnx resnet50-int8.onnx --input-shape input=1x3x224x224 --out r50.csv
      tpusim import scalesim Resnet18.csv --out resnet18.csv
    """


@import_.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=1x3x224x224",
              help="Fix the dims of a model input (repeat per input); needed for dynamic dims.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trace CSV to write (default: MODEL with .csv suffix in the current dir).")
def onnx(model, input_shapes, out):
    """Import an ONNX MODEL (float, QDQ, QOperator or dynamically quantized) as a trace CSV.

    Conv, ConvTranspose, Gemm, MatMul and their quantized forms become GEMM rows; Softmax,
    norms, activations, pooling, ... become vector rows; layout ops cost nothing. Nodes that
    cannot be costed are listed with the reason.

    \b
    Example:
      tpusim import onnx model.onnx --input-shape input_ids=1x128 --out bert.csv
    """
    from ..importers.onnx import import_onnx, parse_input_shapes
    from ..importers.trace_csv import write_trace

    from .common import trace_target
    shapes = parse_input_shapes(input_shapes)
    out = trace_target(out, Path(Path(model).stem + ".csv"), model)
    imp = import_onnx(model, shapes or None)
    given = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())
    write_trace(imp.rows, out, comments=[
        f"shapes: ONNX model {Path(model).name} via tpusim import onnx"
        + (f" --input-shape {given}" if given else ""),
        imp.coverage_line(),
    ])
    click.echo(f"{model}: {len(imp.rows)} rows, {imp.macs / 1e9:.4g} GMAC, "
               f"{imp.vector_ops / 1e6:.4g} M vector ops")
    click.echo(f"coverage: {imp.coverage_line()}")
    for name, op, why in imp.unsupported[:20]:
        click.echo(f"  not costed: {name} ({op}): {why}")
    if len(imp.unsupported) > 20:
        click.echo(f"  ... and {len(imp.unsupported) - 20} more")
    click.echo(f"wrote {out}")


@import_.command()
@click.argument("topology", type=click.Path(path_type=Path))
@click.option("--gemm", is_flag=True, default=None,
              help="Read the GEMM form (Layer, M, N, K) even if the header does not say so.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trace CSV to write (default: TOPOLOGY stem + _trace.csv in the current dir).")
def scalesim(topology, gemm, out):
    """Import a SCALE-Sim TOPOLOGY CSV (conv or GEMM form) as a trace CSV.

    Layers named with DP (depthwise) become one row with count = channels, as SCALE-Sim runs them.

    \b
    Example:
      tpusim import scalesim topologies/conv_nets/Resnet18.csv --out resnet18.csv
      tpusim import scalesim gpt2.csv --gemm
    """
    from ..errors import InputError
    from ..importers.scalesim import topology_rows
    from ..importers.trace_csv import write_trace
    from ..workload import make_layer

    if not Path(topology).is_file():
        raise InputError(str(topology), None, message="topology file not found")
    from .common import trace_target
    out = trace_target(out, Path(Path(topology).stem + "_trace.csv"), topology)
    rows = topology_rows(topology, gemm)
    macs = sum(make_layer(r, str(topology)).macs * r.get("count", 1) for r in rows)
    write_trace(rows, out, comments=[
        f"shapes: SCALE-Sim topology {Path(topology).name} via tpusim import scalesim"
        + (" --gemm" if gemm else ""),
    ])
    click.echo(f"{topology}: {len(rows)} rows, {macs / 1e9:.4g} GMAC")
    click.echo(f"wrote {out}")

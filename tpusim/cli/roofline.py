"""``tpusim roofline``: the hierarchical roofline of one or more workloads on one chip."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import click

from .common import parse_sets, set_option, plotlyjs_option

PNG_HINT = "--png needs kaleido, which is not installed: pip install 'tpusim[png]'"


def have_kaleido() -> bool:
    return importlib.util.find_spec("kaleido") is not None


def default_html(config: str, workloads: tuple[str, ...], per_workload: bool = False) -> Path:
    stems = [Path(str(w)).stem for w in workloads]
    name = "+".join(stems) if len(stems) <= 3 else f"{stems[0]}+{len(stems) - 1}-more"
    tag = "-apps" if per_workload else ""
    return Path("results") / f"roofline-{Path(str(config)).stem}-{name}{tag}.html"


def _split(value: str | None) -> list[str | None]:
    if not value:
        return [None]
    parts = [p.strip() for p in value.split(",")]
    if any(not p for p in parts):
        from ..errors import InputError
        raise InputError("--format", None, value, "expected FMT or FMT,FMT (e.g. int8,bf16)")
    return parts


def _num(x: float) -> str:
    """A number; NaN (an on-chip row's intensity: no off-chip byte) as "on chip"."""
    from ..units import number
    return "on chip" if isinstance(x, float) and math.isnan(x) else number(x)


def print_layers(console, table, several: bool, mem: str = "HBM") -> None:
    from rich.table import Table

    from ..roofline_plots import bound_label
    t = Table(title="Roofline per layer", show_lines=False, expand=False)
    cols = (["workload"] if several else []) + [
        "layer", "format", "shape m×k×n", "share of time", f"ops/{mem} B", "ops/SRAM B",
        "attainable TOPS", "achieved TOPS", "bound", "why"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("workload", "layer", "why", "bound", "format",
                                                "shape m×k×n") else "right",
                     overflow="fold")
    for r in table.itertuples():
        shape = "vector" if r.kind == "vector" else f"{r.m}×{r.k}×{r.n}"
        cells = ([str(r.workload)] if several else []) + [
            str(r.name), r.format, shape, f"{r.time_share:.1%}", _num(r.ops_per_hbm_byte),
            _num(r.ops_per_sram_byte), _num(r.attainable_tops), _num(r.achieved_tops),
            bound_label(r.bound, mem), r.reason]
        t.add_row(*cells)
    console.print(t)


def print_workloads(console, wt, roofs) -> None:
    from rich.table import Table

    from ..roofline_plots import bound_label
    from ..units import seconds
    t = Table(title=f"Roofline per workload on {roofs.chip}")
    for c in ("workload", "format", "time", f"ops/{roofs.offchip} B", "attainable TOPS",
              "achieved TOPS",
              "of roof", "headroom", "memory-bound", "bound"):
        t.add_column(c, justify="left" if c in ("workload", "format", "bound") else "right")
    for r in wt.itertuples():
        t.add_row(str(r.workload), str(r.format), seconds(r.time_s),
                  _num(r.ops_per_hbm_byte), _num(r.attainable_tops), _num(r.achieved_tops),
                  f"{r.pct_of_attainable:.0%}", f"{r.headroom:.2f}x",
                  f"{r.memory_bound_fraction:.0%}", bound_label(str(r.bound), roofs.offchip))
    console.print(t)


@click.command()
@click.argument("config")
@click.argument("workloads", nargs=-1, required=True, metavar="WORKLOAD [WORKLOAD ...]")
@click.option("--format", "fmts", default=None, metavar="FMT[,FMT]",
              help="Run every GEMM layer in each of these formats (one series per format).")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Samples per inference (scales batch, rows and elements).")
@set_option()
@click.option("--per-workload", is_flag=True,
              help="One point per workload (total ops / HBM bytes vs achieved TOPS), as in "
                   "Jouppi et al. 2017, Fig. 5.")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="CSV of extra points to overlay: name,ops_per_byte,tops.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML chart (default results/roofline-<config>-<workload>.html); the table "
                   "goes to the same name with .csv.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a static PNG (needs kaleido: pip install 'tpusim[png]').")
@plotlyjs_option()
def roofline(config, workloads, fmts, batch, sets, per_workload, reference, out, png):
    """Roofline chart and table of WORKLOAD(s) on chip CONFIG.

    Log-log chart: a compute roof per format and the vector roof over the HBM slope, the ridge
    marked, one point per layer sized by its share of time and coloured by what bounds it
    (compute, hbm, sram, vector). Prints the table (with the reason for each bound) and writes
    the chart as a self-contained HTML file and the table as CSV beside it.

    \b
    Example:
      tpusim roofline tpu_v1 mlp0
      tpusim roofline default resnet50 --format int8,bf16 --out results/rn50-roofline.html
      tpusim roofline tpu_v1 mlp0 mlp1 lstm0 lstm1 cnn0 cnn1 --per-workload --png fig5.png
    """
    if png is not None and not have_kaleido():
        raise click.UsageError(PNG_HINT)
    import pandas as pd
    from rich.console import Console

    import tpusim
    from .._io import atomic_path, check_target, csv_safe
    from ..importers.reference import read_reference
    from ..report_pages import layer_table_html, roofline_page, workload_table_html
    from ..roofline_plots import roofline_chart
    from ..results import write_all
    from ..roofline import chip_roofs, layer_table, roof_notes, workload_table

    chip = tpusim.load_config(config, **parse_sets(sets))
    roofs = chip_roofs(chip)
    formats = [chip.check_format(f, "--format") if f else None for f in _split(fmts)]
    ref = read_reference(reference) if reference else None
    tables = []
    for w in workloads:
        wl = tpusim.load_workload(w)
        for f in formats:
            res = tpusim.simulate(chip, wl, format=f, batch=batch)
            tables.append(layer_table(res.layers, chip, roofs, wl.name))
    several = len(tables) > 1
    names = ", ".join(dict.fromkeys(str(t["workload"].iloc[0]) for t in tables if len(t)))
    title = f"Roofline: {names} on {chip.name}" + (f" (batch {batch})" if batch > 1 else "")
    fig = roofline_chart(tables, roofs, title, per_workload=per_workload, reference=ref)
    wt = workload_table(tables, roofs)
    csv_table = wt if per_workload else pd.concat(tables, ignore_index=True)

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    if not per_workload:
        print_layers(console, csv_table, several, roofs.offchip)
    print_workloads(console, wt, roofs)

    html_path = Path(out or default_html(config, workloads, per_workload))
    csv_path = html_path.with_suffix(".csv")
    for target in (html_path, csv_path, *([Path(png)] if png is not None else [])):
        check_target(target)
    notes = roof_notes(roofs)
    parts = [f"<h2>Per workload</h2>{workload_table_html(wt, roofs.offchip)}"]
    if not per_workload:
        parts += [f"<h2>{'Heaviest layers' if len(csv_table) > 40 else 'Layers'}</h2>"
                  + layer_table_html(csv_table.sort_values("time_s", ascending=False,
                                                           kind="stable"), top=40,
                                    mem=roofs.offchip)]
    page = roofline_page(fig, title, parts, notes)
    csv_text = csv_safe(csv_table).to_csv(index=False, float_format="%.10g")
    png_bytes = _png(fig) if png is not None else None
    files = {html_path.name: lambda p: p.write_text(page),
             csv_path.name: lambda p: p.write_text(csv_text)}
    if png is not None and Path(png).resolve().parent == html_path.resolve().parent:
        files[Path(png).name] = lambda p, data=png_bytes: p.write_bytes(data)
        png_bytes = None
    write_all(files, html_path.parent)
    if png_bytes is not None:
        with atomic_path(png) as tmp:
            tmp.write_bytes(png_bytes)
    written = [html_path, csv_path] + ([png] if png is not None else [])
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _png(fig) -> bytes:
    try:
        return fig.to_image(format="png", width=1200, height=700, scale=2)
    except Exception as exc:  # kaleido raises its own types (no Chrome, export failure)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(
            f"kaleido could not write the PNG ({msg}); kaleido >= 1 needs Chrome or Chromium "
            "(e.g. apt-get install chromium, or plotly_get_chrome)") from None

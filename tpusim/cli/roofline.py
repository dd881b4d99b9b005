"""``tpusim roofline``: the hierarchical roofline of one or more workloads on one chip."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import click

from .common import (command_provenance_of, echo_json, json_option, loaded_chip, set_option,
                     plotlyjs_option, workload_inputs)

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
    from .common import once
    return once("--format", parts)


def _num(x: float, digits: int = 4) -> str:
    """A number; NaN (an on-chip row's intensity: no off-chip byte) as "on chip"."""
    from ..units import number
    return "on chip" if isinstance(x, float) and math.isnan(x) else number(x, digits)


def _tops(achieved: float, roof: float) -> str:
    return f"{_num(achieved, 3)} / {_num(roof, 3)}"


def _bound(bound: str, mem: str) -> str:
    from ..roofline_plots import bound_label
    return bound_label(bound, mem).removesuffix("-bound")


def heaviest(table, top: int | None):
    """The ``top`` rows of ``table`` that take most time, heaviest first (all rows in run order
    when ``top`` is None)."""
    if top is None:
        return table
    return table.sort_values("time_s", ascending=False, kind="stable").head(top)


def _reasons(rows) -> list[str]:
    """``#i, j: reason`` for each distinct reason (rows of one shape share one)."""
    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows.itertuples(), 1):
        by.setdefault(str(r.reason), []).append(i)
    return [f"#{', '.join(map(str, ids))}: {why}" for why, ids in by.items()]


def print_layers(console, table, several: bool, mem: str = "HBM", top: int | None = 15) -> None:
    """The heaviest ``top`` layers (every layer when None) as a table that fits 80 columns,
    each distinct reason for a bound listed under it, and a line on the rows left out."""
    from rich.table import Table

    rows = heaviest(table, top)
    title = ("Roofline per layer" if top is None or len(rows) == len(table)
             else f"Roofline per layer: the {len(rows)} heaviest of {len(table)} rows")
    fmts = sorted(set(table["format"]))
    title += f" ({fmts[0]})" if len(fmts) == 1 else ""
    t = Table(title=title, caption=f"time: share of the run; ops/B: ops per {mem} byte; "
                                   "TOPS: achieved / attainable",
              pad_edge=False, collapse_padding=True)
    cols = ["#"] + (["workload"] if several else []) + ["layer"] + (
        ["format"] if len(fmts) > 1 else []) + ["shape m×k×n", "time", "ops/B", "TOPS", "bound"]
    for c in cols:
        left = c in ("workload", "layer", "bound", "format", "shape m×k×n")
        t.add_column(c, justify="left" if left else "right", overflow="fold",
                     no_wrap=c in ("#", "time", "ops/B", "TOPS", "bound"),
                     max_width=28 if c == "layer" else None)
    for i, r in enumerate(rows.itertuples(), 1):
        shape = "vector" if r.kind == "vector" else f"{r.m}×{r.k}×{r.n}"
        t.add_row(str(i), *([str(r.workload)] if several else []), str(r.name),
                  *([r.format] if len(fmts) > 1 else []), shape, f"{r.time_share:.1%}",
                  _num(r.ops_per_hbm_byte), _tops(r.achieved_tops, r.attainable_tops),
                  _bound(r.bound, mem))
    console.print(t)
    for line in _reasons(rows):
        console.print(line, overflow="fold")
    if len(rows) < len(table):
        rest = 1 - float(rows["time_s"].sum()) / float(table["time_s"].sum())
        console.print(f"… {len(table) - len(rows)} more rows ({rest:.1%} of the time) in the "
                      "CSV and the HTML page; --all prints every row, --top N the heaviest N.")


def print_workloads(console, wt, roofs) -> None:
    from rich.table import Table

    from ..units import seconds
    t = Table(title=f"Roofline per workload on {roofs.chip}", pad_edge=False,
              collapse_padding=True,
              caption=f"ops/B: ops per {roofs.offchip} byte; TOPS: achieved / attainable; "
                      "headroom: time / time at the roofs")
    # no "of roof" column: it is 1 / headroom, and TOPS shows achieved beside attainable
    for c in ("workload", "format", "time", "ops/B", "TOPS", "headroom", "mem-bound", "bound"):
        t.add_column(c, justify="left" if c in ("workload", "format", "bound") else "right",
                     overflow="fold", no_wrap=c not in ("workload", "format"))
    for r in wt.itertuples():
        t.add_row(str(r.workload), str(r.format), seconds(r.time_s),
                  _num(r.ops_per_hbm_byte), _tops(r.achieved_tops, r.attainable_tops),
                  f"{r.headroom:.2f}x",
                  f"{r.memory_bound_fraction:.0%}", _bound(str(r.bound), roofs.offchip))
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
              help="HTML chart (default results/roofline-<config>-<workload>.html); its table "
                   "(.csv) and its record (.json) go beside it under the same name.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a static PNG (needs kaleido: pip install 'tpusim[png]').")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True,
              help="Print the N layers that take most time (the CSV and page hold every layer).")
@click.option("--all", "all_rows", is_flag=True, help="Print every layer, in run order.")
@json_option("every layer's row (unless --per-workload) and the per-workload rows")
@plotlyjs_option()
def roofline(config, workloads, fmts, batch, sets, per_workload, reference, out, png, top,
             all_rows, as_json):
    """Roofline chart and table of WORKLOAD(s) on chip CONFIG.

    Log-log chart: a compute roof per format and the vector roof over the HBM slope, the ridge
    marked, one point per layer sized by its share of time and coloured by what bounds it
    (compute, hbm, sram, vector). Prints the heaviest layers (--top N, or --all), the reason for
    each bound and the per-workload summary, and writes the chart as a self-contained HTML file
    and every layer as CSV beside it, with a JSON of the same name saying what ran (command,
    options, input sha256s, the resolved config).

    \b
    Example:
      tpusim roofline tpu_v1 mlp0
      tpusim roofline default resnet50 --format int8,bf16 --out results/rn50-roofline.html
      tpusim roofline tpu_v1 mlp0 mlp1 lstm0 lstm1 cnn0 cnn1 --per-workload --png fig5.png
    """
    if out is not None and Path(out).suffix.lower() not in (".html", ".htm"):
        from ..errors import InputError   # the table and the record take those two names
        raise InputError("--out", None, str(out), "the chart's HTML file, e.g. roof.html (its "
                         ".csv and .json are written beside it)")
    html_path = Path(out or default_html(config, workloads, per_workload))
    if png is not None:
        if Path(png).resolve() in {html_path.with_suffix(x).resolve() for x in
                                   (html_path.suffix, ".csv", ".json")}:
            from ..errors import InputError
            raise InputError("--png", None, str(png), "a file other than the chart, its .csv "
                             "and its .json, e.g. roof.png")
        if not have_kaleido():
            raise click.UsageError(PNG_HINT)
    csv_path = html_path.with_suffix(".csv")
    json_path = html_path.with_suffix(".json")   # what was simulated: the provenance record
    group = _check_own(html_path, (html_path, csv_path, json_path), png)
    from .._io import check_writable     # before the table is printed, not after
    check_writable(html_path.parent, html_path)
    if png is not None:
        check_writable(Path(png).parent, png)
    import pandas as pd
    from rich.console import Console

    import tpusim
    from .._io import atomic_path, csv_safe
    from ..importers.reference import read_reference
    from ..report_pages import layer_table_html, roofline_page, workload_table_html
    from ..roofline_plots import roofline_chart
    from ..results import write_all
    from ..roofline import chip_roofs, layer_table, roof_notes, workload_table

    chip, overrides = loaded_chip(config, sets)
    roofs = chip_roofs(chip)
    formats = [chip.check_format(f, "--format") if f else None for f in _split(fmts)]
    ref = read_reference(reference) if reference else None
    tables = []
    for w in workloads:
        wl = tpusim.load_workload(w)
        for f in formats:
            res = tpusim.simulate(chip, wl, format=f, batch=batch)
            tables.append(layer_table(res.layers, chip, roofs, wl.name))
    names = ", ".join(dict.fromkeys(str(t["workload"].iloc[0]) for t in tables if len(t)))
    title = f"Roofline: {names} on {chip.name}" + (f" (batch {batch})" if batch > 1 else "")
    fig = roofline_chart(tables, roofs, title, per_workload=per_workload, reference=ref)
    wt = workload_table(tables, roofs)
    csv_table = wt if per_workload else pd.concat(tables, ignore_index=True)

    # a pipe gets 200 columns (no folded cells in logs) unless COLUMNS says otherwise
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
    console = Console(highlight=False, width=None if wide else 200)
    if as_json:
        echo_json({"config": chip.name, **({} if per_workload else {"layers": csv_table}),
                   "workloads": wt})
    else:
        if not per_workload:
            print_layers(console, csv_table, csv_table["workload"].nunique() > 1,
                         roofs.offchip, None if all_rows else top)
        print_workloads(console, wt, roofs)

    notes = roof_notes(roofs)
    parts = [f"<h2>Per workload</h2>{workload_table_html(wt, roofs.offchip)}"]
    if not per_workload:
        parts += [f"<h2>{'Heaviest layers' if len(csv_table) > 40 else 'Layers'}</h2>"
                  + layer_table_html(csv_table.sort_values("time_s", ascending=False,
                                                           kind="stable"), top=40,
                                    mem=roofs.offchip)]
    from ..provenance import input_file
    prov = command_provenance_of(chip, config, overrides, inputs={
        **workload_inputs(workloads), "reference": input_file("reference", reference)})
    page = roofline_page(fig, title, parts, notes, prov)
    # an infinite intensity (no byte moved at that level) is empty, as in layers.csv and as
    # the JSON's null
    import numpy as np
    csv_text = csv_safe(csv_table.replace([np.inf, -np.inf], np.nan)).to_csv(
        index=False, float_format="%.10g")
    png_bytes = _png(fig) if png is not None else None
    prov_text = json.dumps({"provenance": prov}, indent=2, sort_keys=True) + "\n"
    files = {html_path.name: lambda p: p.write_text(page),
             csv_path.name: lambda p: p.write_text(csv_text),
             json_path.name: lambda p: p.write_text(prov_text)}
    if png is not None and Path(png).resolve().parent == html_path.resolve().parent:
        files[Path(png).name] = lambda p, data=png_bytes: p.write_bytes(data)
        png_bytes = None
    write_all(files, html_path.parent, group=group, run_id=prov["run_id"])
    if png_bytes is not None:
        with atomic_path(png) as tmp:
            tmp.write_bytes(png_bytes)
    written = [html_path, csv_path, json_path] + ([png] if png is not None else [])
    click.echo("wrote " + ", ".join(str(p) for p in written), err=as_json)


def _check_own(html_path: Path, targets: tuple[Path, ...], png) -> str:
    """The manifest group of this chart (``roofline-<name>``: several charts share a folder),
    after refusing, before anything runs, a target that is not a regular file or that exists
    and no earlier roofline of this name wrote (a user's CSV or JSON beside the chart, the
    workload just read)."""
    from .._io import is_png
    from ..ownership import check_lone_file, check_owned
    group = f"roofline-{html_path.stem}"
    check_owned(list(targets), group)
    if png is not None:     # only a PNG tpusim wrote; the chart's own when in its folder
        check_lone_file(Path(png), is_png, "--png", group)
    return group


def _png(fig) -> bytes:
    from .._io import mark_png
    try:
        return mark_png(fig.to_image(format="png", width=1200, height=700, scale=2))
    except Exception as exc:  # kaleido raises its own types (no Chrome, export failure)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(
            f"kaleido could not write the PNG ({msg}); kaleido >= 1 needs Chrome or Chromium "
            "(e.g. apt-get install chromium, or plotly_get_chrome)") from None

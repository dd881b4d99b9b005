"""``tpusim formats``: area, energy, throughput and numeric error of each format on one chip."""
from __future__ import annotations

import math
from pathlib import Path

import click

from .common import (command_provenance_of, echo_json, json_option, loaded_chip, record_files,
                     set_option, plotlyjs_option)

def _console():
    """A terminal's width (or COLUMNS'); logs and pipes get 200 columns (no folded cells)."""
    import os

    from rich.console import Console
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=200)
    return console


def _table(title: str, cols, df):
    from rich import box
    from rich.table import Table

    # no vertical rules and one space between columns: the 11 columns fit 80 characters

    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0), pad_edge=False,
              collapse_padding=True)
    for label, _, _ in cols:
        t.add_column(label, justify="left" if label in ("format", "support") else "right")
    for _, r in df.iterrows():
        cells = []
        for _, key, fmt in cols:
            v = r[key]
            cells.append("-" if isinstance(v, float) and math.isnan(v) else fmt(v))
        t.add_row(*cells)
    return t


def print_table(df, chip_name: str, workload: str | None = None) -> None:
    """The formats table (area, energy, peak, error) and, with a workload, its latency and
    energy in each format as a second table; each fits 80 columns."""
    from .. import units
    num3 = lambda v: units.number(v, 3)   # noqa: E731
    cols = [("format", "format", str), ("support", "support", str), ("bits", "bits", str),
            ("mult\nFAs", "multiplier_full_adders", str),
            ("MAC\nµm²", "mac_area_um2", num3), ("MAC\npJ", "mac_energy_pj", num3),
            ("array\nmm²", "array_area_mm2", num3), ("peak\nTOPS", "peak_tops", num3),
            ("TOPS\n/mm²", "tops_per_mm2", num3), ("TOPS\n/W", "tops_per_w", num3),
            ("GEMM\nerror", "gemm_rel_error", "{:.2e}".format)]
    console = _console()
    console.print(_table(f"Numeric formats on {chip_name}", cols, df))
    if workload is not None and df["latency_s"].notna().any():
        run = [("format", "format", str), ("support", "support", str),
               ("latency", "latency_s", units.seconds), ("energy", "energy_j", units.joules)]
        console.print()
        console.print(_table(f"{workload} in each format on {chip_name}", run, df))


@click.command()
@click.argument("config", required=False, default="default")
@click.option("--formats", "names", default=None, metavar="F1,F2,...",
              help="Formats to compare (default: every format tpusim knows).")
@click.option("--workload", default=None, help="Also simulate this workload in each format.")
@set_option()
@click.option("--gemm-size", type=click.IntRange(1, 4096), default=256, show_default=True,
              help="m = k = n of the random GEMM whose error is reported.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random GEMM.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/formats-<config>/).")
@json_option("formats.csv's rows")
@plotlyjs_option()
def formats(config, names, workload, sets, gemm_size, seed, out_dir, as_json):
    """Area, energy, peak throughput and numeric error of each format on chip CONFIG.

    Writes DIR/formats.csv and DIR/formats.html (bar charts of area and energy per format, and
    TOPS/W against GEMM error as a Pareto view), DIR/formats.json (what ran: command, options,
    input sha256s, the resolved config) and DIR/config.yaml (that config). Formats the chip
    neither runs nor emulates are compared too, with empty throughput (and workload latency)
    and a note saying so; naming an unknown format in --formats is an error.

    \b
    Example:
      tpusim formats
      tpusim formats tpu_v4 --formats int8,bf16,fp32 --workload resnet50 --out results/fmt
      tpusim formats tpu_v4 --formats int8,fp8_e4m3   # fp8 as a native datapath would be
    """
    import tpusim
    from .._io import csv_safe
    from ..config import config_label
    from ..format_report import format_table, formats_html
    from ..provenance import input_file
    from ..results import write_all

    chip, overrides = loaded_chip(config, sets)
    fmt_list = None
    if names is not None:
        fmt_list = [p.strip() for p in names.split(",")]
        if not fmt_list or any(not p for p in fmt_list):
            from ..errors import InputError
            raise InputError("--formats", None, names, "expected a comma-separated list, e.g. "
                             "int8,bf16")
        from .common import once
        once("--formats", fmt_list)
    wl = tpusim.load_workload(workload) if workload else None
    df = format_table(chip, fmt_list, wl, gemm_size, seed)
    out = out_dir or Path("results") / f"formats-{config_label(config)}"
    page_html = formats_html(df, chip.name, wl.name if wl else None)
    csv_text = csv_safe(df).to_csv(index=False, float_format="%.10g")
    prov = command_provenance_of(chip, config, overrides,
                                 inputs={"workload": input_file("workload", workload)})
    files = record_files(out, "formats", {"provenance": prov}, chip, prov["run_id"],
                         "formats THIS_FILE")
    write_all({"formats.csv": lambda p: p.write_text(csv_text),
               "formats.html": lambda p: p.write_text(page_html), **files}, Path(out),
              group="formats", run_id=prov["run_id"])
    if as_json:
        echo_json({"config": chip.name, "workload": wl.name if wl else None, "formats": df})
    else:
        print_table(df, chip.name, wl.name if wl is not None else None)
    click.echo(f"wrote {out}/formats.csv, formats.html, formats.json, config.yaml", err=as_json)

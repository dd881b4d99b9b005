"""``tpusim sweep``: the command-line shell over :func:`tpusim.sweeps.sweep`."""
from __future__ import annotations

import re
from pathlib import Path

import click

from .._input import check_size
from ..errors import InputError
from .common import (command_provenance_of, echo_json, json_option, parse_sets, plotlyjs_option,
                     once, set_option, workload_inputs)

ALLOWED_INTS = "expected a comma-separated list of positive integers, e.g. 16,32,64"


def parse_int_list(option: str, text: str) -> list[int]:
    """``"16,32,64"`` -> ``[16, 32, 64]``; anything else is an :class:`InputError`."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"[0-9]+", part) or int(part) <= 0:
            raise InputError(option, None, part or text, ALLOWED_INTS)
        out.append(check_size(int(part), option, None))
    return once(option, out)


def parse_name_list(option: str, text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise InputError(option, None, text, "expected a comma-separated list, e.g. int8,bf16")
    return once(option, parts)


def build_axes(rows: str | None, cols: str | None, square: bool, formats: str | None,
               sets: tuple[str, ...]) -> dict:
    """The ``axes`` of :func:`sweep` from the command's options, in column order."""
    axes: dict = {}
    r = parse_int_list("--rows", rows) if rows is not None else None
    c = parse_int_list("--cols", cols) if cols is not None else None
    if square:
        if r is None and c is None:
            raise InputError("--square", None, message="needs --rows or --cols")
        r, c = r or c, c or r
        if len(r) != len(c):
            raise InputError("--square", None, message=f"--rows has {len(r)} values and "
                             f"--cols {len(c)}; give the same number (or only one of them)")
        axes[("array.rows", "array.cols")] = list(zip(r, c))
    else:
        if r:
            axes["array.rows"] = r
        if c:
            axes["array.cols"] = c
    for path, values in parse_sets(sets, multi=True).items():
        if path in ("array.rows", "array.cols") and (r if path == "array.rows" else c):
            raise InputError("--set", path, message="given twice (also by --rows/--cols)")
        if path == "format" and formats is not None:
            raise InputError("--set", path, message="given twice (also by --format)")
        axes[path] = values
    if formats is not None:
        axes["format"] = parse_name_list("--format", formats)
    if not axes:
        raise InputError("tpusim sweep", None, message="nothing to sweep; give --rows, --cols, "
                         "--format or --set PATH=V1,V2 (one point: use tpusim run)")
    return axes


def default_sweep_out(config: str, workloads: tuple[str, ...]) -> Path:
    stems = "+".join(Path(str(w)).stem for w in workloads)
    return Path("results") / f"sweep-{Path(str(config)).stem}-{stems}"


@click.command()
@click.argument("config")
@click.argument("workloads", nargs=-1, required=True, metavar="WORKLOAD [WORKLOAD...]")
@click.option("--rows", default=None, metavar="R1,R2,...", help="Array rows to sweep.")
@click.option("--cols", default=None, metavar="C1,C2,...", help="Array columns to sweep.")
@click.option("--square", is_flag=True,
              help="Pair rows with cols (16x16, 32x32, ...) instead of every combination.")
@click.option("--format", "formats", default=None, metavar="F1,F2,...",
              help="Formats to force, e.g. int8,bf16 (default: each layer's own).")
@set_option("Sweep any config field, e.g. --set memory.hbm.bandwidth_gbps=300,600,1200 "
            "(repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Local worker processes (default: all cores; 1 runs in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a Dask cluster, e.g. tcp://10.0.0.5:8786 (needs tpusim[dask]).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/sweep-<config>-<workload>/).")
@click.option("--no-html", is_flag=True, help="Skip sweep.html.")
@json_option("the counts and, per workload, the latency x energy x area Pareto points")
@plotlyjs_option()
def sweep(config, workloads, rows, cols, square, formats, sets, jobs, scheduler, out_dir,
          no_html, as_json):
    """Simulate WORKLOAD(s) on CONFIG at every combination of the listed values.

    Writes DIR/sweep.parquet and DIR/sweep.csv (one row per point: the swept values, every
    summary field, status and error), DIR/sweep.html (heatmaps, Pareto front) and
    DIR/sweep.json (this command, its axes, the input files' sha256, the counts). Re-running
    the same command resumes: finished points are read back, not recomputed; a different sweep
    into the same DIR adds its rows and keeps the earlier ones. One sweep at a time may write a
    DIR. A point that fails (e.g. a tile larger than SRAM) is recorded with its reason and the
    sweep goes on.

    \b
    Example:
      tpusim sweep default resnet50 --rows 16,32,64,128 --cols 16,32,64,128
      tpusim sweep tpu_v4 bert_base --rows 64,128,256 --square --format int8,bf16
      tpusim sweep default resnet50 --set memory.hbm.bandwidth_gbps=300,600,1200 --jobs 2
      tpusim sweep default resnet50 --rows 32,64 --scheduler tcp://127.0.0.1:8786
    """
    from .. import sweeps

    axes = build_axes(rows, cols, square, formats, sets)
    out = out_dir or default_sweep_out(config, workloads)
    df = sweeps.sweep(config, list(workloads), axes, jobs=jobs, scheduler=scheduler,
                      out_dir=out, html=not no_html, record=_record(config, workloads, axes))
    a = df.attrs
    if a["points"] and a["failed"] == a["points"]:   # no value worked: that is an error
        first = df.loc[df["status"] == "failed", "error"].iloc[0]
        raise InputError("tpusim sweep", None, message=f"every one of the {a['points']} points "
                         f"failed (their reasons are in {out}/sweep.csv), e.g. {first}")
    files = "sweep.parquet, sweep.csv" + ("" if no_html else ", sweep.html") + ", sweep.json"
    if as_json:
        click.echo(f"wrote {out}/{files}", err=True)
        echo_json(sweep_json(df, out))
        return
    click.echo(f"wrote {out}/{files}")
    print_best(df)
    if a["failed"]:
        first = df.loc[df["status"] == "failed", "error"].iloc[0]
        click.echo(f"{a['failed']} failed (reasons in the error column), e.g. {first}")
    click.echo(f"{a['points']} points: {a['computed']} computed, {a['reused']} reused")
    if a.get("kept"):
        click.echo(f"kept {a['kept']} rows of earlier sweeps in {out} (they stay in sweep.csv "
                   "and sweep.parquet)")


def _record(config, workloads, axes) -> dict:
    """``sweep.json``'s record of this command: its provenance (the base config, every workload
    file with its sha256) and the axes it swept (``--square``'s paired axes joined by a comma)."""
    from ..config import load_config
    prov = command_provenance_of(load_config(config), config, {},
                                 inputs=workload_inputs(workloads))
    return {"provenance": prov,
            "axes": {",".join(k) if isinstance(k, tuple) else k: [list(v) if isinstance(v, tuple)
                                                                   else v for v in vals]
                     for k, vals in axes.items()}}


def sweep_json(df, out: Path) -> dict:
    """What ``sweep --json`` prints: the counts, the output folder and each workload's Pareto
    points (every column of sweep.csv); all points are in sweep.csv."""
    from ..sweep_metrics import pareto_3d
    ok = df[df["status"] == "ok"] if len(df) else df
    front = {}
    if len(ok) and "chip_mm2" in ok:
        front = {str(wl): g.loc[pareto_3d(g)] for wl, g in ok.groupby("workload", sort=False)}
    a = df.attrs
    return {"out": str(out), **{k: a.get(k) for k in ("points", "computed", "reused", "failed")},
            "pareto": front}


def _points_table(title: str, rows, swept: list[str]):
    """Sweep points as a table narrow enough for 80 columns: the swept values, then latency,
    energy per inference, chip area, perf/area and perf/W."""
    from rich import box
    from rich.table import Table

    from .. import units
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
              pad_edge=False, collapse_padding=True)
    vals = [c for c in swept if c != "workload"]
    for c in vals:
        t.add_column(c, justify="right", overflow="fold")
    for c in ("latency", "energy/inf", "chip mm²", "inf/s/mm²", "TOPS/W"):
        t.add_column(c, justify="right", no_wrap=True)
    for _, row in rows.iterrows():
        t.add_row(*[str(row[c]) for c in vals], units.seconds(row["latency_s"]),
                  units.joules(row["energy_per_inference_j"]),
                  f"≥{units.number(row['chip_mm2'])}", units.number(row["throughput_per_mm2"]),
                  units.number(row["tops_per_w"]))
    return t


def print_best(df, top: int = 3, max_front: int = 10) -> None:
    """The latency x energy x area Pareto points, then the best few by perf/area and perf/W."""
    import os
    import sys

    from rich.console import Console

    from ..sweep_metrics import pareto_3d
    from ..sweep_plots import swept_columns
    ok = df[df["status"] == "ok"] if len(df) else df
    if not len(ok) or "chip_mm2" not in ok or ok["chip_mm2"].isna().all():
        return
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS")
    console = Console(highlight=False, width=None if wide else 200)
    swept = swept_columns(df)
    for wl, g in ok.groupby("workload", sort=False):
        front = pareto_3d(g)
        more = f" (first {max_front})" if len(front) > max_front else ""
        console.print(_points_table(f"{wl}: Pareto front over latency x energy x area, "
                                    f"{len(front)} points{more}", g.loc[front[:max_front]],
                                    swept))
        for col, name in (("throughput_per_mm2", "perf/area"), ("tops_per_w", "perf/W")):
            console.print(_points_table(f"{wl}: top {min(top, len(g))} by {name}",
                                        g.nlargest(top, col), swept))

"""``tpusim compare``."""
from __future__ import annotations

import re
from pathlib import Path

import click

from .common import command_record, echo_json, json_option, plotlyjs_option


def _default_out(labels: list[str]) -> Path:
    safe = [re.sub(r"[^A-Za-z0-9._=+,-]+", "_", l)[:40] for l in labels]
    return Path("results") / ("compare-" + "-vs-".join(safe))[:120]


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/compare-<A>-vs-<B>/).")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
              help="Layers per run to print, by how much their time changed.")
@json_option("the summary deltas and the --top changes")
@plotlyjs_option()
def compare(runs, out_dir, top, as_json):
    """Compare RUNS against the first: summary deltas, per-layer speedup and energy ratios,
    overlaid rooflines; writes compare.csv, compare.html and compare.json (what each side
    was: run id, command, sha256).

    Each RUN is a folder `tpusim run` wrote or CONFIG:WORKLOAD (simulated here). All runs must
    be of the same workload (the same layers in the same order).

    \b
    Example:
      tpusim run default resnet50 --out results/a
      tpusim run default resnet50 --set array.rows=256 --out results/b
      tpusim compare results/a results/b
      tpusim compare default:resnet50 tpu_v4:resnet50 --out results/cmp
    """
    from .._io import check_dir
    from ..comparison import compare as compare_runs, write_comparison

    if len(runs) < 2:
        raise click.UsageError("compare needs at least two RUNS")
    c = compare_runs(list(runs))
    out = out_dir or _default_out([r.label for r in c.runs])
    check_dir(out)
    record = command_record()
    record["options"]["out_dir"] = str(out)   # the folder used, defaulted or not
    written = write_comparison(c, out, record)
    base = c.runs[0]
    if as_json:
        echo_json({"baseline": base.label, "summary": c.summary,
                   "top_changes": c.top_changes(top) if top else []})
        click.echo(f"wrote {out}/" + ", ".join(Path(p).name for p in written), err=True)
        return
    click.echo(f"baseline: {base.label}")
    from ..compare_page import _value
    run = None
    for r in c.summary.itertuples():
        if r.run == base.label:
            continue
        if r.run != run:
            run = r.run
            click.echo(f"{run}:")
        change = f"{r.change_pct:+.1f}%" if abs(r.change_pct) != float("inf") and \
            r.change_pct == r.change_pct else "—"
        click.echo(f"  {r.label:20s} {_value(r.baseline_value, r.unit):>14s} -> "
                   f"{_value(r.value, r.unit):>14s}  {change}")
    if top:
        click.echo(f"largest changes (top {top} per run, by time; speed = baseline time / time):")
        run = None
        for r in c.top_changes(top).itertuples():
            if r.run != run:
                run = r.run
                click.echo(f"{run}:")
            click.echo(_layer_line(r))
    click.echo(f"wrote {out}/" + ", ".join(Path(p).name for p in written))


def _layer_line(r, width: int = 80) -> str:
    """One changed layer in at most ``width`` columns (a long name is shortened with "…")."""
    from .. import units
    tail = (f": {units.seconds(r.base_time_s)} -> {units.seconds(r.time_s)}, "
            f"{r.speedup:.3g}x speed, {r.energy_ratio:.3g}x energy")
    head, name = f"  #{r.layer_index} ", str(r.name)
    room = width - len(head) - len(tail)
    if len(name) > room:
        name = name[:max(room - 1, 4)] + "…"
    return head + name + tail

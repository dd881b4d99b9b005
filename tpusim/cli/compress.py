"""``tpusim compress``: one table of what sparsity, formats and their combinations buy."""
from __future__ import annotations

from pathlib import Path

import click

from .common import command_provenance_of, loaded_chip, once, record_files, set_option


def _split(values: tuple[str, ...], option: str) -> list[str]:
    return once(option, [s.strip() for v in values for s in v.split(",") if s.strip()])


@click.command()
@click.argument("config")
@click.argument("workload")
@click.option("--sparsity", "sparsity", multiple=True, metavar="2:4|0.5,...",
              help="Weight sparsity to try: N:M patterns or densities (comma-separated).")
@click.option("--formats", "formats", multiple=True, metavar="w4a8,w8a8,...",
              help="Weight/activation formats to try: wXaY, X and Y in 1|b|t|2|4|8|16.")
@click.option("--fuse", is_flag=True,
              help="Also fuse elementwise chains into their producers (tpusim/fusion.py), alone "
                   "and on top of every other row.")
@click.option("--batch", type=int, default=1, show_default=True, help="Samples per run.")
@set_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output directory [default: results/compress-<config>-<workload>].")
def compress(config, workload, sparsity, formats, fuse, batch, sets, out_dir):
    """What each compression technique, and each combination, buys on CONFIG for WORKLOAD:
    latency, energy, HBM bytes, area and numeric error, against the dense baseline. Writes
    DIR/compress.csv, DIR/compress.html, DIR/compress.json (what ran: command, options, input
    sha256s, the resolved config) and DIR/config.yaml (that config).

    \b
    Example:
      tpusim compress tpu_v4 resnet50 --sparsity 2:4,0.3 --formats w8a8,w4a16 --fuse
    """
    import tpusim

    from .._io import check_dir, csv_safe
    from ..compress import compress_html, compress_table, table_text, techniques
    from ..errors import InputError
    from ..provenance import input_file
    from ..results import write_all

    techs = techniques(_split(sparsity, "--sparsity"), _split(formats, "--formats"), fuse,
                       batch)
    if not techs:
        raise InputError("compress", None, message="give at least one --sparsity, --formats "
                         "or --fuse")
    chip, overrides = loaded_chip(config, sets)
    wl = tpusim.load_workload(workload)
    out = out_dir or Path("results") / f"compress-{chip.name}-{wl.name}"
    check_dir(out)
    df = compress_table(chip, wl, techs, batch)
    prov = command_provenance_of(chip, config, overrides,
                                 inputs={"workload": input_file("workload", workload)})
    csv_text = csv_safe(df).to_csv(index=False)
    page = compress_html(df, chip.name, wl.name)
    write_all({"compress.csv": lambda p: p.write_text(csv_text),
               "compress.html": lambda p: p.write_text(page),
               **record_files(out, "compress", {"provenance": prov}, chip, prov["run_id"],
                              "compress THIS_FILE WORKLOAD")},
              out, group="compress", run_id=prov["run_id"])
    rows = table_text(df)
    show = [0, 1, 2, 4, 5, 6, 10]
    widths = [max(len(r[c]) for r in rows) for c in show]
    for r in rows:
        click.echo("  ".join(r[c].ljust(w) if c == 0 else r[c].rjust(w)
                             for c, w in zip(show, widths)))
    for _, r in df.iterrows():
        if r["note"]:
            click.echo(f"  {r['technique']}: {r['note']}")
    click.echo(f"wrote {out}/compress.csv, compress.html, compress.json, config.yaml")

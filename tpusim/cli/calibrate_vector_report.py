"""``tpusim calibrate`` on a vector-op measurement file: fit, report per function, write."""
from __future__ import annotations

from pathlib import Path

import click


def run_vector(config, ms, out: Path, folds: int, seed: int, loss: str, overrides: dict,
               fits: tuple, fmt: str | None, command: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from .._io import atomic_write_text
    from ..calibrate_vector import calibrate_vector, vector_yaml
    from ..calibrated_config import recipe_base_of
    from ..config import find_config
    from ..errors import InputError

    if fits or fmt:
        raise InputError(ms.source, "--fit" if fits else "--format", message="a vector fit "
                         "fits vector.launch_cycles, hbm_efficiency and cycles_per_element and "
                         "runs each kernel in its dtype; drop --fit/--format")
    cal = calibrate_vector(config, ms, folds=folds, seed=seed, loss=loss, overrides=overrides)
    con = Console(highlight=False)
    t = Table(title=f"{cal.base.name} vector unit on {Path(ms.source).name} ({len(ms)} "
                    "kernels): |predicted/measured - 1|, median / p90 / max")
    for col in ("function", "n", "as shipped", "fitted (in-sample)", f"{len(cal.folds)}-fold CV"):
        t.add_column(col, justify="left" if col == "function" else "right")

    def cell(s):
        return f"{s['median']:.1%} / {s['p90']:.1%} / {s['max']:.1%}"
    for op, d in {**cal.by_function(), "all": cal.stats}.items():
        t.add_row(op, str(d["cv"]["n"]), cell(d["preset"]), cell(d["after"]), cell(d["cv"]))
    con.print(t)
    p = Table(title="fitted parameters (all kernels; range over the folds)")
    for col in ("parameter", "fitted", "fold range"):
        p.add_column(col, justify="left" if col == "parameter" else "right")
    for path, v in cal.values.items():
        vals = [fv[path] for fv in cal.fold_values if path in fv]
        p.add_row(path, f"{v:g}", f"{min(vals):g} .. {max(vals):g}" if vals else "")
    con.print(p)
    text = vector_yaml(cal, find_config(config), out.stem, command,
                       base=recipe_base_of(config, out),
                       overrides=overrides)
    atomic_write_text(out, text)
    click.echo(f"wrote {out}")

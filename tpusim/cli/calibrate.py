"""``tpusim calibrate`` and ``tpusim validate``."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from .common import command_record, parse_sets, set_option, plotlyjs_option


def _parse_fits(fits: tuple[str, ...]) -> dict | None:
    from ..errors import InputError
    if not fits:
        return None
    out: dict = {}
    for item in fits:
        path, sep, box = item.partition("=")
        path = path.strip()
        if not path:
            raise InputError("--fit", None, item, "expected PATH or PATH=LOW:HIGH")
        if path in out:
            raise InputError("--fit", path, message="given twice; fit each field once")
        if not sep:
            out[path] = None
            continue
        lo, colon, hi = box.partition(":")
        try:
            out[path] = (float(lo), float(hi))
        except ValueError:
            raise InputError("--fit", path, box, "expected LOW:HIGH, e.g. 0.05:1") from None
        if not colon:
            raise InputError("--fit", path, box, "expected LOW:HIGH, e.g. 0.05:1")
    return out


def _check_not_its_input(config, out: Path) -> None:
    """``--out`` must not be the CONFIG file the fit starts from (it would be lost, and the
    recorded re-create command would read the fit's own output)."""
    import os
    from ..errors import InputError
    src = Path(str(config))
    if src.is_file() and out.exists() and os.path.samefile(src, out):
        raise InputError(str(out), None, message="is the config this command reads; give "
                         "--out another path")


def _check_fit_ends(config, fit_spec: dict | None, overrides: dict) -> None:
    """Each ``--fit PATH=LOW:HIGH`` end must be a value the field takes (the search starts at
    both): one line naming --fit and the end, not the --set of the search's own overrides."""
    from ..config import load_config
    from ..errors import InputError
    for path, box in (fit_spec or {}).items():
        for end, v in zip(("LOW", "HIGH"), box or ()):
            try:
                load_config(config, **{**overrides, path: v})
            except InputError as exc:
                if exc.where != path:
                    raise
                bad_value = exc.value == v and exc.allowed    # else: e.g. an unknown field
                raise InputError("--fit", path, f"{box[0]:g}:{box[1]:g}",
                                 f"{end} {v:g}: {exc.allowed}" if bad_value else exc.detail
                                 ) from None


def command_line(config, measurements, out, folds, seed, fits, fmt, loss, sets) -> str:
    """The command as typed, without dates: recorded in the calibrated config's header."""
    parts = ["tpusim", "calibrate", str(config), str(measurements), "--out", str(out),
             "--folds", str(folds), "--seed", str(seed)]
    for s in sets:
        parts += ["--set", s]
    for f in fits:
        parts += ["--fit", f]
    if fmt:
        parts += ["--format", fmt]
    if loss != "mean":
        parts += ["--loss", loss]
    return " ".join(shlex.quote(p) for p in parts)


def _print_report(cal) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..yaml_edit import get_path

    con = Console(highlight=False)
    st = cal.stats
    t = Table(title=f"{cal.base.name} on {Path(cal.measurements.source).name} "
                    f"({len(cal.measurements)} kernels): error |predicted/measured - 1|")
    for col in ("", "median", "p90", "max", "bias"):
        t.add_column(col, justify="right" if col else "left")
    for key, label in (("preset", "config as shipped"), ("before", "with the --set fields"),
                       ("after", "calibrated (in-sample)"),
                       ("cv", f"after, {len(cal.folds)}-fold CV")):
        s = st[key]
        t.add_row(label, f"{s['median']:.1%}", f"{s['p90']:.1%}", f"{s['max']:.1%}",
                  f"{s['bias']:+.1%}")
    con.print(t)
    p = Table(title=f"fitted parameters ({cal.fit.message})")
    for col in ("parameter", "before", "fitted (all)", "fold range"):
        p.add_column(col, justify="left" if col == "parameter" else "right")
    for prm in cal.params:
        vals = [fv[prm.path] for fv in cal.fold_values]
        p.add_row(prm.path, f"{get_path(cal.base, prm.path)}", f"{cal.values[prm.path]:g}",
                  f"{min(vals):g} .. {max(vals):g}")
    con.print(p)
    meas = cal.measurements.latency_us
    err = cal.cv_us / meas - 1
    worst = sorted(range(len(meas)), key=lambda i: -abs(err[i]))[:5]
    w = Table(title="worst kernels under cross-validation")
    for col in ("kernel", "m", "k", "n", "measured µs", "predicted µs", "error"):
        w.add_column(col, justify="left" if col == "kernel" else "right")
    for i in worst:
        r = cal.measurements.rows[i]
        w.add_row(r.name, str(r.layer.m), str(r.layer.k), str(r.layer.n), f"{meas[i]:.3f}",
                  f"{cal.cv_us[i]:.3f}", f"{err[i]:+.1%}")
    con.print(w)


@click.command()
@click.argument("config")
@click.argument("measurements")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibrated config to write (default results/<config>_calibrated.yaml).")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the fold split.")
@click.option("--fit", "fits", multiple=True, metavar="PATH[=LOW:HIGH]",
              help="Parameter to fit (repeatable); default: timing.overhead_cycles_per_op, "
                   "memory.hbm.efficiency, timing.issue_efficiency.")
@click.option("--format", "fmt", default=None,
              help="Run every kernel in this format (default: dtype column, else the config's).")
@click.option("--loss", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
              help="Minimise the mean or the median of |log(predicted/measured)|.")
@set_option("Fix a config field for the fit, e.g. --set timing.weight_fifo_depth=1.")
@click.pass_context
def calibrate(ctx, config, measurements, out, folds, seed, fits, fmt, loss, sets):
    """Fit CONFIG's uncertain parameters to the kernel latencies in MEASUREMENTS.csv.

    MEASUREMENTS has one row per kernel: m,k,n (or a trace row's columns), optional dtype,
    latency_us, optional latency_std_us. Prints the error before and after (median, p90, max),
    cross-validated over --folds folds, and writes the calibrated config with a header that
    records the file's sha256, the fitted values and the CV error. Exit 1 if the fit does not
    converge (nothing is written).

    \b
    Example:
      tpusim calibrate tpu_v4 tpu_v4_gemm_calibration.csv \\
        --set memory.sram.double_buffered=auto --set timing.weight_fifo_depth=1 \\
        --fit timing.overhead_cycles_per_op --fit memory.hbm.efficiency --fit formats.fp16.rate \\
        --fit timing.wave_cycles --format fp16 --loss median --out results/tpu_v4.yaml
    """
    from .._io import atomic_write_text, check_target
    from ..calibrate import FitError, calibrate as run_calibration, calibrated_yaml, recipe
    from ..calibrated_config import recipe_base_of
    from ..config import find_config

    overrides = parse_sets(sets)
    fit_spec = _parse_fits(fits)
    _check_fit_ends(config, fit_spec, overrides)
    out = out or Path("results") / f"{Path(str(config)).stem}_calibrated.yaml"
    check_target(out)   # before the fit: a bad --out fails in a second
    from .._io import CALIBRATED_MARK, headed_by
    from ..ownership import check_lone_file
    check_lone_file(out, lambda p: headed_by(p, CALIBRATED_MARK), "--out")   # a user's YAML
    _check_not_its_input(config, out)
    from ..calibrate_vector import is_vector_file
    from ..importers.measurements import read_measurements
    ms = read_measurements(measurements)
    if is_vector_file(ms):   # the vector unit's own fit (tpusim/calibrate_vector.py)
        from .calibrate_vector_report import run_vector
        run_vector(config, ms, out, folds, seed, loss, overrides, fits, fmt,
                   command_line(config, measurements, out, folds, seed, fits, fmt, loss, sets))
        return
    try:
        cal = run_calibration(config, measurements, fit_spec=fit_spec, folds=folds, seed=seed,
                              fmt=fmt, loss=loss, overrides=overrides)
    except FitError as exc:
        click.echo(f"tpusim calibrate: {exc}", err=True)
        ctx.exit(1)
    _print_report(cal)
    base_path = find_config(config)
    name = out.stem
    text = calibrated_yaml(cal, base_path, name,
                           command_line(config, measurements, out, folds, seed, fits, fmt, loss,
                                        sets),
                           recipe(cal, recipe_base_of(config, out), overrides, fmt, fit_spec))
    atomic_write_text(out, text)
    click.echo(f"wrote {out}")


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results/validation"), show_default=True, help="Output directory.")
@click.option("--measurements", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
              help="Measured TPU v4 kernel latencies, repeatable: one matmul file "
                   "(tpu_v4_gemm_calibration.csv) and any vector-op files "
                   "(tpu_v4_vector_calibration.csv), see the README; without them the TPU v4 "
                   "rows are skipped.")
@click.option("--calibrated", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibrated TPU v4 config (default: the shipped tpu_v4 preset, calibrated).")
@click.option("--pods/--no-pods", default=True, show_default=True,
              help="Include the pods section (training steps against published MFU).")
@plotlyjs_option()
def validate(out_dir, measurements, calibrated, pods):
    """Run every public check: TPUv1 apps, TPU v4 matmuls and vector ops, Edge TPU latencies, LLM serving
    (JetStream), pods (PaLM and MaxText training MFU).

    Writes DIR/validation.csv (check, case, metric, predicted, measured, error, fitted_on: which
    data fitted which parameter; no parameter is scored on the data that fitted it) and
    DIR/validation.html (predicted against measured, with y = x) and DIR/validation.json (what
    ran: version, command, options, the input files' and shipped presets' sha256). Checks
    whose inputs are missing are listed as 'skipped: missing ...'.

    \b
    Example:
      tpusim validate --out results/validation
      tpusim validate --measurements tpu_v4_gemm_calibration.csv
    """
    from ..results import write_all
    from ..fidelity import run_checks, summary_lines, validation_csv, validation_html

    import json

    from ..provenance import input_file
    from ..ownership import check_not_users
    check_not_users(Path(out_dir), ["validation.csv", "validation.html", "validation.json"],
                    "validate")      # before the checks run
    table = run_checks(measurements=list(measurements), calibrated=calibrated, pods=pods)
    record = command_record()
    inputs = {f"measurements_{i + 1}": input_file("measurements", m)
              for i, m in enumerate(measurements) if Path(m).is_file()}
    if calibrated is not None and Path(calibrated).is_file():
        inputs["calibrated"] = input_file("calibrated", calibrated)
    # the shipped presets the checks load by name (tpu_v4 stands in for --calibrated unless given)
    from ..config import find_config, preset_names
    from ..provenance import file_sha256
    inputs["presets"] = {n: file_sha256(find_config(n)) for n in preset_names()}
    text = json.dumps({"provenance": {**record, "inputs": inputs}}, indent=2,
                      sort_keys=True) + "\n"
    write_all({"validation.csv": lambda p: p.write_text(validation_csv(table)),
               "validation.html": lambda p: p.write_text(validation_html(table, record)),
               "validation.json": lambda p: p.write_text(text)}, out_dir, group="validate",
              run_id=record.get("run_id"))
    for line in summary_lines(table):
        click.echo(line)
    click.echo(f"wrote {out_dir}/validation.csv, validation.html, validation.json")

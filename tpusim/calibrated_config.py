"""The calibrated config file: the base preset's YAML with the fitted fields rewritten in place
(:mod:`tpusim.yaml_edit`), under a comment header that records the measurements (name, SHA-256),
the fitted values, the errors before and after, and a JSON recipe that re-creates it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import ChipConfig
from .yaml_edit import get_path, set_yaml_value

# The ``cal`` arguments below are :class:`tpusim.calibrate.Calibration` records; this module only
# reads their fields, so it does not import the calibration (which imports this module).
RECIPE_TAG = "tpusim-calibrate:"


def fmt_stats(s: dict[str, float]) -> str:
    """Error statistics (:func:`tpusim.calibrate.error_stats`) in one line."""
    return (f"median {s['median']:.1%}, p90 {s['p90']:.1%}, max {s['max']:.1%} "
            f"(bias {s['bias']:+.1%}, n={s['n']})")

def recipe_base_of(config: Any, out: Path) -> str:
    """How a recipe names its CONFIG: a preset by name, a file relative to the calibrated
    config's folder, so ``validate`` finds it from any working directory."""
    import os

    from .config import preset_names
    text = str(config)
    if text in preset_names() or not Path(text).is_file():
        return text
    return os.path.relpath(os.path.abspath(text), os.path.abspath(Path(out).parent))


def recipe_base(base: str, config: str | Path) -> str:
    """The CONFIG a recipe named (:func:`recipe_base_of`) as a path or preset to load: a preset
    by name, a file relative to the calibrated ``config``'s folder (an older record's file: as
    typed)."""
    from .config import preset_names
    if base in preset_names():
        return base
    near = Path(config).parent / base
    return str(near) if near.is_file() else base


def recipe(cal: Any, base_name: str, overrides: dict[str, Any], fmt: str | None,
           fit_spec: dict | None) -> dict[str, Any]:
    """The machine-readable record of how a calibrated config was made."""
    return {"base": base_name, "measurements": Path(cal.measurements.source).name,
            "sha256": cal.measurements.sha256, "rows": len(cal.measurements),
            "set": overrides, "format": fmt,
            "fit": {p.path: [p.low, p.high] for p in cal.params} if fit_spec else None,
            "folds": len(cal.folds), "seed": cal.seed, "loss": cal.loss,
            "values": cal.values}


def calibrated_yaml(cal: Any, base_source: str | Path | None, name: str,
                    command: str, record: dict[str, Any]) -> str:
    """The calibrated config as YAML: the base file with the fitted (and ``--set``) fields
    rewritten in place, under a header that records what it was fitted on."""

    st = cal.stats
    ms = cal.measurements
    header = [
        f"# {name}: {cal.base.name} calibrated against measured kernel latencies by tpusim.",
        "# Generated; do not edit by hand. Re-create with:",
        f"#   {command}",
        f"# measurements: {Path(ms.source).name}, {len(ms)} kernels, sha256 {ms.sha256}",
        f"# formats run: {', '.join(sorted(set(cal.formats)))}",
        f"# fitted on all {len(ms)} kernels, loss {cal.loss} |log(predicted/measured)| "
        f"({cal.fit.message}):",
    ]
    for p in cal.params:
        header.append(f"#   {p.path} = {cal.values[p.path]:g}  (was "
                      f"{get_path(cal.base, p.path)}; searched {p.low:g}..{p.high:g})")
    header += [
        "# error |predicted/measured - 1| over the kernels:",
        f"#   {'as shipped:':<24}{fmt_stats(st['preset'])}",
        f"#   {'with the --set fields:':<24}{fmt_stats(st['before'])}",
        f"#   {'calibrated, in-sample:':<24}{fmt_stats(st['after'])}",
        f"#   {len(cal.folds)}-fold cross-validation (seed {cal.seed}; each kernel predicted by a "
        "fit that never saw it):",
        f"#     {fmt_stats(st['cv'])}",
        f"# {RECIPE_TAG} {json.dumps(record, sort_keys=True)}",
        "",
    ]
    edits = dict(record.get("set") or {})
    values = dict(cal.values)
    marks = [(path, v, "set for the calibration (see header)") for path, v in edits.items()]
    was = {p: edits[p] if p in edits else get_path(cal.base, p) for p in values}
    marks += [(path, v, f"fitted (was {was[path]}; see header)") for path, v in values.items()]
    text, check = yaml_with_marks(header, base_source, cal.chip, name, marks, ("matmul", ms))
    for path, v in {**edits, **values}.items():
        if get_path(check, path) != v:
            raise RuntimeError(f"calibrated YAML does not round-trip {path}: "
                               f"{get_path(check, path)!r} != {v!r}")
    return text


def yaml_with_marks(header: list[str], base_source: str | Path | None, chip: ChipConfig,
                    name: str, marks: list[tuple[str, Any, str]],
                    fit: tuple[str, Any]) -> tuple[str, ChipConfig]:
    """A calibrated config's text (``header``, the body, the fitted kernels' fingerprints) and
    the config it loads as. The body is the base YAML with each (path, value, comment) of
    ``marks`` set in place when the base is a YAML file, so its comments and sources survive
    (less an earlier fit's fingerprints of the same kind); else ``chip`` dumped whole. ``fit``:
    (kind, measurements) of the fit (:mod:`tpusim.fit_kernels`)."""
    import yaml

    from .fit_kernels import fingerprint_line, without
    kind, ms = fit
    if base_source is not None and Path(base_source).suffix in (".yaml", ".yml"):
        lines = _without_header(without(Path(base_source).read_text().splitlines(), kind),
                                header)
        for path, v, comment in marks:
            lines = set_yaml_value(lines, path, v, comment)
        lines = set_yaml_value(lines, "name", name, "calibrated (see header)")
        body = "\n".join(lines) + "\n"
    else:
        raw = chip.model_dump(mode="json")
        raw["name"] = name
        body = yaml.safe_dump(raw, sort_keys=False)
    text = "\n".join(header) + body + fingerprint_line(kind, ms) + "\n"
    return text, load_config_text(text, name)


def _without_header(lines: list[str], header: list[str]) -> list[str]:
    """A base that is itself a calibrated config of this kind (its first line says what ours
    says after the name) less its generated header, through its record line: a fit re-run on
    its own output carries one header, not two."""
    said = header[0].split(": ", 1)[1].split(" ", 1)[1] if ": " in header[0] else ""
    tag = next((h for h in header if h.startswith("# tpusim-calibrate")), "").split(" {")[0]
    if not lines or not said or not tag or not lines[0].endswith(said):
        return lines
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            return lines
        if line.startswith(tag + " "):
            return lines[i + 1:]
    return lines


def load_config_text(text: str, name: str) -> ChipConfig:
    from pydantic import ValidationError

    from .config import validation_to_input_error
    from ._input import load_yaml
    from .errors import InputError
    raw = load_yaml(text, name)   # no key given twice
    if not isinstance(raw, dict):
        raise InputError(name, None, message="expected a YAML mapping of config fields")
    try:
        return ChipConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_to_input_error(err, name) from None


RECIPE_KEYS = ("base", "measurements", "sha256", "folds", "seed")


def read_recipe(path: str | Path) -> dict[str, Any] | None:
    """The record a calibrated config's header carries, or None; a damaged one is an InputError."""
    from ._input import read_text
    from .errors import InputError
    src = str(path)
    for lineno, line in enumerate(read_text(path, "calibrated config").splitlines(), start=1):
        if not line.startswith("#"):
            break
        if RECIPE_TAG in line:
            try:
                rec = json.loads(line.split(RECIPE_TAG, 1)[1])
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record "
                                 "is not a JSON object; rerun tpusim calibrate to write it again")
            missing = [k for k in RECIPE_KEYS if k not in rec]
            if missing:
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record "
                                 "lacks " + ", ".join(missing) + "; rerun tpusim calibrate")
            bad = [k for k in ("folds", "seed") if type(rec[k]) is not int]
            bad += [k for k in ("base", "measurements") if not isinstance(rec[k], str)]
            if bad:
                raise InputError(src, f"line {lineno}", message=f"the {RECIPE_TAG[:-1]} record "
                                 f"has a malformed {', '.join(bad)}; rerun tpusim calibrate")
            return rec
    return None

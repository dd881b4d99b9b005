"""Comparing runs: what changed between two or more designs, as a whole and layer by layer.

A run is a folder ``tpusim run`` wrote (``summary.json`` + ``layers.csv``, with ``config.yaml``
for its roofs), a ``CONFIG:WORKLOAD`` pair simulated here, or a :class:`~tpusim.Result`. The
first run is the baseline; every other run is set against it:

- the summary: each headline metric's ratio to the baseline and its change in per cent;
- per layer (layers are matched by position and must have the same names and counts, i.e. be the
  same workload): ``speedup`` = baseline time / run time (> 1: the run is faster) and
  ``energy_ratio`` = run energy / baseline energy (< 1: the run spends less), both over the
  layer's ``count`` instances;
- the "top changes": the layers whose total time moved the most, in seconds.

:func:`compare` returns a :class:`Comparison`; :func:`write_comparison` writes ``compare.csv``
(one row per run per layer, plus one ``scope=run`` row per run with the totals) and
``compare.html`` (see :mod:`tpusim.compare_page`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .errors import InputError

# (summary key, label, unit, lower is better) of the headline metrics compared.
SUMMARY_METRICS = (
    ("latency_s", "latency", "s", True),
    ("throughput_per_s", "throughput", "/s", False),
    ("achieved_tops", "achieved TOPS", "TOPS", False),
    ("utilization", "utilization", "", False),
    ("energy_per_inference_j", "energy / inference", "J", True),
    ("hbm_bytes", "off-chip traffic", "B", True),
    ("chip_mm2", "chip area", "mm²", True),
)

_LAYER_NEEDS = ("name", "count", "latency_s", "energy_pj", "intensity", "achieved_tops")


@dataclass
class Run:
    """One side of a comparison: its label, summary, per-layer table and chip (None when the
    folder has no ``config.yaml``)."""

    label: str
    summary: dict[str, Any]
    layers: pd.DataFrame
    chip: Any = None
    source: str = ""


@dataclass
class Comparison:
    """``runs`` (the first is the baseline), ``summary`` (one row per run per metric) and
    ``layers`` (one row per non-baseline run per layer), as :func:`compare` builds them."""

    runs: list[Run]
    summary: pd.DataFrame
    layers: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def top_changes(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` layers per run whose total time changed most (by seconds saved or lost)."""
        if self.layers.empty:
            return self.layers
        d = self.layers.assign(delta_s=self.layers["time_s"] - self.layers["base_time_s"])
        # a change within the stored precision (layers.csv keeps 10 digits) is no change
        d = d[d["delta_s"].abs() > 1e-9 * d["base_time_s"].abs()]
        d = d.assign(_abs=d["delta_s"].abs()).sort_values(["run", "_abs"],
                                                          ascending=[True, False], kind="stable")
        return d.groupby("run", sort=False).head(n).drop(columns="_abs")

    def to_csv(self) -> str:
        return comparison_csv(self)

    def to_html(self, provenance: dict[str, Any] | None = None) -> str:
        from .compare_page import compare_html
        return compare_html(self, provenance)


def _read_run_dir(path: Path) -> Run:
    summary_p, layers_p = path / "summary.json", path / "layers.csv"
    allowed = "a folder `tpusim run` wrote (summary.json + layers.csv) or CONFIG:WORKLOAD"
    if not path.is_dir():
        raise InputError(str(path), None, message=f"is not a folder or CONFIG:WORKLOAD; "
                         f"pass {allowed}")
    for p in (summary_p, layers_p):
        if not p.is_file():
            raise InputError(str(path), None, message=f"is not a run folder (no {p.name}); "
                             f"pass {allowed}")
    try:
        summary = json.loads(summary_p.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(str(summary_p), None, message=f"is not JSON ({exc}); pass {allowed}") \
            from None
    if not isinstance(summary, dict) or "total_cycles" not in summary \
            or "latency_s" not in summary:
        raise InputError(str(summary_p), None, message="is not a tpusim run summary (no "
                         f"total_cycles/latency_s); pass {allowed}")
    try:
        layers = pd.read_csv(layers_p)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(str(layers_p), None, message=f"cannot be read as CSV ({exc})") from None
    missing = [c for c in _LAYER_NEEDS if c not in layers.columns]
    if missing:
        raise InputError(str(layers_p), "header", ",".join(missing),
                         "missing columns; a run's layers.csv has " + ",".join(_LAYER_NEEDS))
    _check_numbers(layers, layers_p)
    for key, *_ in SUMMARY_METRICS:
        v = summary.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or v < 0):
            raise InputError(str(summary_p), key, v, "a number >= 0 (or null)")
    chip = None
    if (path / "config.yaml").is_file():
        from .config import load_config
        chip = load_config(str(path / "config.yaml"))
    return Run(label=path.name or str(path), summary=summary, layers=layers, chip=chip,
               source=str(path))


# layers.csv columns compare reads as numbers: (column, integer, empty allowed)
_NUMERIC = (("count", True, False), ("latency_s", False, False), ("energy_pj", False, False),
            ("intensity", False, True), ("achieved_tops", False, True))


def _check_numbers(layers: pd.DataFrame, path: Path) -> None:
    """One line for the first cell of a compared column that is not a number >= 0 (a count
    an integer >= 1; intensity and achieved TOPS may be empty), by its line in the file."""
    for col, integer, empty in _NUMERIC:
        raw = layers[col]
        vals = pd.to_numeric(raw, errors="coerce")
        bad = vals.isna() & (raw.notna() | (not empty)) | (vals < (1 if integer else 0))
        if integer:
            bad |= vals.notna() & (vals != vals.round())
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            what = "an integer >= 1" if integer else "a number >= 0" + (" or empty" if empty
                                                                        else "")
            raise InputError(str(path), f"line {i + 2}, column {col}", raw.iloc[i], what)
        layers[col] = vals


def _from_result(result, label: str, source: str = "") -> Run:
    from .results import summary_json
    summary = json.loads(summary_json(result.summary))
    return Run(label=label, summary=summary, layers=result.layers.copy(), chip=result.config,
               source=source)


def load_run(spec: Any) -> Run:
    """A :class:`Run` from a run folder, a ``CONFIG:WORKLOAD`` string or a ``Result``."""
    from .simulator import Result, simulate
    if isinstance(spec, Run):
        return spec
    if isinstance(spec, Result):
        return _from_result(spec, f"{spec.summary['config']}:{spec.summary['workload']}")
    text = str(spec)
    path = Path(text)
    if path.exists() or ":" not in text:
        return _read_run_dir(path)
    config, _, workload = text.rpartition(":")
    if not config or not workload:
        raise InputError(text, None, message="is not CONFIG:WORKLOAD (both parts needed) or a "
                         "run folder")
    return _from_result(simulate(config, workload), text, source=text)


def _unique_labels(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        n = seen.get(r.label, 0)
        seen[r.label] = n + 1
        if n:
            r.label = f"{r.label} ({n + 1})"


def _check_same_layers(base: Run, run: Run) -> None:
    a, b = base.layers, run.layers
    src = run.source or run.label     # a run folder's layers.csv, or a CONFIG:WORKLOAD run
    where = f"{src}: layers.csv" if Path(src).is_dir() else src
    if len(a) != len(b):
        raise InputError(where, "rows", len(b), f"the baseline {base.label!r} has "
                         f"{len(a)}; compare runs of the same workload")
    for i, (na, nb, ca, cb) in enumerate(zip(a["name"], b["name"], a["count"], b["count"])):
        if str(na) != str(nb) or int(ca) != int(cb):
            raise InputError(where, f"row {i + 1}", f"layer {nb!r} x{cb}",
                             f"the baseline has {na!r} x{ca} there; compare runs of the same "
                             "workload")


def _ratio(x: float, y: float) -> float:
    """x / y, NaN where undefined (0/0), inf where only y is 0."""
    if y == 0:
        return math.nan if x == 0 else math.inf
    return x / y


def _summary_rows(runs: list[Run]) -> pd.DataFrame:
    base = runs[0].summary
    rows = []
    for r in runs:
        for key, label, unit, lower in SUMMARY_METRICS:
            if key not in base or key not in r.summary:
                continue
            b, v = base.get(key), r.summary.get(key)
            if b is None or v is None:
                continue
            ratio = _ratio(float(v), float(b))
            rows.append({"scope": "run", "run": r.label, "baseline": runs[0].label,
                         "metric": key, "label": label, "unit": unit, "lower_is_better": lower,
                         "baseline_value": float(b), "value": float(v), "ratio": ratio,
                         "change_pct": (ratio - 1) * 100 if math.isfinite(ratio) else ratio})
    return pd.DataFrame(rows)


def _layer_rows(runs: list[Run]) -> pd.DataFrame:
    base = runs[0]
    bl = base.layers
    b_time = bl["latency_s"] * bl["count"]
    b_energy = bl["energy_pj"] * bl["count"] * 1e-12
    frames = []
    for r in runs[1:]:
        rl = r.layers
        time = rl["latency_s"] * rl["count"]
        energy = rl["energy_pj"] * rl["count"] * 1e-12
        frames.append(pd.DataFrame({
            "scope": "layer", "run": r.label, "baseline": base.label,
            "layer_index": range(len(rl)), "name": rl["name"].astype(str), "count": rl["count"],
            "base_time_s": b_time.to_numpy(), "time_s": time.to_numpy(),
            "speedup": [_ratio(x, y) for x, y in zip(b_time, time)],
            "base_energy_j": b_energy.to_numpy(), "energy_j": energy.to_numpy(),
            "energy_ratio": [_ratio(x, y) for x, y in zip(energy, b_energy)],
            "base_intensity": pd.to_numeric(bl["intensity"]).to_numpy(),
            "intensity": pd.to_numeric(rl["intensity"]).to_numpy(),
            "base_achieved_tops": bl["achieved_tops"].to_numpy(),
            "achieved_tops": rl["achieved_tops"].to_numpy(),
            "base_bound": bl["bound"].to_numpy() if "bound" in bl else None,
            "bound": rl["bound"].to_numpy() if "bound" in rl else None,
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare(runs: Sequence[Any]) -> Comparison:
    """Compare ``runs`` (run folders, ``CONFIG:WORKLOAD`` strings or Results; at least two)
    against the first. Runs of different workloads are an :class:`InputError`."""
    if len(runs) < 2:
        raise InputError("runs", None, len(runs), "compare needs at least two runs")
    loaded = [load_run(r) for r in runs]
    _unique_labels(loaded)
    for r in loaded[1:]:
        _check_same_layers(loaded[0], r)
    notes = []
    if any(r.chip is None for r in loaded):
        notes.append("A run folder without config.yaml has no roofs drawn: its chip is unknown.")
    return Comparison(runs=loaded, summary=_summary_rows(loaded), layers=_layer_rows(loaded),
                      notes=notes)


def comparison_csv(c: Comparison) -> str:
    """``compare.csv``: the summary rows (``scope=run``), then the layer rows (``scope=layer``)."""
    from ._io import csv_safe
    df = pd.concat([c.summary, c.layers], ignore_index=True, sort=False)
    return csv_safe(df).to_csv(index=False, float_format="%.10g")


def run_sources(c: Comparison) -> list[dict[str, Any]]:
    """What each side of ``c`` was: its label and source, and for a run folder its summary.json's
    sha256 and the run id and command it records; for ``CONFIG:WORKLOAD`` (simulated here) the
    two input files with their sha256."""
    from .provenance import file_sha256, input_file
    out = []
    for r in c.runs:
        entry: dict[str, Any] = {"label": r.label, "source": r.source}
        folder = Path(r.source) if r.source else None
        if folder is not None and (folder / "summary.json").is_file():
            prov = r.summary.get("provenance") or {}
            entry.update(summary_sha256=file_sha256(folder / "summary.json"),
                         run_id=prov.get("run_id"), command=prov.get("command"))
        elif ":" in r.source:
            config, _, workload = r.source.rpartition(":")
            entry["inputs"] = {"config": input_file("config", config),
                               "workload": input_file("workload", workload)}
        out.append(entry)
    return out


def write_comparison(c: Comparison, out_dir: str | Path,
                     provenance: dict[str, Any] | None = None) -> list[Path]:
    """``compare.csv`` and ``compare.html`` into ``out_dir``, all or nothing; with
    ``provenance`` (run id, version, command, options) also ``compare.json``: it and what each
    run compared was (:func:`run_sources`)."""
    from .results import write_all
    html = c.to_html(provenance)
    csv = c.to_csv()
    files = {"compare.csv": lambda p: p.write_text(csv),
             "compare.html": lambda p: p.write_text(html)}
    if provenance is not None:
        text = json.dumps({"provenance": provenance, "runs": run_sources(c)}, indent=2,
                          sort_keys=True) + "\n"
        files["compare.json"] = lambda p: p.write_text(text)
    return write_all(files, out_dir, group="compare",
                     run_id=provenance["run_id"] if provenance else None)

"""A sweep's plan: the product of swept values expanded into points, validated, each keyed.

A point is one workload, one value per swept config path and optionally a forced ``format``.
:func:`plan_sweep` applies every listed value to the config alone before anything runs, so a
typo fails in a second instead of after an hour. A point's key hashes the config content after
its overrides, the workload file's content, the format, the tpusim version and a swapped
energy/area table.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, tables
from ..config import ChipConfig, load_config
from ..errors import InputError
from ..importers import find_workload, load_workload
from ..workload import Workload

FORMAT = "format"       # the one swept name that is not a config path


@dataclass(frozen=True)
class Point:
    """One simulation: ``values`` maps each swept path (and ``format``) to its value."""

    index: int
    workload: int                       # index into Plan.workloads
    values: tuple[tuple[str, Any], ...]
    key: str

    @property
    def overrides(self) -> dict[str, Any]:
        return {p: v for p, v in self.values if p != FORMAT}

    @property
    def format(self) -> str | None:
        return dict(self.values).get(FORMAT)


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the base chip, the loaded workloads and every point in order."""

    base: ChipConfig
    workloads: tuple[Workload, ...]
    labels: tuple[str, ...]             # the ``workload`` column, one per workload
    columns: tuple[str, ...]            # swept paths in column order (``format`` included)
    points: tuple[Point, ...]


def _sha(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def _workload_hash(arg: Any, wl: Workload) -> str:
    """The workload file's content hash; an in-memory workload hashes its layer records."""
    if isinstance(arg, Workload):
        return _sha(repr(wl.layers))
    return _sha(find_workload(arg).read_bytes())


def _normalise_axes(axes: dict) -> list[tuple[tuple[str, ...], list[tuple]]]:
    """``{"array.rows": [16, 32]}`` or zipped ``{("array.rows", "array.cols"): [(16, 16)]}``."""
    out: list[tuple[tuple[str, ...], list[tuple]]] = []
    seen: set[str] = set()
    for key, values in axes.items():
        paths = (key,) if isinstance(key, str) else tuple(key)
        for p in paths:
            if not isinstance(p, str) or not p:
                raise InputError("axes", None, p, "expected a dotted config path, e.g. array.rows")
            if p in seen:
                raise InputError("axes", p, message="swept twice; give each path once")
            seen.add(p)
        values = list(values)
        if not values:
            raise InputError("axes", ",".join(paths), message="empty list of values")
        if len(paths) == 1:
            rows = [(v,) for v in values]
        else:
            rows = [tuple(v) for v in values]
            bad = [v for v in rows if len(v) != len(paths)]
            if bad:
                raise InputError("axes", ",".join(paths), bad[0],
                                 f"expected {len(paths)} values per point")
        out.append((paths, rows))
    return out


def plan_sweep(config: str | Path | ChipConfig, workloads: Any,
               axes: dict) -> Plan:
    """Expand and validate a sweep. Raises :class:`InputError` before anything runs when a
    config, workload, path or value is bad: each listed value is applied to the config alone."""
    base = load_config(config)
    if isinstance(workloads, (str, Path, Workload)):
        workloads = [workloads]
    workloads = list(workloads)
    if not workloads:
        raise InputError("workloads", None, message="need at least one workload")
    wls = [load_workload(w) for w in workloads]
    hashes = [_workload_hash(a, w) for a, w in zip(workloads, wls)]
    labels = [w.name for w in wls]
    if len(set(labels)) < len(labels):  # two files share a name: label them as given
        labels = [w.name if isinstance(w, Workload) else str(w) for w in workloads]

    norm = _normalise_axes(axes)
    for paths, rows in norm:
        for row in rows:
            over = {p: v for p, v in zip(paths, row) if p != FORMAT}
            chip = load_config(base, **over) if over else base
            for p, v in zip(paths, row):
                if p == FORMAT:
                    if not isinstance(v, str):
                        raise InputError("format", None, v, "expected a format name")
                    chip.check_format(v, "format")
    columns = tuple(p for paths, _ in norm for p in paths)

    table = tables.current()
    table_key = "" if table == tables.DEFAULT else _sha(repr(table))
    chips: dict[str, str] = {}          # overrides JSON -> config content after overrides
    points: list[Point] = []
    combos = list(itertools.product(*[rows for _, rows in norm]))
    for wi, combo in itertools.product(range(len(wls)), combos):
        values = tuple((p, v) for (paths, _), row in zip(norm, combo) for p, v in zip(paths, row))
        over = {p: v for p, v in values if p != FORMAT}
        over_json = json.dumps(over, sort_keys=True, default=str)
        content = chips.get(over_json)
        if content is None:
            try:
                content = load_config(base, **over).model_dump_json()
            except InputError:          # fails in combination only: the point records why
                content = base.model_dump_json() + over_json
            chips[over_json] = content
        ident = {"config": _sha(content), "workload": hashes[wi],
                 "format": dict(values).get(FORMAT), "tpusim": __version__}
        if table_key:   # a swapped energy/area table gives other energies: other points
            ident["tables"] = table_key
        key = _sha(json.dumps(ident, sort_keys=True))[:24]
        points.append(Point(len(points), wi, values, key))
    return Plan(base, tuple(wls), tuple(labels), columns, tuple(points))

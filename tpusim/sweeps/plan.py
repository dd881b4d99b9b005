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
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, tables
from ..config import ChipConfig, load_config
from ..errors import InputError
from ..importers import find_workload, load_workload
from ..workload import Workload
from ..yaml_edit import get_path

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


class Points(Sequence):
    """A plan's points, built when asked for: per point only its 24-character key is stored
    (as 24 bytes), so a plan of 10^5 points takes ~2.4 MB, not one Python object per point.
    Point ``i`` is workload ``i // combos`` and, within it, combination ``i % combos`` of the
    axes in ``itertools.product`` order (the last axis varies fastest)."""

    def __init__(self, norm: list[tuple[tuple[str, ...], list[tuple]]], keys: np.ndarray):
        self._paths = [paths for paths, _ in norm]
        self._rows = [rows for _, rows in norm]
        self._combos = math.prod(len(r) for r in self._rows)
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def _point(self, i: int) -> Point:
        wi, c = divmod(i, self._combos)
        picks = []
        for rows in reversed(self._rows):
            c, k = divmod(c, len(rows))
            picks.append(rows[k])
        values = tuple((p, v) for paths, row in zip(self._paths, reversed(picks))
                       for p, v in zip(paths, row))
        return Point(i, wi, values, self._keys[i].decode())

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._point(j) for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("point index out of range")
        return self._point(i)

    def __iter__(self) -> Iterator[Point]:
        return (self._point(i) for i in range(len(self)))

    def keys(self, idx: np.ndarray) -> list[str]:
        """The keys of points ``idx``."""
        return self._keys[idx].astype(str).tolist()

    def workloads(self, idx: np.ndarray) -> np.ndarray:
        """The workload index of points ``idx``."""
        return np.asarray(idx, dtype=np.int64) // self._combos

    def values(self, path: str, idx: np.ndarray) -> list:
        """The value of swept ``path`` at points ``idx`` (the objects the axes were given)."""
        stride = self._combos
        for paths, rows in zip(self._paths, self._rows):
            stride //= len(rows)
            if path in paths:
                at = paths.index(path)
                vals = np.empty(len(rows), dtype=object)
                for j, row in enumerate(rows):   # one by one: a value may be a list
                    vals[j] = row[at]
                k = (np.asarray(idx, dtype=np.int64) % self._combos) // stride % len(rows)
                return vals[k].tolist()
        raise KeyError(path)


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the base chip, the loaded workloads and every point in order."""

    base: ChipConfig
    workloads: tuple[Workload, ...]
    labels: tuple[str, ...]             # the ``workload`` column, one per workload
    columns: tuple[str, ...]            # swept paths in column order (``format`` included)
    points: Points


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
    for j, h in enumerate(hashes):   # the same trace twice would be every point twice
        if h in hashes[:j]:
            first = workloads[hashes.index(h)]
            raise InputError("workloads", None, str(workloads[j]), f"the same workload as "
                             f"{first!s} (same content); give each once")
    labels = [w.name for w in wls]
    if len(set(labels)) < len(labels):  # two files share a name: label them as given
        labels = [w.name if isinstance(w, Workload) else str(w) for w in workloads]

    norm = _normalise_axes(axes)
    for paths, rows in norm:
        resolved: dict[tuple, tuple] = {}   # each point's values as the config reads them
        for row in rows:
            over = {p: v for p, v in zip(paths, row) if p != FORMAT}
            chip = load_config(base, **over) if over else base
            as_read = []
            for p, v in zip(paths, row):
                if p == FORMAT:
                    if not isinstance(v, str):
                        raise InputError("format", None, v, "expected a format name")
                    as_read.append(chip.check_format(v, "format"))
                else:
                    as_read.append(repr(get_path(chip, p)))
            if tuple(as_read) in resolved:   # 600 and 600.0, int8 and i8: one point twice
                twice = " and ".join(",".join(map(str, r)) for r in (resolved[tuple(as_read)], row))
                raise InputError("axes", ",".join(paths), twice,
                                 "the same value twice (as the config reads it); give each once")
            resolved[tuple(as_read)] = row
    columns = tuple(p for paths, _ in norm for p in paths)

    table = tables.current()
    table_key = "" if table == tables.DEFAULT else _sha(repr(table))
    chips: dict[str, str] = {}          # overrides JSON -> hash of the config after overrides
    nwl = len(wls)
    combos = math.prod(len(rows) for _, rows in norm)
    keys = np.empty(nwl * combos, dtype="S24")
    i = 0
    for wi, combo in itertools.product(range(nwl), itertools.product(*[r for _, r in norm])):
        values = tuple((p, v) for (paths, _), row in zip(norm, combo) for p, v in zip(paths, row))
        over = {p: v for p, v in values if p != FORMAT}
        over_json = json.dumps(over, sort_keys=True, default=str)
        content = chips.get(over_json)
        if content is None:
            try:
                content = _sha(load_config(base, **over).model_dump_json())
            except InputError:          # fails in combination only: the point records why
                content = _sha(base.model_dump_json() + over_json)
            chips[over_json] = content
        ident = {"config": content, "workload": hashes[wi],
                 "format": dict(values).get(FORMAT), "tpusim": __version__}
        if table_key:   # a swapped energy/area table gives other energies: other points
            ident["tables"] = table_key
        keys[i] = _sha(json.dumps(ident, sort_keys=True))[:24].encode()
        i += 1
    return Plan(base, tuple(wls), tuple(labels), columns, Points(norm, keys))

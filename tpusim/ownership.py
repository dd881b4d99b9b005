"""Which files in an output folder are tpusim's: the manifests a folder's writes keep
(``.tpusim-GROUP.json``: the files of a command's last write there, each with its sha256), what a
file without one says about itself, and the one-line refusals that keep a user's file from
being replaced (:func:`check_not_users`, :func:`check_lone_file`, :func:`check_own_config`).
:mod:`tpusim.results` writes the folders; these decide what it may replace or remove.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InputError


def manifest_path(out_dir: Path, group: str) -> Path:
    return out_dir / f".tpusim-{group}.json"


def read_manifest(out_dir: Path, group: str) -> dict[str, Any]:
    """The last write of ``group`` into ``out_dir``: ``{"run_id", "state", "files"}`` (or {})."""
    try:
        data = json.loads(manifest_path(out_dir, group).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else {}


def manifests(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every group's last write into ``out_dir`` (:func:`read_manifest`), by group name."""
    if not out_dir.is_dir():
        return {}
    groups = [m.name[len(".tpusim-"):-len(".json")]
              for m in sorted(out_dir.glob(".tpusim-*.json"))]
    return {g: read_manifest(out_dir, g) for g in groups}


# manifest groups as a user types the command that wrote them
_COMMANDS = {"sharded": "run --chips"}


def _command(group: str) -> str:
    """The command a manifest group belongs to, as the user types it (``roofline-x``: roofline)."""
    return _COMMANDS.get(group, group.split("-")[0])


# outputs with no mark of their own (see owned_files): tables, and records such as serve's per-rate
# JSON that carry no provenance (the command's main record beside them does)
_TABLES = (".csv", ".parquet", ".json")
# the pages a group writes unless told not to (what a folder without a manifest may still hold)
_PAGES = {"run": ("report.html",), "train": ("report.html",), "infer": ("report.html",),
          "sharded": ("report.html",), "serve": ("report.html",), "sweep": ("sweep.html",)}


def _is_record(p: Path, cmd: str) -> bool:
    """Whether ``p`` is ``cmd``'s own JSON record (its provenance's command line)."""
    if p.is_symlink() or not p.is_file():
        return False
    return written_by(p, cmd) or (cmd == "run" and _written_by_run(p))


def _checkmanifest_path(out_dir: Path, group: str) -> None:
    """Refuse a file at the manifest's name that is no tpusim manifest (a user's file named
    so): writing the manifest would replace it."""
    p = manifest_path(out_dir, group)
    if (p.exists() or p.is_symlink()) and not read_manifest(out_dir, group):
        raise InputError(str(p), None, message="is not a manifest tpusim wrote (the name it "
                         "keeps its record of this folder's outputs under); move it")


def _identifies(p: Path, cmd: str) -> bool:
    """Whether a file's own content shows that tpusim wrote it, for a folder without a manifest
    (an older tpusim's, or one whose hidden manifest was deleted): a JSON record of ``cmd``
    (:func:`written_by`) or a tpusim trace, a page with tpusim's generator tag or stylesheet,
    a resolved config with tpusim's header, a layers table with its columns. Other tables
    carry no mark: :func:`owned_files` takes them with the command's record."""
    if p.is_symlink() or not p.is_file():
        return False
    name = p.name
    if name.endswith(".json"):
        from ._io import is_trace
        return _is_record(p, cmd) or is_trace(p)
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if name.endswith((".html", ".htm")):
        from .html_page import CSS, GENERATOR
        return GENERATOR in head or CSS in head
    first = head.split("\n", 1)[0]
    if name == "config.yaml":
        return first.startswith(CONFIG_HEADER)
    if name == "layers.csv":
        cols = first.split(",")
        return cols[:2] == ["name", "op"] and {"latency_s", "energy_pj", "cycles"} <= set(cols)
    return False


def owned_files(out_dir: Path, names: list[str], group: str) -> tuple[set[str], set[str]]:
    """(files of ``out_dir`` the last write of ``group`` made and that are still as it wrote
    them, files it made that were changed since): by the manifest and its sha256 per file;
    without a manifest (or a sha256), those of ``names`` whose content identifies them
    (:func:`_identifies`), and its tables and unmarked JSON when the command's own record is
    among them (:func:`_is_record`)."""
    old = read_manifest(out_dir, group)
    cmd = _command(group).split()[0]

    def by_content(candidates) -> set[str]:
        # a table carries no mark of its own: it is taken with the command's own record beside
        # it (its provenance names the command; a trace is no such record)
        record = any(n.endswith(".json") and _is_record(out_dir / n, cmd) for n in candidates)
        return {n for n in candidates if _identifies(out_dir / n, cmd) or (
            record and n.endswith(_TABLES) and (out_dir / n).is_file()
            and not (out_dir / n).is_symlink())}
    if not old:
        return by_content(set(names) | set(_PAGES.get(group, ()))), set()   # + a stale page
    from .provenance import file_sha256
    shas = old.get("sha256") if isinstance(old.get("sha256"), dict) else {}
    listed = [Path(str(n)).name for n in old.get("files", [])]
    # a manifest from before per-file sha256 (config.yaml's only): the rest by content
    unhashed = by_content([n for n in listed if n not in shas] + list(names))
    ours, changed = set(), set()
    for n in listed:
        p = out_dir / n
        if n not in shas:
            (ours if n in unhashed or not p.exists() else changed).add(n)
        elif p.is_file() and not p.is_symlink() and file_sha256(p) != shas[n]:
            changed.add(n)
        else:
            ours.add(n)
    return ours, changed


def check_not_users(out_dir: str | Path, names: list[str], group: str) -> None:
    """Refuse (one-line :class:`InputError`) to replace a file in ``out_dir`` named like one of
    ``names`` that no earlier write of ``group`` made (a user's own ``layers.csv`` or
    ``summary.json``), that one made but was changed since, or that another command's output
    there lists; callers run it before the work, :func:`write_all` again before it writes."""
    from ._io import check_target
    out_dir = Path(out_dir)
    for name in names:
        check_target(out_dir / name)      # a symlink or FIFO there: its own message
    check_not_anothers(out_dir, list(names), group)
    if not out_dir.is_dir():
        return
    _checkmanifest_path(out_dir, group)
    ours, changed = owned_files(out_dir, list(names), group)
    for name in names:
        p = out_dir / name
        if not (p.exists() or p.is_symlink()) or (name in ours and name not in changed):
            continue
        if name in changed:
            raise InputError(str(p), None, message=f"was changed since tpusim {_command(group)}"
                             " wrote it; move it or choose another --out")
        raise InputError(str(p), None, message="exists and was not written by tpusim "
                         f"{_command(group)}; choose another --out or move it")


def check_not_anothers(out_dir: Path, names: list[str], group: str | None,
                        option: str = "--out") -> None:
    """Refuse (one-line :class:`InputError`) to replace a file another command's output in
    ``out_dir`` lists in its manifest (e.g. infer's config.yaml over train's): that output's
    record would then describe a file it no longer has. ``option``: what the user changes."""
    for other, manifest in manifests(out_dir).items():
        if other == group:
            continue
        # a file that output lists but which is gone (removed by hand) holds nothing of it
        mine = {n for n in set(names) & set(manifest.get("files", []))
                if (out_dir / n).exists() or (out_dir / n).is_symlink()}
        if mine:
            name = sorted(mine)[0]
            raise InputError(str(out_dir / name), None, message="belongs to the tpusim "
                             f"{_COMMANDS.get(other, other.split('-')[0])} output in this "
                             "folder; choose "
                             f"another {option} (or remove that output's files)")


CONFIG_HEADER = "# Resolved config of a tpusim"   # the first line of every config.yaml written


def written_by(json_path: Path, command: str) -> bool:
    """Whether ``json_path`` is a record tpusim ``command`` wrote (its provenance's command line
    says so): an output of a tpusim from before that command kept a manifest."""
    try:
        prov = json.loads(Path(json_path).read_text()).get("provenance", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(prov, dict) and str(prov.get("command", "")).startswith(f"tpusim {command}")


def check_owned(targets: list[Path], group: str) -> None:
    """Refuse (one-line :class:`InputError`), before anything runs, a target that is not a
    regular file, or that exists and no earlier write of ``group`` in its folder made
    (:func:`check_not_users`): a file the user put beside an output named after another
    (``roofline --out x.html``'s x.csv and x.json, ``generate --out s.csv``'s s.json)."""
    from ._io import check_target
    for t in targets:
        check_target(t)
    check_not_users(targets[0].parent, [t.name for t in targets], group)


def _config_of_a_record(out_dir: Path, config: Path) -> bool:
    """Whether ``config``'s header names a tpusim run (``(run ID)``) whose JSON record in
    ``out_dir`` has that run id: the folder's own config.yaml, its manifest gone."""
    import re
    if not _identifies(config, ""):
        return False
    m = re.match(re.escape(CONFIG_HEADER) + r" run \(run ([0-9a-f]+)\)",
                 config.read_text(encoding="utf-8", errors="replace"))
    if m is None:
        return False
    for rec in out_dir.glob("*.json"):
        if rec.is_file() and not rec.is_symlink():
            try:
                prov = json.loads(rec.read_text()).get("provenance", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(prov, dict) and prov.get("run_id") == m.group(1):
                return True
    return False


def check_own_config(out_dir: str | Path, command: str) -> None:
    """Refuse (one-line :class:`InputError`) to replace a ``config.yaml`` in ``out_dir`` that no
    tpusim command's manifest lists (a common name, so it may be the user's own config), or
    one edited since the command that lists it wrote it (its sha256 no longer the manifest's)."""
    from ._io import check_target
    out_dir = Path(out_dir)
    mine = out_dir / "config.yaml"
    check_target(mine)
    if not mine.exists():
        return
    owners = [o for o in manifests(out_dir).values() if "config.yaml" in o.get("files", [])]
    if not owners:
        if _config_of_a_record(out_dir, mine):     # no manifest, but the run's own config
            return
        raise InputError(str(mine), None, message=f"exists and was not written by tpusim "
                         f"{command}; move it or choose another --out")
    from .provenance import file_sha256
    want = [o["sha256"]["config.yaml"] for o in owners
            if isinstance(o.get("sha256"), dict) and "config.yaml" in o["sha256"]]
    if want and file_sha256(mine) not in want:
        raise InputError(str(mine), None, message="was edited since tpusim wrote it; move it "
                         "(or choose another --out) so that this run does not replace it")


def _written_by_run(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():   # never open a FIFO: it would block
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "tpusim_version" in data and "total_cycles" in data


def check_own_name(p: Path, option: str) -> None:
    """A file named like tpusim's hidden bookkeeping (``.tpusim-GROUP.json`` manifests) is
    refused: writing it would corrupt the folder's record of what tpusim wrote there."""
    if p.name.startswith(".tpusim-"):
        raise InputError(str(p), None, message="is a name tpusim keeps for its record of the "
                         f"folder's outputs; choose another {option}")


def check_lone_file(p: Path, ours, option: str, group: str | None = None,
                    others: bool = True) -> None:
    """One-line refusals for a single output file (``--trace``, ``--png``, a trace CSV, a
    calibrated config), before anything runs: it must be absent or a regular file, not named
    like a manifest, none of another output's files in its folder (``group``: the write it
    belongs to, whose own files it may replace; ``others=False`` where that write's own
    check covers it), and, where it exists, a file whose content ``ours`` says tpusim wrote."""
    from ._io import check_replaceable, check_target
    check_target(p, option)
    check_own_name(p, option)
    if others and p.parent.is_dir():
        check_not_anothers(p.parent, [p.name], group, option=option)
    check_replaceable(p, ours, option)

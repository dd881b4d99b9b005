"""Writing a run's outputs: ``layers.csv``, ``summary.json``, ``config.yaml`` and ``report.html``,
all or nothing.

Files are written under temporary names beside their targets and renamed only when every one
of them is complete, so a failed run leaves whatever the directory held before; a manifest per
kind of output (see :func:`write_all`) makes sure every file there comes from one run.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator


if TYPE_CHECKING:
    from .simulator import Result


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(_finite(summary), indent=2, sort_keys=False, default=_json_default) + "\n"


def layers_csv(result: "Result") -> str:
    # A columnar run whose table nobody has read yet: write it from the arrays (no pandas).
    cols = getattr(getattr(result, "_table", None), "__self__", None)
    if getattr(result, "_layers", None) is None and hasattr(cols, "table_data"):
        from .table_csv import columns_csv
        return columns_csv(cols.table_data())
    from ._io import csv_safe
    return csv_safe(result.layers).to_csv(index=False, float_format="%.10g")


def _manifest_path(out_dir: Path, group: str) -> Path:
    return out_dir / f".tpusim-{group}.json"


def read_manifest(out_dir: Path, group: str) -> dict[str, Any]:
    """The last write of ``group`` into ``out_dir``: ``{"run_id", "state", "files"}`` (or {})."""
    try:
        data = json.loads(_manifest_path(out_dir, group).read_text())
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


@contextmanager
def _dir_lock(out_dir: Path) -> Iterator[None]:
    """Serialise writers of one directory (a blocking ``flock``; none where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)   # the directory itself: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_ours(out_dir: Path, names: list[str]) -> None:
    for name in names:
        p = out_dir / Path(str(name)).name
        if p.is_file() and not p.is_symlink():
            p.unlink()


# manifest groups as a user types the command that wrote them
_COMMANDS = {"sharded": "run --chips"}


def _command(group: str) -> str:
    """The command a manifest group belongs to, as the user types it (``roofline-x``: roofline)."""
    return _COMMANDS.get(group, group.split("-")[0])


# outputs with no mark of their own (see _ours): tables, and records such as serve's per-rate
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


def _check_manifest_path(out_dir: Path, group: str) -> None:
    """Refuse a file at the manifest's name that is no tpusim manifest (a user's file named
    so): writing the manifest would replace it."""
    p = _manifest_path(out_dir, group)
    if (p.exists() or p.is_symlink()) and not read_manifest(out_dir, group):
        from .errors import InputError
        raise InputError(str(p), None, message="is not a manifest tpusim wrote (the name it "
                         "keeps its record of this folder's outputs under); move it")


def _identifies(p: Path, cmd: str) -> bool:
    """Whether a file's own content shows that tpusim wrote it, for a folder without a manifest
    (an older tpusim's, or one whose hidden manifest was deleted): a JSON record of ``cmd``
    (:func:`written_by`) or a tpusim trace, a page with tpusim's generator tag or stylesheet,
    a resolved config with tpusim's header, a layers table with its columns. Other tables
    carry no mark: :func:`_ours` takes them with the command's record."""
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


def _ours(out_dir: Path, names: list[str], group: str) -> tuple[set[str], set[str]]:
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
    from .errors import InputError
    out_dir = Path(out_dir)
    for name in names:
        check_target(out_dir / name)      # a symlink or FIFO there: its own message
    _check_not_anothers(out_dir, list(names), group)
    if not out_dir.is_dir():
        return
    _check_manifest_path(out_dir, group)
    ours, changed = _ours(out_dir, list(names), group)
    for name in names:
        p = out_dir / name
        if not (p.exists() or p.is_symlink()) or (name in ours and name not in changed):
            continue
        if name in changed:
            raise InputError(str(p), None, message=f"was changed since tpusim {_command(group)}"
                             " wrote it; move it or choose another --out")
        raise InputError(str(p), None, message="exists and was not written by tpusim "
                         f"{_command(group)}; choose another --out or move it")


def _check_not_anothers(out_dir: Path, names: list[str], group: str | None,
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
            from .errors import InputError
            name = sorted(mine)[0]
            raise InputError(str(out_dir / name), None, message="belongs to the tpusim "
                             f"{_COMMANDS.get(other, other.split('-')[0])} output in this "
                             "folder; choose "
                             f"another {option} (or remove that output's files)")


def write_all(files: dict[str, Callable[[Path], None]], out_dir: str | Path,
              group: str | None = None, run_id: str | None = None,
              locked: bool = False) -> list[Path]:
    """Write each file via its writer to a temp path, then rename them all into ``out_dir``.

    If any writer fails, every temp file is removed and nothing in ``out_dir`` changes. Targets
    that are not regular files are refused before anything is written.

    With ``group`` (``"run"``, ``"sweep"``, ...) the directory keeps a manifest
    ``.tpusim-GROUP.json`` of the files the last write of that group made. A new write first
    records itself as pending, then removes every file the previous write of the group made
    (so no file of an earlier run, e.g. a ``report.html`` a ``--no-html`` run does not write,
    is left beside new ones), then renames its own files in and marks the manifest complete.
    A crash between those renames leaves only files of the new run and a pending manifest,
    never a mix of two runs. Files tpusim did not write are never touched, nor is one it wrote
    and someone changed since: the manifest keeps every file's sha256 (:func:`_ours`; a folder
    without one is read by content, :func:`_identifies`). Writers of one group serialise on an
    exclusive ``flock`` of ``out_dir`` (``locked``: the caller holds it).
    """
    from ._io import check_dir, check_target, mode_for, replace_into, temp_beside
    out_dir = Path(out_dir)
    check_dir(out_dir)
    for name in files:
        check_target(out_dir / name)
    if group:
        check_not_users(out_dir, list(files), group)
    else:
        _check_not_anothers(out_dir, list(files), group)
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, writer in files.items():
            final = out_dir / name
            temps.append((temp_beside(final), final))
            writer(temps[-1][0])
        with _dir_lock(out_dir) if group and not locked else nullcontext():
            if group:
                from ._io import atomic_write_text
                from .provenance import file_sha256
                old = read_manifest(out_dir, group)
                ours, _ = _ours(out_dir, list(files), group)
                # every file's sha256: the next write replaces or removes only what is still
                # as this one wrote it (a config.yaml edited since: check_own_config)
                record = {"run_id": run_id, "state": "pending", "files": list(files),
                          "temps": [t.name for t, _ in temps],
                          "sha256": {final.name: file_sha256(t) for t, final in temps}}
                atomic_write_text(_manifest_path(out_dir, group), json.dumps(record) + "\n")
                if old.get("state") == "pending":   # an earlier write crashed mid-way
                    _remove_ours(out_dir, list(old.get("temps") or []))
                modes = {final: mode_for(final) for _, final in temps}
                # the previous write's files, where still as it wrote them (a crash from here
                # on leaves only this write's files), and the ones this write replaces
                _remove_ours(out_dir, sorted(ours | set(files)))
                for tmp, final in temps:
                    os.chmod(tmp, modes[final])
                    os.replace(tmp, final)
            else:
                for tmp, final in temps:
                    replace_into(tmp, final)
            if group:
                record["state"] = "complete"
                del record["temps"]
                atomic_write_text(_manifest_path(out_dir, group), json.dumps(record) + "\n")
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    from .plotlyjs import write_beside   # --plotlyjs directory: the pages' shared copy
    write_beside(out_dir, list(files))
    return [final for _, final in temps]


def write_result(result: "Result", out_dir: str | Path, html: bool = True,
                 provenance: dict[str, Any] | None = None,
                 extra: dict[str, Callable[[Path], None]] | None = None) -> list[Path]:
    """``layers.csv``, ``summary.json``, ``config.yaml`` and (unless ``html=False``)
    ``report.html``: all from this run, nothing of an earlier run left beside them.

    ``provenance`` (see :func:`tpusim.provenance.run_provenance`) goes into ``summary.json``;
    without it the record holds the run id, the version and the resolved config. ``extra``:
    more files of the run (name: writer), written and recorded with the others."""
    from .provenance import run_summary
    out_dir = Path(out_dir)
    summary = run_summary(result, provenance)
    run_id = summary["provenance"]["run_id"]
    config = config_file(out_dir, result.config, run_id)
    files: dict[str, Callable[[Path], None]] = {
        "layers.csv": lambda p: p.write_text(layers_csv(result)),
        "summary.json": lambda p: p.write_text(summary_json(summary)),
        **config,
    }
    if html:
        from .report_pages import report_html
        files["report.html"] = lambda p: p.write_text(report_html(result))
    files.update(extra or {})
    return write_all(files, out_dir, group="run", run_id=run_id)


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
    from .errors import InputError
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


def config_file(out_dir: str | Path, chip, run_id: str | None,
                command: str = "run THIS_FILE WORKLOAD") -> dict[str, Callable[[Path], None]]:
    """The ``config.yaml`` entry (name: writer) of a run's files for :func:`write_all`: the
    resolved ``chip`` (:func:`tpusim.provenance.config_yaml`), once :func:`check_own_config` has
    made sure it replaces no config.yaml of the user's."""
    from .provenance import config_yaml
    check_own_config(out_dir, command.split()[0])
    text = config_yaml(chip, run_id, command)
    return {"config.yaml": lambda p: p.write_text(text)}


RUN_FILES = ("layers.csv", "summary.json", "report.html")   # what every tpusim run wrote


def run_files_check(out_dir: str | Path, html: bool = True) -> None:
    """:func:`check_not_users` for a run's files in ``out_dir``, before the run."""
    names = [n for n in RUN_FILES if html or n != "report.html"]
    check_not_users(Path(out_dir), names, "run")


def _written_by_run(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():   # never open a FIFO: it would block
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "tpusim_version" in data and "total_cycles" in data

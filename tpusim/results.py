"""Writing a run's outputs: ``layers.csv``, ``summary.json``, ``config.yaml`` and ``report.html``,
all or nothing.

Files are written under temporary names beside their targets and renamed only when every one
of them is complete, so a failed run leaves whatever the directory held before; a manifest per
kind of output (see :func:`write_all`) makes sure every file there comes from one run.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator


from .ownership import (check_not_anothers, check_not_users, check_own_config, manifest_path,
                        owned_files, read_manifest)

if TYPE_CHECKING:
    from .simulator import Result


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def summary_json(summary: dict[str, Any]) -> str:
    from ._io import finite
    return json.dumps(finite(summary), indent=2, sort_keys=False, default=_json_default) + "\n"


def layers_csv(result: "Result") -> str:
    # A columnar run whose table nobody has read yet: write it from the arrays (no pandas).
    cols = getattr(getattr(result, "_table", None), "__self__", None)
    if getattr(result, "_layers", None) is None and hasattr(cols, "table_data"):
        from .table_csv import columns_csv
        return columns_csv(cols.table_data())
    from ._io import csv_safe
    return csv_safe(result.layers).to_csv(index=False, float_format="%.10g")


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
    and someone changed since: the manifest keeps every file's sha256, and a folder without one
    is read by content (:func:`tpusim.ownership.owned_files`). Writers of one group serialise
    on an exclusive ``flock`` of ``out_dir`` (``locked``: the caller holds it).
    """
    from ._io import check_dir, check_target, mode_for, replace_into, temp_beside
    out_dir = Path(out_dir)
    check_dir(out_dir)
    for name in files:
        check_target(out_dir / name)
    if group:
        check_not_users(out_dir, list(files), group)
    else:
        check_not_anothers(out_dir, list(files), group)
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
                ours, _ = owned_files(out_dir, list(files), group)
                # every file's sha256: the next write replaces or removes only what is still
                # as this one wrote it (a config.yaml edited since: check_own_config)
                record = {"run_id": run_id, "state": "pending", "files": list(files),
                          "temps": [t.name for t, _ in temps],
                          "sha256": {final.name: file_sha256(t) for t, final in temps}}
                atomic_write_text(manifest_path(out_dir, group), json.dumps(record) + "\n")
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
                atomic_write_text(manifest_path(out_dir, group), json.dumps(record) + "\n")
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
        files["report.html"] = lambda p: p.write_text(report_html(result,
                                                                  summary["provenance"]))
    files.update(extra or {})
    return write_all(files, out_dir, group="run", run_id=run_id)


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



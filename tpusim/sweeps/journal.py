"""The output directory of a resumable sweep: ``sweep.parquet``/``sweep.csv`` and a journal.

Finished points are appended, a chunk at a time, to small JSON-lines files under
``DIR/.sweep-journal/`` (each written under a temporary name and renamed), and consolidated into
``DIR/sweep.parquet`` and ``DIR/sweep.csv`` (all-or-nothing renames). A re-run reads both. Rows
of earlier sweeps with other points stay in the files; one sweep at a time holds the directory.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .executors import _plain

if TYPE_CHECKING:
    import pandas as pd

    from .plan import Plan

JOURNAL_DIR = ".sweep-journal"
SWEEP_FILES = ("sweep.parquet", "sweep.csv", "sweep.html", "sweep.json")   # what a sweep writes
# The names tpusim's own files take (_io.temp_beside: '.NAME.' + 8 of mkstemp's characters +
# '.tmp'; journal files RUNID-SEQ.jsonl): a sweep removes or reads only those, never a user's
# file that merely looks alike.
_MKSTEMP = r"\.[a-z0-9_]{8}\.tmp"
_OUTPUT_TEMP = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in SWEEP_FILES) + ")"
                          + _MKSTEMP + "$")
_JOURNAL_FILE = re.compile(r"[0-9a-f]+-\d+-\d{6}\.jsonl$")
_JOURNAL_TEMP = re.compile(r"\.[0-9a-f]+-\d+-\d{6}\.jsonl" + _MKSTEMP + "$")


def _journal_record(line: str, path: Path, no: int) -> dict[str, Any]:
    """One journal line as the record a sweep wrote, or one line naming the file and line."""
    try:
        rec = json.loads(line)
    except ValueError:
        rec = None
    if not isinstance(rec, dict) or "key" not in rec:
        raise InputError(str(path), f"line {no}", message="not a sweep journal record; move "
                         "the file out of the journal folder or choose another --out")
    return rec


class _Store:
    """``sweep.parquet``/``sweep.csv`` and the journal of chunks finished since their last write.

    The files hold every point any sweep into the directory finished, keyed by ``key`` (a hash
    of the full config, workload content, format and version): a later sweep with other values
    adds its rows and keeps the earlier ones (:meth:`keep_foreign`). One sweep at a time holds
    an exclusive ``flock`` on the directory itself; a second one refuses with one line.
    """

    def __init__(self, out_dir: Path):
        self.dir = out_dir
        self.journal = out_dir / JOURNAL_DIR
        self.pending: list[Path] = []   # journal files not yet consolidated
        self.seq = 0
        self.run_id = f"{int(time.time() * 1000):x}-{os.getpid()}"
        self.foreign: list[dict[str, Any]] = []   # rows of earlier sweeps, not in this plan
        self._lock: Any = None

    def lock(self, html: bool = True, record: bool = True) -> None:
        """Hold ``DIR/.sweep.lock`` until :meth:`release`, or raise one line if it is held;
        first refuse a user's file named like one this sweep writes (``html``: its page,
        ``record``: its sweep.json), before any point runs."""
        from .._io import check_dir
        from ..ownership import check_not_users
        check_dir(self.dir)
        names = [n for n in SWEEP_FILES if (html or n != "sweep.html")
                 and (record or n != "sweep.json")]
        check_not_users(self.dir, names, "sweep")
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        fd = os.open(self.dir, os.O_RDONLY)   # the directory itself: no lock file to leave
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(str(self.dir), None, message="another tpusim is writing this "
                             "folder; wait for it to finish or choose another --out") from None
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)   # closing the descriptor drops the flock
            self._lock = None

    def keep_foreign(self, known: dict[str, dict[str, Any]], plan: "Plan") -> None:
        """Remember the loaded rows whose points this plan does not have; every write keeps them."""
        mine = {p.key for p in plan.points}
        self.foreign = [_as_row(r) for k, r in known.items() if k not in mine]

    def load(self) -> dict[str, dict[str, Any]]:
        """Records by key from the last consolidation and any journal files after it."""
        records: dict[str, dict[str, Any]] = {}
        main = self.dir / "sweep.parquet"
        if main.is_file():
            try:
                import pandas as pd
                df = pd.read_parquet(main)
            except Exception as exc:
                raise InputError(str(main), None, message=f"cannot read earlier results ({exc}); "
                                 "delete the file or choose another --out") from None
            if "key" not in df.columns:
                raise InputError(str(main), "key", message="not a tpusim sweep (no key column); "
                                 "choose another --out")
            for rec in df.to_dict("records"):
                rec = {k: _plain(v) for k, v in rec.items()}
                records[rec["key"]] = rec
        if self.journal.is_dir():
            for tmp in self.journal.iterdir():  # left by a kill mid-write; never renamed
                if _JOURNAL_TEMP.match(tmp.name) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
            for path in sorted(self.journal.iterdir()):
                if not (_JOURNAL_FILE.match(path.name) and path.is_file()):
                    continue                        # not a journal file tpusim names so
                for no, line in enumerate(path.read_text().splitlines(), 1):
                    if line.strip():
                        rec = _journal_record(line, path, no)
                        records[rec["key"]] = rec
                self.pending.append(path)
        for tmp in self.dir.iterdir() if self.dir.is_dir() else ():
            if _OUTPUT_TEMP.match(tmp.name) and tmp.is_file():
                tmp.unlink(missing_ok=True)
        return records

    def append(self, records: list[dict[str, Any]], plan: "Plan | None" = None) -> None:
        """Journal finished records; with ``plan``, each carries its workload and swept values
        (``_workload``, ``_values``) so that a later, different sweep can keep it as a row."""
        from .._io import atomic_path
        self.seq += 1
        path = self.journal / f"{self.run_id}-{self.seq:06d}.jsonl"
        if plan is not None:
            pts = [plan.points[r["index"]] for r in records]   # built on access: once each
            records = [{**r, "_workload": plan.labels[p.workload], "_values": dict(p.values)}
                       for r, p in zip(records, pts)]
        text = "".join(json.dumps(r, default=_plain) + "\n" for r in records)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        self.pending.append(path)

    def write(self, df: pd.DataFrame, html: str | None = None,
              extra: dict[str, Any] | None = None) -> list[Path]:
        """Write the files (and ``extra``'s, name: writer) all-or-nothing, then drop the journal
        files they now contain."""
        from .._io import csv_safe
        from ..results import write_all
        df = _with_rows(df, self.foreign)
        files = {
            "sweep.parquet": lambda p: _to_parquet(df, p),
            # streamed to the file in pieces: never the whole text in memory at once
            "sweep.csv": lambda p: csv_safe(df).to_csv(p, index=False, lineterminator="\n"),
        }
        if html is not None:
            files["sweep.html"] = lambda p: p.write_text(html)
        files.update(extra or {})
        written = write_all(files, self.dir, group="sweep", locked=self._lock is not None)
        for path in self.pending:
            path.unlink(missing_ok=True)
        self.pending = []
        return written

    def close(self) -> None:
        try:
            self.journal.rmdir()
        except OSError:  # not empty (another run's files) or already gone
            pass


def _as_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A stored record as a frame row: parquet rows already are; journal records carry their
    workload and swept values (records of an older tpusim without them keep what they have)."""
    row = {k: v for k, v in rec.items() if k not in ("index", "_workload", "_values")}
    if "_workload" in rec:
        row = {"workload": rec["_workload"], **(rec.get("_values") or {}), **row}
    return row


def _with_rows(df: pd.DataFrame, extra: list[dict[str, Any]]) -> pd.DataFrame:
    """``df`` followed by ``extra`` rows (earlier sweeps'); columns only they have go after the
    swept columns, integer columns stay integers where a row lacks them."""
    if not extra:
        return df
    import pandas as pd
    more = pd.DataFrame(extra)
    new = [c for c in more.columns if c not in df.columns]
    lead = list(df.columns[:list(df.columns).index("config")]) if "config" in df.columns else []
    cols = lead + new + [c for c in df.columns if c not in lead]
    both = pd.concat([df, more], ignore_index=True, sort=False).reindex(columns=cols)
    for c in cols:
        if any(c in f.columns and f[c].dtype.kind in "iu" for f in (df, more)):
            vals = pd.to_numeric(both[c], errors="coerce")
            if vals.notna().sum() == both[c].notna().sum() and (vals.dropna() % 1 == 0).all():
                both[c] = vals.astype("Int64")
    return both


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` as parquet, which stores one type per column: a swept field whose values mix types
    (``double_buffered``: true, false, auto) is written as its text, as YAML spells it."""
    import pyarrow as pa
    try:
        df.to_parquet(path, index=False)
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and out[c].dropna().map(type).nunique() > 1:
            out[c] = out[c].map(lambda v: v if v is None else
                                str(v).lower() if isinstance(v, bool) else str(v))
    out.to_parquet(path, index=False)

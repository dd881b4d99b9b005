"""The output directory of a resumable sweep: ``sweep.parquet``/``sweep.csv`` and a journal.

Finished points are appended, a chunk at a time, to small JSON-lines files under
``DIR/.sweep-journal/`` (each written under a temporary name and renamed), and consolidated into
``DIR/sweep.parquet`` and ``DIR/sweep.csv`` (all-or-nothing renames). A re-run reads both.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .executors import _plain

JOURNAL_DIR = ".sweep-journal"


class _Store:
    """``sweep.parquet``/``sweep.csv`` and the journal of chunks finished since their last write."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir
        self.journal = out_dir / JOURNAL_DIR
        self.pending: list[Path] = []   # journal files not yet consolidated
        self.seq = 0
        self.run_id = f"{int(time.time() * 1000):x}-{os.getpid()}"

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
            for tmp in self.journal.glob(".*.tmp"):  # left by a kill mid-write; never renamed
                tmp.unlink(missing_ok=True)
            for path in sorted(self.journal.glob("*.jsonl")):
                for line in path.read_text().splitlines():
                    if line.strip():
                        rec = json.loads(line)
                        records[rec["key"]] = rec
                self.pending.append(path)
        for tmp in self.dir.glob(".sweep.*.tmp"):
            tmp.unlink(missing_ok=True)
        return records

    def append(self, records: list[dict[str, Any]]) -> None:
        from .._io import atomic_path
        self.seq += 1
        path = self.journal / f"{self.run_id}-{self.seq:06d}.jsonl"
        text = "".join(json.dumps(r, default=_plain) + "\n" for r in records)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        self.pending.append(path)

    def write(self, df, html: str | None = None) -> list[Path]:
        """Write the files all-or-nothing, then drop the journal files they now contain."""
        from ..results import write_all
        files = {
            "sweep.parquet": lambda p: df.to_parquet(p, index=False),
            "sweep.csv": lambda p: p.write_text(df.to_csv(index=False)),
        }
        if html is not None:
            files["sweep.html"] = lambda p: p.write_text(html)
        written = write_all(files, self.dir)
        for path in self.pending:
            path.unlink(missing_ok=True)
        self.pending = []
        return written

    def close(self) -> None:
        try:
            self.journal.rmdir()
        except OSError:  # not empty (another run's files) or already gone
            pass

"""Writing files so that nothing a user had is lost and no half-written file is left.

Every output goes to a temporary file beside its target and is renamed over it only when
complete. Only regular files are replaced: a target that is a symlink, FIFO, device, socket or
directory is refused with one line before anything is written (replacing ``/dev/null`` or the
file a symlink points elsewhere is never what a user meant), and a file that already exists keeps
its permission bits. CSV cells that a spreadsheet would run as a formula are neutralised.
"""
from __future__ import annotations

import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .errors import InputError

if TYPE_CHECKING:
    import pandas as pd

_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def finite(obj: Any) -> Any:
    """``obj`` (dicts, lists, tuples, numbers) with every non-finite float (inf, nan) as None,
    so that its JSON is strict JSON (which has neither)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def check_target(path: str | Path, option: str = "--out") -> None:
    """Raise :class:`InputError` unless ``path`` is absent or a regular file (not a symlink);
    the message tells the user to choose another ``option``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError(str(path), None, message=f"cannot write here ({exc.strerror})") from None
    for test, kind in _KINDS:
        if test(mode):
            raise InputError(str(path), None, message=f"is {kind}; tpusim replaces only regular "
                             f"files: choose another {option}")


def check_dir(path: str | Path, option: str = "--out") -> None:
    """Raise :class:`InputError` when ``path`` (or a parent) exists and is not a directory."""
    p = Path(path)
    for d in (p, *p.parents):
        if d.exists() or d.is_symlink():
            if not d.is_dir():
                raise InputError(str(d), None, message="exists and is not a directory; "
                                 f"choose another {option}")
            return


def check_writable(path: str | Path, name: str | Path | None = None) -> None:
    """Raise :class:`InputError` unless a file can be created in the folder ``path`` (or, where
    it is missing, in its nearest existing parent, where the folders would be made): a file is
    created there and removed, so a path the OS refuses (``/sys``, a read-only mount, another
    user's folder) is reported, as ``name`` (default ``path``), before any output is written."""
    d = Path(path)
    while not d.exists() and d != d.parent:
        d = d.parent
    try:
        fd, probe = tempfile.mkstemp(dir=d, prefix=".tpusim-probe-")
    except OSError as exc:
        raise InputError(str(name or path), None, message=f"cannot write ({exc.strerror})") \
            from None
    os.close(fd)
    os.unlink(probe)


def check_replaceable(path: Path, ours, option: str = "--out") -> None:
    """Refuse (one-line :class:`InputError`) to replace an existing ``path`` that ``ours`` (a
    test of its content) says tpusim did not write: a user's file of the same name."""
    if path.is_file() and not path.is_symlink() and not ours(path):
        raise InputError(str(path), None, message="exists and was not written by tpusim; "
                         f"choose another {option} or move it")


# What tpusim's own single-file outputs say about themselves in their leading comment lines:
# a trace CSV names the command that wrote it, a calibrated config holds its JSON record.
TRACE_MARK = r"\btpusim (?:workload (?:llm|prune)|import (?:onnx|scalesim))\b"
CALIBRATED_MARK = r"^# tpusim-calibrate(?:-vector)?: \{"


def headed_by(path: Path, pattern: str) -> bool:
    """Whether one of the comment lines heading ``path`` matches ``pattern`` (a regex:
    :data:`TRACE_MARK`, :data:`CALIBRATED_MARK`), as the file tpusim wrote there would."""
    import re
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.startswith("#"):
                    return False
                if re.search(pattern, line):
                    return True
    except OSError:
        return False
    return False


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_MARK = b"tEXtSoftware\x00tpusim"     # the text chunk tpusim's PNGs carry (mark_png)


def mark_png(data: bytes) -> bytes:
    """``data`` (a PNG) with a ``Software: tpusim`` text chunk after its header chunk: how a
    later ``--png`` knows the file for tpusim's (any other PNG there is a user's)."""
    import struct
    import zlib
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33:
        return data
    body = PNG_MARK
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:33] + chunk + data[33:]      # signature (8) + IHDR (25), then the mark


def is_png(path: Path) -> bool:
    """Whether ``path`` is a PNG tpusim wrote (:func:`mark_png`'s chunk after its header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(80)
    except OSError:
        return False
    return head.startswith(PNG_SIGNATURE) and PNG_MARK in head


def is_trace(path: Path) -> bool:
    """Whether ``path`` holds a trace tpusim wrote (its ``otherData.tool`` says so)."""
    import json
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("otherData"), dict) and \
        data["otherData"].get("tool") == "tpusim"


def mode_for(path: Path) -> int:
    """The permission bits ``path`` has now, or the umask's default for a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def replace_into(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` over ``path`` with the permission bits ``path`` had."""
    check_target(path)
    os.chmod(tmp, mode_for(path))
    os.replace(tmp, path)


def temp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path = Path(path)
    check_target(path)
    check_dir(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_beside(path)
    try:
        yield tmp_path
        replace_into(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ---------------------------------------------------------------- CSV formula injection

_FORMULA_START = ("=", "+", "-", "@")


def safe_cell(value: Any) -> Any:
    """A string cell that starts like a formula (``= + - @``) gets a leading ``'``, which
    spreadsheets show as text; numbers and other strings are returned as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_safe(df: "pd.DataFrame") -> "pd.DataFrame":
    """``df`` with every string cell passed through :func:`safe_cell` (numeric columns as is)."""
    cols = [c for c in df.columns
            if df[c].dtype.kind == "O" or str(df[c].dtype) in ("str", "string")]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        out[c] = out[c].map(safe_cell)
    return out

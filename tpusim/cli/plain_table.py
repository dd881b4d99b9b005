"""The run summary's two-column table as rich prints it to a pipe, without importing rich.

Importing rich costs ~75 ms, a fifth of a whole ``tpusim run --no-html``. When the output is not
a terminal (no colour, no markup to render) and the table fits the console width unchanged, this
writes the characters rich would (``tests/test_plain_table.py`` compares the two); anything else
(a terminal, colour forced by the environment, markup, emoji codes, wide or control characters,
a table rich would wrap) goes to rich.
"""
from __future__ import annotations

import os
import re
import sys
import unicodedata

# environment variables rich reads to force colour, a terminal or another width
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS",
             "JUPYTER_LINES")
_MARKUP = re.compile(r"\[|:\S*?:")   # a rich markup tag or an emoji code could start here


def _plain(text: str) -> bool:
    """Every character one cell wide, and nothing rich would render as markup or emoji."""
    if _MARKUP.search(text):
        return False
    for ch in text:
        if not ch.isprintable() or unicodedata.combining(ch) or \
                unicodedata.east_asian_width(ch) in ("W", "F"):
            return False
    return True


def _console_width() -> int:
    """The width rich's Console takes: ``COLUMNS``, else a terminal on stdin/out/err, else 80."""
    cols = os.environ.get("COLUMNS")
    if cols is not None and cols.isdigit():
        return int(cols)
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def render(title: str, headers: tuple[str, str], rows: list[tuple[str, str]]) -> str | None:
    """rich's ``Table(title)`` with a left and a right-justified column, or None where this
    cannot promise rich's output."""
    if os.name != "posix" or any(os.environ.get(k) for k in _RICH_ENV) or \
            os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    cells = [title, *headers, *(c for r in rows for c in r)]
    if not all(isinstance(c, str) and _plain(c) for c in cells):
        return None
    w0 = max(len(c) for c in (headers[0], *(r[0] for r in rows)))
    w1 = max(len(c) for c in (headers[1], *(r[1] for r in rows)))
    width = w0 + w1 + 7   # three borders, a space either side of each cell
    if width > _console_width() or len(title) > width or not title:
        return None
    left = (width - len(title)) // 2
    out = [" " * left + title + " " * (width - left - len(title)),
           f"┏{'━' * (w0 + 2)}┳{'━' * (w1 + 2)}┓",
           f"┃ {headers[0].ljust(w0)} ┃ {headers[1].rjust(w1)} ┃",
           f"┡{'━' * (w0 + 2)}╇{'━' * (w1 + 2)}┩"]
    out += [f"│ {a.ljust(w0)} │ {b.rjust(w1)} │" for a, b in rows]
    out.append(f"└{'─' * (w0 + 2)}┴{'─' * (w1 + 2)}┘")
    return "\n".join(out) + "\n"

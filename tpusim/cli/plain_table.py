"""The run summary's two-column table as rich prints it to a pipe, without importing rich.

Importing rich costs ~75 ms, a fifth of a whole ``tpusim run --no-html``. When the output is not
a terminal (no colour, no markup to render) and the table fits the console width unchanged, this
writes the characters rich would, wrapping a too-wide value column as rich does
(``tests/test_plain_table.py`` compares the two); anything else (a terminal, colour forced by
the environment, markup, emoji codes, wide or control characters, a word rich would fold, a
metric column rich would narrow) goes to rich.
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


def _wrap(text: str, width: int) -> list[str] | None:
    """rich's greedy word wrap (``rich.text.Text.wrap``, ``divide_line``): a word goes on the
    line while it fits without its trailing spaces; None where a word must be folded."""
    lines, line, pos = [], "", 0
    for word in re.findall(r"\s*\S+\s*", text):
        length = len(word.rstrip())
        if length > width:
            return None
        if width - pos >= length:
            line, pos = line + word, pos + len(word)
        else:
            lines.append(line)
            line, pos = word, len(word)
    lines.append(line)
    return [ln.rstrip() for ln in lines]


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
    excess = w0 + w1 + 7 - _console_width()
    if excess > 0:   # rich narrows the widest column to fit and wraps its cells
        if w1 - w0 < excess:
            return None
        w1 -= excess
    width = w0 + w1 + 7   # three borders, a space either side of each cell
    if len(title) > width or not title:
        return None
    body = []
    for a, b in rows:
        lines = _wrap(b, w1) if len(b) > w1 else [b]
        if lines is None or not lines:
            return None
        body += [f"│ {(a if i == 0 else '').ljust(w0)} │ {ln.rjust(w1)} │"
                 for i, ln in enumerate(lines)]
    left = (width - len(title)) // 2
    out = [" " * left + title + " " * (width - left - len(title)),
           f"┏{'━' * (w0 + 2)}┳{'━' * (w1 + 2)}┓",
           f"┃ {headers[0].ljust(w0)} ┃ {headers[1].rjust(w1)} ┃",
           f"┡{'━' * (w0 + 2)}╇{'━' * (w1 + 2)}┩", *body,
           f"└{'─' * (w0 + 2)}┴{'─' * (w1 + 2)}┘"]
    return "\n".join(out) + "\n"

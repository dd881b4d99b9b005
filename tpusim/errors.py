"""Errors a user can fix: one line naming the file, the field or line, the value and what is allowed.

Library code raises :class:`InputError`; the CLI prints ``str(error)`` on stderr and exits with 2.
Nothing else in tpusim prints or exits.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input. ``str()`` is a single line: ``FILE: WHERE: got VALUE; ALLOWED``."""

    def __init__(self, source: str | None, where: str | None, value: object = None,
                 allowed: str | None = None, *, message: str | None = None):
        if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar: quote it plainly
            value = value.item()
        self.source = str(source) if source is not None else None
        self.where = where
        self.value = value
        self.allowed = allowed
        parts = [p for p in (self.source, where) if p]
        if message is None:
            message = f"got {_shown(value)}" if value is not None else "missing"
            if allowed:
                message += f"; {allowed}"
        self.detail = message
        super().__init__(": ".join(parts + [message]).replace("\n", " "))


def _shown(value: object, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: one line stays readable."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} characters)"

"""Config paths and their errors: a dotted field path set into a raw config, and pydantic's
first error as one line naming the file, the dotted field, the value and the rule.

Generic over the root model (``ChipConfig`` in :mod:`tpusim.config`), so this module knows no
config section.
"""
from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ValidationError

from ._input import suggest
from .errors import InputError


def _dotted(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


@functools.lru_cache(maxsize=None)   # a sweep applies overrides once per point
def section_type(ann: Any) -> type[BaseModel] | None:
    """The model class of a section field, ``Section | None`` (optional sections) included."""
    union = getattr(ann, "__origin__", None) is None and hasattr(ann, "__args__")  # X | None
    for t in (ann, *(ann.__args__ if union else ())):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _allowed_fields(model: type[BaseModel], loc: tuple) -> str:
    """Names allowed at the parent of ``loc``, for 'extra field' errors."""
    cls: Any = model
    for part in loc[:-1]:
        field = getattr(cls, "model_fields", {}).get(str(part))
        if field is None:
            return ""
        cls = section_type(field.annotation)
        if cls is None:
            return ""
    return "allowed fields: " + ", ".join(getattr(cls, "model_fields", {}))


def error_line(err: ValidationError, source: str, root: type[BaseModel]) -> InputError:
    """The first pydantic error as one line: file, dotted field, value, rule."""
    errors = err.errors()
    # A misspelt key shows up both as "unknown" and as the real key "missing": name the typo.
    e = next((x for x in errors if x.get("type") == "extra_forbidden"), errors[0])
    loc = tuple(e.get("loc", ()))
    where = _dotted(loc) or None
    msg = e.get("msg", "invalid")
    if e.get("type") == "missing":
        return InputError(source, where, message="required field is missing")
    if e.get("type") == "extra_forbidden":
        allowed = _allowed_fields(root, loc)
        names = allowed.removeprefix("allowed fields: ").split(", ") if allowed else []
        hint = suggest(loc[-1], names) if loc else ""
        return InputError(source, where, message=f"unknown field{hint}; {allowed}")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        if where and msg.startswith(where):   # the validator named the field itself
            where = None
        return InputError(source, where, message=msg)
    value = e.get("input")
    if e.get("type") == "model_type":   # a section given as a scalar: "got 5; ... ArrayConfig"
        return InputError(source, where, value if not isinstance(value, BaseModel) else None,
                          "expected a section of fields (a mapping)")
    if e.get("type") == "finite_number":
        return InputError(source, where, value, "expected a finite number")
    rule = msg[0].lower() + msg[1:] if msg else "invalid"
    return InputError(source, where, value, rule)


def set_dotted(raw: dict, path: str, value: Any, source: str, root: type[BaseModel]) -> None:
    """Set ``value`` at the dotted ``path`` of ``raw``, each part checked against ``root``'s fields."""
    parts = path.split(".")
    node = raw
    cls: Any = root
    for i, part in enumerate(parts):
        fields = getattr(cls, "model_fields", None)
        if fields is not None and part not in fields:
            raise InputError(source, path, message=f"unknown field {part!r}"
                             f"{suggest(part, fields)}; allowed fields: " + ", ".join(fields))
        if i == len(parts) - 1:
            node[part] = value
            return
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if nxt is None else nxt
            if not isinstance(nxt, dict):
                raise InputError(source, path, message=f"{part!r} is not a section")
            node[part] = nxt
        node = nxt
        if fields is not None:
            cls = section_type(fields[part].annotation)

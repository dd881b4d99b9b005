"""Reading what users hand us: text files, YAML without silent overrides, sizes we can model.

Every reader of a user file goes through here so that the same bad input gets the same one-line
:class:`~tpusim.errors.InputError` everywhere:

* :func:`read_text` decodes UTF-8 and accepts the byte-order mark Excel writes; other bytes are
  an error naming the line they are on, never a ``UnicodeDecodeError``.
* :func:`load_yaml` refuses a key given twice in one mapping (PyYAML keeps the last silently).
* :func:`csv_rows` and :func:`check_unique_header` parse CSV lines, naming a malformed line and
  refusing a column given twice (the last one would silently win).
* :func:`suggest` names the closest allowed spelling of a misspelt name ("did you mean tpu_v4?").
* :class:`InputModel` is the pydantic base of config sections: ``rows: true`` is not 1, and
  ``.inf`` is not a bandwidth.
* :data:`MAX_DIM` is the largest size (dimension, batch, count) the model accepts: 2**53, the
  largest integer a float64 holds exactly, since cycles, bytes and energy are computed in float64.
"""
from __future__ import annotations

import csv
import difflib
import re
import typing
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from .errors import InputError

MAX_DIM = 2 ** 53
MAX_DIM_TEXT = f"at most 2^53 = {MAX_DIM} (the largest size the model computes exactly)"


def read_text(path: str | Path, what: str = "file") -> str:
    """The file's text (UTF-8, an optional BOM dropped, newlines as written)."""
    path = Path(path)
    src = str(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(src, None, message=f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputError(src, None, message=f"cannot read {what} ({exc.strerror})") from None
    return decode(data, src, what)


def decode(data: bytes, src: str, what: str = "file") -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(src, f"line {line}", message=f"byte 0x{data[exc.start]:02x} is not "
                         f"UTF-8 text; save the {what} as UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise InputError(src, f"line {line}", message=f"NUL byte: not a text {what}")
    return text


def suggest(name: object, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``choices`` to ``name``, else ``""``; a name
    that begins up to three choices' underscored parts (``fp8`` of ``fp8_e4m3``, ``fp8_e5m2``)
    names them."""
    names = [str(c) for c in choices]
    hits = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    if hits:
        return f" (did you mean {hits[0]}?)"
    stems = [c for c in names if str(name) and c.lower().startswith(str(name).lower() + "_")]
    return f" (did you mean {' or '.join(stems)}?)" if 0 < len(stems) <= 3 else ""


class _UniqueKeys:
    """A SafeLoader mixin that refuses a key given twice in one mapping (merge keys aside)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:   # an unhashable key: SafeLoader reports it
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice (first on line "
                        f"{first.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """PyYAML's pure-Python SafeLoader, refusing repeated keys."""


class _FastUniqueKeyLoader(_UniqueKeys, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same on libyaml's parser (shipped in PyYAML's wheels): ~10x faster on a preset."""


def _parse_yaml(text: str) -> Any:
    if hasattr(yaml, "CSafeLoader"):
        try:
            return yaml.load(text, Loader=_FastUniqueKeyLoader)  # noqa: S506 - a SafeLoader
        except Exception:   # noqa: BLE001 - the pure-Python parser below words every error
            pass            # as it always has (libyaml's messages differ)
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors and duplicate keys are one line naming the line."""
    try:
        return _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(source, where, message=f"not valid YAML ({problem})") from None
    except RecursionError:
        raise InputError(source, None, message="not valid YAML (nested too deeply)") from None
    except ValueError as exc:   # an integer of more than 4300 digits (Python's int limit)
        long = re.search(r"[0-9_]{4300,}", text)
        where = f"line {text.count(chr(10), 0, long.start()) + 1}" if long else None
        raise InputError(source, where, message="not valid YAML (an integer of more than 4300 "
                         "digits)" if long else f"not valid YAML ({exc})") from None


def json_no_duplicates(text: str, src: str, where: str | None = None) -> Any:
    """``json.loads`` of user input, where a key given twice in one object is a one-line
    :class:`InputError` (the standard parser keeps the last silently; so do YAML's, here
    refused too). A JSON syntax error propagates as ``json.JSONDecodeError``."""
    import json

    def pairs(items):
        seen = set()
        for k, _ in items:
            if k in seen:
                raise InputError(src, f"{where}: {k}" if where else k, message="given twice; "
                                 "give each key once")
            seen.add(k)
        return dict(items)
    return json.loads(text, object_pairs_hook=pairs)


def check_size(value: int, source: str | None, where: str | None) -> int:
    """``value`` if it is at most :data:`MAX_DIM`, else an InputError naming it."""
    if value > MAX_DIM:
        raise InputError(source, where, int(value), MAX_DIM_TEXT)
    return value


def csv_rows(lines: list[str], numbers: list[int], src: str) -> list[list[str]]:
    """Parse CSV lines (one record per line); a malformed line is an InputError naming it.

    A quote that does not close on its line is an error naming that line: the lenient reader
    would take the rest of the line as one cell (``"b,matmul,1`` -> the name ``b,matmul,1``),
    and a quoted cell running over several lines would be cut at the first line's end.
    """
    out = []
    for line, lineno in zip(lines, numbers):
        try:
            out.extend(_record(line))
        except csv.Error as exc:   # e.g. a cell over the csv module's field size limit
            raise InputError(src, f"line {lineno}", message=f"not a CSV line ({exc})") from None
        except _OpenQuote:
            raise InputError(src, f"line {lineno}", message="unterminated quote: a quoted "
                             "cell opens on this line and does not close on it (a cell "
                             "cannot run over several lines)") from None
    return out


class _OpenQuote(Exception):
    """A line that ends inside a quoted cell."""


def _record(line: str) -> list[list[str]]:
    """One line's record, parsed once by the strict reader on the common path; a line the strict
    reader refuses only for its quoting style (``a,"b"c``) is read as the lenient reader reads
    it, and one that ends inside a quote (its "unexpected end of data") is :class:`_OpenQuote`."""
    try:
        return list(csv.reader([line], strict=True))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise _OpenQuote from None
    return list(csv.reader([line]))


def check_unique_header(header: list[str], src: str, lineno: int) -> None:
    """A column named twice would let the last cell silently win: refuse it."""
    seen = set()
    for col in header:
        if col in seen and col:
            raise InputError(src, f"line {lineno}, column {col!r}",
                             message="column appears twice in the header")
        seen.add(col)


def _wants_number(annotation: Any) -> bool:
    """True for ``int``/``float`` fields (also optional ones and ``dict[str, float]`` values)."""
    if annotation in (int, float):
        return True
    return any(_wants_number(a) for a in typing.get_args(annotation))


# (class, field name) -> whether the field wants a number: the answer never changes for a
# class, and working it out per value was most of validating a chip (a sweep validates one per
# point).
_NUMERIC: dict[tuple[type, str], bool] = {}


def _numeric_field(cls: type, name: str) -> bool:
    try:
        return _NUMERIC[cls, name]
    except KeyError:
        field = cls.model_fields.get(name)   # type: ignore[attr-defined]
        out = _NUMERIC[cls, name] = field is not None and _wants_number(field.annotation)
        return out


class InputModel(BaseModel):
    """Base of every model read from a user's file: frozen, no unknown fields, finite numbers,
    and no booleans where numbers belong."""

    # Config numbers are finite: an infinite bandwidth or clock is a typo, never a chip.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """``rows: true`` is not 1: a boolean where a number belongs is an error."""
        if not _numeric_field(cls, info.field_name or ""):
            return v
        if isinstance(v, bool) or (isinstance(v, dict)
                                   and any(isinstance(x, bool) for x in v.values())):
            shown = str(v).lower() if isinstance(v, bool) else repr(v)
            raise ValueError(f"got {shown}; expected a number, not a boolean")
        return v

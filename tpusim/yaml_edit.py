"""Editing a hand-written YAML config in place: one field changes, every other line and comment
stays, so a calibrated config reads like the preset it came from.

Block-style mappings are walked by indentation; a one-line flow mapping (``int8: {rate: 1}``) is
rewritten as a whole. A missing key is appended at the end of its parent block.
"""
from __future__ import annotations

import re
from typing import Any


def _yaml_scalar(v: Any) -> str:
    import yaml
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...").strip()


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the last line of the block that starts after ``start`` (children indented
    more than ``indent``)."""
    j = start + 1
    last = start
    while j < len(lines):
        s = lines[j]
        if s.strip() and not s.lstrip().startswith("#"):
            if len(s) - len(s.lstrip()) <= indent:
                break
            last = j
        j += 1
    return last + 1


def set_yaml_value(lines: list[str], path: str, value: Any, comment: str) -> list[str]:
    """Set ``path`` in block-style YAML ``lines`` (keeping every other line and comment)."""
    parts = path.split(".")
    lo, hi, indent = 0, len(lines), -1
    for depth, key in enumerate(parts):
        pat = re.compile(rf"^(\s*){re.escape(key)}\s*:(.*)$")
        found = None
        child_indent = None
        for j in range(lo, hi):
            s = lines[j]
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            ind = len(s) - len(s.lstrip())
            if ind <= indent:
                continue
            if child_indent is None:
                child_indent = ind
            if ind != child_indent:
                continue
            if pat.match(s):
                found = j
                break
        if child_indent is None:
            child_indent = indent + 2 if indent >= 0 else 0
        last = depth == len(parts) - 1
        if found is None:
            pad = " " * child_indent
            new = ([f"{pad}{key}: {_yaml_scalar(value)}  # {comment}"] if last else
                   [f"{pad}{key}:"])
            at = hi
            lines = lines[:at] + new + lines[at:]
            found = at
            if last:
                return lines
            lo, hi, indent = found + 1, found + 1, child_indent
            continue
        if last:
            pad = " " * child_indent
            lines = list(lines)
            lines[found] = f"{pad}{key}: {_yaml_scalar(value)}  # {comment}"
            return lines
        text, _, old_comment = pat.match(lines[found]).group(2).partition("#")
        if text.strip().startswith("{"):  # a one-line flow mapping: edit it in place
            import yaml
            flow = yaml.safe_load(text) or {}
            node = flow
            for sub in parts[depth + 1:-1]:
                node = node.setdefault(sub, {})
            node[parts[-1]] = value
            flow_text = yaml.safe_dump(flow, default_flow_style=True, sort_keys=False).strip()
            was = f" (was {text.strip()}: {old_comment.strip()})" if old_comment.strip() \
                else f" (was {text.strip()})"
            lines = list(lines)
            lines[found] = f"{' ' * child_indent}{key}: {flow_text}  # {comment}{was}"
            return lines
        end = _block_end(lines, found, child_indent)
        lo, hi, indent = found + 1, end, child_indent
    return lines


def get_path(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in a pydantic model or nested dicts."""
    node: Any = obj
    for part in path.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node

"""Which measured kernels a calibration was fitted on, so that ``tpusim validate`` scores only the
kernels a fit never saw, in whatever file they come (a copy of the fit's file, a subset of it, or
both halves of a data set joined): a file's SHA-256 alone tells none of these apart.

A calibrated config ends with one line per fit (``matmul`` or ``vector``) holding the fitted
kernels' fingerprints: the first 8 hex digits of the SHA-256 of each kernel's key (the layer
as read, its name aside, its shape and dtype: :class:`tpusim.importers.measurements.Measurement`,
so ``128`` and ``128.0`` are one kernel), sorted and joined. A kernel of another file whose key
is among them counts as fitted (in-sample), even if it was measured again: the fit has seen that
shape's latency (assumption: stricter than matching the latency too, and 2^-32 per pair makes a
false match negligible).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

TAG = "# tpusim-fitted-kernels"
WIDTH = 8


def _print(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:WIDTH]


def fingerprint_line(kind: str, ms) -> str:
    """The line a calibrated config carries for the kernels of ``ms`` a ``kind`` fit used."""
    prints = sorted({_print(r.key) for r in ms.rows})
    return f"{TAG} {kind} ({len(prints)}; see tpusim/fit_kernels.py): {''.join(prints)}"


def without(lines: list[str], kind: str) -> list[str]:
    """``lines`` less an earlier fit's fingerprint line of ``kind`` (a config calibrated again)."""
    return [ln for ln in lines if not ln.startswith(f"{TAG} {kind} ")]


def read_fingerprints(path: str | Path, kind: str) -> set[str] | None:
    """The fingerprints of a ``kind`` fit in the config at ``path``; None if it has none. A line
    whose count or digits do not add up (cut or edited) is an InputError: read short, it would
    score fitted kernels as held out."""
    import re

    from .errors import InputError
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.startswith(f"{TAG} {kind} "):
            m = re.fullmatch(rf"{re.escape(TAG)} {kind} \((\d+);[^)]*\): ([0-9a-f]*)",
                             line.strip())
            if not m or len(m.group(2)) != int(m.group(1)) * WIDTH:
                raise InputError(str(path), f"line {lineno}", message=f"damaged {kind} "
                                 "fingerprints (count and digits disagree); rerun tpusim "
                                 "calibrate to write them again")
            text = m.group(2)
            return {text[i:i + WIDTH] for i in range(0, len(text), WIDTH)}
    return None


def fitted_rows(rec: dict | None, ms, config: str | Path, kind: str) -> list[bool]:
    """Per kernel of ``ms``: was it among those the ``kind`` fit whose record ``rec`` the config
    at ``config`` carries used? By the config's fingerprints; a config without them: every
    kernel if ``ms`` is the fit's file (same sha256), else none. No record: none."""
    if rec is None:
        return [False] * len(ms)
    prints = read_fingerprints(config, kind)
    if prints is None:
        return [rec.get("sha256") == ms.sha256] * len(ms)
    return [_print(r.key) in prints for r in ms.rows]


__all__ = ["TAG", "fingerprint_line", "without", "read_fingerprints", "fitted_rows"]

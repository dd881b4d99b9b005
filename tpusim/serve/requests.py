"""Serving traffic: the requests a run serves, from a JSONL file or drawn at random.

A request is (arrival time, prompt tokens, output tokens, optional prefix id and length). A file
holds one JSON object a line with ``arrival_s``, ``input_tokens``, ``output_tokens`` (and
optionally ``prefix`` and ``prefix_tokens``: requests that share a ``prefix`` share their first
``prefix_tokens`` prompt tokens, which prefix caching can reuse). Synthetic traffic draws lengths
from ``in=LEN_DIST,out=LEN_DIST`` (``219`` fixed, ``uniform:A:B``, ``normal:MEAN:SD`` clipped at
1, ``lognormal:MEAN:SIGMA`` with MEAN the distribution's mean) and arrivals from a Poisson
process of rate R (exponential gaps), or all at time 0 for ``rate = inf`` (the offline case).
Every draw comes from one ``numpy`` generator seeded by ``seed``: a seed fixes the traffic.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._input import json_no_duplicates, read_text, suggest
from ..errors import InputError

FIELDS = ("arrival_s", "input_tokens", "output_tokens")
OPTIONAL = ("prefix", "prefix_tokens")


@dataclass(frozen=True)
class Request:
    rid: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix: str | None = None
    prefix_tokens: int = 0


def load_requests(path: Path | str) -> list[Request]:
    """Requests from a JSONL file, checked: every field present and none unknown, lengths >= 1,
    arrivals >= 0 and non-decreasing (one line each way, :class:`InputError` naming the line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), None, message="is a directory; --requests takes a JSONL file"
                         if path.is_dir() else "no such file")
    out: list[Request] = []
    last = 0.0
    for no, line in enumerate(read_text(path, "requests file").splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {no}"
        try:
            d = json_no_duplicates(line, str(path), where)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), where, line[:40], f"a JSON object ({exc.msg})") from None
        if not isinstance(d, dict):
            raise InputError(str(path), where, line[:40], "a JSON object with " + ", ".join(FIELDS))
        for k in d:
            if k not in FIELDS + OPTIONAL:
                raise InputError(str(path), f"{where}: {k}",
                                 message=f"unknown field{suggest(k, FIELDS + OPTIONAL)}; allowed: "
                                 + ", ".join(FIELDS + OPTIONAL))
        for f in FIELDS:
            if f not in d:
                raise InputError(str(path), where, None,
                                 f"missing field {f!r}; each line needs " + ", ".join(FIELDS))
        t = d["arrival_s"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
            raise InputError(str(path), f"{where}: arrival_s", t, "a finite number >= 0")
        if t < last:
            raise InputError(str(path), f"{where}: arrival_s", t,
                             f"arrival times must not decrease (previous {last})")
        last = float(t)
        for f in ("input_tokens", "output_tokens"):
            v = d[f]
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(str(path), f"{where}: {f}", v, "an integer >= 1")
        pt = d.get("prefix_tokens", 0)
        if not isinstance(pt, int) or isinstance(pt, bool) or pt < 0 or pt > d["input_tokens"]:
            raise InputError(str(path), f"{where}: prefix_tokens", pt,
                             f"an integer in 0..input_tokens={d['input_tokens']}")
        prefix = d.get("prefix")
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise InputError(str(path), f"{where}: prefix", prefix, "a non-empty string naming "
                             "the shared prefix (requests with the same one share its KV blocks)")
        if pt and prefix is None:       # a shared length with nothing to share it under
            raise InputError(str(path), f"{where}: prefix_tokens", pt, "goes with a 'prefix' "
                             "naming what is shared; give both or neither")
        out.append(Request(len(out), float(t), d["input_tokens"], d["output_tokens"],
                           None if prefix is None else str(prefix), pt if prefix else 0))
    if not out:
        raise InputError(str(path), None, message="no requests in the file")
    return out


def parse_dist(text: str, where: str):
    """A length distribution: returns draw(rng, n) -> int array >= 1."""
    parts = text.split(":")
    allowed = "LEN, uniform:A:B, normal:MEAN:SD or lognormal:MEAN:SIGMA"
    try:
        nums = [float(p) for p in parts[1:]] if len(parts) > 1 else [float(parts[0])]
    except ValueError:
        raise InputError("--synthetic", where, text, allowed) from None
    kind = parts[0] if len(parts) > 1 else "fixed"
    if kind == "fixed" and len(nums) == 1 and nums[0] >= 1 and nums[0].is_integer():
        n0 = int(nums[0])
        return lambda rng, n: np.full(n, n0, dtype=np.int64)
    if kind == "uniform" and len(nums) == 2:
        for name, raw, x in zip("AB", parts[1:], nums):
            if not x.is_integer():     # token counts: 1.5 was truncated to 1, inf overflowed
                raise InputError("--synthetic", where, text, f"uniform:A:B bounds are token "
                                 f"counts, whole numbers (got {name}={raw})")
        if 1 <= nums[0] > nums[1]:
            raise InputError("--synthetic", where, text, f"uniform:A:B needs A <= B (got A="
                             f"{parts[1]}, B={parts[2]})")
        if 1 <= nums[0]:
            a, b = int(nums[0]), int(nums[1])
            return lambda rng, n: rng.integers(a, b + 1, n)
    if kind == "normal" and len(nums) == 2 and nums[0] >= 1 and nums[1] >= 0:
        m, s = nums
        return lambda rng, n: np.maximum(1, np.rint(rng.normal(m, s, n))).astype(np.int64)
    if kind == "lognormal" and len(nums) == 2 and nums[0] >= 1 and nums[1] >= 0:
        m, s = nums
        mu = math.log(m) - s * s / 2       # so that the mean is m
        return lambda rng, n: np.maximum(1, np.rint(rng.lognormal(mu, s, n))).astype(np.int64)
    raise InputError("--synthetic", where, text, allowed + " (lengths >= 1)")


def parse_synthetic(spec: str):
    """``in=LEN_DIST,out=LEN_DIST`` -> (input draw, output draw)."""
    got: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, val = part.partition("=")
        if not sep or key.strip() not in ("in", "out"):
            raise InputError("--synthetic", None, spec, "in=LEN_DIST,out=LEN_DIST")
        if key.strip() in got:
            raise InputError("--synthetic", key.strip(), part.strip(), "given twice")
        got[key.strip()] = val.strip()
    if set(got) != {"in", "out"}:
        raise InputError("--synthetic", None, spec, "both in= and out= (in=219,out=292)")
    return parse_dist(got["in"], "in"), parse_dist(got["out"], "out")


def check_rate(rate: float, where: str = "--rate") -> float:
    if not (isinstance(rate, (int, float)) and (rate > 0 or math.isinf(rate))) or rate != rate \
            or rate == -math.inf:
        raise InputError(where, None, rate, "a request rate > 0 (requests/s) or inf")
    return float(rate)


def synthetic_requests(spec: str, n: int, rate: float, seed: int = 0) -> list[Request]:
    """``n`` requests with lengths from ``spec``, Poisson arrivals at ``rate`` (inf: all at 0)."""
    if not isinstance(n, int) or n < 1:
        raise InputError("--num-requests", None, n, "an integer >= 1")
    rate = check_rate(rate)
    draw_in, draw_out = parse_synthetic(spec)
    rng = np.random.default_rng(seed)
    lin, lout = draw_in(rng, n), draw_out(rng, n)
    if math.isinf(rate):
        t = np.zeros(n)
    else:
        t = np.cumsum(rng.exponential(1.0 / rate, n))
    return [Request(i, float(t[i]), int(lin[i]), int(lout[i])) for i in range(n)]


def with_arrivals(reqs: list[Request], rate: float, seed: int = 0) -> list[Request]:
    """The same lengths re-timed as a Poisson process of ``rate`` (a rate sweep over one set)."""
    rate = check_rate(rate)
    n = len(reqs)
    if math.isinf(rate):
        t = np.zeros(n)
    else:
        t = np.cumsum(np.random.default_rng(seed + 1).exponential(1.0 / rate, n))
    return [Request(r.rid, float(t[i]), r.input_tokens, r.output_tokens, r.prefix,
                    r.prefix_tokens) for i, r in enumerate(reqs)]

"""Weight sparsity arithmetic: N:M patterns, their metadata, bitmap storage and load imbalance.

Pure functions of numbers (no chip, no layer), shared by trace validation, config validation and
the compression lowering in :mod:`tpusim.compression`.

* **Structured N:M** (e.g. 2:4, as NVIDIA's sparse tensor cores run it, Mishra et al. 2021,
  "Accelerating Sparse Deep Neural Networks", arXiv:2104.08378): of every M consecutive weights
  along the reduction dimension at most N are non-zero. A sparse array stores the N kept values
  of each group and, per kept value, its position in the group: ceil(log2 M) bits (2 bits for
  2:4: NVIDIA's PTX ISA, mma.sp "Sparse matrix storage", stores each kept element's index in
  its group of 4 as metadata, 4 bits per pair), and skips the M - N zero MACs of each group.
* **Unstructured** (density d, any positions): stored as a bitmap, one bit per dense weight
  position plus the d x E kept values (assumption: bitmap rather than CSR, because a 16-bit
  CSR column index costs more than the bitmap's 1 bit per position for any density above 1/16).
* **Load imbalance**: an array that skips zeros of an unstructured tile waits for its fullest
  column. With each of the ``cols`` columns holding Binomial(n, d) non-zeros of an n-deep
  tile, the expected maximum is approximated by the Gaussian bound
  n d + sqrt(2 n d (1 - d) ln cols) (the expected maximum of ``cols`` independent normals is at
  most sigma sqrt(2 ln cols)), capped at n.
"""
from __future__ import annotations

import math
import re

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
NM_HELP = "N:M with whole numbers 0 < N < M <= 256 (e.g. 2:4)"


def parse_nm(text: str) -> tuple[int, int]:
    """(N, M) from ``"N:M"``; ValueError (message :data:`NM_HELP`) otherwise."""
    hit = _NM.match(str(text))
    if not hit:
        raise ValueError(f"must be {NM_HELP}")
    n, m = int(hit.group(1)), int(hit.group(2))
    if not 0 < n < m <= 256:
        raise ValueError(f"must be {NM_HELP}")
    return n, m


def metadata_bits_per_kept(m: int) -> int:
    """Index bits stored with each kept value of an N:M group: its position among M."""
    return max(1, math.ceil(math.log2(m)))


def kept_reduction(k: int, n: int, m: int) -> int:
    """Reduction depth left of ``k`` after N:M pruning: N of every M (a partial group keeps
    at most N, i.e. all of it when shorter)."""
    full, rest = divmod(k, m)
    return full * n + min(rest, n)


def bitmap_bits(elements: float, density: float, value_bits: float) -> float:
    """Bits of an unstructured-sparse tensor stored as bitmap + kept values."""
    return elements * (1.0 + density * value_bits)


def expected_max_binomial(n: int, d: float, cols: int) -> float:
    """Approximate E[max over ``cols`` columns of Binomial(n, d)] (module docstring)."""
    if cols <= 1 or d in (0.0, 1.0):
        return n * d
    return min(float(n), n * d + math.sqrt(2.0 * n * d * (1.0 - d) * math.log(cols)))

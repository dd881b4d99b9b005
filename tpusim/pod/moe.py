"""What an MoE layer's expert GEMMs cost on a TPU: the grouped-matmul kernel's tiles.

The trace (``importers/llm.py``) writes each expert FFN matmul as one batched GEMM, ``experts``
groups of equal rows. Dropless MoE training in MaxText (``sparse_matmul`` with ``megablox``, the
path its Mixtral recipes run) calls the Megablox grouped matmul (``gmm``, Pallas, TPU) on the
token-expert rows sorted by expert, and its custom VJP runs ``gmm`` again for the input
gradient and ``tgmm`` for the weight gradient, all three with one tiling. This module rewrites
those logical rows into what the kernels execute, tile for tile, so the single-chip model prices
the kernel's MXU work and HBM traffic:

* tiling ``(tm, tk, tn) = (512, 1024, 1024)``: MaxText's defaults ``tile_batch_seq``,
  ``tile_activation_dim``, ``tile_weight_dim`` (MaxText configs, MoE section), passed to
  ``gmm`` as ``min(tile, dim)``; MaxText pads the sorted rows to a multiple of ``tm`` first
  (``RoutedMoE.sparse_matmul``). The Mixtral recipes set no tiling of their own.
* tile visits: ``gmm`` walks the m tiles group by group; a tile that a group boundary cuts is
  computed whole once for each group in it, with the other group's rows masked at the store
  (``make_group_metadata``: tiles_m <= visits <= tiles_m + groups - 1). :func:`tile_visits`
  counts them for a histogram; :func:`expected_tile_visits` takes their expectation under
  random routing.
* loop order: ``gmm``'s grid is (n tiles, m-tile visits, k tiles) with a tm x tn fp32
  accumulator, so the lhs (tokens x k) is read once per n tile and one expert's k x n weights
  once per visit (as the kernel's ``CostEstimate`` counts them, there per row of lhs); ``tgmm``'s grid is
  (n tiles, k tiles, visits) with a tk x tn accumulator per expert, so the tokens x k
  activations are read once per n tile and the tokens x n gradient once per k tile.

* load imbalance: with fsdp alone each chip runs every expert on its own tokens, so routing
  changes only the partial tiles; with expert parallelism every shard waits for the busiest
  (the return all-to-all), whose expected load :func:`busiest_shard_rows` gives.

Each kernel becomes one matmul row whose groups are its accumulator blocks, each with its own
operands (``weights: dynamic``): the single-chip model then moves exactly the kernel's bytes and
runs its MACs, padded tiles included. Assumption: edge tiles (k or n not a multiple of the tile)
compute whole, as Pallas blocks do. Not modelled, for want of a public basis: the kernel's
per-grid-step overhead and its VMEM pipelining depth.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# MaxText MoE tiling defaults: tile_batch_seq 512, tile_activation_dim 1024, tile_weight_dim
# 1024 (AI-Hypercomputer/maxtext, MaxText configs: "Tunable tiling dimensions for Megablox").
MEGABLOX_TILING = (512, 1024, 1024)
_FORWARD = ("expert_gate", "expert_up", "expert_down")


def tile_visits(group_sizes: list[int], tm: int) -> int:
    """m-tile visits of ``gmm`` for groups of these row counts, sorted one after another and
    padded to a multiple of ``tm``: each non-empty group visits every tile from the one holding
    its first row to the one holding its last (``make_group_metadata``, empty groups skipped)."""
    visits, start = 0, 0
    for size in group_sizes:
        if size > 0:
            end = start + size
            visits += -(-end // tm) - start // tm
        start += size
    return visits


@functools.lru_cache(maxsize=256)
def expected_tile_visits(rows: int, groups: int, tm: int) -> float:
    """Expected :func:`tile_visits` of ``rows`` token-expert pairs over ``groups`` experts.

    Assumption (routing): each pair picks its expert independently and uniformly (the balanced
    routing a load-balancing loss aims at, Switch Transformer, Fedus et al. 2022; top_k's
    distinct experts per token ignored). Group g starts at S_g ~ Binomial(rows, g / groups)
    and adds a visit to the ceil(rows / tm) tiles when S_g is not a multiple of tm and its own
    size N_g > 0, where N_g | S_g = s ~ Binomial(rows - s, 1 / (groups - g)):
    E = ceil(rows / tm) + sum_g sum_s P(S_g = s) [s mod tm != 0] (1 - (1 - 1/(groups-g))^(rows-s)).
    """
    tiles = -(-rows // tm)
    if groups <= 1 or rows == 0:
        return float(tiles)
    extra = 0.0
    for g in range(1, groups):
        s, logpmf = _binomial_logpmf(rows, g / groups)
        unaligned = (s % tm) != 0
        q = 1.0 - 1.0 / (groups - g)        # a pair after S_g missing group g
        nonempty = 1.0 - np.power(q, rows - s) if q > 0 else (s < rows).astype(float)
        extra += float(np.sum(np.exp(logpmf) * unaligned * nonempty))
    return min(tiles + extra, float(tiles + groups - 1))   # the kernel's bound, past rounding


# Standard deviations either side of a binomial's mean that :func:`_binomial_logpmf` keeps: the
# mass beyond 12 is below 1e-30 (a Chernoff bound), under float rounding of the sums it feeds.
_WINDOW_SD = 12.0


def _binomial_logpmf(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """(s, log P(X = s)) for X ~ Binomial(n, p) over the s within :data:`_WINDOW_SD` standard
    deviations of the mean: the first term from log-gammas, the rest by the ratio of successive
    terms (a Mixtral step's 300,000 pairs price 5,000 values, not 300,000)."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(mean - _WINDOW_SD * sd) - 1)
    hi = min(n, math.ceil(mean + _WINDOW_SD * sd) + 1)
    s = np.arange(lo, hi + 1, dtype=float)
    first = (math.lgamma(n + 1) - math.lgamma(lo + 1) - math.lgamma(n - lo + 1)
             + lo * math.log(p) + (n - lo) * math.log1p(-p))
    ratio = np.log(n - s[:-1]) - np.log(s[:-1] + 1) + math.log(p) - math.log1p(-p)
    return s, np.concatenate(([first], first + np.cumsum(ratio)))


def _tiles(x: int, t: int) -> tuple[int, int]:
    """(tile edge, number of tiles) of a dimension ``x`` for a tile of ``t``: min(t, x) as
    MaxText passes it, edge tiles whole."""
    edge = min(t, x)
    return edge, -(-x // edge)


@functools.lru_cache(maxsize=64)
def max_of_normals(n: int) -> float:
    """E[max of ``n`` independent standard normals]: the integral of x n phi(x) Phi(x)^(n-1)
    by the trapezoid rule on [-12, 12] (1/sqrt(pi) for 2, 3 / (2 sqrt(pi)) for 3)."""
    if n <= 1:
        return 0.0
    x = np.linspace(-12.0, 12.0, 48001)
    phi = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    f = x * n * phi * cdf ** (n - 1)
    return float(np.sum((f[1:] + f[:-1]) / 2) * (x[1] - x[0]))


def busiest_shard_rows(pairs_per_chip: int, shards: int) -> float:
    """Expected token-expert pairs on the busiest of ``shards`` expert shards, each of which
    sends ``pairs_per_chip`` pairs. Assumption (routing): every pair picks its shard
    independently and uniformly, so the counts are multinomial(R = shards x pairs, 1/shards),
    which for R >> shards is normal with covariance R/S (I - J/S), the law of
    sqrt(R/S) (Z_j - mean Z): E[max] = R/S + sqrt(R/S) E[max of S standard normals]."""
    if shards <= 1:
        return float(pairs_per_chip)
    return pairs_per_chip + math.sqrt(pairs_per_chip) * max_of_normals(shards)


def megablox_rows(rows: list[dict[str, Any]], rows_per_chip: int, groups: int,
                  shards: int = 1,
                  tiling: tuple[int, int, int] = MEGABLOX_TILING) -> list[dict[str, Any]]:
    """``rows`` with every expert matmul (forward, ``_dgrad``, ``_wgrad``; module docstring)
    rewritten as the Megablox kernel's tiles, one row for one. ``rows_per_chip``: the
    token-expert pairs each chip's tokens send per layer; ``groups``: the experts a chip holds;
    ``shards``: expert-parallel degree. With ``shards > 1`` every shard waits for the busiest
    one (the return all-to-all), so its expert GEMMs and elementwise rows run on
    :func:`busiest_shard_rows` pairs. The visits are :func:`expected_tile_visits` rounded up to
    whole tiles."""
    tm = tiling[0]
    received = math.ceil(busiest_shard_rows(rows_per_chip, shards) - 1e-9)
    visits = math.ceil(expected_tile_visits(received, groups, tm) - 1e-9)
    group_rows = -(-visits * tm // groups)     # rows one expert's tgmm accumulates over
    out = []
    for r in rows:
        base = r["name"].removesuffix("_dgrad").removesuffix("_wgrad")
        if r["op"] != "matmul" and r["name"].startswith("expert_") and \
                not r["name"].startswith("expert_combine") and received != rows_per_chip:
            # the busiest shard's activation and gate multiply (and their backward)
            out.append({**r, "elements": -(-r["elements"] * received // rows_per_chip)})
            continue
        if r["op"] != "matmul" or base not in _FORWARD:
            out.append(r)
            continue
        if r["name"].endswith("_wgrad"):
            # tgmm: out = x^T (k_w x tokens) @ grad (tokens x n_w) per expert; the logical row
            # is m = k_w, k = tokens of one expert, n = n_w.
            tk, nk = _tiles(r["m"], tiling[1])
            tn, nn = _tiles(r["n"], tiling[2])
            new = {"batch": groups * nk * nn, "m": tk, "k": group_rows, "n": tn}
        else:
            # gmm (forward or input gradient): tokens x k @ k x n per expert.
            tk, nk = _tiles(r["k"], tiling[1])
            tn, nn = _tiles(r["n"], tiling[2])
            new = {"batch": visits * nn, "m": tm, "k": nk * tk, "n": tn}
        out.append({**r, **new, "weights": "dynamic"})
    return out


__all__ = ["MEGABLOX_TILING", "tile_visits", "expected_tile_visits", "max_of_normals",
           "busiest_shard_rows", "megablox_rows"]

"""A chip of several cores: how a GEMM is split between them, and one core seen as a chip.

A TensorCore chip (TPU v4, v5p: 2 cores x 4 MXUs) has ``array.cores`` cores of
``array.count / cores`` arrays each; the cores share the chip's HBM channel. The compiler gives
each core a part of the GEMM's output (assumption: the XLA TPU compiler's usual split of one
op between the cores of a chip):

* independent GEMMs (``groups >= cores``: conv groups, a batch of dynamic matmuls) are dealt out
  whole, so nothing is read twice;
* otherwise the output is split along the larger of m and n (m on a tie), n in whole output
  tiles (array columns), m -- the rows streamed through the stationary tiles -- in steps of
  :data:`ROW_STEP` rows (a dimension of one step or less is halved). Each core reads its share
  of the split operand and all of the other one, so the other operand crosses the channel once
  per core. (The tie rule and the 8-row step were chosen over n on a tie and 128-row steps by
  5-fold cross-validation on the TPU v4 calibration kernels: 5.4% and 6.1% CV median against
  6.1% and 7.2%; docs/design.md.)

The cores run at once, each with its fair share of the bandwidth and of the on-chip buffers
(assumption: a core that finishes first does not lend its share to the other), so the busiest
core's part, timed on :func:`core_chip`, is the chip's time. The chip's bytes are the core's
scaled back (:func:`chip_traffic`). With ``cores: 1`` nothing changes: the chip is one flat set
of arrays, as every config without the field has.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .config import ChipConfig
from .formats import Format
from .memory import Traffic, double_buffered
from .workload import Layer

# m is split between the cores in steps of 8 rows: the sublanes of a TPU vreg (8 x 128), the
# granularity of a TensorCore's row tiles (assumption: jax-ml scaling-book, TPUs chapter).
ROW_STEP = 8

_CORE_CHIPS: dict[int, tuple[ChipConfig, ChipConfig]] = {}


def core_chip(chip: ChipConfig) -> ChipConfig:
    """One core of ``chip`` as a chip: ``count / cores`` arrays, a ``1 / cores`` share of the HBM
    bandwidth, of the buffers and of the vector unit (memoised per chip object)."""
    c = chip.array.cores
    if c == 1:
        return chip
    hit = _CORE_CHIPS.get(id(chip))
    if hit is not None and hit[0] is chip:
        return hit[1]
    s, h = chip.memory.sram, chip.memory.hbm
    mem = chip.memory.model_copy(update={
        "sram": s.model_copy(update={"input_kib": s.input_kib / c, "weight_kib": s.weight_kib / c,
                                     "output_kib": s.output_kib / c}),
        "hbm": h.model_copy(update={"bandwidth_gbps": h.bandwidth_gbps / c})})
    one = chip.model_copy(update={
        "array": chip.array.model_copy(update={"count": chip.array.count // c, "cores": 1}),
        "memory": mem,
        "vector": chip.vector.model_copy(update={"ops_per_cycle": chip.vector.ops_per_cycle / c})})
    if len(_CORE_CHIPS) > 256:
        _CORE_CHIPS.clear()
    _CORE_CHIPS[id(chip)] = (chip, one)
    return one


def share(dim: int, tile: int, cores: int) -> int:
    """The busiest core's part of ``dim`` split between ``cores`` in whole tiles (a dimension
    of one tile or less is split evenly)."""
    if dim <= tile:
        return math.ceil(dim / cores)
    return min(dim, math.ceil(math.ceil(dim / tile) / cores) * tile)


def split_axis(layer: Layer, cores: int) -> str:
    """The dimension a GEMM is split along: ``groups``, ``m`` or ``n`` (module docstring)."""
    if layer.groups >= cores:
        return "groups"
    return "m" if layer.m * layer.shared_weights >= layer.n else "n"


@dataclasses.dataclass(frozen=True)
class Split:
    """The busiest core's part of a GEMM and how its bytes scale back to the chip's."""

    layer: Layer
    weight: float      # chip bytes / core bytes, per stream
    input: float
    output: float
    work: float        # the chip's MACs over the core's (SRAM traffic scales with it)


def split_gemm(layer: Layer, chip: ChipConfig) -> Split:
    """The busiest core's part of GEMM ``layer`` on ``chip`` (itself when ``cores`` is 1)."""
    c = chip.array.cores
    if c == 1:
        return Split(layer, 1.0, 1.0, 1.0, 1.0)
    axis = split_axis(layer, c)
    if axis == "groups":
        g = math.ceil(layer.groups / c)
        f = layer.groups / g
        part = dataclasses.replace(layer, groups=g, in_elements=layer.in_elements / f,
                                   out_elements=layer.out_elements / f,
                                   weight_elements=layer.weight_elements / f)
        return Split(part, f, f, f, f)
    if axis == "m":
        m = share(layer.m, ROW_STEP, c)
        f = layer.m / m
        part = dataclasses.replace(layer, m=m, in_elements=layer.in_elements / f,
                                   out_elements=layer.out_elements / f)
        return Split(part, float(c), f, f, f)
    n = share(layer.n, chip.array.cols, c)
    f = layer.n / n
    part = dataclasses.replace(layer, n=n, out_elements=layer.out_elements / f,
                               weight_elements=layer.weight_elements / f)
    return Split(part, f, float(c), f, f)


def gemm_double_buffered(chip: ChipConfig, layer: Layer, fmt: Format) -> bool:
    """Whether GEMM ``layer`` runs double-buffered on ``chip``: decided on the busiest core's
    part against one core's buffers, as the simulator times it."""
    return double_buffered(core_chip(chip), split_gemm(layer, chip).layer, fmt)


def chip_traffic(t: Traffic, sp: Split) -> Traffic:
    """The chip's bytes from the busiest core's: each HBM stream by its factor, SRAM traffic by
    the work (assumption: the other cores' SRAM traffic is in proportion to their MACs)."""
    if sp.work == 1.0 and sp.weight == 1.0 and sp.input == 1.0:
        return t
    w = sp.work
    return dataclasses.replace(
        t, hbm_weight_bytes=t.hbm_weight_bytes * sp.weight,
        hbm_input_bytes=t.hbm_input_bytes * sp.input,
        hbm_output_bytes=t.hbm_output_bytes * sp.output,
        sram_read_bytes=t.sram_read_bytes * w, sram_write_bytes=t.sram_write_bytes * w,
        sram_input_bytes=t.sram_input_bytes * w, sram_weight_bytes=t.sram_weight_bytes * w,
        sram_output_bytes=t.sram_output_bytes * w)


# ---------------------------------------------------------------- the same, as columns

def core_scalars(chip: ChipConfig) -> dict[str, float]:
    """What the columnar core needs of one core (:func:`core_chip`), as scalars."""
    one = core_chip(chip)
    s = one.memory.sram
    return {"cores": chip.array.cores, "c_arrays": one.array.count,
            "c_cap_in": s.input_kib * 1024, "c_cap_w": s.weight_kib * 1024,
            "c_cap_out": s.output_kib * 1024, "c_bpc": one.hbm_bytes_per_cycle}


def split_columns(p: dict) -> tuple[dict, dict]:
    """:func:`split_gemm` and :func:`core_chip` on columns of GEMM rows (same arithmetic): the
    busiest core's rows, and the factors that scale its bytes back to the chip's."""
    c = p["cores"]
    m, n, g, shared = p["m"], p["n"], p["groups"], p["shared"]
    by_g = g >= c
    by_m = ~by_g & (m * shared >= n)
    by_n = ~by_g & ~by_m

    def part(dim, tile):
        return np.where(dim <= tile, np.ceil(dim / c),
                        np.minimum(dim, np.ceil(np.ceil(dim / tile) / c) * tile))
    g_c = np.where(by_g, np.ceil(g / c), g)
    m_c = np.where(by_m, part(m, float(ROW_STEP)), m)
    n_c = np.where(by_n, part(n, p["cols"]), n)
    f = np.where(by_g, g / g_c, np.where(by_m, m / m_c, n / n_c))
    one = np.ones_like(f)
    q = dict(p)
    q.update(groups=g_c, m=m_c, n=n_c,
             in_el=np.where(by_n, p["in_el"], p["in_el"] / f),
             out_el=p["out_el"] / f,
             w_el=np.where(by_m, p["w_el"], p["w_el"] / f),
             arrays=p["c_arrays"], cap_in=p["c_cap_in"], cap_w=p["c_cap_w"],
             cap_out=p["c_cap_out"], bpc=p["c_bpc"])
    multi = c > 1
    fac = {"weight": np.where(multi, np.where(by_m, c, f), one),
           "input": np.where(multi, np.where(by_n, c, f), one),
           "output": np.where(multi, f, one), "work": np.where(multi, f, one)}
    for k in ("groups", "m", "n", "in_el", "out_el", "w_el"):
        q[k] = np.where(multi, q[k], p[k])
    return q, fac


_SCALE = {"hbm_weight": "weight", "hbm_input": "input", "hbm_output": "output",
          "sram_read": "work", "sram_write": "work", "sram_input": "work",
          "sram_weight": "work", "sram_output": "work"}


def scale_column(key: str, col: np.ndarray, fac: dict) -> np.ndarray:
    """A traffic column of the busiest core as the chip's (:func:`chip_traffic`)."""
    k = _SCALE.get(key)
    return col if k is None else col * fac[k]

"""The vector unit as the hardware is: (sublanes x lanes) per core per cycle, HBM streaming, launch.

Two models, chosen by the config:

* **ops** (``vector.lanes`` unset, every older config): ``ceil(element ops / ops_per_cycle)``
  cycles, operands over the HBM channel at full rate, ``timing.overhead_cycles_per_op`` per op;
  a function named in ``vector.element_cycles`` costs ``ceil(elements x cycles)`` instead (a
  per-element rate of its own, e.g. an int8 add that requantises every element).
* **lanes** (``vector.lanes`` set, e.g. TPU v4's (8, 128) per core, 2 cores): the tensor is cut
  into vector registers of ``sublanes x lanes`` elements, split evenly over ``cores``; each
  register costs ``cycles_per_element[function]`` cycles (default: the layer's ops per element,
  one VPU cycle each), and each row along the lane axis (``n`` on the trace row: a norm's
  reduced last axis; rows = elements / n) costs ``row_cycles[function]`` more on its core (a
  norm's cross-lane reduce and broadcast, an elementwise op's per-row layout cost; default 0). Operands stream from HBM at ``vector.hbm_efficiency`` of the channel,
  overlapped with compute (the slower of the two shows). A function launches ``launches`` kernels
  (layer norm: a statistics and a normalisation program, five fusions in XLA's TPU lowering) at
  ``vector.launch_cycles`` each (default: ``timing.overhead_cycles_per_op``).

:func:`vector_cost` is the one place the model lives; the reference path
(:func:`tpusim.timing.overlap.vector_time`) and the columnar path (:mod:`tpusim.columnar.points`)
both call it, so they agree by construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ChipConfig
from ..workload import Layer

# Operand tensors a function reads per output element (assumption: binary elementwise ops read two
# same-shaped inputs; everything else one).
BINARY = frozenset({"add", "sub", "mul", "div", "residual", "elementwise_add"})
# Kernels a function runs (assumption except layer norm: XLA lowers a layer norm on TPU to five
# fusions, a reduction, the normalisation and small steps between; softmax and RMS norm are the
# same reduce-then-normalise structure with one fewer step for RMS norm).
LAUNCHES = {"layernorm": 5, "layer_norm": 5, "softmax": 5, "rmsnorm": 4}

# Trace names of one function (a fitted entry under either name applies to both).
SAME = {"layernorm": "layer_norm", "layer_norm": "layernorm", "prelu": "parametric_relu",
        "parametric_relu": "prelu", "swish": "silu", "silu": "swish"}


@dataclass(frozen=True)
class VectorCost:
    """What one unfused vector op costs besides its HBM bytes: ``compute_cycles`` on the vector
    unit, ``launch_cycles`` fixed, ``input_reads`` operand tensors read per input element and the
    channel fraction ``hbm_efficiency`` its streams reach."""

    compute_cycles: float
    launch_cycles: float
    input_reads: float = 1.0
    hbm_efficiency: float = 1.0

    def hbm_cycles(self, total_bytes: float, input_bytes: float, bytes_per_cycle: float) -> float:
        """HBM cycles of ``total_bytes`` (``input_bytes`` of them the input read once)."""
        return (total_bytes + input_bytes * (self.input_reads - 1.0)) / (
            bytes_per_cycle * self.hbm_efficiency)


def lanes_model(chip: ChipConfig) -> bool:
    return chip.vector.lanes is not None


def _of(table: dict[str, float], op: str, default: float) -> float:
    return table.get(op, table.get(SAME.get(op, op), default))


def vector_cost(chip: ChipConfig, op: str, elements: float, ops: float,
                ops_per_element: float, last_axis: int = 0, fused: bool = False) -> VectorCost:
    """The :class:`VectorCost` of one instance of vector op ``op`` on ``elements`` elements
    (``ops`` element ops, ``ops_per_element`` each; rows of ``last_axis`` elements, or one row
    when 0). A ``fused`` op never takes ``element_cycles``: it is folded into its producer's
    output path (assumption: an int8 compiler folds a scale, shift or add that follows a GEMM
    into the GEMM's requantisation)."""
    v = chip.vector
    if v.lanes is None:
        cpe = 0.0 if fused else _of(v.element_cycles, op, 0.0)
        compute = math.ceil(elements * cpe - 1e-9) if cpe else math.ceil(ops / v.ops_per_cycle)
        return VectorCost(compute, chip.timing.overhead_cycles_per_op)
    regs = math.ceil(elements / (v.lanes * v.sublanes))
    per_core = math.ceil(regs / v.cores)
    cpe = _of(v.cycles_per_element, op, ops_per_element)
    # per-row work (a norm's cross-lane reduce, a layout's rows) on each core's share of rows
    rows = math.ceil(math.ceil(elements / last_axis) / v.cores) if last_axis else 1
    launch = v.launch_cycles if v.launch_cycles is not None else chip.timing.overhead_cycles_per_op
    compute = math.ceil(per_core * cpe + rows * _of(v.row_cycles, op, 0.0) - 1e-9)
    return VectorCost(compute, float(LAUNCHES.get(op, 1) * launch),
                      2.0 if op in BINARY else 1.0, v.hbm_efficiency)


def layer_vector_cost(chip: ChipConfig, layer: Layer) -> VectorCost:
    """The :class:`VectorCost` of one instance of vector ``layer``."""
    return vector_cost(chip, layer.op, layer.elements, layer.vector_ops, layer.ops_per_element,
                       layer.n, layer.fused)

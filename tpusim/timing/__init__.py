"""Timing: how many cycles an array needs for a layer, and how memory traffic adds stalls.

* :mod:`.systolic` maps a GEMM onto the arrays (one model for all three dataflows) and counts
  compute cycles, either as SCALE-Sim v3 does (``timing.model: scalesim``) or as a pipelined TPU
  does (``timing.model: pipelined``).
* :mod:`.overlap` overlaps those cycles with the HBM traffic of :mod:`tpusim.memory` in closed
  form; :mod:`.overlap_event` does the same with a simpy event engine.
* :mod:`.vector` times a vector op (lanes x sublanes, HBM streaming, launch).
* :mod:`.path` decides once which of the three paths a run takes (scalesim, analytic, event).
"""
from .overlap import LayerTime, vector_time
from .path import gemm_time
from .systolic import ArrayTiming, array_timing, fold_shape
from .vector import VectorCost, vector_cost

__all__ = ["ArrayTiming", "LayerTime", "array_timing", "fold_shape", "gemm_time", "vector_cost",
           "vector_time", "VectorCost"]

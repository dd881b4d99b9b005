"""The vector unit's config section (``vector``), read by :mod:`tpusim.timing.vector`."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ._input import MAX_DIM, InputModel


class VectorConfig(InputModel):
    """The vector unit. Without ``lanes``: ``ops_per_cycle`` element ops per cycle and nothing else
    (older configs). With ``lanes``: the lanes model of :mod:`tpusim.timing.vector`."""

    ops_per_cycle: float = Field(gt=0, description="element operations per cycle, whole chip")
    lanes: int | None = Field(None, gt=0, le=MAX_DIM, description="lanes of a vector register")
    sublanes: int = Field(8, gt=0, le=MAX_DIM, description="sublanes of a vector register")
    cores: int = Field(1, gt=0, le=MAX_DIM, description="cores sharing a vector op (lanes model)")
    launch_cycles: float | None = Field(
        None, ge=0, description="fixed cost per vector kernel (lanes model; default: "
        "timing.overhead_cycles_per_op)")
    hbm_efficiency: float = Field(1.0, gt=0, le=1, description="fraction of the HBM channel a "
                                  "vector op's streams reach (lanes model)")
    cycles_per_element: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="VPU cycles per register by function (lanes model; "
        "default: the layer's ops per element)")
    element_cycles: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="cycles per element of the named unfused functions, "
        "whole chip (ops model): replaces element ops / ops_per_cycle for them (0: not set)")
    row_cycles: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="cycles per reduced row (n elements of the last axis) "
        "on one core, by function (lanes model; default 0)")

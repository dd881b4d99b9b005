"""The timing path of a run, decided in one place: ``scalesim``, ``analytic`` or ``event``.

A chip's ``timing.model`` says what the arrays do (SCALE-Sim's fold-by-fold count, or a
pipelined TPU) and ``timing.engine`` (or a run's ``engine`` argument) how the pipelined
model's overlap with HBM is computed: in closed form (``analytic``, :mod:`.overlap`) or by the
simpy event engine (``event``, :mod:`.overlap_event`). The scalesim model has no overlap to
simulate, so it is one path whatever the engine. Every caller asks :func:`timing_path` once
and passes the answer on.
"""
from __future__ import annotations

from typing import Literal

from ..config import ChipConfig
from ..errors import InputError
from ..memory import Traffic
from .overlap import LayerTime, finish_gemm_time, pipelined_total, scalesim_total
from .systolic import ArrayTiming

Path = Literal["scalesim", "analytic", "event"]
ENGINES = ("analytic", "event")


def timing_path(chip: ChipConfig, engine: str | None = None) -> Path:
    """The path for ``chip`` run with ``engine`` (None: the chip's ``timing.engine``)."""
    engine = engine or chip.timing.engine
    if engine not in ENGINES:
        raise InputError("engine", None, engine, "allowed: " + "|".join(ENGINES))
    if chip.timing.model == "scalesim":
        return "scalesim"
    return engine  # type: ignore[return-value]


def gemm_layer_time(path: Path, chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
                    preloaded: float = 0.0, split_by: Traffic | None = None) -> LayerTime:
    """The :class:`LayerTime` of one GEMM instance on ``path`` (stalls split by the bytes of
    ``split_by``, default ``traffic``: a multi-core chip's, when ``chip`` is one core)."""
    if path == "scalesim":
        total = scalesim_total(chip, at, traffic)
    elif path == "event":
        from .overlap_event import simulate_gemm
        total = simulate_gemm(chip, at, traffic, preloaded)
    else:
        total = pipelined_total(chip, at, traffic, preloaded)
    return finish_gemm_time(chip, at, traffic, total, split_by)


def gemm_time(chip: ChipConfig, at: ArrayTiming, traffic: Traffic,
              preloaded: float = 0.0) -> LayerTime:
    """Closed-form :class:`LayerTime` of the chip's timing model. ``preloaded``: bytes of each
    array's first tile already fetched during the previous layer (TPUv1's weight FIFO fills
    whenever the channel is free)."""
    return gemm_layer_time(timing_path(chip, "analytic"), chip, at, traffic, preloaded)

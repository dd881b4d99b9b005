"""The Edge TPU's one fitted parameter, and its leave-one-out check against Coral's latencies.

The ``edge_tpu`` preset is the chip as its runtime describes it (4 x 4 tiles at 500 MHz, 4 TOPS,
on-chip activation and parameter memories; sources in ``configs/edge_tpu.yaml``). One number is
not public: how often a tile's array accepts a new input row (``timing.issue_efficiency``). It
is fitted here to Coral's five published latencies, and scored leave-one-out: each model is
predicted with the value fitted on the other four, so no model is scored on data that fitted it.
Three more models of Coral's table (``EDGE_TPU_HELD_OUT_MS``) are never fitted on: they are
scored with the shipped preset as it is.

The loss is the sum of squared log errors (``log(predicted / measured)``), because the five
latencies span 2.4 to 296 ms and an error is a ratio. The search is a 0.05 grid over (0, 1],
then a 0.01 grid around the best point; values are rounded to 0.01.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

from .importers import WORKLOAD_DIR

PARAM = "timing.issue_efficiency"

# Coral Edge TPU benchmarks, USB accelerator, desktop host, int8 (coral.ai/docs/edgetpu/benchmarks,
# the Edge TPU column of the table): model -> (latency ms, input resolution, trace names).
EDGE_TPU_MS = {
    "mobilenet_v1": (2.4, 224, ("mobilenet_v1",)),
    "mobilenet_v2": (2.6, 224, ("mobilenet_v2",)),
    "inception_v1": (3.4, 224, ("inception_v1", "googlenet")),
    "resnet50": (49.0, 299, ("resnet50_299",)),
    "vgg16": (296.0, 224, ("vgg16",)),
}
# Three more rows of the same table, never fitted on: scored with the shipped preset's value.
EDGE_TPU_HELD_OUT_MS = {
    "densenet121": (20.0, 224, ("densenet121",)),
    "squeezenet": (2.1, 224, ("squeezenet",)),
    "vgg19": (308.0, 224, ("vgg19",)),
}
_ALL = {**EDGE_TPU_MS, **EDGE_TPU_HELD_OUT_MS}
_COARSE = tuple(round(0.05 * i, 2) for i in range(1, 21))   # 0.05 .. 1.00


def trace_path(model: str, root: Path | None = None) -> Path | None:
    """The trace of one Coral model in ``root`` (default: the shipped workloads), or None when
    none of its names is there."""
    root = root or WORKLOAD_DIR
    return next((root / f"{n}.csv" for n in _ALL[model][2]
                 if (root / f"{n}.csv").is_file()), None)


@functools.lru_cache(maxsize=2048)
def predicted_ms(model: str, value: float, config: str = "edge_tpu") -> float:
    """Latency (ms) of ``model``'s trace on ``config`` with ``PARAM`` set to ``value``."""
    from .config import load_config
    from .simulator import simulate
    chip = load_config(config, **{PARAM: value})
    return simulate(chip, _workload(model)).summary["latency_s"] * 1e3


@functools.lru_cache(maxsize=16)
def _workload(model: str):
    from .importers import load_workload
    path = trace_path(model)
    if path is None:
        raise FileNotFoundError(f"no shipped trace for {model}")
    return load_workload(str(path))


def _loss(models: tuple[str, ...], value: float, measured: dict[str, float],
          config: str) -> float:
    return sum(math.log(predicted_ms(m, value, config) / measured[m]) ** 2 for m in models)


def fit(models: tuple[str, ...], measured: dict[str, float] | None = None,
        config: str = "edge_tpu") -> float:
    """The ``PARAM`` value (0.01 steps in (0, 1]) that minimises the squared log error of
    ``models`` against ``measured`` (default: Coral's latencies)."""
    meas = measured or {m: v[0] for m, v in EDGE_TPU_MS.items()}
    best = min(_COARSE, key=lambda v: _loss(models, v, meas, config))
    fine = [round(best + 0.01 * d, 2) for d in range(-4, 5)]
    return min((v for v in fine if 0 < v <= 1), key=lambda v: _loss(models, v, meas, config))


def leave_one_out(models: tuple[str, ...], measured: dict[str, float] | None = None,
                  config: str = "edge_tpu") -> dict[str, tuple[float, float]]:
    """model -> (value fitted on the other models, its predicted latency in ms)."""
    out = {}
    for held in models:
        v = fit(tuple(m for m in models if m != held), measured, config)
        out[held] = (v, predicted_ms(held, v, config))
    return out

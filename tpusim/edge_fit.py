"""The Edge TPU's two fitted parameters, and their leave-one-out check against Coral's latencies.

The ``edge_tpu`` preset is the chip as its runtime describes it (4 x 4 tiles at 500 MHz, 4 TOPS,
on-chip activation and parameter memories; sources in ``configs/edge_tpu.yaml``), every array
fed one input row per cycle. Two costs are not public and are fitted here to Coral's five
published latencies:

* ``timing.invoke_cycles``: a fixed cost per inference outside the layers (the runtime's
  invoke). With nothing fitted, the four small models (MobileNet v1/v2, Inception v1,
  SqueezeNet) all miss by about the same 1.5-1.9 ms whatever their MACs (280 M to 1.4 G), the
  signature of a fixed cost, not of a slow datapath.
* ``vector.element_cycles`` of the int8 elementwise ``add`` and ``mul`` (one value for both):
  cycles per element, whole chip. TFLite's int8 ADD rescales both inputs and its output per
  element and MUL rescales its output, unlike max pooling or ReLU; these ops are unfused rows
  (ResNet's and MobileNet v2's residual adds, DenseNet's pre-activation scale and shift).

Each model is predicted with the values fitted on the other four, so no model is scored on data
that fitted it. Three more models of Coral's table (``EDGE_TPU_HELD_OUT_MS``) are never fitted
on: they are scored with the shipped preset as it is.

The loss is the sum of squared log errors (``log(predicted / measured)``), because the five
latencies span 2.4 to 296 ms and an error is a ratio. The invoke cost adds to the latency
exactly, so the search times each model once per element cost (a 0.02-cycle grid over
[0, 1.5], refined to 0.005 around the best) and takes the best invoke cost on a 5,000-cycle
(10 us at 500 MHz) grid over [0, 2.5 M] for each.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

from .importers import WORKLOAD_DIR

PARAMS = ("timing.invoke_cycles", "vector.element_cycles")
ELEMENTWISE = ("add", "mul")   # the functions the fitted element cost applies to

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
_COARSE = tuple(round(0.02 * i, 3) for i in range(76))   # element cycles 0 .. 1.5
_INVOKE_STEP, _INVOKE_MAX = 5_000, 2_500_000             # cycles

def trace_path(model: str, root: Path | None = None) -> Path | None:
    """The trace of one Coral model in ``root`` (default: the shipped workloads), or None when
    none of its names is there."""
    root = root or WORKLOAD_DIR
    return next((root / f"{n}.csv" for n in _ALL[model][2]
                 if (root / f"{n}.csv").is_file()), None)


def overrides(value: tuple[float, float]) -> dict:
    """The config overrides of a fitted ``(invoke cycles, element cycles)`` pair."""
    invoke, element = value
    return {"timing.issue_efficiency": 1.0, PARAMS[0]: invoke,
            PARAMS[1]: {f: element for f in ELEMENTWISE}}


def preset_value(config: str = "edge_tpu") -> tuple[float, float]:
    """The ``(invoke cycles, element cycles)`` a config carries."""
    from .config import load_config
    c = load_config(config)
    return c.timing.invoke_cycles, c.vector.element_cycles.get(ELEMENTWISE[0], 0.0)


def describe(value: tuple[float, float]) -> str:
    """``value`` as the fidelity rows name it."""
    return (f"{PARAMS[0]} = {value[0]:g}, {PARAMS[1]} of {'/'.join(ELEMENTWISE)} = "
            f"{value[1]:g}")


@functools.lru_cache(maxsize=4096)
def predicted_ms(model: str, value: tuple[float, float], config: str = "edge_tpu") -> float:
    """Latency (ms) of ``model``'s trace on ``config`` with ``PARAMS`` set to ``value``."""
    from .config import load_config
    from .simulator import simulate
    chip = load_config(config, **overrides(value))
    return simulate(chip, _workload(model)).summary["latency_s"] * 1e3


@functools.lru_cache(maxsize=16)
def _workload(model: str):
    from .importers import load_workload
    path = trace_path(model)
    if path is None:
        raise FileNotFoundError(f"no shipped trace for {model}")
    return load_workload(str(path))


def _clock_ghz(config: str) -> float:
    from .config import load_config
    return load_config(config).clock_ghz


def _best_invoke(models: tuple[str, ...], element: float, measured: dict[str, float],
                 config: str) -> tuple[float, float]:
    """(loss, invoke cycles) of the best invoke cost at element cost ``element``: the latency
    without it, plus invoke cycles at the clock."""
    base = {m: predicted_ms(m, (0, element), config) for m in models}
    ms_per_cycle = 1e-6 / _clock_ghz(config)
    return min((sum(math.log((base[m] + inv * ms_per_cycle) / measured[m]) ** 2
                    for m in models), inv)
               for inv in range(0, _INVOKE_MAX + 1, _INVOKE_STEP))


def fit(models: tuple[str, ...], measured: dict[str, float] | None = None,
        config: str = "edge_tpu") -> tuple[int, float]:
    """The ``(invoke cycles, element cycles)`` that minimise the squared log error of
    ``models`` against ``measured`` (default: Coral's latencies)."""
    meas = measured or {m: v[0] for m, v in EDGE_TPU_MS.items()}
    score = {}
    for e in _COARSE:
        score[e] = _best_invoke(models, e, meas, config)
    best = min(score, key=score.get)
    for e in (round(best + 0.005 * d, 3) for d in range(-3, 4)):
        if e >= 0 and e not in score:
            score[e] = _best_invoke(models, e, meas, config)
    e = min(score, key=score.get)
    return score[e][1], e


def leave_one_out(models: tuple[str, ...], measured: dict[str, float] | None = None,
                  config: str = "edge_tpu") -> dict[str, tuple[tuple[int, float], float]]:
    """model -> (values fitted on the other models, its predicted latency in ms)."""
    out = {}
    for held in models:
        v = fit(tuple(m for m in models if m != held), measured, config)
        out[held] = (v, predicted_ms(held, v, config))
    return out

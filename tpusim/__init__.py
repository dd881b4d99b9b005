"""tpusim: a cycle-approximate simulator of systolic-array (TPU-style) accelerators.

>>> import tpusim
>>> chip = tpusim.load_config("tpu_v4")
>>> result = tpusim.simulate(chip, tpusim.load_workload("resnet50"))
>>> result.summary["latency_s"]  # doctest: +SKIP

Attributes load lazily so that ``tpusim --help`` does not pay for pandas and pydantic.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ChipConfig": "tpusim.config", "load_config": "tpusim.config",
    "InputError": "tpusim.errors",
    "Result": "tpusim.simulator", "simulate": "tpusim.simulator",
    "Layer": "tpusim.workload", "Workload": "tpusim.workload", "load_workload": "tpusim.importers",
    "sweep": "tpusim.sweeps",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tpusim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)

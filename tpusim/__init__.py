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
    # chips, workloads, one run
    "ChipConfig": "tpusim.config", "load_config": "tpusim.config",
    "InputError": "tpusim.errors",
    "Layer": "tpusim.workload", "Workload": "tpusim.workload", "make_layer": "tpusim.workload",
    "load_workload": "tpusim.importers", "import_onnx": "tpusim.importers.onnx",
    "llm_workload": "tpusim.importers.llm", "write_trace": "tpusim.importers.trace_csv",
    "Result": "tpusim.simulator", "simulate": "tpusim.simulator",
    "write_result": "tpusim.results", "report_html": "tpusim.report_pages",
    # analyses
    "chip_roofs": "tpusim.roofline", "layer_table": "tpusim.roofline",
    "workload_table": "tpusim.roofline", "roofline_chart": "tpusim.roofline_plots",
    "format_table": "tpusim.format_report", "sweep": "tpusim.sweeps",
    "read_measurements": "tpusim.importers.measurements",
    "run_checks": "tpusim.fidelity",
    # the energy and area tables (a module: tpusim.tables.use(...))
    "tables": "tpusim",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tpusim' has no attribute {name!r}")
    if name == "tables":
        value = importlib.import_module("tpusim.tables")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)

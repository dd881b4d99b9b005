"""tpusim: a cycle-approximate simulator of systolic-array (TPU-style) accelerators.

>>> import tpusim
>>> chip = tpusim.load_config("tpu_v4")
>>> result = tpusim.simulate(chip, tpusim.load_workload("resnet50"))
>>> result.summary["latency_s"]  # doctest: +SKIP
"""
__version__ = "0.1.0"

from .config import ChipConfig, load_config  # noqa: E402
from .errors import InputError  # noqa: E402
from .simulate import Result, simulate  # noqa: E402
from .workload import Layer, Workload, load_workload  # noqa: E402


def sweep(*args, **kwargs):
    """Run a design-space sweep; see :func:`tpusim.sweep.run_sweep`."""
    from .sweep import run_sweep
    return run_sweep(*args, **kwargs)


__all__ = ["ChipConfig", "InputError", "Layer", "Result", "Workload", "load_config",
           "load_workload", "simulate", "sweep", "__version__"]

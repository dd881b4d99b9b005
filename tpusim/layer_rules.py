"""What the two simulation paths (the per-layer reference in :mod:`tpusim.simulator` and the
columnar core in :mod:`tpusim.columnar`) share: the layer table's columns, the format each layer
runs in, and how many instances of a repeated row are timed.
"""
from __future__ import annotations

from .config import ChipConfig
from .errors import InputError
from .workload import Layer

LAYER_COLUMNS = (
    "name", "op", "count", "m", "k", "n", "macs", "format", "cycles", "latency_s",
    "compute_cycles", "stall_cycles", "overhead_cycles", "utilization",
    "hbm_read_bytes", "hbm_write_bytes", "sram_read_bytes", "sram_write_bytes",
    "energy_pj", "mac_energy_pj", "vector_energy_pj", "sram_energy_pj", "hbm_energy_pj",
    "static_energy_pj", "intensity", "achieved_tops", "roof_tops", "bound",
    # detail beyond SPEC's list
    "kind", "fused", "ops", "groups", "vector_ops", "stall_weight_cycles", "stall_input_cycles", "stall_output_cycles",
    "stall_sram_cycles", "fill_drain_cycles", "weight_shift_cycles", "hbm_cycles",
    "weight_passes", "input_passes", "input_on_chip", "output_on_chip",
    "hbm_weight_read_bytes", "hbm_input_read_bytes", "sram_input_bytes", "sram_weight_bytes",
    "sram_output_bytes", "note",
)


def resolve_format(layer: Layer, chip: ChipConfig, forced: str | None, source: str) -> str:
    """The datapath format ``layer`` runs in: ``forced`` if given, else its trace dtype or the
    chip's default; a format the chip does not run is an :class:`InputError`."""
    if forced:
        return forced
    fmt = layer.format or chip.default_format
    if fmt not in chip.formats:
        where = f"line {layer.line}" if layer.line else f"layer {layer.name!r}"
        raise InputError(source, where, fmt, f"chip {chip.name!r} runs "
                         f"{'|'.join(chip.formats)}; pass format= (--format) to run it in one "
                         "of them")
    return fmt


# A repeated row (count > 1) is timed instance by instance until the carried state repeats, at
# most this many instances; the rest equal the last one timed.
MAX_TIMED_INSTANCES = 64

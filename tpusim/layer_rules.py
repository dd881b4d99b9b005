"""What the two simulation paths (the per-layer reference in :mod:`tpusim.simulator` and the
columnar core in :mod:`tpusim.columnar`) share: the layer table's columns, the format each layer
runs in, how the instances of a repeated row are timed, and the summary dict.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import __version__
from .area import area_summary
from .config import ChipConfig
from .errors import InputError
from .formats import XNOR_KINDS, get_format
from .workload import Layer

# The per-instance metrics a row with differing instances averages (first, middle, last), and
# that both cores (reference and columnar) sum over a row's instances.
SUMMED = ("cycles", "latency_s", "compute_cycles", "stall_cycles", "overhead_cycles",
          "hbm_read_bytes", "hbm_write_bytes", "sram_read_bytes", "sram_write_bytes",
          "energy_pj", "mac_energy_pj", "vector_energy_pj", "sram_energy_pj", "hbm_energy_pj",
          "static_energy_pj", "stall_weight_cycles", "stall_input_cycles",
          "stall_output_cycles", "stall_sram_cycles", "fill_drain_cycles",
          "weight_shift_cycles", "hbm_cycles", "weight_passes", "input_passes",
          "hbm_weight_read_bytes", "hbm_input_read_bytes", "sram_input_bytes",
          "sram_weight_bytes", "sram_output_bytes")

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
    # totals over the row's count instances, and what the intensity cannot say (layer_totals)
    "total_cycles", "total_energy_j", "total_hbm_bytes", "time_share", "on_chip",
)
TOTAL_COLUMNS = LAYER_COLUMNS[-5:]


def layer_totals(df: Any) -> Any:
    """The layer table with :data:`TOTAL_COLUMNS` added, in :data:`LAYER_COLUMNS` order.

    ``total_*`` = the per-instance number x ``count``; ``time_share`` = the row's share of the
    run's cycles; ``on_chip``: the row moves no HBM byte, so its ``intensity`` (ops per HBM byte)
    has no value and is NaN, not infinity (a chart puts such rows in a gutter, not at an x)."""
    out = df.assign(**totals_arrays(df["count"].to_numpy(), df["cycles"].to_numpy(),
                                    df["energy_pj"].to_numpy(), df["hbm_read_bytes"].to_numpy(),
                                    df["hbm_write_bytes"].to_numpy(),
                                    df["intensity"].to_numpy(dtype=float)))
    return out[list(LAYER_COLUMNS)]


def totals_arrays(count, cycles, energy_pj, hbm_read, hbm_write, intensity) -> dict[str, Any]:
    """:data:`TOTAL_COLUMNS` and the NaN-for-on-chip ``intensity`` from numpy columns (what
    :func:`layer_totals` adds; ``tpusim.table_csv`` uses it without pandas)."""
    import numpy as np
    cnt = np.asarray(count, dtype=float)
    cyc = np.asarray(cycles, dtype=float) * cnt
    hbm = (np.asarray(hbm_read) + np.asarray(hbm_write)).astype(float)
    total = float(cyc.sum())
    return {"total_cycles": cyc,
            "total_energy_j": np.asarray(energy_pj, dtype=float) * cnt * 1e-12,
            "total_hbm_bytes": hbm * cnt,
            "time_share": cyc / total if total > 0 else 0.0 * cyc,
            "on_chip": hbm <= 0,
            "intensity": np.where(hbm > 0, np.asarray(intensity, dtype=float), np.nan)}


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


def layer_formats(layers, chip: ChipConfig, forced: str | None, source: str) -> list[str]:
    """The datapath format of every layer. A forced binary or ternary format keeps the first and
    last GEMM layers in higher precision (:func:`_kept_format`), as binarized
    networks do (Courbariaux et al. 2016; FINN, Umuroglu et al. 2017): the image and the logits
    stay in higher precision."""
    keep: set[int] = set()
    if forced in XNOR_KINDS:
        gemms = [i for i, l in enumerate(layers) if l.kind == "gemm"]
        keep = {gemms[0], gemms[-1]} if gemms else set()
    return [_kept_format(l, chip, source) if i in keep else resolve_format(l, chip, forced, source)
            for i, l in enumerate(layers)]


def _kept_format(layer, chip: ChipConfig, source: str) -> str:
    """A kept first/last layer's format: its own (trace dtype or the chip's default) when the
    chip runs it and it is not itself binary or ternary, else the chip's widest other native
    format (int8 on a FINN-style engine), so the image and the logits keep higher precision."""
    try:
        name = resolve_format(layer, chip, None, source)
    except InputError:
        name = None
    if name is not None and name not in XNOR_KINDS:
        return name
    wider = [f for f, how in chip.formats.items() if f not in XNOR_KINDS and how.emulate is None]
    if not wider:
        return resolve_format(layer, chip, None, source)   # nothing wider: the chip's own rule
    return max(wider, key=lambda f: get_format(f).bits)


# A repeated row (count > 1) is timed instance by instance until the carried state repeats, at
# most this many instances; the rest equal the last one timed.
MAX_TIMED_INSTANCES = 64


def invoke_cost(chip: ChipConfig, invokes: int = 1) -> tuple[float, float]:
    """(cycles, static pJ) of ``invokes`` runs of the fixed per-inference cost
    ``timing.invoke_cycles``: the chip waits at its static power meanwhile."""
    cycles = chip.timing.invoke_cycles * invokes
    return cycles, chip.energy.static_w * cycles / (chip.clock_ghz * 1e9) * 1e12


def run_summary(chip: ChipConfig, workload: str, main_fmt: str, formats: list, forced: Any,
                batch: int, engine: str, total_cycles: float, latency: float, macs: float,
                busy: float, energy_pj: float, breakdown: dict, hbm: float, bound_share: dict,
                stalls: dict, compute_cycles: float, overhead_cycles: float) -> dict[str, Any]:
    """A run's summary dict from its totals (both paths aggregate them their own way).

    ``busy``: PE-cycles the MACs need at each format's peak rate, so ``utilization`` is the
    fraction of the peak the run reaches (= achieved_tops / peak_tops when one format runs).
    ``timing.invoke_cycles`` per batch element is added here, outside every layer row: the
    chip idles at its static power meanwhile, and the cycles count as overhead."""
    invoke, idle_pj = invoke_cost(chip, batch)
    if invoke:
        total_cycles, overhead_cycles = total_cycles + invoke, overhead_cycles + invoke
        latency = total_cycles / (chip.clock_ghz * 1e9)
        energy_pj += idle_pj
        breakdown = {**breakdown, "static": breakdown.get("static", 0.0) + idle_pj * 1e-12}
    out = {
        "config": chip.name, "workload": workload,
        "format": main_fmt if len(formats) <= 1 or forced else "mixed",
        "formats": formats, "batch": batch, "timing_model": chip.timing.model, "engine": engine,
        "total_cycles": total_cycles, "latency_s": latency,
        "throughput_per_s": batch / latency if latency > 0 else 0.0,
        "achieved_tops": 2 * macs / latency / 1e12 if latency > 0 else 0.0,
        "peak_tops": chip.peak_tops(main_fmt),
        "utilization": busy / total_cycles if total_cycles else 0.0,
        "energy_j": energy_pj * 1e-12, "energy_per_inference_j": energy_pj * 1e-12 / batch,
        "energy_breakdown_j": breakdown, "hbm_bytes": hbm, "macs": macs,
        "bound_share": bound_share, "stall_cycles": stalls,
        "compute_cycles": compute_cycles, "overhead_cycles": overhead_cycles,
        "tpusim_version": __version__,
    }
    out.update(area_summary(chip, out["format"], out["peak_tops"]))
    return out


@dataclass
class Carry:
    """What one instance leaves the next: its cycles (a fused op hides in them) and the HBM
    bytes the channel could have moved while idle (the next weight tile prefetches there)."""

    cycles: float = 0.0
    idle_bytes: float = 0.0


def idle_bytes_left(compute: float, overhead: float, most_hbm_cycles: float, tail: float,
                    bytes_per_cycle: float) -> float:
    """HBM bytes the channel surely moves idle during an instance, for the next one to prefetch.

    An instance lasts at least its compute and launch cycles whatever the memory does, and its
    transfers take at most ``most_hbm_cycles`` (its costliest loop order's HBM bytes over the
    bandwidth), so the channel idles at least the difference; on the pipelined model it also
    idles through the launch and the last block's compute (``tail``,
    :func:`tpusim.timing.overlap.last_block_cycles`; 0 where there is no overlap model).
    Monotone by construction: compute, launch and tail cycles depend on neither bandwidth nor
    SRAM and a loop order's bytes only fall with more SRAM, so the idle bytes never fall with
    more bandwidth or SRAM, and more preload never slows the next instance: its cycles stay
    monotone in both (the actual idle time, cycles minus transfers, shrinks when an instance gets
    faster, which made the next one slower).
    """
    return max(0.0, max(compute - most_hbm_cycles, tail) + overhead) * bytes_per_cycle


def run_instances(n: int, run: Any, carry: Carry) -> list[tuple[int, dict[str, Any]]]:
    """``n`` instances run back to back, as (how many, metrics) per distinct instance; exact.

    An instance depends on its row and on the carry the one before left, so once a carry
    repeats the instances repeat with it: time them until that happens, then give each instance
    of the cycle its share of what is left (a fixed point is a cycle of one). The carry is left
    as the last of the ``n`` instances leaves it. Assumption, only where no carry repeats within
    ``MAX_TIMED_INSTANCES``: the remaining instances equal the last one timed.
    """
    out: list[list] = []
    states: list[tuple[float, float]] = []
    seen: dict[tuple[float, float], int] = {}
    left = n
    while left > 0:
        state = (carry.cycles, carry.idle_bytes)
        start = seen.get(state)
        if start is None and len(out) >= MAX_TIMED_INSTANCES:
            out[-1][0] += left
            break
        if start is not None:
            period = len(out) - start
            full, rest = divmod(left, period)
            for j in range(start, len(out)):
                out[j][0] += full + (1 if j - start < rest else 0)
            carry.cycles, carry.idle_bytes = states[start + rest] if rest else state
            break
        seen[state] = len(out)
        states.append(state)
        out.append([1, run()])
        left -= 1
    return [(w, v) for w, v in out]

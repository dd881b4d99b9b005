"""One workload on one chip: the stages in order, each a pure function of the layer records.

    format -> traffic (memory.py) -> array timing (timing/systolic.py)
           -> overlap with HBM (timing/overlap.py or timing/overlap_event.py) -> energy -> roofline

``simulate`` returns a :class:`Result`: ``layers`` (one row per trace row, numbers per instance,
columns as SPEC.md's layers.csv) and ``summary`` (totals over ``count``).

Two implementations of the same model: the columnar core (:mod:`tpusim.columnar`, the default:
every layer at once as arrays, the table built only when ``layers`` is read) and the per-layer
Python path below (``core="reference"``), kept as the readable reference the columnar core is
tested against; both run the event engine too.
"""
from __future__ import annotations

import dataclasses
import numbers
import time
from typing import TYPE_CHECKING, Any, Callable

from .compression import dense, has_sparsity, lower
from .compression_report import with_sparse_report
from .config import ChipConfig, load_config
from .cores import chip_traffic, core_chip, split_gemm
from .energy import layer_energy
from .errors import InputError
from .formats import get_format
from .memory import (check_tile_fits, double_buffered, gemm_traffic_options, plan_residency,
                     plan_weight_cache, vector_traffic, with_double_buffered)
from . import roofline
from .roofline import bound_of
from .timing import array_timing, vector_time
from .timing.vector import layer_vector_cost
from .timing.overlap import first_tile_bytes, last_block_cycles, vector_cycles
from .timing.path import gemm_layer_time, timing_path
from .importers import load_workload
from ._input import check_size
from .layer_rules import LAYER_COLUMNS  # noqa: F401  (re-exported: the layer table's columns)
from .layer_rules import TOTAL_COLUMNS, layer_totals
from .layer_rules import Carry as _Carry  # noqa: F401  (generation.py, tests)
from .layer_rules import run_instances as _run_instances
from .layer_rules import idle_bytes_left as _idle_bytes_left
from .layer_rules import layer_formats
from .layer_rules import resolve_format as _resolve_format  # noqa: F401  (tests, callers)
from .layer_rules import run_summary
from .layer_rules import SUMMED as _SUMMED
from .workload import Layer, Workload, check_layer_size

if TYPE_CHECKING:
    import pandas as pd


class Result:
    """One simulated run: the chip and workload as run (batch applied) and two views of it.

    ``layers``: one row per trace row, numbers per instance (multiply by ``count`` for totals),
    columns :data:`LAYER_COLUMNS` (SPEC's ``layers.csv`` first, then detail). ``summary``: run
    totals as ``summary.json`` holds them (latency, throughput, achieved and peak TOPS,
    utilization, energy and its breakdown, HBM bytes, time share per bound). With the columnar
    core ``layers`` is built on first access.
    """

    def __init__(self, config: ChipConfig, workload: Workload, layers: "pd.DataFrame | None" = None,
                 summary: dict[str, Any] | None = None,
                 table: Callable[[], "pd.DataFrame"] | None = None):
        self.config = config
        self.workload = workload
        self.summary = summary if summary is not None else {}
        self._layers = layers
        self._table = table

    @property
    def layers(self) -> "pd.DataFrame":
        if self._layers is None and self._table is not None:
            self._layers, self._table = self._table(), None
        return self._layers

    @layers.setter
    def layers(self, df: "pd.DataFrame") -> None:
        self._layers, self._table = df, None

    def __repr__(self) -> str:
        return f"Result(config={self.config.name!r}, workload={self.workload.name!r})"

    def timeline(self, detail: str = "layers"):
        """A plotly figure of where the time goes, one track per resource (arrays, vector unit,
        stalls by cause, HBM DMA per stream): each layer's totals (``detail="layers"``) or
        every instance's block schedule (``"blocks"``, what ``run --trace`` writes)."""
        if detail not in ("layers", "blocks"):
            raise InputError("detail", None, detail, "allowed: layers|blocks")
        from .timeline_plot import result_timeline
        return result_timeline(self, detail, walk)

    def roofline(self):
        """A plotly figure of the run's roofline (as in ``report.html``)."""
        from .result_figures import result_roofline
        return result_roofline(self)

    def energy(self):
        """A plotly figure of the run's energy by component and per layer (as in ``report.html``)."""
        from .result_figures import result_energy
        return result_energy(self)

    def _repr_html_(self) -> str:
        """A notebook's view: the headline numbers in human units (no layer table)."""
        import html

        from . import units
        from .wording import offchip, peak_phrase
        s = self.summary
        rows = [("latency", f"{units.seconds(s['latency_s'])} ({s['total_cycles']:,.0f} cycles)"),
                ("throughput", f"{units.number(s['throughput_per_s'])} inferences/s "
                               f"(batch {s['batch']})"),
                ("achieved of peak", peak_phrase(s, self.config)),
                ("energy / inference", units.joules(s["energy_per_inference_j"])),
                (f"{offchip(self.config)} traffic", units.nbytes(s["hbm_bytes"]))]
        if s.get("chip_mm2") is not None:
            rows.append(("chip area", f"≥ {units.number(s['chip_mm2'])} mm²"))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        title = html.escape(f"{s['workload']} on {s['config']} ({s['format']})")
        return f"<table><caption>{title}</caption>{body}</table>"


def _gemm(chip: ChipConfig, layer: Layer, fmt, in_res: bool, out_res: bool, cached: bool,
          carry: _Carry, path: str):
    """Traffic and time of the loop order that finishes first (then: fewer HBM bytes), the
    most HBM cycles any loop order takes and the last block's compute cycles (what
    ``idle_bytes_left`` bounds the idle with; 0 on the scalesim path); on a multi-core chip the
    busiest core's part is timed on one core (:mod:`tpusim.cores`)."""
    one, sp = core_chip(chip), split_gemm(layer, chip)
    one = with_double_buffered(one, double_buffered(one, sp.layer, fmt))   # auto: per layer
    at = array_timing(sp.layer, one, fmt.name)
    best = None
    most = 0.0
    for part in gemm_traffic_options(sp.layer, one, fmt, in_res, out_res, cached):
        traffic = chip_traffic(part, sp)
        preload = min(first_tile_bytes(at, part), carry.idle_bytes)
        lt = gemm_layer_time(path, one, at, part, preload, traffic)
        most = max(most, lt.hbm_cycles)
        key = (lt.cycles, traffic.hbm_total_bytes)
        if best is None or key < best[0]:
            best = (key, traffic, lt)
    tail = 0.0 if path == "scalesim" else last_block_cycles(at)
    return best[1], best[2], most, tail


def layer_time(chip: ChipConfig, layer: Layer, fmt: str, engine: str | None = None):
    """Time of ``layer`` run alone (input from HBM, output to HBM, nothing prefetched): the
    ``LayerTime`` a one-layer workload gets. Calibration predicts kernels with it."""
    f = get_format(fmt)
    if layer.kind == "gemm":
        return _gemm(chip, layer, f, False, False, False, _Carry(), timing_path(chip, engine))[1]
    return vector_time(chip, layer_vector_cost(chip, layer), vector_traffic(layer, f, False, False),
                       False, 0.0)


def _instance(chip: ChipConfig, layer: Layer, fmt, in_res: bool, out_res: bool, carry: _Carry,
              path: str, cached: bool = False) -> dict[str, Any]:
    """Metrics of one instance of ``layer``; updates ``carry`` for the next instance. The
    ``_traffic``, ``_time`` and ``_idle`` entries (what :mod:`tpusim.timeline` draws the
    instance's block schedule from) are not table columns."""
    idle = carry.idle_bytes
    if layer.kind == "gemm":
        traffic, lt, most, tail = _gemm(chip, layer, fmt, in_res, out_res, cached, carry, path)
    else:
        traffic = vector_traffic(layer, fmt, in_res, out_res)
        lt = vector_time(chip, layer_vector_cost(chip, layer), traffic, layer.fused, carry.cycles)
        most, tail = lt.hbm_cycles, 0.0
    if layer.continues:   # inside an earlier row's kernel: its launch was paid there
        lt = dataclasses.replace(lt, overhead_cycles=lt.overhead_cycles * 0)
    cycles = lt.cycles
    latency = cycles / (chip.clock_ghz * 1e9)
    macs = layer.macs
    en = layer_energy(chip, fmt, macs, layer.vector_ops, traffic.sram_input_bytes,
                      traffic.sram_weight_bytes, traffic.sram_output_bytes,
                      traffic.hbm_total_bytes, latency)
    ops = roofline.layer_ops(layer.kind, macs, layer.vector_ops)
    if not layer.fused:
        carry.cycles = cycles
        carry.idle_bytes = _idle_bytes_left(lt.compute_cycles, lt.overhead_cycles, most, tail,
                                            chip.hbm_bytes_per_cycle)
    return {
        "macs": macs, "cycles": cycles, "latency_s": latency,
        "compute_cycles": lt.compute_cycles, "stall_cycles": lt.stall_cycles,
        "overhead_cycles": lt.overhead_cycles,
        "utilization": macs / (cycles * chip.peak_macs_per_cycle(fmt.name)) if cycles > 0
        else 0.0,
        "hbm_read_bytes": traffic.hbm_read_bytes, "hbm_write_bytes": traffic.hbm_write_bytes,
        "sram_read_bytes": traffic.sram_read_bytes, "sram_write_bytes": traffic.sram_write_bytes,
        "energy_pj": en.total_pj, "mac_energy_pj": en.mac_pj, "vector_energy_pj": en.vector_pj,
        "sram_energy_pj": en.sram_pj, "hbm_energy_pj": en.hbm_pj,
        "static_energy_pj": en.static_pj,
        "ops": ops, "achieved_tops": roofline.achieved_tops(ops, latency),
        "bound": bound_of(layer.kind, lt), "vector_ops": layer.vector_ops,
        "stall_weight_cycles": lt.stall_weight_cycles, "stall_input_cycles": lt.stall_input_cycles,
        "stall_output_cycles": lt.stall_output_cycles, "stall_sram_cycles": lt.stall_sram_cycles,
        "fill_drain_cycles": lt.fill_drain_cycles,
        "weight_shift_cycles": lt.weight_shift_cycles, "hbm_cycles": lt.hbm_cycles,
        "weight_passes": traffic.weight_passes if layer.kind == "gemm" else 0,
        "input_passes": traffic.input_passes if layer.kind == "gemm" else 0,
        "hbm_weight_read_bytes": traffic.hbm_weight_bytes,
        "hbm_input_read_bytes": traffic.hbm_input_bytes,
        "sram_input_bytes": traffic.sram_input_bytes,
        "sram_weight_bytes": traffic.sram_weight_bytes,
        "sram_output_bytes": traffic.sram_output_bytes, "note": traffic.note,
        "_traffic": traffic, "_time": lt, "_idle": idle,
    }


def _average(variants: list[tuple[int, dict[str, Any]]], count: int) -> dict[str, Any]:
    """Per-instance numbers of a row whose instances differ (first, middle, last)."""
    if len(variants) == 1:
        return dict(variants[0][1])
    row = dict(variants[-1][1])
    for key in _SUMMED:
        row[key] = sum(n * v[key] for n, v in variants) / count
    macs = row["macs"]
    row["achieved_tops"] = roofline.achieved_tops(row["ops"], row["latency_s"])
    cyc_pe = sum(n * v["macs"] / v["utilization"] for n, v in variants if v["utilization"] > 0)
    row["utilization"] = macs * count / cyc_pe if cyc_pe > 0 else 0.0
    row["note"] = next((v["note"] for _, v in variants if v["note"]), "")
    return row


def scale_batch(workload: Workload, batch: int) -> Workload:
    """The workload for ``batch`` samples: conv batch, matmul rows (static weights) or instances
    (dynamic operands) and vector elements grow ``batch`` times."""
    if batch == 1:
        return workload
    layers = []
    for l in workload.layers:
        if l.kind == "vector":
            l = dataclasses.replace(l, elements=l.elements * batch,
                                    in_elements=l.in_elements * batch,
                                    out_elements=l.out_elements * batch)
        elif l.weights == "dynamic":
            l = dataclasses.replace(l, groups=l.groups * batch,
                                    in_elements=l.in_elements * batch,
                                    out_elements=l.out_elements * batch,
                                    weight_elements=l.weight_elements * batch)
        else:
            l = dataclasses.replace(l, m=l.m * batch, in_elements=l.in_elements * batch,
                                    out_elements=l.out_elements * batch)
        layers.append(check_layer_size(l, "batch", None, f"batch {batch} x"))
    return dataclasses.replace(workload, layers=tuple(layers))


def walk(chip: ChipConfig, wl: Workload, fmt_names: list[str], path: str):
    """The reference path's rows in order: ``(layer, format, residency, variants)``, where
    ``variants`` lists each distinct instance of the row as ``(how many, metrics)`` in the
    order first timed (:func:`tpusim.layer_rules.run_instances`)."""
    fmts = [get_format(f) for f in fmt_names]
    for f in sorted(set(fmt_names)):
        check_tile_fits(chip, get_format(f), chip.name)
    residency = plan_residency(list(wl.layers), chip, fmts)
    cached = plan_weight_cache(list(wl.layers), chip, fmts)
    carry = _Carry()
    for layer, fmt, res, cache in zip(wl.layers, fmts, residency, cached):
        variants = []
        for n, i, o in res.instances(layer.count):
            variants += _run_instances(n, lambda: _instance(chip, layer, fmt, i, o, carry,
                                                            path, cache), carry)
        yield layer, fmt, res, variants


def simulate(config: ChipConfig | str, workload: Workload | str, format: str | None = None,
             batch: int = 1, engine: str | None = None, core: str = "columnar",
             sparse_report: bool = True) -> Result:
    """Simulate ``workload`` on ``config``. ``format`` forces every GEMM layer's datapath format;
    ``engine`` (``analytic``/``event``) overrides ``timing.engine``; ``core`` is ``columnar``
    (arrays, the default) or ``reference`` (the per-layer Python path; same numbers).
    A trace with sparse weights also runs dense, for the per-row speedup columns
    (:mod:`tpusim.compression_report`; ``sparse_report=False`` skips that)."""
    t0 = time.perf_counter()
    chip = config if isinstance(config, ChipConfig) else load_config(config)
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral):
        raise InputError("batch", None, batch, "must be an integer >= 1")
    if batch < 1:
        raise InputError("batch", None, batch, "must be >= 1")
    check_size(batch, "batch", None)
    if core not in ("columnar", "reference"):
        raise InputError("core", None, core, "allowed: columnar|reference")
    if sparse_report and has_sparsity(wl):
        run = dict(format=format, batch=batch, engine=engine, core=core, sparse_report=False)
        return with_sparse_report(wl, chip, format, simulate(chip, wl, **run),
                                  simulate(chip, dense(wl), **run))
    wl = scale_batch(wl, batch)
    source = wl.source or wl.name
    forced = chip.check_format(format, "format") if format else None
    path = timing_path(chip, engine)
    engine = engine or chip.timing.engine
    wl = lower(wl, chip, forced)   # sparse / packed weights: the GEMMs the array runs
    if core == "columnar":
        from .columnar import evaluate, prepare
        cols = evaluate([prepare(chip, wl, forced, batch, engine)])[0]
        summary = cols.summary()
        summary["simulator_seconds"] = time.perf_counter() - t0
        return Result(config=chip, workload=wl, summary=summary, table=cols.table)

    fmt_names = layer_formats(wl.layers, chip, forced, source)
    roofs = roofline.chip_roofs(chip, sorted(set(fmt_names)))

    rows = []
    for layer, fmt, res, variants in walk(chip, wl, fmt_names, path):
        row = _average(variants, layer.count)
        row.update({"name": layer.name, "op": layer.op, "count": layer.count,
                    "kind": layer.kind, "fused": layer.fused,
                    "m": layer.m if layer.kind == "gemm" else None,
                    "k": layer.k if layer.kind == "gemm" else None,
                    "n": layer.n if layer.kind == "gemm" else None,
                    "format": fmt.name, "groups": layer.groups * layer.shared_weights,
                    "input_on_chip": res.first_input, "output_on_chip": res.last_output})
        if layer.fused:
            # A fused op streams through the vector unit for all its vector cycles, most of them
            # hidden under its producer's: its rate is over those cycles, not its visible ones.
            busy_s = vector_cycles(chip, row["ops"]) / (chip.clock_ghz * 1e9)
            row["achieved_tops"] = roofline.achieved_tops(row["ops"], busy_s)
        row["intensity"] = roofline.intensity(row["ops"],
                                              row["hbm_read_bytes"] + row["hbm_write_bytes"])
        row["roof_tops"] = roofs.hbm_roof(layer.kind, fmt.name, row["intensity"])
        by_bound: dict[str, float] = {}
        for n, v in variants:   # the bound that holds for most of the row's time
            by_bound[v["bound"]] = by_bound.get(v["bound"], 0.0) + n * v["cycles"]
        row["bound"] = max(by_bound, key=by_bound.get)
        rows.append(row)
    import pandas as pd
    df = pd.DataFrame(rows, columns=[c for c in LAYER_COLUMNS if c not in TOTAL_COLUMNS])
    for col in ("m", "k", "n"):
        df[col] = df[col].astype("Int64")
    df = layer_totals(df)
    summary = summarize(chip, wl, df, forced, batch, engine)
    summary["simulator_seconds"] = time.perf_counter() - t0
    return Result(config=chip, workload=wl, layers=df, summary=summary)


def summarize(chip: ChipConfig, wl: Workload, df: pd.DataFrame, forced: str | None,
              batch: int, engine: str) -> dict[str, Any]:
    cnt = df["count"]
    total_cycles = float((df["cycles"] * cnt).sum())
    latency = total_cycles / (chip.clock_ghz * 1e9)
    macs = float((df["macs"] * cnt).sum())
    energy_pj = float((df["energy_pj"] * cnt).sum())
    hbm = float(((df["hbm_read_bytes"] + df["hbm_write_bytes"]) * cnt).sum())
    by_fmt = (df["macs"] * cnt).groupby(df["format"]).sum()
    main_fmt = forced or (str(by_fmt.idxmax()) if len(by_fmt) and by_fmt.max() > 0
                          else chip.default_format)
    formats = sorted(df["format"].unique())
    cyc = df["cycles"] * cnt
    bound_share = {b: float(cyc[df["bound"] == b].sum() / total_cycles) if total_cycles else 0.0
                   for b in ("compute", "hbm", "sram", "vector")}
    # PE-cycles the MACs need at each format's peak rate, over the run's cycles: the fraction
    # of the peak the run reaches (= achieved_tops / peak_tops when one format runs).
    busy = float(sum(m * c / chip.peak_macs_per_cycle(f)
                     for m, c, f in zip(df["macs"], cnt, df["format"]) if m))
    breakdown = {k: float((df[f"{k}_energy_pj"] * cnt).sum()) * 1e-12
                 for k in ("mac", "vector", "sram", "hbm", "static")}
    stalls = {k: float((df[f"stall_{k}_cycles"] * cnt).sum())
              for k in ("weight", "input", "output", "sram")}
    return run_summary(chip, wl.name, main_fmt, formats, forced, batch, engine, total_cycles,
                       latency, macs, busy, energy_pj, breakdown, hbm, bound_share, stalls,
                       float((df["compute_cycles"] * cnt).sum()),
                       float((df["overhead_cycles"] * cnt).sum()))

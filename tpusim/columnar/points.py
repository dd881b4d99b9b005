"""One or many (chip, workload) points through the columnar model.

A point's rows become *variant rows*: one per distinct kind of instance of a trace row (first,
middle, last: :meth:`tpusim.memory.Residency.instances`). :mod:`.kernels` evaluates timing,
traffic and the carry-free pipelined makespan for every variant row of every point at once.
What couples rows is only the carry (the cycles one instance leaves a fused op, and the idle
channel bytes it leaves the next weight tile), so a short scalar pass walks each point's rows in
order with the same rules as :func:`tpusim.simulator._run_instances` and the reference's choice
of loop order; everything after it (energy, rates, the per-row averages, the summary) is array
arithmetic again. The layer table is built only when asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..compression import lower
from ..config import ChipConfig
from ..cores import core_scalars, scale_column, split_columns
from ..energy import mac_pj, sram_pj_per_bit, vector_op_pj
from ..formats import XNOR_KINDS, get_format
from ..memory import check_tile_fits, plan_weight_cache
from ..timing.vector import layer_vector_cost
from ..workload import Workload
from . import kernels as K



@dataclass
class Point:
    """One (chip, workload, forced format) with its per-layer plan, ready for the kernels."""

    chip: ChipConfig
    workload: Workload
    forced: str | None
    fmt_names: list[str]
    residency: list
    cached: list[bool]
    batch: int = 1
    engine: str = "analytic"
    shape: "_Shape | None" = None
    first_in: np.ndarray | None = None   # per layer: input on chip (first instance)
    inner: np.ndarray | None = None      # per layer: outputs of all but the last instance
    last_out: np.ndarray | None = None   # per layer: last instance's output stays on chip
    cached_a: np.ndarray | None = None
    inner_in: np.ndarray | None = None   # per layer: inputs of all but the first instance


_LAYER_FIELDS = ("m", "k", "n", "groups", "shared", "in_el", "out_el", "w_el", "vops")


class _Shape:
    """What a workload contributes regardless of the chip: layer columns, and its variant rows
    (one per distinct instance kind: ``count`` 1 -> 1 row, 2 -> first/last, more -> 3)."""

    def __init__(self, wl: Workload):
        ls = wl.layers
        self.gemm = np.array([l.kind == "gemm" for l in ls], dtype=bool)
        self.fused = np.array([l.fused for l in ls], dtype=bool)
        # kernel rows (``hbm`` set): which of input / output stay on chip every instance
        self.kernel = np.array([l.hbm is not None and not l.fused for l in ls], dtype=bool)
        self.k_in = np.array([l.hbm is not None and "i" not in l.hbm for l in ls], dtype=bool)
        self.k_out = np.array([l.hbm is not None and "o" not in l.hbm for l in ls], dtype=bool)
        self.count = np.array([l.count for l in ls], dtype=np.int64)
        self.cols = {k: np.array(v, dtype=float) for k, v in zip(_LAYER_FIELDS, zip(*[
            (l.m, l.k, l.n, l.groups, l.shared_weights, l.in_elements, l.out_elements,
             l.weight_elements, l.vector_ops) for l in ls]))} if ls else \
            {k: np.zeros(0) for k in _LAYER_FIELDS}
        self.io = np.array([(l.in_elements + l.out_elements) for l in ls], dtype=object)
        self.formats = [l.format for l in ls]
        kinds = np.where(self.count == 1, 1, np.where(self.count == 2, 2, 3))
        self.row_layer = np.repeat(np.arange(len(ls)), kinds)
        first = np.concatenate([[0], np.cumsum(kinds)[:-1]]).astype(np.int64) if len(ls) \
            else np.zeros(0, np.int64)
        self.row_kind = np.arange(len(self.row_layer)) - np.repeat(first, kinds)
        self.row_n = np.where(self.row_kind == 1, np.where(kinds[self.row_layer] == 3,
                                                            self.count[self.row_layer] - 2, 1), 1)
        self.layer_vars = [[(int(n), int(r)) for n, r in zip(
            self.row_n[a:a + k].tolist(), range(a, a + k))] for a, k in
            zip(first.tolist(), kinds.tolist())]
        self.macs = np.array([float(l.macs) for l in ls])
        # exact MAC counts (object dtype when one overflows int64), for the summary's sums
        self.macs_int = np.array([l.macs for l in ls]) if ls else np.zeros(0, np.int64)
        self.persistent_static = np.array([l.weights == "static" for l in ls], dtype=bool)


_SHAPES: dict[int, tuple[Workload, _Shape]] = {}


def _shape(wl: Workload) -> _Shape:
    hit = _SHAPES.get(id(wl))
    if hit is not None and hit[0] is wl:
        return hit[1]
    if len(_SHAPES) > 64:
        _SHAPES.clear()
    sh = _Shape(wl)
    _SHAPES[id(wl)] = (wl, sh)
    return sh


def prepare(chip: ChipConfig, wl: Workload, forced: str | None, batch: int = 1,
            engine: str = "analytic") -> Point:
    """Formats, tile checks, residency and caching of one point (may raise InputError).

    Residency follows :func:`tpusim.memory.plan_residency` (vectorised): a non-fused row's output
    stays on chip when its input and output fit the activation buffer together and it is not the
    last such row; a fused row passes the residency before it through.
    """
    wl = lower(wl, chip, forced)   # sparse / packed weights: the GEMMs the array runs
    sh = _shape(wl)
    if forced in XNOR_KINDS:   # first and last GEMM keep their own format (layer_rules)
        from ..layer_rules import layer_formats
        names = layer_formats(wl.layers, chip, forced, wl.source or wl.name)
    elif forced:
        names = [forced] * len(sh.formats)
    else:
        names = [f or chip.default_format for f in sh.formats]
        bad = [i for i, f in enumerate(names) if f not in chip.formats]
        if bad:
            from ..layer_rules import resolve_format
            resolve_format(wl.layers[bad[0]], chip, None, wl.source or wl.name)
    fmts = {f: get_format(f) for f in set(names)}
    for f in sorted(fmts):
        check_tile_fits(chip, fmts[f], chip.name)
    nl = len(names)
    bpe = {f: fmt.bytes_per_element for f, fmt in fmts.items()}
    b = np.array([bpe[f] for f in names], dtype=float)
    cap = chip.memory.sram.input_kib * 1024
    fits = (sh.cols["in_el"] + sh.cols["out_el"]) * b <= cap if nl else np.zeros(0, bool)
    idx = np.arange(nl)
    nonfused = ~sh.fused
    last = idx[nonfused].max() if nonfused.any() else -1
    resident = np.where(sh.kernel, sh.k_out, fits & (idx != last) & nonfused)
    # the residency left by the latest non-fused row before each row (False before the first)
    pos = np.where(nonfused, idx, -1)
    latest = np.maximum.accumulate(pos) if nl else pos
    before = np.concatenate([[-1], latest[:-1]]) if nl else latest
    prev = np.where(before >= 0, resident[before.clip(min=0)], False)
    first_in = np.where(sh.kernel, sh.k_in, prev)
    inner = np.where(sh.fused, prev, np.where(sh.kernel, sh.k_out, fits))
    last_out = np.where(sh.fused, prev, resident)
    cached = plan_weight_cache(list(wl.layers), chip, [fmts[f] for f in names])
    pt = Point(chip, wl, forced, names, [], cached, batch, engine, sh, first_in, inner,
               last_out, np.array(cached, dtype=bool), np.where(sh.kernel, sh.k_in, inner))
    return pt


def _point_arrays(pt: Point) -> tuple[dict, list]:
    """Per-variant-row inputs of one point, and per layer its variants ``[(n, row), ...]``."""
    chip = pt.chip
    sh = pt.shape
    s, t = chip.memory.sram, chip.timing
    rl = sh.row_layer
    rows = len(rl)
    uniq = sorted(set(pt.fmt_names))
    fidx = np.array([uniq.index(f) for f in pt.fmt_names], dtype=np.int64) if uniq else \
        np.zeros(0, np.int64)
    ftab = np.array([(get_format(f).bytes_per_element, get_format(f).accumulator_bytes,
                      chip.native_rate(f), mac_pj(chip, f)) for f in uniq], dtype=float)
    ftab = ftab.reshape(-1, 4)[fidx[rl]] if rows else np.zeros((0, 4))
    p = {k: v[rl] for k, v in sh.cols.items()}
    p["gemm"], p["fused"], p["cached"] = sh.gemm[rl], sh.fused[rl], pt.cached_a[rl]
    p["b"], p["b_acc"], p["rate"], p["mac_pj"] = ftab.T if rows else (np.zeros(0),) * 4
    kind, kinds = sh.row_kind, np.where(sh.count == 1, 1, np.where(sh.count == 2, 2, 3))[rl]
    single = kinds == 1
    lastk = kind == kinds - 1
    p["in_res"] = np.where(kind == 0, pt.first_in[rl], pt.inner_in[rl])
    p["out_res"] = np.where(single, pt.last_out[rl], np.where(lastk, pt.last_out[rl],
                                                              pt.inner[rl]))
    hbm = chip.memory.hbm
    scal = {
        "rows": chip.array.rows, "cols": chip.array.cols, "arrays": chip.array.count,
        "dataflow": {"ws": K.WS, "os": K.OS, "is": K.IS}[chip.array.dataflow],
        "load": t.weight_load_cycles or chip.array.rows, "issue": t.issue_efficiency,
        "wave": t.wave_cycles,
        "auto": s.double_buffered == "auto", "db": s.double_buffered is True,
        "fifo": t.weight_fifo_depth,
        "cap_in": s.input_kib * 1024, "cap_w": s.weight_kib * 1024, "cap_out": s.output_kib * 1024,
        "sram_bw": s.bandwidth_bytes_per_cycle or 0.0, "bpc": chip.hbm_bytes_per_cycle,
        "scalesim": t.model == "scalesim", "overhead": t.overhead_cycles_per_op,
        "vec_opc": chip.vector.ops_per_cycle, "clock_hz": chip.clock_ghz * 1e9,
        "pes": chip.pes, "p_in": sram_pj_per_bit(chip, s.input_kib),
        "p_w": sram_pj_per_bit(chip, s.weight_kib), "p_out": sram_pj_per_bit(chip, s.output_kib),
        "vec_pj": vector_op_pj(chip), "epb": hbm.energy_pj_per_bit, "static_w": chip.energy.static_w,
    }
    scal.update(core_scalars(chip))
    p["scalesim"] = np.full(rows, scal.pop("scalesim"), dtype=bool)
    # one float64 conversion and one repeat for every per-chip constant (rows of a 2-D block)
    block = np.repeat(np.array(list(scal.values()), dtype=float)[:, None], rows, axis=1)
    for k, row in zip(scal, block):
        p[k] = row
    # the vector unit's cost per layer (tpusim.timing.vector, as the reference path calls it)
    vc = [layer_vector_cost(chip, l) if l.kind == "vector" else None for l in pt.workload.layers]
    # a row that continues an earlier row's kernel pays no fixed cost (as the reference path)
    vtab = np.array([(c.compute_cycles, c.launch_cycles, c.input_reads, c.hbm_efficiency)
                     if c else (0.0, t.overhead_cycles_per_op, 1.0, 1.0) for c in vc],
                    dtype=float).reshape(-1, 4)
    vtab[:, 1] *= [not l.continues for l in pt.workload.layers]
    vtab = vtab[rl]
    p["vcomp"], p["overhead"], p["vreads"], p["veff"] = vtab.T if rows else (np.zeros(0),) * 4
    return p, sh.layer_vars


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}


def _kernels(p: dict) -> dict:
    """Traffic per loop order and what the carry pass needs, for every variant row."""
    rows = len(p["gemm"])
    g = np.flatnonzero(p["gemm"])
    v = np.flatnonzero(~p["gemm"])
    pv = {k: a[v] for k, a in p.items()}
    # a multi-core chip: the busiest core's part of each GEMM, timed on one core (tpusim.cores)
    pg, fac = split_columns({k: a[g] for k, a in p.items()})
    _buffering(pg)
    at = K.array_timing(pg)
    one, two, second = K.gemm_traffic(pg)
    vt = K.vector_traffic(pv)
    out: dict[str, Any] = {"second": np.zeros(rows, bool)}
    out["second"][g] = second
    traffic = []
    for opt in (one, two):
        full = {}
        for key in one:
            arr = np.zeros(rows, dtype=one[key].dtype)
            arr[g] = scale_column(key, opt[key], fac)
            arr[v] = vt[key]
            full[key] = arr
        traffic.append(full)
    out["traffic"] = traffic
    compute = np.zeros(rows)
    compute[g] = at["compute"]
    compute[v] = pv["vcomp"]
    out["compute"] = compute
    for key in ("fill_drain", "shift"):
        arr = np.zeros(rows)
        arr[g] = at[key]
        out[key] = arr
    bw = pg["bpc"] / np.maximum(at["used"], 1)
    pipe = ~pg["scalesim"]
    # the last block's compute (timing.overlap.last_block_cycles; 0 without an overlap model)
    s_, z = at["substeps"], at["stream"] / at["substeps"]
    tail = np.zeros(rows)
    tail[g] = np.where(pipe, np.where((s_ == 1) & (at["steps"] <= 1),
                                      (z + at["load"]) + at["fill_drain"], z + at["fill_drain"]),
                       0.0)
    out["tail"] = tail
    for o, opt in enumerate((one, two)):
        tot = K.hbm_total(opt)
        m0 = np.zeros(rows)
        w1 = np.zeros(rows)
        sel = pipe & ((o == 0) | second)
        mk = np.zeros(len(g))
        if sel.any():
            sub_at = {k: a[sel] for k, a in at.items()}
            sub_t = {k: a[sel] for k, a in opt.items()}
            mk[sel] = K.pipelined_makespan(sub_at, sub_t, bw[sel], pg["depth"][sel])
        scal = np.maximum(at["compute"], tot / pg["bpc"])
        m0[g] = np.where(pipe, mk, scal)
        w1[g] = K.first_tile(at, opt)
        out[f"m0_{o}"] = m0
        out[f"w1_{o}"] = w1
        t_all = K.hbm_total(traffic[o])
        out[f"tot_{o}"] = t_all
        # the memory roofs as the busiest core sees them (its bytes, its bandwidth share)
        core = {key: arr.copy() for key, arr in traffic[o].items()}
        for key in core:
            core[key][g] = opt[key]
        hbm = K.hbm_total(core) / p["bpc"]
        hbm[g] = tot / pg["bpc"]
        # vector rows: VectorCost.hbm_cycles (every operand read, the streams' efficiency)
        hbm[v] = (t_all[v] + vt["hbm_input"] * (pv["vreads"] - 1.0)) / (pv["bpc"] * pv["veff"])
        out[f"hbm_{o}"] = hbm
        out[f"sram_{o}"] = np.where(p["sram_bw"] > 0, (core["sram_read"]
                                    + core["sram_write"]) / (np.where(
                                        p["sram_bw"] > 0, p["sram_bw"], 1.0)
                                        * np.maximum(_used_full(rows, g, at), 1)), 0.0)
    bwe = np.ones(rows)
    bwe[g] = bw
    out["bwe"] = bwe
    out["event_in"] = (g, at, (one, two), pg)   # what the event engine's plans are built from
    return out


def _buffering(pg: dict) -> None:
    """Per GEMM row (the busiest core's part, one core's buffers) the capacity factor and the
    buffer depth, vectorised: :func:`tpusim.memory.double_buffered` (auto: pipelined unless
    every operand fits its buffer) and :func:`tpusim.timing.overlap.buffer_depth`."""
    b = pg["b"]
    fits = ((pg["in_el"] * b <= pg["cap_in"]) & (pg["w_el"] * b <= pg["cap_w"])
            & (pg["out_el"] * pg["b_acc"] <= pg["cap_out"]))
    db = np.where(pg["auto"] > 0, ~fits, pg["db"] > 0)
    pg["half"] = np.where(db, 0.5, 1.0)
    pg["depth"] = np.maximum(np.where(db, 2.0, 1.0), pg["fifo"])


def _used_full(rows: int, g: np.ndarray, at: dict) -> np.ndarray:
    used = np.ones(rows)
    used[g] = at["used"]
    return used


def _split(stall: float, hw: float, hi: float, ho: float, total: float):
    if stall <= 0 or total <= 0:
        return 0.0, 0.0, 0.0
    return stall * hw / total, stall * hi / total, stall * ho / total

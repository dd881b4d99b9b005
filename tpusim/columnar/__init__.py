"""The columnar core: the per-layer model evaluated over all layers (and sweep points) as arrays.

:func:`evaluate` runs one or many prepared points (:func:`prepare`) through :mod:`.kernels`
(timing, traffic and the block-plan makespan of every row at once) and :mod:`.assemble` (the
carry pass and the per-row averages), and returns per point a :class:`Columns`: the summary
dict, computed without pandas, and the layer table, built as a DataFrame only when asked for.

The per-layer Python path in :mod:`tpusim.simulator` is the reference; ``tests/test_columnar.py``
holds the two equal on every shipped workload and preset. With the event engine the carry pass
asks :class:`.event.EventTotals` for each GEMM instance's cycles (simpy runs of the row's plan).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..layer_rules import run_summary
from .assemble import run_points
from .points import Point, prepare

__all__ = ["Columns", "evaluate", "prepare", "Point"]

_BOUNDS = ("compute", "hbm", "sram", "vector")


class Columns:
    """One point's result: per-layer numpy columns, the summary, the table on demand."""

    def __init__(self, data: dict):
        self.point: Point = data["point"]
        self.cols: dict[str, np.ndarray] = data["cols"]
        self._rec = data["rec"]
        pt = self.point
        chip = pt.chip
        hbm = self.cols["hbm_read_bytes"] + self.cols["hbm_write_bytes"]
        ops = self.cols["ops"]
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(hbm > 0, ops / hbm, math.inf)   # roofline.intensity
        # roofline.ChipRoofs.peak / hbm_roof: the format's peak, or the vector roof
        peaks = {f: chip.peak_tops(f) for f in set(pt.fmt_names)}
        vector_tops = chip.vector.ops_per_cycle * (chip.clock_ghz * 1e9) / 1e12
        peak = np.array([peaks[f] for f in pt.fmt_names], dtype=float)
        peak = np.where(pt.shape.gemm, peak, vector_tops)
        bw = chip.memory.hbm.bandwidth_gbps * 1e9 * chip.memory.hbm.efficiency
        self.cols["intensity"] = intensity
        self.cols["roof_tops"] = np.where(np.isinf(intensity), peak,
                                          np.minimum(peak, bw * intensity / 1e12))

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict[str, Any]:
        """The same dict as :func:`tpusim.simulator.summarize`, from the columns."""
        pt, c = self.point, self.cols
        chip = pt.chip
        cnt = pt.shape.count
        cyc = c["cycles"] * cnt
        total_cycles = float(cyc.sum())
        latency = total_cycles / (chip.clock_ghz * 1e9)
        mc = pt.shape.macs_int * cnt
        macs = float(mc.sum())
        energy_pj = float((c["energy_pj"] * cnt).sum())
        hbm = float(((c["hbm_read_bytes"] + c["hbm_write_bytes"]) * cnt).sum())
        formats = sorted(set(pt.fmt_names))
        names = np.array(pt.fmt_names, dtype=object)
        by_fmt = {f: mc[names == f].sum() for f in formats}
        if pt.forced:
            main_fmt = pt.forced
        elif by_fmt and max(by_fmt.values()) > 0:
            best = max(by_fmt.values())
            main_fmt = next(f for f in formats if by_fmt[f] == best)
        else:
            main_fmt = chip.default_format
        bcode = c["bound_code"]
        bound_share = {b: float(cyc[bcode == i].sum() / total_cycles) if total_cycles else 0.0
                       for i, b in enumerate(_BOUNDS)}
        # PE-cycles the MACs need at each format's peak rate, over the run's cycles
        peak_mpc = {f: chip.peak_macs_per_cycle(f) for f in formats}
        busy = float(sum(mm * cc / peak_mpc[f] for mm, cc, f in
                         zip(pt.shape.macs_int.tolist(), cnt.tolist(), pt.fmt_names) if mm))
        breakdown = {k: float((c[f"{k}_energy_pj"] * cnt).sum()) * 1e-12
                     for k in ("mac", "vector", "sram", "hbm", "static")}
        stalls = {k: float((c[f"stall_{k}_cycles"] * cnt).sum())
                  for k in ("weight", "input", "output", "sram")}
        batch = pt.batch
        return run_summary(chip, pt.workload.name, main_fmt, formats, pt.forced, batch,
                           pt.engine, total_cycles, latency, macs, busy, energy_pj, breakdown,
                           hbm, bound_share, stalls,
                           float((c["compute_cycles"] * cnt).sum()),
                           float((c["overhead_cycles"] * cnt).sum()))

    # ------------------------------------------------------------------ table

    def _notes(self) -> list[str]:
        """Per row the first of its instances' notes (a re-fetch the buffers forced)."""
        from ..cores import core_chip, split_columns

        rec, starts, kr, p = self._rec
        pt, c = self.point, self.cols
        s = core_chip(pt.chip).memory.sram   # the buffers of one core, as the reference says
        tr = kr["traffic"]
        nrec = c["nrec"]
        out = [""] * len(nrec)
        if not len(rec):
            return out
        r, o = rec[:, 1].astype(np.int64), rec[:, 2] == 1
        flag_i = np.where(o, tr[1]["note_i"][r], tr[0]["note_i"][r])
        flag_w = np.where(o, tr[1]["note_w"][r], tr[0]["note_w"][r])
        hits = np.flatnonzero(flag_i | flag_w)
        if not len(hits):
            return out
        with np.errstate(divide="ignore", invalid="ignore"):   # vector rows: no m, n
            part = split_columns(p)[0]
        p = {**p, "in_el": part["in_el"], "w_el": part["w_el"]}
        layer_of = np.searchsorted(starts + nrec, hits, side="right")
        first_hit = np.unique(layer_of, return_index=True)
        for li, j in zip(first_hit[0].tolist(), first_hit[1].tolist()):
            q = int(hits[j])
            rr, t = int(r[q]), tr[1 if o[q] else 0]
            if flag_i[q]:
                out[li] = (f"input re-fetched {int(t['input_passes'][rr])}x: "
                           f"{p['in_el'][rr] * p['b'][rr] / 2**20:.3g} MiB exceed the "
                           f"{s.input_kib / 1024:g} MiB input buffer")
            else:
                out[li] = (f"weights re-fetched {int(t['weight_passes'][rr])}x: "
                           f"{p['w_el'][rr] * p['b'][rr] / 2**20:.3g} MiB exceed the "
                           f"{s.weight_kib / 1024:g} MiB weight buffer")
        return out

    def table(self):
        """The layer table (``layers.csv``), columns and dtypes as the reference builds them."""
        import pandas as pd

        from ..layer_rules import LAYER_COLUMNS, TOTAL_COLUMNS, layer_totals
        data = self.table_data()
        for key in ("m", "k", "n"):   # None where the row has no GEMM: pandas' nullable Int64
            data[key] = pd.array(data[key], dtype="Int64")
        cols = [k for k in LAYER_COLUMNS if k not in TOTAL_COLUMNS]
        return layer_totals(pd.DataFrame({k: data[k] for k in cols}, columns=cols))

    def table_data(self) -> dict[str, Any]:
        """The layer table's columns before totals, without pandas: numpy arrays in the dtypes
        the table has, lists of str/bool, and ``m``/``k``/``n`` as lists of int or None
        (:mod:`tpusim.table_csv` writes ``layers.csv`` from these)."""
        pt, c = self.point, self.cols
        layers = pt.workload.layers
        gemm = [l.kind == "gemm" for l in layers]
        multi = bool(c["multi"].any())
        fused = any(l.fused for l in layers)
        pipelined = pt.chip.timing.model == "pipelined"

        def num(key, as_int):
            v = c[key]
            return v.astype(np.int64) if as_int else v
        data: dict[str, Any] = {
            "name": [l.name for l in layers], "op": [l.op for l in layers],
            "count": np.array([l.count for l in layers], dtype=np.int64),
            "m": [l.m if g else None for l, g in zip(layers, gemm)],
            "k": [l.k if g else None for l, g in zip(layers, gemm)],
            "n": [l.n if g else None for l, g in zip(layers, gemm)],
            "macs": pt.shape.macs_int, "format": list(pt.fmt_names),
            "bound": [_BOUNDS[b] for b in c["bound_code"].tolist()],
            "groups": np.array([l.groups * l.shared_weights for l in layers], dtype=np.int64),
            "vector_ops": np.array([l.vector_ops for l in layers], dtype=float),
            "input_on_chip": pt.first_in.astype(bool),
            "output_on_chip": pt.last_out.astype(bool),
            "note": self._notes(), "kind": [l.kind for l in layers],
            "fused": [l.fused for l in layers], "ops": c["ops"],
        }
        all_gemm_single = all(gemm) and not multi
        for key in ("cycles", "latency_s", "stall_cycles", "overhead_cycles", "utilization",
                    "hbm_read_bytes", "hbm_write_bytes", "sram_read_bytes", "sram_write_bytes",
                    "energy_pj", "mac_energy_pj", "vector_energy_pj", "sram_energy_pj",
                    "hbm_energy_pj", "static_energy_pj", "intensity", "achieved_tops",
                    "roof_tops", "stall_weight_cycles", "stall_input_cycles",
                    "stall_output_cycles", "stall_sram_cycles", "hbm_cycles",
                    "hbm_weight_read_bytes", "hbm_input_read_bytes", "sram_input_bytes",
                    "sram_weight_bytes", "sram_output_bytes"):
            data[key] = c[key]
        # where the reference holds Python ints in every row, pandas makes the column int64
        # (a float cost per wave of output tiles makes a pipelined GEMM's drain a float)
        wave_int = (isinstance(pt.chip.timing.wave_cycles, int) or not pipelined
                    or not any(gemm))
        data["compute_cycles"] = num("compute_cycles", not fused and not multi and wave_int)
        data["fill_drain_cycles"] = num("fill_drain_cycles", all_gemm_single and wave_int)
        data["weight_shift_cycles"] = num("weight_shift_cycles", all_gemm_single and pipelined)
        data["weight_passes"] = num("weight_passes", not multi)
        ovh = pt.chip.timing.overhead_cycles_per_op
        # the lanes model's vector launch is a float (tpusim.timing.vector.vector_cost)
        lanes_vec = pt.chip.vector.lanes is not None and any(l.kind == "vector" for l in layers)
        data["overhead_cycles"] = num("overhead_cycles", isinstance(ovh, int) and not fused
                                      and not multi and not lanes_vec)
        if all(isinstance(l.vector_ops, int) for l in layers):
            data["vector_ops"] = data["vector_ops"].astype(np.int64)
        data["input_passes"] = num("input_passes", not multi)
        return data


def evaluate(points: list[Point]) -> list[Columns]:
    """Run prepared points through the columnar model, all in one set of array calls."""
    if not points:
        return []
    return [Columns(d) for d in run_points(points)]

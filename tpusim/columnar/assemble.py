"""The carry pass, the per-instance metrics, the per-row averages and the summary, columnar.

Same rules and the same order of floating-point operations as :mod:`tpusim.simulator`'s
per-layer path (``_run_instances``, ``_instance``, ``_average``, ``summarize``), which stays the
reference this is tested against.
"""
from __future__ import annotations

import math

from typing import Any

import numpy as np

from ..layer_rules import SUMMED, Carry, run_instances
from ..timing.path import timing_path
from .points import Point, _concat, _kernels, _point_arrays, _split


def _carry_pass(kr: dict, p: dict, points_vars: list[tuple[list, int]],
                event=None) -> list[list[list]]:
    """Per point, records ``[weight, row, opt, cycles, compute, sw, si, so, ss, hbm, overhead,
    bound]`` layer by layer (``points_vars``: each point's layer variants and first row;
    ``event``: an :class:`.event.EventTotals` for the rows the event engine times)."""
    gemm, fused = p["gemm"].tolist(), p["fused"].tolist()
    second, compute = kr["second"].tolist(), kr["compute"].tolist()
    m0 = (kr["m0_0"].tolist(), kr["m0_1"].tolist())
    w1 = (kr["w1_0"].tolist(), kr["w1_1"].tolist())
    tot = (kr["tot_0"].tolist(), kr["tot_1"].tolist())
    hbmc = (kr["hbm_0"].tolist(), kr["hbm_1"].tolist())
    sram = (kr["sram_0"].tolist(), kr["sram_1"].tolist())
    tr = kr["traffic"]
    hw = (tr[0]["hbm_weight"].tolist(), tr[1]["hbm_weight"].tolist())
    hi = (tr[0]["hbm_input"].tolist(), tr[1]["hbm_input"].tolist())
    ho = (tr[0]["hbm_output"].tolist(), tr[1]["hbm_output"].tolist())
    scal, bwe = p["scalesim"].tolist(), kr["bwe"].tolist()
    ovh = p["overhead"].tolist()
    ceil = math.ceil
    evr = event.ev.tolist() if event is not None else None

    def instance(r: int, cc: float, idle: float) -> list:
        if gemm[r]:
            best = None
            comp = compute[r]
            for o in ((0, 1) if second[r] else (0,)):
                total = m0[o][r]
                if evr is not None and evr[r]:
                    total = event(r, o, idle)
                elif not scal[r]:
                    total = total - min(w1[o][r], idle) / bwe[r]
                hbm = hbmc[o][r]
                t2 = max(comp, float(ceil(max(total, hbm) - 1e-6)))
                sw, si, so = _split(t2 - comp, hw[o][r], hi[o][r], ho[o][r], tot[o][r])
                ss = max(0.0, sram[o][r] - t2)
                cyc = comp + (((sw + si) + so) + ss) + ovh[r]
                key = (cyc, tot[o][r])
                if best is None or key < best[0]:
                    bound = 2 if ss > 0 else (1 if hbm > comp else 0)
                    best = (key, [0, r, o, cyc, comp, sw, si, so, ss, hbm, ovh[r], bound])
            return best[1]
        vec = compute[r]
        if fused[r]:
            c = max(0.0, vec - cc)
            return [0, r, 0, c, c, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3]
        hbm = hbmc[0][r]
        sw, si, so = _split(max(0.0, ceil(hbm - 1e-6) - vec), hw[0][r], hi[0][r], ho[0][r],
                            tot[0][r])
        cyc = vec + (((sw + si) + so) + 0.0) + ovh[r]
        return [0, r, 0, cyc, vec, sw, si, so, 0.0, hbm, ovh[r], 1 if hbm > vec else 3]

    left = _idle_left(kr, p).tolist()
    return [_walk(instance, fused, left, lv, base) for lv, base in points_vars]


def _idle_left(kr: dict, p: dict) -> np.ndarray:
    """Per row, the idle bytes an instance leaves the next (``layer_rules.idle_bytes_left``,
    the same arithmetic): they depend on the row alone, not on the carried state."""
    most = np.where(kr["second"], np.maximum(kr["hbm_0"], kr["hbm_1"]), kr["hbm_0"])
    return np.maximum(0.0, np.maximum(kr["compute"] - most, kr["tail"]) + p["overhead"]) * p["bpc"]


def _walk(instance, fused: list, left: list, layer_vars: list, base: int) -> list[list]:
    """One point's instances in order, carrying cycles and idle bytes (``_run_instances``)."""
    out: list[list] = []
    cc = idle = 0.0
    for vs in layer_vars:
        for n, r in vs:
            r += base
            if n == 1:
                rec = instance(r, cc, idle)
                rec[0] = 1
                out.append(rec)
                if not fused[r]:
                    cc, idle = rec[3], left[r]
                continue
            carry = Carry(cc, idle)

            def one(r=r, carry=carry):
                rec = instance(r, carry.cycles, carry.idle_bytes)
                if not fused[r]:
                    carry.cycles, carry.idle_bytes = rec[3], left[r]
                return rec
            for w, rec in run_instances(n, one, carry):
                rec[0] = w
                out.append(rec)
            cc, idle = carry.cycles, carry.idle_bytes
    return out


def _walk_many(kr: dict, p: dict, shape, bases: np.ndarray) -> np.ndarray:
    """The carry pass of many points of one workload at once (every variant one instance):
    layer by layer, arrays over the points; the same arithmetic as ``_carry_pass``."""
    npts, nrows = len(bases), len(shape.row_layer)
    out = np.zeros((npts, nrows, 12))
    cc = np.zeros(npts)
    idle = np.zeros(npts)
    tr = kr["traffic"]
    gemm, fused = shape.gemm[shape.row_layer], shape.fused[shape.row_layer]
    left = _idle_left(kr, p)
    for v in range(nrows):
        r = bases + v
        comp = kr["compute"][r]
        ovh = p["overhead"][r]
        o_rec = out[:, v]
        o_rec[:, 0] = 1.0
        o_rec[:, 1] = r
        if gemm[v]:
            best = None
            for o in (0, 1):
                total = kr[f"m0_{o}"][r]
                total = np.where(p["scalesim"][r], total,
                                 total - np.minimum(kr[f"w1_{o}"][r], idle) / kr["bwe"][r])
                hbm = kr[f"hbm_{o}"][r]
                t2 = np.maximum(comp, np.ceil(np.maximum(total, hbm) - 1e-6))
                sw, si, so = _split_v(t2 - comp, tr[o], r, kr[f"tot_{o}"][r])
                ss = np.maximum(0.0, kr[f"sram_{o}"][r] - t2)
                cyc = comp + (((sw + si) + so) + ss) + ovh
                bound = np.where(ss > 0, 2.0, np.where(hbm > comp, 1.0, 0.0))
                cand = (cyc, kr[f"tot_{o}"][r], np.full(npts, float(o)), sw, si, so, ss, hbm,
                        bound)
                if best is None:
                    best = cand
                else:
                    take = kr["second"][r] & ((cyc < best[0]) | ((cyc == best[0])
                                                                 & (cand[1] < best[1])))
                    best = tuple(np.where(take, a, b) for a, b in zip(cand, best))
            cyc, _, opt, sw, si, so, ss, hbm, bound = best
        elif fused[v]:
            cyc = np.maximum(0.0, comp - cc)
            comp = cyc
            opt = sw = si = so = ss = hbm = np.zeros(npts)
            ovh = np.zeros(npts)
            bound = np.full(npts, 3.0)
        else:
            hbm = kr["hbm_0"][r]
            sw, si, so = _split_v(np.maximum(0.0, np.ceil(hbm - 1e-6) - comp), tr[0], r,
                                  kr["tot_0"][r])
            ss = opt = np.zeros(npts)
            cyc = comp + (((sw + si) + so) + 0.0) + ovh
            bound = np.where(hbm > comp, 1.0, 3.0)
        for j, col in enumerate((opt, cyc, comp, sw, si, so, ss, hbm, ovh, bound), start=2):
            o_rec[:, j] = col
        if not fused[v]:
            cc = cyc
            idle = left[r]
    return out


def _split_v(stall, t: dict, r, total):
    ok = (stall > 0) & (total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return tuple(np.where(ok, stall * t[k][r] / total, 0.0)
                     for k in ("hbm_weight", "hbm_input", "hbm_output"))


def _metrics(recs: np.ndarray, p: dict, kr: dict, macs: np.ndarray) -> dict:
    """Per-record metrics (as the reference's ``_instance`` dict), vectorised."""
    row = recs[:, 1].astype(np.int64)
    opt = recs[:, 2] == 1
    tr = kr["traffic"]

    def t(key):
        return np.where(opt, tr[1][key][row], tr[0][key][row])
    cyc, comp = recs[:, 3], recs[:, 4]
    sw, si, so, ss, hbmc, ovh = (recs[:, j] for j in range(5, 11))
    hw, hi, ho = t("hbm_weight"), t("hbm_input"), t("hbm_output")
    s_in, s_w, s_out = t("sram_input"), t("sram_weight"), t("sram_output")
    g = p["gemm"][row]
    lat = cyc / p["clock_hz"][row]
    ops = np.where(g, 2.0 * macs, p["vops"][row])   # roofline.layer_ops
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cyc > 0, macs / (cyc * (p["pes"][row] * p["rate"][row])), 0.0)
        ach = np.where(lat > 0, ops / lat / 1e12, 0.0)
    hbm_tot = hw + hi + ho
    e_mac = macs * p["mac_pj"][row]
    e_vec = p["vops"][row] * p["vec_pj"][row]
    e_sram = 8 * (s_in * p["p_in"][row] + s_w * p["p_w"][row] + s_out * p["p_out"][row])
    e_hbm = 8 * hbm_tot * p["epb"][row]
    e_static = p["static_w"][row] * lat * 1e12
    return {
        "cycles": cyc, "latency_s": lat, "compute_cycles": comp,
        "stall_cycles": ((sw + si) + so) + ss, "overhead_cycles": ovh, "utilization": util,
        "hbm_read_bytes": hw + hi, "hbm_write_bytes": ho,
        "sram_read_bytes": t("sram_read"), "sram_write_bytes": t("sram_write"),
        "energy_pj": e_mac + e_vec + e_sram + e_hbm + e_static, "mac_energy_pj": e_mac,
        "vector_energy_pj": e_vec, "sram_energy_pj": e_sram, "hbm_energy_pj": e_hbm,
        "static_energy_pj": e_static, "achieved_tops": ach, "ops": ops,
        "stall_weight_cycles": sw, "stall_input_cycles": si, "stall_output_cycles": so,
        "stall_sram_cycles": ss,
        "fill_drain_cycles": np.where(g, kr["fill_drain"][row], 0.0),
        "weight_shift_cycles": np.where(g, kr["shift"][row], 0.0), "hbm_cycles": hbmc,
        "weight_passes": np.where(g, t("weight_passes"), 0.0),
        "input_passes": np.where(g, t("input_passes"), 0.0),
        "hbm_weight_read_bytes": hw, "hbm_input_read_bytes": hi, "sram_input_bytes": s_in,
        "sram_weight_bytes": s_w, "sram_output_bytes": s_out,
    }


def run_points(points: list[Point]) -> list[dict]:
    """Evaluate every point; per point a dict of per-layer columns (numpy) and its layers."""
    arrays = [_point_arrays(pt) for pt in points]
    sizes = [len(a[0]["gemm"]) for a in arrays]
    p = _concat([a[0] for a in arrays])
    kr = _kernels(p)
    bases = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    blocks: list[Any] = [None] * len(points)
    # points of one workload whose rows all run one instance per variant: one array walk
    groups: dict[int, list[int]] = {}
    on = [timing_path(pt.chip, pt.engine) == "event" for pt in points]
    event = _event_totals(kr, on, sizes)
    for i, pt in enumerate(points):
        if bool((pt.shape.row_n == 1).all()) and not on[i]:   # event points: one by one
            groups.setdefault(id(pt.shape), []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        walked = _walk_many(kr, p, points[idx[0]].shape, np.array([bases[i] for i in idx]))
        for j, i in enumerate(idx):
            blocks[i] = walked[j]
    rest = [i for i, b in enumerate(blocks) if b is None]
    walked_one = (_carry_pass(kr, p, [(arrays[i][1], bases[i]) for i in rest], event)
                  if rest else [])
    for i, recs in zip(rest, walked_one):   # (its set-up is a list copy of every column)
        blocks[i] = np.array(recs, dtype=float).reshape(-1, 12)
    rec = np.concatenate(blocks) if blocks else np.zeros((0, 12))
    layer_macs = np.concatenate([pt.shape.macs for pt in points])
    lay_of_row = np.repeat(np.arange(len(layer_macs)),
                           [len(vs) for _, lv in arrays for vs in lv]).astype(np.int64)
    rec_layer = lay_of_row[rec[:, 1].astype(np.int64)] if len(rec) else np.zeros(0, np.int64)
    m = _metrics(rec, p, kr, layer_macs[rec_layer])
    return _aggregate(points, arrays, rec, rec_layer, m, kr, p, layer_macs)


def _event_totals(kr: dict, on: list[bool], sizes: list[int]):
    """The event engine's totals for the rows of the points it times (None: no such point)."""
    if not any(on):
        return None
    from .event import EventTotals
    return EventTotals(kr, np.repeat(np.array(on, dtype=bool), sizes))


def _aggregate(points, arrays, rec, rec_layer, m, kr, p, layer_macs) -> list[dict]:
    nl = len(layer_macs)
    nrec = np.bincount(rec_layer, minlength=nl)
    starts = np.concatenate([[0], np.cumsum(nrec)[:-1]]).astype(np.int64)
    w = rec[:, 0]
    count = np.concatenate([pt.shape.count for pt in points]).astype(float)
    multi = count > 1
    vmax = int(nrec.max()) if nl else 0
    first = starts.clip(max=max(len(rec) - 1, 0))
    cols: dict[str, np.ndarray] = {}
    vals = np.stack([m[key] for key in SUMMED]) if len(rec) else np.zeros((len(SUMMED), 0))
    single = vals[:, first] if nl else np.zeros((len(SUMMED), 0))
    if multi.any():
        acc = np.zeros((len(SUMMED), nl))
        for j in range(vmax):
            idx = np.minimum(starts + j, len(rec) - 1)
            acc = acc + np.where(j < nrec, w[idx] * vals[:, idx], 0.0)
        out_vals = np.where(multi, acc / count, single)
    else:
        out_vals = single
    for i, key in enumerate(SUMMED):
        cols[key] = out_vals[i]
    macs = layer_macs
    cyc_pe = np.zeros(nl)
    util = m["utilization"]
    for j in range(vmax):
        idx = np.minimum(starts + j, len(rec) - 1)
        ok = (j < nrec) & (util[idx] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cyc_pe = cyc_pe + np.where(ok, w[idx] * macs / util[idx], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["utilization"] = np.where(multi, np.where(cyc_pe > 0, macs * count / cyc_pe, 0.0),
                                       util[first])
        lat = cols["latency_s"]
        ops = m["ops"][first]
        ach = np.where(multi, np.where(lat > 0, ops / lat / 1e12, 0.0), m["achieved_tops"][first])
        # a fused op's rate is over all its vector cycles, most hidden under its producer's
        fused = np.concatenate([pt.shape.fused for pt in points])
        clock = p["clock_hz"][np.minimum(rec[first, 1].astype(np.int64), len(p["clock_hz"]) - 1)] \
            if len(rec) else np.zeros(nl)
        opc = p["vec_opc"][rec[first, 1].astype(np.int64)] if len(rec) else np.ones(nl)
        busy = np.ceil(ops / opc) / clock
        ach = np.where(fused, np.where(busy > 0, ops / busy / 1e12, 0.0), ach)
        cols["achieved_tops"] = ach
        cols["ops"] = ops
    # the bound that holds for most of the row's time (first seen wins a tie)
    bcode = rec[:, 11].astype(np.int64)
    bound = bcode[first].copy()
    for li in np.flatnonzero(multi).tolist():
        tally: dict[int, float] = {}
        for q in range(starts[li], starts[li] + nrec[li]):
            tally[bcode[q]] = tally.get(bcode[q], 0.0) + w[q] * rec[q, 3]
        bound[li] = max(tally, key=tally.get)
    cols["bound_code"] = bound
    cols["macs"] = macs
    cols["count"] = count
    cols["multi"] = multi
    cols["nrec"] = nrec
    cols["starts"] = starts
    out = []
    off = 0
    for pt, (_, lv) in zip(points, arrays):
        n = len(lv)
        out.append({"point": pt, "cols": {k: v[off:off + n] for k, v in cols.items()},
                    "rec": (rec, starts[off:off + n] if n else starts[:0], kr, p)})
        off += n
    return out

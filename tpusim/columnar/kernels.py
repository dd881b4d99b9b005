"""The per-instance model as numpy array functions: one element per (row, residency variant).

Each function here is the array form of one scalar function of the reference path, with the
same floating-point operations in the same order, so the two agree to the last bit wherever the
integers involved stay below 2^53:

* :func:`array_timing` -- :func:`tpusim.timing.systolic.array_timing` (both timing models);
* :func:`gemm_traffic` -- :func:`tpusim.memory.gemm_traffic_options` (the SRAM loop orders);
* :func:`vector_traffic` -- :func:`tpusim.memory.vector_traffic`;
* :func:`pipelined_makespan` -- :func:`tpusim.timing.overlap.blocks` and ``flow_shop_cycles``:
  the block plan is read off its run-length form for every row at once (front-padded with empty
  blocks, which change no start or end time), and the flow-shop recurrence steps over at most
  ``MAX_BLOCKS + 2`` blocks with all rows side by side (each distinct plan built once).

Inputs are dicts of float64 arrays of equal length (chip parameters repeated per row, so rows
of different chips -- sweep points -- can share one call).
"""
from __future__ import annotations

import numpy as np

from ..timing.overlap import MAX_BLOCKS

WS, OS, IS = 0.0, 1.0, 2.0


def _ceil(x):
    return np.ceil(x)


def array_timing(p: dict) -> dict:
    """ArrayTiming fields per row (``scalesim`` rows and pipelined rows in one pass)."""
    r, c, arrays, df = p["rows"], p["cols"], p["arrays"], p["dataflow"]
    ms, k, n, g = p["m"] * p["shared"], p["k"], p["n"], p["groups"]
    sr = np.where(df == OS, ms, k)
    sc = np.where(df == IS, ms, n)
    t = np.where(df == WS, ms, np.where(df == OS, k, n))
    rate = p["rate"]
    folds = _ceil(sr / r) * _ceil(sc / c)
    tiles = folds * g

    # scalesim: every fold pays its fill and drain, folds run one after another
    pff = np.where(df == OS, r + c - 2, 2 * r + c - 2)
    s_stream = _ceil(t / rate)
    many = g >= arrays
    runs = np.where(many, _ceil(g / arrays), 1.0)
    s_steps = np.where(many, folds, _ceil(folds / np.maximum(1.0, np.floor_divide(arrays, g))))
    s_cycles = runs * (s_steps * (pff + s_stream) - 1)

    # pipelined: block-diagonal packing of small groups, rows shared evenly by the arrays
    load = p["load"]
    ws_fit = (df == WS) & (k <= r) & (n <= c)
    is_fit = (df == IS) & (k <= r)
    with np.errstate(divide="ignore", invalid="ignore"):
        pk_ws = np.maximum(1.0, np.minimum(np.minimum(np.floor_divide(r, k),
                                                      np.floor_divide(c, n)), g))
        pk_is = np.maximum(1.0, np.minimum(np.floor_divide(r, k), g))
    pack = np.where(g <= 1, 1.0, np.where(ws_fit, pk_ws, np.where(is_fit, pk_is, 1.0)))
    packed = pack > 1
    sr2 = np.where(packed, pack * sr, sr)
    sc2 = np.where(packed & (df == WS), pack * sc, sc)
    t2 = np.where(packed & (df != WS), pack * t, t)
    folds2 = np.where(packed, _ceil(sr2 / r) * _ceil(sc2 / c), folds)
    tiles2 = np.where(packed, folds2 * _ceil(g / pack), tiles)
    steps = _ceil(tiles2 / arrays)
    used = np.minimum(arrays, tiles2 * t2)
    rows = _ceil(t2 * tiles2 / (used * steps))
    stream = _ceil(_ceil(rows / rate) / p["issue"])
    step = np.maximum(stream, load)
    # one fixed cost per wave of rows x cols output tiles (timing.systolic.output_waves)
    waves = _ceil(_ceil(ms / r) * _ceil(pack * n / c) * _ceil(g / pack) / arrays)
    fill = r + c - 2 + waves * p["wave"]
    compute = load + (steps - 1) * step + stream + fill
    shift = load + (steps - 1) * (step - stream)

    sc_ = p["scalesim"]
    return {
        "compute": np.where(sc_, s_cycles, compute),
        "fill_drain": np.where(sc_, runs * s_steps * pff, fill),
        "shift": np.where(sc_, 0.0, shift),
        "steps": np.where(sc_, runs * s_steps, steps),
        "stream": np.where(sc_, s_stream, stream),
        "load": np.where(sc_, 0.0, load),
        "used": np.where(sc_, np.minimum(arrays, tiles), used),
        "substeps": np.where(sc_, 1.0, np.maximum(1.0, _ceil(stream / load))),
    }


def gemm_traffic(p: dict) -> tuple[dict, dict, np.ndarray]:
    """Traffic of the two SRAM loop orders (weights outer, inputs outer) per row, and whether the
    second differs from the first (the reference then costs both)."""
    r, c, arrays = p["rows"], p["cols"], p["arrays"]
    half = p["half"]
    b, b_acc = p["b"], p["b_acc"]
    g, ms, k, n = p["groups"], p["m"] * p["shared"], p["k"], p["n"]
    kf, nf = _ceil(k / r), _ceil(n / c)
    in_bytes, w_bytes, out_bytes = p["in_el"] * b, p["w_el"] * b, p["out_el"] * b
    cap_in, cap_w, cap_out = p["cap_in"], p["cap_w"], p["cap_out"]
    acc_rows = np.where(kf > 1, np.maximum(1.0, np.floor_divide(
        cap_out * half, np.minimum(nf, arrays) * c * b_acc)), ms)
    per_row_in = in_bytes / np.maximum(1.0, g * ms)
    in_rows = np.maximum(1.0, np.floor_divide(cap_in * half,
                                              np.maximum(per_row_in * g * 1.0, 1e-9)))
    chunks_wo = _ceil(ms / np.minimum(acc_rows, ms))
    strip = k * c * b * g
    w_pass_wo = np.where((strip <= cap_w * half) | (chunks_wo == 1), 1.0, chunks_wo)
    i_pass_wo = np.where((in_bytes <= cap_in * half) | (nf == 1), 1.0, nf)
    chunks_io = _ceil(ms / np.minimum(np.minimum(acc_rows, in_rows), ms))
    w_pass_io = np.where((w_bytes <= cap_w * half) | (chunks_io == 1), 1.0, chunks_io)
    # output stationary replaces inputs outer where it moves fewer HBM bytes
    w_eff = np.where(p["cached"], 0.0, w_bytes)
    i_eff = np.where(p["in_res"], 0.0, in_bytes)
    w_os, i_os, c_os = _output_stationary(ms, nf, c, r, b, b_acc, cap_in * half, cap_w * half,
                                          cap_out * half, in_bytes <= cap_in * half,
                                          w_bytes <= cap_w * half, w_eff, i_eff)
    use_os = w_eff * w_os + i_eff * i_os < w_eff * w_pass_io + i_eff * 1
    w_pass_io = np.where(use_os, w_os, w_pass_io)
    i_pass_io = np.where(use_os, i_os, 1.0)
    chunks_io = np.where(use_os, c_os, chunks_io)
    second = (w_pass_io != w_pass_wo) | (i_pass_io != i_pass_wo) | (chunks_io != chunks_wo)
    common = dict(r=r, c=c, b=b, b_acc=b_acc, g=g, ms=ms, k=k, n=n, kf=kf, nf=nf,
                  df=p["dataflow"], in_bytes=in_bytes, w_bytes=w_bytes, out_bytes=out_bytes,
                  cached=p["cached"], in_res=p["in_res"], out_res=p["out_res"])
    one = _order(common, w_pass_wo, i_pass_wo, chunks_wo)
    two = _order(common, w_pass_io, i_pass_io, chunks_io)
    return one, two, second


def _output_stationary(ms, nf, c, r, b, b_acc, cap_in, cap_w, cap_out, in_fits, w_fits,
                       w_eff, i_eff):
    """:func:`tpusim.memory.output_stationary_passes` per row: the same four block widths in
    the same order, the first with the fewest HBM bytes kept."""
    acc = np.floor_divide(cap_out, b_acc)
    row_cap = np.maximum(1.0, np.floor_divide(cap_in, r * b))
    col_cap = np.maximum(1.0, np.floor_divide(cap_w, r * b * c))
    most = np.maximum(1.0, np.minimum(np.minimum(nf, col_cap), np.floor_divide(acc, c)))
    side = np.sqrt(acc) / c
    best = None
    for j in (np.floor(side), np.ceil(side), np.floor_divide(acc, ms * c), most):
        j = np.maximum(1.0, np.minimum(j, most))
        rows = np.maximum(1.0, np.minimum(np.minimum(ms, np.floor_divide(acc, j * c)), row_cap))
        chunks = _ceil(ms / rows)
        w_pass = np.where(w_fits, 1.0, chunks)
        i_pass = np.where(in_fits, 1.0, _ceil(nf / j))
        cost = w_eff * w_pass + i_eff * i_pass
        if best is None:
            best = [cost, w_pass, i_pass, chunks]
        else:
            take = cost < best[0]
            best = [np.where(take, v, o) for v, o in zip((cost, w_pass, i_pass, chunks), best)]
    return best[1], best[2], best[3]


def _order(q: dict, w_pass, i_pass, chunks) -> dict:
    cached, in_res, out_res = q["cached"], q["in_res"], q["out_res"]
    w_pass = np.where(cached, 1.0, w_pass)
    w_hbm = np.where(cached, 0.0, q["w_bytes"] * w_pass)
    in_hbm = np.where(in_res, 0.0, q["in_bytes"] * i_pass)
    out_hbm = np.where(out_res, 0.0, q["out_bytes"])
    b, g, ms, k, n, df = q["b"], q["g"], q["ms"], q["k"], q["n"], q["df"]
    mk, kn, mn = ms * k * b * g, k * n * b * g, ms * n * g
    in_reads = np.where(df == IS, mk, mk * q["nf"])
    w_reads = np.where(df == WS, kn * chunks,
                       np.where(df == IS, kn * _ceil(ms / q["c"]), kn * _ceil(ms / q["r"])))
    acc = np.where(df == OS, 0.0, mn * q["b_acc"] * q["kf"])
    out_write = mn * b
    return {
        "hbm_weight": w_hbm, "hbm_input": in_hbm, "hbm_output": out_hbm,
        "sram_read": in_reads + w_reads + acc + out_hbm,
        "sram_write": out_write + acc + in_hbm + w_hbm,
        "sram_input": in_reads + out_write + in_hbm + out_hbm,
        "sram_weight": w_reads + w_hbm, "sram_output": acc + acc,
        "weight_passes": w_pass, "input_passes": np.where(in_res, 0.0, i_pass),
        "chunks": chunks,
        # what the note of the reference says (text built only where a pass repeats)
        "note_w": ~cached & (w_pass > 1), "note_i": (i_pass > 1) & ~in_res,
    }


def vector_traffic(p: dict) -> dict:
    fused = p["fused"]
    b = p["b"]
    in_bytes, out_bytes = p["in_el"] * b, p["out_el"] * b
    in_hbm = np.where(p["in_res"], 0.0, in_bytes)
    out_hbm = np.where(p["out_res"], 0.0, out_bytes)
    zero = np.zeros_like(b)

    def z(x):
        return np.where(fused, 0.0, x)
    return {
        "hbm_weight": zero, "hbm_input": z(in_hbm), "hbm_output": z(out_hbm),
        "sram_read": z(in_bytes + out_hbm), "sram_write": z(out_bytes + in_hbm),
        "sram_input": z(in_bytes + out_bytes + in_hbm + out_hbm), "sram_weight": zero,
        "sram_output": zero, "weight_passes": zero, "input_passes": zero, "chunks": zero,
        "note_w": np.zeros(len(b), bool), "note_i": np.zeros(len(b), bool),
    }


def hbm_total(t: dict) -> np.ndarray:
    return t["hbm_weight"] + t["hbm_input"] + t["hbm_output"]


def first_tile(at: dict, t: dict) -> np.ndarray:
    """HBM weight bytes of each array's first tile (what the previous layer can prefetch)."""
    return t["hbm_weight"] / (np.maximum(at["used"], 1) * np.maximum(at["steps"], 1))


_PLAN_AT = ("used", "steps", "substeps", "stream", "load", "fill_drain")
_PLAN_T = ("hbm_weight", "hbm_input", "hbm_output")


def pipelined_makespan(at: dict, t: dict, bw: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Flow-shop makespan of every row's block plan, nothing preloaded (``flow_shop_cycles``).

    A block plan depends on nine of a row's numbers, not on its bandwidth or depth, and a sweep
    (points differing in bandwidth, a layer repeated in a network) repeats plans: each distinct
    plan is built once, from rows equal to the last bit, and the recurrence runs for every row;
    plans are built in groups of similar block counts so that short plans are not padded to the
    longest. Element-wise arithmetic on equal inputs, so the result is the same to the last bit.
    """
    rows = len(bw)
    if rows == 0:
        return np.zeros(0)
    key = np.ascontiguousarray(np.stack([at[k] for k in _PLAN_AT] + [t[k] for k in _PLAN_T],
                                        axis=1).astype(np.float64))
    _, first, inv = np.unique(key.view(np.dtype((np.void, key.shape[1] * 8))).ravel(),
                              return_index=True, return_inverse=True)
    inv = inv.ravel()
    u_at = {k: at[k][first] for k in _PLAN_AT}
    u_t = {k: t[k][first] for k in _PLAN_T}
    nblk = _block_counts(u_at)
    width = int(nblk.max())
    cyc, ld, st = (np.zeros((width, len(first))) for _ in range(3))
    for sel in _width_groups(nblk):
        w = int(nblk[sel].max())
        part = _block_plan({k: v[sel] for k, v in u_at.items()},
                           {k: v[sel] for k, v in u_t.items()})
        for full, blk in zip((cyc, ld, st), part):
            full[width - w:, sel] = blk   # front padding: empty blocks, as in one call
    depths = sorted(set(depth.tolist()))   # np.unique on floats would import numpy.ma (~20 ms)
    if len(depths) == 1:   # one buffer depth (a sweep that does not vary it): one gather
        cyc, ld, st = (np.take(m, inv, axis=1) for m in (cyc, ld, st))
        return _flow_shop(cyc, ld, st, bw, int(depths[0]))
    out = np.empty(rows)
    for d in depths:
        sel = np.flatnonzero(depth == d)
        cs, ls, ss = (np.take(m, inv[sel], axis=1) for m in (cyc, ld, st))
        out[sel] = _flow_shop(cs, ls, ss, bw[sel], int(d))
    return out


def _block_counts(at: dict) -> np.ndarray:
    """Blocks in each row's plan (as :func:`_block_plan` lays them out)."""
    s, n = at["substeps"], at["steps"]
    parts = np.minimum(MAX_BLOCKS, s * (n - 2))
    few = n <= 3
    total = np.where(n <= 1, 0.0, np.where(few, s * (n - 1), s)) + np.where(few, 0.0, parts) + s
    size = np.where(total <= MAX_BLOCKS + 2, 1.0, _ceil((total - 2) / MAX_BLOCKS))
    middle = np.where(total > 2, _ceil((total - 2) / size), 0.0)
    return 1 + middle + (total > 1)


def _width_groups(nblk: np.ndarray, groups: int = 4) -> list[np.ndarray]:
    """Row indices in up to ``groups`` sets of similar block counts (quantiles of the count)."""
    order = np.argsort(nblk, kind="stable")
    return [g for g in np.array_split(order, min(groups, len(order))) if len(g)]


def _block_plan(at: dict, t: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(compute cycles, HBM bytes loaded, bytes stored) per block (axis 0) of every row's plan,
    front-padded with empty blocks to the longest plan."""
    rows = len(at["steps"])
    folds = np.maximum(at["used"], 1) * np.maximum(at["steps"], 1)
    w, i, o = t["hbm_weight"] / folds, t["hbm_input"] / folds, t["hbm_output"] / folds
    s, n = at["substeps"], at["steps"]
    step = np.maximum(at["stream"], at["load"])
    a = (step / s, i / s + w / s, o / s)
    z = (at["stream"] / s, i / s, o / s)
    parts = np.minimum(MAX_BLOCKS, s * (n - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        body = tuple(v * s * (n - 2) / parts for v in a)
    one, few = n <= 1, n <= 3
    c1 = np.where(one, 0.0, np.where(few, s * (n - 1), s))
    c2 = np.where(few, 0.0, parts)
    c3 = s
    pieces = ((a, c1), (body, c2), (z, c3))
    total = c1 + c2 + c3
    size = np.where(total <= MAX_BLOCKS + 2, 1.0, _ceil((total - 2) / MAX_BLOCKS))
    middle = np.where(total > 2, _ceil((total - 2) / size), 0.0)
    nblk = 1 + middle + (total > 1)
    width = int(nblk.max())
    j = np.arange(width)[:, None] - (width - nblk)[None, :]   # real block index; < 0: padding
    lo = np.where(j == 0, 0.0, 1 + (j - 1) * size)
    hi = np.where(j == 0, 1.0, np.minimum(lo + size, total - 1))
    last = (j == nblk - 1) & (total > 1)
    lo = np.where(last, total - 1, lo)
    hi = np.where(last, total, hi)
    valid = j >= 0
    comp = [np.zeros((width, rows)) for _ in range(3)]
    start = np.zeros(rows)
    for v, cnt in pieces:
        kk = np.minimum(hi, start + cnt) - np.maximum(lo, start)
        start = start + cnt
        use = valid & (kk > 0)
        for q in range(3):
            comp[q] = comp[q] + np.where(use, v[q] * kk, 0.0)
    cyc, ld, st = comp
    first = j == 0
    cyc = np.where(first, cyc + at["load"], cyc)
    ld = np.where(first, ld + w, ld)
    cyc = np.where(j == nblk - 1, cyc + at["fill_drain"], cyc)
    return cyc, ld, st


def _flow_shop(cyc, ld, st, bw, depth: int) -> np.ndarray:
    width, rows = cyc.shape
    chan = np.zeros(rows)
    comp_end = np.zeros((width, rows))
    prev = np.zeros(rows)
    for e in range(width):
        if e >= depth:
            begin = np.maximum(chan, comp_end[e - depth])
            chan = begin + (ld[e] + st[e - depth]) / bw
        else:
            chan = chan + (ld[e] + 0.0) / bw
        prev = np.maximum(prev, chan) + cyc[e]
        comp_end[e] = prev
    tail = np.zeros(rows)
    for e in range(max(0, width - depth), width):
        tail = tail + st[e]
    return np.maximum(prev, chan) + tail / bw

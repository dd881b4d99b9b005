"""Roofline: pure functions. Attainable throughput is the lowest roof a layer sits under.

A chip has one compute roof per numeric format (``chip.peak_tops(fmt)``, 2 ops per MAC), a vector
roof (the vector unit's element ops per second) and two memory slopes: HBM (bytes/s after the
configured efficiency) and on-chip SRAM. A layer has one operational intensity per memory level
(ops per HBM byte, ops per SRAM byte), so it is a point under each slope: the *hierarchical*
roofline (Yang et al., "Hierarchical Roofline Analysis", 2020). Its attainable throughput is::

    attainable = min(compute roof, hbm_bw x ops/HBM byte, sram_bw x ops/SRAM byte)

GEMM layers count ops = 2 x MACs against the format's compute roof; vector layers count their
element ops against the vector roof. The per-layer quantities have one source each:
:func:`layer_ops`, :func:`intensity`, :func:`roof_tops` and :func:`achieved_tops` here, called by
the simulator, which writes ``kind``, ``fused``, ``ops``, ``intensity``, ``roof_tops`` (the HBM
roof: min(peak, HBM bandwidth x intensity)) and ``achieved_tops`` into ``layers.csv``. The
roofline table reads those columns (it never guesses GEMM vs vector from ``macs == 0``) and adds
the SRAM roof, so its ``attainable_tops`` <= ``layers.csv``'s ``roof_tops``; its ``peak_tops`` is
the flat roof (the format's compute peak, or the vector roof).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .formats import get_format

if TYPE_CHECKING:
    import pandas as pd

    from .config import ChipConfig

BOUNDS = ("compute", "hbm", "sram", "vector")
MEMORY_BOUNDS = ("hbm", "sram")

# Columns of the per-layer roofline table (``tpusim roofline``'s CSV), in order.
TABLE_COLUMNS = (
    "workload", "name", "op", "kind", "count", "format", "m", "k", "n", "ops", "cycles",
    "time_s", "time_share", "hbm_bytes", "sram_bytes", "ops_per_hbm_byte", "ops_per_sram_byte",
    "on_chip", "peak_tops", "attainable_tops", "achieved_tops", "pct_of_attainable", "roof",
    "bound", "reason",
)
# Columns of the per-workload table (``--per-workload``).
WORKLOAD_COLUMNS = (
    "workload", "format", "ops", "time_s", "hbm_bytes", "sram_bytes", "ops_per_hbm_byte",
    "ops_per_sram_byte", "peak_tops", "attainable_tops", "achieved_tops", "pct_of_attainable",
    "roof_time_s", "headroom", "bound", "memory_bound_fraction", "share_compute", "share_hbm",
    "share_sram", "share_vector",
)


def layer_ops(kind: str, macs: float, vector_ops: float) -> float:
    """Ops of one layer instance: 2 x MACs for a GEMM, element ops for a vector op."""
    return float(vector_ops) if kind == "vector" else 2.0 * float(macs)


def intensity(ops: float, hbm_bytes: float) -> float:
    """Ops per HBM byte; infinite when the layer moves nothing to or from HBM."""
    return ops / hbm_bytes if hbm_bytes > 0 else math.inf


def achieved_tops(ops: float, latency_s: float) -> float:
    """Ops per second (in TOPS) over the layer's own time; 0 when it takes no time."""
    return ops / latency_s / 1e12 if latency_s > 0 else 0.0


def roof_tops(peak_tops: float, bandwidth_bytes_s: float, intensity: float) -> float:
    """Attainable TOPS at ``intensity`` ops per HBM byte."""
    if math.isinf(intensity):
        return peak_tops
    return min(peak_tops, bandwidth_bytes_s * intensity / 1e12)


def ridge_point(peak_tops: float, bandwidth_bytes_s: float) -> float:
    """Intensity (ops/byte) where the memory slope meets the compute roof."""
    return peak_tops * 1e12 / bandwidth_bytes_s


def bound_of(kind: str, lt) -> str:
    """What limits a layer: the largest of its compute, HBM and SRAM times."""
    if lt.stall_sram_cycles > 0:
        return "sram"
    if kind == "vector":
        return "hbm" if lt.hbm_cycles > lt.compute_cycles else "vector"
    return "hbm" if lt.hbm_cycles > lt.compute_cycles else "compute"


# ------------------------------------------------------------------ roofs of a chip

def derived_sram_bytes_per_cycle(chip: "ChipConfig", fmt: str) -> float:
    """SRAM bytes per cycle per array that keep every PE busy in ``fmt``, when the config gives
    no SRAM bandwidth.

    Assumption: each cycle an array takes one operand vector along its rows and one along its
    columns (``rows + cols`` elements), reads and writes one row of partial sums (``2 x cols``
    accumulators), and receives ``rows x cols / L`` stationary elements (a tile shifts in over
    ``L = timing.weight_load_cycles`` cycles, default ``rows``); packed formats stream
    ``rate`` operands per cycle.
    """
    f = get_format(fmt)
    r, c = chip.array.rows, chip.array.cols
    rate = max(1.0, chip.native_rate(fmt))
    load = min(chip.timing.weight_load_cycles or r, r)
    stream = rate * ((r + c) * f.bytes_per_element + 2 * c * f.accumulator_bytes)
    return stream + r * c * f.bytes_per_element / load


@dataclass(frozen=True)
class ChipRoofs:
    """The roofs of one chip: compute per format and vector in TOPS, memory in bytes/s."""

    chip: str
    clock_hz: float
    compute_tops: dict[str, float]
    vector_tops: float
    hbm_bytes_s: float
    sram_bytes_s: dict[str, float]
    sram_limits: bool              # the timing model enforces the SRAM roof (configured)
    assumptions: tuple[str, ...] = ()
    offchip: str = "HBM"           # the off-chip memory's kind (memory.hbm.kind: DDR3, USB3...)

    def ridge(self, fmt: str, level: str = "hbm") -> float:
        """Ops per byte of ``level`` (``hbm``/``sram``) where its slope meets ``fmt``'s roof."""
        bw = self.hbm_bytes_s if level == "hbm" else self.sram_bytes_s[fmt]
        return ridge_point(self.compute_tops[fmt], bw)

    def peak(self, kind: str, fmt: str | None) -> float:
        """The flat roof of a ``kind`` (``gemm``/``vector``) layer: ``fmt``'s peak or vector."""
        return self.vector_tops if kind == "vector" else self.compute_tops[fmt]

    def hbm_roof(self, kind: str, fmt: str | None, ops_per_hbm_byte: float) -> float:
        """``layers.csv``'s ``roof_tops``: min(flat roof, HBM bandwidth x ops per HBM byte)."""
        return roof_tops(self.peak(kind, fmt), self.hbm_bytes_s, ops_per_hbm_byte)

    @property
    def vector_ridge(self) -> float:
        return ridge_point(self.vector_tops, self.hbm_bytes_s)

    def attainable(self, fmt: str | None, ops_per_hbm_byte: float,
                   ops_per_sram_byte: float = math.inf, vector: bool = False) -> tuple[float, str]:
        """(attainable TOPS, the roof it lies on) for a GEMM in ``fmt`` or a vector op."""
        peak = self.vector_tops if vector else self.compute_tops[fmt]
        cands = [(peak, "vector" if vector else "compute"),
                 (_slope(self.hbm_bytes_s, ops_per_hbm_byte), "hbm")]
        if self.sram_limits and not vector:
            cands.append((_slope(self.sram_bytes_s[fmt], ops_per_sram_byte), "sram"))
        return min(cands, key=lambda t: t[0])


def _slope(bandwidth_bytes_s: float, intensity: float) -> float:
    if intensity is None or (isinstance(intensity, float) and math.isnan(intensity)):
        return math.inf
    return math.inf if math.isinf(intensity) else bandwidth_bytes_s * intensity / 1e12


def chip_roofs(chip: "ChipConfig", formats: list[str] | tuple[str, ...] | None = None) -> ChipRoofs:
    """Compute roofs for ``formats`` (default: every format the chip runs), vector, HBM, SRAM."""
    fmts = list(formats) if formats else list(chip.formats)
    clock = chip.clock_ghz * 1e9
    hbm = chip.memory.hbm
    arrays = chip.array.count
    configured = chip.memory.sram.bandwidth_bytes_per_cycle
    assumptions = [f"Off-chip ({hbm.kind}) roof = {hbm.bandwidth_gbps:g} GB/s x efficiency "
                   f"{hbm.efficiency:g}."]
    if configured:
        sram = {f: configured * arrays * clock for f in fmts}
        assumptions.append(f"SRAM roof = memory.sram.bandwidth_bytes_per_cycle {configured:g} "
                           f"B/cycle x {arrays} arrays x {chip.clock_ghz:g} GHz.")
    else:
        sram = {f: derived_sram_bytes_per_cycle(chip, f) * arrays * clock for f in fmts}
        assumptions.append("SRAM roof derived from what feeds the arrays at full rate (operand "
                           "rows, partial sums, weight shift-in); the config sets no SRAM "
                           "bandwidth, so the timing model never stalls on SRAM.")
    assumptions.append(f"Vector roof = {chip.vector.ops_per_cycle:g} element ops/cycle x "
                       f"{chip.clock_ghz:g} GHz.")
    return ChipRoofs(
        chip=chip.name, clock_hz=clock,
        compute_tops={f: chip.peak_tops(f) for f in fmts},
        vector_tops=chip.vector.ops_per_cycle * clock / 1e12,
        hbm_bytes_s=hbm.bytes_per_s,
        sram_bytes_s=sram, sram_limits=bool(configured), assumptions=tuple(assumptions),
        offchip=str(hbm.kind))


def roof_notes(roofs: ChipRoofs) -> list[str]:
    """Each roof and ridge in words, then the roofs' assumptions (the chart page's notes)."""
    notes = [f"{f}: compute roof {p:.4g} TOPS, {roofs.offchip} ridge {roofs.ridge(f):,.0f} ops/B, "
             f"SRAM ridge {roofs.ridge(f, 'sram'):,.3g} ops/B"
             for f, p in roofs.compute_tops.items()]
    notes.append(f"vector roof {roofs.vector_tops:.4g} TOPS (element ops), ridge "
                 f"{roofs.vector_ridge:,.3g} ops/B")
    return notes + list(roofs.assumptions)


# ------------------------------------------------------------------ per layer

def _mib(x: float) -> str:
    from .units import nbytes
    return nbytes(x, 3)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _mapped_fraction(chip: "ChipConfig", m: int, k: int, n: int) -> float:
    """Share of the R x C PEs the layer's folds cover (ws: k x n, os: m x n, is: k x m)."""
    from .timing.systolic import fold_dims, mapped_fraction
    sr, sc, _ = fold_dims(m, k, n, chip.array.dataflow)
    return mapped_fraction(sr, sc, chip.array.rows, chip.array.cols)


def layer_reason(row: dict[str, Any], chip: "ChipConfig", roofs: ChipRoofs, first: bool,
                 last: bool) -> str:
    """Why a layer sits where it does, in words an architect would use."""
    parts: list[str] = []
    bound = row["bound"]
    cycles = float(row["cycles"]) or 1.0
    compute = float(row["compute_cycles"])
    buf = chip.memory.sram.input_kib / 1024
    if row.get("fused") and float(row["cycles"]) == 0:
        return "fused into the previous layer's output pipeline"
    if bound == "hbm":
        hbm = float(row["hbm_read_bytes"] + row["hbm_write_bytes"])
        streams = {"weights": row["stall_weight_cycles"], "inputs": row["stall_input_cycles"],
                   "outputs": row["stall_output_cycles"]}
        main = max(streams, key=lambda s: streams[s])
        if row["kind"] == "vector":
            ridge = roofs.vector_ridge
        else:
            ridge = roofs.ridge(row["format"])
        parts.append(f"{roofs.offchip}-bound: {_mib(hbm)} at {roofs.hbm_bytes_s / 1e9:.3g} GB/s "
                     "take "
                     f"{_num(row['hbm_cycles'])} cycles vs {_num(compute)} compute cycles "
                     f"({_num(row['ops_per_hbm_byte'])} ops/B < ridge {_num(ridge)} ops/B); "
                     f"traffic mostly {main}")
    elif bound == "sram":
        parts.append(f"SRAM-bound: {_mib(row['sram_bytes'])} through "
                     f"{chip.memory.sram.bandwidth_bytes_per_cycle:g} B/cycle per array")
    elif bound == "vector":
        from .units import number
        parts.append(f"vector-bound: {number(row['ops'], 3)} element ops at "
                     f"{chip.vector.ops_per_cycle:g} ops/cycle")
    else:
        util = row["achieved_tops"] / row["peak_tops"] if row["peak_tops"] else 0.0
        parts.append(f"compute-bound at {util:.0%} of the {row['format']} peak")
        if row.get("roof") == "hbm":
            parts.append(f"its {roofs.offchip} roof ({row['attainable_tops']:.3g} TOPS) is "
                         "lower, but the "
                         f"arrays take longer than the transfers")
    if row["kind"] == "gemm" and compute > 0 and bound == "compute":
        shift = float(row["weight_shift_cycles"])
        load = chip.timing.weight_load_cycles or chip.array.rows
        if shift > 0.2 * compute:
            parts.append(f"weight-load (shift) bound: {shift / compute:.0%} of array cycles "
                         f"shift weights (each tile streams fewer rows than its {load}-cycle "
                         f"shift-in)")
        if float(row["fill_drain_cycles"]) > 0.2 * compute:
            parts.append(f"fill/drain {row['fill_drain_cycles'] / compute:.0%} of array cycles "
                         f"(short stream)")
        frac = _mapped_fraction(chip, int(row["m"]), int(row["k"]), int(row["n"]))
        if frac < 0.75:
            parts.append(f"shape fills {frac:.0%} of the {chip.array.rows}x{chip.array.cols} "
                         f"array")
    if row.get("note"):
        parts.append(str(row["note"]))
    if not row["output_on_chip"] and not last and row["hbm_write_bytes"] > 0:
        parts.append(f"output {_mib(row['hbm_write_bytes'])} spilled to {roofs.offchip}: "
                     "input + output do "
                     f"not fit the {buf:g} MiB activation buffer")
    if not row["input_on_chip"] and not first and row["kind"] == "gemm":
        parts.append(f"input read back from {roofs.offchip} (the previous output did not "
                     "stay on chip)")
    if float(row["overhead_cycles"]) > 0.2 * cycles:
        parts.append(f"per-op overhead {row['overhead_cycles'] / cycles:.0%} of its time")
    return "; ".join(parts)


def layer_table(layers: "pd.DataFrame", chip: "ChipConfig", roofs: ChipRoofs | None = None,
                workload: str = "") -> "pd.DataFrame":
    """Per-layer roofline of one simulated workload (``Result.layers``): intensities per memory
    level, attainable and achieved TOPS, the bound and its reason. Columns: ``TABLE_COLUMNS``."""
    import pandas as pd

    roofs = roofs or chip_roofs(chip)
    clock = chip.clock_ghz * 1e9
    df = layers.reset_index(drop=True)
    total_time = float((df["cycles"] * df["count"]).sum()) / clock
    not_fused = [i for i in range(len(df)) if not df["fused"][i]]
    first, last = (not_fused[0], not_fused[-1]) if not_fused else (-1, -1)
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        kind, ops = r["kind"], float(r["ops"])
        i_hbm = float(r["intensity"])      # NaN for a row with no HBM traffic (on_chip)
        hbm = float(r["hbm_read_bytes"] + r["hbm_write_bytes"])
        sram = float(r["sram_read_bytes"] + r["sram_write_bytes"])
        i_sram = intensity(ops, sram)
        latency = float(r["cycles"]) / clock
        fmt = r["format"]
        attain, roof = roofs.attainable(fmt, i_hbm, i_sram, vector=kind == "vector")
        achieved = float(r["achieved_tops"])
        row = {
            "workload": workload, "name": r["name"], "op": r["op"], "kind": kind,
            "count": int(r["count"]), "format": fmt, "m": r["m"], "k": r["k"], "n": r["n"],
            "ops": ops, "cycles": float(r["cycles"]), "time_s": latency * r["count"],
            "time_share": latency * r["count"] / total_time if total_time else 0.0,
            "hbm_bytes": hbm, "sram_bytes": sram, "ops_per_hbm_byte": i_hbm,
            "ops_per_sram_byte": i_sram, "on_chip": hbm <= 0, "peak_tops": roofs.peak(kind, fmt),
            "attainable_tops": attain, "achieved_tops": achieved,
            "pct_of_attainable": achieved / attain if attain > 0 else 0.0,
            "roof": roof, "bound": r["bound"],
        }
        ctx = {**r, **row}
        row["reason"] = layer_reason(ctx, chip, roofs, i == first, i == last)
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for col in ("m", "k", "n"):
        out[col] = out[col].astype("Int64")
    return out


# ------------------------------------------------------------------ per model

def roof_time_s(table: "pd.DataFrame", roofs: ChipRoofs) -> float:
    """Time the workload would take if every layer ran exactly at its attainable roof."""
    t = 0.0
    for r in table.itertuples():
        if r.attainable_tops > 0 and math.isfinite(r.attainable_tops):
            t += r.ops / (r.attainable_tops * 1e12) * r.count
    return t


def workload_summary(table: "pd.DataFrame", roofs: ChipRoofs) -> dict[str, Any]:
    """One workload (one format) as a single roofline point, plus its time per bound.

    ``ops`` counts GEMM ops (2 x MACs) only, as ``summary.json``'s ``achieved_tops`` does;
    vector layers add their time and bytes. ``attainable_tops`` = ops / the time the layers take
    when each runs exactly at its own roof; it never exceeds the roof line at the workload's
    aggregate intensity (sums of per-layer bounds). ``headroom`` = time / that time (>= 1).
    """
    cnt = table["count"]
    gemm = table["kind"] == "gemm"
    time_s = float(table["time_s"].sum())
    ops = float((table["ops"] * cnt)[gemm].sum())
    hbm = float((table["hbm_bytes"] * cnt).sum())
    sram = float((table["sram_bytes"] * cnt).sum())
    fmts = table.loc[gemm, "format"]
    fmt = str((table["ops"] * cnt)[gemm].groupby(fmts).sum().idxmax()) if gemm.any() else ""
    i_hbm = ops / hbm if hbm > 0 else math.inf
    i_sram = ops / sram if sram > 0 else math.inf
    peak = roofs.compute_tops[fmt] if fmt else 0.0
    roof_t = roof_time_s(table, roofs)
    attain = ops / roof_t / 1e12 if roof_t > 0 else 0.0
    achieved = ops / time_s / 1e12 if time_s > 0 else 0.0
    share = {b: float(table.loc[table["bound"] == b, "time_s"].sum() / time_s) if time_s else 0.0
             for b in BOUNDS}
    return {
        "workload": str(table["workload"].iloc[0]) if len(table) else "",
        "format": fmt if fmts.nunique() <= 1 else "mixed", "ops": ops, "time_s": time_s,
        "hbm_bytes": hbm, "sram_bytes": sram, "ops_per_hbm_byte": i_hbm,
        "ops_per_sram_byte": i_sram, "peak_tops": peak, "attainable_tops": attain,
        "achieved_tops": achieved,
        "pct_of_attainable": achieved / attain if attain > 0 else 0.0,
        "roof_time_s": roof_t, "headroom": time_s / roof_t if roof_t > 0 else math.inf,
        "bound": max(share, key=lambda b: share[b]) if time_s else "",
        "memory_bound_fraction": sum(share[b] for b in MEMORY_BOUNDS),
        **{f"share_{b}": share[b] for b in BOUNDS},
    }


def workload_table(tables: list["pd.DataFrame"], roofs: ChipRoofs) -> "pd.DataFrame":
    """One row per (workload, format) table: the ``--per-workload`` view."""
    import pandas as pd

    return pd.DataFrame([workload_summary(t, roofs) for t in tables],
                        columns=list(WORKLOAD_COLUMNS))

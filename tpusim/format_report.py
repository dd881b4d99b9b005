"""The per-format table: area, energy, peak throughput and numeric error of every numeric format
on one chip (``tpusim formats``), and its HTML page.

Each row costs a format's MAC as the chip runs it (emulated formats: passes x the emulating MAC)
and as a native datapath would; its area is the array the chip builds (an emulated format uses
the emulating format's array); ``gemm_rel_error`` is the relative Frobenius error of a seeded
random GEMM computed bit-accurately in the format (:mod:`tpusim.numerics`) against float64.
"""
from __future__ import annotations

import math

from .errors import InputError
from .formats import FORMAT_NAMES, get_format

COLUMNS = (
    "format", "support", "bits", "exponent_bits", "mantissa_bits", "accumulator",
    "bytes_per_element", "multiplier_full_adders", "mac_area_um2", "multiplier_area_um2",
    "float_align_area_um2", "accumulator_area_um2", "register_area_um2", "mac_energy_pj",
    "native_mac_energy_pj", "macs_per_pe", "array_area_mm2", "sram_area_mm2", "chip_area_mm2",
    "peak_tops", "tops_per_mm2", "array_tops_per_mm2", "tops_per_w", "datapath_tops_per_w",
    "gemm_rel_error", "latency_s", "energy_j", "note",
)


def _support(chip, name: str) -> tuple[str, str]:
    sup = chip.formats.get(name)
    if sup is None:
        return "unsupported", (f"{chip.name} runs {'|'.join(chip.formats)}: no native path or "
                               "emulation for this format; area, energy and error are those of "
                               "a native datapath; throughput and latency are empty")
    if sup.emulate:
        return "emulated", (f"{sup.passes} {sup.emulate} passes per MAC; area is the "
                            f"{sup.emulate} array that runs them")
    if sup.rate > 1:
        return "packed", f"{sup.rate:g} MACs per PE per cycle"
    if sup.rate < 1:
        return "native", f"{sup.rate:g} MACs per PE per cycle"
    return "native", ""


def format_rows(chip, names: list[str], workload=None, gemm_size: int = 256,
                seed: int = 0) -> list[dict]:
    """One row per format (see COLUMNS); ``workload`` adds its latency and energy per format."""
    from .area import chip_area, hardware_area, pe_area
    from .energy import mac_pj, native_mac_pj
    from .numerics import gemm_rel_error

    rows = []
    for name in names:
        f = get_format(name)
        support, note = _support(chip, f.name)
        runs = support != "unsupported"
        hw = hardware_area(chip, f.name)   # as a run reports it (a rate < 1: a slower PE)
        own = chip_area(chip, f.name)
        parts = pe_area(f, chip.energy.node_nm, chip.name).parts_um2
        energy = mac_pj(chip, f.name)
        native_energy = native_mac_pj(chip, f.name)
        peak = chip.peak_tops(f.name) if runs else math.nan
        row = {
            "format": f.name, "support": support, "bits": f.bits,
            "exponent_bits": f.exponent_bits, "mantissa_bits": f.mantissa_bits,
            "accumulator": f.accumulator, "bytes_per_element": f.bytes_per_element,
            "multiplier_full_adders": f.multiplier_full_adders,
            "mac_area_um2": own.mac_um2, "multiplier_area_um2": parts["multiplier"],
            "float_align_area_um2": sum(parts.get(p, 0.0) for p in
                                        ("exponent_adder", "alignment", "normalisation")),
            "accumulator_area_um2": parts["accumulator_adder"],
            "register_area_um2": parts["registers"], "mac_energy_pj": energy,
            "native_mac_energy_pj": native_energy, "macs_per_pe": hw.macs_per_pe,
            "array_area_mm2": hw.array_mm2, "sram_area_mm2": hw.sram_mm2,
            "chip_area_mm2": hw.total_mm2, "peak_tops": peak,
            # per mm² of the chip, as summary.json's tops_per_mm2; and of the MAC array alone
            "tops_per_mm2": peak / hw.total_mm2 if runs else math.nan,
            "array_tops_per_mm2": peak / hw.array_mm2 if runs else math.nan,
            # MAC datapath only: 2 ops per MAC over the MAC's energy (pJ) -> TOPS/W.
            "tops_per_w": 2.0 / energy if runs else math.nan,
            "datapath_tops_per_w": 2.0 / native_energy,
            "gemm_rel_error": gemm_rel_error(f.name, gemm_size, gemm_size, gemm_size, seed,
                                             chip=chip),
            "latency_s": math.nan, "energy_j": math.nan, "note": note,
        }
        if workload is not None:
            if runs:
                from .simulator import simulate
                try:
                    res = simulate(chip, workload, format=f.name)
                    row["latency_s"] = res.summary["latency_s"]
                    row["energy_j"] = res.summary["energy_j"]
                except InputError as exc:  # e.g. a tile in this format does not fit a buffer
                    row["note"] = "; ".join(p for p in (note, f"workload: {exc}") if p)
        rows.append(row)
    return rows


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (higher TOPS/W and lower error both better)."""
    keep = []
    for i, (eff, err) in enumerate(points):
        if not any((e2 >= eff and r2 <= err) and (e2 > eff or r2 < err)
                   for j, (e2, r2) in enumerate(points) if j != i):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][1])


def _log_range(values: list[float], pad: float = 0.35) -> tuple[float, float]:
    logs = [math.log10(v) for v in values if v and v > 0 and math.isfinite(v)]
    return (min(logs) - pad, max(logs) + pad) if logs else (0.0, 1.0)


def _labels(fig, points: list[tuple[float, float, str]], xr, yr) -> None:
    """Each format's name beside its point, clear of the other names and points
    (:func:`tpusim.chart_labels.place`; the plot area is taken as 800 x 330 px)."""
    from .chart_labels import place
    pts = [p for p in points if p[0] > 0 and p[1] > 0 and math.isfinite(p[1])]
    for (x, y, t), (ax, ay) in zip(pts, place(pts, xr, yr, size=(800.0, 330.0), marker_px=14)):
        fig.add_annotation(x=math.log10(x), y=math.log10(y), text=t, ax=ax, ay=ay,
                           showarrow=True, arrowhead=0, arrowwidth=1, arrowcolor="#999",
                           font={"size": 11})


def formats_html(df, chip_name: str, workload_name: str | None) -> str:
    import html

    import plotly.graph_objects as go

    from .html_page import figures_html, page

    area = go.Figure()
    for col, label in (("multiplier_area_um2", "multiplier"),
                       ("float_align_area_um2", "exponent, alignment, normalisation"),
                       ("accumulator_area_um2", "accumulator adder"),
                       ("register_area_um2", "registers")):
        area.add_bar(x=df["format"], y=df[col], name=label)
    area.add_scatter(x=df["format"], y=df["mac_area_um2"], mode="text", showlegend=False,
                     text=[f"{v:.3g}" for v in df["mac_area_um2"]], textposition="top center")
    area.update_layout(title="Area of one MAC (PE) per format, µm² at the chip's node",
                       yaxis_title="µm²", barmode="stack", legend_orientation="h")
    energy = go.Figure()
    energy.add_bar(x=df["format"], y=df["native_mac_energy_pj"], name="native datapath")
    energy.add_bar(x=df["format"], y=df["mac_energy_pj"], name=f"as {chip_name} runs it")
    energy.update_layout(title="Energy of one MAC per format, pJ", yaxis_title="pJ",
                         yaxis_type="log", barmode="group")
    eff = [t if t == t else d for t, d in zip(df["tops_per_w"], df["datapath_tops_per_w"])]
    on_chip = [t == t for t in df["tops_per_w"]]
    err = [max(e, 1e-12) for e in df["gemm_rel_error"]]
    pts = list(zip(eff, err))
    front = _pareto(pts)
    pareto = go.Figure()
    for flag, label, symbol in ((True, f"runs on {chip_name}", "circle"),
                                (False, "native datapath (not on this chip)", "circle-open")):
        idx = [i for i in range(len(df)) if on_chip[i] == flag]
        if idx:
            pareto.add_scatter(x=[err[i] for i in idx], y=[eff[i] for i in idx],
                               mode="markers", name=label, text=[df["format"].iloc[i] for i in idx],
                               hovertemplate="%{text}: error %{x:.3g}, %{y:,.4g} TOPS/W"
                                             "<extra></extra>",
                               marker={"size": 12, "symbol": symbol})
    pareto.add_scatter(x=[err[i] for i in front], y=[eff[i] for i in front], mode="lines",
                       name="Pareto front", line={"dash": "dot", "color": "#888"})
    xr, yr = _log_range(err), _log_range(eff)
    _labels(pareto, [(e, t, f) for e, t, f in zip(err, eff, df["format"])], xr, yr)
    pareto.update_layout(title="MAC efficiency vs numeric error (up and left is better)",
                         xaxis={"type": "log", "range": list(xr), "title": {
                             "text": "relative Frobenius error of a random GEMM vs float64"}},
                         yaxis={"type": "log", "range": list(yr),
                                "title": {"text": "TOPS/W (MAC datapath)"}}, height=480)
    figs = [area, energy, pareto]
    if workload_name and df["energy_j"].notna().any():
        from .units import unit_for
        uname, usize = unit_for(float(df["energy_j"].max()))   # one unit: the largest's
        wl = go.Figure()
        wl.add_bar(x=df["format"], y=df["energy_j"] / usize, name=f"energy ({uname})",
                   hovertemplate=f"%{{x}}: %{{y:,.4g}} {uname}<extra></extra>")
        wl.update_layout(title=f"{workload_name}: energy per format ({uname})",
                         yaxis_title=uname)
        figs.append(wl)
    show = [c for c in ("format", "support", "bits", "multiplier_full_adders", "mac_area_um2",
                        "mac_energy_pj", "array_area_mm2", "peak_tops", "tops_per_mm2",
                        "array_tops_per_mm2", "tops_per_w", "gemm_rel_error", "latency_s",
                        "energy_j")
            if c in df.columns]
    from .pretty import html_table
    table = html_table(df[show])
    notes = "".join(f"<li><b>{html.escape(f)}</b>: {html.escape(n)}</li>"
                    for f, n in zip(df["format"], df["note"]) if n)
    notes = f"<ul>{notes}</ul>" if notes else ""
    title = f"tpusim formats: {chip_name}" + (f" / {workload_name}" if workload_name else "")
    return page(title, [f"<h1>{html.escape(title)}</h1>", table, notes, *figures_html(figs)])


def format_table(chip, formats: list[str] | None = None, workload=None, gemm_size: int = 256,
                 seed: int = 0):
    """The table as a DataFrame (columns :data:`COLUMNS`; without ``workload`` no
    ``latency_s``/``energy_j``). ``formats`` default to every format tpusim knows. A format the
    chip cannot run is compared too (area, energy, error; empty throughput and a note): weighing
    formats a chip lacks is what the table is for. An unknown name is an :class:`InputError`."""
    import pandas as pd

    if formats is None:
        names = list(FORMAT_NAMES)
    else:
        names = list(dict.fromkeys(get_format(p, "formats", None).name for p in formats))
        if not names:
            raise InputError("formats", None, formats, "name at least one format, e.g. int8")
    df = pd.DataFrame(format_rows(chip, names, workload, gemm_size, seed), columns=list(COLUMNS))
    return df if workload is not None else df.drop(columns=["latency_s", "energy_j"])

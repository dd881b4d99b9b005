"""``tpusim compress``: what each compression technique, and each combination, buys on one chip.

A technique is a :class:`Technique`: a name and a transformation of (workload, chip). The table
runs the dense baseline and every technique and combination through :func:`tpusim.simulate`
(the same model as ``tpusim run``) and reports latency, energy, HBM bytes, MACs and chip area
(area changes only where a technique changes the chip) relative to the baseline, and, where
formats change, the relative error of a seeded 256^3 GEMM computed bit-accurately in those
formats (:func:`mixed_rel_error`).

* ``sparsity`` ``N:M`` or a density ``d``: every static matmul/conv row gets that weight pattern
  (:mod:`tpusim.compression`: skipped on arrays whose ``array.sparsity`` lists it, else storage
  only).
* ``formats`` ``wXaY`` (X, Y in 1|b|t|2|4|8|16; 1 or b = binary, t or 2 = ternary, 16 = bf16,
  else intN; binary x binary runs on the XNOR-popcount datapath where the chip has one):
  every static matmul/conv row gets weight format X and activation format Y; other rows keep
  theirs.
* ``fuse`` (:func:`tpusim.fusion.fuse`): elementwise chains fused into their producers.
* combinations: each sparsity with each format set, and (with ``fuse``) every row above fused.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from .config import ChipConfig
from .errors import InputError
from .formats import datapath_format, get_format
from .sparsity import parse_nm
from .workload import Layer, Workload

Transform = Callable[[Workload, ChipConfig], "tuple[Workload, ChipConfig]"]

_BITS = {"1": "binary", "b": "binary", "t": "ternary", "2": "ternary", "4": "int4", "8": "int8",
         "16": "bf16"}
_WA = re.compile(r"^w(1|b|t|2|4|8|16)a(1|b|t|2|4|8|16)$")

COLUMNS = ("technique", "latency_s", "speedup", "energy_j", "energy_ratio", "hbm_bytes",
           "hbm_ratio", "macs", "chip_mm2", "formats", "gemm_rel_error", "note")


@dataclass(frozen=True)
class Technique:
    """One row of the table: ``apply`` turns the (workload, chip) into the compressed one;
    ``wa``: (weight, activation) formats it sets, for the error column."""

    name: str
    apply: Transform
    wa: tuple[str, str] | None = None


def _static(l: Layer) -> bool:
    return l.kind == "gemm" and l.weights == "static"


def _each_gemm(wl: Workload, **fields: Any) -> Workload:
    return dataclasses.replace(wl, layers=tuple(
        dataclasses.replace(l, **fields) if _static(l) else l for l in wl.layers))


def parse_sparsity(text: str) -> Technique:
    s = text.strip()
    if ":" in s:
        try:
            n, m = parse_nm(s)
        except ValueError as exc:
            raise InputError("--sparsity", None, s, str(exc)) from None
        pat = f"{n}:{m}"
        return Technique(f"sparsity {pat}", lambda wl, c: (_each_gemm(wl, sparsity=pat,
                                                                      density=None), c))
    try:
        d = float(s)
    except ValueError:
        d = math.nan
    if not (0 < d <= 1):
        raise InputError("--sparsity", None, s, "each entry must be N:M (e.g. 2:4) or a "
                         "density 0 < d <= 1 (fraction of non-zero weights)")
    return Technique(f"density {d:g}", lambda wl, c: (_each_gemm(wl, density=d,
                                                                 sparsity=None), c))


def parse_formats(text: str) -> Technique:
    s = text.strip().lower()
    hit = _WA.match(s)
    if not hit:
        raise InputError("--formats", None, text, "each entry must be wXaY with X and Y in "
                         "1|b|t|2|4|8|16 (1/b binary, t/2 ternary; e.g. w4a8, w4a16, wba8, w1a1)")
    w, a = _BITS[hit.group(1)], _BITS[hit.group(2)]
    return Technique(s, lambda wl, c: (_each_gemm(wl, weight_dtype=w, act_dtype=a), c), (w, a))


def combine(a: Technique, b: Technique) -> Technique:
    def apply(wl: Workload, c: ChipConfig):
        return b.apply(*a.apply(wl, c))
    return Technique(f"{a.name} + {b.name}", apply, b.wa or a.wa)


def techniques(sparsity: list[str], formats: list[str], fuse: bool = False,
               batch: int = 1) -> list[Technique]:
    """The table's rows after the baseline: each technique, then each combination."""
    sp = [parse_sparsity(s) for s in sparsity]
    fm = [parse_formats(f) for f in formats]
    out = sp + fm + [combine(s, f) for s in sp for f in fm]
    if fuse:
        from .fusion import fuse as fuse_pass
        # fusion runs last, on the compressed rows (a dequantize row fuses into its GEMM's chain
        # like any elementwise row); the capacity rule uses the table's batch
        fz = Technique("fuse", lambda wl, c: (fuse_pass(wl, c, batch)[0], c))
        out += [fz] + [combine(t, fz) for t in list(out)]
    return out


def mixed_rel_error(weight: str, act: str, datapath: str, size: int = 256, seed: int = 0,
                    tile_k: int | None = None) -> float:
    """Relative Frobenius error of a seeded size^3 GEMM with activations in ``act`` and weights
    in ``weight`` run on a ``datapath`` datapath, against float64 (bit-accurate, as
    :mod:`tpusim.numerics` computes). A float datapath takes the weights dequantized (value x
    scale rounded to it) and accumulates in fp32; an integer datapath multiplies the integer
    (or +-1) codes exactly and accumulates in its saturating int32."""
    from . import numerics as nu
    a, b = nu.random_gemm(size, size, size, seed)
    f = get_format(datapath)
    qa, sa = nu.quantize(a, act)
    qb, sb = nu.quantize(b, weight)
    if f.kind == "float":
        return nu.rel_error(nu.fp32_matmul(nu.round_to(qa * sa, f), nu.round_to(qb * sb, f),
                                           tile_k), a @ b)
    acc = nu.saturating_int_matmul(qa, qb, f.accumulator_bits, tile_k)
    return nu.rel_error(acc.astype(float) * (sa * sb), a @ b)


def _row(name: str, res: Any, base: Any, note: str = "", formats: str = "",
         err: float = math.nan) -> dict[str, Any]:
    s, b = res.summary, base.summary
    return {"technique": name, "latency_s": s["latency_s"],
            "speedup": b["latency_s"] / s["latency_s"] if s["latency_s"] > 0 else math.nan,
            "energy_j": s["energy_j"],
            "energy_ratio": s["energy_j"] / b["energy_j"] if b["energy_j"] else math.nan,
            "hbm_bytes": s["hbm_bytes"],
            "hbm_ratio": s["hbm_bytes"] / b["hbm_bytes"] if b["hbm_bytes"] else math.nan,
            "macs": s["macs"], "chip_mm2": s.get("chip_mm2"), "formats": formats,
            "gemm_rel_error": err, "note": note}


def compress_table(chip: ChipConfig, wl: Workload, techs: list[Technique], batch: int = 1):
    """The table (a DataFrame, :data:`COLUMNS`): baseline first, then ``techs`` in order.
    A technique the chip cannot run (a format it lacks) is a row with the reason in ``note``."""
    import pandas as pd

    from .simulator import simulate
    base = simulate(chip, wl, batch=batch, sparse_report=False)
    rows = [_row("dense baseline", base, base, "",
                 "/".join(base.summary["formats"]))]
    for t in techs:
        w2, c2 = t.apply(wl, chip)
        try:
            res = simulate(c2, w2, batch=batch, sparse_report=False)
        except InputError as exc:
            rows.append({"technique": t.name, "note": f"not run: {exc}"})
            continue
        err, fmts, note = math.nan, "/".join(res.summary["formats"]), ""
        if t.wa:
            dp = datapath_format(*t.wa)
            err = mixed_rel_error(*t.wa, dp, tile_k=c2.array.rows
                                  if c2.array.dataflow == "ws" else None)
            fmts = f"W {t.wa[0]} / A {t.wa[1]} on {dp}"
            if get_format(t.wa[0]).bits < get_format(dp).bits:
                note = ("weights packed; dequantized on the vector unit"
                        if get_format(dp).kind == "float" and get_format(t.wa[0]).kind != "float"
                        else "weights packed; widened on the way into the array")
        if c2.array != chip.array or c2.memory != chip.memory:
            note = (note + "; " if note else "") + "chip changed"
        rows.append(_row(t.name, res, base, note, fmts, err))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _fmt(col: str, v: Any) -> str:
    from . import units
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col == "latency_s":
        return units.seconds(v)
    if col == "energy_j":
        return units.joules(v)
    if col == "hbm_bytes":
        return units.nbytes(v)
    if col in ("speedup", "energy_ratio", "hbm_ratio"):
        return f"{v:.3f}x"
    if col == "gemm_rel_error":
        return f"{v:.3g}"
    if isinstance(v, float):
        return units.number(v)
    return str(v)


def table_text(df) -> list[list[str]]:
    """The table as rows of display strings (header first)."""
    head = [{"latency_s": "latency", "energy_j": "energy"}.get(c, c) for c in COLUMNS]  # shown in units
    return [head] + [[_fmt(c, r[c]) for c in COLUMNS] for _, r in df.iterrows()]


def compress_html(df, chip_name: str, workload_name: str) -> str:
    import html

    from .html_page import page
    rows = table_text(df)
    head = "".join(f"<th class='l'>{html.escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(
        f"<td{' class=l' if c in (0, 9, 11) else ''}>{html.escape(v)}</td>"
        for c, v in enumerate(r)) + "</tr>" for r in rows[1:])
    title = f"Compression on {chip_name}: {workload_name}"
    intro = ("<p class='note'>Each row is the workload after one technique (or combination), "
             "simulated as <code>tpusim run</code> does; ratios are against the dense baseline. "
             "gemm_rel_error: a seeded 256x256x256 GEMM computed bit-accurately in the row's "
             "weight/activation formats, against float64.</p>")
    return page(title, [f"<h1>{html.escape(title)}</h1>", intro,
                        f"<table><tr>{head}</tr>{body}</table>"])

"""Every public check of the presets against measured hardware, in one table.

Each row compares one predicted number with one published or measured one and says which data
fitted which parameter (``fitted_on``): a parameter is never scored on the data that fitted it.

* **TPUv1** (``tpu_v1`` preset, no fitted parameter): measured TOPS of the six production apps
  (Jouppi et al., ISCA 2017, Table 1) on the stand-in traces ``workloads/tpu_v1/*.csv``, and the
  Table 3 cycle shares of MLP0 and CNN0 (array active, weight stall, weight shift, non-matrix).
* **TPU v4 matmuls** (:mod:`tpusim.fidelity_v4`; measured kernel latencies from Dang et al.,
  arXiv 2603.22535, passed as ``measurements``; not shipped, see the README): the calibrated
  ``tpu_v4`` preset (in-sample on the file it was fitted on, so not scored there), and its
  recipe scored by k-fold cross-validation (every kernel predicted by parameters fitted on the
  other folds).
* **Edge TPU** (``edge_tpu`` preset, one fitted parameter): Coral's int8 latencies on the USB
  accelerator with a desktop host (coral.ai/docs/edgetpu/benchmarks) for the zoo models that
  have traces, each predicted leave-one-out (``timing.invoke_cycles`` and the element cost of
  add/mul fitted on the other models' latencies, :mod:`tpusim.edge_fit`).
* **LLM serving** (``tpu_v5e`` and ``llama2_7b`` as published, nothing fitted): JetStream's
  offline Llama-2-7B benchmark on a v5e-8 (AI-Hypercomputer/JetStream, experimental/jax/README.md)
  served by :mod:`tpusim.serve` with TP = 8.
* **FINN BNN** (:mod:`tpusim.fidelity_bnn`; ``finn_zc706`` engines with the published folding,
  nothing fitted): BNN-PYNQ's CNV W1A1 single-image time on Ultra96 and PYNQ-Z2 as FINN's
  dataflow pipeline (:mod:`tpusim.dataflow`).

A check whose inputs are missing is a row with ``status`` ``skipped: missing ...`` (``skipped:
pass --measurements ...`` for the TPU v4 rows when no measurement file is given).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .check_rows import COLUMNS, check_row, shipped_name, skipped_row
from .edge_fit import EDGE_TPU_MS
from .fidelity_v4 import tpu_v4_checks  # noqa: F401  (one section of run_checks)
from .importers import WORKLOAD_DIR


# Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017,
# Table 1 (measured TOPS; peak 92).
TPU_V1_TOPS = {"mlp0": 12.3, "mlp1": 9.7, "lstm0": 3.7, "lstm1": 2.8, "cnn0": 86.0, "cnn1": 14.1}
# Jouppi et al., ISCA 2017, Table 3: share of cycles (MLP0, CNN0).
TPU_V1_SHARES = {
    "mlp0": {"array active": 0.127, "weight stall": 0.539, "weight shift": 0.159,
             "non-matrix": 0.175},
    "cnn0": {"array active": 0.782, "weight stall": 0.0, "weight shift": 0.0,
             "non-matrix": 0.218},
}
NO_FIT_V1 = "none: tpu_v1 preset from Jouppi 2017 constants; no parameter fitted to Table 1 or 3"
# Why an app sits outside the band, in the row's note (docs/tpu_v1_realism.md has the numbers).
TPU_V1_NOTES = {
    "lstm1": ("outside the band by construction: 2.8 TOPS is 43% of the DDR3 roof Table 1 implies "
              "(96 MACs per weight byte x 34 GB/s = 6.5 TOPS; MLP0/MLP1/LSTM0 reach 85-90% of "
              "theirs); the model reads each weight once per batch, as Table 1 says, and lands on "
              "the roof"),
}


def _skipped(check: str, case: str, metric: str, unit: str, measured: float | None,
             missing: str, fitted_on: str) -> dict[str, Any]:
    return skipped_row(check, case, metric, unit, measured, missing, fitted_on)


_rel = shipped_name   # a shipped file by its repository name, wherever the package is installed


# ---------------------------------------------------------------- TPUv1

def cycle_shares(layers: pd.DataFrame) -> dict[str, float]:
    """Table 3's four shares from a ``layers`` table (they sum to 1).

    weight stall = stall cycles waiting for weights; weight shift = tile loads not hidden behind
    streaming; non-matrix = vector layers, per-op overhead, fill/drain and the other stalls;
    array active = the rest of the GEMM compute cycles (assumption: our reading of Table 3).
    """
    cnt = layers["count"]
    total = float((layers["cycles"] * cnt).sum())
    gemm = layers["kind"] == "gemm"
    stall = float((layers["stall_weight_cycles"] * cnt).sum())
    shift = float((layers["weight_shift_cycles"] * cnt)[gemm].sum())
    active = float(((layers["compute_cycles"] - layers["weight_shift_cycles"]
                     - layers["fill_drain_cycles"]) * cnt)[gemm].sum())
    other = total - stall - shift - active
    return {"array active": active / total, "weight stall": stall / total,
            "weight shift": shift / total, "non-matrix": other / total}


def tpu_v1_checks() -> list[dict[str, Any]]:
    from .simulator import simulate
    rows = []
    for app, tops in TPU_V1_TOPS.items():
        path = WORKLOAD_DIR / "tpu_v1" / f"{app}.csv"
        shares = TPU_V1_SHARES.get(app, {})
        if not path.is_file():
            rows.append(_skipped("tpu_v1 apps", app, "achieved TOPS", "TOPS", tops, _rel(path),
                                 NO_FIT_V1))
            rows += [_skipped("tpu_v1 cycle shares", f"{app}: {k}", "share of cycles",
                              "fraction", v, _rel(path), NO_FIT_V1) for k, v in shares.items()]
            continue
        res = simulate("tpu_v1", str(path))
        rows.append(check_row(check="tpu_v1 apps", case=app, metric="achieved TOPS", unit="TOPS",
                         predicted=res.summary["achieved_tops"], measured=tops,
                         fitted_on=NO_FIT_V1, status="ok",
                         note=TPU_V1_NOTES.get(app, "stand-in shapes from Table 1 (real shapes "
                                                        "not public)")))
        got = cycle_shares(res.layers)
        for key, want in shares.items():
            rows.append(check_row(check="tpu_v1 cycle shares", case=f"{app}: {key}",
                             metric="share of cycles", unit="fraction", predicted=got[key],
                             measured=want, error_kind="absolute", fitted_on=NO_FIT_V1,
                             status="ok", note="error = predicted - measured share"))
    return rows


# ---------------------------------------------------------------- Edge TPU

def edge_tpu_checks() -> list[dict[str, Any]]:
    """Coral's latencies, each predicted leave-one-out: the preset with its two costs fitted on
    the other four models (:mod:`tpusim.edge_fit`)."""
    from .edge_fit import PARAMS, describe, leave_one_out, trace_path
    check = "edge_tpu int8 (Coral USB)"
    have = tuple(m for m in EDGE_TPU_MS if trace_path(m, WORKLOAD_DIR) is not None)
    rows = []
    loo = leave_one_out(have) if len(have) > 1 else {}
    for model, (ms, res, names) in EDGE_TPU_MS.items():
        path = trace_path(model, WORKLOAD_DIR)
        if model not in loo:
            missing = (_rel(WORKLOAD_DIR / f"{names[0]}.csv") if path is None
                       else "a second Coral trace to fit on")
            rows.append(_skipped(check, model, "latency (leave-one-out)", "ms", ms, missing,
                                 f"{', '.join(PARAMS)}: fitted on the other Coral models"))
            continue
        value, pred = loo[model]
        others = ", ".join(m for m in have if m != model)
        rows.append(check_row(check=check, case=model, metric="latency (leave-one-out)", unit="ms",
                         predicted=pred, measured=ms, status="ok",
                         fitted_on=f"{describe(value)}: Coral's latencies of {others}",
                         note=f"{_rel(path)} at {res}x{res}"))
    rows += _edge_held_out_rows(check)
    return rows


def _edge_held_out_rows(check: str) -> list[dict[str, Any]]:
    """Coral models no parameter was fitted on, scored with the ``edge_tpu`` preset as shipped."""
    from .edge_fit import EDGE_TPU_HELD_OUT_MS, describe, predicted_ms, preset_value, trace_path
    value = preset_value("edge_tpu")
    fitted = f"{describe(value)}: the five fitted models, not this one"
    rows = []
    for model, (ms, res, names) in EDGE_TPU_HELD_OUT_MS.items():
        path = trace_path(model, WORKLOAD_DIR)
        if path is None:
            rows.append(_skipped(check, model, "latency (held out)", "ms", ms,
                                 _rel(WORKLOAD_DIR / f"{names[0]}.csv"), fitted))
            continue
        rows.append(check_row(check=check, case=model, metric="latency (held out)", unit="ms",
                         predicted=predicted_ms(model, value), measured=ms, status="ok",
                         fitted_on=fitted, note=f"{_rel(path)} at {res}x{res} (ONNX zoo graph; "
                                                "Coral's exact variant is not stated)"))
    return rows


# ---------------------------------------------------------------- LLM serving

# AI-Hypercomputer/JetStream, experimental/jax/README.md, "Offline Benchmarking result":
# Llama-2-7B (chat, HF checkpoint) on a TPU v5e-8, 8-way TP, 1,000 requests, 218,743 input and
# 291,740 output tokens: 2,980.65 input and 3,975.33 output tokens/s.
JETSTREAM = {"requests": 1000, "input_tokens": 218_743, "output_tokens": 291_740,
             "input_tokens_per_s": 2980.654636529649, "output_tokens_per_s": 3975.332621666338}
NO_FIT_SERVE = ("none: tpu_v5e preset and llama2_7b dims as published, JetStream's documented "
                "engine (160 slots, 128-token pages, padded prefill chunks, fixed batch; "
                "tpusim.serve.shapes.JETSTREAM); nothing fitted to JetStream's numbers")


def serving_checks() -> list[dict[str, Any]]:
    """JetStream's offline benchmark as ``tpusim serve tpu_v5e llama2_7b --chips 8 --rate inf
    --jetstream``.
    Assumption: every request has the dataset's mean lengths (219 in, 292 out; the per-request
    lengths are not published), so the token totals match to within rounding."""
    from .serve import serve, setup
    from .serve.requests import synthetic_requests
    from .serve.shapes import JETSTREAM as ENGINE

    j = JETSTREAM
    lin, lout = round(j["input_tokens"] / j["requests"]), round(j["output_tokens"] / j["requests"])
    reqs = synthetic_requests(f"in={lin},out={lout}", j["requests"], math.inf)
    slots, page = 160, 128   # JetStream's engine settings (same as `tpusim serve --jetstream`)
    st = setup("tpu_v5e", "llama2_7b", chips=8, kv_block=page, max_batch=slots)
    s = serve(st, reqs, kv_block=page, max_batch=slots, shapes=ENGINE)[0].summary
    note = (f"{j['requests']} requests of {lin} in / {lout} out tokens, all at t=0, bf16, TP=8;"
            f" simulated {s['simulated_s']:.3g} s, {s['preemptions']} preemptions")
    return [check_row(check="llm serving (JetStream)", case="llama2_7b v5e-8", metric=m,
                 unit="tokens/s", predicted=s[m], measured=j[m], fitted_on=NO_FIT_SERVE,
                 status="ok", note=note)
            for m in ("output_tokens_per_s", "input_tokens_per_s")]


# ---------------------------------------------------------------- all of it

def run_checks(measurements: Path | list[Path] | None = None, calibrated: Path | None = None,
               pods: bool = True) -> pd.DataFrame:
    from .fidelity_vector import split_measurements
    if calibrated is not None:
        tpu_v4_checks(None, calibrated)   # a bad --calibrated is reported before any data file
    gemm, vector = split_measurements(measurements, calibrated)   # vector files: vector ops
    v4 = tpu_v4_checks(gemm, calibrated)   # first: it checks the files the user named
    from .fidelity_bnn import finn_bnn_checks
    rows = (tpu_v1_checks() + v4 + vector + edge_tpu_checks() + serving_checks()
            + finn_bnn_checks())
    if pods:
        from .pod.fidelity import pod_checks
        rows += pod_checks()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def validation_csv(table: pd.DataFrame) -> str:
    from ._io import csv_safe
    return csv_safe(table).to_csv(index=False, float_format="%.6g")


# How each check's chart is drawn: (unit, log axes). A check not named here gets a chart with
# its rows' unit on log axes, so a new section needs only its rows (and, if wanted, a line here).
CHARTS: dict[str, tuple[str, bool]] = {
    "tpu_v4 matmuls": ("latency, µs", True), "tpu_v1 apps": ("TOPS", True),
    "tpu_v1 cycle shares": ("share of cycles", False),
    "edge_tpu int8 (Coral USB)": ("latency, ms", True), "tpu_v4 vector ops": ("latency, µs", True),
}
SHOWN = ("ok", "in-sample")   # statuses with an error; only "ok" rows are scored


def _fitted_summary(g: pd.DataFrame) -> str:
    """What was fitted on what, for a group of rows: their ``fitted_on`` when they share one."""
    f = g["fitted_on"].dropna().astype(str).unique()
    return str(f[0]) if len(f) == 1 else f"{len(f)} fits (see fitted_on per row)"


def _group_stats(table: pd.DataFrame) -> list[tuple]:
    """(check, metric, n, median |error|, p90, max, error kind, status, fitted) per group of
    rows with an error: scored (``ok``) groups, then ``in-sample`` ones (shown, not scored)."""
    out = []
    shown = table[table["status"].isin(SHOWN) & table["error"].notna()]
    for (check, metric, status), g in shown.groupby(["check", "metric", "status"], sort=False):
        e = g["error"].abs().astype(float)
        out.append((check, metric, len(g), float(e.median()), float(e.quantile(0.9)),
                    float(e.max()), str(g["error_kind"].iloc[0]), status, _fitted_summary(g)))
    return sorted(out, key=lambda r: r[7] != "ok")


def summary_lines(table: pd.DataFrame) -> list[str]:
    """One line per group of rows (n, median, p90, max |error|, what was fitted on what), then
    one per kind of skipped check."""
    lines = []
    for check, metric, n, med, p90, mx, kind, status, fitted in _group_stats(table):
        f = (lambda v: f"{v:.1%}") if kind == "relative" else (lambda v: f"{v:.3f}")
        tag = "" if status == "ok" else f" [{status}, not scored]"
        lines.append(f"{check} / {metric}{tag}: n={n}, |error| median {f(med)}, p90 {f(p90)}, "
                     f"max {f(mx)}; fitted: {fitted}")
    rest = table[~table["status"].isin(SHOWN)]
    for (check, status), g in rest.groupby(["check", "status"], sort=False):
        cases = ", ".join(g["case"].astype(str).head(3)) + (", ..." if len(g) > 3 else "")
        lines.append(f"{check} ({cases}): {status}")
    return lines


def _chart(table: pd.DataFrame):
    """Predicted against measured, one panel per check with numbers (log-log where the chart
    says so), the y = x line in each."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    have = table[table["predicted"].notna() & table["measured"].notna()]
    names = [c for c in CHARTS if c in set(have["check"])]
    names += [c for c in have["check"].unique() if c not in names]
    # a panel per check and unit: a pods check's MFU (a fraction) and tokens/s apart
    panels = [(c, u) for c in names for u in have.loc[have["check"] == c, "unit"].unique()]
    titles = [c if (have["check"] == c).sum() == (have["unit"][have["check"] == c] == u).sum()
              else f"{c}: {u}" for c, u in panels]
    cols = 2
    nrows = max(1, -(-len(panels) // cols))
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles or ["no checks ran"],
                        horizontal_spacing=0.1, vertical_spacing=0.3 / nrows)
    for i, (check, u) in enumerate(panels):
        g = have[(have["check"] == check) & (have["unit"] == u)]
        unit, log = CHARTS.get(check, ("µs" if u == "us" else str(u), True))
        r, c = i // cols + 1, i % cols + 1
        vals = pd.concat([g["predicted"], g["measured"]]).astype(float)
        vals = vals[vals > 0] if log else vals
        lo = float(vals.min()) if len(vals) else (0.1 if log else 0.0)
        hi = float(vals.max()) if len(vals) else 1.0
        lo, hi = (lo / 1.3, hi * 1.3) if log else (0.0, max(hi * 1.1, 0.1))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line={"color": "#888", "dash": "dash"}, showlegend=i == 0),
                      row=r, col=c)
        for (metric, scored), sub in g.groupby(["metric", g["status"] == "ok"], sort=False):
            fig.add_trace(go.Scatter(
                x=sub["measured"], y=sub["predicted"], mode="markers",
                name=metric if scored else f"{metric} (not scored)",
                text=sub["case"], customdata=sub[["error", "status"]],
                hovertemplate="%{text}<br>measured %{x:.4g}<br>predicted %{y:.4g}"
                              "<br>error %{customdata[0]:.3g}<br>%{customdata[1]}<extra></extra>",
                marker={"size": 6 if scored else 9, "opacity": 0.75,
                        "symbol": "circle" if scored else "circle-open"}), row=r, col=c)
        kind = "log" if log else "linear"
        fig.update_xaxes(type=kind, title_text=f"measured ({unit})", row=r, col=c)
        fig.update_yaxes(type=kind, title_text=f"predicted ({unit})", row=r, col=c)
    fig.update_layout(height=450 * nrows, title="Predicted against measured (y = x is perfect)",
                      legend={"orientation": "h", "y": -0.05})
    return fig


def validation_html(table: pd.DataFrame, provenance: dict | None = None) -> str:
    import html

    from .html_page import figures_html, page

    fig = _chart(table)
    pct = lambda v, k: f"<td>{v:.1%}</td>" if k == "relative" else f"<td>{v:.3f}</td>"  # noqa: E731
    stats = "".join(
        f"<tr><td class='l'>{html.escape(c)}</td><td class='l'>{html.escape(m)}"
        + ("" if st == "ok" else f" <i>({html.escape(st)}, not scored)</i>")
        + f"</td><td>{n}</td>" + "".join(pct(v, k) for v in (med, p90, mx))
        + f"<td class='l'>{html.escape(fitted)}</td></tr>"
        for c, m, n, med, p90, mx, k, st, fitted in _group_stats(table))
    shown = table[~table["check"].isin(["tpu_v4 matmuls", "tpu_v4 vector ops"])]
    skips = table[table["status"].astype(str).str.startswith("skipped")]
    skipped = "; ".join(f"{c} ({st})" for c, st in
                        skips.drop_duplicates("check")[["check", "status"]].itertuples(
                            index=False))
    def err(r) -> str:   # a relative error in %, as the summary above writes it
        v = r["error"]
        if r.get("error_kind") == "relative" and isinstance(v, float) and math.isfinite(v):
            return f"{v:+.1%}"
        return _cell(v)
    body_rows = "".join(
        "<tr>" + "".join(f"<td class='l'>{html.escape(err(r) if col == 'error' else _cell(r[col]))}"
                         "</td>" for col in ("check", "case", "metric", "predicted", "measured",
                                             "error", "status", "fitted_on", "note")) + "</tr>"
        for _, r in shown.iterrows())
    head = "".join(f"<th class='l'>{h}</th>" for h in ("check", "case", "metric", "predicted",
                                                       "measured", "error", "status",
                                                       "fitted on", "note"))
    parts = [
        "<h1>tpusim validation</h1>",
        "<p class='note'>Every row compares a prediction with a published or measured number. "
        "<b>fitted on</b> names the data that fitted each parameter; no parameter is scored on "
        "the data that fitted it (the TPU v4 preset, fitted on the calibration kernels, is "
        "scored there by cross-validation; its in-sample rows are shown, not scored). "
        "Relative error = predicted/measured - 1; cycle shares: predicted - measured.</p>",
        *figures_html([fig]),
        *([f"<p class='note'>Not run: {html.escape(skipped)}.</p>"] if skipped else []),
        "<h2>Error by check</h2><table><tr><th class='l'>check</th><th class='l'>metric</th>"
        "<th>n</th><th>median |error|</th><th>p90</th><th>max</th>"
        "<th class='l'>fitted on</th></tr>" + stats + "</table>",
        "<h2>Rows (TPU v4 kernels: see validation.csv)</h2><table><tr>" + head + "</tr>"
        + body_rows + "</table>",
    ]
    from .html_page import provenance_footer
    return page("tpusim validation", parts + [provenance_footer(provenance)])


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        from .units import number
        return number(v)
    return str(v)

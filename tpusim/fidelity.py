"""Every public check of the presets against measured hardware, in one table.

Each row compares one predicted number with one published or measured one and says which data
fitted which parameter (``fitted_on``): a parameter is never scored on the data that fitted it.

* **TPUv1** (``tpu_v1`` preset, no fitted parameter): measured TOPS of the six production apps
  (Jouppi et al., ISCA 2017, Table 1) on the stand-in traces ``workloads/tpu_v1/*.csv``, and the
  Table 3 cycle shares of MLP0 and CNN0 (array active, weight stall, weight shift, non-matrix).
* **TPU v4 matmuls** (measured kernel latencies from Dang et al., arXiv 2603.22535, passed as
  ``measurements``; not shipped, see the README): the ``tpu_v4`` preset as
  published, and the calibrated preset scored by k-fold cross-validation with the recipe its
  header records (every kernel predicted by parameters fitted on the other folds).
* **Edge TPU** (``edge_tpu`` preset, no fitted parameter): Coral's int8 latencies on the USB
  accelerator with a desktop host (coral.ai/docs/edgetpu/benchmarks) for the zoo models that
  have traces.
* **LLM serving** (``tpu_v5e`` and ``llama2_7b`` as published, nothing fitted): JetStream's
  offline Llama-2-7B benchmark on a v5e-8 (AI-Hypercomputer/JetStream, experimental/jax/README.md)
  served by :mod:`tpusim.serve` with TP = 8.

A check whose inputs are missing is a row with ``status`` ``skipped: missing ...`` (``skipped:
pass --measurements ...`` for the TPU v4 rows when no measurement file is given).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from .config import CONFIG_DIR
from .check_rows import COLUMNS, check_row
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
# Coral Edge TPU benchmarks, USB accelerator, desktop host, int8 (coral.ai/docs/edgetpu/benchmarks,
# the Edge TPU column of the table): model -> (latency ms, input resolution, trace names).
EDGE_TPU_MS = {
    "mobilenet_v1": (2.4, 224, ("mobilenet_v1",)),
    "mobilenet_v2": (2.6, 224, ("mobilenet_v2",)),
    "inception_v1": (3.4, 224, ("inception_v1", "googlenet")),
    "resnet50": (49.0, 299, ("resnet50_299",)),
    "vgg16": (296.0, 224, ("vgg16",)),
}
NO_FIT_V1 = "none: tpu_v1 preset from Jouppi 2017 constants; no parameter fitted to Table 1 or 3"
NO_FIT_EDGE = ("none: edge_tpu preset (coral.ai peak and 8 MB, USB 3 line rate, stated "
               "assumptions); no parameter fitted to Coral latencies")
NO_FIT_V4 = "none: tpu_v4 preset as published (Jouppi 2023); no parameter fitted"


def _skipped(check: str, case: str, metric: str, unit: str, measured: float | None,
             missing: str, fitted_on: str) -> dict[str, Any]:
    return check_row(check=check, case=case, metric=metric, unit=unit, measured=measured,
                fitted_on=fitted_on, status=f"skipped: missing {missing}")


def _rel(path: Path) -> str:
    """A shipped file by its repository name (``workloads/...``, ``configs/...``), wherever the
    package is installed; any other path as given."""
    for root, name in ((WORKLOAD_DIR, "workloads"), (CONFIG_DIR, "configs")):
        try:
            return f"{name}/{path.resolve().relative_to(root.resolve()).as_posix()}"
        except ValueError:
            pass
    return str(path)


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
                         note="stand-in shapes from Table 1 (real shapes not public)"))
        got = cycle_shares(res.layers)
        for key, want in shares.items():
            rows.append(check_row(check="tpu_v1 cycle shares", case=f"{app}: {key}",
                             metric="share of cycles", unit="fraction", predicted=got[key],
                             measured=want, error_kind="absolute", fitted_on=NO_FIT_V1,
                             status="ok", note="error = predicted - measured share"))
    return rows


# ---------------------------------------------------------------- TPU v4

def tpu_v4_checks(measurements: Path | None = None,
                  calibrated: Path | None = None) -> list[dict[str, Any]]:
    from .calibrate import calibrate, formats_for, predict_us, read_measurements, read_recipe
    from .config import load_config

    from .errors import InputError

    explicit = calibrated is not None
    calibrated = Path(calibrated) if calibrated else CONFIG_DIR / "tpu_v4_calibrated.yaml"
    if explicit and not calibrated.is_file():   # named by the user: never a silent skip
        raise InputError(str(calibrated), "--calibrated", message="file not found")
    rec = read_recipe(calibrated) if calibrated.is_file() else None
    if explicit:
        if rec is None:
            raise InputError(str(calibrated), "--calibrated", message="no tpusim-calibrate "
                             "record in its header; expected a config written by tpusim "
                             "calibrate")
        load_config(calibrated)   # the config itself must load, too
    name = (rec or {}).get("measurements", "tpu_v4_gemm_calibration.csv")
    check = "tpu_v4 matmuls"
    if measurements is None:
        return [check_row(check=check, case="all", metric="latency", unit="us", fitted_on=NO_FIT_V4,
                     status=f"skipped: pass --measurements {name} (measured TPU v4 matmul "
                            "latencies; the README says where to get them)")]
    path = Path(measurements)
    if not path.is_file():   # named by the user: an error, not a silent skip
        raise InputError(str(path), "--measurements", message="file not found")
    ms = read_measurements(path)
    meas = ms.latency_us
    cases = [f"m={r.layer.m} k={r.layer.k} n={r.layer.n}" for r in ms.rows]
    rows = []
    preset = load_config("tpu_v4")
    fmt = (rec or {}).get("format")
    pre = predict_us(preset, ms, formats_for(preset, ms, fmt))
    for c, p, m in zip(cases, pre, meas):
        rows.append(check_row(check=check, case=c, metric="latency (tpu_v4 preset)", unit="us",
                         predicted=float(p), measured=float(m), fitted_on=NO_FIT_V4,
                         status="ok", note=f"format {fmt or preset.default_format}"))
    if rec is None:
        rows.append(_skipped(check, "calibrated (cross-validated)", "latency", "us", None,
                             _rel(calibrated), "none"))
        return rows
    if rec.get("sha256") != ms.sha256:
        note = f"{path.name} differs from the file the calibration recorded (sha256)"
    else:
        note = f"same file as the calibration (sha256 {ms.sha256[:12]})"
    fit = rec.get("fit")
    fit_spec = {k: tuple(v) for k, v in fit.items()} if fit else None
    cal = calibrate(rec["base"], ms, fit_spec=fit_spec, folds=int(rec["folds"]),
                    seed=int(rec["seed"]), fmt=rec.get("format"), loss=rec.get("loss", "mean"),
                    overrides=rec.get("set") or {})
    params = ", ".join(p.path for p in cal.params)
    fold_of = {int(i): f for f, test in enumerate(cal.folds) for i in test}
    for i, (c, p, m) in enumerate(zip(cases, cal.cv_us, meas)):
        f = fold_of[i]
        rows.append(check_row(
            check=check, case=c, metric=f"latency ({calibrated.stem}, {len(cal.folds)}-fold CV)",
            unit="us", predicted=float(p), measured=float(m), status="ok",
            fitted_on=(f"{params}: the {len(cal.folds) - 1} other folds of {path.name} "
                       f"(fold {f + 1} held out; seed {cal.seed})"), note=note))
    return rows


# ---------------------------------------------------------------- Edge TPU

def edge_tpu_checks() -> list[dict[str, Any]]:
    from .simulator import simulate
    from .importers import load_workload
    check = "edge_tpu int8 (Coral USB)"
    rows = []
    for model, (ms, res, names) in EDGE_TPU_MS.items():
        path = next((WORKLOAD_DIR / f"{n}.csv" for n in names
                     if (WORKLOAD_DIR / f"{n}.csv").is_file()), None)
        if path is None:
            rows.append(_skipped(check, model, "latency", "ms", ms,
                                 _rel(WORKLOAD_DIR / f"{names[0]}.csv"), NO_FIT_EDGE))
            continue
        # the zoo traces are at the resolution Coral measured (224, resnet50_299 at 299)
        pred = simulate("edge_tpu", load_workload(str(path))).summary["latency_s"] * 1e3
        rows.append(check_row(check=check, case=model, metric="latency", unit="ms",
                         predicted=pred, measured=ms, fitted_on=NO_FIT_EDGE, status="ok",
                         note=f"{_rel(path)} at {res}x{res}"))
    return rows


# ---------------------------------------------------------------- LLM serving

# AI-Hypercomputer/JetStream, experimental/jax/README.md, "Offline Benchmarking result":
# Llama-2-7B (chat, HF checkpoint) on a TPU v5e-8, 8-way TP, 1,000 requests, 218,743 input and
# 291,740 output tokens: 2,980.65 input and 3,975.33 output tokens/s.
JETSTREAM = {"requests": 1000, "input_tokens": 218_743, "output_tokens": 291_740,
             "input_tokens_per_s": 2980.654636529649, "output_tokens_per_s": 3975.332621666338}
NO_FIT_SERVE = ("none: tpu_v5e preset and llama2_7b dims as published, vLLM-default scheduler "
                "(max batch 256, block 16); nothing fitted to JetStream's numbers")


def serving_checks() -> list[dict[str, Any]]:
    """JetStream's offline benchmark as ``tpusim serve tpu_v5e llama2_7b --chips 8 --rate inf``.
    Assumption: every request has the dataset's mean lengths (219 in, 292 out; the per-request
    lengths are not published), so the token totals match to within rounding."""
    from .serve import serve, setup
    from .serve.requests import synthetic_requests

    j = JETSTREAM
    lin, lout = round(j["input_tokens"] / j["requests"]), round(j["output_tokens"] / j["requests"])
    reqs = synthetic_requests(f"in={lin},out={lout}", j["requests"], math.inf)
    s = serve(setup("tpu_v5e", "llama2_7b", chips=8), reqs)[0].summary
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
    gemm, vector = split_measurements(measurements)   # vector files: tpu_v4 vector ops
    v4 = tpu_v4_checks(gemm, calibrated)   # first: it checks the files the user named
    rows = tpu_v1_checks() + v4 + vector + edge_tpu_checks() + serving_checks()
    if pods:
        from .pod.fidelity import pod_checks
        rows += pod_checks()
    return pd.DataFrame(rows, columns=list(COLUMNS))


def validation_csv(table: pd.DataFrame) -> str:
    from ._io import csv_safe
    return csv_safe(table).to_csv(index=False, float_format="%.6g")


def _group_stats(table: pd.DataFrame) -> list[tuple[str, str, int, float, float, float, str]]:
    """(check, metric, n, median |error|, p90, max, error kind) per scored group."""
    out = []
    ok = table[table["status"] == "ok"]
    for (check, metric), g in ok.groupby(["check", "metric"], sort=False):
        e = g["error"].abs().astype(float)
        out.append((check, metric, len(g), float(e.median()), float(e.quantile(0.9)),
                    float(e.max()), str(g["error_kind"].iloc[0])))
    return out


def summary_lines(table: pd.DataFrame) -> list[str]:
    lines = []
    for check, metric, n, med, p90, mx, kind in _group_stats(table):
        unit = "%" if kind == "relative" else " (share)"
        f = (lambda v: f"{v:.1%}") if kind == "relative" else (lambda v: f"{v:.3f}")
        lines.append(f"{check} / {metric}: n={n}, |error| median {f(med)}, p90 {f(p90)}, "
                     f"max {f(mx)}")
    for _, r in table[table["status"] != "ok"].iterrows():
        lines.append(f"{r['check']} / {r['case']}: {r['status']}")
    return lines


def validation_html(table: pd.DataFrame) -> str:
    import html

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .html_page import figures_html, page

    groups = [("tpu_v4 matmuls", "latency, µs", True), ("tpu_v1 apps", "TOPS", True),
              ("tpu_v1 cycle shares", "share of cycles", False),
              ("edge_tpu int8 (Coral USB)", "latency, ms", True),
              ("tpu_v4 vector ops", "latency, µs", True)]
    fig = make_subplots(rows=3, cols=2, subplot_titles=[g[0] for g in groups],
                        horizontal_spacing=0.1, vertical_spacing=0.14)
    for i, (check, unit, log) in enumerate(groups):
        r, c = i // 2 + 1, i % 2 + 1
        g = table[(table["check"] == check) & table["predicted"].notna()
                  & table["measured"].notna()]
        vals = pd.concat([g["predicted"], g["measured"]]).astype(float)
        vals = vals[vals > 0] if log else vals
        lo = float(vals.min()) if len(vals) else (0.1 if log else 0.0)
        hi = float(vals.max()) if len(vals) else 1.0
        if log:
            lo, hi = lo / 1.3, hi * 1.3
        else:
            lo, hi = 0.0, max(hi * 1.1, 0.1)
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
    fig.update_layout(height=1300, title="Predicted against measured (y = x is perfect)",
                      legend={"orientation": "h", "y": -0.08})
    stats = "".join(
        f"<tr><td class='l'>{html.escape(c)}</td><td class='l'>{html.escape(m)}</td><td>{n}</td>"
        + "".join(f"<td>{v:.1%}</td>" if k == "relative" else f"<td>{v:.3f}</td>"
                  for v in (med, p90, mx)) + "</tr>"
        for c, m, n, med, p90, mx, k in _group_stats(table))
    shown = table[~table["check"].isin(["tpu_v4 matmuls", "tpu_v4 vector ops"])]
    body_rows = "".join(
        "<tr>" + "".join(f"<td class='l'>{html.escape(_cell(r[col]))}</td>"
                         for col in ("check", "case", "metric", "predicted", "measured", "error",
                                     "status", "fitted_on", "note")) + "</tr>"
        for _, r in shown.iterrows())
    head = "".join(f"<th class='l'>{h}</th>" for h in ("check", "case", "metric", "predicted",
                                                       "measured", "error", "status",
                                                       "fitted on", "note"))
    parts = [
        "<h1>tpusim validation</h1>",
        "<p class='note'>Every row compares a prediction with a published or measured number. "
        "<b>fitted_on</b> names the data that fitted each parameter; no parameter is scored on "
        "the data that fitted it (the calibrated TPU v4 preset is scored by cross-validation). "
        "Relative error = predicted/measured - 1; cycle shares: predicted - measured.</p>",
        *figures_html([fig]),
        "<h2>Error by check</h2><table><tr><th class='l'>check</th><th class='l'>metric</th>"
        "<th>n</th><th>median |error|</th><th>p90</th><th>max</th></tr>" + stats + "</table>",
        "<h2>Rows (TPU v4 kernels: see validation.csv)</h2><table><tr>" + head + "</tr>"
        + body_rows + "</table>",
    ]
    return page("tpusim validation", parts)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

"""Calibration and validation: parameters recovered from the model's own synthetic measurements,
cross-validation that never scores a kernel on a fit that saw it, byte-identical output, bad input
with one line and exit 2, a fit that does not converge with exit 1 and nothing written."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import tpusim
from tpusim import calibrate as cal_mod
from tpusim.calibrate import (calibrate, kernel_cycles, kfold, predict_us, read_measurements,
                              read_recipe)
from tpusim.yaml_edit import get_path, set_yaml_value
from tpusim.config import find_config, load_config
from tpusim.errors import InputError
from tpusim.workload import Workload, make_layer

# Serial DMA (no double buffering), as the committed TPU v4 calibration assumes.
SERIAL = {"memory.sram.double_buffered": False, "timing.weight_fifo_depth": 1}
TRUE = {"timing.overhead_cycles_per_op": 700.0, "memory.hbm.efficiency": 0.45,
        "timing.issue_efficiency": 0.5}
SHAPES = [(m, k, n) for m, k, n in itertools.product((128, 384, 1024), (128, 512, 1024),
                                                     (128, 256, 768))]


def _synthetic(tmp_path, noise: float = 0.02, seed: int = 1, values=TRUE, name="meas.csv"):
    """Measurements made by the model itself at known parameters, with seeded noise."""
    chip = load_config("tpu_v4", **SERIAL, **values)
    rng = np.random.default_rng(seed)
    lines = ["m,k,n,latency_us,latency_std_us"]
    for m, k, n in SHAPES:
        layer = make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n})
        us = (kernel_cycles(chip, layer, "bf16") + chip.timing.overhead_cycles_per_op) \
            / (chip.clock_ghz * 1e3)
        us *= math.exp(rng.normal(0, noise))
        lines.append(f"{m},{k},{n},{us:.6f},0.01")
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


# ---------------------------------------------------------------- the optimiser and CV

def test_recovers_known_parameters_from_noisy_synthetic_data(tmp_path):
    path = _synthetic(tmp_path, noise=0.02)
    cal = calibrate("tpu_v4", path, folds=3, seed=0, overrides=SERIAL)
    assert cal.fit.converged
    v = cal.values
    assert v["memory.hbm.efficiency"] == pytest.approx(0.45, rel=0.08)
    assert v["timing.issue_efficiency"] == pytest.approx(0.5, rel=0.08)
    assert v["timing.overhead_cycles_per_op"] == pytest.approx(700, abs=120)
    st = cal.stats
    # 2% log-normal noise: the median |error| of a right model is about 0.67 x 2%.
    assert st["after"]["median"] < 0.025 and st["cv"]["median"] < 0.03
    # the preset's own fitted values are not the ones the data were made with
    assert st["before"]["median"] > 4 * st["after"]["median"]


def test_recovers_exact_parameters_without_noise(tmp_path):
    path = _synthetic(tmp_path, noise=0.0)
    cal = calibrate("tpu_v4", path, folds=3, seed=0, overrides=SERIAL)
    assert cal.values["memory.hbm.efficiency"] == pytest.approx(0.45, rel=0.02)
    assert cal.values["timing.issue_efficiency"] == pytest.approx(0.5, rel=0.02)
    assert cal.stats["after"]["max"] < 0.01


def test_kfold_sets_are_disjoint_and_cover_every_row():
    sets = kfold(269, 5, seed=0)
    assert len(sets) == 5
    allidx = np.concatenate(sets)
    assert sorted(allidx.tolist()) == list(range(269))          # each row in exactly one fold
    for a, b in itertools.combinations(sets, 2):
        assert not set(a.tolist()) & set(b.tolist())
    assert {len(s) for s in sets} <= {53, 54}
    assert [s.tolist() for s in kfold(269, 5, seed=0)] == [s.tolist() for s in sets]
    assert [s.tolist() for s in kfold(269, 5, seed=1)] != [s.tolist() for s in sets]


def test_cv_never_trains_on_the_fold_it_scores(tmp_path, monkeypatch):
    path = _synthetic(tmp_path)
    seen = []
    real_fit = cal_mod.fit

    def spy(model, params, idx, kind="mean", max_iter=200):
        seen.append(np.array(idx))
        return real_fit(model, params, idx, kind, max_iter)

    monkeypatch.setattr(cal_mod, "fit", spy)
    cal = calibrate("tpu_v4", path, folds=3, seed=0, overrides=SERIAL)
    assert len(seen) == 4                         # all rows, then one fit per fold
    assert len(seen[0]) == len(SHAPES)
    for train, test in zip(seen[1:], cal.folds):
        assert not set(train.tolist()) & set(test.tolist())
        assert len(train) + len(test) == len(SHAPES)


def test_a_held_out_measurement_does_not_move_its_own_prediction(tmp_path):
    """Changing a kernel's measured latency changes the fits that saw it, never its own
    out-of-fold prediction."""
    path = _synthetic(tmp_path)
    a = calibrate("tpu_v4", path, folds=3, seed=0, overrides=SERIAL)
    df = pd.read_csv(path)
    i = int(a.folds[1][0])
    df.loc[i, "latency_us"] *= 5
    p2 = tmp_path / "changed.csv"
    df.to_csv(p2, index=False)
    b = calibrate("tpu_v4", p2, folds=3, seed=0, overrides=SERIAL)
    assert b.cv_us[i] == a.cv_us[i]
    assert b.values != a.values                   # the fit on all rows did see it


def test_fast_path_equals_simulate(tmp_path):
    chip = load_config("tpu_v4", **SERIAL, **TRUE)
    ms = read_measurements(_synthetic(tmp_path))
    fmts = ["bf16"] * len(ms)
    pred = predict_us(chip, ms, fmts)
    for i in (0, 7, len(ms) - 1):
        wl = Workload("one", (ms.rows[i].layer,))
        res = tpusim.simulate(chip, wl, format="bf16")
        assert pred[i] == pytest.approx(res.layers["latency_s"][0] * 1e6, rel=1e-12)


# ---------------------------------------------------------------- the timing-model edits

def _one(m, k, n):
    return make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n})


def test_rows_are_shared_evenly_when_tiles_do_not_divide_the_arrays():
    from tpusim.timing import array_timing
    # 8 arrays of 128x128, load 128, fill+drain 254 (no cost per output wave)
    chip = load_config("tpu_v4", **{"timing.wave_cycles": 0})
    # 5 tiles on 8 arrays: 5 x 128 rows / 8 = 80 rows each (not 128 on 5 arrays, 3 idle).
    at = array_timing(_one(128, 640, 128), chip, "bf16")
    assert (at.steps, at.stream_cycles, at.arrays_used) == (1, 80, 8)
    assert at.compute_cycles == 128 + 80 + 254
    # 9 tiles: two tile loads on the busiest array, 9 x 256 / 16 = 144 rows through each.
    at = array_timing(_one(256, 384, 384), chip, "bf16")
    assert (at.steps, at.stream_cycles) == (2, 144)
    assert at.compute_cycles == 128 + 144 + 144 + 254
    # 16 tiles divide 8 arrays: unchanged, two tiles of the full 256-row stream each.
    at = array_timing(_one(256, 512, 512), chip, "bf16")
    assert (at.steps, at.stream_cycles) == (2, 256)


def test_issue_efficiency_stretches_the_stream_only():
    from tpusim.timing import array_timing
    full = array_timing(_one(1024, 256, 512), load_config("tpu_v4"), "bf16")
    half = array_timing(_one(1024, 256, 512), load_config("tpu_v4", **{
        "timing.issue_efficiency": 0.5}), "bf16")
    assert half.stream_cycles == 2 * full.stream_cycles
    assert half.load_cycles == full.load_cycles and half.steps == full.steps
    # the SCALE-Sim model ignores it
    s1 = array_timing(_one(1024, 256, 512), load_config("tpu_v4", **{"timing.model": "scalesim"}),
                      "bf16")
    s2 = array_timing(_one(1024, 256, 512), load_config("tpu_v4", **{
        "timing.model": "scalesim", "timing.issue_efficiency": 0.5}), "bf16")
    assert s1 == s2


# ---------------------------------------------------------------- the calibrated YAML

def test_yaml_edit_keeps_comments_and_inserts_missing_keys():
    lines = ["# source", "name: x", "timing:", "  model: pipelined   # m",
             "  overhead_cycles_per_op: 840  # old", "energy:", "  node_nm: 7  # nm"]
    out = set_yaml_value(lines, "timing.overhead_cycles_per_op", 700.5, "fitted")
    out = set_yaml_value(out, "timing.issue_efficiency", 0.4, "fitted")
    out = set_yaml_value(out, "memory.hbm.efficiency", 0.5, "fitted")
    import yaml
    raw = yaml.safe_load("\n".join(out))
    assert raw["timing"] == {"model": "pipelined", "overhead_cycles_per_op": 700.5,
                             "issue_efficiency": 0.4}
    assert raw["memory"] == {"hbm": {"efficiency": 0.5}} and raw["energy"] == {"node_nm": 7}
    assert out[0] == "# source" and "  model: pipelined   # m" in out


def test_cli_writes_a_config_that_records_its_fit_and_is_byte_identical(cli, tmp_path):
    path = _synthetic(tmp_path)
    out = tmp_path / "cal.yaml"
    args = ["calibrate", "tpu_v4", path, "--out", out, "--folds", "3",
            "--set", "memory.sram.double_buffered=false", "--set", "timing.weight_fifo_depth=1"]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert "median" in stdout and "5-fold" not in stdout and "3-fold CV" in stdout
    first = out.read_bytes()
    code, _, err = cli(*args)
    assert code == 0, err
    assert out.read_bytes() == first
    text = first.decode()
    import hashlib
    assert hashlib.sha256(path.read_bytes()).hexdigest() in text
    assert "tpusim calibrate tpu_v4" in text and "cross-validation" in text
    assert "Jouppi 2023" in text                    # the preset's source comments survive
    # the base (the shipped tpu_v4) is itself a calibration: its header and its fingerprints
    # give way to this fit's, one of each, the vector fit's record and fingerprints kept
    assert text.count("Generated; do not edit by hand") == 1
    assert text.count("# tpusim-calibrate: ") == 1 and text.count("# tpusim-calibrate-vector: ") == 1
    assert text.count("# tpusim-fitted-kernels matmul ") == 1
    assert text.count("# tpusim-fitted-kernels vector ") == 1
    chip = load_config(out)
    rec = read_recipe(out)
    assert chip.name == "cal" and not chip.memory.sram.double_buffered
    for k, v in rec["values"].items():
        assert get_path(chip, k) == v
    assert rec["folds"] == 3 and rec["sha256"] in text


# ---------------------------------------------------------------- bad input and failure

@pytest.mark.parametrize("text, needle", [
    ("m,k,n\n128,128,128\n", "latency_us"),                       # missing column
    ("m,k,latency_us\n128,128,1.0\n", "n"),                       # missing shape column
    ("m,k,n,latency_us\n128,128,128,0\n", "latency_us"),          # zero latency
    ("m,k,n,latency_us\n128,128,128,-2\n", "latency_us"),         # negative latency
    ("m,k,n,latency_us\n128,128,128,abc\n", "latency_us"),        # not a number
    ("m,k,n,latency_us\n128,0,128,1.0\n", "line 2"),              # shape a trace cannot express
    ("m,k,n,latency_us\n128,1.5,128,1.0\n", "line 2"),
    ("m,k,n,latency_us,flops\n128,128,128,1.0,5\n", "flops"),     # unknown column
    ("m,k,n,latency_us,dtype\n128,128,128,1.0,fp13\n", "dtype"),  # unknown format
    ("m,k,n,latency_us\n", "no measurement rows"),
])
def test_bad_measurements_exit_2_with_one_line(cli, tmp_path, text, needle):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    out = tmp_path / "never.yaml"
    code, _, err = cli("calibrate", "tpu_v4", p, "--out", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "bad.csv" in err and needle in err
    assert not out.exists()
    with pytest.raises(InputError):
        read_measurements(p)


def test_bad_options_exit_2(cli, tmp_path):
    p = _synthetic(tmp_path)
    for extra in (["--folds", "1"], ["--fit", "timing.nope"], ["--fit", "timing.model=0:1"],
                  ["--fit", "memory.hbm.efficiency=1:0"], ["--format", "int3"]):
        code, _, err = cli("calibrate", "tpu_v4", p, "--out", tmp_path / "x.yaml", *extra)
        assert code == 2, (extra, err)
        assert len(err.strip().splitlines()) == 1


def test_a_fit_that_does_not_converge_exits_1_and_keeps_the_old_config(cli, tmp_path,
                                                                      monkeypatch):
    p = _synthetic(tmp_path)
    out = tmp_path / "old.yaml"
    out.write_text('# tpusim-calibrate: {"an earlier fit": 1}\nold config\n')

    def stuck(f, x0, step, max_iter, xtol, ftol):
        return x0, f(x0), False, max_iter

    monkeypatch.setattr(cal_mod, "nelder_mead", stuck)
    code, stdout, err = cli("calibrate", "tpu_v4", p, "--out", out)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "did not converge" in err
    assert out.read_text() == '# tpusim-calibrate: {"an earlier fit": 1}\nold config\n'


# ---------------------------------------------------------------- validate

def test_validate_scores_by_cv_and_skips_what_is_missing(cli, tmp_path, monkeypatch):
    from tpusim import fidelity as val
    meas = _synthetic(tmp_path)
    calibrated = tmp_path / "v4cal.yaml"
    code, _, err = cli("calibrate", "tpu_v4", meas, "--out", calibrated, "--folds", "3",
                       "--set", "memory.sram.double_buffered=false",
                       "--set", "timing.weight_fifo_depth=1")
    assert code == 0, err
    monkeypatch.setattr(val, "WORKLOAD_DIR", tmp_path / "no_workloads")
    out = tmp_path / "val"
    code, stdout, err = cli("validate", "--out", out, "--measurements", meas,
                            "--calibrated", calibrated, "--no-pods")   # pods: test_pod_train
    assert code == 0, err
    df = pd.read_csv(out / "validation.csv")
    assert list(df.columns[:7]) == ["check", "case", "metric", "unit", "predicted", "measured",
                                    "error"]
    assert df["fitted_on"].notna().all()
    # validation.json: which tpusim, which command, and the sha256 of each file it scored
    import hashlib
    import json
    prov = json.loads((out / "validation.json").read_text())["provenance"]
    assert prov["tpusim_version"] == tpusim.__version__ and prov["options"]["pods"] is False
    for key, path in (("measurements_1", meas), ("calibrated", calibrated)):
        assert prov["inputs"][key]["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    presets = prov["inputs"]["presets"]   # the shipped configs the checks load by name
    assert presets["tpu_v1"] == hashlib.sha256(find_config("tpu_v1").read_bytes()).hexdigest()
    assert {"tpu_v4", "tpu_v5e", "edge_tpu"} <= set(presets)
    cv = df[df["metric"].str.contains("CV")]
    assert len(cv) == len(SHAPES) and cv["fitted_on"].str.contains("held out").all()
    assert (cv["error"].abs() < 0.15).all()
    # the config itself was fitted on this very file: its rows are shown, never scored
    own = df[df["metric"] == "latency (v4cal preset)"]
    assert len(own) == len(SHAPES) and (own["status"] == "in-sample").all()
    assert own["fitted_on"].str.contains("kernels of meas.csv .*this kernel among them").all()
    # one line per group: n, median, p90, max and what was fitted on what
    line = next(x for x in stdout.splitlines() if "5-fold" in x or "3-fold CV" in x)
    e = cv["error"].abs()
    assert f"n={len(SHAPES)}" in line and f"median {e.median():.1%}" in line
    assert f"max {e.max():.1%}" in line and "fitted: 3 parameters" in line
    assert "in-sample, not scored" in stdout
    skipped = df[df["status"].str.startswith("skipped: missing")]
    assert set(skipped["check"]) == {"tpu_v1 apps", "tpu_v1 cycle shares",
                                     "edge_tpu int8 (Coral USB)"}
    assert len(skipped[skipped["check"] == "tpu_v1 apps"]) == 6
    html = (out / "validation.html").read_text()
    assert "y = x" in html and 'src="https://cdn' not in html
    assert "fitted on</th>" in html and "tpu_v4 matmuls" in html
    assert len(html) > 1_000_000                      # plotly.js is inlined, not fetched


def test_validate_scores_no_fitted_kernel_whatever_file_it_comes_in(cli, tmp_path, monkeypatch):
    # A copy of the fit's file with a comment line has another sha256, a subset too; the
    # config's fingerprints still mark their kernels in-sample, and only new kernels are scored.
    # The base was a YAML file: validate re-runs its recipe from it.
    from tpusim import fidelity as val
    monkeypatch.setattr(val, "WORKLOAD_DIR", tmp_path / "no_workloads")
    meas = _synthetic(tmp_path)
    base = tmp_path / "mybase.yaml"
    base.write_text(find_config("tpu_v4").read_text())
    calibrated = tmp_path / "mine.yaml"
    code, _, err = cli("calibrate", base, meas, "--out", calibrated, "--folds", "3",
                       *[a for k, v in SERIAL.items() for a in ("--set", f"{k}={v}")])
    assert code == 0, err
    lines = meas.read_text().splitlines()
    other = _synthetic(tmp_path, seed=7, name="other.csv").read_text().splitlines()
    new = "1152,128,128," + other[1].split(",", 3)[3]          # a shape the fit never saw
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join(["# my copy", lines[0], *lines[1:6], new]) + "\n")
    out = tmp_path / "val"
    code, _, err = cli("validate", "--out", out, "--measurements", mixed,
                       "--calibrated", calibrated, "--no-pods")
    assert code == 0, err
    df = pd.read_csv(out / "validation.csv")
    own = df[df["metric"] == "latency (mine preset)"]
    assert list(own["status"]) == ["in-sample"] * 5 + ["ok"]
    assert len(df[df["metric"] == "latency (mine, 3-fold CV)"]) == 6
    # too few kernels for the recipe's folds: the CV is skipped, saying why (no --folds error)
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("\n".join([lines[0], lines[1], new]) + "\n")
    code, _, err = cli("validate", "--out", tmp_path / "v2", "--measurements", tiny,
                       "--calibrated", calibrated, "--no-pods")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "v2" / "validation.csv")
    assert df["status"].str.contains("skipped: 2 kernels in tiny.csv, fewer than the recipe's "
                                     "3 folds").any()


def test_yaml_edit_inside_a_one_line_flow_mapping():
    import yaml
    lines = ["formats:", "  bf16: {rate: 1}", "  fp16: {emulate: bf16, passes: 3}  # 3 passes"]
    out = set_yaml_value(lines, "formats.fp16.passes", 1, "set")
    assert yaml.safe_load("\n".join(out))["formats"] == {
        "bf16": {"rate": 1}, "fp16": {"emulate": "bf16", "passes": 1}}
    assert "was {emulate: bf16, passes: 3}: 3 passes" in out[2]


def test_tpu_v4_preset_is_the_calibration_and_names_its_data():
    """One preset per chip: tpu_v4 itself carries the fitted values its header records (the old
    name tpu_v4_calibrated is an alias of it)."""
    from tests.conftest import ROOT, SHARED
    path = ROOT / "configs" / "tpu_v4.yaml"
    chip = load_config("tpu_v4")
    rec = read_recipe(path)
    assert chip.name == "tpu_v4" and rec["base"] == "tpu_v4"
    assert load_config("tpu_v4_calibrated") == chip
    assert not (ROOT / "configs" / "tpu_v4_calibrated.yaml").exists()
    assert set(rec["values"]) == {"timing.overhead_cycles_per_op", "memory.hbm.efficiency",
                                  "formats.fp16.rate", "timing.wave_cycles"}
    for k, v in rec["values"].items():
        assert get_path(chip, k) == v
    for k, v in rec["set"].items():
        assert get_path(chip, k) == v
    assert chip.array.cores == 2 and chip.array.count == 8
    # the fitted cost per wave is a DMA round trip: a few hundred cycles, not a curve's knob
    assert 100 <= chip.timing.wave_cycles <= 400
    text = path.read_text()
    assert "5-fold cross-validation" in text and "/work/" not in text and "shared/" not in text
    data = SHARED / "measurements" / rec["measurements"]
    if data.is_file():
        import hashlib
        assert hashlib.sha256(data.read_bytes()).hexdigest() == rec["sha256"]


def test_validate_without_measurements_skips_tpu_v4_and_says_how_to_run_it():
    # nothing is looked up beside the package: without a file the TPU v4 check is one skipped row
    from tpusim.fidelity import tpu_v4_checks
    rows = tpu_v4_checks(measurements=None)
    assert len(rows) == 1 and rows[0]["predicted"] is None
    assert rows[0]["status"].startswith("skipped: pass --measurements tpu_v4_gemm_calibration.csv")


def test_fingerprints_survive_reformatting_and_refuse_damage(cli, tmp_path, monkeypatch):
    # a copy with 128.0 for 128 is the same kernels; a cut fingerprint line is an error, not a
    # silent 'held out'; a YAML base is recorded relative to the calibrated config's folder
    from tpusim import fidelity as val
    monkeypatch.setattr(val, "WORKLOAD_DIR", tmp_path / "no_workloads")
    meas = _synthetic(tmp_path)
    (tmp_path / "cfgs").mkdir()
    base = tmp_path / "cfgs" / "base.yaml"
    base.write_text(find_config("tpu_v4").read_text())
    calibrated = tmp_path / "out" / "mine.yaml"
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("calibrate", "cfgs/base.yaml", meas, "--out", calibrated, "--folds", "3",
                       *[a for k, v in SERIAL.items() for a in ("--set", f"{k}={v}")])
    assert code == 0, err
    assert read_recipe(calibrated)["base"] == "../cfgs/base.yaml"
    lines = meas.read_text().splitlines()
    floats = tmp_path / "floats.csv"
    floats.write_text("\n".join([lines[0]] + [",".join([f"{float(c):.1f}" for c in ln.split(",")[:3]]
                                                       + ln.split(",")[3:])
                                              for ln in lines[1:]]) + "\n")
    monkeypatch.chdir("/")                       # validate from elsewhere finds the base
    code, _, err = cli("validate", "--out", tmp_path / "v", "--measurements", floats,
                       "--calibrated", calibrated, "--no-pods")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "v" / "validation.csv")
    assert (df[df["metric"] == "latency (mine preset)"]["status"] == "in-sample").all()
    text = calibrated.read_text()
    cut = tmp_path / "cut.yaml"
    cut.write_text(text.rstrip("\n")[:-16] + "\n")     # two fingerprints short
    code, _, err = cli("validate", "--out", tmp_path / "v2", "--measurements", floats,
                       "--calibrated", cut, "--no-pods")
    assert code == 2 and "damaged matmul fingerprints" in err and len(err.splitlines()) == 1

"""`--json` on stdout for scripts: roofline, formats, sweep and compare print JSON that parses
(NaN as null), holds what the files they write hold, and send 'wrote ...' to stderr."""
import json
import math

import pandas as pd
import pytest

from tpusim.sweep_metrics import pareto_3d

from .conftest import run_cli


def _same(records: list[dict], df: pd.DataFrame, cols: list[str]) -> None:
    assert len(records) == len(df)
    for rec, (_, row) in zip(records, df.iterrows()):
        for c in cols:
            want = row[c]
            if isinstance(want, float) and math.isnan(want):
                assert rec[c] is None, (c, rec[c])
            elif isinstance(want, float):
                assert rec[c] == pytest.approx(want, rel=1e-9), c
            else:
                assert rec[c] == want, c


def _run(*args):
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    assert "wrote " in err and "wrote " not in out
    def no_nan(token):
        raise AssertionError(f"{token} is not JSON")
    return json.loads(out, parse_constant=no_nan)


def test_roofline_json_is_the_csv(tmp_path):
    d = _run("roofline", "tpu_v1", "tpu_v1/cnn1", "--out", tmp_path / "r.html")
    csv = pd.read_csv(tmp_path / "r.csv")
    assert d["config"] == "tpu_v1" and len(d["workloads"]) == 1
    _same(d["layers"], csv, ["name", "cycles", "ops_per_hbm_byte", "achieved_tops", "bound"])
    assert any(r["ops_per_hbm_byte"] is None for r in d["layers"])   # on-chip rows: null


def test_formats_json_is_the_csv(tmp_path):
    d = _run("formats", "default", "--gemm-size", "16", "--out", tmp_path)
    csv = pd.read_csv(tmp_path / "formats.csv")
    _same(d["formats"], csv, ["format", "support", "peak_tops", "mac_energy_pj"])


def test_sweep_json_has_the_pareto_points(tmp_path):
    out = tmp_path / "s"
    d = _run("sweep", "default", "tpu_v1/mlp0", "--rows", "16,64", "--cols", "16,64",
             "--jobs", "1", "--out", out)
    assert (d["points"], d["computed"], d["failed"]) == (4, 4, 0)
    csv = pd.read_csv(out / "sweep.csv")
    front = csv.loc[pareto_3d(csv)]
    _same(d["pareto"]["mlp0"], front, ["array.rows", "array.cols", "latency_s", "chip_mm2"])


def test_compare_json_is_the_summary(tmp_path):
    d = _run("compare", "tpu_v1:tpu_v1/mlp0", "default:tpu_v1/mlp0", "--out", tmp_path / "c")
    csv = pd.read_csv(tmp_path / "c" / "compare.csv")
    runs = csv[csv.scope == "run"]
    assert d["baseline"] == "tpu_v1:tpu_v1/mlp0"
    _same(d["summary"], runs, ["run", "metric", "baseline_value", "value"])
    assert 0 < len(d["top_changes"]) <= 5

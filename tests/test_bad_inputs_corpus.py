"""The committed bad-input corpus (``tests/bad_inputs/``), each file through the CLI.

For every case in ``cases.yaml``: exit code 2, exactly one line on stderr that names the file
(or ``--set``) followed by the field or line the manifest expects, no traceback, nothing
written, and the earlier result already in ``--out`` byte-identical afterwards.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, run_cli

CORPUS = ROOT / "tests" / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
GOOD_TRACE = CORPUS / "good" / "trace.csv"


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A real earlier result (run's layers.csv, summary.json, report.html) and a calibrated
    config, which no failing command may touch."""
    d = tmp_path_factory.mktemp("earlier") / "out"
    code, _, err = run_cli("run", "default", GOOD_TRACE, "--out", d)
    assert code == 0, err
    (d / "cal.yaml").write_text('# tpusim-calibrate: {"an earlier calibration": 1}\n'
                               "name: cal\n")
    return d


def _args(case: dict, path: Path, out: Path) -> list:
    via = case["via"]
    if via == "config":
        return ["run", path, GOOD_TRACE, "--out", out]
    if via == "workload":
        return ["run", "default", path, "--out", out]
    if via == "measurements":
        return ["calibrate", "tpu_v4", path, "--out", out / "cal.yaml"]
    if via == "calibrated":
        return ["validate", "--calibrated", path, "--measurements", GOOD_TRACE, "--out", out]
    assert via == "set", via
    return ["run", "default", GOOD_TRACE, "--set", path.read_text(), "--out", out]


def test_corpus_is_large_and_every_file_has_a_case():
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*")
             if p.is_file() and p.parent != CORPUS and p.parent.name not in ("good", "__pycache__")}
    assert files == {c["file"] for c in CASES}
    assert len(files) >= 80
    assert {c["via"] for c in CASES} == {"config", "workload", "measurements", "calibrated",
                                         "set"}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_the_earlier_result(case, earlier, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    before = _tree(out)
    path = CORPUS / case["file"]
    code, stdout, err = run_cli(*_args(case, path, out))
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    who = "--set" if case["via"] == "set" else str(path)
    assert f"tpusim: error: {who}: " in lines[0], lines[0]
    assert f"{who}: {case['expect']}" in lines[0], lines[0]
    assert "wrote" not in stdout
    assert _tree(out) == before          # nothing added, nothing changed, no temp file left

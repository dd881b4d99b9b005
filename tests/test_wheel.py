"""The built wheel carries every preset, every shipped workload and every module, and runs from
an empty folder without the checkout (``.ci/run`` also installs it into a fresh venv)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

SLOW = pytest.mark.slow   # builds a wheel (pip, an isolated build env): ~10-30 s

SKIP = shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", "results", "__pycache__",
                              ".git", ".pytest_cache", ".hypothesis", ".benchmarks")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy so that a stale build/ folder in the checkout cannot leak into the wheel
    src = tmp_path_factory.mktemp("src") / "tpusim"
    shutil.copytree(ROOT, src, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                           str(src)], capture_output=True, text=True)
    if proc.returncode != 0 and "Could not find a version" in proc.stderr:
        pytest.skip("no package index for the isolated build (setuptools): " + proc.stderr[-200:])
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("tpusim-*.whl")
    return whl


def test_every_subpackage_is_listed_for_the_wheel():
    # pyproject lists packages by hand (the data packages live outside tpusim/): a new
    # subpackage must be added there or the wheel silently lacks it
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tpusim").rglob(
        "__init__.py")}
    assert found <= listed and {"tpusim.presets", "tpusim.zoo"} <= listed, found - listed


@SLOW
def test_wheel_holds_every_preset_zoo_trace_and_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted((ROOT / "configs").glob("*.yaml"))
    traces = sorted((ROOT / "workloads").rglob("*.csv"))
    modules = sorted((ROOT / "tpusim").rglob("*.py"))
    assert len(presets) >= 9 and len(traces) >= 16
    missing = ([f"tpusim/presets/{p.name}" for p in presets]
               + [f"tpusim/zoo/{p.relative_to(ROOT / 'workloads').as_posix()}" for p in traces]
               + [p.relative_to(ROOT).as_posix() for p in modules])
    assert [n for n in missing if n not in names] == []
    # nothing that must not ship: generator scripts, measurement data, tests
    assert not [n for n in names if "scripts/" in n or n.startswith("tests/")
                or "calibration.csv" in n]


@SLOW
def test_unpacked_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import sys, tpusim; from tpusim.cli import main; "
            "assert tpusim.__file__.startswith(sys.argv[1]), tpusim.__file__; main(sys.argv[2:])")

    def tpusim(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, str(site), *args], cwd=empty, env=env,
                              capture_output=True, text=True)

    listing = tpusim("configs", "--json")
    assert listing.returncode == 0, listing.stderr
    shipped = json.loads(listing.stdout)
    assert {c["name"] for c in shipped["presets"]} == {p.stem for p in
                                                      (ROOT / "configs").glob("*.yaml")}
    assert {w["name"] for w in shipped["workloads"]} == {
        p.relative_to(ROOT / "workloads").as_posix() for p in (ROOT / "workloads").rglob("*.csv")}
    run = tpusim("run", "default", "resnet50", "--no-html")
    assert run.returncode == 0, run.stderr
    assert list(empty.rglob("summary.json")), run.stdout   # written under the empty folder

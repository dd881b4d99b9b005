"""Shared fixtures: small traces written to a temp dir, and a CLI runner that returns
(exit code, stdout, stderr)."""
from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Public measurements and SCALE-Sim data that are not shipped: beside the clone (CI), else the
# workplace copy; tests that need them skip when neither exists.
SHARED = next((p for p in (ROOT.parent / "shared", Path("/work/shared")) if p.is_dir()),
              ROOT.parent / "shared")
SCALESIM = ROOT / "tests" / "data" / "scalesim"  # SCALE-Sim configs/topologies (MIT)


@pytest.fixture
def write_csv(tmp_path):
    def _write(text: str, name: str = "trace.csv") -> Path:
        p = tmp_path / name
        p.write_text(text.strip() + "\n")
        return p
    return _write


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``tpusim`` in-process; returns (exit code, stdout, stderr)."""
    from tpusim.cli import main
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli():
    return run_cli



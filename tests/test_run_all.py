"""The benchmark runner: one table from every module's measure(), tolerating missing ones."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _runner():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ratio_by_direction():
    ra = _runner()
    assert ra.ratio({"goal": 1.0, "measured": 0.25, "better": "lower"}) == 4.0
    assert ra.ratio({"goal": 1000, "measured": 500, "better": "higher"}) == 0.5


def test_missing_broken_and_good_modules(tmp_path, monkeypatch):
    ra = _runner()
    (tmp_path / "bench_good.py").write_text(
        "def measure(repeat=1):\n"
        "    return [{'target': 'x', 'goal': 2, 'measured': 1, 'unit': 's', 'better': 'lower'}]\n")
    (tmp_path / "bench_broken.py").write_text("def measure():\n    raise RuntimeError('boom')\n")
    (tmp_path / "bench_none.py").write_text("X = 1\n")
    monkeypatch.setattr(ra, "HERE", tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    rows, notes = ra.collect(["bench_good", "bench_broken", "bench_none", "bench_absent"], 3)
    assert [r["target"] for r in rows] == ["x"]
    text = "\n".join(notes)
    assert "bench_absent: not present" in text and "bench_none: no measure()" in text
    assert "bench_broken: measure() failed (RuntimeError: boom)" in text
    out = ra.table(rows)
    assert "x" in out and "yes" in out and "2" in out

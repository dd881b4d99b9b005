"""The heavy libraries (pandas, plotly, pyarrow, simpy, onnx, dask) load only where a command
uses them: not for any subcommand's --help, not for the serve and sweep packages themselves (their
constants and input checks), and not for a ``tpusim generate`` (which only needs the KV dtype
sizes of tpusim.serve)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tpusim.cli import COMMANDS

HEAVY = {"pandas", "plotly", "pyarrow", "simpy", "onnx", "dask"}


def _loaded(code: str, tmp_path) -> tuple[set[str], str]:
    """Top-level packages imported by ``code`` in a fresh interpreter, and its stderr."""
    code += ("\nimport sys\nprint('IMPORTED', ' '.join(sorted({m.split('.')[0] "
             "for m in sys.modules})))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path)
    line = next(l for l in p.stdout.splitlines() if l.startswith("IMPORTED"))
    return set(line.split()[1:]), p.stderr


def _cli(args: list[str]) -> str:
    return (f"from tpusim.cli import main\ntry:\n    main({args!r})\nexcept SystemExit as e:\n"
            "    print('RC', e.code)\n")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help_imports_nothing_heavy(name, tmp_path):
    mods, _ = _loaded(_cli([name, "--help"]), tmp_path)
    assert "tpusim" in mods
    assert not mods & HEAVY


@pytest.mark.parametrize("module", ["tpusim.serve", "tpusim.serve.kvcache",
                                    "tpusim.serve.requests", "tpusim.sweeps",
                                    "tpusim.sweep_metrics"])
def test_package_import_leaves_pandas_and_simpy_unloaded(module, tmp_path):
    mods, _ = _loaded(f"import {module}", tmp_path)
    assert not mods & HEAVY


def test_bad_serve_rate_is_refused_without_pandas(tmp_path):
    mods, err = _loaded(_cli(["serve", "tpu_v5e", "gpt2", "--rate", "x"]), tmp_path)
    assert err.strip() == ("tpusim: error: --rate: got 'x'; "
                           "a request rate > 0 (requests/s) or inf")
    assert not mods & HEAVY


def test_bad_sweep_axis_is_refused_without_pandas(tmp_path):
    mods, err = _loaded(_cli(["sweep", "default", "resnet50", "--cols", "x"]), tmp_path)
    assert "--cols: got 'x'" in err
    assert not mods & HEAVY


def test_generate_runs_without_pandas_or_simpy(tmp_path):
    mods, err = _loaded(_cli(["generate", "tpu_v4", "gpt2", "--prompt", "16", "--steps", "3",
                              "--out", "steps.csv"]), tmp_path)
    lines = (tmp_path / "steps.csv").read_text().splitlines()
    assert lines[0] == "step,kv_len,latency_s,energy_j"
    assert [l.split(",")[1] for l in lines[1:]] == ["16", "17", "18", "19"]
    assert not mods & HEAVY

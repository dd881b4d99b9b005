"""``layers.csv`` written from the columnar arrays (no pandas) is byte for byte what pandas'
``to_csv`` writes for the same run; a ``tpusim run --no-html`` imports neither pandas nor plotly;
libyaml's loader reads every shipped YAML as the pure-Python one does."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tpusim
from tpusim import _input
from tpusim._io import csv_safe
from tpusim.results import layers_csv
from tpusim.workload import Workload, make_layer

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workloads").rglob("*.csv"))


def _pandas_csv(result) -> str:
    return csv_safe(result.layers).to_csv(index=False, float_format="%.10g")


def _both(result) -> tuple[str, str]:
    assert result._layers is None   # the arrays' path, not a table already built
    fast = layers_csv(result)
    assert result._layers is None   # writing did not build the DataFrame
    return fast, _pandas_csv(result)


@pytest.mark.parametrize("preset,kw", [
    ("default", {}), ("tpu_v4", {}), ("tpu_v5e", {"batch": 3}), ("tpu_v1", {"format": "int8"}),
    ("tpu_v4", {"format": "fp32"}), ("edge_tpu", {}), ("finn_zc706", {"format": "binary"}),
])
def test_every_shipped_workload_writes_the_bytes_pandas_writes(preset, kw):
    ran = 0
    for wl in WORKLOADS:
        try:
            r = tpusim.simulate(preset, ROOT / wl, **kw)
        except tpusim.InputError:   # a format or size the chip does not run
            continue
        fast, slow = _both(r)
        assert fast == slow, (preset, wl)
        ran += 1
    assert ran > 0


def test_awkward_cells_are_quoted_and_neutralised_as_pandas_does():
    """Commas, quotes, a newline, formula starts, a fused zero-cycle row, NaN intensities (an
    on-chip vector op) and integers past int64 (10^12 x 4096 x 8192 MACs)."""
    L = lambda **k: make_layer(k)   # noqa: E731
    wl = Workload("odd", [
        L(name="a,b", op="matmul", m=3, k=5, n=7), L(name='say "hi"', op="relu", elements=10),
        L(name="=SUM(A1)", op="matmul", m=1, k=1, n=1),
        L(name="-x\nnew", op="gelu", elements=1, fused=True),
        L(name="@y", op="matmul", m=10**12, k=4096, n=8192, count=3),
    ])
    r = tpusim.simulate("default", wl)
    fast, slow = _both(r)
    assert fast == slow
    assert '"a,b",' in fast and '"say ""hi""",' in fast and "\n'=SUM(A1)," in fast
    assert ",33554432000000000000," in fast   # exact, not a float


def _imported(args: list[str], tmp_path: Path) -> set[str]:
    code = ("import sys\nfrom tpusim.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n"
            "    pass\nprint('IMPORTED', ' '.join(sorted({m.split('.')[0] for m in "
            "sys.modules})))\n" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("IMPORTED"))
    return set(line.split()[1:])


def test_run_without_report_imports_no_pandas_and_writes_the_same_files(tmp_path):
    mods = _imported(["run", "default", "resnet50", "--no-html", "--out", "o"], tmp_path)
    assert "tpusim" in mods and "numpy" in mods
    assert not mods & {"pandas", "plotly", "pyarrow", "onnx", "simpy"}
    r = tpusim.simulate("default", "resnet50")
    assert (tmp_path / "o" / "layers.csv").read_text() == _pandas_csv(r)


def test_help_imports_nothing_heavy(tmp_path):
    mods = _imported(["--help"], tmp_path)
    assert "click" in mods
    assert not mods & {"pandas", "plotly", "numpy", "pydantic", "yaml", "rich", "simpy"}


def test_report_imports_no_plotly(tmp_path):
    mods = _imported(["run", "default", "resnet50", "--out", "o"], tmp_path)
    assert (tmp_path / "o" / "report.html").is_file()
    assert "plotly" not in mods


SHIPPED_YAML = sorted(p for p in ROOT.rglob("*.yaml")
                      if ".venv" not in p.parts and "bad_inputs" not in p.parts)


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
def test_libyaml_reads_every_shipped_yaml_as_the_python_loader():
    assert len(SHIPPED_YAML) >= 12
    for p in SHIPPED_YAML:
        text = p.read_text()
        assert (yaml.load(text, Loader=_input._FastUniqueKeyLoader)
                == yaml.load(text, Loader=_input._UniqueKeyLoader)), p


@pytest.mark.parametrize("text,message", [
    ("a: 1\nb: 2\na: 3\n", "x.yaml: line 3: not valid YAML (key 'a' appears twice (first on "
                           "line 1))"),
    ("a: [1\n", "x.yaml: line 2: not valid YAML (expected ',' or ']', but got '<stream end>')"),
])
def test_bad_yaml_is_worded_by_the_python_parser(text, message):
    with pytest.raises(tpusim.InputError) as got:
        _input.load_yaml(text, "x.yaml")
    assert str(got.value) == message

"""The CLI as a user meets it: files written, one-line errors with exit 2, nothing half-written."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from .conftest import SCALESIM

RESNET18 = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"


def test_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "run" in out
    code, out, _ = cli("run", "--help")
    assert code == 0 and "Example" in out


def test_run_writes_spec_files(cli, tmp_path):
    out = tmp_path / "r"
    code, stdout, err = cli("run", "tpu_v4", RESNET18, "--out", out)
    assert code == 0, err
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {
        "layers.csv", "summary.json", "report.html", "config.yaml"}
    layers = pd.read_csv(out / "layers.csv")
    assert len(layers) == 21 and layers["macs"].sum() == 1471181568
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"] == "tpu_v4" and summary["workload"] == "Resnet18"
    assert "latency" in stdout


def test_run_title_names_the_event_engine(cli, tmp_path):
    code, stdout, err = cli("run", "default", "tpu_v1/mlp0", "--engine", "event", "--no-html",
                            "--out", tmp_path / "e")
    assert code == 0, err
    assert "mlp0 on default (pipelined, event engine, int8)" in stdout


def test_run_scalesim_cfg_and_set(cli, tmp_path):
    out = tmp_path / "s"
    code, _, err = cli("run", SCALESIM / "configs" / "scale.cfg", RESNET18, "--out", out,
                       "--set", "array.rows=16", "--no-html")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timing_model"] == "scalesim"


@pytest.mark.parametrize("args,needles", [
    (["run", "nochip", "RESNET"], ["nochip", "presets"]),
    (["run", "default", "missing.csv"], ["missing.csv", "not found"]),
    (["run", "default", "RESNET", "--set", "array.rowz=4"], ["array.rowz", "allowed"]),
    (["run", "default", "RESNET", "--set", "array.dataflow=xy"], ["array.dataflow", "xy"]),
    (["run", "default", "RESNET", "--set", "array.rows=-1"], ["array.rows", "-1"]),
    (["run", "default", "RESNET", "--format", "int3"], ["int3", "int8"]),
    (["run", "tpu_v1", "RESNET", "--format", "bf16"], ["bf16", "tpu_v1"]),
    (["run", "tpu_v1", "RESNET", "--set", "memory.sram.weight_kib=1"], ["weight_kib", "tile"]),
    (["run", "default", "RESNET", "--bogus"], ["--bogus"]),
])
def test_bad_input_one_line_exit_2_no_files(cli, tmp_path, args, needles):
    out = tmp_path / "o"
    args = [str(RESNET18) if a == "RESNET" else a for a in args]
    code, stdout, err = cli(*args, "--out", out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_trace_row_names_line(cli, tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("name,op,m,k,n\nfc,matmul,8,8,8\nfc2,matmul,8,,8\n")
    code, _, err = cli("run", "default", bad, "--out", tmp_path / "o")
    assert code == 2 and "line 3" in err and "k" in err and str(bad) in err


@pytest.mark.parametrize("text,needles", [
    ("name,op,m,k,n\nfc,matmul,0,8,8\n", ["line 2", "column m", "0"]),
    ("name,op,in_h,in_w,in_c,out_c,kernel_h,kernel_w\nc,conv2d,2,2,1,1,5,5\n",
     ["line 2", "kernel_h=5"]),
    ("name,op,m,k,n,colour\nfc,matmul,8,8,8,red\n", ["colour", "unknown column"]),
    ("name,op,m,k,n\nfc,fft,8,8,8\n", ["line 2", "fft"]),
])
def test_bad_trace_via_cli(cli, tmp_path, text, needles):
    bad = tmp_path / "t.csv"
    bad.write_text(text)
    code, _, err = cli("run", "default", bad, "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1
    for n in needles:
        assert n in err, err
    assert not (tmp_path / "o").exists()


def test_failed_run_keeps_existing_files(cli, tmp_path):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "layers.csv").write_text("precious\n")
    code, _, _ = cli("run", "default", tmp_path / "nope.csv", "--out", out)
    assert code == 2 and (out / "layers.csv").read_text() == "precious\n"
    assert [p.name for p in out.iterdir()] == ["layers.csv"]


def test_debug_shows_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tpusim", "--debug", "run", "default",
                        str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def _dynamic_onnx(path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_run_onnx_with_input_shape(cli, tmp_path):
    model = tmp_path / "m.onnx"
    _dynamic_onnx(model)
    code, _, err = cli("run", "default", model, "--out", tmp_path / "a", "--format", "bf16")
    assert code == 2 and "--input-shape" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("run", "default", model, "--out", tmp_path / "b", "--format", "bf16",
                       "--input-shape", "x=2x3x8x8", "--no-html")
    assert code == 0, err
    layers = pd.read_csv(tmp_path / "b" / "layers.csv")
    assert layers["macs"].sum() == 2 * 8 * 8 * 4 * 27   # batch 2, 8x8 out, 4 filters of 3x3x3


def test_library_errors_name_arguments_and_the_cli_names_flags(cli, tmp_path):
    """The library says which Python argument is wrong; the CLI says which flag."""
    import tpusim
    with pytest.raises(tpusim.InputError, match=r"^batch: got 0; must be >= 1$"):
        tpusim.simulate("default", "resnet50", batch=0)
    with pytest.raises(tpusim.InputError, match=r"^engine: "):
        tpusim.simulate("default", "resnet50", engine="fast")
    with pytest.raises(tpusim.InputError, match=r"^overrides: "):
        tpusim.load_config("default", **{"array.rows": 0})
    code, _, err = cli("run", "default", "resnet50", "--batch", "0", "--out", tmp_path / "r")
    assert code == 2 and err.strip() == "tpusim: error: --batch: got 0; must be >= 1"
    code, _, err = cli("run", "default", "resnet50", "--set", "array.rows=0",
                       "--out", tmp_path / "r")
    assert code == 2 and err.startswith("tpusim: error: --set: array.rows")
    assert not (tmp_path / "r").exists()


def test_public_api_names_resolve():
    import tpusim
    for name in tpusim.__all__:
        assert getattr(tpusim, name) is not None, name
    assert callable(tpusim.format_table) and callable(tpusim.simulate)
    assert tpusim.tables.current() is tpusim.tables.DEFAULT

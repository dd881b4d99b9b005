"""Bad input, item by item: each gets one line naming the file and field or line, exit 2, and
nothing silently wrong (a BOM is accepted, a duplicate is refused, a boolean is not a number)."""
from __future__ import annotations

import errno
import json
import math
import os
import re

import pytest

from tpusim import fidelity, results
from tpusim._input import MAX_DIM, load_yaml, suggest
from tpusim.calibrate import read_measurements
from tpusim.config import find_config, load_config
from tpusim.errors import InputError
from tpusim.importers import load_workload
from tpusim.workload import make_layer
from .conftest import run_cli

from .conftest import SCALESIM

TRACE = "name,op,m,k,n\nfc1,matmul,64,128,32\nfc2,matmul,32,64,16\n"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def write(tmp_path, name: str, data: bytes | str):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


# ---------------------------------------------------------------- encodings

@pytest.mark.parametrize("name, data, cmd, lineno", [
    ("chip.yaml", b"name: x\nclock_ghz: 1\n# caf\xe9\n", "config", 3),
    ("chip.cfg", b"[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8 \xff\n", "config", 3),
    ("topo.csv", b"Layer name,M,N,K,\nfc,64,32,\xfe16,\n", "workload", 2),
    ("trace.csv", b"name,op,m,k,n\n\nfc\x80,matmul,4,4,4\n", "workload", 3),
])
def test_non_utf8_bytes_name_file_and_line(cli, tmp_path, name, data, cmd, lineno):
    p = write(tmp_path, name, data)
    args = ["run", p, "resnet50"] if cmd == "config" else ["run", "default", p]
    code, _, err = cli(*args, "--out", tmp_path / "o")
    assert code == 2
    line = one_line(err)
    assert f"{p}: line {lineno}: byte 0x" in line and "is not UTF-8 text" in line
    assert not (tmp_path / "o").exists()


def test_bom_is_accepted_in_traces_topologies_measurements_and_cfg(tmp_path):
    bom = b"\xef\xbb\xbf"
    plain = load_workload(write(tmp_path, "a.csv", TRACE))
    with_bom = load_workload(write(tmp_path, "b.csv", bom + TRACE.encode()))
    assert with_bom.layers == plain.layers
    topo = "Layer name,M,N,K,\nfc,64,32,16,\n"
    t1 = load_workload(write(tmp_path, "t1.csv", topo))
    t2 = load_workload(write(tmp_path, "t2.csv", bom + topo.encode()))
    assert t2.layers == t1.layers and t2.layers[0].m == 64 and t2.layers[0].k == 16
    meas = "m,k,n,latency_us\n128,128,128,3.5\n"
    assert read_measurements(write(tmp_path, "m.csv", bom + meas.encode())).latency_us[0] == 3.5
    cfg = (SCALESIM / "configs" / "scale.cfg").read_bytes()
    a = load_config(write(tmp_path, "s1.cfg", cfg))
    b = load_config(write(tmp_path, "s2.cfg", bom + cfg))
    assert (a.array, a.memory, a.timing) == (b.array, b.memory, b.timing)
    assert a.array.rows == 32 and a.array.dataflow == "ws"


# ---------------------------------------------------------------- duplicates

def test_duplicate_csv_column_is_refused(cli, tmp_path):
    p = write(tmp_path, "dup.csv", "name,op,m,k,n,m\nfc,matmul,4,4,4,8\n")
    code, _, err = cli("run", "default", p, "--out", tmp_path / "o")
    assert code == 2
    assert f"{p}: line 1, column 'm': column appears twice" in one_line(err)
    q = write(tmp_path, "meas.csv", "m,k,n,latency_us,latency_us\n4,4,4,1,2\n")
    with pytest.raises(InputError, match="line 1, column 'latency_us': column appears twice"):
        read_measurements(q)


def test_duplicate_yaml_key_is_refused(cli, tmp_path):
    p = write(tmp_path, "dup.yaml", "array:\n  rows: 64\n  cols: 64\n  rows: 128\n")
    with pytest.raises(InputError, match=r"dup.yaml: line 4: .*'rows' appears twice \(first on "
                                         r"line 2\)"):
        load_config(p)
    # merge keys are not duplicates
    assert load_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n", "s") == {"a": {"b": 1},
                                                                   "c": {"b": 1, "d": 2}}


def test_a_set_field_given_twice_is_refused(cli, tmp_path):
    code, _, err = cli("run", "default", "resnet50", "--set", "array.rows=64", "--set",
                       "array.rows=128", "--out", tmp_path / "o")
    assert code == 2 and "--set: array.rows: given twice" in one_line(err)
    code, _, err = cli("sweep", "default", "resnet50", "--set", "array.rows=64", "--set",
                       "array.rows=128", "--out", tmp_path / "s")
    assert code == 2 and "--set: array.rows: given twice" in one_line(err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_energy_and_area_table_files_get_the_same_checks(tmp_path):
    from tpusim import tables
    for text, needle in ((b"mac_pj_45nm: {int8: 1.5}\n# \xff\n", "t.yaml: line 2: byte 0xff"),
                         (b"mac_pj_45nm: {int8: 1.5, int8: 2}\n", "'int8' appears twice"),
                         (b"mac_pj_45nm: {int8: true}\n", "mac_pj_45nm.int8: got 'true'; a "
                                                          "finite number > 0, not a boolean"),
                         (b"mac_pj_45: {int8: 1}\n", "did you mean mac_pj_45nm?"),
                         (b"sram_pj_per_bit_45nm: [[8192, 0.1], [8192, 0.2]]\n",
                          "got '8192 bytes twice'; each capacity once")):
        p = write(tmp_path, "t.yaml", text)
        with pytest.raises(InputError, match=re.escape(needle)):
            tables.load(p)


def test_input_shape_on_a_csv_workload_is_refused_not_ignored(cli, tmp_path):
    p = write(tmp_path, "t.csv", TRACE)
    code, _, err = cli("run", "default", p, "--input-shape", "x=1x2", "--out", tmp_path / "o")
    assert code == 2 and f"{p}: --input-shape: applies to .onnx models only" in one_line(err)
    assert not (tmp_path / "o").exists()
    from tpusim.importers.onnx import parse_input_shapes
    assert parse_input_shapes(["x=1x2", "y=3"]) == {"x": (1, 2), "y": (3,)}
    with pytest.raises(InputError, match="--input-shape: x: given twice"):
        parse_input_shapes(["x=1x2", "x=1x4"])


# ---------------------------------------------------------------- booleans and non-finite numbers

def test_booleans_are_not_numbers(cli, tmp_path):
    with pytest.raises(InputError, match=r"overrides: array.rows: got true; expected a number"):
        load_config("default", **{"array.rows": True})
    code, _, err = cli("run", "default", "resnet50", "--set", "array.rows=true",
                       "--out", tmp_path / "o")
    assert code == 2 and "array.rows: got true; expected a number" in one_line(err)
    raw = (load_config("default").model_dump())
    import yaml
    raw["clock_ghz"] = True
    p = write(tmp_path, "b.yaml", yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"b.yaml: clock_ghz: got true"):
        load_config(p)
    with pytest.raises(InputError, match=r"energy.mac_pj: got \{'int8': True\}"):
        load_config("default", **{"energy.mac_pj": {"int8": True}})
    # ints still fill float fields, and true still fills a bool field
    chip = load_config("default", **{"clock_ghz": 2, "memory.sram.double_buffered": True})
    assert chip.clock_ghz == 2.0 and isinstance(chip.clock_ghz, float)


def test_pod_sections_get_the_same_number_checks():
    with pytest.raises(InputError, match=r"ici.links_per_chip: got true; expected a number"):
        load_config("tpu_v4", **{"ici.links_per_chip": True})
    with pytest.raises(InputError, match=r"ici.link_bandwidth_bytes_per_s: got inf; expected a "
                                         r"finite number"):
        load_config("tpu_v4", **{"ici.link_bandwidth_bytes_per_s": math.inf})


def test_infinite_config_numbers_are_refused():
    with pytest.raises(InputError, match=r"memory.hbm.bandwidth_gbps: got inf; expected a finite"):
        load_config("default", **{"memory.hbm.bandwidth_gbps": math.inf})


def test_infinite_ops_and_negative_mac_energy_are_refused():
    with pytest.raises(InputError, match="column ops_per_element: got 'inf'; input should be a "
                                         "finite number"):
        make_layer({"name": "s", "op": "softmax", "elements": 4, "ops_per_element": "inf"},
                   "t.csv", 2)
    with pytest.raises(InputError, match=r"energy.mac_pj.int8: got -1; input should be greater"):
        load_config("default", **{"energy.mac_pj": {"int8": -1}})


def test_trace_booleans_and_union_paths_read_plainly(tmp_path):
    with pytest.raises(InputError) as e:
        make_layer({"name": "c", "op": "conv2d", "in_h": 4, "in_w": 4, "in_c": 1, "out_c": 1,
                    "kernel_h": 3, "kernel_w": 3, "padding": "abc"}, "t.csv", 2)
    msg = str(e.value)
    assert "column padding: got 'abc'" in msg and "padding.int" not in msg
    with pytest.raises(InputError, match="column m: got True; expected an integer"):
        make_layer({"name": "g", "op": "matmul", "m": True, "k": 4, "n": 4}, "t.csv", 2)


# ---------------------------------------------------------------- empty list options

@pytest.mark.parametrize("opt", ["--rows", "--cols", "--format"])
def test_empty_list_options_of_sweep(cli, tmp_path, opt):
    code, _, err = cli("sweep", "default", "resnet50", opt, "", "--out", tmp_path / "s")
    assert code == 2 and f"{opt}: got ''" in one_line(err)
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- unwritable or full --out

def test_out_under_a_regular_file_is_one_line(cli, tmp_path):
    trace = write(tmp_path, "t.csv", TRACE)
    blocker = write(tmp_path, "file", "x")
    code, _, err = cli("run", "default", trace, "--out", blocker / "sub", "--no-html")
    assert code == 2 and str(blocker) in one_line(err)
    assert blocker.read_text() == "x"


def test_full_disk_names_the_target_and_keeps_the_earlier_result(cli, tmp_path, monkeypatch):
    trace = write(tmp_path, "t.csv", TRACE)
    out = tmp_path / "o"
    code, _, err = cli("run", "default", trace, "--out", out, "--no-html")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = results.summary_json

    def full(summary):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "summary_json", full)
    code, _, err = cli("run", "default", trace, "--out", out, "--no-html", "--batch", "2")
    assert code == 2 and "No space left on device" in one_line(err)
    monkeypatch.setattr(results, "summary_json", real)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_out_of_memory_is_one_line_exit_2(cli, tmp_path, monkeypatch):
    import tpusim

    def huge(*a, **k):
        raise MemoryError

    monkeypatch.setattr(tpusim, "simulate", huge)
    code, _, err = cli("run", "default", write(tmp_path, "t.csv", TRACE), "--out", tmp_path / "o")
    assert code == 2 and "out of memory" in one_line(err)
    assert not (tmp_path / "o").exists()


def test_os_error_line_names_the_target_not_the_temp_file(tmp_path):
    from tpusim.cli import os_error_line
    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".layers.csv.ab12.tmp"))
    assert os_error_line(exc) == f"{tmp_path / 'layers.csv'}: cannot write (No space left on device)"


# ---------------------------------------------------------------- sizes beyond the model

def test_sizes_up_to_2_53_are_accepted_and_beyond_refused(tmp_path, cli):
    assert make_layer({"name": "g", "op": "matmul", "m": 10**15, "k": 8, "n": 8}).m == 10**15
    assert make_layer({"name": "g", "op": "matmul", "m": str(MAX_DIM), "k": 1, "n": 1}).m \
        == 2**53
    for col in ("m", "k", "n", "count", "batch"):
        row = {"name": "g", "op": "matmul", "m": 4, "k": 4, "n": 4, col: 10**17}
        with pytest.raises(InputError, match=rf"t.csv: line 3, column {col}: got 100000000000000000;"
                                             r" at most 2\^53"):
            make_layer(row, "t.csv", 3)
    p = write(tmp_path, "big.csv", "name,op,m,k,n\nfc,matmul,100000000000000000,4,4\n")
    code, _, err = cli("run", "default", p, "--out", tmp_path / "o")
    assert code == 2 and "line 2, column m: got '100000000000000000'" in one_line(err)
    topo = write(tmp_path, "topo.csv", "Layer name,M,N,K,\nfc,100000000000000000,4,4,\n")
    with pytest.raises(InputError, match="line 2, column M: got 100000000000000000; at most 2"):
        load_workload(topo)


def test_lowered_and_batched_sizes_are_checked(cli, tmp_path):
    # a 10^9 x 10^9 conv: each dim is fine, its im2col rows (10^18) are not
    with pytest.raises(InputError, match=r"layer 'c': lowered m = 1000000000000000000 is too "
                                         r"large; at most 2\^53"):
        make_layer({"name": "c", "op": "conv2d", "in_h": 10**9, "in_w": 10**9, "in_c": 1,
                    "out_c": 1, "kernel_h": 1, "kernel_w": 1}, "t.csv", 2)
    p = write(tmp_path, "t.csv", "name,op,m,k,n\nfc,matmul,1000000000000000,4,4\n")
    code, _, err = cli("run", "default", p, "--batch", "100", "--out", tmp_path / "o")
    assert code == 2
    assert "--batch: layer 'fc': batch 100 x m = 100000000000000000 is too large" in one_line(err)
    code, _, err = cli("run", "default", "resnet50", "--batch", str(10**17),
                       "--out", tmp_path / "o")
    assert code == 2 and "--batch: got 100000000000000000; at most 2^53" in one_line(err)
    code, _, err = cli("sweep", "default", "resnet50", "--rows", str(10**17),
                       "--out", tmp_path / "s")
    assert code == 2 and "--rows: got 100000000000000000; at most 2^53" in one_line(err)


def test_llm_and_onnx_sizes_are_checked(cli, tmp_path):
    code, _, err = cli("workload", "llm", "llama3_8b", "--batch", str(10**17),
                       "--out", tmp_path / "l.csv")
    assert code == 2 and "--batch: got 100000000000000000; at most 2^53" in one_line(err)
    # batch 10^12 x seq 128 x hidden 4096 embedding elements exceed 2^53: named by layer
    code, _, err = cli("workload", "llm", "llama3_8b", "--batch", str(10**12),
                       "--out", tmp_path / "l.csv")
    assert code == 2
    assert "llm llama3_8b prefill: layer 'embed': column elements: got 5242880" in one_line(err)
    assert not (tmp_path / "l.csv").exists()
    from tpusim.importers.onnx import parse_input_shape
    with pytest.raises(InputError, match=r"--input-shape: x: got 10{23}; at most 2\^53"):
        parse_input_shape("x=1x" + "1" + "0" * 23)


# ---------------------------------------------------------------- validate --calibrated

def test_validate_calibrated_missing_or_garbage_is_an_error(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(fidelity, "WORKLOAD_DIR", tmp_path / "none")
    meas = write(tmp_path, "m.csv", "m,k,n,latency_us\n128,128,128,3.5\n")
    out = tmp_path / "val"
    cases = {
        tmp_path / "nope.yaml": "--calibrated: file not found",
        write(tmp_path, "plain.yaml", "name: x\n"): "no tpusim-calibrate record",
        write(tmp_path, "junk.yaml", "# tpusim-calibrate: {not json\nname: x\n"):
            "line 1: the tpusim-calibrate record is not a JSON object",
        write(tmp_path, "keys.yaml", '# tpusim-calibrate: {"base": "tpu_v4"}\n'):
            "record lacks measurements, sha256, folds, seed",
        write(tmp_path, "bin.yaml", b"# tpusim-calibrate: \xff\n"): "line 1: byte 0xff",
    }
    for path, needle in cases.items():
        code, _, err = cli("validate", "--out", out, "--measurements", meas, "--calibrated", path)
        assert code == 2, err
        assert str(path) in err and needle in one_line(err), err
        assert not out.exists()
    missing = tmp_path / "no_such.csv"
    code, _, err = cli("validate", "--out", out, "--measurements", missing)
    assert code == 2 and f"{missing}: --measurements: file not found" in one_line(err)
    assert not out.exists()


# ---------------------------------------------------------------- texts and suggestions

def test_error_texts_quote_plain_values_and_dotted_paths(cli, tmp_path):
    p = write(tmp_path, "t.csv", "name,op,m,k,n,weight_dtype\nfc,matmul,4,4,4,int3\n")
    code, _, err = cli("run", "default", p, "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and line.count("got 'int3'") == 1 and "did you mean int8?" in line
    code, _, err = cli("run", "default", "resnet50", "--set", "array=5", "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and "ArrayConfig" not in line and "array: got 5; expected a section" in line
    import numpy as np
    assert str(InputError("f", "x", np.int64(-1), "must be > 0")) == "f: x: got -1; must be > 0"


@pytest.mark.parametrize("args, hint", [
    (["run", "tpu_v44", "resnet50"], "did you mean tpu_v4?"),
    (["run", "default", "resnet5"], "did you mean resnet50?"),
    (["run", "default", "resnet50", "--set", "array.rowz=8"], "did you mean rows?"),
    (["run", "default", "resnet50", "--set", "memory.hmb.kind=DRAM"], "did you mean hbm?"),
    (["run", "default", "resnet50", "--format", "bf61"], "did you mean bf16?"),
    (["formats", "default", "--formats", "int8,fp8_e4m4"], "did you mean fp8_e4m3?"),
])
def test_misspelt_names_get_the_closest_one(cli, tmp_path, args, hint):
    code, _, err = cli(*args, "--out", tmp_path / "o")
    assert code == 2 and hint in one_line(err)


def test_huge_numbers_and_values_stay_one_short_line(cli, tmp_path):
    digits = "9" * 5000   # past Python's 4300-digit int conversion limit
    with pytest.raises(InputError, match=r"x.yaml: line 2: not valid YAML \(an integer of more "
                                         r"than 4300 digits\)"):
        load_yaml(f"a: 1\nb: {digits}\n", "x.yaml")
    code, _, err = cli("run", "default", "resnet50", "--set", f"array.rows={digits}",
                       "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and "--set: array.rows: got '999" in line and "(5002 characters)" in line
    assert len(line) < 400


def test_suggest_offers_nothing_for_unrelated_names():
    assert suggest("zzzz", ["tpu_v4", "default"]) == ""
    assert suggest("tpu_v5", ["tpu_v4", "tpu_v5e"]) == " (did you mean tpu_v5e?)"



# ---------------------------------------------------------------- outputs that are not ours

@pytest.mark.parametrize("args", [
    ("run", "default", "mlp0", "--out", ""),
    ("run", "default", "mlp0", "--format="),
    ("roofline", "tpu_v1", "mlp0", "--out", ""),
    ("infer", "tpu_v5e", "gpt2", "--chips", "4", "--kv-len", "64", "--dtype", ""),
    ("run", "tpu_v5e", "gpt2", "--chips", "4", "--parallel", ""),
    ("serve", "tpu_v5e", "gpt2", "--num-requests", "3", "--rates="),
    ("run", "tpu_v5e", "", "--chips", "4"),
    ("run", "default", "mlp0", "--no-html", ""),
])
def test_an_empty_option_value_is_refused(cli, tmp_path, monkeypatch, args):
    # `--out ''` read as the current folder, `--format ''` as the default format, `--parallel
    # ''` as the default layout, an empty WORKLOAD as the folder '.'
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*args)
    i = args.index("") if "" in args else None
    named = "argument" if i is not None and (args[i - 1] == "--no-html" or
                                             not args[i - 1].startswith("--")) else "--"
    assert code == 2 and "got ''; give a value" in one_line(err)
    assert one_line(err).startswith(f"tpusim: error: {named}")
    assert list(tmp_path.iterdir()) == []


def test_trace_writers_never_replace_their_input_or_a_users_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trace = write(tmp_path, "m.csv", TRACE)
    code, _, err = cli("workload", "prune", str(trace), "--channels", "0.5", "--out", str(trace))
    assert code == 2 and "is the file this command reads" in one_line(err)
    assert trace.read_text() == TRACE
    mine = write(tmp_path, "gpt2_decode.csv", "my notes\n")     # workload llm's default name
    code, _, err = cli("workload", "llm", "gpt2", "--phase", "decode", "--kv-len", "64")
    assert code == 2 and "exists and was not written by tpusim" in one_line(err)
    assert mine.read_text() == "my notes\n"
    # a trace tpusim wrote there is its to replace; a user's file is not, --out or not
    for _ in range(2):
        code, _, err = cli("workload", "llm", "gpt2", "--phase", "prefill", "--seq", "64")
        assert code == 0, err
    code, _, err = cli("workload", "llm", "gpt2", "--phase", "decode", "--kv-len", "64",
                       "--out", str(mine))
    assert code == 2 and "gpt2_decode.csv: exists and was not written by tpusim; choose " \
        "another --out or move it" in one_line(err)
    assert mine.read_text() == "my notes\n"


def test_generate_never_replaces_a_users_json_beside_its_csv(cli, tmp_path):
    mine = write(tmp_path, "st.json", '{"mine": 1}')
    args = ("generate", "tpu_v4", "gpt2", "--prompt", "16", "--steps", "4")
    code, out, err = cli(*args, "--out", str(tmp_path / "st.csv"))
    assert code == 2 and "st.json: exists and was not written by tpusim generate" in \
        one_line(err)
    assert mine.read_text() == '{"mine": 1}' and not (tmp_path / "st.csv").exists()
    for _ in range(2):   # its own earlier record it replaces
        code, _, err = cli(*args, "--out", str(tmp_path / "g.csv"))
        assert code == 0, err


@pytest.mark.parametrize("args,needle", [
    (("--rows", "32,32"), "--rows: got 32; given twice"),
    (("--format", "int8,int8"), "--format: got 'int8'; given twice"),
    (("--set", "array.cols=64,64"), "array.cols: got '64,64'; a value given twice"),
])
def test_a_sweep_value_given_twice_is_refused(cli, tmp_path, args, needle):
    # two identical points ("2 points: 2 computed", two equal rows) are a typo
    code, _, err = cli("sweep", "default", "mlp0", *args, "--out", str(tmp_path / "s"))
    assert code == 2 and needle in one_line(err)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("address", ["notaurl", "tcp://host"])
def test_a_malformed_scheduler_is_one_line_at_once_and_leaves_no_folder(cli, tmp_path,
                                                                         address):
    pytest.importorskip("distributed")
    code, _, err = cli("sweep", "default", "mlp0", "--rows", "32,64", "--scheduler", address,
                       "--out", str(tmp_path / "s"))
    assert code == 2 and "a Dask scheduler address such as tcp://host:8786" in one_line(err)
    assert not (tmp_path / "s").exists()


def test_run_warns_when_the_weights_exceed_hbm(cli, tmp_path):
    # llama3_8b's GEMM weights in bf16 (the trace's k x n per row, every layer) and its token
    # embedding (128,256 x 4,096, which no row holds: the LM head is its own matrix) are
    # ~15 GiB, every parameter but the norms': over the default chip's 8 GiB, under 64
    from tpusim.importers import load_workload as load
    from tpusim.importers.llm import get_preset
    wl, cfg = load("llama3_8b_prefill"), get_preset("llama3_8b")
    elements = sum(l.weight_elements * l.count for l in wl.layers if l.weights == "static")
    elements += cfg.vocab * cfg.hidden
    assert cfg.param_count() - elements == (2 * cfg.layers + 1) * cfg.hidden   # the norms
    # plus its KV cache: the attention GEMMs' key and value operands (dynamic), in bf16: K and V
    # of 8 KV heads x 128 per layer for the 2,048 tokens of its one sequence
    kv = sum(l.weight_elements * l.count for l in wl.layers
             if l.weights == "dynamic" and l.name in ("attn_qk", "attn_av"))
    assert kv == 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * 2048
    gib = (elements + kv) * 2 / 2**30
    code, _, err = cli("run", "default", "llama3_8b_prefill", "--no-html", "--out",
                       str(tmp_path / "a"))
    assert code == 0 and f"weights and KV cache are {gib:,.1f} GiB, more than default's 8 GiB" \
        in err
    code, _, err = cli("run", "default", "llama3_8b_prefill", "--no-html", "--set",
                       "memory.hbm.capacity_gib=64", "--out", str(tmp_path / "b"))
    assert code == 0 and "warning" not in err


def test_generate_errors_name_the_options(cli):
    args = ("generate", "tpu_v4", "gpt2", "--steps", "4")
    for extra, needle in ((("--prompt", "0"), "--prompt: got 0; must be an integer >= 1"),
                          (("--prompt", "16", "--kv-stride", "0"), "--kv-stride: got 0"),
                          (("--prompt", "100000000"), "--prompt + --steps: got 100000004; gpt2 "
                           "has 1,024 learned positions")):
        code, _, err = cli(*args, *extra)
        assert code == 2 and needle in one_line(err), err
    # a RoPE model has no position table: a prompt past exact sizes is blamed on --prompt
    code, _, err = cli("generate", "tpu_v4", "llama2_7b", "--steps", "4", "--prompt",
                       "100000000000")
    assert code == 2 and "--prompt: got 100000000000; too long" in one_line(err), err


def test_calibrate_unknown_fit_field_lists_the_fields(cli, tmp_path):
    meas = write(tmp_path, "m.csv", "m,k,n,latency_us\n64,64,64,10\n128,128,128,20\n")
    code, _, err = cli("calibrate", "tpu_v4", str(meas), "--fit", "timing.overhead_cycles_per_o",
                       "--out", str(tmp_path / "c.yaml"))
    line = one_line(err)
    assert code == 2 and "did you mean overhead_cycles_per_op?" in line
    assert "fields here: " in line and "wave_cycles" in line


@pytest.mark.parametrize("fits, says", [
    (("memory.hbm.efficiency", "memory.hbm.efficiency"),
     "--fit: memory.hbm.efficiency: given twice; fit each field once"),
    (("memory.hbm.efficiency=0:1",),
     "--fit: memory.hbm.efficiency: got '0:1'; LOW 0: input should be greater than 0"),
    (("memory.hbm.efficiency=0.1:5",),
     "--fit: memory.hbm.efficiency: got '0.1:5'; HIGH 5: input should be less than or equal "
     "to 1"),
])
def test_calibrate_fit_given_twice_or_out_of_the_fields_range(cli, tmp_path, fits, says):
    meas = write(tmp_path, "m.csv", "m,k,n,latency_us\n64,64,64,10\n128,128,128,20\n")
    args = [a for f in fits for a in ("--fit", f)]
    code, _, err = cli("calibrate", "tpu_v4", str(meas), *args, "--out", str(tmp_path / "c.yaml"))
    assert code == 2 and one_line(err) == f"tpusim: error: {says}", err
    assert not (tmp_path / "c.yaml").exists()


# A user's own file named like one of a command's outputs, in its --out folder: refused in one
# line before anything is written (README: files tpusim did not write are left alone); the
# command's own earlier output there is replaced as before.
USERS_FILE = [
    (("run", "default", "tpu_v1/mlp0", "--no-html"), "layers.csv"),
    (("run", "default", "tpu_v1/mlp0"), "report.html"),
    (("train", "tpu_v5e", "gpt2", "--chips", "4", "--seq", "128", "--parallel", "fsdp=4"),
     "train.json"),
    (("infer", "tpu_v5e", "gpt2", "--chips", "4", "--phase", "decode", "--batch", "2",
      "--kv-len", "64"), "infer.json"),
    (("serve", "tpu_v5e", "gpt2", "--num-requests", "3", "--synthetic", "in=16,out=4",
      "--no-html"), "requests.csv"),
    (("sweep", "default", "tpu_v1/mlp0", "--rows", "16,32"), "sweep.csv"),
    (("formats", "default", "--formats", "int8", "--workload", "tpu_v1/mlp0"), "formats.csv"),
    (("compress", "default", "tpu_v1/mlp0", "--sparsity", "2:4"), "compress.csv"),
    (("compare", "default:tpu_v1/mlp0", "tpu_v4:tpu_v1/mlp0"), "compare.csv"),
]


@pytest.mark.parametrize("args, name", USERS_FILE, ids=[f"{a[0]}-{n}" for a, n in USERS_FILE])
def test_a_users_file_named_like_an_output_is_never_replaced(cli, tmp_path, args, name):
    out = tmp_path / "o"
    out.mkdir()
    (out / name).write_text("mine\n")
    code, _, err = cli(*args, "--out", out)
    assert code == 2 and one_line(err).endswith(
        f"{out / name}: exists and was not written by tpusim {args[0]}; choose another --out "
        "or move it"), err
    assert [p.name for p in out.iterdir()] == [name] and (out / name).read_text() == "mine\n"
    (out / name).unlink()
    for _ in range(2):        # its own output, written twice: the second replaces the first
        code, _, err = cli(*args, "--out", out)
        assert code == 0, err


def test_single_file_outputs_never_replace_a_users_file(cli, tmp_path):
    """A trace CSV, a calibrated config and a --trace JSON replace only what tpusim wrote
    (their tpusim header, their tpusim-calibrate record, their otherData.tool)."""
    meas = write(tmp_path, "meas.csv", "m,n,k,latency_us\n128,128,128,2\n256,256,256,9\n")
    cases = [
        (tmp_path / "w.csv", ("workload", "llm", "gpt2", "--seq", "16", "--out")),
        (tmp_path / "c.yaml", ("calibrate", "tpu_v4", str(meas), "--folds", "2", "--out")),
        (tmp_path / "t.json", ("train", "tpu_v5e", "gpt2", "--chips", "2", "--seq", "64",
                               "--parallel", "fsdp=2", "--out", str(tmp_path / "tr"),
                               "--trace")),
    ]
    for target, args in cases:
        target.write_text("mine\n")
        code, _, err = cli(*args, str(target))
        assert code == 2 and one_line(err).endswith(
            f"{target}: exists and was not written by tpusim; choose another "
            f"{'--trace path' if args[-1] == '--trace' else '--out'} or move it"), err
        assert target.read_text() == "mine\n"
        target.unlink()
        for _ in range(2):       # its own file: written, then replaced
            code, _, err = cli(*args, str(target))
            assert code == 0, err


@pytest.mark.parametrize("args, option", [
    (("roofline", "default", "tpu_v1/mlp0", "--format", "int8,bf16,int8"), "--format"),
    (("compress", "default", "tpu_v1/mlp0", "--sparsity", "2:4,0.5", "--sparsity", "2:4"),
     "--sparsity"),
    (("compress", "default", "tpu_v1/mlp0", "--formats", "w8a8,w8a8"), "--formats"),
    (("serve", "tpu_v5e", "gpt2", "--num-requests", "3", "--rates", "10,10"), "--rates"),
    (("formats", "default", "--formats", "int8,int8"), "--formats"),
    (("sweep", "default", "tpu_v1/mlp0", "--rows", "16,16"), "--rows"),
])
def test_a_list_value_given_twice_is_refused_by_every_command(cli, tmp_path, args, option):
    out = tmp_path / ("o.html" if args[0] == "roofline" else "o")
    code, _, err = cli(*args, "--out", out)
    assert code == 2 and one_line(err).startswith(f"tpusim: error: {option}: got ")
    assert one_line(err).endswith("given twice; list each value once")
    assert not out.exists()


def test_a_rerun_that_writes_fewer_files_leaves_a_users_file_it_listed(cli, tmp_path):
    """The manifest keeps each file's sha256: a file the last run wrote and a user replaced
    since is the user's now, so a --no-html rerun does not delete it, and a rerun that would
    replace it is refused."""
    out = tmp_path / "a"
    args = ("run", "default", "tpu_v1/mlp0", "--out", out)
    assert cli(*args)[0] == 0
    (out / "report.html").write_text("mine\n")
    code, _, err = cli(*args, "--no-html")
    assert code == 0, err
    assert (out / "report.html").read_text() == "mine\n"
    code, _, err = cli(*args)
    assert code == 2 and one_line(err).endswith("report.html: exists and was not written by "
                                                "tpusim run; choose another --out or move it")
    (out / "layers.csv").write_text("mine too\n")           # one the last run did write
    code, _, err = cli(*args, "--no-html")
    assert code == 2 and one_line(err).endswith("layers.csv: was changed since tpusim run "
                                                "wrote it; move it or choose another --out")
    assert (out / "layers.csv").read_text() == "mine too\n"


def test_without_its_manifest_a_folder_is_read_file_by_file(cli, tmp_path):
    """A folder whose hidden manifest is gone (or an older tpusim's): a file counts as the
    command's own only by its content (its record, the page's generator tag, config.yaml's
    header, the layers table's columns); a user's page beside a copied record is not."""
    out = tmp_path / "a"
    args = ("run", "default", "tpu_v1/mlp0", "--out", out)
    assert cli(*args)[0] == 0
    (out / ".tpusim-run.json").unlink()
    assert cli(*args)[0] == 0                      # all four identify themselves
    other = tmp_path / "b"
    other.mkdir()
    (other / "summary.json").write_bytes((out / "summary.json").read_bytes())
    (other / "report.html").write_text("my page\n")
    code, _, err = cli("run", "default", "tpu_v1/mlp0", "--out", other)
    assert code == 2 and "report.html: exists and was not written by tpusim run" in err
    assert (other / "report.html").read_text() == "my page\n"


@pytest.mark.parametrize("name, says", [
    ("somedir/", "names a folder; --trace takes a file path"),
    (".tpusim-run.json", "is a name tpusim keeps for its record"),
])
def test_trace_paths_that_name_a_folder_or_a_manifest(cli, tmp_path, name, says):
    out = tmp_path / "r"
    code, _, err = cli("run", "default", "tpu_v1/mlp0", "--out", out,
                       "--trace", f"{out}/{name}")
    assert code == 2 and says in one_line(err) and not out.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("cmd", [
    ("run", "default", "tpu_v1/mlp0"),
    ("train", "tpu_v5e", "gpt2", "--chips", "4", "--parallel", "fsdp=4", "--seq", "64"),
    ("infer", "tpu_v5e", "gpt2", "--chips", "4", "--kv-len", "64"),
])
def test_a_trace_the_os_will_not_take_is_refused_before_any_output(cli, tmp_path, cmd):
    # /proc takes no new files, even from root: found before train.json & co. are written
    out = tmp_path / "r"
    code, _, err = cli(*cmd, "--out", out, "--trace", "/proc/tpusim-trace.json")
    assert code == 2 and "/proc/tpusim-trace.json: cannot write" in one_line(err)
    assert not out.exists()


def test_a_comment_naming_tpusim_is_not_its_mark(cli, tmp_path):
    mine = write(tmp_path, "notes.csv", "# my notes about tpusim runs\nname,op\n")
    code, _, err = cli("workload", "llm", "gpt2", "--seq", "16", "--out", str(mine))
    assert code == 2 and "exists and was not written by tpusim" in one_line(err)
    assert mine.read_text() == "# my notes about tpusim runs\nname,op\n"


@pytest.mark.parametrize("args, says", [
    (("run", "tpu_v5e", "gpt2", "--chips", "1024"),
     "--chips: got 1024; 1024 chips per slice; ICI joins at most 256"),
    (("infer", "tpu_v5e", "bert_base", "--chips", "4", "--kv-len", "5"),
     "--phase: got 'decode'; bert_base is an encoder (no LM head) and generates no tokens"),
    (("serve", "tpu_v5e", "bert_base", "--chips", "4", "--num-requests", "5"),
     "bert_base: is an encoder (no LM head) and generates no tokens; tpusim serve takes"),
    (("workload", "llm", "bert_base", "--phase", "decode", "--kv-len", "5"),
     "bert_base is an encoder (no LM head)"),
    (("train", "tpu_v5e", "gpt2", "--chips", "99999999999999999999"),   # refused at once
     "chips per slice; ICI joins at most 256 chips in one slice"),
    (("infer", "tpu_v5e", "gpt2", "--chips", "4", "--phase", "prefill", "--parallel", "fsdp=4"),
     "inference shards with tp and dp only (weights stay whole per tp shard"),
    (("run", "tpu_v5e", "gpt2", "--chips", "4", "--engine", "event"),
     "--engine runs one chip; it does not go with --chips"),
])
def test_messages_name_what_the_user_gave(cli, tmp_path, args, says):
    code, _, err = cli(*args, "--out", tmp_path / "o")
    assert code == 2 and says in one_line(err) and "dtype sets" not in err, err
    assert "(no sp" not in err and not (tmp_path / "o").exists()


def test_workload_llm_takes_custom_as_train_does(cli, tmp_path):
    dims = ("--hidden", "64", "--layers", "2", "--heads", "4", "--vocab", "100")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert cli("workload", "llm", "custom", *dims, "--out", a)[0] == 0
    assert cli("workload", "llm", *dims, "--out", b)[0] == 0
    assert a.read_text() == b.read_text()


@pytest.mark.parametrize("args", [
    ("serve", "tpu_v5e", "gpt2", "--num-requests", "3", "--synthetic", "in=16,out=4",
     "--rates", "2,4", "--no-html"),
    ("sweep", "default", "tpu_v1/mlp0", "--rows", "16,32"),
    ("compare", "default:tpu_v1/mlp0", "tpu_v4:tpu_v1/mlp0"),
    ("formats", "default", "--formats", "int8", "--workload", "tpu_v1/mlp0"),
    ("compress", "default", "tpu_v1/mlp0", "--sparsity", "2:4"),
], ids=lambda a: a[0])
def test_without_its_manifest_a_command_still_reruns_over_its_tables(cli, tmp_path, args):
    """A table has no mark of its own; with the command's record beside it (its provenance
    names the command) it is taken for the command's, as after an upgrade or a lost manifest.
    A manifest from before per-file sha256 is read the same way."""
    out = tmp_path / "o"
    assert cli(*args, "--out", out)[0] == 0
    for m in out.glob(".tpusim-*.json"):
        m.unlink()
    code, _, err = cli(*args, "--out", out)
    assert code == 0, err
    for m in out.glob(".tpusim-*.json"):        # as a first-round manifest: no sha256
        rec = json.loads(m.read_text())
        rec.pop("sha256", None)
        m.write_text(json.dumps(rec))
    code, _, err = cli(*args, "--out", out)
    assert code == 0, err


def test_a_trace_is_not_the_record_that_vouches_for_a_folder(cli, tmp_path):
    """Without a manifest, tables and unmarked JSON are taken only with the command's own
    record (provenance) beside them: a tpusim trace there does not make a user's infer.json
    tpusim's."""
    f = tmp_path / "F"
    f.mkdir()
    (f / "infer.json").write_text('{"my_notes": "keep me"}\n')
    args = ("infer", "tpu_v5e", "gpt2", "--chips", "2", "--phase", "decode", "--batch", "1",
            "--kv-len", "128")
    assert cli(*args, "--out", tmp_path / "other", "--trace", f / "t.json")[0] == 0
    code, _, err = cli(*args, "--out", f, "--trace", f / "t.json")
    assert code == 2 and "infer.json: exists and was not written by tpusim infer" in err
    assert (f / "infer.json").read_text() == '{"my_notes": "keep me"}\n'


def test_a_users_file_named_like_a_manifest_is_refused(cli, tmp_path):
    m = tmp_path / "M"
    m.mkdir()
    (m / ".tpusim-run.json").write_text("user data named like a manifest\n")
    code, _, err = cli("run", "default", "tpu_v1/mlp0", "--no-html", "--out", m)
    assert code == 2 and ".tpusim-run.json: is not a manifest tpusim wrote" in one_line(err)
    assert (m / ".tpusim-run.json").read_text() == "user data named like a manifest\n"
    assert [p.name for p in m.iterdir()] == [".tpusim-run.json"]


def test_a_trace_path_that_is_a_symlink_names_the_trace_option(cli, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("{}\n")
    link = tmp_path / "t.json"
    link.symlink_to(target)
    code, _, err = cli("run", "default", "tpu_v1/mlp0", "--out", tmp_path / "r", "--trace", link)
    assert code == 2 and "is a symlink" in err and "choose another --trace path" in err, err
    assert target.read_text() == "{}\n" and not (tmp_path / "r").exists()


def test_suggest_names_the_formats_a_stem_begins():
    from tpusim.formats import FORMATS
    assert suggest("fp8", FORMATS) == " (did you mean fp8_e4m3 or fp8_e5m2?)"
    assert suggest("FP8", FORMATS) == " (did you mean fp8_e4m3 or fp8_e5m2?)"
    assert suggest("", FORMATS) == ""


def test_results_that_overflow_are_null_in_strict_json(cli, tmp_path):
    """A link a googol times too slow makes the step infinite: train.json says null, never the
    Infinity that strict JSON readers (jq, browsers) refuse."""
    out = tmp_path / "t"
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--parallel", "fsdp=8",
                       "--seq", "64", "--set", "ici.link_bandwidth_bytes_per_s=1e-300",
                       "--out", out)
    assert code == 0, err

    def refuse(name):
        raise ValueError(name)
    rec = json.loads((out / "train.json").read_text(), parse_constant=refuse)
    assert rec["step_s"] is None


def test_a_requests_file_that_is_not_utf8_is_one_line(cli, tmp_path):
    bad = tmp_path / "r.jsonl"
    bad.write_bytes(b'{"input_tokens": 3, "output_tokens": 2}\n\xff\xfe{}\n')
    code, _, err = cli("serve", "tpu_v5e", "gpt2", "--requests", bad, "--out", tmp_path / "o")
    assert code == 2 and f"{bad}: line 2: byte 0xff is not UTF-8 text; save the requests file " \
        "as UTF-8" in one_line(err), err
    assert not (tmp_path / "o").exists()


def test_set_values_are_decimal_integers_or_text():
    from tpusim.config import parse_value
    assert [parse_value(t) for t in ("64", "-3", "0", "1.5", "true")] == [64, -3, 0, 1.5, True]
    # YAML 1.1 would read these as 4, 8 and 90
    assert [parse_value(t) for t in ("0x4", "010", "1:30")] == ["0x4", "010", "1:30"]
    # so a bare N:M on --set is the pattern it reads as (a YAML file still needs the quotes)
    from tpusim.config import load_config
    assert load_config("tpu_v4", **{"array.sparsity": parse_value("2:4")}).array.sparsity == \
        ["2:4"]


def test_a_hex_looking_slice_is_named_as_typed(cli, tmp_path):
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--parallel", "fsdp=8",
                       "--set", "ici.slice=0x4", "--out", tmp_path / "o")
    assert code == 2 and "ici.slice: got '0x4'; every size must be a positive integer" in err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_roofline_chart_the_os_will_not_take_is_refused_before_the_table(cli):
    # the table used to print in full before the chart's write failed
    code, out, err = cli("roofline", "default", "mlp0", "--out", "/proc/tpusim-roof.html")
    assert code == 2 and "/proc/tpusim-roof.html: cannot write" in one_line(err)
    assert out == ""


def test_energy_fields_are_checked_where_the_config_is_read(tmp_path):
    # a node outside the scaling table names the file (not the chip's name: field), or --set
    y = tmp_path / "node5.yaml"
    y.write_text(find_config("tpu_v1").read_text().replace("node_nm: 28 ", "node_nm: 5 "))
    with pytest.raises(InputError, match=r"node5.yaml: energy.node_nm: got 5; the node "
                                         r"scaling table covers 7-180 nm"):
        load_config(y)
    code, _, err = run_cli("run", "default", "tpu_v1/mlp0", "--set", "energy.node_nm=3",
                           "--out", tmp_path / "o")
    assert code == 2 and "--set: energy.node_nm: got 3;" in err and not (tmp_path / "o").exists()
    # a MAC energy's format: its aliases as --format takes them, an unknown one with the list
    assert load_config("default", **{"energy.mac_pj": {"bfloat16": 2.0}}).energy.mac_pj == \
        {"bf16": 2.0}
    with pytest.raises(InputError, match=r"int9: unknown format \(did you mean int8\?\); "
                                         r"allowed: int8\|"):
        load_config("default", **{"energy.mac_pj": {"int9": 1.0}})
    code, _, err = run_cli("run", "default", "tpu_v1/mlp0", "--format", "int9", "--out",
                           tmp_path / "o")
    assert code == 2 and err.startswith("tpusim: error: --format: got 'int9'; unknown format")


def test_a_mac_energy_given_twice_by_two_names_is_refused():
    with pytest.raises(InputError, match="bf16 given twice"):
        load_config("default", **{"energy.mac_pj": {"bfloat16": 9.0, "bf16": 1.0}})

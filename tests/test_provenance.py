"""What ``tpusim run`` writes says what ran: the resolved config and its provenance, a config.yaml
that reproduces the run, a report built from the resolved fields, only files of this run, the
ONNX importer's coverage; and the default output folder is named for what changes the numbers."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

TRACE = """
name,op,m,k,n,elements
fc1,matmul,256,512,384,
act,relu,,,,98304
fc2,matmul,256,384,128,
"""


def _trace(tmp_path, text=TRACE, name="t.csv"):
    p = tmp_path / name
    p.write_text(text.strip() + "\n")
    return p


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _visible(d):
    return {p.name for p in d.iterdir() if not p.name.startswith(".")}


def test_summary_records_resolved_config_overrides_command_version_and_input_hashes(
        cli, tmp_path):
    import tpusim
    from tpusim.config import CONFIG_DIR
    trace = _trace(tmp_path)
    cfg = tmp_path / "chip.yaml"
    cfg.write_text((CONFIG_DIR / "default.yaml").read_text())
    out = tmp_path / "r"
    args = ["run", cfg, trace, "--set", "array.rows=64", "--set", "clock_ghz=0.5",
            "--format", "bf16", "--batch", "2", "--out", out]
    code, _, err = cli(*args)
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    prov = s["provenance"]
    assert prov["overrides"] == {"array.rows": 64, "clock_ghz": 0.5}
    rc = prov["resolved_config"]
    assert rc["array"]["rows"] == 64 and rc["clock_ghz"] == 0.5
    # every field, not only the overridden ones: equal to the full model dump
    want = tpusim.load_config(cfg, **{"array.rows": 64, "clock_ghz": 0.5}).model_dump(mode="json")
    assert {k: v for k, v in rc.items() if k != "description"} == \
        {k: v for k, v in want.items() if k != "description"}
    assert prov["command"] == "tpusim " + " ".join(str(a) for a in args)
    assert prov["tpusim_version"] == tpusim.__version__
    assert prov["inputs"]["config"]["sha256"] == _sha(cfg)
    assert prov["inputs"]["workload"]["sha256"] == _sha(trace)
    assert prov["options"]["format"] == "bf16" and prov["options"]["batch"] == 2
    # the Result an API user gets carries the same resolved config
    res = tpusim.simulate(tpusim.load_config(cfg, **{"array.rows": 64, "clock_ghz": 0.5}),
                          str(trace), format="bf16", batch=2)
    assert res.config.array.rows == 64


def _strip(summary):
    s = dict(summary)
    s.pop("simulator_seconds")
    prov = s.pop("provenance")
    return s, prov


def test_config_yaml_reproduces_the_run(cli, tmp_path):
    trace = _trace(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = cli("run", "default", trace, "--set", "array.rows=64",
                       "--set", "memory.hbm.bandwidth_gbps=123.5", "--format", "bf16",
                       "--batch", "3", "--out", a)
    assert code == 0, err
    sa, pa = _strip(json.loads((a / "summary.json").read_text()))
    # the recorded command to reproduce it, run as written
    repro = pa["reproduce"].split()
    assert repro[:4] == ["tpusim", "run", str(a / "config.yaml"), str(trace)]
    code, _, err = cli(*repro[1:], "--out", b)
    assert code == 0, err
    assert (a / "layers.csv").read_bytes() == (b / "layers.csv").read_bytes()
    sb, pb = _strip(json.loads((b / "summary.json").read_text()))
    assert sa == sb
    assert pa["resolved_config"] == pb["resolved_config"]
    assert pb["overrides"] == {} and pa["overrides"]["array.rows"] == 64
    # and without the recorded options it would differ: the options matter
    code, _, err = cli("run", a / "config.yaml", trace, "--out", tmp_path / "c")
    assert (a / "layers.csv").read_bytes() != (tmp_path / "c" / "layers.csv").read_bytes()


def test_reproduce_keeps_fuse(cli, tmp_path):
    # a fused run's recorded command fuses too (without --fuse it reran unfused, 28% slower)
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = cli("run", "default", "resnet50", "--fuse", "--no-html", "--out", a)
    assert code == 0, err
    repro = json.loads((a / "summary.json").read_text())["provenance"]["reproduce"].split()
    assert "--fuse" in repro
    code, _, err = cli(*repro[1:], "--no-html", "--out", b)
    assert code == 0, err
    assert (a / "layers.csv").read_bytes() == (b / "layers.csv").read_bytes()


def test_report_subtitle_comes_from_resolved_config(cli, tmp_path):
    out = tmp_path / "r"
    code, _, err = cli("run", "default", _trace(tmp_path), "--set", "array.rows=64",
                       "--out", out)
    assert code == 0, err
    page = (out / "report.html").read_text()
    sub = page.split("class='sub'>", 1)[1].split("<", 1)[0]
    assert sub.startswith("4 x 64x128 ws arrays at 1.05 GHz")
    assert "128x128" not in sub


def test_no_html_rerun_leaves_no_stale_report_and_keeps_user_files(cli, tmp_path):
    trace = _trace(tmp_path)
    out = tmp_path / "r"
    assert cli("run", "default", trace, "--out", out)[0] == 0
    assert (out / "report.html").is_file()
    (out / "notes.txt").write_text("mine")
    code, stdout, err = cli("run", "default", trace, "--set", "array.rows=64", "--no-html",
                            "--out", out)
    assert code == 0, err
    assert "report.html" not in stdout
    assert _visible(out) == {"layers.csv", "summary.json", "config.yaml", "notes.txt"}
    assert (out / "notes.txt").read_text() == "mine"
    rid = json.loads((out / "summary.json").read_text())["provenance"]["run_id"]
    assert f"(run {rid})" in (out / "config.yaml").read_text()


def test_folder_of_an_older_tpusim_loses_its_stale_report_too(cli, tmp_path):
    trace = _trace(tmp_path)
    out = tmp_path / "r"
    assert cli("run", "default", trace, "--out", out)[0] == 0
    (out / ".tpusim-run.json").unlink()      # as a tpusim without manifests left it
    (out / "config.yaml").unlink()
    (out / "other.html").write_text("mine")
    assert cli("run", "default", trace, "--out", out, "--no-html")[0] == 0
    assert _visible(out) == {"layers.csv", "summary.json", "config.yaml", "other.html"}


def test_a_users_own_config_yaml_in_out_is_never_replaced(cli, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    mine = out / "config.yaml"
    mine.write_text("name: mine\n")
    code, _, err = cli("run", "default", _trace(tmp_path), "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not written by tpusim" in err
    assert mine.read_text() == "name: mine\n" and _visible(out) == {"config.yaml"}


def test_crash_between_renames_leaves_no_mix_of_two_runs(cli, tmp_path, monkeypatch):
    trace = _trace(tmp_path)
    out = tmp_path / "r"
    assert cli("run", "default", trace, "--out", out)[0] == 0
    before = {n: (out / n).read_bytes() for n in _visible(out)}
    real = os.replace
    calls = []

    def crash_after_first(src, dst):
        if not os.path.basename(dst).startswith("."):   # an output, not the manifest
            if calls:
                raise SystemExit(9)   # stands for a kill: no cleanup runs in tpusim
            calls.append(dst)
        real(src, dst)
    monkeypatch.setattr(os, "replace", crash_after_first)
    code, _, _ = cli("run", "default", trace, "--set", "array.rows=32", "--out", out)
    assert code == 9
    monkeypatch.setattr(os, "replace", real)
    left = _visible(out)
    assert left and left <= {"layers.csv", "summary.json", "config.yaml", "report.html"}
    for n in left:   # whatever is there comes from the new run, none from the old one
        assert (out / n).read_bytes() != before[n]
    assert json.loads((out / ".tpusim-run.json").read_text())["state"] == "pending"
    # the next run completes normally and cleans up
    assert cli("run", "default", trace, "--out", out)[0] == 0
    assert _visible(out) == {"layers.csv", "summary.json", "config.yaml", "report.html"}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_default_out_dirs_differ_by_what_changes_the_numbers(cli, tmp_path, monkeypatch):
    trace = _trace(tmp_path)
    monkeypatch.chdir(tmp_path)
    runs = [(), ("--set", "array.rows=64"), ("--format", "bf16"), ("--batch", "4"),
            ("--engine", "event")]
    dirs = set()
    for extra in runs:
        code, stdout, err = cli("run", "default", trace, "--no-html", *extra)
        assert code == 0, err
        dirs.add(stdout.split("wrote ", 1)[1].split("/layers.csv")[0])
    assert len(dirs) == len(runs)
    assert "results/default-t" in dirs and "results/default-t-array.rows=64" in dirs
    # the same run again writes the same folder (order of --set does not matter)
    from tpusim.provenance import default_run_dir
    assert default_run_dir("default", "t.csv", overrides={"a.b": 1, "c": 2}) == \
        default_run_dir("default", "t.csv", overrides={"c": 2, "a.b": 1})


def test_onnx_coverage_in_summary_and_one_warning_line(cli, tmp_path):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nh
    w = nh.from_array(np.ones((3, 2, 1, 1), np.float32), "w")
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], name="c1"),
             oh.make_node("Mystery", ["c"], ["u"], domain="my.ops", name="odd"),
             oh.make_node("Reshape", ["u", "shape"], ["y"], name="flat")]
    shape = nh.from_array(np.array([1, -1], np.int64), "shape")
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 6, 6])],
                      [oh.make_tensor_value_info("y", TP.FLOAT, None)], [w, shape])
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("my.ops", 1)])
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    out = tmp_path / "r"
    code, _, err = cli("run", "default", path, "--out", out, "--no-html")
    assert code == 0, err
    cov = json.loads((out / "summary.json").read_text())["onnx_coverage"]
    assert cov["costed"] == ["c1"] and cov["nodes_costed"] == 1
    assert [(n["name"], n["op"]) for n in cov["not_costed"]] == [("odd", "Mystery")]
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "odd (Mystery)" in warnings[0]
    assert cov["nodes_total"] == 3


def test_every_page_ends_with_its_run(cli, tmp_path):
    # each page names the run and command its JSON records (a page alone says what ran)
    import json as _json
    cases = [(("run", "default", "mlp0", "--out", tmp_path / "r"), "r/report.html",
              "r/summary.json"),
             (("serve", "tpu_v5e", "gpt2", "--num-requests", "5", "--out", tmp_path / "s"),
              "s/report.html", "s/serve.json"),
             (("roofline", "default", "mlp0", "--out", tmp_path / "ro" / "x.html"),
              "ro/x.html", "ro/x.json"),
             (("compare", tmp_path / "r", "default:mlp0", "--out", tmp_path / "c"),
              "c/compare.html", "c/compare.json")]
    for args, page, record in cases:
        code, _, err = cli(*args)
        assert code == 0, err
        prov = _json.loads((tmp_path / record).read_text())["provenance"]
        html = (tmp_path / page).read_text()
        assert f"&middot; run {prov['run_id']}" in html, page
        assert "<code>tpusim " in html.split("&middot; run")[-1], page

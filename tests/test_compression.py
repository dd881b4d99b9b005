"""Sparse and packed weights (tpusim.compression), channel pruning (tpusim.prune) and
``tpusim compress``: closed forms on small layers, density 1.0 = dense exactly, stored bytes =
values + index, both simulation paths alike, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tpusim
from tpusim.compress import mixed_rel_error
from tpusim.compression import dense
from tpusim.config import load_config
from tpusim.importers.trace_csv import read_trace
from tpusim.layer_rules import LAYER_COLUMNS
from tpusim.numerics import gemm_rel_error
from tpusim.results import layers_csv
from tpusim.sparsity import expected_max_binomial, kept_reduction, metadata_bits_per_kept

M, K, N = 256, 1024, 512


def _chip(sparse=()):
    return load_config("tpu_v4", **{"array.sparsity": list(sparse)})


def _run(chip, path, core="columnar"):
    return tpusim.simulate(chip, path, core=core)


def _row(res, name):
    df = res.layers
    return df[df["name"] == name].iloc[0]


@pytest.fixture
def sparse_trace(write_csv):
    return write_csv(f"""
name,op,m,k,n,sparsity,density,weight_dtype,act_dtype
dense,matmul,{M},{K},{N},,,bf16,bf16
s24,matmul,{M},{K},{N},2:4,,bf16,bf16
d30,matmul,{M},{K},{N},,0.3,bf16,bf16
""")


def test_24_on_a_sparse_array_halves_the_macs_and_reads_2_bits_per_kept_value(sparse_trace):
    res = _run(_chip(["2:4"]), sparse_trace)
    r = _row(res, "s24")
    assert r["macs"] == M * (K // 2) * N              # half the MACs
    assert r["k"] == K // 2
    kept = K * N // 2
    # bf16 values (2 B) plus 2 bits of position per kept value
    assert r["weight_value_bytes"] == kept * 2
    assert r["weight_index_bytes"] == kept * 2 / 8
    assert r["hbm_weight_read_bytes"] == (kept * 2 + kept / 4) * r["weight_passes"]
    assert r["sparse_skipped"] == "N:M" and r["density"] == 0.5
    # compute-bound GEMM: the array's compute cycles halve (same folds, half the k folds)
    d = _row(res, "dense")
    assert r["compute_cycles"] < d["compute_cycles"]
    as_dense = tpusim.simulate(_chip(["2:4"]), dense(read_trace(sparse_trace)))
    assert r["sparse_speedup"] == _row(as_dense, "s24")["cycles"] / r["cycles"] > 1
    assert "zeros skipped" in r["sparse_why"]


def test_24_on_a_dense_array_saves_bytes_not_macs(sparse_trace):
    res = _run(_chip(), sparse_trace)
    r, d = _row(res, "s24"), _row(res, "dense")
    assert r["macs"] == d["macs"] == M * K * N
    e = K * N
    # a dense array cannot use N:M metadata: stored as a bitmap (1 bit per position) + values
    assert r["weight_index_bytes"] == e / 8
    assert r["weight_value_bytes"] == e * 0.5 * 2
    assert r["hbm_weight_read_bytes"] == (e / 8 + e) * r["weight_passes"]
    assert "every MAC" in r["sparse_why"]


def test_unstructured_bitmap_bytes_are_values_plus_index(sparse_trace):
    res = _run(_chip(), sparse_trace)
    r = _row(res, "d30")
    e = K * N
    assert r["weight_value_bytes"] + r["weight_index_bytes"] == pytest.approx(e * 0.3 * 2 + e / 8)
    assert r["hbm_weight_read_bytes"] == pytest.approx((e * 0.3 * 2 + e / 8) * r["weight_passes"])
    assert r["macs"] == M * K * N


def test_unstructured_on_a_zero_skipping_array_waits_for_its_fullest_column(sparse_trace):
    chip = _chip(["unstructured"])
    r = _row(_run(chip, sparse_trace), "d30")
    depth, cols = chip.array.rows, chip.array.cols
    busiest = expected_max_binomial(depth, 0.3, cols)
    assert r["k"] == math.ceil(K * busiest / depth)
    assert K * 0.3 < r["k"] < K                      # imbalance costs, skipping still saves


def test_expected_max_of_binomials_against_monte_carlo():
    rng = np.random.default_rng(1)
    for n, d, c in ((128, 0.3, 128), (256, 0.1, 64), (64, 0.5, 16)):
        mc = rng.binomial(n, d, size=(4000, c)).max(axis=1).mean()
        approx = expected_max_binomial(n, d, c)
        assert mc <= approx <= 1.15 * mc            # the Gaussian bound: above, and close
    assert expected_max_binomial(100, 0.25, 1) == 25.0


def test_closed_forms_of_the_pattern_arithmetic():
    assert kept_reduction(1024, 2, 4) == 512
    assert kept_reduction(10, 2, 4) == 6             # 2 full groups + a partial of 2 kept
    assert metadata_bits_per_kept(4) == 2 and metadata_bits_per_kept(8) == 3


@pytest.mark.parametrize("core", ["columnar", "reference"])
def test_density_one_is_dense_exactly(write_csv, core):
    base = write_csv(f"name,op,m,k,n\na,matmul,{M},{K},{N}\nb,relu,,,\n".replace(
        "b,relu,,,", "b,matmul,64,512,256"), "base.csv")
    ones = write_csv(f"name,op,m,k,n,density\na,matmul,{M},{K},{N},1.0\n"
                     "b,matmul,64,512,256,1\n", "ones.csv")
    chip = _chip(["2:4", "unstructured"])
    a, b = _run(chip, base, core), _run(chip, ones, core)
    cols = list(LAYER_COLUMNS)
    assert a.layers[cols].to_csv() == b.layers[cols].to_csv()
    assert (b.layers["sparse_speedup"] == 1.0).all()
    assert "density" not in a.layers.columns          # columns only when the trace has sparsity


@pytest.mark.parametrize("sparse", [(), ("2:4", "unstructured")])
def test_both_simulation_paths_agree(write_csv, sparse):
    p = write_csv(f"""
name,op,m,k,n,elements,count,sparsity,density,weight_dtype,act_dtype
a,matmul,{M},{K},{N},,1,2:4,,,
b,relu,,,,131072,1,,,,
c,matmul,{M},{N},{K},,3,,0.2,int4,bf16
d,matmul,{M},{K},{N},,1,,,binary,int8
e,matmul,{M},{K},{N},,2,4:8,,int4,int8
""")
    chip = _chip(sparse)
    ref, col = _run(chip, p, "reference"), _run(chip, p)
    assert layers_csv(col) == layers_csv(ref)
    s1, s2 = dict(ref.summary), dict(col.summary)
    s1.pop("simulator_seconds"), s2.pop("simulator_seconds")
    assert s1 == s2


def test_mixed_precision_packs_weights_and_dequantizes_under_a_float_datapath(write_csv):
    p = write_csv(f"""
name,op,m,k,n,weight_dtype,act_dtype
w4a16,matmul,{M},{K},{N},int4,bf16
w4a8,matmul,{M},{K},{N},int4,int8
wba8,matmul,{M},{K},{N},binary,int8
w8a8,matmul,{M},{K},{N},int8,int8
""")
    res = _run(_chip(), p)
    df = res.layers
    e = K * N
    got = {r["name"]: r for _, r in df.iterrows()}
    assert got["w4a16"]["format"] == "bf16"           # tpu_v4 has no int4 x bf16 MAC
    assert got["w4a16"]["hbm_weight_read_bytes"] == e * 0.5 * got["w4a16"]["weight_passes"]
    deq = got["w4a16.dequantize"]
    assert deq["vector_ops"] == 2 * e and deq["fused"]
    assert deq["hbm_read_bytes"] == 0 and deq["vector_energy_pj"] > 0
    assert got["w4a8"]["format"] == "int8"
    assert got["w4a8"]["hbm_weight_read_bytes"] == e * 0.5 * got["w4a8"]["weight_passes"]
    assert got["wba8"]["hbm_weight_read_bytes"] == e / 8 * got["wba8"]["weight_passes"]
    assert got["w8a8"]["hbm_weight_read_bytes"] == e * got["w8a8"]["weight_passes"]
    assert "w4a8.dequantize" not in got and "wba8.dequantize" not in got


@pytest.mark.parametrize("core", ["columnar", "reference"])
def test_an_int8_kv_cache_dequantizes_under_its_own_gemm(write_csv, core):
    """K read from an int8 cache under bf16 queries: 2 vector ops per stored value in a fused
    row after the GEMM, showing only what exceeds the GEMM's cycles (tpu_v6e: a vector unit of
    ops per cycle). Cut to 16 ops/cycle the dequantize (2 x K x N / 16 cycles) outlasts the
    GEMM, so the pair takes the dequantize's cycles; at the preset's 1,024 it hides."""
    p = write_csv(f"name,op,m,k,n,weights,weight_dtype,act_dtype\n"
                  f"qk,matmul,8,{K},{N},dynamic,int8,bf16\n")
    for ops, shows in ((16, True), (None, False)):
        chip = load_config("tpu_v6e", **({"vector.ops_per_cycle": ops} if ops else {}))
        got = {r["name"]: r for _, r in _run(chip, p, core).layers.iterrows()}
        assert list(got) == ["qk", "qk.dequantize"]
        deq, gemm = got["qk.dequantize"], got["qk"]
        assert deq["vector_ops"] == 2 * K * N and deq["fused"]
        assert gemm["hbm_weight_read_bytes"] == K * N * gemm["weight_passes"]   # 1 byte each
        vec = math.ceil(2 * K * N / chip.vector.ops_per_cycle)
        assert deq["cycles"] == pytest.approx(max(0.0, vec - gemm["cycles"]))
        assert (deq["cycles"] > 0) == shows and gemm["cycles"] > 0


def test_prune_half_closed_form(write_csv, tmp_path, cli):
    p = write_csv("""
name,op,m,k,n,elements
first,matmul,64,256,512,
act,relu,,,,32768
mid,matmul,64,512,512,
last,matmul,64,512,128,
res,add,,,,8192
after,matmul,64,128,128,
""")
    out = tmp_path / "pruned.csv"
    code, stdout, err = cli("workload", "prune", p, "--channels", "0.5", "--out", out)
    assert code == 0, err
    before = {l.name: l for l in read_trace(p).layers}
    after = {l.name: l for l in read_trace(out).layers}
    assert after["first"].macs == before["first"].macs // 2        # outputs halved
    assert after["act"].elements == 32768 // 2
    assert after["mid"].macs == before["mid"].macs // 4            # interior: in and out halved
    # last's outputs feed a residual add: the chain is not known, they stay dense
    assert after["last"].macs == before["last"].macs // 2
    assert after["after"].macs == before["after"].macs             # last row: outputs dense


def test_compress_table_and_page(write_csv, tmp_path, cli):
    p = write_csv(f"name,op,m,k,n\na,matmul,{M},{K},{N}\nb,matmul,{M},{N},{K}\n")
    out = tmp_path / "c"
    code, stdout, err = cli("compress", "tpu_v4", p, "--sparsity", "2:4,0.5", "--formats",
                            "w8a8,w4a16", "--set", 'array.sparsity=["2:4"]', "--out", out)
    assert code == 0, err
    import pandas as pd
    df = pd.read_csv(out / "compress.csv")
    assert (out / "compress.html").read_text().count("<tr>") == len(df) + 1
    head = stdout.splitlines()[0].split()          # values carry their units: no _s in the head
    assert head[:2] == ["technique", "latency"] and "latency_s" in df.columns
    rows = {r["technique"]: r for _, r in df.iterrows()}
    assert list(rows)[0] == "dense baseline" and rows["dense baseline"]["speedup"] == 1.0
    assert rows["sparsity 2:4"]["macs"] == rows["dense baseline"]["macs"] / 2
    assert rows["density 0.5"]["macs"] == rows["dense baseline"]["macs"]   # not skipped
    assert rows["density 0.5"]["hbm_ratio"] < 1
    assert "sparsity 2:4 + w4a16" in rows
    # W8A8 on the int8 datapath is the int8 GEMM of numerics: same error, computed twice
    assert rows["w8a8"]["gemm_rel_error"] == pytest.approx(
        gemm_rel_error("int8", tile_k=128), rel=1e-12)
    assert "sparsity 2:4" in stdout


def test_mixed_rel_error_ordering():
    errs = [mixed_rel_error(w, a, dp) for w, a, dp in
            (("bf16", "bf16", "bf16"), ("int8", "int8", "int8"), ("int4", "int8", "int8"),
             ("binary", "int8", "int8"))]
    assert errs == sorted(errs)


@pytest.mark.parametrize("text,needle", [
    ("name,op,m,k,n,sparsity\na,matmul,4,8,8,3:2\n", "column sparsity: got '3:2'"),
    ("name,op,m,k,n,density\na,matmul,4,8,8,1.5\n", "column density: got '1.5'"),
    ("name,op,m,k,n,weight_dtype\na,matmul,4,8,8,int3\n", "column weight_dtype: got 'int3'"),
    ("name,op,elements,sparsity\na,relu,8,2:4\n", "static weights only"),
])
def test_bad_trace_input_is_one_line_exit_2(write_csv, tmp_path, cli, text, needle):
    p = write_csv(text)
    out = tmp_path / "o"
    code, stdout, err = cli("run", "tpu_v4", p, "--out", out)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (("--set", "array.sparsity=[2:4]"), "quote N:M"),
    (("--set", 'array.sparsity="5:4"'), "0 < N < M"),
    (("--set", 'array.sparsity=["5:4"]'), "0 < N < M"),
    (("--sparsity", "3:2"), "--sparsity: got '3:2'"),
    (("--sparsity", "1.5"), "--sparsity: got '1.5'"),
    (("--formats", "w3a8"), "--formats: got 'w3a8'"),
])
def test_bad_compress_input_is_one_line_exit_2(tmp_path, cli, args, needle):
    out = tmp_path / "o"
    extra = () if any(a in ("--sparsity", "--formats") for a in args) else ("--sparsity", "2:4")
    code, stdout, err = cli("compress", "tpu_v4", "bert_base", *args, *extra, "--out", out)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_onnx_initialisers_give_density_and_the_24_pattern(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nh

    from tpusim.importers.onnx import import_onnx
    rng = np.random.default_rng(0)
    w24 = rng.standard_normal((64, 32)).astype(np.float32)      # k=64 along axis 0
    w24.reshape(16, 4, 32)[:, 2:, :] = 0                        # 2 of every 4 along k
    wd = rng.standard_normal((32, 16)).astype(np.float32)
    wd[rng.random(wd.shape) < 0.4] = 0                          # unstructured
    wd[0, 0] = 1.0
    g = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
         oh.make_node("Gemm", ["h", "w2"], ["y"], name="fc2"),
         oh.make_node("Gemm", ["y", "w3"], ["z"], name="fc3")], "g",
        [oh.make_tensor_value_info("x", TP.FLOAT, [8, 64])],
        [oh.make_tensor_value_info("z", TP.FLOAT, [8, 16])],
        [nh.from_array(w24, "w1"), nh.from_array(wd, "w2"),
         nh.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w3")])
    path = tmp_path / "m.onnx"
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]), str(path))
    rows = {r["name"]: r for r in import_onnx(path).rows}
    assert rows["fc1"]["sparsity"] == "2:4" and rows["fc1"]["density"] == 0.5
    assert "sparsity" not in rows["fc2"]
    assert rows["fc2"]["density"] == pytest.approx(np.count_nonzero(wd) / wd.size)
    assert "density" not in rows["fc3"] and "sparsity" not in rows["fc3"]


def test_dense_rows_of_a_sparse_trace_report_their_dense_weight_bytes(sparse_trace):
    r = _row(_run(_chip(), sparse_trace), "dense")
    assert r["weight_value_bytes"] == K * N * 2 and r["weight_index_bytes"] == 0
    assert r["density"] == 1.0 and r["sparse_speedup"] == 1.0


def test_a_forced_format_is_every_operands_format(write_csv):
    p = write_csv(f"name,op,m,k,n,weight_dtype,act_dtype\na,matmul,{M},{K},{N},int4,bf16\n")
    res = tpusim.simulate(_chip(), p, format="bf16")
    assert list(res.layers["name"]) == ["a"]             # no dequantize row
    r = _row(res, "a")
    assert r["hbm_weight_read_bytes"] == K * N * 2 * r["weight_passes"]


def test_run_prints_the_sparse_speedup_and_writes_the_columns(sparse_trace, tmp_path, cli):
    out = tmp_path / "r"
    code, stdout, err = cli("run", "tpu_v4", sparse_trace, "--set", 'array.sparsity=["2:4"]',
                            "--out", out)
    assert code == 0, err
    assert "sparse weights" in stdout and "vs dense" in stdout
    import json

    import pandas as pd
    s = json.loads((out / "summary.json").read_text())
    assert s["sparse_speedup"] == pytest.approx(s["dense_latency_s"] / s["latency_s"])
    assert s["sparse_speedup"] > 1
    df = pd.read_csv(out / "layers.csv")
    assert list(df["sparse_skipped"].fillna("")) == ["", "N:M", ""]


def test_sweeping_the_arrays_sparsity_support(sparse_trace, tmp_path, cli):
    out = tmp_path / "s"
    code, stdout, err = cli("sweep", "tpu_v4", sparse_trace, "--set",
                            'array.sparsity=[],["2:4"]', "--out", out)
    assert code == 0, err
    import pandas as pd
    df = pd.read_csv(out / "sweep.csv")
    got = dict(zip(df["array.sparsity"].astype(str), df["latency_s"]))
    assert set(got) == {"[]", "['2:4']"}
    assert got["['2:4']"] < got["[]"]   # 2:4 skips MACs


def test_compress_fuse_rows_never_add_hbm_bytes_and_w1a1_parses():
    """--fuse adds the fusion pass alone and on top of each row; fusing never adds HBM bytes,
    and binary x binary (w1a1) and ternary weights (wta8) are accepted formats."""
    from tpusim.compress import compress_table, parse_formats, techniques
    techs = techniques(["2:4"], ["w4a16"], fuse=True)
    names = [t.name for t in techs]
    assert names == ["sparsity 2:4", "w4a16", "sparsity 2:4 + w4a16", "fuse",
                     "sparsity 2:4 + fuse", "w4a16 + fuse", "sparsity 2:4 + w4a16 + fuse"]
    chip = tpusim.load_config("default", **{"memory.sram.input_kib": 256})  # activations spill
    df = compress_table(chip, tpusim.load_workload("resnet50"), techs).set_index("technique")
    for name in names[:3] + ["dense baseline"]:
        fused = "fuse" if name == "dense baseline" else f"{name} + fuse"
        assert df.loc[fused, "hbm_bytes"] <= df.loc[name, "hbm_bytes"]
    assert df.loc["fuse", "hbm_bytes"] < df.loc["dense baseline", "hbm_bytes"]
    assert parse_formats("w1a1").wa == ("binary", "binary")
    assert parse_formats("wta8").wa == ("ternary", "int8")


def test_a_bare_sparsity_pattern_is_a_list_of_one():
    from tpusim.config import load_config
    assert load_config("tpu_v4", **{"array.sparsity": "2:4"}).array.sparsity == ["2:4"]
    assert load_config("tpu_v4", **{"array.sparsity": "unstructured"}).array.sparsity == \
        ["unstructured"]


@pytest.mark.parametrize("act,width", [("int8", 1), ("bf16", 2)])
def test_packed_weights_are_written_as_stored_and_read_at_the_datapath_width(write_csv, act,
                                                                             width):
    # the assumption compression.py states: the weight buffer is written with the stored (packed)
    # bytes HBM delivered and read into the array at the datapath's width
    p = write_csv(f"name,op,m,k,n,weight_dtype,act_dtype\ng,matmul,64,64,64,int4,{act}\n")
    row = _row(tpusim.simulate("default", p), "g")
    assert row["hbm_weight_read_bytes"] == 64 * 64 // 2
    assert row["sram_weight_bytes"] == 64 * 64 // 2 + 64 * 64 * width

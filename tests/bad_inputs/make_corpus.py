"""Write the bad-input corpus: every file in this folder but ``cases.yaml`` and this script.

Run ``python tests/bad_inputs/make_corpus.py`` from the repository root after changing a case;
the files are committed so that the test reads them as a user's files, byte for byte. Each file
is one mistake in an otherwise valid input (a config, a SCALE-Sim ``.cfg``, a trace, a SCALE-Sim
topology, an ONNX model, a measurement CSV, a calibrated config, a ``--set`` value); what the
error line must say is in ``cases.yaml``.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

GOOD_YAML = """\
name: corpus
clock_ghz: 1.0
array:
  rows: 32
  cols: 32
  dataflow: ws
formats:
  int8: {rate: 1}
  bf16: {rate: 1}
default_format: int8
memory:
  sram:
    input_kib: 64
    weight_kib: 64
    output_kib: 64
  hbm:
    kind: HBM2
    bandwidth_gbps: 100
    efficiency: 1.0
vector:
  ops_per_cycle: 32
timing:
  model: pipelined
energy:
  node_nm: 28
"""

GOOD_CFG = """\
[general]
run_name = corpus

[architecture_presets]
ArrayHeight:    16
ArrayWidth:     16
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks:   1

[run_presets]
InterfaceBandwidth: CALC
"""

GOOD_TRACE = "name,op,m,k,n\nfc1,matmul,64,128,32\nfc2,matmul,32,64,16\n"
CONV = "name,op,batch,in_h,in_w,in_c,out_c,kernel_h,kernel_w,stride,padding,groups\n"
GOOD_TOPO = ("Layer name,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,"
             "Num Filter,Strides,\nConv1,16,16,3,3,4,8,1,\n")
GOOD_MEAS = "m,k,n,latency_us\n128,128,128,3.5\n256,256,256,9.0\n"


def yaml_with(old: str, new: str) -> str:
    assert old in GOOD_YAML, old
    return GOOD_YAML.replace(old, new, 1)


def cfg_with(old: str, new: str) -> str:
    assert old in GOOD_CFG, old
    return GOOD_CFG.replace(old, new, 1)


CONFIGS: dict[str, str | bytes] = {
    "non_utf8.yaml": GOOD_YAML.encode().replace(b"corpus", b"corp\xe9s"),
    "nul_bytes.yaml": GOOD_YAML.encode().replace(b"rows: 32", b"rows: 3\x002"),
    "garbage.yaml": bytes(range(256)) * 4,
    "duplicate_key.yaml": yaml_with("  cols: 32\n", "  cols: 32\n  rows: 64\n"),
    "duplicate_section.yaml": GOOD_YAML + "vector:\n  ops_per_cycle: 64\n",
    "rows_true.yaml": yaml_with("rows: 32", "rows: true"),
    "rows_yes.yaml": yaml_with("rows: 32", "rows: yes"),
    "clock_true.yaml": yaml_with("clock_ghz: 1.0", "clock_ghz: true"),
    "input_kib_false.yaml": yaml_with("input_kib: 64", "input_kib: false"),
    "rows_zero.yaml": yaml_with("rows: 32", "rows: 0"),
    "rows_negative.yaml": yaml_with("rows: 32", "rows: -4"),
    "rows_fraction.yaml": yaml_with("rows: 32", "rows: 1.5"),
    "rows_word.yaml": yaml_with("rows: 32", "rows: many"),
    "rows_huge.yaml": yaml_with("rows: 32", "rows: 100000000000000000"),
    "rows_5000_digits.yaml": yaml_with("rows: 32", "rows: " + "9" * 5000),
    "clock_inf.yaml": yaml_with("clock_ghz: 1.0", "clock_ghz: .inf"),
    "clock_nan.yaml": yaml_with("clock_ghz: 1.0", "clock_ghz: .nan"),
    "misspelt_field.yaml": yaml_with("array:", "arrray:"),
    "misspelt_nested.yaml": yaml_with("  cols: 32", "  colls: 32"),
    "missing_memory.yaml": GOOD_YAML.split("memory:")[0] + "vector:\n  ops_per_cycle: 32\n",
    "bad_dataflow.yaml": yaml_with("dataflow: ws", "dataflow: xs"),
    "sparsity_3_2.yaml": yaml_with("dataflow: ws", "dataflow: ws\n  sparsity: [\"3:2\"]"),
    "sparsity_unquoted.yaml": yaml_with("dataflow: ws", "dataflow: ws\n  sparsity: [2:4]"),
    "bad_default_format.yaml": yaml_with("default_format: int8", "default_format: fp8_e4m3"),
    "unknown_format.yaml": yaml_with("  bf16: {rate: 1}", "  bf17: {rate: 1}"),
    "bad_emulate.yaml": yaml_with("  bf16: {rate: 1}", "  bf16: {emulate: fp32, passes: 2}"),
    "list_not_mapping.yaml": "- rows\n- cols\n",
    "empty.yaml": "",
    "bad_syntax.yaml": yaml_with("  rows: 32", "  rows: [32"),
    "tab_indent.yaml": yaml_with("  rows: 32", "\trows: 32"),
    "section_scalar.yaml": yaml_with("array:\n  rows: 32\n  cols: 32\n  dataflow: ws\n",
                                     "array: 5\n"),
    "efficiency_above_1.yaml": yaml_with("efficiency: 1.0", "efficiency: 1.5"),
    "bad_timing_model.yaml": yaml_with("model: pipelined", "model: magic"),
    "bad_hbm_kind.yaml": yaml_with("    kind: HBM2\n", "    kind: HBM9\n"),
    "mac_pj_bool.yaml": yaml_with("  node_nm: 28", "  node_nm: 28\n  mac_pj: {int8: yes}"),
    "bandwidth_string.yaml": yaml_with("bandwidth_gbps: 100", "bandwidth_gbps: fast"),
    "mac_pj_negative.yaml": yaml_with("  node_nm: 28", "  node_nm: 28\n  mac_pj: {int8: -0.1}"),
}

CFGS: dict[str, str | bytes] = {
    "non_utf8.cfg": GOOD_CFG.encode().replace(b"corpus", b"corp\xff"),
    "garbage.cfg": bytes(range(128, 256)) * 8,
    "no_section.cfg": "ArrayHeight: 16\nArrayWidth: 16\n",
    "missing_arch.cfg": GOOD_CFG.split("[architecture_presets]")[0],
    "height_word.cfg": cfg_with("ArrayHeight:    16", "ArrayHeight:    sixteen"),
    "height_zero.cfg": cfg_with("ArrayHeight:    16", "ArrayHeight:    0"),
    "height_huge.cfg": cfg_with("ArrayHeight:    16", "ArrayHeight:    100000000000000000"),
    "missing_width.cfg": cfg_with("ArrayWidth:     16\n", ""),
    "bad_dataflow.cfg": cfg_with("Dataflow : ws", "Dataflow : xs"),
    "duplicate_option.cfg": cfg_with("ArrayWidth:     16\n", "ArrayWidth:     16\nArrayWidth: 8\n"),
    "duplicate_section.cfg": GOOD_CFG + "\n[architecture_presets]\nArrayHeight: 8\n",
    "bandwidth_negative.cfg": cfg_with("Bandwidth : 10", "Bandwidth : -1"),
    "sram_fraction.cfg": cfg_with("IfmapSramSzkB:   64", "IfmapSramSzkB:   6.5"),
}

TRACES: dict[str, str | bytes] = {
    "non_utf8.csv": GOOD_TRACE.encode().replace(b"fc2", b"fc\x92"),
    "nul_byte.csv": GOOD_TRACE.replace("fc2", "fc\x002"),
    "garbage.csv": bytes(range(128, 256)) * 8,
    "duplicate_column.csv": "name,op,m,k,n,k\nfc1,matmul,64,128,32,256\n",
    "unknown_column.csv": "name,op,m,kk,n\nfc1,matmul,64,128,32\n",
    "missing_op_column.csv": "name,m,k,n\nfc1,64,128,32\n",
    "unknown_op.csv": "name,op,m,k,n\nfc1,matmull,64,128,32\n",
    "m_zero.csv": "name,op,m,k,n\nfc1,matmul,0,128,32\n",
    "m_negative.csv": "name,op,m,k,n\nfc1,matmul,-3,128,32\n",
    "m_word.csv": "name,op,m,k,n\nfc1,matmul,abc,128,32\n",
    "m_fraction.csv": "name,op,m,k,n\nfc1,matmul,1.5,128,32\n",
    "m_huge.csv": "name,op,m,k,n\nfc1,matmul,100000000000000000,128,32\n",
    "m_true.csv": "name,op,m,k,n\nfc1,matmul,true,128,32\n",
    "batch_huge.csv": "name,op,batch,m,k,n\nfc1,matmul,100000000000000000,64,128,32\n",
    "count_zero.csv": "name,op,count,m,k,n\nfc1,matmul,0,64,128,32\n",
    "too_many_cells.csv": "name,op,m,k,n\nfc1,matmul,64,128,32,7\n",
    "missing_n.csv": "name,op,m,k\nfc1,matmul,64,128\n",
    "dtype_int3.csv": "name,op,m,k,n,weight_dtype\nfc1,matmul,64,128,32,int3\n",
    "sparsity_3_2.csv": "name,op,m,k,n,sparsity\nfc1,matmul,64,128,32,3:2\n",
    "density_above_1.csv": "name,op,m,k,n,density\nfc1,matmul,64,128,32,1.5\n",
    "sparsity_on_vector.csv": "name,op,elements,density\nr,relu,64,0.5\n",
    "bad_weights.csv": "name,op,m,k,n,weights\nfc1,matmul,64,128,32,maybe\n",
    "bad_fused.csv": "name,op,m,k,n,fused\nfc1,matmul,64,128,32,perhaps\n",
    "padding_word.csv": CONV + "c1,conv2d,1,8,8,4,4,3,3,1,full,1\n",
    "padding_negative.csv": CONV + "c1,conv2d,1,8,8,4,4,3,3,1,-1,1\n",
    "kernel_too_big.csv": CONV + "c1,conv2d,1,8,8,4,4,11,11,1,0,1\n",
    "groups_not_dividing.csv": CONV + "c1,conv2d,1,8,8,4,6,3,3,1,0,4\n",
    "conv_too_large.csv": CONV + "c1,conv2d,1,1000000000,1000000000,1,1,1,1,1,0,1\n",
    "stride_zero.csv": CONV + "c1,conv2d,1,8,8,4,4,3,3,0,0,1\n",
    "vector_no_elements.csv": "name,op,elements\nsm,softmax,\n",
    "ops_per_element_negative.csv": "name,op,elements,ops_per_element\nsm,softmax,64,-1\n",
    "ops_per_element_inf.csv": "name,op,elements,ops_per_element\nsm,softmax,64,inf\n",
    "empty.csv": "",
    "header_only.csv": "name,op,m,k,n\n",
    "comments_only.csv": "# nothing here\n# at all\n",
    "bom_unknown_column.csv": b"\xef\xbb\xbfname,op,m,k,nn\nfc1,matmul,64,128,32\n",
    "unterminated_quote.csv": GOOD_TRACE + '"fc3,matmul,16,32,8\n',
    "multiline_cell.csv": GOOD_TRACE + '"fc\n3",matmul,16,32,8\n',
    "continues_first_row.csv": "name,op,m,k,n,continues\nfc1,matmul,64,128,32,true\n",
}

TOPOLOGIES: dict[str, str | bytes] = {
    "topo_non_utf8.csv": GOOD_TOPO.encode().replace(b"Conv1", b"Conv\xe9"),
    "topo_short_row.csv": GOOD_TOPO + "Conv2,16,16,3,3,\n",
    "topo_word.csv": GOOD_TOPO + "Conv2,16,16,3,three,4,8,1,\n",
    "topo_zero.csv": GOOD_TOPO + "Conv2,16,16,3,3,0,8,1,\n",
    "topo_negative.csv": GOOD_TOPO + "Conv2,16,16,3,3,4,-8,1,\n",
    "topo_filter_too_big.csv": GOOD_TOPO + "Conv2,4,4,7,7,4,8,1,\n",
    "topo_huge.csv": GOOD_TOPO + "Conv2,16,16,3,3,4,100000000000000000,1,\n",
    "topo_no_rows.csv": GOOD_TOPO.splitlines()[0] + "\n",
    "gemm_word.csv": "Layer,M,N,K,\nfc1,64,x,32,\n",
    "gemm_short.csv": "Layer,M,N,K,\nfc1,64,32,\n",
}

MEASUREMENTS: dict[str, str | bytes] = {
    "meas_non_utf8.csv": GOOD_MEAS.encode().replace(b"latency_us", b"latency_\xb5s"),
    "meas_duplicate_column.csv": "m,k,n,latency_us,latency_us\n128,128,128,3.5,4.0\n",
    "meas_missing_latency.csv": "m,k,n\n128,128,128\n",
    "meas_zero_latency.csv": "m,k,n,latency_us\n128,128,128,0\n",
    "meas_word_latency.csv": "m,k,n,latency_us\n128,128,128,fast\n",
    "meas_unknown_column.csv": "m,k,n,latency_ms\n128,128,128,3.5\n",
    "meas_empty.csv": "",
    "meas_bad_dtype.csv": "m,k,n,latency_us,dtype\n128,128,128,3.5,fp13\n",
    "meas_short_row.csv": "m,k,n,latency_us\n128,128,3.5\n",
    "meas_count.csv": "m,k,n,count,latency_us\n128,128,128,2,3.5\n",
    "meas_huge_m.csv": "m,k,n,latency_us\n100000000000000000,128,128,3.5\n",
}

CALIBRATED: dict[str, str | bytes] = {
    "cal_no_record.yaml": GOOD_YAML,
    "cal_bad_json.yaml": "# tpusim-calibrate: {not json\n" + GOOD_YAML,
    "cal_missing_keys.yaml": '# tpusim-calibrate: {"base": "tpu_v4"}\n' + GOOD_YAML,
    "cal_non_utf8.yaml": b"# tpusim-calibrate: \xff\n" + GOOD_YAML.encode(),
}

# One PATH=VALUE per file: what a user types after --set.
SETS: dict[str, str] = {
    "set_rows_true.set": "array.rows=true",
    "set_rows_false.set": "array.rows=false",
    "set_rows_zero.set": "array.rows=0",
    "set_rows_word.set": "array.rows=wide",
    "set_rows_huge.set": "array.rows=100000000000000000",
    "set_misspelt.set": "array.rowz=64",
    "set_misspelt_section.set": "memory.hmb.bandwidth_gbps=100",
    "set_section_scalar.set": "array=5",
    "set_not_a_section.set": "array.rows.x=5",
    "set_no_equals.set": "array.rows",
    "set_empty_path.set": "=64",
    "set_bandwidth_inf.set": "memory.hbm.bandwidth_gbps=.inf",
    "set_dataflow.set": "array.dataflow=diagonal",
    "set_efficiency.set": "memory.hbm.efficiency=2",
}


def onnx_models() -> dict[str, bytes]:
    """Small broken ONNX models, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    def model(nodes, inputs, outputs, inits=(), opset=17):
        g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m.SerializeToString()

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [16, 8], [0.0] * 128)
    good = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [w])
    dyn = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    bad_w = helper.make_tensor("w", TensorProto.FLOAT, [9, 8], [0.0] * 72)
    return {
        "onnx_garbage.onnx": bytes(range(256)) * 3,
        "onnx_empty.onnx": b"",
        "onnx_truncated.onnx": good[: len(good) // 2],
        "onnx_text.onnx": b"this is not an onnx model\n",
        "onnx_unsupported_op.onnx": model(
            [helper.make_node("NonMaxSuppression", ["x"], ["y"])], [x], [y]),
        "onnx_custom_domain.onnx": model(
            [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], [x], [y]),
        "onnx_dynamic_dim.onnx": model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                       [dyn], [y], [w]),
        "onnx_shape_mismatch.onnx": model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                          [x], [y], [bad_w]),
        "onnx_no_nodes.onnx": model([], [x], [x]),
        "onnx_dangling_input.onnx": model([helper.make_node("MatMul", ["x", "missing"], ["y"])],
                                          [x], [y]),
    }


def main() -> None:
    groups = {"configs": {**CONFIGS, **CFGS, **CALIBRATED}, "traces": TRACES,
              "topologies": TOPOLOGIES, "measurements": MEASUREMENTS, "sets": SETS,
              "onnx": onnx_models()}
    n = 0
    for folder, files in groups.items():
        d = HERE / folder
        d.mkdir(exist_ok=True)
        for name, data in files.items():
            (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())
            n += 1
    good = HERE / "good"
    good.mkdir(exist_ok=True)
    (good / "chip.yaml").write_text(GOOD_YAML)
    (good / "trace.csv").write_text(GOOD_TRACE)
    print(f"wrote {n} bad inputs and 2 good ones under {HERE}")


if __name__ == "__main__":
    main()

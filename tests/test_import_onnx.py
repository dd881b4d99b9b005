"""ONNX import against hand counts: small float graphs made with onnx.helper, the same graphs
quantized offline with onnxruntime.quantization (QDQ, QOperator, dynamic), and the real network
topologies the onnx wheel ships. Bad files fail with one line and exit 2."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

from tpusim.errors import InputError
from tpusim.importers.onnx import import_onnx, load_onnx_workload, parse_input_shape
from tpusim.importers import load_workload
from tpusim.workload import make_layer

quant = pytest.importorskip("onnxruntime.quantization")
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RNG = np.random.default_rng(0)


def _w(name, shape, dtype=np.float32):
    return nh.from_array((RNG.standard_normal(shape) * 0.1).astype(dtype), name)


def _save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _model(nodes, inputs, outputs, inits, opset=17, domains=()):
    g = oh.make_graph(nodes, "g", inputs, outputs, inits)
    ops = [oh.make_opsetid("", opset)] + [oh.make_opsetid(d, 1) for d in domains]
    return oh.make_model(g, opset_imports=ops)


def _by_name(imp):
    return {r["name"]: r for r in imp.rows}


def _macs(rows):
    return sum(make_layer(r).macs * r.get("count", 1) for r in rows)


class _Reader(quant.CalibrationDataReader):
    def __init__(self, name, shape, n=2):
        self._it = iter([{name: RNG.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self._it, None)


# ---- a small CNN: conv 3->8 k3 s2 p1, relu, depthwise 3x3, relu, maxpool 2, flatten, fc 10
# hand counts at 1x3x16x16: conv1 out 8x8x8: 64*8*27 = 13824; dw 8x8x8 x 9 = 4608;
# fc 128 x 10 = 1280. Total 19712 MACs.
CNN_MACS = 13824 + 4608 + 1280


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cnn")
    nodes = [
        oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2],
                     name="conv1"),
        oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        oh.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dw"),
        oh.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        oh.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        oh.make_node("Flatten", ["p"], ["f"], name="flat"),
        oh.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc"),
    ]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 16, 16])],
               [oh.make_tensor_value_info("y", TP.FLOAT, ["N", 10])],
               [_w("w1", (8, 3, 3, 3)), _w("b1", (8,)), _w("w2", (8, 1, 3, 3)),
                _w("wf", (10, 128)), _w("bf", (10,))])
    f = _save(m, d / "cnn.onnx")
    fixed = onnx.load(str(f))
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    ff = _save(fixed, d / "cnn_b1.onnx")
    out = {"float": f}
    quant.quantize_static(str(ff), str(d / "qdq.onnx"), _Reader("x", (1, 3, 16, 16)),
                          quant_format=quant.QuantFormat.QDQ,
                          activation_type=quant.QuantType.QInt8,
                          weight_type=quant.QuantType.QInt8)
    quant.quantize_static(str(ff), str(d / "qop.onnx"), _Reader("x", (1, 3, 16, 16)),
                          quant_format=quant.QuantFormat.QOperator)
    quant.quantize_dynamic(str(ff), str(d / "dyn.onnx"))
    out.update(qdq=d / "qdq.onnx", qop=d / "qop.onnx", dyn=d / "dyn.onnx")
    return out


def _ops(path):
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_float_cnn_hand_counts(cnn):
    imp = import_onnx(cnn["float"], {"x": (1, 3, 16, 16)})
    rows = _by_name(imp)
    assert imp.macs == CNN_MACS == _macs(imp.rows)
    assert [r["op"] for r in imp.rows] == ["conv2d", "relu", "conv2d", "relu", "maxpool",
                                            "matmul"]
    c1 = rows["conv1"]
    assert (c1["in_h"], c1["out_c"], c1["stride_h"], c1["pad_h"]) == (16, 8, 2, 1)
    assert rows["dw"]["groups"] == 8 == rows["dw"]["in_c"]          # depthwise
    assert rows["relu1"]["fused"] and rows["relu1"]["elements"] == 8 * 8 * 8
    assert rows["pool"]["elements"] == 8 * 4 * 4 and rows["pool"]["ops_per_element"] == 4
    fc = rows["fc"]
    assert (fc["m"], fc["k"], fc["n"], fc["weights"]) == (1, 128, 10, "static")
    assert {r.get("weight_dtype") for r in imp.rows if "m" in r or "in_h" in r} == {"fp32"}
    assert not imp.unsupported and imp.nodes_free == 1            # Flatten
    # batch 4 through --input-shape: 4x the MACs
    assert import_onnx(cnn["float"], {"x": (4, 3, 16, 16)}).macs == 4 * CNN_MACS


@pytest.mark.parametrize("form,marker", [("qdq", "DequantizeLinear"), ("qop", "QLinearConv"),
                                         ("dyn", "ConvInteger")])
def test_quantized_cnn_same_macs_int8(cnn, form, marker):
    assert _ops(cnn[form])[marker] > 0
    imp = import_onnx(cnn[form])
    assert imp.macs == CNN_MACS and not imp.unsupported
    gemms = [r for r in imp.rows if r["op"] in ("conv2d", "matmul")]
    assert len(gemms) == 3
    assert {(r["weight_dtype"], r["act_dtype"]) for r in gemms} == {("int8", "int8")}
    assert not any(r["op"] in ("quantize", "dequantize") for r in imp.rows) or form == "dyn"


def test_qoperator_uses_qgemm_and_dynamic_quantize_rows(cnn):
    assert _ops(cnn["qop"])["QGemm"] == 1                   # com.microsoft QGemm for the FC
    fc = [r for r in import_onnx(cnn["qop"]).rows if r["op"] == "matmul"]
    assert [(r["m"], r["k"], r["n"]) for r in fc] == [(1, 128, 10)]
    dyn = import_onnx(cnn["dyn"])
    assert _ops(cnn["dyn"])["DynamicQuantizeLinear"] == 3
    q = [r for r in dyn.rows if r["op"] == "quantize"]
    # input 3x16x16, conv1 output 8x8x8, flattened pool output 128
    assert sorted(r["elements"] for r in q) == [128, 512, 768]


# ---- a transformer block: LN, Q/K/V/O projections, 4 heads, QK^T, softmax, AV, residual,
# FFN with erf-GELU. Hand counts at batch 2, seq 8, d 32: projections 4 x 16*32*32 = 65536;
# QK^T and AV each 2*4 heads x 8*8*8 = 4096; FFN 2 x 16*32*128 = 131072. Total 204800.
S, D, H = 8, 32, 4
TR_MACS = 4 * 16 * 32 * 32 + 2 * 8 * 8 * 8 * 8 + 2 * 16 * 32 * 128


@pytest.fixture(scope="module")
def transformer(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tr")
    hd = D // H
    mk = oh.make_node
    nodes = [
        mk("LayerNormalization", ["x", "g", "b"], ["ln"], axis=-1, name="ln1"),
        mk("MatMul", ["ln", "wq"], ["q"], name="q_proj"),
        mk("MatMul", ["ln", "wk"], ["k"], name="k_proj"),
        mk("MatMul", ["ln", "wv"], ["v"], name="v_proj"),
        mk("Reshape", ["q", "shp"], ["q4"]), mk("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
        mk("Reshape", ["k", "shp"], ["k4"]), mk("Transpose", ["k4"], ["kh"], perm=[0, 2, 3, 1]),
        mk("Reshape", ["v", "shp"], ["v4"]), mk("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3]),
        mk("MatMul", ["qh", "kh"], ["s"], name="qk"),
        mk("Softmax", ["s"], ["p"], axis=-1, name="softmax"),
        mk("MatMul", ["p", "vh"], ["a"], name="av"),
        mk("Transpose", ["a"], ["at"], perm=[0, 2, 1, 3]), mk("Reshape", ["at", "shp2"], ["a2"]),
        mk("MatMul", ["a2", "wo"], ["o"], name="o_proj"),
        mk("Add", ["o", "x"], ["res"], name="residual"),
        mk("MatMul", ["res", "w1"], ["h1"], name="ffn1"),
        mk("Div", ["h1", "sq2"], ["dv"], name="gelu_div"), mk("Erf", ["dv"], ["e"], name="erf"),
        mk("Add", ["e", "one"], ["e1"], name="gelu_add"),
        mk("Mul", ["h1", "e1"], ["m1"], name="gelu_mul"),
        mk("Mul", ["m1", "half"], ["m2"], name="gelu_half"),
        mk("MatMul", ["m2", "w2"], ["y"], name="ffn2"),
    ]
    inits = [_w("g", (D,)), _w("b", (D,)), _w("wq", (D, D)), _w("wk", (D, D)),
             _w("wv", (D, D)), _w("wo", (D, D)), _w("w1", (D, 4 * D)), _w("w2", (4 * D, D)),
             nh.from_array(np.array([0, 0, H, hd], np.int64), "shp"),
             nh.from_array(np.array([0, 0, D], np.int64), "shp2"),
             nh.from_array(np.array(1.414, np.float32), "sq2"),
             nh.from_array(np.array(1.0, np.float32), "one"),
             nh.from_array(np.array(0.5, np.float32), "half")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", D])],
               [oh.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", D])], inits)
    f = _save(m, d / "tr.onnx")
    fixed = onnx.load(str(f))
    for dim, v in zip(fixed.graph.input[0].type.tensor_type.shape.dim, (1, S)):
        dim.dim_value = v
    ff = _save(fixed, d / "tr_fixed.onnx")
    out = {"float": f}
    for form, qf in (("qdq", quant.QuantFormat.QDQ), ("qop", quant.QuantFormat.QOperator)):
        quant.quantize_static(str(ff), str(d / f"{form}.onnx"), _Reader("x", (1, S, D)),
                              quant_format=qf, activation_type=quant.QuantType.QInt8,
                              weight_type=quant.QuantType.QInt8)
        out[form] = d / f"{form}.onnx"
    quant.quantize_dynamic(str(ff), str(d / "dyn.onnx"))
    out["dyn"] = d / "dyn.onnx"
    return out


def test_float_transformer_attention_is_dynamic(transformer):
    imp = import_onnx(transformer["float"], {"x": (2, S, D)})
    rows = _by_name(imp)
    assert imp.macs == TR_MACS
    for n in ("qk", "av"):
        r = rows[n]
        assert r["weights"] == "dynamic"
        assert (r["batch"], r["m"], r["k"], r["n"]) == (2 * H, S, D // H, S)
    for n in ("q_proj", "o_proj", "ffn1", "ffn2"):
        assert rows[n]["weights"] == "static" and rows[n]["m"] == 2 * S
    assert rows["softmax"]["op"] == "softmax" and rows["softmax"]["elements"] == 2 * H * S * S
    assert rows["ln1"]["op"] == "layernorm" and rows["ln1"]["elements"] == 2 * S * D
    assert rows["erf"]["elements"] == 2 * S * 4 * D
    assert rows["residual"]["op"] == "add" and not rows["residual"].get("fused")
    assert imp.nodes_free == 8                 # 4 Reshape + 4 Transpose


@pytest.mark.parametrize("form,marker", [("qdq", "DequantizeLinear"),
                                         ("qop", "QLinearMatMul"), ("dyn", "MatMulInteger")])
def test_quantized_transformer(transformer, form, marker):
    assert _ops(transformer[form])[marker] > 0
    imp = import_onnx(transformer[form])       # quantized with batch 1
    assert imp.macs == TR_MACS // 2 and not imp.unsupported
    rows = {r["name"].removesuffix("_quant"): r for r in imp.rows}
    assert rows["q_proj"]["weight_dtype"] == "int8" and rows["q_proj"]["weights"] == "static"
    qk = rows["qk"]
    assert qk["weights"] == "dynamic" and (qk["batch"], qk["m"], qk["k"], qk["n"]) == (H, S, 8, S)
    # dynamic quantization leaves activation x activation matmuls in float
    assert qk["act_dtype"] == ("fp32" if form == "dyn" else "int8")


# ---- operators one by one, each against a hand count


def _single(tmp_path, node, x_shape, inits, y_elem=TP.FLOAT, x_elem=TP.FLOAT, opset=17):
    m = _model([node], [oh.make_tensor_value_info("x", x_elem, list(x_shape))],
               [oh.make_tensor_value_info(node.output[0], y_elem, None)], inits, opset=opset)
    return import_onnx(_save(m, tmp_path / "m.onnx"))


def test_conv_transpose_lowered_to_gemm(tmp_path):
    # every one of the 5x5 input pixels times a 4 -> 6x3x3 weight: 25 * 4 * 54 = 5400 MACs
    node = oh.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], name="up")
    imp = _single(tmp_path, node, (1, 4, 5, 5), [_w("w", (4, 6, 3, 3))])
    assert imp.macs == 25 * 4 * 6 * 9
    r = imp.rows[0]
    assert (r["kernel_h"], r["in_c"], r["out_c"]) == (1, 4, 54)
    node = oh.make_node("ConvTranspose", ["x", "w"], ["y"], group=2, name="up")
    assert _single(tmp_path, node, (1, 4, 5, 5), [_w("w", (4, 3, 3, 3))]).macs == 25 * 2 * 27 * 2


@pytest.mark.parametrize("attrs,out_hw", [
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, 4),          # ceil(7 / 2)
    ({"pads": [0, 0, 2, 2], "strides": [2, 2]}, 4),              # asymmetric: (7+2-3)//2+1
    ({"dilations": [2, 2]}, 3),                                   # 7 - 2*(3-1)
])
def test_conv_padding_forms_by_output_size(tmp_path, attrs, out_hw):
    node = oh.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)
    imp = _single(tmp_path, node, (1, 2, 7, 7), [_w("w", (5, 2, 3, 3))])
    assert imp.macs == out_hw * out_hw * 5 * 2 * 9
    assert make_layer(imp.rows[0]).m == out_hw * out_hw


def test_conv1d(tmp_path):
    node = oh.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1], name="c")
    assert _single(tmp_path, node, (1, 4, 10), [_w("w", (6, 4, 3))]).macs == 10 * 6 * 4 * 3


@pytest.mark.parametrize("elem,dtype", [(TP.FLOAT16, "fp16"), (TP.BFLOAT16, "bf16"),
                                        (TP.FLOAT, "fp32")])
def test_float_dtypes(tmp_path, elem, dtype):
    w = oh.make_tensor("w", elem, [16, 8], np.zeros(128, np.uint16).tolist()
                       if elem != TP.FLOAT else [0.0] * 128)
    node = oh.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    imp = _single(tmp_path, node, (3, 16), [w], y_elem=elem, x_elem=elem)
    r = imp.rows[0]
    assert (r["weight_dtype"], r["act_dtype"]) == (dtype, dtype)
    assert (r["m"], r["k"], r["n"]) == (3, 16, 8)


def test_weight_through_dequantize_and_transpose(tmp_path):
    # int8 weight -> DequantizeLinear -> Transpose -> MatMul: static, int8 weights
    nodes = [oh.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
             oh.make_node("Transpose", ["wd"], ["wt"], perm=[1, 0]),
             oh.make_node("MatMul", ["x", "wt"], ["y"], name="mm")]
    inits = [nh.from_array(np.ones((8, 16), np.int8), "wq"),
             nh.from_array(np.array(0.1, np.float32), "s"),
             nh.from_array(np.array(0, np.int8), "z")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [2, 5, 16])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    r = imp.rows[0]
    assert (r["m"], r["k"], r["n"], r["weights"]) == (10, 16, 8, "static")
    assert (r["weight_dtype"], r["act_dtype"]) == ("int8", "fp32")
    assert make_layer(r).format == "fp32"      # weight-only int8 runs in the float format
    assert imp.nodes_free == 2


def test_ort_contrib_ops_after_unknown_shapes(tmp_path):
    # onnxruntime-optimized graphs: com.microsoft FusedConv / FusedGemm / FusedMatMul, whose
    # shapes ONNX inference does not know; the standard Relu and Flatten behind them still cost.
    ms = "com.microsoft"
    nodes = [oh.make_node("FusedConv", ["x", "w"], ["c"], domain=ms, pads=[1, 1, 1, 1],
                          strides=[2, 2], name="fconv"),
             oh.make_node("Relu", ["c"], ["r"], name="relu"),
             oh.make_node("Flatten", ["r"], ["f"]),
             oh.make_node("FusedGemm", ["f", "wg"], ["g"], domain=ms, transB=1, name="fgemm"),
             oh.make_node("FusedMatMul", ["g", "wm"], ["y"], domain=ms, transB=1, name="fmm")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)],
               [_w("w", (4, 3, 3, 3)), _w("wg", (5, 64)), _w("wm", (7, 5))], domains=(ms,))
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    assert not imp.unsupported
    # conv 4x4 outputs x 4 channels x 27; gemm 64 x 5; matmul 5 x 7 (B transposed)
    assert imp.macs == 16 * 4 * 27 + 64 * 5 + 5 * 7
    assert _by_name(imp)["relu"]["elements"] == 64


def test_unsupported_listed_with_share_never_zero_cost(tmp_path):
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], name="c1"),
             oh.make_node("Mystery", ["c"], ["u"], domain="my.ops", name="odd"),
             oh.make_node("Conv", ["u", "w2"], ["y"], name="c2")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 6, 6])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)],
               [_w("w", (3, 2, 1, 1)), _w("w2", (3, 3, 1, 1))], domains=("my.ops",))
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    assert [r["name"] for r in imp.rows] == ["c1"]
    got = {(n, o) for n, o, _ in imp.unsupported}
    assert got == {("odd", "Mystery"), ("c2", "Conv")}
    assert "no cost model" in dict(((n, w) for n, _, w in imp.unsupported))["odd"]
    assert "from node 'odd'" in dict(((n, w) for n, _, w in imp.unsupported))["c2"]
    assert imp.unsupported_share == pytest.approx(2 / 3)
    assert "2 unsupported" in imp.coverage_line()
    wl = load_onnx_workload(tmp_path / "m.onnx")
    assert any("not costed" in n for n in wl.notes)


# ---- real topologies shipped in the onnx wheel


def _materialize(name: str, path: Path) -> Path:
    """The light model with its ConstantOfShape weights made real initializers (ORT quantizes
    only initializers), at opset 13."""
    m = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    inits = {t.name: t for t in m.graph.initializer}
    keep, new = [], []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = nh.to_array(inits[n.input[0]])
            # 1-D tensors (BatchNorm scale/variance, biases) positive, so no NaN in calibration
            vals = (RNG.uniform(0.5, 1.0, shape) if len(shape) == 1
                    else RNG.standard_normal(shape) * 0.05)
            new.append(nh.from_array(vals.astype(np.float32), n.output[0]))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new)
    names = {t.name for t in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(ins)
    m.ir_version = 7
    return _save(onnx.version_converter.convert_version(m, 13), path)


def _ort_conv_macs(path: Path) -> int:
    """Independent count of the conv MACs: run the float model in onnxruntime with every Conv
    output exposed, and sum output elements x (in_c / group x kernel area)."""
    import onnxruntime as ort
    m = onnx.load(str(path))
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    targets = [n for n in m.graph.node if n.op_type == "Conv"]
    for n in targets:
        m.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    outs = sess.run([n.output[0] for n in targets],
                    {inp.name: np.zeros(inp.shape, np.float32)})
    total = 0
    for n, y in zip(targets, outs):
        total += y.size * int(np.prod(shapes[n.input[1]][1:]))
    return total


def _conv_macs(imp) -> int:
    return _macs([r for r in imp.rows if r["op"] == "conv2d"])


def test_light_squeezenet_float_qdq_qoperator(tmp_path):
    f = _materialize("squeezenet", tmp_path / "sq.onnx")
    truth = _ort_conv_macs(f)
    ref = import_onnx(LIGHT / "light_squeezenet.onnx")
    assert ref.macs == truth and not ref.unsupported      # squeezenet has no FC layer
    for form in ("QDQ", "QOperator"):
        out = tmp_path / f"sq_{form}.onnx"
        quant.quantize_static(str(f), str(out), _Reader("data_0", (1, 3, 224, 224), n=1),
                              quant_format=getattr(quant.QuantFormat, form))
        imp = import_onnx(out)
        assert imp.macs == truth and not imp.unsupported, (form, imp.unsupported[:3])
        convs = [r for r in imp.rows if r["op"] == "conv2d"]
        assert len(convs) == 26 and {r["weight_dtype"] for r in convs} == {"int8"}


def test_light_resnet50_matches_published_macs():
    # torchvision lists ResNet-50 at 4.09 GMAC (reported as "GFLOPS") at 224x224
    imp = import_onnx(LIGHT / "light_resnet50.onnx")
    assert imp.macs == pytest.approx(4.09e9, rel=0.01) and not imp.unsupported
    assert sum(r["op"] == "conv2d" for r in imp.rows) == 53


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception_v1", "shufflenet", "densenet121"])
def test_light_models_quantized_qoperator(tmp_path, name):
    f = _materialize(name, tmp_path / f"{name}.onnx")
    truth = _ort_conv_macs(f)
    out = tmp_path / f"{name}_q.onnx"
    inp = onnx.load(str(f)).graph.input[0]
    shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    quant.quantize_static(str(f), str(out), _Reader(inp.name, shape, n=1),
                          quant_format=quant.QuantFormat.QOperator)
    imp = import_onnx(out)
    assert _conv_macs(imp) == truth and not imp.unsupported
    assert imp.macs == import_onnx(LIGHT / f"light_{name}.onnx").macs


# ---- bad input: one line, exit 2, no output file


def test_dynamic_dim_needs_input_shape(cnn, cli, tmp_path):
    with pytest.raises(InputError, match=r"input .x. dim 0.*--input-shape x=<N>x3x16x16"):
        import_onnx(cnn["float"])
    out = tmp_path / "t.csv"
    code, _, err = cli("import", "onnx", cnn["float"], "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'N'" in err
    assert not out.exists()
    code, stdout, err = cli("import", "onnx", cnn["float"], "--input-shape", "x=2x3x16x16",
                            "--out", out)
    assert code == 0, err
    assert "coverage" in stdout and out.read_text().startswith("# shapes: ONNX model")
    assert load_workload(out).macs == 2 * CNN_MACS
    assert load_workload(cnn["qdq"]).macs == CNN_MACS          # .onnx as WORKLOAD


@pytest.mark.parametrize("content,match", [
    (b"name,op\nfc,matmul\n", "not"),                # a CSV renamed .onnx
    (b"\x08\x07\x12\x04abcd", "not an ONNX model"),   # parses as protobuf, no graph
    (None, "not"),                                    # truncated real model
])
def test_bad_files_exit_2_one_line(cli, tmp_path, content, match):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content if content is not None
                    else (LIGHT / "light_resnet50.onnx").read_bytes()[:3000])
    with pytest.raises(InputError, match=match):
        import_onnx(bad)
    out = tmp_path / "o.csv"
    code, stdout, err = cli("import", "onnx", bad, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err
    assert not out.exists() and not list(tmp_path.glob(".o.csv*"))


def test_nothing_importable(tmp_path, cli):
    node = oh.make_node("Mystery", ["x"], ["y"], domain="my.ops", name="odd")
    m = _model([node], [oh.make_tensor_value_info("x", TP.FLOAT, [1, 4])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)], [], domains=("my.ops",))
    p = _save(m, tmp_path / "m.onnx")
    with pytest.raises(InputError, match="nothing importable.*odd"):
        import_onnx(p)
    code, _, err = cli("import", "onnx", p, "--out", tmp_path / "o.csv")
    assert code == 2 and "nothing importable" in err


@pytest.mark.parametrize("arg,match", [("x=1x3", "rank"), ("y=1x3x16x16", "model inputs are: x"),
                                       ("x=1xAx16x16", "positive integers"), ("x1x3", "NAME="),
                                       # 4 channels into a conv whose weights take 3
                                       ("x=1x4x16x16", "got '4 input channels'; its weights")])
def test_bad_input_shape(cnn, cli, arg, match, tmp_path):
    code, _, err = cli("import", "onnx", cnn["float"], "--input-shape", arg,
                       "--out", tmp_path / "o.csv")
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_parse_input_shape():
    assert parse_input_shape("input_ids=1x128") == ("input_ids", (1, 128))
    assert parse_input_shape("a=b=2x3") == ("a=b", (2, 3))


def test_import_scalesim_cli(cli, tmp_path):
    from .conftest import SCALESIM
    topo = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"
    out = tmp_path / "r18.csv"
    code, stdout, err = cli("import", "scalesim", topo, "--out", out)
    assert code == 0, err
    wl = load_workload(out)
    assert len(wl.layers) == 21 and wl.macs == 1471181568     # as tests/test_cli.py's run
    assert "Resnet18.csv" in wl.notes[0]
    gpt2 = SCALESIM / "topologies" / "GEMM_mnk" / "gpt2.csv"      # GEMM form, by its header
    code, _, err = cli("import", "scalesim", gpt2, "--out", tmp_path / "g.csv")
    assert code == 0, err
    first = load_workload(tmp_path / "g.csv").layers[0]
    assert (first.m, first.k, first.n) == (1024, 64, 1024)       # QKT row: M=1024, N=1024, K=64
    code, _, err = cli("import", "scalesim", tmp_path / "missing.csv", "--out", tmp_path / "m")
    assert code == 2 and "not found" in err
    code, out_text, _ = cli("import", "onnx", "--help")
    assert code == 0 and "Example" in out_text


# ---- names: generic node names (n0, n1 ...) give way to the weights' names

def test_generic_node_names_are_replaced_by_weight_names(tmp_path):
    """As in the onnx wheel's light_resnet50: nodes n0..n5, outputs r0..r5, weights under a
    prefix every parameter shares. Rows are named after their weights (prefix and _w_0 /
    _bn_s_0 suffix off), ops without weights after the layer they follow; a node with a real
    name keeps it; a repeated name gets _2. Shapes and MACs are those of the numbered graph."""
    x = oh.make_tensor_value_info("gpu_0/data_0", TP.FLOAT, [1, 8, 8, 8])
    y = oh.make_tensor_value_info("r6", TP.FLOAT, None)
    inits = [_w("gpu_0/res2_0_branch2a_w_0", [8, 8, 1, 1]),
             _w("gpu_0/res2_0_branch2a_bn_s_0", [8]), _w("gpu_0/res2_0_branch2a_bn_b_0", [8]),
             _w("gpu_0/res2_0_branch2a_bn_rm_0", [8]),
             _w("gpu_0/res2_0_branch2a_bn_riv_0", [8]), _w("gpu_0/fc_w_0", [8, 8]),
             _w("gpu_0/res2_0_branch2b_w_0", [8, 8, 1, 1])]
    nodes = [
        oh.make_node("Conv", ["gpu_0/data_0", "gpu_0/res2_0_branch2a_w_0"], ["r0"], name="n0"),
        oh.make_node("BatchNormalization", ["r0", "gpu_0/res2_0_branch2a_bn_s_0",
                                            "gpu_0/res2_0_branch2a_bn_b_0",
                                            "gpu_0/res2_0_branch2a_bn_rm_0",
                                            "gpu_0/res2_0_branch2a_bn_riv_0"], ["r1"], name="n1"),
        oh.make_node("Relu", ["r1"], ["r2"], name="n2"),
        oh.make_node("MaxPool", ["r2"], ["r3"], kernel_shape=[1, 1], name="n3"),
        oh.make_node("Conv", ["r3", "gpu_0/res2_0_branch2b_w_0"], ["r4"], name="my_conv"),
        oh.make_node("Conv", ["r4", "gpu_0/res2_0_branch2b_w_0"], ["r5"], name="Conv_7"),
        oh.make_node("Relu", ["r5"], ["r6"], name=""),
    ]
    p = _save(_model(nodes, [x], [y], inits), tmp_path / "numbered.onnx")
    imp = import_onnx(p)
    assert [r["name"] for r in imp.rows] == [
        "res2_0_branch2a", "res2_0_branch2a_bn", "res2_0_branch2a_bn/relu",
        "res2_0_branch2a_bn/maxpool", "my_conv", "res2_0_branch2b", "res2_0_branch2b/relu"]
    assert imp.costed_names == [r["name"] for r in imp.rows]
    assert imp.macs == 3 * 64 * 8 * 8          # three 1x1 convs 8 -> 8 over 8x8
    # two nodes that would get one name: the second is told apart
    nodes[5] = oh.make_node("Conv", ["r4", "gpu_0/res2_0_branch2a_w_0"], ["r5"], name="n5")
    imp = import_onnx(_save(_model(nodes, [x], [y], inits), tmp_path / "twice.onnx"))
    assert [r["name"] for r in imp.rows][5] == "res2_0_branch2a_2"


def test_shipped_resnet50_trace_carries_the_weight_names():
    from tpusim.importers import load_workload as lw
    names = [l.name for l in lw("resnet50").layers]
    assert names[:3] == ["conv1", "res_conv1_bn", "res_conv1_bn/relu"]
    assert "res5_2_branch2c" in names and names[-2] == "pred"
    assert len(set(names)) == len(names) and not any(n[1:].isdigit() for n in names)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_a_gemm_input_wider_than_its_weights_is_refused(tmp_path, trans_b):
    # Flatten of a dynamic-size conv map into a Gemm whose weight takes 512 features: at 32x32
    # the flattened map is 8 x 16 x 16 = 2,048 wide (the MACs would be 4x the model's)
    x = oh.make_tensor_value_info("img", TP.FLOAT, ["N", 3, "H", "W"])
    y = oh.make_tensor_value_info("y", TP.FLOAT, None)
    fw = _w("fw", (10, 512) if trans_b else (512, 10))
    nodes = [oh.make_node("Conv", ["img", "cw"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1],
                          kernel_shape=[3, 3]),
             oh.make_node("Flatten", ["c"], ["f"]),
             oh.make_node("Gemm", ["f", "fw"], ["y"], transB=trans_b, name="fc")]
    p = _save(_model(nodes, [x], [y], [_w("cw", (8, 3, 3, 3)), fw]), tmp_path / "m.onnx")
    with pytest.raises(InputError, match=r"node 'fc'.*'an input 2048 wide'; its weights 'fw' "
                                         r".* take 512; check --input-shape"):
        import_onnx(p, input_shapes={"img": (1, 3, 32, 32)})
    rows = _by_name(import_onnx(p, input_shapes={"img": (1, 3, 16, 16)}))
    assert (rows["fc"]["m"], rows["fc"]["k"], rows["fc"]["n"]) == (1, 512, 10)


@pytest.mark.parametrize("between,conv2_act", [("MaxPool", "int8"), ("Relu", "int8"),
                                               ("AveragePool", "fp32")])
def test_qdq_int8_values_pass_a_max_or_clamp_not_an_average(tmp_path, between, conv2_act):
    # DQ -> op -> Conv with no Q/DQ between: a max or a clamp at 0 returns some of its int8
    # inputs' values (the conv after it runs int8), an average makes new ones (it runs fp32)
    n = oh.make_node
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]} if "Pool" in between else {}
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             n("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             n("DequantizeLinear", ["w1q", "s", "z"], ["w1"]),
             n("Conv", ["xd", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1] * 4),
             n("QuantizeLinear", ["c1", "s", "z"], ["c1q"]),
             n("DequantizeLinear", ["c1q", "s", "z"], ["c1d"]),
             n(between, ["c1d"], ["p"], name="mid", **attrs),
             n("DequantizeLinear", ["w2q", "s", "z"], ["w2"]),
             n("Conv", ["p", "w2"], ["y"], name="conv2", kernel_shape=[3, 3], pads=[1] * 4)]
    inits = [nh.from_array(np.ones((4, 3, 3, 3), np.int8), "w1q"),
             nh.from_array(np.ones((4, 4, 3, 3), np.int8), "w2q"),
             nh.from_array(np.array(0.1, np.float32), "s"),
             nh.from_array(np.array(0, np.int8), "z")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    rows = _by_name(import_onnx(_save(m, tmp_path / "m.onnx")))
    assert rows["conv1"]["act_dtype"] == rows["mid"]["act_dtype"] == "int8"
    assert (rows["conv2"]["weight_dtype"], rows["conv2"]["act_dtype"]) == ("int8", conv2_act)


def test_einsum_dims_by_hand():
    from tpusim.importers.onnx_einsum import einsum_dims
    # attention scores: per (b, h) a q x d by d x k product
    assert einsum_dims("bhqd,bhkd->bhqk", (2, 4, 8, 16), (2, 4, 32, 16)) == ((8, 8, 16, 32), None)
    # a linear layer, the weight first, and the implicit output (indices seen once, sorted)
    assert einsum_dims("bi,ij->bj", (8, 16), (16, 1024)) == ((1, 8, 16, 1024), None)
    assert einsum_dims("ij,bj", (10, 16), (8, 16)) == ((1, 10, 16, 8), None)   # -> bi
    for eq, a, why in (("ii,ij->j", (4, 4), "diagonal"),
                       ("bij,jk->bk", (2, 4, 4), "sums an index within one"),
                       ("...i,ij->...j", (4, 4), "ellipsis"), ("ij->ji", (4, 4), "1 operands")):
        dims, reason = einsum_dims(eq, a, (4, 4))
        assert dims is None and why in reason, (eq, reason)
    assert "sizes differ" in einsum_dims("ij,jk->ik", (2, 3), (4, 5))[1]


def test_einsum_nodes_cost_as_their_matmuls(tmp_path):
    # x (8 x 16) through a static 16 x 1024 weight, then scores q.k^T of two activations
    n = oh.make_node
    nodes = [n("Einsum", ["x", "w"], ["h"], equation="bi,ij->bj", name="proj"),
             n("Reshape", ["h", "shape"], ["q"]),
             n("Einsum", ["q", "q"], ["s"], equation="hqd,hkd->hqk", name="scores")]
    inits = [_w("w", (16, 1024)), nh.from_array(np.array([4, 8, 256], np.int64), "shape")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [8, 16])],
               [oh.make_tensor_value_info("s", TP.FLOAT, None)], inits)
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    rows = _by_name(imp)
    assert (rows["proj"]["m"], rows["proj"]["k"], rows["proj"]["n"],
            rows["proj"]["weights"]) == (8, 16, 1024, "static")
    s = rows["scores"]
    assert (s["batch"], s["m"], s["k"], s["n"], s["weights"]) == (4, 8, 256, 8, "dynamic")
    assert imp.macs == 8 * 16 * 1024 + 4 * 8 * 256 * 8 and not imp.unsupported


def test_a_node_after_an_uncosted_one_names_it(tmp_path):
    # a custom op's output has no inferred shape: the softmax after it says why, by name
    n = oh.make_node
    nodes = [n("MatMul", ["x", "w"], ["h"], name="fc"),
             n("MyOp", ["h"], ["c"], name="custom", domain="my.domain"),
             n("Softmax", ["c"], ["y"], name="sm")]
    m = _model(nodes, [oh.make_tensor_value_info("x", TP.FLOAT, [4, 8])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)], [_w("w", (8, 8))],
               domains=("my.domain",))
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    why = {nm: w for nm, _, w in imp.unsupported}
    assert why["sm"] == "its input comes from node 'custom', which was not costed"
    assert "no cost model" in why["custom"]


@pytest.mark.parametrize("op,gates,direction,dirs", [("LSTM", 4, "forward", 1),
                                                     ("LSTM", 4, "bidirectional", 2),
                                                     ("GRU", 3, "reverse", 1)])
def test_recurrent_nodes_cost_their_input_and_recurrent_gemms(tmp_path, op, gates, direction,
                                                              dirs):
    # 7 steps of 3 sequences, 16 features, hidden 32: per step and direction 3 x (16 + 32) x
    # gates x 32 MACs; the input GEMM over all 21 rows at once, the recurrent one per step
    seq, b, feat, hid = 7, 3, 16, 32
    node = oh.make_node(op, ["x", "W", "R"], ["y"], hidden_size=hid, direction=direction,
                        name="rnn")
    m = _model([node], [oh.make_tensor_value_info("x", TP.FLOAT, [seq, b, feat])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)],
               [_w("W", (dirs, gates * hid, feat)), _w("R", (dirs, gates * hid, hid))])
    imp = import_onnx(_save(m, tmp_path / "m.onnx"))
    rows = _by_name(imp)
    assert (rows["rnn_x"]["m"], rows["rnn_x"]["k"], rows["rnn_x"]["n"]) == (
        seq * b, feat, dirs * gates * hid)
    assert (rows["rnn_h"]["m"], rows["rnn_h"]["k"], rows["rnn_h"]["n"],
            rows["rnn_h"]["count"]) == (b, hid, gates * hid, seq * dirs)
    assert imp.macs == seq * dirs * b * (feat + hid) * gates * hid and not imp.unsupported
    assert rows["rnn_cell"]["elements"] == seq * dirs * b * hid


def test_recurrent_and_einsum_refusals(tmp_path):
    # an LSTM input wider than its W takes (a wrong --input-shape) is an error; a direction its
    # W does not hold, and a one-operand Einsum, are uncosted with their own reasons
    def lstm(direction, dirs, x_shape):
        node = oh.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=4, direction=direction,
                            name="rnn")
        return _save(_model([node], [oh.make_tensor_value_info("x", TP.FLOAT, x_shape)],
                            [oh.make_tensor_value_info("y", TP.FLOAT, None)],
                            [_w("W", (dirs, 16, 7)), _w("R", (dirs, 16, 4))]),
                     tmp_path / f"{direction}{dirs}.onnx")
    with pytest.raises(InputError, match=r"node 'rnn'.*'an input 9 wide'; its weights 'W' "
                                         r"\(1, 16, 7\) take 7; check --input-shape"):
        import_onnx(lstm("forward", 1, ["S", 3, 7]), input_shapes={"x": (5, 3, 9)})
    with pytest.raises(InputError, match="nothing importable.*forward but its W holds 2"):
        import_onnx(lstm("forward", 2, [5, 3, 7]))
    node = oh.make_node("Einsum", ["x"], ["y"], equation="ii->i", name="diag")
    m = _model([node], [oh.make_tensor_value_info("x", TP.FLOAT, [4, 4])],
               [oh.make_tensor_value_info("y", TP.FLOAT, None)], [])
    with pytest.raises(InputError, match=r"Einsum of 1 operands \(two are costed\)"):
        import_onnx(_save(m, tmp_path / "e.onnx"))

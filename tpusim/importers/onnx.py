"""ONNX models (float, QDQ, QOperator and dynamically quantized) as tpusim trace rows.

Shapes come from ONNX shape inference after the user fixes dynamic input dims
(``input_shapes={"input": (1, 3, 224, 224)}``, the CLI's ``--input-shape``). Every node becomes
exactly one of:

* a GEMM row (Conv, ConvTranspose, Gemm, MatMul and their quantized forms QLinearConv,
  QLinearMatMul, ConvInteger, MatMulInteger, com.microsoft QGemm);
* a vector row (Softmax, LayerNormalization, Add, Relu, pooling, ... with an element count);
* free: layout and shape-only ops (Reshape, Transpose, Q/DQ, Cast, ...) and any node whose inputs
  are all known before the model runs (weights, shapes: constant folding), which cost nothing;
* unsupported: an op we have no cost model for, or a node whose shapes inference could not find.
  These are listed with a reason and never counted as zero cost silently.

Dtypes come from the tensors: a quantized tensor (int8/uint8) feeding a DequantizeLinear gives the
dtype of the Conv/MatMul behind it (QDQ form). Large models are read with
``load_external_data=False`` and weights are never materialised: only their dims are read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .._input import check_size
from ..errors import InputError
from ..workload import VECTOR_OPS, Workload, make_layer

# ONNX TensorProto element types -> tpusim formats (onnx.TensorProto.DataType numbering).
_DTYPES = {
    1: "fp32",    # FLOAT
    2: "int8",    # UINT8: same multiplier width as int8 (zero point folds into the bias)
    3: "int8",    # INT8
    10: "fp16",   # FLOAT16
    11: "fp32",   # DOUBLE: no fp64 datapath in tpusim; counted as fp32 (assumption)
    16: "bf16",   # BFLOAT16
    17: "fp8_e4m3",  # FLOAT8E4M3FN
    18: "fp8_e4m3",  # FLOAT8E4M3FNUZ
    19: "fp8_e5m2",  # FLOAT8E5M2
    20: "fp8_e5m2",  # FLOAT8E5M2FNUZ
    21: "int4",   # UINT4
    22: "int4",   # INT4
}

# Ops that move or relabel data and cost nothing in our model (a TPU does them with addressing,
# or they are folded into the neighbouring kernel, as Q/DQ pairs are in an int8 kernel).
_FREE_OPS = {
    "Reshape", "Transpose", "Shape", "Size", "Constant", "ConstantOfShape", "Identity", "Flatten",
    "Squeeze", "Unsqueeze", "QuantizeLinear", "DequantizeLinear", "Cast", "CastLike", "Dropout",
    "Slice", "Split", "Expand", "Tile", "Range", "EyeLike", "Optional", "OptionalGetElement",
    "DepthToSpace", "SpaceToDepth",
}
# Free ops through which a tensor keeps its "quantized dtype" and "static weight" identity.
_PASS_THROUGH = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast",
                 "DequantizeLinear", "QuantizeLinear"}

# ONNX op -> (tpusim vector op, element operations per output element or None for VECTOR_OPS').
_VECTOR = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Sum": "add", "Mean": "add",
    "Relu": "relu", "LeakyRelu": "relu", "PRelu": "relu", "Elu": "relu", "Selu": "relu",
    "Clip": "clip", "Sigmoid": "sigmoid", "HardSigmoid": "sigmoid", "Tanh": "tanh",
    "Gelu": "gelu", "FastGelu": "gelu", "BiasGelu": "gelu", "QuickGelu": "gelu",
    "HardSwish": "hardswish", "Swish": "swish", "Mish": "swish", "Softplus": "sigmoid",
    "Softmax": "softmax", "LogSoftmax": "softmax",
    "LayerNormalization": "layernorm", "SkipLayerNormalization": "layernorm",
    "InstanceNormalization": "layernorm", "GroupNormalization": "layernorm",
    "SimplifiedLayerNormalization": "rmsnorm", "SkipSimplifiedLayerNormalization": "rmsnorm",
    "RMSNormalization": "rmsnorm", "BatchNormalization": "batchnorm",
    "LRN": "layernorm", "MeanVarianceNormalization": "layernorm",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "LpPool": "avgpool",
    "GlobalAveragePool": "globalpool", "GlobalMaxPool": "globalpool", "GlobalLpPool": "globalpool",
    "ReduceMean": "reduce", "ReduceSum": "reduce", "ReduceMax": "reduce", "ReduceMin": "reduce",
    "ReduceProd": "reduce", "ReduceL2": "reduce", "ReduceL1": "reduce",
    "ReduceSumSquare": "reduce", "ReduceLogSumExp": "reduce", "ArgMax": "reduce",
    "ArgMin": "reduce", "TopK": "reduce", "CumSum": "reduce",
    "Concat": "concat", "Gather": "embedding", "GatherElements": "embedding",
    "GatherND": "embedding", "Pad": "elementwise", "Resize": "elementwise",
    "Upsample": "elementwise", "Where": "elementwise",
    # one element op each (assumption: a compare, select or simple arithmetic per element)
    "Pow": "elementwise", "Sqrt": "elementwise", "Exp": "elementwise", "Log": "elementwise",
    "Reciprocal": "elementwise", "Neg": "elementwise", "Abs": "elementwise",
    "Min": "elementwise", "Max": "elementwise", "Equal": "elementwise", "Less": "elementwise",
    "Greater": "elementwise", "LessOrEqual": "elementwise", "GreaterOrEqual": "elementwise",
    "Not": "elementwise", "And": "elementwise", "Or": "elementwise", "Xor": "elementwise",
    "Floor": "elementwise", "Ceil": "elementwise", "Round": "elementwise", "Sign": "elementwise",
    "Mod": "elementwise", "IsNaN": "elementwise", "IsInf": "elementwise",
    "Sin": "elementwise", "Cos": "elementwise", "Erf": "elementwise",
    "DynamicQuantizeLinear": "quantize",
    # com.microsoft quantized element-wise ops (QOperator form): dequantize, op, requantize
    "QLinearAdd": "add", "QLinearMul": "mul", "QLinearSigmoid": "sigmoid",
    "QLinearLeakyRelu": "relu", "QLinearAveragePool": "avgpool",
    "QLinearGlobalAveragePool": "globalpool", "QLinearConcat": "concat",
    "QLinearSoftmax": "softmax", "QLinearReduceMean": "reduce",
}
# Ops per element where VECTOR_OPS' default does not fit (assumptions, one sentence each):
_OPS_PER_ELEMENT = {
    "Erf": 4,                    # a short polynomial, like tanh
    "Exp": 4, "Log": 4, "Sin": 4, "Cos": 4, "Pow": 2, "Sqrt": 2,  # transcendental approximations
    "DynamicQuantizeLinear": 4,  # min, max, scale and round per element
}
# Vector ops whose elements are the input's (reductions), not the output's.
_INPUT_ELEMENTS = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum",
                   "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1",
                   "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "TopK",
                   "QLinearGlobalAveragePool", "QLinearReduceMean", "DynamicQuantizeLinear"}
# Element-wise ops that may run in a GEMM's output pipeline (SPEC: fused=true).
_FUSABLE = {"Relu", "Clip", "BatchNormalization", "LeakyRelu", "PRelu", "HardSigmoid"}
# GEMM ops and the positions of (activation, weight) inputs.
_GEMM_INPUTS = {
    "Conv": (0, 1), "ConvTranspose": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
    "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
    "QGemm": (0, 3), "FusedConv": (0, 1), "FusedGemm": (0, 1), "FusedMatMul": (0, 1),
}
_CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "FusedConv"}
# Shape rules for com.microsoft ops that ONNX shape inference does not know: same shape as input 0.
_MS_SAME_SHAPE = {"QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "FastGelu",
                  "BiasGelu", "QuickGelu", "Gelu", "SkipLayerNormalization",
                  "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
                  "QLinearSoftmax"}


@dataclass
class OnnxImport:
    """The result of reading one ONNX model: trace rows plus what could not be costed."""

    name: str
    rows: list[dict[str, Any]]
    unsupported: list[tuple[str, str, str]]   # (node name, op type, why)
    nodes_total: int = 0
    nodes_costed: int = 0     # nodes that became rows
    nodes_free: int = 0       # layout / shape-only / constant-folded nodes
    macs: int = 0
    costed_names: list[str] = field(default_factory=list)
    free_names: list[str] = field(default_factory=list)
    vector_ops: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def unsupported_share(self) -> float:
        """Share of the compute nodes (rows + unsupported) that could not be costed."""
        denom = self.nodes_costed + len(self.unsupported)
        return len(self.unsupported) / denom if denom else 0.0

    def coverage_line(self) -> str:
        return (f"{self.nodes_costed} nodes costed, {self.nodes_free} free (layout/shape/constant), "
                f"{len(self.unsupported)} unsupported ({self.unsupported_share:.1%} of costed "
                f"nodes); {self.macs / 1e9:.4g} GMAC, {self.vector_ops / 1e6:.4g} M vector ops")

    def coverage(self) -> dict[str, Any]:
        """What was costed, what cost nothing and what could not be costed, with node names
        (``summary.json`` of ``tpusim run`` records it as ``onnx_coverage``)."""
        return {"nodes_total": self.nodes_total, "nodes_costed": self.nodes_costed,
                "nodes_free": self.nodes_free, "nodes_not_costed": len(self.unsupported),
                "costed": list(self.costed_names), "free": list(self.free_names),
                "not_costed": [{"name": n, "op": o, "why": w} for n, o, w in self.unsupported]}


# --------------------------------------------------------------------------------------- loading

def _load(path: Path):
    import onnx
    from google.protobuf.message import DecodeError
    src = str(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, UnicodeDecodeError) as exc:
        raise InputError(src, None, message=f"not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'parse error'}); "
                         "expected a binary .onnx ModelProto") from None
    except OSError as exc:
        raise InputError(src, None, message=f"cannot read file ({exc.strerror})") from None
    # Protobuf parses many byte strings as a message with unknown fields: a real model has an IR
    # version and a graph with nodes.
    if model.ir_version <= 0 or not model.HasField("graph") or len(model.graph.node) == 0:
        raise InputError(src, None, message="not an ONNX model (no IR version or no graph "
                         "nodes; a truncated or non-ONNX file?)")
    _strip_weights(model)
    return model


_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
           "string_data")


def _strip_weights(model) -> None:
    """Drop the values of large embedded initializers (only their dims and dtype matter), so
    shape inference does not copy them; small ones (shape vectors, scales) keep their values."""
    for t in model.graph.initializer:
        if t.data_location == 1 or _numel(t.dims) <= 1024:
            continue
        for f in _FIELDS:
            t.ClearField(f)
        t.data_location = 1   # EXTERNAL: the data is elsewhere; nothing reads it
        e = t.external_data.add()
        e.key, e.value = "location", "stripped-by-tpusim"


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=1x3x224x224`` -> ("NAME", (1, 3, 224, 224)); the CLI's ``--input-shape``."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name or not dims:
        raise InputError("--input-shape", None, text, "expected NAME=D1xD2x..., e.g. "
                         "input=1x3x224x224")
    try:
        shape = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
    except ValueError:
        raise InputError("--input-shape", name, dims, "dims must be positive integers joined "
                         "by 'x', e.g. 1x3x224x224") from None
    if any(d <= 0 for d in shape):
        raise InputError("--input-shape", name, dims, "dims must be positive integers")
    for d in shape:
        check_size(d, "--input-shape", name)
    return name, shape


def parse_input_shapes(texts) -> dict[str, tuple[int, ...]]:
    """Every ``--input-shape``; an input named twice is an error (the last would win)."""
    out: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, shape = parse_input_shape(text)
        if name in out:
            raise InputError("--input-shape", name, message="given twice; give each input once")
        out[name] = shape
    return out


def _fix_inputs(model, src: str, input_shapes: dict[str, tuple[int, ...]] | None) -> None:
    """Write user-given dims into the graph inputs; refuse any dynamic dim left unfixed."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    shapes = dict(input_shapes or {})
    known = {i.name for i in inputs}
    for name in shapes:
        if name not in known:
            raise InputError(src, "--input-shape", name, "model inputs are: "
                             + ", ".join(sorted(known)))
    for inp in inputs:
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise InputError(src, f"input {inp.name!r}", message="not a tensor input; only "
                             "tensor inputs are supported")
        if inp.name in shapes:
            want = shapes[inp.name]
            if tt.HasField("shape") and len(tt.shape.dim) != len(want):
                raise InputError(src, f"--input-shape {inp.name}", "x".join(map(str, want)),
                                 f"the input has rank {len(tt.shape.dim)}")
            tt.shape.Clear()
            for d in want:
                tt.shape.dim.add().dim_value = int(d)
            continue
        if not tt.HasField("shape"):
            raise InputError(src, f"input {inp.name!r}", "unknown rank",
                             f"fix it with --input-shape {inp.name}=D1xD2x...")
        for i, d in enumerate(tt.shape.dim):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                label = d.dim_param or "?"
                raise InputError(src, f"input {inp.name!r} dim {i}", label,
                                 f"dynamic dim; fix it with --input-shape {inp.name}="
                                 + "x".join(str(x.dim_value) if x.HasField("dim_value")
                                            and x.dim_value > 0 else "N"
                                            for x in tt.shape.dim)
                                 + " (tpusim import onnx), then use the trace")


def _shapes_of(graph, out: dict[str, tuple[int, ...] | None], dtypes: dict[str, int]) -> None:
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if tt.elem_type:
            dtypes.setdefault(vi.name, tt.elem_type)
        if not tt.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        if all(d >= 0 for d in dims):
            out[vi.name] = dims
        else:
            out.setdefault(vi.name, None)
    for t in graph.initializer:
        out[t.name] = tuple(t.dims)
        dtypes[t.name] = t.data_type


def _attrs(node) -> dict[str, Any]:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ms_shape(node, shapes, attrs) -> tuple[int, ...] | None:
    """Output 0 shape of a com.microsoft op ONNX inference does not know (None: unknown)."""
    ins = [shapes.get(n) if n else None for n in node.input]
    op = node.op_type
    if op in _MS_SAME_SHAPE and ins and ins[0] is not None:
        return ins[0]
    if op in ("QGemm", "FusedGemm"):
        wi = 3 if op == "QGemm" else 1
        if len(ins) <= wi or ins[0] is None or ins[wi] is None:
            return None
        a, b = ins[0], ins[wi]
        m = a[1] if attrs.get("transA") else a[0]
        n = b[0] if attrs.get("transB") else b[1]
        return (m, n)
    if op == "QLinearGlobalAveragePool" and ins and ins[0] is not None:
        x = ins[0]
        if attrs.get("channels_last"):
            return (x[0],) + (1,) * (len(x) - 2) + (x[-1],)
        return x[:2] + (1,) * (len(x) - 2)
    if op == "QLinearConcat":
        parts = [ins[i] for i in range(2, len(ins), 3)]
        if parts and all(p is not None for p in parts):
            ax = attrs.get("axis", 0) % len(parts[0])
            out = list(parts[0])
            out[ax] = sum(p[ax] for p in parts)
            return tuple(out)
    if op == "QLinearAveragePool" and ins and ins[0] is not None:
        return _pool_shape(ins[0], attrs)
    if op == "FusedConv" and len(ins) > 1 and ins[0] is not None and ins[1] is not None \
            and "auto_pad" not in attrs and "dilations" not in attrs:
        shp = _pool_shape(ins[0], dict(attrs, kernel_shape=list(ins[1][2:])))
        return None if shp is None else (shp[0], ins[1][0]) + shp[2:]
    if op == "FusedMatMul" and len(ins) > 1 and ins[0] is not None and ins[1] is not None:
        a, b = list(ins[0]), list(ins[1])
        if len(a) < 2 or len(b) < 2:
            return None
        m = a[-1] if attrs.get("transA") else a[-2]
        n = b[-2] if attrs.get("transB") else b[-1]
        import numpy as np
        try:
            return tuple(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))) + (m, n)
        except ValueError:
            return None
    return None


def _pool_shape(x: tuple[int, ...], attrs: dict[str, Any]) -> tuple[int, ...] | None:
    ks = list(attrs.get("kernel_shape", ()))
    if not ks or len(x) != len(ks) + 2:
        return None
    st = list(attrs.get("strides", [1] * len(ks)))
    pads = list(attrs.get("pads", [0] * 2 * len(ks)))
    out = []
    for i, (size, k) in enumerate(zip(x[2:], ks)):
        out.append((size + pads[i] + pads[i + len(ks)] - k) // st[i] + 1)
    return x[:2] + tuple(out)


def _infer(model, src: str) -> tuple[dict[str, tuple[int, ...] | None], dict[str, int]]:
    """ONNX shape inference, then one pass in node order that fills what it left unknown behind
    ops it does not know (com.microsoft): our rules for those, ONNX's per-node inference for the
    standard ops after them."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                     data_prop=True)
    except Exception as exc:  # onnx raises InferenceError, ValidationError, RuntimeError
        raise InputError(src, None, message="ONNX shape inference failed: "
                         + str(exc).splitlines()[0][:300]) from None
    shapes: dict[str, tuple[int, ...] | None] = {}
    dtypes: dict[str, int] = {}
    _shapes_of(inferred.graph, shapes, dtypes)
    small = {t.name: t for t in model.graph.initializer
             if t.data_type in (6, 7) and _numel(t.dims) <= 64 and t.data_location != 1}
    for node in inferred.graph.node:
        outs = [o for o in node.output if o]
        if not outs or all(shapes.get(o) is not None for o in outs):
            continue
        if any(i and shapes.get(i) is None for i in node.input):
            continue
        if node.domain == "com.microsoft":
            shp = _ms_shape(node, shapes, _attrs(node))
            if shp is not None:
                shapes[outs[0]] = shp
                dtypes[outs[0]] = _ms_dtype(node, dtypes) or 0
            continue
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type, _opset(model, node.domain), node.domain)
            types = {i: onnx.helper.make_tensor_type_proto(dtypes.get(i, 1), list(shapes[i]))
                     for i in node.input if i}
            got = onnx.shape_inference.infer_node_outputs(
                schema, node, types, {i: small[i] for i in node.input if i in small},
                opset_imports=list(model.opset_import))
        except Exception:  # no schema or inference failed: the node stays unknown
            continue
        for name, tp in got.items():
            tt = tp.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
            if tt.HasField("shape") and all(d >= 0 for d in dims):
                shapes[name] = dims
                dtypes[name] = tt.elem_type or dtypes.get(name, 0)
    return shapes, dtypes


def _opset(model, domain: str) -> int:
    for o in model.opset_import:
        if o.domain == domain or (domain in ("", "ai.onnx") and o.domain in ("", "ai.onnx")):
            return o.version
    return 1


def _ms_dtype(node, dtypes: dict[str, int]) -> int | None:
    if node.op_type.startswith("QLinear") or node.op_type == "QGemm":
        # quantized output: the dtype of its zero point (last input) or of the input
        zp = node.input[-1] if node.input and node.input[-1] else None
        if zp and zp in dtypes:
            return dtypes[zp]
    return dtypes.get(node.input[0]) if node.input else None


# ------------------------------------------------------------------------------------- costing

def _numel(shape: Iterable[int]) -> int:
    return math.prod(shape)


def _sym_pad(size: int, kernel: int, stride: int, out: int) -> int | None:
    """Smallest symmetric padding p with (size + 2p - kernel) // stride + 1 == out.

    ONNX allows asymmetric pads, auto_pad and dilation; the trace has one pad per side. MACs
    depend only on the output size, so we choose the padding that reproduces it.
    """
    for p in range(0, kernel + stride + 1):
        if size + 2 * p >= kernel and (size + 2 * p - kernel) // stride + 1 == out:
            return p
    return None


class _Graph:
    """Per-model state of one import: shapes, dtypes, static tensors, consumers."""

    def __init__(self, model, src: str, shapes, dtypes):
        self.src = src
        self.shapes = shapes
        self.dtypes = dtypes
        self.static: set[str] = {t.name for t in model.graph.initializer}
        self.qdtype: dict[str, str] = {}
        self.consumers: dict[str, int] = {}
        for node in model.graph.node:
            for i in node.input:
                if i:
                    self.consumers[i] = self.consumers.get(i, 0) + 1
        for o in model.graph.output:
            self.consumers[o.name] = self.consumers.get(o.name, 0) + 1
        self.fusable_tail: set[str] = set()

    def dtype(self, name: str) -> str | None:
        if name in self.qdtype:
            return self.qdtype[name]
        return _DTYPES.get(self.dtypes.get(name, 0))

    def shape(self, name: str) -> tuple[int, ...] | None:
        return self.shapes.get(name) if name else None


def _per_channel(g: _Graph, operand: str, out: str) -> bool:
    if operand in g.static:
        return True
    a, o = g.shape(operand), g.shape(out)
    return a is not None and o is not None and bool(o) and _numel(a) <= o[-1]


def _gemm_row(g: _Graph, node, attrs, name: str) -> tuple[dict | None, str | None]:
    op = node.op_type
    ai, wi = _GEMM_INPUTS[op]
    if len(node.input) <= wi:
        return None, f"{op} has fewer inputs than expected"
    a_name, w_name = node.input[ai], node.input[wi]
    a, w = g.shape(a_name), g.shape(w_name)
    out = g.shape(node.output[0])
    if a is None or w is None:
        which = a_name if a is None else w_name
        return None, f"shape of input {which!r} unknown after shape inference"
    static = w_name in g.static
    row: dict[str, Any] = {"name": name, "weight_dtype": g.dtype(w_name),
                           "act_dtype": g.dtype(a_name)}
    if op in _CONV_OPS or op == "ConvTranspose":
        if len(a) != len(w) or len(a) not in (3, 4):
            return None, f"{len(a) - 2}-D convolution (only 1-D and 2-D are costed)"
        if len(a) == 3:      # 1-D conv: a 2-D conv with height 1
            a, w = (a[0], a[1], 1, a[2]), (w[0], w[1], 1, w[2])
            out = (out[0], out[1], 1, out[2]) if out is not None and len(out) == 3 else None
        n_, c, h, wd = a
        groups = int(attrs.get("group", 1))
        if op == "ConvTranspose":
            # Lowered to its equivalent GEMM (col2im form): every input pixel times the
            # (C/g) x (M/g * kh * kw) weight, i.e. a 1x1 conv over the input with out_c =
            # M * kh * kw; the overlap-add of the kh*kw partial outputs is not costed
            # (assumption: it runs in the output accumulators).
            m_out = w[1] * groups
            row.update(op="conv2d", batch=n_, in_h=h, in_w=wd, in_c=c,
                       out_c=m_out * w[2] * w[3], kernel_h=1, kernel_w=1, stride_h=1,
                       stride_w=1, pad_h=0, pad_w=0, groups=groups)
        else:
            kh, kw = w[2], w[3]
            if out is None or len(out) != 4:
                return None, f"output shape of {node.output[0]!r} unknown after shape inference"
            st = list(attrs.get("strides", [1, 1]))
            st = [1, st[0]] if len(st) == 1 else st
            ph = _sym_pad(h, kh, st[0], out[2])
            pw = _sym_pad(wd, kw, st[1], out[3])
            if ph is None:
                # Dilated kernels: no padding gives this output size with the dense kernel, so
                # the trace gets the input extent the output needs, (out - 1) x stride + k
                # (MACs exact; the input tensor is counted that large).
                h, ph = (out[2] - 1) * st[0] + kh, 0
            if pw is None:
                wd, pw = (out[3] - 1) * st[1] + kw, 0
            row.update(op="conv2d", batch=n_, in_h=h, in_w=wd, in_c=c, out_c=w[0],
                       kernel_h=kh, kernel_w=kw, stride_h=st[0], stride_w=st[1], pad_h=ph,
                       pad_w=pw, groups=groups)
        if not static:
            row["weights"] = "dynamic"
        return row, None
    if op in ("Gemm", "QGemm", "FusedGemm"):
        if len(a) != 2 or len(w) != 2:
            return None, "Gemm inputs must be 2-D"
        m, k = (a[1], a[0]) if attrs.get("transA") else a
        n = w[0] if attrs.get("transB") else w[1]
        row.update(op="matmul", m=m, k=k, n=n, weights="static" if static else "dynamic")
        return row, None
    # MatMul family: numpy-style broadcasting of the batch dims.
    if op == "FusedMatMul":   # com.microsoft: MatMul with optional transposes of A and B
        if attrs.get("transA") and len(a) >= 2:
            a = a[:-2] + (a[-1], a[-2])
        if attrs.get("transB") and len(w) >= 2:
            w = w[:-2] + (w[-1], w[-2])
    if len(a) == 0 or len(w) == 0:
        return None, f"MatMul of a scalar: {a} x {w} (ONNX MatMul needs inputs of rank >= 1)"
    a2 = (1,) + a if len(a) == 1 else a
    w2 = w + (1,) if len(w) == 1 else w
    m, k, n = a2[-2], a2[-1], w2[-1]
    if w2[-2] != k:
        return None, f"inner dims differ: {a} x {w}"
    try:
        import numpy as np
        bshape = tuple(np.broadcast_shapes(a2[:-2], w2[:-2]))
    except ValueError:
        return None, f"batch dims do not broadcast: {a} x {w}"
    nb, wb = _numel(bshape), _numel(w2[:-2])
    if static:
        # A static operand: each of its wb matrices is read once and streams the rows that use it.
        row.update(op="matmul", m=m * (nb // max(wb, 1)), k=k, n=n, weights="static")
        if wb > 1:
            row["count"] = wb
    elif wb == 1:
        row.update(op="matmul", m=m * nb, k=k, n=n, weights="dynamic")
    else:
        row.update(op="matmul", batch=nb, m=m, k=k, n=n, weights="dynamic")
    return row, None


def _vector_row(g: _Graph, node, attrs, name: str) -> tuple[dict | None, str | None]:
    op = node.op_type
    vop = _VECTOR[op]
    src_name = node.input[0] if op in _INPUT_ELEMENTS else node.output[0]
    shp = g.shape(src_name)
    if shp is None:
        return None, f"shape of {src_name!r} unknown after shape inference"
    elements = _numel(shp)
    ope = _OPS_PER_ELEMENT.get(op)
    if op in ("Sum", "Mean"):
        elements *= max(len([i for i in node.input if i]) - 1, 1)
    if op in ("MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"):
        ope = float(_numel(attrs.get("kernel_shape", [1])))   # one compare/add per window tap
    if elements == 0:
        return None, "empty tensor"
    row: dict[str, Any] = {"name": name, "op": vop, "elements": elements,
                           "act_dtype": g.dtype(node.input[0]) if node.input else None}
    if ope is not None and ope != VECTOR_OPS[vop]:
        row["ops_per_element"] = ope
    return row, None


def import_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None
                ) -> OnnxImport:
    """Read an ONNX model into trace rows. Raises InputError when the file is unusable."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise InputError(src, None, message="ONNX file not found")
    model = _load(path)
    _fix_inputs(model, src, input_shapes)
    shapes, dtypes = _infer(model, src)
    g = _Graph(model, src, shapes, dtypes)
    res = OnnxImport(name=path.stem, rows=[], unsupported=[], nodes_total=len(model.graph.node))
    gemm_outputs: set[str] = set()
    for idx, node in enumerate(model.graph.node):
        op = node.op_type
        name = node.name or (node.output[0] if node.output else f"{op}_{idx}")
        inputs = [i for i in node.input if i]
        # Quantized dtype and static-ness follow data through layout ops.
        if op in _PASS_THROUGH and inputs:
            x = inputs[0]
            if op == "DequantizeLinear":
                q = _DTYPES.get(dtypes.get(x, 0))
                if q:
                    g.qdtype[node.output[0]] = q
            elif x in g.qdtype and op != "QuantizeLinear":
                g.qdtype[node.output[0]] = g.qdtype[x]
        if op in ("Constant", "ConstantOfShape", "Shape", "Size") and (
                op != "ConstantOfShape" or all(i in g.static for i in inputs)):
            g.static.update(node.output)
            res.nodes_free += 1
            res.free_names.append(name)
            continue
        if inputs and all(i in g.static for i in inputs):
            # Constant folding: computed once from weights/shapes before the model runs.
            g.static.update(node.output)
            res.nodes_free += 1
            res.free_names.append(name)
            continue
        attrs = _attrs(node)
        if op in _FREE_OPS or node.domain == "com.microsoft" and op in ("DequantizeLinear",
                                                                          "QuantizeLinear"):
            res.nodes_free += 1
            res.free_names.append(name)
            if node.output and inputs and inputs[0] in gemm_outputs and op in (
                    "QuantizeLinear", "DequantizeLinear", "Identity", "Cast") \
                    and g.consumers.get(inputs[0], 0) == 1:
                gemm_outputs.add(node.output[0])
            continue
        if op == "Gather" and node.output and dtypes.get(node.output[0]) in (6, 7):
            res.nodes_free += 1      # int32/int64 gather: index/shape bookkeeping
            res.free_names.append(name)
            continue
        if op in _GEMM_INPUTS:
            row, why = _gemm_row(g, node, attrs, name)
        elif op in _VECTOR:
            row, why = _vector_row(g, node, attrs, name)
        else:
            row, why = None, f"no cost model for op {node.domain + '.' if node.domain else ''}{op}"
        if row is None:
            res.unsupported.append((name, op, why))
            continue
        row = {k: v for k, v in row.items() if v is not None}
        try:
            layer = make_layer(row, src)
        except InputError as exc:   # e.g. a shape the trace cannot express
            res.unsupported.append((name, op, exc.detail))
            continue
        if op in _GEMM_INPUTS:
            res.macs += layer.macs * row.get("count", 1)
            gemm_outputs.update(o for o in node.output[:1])
        else:
            # Bias adds and (de)quantization scales by a static operand also run in the
            # GEMM's output pipeline (assumption: per-channel scale/bias units at the array edge).
            # The other operand must be static or at most one value per output channel.
            fusable = op in _FUSABLE or (op in ("Add", "Mul") and len(inputs) == 2
                                         and _per_channel(g, inputs[1], node.output[0]))
            if (fusable and inputs and inputs[0] in gemm_outputs
                    and g.consumers.get(inputs[0], 0) == 1):
                row["fused"] = True
                gemm_outputs.update(node.output[:1])
            res.vector_ops += layer.vector_ops
        res.rows.append(row)
        res.nodes_costed += 1
        res.costed_names.append(name)
    if not res.rows:
        why = "; ".join(f"{n} ({o}: {w})" for n, o, w in res.unsupported[:3])
        raise InputError(src, None, message="nothing importable: no node could be costed"
                         + (f" ({why})" if why else ""))
    if res.unsupported:
        res.notes.append(f"{len(res.unsupported)} node(s) not costed: "
                         + "; ".join(f"{n} ({o}: {w})" for n, o, w in res.unsupported[:5])
                         + (" ..." if len(res.unsupported) > 5 else ""))
    return res


def load_onnx_workload(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
                       **_: Any) -> Workload:
    """An ONNX model as a Workload (what ``load_workload`` does for ``.onnx`` paths)."""
    imp = import_onnx(path, input_shapes)
    src = str(path)
    layers = tuple(make_layer(r, src, None) for r in imp.rows)
    return Workload(name=imp.name, layers=layers, source=src,
                    notes=(f"imported from ONNX: {imp.coverage_line()}",) + tuple(imp.notes),
                    metadata={"onnx_coverage": imp.coverage()})

"""Reading an ONNX model for costing: load it without weight data, fix its dynamic input dims,
and infer every tensor's shape and element type (ONNX shape inference, plus the com.microsoft
ops it does not know).

:mod:`tpusim.importers.onnx` turns the shaped graph into trace rows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from .._input import check_size
from ..errors import InputError

# com.microsoft ops whose output has the shape of their first input.
_MS_SAME_SHAPE = {"QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "FastGelu",
                  "BiasGelu", "QuickGelu", "Gelu", "SkipLayerNormalization",
                  "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
                  "QLinearSoftmax"}


def _load(path: Path, sparsity: dict | None = None):
    """The model, weights dropped; ``sparsity`` (if given) gets each 2-D+ initialiser's
    :func:`.onnx_sparsity.sparsity_by_axis`."""
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
    if sparsity is not None:   # read from the weights before they are dropped
        from .onnx_sparsity import sparsity_by_axis
        for t in model.graph.initializer:
            if len(t.dims) >= 2:
                got = sparsity_by_axis(t)
                if got:
                    sparsity[t.name] = got
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
                # each dynamic dim shown by its own name (N, H, W), as <name> to fill in
                raise InputError(src, f"input {inp.name!r} dim {i}", label,
                                 f"dynamic dim; give --input-shape {inp.name}="
                                 + "x".join(str(x.dim_value) if x.HasField("dim_value")
                                            and x.dim_value > 0 else f"<{x.dim_param or 'N'}>"
                                            for x in tt.shape.dim)
                                 + " (each <..> a size, e.g. 1 for a batch), to run or "
                                 "import onnx")


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


def refuse_width(src: str, name: str, got: str, w_name: str, w: tuple, want: int,
                 how: str = "") -> None:
    """The one-line InputError for node ``name``'s input (``got``, e.g. "an input 9 wide") that
    its weights ``w_name`` of shape ``w`` do not take (``want``; ``how``: e.g. " (group 2)"):
    shape inference does not check a --input-shape against the weights, so it says to."""
    raise InputError(src, f"node {name!r}", got, f"its weights {w_name!r} {tuple(w)}{how} take "
                     f"{want}; check --input-shape")


def _attrs(node) -> dict[str, Any]:
    """A node's attributes by name, string ones as text (onnx gives them as bytes)."""
    import onnx
    vals = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in vals.items()}


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


def _numel(shape: Iterable[int]) -> int:
    return math.prod(shape)

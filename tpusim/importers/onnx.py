"""ONNX models (float, QDQ, QOperator and dynamically quantized) as tpusim trace rows.

Shapes come from ONNX shape inference after the user fixes dynamic input dims
(``input_shapes={"input": (1, 3, 224, 224)}``, the CLI's ``--input-shape``). Every node becomes
exactly one of (the op tables are in :mod:`.onnx_ops`, loading and shape inference in
:mod:`.onnx_graph`):

* a GEMM row (Conv, ConvTranspose, Gemm, MatMul and their quantized forms QLinearConv,
  QLinearMatMul, ConvInteger, MatMulInteger, com.microsoft QGemm; a two-operand Einsum as its
  batched matmul, ``onnx_einsum.py``; LSTM and GRU as their input and recurrent GEMMs and
  cell, ``onnx_rnn.py``);
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..workload import VECTOR_OPS, Workload, make_layer
from .onnx_names import Namer
from .onnx_graph import (_attrs, _fix_inputs, _infer, _load, _numel, refuse_width,  # noqa: F401
                         parse_input_shape, parse_input_shapes)
from .onnx_ops import (_CONV_OPS, _DTYPES, _FREE_OPS, _FUSABLE, _GEMM_INPUTS, _INPUT_ELEMENTS,
                       _OPS_PER_ELEMENT, _PASS_THROUGH, _VECTOR)


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
        return (f"{self.nodes_costed} nodes costed, {self.nodes_free} free (layout/shape/"
                f"constant), {len(self.unsupported)} unsupported ({self.unsupported_share:.1%} "
                f"of the compute nodes); {self.macs / 1e9:.4g} GMAC, "
                f"{self.vector_ops / 1e6:.4g} M vector ops")

    def coverage(self) -> dict[str, Any]:
        """What was costed, what cost nothing and what could not be costed, with node names
        (``summary.json`` of ``tpusim run`` records it as ``onnx_coverage``)."""
        return {"nodes_total": self.nodes_total, "nodes_costed": self.nodes_costed,
                "nodes_free": self.nodes_free, "nodes_not_costed": len(self.unsupported),
                "not_costed_share_of_compute_nodes": self.unsupported_share,
                "costed": list(self.costed_names), "free": list(self.free_names),
                "not_costed": [{"name": n, "op": o, "why": w} for n, o, w in self.unsupported]}


# ------------------------------------------------------------------------------------- costing

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
        self.sparsity: dict[str, dict] = {}   # initialiser -> axis -> density/pattern
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


def _sparsity(g: _Graph, w_name: str, axis: int) -> dict[str, Any]:
    """Density and N:M pattern of a static weight held in the file (:mod:`.onnx_sparsity`)."""
    by_axis = g.sparsity.get(w_name)
    if not by_axis:
        return {}
    return dict(by_axis.get(axis % len(by_axis), {}))


def _gemm_row(g: _Graph, node, attrs, name: str) -> tuple[dict | None, str | None]:
    op = node.op_type
    if op == "Einsum":
        from .onnx_einsum import einsum_row
        return einsum_row(g, node, attrs, name)
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
        # Conv weights are (M, C/g, kh, kw), ConvTranspose's (C, M/g, kh, kw): the input's
        # channels must be those (shape inference does not check a --input-shape against them)
        want = w[0] if op == "ConvTranspose" else w[1] * groups
        if isinstance(c, int) and isinstance(want, int) and c != want:
            refuse_width(g.src, name, f"{c} input channels", w_name, w, want, f" (group {groups})")
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
        elif op != "ConvTranspose":
            row.update(_sparsity(g, w_name, 1))
        return row, None
    if op in ("Gemm", "QGemm", "FusedGemm"):
        if len(a) != 2 or len(w) != 2:
            return None, "Gemm inputs must be 2-D"
        m, k = (a[1], a[0]) if attrs.get("transA") else a
        n, kw = (w[0], w[1]) if attrs.get("transB") else (w[1], w[0])
        if isinstance(k, int) and isinstance(kw, int) and k != kw:   # as Conv's channels
            refuse_width(g.src, name, f"an input {k} wide", w_name, w, kw)
        row.update(op="matmul", m=m, k=k, n=n, weights="static" if static else "dynamic")
        if static:
            row.update(_sparsity(g, w_name, 1 if attrs.get("transB") else 0))
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
    # a valid model's shapes agree: a mismatch comes from the --input-shape given
    if w2[-2] != k:
        raise InputError(g.src, f"node {name!r}", f"{a} x {w}",
                         "inner dims differ; check --input-shape")
    try:
        import numpy as np
        bshape = tuple(np.broadcast_shapes(a2[:-2], w2[:-2]))
    except ValueError:
        raise InputError(g.src, f"node {name!r}", f"{a} x {w}",
                         "batch dims do not broadcast; check --input-shape") from None
    nb, wb = _numel(bshape), _numel(w2[:-2])
    if static:
        # A static operand: each of its wb matrices is read once and streams the rows that use it.
        row.update(op="matmul", m=m * (nb // max(wb, 1)), k=k, n=n, weights="static")
        if len(w) >= 2:
            row.update(_sparsity(g, w_name, -2))
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
    if path.is_dir():
        raise InputError(src, None, message="is a directory; expected an .onnx file")
    if not path.is_file():
        raise InputError(src, None, message="ONNX file not found")
    sparsity: dict[str, dict] = {}
    model = _load(path, sparsity)
    _fix_inputs(model, src, input_shapes)
    shapes, dtypes = _infer(model, src)
    g = _Graph(model, src, shapes, dtypes)
    g.sparsity = sparsity
    res = OnnxImport(name=path.stem, rows=[], unsupported=[], nodes_total=len(model.graph.node))
    gemm_outputs: set[str] = set()
    uncosted: dict[str, str] = {}      # output -> the node that made it, not costed
    namer = Namer(model, g.static)      # generic node names (n0, n1 ...) -> weight names
    for idx, node in enumerate(model.graph.node):
        op = node.op_type
        name = namer.name(node, idx)
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
        if op in ("LSTM", "GRU"):     # a node of several rows (.onnx_rnn)
            from .onnx_rnn import recurrent_rows
            rows, why = recurrent_rows(g, node, attrs, name)
        else:
            if op in _GEMM_INPUTS:
                row, why = _gemm_row(g, node, attrs, name)
            elif op in _VECTOR:
                row, why = _vector_row(g, node, attrs, name)
            else:
                row, why = None, ("no cost model for op "
                                  f"{node.domain + '.' if node.domain else ''}{op}")
            rows = None if row is None else [row]
        if rows is None:
            after = next((uncosted[i] for i in inputs if i in uncosted), None)
            if after is not None and "unknown after shape inference" in why:
                why = f"its input comes from node {after!r}, which was not costed"
            res.unsupported.append((name, op, why))
            uncosted.update({o: name for o in node.output})
            continue
        rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
        try:
            layers = [make_layer(r, src) for r in rows]
        except InputError as exc:   # e.g. a shape the trace cannot express
            res.unsupported.append((name, op, exc.detail))
            uncosted.update({o: name for o in node.output})
            continue
        if op in _GEMM_INPUTS:
            gemm_outputs.update(o for o in node.output[:1])
        elif op in _VECTOR:
            # Bias adds and (de)quantization scales by a static operand also run in the
            # GEMM's output pipeline (assumption: per-channel scale/bias units at the array edge).
            # The other operand must be static or at most one value per output channel.
            fusable = op in _FUSABLE or (op in ("Add", "Mul") and len(inputs) == 2
                                         and _per_channel(g, inputs[1], node.output[0]))
            if (fusable and inputs and inputs[0] in gemm_outputs
                    and g.consumers.get(inputs[0], 0) == 1):
                rows[0]["fused"] = True
                gemm_outputs.update(node.output[:1])
        for row, layer in zip(rows, layers):
            if layer.kind == "gemm":
                res.macs += layer.macs * row.get("count", 1)
            else:
                res.vector_ops += layer.vector_ops
            row["name"] = namer.unique(row["name"])
            res.rows.append(row)
        res.nodes_costed += 1
        res.costed_names.append(rows[0]["name"] if len(rows) == 1 else name)
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

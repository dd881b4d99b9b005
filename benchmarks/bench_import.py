"""Import speed of the ONNX importer (issue targets: ResNet-50 < 2 s, a Llama-3-8B graph < 5 s).

ResNet-50: the topology the onnx wheel ships (backend/test/data/light/light_resnet50.onnx), as
shipped (weights are ConstantOfShape nodes) and with its 25.5 M weights embedded (~98 MiB).
Llama-3-8B: a graph-only model built here with onnx.helper in the shape torch exports it
(decomposed RMSNorm, RoPE with Mul/Add, GQA K/V repeated by Expand, 32 blocks, LM head: 289
MatMuls). Its weights are initializers whose data lives in an external file that is never
written: the importer must read only their dims (load_external_data=False).

Run: python benchmarks/bench_import.py [--seq 2048] [--repeat 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import onnx
from onnx import TensorProto as TP
from onnx import helper as oh

from tpusim.importers.llm import get_preset, llm_macs
from tpusim.importers.onnx import import_onnx

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _external(name: str, dims: list[int]) -> onnx.TensorProto:
    """A float initializer whose data would be in weights.bin (not written)."""
    t = onnx.TensorProto(name=name, data_type=TP.FLOAT, dims=dims)
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"),
                 ("length", str(4 * int(__import__("math").prod(dims))))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def _i64(name: str, vals: list[int]) -> onnx.TensorProto:
    return oh.make_tensor(name, TP.INT64, [len(vals)], vals)


def llama_graph(path: Path, seq: int) -> Path:
    cfg = get_preset("llama3_8b")
    h, hq, hkv, hd, f = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.ffn
    nodes, inits = [], [
        _i64("shp_q", [1, seq, hq, hd]), _i64("shp_kv", [1, seq, hkv, hd]),
        _i64("shp_exp", [1, hkv, hq // hkv, seq, hd]), _i64("shp_rep", [1, hq, seq, hd]),
        _i64("shp_o", [1, seq, h]), _i64("axes_m1", [-1]), _i64("axes_2", [2]),
        oh.make_tensor("two", TP.FLOAT, [], [2.0]), oh.make_tensor("eps", TP.FLOAT, [], [1e-5]),
        oh.make_tensor("scale", TP.FLOAT, [], [hd ** -0.5]),
        _external("cos", [seq, hd]), _external("sin", [seq, hd]),
        _external("embed", [cfg.vocab, h]), _external("lm_head", [h, cfg.vocab]),
    ]
    mk = oh.make_node

    def rms(x: str, p: str) -> str:
        inits.append(_external(f"{p}.w", [h]))
        nodes.extend([mk("Pow", [x, "two"], [f"{p}.sq"]),
                      mk("ReduceMean", [f"{p}.sq", "axes_m1"], [f"{p}.ms"]),
                      mk("Add", [f"{p}.ms", "eps"], [f"{p}.mse"]),
                      mk("Sqrt", [f"{p}.mse"], [f"{p}.rt"]),
                      mk("Div", [x, f"{p}.rt"], [f"{p}.n"]),
                      mk("Mul", [f"{p}.n", f"{p}.w"], [f"{p}.out"])])
        return f"{p}.out"

    def linear(x: str, p: str, k: int, n: int) -> str:
        inits.append(_external(f"{p}.w", [k, n]))
        nodes.append(mk("MatMul", [x, f"{p}.w"], [f"{p}.y"], name=p))
        return f"{p}.y"

    def rope(x: str, p: str) -> str:
        nodes.extend([mk("Mul", [x, "cos"], [f"{p}.c"]), mk("Mul", [x, "sin"], [f"{p}.s"]),
                      mk("Add", [f"{p}.c", f"{p}.s"], [f"{p}.r"])])
        return f"{p}.r"

    nodes.append(mk("Gather", ["embed", "ids"], ["x0"], name="embed"))
    x = "x0"
    for i in range(cfg.layers):
        p = f"l{i}"
        n = rms(x, f"{p}.attn_norm")
        q = linear(n, f"{p}.q", h, hq * hd)
        k = linear(n, f"{p}.k", h, hkv * hd)
        v = linear(n, f"{p}.v", h, hkv * hd)
        nodes.extend([mk("Reshape", [q, "shp_q"], [f"{p}.q4"]),
                      mk("Transpose", [f"{p}.q4"], [f"{p}.qt"], perm=[0, 2, 1, 3]),
                      mk("Reshape", [k, "shp_kv"], [f"{p}.k4"]),
                      mk("Transpose", [f"{p}.k4"], [f"{p}.kt"], perm=[0, 2, 1, 3]),
                      mk("Reshape", [v, "shp_kv"], [f"{p}.v4"]),
                      mk("Transpose", [f"{p}.v4"], [f"{p}.vt"], perm=[0, 2, 1, 3])])
        qr, kr = rope(f"{p}.qt", f"{p}.rq"), rope(f"{p}.kt", f"{p}.rk")
        for t, src in (("k", kr), ("v", f"{p}.vt")):   # GQA repeat_kv as torch exports it
            nodes.extend([mk("Unsqueeze", [src, "axes_2"], [f"{p}.{t}u"]),
                          mk("Expand", [f"{p}.{t}u", "shp_exp"], [f"{p}.{t}e"]),
                          mk("Reshape", [f"{p}.{t}e", "shp_rep"], [f"{p}.{t}r"])])
        nodes.extend([
            mk("Transpose", [f"{p}.kr"], [f"{p}.kT"], perm=[0, 1, 3, 2]),
            mk("MatMul", [qr, f"{p}.kT"], [f"{p}.s"], name=f"{p}.qk"),
            mk("Mul", [f"{p}.s", "scale"], [f"{p}.ss"]),
            mk("Softmax", [f"{p}.ss"], [f"{p}.p"], axis=-1),
            mk("MatMul", [f"{p}.p", f"{p}.vr"], [f"{p}.a"], name=f"{p}.av"),
            mk("Transpose", [f"{p}.a"], [f"{p}.at"], perm=[0, 2, 1, 3]),
            mk("Reshape", [f"{p}.at", "shp_o"], [f"{p}.a2"])])
        o = linear(f"{p}.a2", f"{p}.o", hq * hd, h)
        nodes.append(mk("Add", [x, o], [f"{p}.r1"]))
        n2 = rms(f"{p}.r1", f"{p}.ffn_norm")
        g = linear(n2, f"{p}.gate", h, f)
        u = linear(n2, f"{p}.up", h, f)
        nodes.extend([mk("Sigmoid", [g], [f"{p}.sg"]), mk("Mul", [g, f"{p}.sg"], [f"{p}.silu"]),
                      mk("Mul", [f"{p}.silu", u], [f"{p}.gu"])])
        d = linear(f"{p}.gu", f"{p}.down", f, h)
        nodes.append(mk("Add", [f"{p}.r1", d], [f"{p}.r2"]))
        x = f"{p}.r2"
    n = rms(x, "final_norm")
    nodes.append(mk("MatMul", [n, "lm_head"], ["logits"], name="lm_head"))
    graph = oh.make_graph(nodes, "llama3_8b", [oh.make_tensor_value_info("ids", TP.INT64,
                                                                          ["batch", "seq"])],
                          [oh.make_tensor_value_info("logits", TP.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def resnet50_with_weights(path: Path) -> Path:
    """The light ResNet-50 with its ConstantOfShape weights written out as real initializers
    (zeros), the size of a real checkpoint."""
    import numpy as np
    from onnx import numpy_helper as nh
    m = onnx.load(str(LIGHT / "light_resnet50.onnx"))
    inits = {t.name: t for t in m.graph.initializer}
    keep, new = [], []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = nh.to_array(inits[n.input[0]])
            new.append(nh.from_array(np.zeros(shape, np.float32), n.output[0]))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new)
    onnx.save(m, str(path))
    return path


def _time(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t, imp = _time(lambda: import_onnx(LIGHT / "light_resnet50.onnx"), args.repeat)
    print(f"resnet50 (light, {imp.nodes_total} nodes): {t:.3f} s, {imp.macs / 1e9:.4f} GMAC "
          "(target < 2 s)")
    with tempfile.TemporaryDirectory() as d:
        full = resnet50_with_weights(Path(d) / "r50.onnx")
        t, imp = _time(lambda: import_onnx(full), args.repeat)
        print(f"resnet50 with embedded fp32 weights ({full.stat().st_size / 2**20:.0f} MiB): "
              f"{t:.3f} s, {imp.macs / 1e9:.4f} GMAC (target < 2 s)")
        path = llama_graph(Path(d) / "llama3_8b.onnx", args.seq)
        size = path.stat().st_size
        t, imp = _time(lambda: import_onnx(path, {"ids": (1, args.seq)}), args.repeat)
    mm = sum(1 for r in imp.rows if r["op"] == "matmul")
    want = llm_macs(get_preset("llama3_8b"), 1, args.seq, args.seq)
    print(f"llama3_8b graph ({imp.nodes_total} nodes, {mm} MatMuls, {size / 1024:.0f} KiB file, "
          f"seq {args.seq}): {t:.3f} s, {imp.macs / 1e12:.4f} TMAC (builder: {want / 1e12:.4f}), "
          f"{len(imp.unsupported)} unsupported (target < 5 s)")


if __name__ == "__main__":
    main()

"""Regenerate examples/tiny_cnn.onnx: a five-layer float CNN for the README's ONNX examples.

conv 3x3/2 (3 -> 16) + ReLU, conv 3x3/2 (16 -> 32) + ReLU, global average pool, flatten,
fully connected 32 -> 10, softmax. The input ``input`` is [N, 3, H, W] with N, H and W left open,
so ``--input-shape input=1x3x224x224`` (or any other size) fixes them, as for a real model.
Weights are seeded random numbers: only the shapes matter to tpusim.

    python examples/make_tiny_cnn.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent / "tiny_cnn.onnx"


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name)

    inits = [weight("conv1.w", 16, 3, 3, 3), weight("conv1.b", 16),
             weight("conv2.w", 32, 16, 3, 3), weight("conv2.b", 32),
             weight("fc.w", 10, 32), weight("fc.b", 10)]
    conv = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="tpusim examples/make_tiny_cnn.py",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8   # readable by onnx >= 1.10 and onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model


def main() -> None:
    OUT.write_bytes(build().SerializeToString())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

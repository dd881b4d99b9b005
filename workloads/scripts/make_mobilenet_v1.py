"""Regenerate workloads/mobilenet_v1.csv from the MobileNet paper's Table 1.

Source: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv:1704.04861 (2017), Table 1 (body architecture: type/stride, filter shape,
input size), width multiplier 1.0, resolution 224x224x3, 1000 classes. The paper gives 569 million
mult-adds (Table 8, 1.0 MobileNet-224); the count here is 568.7 MMAC. Every conv is followed by
BatchNorm and ReLU (paper Fig. 3), written as fused vector rows that run in the conv's output
pipeline. Depthwise convs have groups == in_c. Table 1 prints the second-to-last depthwise conv
as "s2" on a 7x7 input with a 7x7 output: that is a misprint for stride 1 (the output size in the
table and the 569M total need stride 1). Then 7x7 average pool, FC 1024 -> 1000, softmax.
3x3 convs pad 1 (k // 2). int8 weights and activations.

Run: python workloads/scripts/make_mobilenet_v1.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _layers import DT, conv  # noqa: E402  (shared row builders)

OUT = Path(__file__).resolve().parent.parent / "mobilenet_v1.csv"
# Table 1 after the first conv: (depthwise stride, pointwise output channels) per dw/pw pair.
PAIRS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
         (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
         (2, 1024), (1, 1024)]
PAPER_MACS = 569e6  # Howard et al. 2017, Table 1/8: 569 million mult-adds




def bn_relu(name, size, c):
    """BatchNorm + ReLU after a conv (paper Fig. 3), both in the conv's output pipeline."""
    n = size * size * c
    return [{"name": f"{name}_bn", "op": "batchnorm", "elements": n, "act_dtype": "int8",
             "fused": True},
            {"name": f"{name}_relu", "op": "relu", "elements": n, "act_dtype": "int8",
             "fused": True}]


def rows() -> list[dict]:
    r, size = conv("conv1", 224, 3, 32, 3, 2)
    out = [r, *bn_relu("conv1", size, 32)]
    cin = 32
    for i, (s, cout) in enumerate(PAIRS, start=1):
        r, size = conv(f"dw{i}", size, cin, cin, 3, s, groups=cin)
        out += [r, *bn_relu(f"dw{i}", size, cin)]
        r, _ = conv(f"pw{i}", size, cin, cout, 1, 1)
        out += [r, *bn_relu(f"pw{i}", size, cout)]
        cin = cout
    out.append({"name": "avgpool", "op": "globalpool", "elements": size * size * cin,
                "act_dtype": "int8"})
    out.append({"name": "fc", "op": "matmul", "m": 1, "k": cin, "n": 1000, "weights": "static",
                **DT})
    out.append({"name": "softmax", "op": "softmax", "elements": 1000, "act_dtype": "int8"})
    return out


def main() -> None:
    rs = rows()
    macs = sum(make_layer(r).macs * r.get("count", 1) for r in rs)
    assert abs(macs / PAPER_MACS - 1) < 0.01, macs
    write_trace(rs, OUT, comments=[
        "shapes: Howard et al. 2017 (MobileNets) Table 1, width 1.0, 224x224, batch 1; "
        "int8; regenerate: python workloads/scripts/make_mobilenet_v1.py",
        f"{macs / 1e6:.1f} MMAC (paper: 569 million mult-adds); BN + ReLU fused after each "
        "conv; Table 1's 's2' on the 7x7 depthwise conv read as stride 1 (misprint)",
    ])
    print(f"wrote {OUT}: {len(rs)} rows, {macs / 1e6:.2f} MMAC")


if __name__ == "__main__":
    main()

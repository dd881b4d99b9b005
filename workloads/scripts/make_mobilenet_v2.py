"""Regenerate workloads/mobilenet_v2.csv from the MobileNetV2 paper's Table 2.

Source: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
Table 2 (each row: input, operator, expansion t, output channels c, repeats n, stride s), width
multiplier 1.0, input 224x224x3, 1000 classes. The paper gives 300M multiply-adds (Table 4); the
count here is 300.8 MMAC. A bottleneck is: 1x1 expansion conv to t x in channels (absent when
t == 1) + ReLU6, 3x3 depthwise conv with stride s + ReLU6, 1x1 linear projection to c channels,
and a residual add when s == 1 and in == c. BatchNorm is folded into the convs (inference);
ReLU6 runs in the conv's output pipeline (fused). int8 weights and activations.

Run: python workloads/scripts/make_mobilenet_v2.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _layers import DT, conv  # noqa: E402  (shared row builders)

OUT = Path(__file__).resolve().parent.parent / "mobilenet_v2.csv"
# Table 2: (t, c, n, s) per bottleneck sequence.
BOTTLENECKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]




def relu6(name, size, c):
    return {"name": name, "op": "relu6", "elements": size * size * c, "act_dtype": "int8",
            "fused": True}


def rows() -> list[dict]:
    out = []
    r, size = conv("conv1", 224, 3, 32, 3, 2)
    out += [r, relu6("conv1_relu6", size, 32)]
    cin = 32
    for bi, (t, c, n, s) in enumerate(BOTTLENECKS, start=1):
        for rep in range(n):
            stride = s if rep == 0 else 1
            p = f"block{bi}_{rep + 1}"
            hid = cin * t
            if t != 1:
                r, _ = conv(f"{p}_expand", size, cin, hid, 1, 1)
                out += [r, relu6(f"{p}_expand_relu6", size, hid)]
            r, new = conv(f"{p}_dw", size, hid, hid, 3, stride, groups=hid)
            out += [r, relu6(f"{p}_dw_relu6", new, hid)]
            r, _ = conv(f"{p}_project", new, hid, c, 1, 1)
            out.append(r)
            if stride == 1 and cin == c:
                out.append({"name": f"{p}_add", "op": "add", "elements": new * new * c,
                            "act_dtype": "int8"})
            size, cin = new, c
    r, _ = conv("conv_last", size, cin, 1280, 1, 1)
    out += [r, relu6("conv_last_relu6", size, 1280)]
    out.append({"name": "avgpool", "op": "globalpool", "elements": size * size * 1280,
                "act_dtype": "int8"})
    out.append({"name": "classifier", "op": "matmul", "m": 1, "k": 1280, "n": 1000,
                "weights": "static", **DT})
    return out


def main() -> None:
    rs = rows()
    macs = sum(make_layer(r).macs * r.get("count", 1) for r in rs)
    write_trace(rs, OUT, comments=[
        "shapes: Sandler et al. 2018 (MobileNetV2) Table 2, width 1.0, 224x224, batch 1; "
        "int8; regenerate: python workloads/scripts/make_mobilenet_v2.py",
        f"{macs / 1e6:.1f} MMAC (paper: 300M multiply-adds)",
    ])
    print(f"wrote {OUT}: {len(rs)} rows, {macs / 1e6:.2f} MMAC")


if __name__ == "__main__":
    main()

"""Regenerate workloads/vgg16.csv from the VGG paper's Table 1, configuration D (VGG-16).

Source: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, Table 1 column D: 13 conv3 layers (3x3, stride 1, padding 1, each
followed by ReLU) in five stages of 64, 128, 256, 512, 512 channels (2, 2, 3, 3, 3 convs), a 2x2
stride-2 max-pool after each stage, then FC-4096, FC-4096 (each + ReLU), FC-1000 and soft-max;
input 224x224x3, batch 1. No BatchNorm in VGG. ReLU runs in the conv/FC output pipeline (fused
vector rows). A max-pool row has the output element count with 4 ops per element (the 2x2 window),
as the ONNX importer writes pools. int8 weights and activations.

Closed form of the MACs (3x3 conv: 9 x H^2 x C_in x C_out at output size H):
  convs = 9 x (224^2 (3*64 + 64*64) + 112^2 (64*128 + 128*128) + 56^2 (128*256 + 2*256^2)
               + 28^2 (256*512 + 2*512^2) + 14^2 (3*512^2))        = 15,346,630,656
  FCs   = 25088*4096 + 4096*4096 + 4096*1000                       =    123,633,664
  total                                                            = 15,470,264,320 (15.47 GMAC,
  the usual "~15.5 G multiply-adds"; the paper states parameters, 138M for D in Table 2, not MACs)

Run: python workloads/scripts/make_vgg16.py
"""
from __future__ import annotations

from pathlib import Path

from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

OUT = Path(__file__).resolve().parent.parent / "vgg16.csv"
# Table 1, configuration D: (output channels, number of conv3 layers) per stage.
STAGES = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
FCS = [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)]
DT = {"weight_dtype": "int8", "act_dtype": "int8"}
CLOSED_FORM_MACS = 15_470_264_320  # see the module docstring


def relu(name, elements):
    return {"name": f"{name}_relu", "op": "relu", "elements": elements, "act_dtype": "int8",
            "fused": True}


def rows() -> list[dict]:
    out, size, cin = [], 224, 3
    for si, (cout, n) in enumerate(STAGES, start=1):
        for li in range(1, n + 1):
            name = f"conv{si}_{li}"
            out.append({"name": name, "op": "conv2d", "batch": 1, "in_h": size, "in_w": size,
                        "in_c": cin, "out_c": cout, "kernel_h": 3, "kernel_w": 3, "stride": 1,
                        "pad_h": 1, "pad_w": 1, "groups": 1, **DT})
            out.append(relu(name, size * size * cout))
            cin = cout
        size //= 2
        out.append({"name": f"pool{si}", "op": "maxpool", "elements": size * size * cin,
                    "ops_per_element": 4, "act_dtype": "int8"})
    k = size * size * cin  # 7 x 7 x 512 = 25088, flattened
    for name, n in FCS:
        out.append({"name": name, "op": "matmul", "m": 1, "k": k, "n": n, "weights": "static",
                    **DT})
        if name != "fc8":
            out.append(relu(name, n))
        k = n
    out.append({"name": "softmax", "op": "softmax", "elements": k, "act_dtype": "int8"})
    return out


def main() -> None:
    rs = rows()
    macs = sum(make_layer(r).macs * r.get("count", 1) for r in rs)
    assert macs == CLOSED_FORM_MACS, macs
    write_trace(rs, OUT, comments=[
        "shapes: Simonyan & Zisserman 2015 (VGG) Table 1 configuration D, 224x224, batch 1; "
        "int8; regenerate: python workloads/scripts/make_vgg16.py",
        f"{macs / 1e9:.4f} GMAC = closed form 15,470,264,320 (13 conv3 pad 1 + 3 FC); "
        "ReLU fused; 5 maxpool 2x2/2",
    ])
    print(f"wrote {OUT}: {len(rs)} rows, {macs / 1e9:.4f} GMAC")


if __name__ == "__main__":
    main()

"""Regenerate workloads/resnet50.csv from the ResNet-50 topology the `onnx` wheel ships.

Shapes: onnx/backend/test/data/light/light_resnet50.onnx (the ONNX model zoo ResNet-50 v1 graph,
weights replaced by constants), imported with tpusim's ONNX importer at 1x3x224x224. Dtypes are
set to int8 (weights and activations), as after post-training quantization, since tpusim's
default run is int8. Total: 4.089 GMAC, the figure torchvision's model table lists for its
ResNet-50 (4.09 "GFLOPS", counted as multiply-adds). This graph downsamples in the 3x3 conv of
each stage's first block, as torchvision does; He et al. 2016 (Table 1: 3.8e9) stride the 1x1.

Run: python workloads/scripts/make_resnet50.py
"""
from __future__ import annotations

from pathlib import Path

import onnx

from tpusim.importers.onnx import import_onnx
from tpusim.importers.trace_csv import write_trace

OUT = Path(__file__).resolve().parent.parent / "resnet50.csv"
MODEL = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"


def main() -> None:
    imp = import_onnx(MODEL, {"gpu_0/data_0": (1, 3, 224, 224)})
    assert not imp.unsupported, imp.unsupported
    rows = []
    for r in imp.rows:
        r = dict(r, act_dtype="int8")
        if "weight_dtype" in r:
            r["weight_dtype"] = "int8"
        rows.append(r)
    write_trace(rows, OUT, comments=[
        f"shapes: onnx {onnx.__version__} wheel, backend/test/data/light/light_resnet50.onnx "
        "(ONNX model zoo ResNet-50 v1), batch 1, 224x224; int8 weights and activations; "
        "regenerate: python workloads/scripts/make_resnet50.py",
        f"{imp.macs / 1e9:.4f} GMAC; {imp.coverage_line()}",
    ])
    print(f"wrote {OUT}: {len(rows)} rows, {imp.macs / 1e9:.4f} GMAC")


if __name__ == "__main__":
    main()

"""Regenerate the zoo traces imported from the ImageNet topologies the `onnx` wheel ships.

Shapes: onnx/backend/test/data/light/*.onnx (ONNX model zoo graphs, weights replaced by
constants), imported with tpusim's ONNX importer. Dtypes are set to int8 (weights and
activations), as after post-training quantization, since tpusim's default run is int8.

* resnet50.csv: light_resnet50.onnx at 1x3x224x224: 4.089 GMAC, the figure torchvision's model
  table lists for its ResNet-50 (4.09 "GFLOPS", counted as multiply-adds). This graph downsamples
  in the 3x3 conv of each stage's first block, as torchvision does; He et al. 2016 (Table 1:
  3.8e9) stride the 1x1.
* resnet50_299.csv: the same graph at 1x3x299x299, the resolution of Coral's Edge TPU benchmark.
* inception_v1.csv: light_inception_v1.onnx (GoogLeNet) at 1x3x224x224.
* densenet121.csv, squeezenet.csv, vgg19.csv: light_densenet121.onnx, light_squeezenet.onnx
  (0.35 GMAC: SqueezeNet 1.1's size) and light_vgg19.onnx at 1x3x224x224, three more models of
  Coral's Edge TPU benchmark table, used only as held-out checks.

Run: python workloads/scripts/make_resnet50.py
"""
from __future__ import annotations

from pathlib import Path

import onnx

from tpusim.importers.onnx import import_onnx
from tpusim.importers.trace_csv import write_trace

ZOO = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"
# output name -> (model file, input name, resolution)
TRACES = {
    "resnet50": ("light_resnet50.onnx", "gpu_0/data_0", 224),
    "resnet50_299": ("light_resnet50.onnx", "gpu_0/data_0", 299),
    "inception_v1": ("light_inception_v1.onnx", "data_0", 224),
    "densenet121": ("light_densenet121.onnx", "data_0", 224),
    "squeezenet": ("light_squeezenet.onnx", "data_0", 224),
    "vgg19": ("light_vgg19.onnx", "data_0", 224),
}


def build(name: str) -> Path:
    model, inp, res = TRACES[name]
    imp = import_onnx(LIGHT / model, {inp: (1, 3, res, res)})
    assert not imp.unsupported, imp.unsupported
    rows = []
    for r in imp.rows:
        r = dict(r, act_dtype="int8")
        if "weight_dtype" in r:
            r["weight_dtype"] = "int8"
        rows.append(r)
    out = ZOO / f"{name}.csv"
    write_trace(rows, out, comments=[
        f"shapes: onnx {onnx.__version__} wheel, backend/test/data/light/{model} "
        f"(ONNX model zoo), batch 1, {res}x{res}; int8 weights and activations; "
        "regenerate: python workloads/scripts/make_resnet50.py",
        f"{imp.macs / 1e9:.4f} GMAC; {imp.coverage_line()}",
    ])
    print(f"wrote {out}: {len(rows)} rows, {imp.macs / 1e9:.4f} GMAC")
    return out


def main() -> None:
    for name in TRACES:
        build(name)


if __name__ == "__main__":
    main()

"""Regenerate workloads/tpu_v1/*.csv: stand-ins for the six TPUv1 production apps.

Source: Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA
2017, Table 1 (layers, weights, MACs per weight byte, batch; arxiv.org/abs/1704.04760). The
real layer shapes are not public; every stand-in matches Table 1's layer
counts, total weights, batch and MACs per weight byte, and the header comments of each CSV say
how (the totals there are computed from the rows written, not typed in). All int8.

Conventions shared by all six:
- A FC layer at batch B is a matmul with m = B rows through a static k x n weight matrix, so its
  MACs per weight byte is B (Table 1's column equals the batch for the MLPs and LSTMs).
- A conv's MACs per weight byte is batch x output pixels, whatever its kernel or channels.
- Repeated identical layers are one row with ``count``: tpusim runs the instances back to back,
  each reading the previous one's output on chip when it fits, so only the first input and the
  last output of the row follow its neighbours. The LSTMs put their vector ops before the last
  FC layer.

Run: python workloads/scripts/make_tpu_v1.py
     python workloads/scripts/make_tpu_v1.py --cnn1-sensitivity  (TOPS range of other CNN1
     stand-ins that meet Table 1 as well, on tpu_v1)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

OUT = Path(__file__).resolve().parent.parent / "tpu_v1"
SOURCE = ("Jouppi et al., 'In-Datacenter Performance Analysis of a Tensor Processing Unit', "
          "ISCA 2017, Table 1; real layer shapes are not public")
I8 = {"weight_dtype": "int8", "act_dtype": "int8"}


def fc(name: str, batch: int, k: int, n: int, count: int = 1) -> dict[str, Any]:
    return {"name": name, "op": "matmul", "count": count, "m": batch, "k": k, "n": n, **I8}


def conv(name: str, batch: int, hw: int, in_c: int, out_c: int, kernel: int = 3,
         stride: int = 1, count: int = 1) -> dict[str, Any]:
    return {"name": name, "op": "conv2d", "count": count, "batch": batch, "in_h": hw,
            "in_w": hw, "in_c": in_c, "out_c": out_c, "kernel_h": kernel, "kernel_w": kernel,
            "stride": stride, "padding": "same", **I8}


def vector(name: str, op: str, elements: int, count: int = 1, ops_per_element: float | None = None,
           fused: bool = False) -> dict[str, Any]:
    row = {"name": name, "op": op, "count": count, "elements": elements, "fused": fused,
           "act_dtype": "int8"}
    if ops_per_element is not None:
        row["ops_per_element"] = ops_per_element
    return row


def chain(make, name: str, total: int, **kw) -> list[dict[str, Any]]:
    """``total`` identical layers as one row with ``count``: tpusim runs its instances back to
    back, each reading the previous one's output on chip when it fits."""
    return [make(name, count=total, **kw)]


def totals(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Weights, MACs and layer counts of the rows, from tpusim's own lowering."""
    w = macs = 0
    gemm_layers = {"matmul": 0, "conv2d": 0}
    vec = 0
    for r in rows:
        layer = make_layer({k: v for k, v in r.items() if v not in (None, "")})
        if layer.kind == "gemm":
            w += layer.weight_elements * layer.count
            macs += layer.macs * layer.count
            gemm_layers[layer.op] += layer.count
        else:
            vec += layer.count
    return {"weights": w, "macs": macs, "fc": gemm_layers["matmul"],
            "conv": gemm_layers["conv2d"], "vector": vec, "ratio": macs / w}


def summary_line(t: dict[str, float], batch: int, table: str) -> str:
    return (f"this trace: {t['conv']} conv + {t['fc']} FC + {t['vector']} vector/pool layers, "
            f"{t['weights'] / 1e6:.3f} M int8 weights, {t['macs'] / 1e9:.2f} GMAC per batch of "
            f"{batch}, {t['ratio']:.0f} MACs per weight byte (Table 1: {table})")


# ---------------------------------------------------------------------------------- the apps

def mlp(batch: int, layers: int, weights: float, name: str, table: str):
    side = round(math.sqrt(weights / layers))
    rows = chain(fc, "fc", layers, batch=batch, k=side, n=side)
    return rows, [
        f"{name} stand-in. Source: {SOURCE}.",
        f"Table 1: {table}. Derivation: {layers} square FC layers holding {weights / 1e6:g}M/"
        f"{layers} weights each -> {side}x{side} (sqrt({weights / layers:.0f})), batch {batch} "
        f"rows (m = {batch}), so MACs per weight byte = batch = {batch}. ReLU runs in the "
        "activation pipeline (not a layer in Table 1), so no vector rows.",
    ]


def lstm(batch: int, fcs: int, vecs: int, weights: float, name: str, table: str):
    side = round(math.sqrt(weights / fcs))
    # The vector ops go between the first FC layers and the last one: their inputs and outputs
    # stay in the Unified Buffer either way, so where they sit in the chain does not change time.
    rows = (chain(fc, f"fc_1_{fcs - 1}", fcs - 1, batch=batch, k=side, n=side)
            + [vector("cell_ops", "elementwise", batch * side, count=vecs)]
            + chain(fc, f"fc_{fcs}", 1, batch=batch, k=side, n=side))
    return rows, [
        f"{name} stand-in. Source: {SOURCE}.",
        f"Table 1: {table}. Derivation: {fcs} square FC layers holding {weights / 1e6:g}M/{fcs} "
        f"weights each -> {side}x{side}, batch {batch} rows (m = {batch}: MACs per weight byte "
        f"= {batch}); {vecs} vector ops (LSTM gate nonlinearities and products) on batch x "
        f"hidden = {batch}x{side} elements each. Assumption: one op per element (the real mix "
        "of sigmoid/tanh/multiply/add is not public).",
    ]


def cnn0():
    batch, hw, c = 8, 19, 236
    rows = chain(conv, "conv", 16, batch=batch, hw=hw, in_c=c, out_c=c)
    return rows, [
        f"CNN0 stand-in. Source: {SOURCE}.",
        "Table 1: 16 conv, 8M weights, 2888 MACs per weight byte, batch 8. Derivation: MACs per "
        "weight byte of a conv = batch x output pixels, so 2888 / 8 = 361 = 19x19 outputs; 16 "
        "identical 3x3 'same' convs (stride 1) of 8M/16 = 500K weights -> 9 x C^2 = 500K -> "
        "C = 236 channels in and out.",
    ]


# CNN1's conv stack: (output side, channels, convs) per stage, 3x3 'same' convs, after a stride-2
# 3x3 stem conv 3 -> 32 channels on a 192x192 image. Chosen so that the whole net matches Table 1
# (72 conv, 100M weights, 1750 MACs/weight byte at batch 32) with power-of-two widths and shallow
# early stages (Jouppi 2017 attributes CNN1's low utilization partly to shallow feature depths).
CNN1_STAGES = ((96, 32, 14), (48, 64, 18), (24, 128, 26), (12, 256, 5), (6, 256, 8))
# stride-1 3x3 max pools (Inception-style pool branches) per stage; a 2x2 stride-2 pool ends
# every stage but the last: 9 + 4 = 13 pools.
CNN1_POOL3 = (2, 2, 3, 1, 1)


def cnn1():
    batch = 32
    rows = [conv("stem", batch, 192, 3, 32, stride=2)]
    prev = 32
    for s, ((hw, c, n), pools) in enumerate(zip(CNN1_STAGES, CNN1_POOL3), start=1):
        left = n
        if prev != c:  # the first conv of the stage widens the channels
            rows.append(conv(f"s{s}_conv_1", batch, hw, prev, c))
            left -= 1
        if left:
            rows.append(conv(f"s{s}_conv", batch, hw, c, c, count=left))
        # Pooling runs in the TPU's activation pipeline on dedicated hardware (Jouppi 2017,
        # Section 2): fused, no memory pass of its own.
        rows.append(vector(f"s{s}_pool3x3", "maxpool", batch * hw * hw * c, count=pools,
                           ops_per_element=9, fused=True))
        if s < len(CNN1_STAGES):
            rows.append(vector(f"s{s}_pool2x2", "maxpool", batch * hw * hw * c, fused=True))
        prev = c
    flat = CNN1_STAGES[-1][0] ** 2 * CNN1_STAGES[-1][1]
    rows += [fc("fc1", batch, flat, 4096), fc("fc2_4", batch, 4096, 4096, count=3)]
    stages = ", ".join(f"{n} x {hw}x{hw}x{c}" for hw, c, n in CNN1_STAGES)
    return rows, [
        f"CNN1 stand-in. Source: {SOURCE}.",
        "Table 1: 72 conv + 4 FC + 13 pool, 100M weights, 1750 MACs per weight byte, batch 32, "
        "most weights in the FC layers. Derivation: 4 FC at batch 32 (9216->4096, 3 x "
        "4096->4096 = 88.1M weights, 32 MACs/weight byte); the convs carry the rest: "
        "11.9M weights and (1750 x 100M - 32 x 88.1M) / 32 = 5.38 GMAC per image, met by a "
        f"192x192x3 image, a stride-2 3x3 stem conv to 32 channels, then 3x3 'same' convs in "
        f"stages ({stages}; widths double, early stages shallow).",
        "Pools: 9 stride-1 3x3 max pools (9 ops per element) and 4 stride-2 2x2 max pools (1 op "
        "per input element), all fused: TPUv1 pools in the activation pipeline. Assumption: "
        "the split of MACs between shallow and deep stages is ours; Table 1 does not fix it.",
    ]


APPS = {
    "mlp0": lambda: mlp(200, 5, 20e6, "MLP0", "5 FC, 20M weights, 200 MACs per weight byte, "
                        "batch 200"),
    "mlp1": lambda: mlp(168, 4, 5e6, "MLP1", "4 FC, 5M weights, 168 MACs per weight byte, "
                        "batch 168"),
    "lstm0": lambda: lstm(64, 24, 34, 52e6, "LSTM0", "24 FC + 34 vector, 52M weights, 64 MACs "
                          "per weight byte, batch 64"),
    "lstm1": lambda: lstm(96, 37, 19, 34e6, "LSTM1", "37 FC + 19 vector, 34M weights, 96 MACs "
                          "per weight byte, batch 96"),
    "cnn0": cnn0,
    "cnn1": cnn1,
}
BATCH = {"mlp0": 200, "mlp1": 168, "lstm0": 64, "lstm1": 96, "cnn0": 8, "cnn1": 32}
TABLE = {"mlp0": "5 FC, 20M, 200", "mlp1": "4 FC, 5M, 168", "lstm0": "24 FC + 34 vector, 52M, 64",
         "lstm1": "37 FC + 19 vector, 34M, 96", "cnn0": "16 conv, 8M, 2888",
         "cnn1": "72 conv + 4 FC + 13 pool, 100M, 1750"}


def build(app: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and header comments of one app's trace (``app`` is a key of ``APPS``)."""
    rows, comments = APPS[app]()
    comments.append(summary_line(totals(rows), BATCH[app], TABLE[app]))
    comments.append("int8 weights and activations; regenerate: "
                    "python workloads/scripts/make_tpu_v1.py")
    return rows, comments


def cnn1_sensitivity(samples: int = 60, seed: int = 0) -> list[tuple[float, tuple, tuple]]:
    """Simulated CNN1 TOPS on tpu_v1 for other stand-ins that meet Table 1 as well as ours.

    Same layout (stem, five stages at 96..6 pixels, same pools and FC layers); stage widths from
    a few power-of-two-like sets and conv counts per stage vary; kept when conv weights and
    MACs per image are within 1% of what Table 1 leaves for the convs. Returns sorted
    (TOPS, widths, counts) for a seeded sample.
    """
    import itertools
    import random
    import tempfile

    import tpusim

    global CNN1_STAGES
    fc_w = 9216 * 4096 + 3 * 4096 * 4096
    want_w, want_macs = 100e6 - fc_w, (1750 * 100e6 - 32 * fc_w) / 32
    sides = [hw for hw, _, _ in CNN1_STAGES]
    found = []
    for widths in ((32, 64, 128, 256, 256), (64, 64, 128, 256, 256), (32, 64, 128, 192, 256),
                   (64, 128, 128, 256, 256), (32, 64, 128, 128, 256)):
        for head in itertools.product(range(1, 41), repeat=4):
            counts = head + (71 - sum(head),)
            if counts[-1] < 1:
                continue
            w, macs, prev = 27 * 32, 96 * 96 * 27 * 32, 32
            for n, c, hw in zip(counts, widths, sides):
                layer_w = 9 * prev * c + (n - 1) * 9 * c * c
                w, macs, prev = w + layer_w, macs + hw * hw * layer_w, c
            if abs(w / want_w - 1) < 0.01 and abs(macs / want_macs - 1) < 0.01:
                found.append((widths, counts))
    shipped = CNN1_STAGES
    out = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for widths, counts in random.Random(seed).sample(found, min(samples, len(found))):
                CNN1_STAGES = tuple(zip(sides, widths, counts))
                path = write_trace(cnn1()[0], Path(tmp) / "cnn1.csv")
                tops = tpusim.simulate("tpu_v1", path).summary["achieved_tops"]
                out.append((tops, widths, counts))
    finally:
        CNN1_STAGES = shipped
    print(f"{len(found)} CNN1 stand-ins meet Table 1 within 1%; {len(out)} simulated")
    return sorted(out)


def main() -> None:
    import sys
    if "--cnn1-sensitivity" in sys.argv[1:]:
        res = cnn1_sensitivity()
        tops = [r[0] for r in res]
        print(f"tpu_v1 TOPS: min {tops[0]:.2f}, median {tops[len(tops) // 2]:.2f}, "
              f"max {tops[-1]:.2f} (measured 14.1)")
        return
    for app in APPS:
        rows, comments = build(app)
        path = write_trace(rows, OUT / f"{app}.csv", comments)
        print(f"wrote {path}: {len(rows)} rows; {comments[-2]}")


if __name__ == "__main__":
    main()

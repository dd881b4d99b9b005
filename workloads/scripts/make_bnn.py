"""Regenerate workloads/cnv_bnn.csv and workloads/lfc_bnn.csv, the binarized networks of FINN.

Source: Umuroglu et al., "FINN: A Framework for Fast, Scalable Binarized Neural Network
Inference", FPGA 2017, section 5.1 (topologies), and the layer shapes of its released CNV design
(Xilinx/BNN-PYNQ, bnn/src/network/cnv-pynq/hw/config.h: IFM/OFM sizes and channels per layer).

- CNV (CIFAR-10, 32x32x3): two 3x3 convs of 64, a 2x2 max-pool, two of 128, a max-pool, two of
  256 (all unpadded, stride 1), then fully connected 256-512-512-10. Ops per frame: 2 x 59,461,376.
- LFC (MNIST, 28x28 binarized): fully connected 784-1024-1024-1024-10; 2 x 2,910,208 ops.

Binary weights and activations throughout, as FINN runs them, except the first CNV layer, whose
input is the 8-bit image (its datapath is int8 by the format rule: binary x int8 runs in int8).
Each binary layer's batchnorm and sign are one compare per output (FINN's threshold unit), a
fused ``threshold`` row; the last layer has none (its raw popcounts are the scores). A max-pool
over binary values is an OR of its 2x2 window (4 ops per output element).

Run: python workloads/scripts/make_bnn.py
"""
from __future__ import annotations

from pathlib import Path

from tpusim.importers.trace_csv import write_trace
from tpusim.workload import make_layer

DIR = Path(__file__).resolve().parent.parent
BIN = {"weight_dtype": "binary", "act_dtype": "binary"}
CNV_MACS = 59_461_376   # closed form, module docstring
LFC_MACS = 2_910_208


def threshold(name: str, elements: int) -> dict:
    return {"name": f"{name}_thr", "op": "threshold", "elements": elements,
            "act_dtype": "binary", "fused": True}


def cnv_rows() -> list[dict]:
    out, size, cin = [], 32, 3
    for stage, cout in enumerate((64, 128, 256), start=1):
        for j in (1, 2):
            name = f"conv{stage}_{j}"
            dt = {"weight_dtype": "binary", "act_dtype": "int8"} if cin == 3 else BIN
            out.append({"name": name, "op": "conv2d", "batch": 1, "in_h": size, "in_w": size,
                        "in_c": cin, "out_c": cout, "kernel_h": 3, "kernel_w": 3, "stride": 1,
                        "pad_h": 0, "pad_w": 0, "groups": 1, **dt})
            size -= 2
            out.append(threshold(name, size * size * cout))
            cin = cout
        if stage < 3:
            size //= 2
            out.append({"name": f"pool{stage}", "op": "maxpool",
                        "elements": size * size * cin, "ops_per_element": 4,
                        "act_dtype": "binary"})
    k = size * size * cin   # 1 x 1 x 256
    for name, n in (("fc1", 512), ("fc2", 512), ("fc3", 10)):
        out.append({"name": name, "op": "matmul", "m": 1, "k": k, "n": n, "weights": "static",
                    **BIN})
        if name != "fc3":
            out.append(threshold(name, n))
        k = n
    return out


def lfc_rows() -> list[dict]:
    out, k = [], 784
    for i, n in enumerate((1024, 1024, 1024, 10), start=1):
        out.append({"name": f"fc{i}", "op": "matmul", "m": 1, "k": k, "n": n,
                    "weights": "static", **BIN})
        if n != 10:
            out.append(threshold(f"fc{i}", n))
        k = n
    return out


def main() -> None:
    for stem, rows, want, what in (
            ("cnv_bnn", cnv_rows(), CNV_MACS, "CNV (CIFAR-10 32x32x3): 2x64C3-MP2-2x128C3-MP2-"
             "2x256C3-FC512-FC512-FC10, unpadded convs"),
            ("lfc_bnn", lfc_rows(), LFC_MACS, "LFC (MNIST 28x28): FC 784-1024-1024-1024-10")):
        macs = sum(make_layer(r).macs for r in rows)
        assert macs == want, (stem, macs)
        path = write_trace(rows, DIR / f"{stem}.csv", comments=[
            "shapes: Umuroglu et al. 2017 (FINN) section 5.1 and Xilinx/BNN-PYNQ cnv-pynq "
            "config.h; binary weights and activations; regenerate: python "
            "workloads/scripts/make_bnn.py",
            f"{what}; {macs:,} MACs; batchnorm+sign as fused threshold rows"])
        print(f"wrote {path}: {len(rows)} rows, {macs:,} MACs")


if __name__ == "__main__":
    main()

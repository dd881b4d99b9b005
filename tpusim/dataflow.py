"""FINN's dataflow pipeline: one matrix-vector-threshold unit (MVTU) per layer, each with its own
PE x SIMD folding, all running at once on a stream of frames (Umuroglu et al., "FINN: A Framework
for Fast, Scalable Binarized Neural Network Inference", FPGA 2017, section 4).

:func:`dataflow` composes per-layer results of :func:`tpusim.simulate`: every GEMM layer runs on
its own engine, the chip with ``array`` = 1 x PE and the layer's datapath ``rate`` = SIMD, so a
stage takes FINN's pixels x ceil(n / PE) x ceil(k / SIMD) cycles plus the array model's fill;
any other row (max-pool, fused thresholds) is a stage of its own with the cycles the chip gives
it. Both simulation paths compose the same way (``core``), so they agree wherever simulate does.

* throughput = clock / the slowest stage (frames in flight overlap: one leaves per slowest stage);
* ``latency_sum_s``: the stages one after another within a frame, an upper bound;
* ``latency_s``: one frame streamed through the pipeline, each stage starting on the first
  input it needs (a k x k conv on its first k - 1 rows plus k pixels; a fully connected layer on
  its first SIMD chunk) and finishing no earlier than its own cycles after it started nor, once
  its producer has finished, than the work left after its last input (a conv's last output row;
  a fully connected layer's other neuron folds; a pool or elementwise unit all of its cycles).
  Assumptions: a stage's outputs leave evenly between its start and its finish, and the FIFOs
  between stages never fill. A conv whose shape is not in a trace CSV waits for all its input.

Assumptions: every weight sits in its engine's on-chip memory (FINN section 4), so the stages
do not share an off-chip channel; energy per frame is the stages' sum.

A folding is ``{layer name: (pe, simd)}``, a CSV of ``name,pe,simd`` (``#`` lines are comments)
or a shipped name from :data:`FOLDINGS`. It is an input: the published design's, never fitted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ._input import csv_rows, read_text, suggest
from .config import ChipConfig, load_config
from .errors import InputError
from .importers import load_workload
from .workload import Workload

# The released CNV and LFC W1A1 designs of Xilinx/BNN-PYNQ (the FINN library's networks, for
# PYNQ-Z1/Z2 and Ultra96): PE and SIMD per layer from bnn/src/network/cnvW1A1/hw/config.h and
# lfcW1A1/hw/config.h (L0..L8 and L0..L3), named as in workloads/cnv_bnn.csv and lfc_bnn.csv.
FOLDINGS: dict[str, dict[str, tuple[int, int]]] = {
    "cnv_bnn": {"conv1_1": (16, 3), "conv1_2": (32, 32), "conv2_1": (16, 32),
                "conv2_2": (16, 32), "conv3_1": (4, 32), "conv3_2": (1, 32),
                "fc1": (1, 4), "fc2": (1, 8), "fc3": (4, 1)},
    "lfc_bnn": {"fc1": (32, 64), "fc2": (64, 32), "fc3": (32, 64), "fc4": (16, 8)},
}
GEMM_OPS = ("conv2d", "matmul")


@dataclass
class DataflowResult:
    """``stages``: one row per layer (its engine's ``pe``/``simd``, ``cycles``, ``start_cycle``
    and ``finish_cycle`` of one streamed frame); ``summary``: throughput and latencies."""

    stages: pd.DataFrame
    summary: dict[str, Any]


def read_folding(folding: str | Path | dict) -> dict[str, tuple[int, int]]:
    """A folding as ``{name: (pe, simd)}`` from a dict, a shipped name or a ``name,pe,simd``
    CSV; a bad cell is an InputError naming its line."""
    if isinstance(folding, dict):
        return {str(k): _fold(v, "folding", str(k)) for k, v in folding.items()}
    if str(folding) in FOLDINGS and not Path(folding).suffix:
        return dict(FOLDINGS[str(folding)])
    src = str(folding)
    if not Path(src).is_file():
        raise InputError(src, "folding", message="not a file and not a shipped folding"
                         f"{suggest(src, FOLDINGS)}; shipped: " + ", ".join(FOLDINGS))
    numbered = [(line, i) for i, line in enumerate(read_text(src, "folding CSV").splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    rows = csv_rows([x for x, _ in numbered], [i for _, i in numbered], src)
    if not rows or [c.strip() for c in rows[0]] != ["name", "pe", "simd"]:
        raise InputError(src, f"line {numbered[0][1] if numbered else 1}", message="expected "
                         "the header name,pe,simd")
    out: dict[str, tuple[int, int]] = {}
    for row, (_, lineno) in zip(rows[1:], numbered[1:]):
        where = f"line {lineno}"
        if len(row) != 3:
            raise InputError(src, where, message=f"{len(row)} cells, expected 3 (name,pe,simd)")
        name = row[0].strip()
        if name in out:
            raise InputError(src, where, name, "each layer once")
        out[name] = _fold(row[1:], src, where)
    return out


def _fold(value: Any, src: str, where: str) -> tuple[int, int]:
    try:
        pe, simd = (int(str(v).strip()) for v in value)
    except (TypeError, ValueError):
        raise InputError(src, where, value, "two whole numbers pe, simd >= 1") from None
    if pe < 1 or simd < 1:
        raise InputError(src, where, value, "pe and simd must be >= 1")
    return pe, simd


def _engine(chip: ChipConfig, fmt: str, pe: int, simd: int) -> ChipConfig:
    return load_config(chip, **{"array.rows": 1, "array.cols": pe, "array.count": 1,
                                f"formats.{fmt}.rate": simd})


def _geometry(wl: Workload) -> dict[str, dict[str, str]]:
    """Conv rows' shapes from the trace CSV the workload came from (a Layer keeps only its GEMM
    dimensions); none for a workload built in code or imported from ONNX."""
    src = Path(wl.source) if wl.source else None
    if src is None or src.suffix.lower() != ".csv" or not src.is_file():
        return {}
    from .importers.trace_csv import read_trace_rows
    try:
        rows, _ = read_trace_rows(src)
    except InputError:   # not tpusim's own trace (a SCALE-Sim topology): no shapes
        return {}
    return {r["name"]: r for r, _ in rows if r.get("op") == "conv2d"}


def _lead_tail(layer, shape: dict[str, str] | None, cycles: float, pe: int,
               simd: int) -> tuple[float, float]:
    """(share of the producer's output a stage needs before its first output, cycles it still
    works after its last input arrives). A conv without its shape in a trace waits for all of
    its input (share 1, all its cycles after it): the stages then add up, an upper bound."""
    if layer.op == "conv2d":
        if not shape:
            return 1.0, cycles
        g = {k: int(shape[k]) for k in ("in_h", "in_w", "kernel_h", "kernel_w")}
        stride = int(shape.get("stride_h") or shape.get("stride") or 1)
        out_h = (g["in_h"] + 2 * int(shape.get("pad_h") or 0) - g["kernel_h"]) // stride + 1
        first = (g["kernel_h"] - 1) * g["in_w"] + g["kernel_w"]   # row-major input stream
        return min(1.0, first / (g["in_h"] * g["in_w"])), cycles / out_h
    if layer.op == "matmul":
        # the input streams in during the first neuron fold, whose last SIMD chunk and the other
        # folds come after the last input
        folds, chunks = math.ceil(layer.n / pe), math.ceil(layer.k / simd)
        return 0.0, cycles * (folds - 1) / folds + cycles / (folds * chunks)
    return 0.0, cycles   # a pool or elementwise unit: all of it after the last input (an upper bound)


def dataflow(config: ChipConfig | str, workload: Workload | str,
             folding: str | Path | dict | None = None, core: str = "columnar") -> DataflowResult:
    """``workload`` as FINN's pipeline on ``config``: every GEMM layer on its own PE x SIMD
    engine (``folding``; default: the shipped folding of the workload's name)."""
    chip = config if isinstance(config, ChipConfig) else load_config(config)
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    if folding is None:
        if wl.name not in FOLDINGS:
            raise InputError("folding", None, message=f"no shipped folding for {wl.name!r}; "
                             "pass one (name,pe,simd CSV); shipped: " + ", ".join(FOLDINGS))
        folding = wl.name
    fold = read_folding(folding)
    from .simulator import simulate
    base = simulate(chip, wl, core=core).layers
    names = {layer.name for layer in wl.layers}
    for name in fold:
        if name not in names:
            raise InputError("folding", name, message=f"no such layer in {wl.name}"
                             f"{suggest(name, names)}")
    rows, engines, shapes = [], {}, _geometry(wl)
    for layer, b in zip(wl.layers, base.itertuples()):
        pe = simd = None
        if layer.op in GEMM_OPS:
            if layer.name not in fold:
                raise InputError("folding", layer.name, message="a GEMM layer needs its pe,simd")
            pe, simd = fold[layer.name]
            key = (b.format, pe, simd)
            if key not in engines:
                engines[key] = _engine(chip, b.format, pe, simd)
            r = simulate(engines[key], Workload(wl.name, (layer,)), core=core).layers.iloc[0]
            cycles, energy = float(r["cycles"]), float(r["energy_pj"])
        elif layer.name in fold:
            raise InputError("folding", layer.name, layer.op, "only conv2d/matmul layers fold")
        else:
            cycles, energy = float(b.cycles), float(b.energy_pj)
        lead, tail = _lead_tail(layer, shapes.get(layer.name), cycles, pe or 1, simd or 1)
        rows.append({"name": layer.name, "op": layer.op, "format": b.format, "pe": pe,
                     "simd": simd, "lanes": (pe or 0) * (simd or 0), "cycles": cycles,
                     "energy_pj": energy, "lead": lead, "tail": tail})
    start = finish = 0.0   # a stage's outputs leave evenly between its start and finish
    for row in rows:
        start += row["lead"] * (finish - start)
        finish = max(start + row["cycles"], finish + row["tail"])
        row["start_cycle"], row["finish_cycle"] = start, finish
    stages = pd.DataFrame(rows).drop(columns=["lead", "tail"])
    hz = chip.clock_ghz * 1e9
    slow = stages.loc[stages["cycles"].idxmax()]
    summary = {"config": chip.name, "workload": wl.name, "clock_ghz": chip.clock_ghz,
               "stage_cycles_max": float(slow["cycles"]), "bottleneck": slow["name"],
               "throughput_per_s": hz / float(slow["cycles"]),
               "latency_s": finish / hz, "latency_sum_s": float(stages["cycles"].sum()) / hz,
               "lanes": int(stages["lanes"].sum()),
               "energy_per_frame_j": float(stages["energy_pj"].sum()) * 1e-12}
    return DataflowResult(stages, summary)

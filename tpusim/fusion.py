"""Layer fusion as a pass over the workload: ``fuse(workload, config) -> (fused, groups)``.

A fused row runs in its producer's output pipeline (the trace's ``fused`` column, which the
simulator already times: its work hides under the producer's cycles, it moves no memory of its
own and pays no per-op launch overhead). The pass marks as fused every vector row that

- directly follows its producer (a GEMM or an unfused vector row) or a row already fused into it,
  with the same ``count`` (assumption: the trace is a chain, each row consuming the one before);
- is elementwise over the producer's output (its element count equals the producer's output
  elements; bias, batchnorm, activations, residual adds, quantize, BNN thresholds ...), or is the
  softmax of an attention block (a softmax after a GEMM with a dynamic second operand, QK^T);
- and whose intermediate fits on chip: the producer's whole output, in its format, in the output
  buffer (half of it when double-buffered; under ``double_buffered: auto`` half exactly when
  the producer is a GEMM the simulator pipelines, :func:`tpusim.memory.double_buffered`). Assumption: the fused op consumes the producer's
  output from the accumulators, so the intermediate must be held there; a real epilogue needs only
  a tile, so this fuses less than a compiler would.

Not fused: pools, reshapes and normalisations over rows (layernorm, rmsnorm: a reduction across
the producer's output tile), and horizontal fusion of sibling GEMMs (the trace does not say which
rows share an input). :func:`savings` says what each group bought by comparing a run of the
workload with a run of the fused one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config import ChipConfig, load_config
from .cores import gemm_double_buffered
from .formats import get_format
from .simulator import scale_batch
from .workload import Layer, Workload

# Vector ops that touch each element of their input once, independently.
ELEMENTWISE = frozenset({
    "elementwise", "add", "mul", "sub", "div", "relu", "clip", "relu6", "quantize",
    "dequantize", "requantize", "residual", "scale", "batchnorm", "bias", "sigmoid", "tanh",
    "silu", "swish", "gelu", "hardswish", "threshold", "sign",
})


@dataclass(frozen=True)
class FusedGroup:
    """One producer row and the rows fused into it (indices into the workload's rows).

    ``members``: the rows this pass fused; ``already``: rows the trace had fused already;
    ``intermediate_bytes``: the producer's output held on chip; ``capacity_bytes``: what holds it.
    """

    producer: int
    members: tuple[int, ...]
    already: tuple[int, ...]
    intermediate_bytes: float
    capacity_bytes: float


def _fits_kind(layer: Layer, producer: Layer) -> bool:
    if layer.kind != "vector" or layer.count != producer.count:
        return False
    if layer.op == "softmax":   # attention: the scores of QK^T stay on chip
        return (producer.kind == "gemm" and producer.weights == "dynamic"
                and layer.elements == producer.out_elements)
    return layer.op in ELEMENTWISE and layer.elements == producer.out_elements


def _capacity(chip: ChipConfig, workload: Workload, p: Layer, batch: int, fmt) -> float:
    """Output-buffer bytes the producer ``p`` leaves its intermediate at ``batch``: all of it
    when ``p`` runs serially, half when double-buffered. Under auto a vector producer counts as
    serial (its intermediate is held whole or not fused: the same fits-at-once rule)."""
    s = chip.memory.sram
    db = s.double_buffered
    if db == "auto":
        db = p.kind == "gemm" and gemm_double_buffered(
            chip, scale_batch(dataclasses.replace(workload, layers=(p,)), batch).layers[0], fmt)
    return s.output_kib * 1024 * (0.5 if db else 1.0)


def fuse(workload: Workload, config: ChipConfig | str,
         batch: int = 1) -> tuple[Workload, list[FusedGroup]]:
    """``workload`` with every fusible chain fused (see the module docstring), and the groups;
    ``batch``: the batch it will run at (the intermediate it must hold grows with it).

    A plain function of the workload and the chip, so other passes (``tpusim compress``) can
    chain it. Fusing never adds HBM traffic: a fused row moves nothing, and the rows after it
    read what its producer left (``tests/test_fusion.py`` checks this over the zoo)."""
    chip = config if isinstance(config, ChipConfig) else load_config(config)
    layers = list(workload.layers)
    groups: list[FusedGroup] = []
    i = 0
    while i < len(layers):
        p = layers[i]
        if p.fused:
            i += 1
            continue
        fmt = get_format(p.format or chip.default_format)
        inter = p.out_elements * batch * fmt.bytes_per_element
        cap = _capacity(chip, workload, p, batch, fmt)
        members, already = [], []
        j = i + 1
        while j < len(layers) and _fits_kind(layers[j], p):
            if layers[j].fused:
                already.append(j)
            elif inter <= cap:
                members.append(j)
            else:
                break
            j += 1
        if members:
            for m in members:
                layers[m] = dataclasses.replace(layers[m], fused=True)
            groups.append(FusedGroup(i, tuple(members), tuple(already), inter, cap))
        i = j if j > i + 1 else i + 1
    fused = dataclasses.replace(workload, layers=tuple(layers))
    return fused, groups


_DELTA = (("hbm_bytes", ("hbm_read_bytes", "hbm_write_bytes")), ("cycles", ("cycles",)),
          ("overhead_cycles", ("overhead_cycles",)), ("energy_pj", ("energy_pj",)))


def savings(before: Any, after: Any, groups: list[FusedGroup]) -> list[dict[str, Any]]:
    """What each group saved: ``before`` and ``after`` are results of the workload and of its
    fused form (same rows). A group owns the rows from its producer up to the next group's
    producer, so the knock-on effect on the row that reads its output is counted with it and
    the groups' savings add up to the run's exactly."""
    b, a = before.layers, after.layers
    cnt = b["count"]
    out = []
    for g, nxt in zip(groups, [x.producer for x in groups[1:]] + [len(b)]):
        span = slice(g.producer, nxt)
        row: dict[str, Any] = {
            "producer": str(b["name"].iloc[g.producer]),
            "fused": [str(b["name"].iloc[m]) for m in g.members],
            "launches_saved": int(sum(int(cnt.iloc[m]) for m in g.members)),
            "intermediate_bytes": g.intermediate_bytes,
        }
        for key, cols in _DELTA:
            before_v = sum(float((b[c].iloc[span] * cnt.iloc[span]).sum()) for c in cols)
            after_v = sum(float((a[c].iloc[span] * cnt.iloc[span]).sum()) for c in cols)
            row[f"{key}_saved"] = before_v - after_v
        out.append(row)
    return out


def fusion_summary(before: Any, after: Any, groups: list[FusedGroup]) -> dict[str, Any]:
    """The ``fusion`` record of a ``run --fuse`` summary: per-group savings and their totals."""
    per = savings(before, after, groups)
    total = {k: sum(g[k] for g in per) for k in ("launches_saved", "hbm_bytes_saved",
                                                  "cycles_saved", "overhead_cycles_saved",
                                                  "energy_pj_saved")}
    return {"groups": per, "total": total,
            "unfused_total_cycles": before.summary["total_cycles"],
            "unfused_hbm_bytes": before.summary["hbm_bytes"]}

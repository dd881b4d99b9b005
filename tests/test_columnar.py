"""The columnar core against the per-layer reference path: every shipped workload on every
preset, both timing models, per row (``layers.csv`` byte for byte, dtypes) and in total."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import tpusim
from tpusim.columnar import evaluate, prepare
from tpusim.config import load_config
from tpusim.results import layers_csv
from tpusim.workload import Workload, make_layer

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workloads").rglob("*.csv"))
PRESETS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def _summary(r) -> str:
    s = dict(r.summary)
    s.pop("simulator_seconds")
    return json.dumps(s, sort_keys=True)


def _same(chip, wl, **kw) -> None:
    ref = tpusim.simulate(chip, wl, core="reference", **kw)
    col = tpusim.simulate(chip, wl, **kw)
    assert _summary(col) == _summary(ref)
    assert layers_csv(col) == layers_csv(ref)
    assert list(col.layers.dtypes) == list(ref.layers.dtypes)


def test_every_workload_and_preset_is_covered():
    assert len(WORKLOADS) >= 16 and len(PRESETS) >= 9


@pytest.mark.parametrize("model", ["pipelined", "scalesim"])
@pytest.mark.parametrize("preset", PRESETS)
def test_columnar_equals_reference(preset, model):
    chip = load_config(ROOT / "configs" / f"{preset}.yaml", **{"timing.model": model})
    ran = 0
    for wl in WORKLOADS:
        try:
            ref = tpusim.simulate(chip, ROOT / wl, core="reference")
        except tpusim.InputError as exc:   # the same input error on both paths
            with pytest.raises(tpusim.InputError) as got:
                tpusim.simulate(chip, ROOT / wl)
            assert str(got.value) == str(exc)
            continue
        col = tpusim.simulate(chip, ROOT / wl)
        assert _summary(col) == _summary(ref), wl
        assert layers_csv(col) == layers_csv(ref), wl
        assert list(col.layers.dtypes) == list(ref.layers.dtypes), wl
        ran += 1
    assert ran > 0   # edge_tpu fits only the small workloads


@pytest.mark.parametrize("over", [
    {"array.dataflow": "os"}, {"array.dataflow": "is"}, {"array.count": 3},
    {"memory.sram.double_buffered": False}, {"timing.weight_fifo_depth": 4},
    {"memory.sram.bandwidth_bytes_per_cycle": 64}, {"timing.issue_efficiency": 0.7},
    {"timing.overhead_cycles_per_op": 120}, {"memory.sram.input_kib": 64,
                                             "memory.sram.weight_kib": 64},
    {"array.cores": 2, "timing.wave_cycles": 200}, {"array.cores": 4, "array.dataflow": "os"},
    {"array.cores": 2, "timing.model": "scalesim"},
    # auto: per-row buffering; small buffers so that some layers fit and some do not
    {"memory.sram.double_buffered": "auto", "memory.sram.input_kib": 512,
     "memory.sram.weight_kib": 512, "memory.sram.output_kib": 512},
    {"memory.sram.double_buffered": "auto", "array.cores": 2, "timing.weight_fifo_depth": 1,
     "memory.sram.output_kib": 1024},
])
def test_columnar_equals_reference_off_the_presets(over):
    """Dataflows, array counts, buffer depths, an SRAM roof, re-fetches: the branches the
    presets may not reach."""
    chip = load_config("default", **over)
    for wl in ("resnet50", "mobilenet_v2", "workloads/tpu_v1/lstm0.csv", "llama3_8b_decode"):
        _same(chip, ROOT / wl if "/" in wl else wl)
    _same(chip, "resnet50", batch=4, format="bf16")


def test_huge_and_repeated_layers_agree():
    """m = 10^15 (beyond 2^53 the float order of integer products may differ: 1e-12)."""
    chip = load_config("tpu_v4")
    for m, count in ((10**6, 1), (10**6, 7), (10**12, 3)):
        wl = Workload("one", (make_layer({"name": "g", "op": "matmul", "m": m, "k": 1024,
                                          "n": 1024, "count": count}),))
        _same(chip, wl)
    wl = Workload("huge", (make_layer({"name": "g", "op": "matmul", "m": 10**15, "k": 1024,
                                       "n": 1024}),))
    ref = tpusim.simulate(chip, wl, core="reference").summary
    col = tpusim.simulate(chip, wl).summary
    assert col["total_cycles"] == pytest.approx(ref["total_cycles"], rel=1e-12)
    assert col["energy_j"] == pytest.approx(ref["energy_j"], rel=1e-12)


def test_many_points_in_one_call_equal_one_by_one():
    """Sweep points batched into one array call give each point's own summary."""
    wl = tpusim.load_workload("resnet50")
    chips = [load_config("default", **{"array.rows": r, "array.cols": c})
             for r, c in ((16, 16), (32, 64), (128, 128))]
    chips.append(load_config("tpu_v4", **{"timing.model": "scalesim"}))
    batched = evaluate([prepare(ch, wl, None) for ch in chips])
    for ch, cols in zip(chips, batched):
        one = tpusim.simulate(ch, wl, core="reference").summary
        got = cols.summary()
        assert {k: v for k, v in got.items()} == {k: v for k, v in one.items()
                                                  if k != "simulator_seconds"}


def test_table_is_built_only_when_read():
    r = tpusim.simulate("tpu_v4", "resnet50")
    assert r._layers is None and r.summary["total_cycles"] > 0
    df = r.layers
    assert r.layers is df and len(df) == len(r.workload.layers)


@pytest.mark.parametrize("preset,extra", [("tpu_v4", {}), ("tpu_v4", {"timing.weight_fifo_depth": 2}),
                                          ("default", {}), ("tpu_v5e", {}), ("edge_tpu", {})])
def test_event_engine_on_the_columnar_core_equals_the_reference(preset, extra):
    # the event engine reads its block plans off the columnar arrays; the per-layer path builds
    # them with timing.overlap.blocks: the same simpy runs, so every number is equal
    from tpusim.timing import overlap_event
    chip = tpusim.load_config(preset, **extra)
    fmt = chip.default_format if len(chip.formats) == 1 else None   # int8-only chips
    for name, batch in (("resnet50", 1), ("inception_v1", 1), ("llama3_8b_decode", 2),
                        ("workloads/tpu_v1/lstm0.csv", 1)):
        overlap_event._makespan.cache_clear()
        run = dict(batch=batch, format=fmt, engine="event")
        ref = tpusim.simulate(chip, name, core="reference", **run)
        overlap_event._makespan.cache_clear()
        col = tpusim.simulate(chip, name, **run)
        assert col._layers is None and col.summary["engine"] == "event"
        drop = "simulator_seconds"
        assert ({k: v for k, v in col.summary.items() if k != drop}
                == {k: v for k, v in ref.summary.items() if k != drop}), (preset, name)
        pd.testing.assert_frame_equal(col.layers, ref.layers)


def test_bad_core_is_an_input_error():
    with pytest.raises(tpusim.InputError, match="core.*columnar|reference"):
        tpusim.simulate("default", "resnet50", core="numpy")


@pytest.mark.parametrize("preset", ["default", "tpu_v1", "tpu_v4"])
def test_small_hand_made_traces_agree(preset):
    """Shapes no shipped trace has: only vector rows (the reference keeps int columns), a
    fused row first, count 2 and count > 2 rows, a dynamic batched operand."""
    L = lambda **k: make_layer(k)   # noqa: E731
    cases = [
        (L(name="v", op="relu", elements=1000),),
        (L(name="v", op="relu", elements=1000, count=3), L(name="w", op="gelu", elements=100)),
        (L(name="v", op="relu", elements=1000, fused=True),
         L(name="g", op="matmul", m=64, k=64, n=64)),
        (L(name="g", op="matmul", m=64, k=512, n=512, count=2),
         L(name="s", op="softmax", elements=4096, count=5),
         L(name="g2", op="matmul", m=8, k=4096, n=4096, count=5)),
        (L(name="qk", op="matmul", m=128, k=64, n=128, batch=12, weights="dynamic", count=3),),
    ]
    for layers in cases:
        _same(preset, Workload("hand", layers))
        _same(preset, Workload("hand", layers), batch=3)

"""Fusion pass (tpusim/fusion.py): a hand-computed chain, the capacity rule, attention softmax,
never more HBM bytes over the zoo, both simulation paths, and ``run --fuse``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tpusim
from tpusim.config import load_config
from tpusim.fusion import fuse, fusion_summary
from tpusim.importers import WORKLOAD_DIR
from tpusim.workload import Workload, make_layer

ROOT = Path(__file__).resolve().parent.parent


def _chip(**kw):
    # 1 byte/cycle off chip, a 4 KiB activation buffer: a 4 KiB output never stays on chip
    over = {"array.rows": 16, "array.cols": 16, "array.count": 1, "clock_ghz": 1.0, "memory.hbm.bandwidth_gbps": 1.0, "memory.sram.input_kib": 4,
            "timing.overhead_cycles_per_op": 100}
    over.update(kw)
    return load_config("default", **over)


def _chain():
    mm = make_layer({"name": "mm", "op": "matmul", "m": 64, "k": 64, "n": 64,
                     "weight_dtype": "int8", "act_dtype": "int8"})
    relu = make_layer({"name": "relu", "op": "relu", "elements": 4096, "act_dtype": "int8"})
    bias = make_layer({"name": "bias", "op": "bias", "elements": 4096, "act_dtype": "int8"})
    return Workload("chain", (mm, relu, bias))


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_hand_computed_chain(core):
    chip, wl = _chip(), _chain()
    fused, groups = fuse(wl, chip)
    assert [l.fused for l in fused.layers] == [False, True, True]
    assert len(groups) == 1 and groups[0].members == (1, 2)
    before = tpusim.simulate(chip, wl, core=core)
    after = tpusim.simulate(chip, fused, core=core)
    # before: mm reads 4 KiB input + 4 KiB weights and writes its 4 KiB output (nothing fits the
    # 4 KiB buffer with its input); relu and bias each read and write 4 KiB: 7 x 4096 bytes.
    # after: mm's read and its one write, 3 x 4096; the two round trips of the intermediate go
    assert before.summary["hbm_bytes"] == 7 * 4096
    assert after.summary["hbm_bytes"] == 3 * 4096
    rec = fusion_summary(before, after, groups)
    g = rec["groups"][0]
    assert g["hbm_bytes_saved"] == 4 * 4096 and g["launches_saved"] == 2
    assert g["overhead_cycles_saved"] == 200
    # each vector row took its 8,192 bytes at 1 byte/cycle plus its launch; both are gone
    # (4 elementwise cycles each hide under the matmul)
    assert g["cycles_saved"] == 2 * (8192 + 100)
    assert rec["total"]["cycles_saved"] == before.summary["total_cycles"] - \
        after.summary["total_cycles"]


def test_not_fused_when_the_intermediate_does_not_fit():
    # output buffer 4 KiB double-buffered: 2 KiB for a 4 KiB intermediate
    fused, groups = fuse(_chain(), _chip(**{"memory.sram.output_kib": 4}))
    assert groups == [] and not any(l.fused for l in fused.layers)
    fused, groups = fuse(_chain(), _chip(**{"memory.sram.output_kib": 8}))
    assert len(groups) == 1
    # at batch 2 the 8 KiB intermediate no longer fits the 4 KiB half-buffer
    assert fuse(_chain(), _chip(**{"memory.sram.output_kib": 8}), batch=2)[1] == []


def test_pool_and_mismatched_elements_are_not_fused():
    mm, _, _ = _chain().layers
    pool = make_layer({"name": "p", "op": "maxpool", "elements": 1024, "ops_per_element": 4})
    half = make_layer({"name": "h", "op": "relu", "elements": 2048})
    for nxt in (pool, half):
        _, groups = fuse(Workload("w", (mm, nxt)), _chip())
        assert groups == []


def test_attention_softmax_fuses_into_qk():
    qk = make_layer({"name": "qk", "op": "matmul", "m": 128, "k": 64, "n": 128, "batch": 12,
                     "weights": "dynamic"})
    sm = make_layer({"name": "sm", "op": "softmax", "elements": 12 * 128 * 128})
    ffn = make_layer({"name": "ffn", "op": "matmul", "m": 128, "k": 768, "n": 768})
    sm2 = make_layer({"name": "sm2", "op": "softmax", "elements": 128 * 768})
    _, groups = fuse(Workload("attn", (qk, sm, ffn, sm2)), "default")
    assert [(g.producer, g.members) for g in groups] == [(0, (1,))]   # not after a static GEMM


SMALL_SRAM = [("default", {}), ("default", {"memory.sram.input_kib": 256,
                                            "memory.sram.output_kib": 1024}),
              ("tpu_v1", {}), ("edge_tpu", {}), ("finn_zc706", {})]


@pytest.mark.parametrize("preset,over", SMALL_SRAM)
def test_fusion_never_increases_hbm_bytes_over_the_zoo(preset, over):
    chip = load_config(preset, **over)
    checked = 0
    for path in sorted(WORKLOAD_DIR.rglob("*.csv")):
        wl = tpusim.load_workload(path)
        lacks = {l.format for l in wl.layers} - set(chip.formats) - {None}
        fmt = chip.default_format if lacks else None
        try:
            before = tpusim.simulate(chip, wl, format=fmt)
        except tpusim.InputError:   # a tile that does not fit this chip: nothing to compare
            continue
        fused, groups = fuse(wl, chip)
        after = tpusim.simulate(chip, fused, format=fmt)
        assert after.summary["hbm_bytes"] <= before.summary["hbm_bytes"], path.name
        assert after.summary["macs"] == before.summary["macs"]
        for g in fusion_summary(before, after, groups)["groups"]:
            assert g["hbm_bytes_saved"] >= 0 and g["launches_saved"] >= 1, (path.name, g)
        checked += 1
    assert checked >= 5


def test_fused_workload_same_on_both_paths():
    chip = load_config("default", **{"memory.sram.input_kib": 256})
    fused, groups = fuse(tpusim.load_workload("resnet50"), chip)
    assert groups
    ref = tpusim.simulate(chip, fused, core="reference").summary
    col = tpusim.simulate(chip, fused).summary
    ref.pop("simulator_seconds"), col.pop("simulator_seconds")
    assert ref == col


def test_run_fuse_writes_savings(cli, tmp_path):
    out = tmp_path / "r"
    code, stdout, err = cli("run", "default", "resnet50", "--fuse",
                            "--set", "memory.sram.input_kib=256", "--out", out)
    assert code == 0, err
    assert "fusion:" in stdout
    s = json.loads((out / "summary.json").read_text())
    f = s["fusion"]
    assert f["groups"] and f["total"]["launches_saved"] == sum(g["launches_saved"]
                                                               for g in f["groups"])
    assert f["unfused_hbm_bytes"] - s["hbm_bytes"] == pytest.approx(f["total"]["hbm_bytes_saved"])
    page = (out / "report.html").read_text()
    assert "saving per fused group" in page and f["groups"][0]["producer"] in page

"""The shipped zoo in workloads/: every trace loads, says where its shapes come from, and matches
published MAC totals."""
from __future__ import annotations

import importlib.util

import pytest

from tpusim.importers.llm import get_preset, llm_macs
from tpusim.importers import WORKLOAD_DIR, load_workload

SHIPPED = sorted(WORKLOAD_DIR.rglob("*.csv"))


def test_zoo_has_the_issue_models():
    names = {p.stem for p in SHIPPED}
    assert {"resnet50", "mobilenet_v2", "bert_base", "gpt2", "llama3_8b_prefill",
            "llama3_8b_decode"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(WORKLOAD_DIR)))
def test_every_shipped_workload_loads_and_cites(path):
    wl = load_workload(path)
    assert wl.layers and wl.macs > 0
    first = path.read_text().splitlines()[0]
    assert first.startswith("#") and wl.notes, "first line must say where the shapes come from"


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "mobilenet_v1", "vgg16",
                                  "bert_base", "gpt2",
                                  "llama3_8b_prefill", "llama3_8b_decode"])
def test_regenerating_script_named_and_present(name):
    note = load_workload(name).notes[0]
    script = note.split("python ")[-1].strip()
    assert "regenerate" in note and (WORKLOAD_DIR.parent / script).is_file()


def test_resnet50_published_macs():
    wl = load_workload("resnet50")
    # 4.09 GMAC at 224x224 (torchvision's model table, "GFLOPS" counted as multiply-adds)
    assert wl.macs == pytest.approx(4.09e9, rel=0.01)
    assert {l.format for l in wl.layers if l.kind == "gemm"} == {"int8"}
    assert sum(l.op == "conv2d" for l in wl.layers) == 53


def test_mobilenet_v2_published_macs():
    wl = load_workload("mobilenet_v2")
    # Sandler et al. 2018: 300M multiply-adds (300.8 M in the reference implementation)
    assert wl.macs == pytest.approx(300.8e6, rel=0.01)
    dw = [l for l in wl.layers if l.op == "conv2d" and l.groups > 1]
    assert len(dw) == 17 and all(l.k == 9 and l.n == 1 for l in dw)   # depthwise: one channel


def test_mobilenet_script_matches_csv():
    spec = importlib.util.spec_from_file_location(
        "make_mnv2", WORKLOAD_DIR / "scripts" / "make_mobilenet_v2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from tpusim.workload import make_layer
    assert sum(make_layer(r).macs for r in mod.rows()) == load_workload("mobilenet_v2").macs


@pytest.mark.parametrize("name,preset,batch,seq,kv", [
    ("bert_base", "bert_base", 1, 128, 128), ("gpt2", "gpt2", 1, 1024, 1024),
    ("llama3_8b_prefill", "llama3_8b", 1, 2048, 2048),
    ("llama3_8b_decode", "llama3_8b", 8, 1, 2048)])
def test_llm_traces_match_closed_form(name, preset, batch, seq, kv):
    wl = load_workload(name)
    assert wl.macs == llm_macs(get_preset(preset), batch, seq, kv)
    assert f"batch {batch}, seq {seq}" in wl.notes[0] and f"kv_len {kv}" in wl.notes[0]


def test_mobilenet_v1_published_macs():
    wl = load_workload("mobilenet_v1")
    # Howard et al. 2017, Table 1 (width 1.0, 224x224): 569 million mult-adds, 4.2M parameters
    assert wl.macs == pytest.approx(569e6, rel=0.01)
    assert sum(l.weight_elements for l in wl.layers if l.kind == "gemm") == pytest.approx(
        4.2e6, rel=0.01)
    dw = [l for l in wl.layers if l.op == "conv2d" and l.groups > 1]
    assert len(dw) == 13 and all(l.k == 9 and l.n == 1 for l in dw)   # depthwise: one channel
    assert sum(l.op == "conv2d" for l in wl.layers) == 27


def test_vgg16_closed_form_macs():
    wl = load_workload("vgg16")
    # Simonyan & Zisserman 2015, config D: 9 x sum(H^2 Cin Cout) over 13 conv3 + 3 FC
    convs = 9 * (224**2 * (3 * 64 + 64 * 64) + 112**2 * (64 * 128 + 128 * 128)
                 + 56**2 * (128 * 256 + 2 * 256 * 256) + 28**2 * (256 * 512 + 2 * 512 * 512)
                 + 14**2 * 3 * 512 * 512)
    fcs = 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000
    assert wl.macs == convs + fcs == 15_470_264_320
    # the paper's Table 2: 138M parameters for configuration D (weights; biases add 13k)
    assert sum(l.weight_elements for l in wl.layers if l.kind == "gemm") == pytest.approx(
        138e6, rel=0.01)
    assert sum(l.op == "conv2d" for l in wl.layers) == 13
    assert sum(l.op == "maxpool" for l in wl.layers) == 5

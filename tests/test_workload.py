"""Trace CSVs, conv -> GEMM lowering, SCALE-Sim topologies: hand-computed cases and errors."""
from __future__ import annotations

import pytest

from tpusim.errors import InputError
from tpusim.formats import datapath_format
from tpusim.importers.scalesim import topology_rows
from tpusim.importers import load_workload
from tpusim.workload import lower_conv, make_layer

from .conftest import SCALESIM


def test_resnet_stem_lowering():
    # 224x224x3, 7x7/2, pad 3 -> 112x112x64 (ResNet-50 conv1)
    g = lower_conv(1, 224, 224, 3, 64, 7, 7, 2, 2, 3, 3, 1)
    assert (g["out_h"], g["out_w"]) == (112, 112)
    assert (g["m"], g["k"], g["n"]) == (112 * 112, 147, 64)


def test_same_and_valid_padding():
    assert lower_conv(1, 56, 56, 64, 64, 3, 3, 1, 1, "same", "same", 1)["m"] == 56 * 56
    assert lower_conv(1, 57, 57, 8, 8, 3, 3, 2, 2, "same", "same", 1)["out_h"] == 29
    assert lower_conv(1, 56, 56, 64, 64, 3, 3, 1, 1, "valid", "valid", 1)["out_h"] == 54


def test_depthwise_and_grouped_conv():
    l = make_layer({"name": "dw", "op": "conv2d", "batch": 2, "in_h": 112, "in_w": 112,
                    "in_c": 32, "out_c": 32, "kernel_h": 3, "kernel_w": 3, "padding": 1,
                    "groups": 32})
    assert (l.m, l.k, l.n, l.groups) == (2 * 112 * 112, 9, 1, 32)
    assert l.macs == 2 * 112 * 112 * 32 * 9
    assert l.weight_elements == 9 * 32
    g = make_layer({"name": "g", "op": "conv2d", "in_h": 8, "in_w": 8, "in_c": 64, "out_c": 128,
                    "kernel_h": 1, "kernel_w": 1, "groups": 4})
    assert (g.k, g.n, g.groups) == (16, 32, 4) and g.macs == 64 * 64 * 128 // 4


def test_kernel_exceeding_padded_input_is_an_error():
    with pytest.raises(InputError) as exc:
        make_layer({"name": "c", "op": "conv2d", "in_h": 2, "in_w": 2, "in_c": 1, "out_c": 1,
                    "kernel_h": 5, "kernel_w": 5, "padding": 1}, "t.csv", 7)
    assert "line 7" in str(exc.value) and "kernel_h=5" in str(exc.value)


def test_matmul_batch_static_and_dynamic():
    s = make_layer({"name": "ffn", "op": "linear", "m": 128, "k": 768, "n": 3072, "batch": 4})
    assert s.macs == 4 * 128 * 768 * 3072 and s.weight_elements == 768 * 3072
    d = make_layer({"name": "qk", "op": "matmul", "m": 128, "k": 64, "n": 128, "batch": 12,
                    "weights": "dynamic"})
    assert d.groups == 12 and d.weight_elements == 12 * 64 * 128 and d.macs == 12 * 128 * 64 * 128


def test_dtypes_pick_the_datapath():
    assert datapath_format("int8", "int8") == "int8"
    assert datapath_format("int4", "int8") == "int8"
    assert datapath_format("int8", "bf16") == "bf16"
    assert datapath_format("fp32", "bf16") == "fp32"
    assert datapath_format(None, None) is None


def test_trace_csv_roundtrip(write_csv):
    p = write_csv("""
# source: hand-written
name,op,count,m,k,n,in_h,in_w,in_c,out_c,kernel_h,kernel_w,stride,padding,elements,weight_dtype,act_dtype,fused
fc,matmul,2,64,256,512,,,,,,,,,,int8,int8,
conv,conv2d,,,,,32,32,16,32,3,3,1,1,,int8,int8,
relu,relu,,,,,,,,,,,,,32768,,,true
""")
    w = load_workload(p)
    assert [l.name for l in w.layers] == ["fc", "conv", "relu"]
    assert w.layers[0].count == 2 and w.layers[2].fused
    assert w.macs == 2 * 64 * 256 * 512 + 32 * 32 * 9 * 16 * 32
    assert w.notes == ("source: hand-written",)


@pytest.mark.parametrize("text,needles", [
    ("name,op,m,k,n,wat\nfc,matmul,1,2,3,4", ["wat", "unknown column", "line 1"]),
    ("name,op,m,k\nfc,matmul,1,2", ["line 2", "n"]),
    ("name,op,m,k,n\nfc,conv3d,1,2,3", ["line 2", "op", "conv3d"]),
    ("name,op,m,k,n\nfc,matmul,1,-2,3", ["line 2", "column k", "-2"]),
    ("name,op,m,k,n\nfc,matmul,1,x,3", ["line 2", "column k", "'x'"]),
    ("name,op,m,k,n,act_dtype\nfc,matmul,1,2,3,int7", ["line 2", "act_dtype", "int7"]),
    ("name,op,elements\nsm,softmax,", ["line 2", "elements"]),
    # an unclosed quote names its line, not a cell it swallowed the rest of the line into
    ("name,op,m,k,n\na,matmul,1,2,3\n\"b,matmul,1,2,3", ["line 3: unterminated quote"]),
    # a quoted cell over two lines: the line it opens on, never a cut-off value
    ("name,op,m,k,n\na,matmul,1,2,3\n\"two\nlines\",matmul,1,2,3", ["line 3: unterminated quote"]),
])
def test_bad_rows_give_one_clear_line(write_csv, text, needles):
    p = write_csv(text)
    with pytest.raises(InputError) as exc:
        load_workload(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    for n in needles:
        assert n in msg, msg


def test_scalesim_output_size_and_macs():
    # SCALE-Sim: E = ceil((H - R + s) / s): 224, 7x7, stride 2 -> 110 (not 109)
    rows = topology_rows(SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv")
    l = make_layer(rows[0])
    assert l.m == 110 * 110 and l.k == 7 * 7 * 3 and l.n == 64


@pytest.mark.parametrize("path,gmacs", [
    # MAC totals SCALE-Sim 3.0.0 itself reports (its parse check of these topologies)
    ("conv_nets/Resnet18.csv", 1.471), ("conv_nets/mobilenet.csv", 0.566),
    ("conv_nets/yolo_tiny.csv", 1.754), ("GEMM_mnk/gpt2.csv", 20.686),
    ("GEMM_mnk/vit_s.csv", 0.275), ("mlperf/Resnet50.csv", 3.480),
])
def test_scalesim_topologies_match_scalesim_macs(path, gmacs):
    w = load_workload(SCALESIM / "topologies" / path)
    assert w.macs / 1e9 == pytest.approx(gmacs, abs=0.0006)


def test_scalesim_depthwise_rows_repeat_per_channel(write_csv):
    p = write_csv("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,"
                  " Num Filter, Strides,\nConvDP1, 10, 10, 3, 3, 8, 4, 1,\n,,,,,,,,\n")
    w = load_workload(p)
    (l,) = w.layers
    assert l.count == 8 and l.k == 9 and l.n == 4 and l.m == 64


def test_scalesim_gemm_form(write_csv):
    p = write_csv("Layer,M,N,K,\nQKT,1024,1024,64,\n")
    (l,) = load_workload(p).layers
    assert (l.m, l.k, l.n) == (1024, 64, 1024)


def test_scalesim_bad_row(write_csv):
    p = write_csv("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,"
                  " Num Filter, Strides,\nC1, 10, 10, 3, 3, 8, abc, 1,\n")
    with pytest.raises(InputError) as exc:
        load_workload(p)
    assert "line 2" in str(exc.value) and "num_filter" in str(exc.value)


def test_quoted_cells_that_close_on_their_line_still_read(write_csv):
    p = write_csv('name,op,m,k,n\n"a,b",matmul,1,2,3\n"say ""hi""",matmul,1,2,3')
    assert [l.name for l in load_workload(p).layers] == ["a,b", 'say "hi"']

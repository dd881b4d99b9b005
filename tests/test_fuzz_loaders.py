"""Property tests of the loaders: from random bytes, mutated valid files and ONNX models with
random dims and attributes, only ``InputError`` (one line) may come out. ``max_examples`` keeps
the whole file to a few seconds; ``benchmarks/fuzz_inputs.py`` runs the long version."""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tpusim.calibrate import read_measurements
from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers import load_workload
from tpusim.importers.onnx import load_onnx_workload
from tpusim.importers.scalesim import load_topology

from .conftest import ROOT, SCALESIM

LOADERS = {
    "trace": (".csv", load_workload),
    "topology": (".csv", load_topology),
    "yaml": (".yaml", load_config),
    "cfg": (".cfg", load_config),
    "measurements": (".csv", read_measurements),
    "onnx": (".onnx", load_onnx_workload),
}
SEEDS = {
    "trace": [(ROOT / "workloads" / "mobilenet_v1.csv").read_bytes(),
              (ROOT / "tests" / "bad_inputs" / "good" / "trace.csv").read_bytes()],
    "topology": [(SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv").read_bytes(),
                 (SCALESIM / "topologies" / "GEMM_mnk" / "vit_s.csv").read_bytes()],
    "yaml": [(ROOT / "configs" / "default.yaml").read_bytes(),
             (ROOT / "tests" / "bad_inputs" / "good" / "chip.yaml").read_bytes()],
    "cfg": [(SCALESIM / "configs" / "scale.cfg").read_bytes()],
    "measurements": [b"m,k,n,latency_us,dtype\n128,128,128,3.5,bf16\n256,512,128,9.25,int8\n"],
}
TOKENS = [b"", b",", b"\n", b'"', b"#", b"true", b"no", b"-1", b"0", b"2.5", b"nan", b".inf",
          b"1e400", b"100000000000000000", b"9" * 5000, b"\xef\xbb\xbf", b"\x00", b"\xc3",
          b"&x ", b"*x", b"<<: ", b"{", b"[", b": ", b"- ", b"%(", b"[architecture_presets]",
          b"\t", b"same", b"conv2d", b"softmax", b"Layer name", b"x" * 140_000]
# TPUSIM_FUZZ_EXAMPLES=2000 for a longer local run; 40 keeps the suite fast.
FUZZ = settings(max_examples=int(os.environ.get("TPUSIM_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=list(HealthCheck), database=None)


def only_input_error(kind: str, data: bytes) -> None:
    suffix, loader = LOADERS[kind]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"input{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loader(path)
            except InputError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)


def apply(data: bytes, edits) -> bytes:
    for op, where, token in edits:
        pos = int(where * len(data))
        if op == 0:
            data = data[:pos] + token + data[pos:]
        elif op == 1:
            data = data[:pos] + data[pos + 1 + len(token):]
        elif op == 2:
            data = data[:pos] + token + data[pos + len(token):]
        elif op == 3:   # duplicate the line at pos
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end + 1
            data = data[:end] + data[start:end] + data[end:]
        else:
            data = data[:pos]
    return data


edits = st.lists(st.tuples(st.integers(0, 4), st.floats(0, 1), st.sampled_from(TOKENS)),
                 min_size=1, max_size=4)


@FUZZ
@given(kind=st.sampled_from(sorted(LOADERS)), data=st.binary(max_size=600))
def test_random_bytes_give_input_error_only(kind, data):
    only_input_error(kind, data)


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), seed=st.integers(0, 1), change=edits)
def test_mutated_valid_files_give_input_error_only(kind, seed, change):
    pool = SEEDS[kind]
    only_input_error(kind, apply(pool[seed % len(pool)], change))


def _onnx_model(x_dims, w_dims, kernel, strides, pads, group, op) -> bytes:
    from onnx import TensorProto as TP
    from onnx import helper as oh
    x = oh.make_tensor_value_info("x", TP.FLOAT, x_dims)
    y = oh.make_tensor_value_info("y", TP.FLOAT, None)
    w = oh.make_tensor_value_info("w", TP.FLOAT, w_dims)   # a graph input: dims only
    attrs = {k: v for k, v in (("kernel_shape", kernel), ("strides", strides), ("pads", pads))
             if v} if op == "Conv" else {}
    if op == "Conv":
        attrs["group"] = group
    node = oh.make_node(op, ["x", "w"], ["y"], **attrs)
    m = oh.make_model(oh.make_graph([node], "g", [x, w], [y]),
                      opset_imports=[oh.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


dims = st.lists(st.one_of(st.integers(-2, 64), st.sampled_from([10**17, 2**62, 2**63 - 1])),
                min_size=0, max_size=5)


@FUZZ
@given(x_dims=dims, w_dims=dims, kernel=st.lists(st.integers(-1, 9), max_size=3),
       strides=st.lists(st.integers(-1, 4), max_size=3), pads=st.lists(st.integers(-2, 4),
                                                                       max_size=5),
       group=st.integers(-1, 4), op=st.sampled_from(["Conv", "MatMul", "Gemm", "Frobnicate"]))
@example(x_dims=[], w_dims=[], kernel=[], strides=[], pads=[], group=1, op="MatMul")  # scalars
def test_onnx_models_with_random_dims_give_input_error_only(x_dims, w_dims, kernel, strides,
                                                             pads, group, op):
    only_input_error("onnx", _onnx_model(x_dims, w_dims, kernel, strides, pads, group, op))


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_the_seeds_themselves_load(kind):
    # the fuzz starts from valid files: without this, a loader that rejects everything passes
    suffix, loader = LOADERS[kind]
    with tempfile.TemporaryDirectory() as d:
        for i, data in enumerate(SEEDS[kind]):
            path = Path(d) / f"seed{i}{suffix}"
            path.write_bytes(data)
            got = loader(path)
            assert got is not None and not (isinstance(got, float) and math.isnan(got))

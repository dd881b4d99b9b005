"""Fuzz the input loaders in-process: only ``InputError`` may come out of a bad file.

Seeds are valid files of every kind tpusim reads (trace CSVs and SCALE-Sim topologies from
``workloads/`` and ``tests/data/scalesim``, YAML presets, SCALE-Sim ``.cfg`` files, measurement
CSVs, small ONNX models built with onnx.helper); each input is a seed with 1-4 random mutations
(byte flips, inserted or deleted spans, duplicated or swapped lines, hostile tokens: huge or
negative numbers, ``true``, ``nan``, a BOM, NUL, YAML anchors, CSV quotes) or, one time in
twenty, random bytes. Each goes to its loader through a file, as a user's would. Any exception
other than ``InputError`` is a failure: the first few of each kind are printed with the input
saved under ``--keep``.

Run: python benchmarks/fuzz_inputs.py [--count 100000] [--seconds 900] [--seed 0]
Prints the inputs tried, the failures found (by loader and exception) and inputs per second.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent

TOKENS = [b"", b",", b"\n", b"\r\n", b'"', b"#", b"true", b"false", b"yes", b"-1", b"0", b"1.5",
          b"nan", b"inf", b"1e400", b"100000000000000000", b"9" * 40, b"9" * 5000,
          b"\xef\xbb\xbf", b"\x00", b"\xff", b"&a ", b"*a", b"<<: ", b"{", b"}", b"[", b"]",
          b": ", b"- ", b"%", b"[architecture_presets]", b"=", b"\t", b"same", b"valid",
          b"conv2d", b"matmul", b"softmax", b"dynamic", b"int4", b"fp8_e4m3", b"Layer name",
          b"name,op,m,k,n\n", b"1" * 16, b",,,,,,,,", b" " * 100, b"x" * 140_000,
          b"[" * 3000, b"- " * 2000, b'"' + b"a\n" * 50]


def onnx_seeds() -> list[bytes]:
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as oh

    def init(name, dims):
        import math
        return oh.make_tensor(name, TP.FLOAT, dims, [0.0] * math.prod(dims))

    x = oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])
    y = oh.make_tensor_value_info("y", TP.FLOAT, [1, 10])
    nodes = [oh.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node("GlobalAveragePool", ["r1"], ["p1"]),
             oh.make_node("Flatten", ["p1"], ["f1"]),
             oh.make_node("MatMul", ["f1", "w2"], ["m1"]),
             oh.make_node("Softmax", ["m1"], ["y"])]
    g = oh.make_graph(nodes, "g", [x], [y], [init("w1", [4, 3, 3, 3]), init("w2", [4, 10])])
    cnn = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    cnn.ir_version = 8
    a = oh.make_tensor_value_info("a", TP.FLOAT, [4, 16])
    b = oh.make_tensor_value_info("b", TP.FLOAT, [4, 8])
    g2 = oh.make_graph([oh.make_node("Gemm", ["a", "w"], ["b"])], "g2", [a], [b],
                       [init("w", [16, 8])])
    gemm = oh.make_model(g2, opset_imports=[oh.make_opsetid("", 17)])
    gemm.ir_version = 8
    return [onnx.ModelProto.SerializeToString(cnn), gemm.SerializeToString()]


def _head(data: bytes, lines: int = 12) -> bytes:
    """The first lines of a file: short seeds make each mutation count and each load fast."""
    return b"\n".join(data.split(b"\n")[:lines]) + b"\n"


def _uncommented(data: bytes) -> bytes:
    """A YAML preset without its comments (PyYAML spends most of its time scanning them)."""
    return b"\n".join(ln.split(b" #")[0] for ln in data.split(b"\n")
                      if not ln.lstrip().startswith(b"#")) + b"\n"


def seeds() -> dict[str, list[bytes]]:
    data = ROOT / "tests" / "data" / "scalesim"
    traces = sorted((ROOT / "workloads").rglob("*.csv"))[:8]
    topos = sorted((data / "topologies").rglob("*.csv"))
    corpus = ROOT / "tests" / "bad_inputs"
    return {
        "trace": [_head(p.read_bytes()) for p in traces]
        + [(corpus / "good" / "trace.csv").read_bytes()],
        "topology": [_head(p.read_bytes()) for p in topos],
        "yaml": [_uncommented(p.read_bytes()) for p in sorted((ROOT / "configs").glob("*.yaml"))]
        + [(corpus / "good" / "chip.yaml").read_bytes()],
        "cfg": [p.read_bytes() for p in sorted((data / "configs").glob("*.cfg"))],
        "measurements": [b"m,k,n,latency_us,latency_std_us,dtype\n128,128,128,3.5,0.1,bf16\n"
                         b"# a comment\n256,512,128,9.25,,int8\n",
                         b"name,op,in_h,in_w,in_c,out_c,kernel_h,kernel_w,latency_us\n"
                         b"c,conv2d,8,8,4,4,3,3,2.0\n"],
        "onnx": onnx_seeds(),
    }


def loaders() -> dict[str, tuple[str, Callable[[Path], object]]]:
    from tpusim.calibrate import read_measurements
    from tpusim.config import load_config
    from tpusim.importers import load_workload
    from tpusim.importers.onnx import load_onnx_workload
    from tpusim.importers.scalesim import load_topology
    return {
        "trace": (".csv", load_workload),
        "topology": (".csv", load_topology),
        "yaml": (".yaml", load_config),
        "cfg": (".cfg", load_config),
        "measurements": (".csv", read_measurements),
        "onnx": (".onnx", load_onnx_workload),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random edit of ``data``."""
    op = rng.randrange(9)
    n = len(data)
    pos = rng.randrange(n + 1) if n else 0
    if op == 0 and n:                                   # flip a byte
        return data[:pos % n] + bytes([rng.randrange(256)]) + data[pos % n + 1:]
    if op == 1:                                         # insert a hostile token
        return data[:pos] + rng.choice(TOKENS) + data[pos:]
    if op == 2 and n:                                   # delete a span
        end = min(n, pos + rng.randrange(1, 64))
        return data[:pos] + data[end:]
    if op == 3:                                         # replace a number-ish run with a token
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        cells = lines[i].split(b",")
        cells[rng.randrange(len(cells))] = rng.choice(TOKENS)
        lines[i] = b",".join(cells)
        return b"\n".join(lines)
    if op == 4:                                         # duplicate a line
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        return b"\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    if op == 5:                                         # swap two lines
        lines = data.split(b"\n")
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if op == 6 and n:                                   # truncate
        return data[:pos]
    if op == 7:                                         # random bytes in the middle
        return data[:pos] + rng.randbytes(rng.randrange(1, 16)) + data[pos:]
    return data.replace(b"1", rng.choice([b"0", b"-1", b"99999999999999999", b"1.0"]), 1)


def fuzz_input(kind: str, pool: list[bytes], rng: random.Random) -> bytes:
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(0, 512))
    data = rng.choice(pool)
    for _ in range(rng.randint(1, 4)):
        data = mutate(data, rng)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=900.0, help="stop early after this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=Path("results/fuzz"),
                    help="where failing inputs are saved")
    args = ap.parse_args(argv)

    import warnings
    warnings.simplefilter("ignore")
    from tpusim.errors import InputError

    rng = random.Random(args.seed)
    pool, load = seeds(), loaders()
    kinds = list(load)
    # ONNX loading (protobuf + shape inference) is ~10x slower than the text loaders: it gets a
    # tenth of the inputs so that every kind sees a similar share of the run time.
    weights = [0.1 if k == "onnx" else 1.0 for k in kinds]
    failures: Counter[tuple[str, str]] = Counter()
    tried: Counter[str] = Counter()
    shown = set()
    t0 = time.perf_counter()
    shm = Path("/dev/shm")   # a RAM disk where there is one: the run is not about disk speed
    with tempfile.TemporaryDirectory(prefix="tpusim-fuzz-",
                                     dir=shm if shm.is_dir() else None) as tmp:
        for kind, datas in pool.items():   # the seeds are valid: mutations start from sense
            for j, data in enumerate(datas):
                path = Path(tmp) / f"seed{j}{load[kind][0]}"
                path.write_bytes(data)
                load[kind][1](path)
        print(f"seeds: {sum(map(len, pool.values()))} valid files of {len(pool)} kinds")
        for i in range(args.count):
            if time.perf_counter() - t0 > args.seconds:
                break
            kind = rng.choices(kinds, weights)[0]
            suffix, loader = load[kind]
            data = fuzz_input(kind, pool[kind], rng)
            path = Path(tmp) / f"input{suffix}"
            path.write_bytes(data)
            tried[kind] += 1
            try:
                loader(path)
            except InputError as exc:
                if "\n" in str(exc):
                    failures[(kind, "InputError with a newline")] += 1
            except Exception as exc:   # noqa: BLE001 - this is what the fuzzer looks for
                key = (kind, f"{type(exc).__name__}")
                failures[key] += 1
                if key not in shown:
                    shown.add(key)
                    args.keep.mkdir(parents=True, exist_ok=True)
                    keep = args.keep / f"{kind}-{type(exc).__name__}{suffix}"
                    keep.write_bytes(data)
                    tb = traceback.format_exception(exc)[-3:]
                    print(f"FAIL {kind}: {type(exc).__name__}: {str(exc)[:200]} (input: {keep})\n"
                          + "".join(tb), file=sys.stderr)
    dt = time.perf_counter() - t0
    total = sum(tried.values())
    print(f"inputs tried: {total} in {dt:.1f} s ({total / dt:.0f}/s); by loader: "
          + ", ".join(f"{k} {v}" for k, v in sorted(tried.items())))
    print(f"failures (anything but a one-line InputError): {sum(failures.values())}")
    for (kind, what), n in sorted(failures.items()):
        print(f"  {kind}: {what} x{n}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

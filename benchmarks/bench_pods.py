"""Pods speed and sanity benchmark (numbers go into the issue notes; nothing here asserts).

    python benchmarks/bench_pods.py [--repeat 3] [--search]

``measure()`` returns the speed targets of issue 13 as a list of dicts (target, goal, measured,
unit, better): the sharding search for Llama-2-70B on v5p-256 (candidate layouts priced, and its
seconds) and one cold step of Llama-3.1-405B on 9,216 Ironwood chips. Seconds are wall-clock
medians; ``cpu_s`` next to them is the process CPU time, which a loaded machine inflates less.

Times one ``train_step`` (first call, which simulates the shard, and a repeat, which reuses it)
for the cases below, prints their predicted MFU and tokens/s/chip next to the published MaxText /
PaLM figures (predictions: nothing is fitted to them), and with ``--search`` times the sharding
search for Llama-2-70B on v5p-512. Reports medians of ``--repeat`` fresh-process-free runs.
"""
from __future__ import annotations

import argparse
import statistics
import time

from tpusim.config import load_config
from tpusim.importers.llm import get_preset
from tpusim.pod import costs
from tpusim.pod import train as train_mod
from tpusim.pod.search import search
from tpusim.pod.sharding import parse_spec
from tpusim.pod.topology import make_slice

# chip, model, shape, slices, spec, seq, global batch, attention, published (MFU, tok/s/chip)
CASES = [
    ("tpu_v5p", "llama2_70b", "4x8x8", 1, "fsdp=256", 4096, 1024, "causal", (0.654, 692)),
    ("tpu_v5p", "mixtral_8x7b", "4x4x8", 1, "fsdp=128", 4096, 1024, "causal", (0.5256, 2909)),
    ("tpu_v4", "palm_540b", "12x16x16", 2, "dp=2,fsdp=256,tp=12,sp", 2048, 2048, "full",
     (0.462, None)),
    ("tpu_v7", "llama3_1_405b", "16x24x24", 1, "fsdp=1152,tp=8,sp", 8192, 2304, "causal",
     (None, None)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--search", action="store_true")
    args = ap.parse_args()
    for chip_n, model_n, shape, slices, spec, seq, gb, att, pub in CASES:
        chip, model = load_config(chip_n), get_preset(model_n)
        sl = make_slice(chip.ici, chip.dcn, shape=shape, slices=slices)
        cold, warm = [], []
        for _ in range(args.repeat):
            costs.clear()
            t = time.perf_counter()
            r = train_mod.train_step(chip, model, sl, parse_spec(spec), seq, gb, attention=att)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            train_mod.train_step(chip, model, sl, parse_spec(spec), seq, gb, attention=att)
            warm.append(time.perf_counter() - t)
        print(f"{model_n} on {chip_n} {sl.label()} {spec}: step {r.step_s:.3g} s, MFU "
              f"{r.mfu:.1%} (published {pub[0] if pub[0] else '-'}), "
              f"{r.tokens_per_s_per_chip:.0f} tok/s/chip (published {pub[1] or '-'}), "
              f"{r.hbm_gib_per_chip:.1f} GiB/chip; simulated in {statistics.median(cold):.2f} s "
              f"cold, {statistics.median(warm) * 1e3:.1f} ms warm")
    if args.search:
        for row in measure(args.repeat):
            print(row)


def _timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeat`` cold calls (memo cleared), and the last value."""
    wall, cpu, out = [], [], None
    for _ in range(repeat):
        costs.clear()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu), out


def measure(repeat: int = 3) -> list[dict]:
    """The issue's speed targets, measured (module docstring)."""
    chip, model = load_config("tpu_v5p"), get_preset("llama2_70b")
    sl = make_slice(chip.ici, chip.dcn, shape="4x8x8")
    stats: dict = {}
    wall, cpu, best = _timed(lambda: search(chip, model, sl, 4096, 1024, stats=stats), repeat)
    rows = [
        {"target": "search llama2_70b v5p-256: candidate layouts", "goal": 1000,
         "measured": stats["candidates"], "unit": "layouts", "better": "higher",
         "fit": stats["fit"], "distinct_shards": stats["programs"]},
        {"target": "search llama2_70b v5p-256: seconds", "goal": 10.0, "measured": wall,
         "unit": "s", "better": "lower", "cpu_s": cpu,
         "best": f"{best[0].spec.label()} remat {best[0].remat} x{best[0].microbatches}"},
    ]
    chip, model = load_config("tpu_v7"), get_preset("llama3_1_405b")
    sl = make_slice(chip.ici, chip.dcn, shape="16x24x24")
    wall, cpu, _ = _timed(lambda: train_mod.train_step(
        chip, model, sl, parse_spec("fsdp=1152,tp=8,sp"), 8192, 2304), repeat)
    rows.append({"target": "step llama3_1_405b on 9,216 tpu_v7, cold", "goal": 1.0,
                 "measured": wall, "unit": "s", "better": "lower", "cpu_s": cpu})
    return rows

if __name__ == "__main__":
    main()

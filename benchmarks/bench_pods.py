"""Pods speed and sanity benchmark (numbers go into the issue notes; nothing here asserts).

    python benchmarks/bench_pods.py [--repeat 3] [--search]

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
from tpusim.pod import train as train_mod
from tpusim.pod.search import candidate_specs, search
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
            train_mod._SIMULATED.clear()
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
        chip, model = load_config("tpu_v5p"), get_preset("llama2_70b")
        sl = make_slice(chip.ici, chip.dcn, shape="4x8x8")
        train_mod._SIMULATED.clear()
        t = time.perf_counter()
        best = search(chip, model, sl, 4096, 1024)
        n = len(candidate_specs(model, sl)) * 3
        print(f"search: {n} candidates (specs x remat) in {time.perf_counter() - t:.1f} s; best "
              f"{best[0].spec.label()} remat {best[0].remat}, MFU {best[0].result.mfu:.1%}")


if __name__ == "__main__":
    main()

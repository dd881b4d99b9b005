"""The MoE layer's grouped-matmul kernel (pod/moe.py) against hand counts, brute-force
enumeration of routings, and the kernel's byte counts."""
from __future__ import annotations

import itertools
import math

import pytest

from tpusim.config import load_config
from tpusim.importers.llm import custom_config
from tpusim.pod import moe, train
from tpusim.pod.moe import expected_tile_visits, megablox_rows, tile_visits
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice
from tpusim.simulator import simulate
from tpusim.workload import Workload, make_layer


@pytest.mark.parametrize("sizes,tm,visits", [
    # rows 0-2 | 3-7 | (empty) | 8-15, tiles of 4: group 0 tile 0; group 1 tiles 0, 1 (it
    # starts inside tile 0); the empty group nothing; group 3 tiles 2, 3.
    ([3, 5, 0, 8], 4, 5),
    ([4, 4, 8], 4, 4),          # every boundary on a tile edge: one visit per tile
    ([0, 6, 2], 4, 3),          # rows 0-5 tiles 0, 1; rows 6-7 tile 1 again
    ([1, 1], 512, 2),           # two decode tokens padded into one tile, visited twice
])
def test_tile_visits_hand_counted(sizes, tm, visits):
    assert tile_visits(sizes, tm) == visits


def _brute_force(rows: int, groups: int, tm: int) -> float:
    """Average visits over every assignment of ``rows`` pairs to ``groups`` experts."""
    total = 0
    for assign in itertools.product(range(groups), repeat=rows):
        total += tile_visits([assign.count(g) for g in range(groups)], tm)
    return total / groups ** rows


@pytest.mark.parametrize("rows,groups,tm", [(4, 2, 2), (6, 3, 2), (7, 3, 4), (5, 4, 3)])
def test_expected_visits_equal_enumeration_of_routings(rows, groups, tm):
    assert expected_tile_visits(rows, groups, tm) == pytest.approx(
        _brute_force(rows, groups, tm), abs=1e-12)


def test_expected_visits_small_case_by_hand():
    # 4 pairs, 2 experts, tiles of 2: expert 1 starts at S ~ Binomial(4, 1/2); it costs a visit
    # when S is odd (S = 1 or 3, probability 8/16), so 2 tiles + 0.5.
    assert expected_tile_visits(4, 2, 2) == pytest.approx(2.5, abs=1e-12)
    assert expected_tile_visits(10, 1, 4) == 3.0       # one group: only the padding


def test_mixtral_rows_pay_almost_one_tile_per_boundary():
    # 8 sequences x 4,096 tokens x top-2 = 65,536 pairs over 8 experts in 512-row tiles: 128
    # tiles; a boundary S_g has sd sqrt(65536 g/8 (1 - g/8)) >= 85 rows, so it lands on a
    # tile edge with probability about 1/(sd sqrt(2 pi)) < 0.5%: nearly 7 extra visits.
    e = expected_tile_visits(65536, 8, 512)
    assert 128 + 7 * 0.99 < e < 135


def test_forward_gmm_moves_the_kernels_bytes():
    # 1,024 pairs over 2 experts, k 2,048, n 3,072: 2 tiles + a boundary that is almost surely
    # inside one -> 3 visits; n in 3 tiles of 1,024. The lhs block (512 x 2,048) is read once
    # per visit and n tile, one expert's 2,048 x 3,072 weights once per visit, and a 512 x
    # 1,024 output tile written per visit and n tile.
    logical = {"name": "expert_up", "op": "matmul", "batch": 2, "m": 512, "k": 2048, "n": 3072,
               "weights": "dynamic", "weight_dtype": "bf16", "act_dtype": "bf16"}
    (row,) = megablox_rows([logical], rows_per_chip=1024, groups=2)
    assert (row["batch"], row["m"], row["k"], row["n"]) == (9, 512, 2048, 1024)
    layer = make_layer(row, "t")
    assert layer.macs == 3 * 512 * 2048 * 3072
    df = simulate(load_config("tpu_v6e"), Workload(name="t", layers=(layer,), source="t")).layers
    assert df["hbm_read_bytes"][0] == 2 * (3 * 512 * 2048 * 3 + 3 * 2048 * 3072)
    assert df["hbm_write_bytes"][0] == 2 * 3 * 512 * 3072


def test_backward_rows_become_gmm_and_tgmm_tiles():
    fwd = {"name": "expert_down", "op": "matmul", "batch": 2, "m": 512, "k": 3072, "n": 2048,
           "weights": "dynamic", "weight_dtype": "bf16", "act_dtype": "bf16"}
    dgrad, wgrad = train.backward_rows([fwd])
    d, w, other = megablox_rows([dgrad, wgrad, {"name": "moe_permute", "op": "transpose",
                                                "elements": 8}], 1024, 2)
    # input gradient: a gmm of tokens x 2,048 by 2,048 x 3,072 per expert: 3 visits x 3 n tiles
    assert (d["batch"], d["m"], d["k"], d["n"]) == (9, 512, 2048, 1024)
    # weight gradient: tgmm, one 1,024 x 1,024 accumulator per expert, k tile and n tile
    # (2 x 3 x 2 = 12 blocks), each summing over its expert's share of the 3 x 512 rows
    assert (w["batch"], w["m"], w["k"], w["n"]) == (12, 1024, 768, 1024)
    assert make_layer(w, "t").macs == 3 * 512 * 3072 * 2048
    assert other["elements"] == 8


def test_train_step_runs_the_padded_tiles(monkeypatch):
    # 1 x 256 tokens x top-2 = 512 pairs over 4 experts: one 512-row tile, and each of the 3
    # boundaries almost surely inside it -> 4 visits, 1,536 rows of padding per matmul. Three
    # expert matmuls (gate, up, down) of 1,024 x 2,048 per layer each run 4 times (forward,
    # recompute, input gradient, weight gradient): 2 layers x 3 x 4 x 1,536 x 1,024 x 2,048
    # extra MACs.
    cfg = custom_config(name="moe", hidden=1024, layers=2, heads=8, kv_heads=8, ffn=2048,
                        vocab=1024, gated=True, act="silu", norm="rmsnorm", experts=4, top_k=2)
    chip = load_config("tpu_v5p")
    sl = make_slice(chip.ici, chip.dcn, shape="1")
    assert math.ceil(expected_tile_visits(512, 4, 512)) == 4

    def macs_run(r):
        return r.hfu * r.step_s * chip.peak_tops("bf16") * 1e12 / 2

    kernel = train.train_step(chip, cfg, sl, ParallelSpec(), 256, 1, memo=False)
    monkeypatch.setattr(train, "megablox_rows", lambda rows, *a, **k: rows)
    logical = train.train_step(chip, cfg, sl, ParallelSpec(), 256, 1, memo=False)
    extra = 2 * 3 * 4 * 1536 * 1024 * 2048
    assert macs_run(kernel) - macs_run(logical) == pytest.approx(extra, rel=1e-9)
    assert kernel.mfu < logical.mfu
    assert moe.MEGABLOX_TILING == (512, 1024, 1024)


def test_max_of_normals_closed_forms():
    # E[max] of 2 and 3 standard normals: 1/sqrt(pi) and 3/(2 sqrt(pi)) (order statistics).
    assert moe.max_of_normals(1) == 0.0
    assert moe.max_of_normals(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-9)
    assert moe.max_of_normals(3) == pytest.approx(3 / (2 * math.sqrt(math.pi)), abs=1e-9)


def test_busiest_shard_against_exact_multinomial():
    # 2 shards: max = P + |X - P|, X ~ Binomial(2P, 1/2), whose mean absolute deviation is
    # P C(2P, P) / 4^P (de Moivre).
    p = 5000
    mad = math.exp(math.log(p) + math.lgamma(2 * p + 1) - 2 * math.lgamma(p + 1)
                   - p * math.log(4))
    assert moe.busiest_shard_rows(p, 2) - p == pytest.approx(mad, rel=1e-4)
    # 3 shards, 50 pairs each: the exact expectation over every split of the 150 pairs.
    n, lf = 150, [math.lgamma(i + 1) for i in range(151)]
    exact = sum(math.exp(lf[n] - lf[a] - lf[b] - lf[n - a - b] - n * math.log(3))
                * max(a, b, n - a - b) for a in range(n + 1) for b in range(n + 1 - a))
    assert moe.busiest_shard_rows(50, 3) - 50 == pytest.approx(exact - 50, rel=0.01)
    assert moe.busiest_shard_rows(77, 1) == 77


def test_expert_parallel_pace_is_the_busiest_shard():
    # 2 shards x 1,024 pairs: the busiest gets 1,024 + 32 x 0.564 = 1,042.05 -> 1,043 pairs,
    # in 3 tiles (1 expert per shard: no boundary) -> the gmm runs 3 visits x 3 n tiles; the
    # activation runs on 1,043 of every 1,024 rows.
    up = {"name": "expert_up", "op": "matmul", "batch": 1, "m": 1024, "k": 2048, "n": 3072,
          "weights": "dynamic", "weight_dtype": "bf16", "act_dtype": "bf16"}
    act = {"name": "expert_silu_bwd", "op": "silu", "elements": 1024 * 3072}
    comb = {"name": "expert_combine", "op": "mul", "elements": 1024 * 4}
    g, a, c = megablox_rows([up, act, comb], 1024, groups=1, shards=2)
    assert g["batch"] == 9 and a["elements"] == 1043 * 3072
    assert c == comb                       # the combine runs on this chip's own tokens
    g1, a1, _ = megablox_rows([up, act, comb], 1024, groups=1, shards=1)
    assert g1["batch"] == 2 * 3 and a1 == act


def test_expert_parallel_trace_sorts_received_pairs_locally():
    cfg = custom_config(name="moe", hidden=512, layers=2, heads=8, kv_heads=8, ffn=1024,
                        vocab=1024, gated=True, act="silu", norm="rmsnorm", experts=4, top_k=2)
    from tpusim.importers.llm import llm_rows
    names = [r["name"] for r in llm_rows(cfg, "prefill", batch=1, seq=64)]
    assert "expert_local_sort" not in names
    shard = train.shard_config(cfg, ParallelSpec(ep=2))
    rows = {r["name"]: r for r in llm_rows(shard, "prefill", batch=1, seq=64)}
    order = list(rows)
    assert order.index("moe_permute") < order.index("expert_local_sort") < \
        order.index("expert_gate")
    assert order.index("expert_down") < order.index("expert_local_unsort") < \
        order.index("expert_combine")
    assert rows["expert_local_sort"]["elements"] == 64 * 2 * 512

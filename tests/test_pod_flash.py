"""The flash-attention backward kernel (pod/flash.py) against hand counts: five tile GEMMs per
causal tile, the HBM bytes the chain is charged, HFU with the recomputed scores, and attention
FLOPs per token that never fall as the sequence grows."""
from __future__ import annotations

import pytest

from tpusim.config import load_config
from tpusim.importers.llm import custom_config, llm_rows
from tpusim.pod.costs import simulate_rows
from tpusim.pod.flash import DS_OPS, P_OPS, flash_attention, flash_backward
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice
from tpusim.pod.train import backward_rows, train_step
from tpusim.simulator import simulate
from tpusim.workload import Workload, make_layer

CHIP = load_config("tpu_v5p")
TINY = custom_config(name="tiny", hidden=512, layers=4, heads=8, kv_heads=2, ffn=2048,
                     vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
G, D = 4, 64            # 8 query heads over 2 KV heads; head_dim 512 / 8


def _kernel(seq, batch=2, block=1024, causal=True):
    fwd = flash_attention(llm_rows(TINY, "prefill", batch=batch, seq=seq), G, seq, block, causal)
    return fwd, flash_backward(fwd, G, seq, block, causal)


def test_backward_macs_are_five_tile_gemms_times_causal_tiles():
    _, bwd = _kernel(4096)
    gemms = [r for r in bwd if r["op"] == "matmul"]
    assert [r["name"] for r in gemms] == ["attn_bwd_s", "attn_bwd_dv", "attn_bwd_dp",
                                          "attn_bwd_dq", "attn_bwd_dk"]
    tiles = 4 * 5 // 2                                   # 4 query blocks, causal: 10 of 16
    per_tile = 5 * (G * 1024) * 1024 * D                 # each GEMM: group bq x bk x d MACs
    count = TINY.layers * 2 * TINY.kv_heads * tiles      # layers x sequences x KV heads x tiles
    assert all(r["count"] == count for r in gemms)
    assert sum(make_layer(r).macs * r["count"] for r in gemms) == per_tile * count
    fused = {r["name"]: r for r in bwd if r.get("fused")}
    assert fused["attn_bwd_p"]["ops_per_element"] == P_OPS == 3
    assert fused["attn_bwd_ds"]["ops_per_element"] == DS_OPS == 2
    assert fused["attn_bwd_p"]["elements"] == G * 1024 * 1024


def test_backward_replaces_the_generic_rule_for_attention_only():
    fwd, att = _kernel(2048)
    bwd = backward_rows(fwd, att)
    names = [r["name"] for r in bwd]
    assert not any(n.startswith(("attn_qk", "attn_av", "attn_softmax")) for n in names)
    assert names.index("attn_bwd_d") == names.index("rope_bwd") + 1
    generic = [r for r in backward_rows(fwd) if not r["name"].startswith(
        ("attn_qk", "attn_av", "attn_softmax"))]
    assert [r for r in bwd if not r["name"].startswith("attn_bwd")] == generic


def test_backward_hbm_bytes_match_the_closed_form_of_the_chain():
    # One tile, bf16: the score tiles (S, P, dP, dS) and the dQ/dK/dV accumulators stay in VMEM;
    # what crosses HBM is each GEMM's second operand: K (S), dO (dV), V (dP), K (dQ), Q (dK),
    # plus Q, the first GEMM's streamed input (rope's output before it does not fit VMEM).
    _, bwd = _kernel(4096, batch=1)
    tile = [{**r, "count": 1} for r in bwd if r["name"] != "attn_bwd_d"]
    big = {"name": "before", "op": "add", "elements": 2 ** 27, "act_dtype": "bf16"}
    one_core = load_config("tpu_v6e")          # one TensorCore: each operand read once
    assert one_core.array.cores == 1
    df = simulate(one_core, Workload(name="t", layers=tuple(make_layer(r) for r in [big] + tile),
                                 source="t")).layers.iloc[1:]
    q = do = G * 1024 * D * 2
    k = v = 1024 * D * 2
    assert df["hbm_read_bytes"].sum() == q + k + do + v + k + q
    # only dK, as this workload's last row (a last output lives in HBM), is written
    assert df["hbm_write_bytes"].sum() == df["hbm_write_bytes"].iloc[-1] == 1024 * D * 2
    # before the tiles: D = rowsum(dO * O) reads dO and writes a tensor of its size
    d = next(r for r in bwd if r["name"] == "attn_bwd_d")
    assert d["elements"] == 1 * TINY.heads * 4096 * D and d["count"] == TINY.layers


def test_hfu_counts_the_recomputed_scores_once_per_tile():
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="1")
    r = train_step(CHIP, TINY, sl, ParallelSpec(), seq=2048, global_batch=1, remat="none",
                   attention="causal")
    fwd, att = _kernel(2048, batch=1)
    rows = fwd + backward_rows(fwd, att)
    macs = sum(m for _, m in simulate_rows(CHIP, rows, per_instance=True))
    assert r.hfu == pytest.approx(2 * macs / (r.step_s * CHIP.peak_tops("bf16") * 1e12))
    s = next(x for x in att if x["name"] == "attn_bwd_s")
    qk = next(x for x in fwd if x["name"] == "attn_qk")
    assert make_layer(s).macs * s["count"] == make_layer(qk).macs * qk["count"]


@pytest.mark.parametrize("block", [512, 1024])
def test_attention_flops_per_token_never_fall_with_sequence(block):
    def per_token(seq):
        fwd, att = _kernel(seq, batch=1, block=block)
        mm = [r for r in fwd if r["name"] in ("attn_qk", "attn_av")] + \
            [r for r in att if r["op"] == "matmul"]
        return sum(make_layer(r).macs * r["count"] for r in mm) / seq
    got = [per_token(s) for s in (256, 512, 1024, 2048, 4096, 8192)]
    assert all(b >= a for a, b in zip(got, got[1:]))
    assert got[-1] > got[0]

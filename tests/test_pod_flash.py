"""The flash-attention backward kernel (pod/flash.py) against hand counts: five tile GEMMs per
causal tile, the HBM bytes the chain is charged, HFU with the recomputed scores, and attention
FLOPs per token that never fall as the sequence grows."""
from __future__ import annotations

import pytest

from tpusim.config import load_config
from tpusim.importers.llm import custom_config, llm_rows
from tpusim.pod.costs import simulate_rows
from tpusim.pod.flash import DS_OPS, FORWARD_ROWS, P_OPS, flash_attention, flash_backward
from tpusim.pod.flash_blocks import FlashBlocks
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
    assert fused["attn_bwd_p"]["ops_per_element"] == P_OPS == 2   # exp(S - L): subtract, exp
    assert fused["attn_bwd_ds"]["ops_per_element"] == DS_OPS == 2
    assert fused["attn_bwd_p"]["elements"] == G * 1024 * 1024


def test_backward_replaces_the_generic_rule_for_attention_only():
    fwd, att = _kernel(2048)
    bwd = backward_rows(fwd, att)
    names = [r["name"] for r in bwd]
    kernel = ("attn_qk", "attn_av", "attn_softmax", "attn_out")    # the forward kernel's rows
    assert not any(n.startswith(kernel) for n in names)
    assert names.index("attn_bwd_d") == names.index("rope_bwd") + 1
    generic = [r for r in backward_rows(fwd) if not r["name"].startswith(kernel)]
    assert [r for r in bwd if not r["name"].startswith("attn_bwd")] == generic


def _hbm_per_layer(rows, core):
    """(read, written) HBM bytes of one layer's instances of ``rows`` on one TensorCore."""
    one = [{**r, "count": r["count"] // TINY.layers} for r in rows]
    chip = load_config("tpu_v6e")              # one TensorCore: each operand read once
    assert chip.array.cores == 1
    df = simulate(chip, Workload(name="t", layers=tuple(make_layer(r) for r in one),
                                 source="t"), core=core).layers
    n = [r["count"] for r in one]
    return (float((df["hbm_read_bytes"] * n).sum()), float((df["hbm_write_bytes"] * n).sum()))


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_attention_hbm_bytes_are_the_flash_kernels_closed_form(core):
    # Hand count, one layer, 1 sequence of 4096, 2 KV heads x G = 4 query heads, d = 64, bf16,
    # 1024 x 1024 tiles: nq = nk = 4 blocks, T = 10 causal tiles. Elements per KV head:
    # G S d = 4 x 4096 x 64 = 1,048,576; a Q/dO/dQ block G bq d = 262,144; a K/V block 65,536.
    fwd, bwd = _kernel(4096, batch=1)
    heads, b = 2, 2
    gsd, qblk, kblk, tiles, nk = 1_048_576, 262_144, 65_536, 10, 4
    # forward (FA2 Alg. 1): K_j, V_j per tile; Q_i read and O_i written once per query block
    att = [r for r in fwd if r["name"] in ("attn_qk", "attn_softmax", "attn_av", "attn_out")]
    assert _hbm_per_layer(att, core) == (heads * b * (2 * tiles * kblk + gsd),   # 9,437,184
                                         heads * b * gsd)                        # 4,194,304
    # backward (FA2 Alg. 2): D reads dO and O; per tile Q_i, dO_i, dQ_i read and dQ_i written;
    # per key block K_j, V_j read and dK_j, dV_j written
    assert _hbm_per_layer(bwd, core) == (
        heads * b * (2 * gsd + 3 * tiles * qblk + 2 * nk * kblk),               # 41,943,040
        heads * b * (tiles * qblk + 2 * nk * kblk))                             # 12,582,912


def test_flash_block_rows_run_once_per_block():
    fwd, bwd = _kernel(4096, batch=2)
    out = next(r for r in fwd if r["name"] == "attn_out")
    kv = next(r for r in bwd if r["name"] == "attn_bwd_kv")
    blocks = TINY.layers * 2 * TINY.kv_heads * 4          # layers x sequences x KV heads x 4
    assert out["count"] == kv["count"] == blocks
    assert out["elements"] == G * 1024 * D and kv["elements"] == 2 * 1024 * D
    d = next(r for r in bwd if r["name"] == "attn_bwd_d")  # dO and O, D_OPS per element of dO
    assert d["elements"] == 2 * 2 * TINY.heads * 4096 * D and d["count"] == TINY.layers
    assert d["elements"] * d["ops_per_element"] == 2 * TINY.heads * 4096 * D * 2


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


def test_hbm_field_is_validated_and_normalised():
    from tpusim.errors import InputError
    row = {"name": "t", "op": "matmul", "m": 64, "k": 64, "n": 64}
    assert make_layer({**row, "hbm": "OW"}).hbm == "wo"
    assert make_layer({**row, "hbm": "none"}).hbm == ""
    assert make_layer(row).hbm is None
    for bad in ("x", "ii", ""):
        with pytest.raises(InputError, match="column hbm"):
            make_layer({**row, "hbm": bad})


# Per-pass blocks (pod/flash_blocks.py). The recipe-like case below, hand counted for one layer,
# 1 sequence of 4096, 2 KV heads x G = 4 query heads, d = 64, bf16:
# forward q 1024 x kv 512 in 2 steps of 256: nq = 4, nk = 8, causal tiles 2 + 4 + 6 + 8 = 20;
# dK/dV kernel q 2048 x kv 512 (steps of 256) and dQ kernel q 2048 x kv 512: nq = 2, nk = 8,
# causal tiles 4 + 8 = 12 each.
UNFUSED = FlashBlocks(q=1024, kv=512, kv_compute=256, q_dkv=2048, kv_dkv=512,
                      kv_dkv_compute=256, q_dq=2048, kv_dq=512, fused_bwd=False)


def _blocked(seq, blocks, batch=1):
    fwd = flash_attention(llm_rows(TINY, "prefill", batch=batch, seq=seq), G, seq,
                          blocks=blocks)
    return fwd, flash_backward(fwd, G, seq, blocks=blocks)


def _gemm_macs(rows):
    return sum(make_layer(r).macs * r.get("count", 1) for r in rows
               if r["op"] == "matmul")


def test_default_blocks_are_the_square_fused_kernel():
    assert _blocked(4096, FlashBlocks()) == _kernel(4096, batch=1)
    assert _blocked(4096, FlashBlocks.square(512)) == _kernel(4096, batch=1, block=512)


def test_unfused_backward_runs_four_then_three_gemms_per_tile():
    fwd, bwd = _blocked(4096, UNFUSED)
    heads = TINY.layers * TINY.kv_heads                  # layers x sequences x KV heads
    gemms = [r for r in bwd if r["op"] == "matmul"]
    assert [r["name"] for r in gemms] == [
        "attn_bwd_s", "attn_bwd_dv", "attn_bwd_dp", "attn_bwd_dk",            # dK/dV, step 1
        "attn_bwd_s_step", "attn_bwd_dv_step", "attn_bwd_dp_step", "attn_bwd_dk_step",
        "attn_dq_s", "attn_dq_dp", "attn_dq_dq"]                              # dQ kernel
    by = {r["name"]: r for r in bwd}
    assert by["attn_bwd_s"]["count"] == by["attn_bwd_s_step"]["count"] == heads * 12
    assert (by["attn_bwd_s"]["m"], by["attn_bwd_s"]["k"], by["attn_bwd_s"]["n"]) == \
        (G * 2048, D, 256)
    assert by["attn_dq_s"]["count"] == heads * 12 and by["attn_dq_s"]["n"] == 512
    tile = G * 2048 * 512 * D                             # MACs of one GEMM over a whole tile
    assert _gemm_macs(bwd) == 7 * 12 * tile * heads
    # forward: 20 tiles x 2 steps of QK^T and AV at 256 keys, the rescale on the second step
    by_f = {r["name"]: r for r in fwd}
    # the first step of each tile launches it (attn_qk), the second runs inside (attn_qk_step)
    assert by_f["attn_qk"]["count"] == by_f["attn_qk_step"]["count"] == heads * 20
    assert by_f["attn_qk_step"]["continues"] and not by_f["attn_qk"].get("continues")
    assert by_f["attn_qk"]["n"] == by_f["attn_qk_step"]["n"] == 256
    assert by_f["attn_av"]["count"] == heads * 40
    assert _gemm_macs([by_f["attn_qk"], by_f["attn_qk_step"], by_f["attn_av"]]) == \
        2 * 20 * (G * 1024 * 512 * D) * heads
    assert by_f["attn_rescale"]["count"] == heads * 20
    assert by_f["attn_rescale"]["elements"] * by_f["attn_rescale"]["ops_per_element"] == \
        2 * G * 1024 * D
    assert by["attn_dq_in"]["count"] == by["attn_dq_out"]["count"] == heads * 2


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_unfused_hbm_bytes_are_the_two_kernels_loop_orders(core):
    fwd, bwd = _blocked(4096, UNFUSED)
    heads, b = 2, 2
    gsd, kblk = 1_048_576, 32_768                        # G S d; a 512-key K/V block, 512 x 64
    qblk = 4 * 2048 * 64                                 # a 2048-row Q/dO/dQ block of G heads
    att = [r for r in fwd if r["name"] in FORWARD_ROWS]
    # forward: K_j, V_j per tile (20), Q read and O written once
    assert _hbm_per_layer(att, core) == (heads * b * (2 * 20 * kblk + gsd), heads * b * gsd)
    reads = (2 * gsd                       # D: dO and O
             + 2 * 12 * qblk               # dK/dV kernel: Q_i, dO_i per tile
             + 2 * 8 * kblk                # ... K_j, V_j per key block
             + 2 * 12 * kblk               # dQ kernel: K_j, V_j per tile
             + 2 * 2 * qblk)               # ... Q_i, dO_i per query block
    writes = 2 * 8 * kblk + 2 * qblk       # dK_j, dV_j per key block; dQ_i per query block
    assert reads == 18_087_936 and writes == 1_572_864
    assert _hbm_per_layer(bwd, core) == (heads * b * reads, heads * b * writes)


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_inner_steps_keep_the_bytes_and_macs_of_their_tile(core):
    whole = FlashBlocks(q=1024, kv=512, kv_compute=512, q_dkv=2048, kv_dkv=512,
                        kv_dkv_compute=512)
    split = FlashBlocks(q=1024, kv=512, kv_compute=128, q_dkv=2048, kv_dkv=512,
                        kv_dkv_compute=128)
    (fw, bw), (fs, bs) = _blocked(4096, whole), _blocked(4096, split)
    assert _gemm_macs(fw) == _gemm_macs(fs) and _gemm_macs(bw) == _gemm_macs(bs)
    assert _hbm_per_layer(bw, core) == _hbm_per_layer(bs, core)
    assert _hbm_per_layer([r for r in fw if r["name"] in FORWARD_ROWS], core) == \
        _hbm_per_layer([r for r in fs if r["name"] in FORWARD_ROWS], core)
    assert max(r["n"] for r in bs if r["name"].startswith("attn_bwd_s")) == 128
    # the fused backward: dQ_i read and written per tile, on the first step only
    assert sum(1 for r in bs if r["name"] == "attn_bwd_dq_step" and r["hbm"] == "none") == 1


def test_hfu_counts_the_unfused_kernels_recomputed_gemms():
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="1")
    kw = dict(seq=4096, global_batch=1, remat="none", attention="causal")
    r = train_step(CHIP, TINY, sl, ParallelSpec(), flash=UNFUSED, **kw)
    fwd, att = _blocked(4096, UNFUSED)
    rows = fwd + backward_rows(fwd, att)
    macs = sum(m for _, m in simulate_rows(CHIP, rows, per_instance=True))
    assert r.hfu == pytest.approx(2 * macs / (r.step_s * CHIP.peak_tops("bf16") * 1e12))
    fused = train_step(CHIP, TINY, sl, ParallelSpec(), flash=FlashBlocks(
        q=1024, kv=512, kv_compute=256, q_dkv=2048, kv_dkv=512, kv_dkv_compute=256), **kw)
    # the same tiles, two more GEMMs each (S and dP recomputed in the dQ kernel); same MFU
    # numerator, so the extra work shows as a longer step
    assert r.step_s > fused.step_s


def test_a_kernel_grid_step_pays_one_launch():
    # Hand count: the forward's and the backward's tiles each launch once (the tile's first
    # GEMM); the fused vector work, the other GEMMs, the inner steps and the per-block rows run
    # inside that step. The D pre-pass is an XLA op of its own.
    fb = FlashBlocks.parse("q=512,kv=1024,kv_compute=512,q_dkv=512,kv_dkv=1024,"
                           "kv_dkv_compute=512,q_dq=512,kv_dq=512,fused_bwd=0")
    fwd = flash_attention(llm_rows(TINY, "prefill", batch=1, seq=2048), G, 2048, blocks=fb)
    bwd = flash_backward(fwd, G, 2048, blocks=fb)
    att = [r for r in fwd if r["name"] in FORWARD_ROWS]
    launch = [r["name"] for r in att + bwd if not r.get("continues")]
    assert launch == ["attn_qk", "attn_bwd_d", "attn_bwd_s", "attn_dq_s"]
    rows = [next(r for r in fwd if r["name"] == "attn_norm")] + att + bwd
    df = simulate(CHIP, Workload(name="t", layers=tuple(make_layer(r) for r in rows),
                                 source="t")).layers
    over = float((df["overhead_cycles"] * df["count"]).sum())
    launches = sum(r["count"] for r in rows if not r.get("continues"))
    assert over == pytest.approx(launches * CHIP.timing.overhead_cycles_per_op, rel=1e-9)
    # one launch per grid step, however many inner steps: by hand, 2,048 tokens in 512-query x
    # 1,024-key blocks are 6 causal tiles per layer, sequence and KV head, each of 2 inner steps
    first = next(r for r in att if r["name"] == "attn_qk")
    assert first["count"] == TINY.layers * TINY.kv_heads * 6


def test_the_forward_deals_whole_heads_to_the_cores():
    # tpu_v5p, two cores: a tile instance holds one KV head per core, so K_j and V_j cross HBM
    # once per tile (the closed form above: 2 T bk d + G S d read, G S d written per KV head,
    # T = 10 tiles at S = 4096, 1024-blocks) and not once per core.
    fwd, _ = _kernel(4096, batch=1)
    fwd = flash_attention(llm_rows(TINY, "prefill", batch=1, seq=4096), G, 4096, 1024,
                          cores=CHIP.array.cores)
    att = [{**r, "count": r["count"] // TINY.layers} for r in fwd
           if r["name"] in ("attn_qk", "attn_softmax", "attn_av", "attn_out")]
    qk = att[0]
    assert qk["batch"] == 2 and qk["count"] == 10          # 2 KV heads side by side, 10 tiles
    df = simulate(CHIP, Workload(name="t", layers=tuple(make_layer(r) for r in att),
                                 source="t")).layers
    n = [r["count"] for r in att]
    read = float((df["hbm_read_bytes"] * n).sum())
    assert read == 2 * 2 * (2 * 10 * 65_536 + 1_048_576)  # heads x bf16 bytes x elements


def test_backward_kernels_run_on_one_core():
    # splash's backward grids have no parallel axis: on tpu_v5p the kernel's rows take what
    # they take on one of its two cores, the D pre-pass (an XLA op) what it takes on both.
    from tpusim.cores import core_chip
    _, bwd = _kernel(2048, batch=1)
    kernel = [r for r in bwd if r["name"] != "attn_bwd_d"]
    two = simulate_rows(CHIP, [bwd[0]] + kernel, memo=False)
    one = simulate_rows(core_chip(CHIP), kernel, memo=False)
    assert [t for t, _ in two[1:]] == pytest.approx([t for t, _ in one], rel=1e-12)
    assert two[0] == simulate_rows(CHIP, [bwd[0]], memo=False)[0]


def test_an_encoder_attends_every_tile():
    # bert_base attends both ways: no tile is skipped, so HFU (what runs) is at least MFU (the
    # model's FLOPs, attention not halved).
    from tpusim.importers.llm import get_preset
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="1")
    r = train_step(CHIP, get_preset("bert_base"), sl, ParallelSpec(), 512, 8, "none", 1, "full",
                   flash=FlashBlocks.parse("q=128,kv=128,q_dkv=128,kv_dkv=128,q_dq=128,"
                                           "kv_dq=128"))
    assert r.hfu >= r.mfu

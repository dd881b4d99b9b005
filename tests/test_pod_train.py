"""Training step: backward GEMMs against hand counts, MFU against PaLM's closed form, HFU == MFU
where they must agree, conservation of sharded state, the pipeline bubble, exposed collectives,
and one-line errors (batch, memory)."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import custom_config, get_preset, llm_rows
from tpusim.pod.sharding import ParallelSpec, parse_spec
from tpusim.pod.topology import make_slice
from tpusim.pod.train import backward_rows, model_flops_per_token, shard_config, train_step
from tpusim.workload import make_layer

CHIP = load_config("tpu_v5p")
TINY = custom_config(name="tiny", hidden=512, layers=4, heads=8, kv_heads=8, ffn=2048,
                     vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")


def _slice(shape):
    return make_slice(CHIP.ici, CHIP.dcn, shape=shape)


def _macs(rows):
    return sum(make_layer(r).macs * r.get("count", 1) for r in rows)


def test_backward_has_two_gemms_per_matmul_of_equal_macs():
    fwd = llm_rows(TINY, "prefill", batch=2, seq=64)
    bwd = backward_rows(fwd)
    mm = [r for r in fwd if r["op"] == "matmul"]
    assert _macs([r for r in bwd if r["op"] == "matmul"]) == 2 * _macs(mm)
    q = next(r for r in fwd if r["name"] == "qkv_proj")
    d = next(r for r in bwd if r["name"] == "qkv_proj_dgrad")
    w = next(r for r in bwd if r["name"] == "qkv_proj_wgrad")
    # dX = dY[m, n] W^T[n, k]; dW = X^T[k, m] dY[m, n]
    assert (d["m"], d["k"], d["n"]) == (q["m"], q["n"], q["k"])
    assert (w["m"], w["k"], w["n"], w["weights"]) == (q["k"], q["m"], q["n"], "dynamic")


def test_model_flops_per_token_palm_formula():
    m = get_preset("llama2_7b")
    n = m.linear_params()
    full = 6 * n + 12 * 32 * 32 * 128 * 4096
    assert model_flops_per_token(m, 4096, "full") == full
    assert model_flops_per_token(m, 4096, "causal") == 6 * n + 6 * 32 * 32 * 128 * 4096


def test_one_chip_no_remat_full_attention_hfu_is_mfu_plus_recomputed_scores():
    # Forward MACs per token = N + 2 L H Q T, backward twice the matmuls' plus the flash kernel's
    # recomputed S = Q K^T (L H Q T MACs): executed FLOPs are 6 N + 14 L H Q T against PaLM's
    # 6 N + 12 L H Q T model FLOPs.
    r = train_step(CHIP, TINY, _slice("1"), ParallelSpec(), seq=128, global_batch=2,
                   remat="none", attention="full")
    lhqt = TINY.layers * TINY.heads * TINY.head_dim * 128
    model = model_flops_per_token(TINY, 128, "full")
    assert r.hfu == pytest.approx(r.mfu * (model + 2 * lhqt) / model, rel=1e-9)
    assert sum(r.collectives_s.values()) == 0
    t = r.time_s
    assert r.step_s == pytest.approx(t["compute"] + t["optimizer"])
    assert t["compute"] == pytest.approx(t["forward"] + t["backward"])


def test_full_remat_recomputes_the_blocks():
    kw = dict(seq=128, global_batch=2, attention="full")
    none = train_step(CHIP, TINY, _slice("1"), ParallelSpec(), remat="none", **kw)
    full = train_step(CHIP, TINY, _slice("1"), ParallelSpec(), remat="full", **kw)
    assert full.time_s["forward"] == pytest.approx(none.time_s["forward"])
    assert 0 < full.time_s["recompute"] < full.time_s["forward"]   # the blocks, not the head
    assert full.hfu > full.mfu and full.step_s > none.step_s
    assert full.memory_gib["activations"] < none.memory_gib["activations"]


def test_fsdp_shards_state_evenly():
    # Weights, gradients and Adam state (16 B/param) are split over the fsdp chips: the total
    # over chips is conserved, the per-chip share shrinks as 1/chips.
    a = train_step(CHIP, TINY, _slice("2"), ParallelSpec(fsdp=2), seq=64, global_batch=4)
    b = train_step(CHIP, TINY, _slice("2x2x2"), ParallelSpec(fsdp=8), seq=64, global_batch=8)
    wa, wb = a.memory_gib["weights_grads_optimizer"], b.memory_gib["weights_grads_optimizer"]
    assert 2 * wa == pytest.approx(8 * wb)
    assert a.collectives_s["fsdp_all_gather"] > 0 and not a.exposed["fsdp_all_gather"]


def test_tensor_parallel_all_reduces_are_exposed():
    r = train_step(CHIP, TINY, _slice("4"), ParallelSpec(tp=4), seq=64, global_batch=2)
    assert r.exposed["tp_all_reduce"] and r.collectives_s["tp_all_reduce"] > 0
    # remat full, no sp: each block all-reduces its 2 x 64 x 512 bf16 activations twice in the
    # forward, twice in the backward and once in the recompute (o_proj's, which the FFN's
    # recompute reads; the FFN's output is never read: remat.tp_shares); an all-reduce over 4
    # chips brings 2 x 3/4 of the buffer into each chip (reduce-scatter, then all-gather); one
    # more sums the embedding lookup and one the LM head's input gradient (both split over
    # the vocabulary)
    act = 2 * 64 * 512 * 2
    assert r.collective_bytes_per_chip["tp_all_reduce"]["ici"] == pytest.approx(
        (TINY.layers * 5 + 2) * 2 * 3 / 4 * act)
    # (the schedule sums waits as differences of clock times: equal up to rounding)
    assert r.time_s["exposed_collectives"] >= r.collectives_s["tp_all_reduce"] * (1 - 1e-12)
    assert shard_config(TINY, ParallelSpec(tp=4)).heads == 2


def test_kv_heads_replicated_past_tp_keep_whole_heads_and_sum_their_gradients():
    # Multi-query TINY (1 KV head) at tp=4: each chip keeps a quarter of Q and O but the whole
    # K and V (2 x 512 x 64 each layer), not a quarter of them; the 4 chips' partial gradients
    # of K/V are all-reduced over the tp ring: 2 x 3/4 x 2 B x 2 x 512 x 64 per layer.
    mqa = custom_config(name="mqa", hidden=512, layers=4, heads=8, kv_heads=1, ffn=2048,
                        vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
    r = train_step(CHIP, mqa, _slice("4"), ParallelSpec(tp=4), seq=64, global_batch=2)
    kv, qo, ffn, head = 2 * 512 * 64, 2 * 512 * 512 / 4, 3 * 512 * 2048 / 4, 2 * 1024 * 512 / 4
    assert r.memory_gib["weights_grads_optimizer"] * 2 ** 30 == pytest.approx(
        16 * (4 * (kv + qo + ffn) + head), rel=1e-12)
    assert r.collective_bytes_per_chip["dp_all_reduce"]["ici"] == pytest.approx(
        4 * 2 * 3 / 4 * 2 * kv)
    assert r.collectives_s["dp_all_reduce"] > 0 and not r.exposed["dp_all_reduce"]
    assert any("each K/V head is kept whole on 4 chips" in n for n in r.notes)
    # With as many KV heads as tp ranks nothing is replicated and no gradient is summed.
    assert train_step(CHIP, TINY, _slice("4"), ParallelSpec(tp=4), seq=64,
                      global_batch=2).collectives_s["dp_all_reduce"] == 0


def test_pipeline_runs_the_slower_end_stage_and_the_others_fill_the_bubble():
    """TINY in 2 stages of 2 blocks, 4 microbatches of one sequence: the last stage (2 blocks,
    final norm, LM head, loss) sets the pace, 4 slots of it; the bubble is the first stage's one
    slot (2 blocks and the embedding), each slot with its 2 PP sends. The stage costs come from
    an independent 2-block model on one chip; the executed FLOPs of the two stages together are
    the 4-block model's on one chip (HFU averages them)."""
    kw = dict(seq=64, global_batch=4, microbatches=4)
    r = train_step(CHIP, TINY, _slice("2"), ParallelSpec(pp=2), **kw)
    half = custom_config(name="half", hidden=512, layers=2, heads=8, kv_heads=8, ffn=2048,
                         vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
    p = train_step(CHIP, half, _slice("1"), ParallelSpec(), seq=64, global_batch=1).parts
    send = r.parts.pp
    assert send > 0 and r.collectives_s["pp_permute"] == pytest.approx(4 * 2 * send)
    blocks = 2 * (p.block_f + p.block_b + p.block_r)
    first = blocks + p.pre_f + p.pre_b + 2 * send
    last = blocks + p.post_f + p.post_b + 2 * send
    assert last > first
    assert r.time_s["bubble"] == pytest.approx(first, rel=1e-9)
    assert r.time_s["compute"] == pytest.approx(4 * (last - 2 * send), rel=1e-9)
    assert r.step_s == pytest.approx(4 * last + first + r.time_s["optimizer"], rel=1e-9)
    whole = train_step(CHIP, TINY, _slice("1"), ParallelSpec(), **kw)
    assert r.hfu * r.step_s == pytest.approx(whole.hfu * whole.step_s / 2, rel=1e-9)
    # the by-op table is the simulated (last) stage's: no embedding, its compute in full
    ops = {o["name"]: o for o in r.time_by_op}
    assert "embed" not in ops and "lm_head" in ops
    assert sum(o["forward_s"] + o["backward_s"] + o["recompute_s"] for o in ops.values()) == \
        pytest.approx(r.time_s["compute"], rel=1e-9)


def test_pipeline_stages_hold_one_vocab_matrix_each():
    """With pp the first stage holds the embedding and min(pp, m) microbatches of activations,
    the last the LM head and the logits: Llama-3.1-70B in 16 stages on a v5p 4x4 fits (stage 1:
    79.4 GiB of state), where counting both matrices and the loss on one stage said 98.5 GiB."""
    m = get_preset("llama3_1_70b")
    r = train_step(CHIP, m, _slice("4x4"), ParallelSpec(pp=16), seq=2048, global_batch=16,
                   remat="full", microbatches=16)
    # per layer: q and o 2 x 8192 x 64 x 128, k and v 2 x 8192 x 8 x 128, FFN 3 x 8192 x 28672;
    # 80 / 16 = 5 layers and one 128,256 x 8,192 matrix, 16 bytes of state per parameter
    layer = 2 * 8192 * 64 * 128 + 2 * 8192 * 8 * 128 + 3 * 8192 * 28672
    state = (5 * layer + 128256 * 8192) * 16 / 2 ** 30
    assert r.memory_gib["weights_grads_optimizer"] == pytest.approx(state)
    assert r.memory_gib["logits"] == 0                 # stage 1's peak: no loss there
    assert r.hbm_gib_per_chip < 95 and r.hbm_gib_per_chip == pytest.approx(
        sum(v for k, v in r.memory_gib.items() if k != "host_offload"))


def test_pp_send_with_sequence_parallel_carries_one_tp_share():
    # a microbatch's boundary activation is mb x seq x hidden bf16; with sp each of the tp ranks
    # holds and sends 1/tp of it; the simulated end stage receives one per microbatch (the last
    # stage its activations; a middle stage would receive the gradients too)
    kw = dict(seq=64, global_batch=4, microbatches=2)
    plain = train_step(CHIP, TINY, _slice("2x2"), ParallelSpec(pp=2, tp=2), **kw)
    sp = train_step(CHIP, TINY, _slice("2x2"), ParallelSpec(pp=2, tp=2, sequence_parallel=True),
                    **kw)
    act = 2 * 64 * 512 * 2          # 4 sequences per replica in 2 microbatches of 2
    got = {k: r.collective_bytes_per_chip["pp_permute"]["ici"] for k, r in
           (("plain", plain), ("sp", sp))}
    assert got == {"plain": 2 * act, "sp": 2 * act / 2}


def test_moe_all_to_all_with_sequence_parallel_carries_one_tp_share():
    # with sp each of the tp ranks holds 1/tp of a replica's tokens and dispatches only those:
    # per MoE layer per pass 2 all-to-alls of tokens x top_k x hidden bf16 (dropless), 1/tp each
    moe = custom_config(name="moe", hidden=512, layers=2, heads=8, kv_heads=8, ffn=1024,
                        vocab=1024, gated=True, act="silu", norm="rmsnorm", experts=4, top_k=2)
    kw = dict(seq=64, global_batch=4, remat="none")
    got = {sp: train_step(CHIP, moe, _slice("2x2"), ParallelSpec(ep=2, tp=2,
                                                                 sequence_parallel=sp), **kw)
           .collective_bytes_per_chip["ep_all_to_all"]["ici"] for sp in (False, True)}
    assert got[True] == pytest.approx(got[False] / 2)


def test_moe_expert_parallel_all_to_all():
    moe = custom_config(name="moe", hidden=512, layers=2, heads=8, kv_heads=8, ffn=1024,
                        vocab=1024, gated=True, act="silu", norm="rmsnorm", experts=4, top_k=2)
    r = train_step(CHIP, moe, _slice("4"), ParallelSpec(ep=4), seq=64, global_batch=4)
    assert r.collectives_s["ep_all_to_all"] > 0 and r.exposed["ep_all_to_all"]
    shard = shard_config(moe, ParallelSpec(ep=4))
    rows = {r["name"]: r for r in llm_rows(shard, "prefill", batch=1, seq=64)}
    # One local expert receives every token-expert pair its 64 tokens send: 64 x top_k rows.
    assert rows["expert_up"]["batch"] == 1 and rows["expert_up"]["m"] == 128
    assert rows["moe_router"]["n"] == 4
    # Dropless dispatch sorts every token-expert pair's hidden vector into its expert's group
    # (a gather before the grouped matmuls), and the combine gathers them back: 64 x 2 x 512.
    names = list(rows)
    assert names.index("moe_router_softmax") < names.index("moe_permute") < \
        names.index("expert_gate")
    assert rows["moe_permute"]["elements"] == rows["expert_combine"]["elements"] == 64 * 2 * 512


@pytest.mark.parametrize("kw,needle", [
    ({"global_batch": 3}, "multiple of dp x fsdp x ep = 2"),
    ({"microbatches": 3}, "must divide"),
    ({"remat": "some"}, "none|minimal|full"),
    ({"seq": 0}, "positive"),
])
def test_bad_step_arguments(kw, needle):
    args = {"seq": 64, "global_batch": 4, **kw}
    with pytest.raises(InputError) as exc:
        train_step(CHIP, TINY, _slice("2"), ParallelSpec(fsdp=2), **args)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_model_that_does_not_fit_says_by_how_much():
    with pytest.raises(InputError) as exc:
        train_step(CHIP, get_preset("llama2_70b"), _slice("2"), ParallelSpec(fsdp=2),
                   seq=2048, global_batch=2)
    msg = str(exc.value)
    assert "does not fit the 95 GiB of HBM by" in msg and "\n" not in msg
    # remat full is what ran (the default): the hint names what keeps less than it
    assert "--remat full" not in msg and "--remat offload:input" in msg
    with pytest.raises(InputError) as exc:
        train_step(CHIP, get_preset("llama2_70b"), _slice("2"), ParallelSpec(fsdp=2),
                   seq=2048, global_batch=2, remat="none")
    assert "use --remat full" in str(exc.value)


# ---------------------------------------------------------------- tpusim train

def test_cli_train_writes_train_json(cli, tmp_path):
    import json
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256",
                         "--batch-per-chip", "2", "--parallel", "fsdp=4,tp=2", "--out", tmp_path)
    assert code == 0, err
    rec = json.loads((tmp_path / "train.json").read_text())
    for key in ("step_s", "tokens_per_s", "tokens_per_s_per_chip", "mfu", "hfu",
                "hbm_gib_per_chip", "parallel", "time_s"):
        assert key in rec
    assert rec["parallel"] == "fsdp=4,tp=2" and rec["chips"] == 8 and rec["topology"] == "2x4"
    assert rec["tokens_per_s"] == pytest.approx(16 * 256 / rec["step_s"])
    assert set(rec["time_s"]) >= {"compute", "exposed_collectives", "bubble", "optimizer"}
    html = (tmp_path / "report.html").read_text()
    from tpusim.units import seconds
    assert "fsdp=4,tp=2" in html and f"step {seconds(rec['step_s'])}" in html
    assert "exposed (critical path)" in html and "overlapped with compute" in html
    # names a reader knows and human byte units, not train.json's keys and 0.0176 GiB
    import re
    from tpusim.units import nbytes
    cells = re.findall(r"<td>([^<]*)</td>", html)
    assert not [c for c in cells if "_" in c], cells
    assert "FSDP all-gather" in html and "TP all-reduce" in html
    for v in rec["memory_gib"].values():
        assert f"<td>{nbytes(v * 2**30)}</td>" in html


def test_cli_train_default_microbatches_with_pp_divide_the_replica(cli, tmp_path):
    # 5 sequences per replica on 4 stages: 4 does not divide 5, so the default is 5 (the
    # smallest count from pp up that does), not a refusal of --microbatches the user never gave
    import json
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--global-batch", "10",
                         "--parallel", "pp=4,dp=2", "--seq", "128", "--out", tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "train.json").read_text())["microbatches"] == 5


def test_cli_train_searches_without_parallel(cli, tmp_path):
    import json
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "4", "--seq", "128",
                         "--remat", "full", "--top", "3", "--out", tmp_path)
    assert code == 0, err
    rec = json.loads((tmp_path / "train.json").read_text())
    assert rec["sharding"] == "searched" and 1 <= len(rec["alternatives"]) <= 3
    steps = [a["step_s"] for a in rec["alternatives"]]
    assert steps == sorted(steps) and rec["step_s"] == steps[0]


def test_cli_train_moe_on_a_dense_model_is_refused(cli, tmp_path):
    code, _, err = cli("train", "tpu_v5p", "gpt2", "--chips", "8", "--moe", "megablox",
                       "--out", tmp_path / "o")
    assert code == 2 and "--moe: got 'megablox'; gpt2 has no experts (dense model)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--chips", "8", "--topology", "4x4"], "has 16 chips"),
    (["--chips", "8", "--parallel", "fsdp=4"], "multiply to 4 chips"),
    (["--chips", "8", "--parallel", "tp=8"], "12 attention heads"),
    (["--chips", "8", "--parallel", "fsdp=8", "--global-batch", "4"], "multiple of"),
    (["--chips", "1000"], "at most 256"),
    (["--chips", "16", "--slices", "2", "--parallel", "tp=4,pp=4"],
     "dp or fsdp must be a multiple of --slices=2"),
    (["--chips", "8", "--top", "0"], "tpusim: error: --top: 0 is not in the range x>=1"),
    (["--chips", "8", "--parallel", "fsdp=8", "--microbatches", "0"],
     "tpusim: error: --microbatches: 0"),
    (["--chips", "8", "--microbatches", "0"], "tpusim: error: --microbatches: 0"),
    (["--chips", "8", "--parallel", ""], "--parallel: got ''; give a value"),
    # one sequence: only tp x pp layouts (gpt2's 12 heads and layers rule out tp=8 and pp=8)
    # replicate it, and each has fewer sequences than stages
    (["--chips", "8", "--global-batch", "1"], "fewer sequences per replica than its pipeline"),
    (["--chips", "8", "--microbatches", "3"], "--microbatches 3 divides no layout's sequences"),
    # without --microbatches, pp=4 on 3 sequences per replica names pp and the way out
    (["--chips", "8", "--global-batch", "6", "--parallel", "pp=4,dp=2"],
     "pp=4 needs at least 4 microbatches to fill its stages, and a replica trains on 3 "
     "sequences"),
])
def test_cli_train_bad_input_is_one_line_exit_2(cli, tmp_path, args, needle):
    code, out, err = cli("train", "tpu_v5e", "gpt2", *args, "--out", tmp_path / "o")
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_learned_positions_bound_the_sequence(cli, tmp_path):
    # GPT-2 has 1,024 position embeddings: --seq past them is refused, its default fits them;
    # a RoPE model has no table and no bound
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "1025",
                       "--parallel", "fsdp=8", "--out", tmp_path / "a")
    assert code == 2 and "--seq: got 1025; gpt2 has 1,024 learned positions" in err
    assert err.count("\n") == 1 and not (tmp_path / "a").exists()
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--parallel", "fsdp=8",
                       "--out", tmp_path / "b")
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "train.json").read_text())["seq"] == 1024
    for cmd in (("infer", "tpu_v5e", "gpt2", "--chips", "4", "--kv-len", "1025"),
                ("workload", "llm", "gpt2", "--phase", "decode", "--kv-len", "1025")):
        code, _, err = cli(*cmd, "--out", tmp_path / "c")
        assert code == 2 and "--kv-len: got 1025; gpt2 has 1,024 learned" in err, err
        assert not (tmp_path / "c").exists()
    code, _, err = cli("infer", "tpu_v5e", "llama2_7b", "--chips", "4", "--kv-len", "100000",
                       "--out", tmp_path / "d")
    assert code == 0, err


def test_cli_train_search_keeps_the_microbatches_given(cli, tmp_path):
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256",
                       "--batch-per-chip", "4", "--microbatches", "2", "--top", "50",
                       "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "train.json").read_text())
    assert {a["microbatches"] for a in rec["alternatives"]} == {2} and len(rec["alternatives"]) > 5


def test_cli_train_and_infer_default_folders_are_named_for_their_options(cli, tmp_path,
                                                                         monkeypatch):
    # two runs that differ never share (and replace) one default folder, as run's do
    monkeypatch.chdir(tmp_path)
    # (a layout spelt otherwise names the folder as parsed: the same run, the same folder)
    for args in (["--seq", "256"], ["--seq", "128"], ["--seq", "128", "--parallel", "fsdp=4"],
                 ["--seq", "128", "--parallel", "FSDP = 4"],
                 ["--seq", "128", "--set", "array.rows=64"]):
        code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "4", *args)
        assert code == 0, err
    for args in (["--kv-len", "64"], ["--kv-len", "128"]):
        code, _, err = cli("infer", "tpu_v5e", "gpt2", "--chips", "4", *args)
        assert code == 0, err
    made = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert made == ["infer-tpu_v5e-gpt2-chips=4-kv-len=128", "infer-tpu_v5e-gpt2-chips=4-kv-len=64",
                    "train-tpu_v5e-gpt2-chips=4-seq=128", "train-tpu_v5e-gpt2-chips=4-seq=128-"
                    "array.rows=64", "train-tpu_v5e-gpt2-chips=4-seq=128-parallel=fsdp=4",
                    "train-tpu_v5e-gpt2-chips=4-seq=256"]


def test_cli_train_model_that_does_not_fit(cli, tmp_path):
    code, out, err = cli("train", "tpu_v5e", "llama2_70b", "--chips", "8", "--parallel",
                         "fsdp=8", "--seq", "4096", "--out", tmp_path / "o")
    assert code == 2 and "does not fit the 16 GiB of HBM by" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- validate: pods section

def test_pod_checks_are_predictions_with_their_sharding_stated():
    from tpusim.pod.fidelity import ROWS, pod_checks
    rows = pod_checks()
    cases = {r["case"] for r in rows}
    assert cases == {row.case for row in ROWS}                 # every published row appears
    for r in rows:
        assert "no parameter fitted to step-level results" in r["fitted_on"]
        assert r["check"].startswith("pods: ")
        if r["status"] == "ok":
            assert r["predicted"] > 0 and "sharding" in r["note"]
            assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
        else:
            assert r["status"].startswith("error: ") and "does not fit" in r["status"]
    palm = {r["metric"]: r for r in rows if r["case"].startswith("palm")}
    assert palm["HFU"]["predicted"] > palm["MFU"]["predicted"]   # its remat recomputes
    assert set(palm) == {"MFU", "HFU", "tokens/s/chip"} and palm["MFU"]["measured"] == 0.462
    assert palm["tokens/s/chip"]["measured"] == pytest.approx(238.3e3 / 6144)


def test_flash_attention_tiles_keep_macs_and_skip_masked_tiles():
    from tpusim.pod.train import flash_attention
    rows = llm_rows(TINY, "prefill", batch=2, seq=4096)
    attn = lambda rs: _macs([r for r in rs if r["name"] in ("attn_qk", "attn_av")])  # noqa: E731
    full = flash_attention(rows, group=1, seq=4096, block=1024, causal=False)
    assert attn(full) == attn(rows)                         # 4 x 4 tiles: every MAC once
    causal = flash_attention(rows, group=1, seq=4096, block=1024, causal=True)
    assert attn(causal) * 16 == attn(rows) * 10             # 4 x 5 / 2 = 10 of 16 tiles run
    sm = next(r for r in causal if r["name"] == "attn_softmax")
    qk = next(r for r in causal if r["name"] == "attn_qk")
    assert sm["fused"] and (qk["m"], qk["n"], qk["k"]) == (1024, 1024, TINY.head_dim)
    others = [r for r in rows if not r["name"].startswith("attn_")]
    assert [r for r in causal if not r["name"].startswith("attn_")] == others


def test_search_candidates_cover_hybrid_sharding_and_divide_the_model():
    from tpusim.pod.search import candidate_specs
    m = get_preset("gpt2")                       # 12 heads, FFN 3072, 12 layers
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="2x2x2", slices=2)
    specs = candidate_specs(m, sl)
    labels = {s.label() for s in specs}
    assert "dp=4,fsdp=4" in labels and "dp=2,fsdp=8" in labels and "dp=2,fsdp=2,tp=4" in labels
    assert "fsdp=16" in labels                    # fsdp spanning both slices
    for s in specs:
        # across the 2 slices either dp (a multiple of them) or fsdp spans DCN
        assert s.chips == 16 and m.heads % s.tp == 0 and m.layers % s.pp == 0
        assert s.dp % 2 == 0 or s.fsdp % 2 == 0
    assert len(labels) == len(specs)


def test_cli_train_custom_model(cli, tmp_path):
    import json
    code, out, err = cli("train", "tpu_v5e", "custom", "--hidden", "1024", "--layers", "4",
                         "--heads", "8", "--head-dim", "256", "--vocab", "32000", "--experts", "4",
                         "--top-k", "2", "--gated", "--act", "silu", "--parallel-block",
                         "--chips", "4", "--seq", "256", "--parallel", "ep=4", "--out", tmp_path)
    assert code == 0, err
    rec = json.loads((tmp_path / "train.json").read_text())
    assert rec["model"] == "custom" and rec["collectives_s"]["ep_all_to_all"] > 0
    code, out, err = cli("train", "tpu_v5e", "custom", "--hidden", "1024", "--out", tmp_path)
    assert code == 2 and "needs --layers, --heads, --vocab" in err
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--hidden", "1024", "--out", tmp_path)
    assert code == 2 and "go with MODEL custom" in err


def test_cost_grows_with_distinct_shards_not_chips():
    # The same per-chip shard on 8 and on 512 chips is one simulated program.
    from tpusim.pod import costs
    costs.clear()
    small = train_step(CHIP, TINY, _slice("2x2x2"), ParallelSpec(fsdp=8), seq=64, global_batch=8)
    big = train_step(CHIP, TINY, _slice("8x8x8"), ParallelSpec(fsdp=512), seq=64,
                     global_batch=512)
    assert costs.distinct_programs() == 1
    assert big.time_s["compute"] == small.time_s["compute"]
    assert big.collectives_s["fsdp_all_gather"] > small.collectives_s["fsdp_all_gather"]


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 1), (4, 1, 2)]),
       st.sampled_from(["none", "minimal", "full"]), st.sampled_from([64, 256]))
def test_step_invariants(degrees, remat, seq):
    # MFU <= HFU <= 1 (with a flash kernel the chips never run more than the model needs x the
    # recompute), the step is at least its compute, and tokens/s is tokens over the step.
    fsdp, tp, pp = degrees
    chips = fsdp * tp * pp
    sl = make_slice(CHIP.ici, CHIP.dcn, chips=chips)
    r = train_step(CHIP, TINY, sl, ParallelSpec(fsdp=fsdp, tp=tp, pp=pp), seq=seq,
                   global_batch=2 * fsdp, remat=remat, microbatches=2 if pp > 1 else 1)
    assert 0 < r.mfu <= r.hfu * (1 + 1e-9) and r.hfu <= 1
    assert r.step_s >= r.time_s["compute"]
    assert r.tokens_per_s == pytest.approx(2 * fsdp * seq / r.step_s)


def test_flash_tile_scores_stay_on_chip_when_the_tile_fits():
    # One (query block, key block) tile of QK^T -> softmax -> AV: the score tile (1024 x 1024
    # bf16 = 2 MiB) and its inputs fit v5p's activation buffer, so QK^T writes no HBM bytes and
    # AV reads only V (1024 x head_dim) from HBM. Before tiling per instance the whole 4096 x
    # 4096 score block went to HBM and back.
    from tpusim.pod.costs import simulate_rows
    from tpusim.pod.train import flash_attention
    from tpusim.simulator import simulate
    from tpusim.workload import Workload
    rows = flash_attention(llm_rows(TINY, "prefill", batch=1, seq=4096), group=1, seq=4096)
    attn = [r for r in rows if r["name"] in ("attn_qk", "attn_softmax", "attn_av")]
    assert attn[0]["count"] == TINY.layers * TINY.kv_heads * 10      # 4 x 5 / 2 causal tiles
    one = [{**r, "count": 1} for r in attn]
    df = simulate(CHIP, Workload(name="t", layers=tuple(make_layer(r) for r in one),
                                 source="t")).layers.set_index("name")
    assert df.loc["attn_qk", "hbm_write_bytes"] == 0
    assert df.loc["attn_av", "input_on_chip"]
    # one tile instance is split between the chip's cores along m (tpusim/cores.py), so each
    # core reads V once
    v_bytes = 1024 * TINY.head_dim * 2
    assert df.loc["attn_av", "hbm_read_bytes"] == v_bytes * CHIP.array.cores
    # The step prices every tile instance: the per-instance seconds times the count.
    per = simulate_rows(CHIP, attn, per_instance=True, memo=False)
    assert per[0][0] == pytest.approx(df.loc["attn_qk", "latency_s"] * attn[0]["count"])


def test_cross_slice_gradient_exchange_is_exposed_after_the_backward():
    # Two slices joined over DCN, data parallel across them: each chip all-reduces its shard of
    # the gradients (bf16) with its peer, 2 x (1/2) x D / b_dcn + latency, after the backward
    # (PaLM Section 4), so it adds to the step; in-slice dp stays hidden under compute.
    from tpusim.pod.collectives import all_reduce
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="2x2x2", slices=2)
    r = train_step(CHIP, TINY, sl, ParallelSpec(dp=2, fsdp=8), seq=64, global_batch=16)
    assert r.exposed["dcn_all_reduce"] and not r.exposed["dp_all_reduce"]
    params = r.memory_gib["weights_grads_optimizer"] * 2 ** 30 / 16
    want = 2 * 0.5 * params * 2 / CHIP.dcn.bandwidth_bytes_per_s
    assert r.collectives_s["dcn_all_reduce"] == pytest.approx(
        all_reduce(params * 2, sl.dcn_axis()).total_s)
    assert r.collectives_s["dcn_all_reduce"] >= want
    parts = r.time_s
    assert r.step_s == pytest.approx(parts["compute"] + parts["exposed_collectives"]
                                     + parts["bubble"] + parts["optimizer"])
    assert parts["exposed_collectives"] >= r.collectives_s["dcn_all_reduce"]


def test_dp_in_slice_and_across_slices_gathers_back_after_dcn():
    # dp=4 over 2 slices: dp 2 inside each slice, 2 across. The in-slice reduce-scatter runs
    # under the backward; the DCN all-reduce of each chip's half and the in-slice all-gather
    # that ends the exchange both wait on the complete gradients, so both are exposed.
    from tpusim.pod.collectives import all_gather, all_reduce, reduce_scatter
    from tpusim.pod.sharding import place
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="2x2x2", slices=2)
    spec = ParallelSpec(dp=4, fsdp=4)
    r = train_step(CHIP, TINY, sl, spec, seq=64, global_batch=16)
    pl = place(spec, sl)
    ici = tuple(a for a in pl.of("dp") if a.kind != "switch")
    dcn = tuple(a for a in pl.of("dp") if a.kind == "switch")
    assert math.prod(a.size for a in ici) == 2 and math.prod(a.size for a in dcn) == 2
    grads = r.memory_gib["weights_grads_optimizer"] * 2 ** 30 / 16 * 2     # bf16 bytes
    assert r.collectives_s["dp_all_reduce"] == pytest.approx(
        reduce_scatter(grads, ici).total_s)
    assert r.collectives_s["dcn_all_reduce"] == pytest.approx(
        all_reduce(grads / 2, dcn).total_s + all_gather(grads, ici).total_s)
    assert r.exposed_s["DCN all-reduce"] == pytest.approx(r.collectives_s["dcn_all_reduce"])


def test_fsdp_across_two_slices_hand_computed():
    # fsdp=32 over 2 slices of a v6e ring of 16 (DCN 2 x ICI 16). TINY's layer: attention
    # 512 x (8 + 2 x 8) x 64 + 8 x 64 x 512 = 1,048,576, gated FFN 3 x 512 x 2048 = 3,145,728;
    # embedding + LM head 2 x 1024 x 512. An all-gather of D bf16 bytes: DCN first on D/16
    # (a_d + D/32 / b_d), then the ring on D (8 hops, 15/16 x D / 2b); a reduce-scatter the same
    # in reverse. Gathered twice per step (forward, backward), scattered once; state 16 bytes
    # per parameter / 32; no DCN gradient exchange after the backward.
    v6e = load_config("tpu_v6e")
    sl = make_slice(v6e.ici, v6e.dcn, shape="16", slices=2)
    r = train_step(v6e, TINY, sl, ParallelSpec(fsdp=32), seq=64, global_batch=32)
    b, a = v6e.ici.link_bandwidth_bytes_per_s, v6e.ici.hop_latency_s
    bd, ad = v6e.dcn.bandwidth_bytes_per_s, v6e.dcn.latency_s

    def gather(params):
        d = 2 * params
        return ad + d / 32 / bd + 8 * a + 15 / 16 * d / (2 * b)

    layer, head = 1_048_576 + 3_145_728, 2 * 1024 * 512
    assert r.collectives_s["fsdp_all_gather"] == pytest.approx(
        2 * (4 * gather(layer) + gather(head)), rel=1e-12)
    assert r.collectives_s["fsdp_reduce_scatter"] == pytest.approx(
        4 * gather(layer) + gather(head), rel=1e-12)
    assert r.memory_gib["weights_grads_optimizer"] * 2 ** 30 == pytest.approx(
        16 * (4 * layer + head) / 32, rel=1e-12)
    assert r.collectives_s["dcn_all_reduce"] == 0 and r.collectives_s["dp_all_reduce"] == 0
    assert any("fsdp spans the 2 slices" in n for n in r.notes)
    # Bytes each chip receives: an all-gather of D brings in what the chip lacks, 31/32 x D,
    # of which the other slice's half of its 1/16 shard over DCN (D/32), the rest over ICI
    # (15/16 x D); the reduce-scatter the same once per step. Over the step's inbound ICI
    # capacity that is ici_link_busy: a 16-chip ring wires 2 of the chip's 4 ports (one link
    # each way to each neighbour), 2 x b, not 4 x b.
    d = 2 * (4 * layer + head)
    moved = r.collective_bytes_per_chip
    assert moved["fsdp_all_gather"] == pytest.approx({"ici": 2 * 15 / 16 * d, "dcn": 2 * d / 32})
    assert moved["fsdp_reduce_scatter"] == pytest.approx({"ici": 15 / 16 * d, "dcn": d / 32})
    assert moved["tp_all_reduce"] == moved["pp_permute"] == {"ici": 0, "dcn": 0}
    assert r.ici_link_busy == pytest.approx(3 * 15 / 16 * d / (r.step_s * 2 * b))


def test_dp_over_dcn_keeps_fsdp_inside_the_slice():
    # dp=2 spans the slices: its fsdp collectives and state are exactly a one-slice fsdp=8 run's
    # (bit for bit: the DCN axis never enters them), and only the gradient exchange crosses DCN.
    sl2 = make_slice(CHIP.ici, CHIP.dcn, shape="2x2x2", slices=2)
    two = train_step(CHIP, TINY, sl2, ParallelSpec(dp=2, fsdp=8), seq=64, global_batch=16)
    one = train_step(CHIP, TINY, _slice("2x2x2"), ParallelSpec(fsdp=8), seq=64, global_batch=8)
    for k in ("fsdp_all_gather", "fsdp_reduce_scatter"):
        assert two.collectives_s[k] == one.collectives_s[k]
    assert two.memory_gib == one.memory_gib
    assert two.collectives_s["dcn_all_reduce"] > 0 == one.collectives_s["dcn_all_reduce"]
    assert len(two.notes) == len(one.notes) == 1       # no "fsdp spans" note


@pytest.mark.parametrize("remat", ["none", "minimal", "full"])
def test_memory_counts_the_backward_working_set_of_one_layer(remat):
    # The layer being back-propagated holds its whole forward: one layer's block outputs under
    # remat none, less what the policy already keeps (nothing extra under none).
    from tpusim.pod.remat import saved_activations as _saved_activations
    r = train_step(CHIP, TINY, _slice("2"), ParallelSpec(fsdp=2), seq=64, global_batch=2,
                   remat=remat)
    fwd = llm_rows(shard_config(TINY, ParallelSpec(fsdp=2)), "prefill", batch=1, seq=64)
    want = 0.0 if remat == "none" else (_saved_activations(fwd, 1, "none", 1)
                                        - _saved_activations(fwd, 1, remat, 1))
    assert r.memory_gib["backward_working_set"] * 2 ** 30 == pytest.approx(want)
    if remat == "full":
        # By hand, per token: attn_norm 512, qkv 1536, rope (8 + 8) x 64, attention out 512,
        # o_proj, residual, ffn_norm 512 each, gate / up / silu / mul 2048 each = 13,312 bf16
        # values beyond the kept block input; ffn_down and the second residual add keep nothing
        # (no backward op reads them: the add reads nothing, its output is the next input).
        assert r.memory_gib["backward_working_set"] * 2 ** 30 == 13312 * 64 * 2
    assert r.hbm_gib_per_chip == pytest.approx(sum(r.memory_gib.values()))


def test_docs_list_every_train_json_key(cli, tmp_path):
    # docs/pods.md "What train.json holds" names each top-level key the command writes
    import json
    import re
    from pathlib import Path
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "4", "--seq", "128",
                       "--parallel", "fsdp=4", "--out", tmp_path)
    assert code == 0, err
    keys = set(json.loads((tmp_path / "train.json").read_text()))
    doc = (Path(__file__).resolve().parent.parent / "docs" / "pods.md").read_text()
    section = doc.split("## What `train.json` holds", 1)[1].split("\n## ", 1)[0]
    listed = {k for line in section.splitlines() if line.startswith("| `")
              for k in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert keys == listed


def test_time_by_op_adds_up_to_the_compute_split():
    # every forward row's forward, backward and recompute, summed, are the step's three parts;
    # the recompute reruns only rows the policy drops, and full remat reruns no ffn_down
    chip = load_config("tpu_v5e")
    sl = make_slice(chip.ici, chip.dcn, shape="2x4")
    r = train_step(chip, get_preset("llama2_7b"), sl, ParallelSpec(fsdp=8), 1024, 16, "full", 2)
    ops = {o["name"]: o for o in r.time_by_op}
    for part, key in (("forward", "forward_s"), ("backward", "backward_s"),
                      ("recompute", "recompute_s")):
        assert sum(o[key] for o in ops.values()) == pytest.approx(r.time_s[part], rel=1e-12)
    # one unit per forward trace row, the flash kernels' rows (either backward variant) as one
    plain = {row["name"] for row in llm_rows(get_preset("llama2_7b"), "prefill", 1, 128, 128)}
    assert set(ops) == plain - {"attn_qk", "attn_softmax", "attn_av"} | {"attention", "loss"}
    from tpusim.pod.flash_blocks import FlashBlocks
    unfused = train_step(chip, get_preset("llama2_7b"), sl, ParallelSpec(fsdp=8), 1024, 16,
                         "full", 2, flash=FlashBlocks.parse("fused_bwd=0"))
    assert {o["name"] for o in unfused.time_by_op} == set(ops)
    assert sum(o["backward_s"] for o in unfused.time_by_op) == pytest.approx(
        unfused.time_s["backward"], rel=1e-12)
    assert ops["ffn_down"]["recompute_s"] == 0 and ops["ffn_up"]["recompute_s"] == \
        pytest.approx(ops["ffn_up"]["forward_s"])
    # a weight-bearing row's backward is two GEMMs of its forward's size: about twice its time
    assert 1.5 < ops["ffn_up"]["backward_s"] / ops["ffn_up"]["forward_s"] < 2.5
    none = train_step(chip, get_preset("llama2_7b"), sl, ParallelSpec(fsdp=8), 256, 8, "none")
    assert all(o["recompute_s"] == 0 for o in none.time_by_op)
    assert json.loads(json.dumps(r.as_dict()))["time_by_op"][0]["name"] == "embed"


def test_memory_peak_at_the_loss_holds_logits_and_the_gathered_head():
    # A big vocabulary and a short model: the step's HBM peak is at the loss, where the logits
    # and their gradient (bf16, tokens x vocab / tp each), the gathered LM head (vocab x hidden /
    # tp, bf16) and the last layer's gathered weights are live; by hand.
    big = custom_config(name="bigvocab", hidden=512, layers=2, heads=8, kv_heads=8, ffn=2048,
                        vocab=256000, gated=True, act="silu")
    for spec, shape in ((ParallelSpec(fsdp=4), "2x2"), (ParallelSpec(fsdp=2, tp=2), "2x2")):
        r = train_step(CHIP, big, _slice(shape), spec, seq=512, global_batch=8, remat="full")
        tokens = 8 // spec.replicas * 512
        m = r.memory_gib
        assert m["logits"] * 2 ** 30 == 2 * tokens * 256000 / spec.tp * 2
        layer = (4 * 512 * 512 + 3 * 512 * 2048) / spec.tp      # q, k, v, o and gated FFN
        assert m["gathered_weights"] * 2 ** 30 == pytest.approx(
            (layer + 256000 * 512 / spec.tp) * 2)
        assert m["backward_working_set"] == 0
        assert r.hbm_gib_per_chip == pytest.approx(sum(v for k, v in m.items()
                                                       if k != "host_offload"))


@pytest.mark.parametrize("spec,shape", [(ParallelSpec(tp=2), "2"), (ParallelSpec(dp=2), "2")])
def test_nothing_is_gathered_without_fsdp(spec, shape):
    # Without fsdp (or ep) every chip already holds its weights in its state: none are gathered.
    r = train_step(CHIP, TINY, _slice(shape), spec, seq=64, global_batch=2, remat="full")
    assert r.memory_gib["gathered_weights"] == 0
    g = train_step(CHIP, TINY, _slice(shape), ParallelSpec(fsdp=2), seq=64, global_batch=2,
                   remat="full")
    assert g.memory_gib["gathered_weights"] > 0


def test_out_of_hbm_advice_fits_the_policy():
    # An offload policy keeps less in HBM than full: "use --remat full" would not help it.
    chip, model = load_config("tpu_v5e"), get_preset("llama2_70b")
    sl = make_slice(chip.ici, chip.dcn, chips=8)
    msgs = {}
    for remat in ("offload:input", "none", "full"):
        with pytest.raises(InputError) as e:
            train_step(chip, model, sl, ParallelSpec(fsdp=8), 2048, 8, remat)
        msgs[remat] = str(e.value)
    assert "--remat full" not in msgs["offload:input"]
    assert "use --remat full" in msgs["none"]
    assert "offload:input" in msgs["full"]


def test_backward_of_the_vector_rows_and_the_embedding_table():
    """By hand: a residual add's, an add's and RoPE's backward is one pass of their forward, a
    norm's or an activation's two; the embedding's backward zero-fills the vocabulary x hidden
    table (an identity row of half its values moves its bytes once) and scatter-adds the
    tokens' gradients."""
    gpt = custom_config(name="g", hidden=512, layers=2, heads=8, kv_heads=8, ffn=2048,
                        vocab=1024, act="gelu", norm="layernorm", positions="learned",
                        max_positions=64)
    for model in (TINY, gpt):
        fwd = llm_rows(model, "prefill", batch=2, seq=64)
        bwd = {r["name"]: r for r in backward_rows(fwd, table=1024 * 512)}
        for r in fwd:
            if r["op"] in ("residual", "add", "rope"):
                assert bwd[r["name"] + "_bwd"]["count"] == r.get("count", 1), r["name"]
            elif r["op"] not in ("matmul", "embedding"):
                assert bwd[r["name"] + "_bwd"]["count"] == 2 * r.get("count", 1), r["name"]
        assert bwd["embed_fill"]["op"] == "identity" and bwd["embed_fill"]["elements"] == \
            1024 * 512 // 2
        assert bwd["embed_bwd"]["op"] == "add" and bwd["embed_bwd"]["elements"] == 2 * 64 * 512
    assert "embed_fill" not in {r["name"] for r in backward_rows(llm_rows(TINY, "prefill", 2, 64))}


def test_the_loss_and_adam_are_priced():
    """The loss: a softmax over tokens x vocabulary after the LM head, priced in the forward and
    its gradient in the backward (both on the head's side of the pipeline). Adam: 28 bytes a
    parameter (read the bf16 gradient and the fp32 master, m, v; write those and the bf16
    weight), hand-computed from the chip's HBM bandwidth and the shard's parameters."""
    chip = load_config("tpu_v5e")
    r = train_step(chip, TINY, make_slice(chip.ici, chip.dcn, shape="1"), ParallelSpec(),
                   seq=64, global_batch=2)
    ops = {o["name"]: o for o in r.time_by_op}
    assert ops["loss"]["forward_s"] > 0 and ops["loss"]["backward_s"] > ops["loss"]["forward_s"]
    assert ops["loss"]["recompute_s"] == 0
    params = r.memory_gib["weights_grads_optimizer"] * 2 ** 30 / 16
    hbm = chip.memory.hbm.bandwidth_gbps * 1e9 * chip.memory.hbm.efficiency
    vec = chip.vector.ops_per_cycle * chip.clock_ghz * 1e9
    assert r.time_s["optimizer"] == pytest.approx(max(28 * params / hbm, 12 * params / vec))


def test_a_stage_bound_by_its_fsdp_gathers_fills_the_bubble_with_them():
    """pp=2 x fsdp=2 on links 100 times slower: each stage waits on its ICI stream, so a slot is
    the stream's work for one microbatch (each unit's weights gathered for the forward and again
    for the backward, each gradient reduce-scattered: 2 (L ag + ag_head) + L rs + rs_head), not
    its compute (a hundredth of that); the bubble is the first stage's slot."""
    slow = CHIP.model_copy(update={"ici": CHIP.ici.model_copy(
        update={"link_bandwidth_bytes_per_s": CHIP.ici.link_bandwidth_bytes_per_s / 100})})
    r = train_step(slow, TINY, make_slice(slow.ici, slow.dcn, shape="2x2"),
                   ParallelSpec(pp=2, fsdp=2), seq=64, global_batch=8, microbatches=4)
    p = r.parts
    stream = 2 * (p.layers * p.ag_block + p.ag_head) + p.layers * p.rs_block + p.rs_head
    assert stream > 50 * p.layers * (p.block_f + p.block_b + p.block_r)
    assert r.time_s["bubble"] == pytest.approx(stream, rel=1e-9)


def test_pipeline_end_stage_traffic_is_its_own():
    """tp=2 x pp=2: the simulated last stage runs no embedding, so its TP bytes are its blocks'
    and the LM head's all-reduces, 5 a layer (no sp, remat full) plus one a microbatch, each
    2 x 1/2 x the 2 x 64 x 512 bf16 activation; and the recorded spans carry exactly those."""
    from tpusim.pod.schedule import schedule
    r = train_step(CHIP, TINY, _slice("2x2"), ParallelSpec(pp=2, tp=2), seq=64, global_batch=8,
                   microbatches=4)
    act = 2 * 64 * 512 * 2
    L = r.parts.layers
    assert r.parts.tp_embed == 0 and r.parts.tp_head > 0
    assert r.collective_bytes_per_chip["tp_all_reduce"]["ici"] == pytest.approx(
        4 * (5 * L + 1) * 2 * 0.5 * act)
    spans = schedule(r.parts, record=True).spans
    assert sum(s.ici_bytes for s in spans if s.kind.startswith("TP")) == pytest.approx(
        r.collective_bytes_per_chip["tp_all_reduce"]["ici"])


def test_pipeline_host_offload_is_the_first_stages():
    """offload:input with pp=4 over 8 microbatches: the first stage keeps min(4, 8) = 4
    microbatches' block inputs on host, 20 layers x 4 x (4,096 x 8,192 x 2 B / tp=4 with sp) =
    1.25 GiB, though the last stage (one microbatch live, the logits) is the HBM peak."""
    m = get_preset("llama3_1_70b")
    r = train_step(CHIP, m, _slice("4x4x4"), parse_spec("pp=4,fsdp=4,tp=4,sp"), seq=4096,
                   global_batch=32, remat="offload:input", microbatches=8)
    assert r.memory_gib["host_offload"] == pytest.approx(20 * 4 * 4096 * 8192 * 2 / 4 / 2 ** 30)


@pytest.mark.parametrize("spec, says", [
    ("dp=8,tp=8", "shard more (fsdp/tp/pp/ep, fsdp in place of dp), use --remat full, or use "
     "more --microbatches or a smaller batch"),
    ("pp=4,tp=4,dp=4", "GiB per chip on pp's first stage\"; does not fit"),
])
def test_a_shard_that_does_not_fit_says_where_and_what_to_shard(spec, says):
    model = get_preset("mixtral_8x7b" if "pp" not in spec else "llama3_1_70b")
    with pytest.raises(InputError, match="does not fit") as exc:
        train_step(CHIP, model, _slice("4x4x4"), parse_spec(spec), seq=4096, global_batch=64,
                   remat="minimal" if "pp" not in spec else "none", microbatches=8
                   if "pp" in spec else 1)
    assert says in str(exc.value), str(exc.value)

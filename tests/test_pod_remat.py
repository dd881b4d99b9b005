"""Named remat policies (pod/remat.py): HBM and host bytes by hand for a tiny model, recompute
time as full's less exactly the kept rows' forward times, offload never costlier than full in
HBM or compute, and one-line errors for names that are no block row (library and CLI)."""
from __future__ import annotations

import json

import pytest

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import custom_config, llm_rows
from tpusim.importers.llm_presets import PRESETS
from tpusim.pod.costs import simulate_rows
from tpusim.pod.flash import flash_attention, flash_backward
from tpusim.pod.remat import UNREAD, Remat, block_names, parse_remat
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice
from tpusim.pod.train import backward_rows, train_step

CHIP = load_config("tpu_v5p")
TINY = custom_config(name="tiny", hidden=512, layers=4, heads=8, kv_heads=8, ffn=2048,
                     vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
TINY_MOE = custom_config(name="tiny_moe", hidden=256, layers=2, heads=4, kv_heads=4, ffn=512,
                         vocab=512, gated=True, act="silu", norm="rmsnorm", positions="rope",
                         experts=4, top_k=2)
ONE = make_slice(CHIP.ici, CHIP.dcn, shape="1")
GIB = 2 ** 30


def _step(remat, model=TINY, **kw):
    args = {"seq": 64, "global_batch": 2, **kw}
    return train_step(CHIP, model, ONE, ParallelSpec(), remat=remat, **args)


def test_parse_gives_one_canonical_label():
    p = parse_remat(" offload:qkv_proj,input+save:o_proj,attn_av ")
    assert p == Remat("named", ("attn_av", "o_proj"), ("input", "qkv_proj"))
    assert p.label() == "save:attn_av,o_proj+offload:input,qkv_proj"
    assert parse_remat(p.label()) == p
    # the block input is kept in HBM anyway: saving it (alone) is exactly full
    assert parse_remat("save:input") == Remat("full")
    assert parse_remat("save:input,o_proj") == Remat("named", ("o_proj",))


@pytest.mark.parametrize("text,needle", [
    ("some", "none|minimal|full"), ("save:", "comma list"), ("keep:o_proj", "save:NAMES"),
    ("save:o_proj+offload:o_proj", "both saved and offloaded"), ("offload:a,,b", "comma list"),
    # a kind or a name given twice is refused, as --parallel/--synthetic keys are
    ("save:o_proj+save:ffn_up", "--remat: save: got 'save:o_proj+save:ffn_up'; save: given twice"),
    ("offload:input+save:o_proj+offload:qkv_proj", "offload: given twice"),
    ("save:input,input", "--remat: save: got 'save:input,input'; input listed twice"),
    ("offload:qkv_proj,o_proj,qkv_proj", "qkv_proj listed twice"),
])
def test_malformed_policies_are_one_line(text, needle):
    with pytest.raises(InputError) as exc:
        parse_remat(text)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_hbm_and_host_bytes_by_hand_offload_input_qkv_vs_full():
    # One chip, 2 sequences of 64 tokens: 128 tokens, hidden 512, q/k/v 3 x 512, 4 layers, bf16.
    tok, layers = 128, 4
    inp, qkv = tok * 512 * 2, tok * 1536 * 2                   # 131,072 and 393,216 bytes
    # One layer's block outputs the backward reads (test_pod_train: 13,312 values per token
    # beyond the input).
    whole = (13312 + 512) * tok * 2
    full, off = _step("full"), _step("offload:input,qkv_proj")
    m_full = {k: v * GIB for k, v in full.memory_gib.items()}
    m_off = {k: v * GIB for k, v in off.memory_gib.items()}
    assert m_full["activations"] == layers * inp and m_full["host_offload"] == 0
    assert m_full["backward_working_set"] == whole - inp
    # offloaded: nothing kept in HBM between the passes, both tensors of each layer on host,
    # and the layer being back-propagated has its whole forward back in HBM
    assert m_off["activations"] == 0
    assert m_off["host_offload"] == layers * (inp + qkv) == 2_097_152
    assert m_off["backward_working_set"] == whole
    assert off.host_offload_bytes_per_step == 2 * layers * (inp + qkv)   # out and back
    assert full.host_offload_bytes_per_step == 0
    # HBM: full keeps L inputs and the layer's rest; offload one whole layer: (L - 1) inputs less
    assert (full.hbm_gib_per_chip - off.hbm_gib_per_chip) * GIB == (layers - 1) * inp
    assert off.hbm_gib_per_chip * GIB == sum(v for k, v in m_off.items() if k != "host_offload")
    assert off.remat == "offload:input,qkv_proj" and full.remat == "full"


def _forward_times(model=TINY, seq=64, batch=2):
    """Each forward row's seconds inside the step's program, simulated as train_step runs it."""
    fwd = flash_attention(llm_rows(model, "prefill", batch=batch, seq=seq, kv_len=seq),
                          model.heads // model.kv_heads, seq, cores=CHIP.array.cores)
    bwd = backward_rows(fwd, flash_backward(fwd, model.heads // model.kv_heads, seq))
    per_row = simulate_rows(CHIP, fwd + bwd, per_instance=True)
    return {r["name"]: t for r, (t, _) in zip(fwd, per_row)}


@pytest.mark.parametrize("remat,skipped", [
    ("offload:qkv_proj", ("qkv_proj",)),
    # ffn_down's output is read by no backward op: full does not rerun it, keeping it saves none
    ("save:o_proj,ffn_down+offload:input", ("o_proj",)),
    ("save:ffn_norm,ffn_silu", ("ffn_norm", "ffn_silu")),
    # the flash kernel's output kept: its whole forward (tiles and per-block rows) is not rerun
    ("offload:attn_av", ("attn_qk", "attn_softmax", "attn_av", "attn_out")),
])
def test_recompute_is_full_less_the_kept_rows_forward(remat, skipped):
    t = _forward_times()
    full, r = _step("full"), _step(remat)
    assert r.time_s["recompute"] == pytest.approx(
        full.time_s["recompute"] - sum(t[n] for n in skipped), rel=1e-12)
    assert r.time_s["forward"] == full.time_s["forward"]
    assert r.time_s["backward"] == full.time_s["backward"]


def test_full_reruns_the_forward_less_what_no_backward_op_reads():
    # Sequential block: ffn_down and the second residual add are rerun by no policy (only the
    # add reads ffn_down; the add's output is the next block's input). Parallel block (PaLM):
    # o_proj and the first add too, since the FFN reads the attention's norm, not its sum.
    t = _forward_times()
    full = _step("full")
    block = {n: v for n, v in t.items() if n not in ("embed", "final_norm", "lm_head")}
    rerun = sum(v for n, v in block.items() if n not in ("ffn_down", "ffn_residual"))
    assert full.time_s["recompute"] == pytest.approx(rerun, rel=1e-12)
    palm_like = custom_config(name="par", hidden=512, layers=4, heads=8, kv_heads=8, ffn=2048,
                              vocab=1024, gated=True, act="silu", norm="rmsnorm",
                              positions="rope", parallel_block=True)
    tp = _forward_times(palm_like)
    names = [n for n in tp if n not in ("embed", "final_norm", "lm_head")]
    assert "ffn_norm" not in names and {"o_proj", "attn_residual"} <= set(names)
    rerun_p = sum(tp[n] for n in names
                  if n not in ("ffn_down", "ffn_residual", "o_proj", "attn_residual"))
    assert _step("full", palm_like).time_s["recompute"] == pytest.approx(rerun_p, rel=1e-12)


def test_saving_every_block_row_is_remat_none():
    names = block_names([r for r in llm_rows(TINY, "prefill", batch=2, seq=64)
                         if r["name"] not in ("embed", "final_norm", "lm_head")])
    every = _step("save:" + ",".join(n for n in names if n != "input"))
    none = _step("none")
    assert every.time_s["recompute"] == 0
    assert every.memory_gib == none.memory_gib
    assert every.step_s == none.step_s


@pytest.mark.parametrize("model", [TINY, TINY_MOE], ids=["dense", "moe"])
def test_offload_never_costs_more_hbm_or_compute_than_full(model):
    full = _step("full", model)
    rows = [r for r in llm_rows(model, "prefill", batch=2, seq=64)
            if r["name"] not in ("embed", "final_norm", "lm_head")]
    for name in block_names(rows):
        for names in ({name}, {name, "input"}):
            off = _step("offload:" + ",".join(sorted(names)), model)
            assert off.hbm_gib_per_chip <= full.hbm_gib_per_chip, names
            assert off.time_s["compute"] <= full.time_s["compute"], names
            if name == "input":
                continue
            # keeping the same tensors in HBM instead: the same compute, more HBM, no host
            kept = _step("save:" + name, model)
            assert kept.time_s["compute"] == _step("offload:" + name, model).time_s["compute"]
            assert kept.memory_gib["host_offload"] == 0
            if name in UNREAD:     # read by no backward op: naming it keeps and spares nothing
                assert kept.hbm_gib_per_chip == full.hbm_gib_per_chip
                assert kept.time_s["compute"] == full.time_s["compute"]
            else:
                assert kept.hbm_gib_per_chip > _step("offload:" + name, model).hbm_gib_per_chip


def test_a_name_that_is_no_block_row_lists_the_allowed_names():
    with pytest.raises(InputError) as exc:
        _step("offload:qkv,o_proj")
    msg = str(exc.value)
    assert "'qkv'" in msg and "input,attn_norm,qkv_proj" in msg and "\n" not in msg
    with pytest.raises(InputError, match="expert_up"):   # a dense model has no expert rows
        _step("save:expert_up")


def test_cli_train_offload_records_the_policy(cli, tmp_path):
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "4", "--seq", "128",
                         "--parallel", "fsdp=4", "--remat", "offload:qkv_proj,input",
                         "--out", tmp_path)
    assert code == 0, err
    rec = json.loads((tmp_path / "train.json").read_text())
    assert rec["remat"] == "offload:input,qkv_proj"
    assert rec["alternatives"][0]["remat"] == "offload:input,qkv_proj"
    assert rec["memory_gib"]["host_offload"] > 0 and rec["memory_gib"]["activations"] == 0
    assert rec["host_offload_bytes_per_step"] == pytest.approx(
        2 * rec["memory_gib"]["host_offload"] * GIB)
    assert "pinned host memory" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("remat,needle", [
    ("offload:qkv", "allowed names: input,attn_norm,qkv_proj"),
    ("save:", "comma list"),
])
@pytest.mark.parametrize("search", [False, True])
def test_cli_train_bad_remat_is_one_line_exit_2(cli, tmp_path, remat, needle, search):
    par = [] if search else ["--parallel", "fsdp=4"]
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "4", "--seq", "128", *par,
                         "--remat", remat, "--out", tmp_path / "o")
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_sequence_parallel_splits_every_tokens_x_hidden_tensor_tp_ways():
    # tp=4 with sp on 4 chips, 2 sequences of 64 tokens (128 tokens, hidden 512): o_proj's output
    # after its reduce-scatter and the block input are 128 x 512 / 4 values per chip, while
    # qkv_proj's output is the chip's head shard, 128 x 1536 / 4, with or without sp.
    four = make_slice(CHIP.ici, CHIP.dcn, shape="4")
    tok = 128

    def host(spec):
        r = train_step(CHIP, TINY, four, spec, seq=64, global_batch=2,
                       remat="offload:input,o_proj,qkv_proj")
        return r.memory_gib["host_offload"] * GIB / TINY.layers

    assert host(ParallelSpec(tp=4, sequence_parallel=True)) == (
        tok * 512 / 4 + tok * 512 / 4 + tok * 1536 / 4) * 2
    assert host(ParallelSpec(tp=4)) == (tok * 512 + tok * 512 + tok * 1536 / 4) * 2


def test_sequence_parallel_keeps_a_tp_shard_as_wide_as_the_hidden_size_whole():
    # gpt2: hidden 768, ffn 3,072; at tp=4 the ffn_up shard is 768 wide too, yet it is tp's
    # shard, not a tokens x hidden tensor: sp leaves it whole and splits o_proj's output.
    from tpusim.importers.llm import get_preset
    from tpusim.pod.remat import _tensors
    from tpusim.pod.train import shard_config
    gpt2 = get_preset("gpt2")
    fwd = llm_rows(shard_config(gpt2, ParallelSpec(tp=4, sequence_parallel=True)), "prefill",
                   batch=1, seq=128, kv_len=128)
    sizes, _ = _tensors(fwd, 4)
    assert sizes["ffn_up"] == 128 * 768 * 2
    assert sizes["o_proj"] == sizes["input"] == 128 * 768 / 4 * 2


def test_offload_beyond_the_hosts_dram_is_one_line():
    # tpu_v6e: 192 GiB of host DRAM per chip. A deep narrow model (2,048 layers, hidden 128)
    # offloading its block input, 64 sequences of 8,192 tokens on one chip:
    # 2048 x 64 x 8192 x 128 x 2 B = 256 GiB on host, 64 GiB too many; HBM holds the rest.
    v6e = load_config("tpu_v6e")
    assert v6e.memory.host_gib_per_chip == 192
    deep = custom_config(name="deep", hidden=128, layers=2048, heads=2, kv_heads=2, ffn=256,
                         vocab=256, gated=True, act="silu", norm="rmsnorm", positions="rope")
    one = make_slice(v6e.ici, v6e.dcn, shape="1")
    with pytest.raises(InputError) as exc:
        train_step(v6e, deep, one, ParallelSpec(), seq=8192, global_batch=64,
                   remat="offload:input")
    msg = str(exc.value)
    assert "256.0 GiB" in msg and "192 GiB of host DRAM" in msg and "by 64.0 GiB" in msg
    assert "\n" not in msg
    # half the batch offloads 128 GiB: it fits
    r = train_step(v6e, deep, one, ParallelSpec(), seq=8192, global_batch=32,
                   remat="offload:input")
    assert r.memory_gib["host_offload"] == 128


def test_naming_a_tensor_no_backward_op_reads_says_it_keeps_nothing(cli, tmp_path):
    code, out, err = cli("train", "tpu_v5p", "gpt2", "--chips", "4", "--seq", "128",
                         "--batch-per-chip", "1", "--parallel", "fsdp=4",
                         "--remat", "save:o_proj,ffn_down", "--out", str(tmp_path / "t"))
    assert code == 0, err
    line = ("remat save:ffn_down,o_proj: no backward op reads ffn_down, so naming it keeps "
            "nothing (never recomputed either)")
    assert line in out.splitlines()
    notes = json.loads((tmp_path / "t" / "train.json").read_text())["notes"]
    assert line in notes
    code, out, _ = cli("train", "tpu_v5p", "gpt2", "--chips", "4", "--seq", "128",
                       "--batch-per-chip", "1", "--parallel", "fsdp=4", "--remat", "save:o_proj",
                       "--out", str(tmp_path / "u"))
    assert code == 0 and "no backward op reads" not in out


@pytest.mark.parametrize("parallel,sp,remat,share,hidden", [
    (False, False, "full", 0.5, 0.0),   # the all-reduce after o_proj again, not ffn_down's
    (False, True, "full", 0.75, 0.5),   # both all-gathers and o_proj's reduce-scatter again
    # o_proj and qkv kept: the FFN's gather reruns for the recompute, the attention norm's for
    # qkv's weight gradient alone (hidden, with the backward's two reduce-scatters)
    (False, True, "offload:input,qkv_proj,o_proj", 0.5, 0.75),
    (False, False, "minimal", 0.0, 0.0),  # o_proj's output kept: nothing to all-reduce again
    (True, False, "full", 0.0, 0.0),      # one all-reduce after the summed outputs: unread
    (True, True, "full", 0.5, 0.5),       # the norm's all-gather again, not the reduce-scatter
    # nothing recomputed, but the weight gradients read the norms gathered: the backward
    # gathers the kept split norms again (Megatron's sequence parallelism does the same)
    (False, True, "none", 0.5, 1.0),
    (True, True, "none", 0.5, 1.0),
    (False, False, "none", 0.0, 0.0),
])
def test_recompute_reruns_the_tp_collectives_of_what_it_recomputes(parallel, sp, remat, share,
                                                                     hidden):
    # tp collectives per block: forward and backward one pass each (tp_block), the recompute
    # and the weight gradients' gathers their share (closed form: L x (2 + share) x tp_block;
    # remat none's share is 0.5 with sp, 0 without). Exposed: all but the backward's
    # reduce-scatters and the gathers only weight gradients read (``hidden`` passes, sp only:
    # no recipe makes all-reduces async), which these GEMMs are long enough to cover.
    model = custom_config(name="t", hidden=1024, layers=4, heads=8, kv_heads=8, ffn=8192,
                          vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope",
                          parallel_block=parallel)
    two = make_slice(CHIP.ici, CHIP.dcn, shape="2")
    spec = ParallelSpec(tp=2, sequence_parallel=sp)

    def run(policy):
        return train_step(CHIP, model, two, spec, seq=1024, global_batch=2, remat=policy)
    none, r = run("none"), run(remat)
    # besides the blocks', one all-reduce per microbatch sums the vocab-split embedding lookup
    # and one the LM head's input gradient
    assert r.parts.tp_embed == pytest.approx(r.parts.tp_block / (1 if parallel else 2))
    assert r.parts.tp_head == r.parts.tp_embed

    def blocks(res, total):
        return total - res.parts.tp_embed - res.parts.tp_head
    base = blocks(none, none.collectives_s["tp_all_reduce"]) * 2 / (2 + (0.5 if sp else 0.0))
    assert base > 0
    assert blocks(r, r.collectives_s["tp_all_reduce"]) == pytest.approx(base * (2 + share) / 2,
                                                                         rel=1e-12)
    assert blocks(r, r.exposed_s["TP all-reduce"]) == pytest.approx(
        base * (2 + share - hidden) / 2, rel=1e-9)
    assert r.exposed["tp_all_reduce"]       # the forward's always block
    assert r.parts.tp_hidden * 4 == pytest.approx(base * hidden / 2, rel=1e-12)


def test_hidden_tp_traffic_waits_where_the_weight_gradients_are_too_short():
    # a 2-chip tp slice with slow links: the reduce-scatters outlast the weight-gradient GEMMs
    # that would hide them, and the excess waits after the block's backward (the step grows by
    # exactly what the parts say is late)
    model = custom_config(name="t", hidden=512, layers=4, heads=8, kv_heads=8, ffn=2048,
                          vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
    slow = CHIP.model_copy(update={"ici": CHIP.ici.model_copy(
        update={"link_bandwidth_bytes_per_s": CHIP.ici.link_bandwidth_bytes_per_s / 1000})})
    two = make_slice(slow.ici, slow.dcn, shape="2")
    r = train_step(slow, model, two, ParallelSpec(tp=2, sequence_parallel=True), seq=1024,
                   global_batch=2, remat="none")
    p = r.parts
    assert p.tp_backward > 0.5 * p.tp_block          # the blocking half and a late part
    late = p.tp_backward - 0.5 * p.tp_block
    assert p.tp_hidden + late == pytest.approx(p.tp_block, rel=1e-12)   # 0.5 + 0.5 of a pass
    assert r.exposed_s["TP all-reduce"] == pytest.approx(
        4 * (p.tp_block + p.tp_backward + p.tp_recompute) + p.tp_embed + p.tp_head, rel=1e-9)


def test_minimal_keeps_the_projections_and_reruns_attention_and_vector_rows():
    # MaxText's minimal (checkpoint_dots_with_no_batch_dims): the projections' outputs are kept
    # (qkv 1,536 + o_proj 512 + gate 2,048 + up 2,048 values per token beside the 512-value
    # input; ffn_down's is read by nothing), attention's batched GEMMs are not, so the flash
    # forward reruns with the vector rows: recompute = full's less the four projections.
    tok, layers = 128, 4
    r, full = _step("minimal"), _step("full")
    assert r.memory_gib["activations"] * GIB == layers * (512 + 1536 + 512 + 2048 + 2048) * tok * 2
    t = _forward_times()
    kept = sum(t[n] for n in ("qkv_proj", "o_proj", "ffn_gate", "ffn_up"))
    assert r.time_s["recompute"] == pytest.approx(full.time_s["recompute"] - kept, rel=1e-12)


@pytest.mark.parametrize("name", sorted(PRESETS) + ["maxtext_scale_32"])
def test_unread_rows_of_every_preset_follow_its_block_kind(name):
    # hand truth: a sequential block's unread rows are the FFN's last row (ffn_down, or the
    # combine of an MoE) and the second add; a parallel block (PaLM, GPT-J) adds o_proj and
    # the first add, whose only reader is the second add. The dropped MoE path's combine is
    # moe_combine. Flash rows and expert shards change nothing.
    from tpusim.importers.llm import get_preset
    from tpusim.pod.dropmoe import dropped_rows
    from tpusim.pod.flash import flash_attention
    from dataclasses import replace

    from tpusim.pod.remat import OUTSIDE_BLOCKS, unread
    cfg = get_preset(name)
    last = "expert_combine" if cfg.moe else "ffn_down"
    want = {last, "ffn_residual"} | ({"o_proj", "attn_residual"} if cfg.parallel_block else set())
    variants = [cfg] + ([replace(cfg, expert_shards=2)] if cfg.moe else [])
    for c in variants:
        fwd = llm_rows(c, "prefill", batch=1, seq=64, kv_len=64)
        for rows in (fwd, flash_attention(fwd, c.heads // c.kv_heads, 64)):
            assert unread([r for r in rows if r["name"] not in OUTSIDE_BLOCKS]) == want
    if cfg.moe:
        rows = dropped_rows(llm_rows(cfg, "prefill", batch=1, seq=64, kv_len=64), cfg, 1, 64,
                            1.25)
        got = unread([r for r in rows if r["name"] not in OUTSIDE_BLOCKS])
        assert got == {"moe_combine", "ffn_residual"}


@pytest.mark.parametrize("remat,reruns", [("none", False), ("full", True), ("minimal", True),
                                          ("offload:input,qkv_proj", True)])
def test_recompute_reruns_both_all_to_alls(remat, reruns):
    # ep collectives per MoE block: dispatch and return in the forward and the backward
    # (ep_block each pass), and again in the recompute whenever it reruns anything: the
    # dispatched tokens and returned outputs are no row a policy keeps. Blocking, so exposed.
    two = make_slice(CHIP.ici, CHIP.dcn, shape="2")
    spec = ParallelSpec(ep=2)

    def run(policy):
        return train_step(CHIP, TINY_MOE, two, spec, seq=64, global_batch=4, remat=policy)
    base = run("none").collectives_s["ep_all_to_all"]
    r = run(remat)
    assert base > 0
    assert r.collectives_s["ep_all_to_all"] == pytest.approx(base * (3 if reruns else 2) / 2,
                                                             rel=1e-12)
    assert r.exposed_s["EP all-to-all"] == pytest.approx(r.collectives_s["ep_all_to_all"],
                                                         rel=1e-9)


def test_moe_ffn_norm_readers_and_expert_gemm_cover():
    """Mixtral under sp (hand-derived, shares of one pass = 4 collectives of 0.25 each): the
    dropless path sorts ffn_norm's gathered output (moe_permute), so a recompute rerunning the
    sort gathers it again (0.25 in the recompute); the FFN's input-gradient reduce-scatter runs
    under the experts' weight-gradient GEMMs (split over tp as ffn_gate/ffn_up are), which on
    this shard far outlast it, so both reduce-scatters (0.5) hide and only the two gradient
    all-gathers (0.5) block the backward."""
    from tpusim.importers.llm_presets import get_preset
    from tpusim.pod.remat import TpShares, tp_shares
    assert tp_shares({"moe_permute"}, False, True) == TpShares(0.25, 0.5, 0.5, 0.25)
    chip_slice = make_slice(CHIP.ici, CHIP.dcn, shape="4x4x4")
    spec = ParallelSpec(fsdp=16, tp=4, sequence_parallel=True)
    for remat, redo, under_d in (("full", 0.75, 0.0), ("minimal", 0.25, 0.25)):
        p = train_step(CHIP, get_preset("mixtral_8x7b"), chip_slice, spec, seq=4096,
                       global_batch=64, remat=remat).parts
        assert p.tp_recompute == pytest.approx(redo * p.tp_block, rel=1e-12)
        assert p.tp_backward == pytest.approx(0.5 * p.tp_block, rel=1e-12)
        assert p.tp_hidden == pytest.approx((0.5 + under_d) * p.tp_block, rel=1e-12)


def test_report_says_which_tp_traffic_runs_under_the_backward():
    """train.json keeps tp exposed (the forward's collectives always block); the report names
    the part the compute never waits for: the TP total less its waits."""
    from tpusim.pod.report import train_report
    from tpusim.units import seconds
    model = custom_config(name="t", hidden=1024, layers=4, heads=8, kv_heads=8, ffn=8192,
                          vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")
    two = make_slice(CHIP.ici, CHIP.dcn, shape="2")
    for sp in (True, False):
        r = train_step(CHIP, model, two, ParallelSpec(tp=2, sequence_parallel=sp), seq=1024,
                       global_batch=2, remat="full")
        assert r.exposed["tp_all_reduce"]
        rec = {**r.as_dict(), "alternatives": [], "model": "t", "config": "tpu_v5p",
               "sharding": "given", "global_batch": 2, "seq": 1024}
        html = train_report(rec)
        hidden = r.collectives_s["tp_all_reduce"] - r.exposed_s["TP all-reduce"]
        assert (hidden > 1e-9 * r.collectives_s["tp_all_reduce"]) is sp
        assert (f"but for {seconds(hidden)} under the backward" in html) is sp

"""MaxText's dropped MoE path (pod/dropmoe.py) against hand counts from the einsums' shapes:
capacity rounding, dispatch/expert/combine MACs forward and backward, the working set, the
expert-parallel load, MFU's definition, both simulation paths and the CLI's bad values."""
from __future__ import annotations

import pytest

import tpusim
from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import custom_config, llm_rows
from tpusim.pod import train
from tpusim.pod.dropmoe import (MoeKernel, all_to_all_rows, dropped_rows, expert_capacity,
                                parse_moe, without_mask_gradients)
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice
from tpusim.simulator import simulate
from tpusim.workload import Workload, make_layer

# 2 layers, hidden M 1,024, FFN F 2,048, E 4 experts, top-2; 2 sequences of S 256 per chip.
M, F, E, K, S, B, L = 1024, 2048, 4, 2, 256, 2, 2
CFG = custom_config(name="moe", hidden=M, layers=L, heads=8, kv_heads=8, ffn=F, vocab=1024,
                    gated=True, act="silu", norm="rmsnorm", experts=E, top_k=K)


@pytest.mark.parametrize("seq,k,e,cf,slots", [
    (256, 2, 4, 1.25, 160),      # ceil(512 / 4) = 128 x 1.25
    (10, 2, 4, 1.25, 6),         # ceil(20 / 4) = 5 x 1.25 = 6.25, truncated by int()
    (7, 2, 4, 1.5, 6),           # ceil(14 / 4) = 4 x 1.5
    (3, 1, 8, 1.0, 1),           # ceil(3 / 8) = 1
    (4096, 2, 8, 1.25, 1280),    # Mixtral at 4,096 tokens
    (1, 1, 8, 2.0, 2),           # max(1 x 2, 2)
])
def test_capacity_rounds_as_maxtext(seq, k, e, cf, slots):
    assert expert_capacity(seq, k, e, cf) == slots


def test_zero_capacity_is_an_input_error():
    # ceil(1 x 1 / 8) x 0.5 = 0.5 -> int() 0 slots
    with pytest.raises(InputError, match="0 slots per expert"):
        dropped_rows(llm_rows(CFG, "prefill", batch=1, seq=1), CFG, 1, 1, 0.3)


def test_a_capacity_too_large_to_size_is_an_input_error():
    # 64 tokens x top_k over E experts: CF = E / top_k gives each expert all 64 slots; past it
    # only padding, allowed, until the combine mask's B S E C elements pass 2^53 (a factor of
    # 1e9 on Mixtral failed on the trace's column sizes, naming no option)
    limit = CFG.experts / CFG.top_k
    assert expert_capacity(64, CFG.top_k, CFG.experts, limit) == 64
    dropped_rows(llm_rows(CFG, "prefill", batch=1, seq=64), CFG, 1, 64, 100 * limit)
    with pytest.raises(InputError, match=r"^--moe: got 'dropped:1e\+15'; gives .* past 2\^53 .*"
                                         f"factor {limit:g} up"):
        dropped_rows(llm_rows(CFG, "prefill", batch=1, seq=64), CFG, 1, 64, 1e15)


def _rows(cf: float, cfg=CFG, batch=B):
    return {r["name"]: r for r in dropped_rows(llm_rows(cfg, "prefill", batch=batch, seq=S),
                                                cfg, batch, S, cf)}


def test_forward_rows_have_the_einsums_shapes():
    rows = _rows(1.25)
    C = 160
    assert not {"moe_permute", "expert_combine"} & set(rows)
    # BSM,BSEC -> EBCM: per sequence (E C x S) @ (S x M)
    d = rows["moe_dispatch"]
    assert (d["batch"], d["m"], d["k"], d["n"]) == (B, E * C, S, M)
    assert make_layer(d).macs == B * E * C * S * M
    # EBCM,EMH -> EBCH: E GEMMs of B C rows, padded slots computed whole
    for name, k, n in (("expert_gate", M, F), ("expert_up", M, F), ("expert_down", F, M)):
        r = rows[name]
        assert (r["batch"], r["m"], r["k"], r["n"]) == (E, B * C, k, n)
    assert rows["expert_silu"]["elements"] == E * B * C * F
    # EBCM,BSEC -> BSM: per sequence (S x E C) @ (E C x M)
    c = rows["moe_combine"]
    assert (c["batch"], c["m"], c["k"], c["n"]) == (B, S, E * C, M)
    assert rows["moe_masks"]["elements"] == B * S * E * C
    order = list(rows)
    assert order.index("moe_router_softmax") < order.index("moe_masks") < \
        order.index("moe_dispatch") < order.index("expert_gate")
    assert order.index("expert_down") < order.index("moe_combine") < order.index("ffn_residual")


def test_backward_drops_only_the_bool_masks_gradient():
    fwd = [r for r in _rows(1.25).values() if r["name"] in ("moe_dispatch", "moe_combine")]
    names = [r["name"] for r in without_mask_gradients(train.backward_rows(fwd))]
    assert names == ["moe_dispatch_wgrad", "moe_combine_dgrad", "moe_combine_wgrad"]
    d_in, d_mask, d_out = without_mask_gradients(train.backward_rows(fwd))
    # d inputs = mask (S x E C) @ d dispatch (E C x M); d combine mask = d out (S x M) @ out^T;
    # d expert out = mask^T (E C x S) @ d out (S x M): each B S E C M MACs.
    assert (d_in["m"], d_in["k"], d_in["n"]) == (S, E * 160, M)
    assert (d_mask["m"], d_mask["k"], d_mask["n"]) == (S, M, E * 160)
    assert (d_out["m"], d_out["k"], d_out["n"]) == (E * 160, S, M)


def _step(moe, spec=ParallelSpec(), batch=B, chips="1"):
    chip = load_config("tpu_v5p")
    sl = make_slice(chip.ici, chip.dcn, shape=chips)
    r = train.train_step(chip, CFG, sl, spec, S, batch * sl.chips, memo=False, moe=moe)
    return r, r.hfu * r.step_s * chip.peak_tops("bf16") * 1e12 / 2


def test_macs_are_linear_in_the_padded_slots():
    # dropped:1.25 -> C 160, dropped:2.5 -> C 320. Per layer and slot: dispatch B E S M (forward,
    # recompute, input gradient: 3 runs), combine B S E M (forward and 2 gradients: 3; never
    # recomputed, as only the residual add reads its output), three expert GEMMs E B M F each
    # (4 runs each). Nothing else depends on C.
    r1, m1 = _step("dropped:1.25")
    r2, m2 = _step("dropped:2.5")
    per_slot = 3 * B * E * S * M + 3 * B * S * E * M + 4 * 3 * E * B * M * F
    assert m2 - m1 == pytest.approx(L * 160 * per_slot, rel=1e-9)
    r4, m4 = _step("dropped:5")                      # C 640: twice the step again
    assert m4 - m2 == pytest.approx(L * 320 * per_slot, rel=1e-9)
    # MFU as MaxText counts it: the same model FLOPs whatever runs, so mfu x step is constant
    rm, _ = _step("megablox")
    assert r1.mfu * r1.step_s == pytest.approx(rm.mfu * rm.step_s, rel=1e-12)
    assert r2.hfu > r1.hfu and r2.mfu < r1.mfu
    assert (r1.moe, rm.moe) == ("dropped:1.25", "megablox")


def test_working_set_counts_the_dispatched_buffers():
    # remat full keeps only the block input; the layer being back-propagated holds every block
    # output: per slot the masks (B S E), the dispatched buffer (E B M), gate, up, silu, gate
    # multiply (E B F each) and the expert output (E B M), in bf16.
    r1, _ = _step("dropped:1.25")
    r2, _ = _step("dropped:2.5")
    per_slot = B * S * E + E * B * M + 4 * E * B * F + E * B * M
    assert (r2.memory_gib["backward_working_set"] - r1.memory_gib["backward_working_set"]) \
        * 2 ** 30 == pytest.approx(2 * 160 * per_slot, rel=1e-9)
    assert r2.memory_gib["activations"] == r1.memory_gib["activations"]


def test_expert_shards_run_fixed_capacity():
    # ep = 2 on 2 chips, 2 sequences each: a chip dispatches its own 2 sequences to all 4
    # experts, then holds 2 experts x (2 x 2) sequences' 160 slots: the same E B C rows as one
    # chip alone, no busiest-shard pace.
    rows = _rows(1.25, cfg=train.shard_config(CFG, ParallelSpec(ep=2)))
    g = rows["expert_gate"]
    assert (g["batch"], g["m"]) == (2, 2 * B * 160)
    assert rows["moe_dispatch"]["m"] == E * 160
    assert "expert_local_sort" not in rows
    assert all_to_all_rows(CFG, S, parse_moe("dropped:1.25")) == E * 160   # slots, not 512 pairs
    assert all_to_all_rows(CFG, S, parse_moe("dropless")) == S * K


def test_kernel_bytes_of_the_dispatch_einsum():
    # one sequence: the (640 x 256) mask and the (256 x 1,024) tokens read once, the (640 x
    # 1,024) buffer written once, all bf16
    d = {**_rows(1.25)["moe_dispatch"], "batch": 1, "count": 1}
    df = simulate(load_config("tpu_v6e"), Workload(name="t", layers=(make_layer(d),),
                                                   source="t")).layers
    assert df["hbm_read_bytes"][0] == 2 * (E * 160 * S + S * M)
    assert df["hbm_write_bytes"][0] == 2 * E * 160 * M


@pytest.mark.parametrize("preset", ["tpu_v5p", "tpu_v6e"])
def test_both_simulation_paths_agree_on_the_dropped_step(preset):
    fwd = list(_rows(1.25).values())
    rows = fwd + without_mask_gradients(train.backward_rows(fwd))
    wl = Workload(name="d", layers=tuple(make_layer(r, "d") for r in rows), source="d")
    chip = load_config(preset)
    ref = tpusim.simulate(chip, wl, core="reference").layers
    col = tpusim.simulate(chip, wl).layers
    assert ref["cycles"].tolist() == col["cycles"].tolist()
    assert ref["hbm_read_bytes"].tolist() == col["hbm_read_bytes"].tolist()


@pytest.mark.parametrize("value", ["dropped:0", "dropped:-1", "dropped:abc", "dropped:",
                                   "sparse", "dropped:nan", "dropped:inf"])
def test_parse_moe_rejects(value):
    with pytest.raises(InputError, match="allowed: megablox"):
        parse_moe(value)


def test_parse_moe_accepts():
    assert parse_moe("dropless") == parse_moe("megablox") == MoeKernel()
    assert parse_moe("dropped:1.25") == MoeKernel("dropped", 1.25)
    assert parse_moe("dropped:2").label() == "dropped:2"


@pytest.mark.parametrize("value", ["dropped:0", "bogus"])
@pytest.mark.parametrize("search", [False, True])
def test_cli_bad_moe_is_one_line_exit_2(cli, tmp_path, value, search):
    par = [] if search else ["--parallel", "fsdp=4"]
    code, out, err = cli("train", "tpu_v5e", "custom", "--hidden", "512", "--layers", "2",
                         "--heads", "8", "--vocab", "1024", "--experts", "4", "--top-k", "2",
                         "--chips", "4", "--seq", "128", *par, "--moe", value,
                         "--out", tmp_path / "o")
    assert code == 2 and "--moe" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_dropped_writes_its_kernel(cli, tmp_path):
    import json
    code, out, err = cli("train", "tpu_v5e", "custom", "--hidden", "512", "--layers", "2",
                         "--heads", "8", "--vocab", "1024", "--experts", "4", "--top-k", "2",
                         "--chips", "4", "--seq", "128", "--parallel", "fsdp=4",
                         "--moe", "dropped:1.25", "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "train.json").read_text())
    assert rec["moe"] == "dropped:1.25"


@pytest.mark.parametrize("search", [False, True])
def test_cli_dropped_on_a_dense_model_is_an_error(cli, tmp_path, search):
    """As ep=2 on a dense model: it has no experts to drop tokens at (with the search too, the
    one line, not 'no sharding fits')."""
    par = [] if search else ["--parallel", "fsdp=8"]
    code, out, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", *par,
                         "--moe", "dropped:1.25", "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert err.strip() == ("tpusim: error: --moe: got 'dropped:1.25'; gpt2 has no experts "
                           "(dense model); --moe applies to MoE models")
    # the dropless default on a dense model is no choice the user made: it runs
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--parallel", "fsdp=8",
                       "--out", tmp_path / "o")
    assert code == 0, err

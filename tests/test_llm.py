"""LLM traces against closed forms: published parameter counts, MACs = tokens x weights +
attention, GQA sharing, prefill/decode shapes, and the CLI."""
from __future__ import annotations

import pytest

from tpusim.errors import InputError
from tpusim.importers.llm import (PRESETS, custom_config, get_preset, llm_macs, llm_rows,
                                  llm_workload)
from tpusim.importers import load_workload
from tpusim.workload import make_layer

# Published parameter counts of the checkpoints (Hugging Face model cards / safetensors totals).
PUBLISHED_PARAMS = {
    "gpt2": 124_439_808,
    "bert_base": 109_482_240,
    "llama3_8b": 8_030_261_248,
    "llama2_70b": 68_976_648_192,
    "llama2_7b": 6_738_415_616,         # huggingface.co/meta-llama/Llama-2-7b-hf (6.74B)
    "llama3_1_8b": 8_030_261_248,
    "llama3_1_70b": 70_553_706_496,
    "llama3_1_405b": 405_853_388_800,
    "mixtral_8x7b": 46_702_792_704,
    "mixtral_8x22b": 140_620_634_112,
    "llama2_13b": 13_015_864_320,       # huggingface.co/meta-llama/Llama-2-13b-hf
    "llama3_70b": 70_553_706_496,       # huggingface.co/meta-llama/Meta-Llama-3-70B
    "mistral_7b": 7_241_732_096,        # huggingface.co/mistralai/Mistral-7B-v0.1
    "gemma_7b": 8_537_680_896,          # huggingface.co/google/gemma-7b (embeddings included)
}
NEW_PRESETS = ("gpt3_175b", "llama2_13b", "llama3_70b", "mistral_7b", "gemma_7b")


def test_gpt3_175b_param_count():
    # Brown et al. 2020, Table 2.1: "175.0B", given to one decimal of a billion (+-0.05B) and
    # without the bias/norm layout, so 0.5%: ours is 174.60B (12 x 96 x 12288^2 = 173.95B in
    # the blocks' matmuls alone, plus biases, norms, the tied 50257-token and 2048-position
    # tables).
    cfg = get_preset("gpt3_175b")
    assert cfg.param_count() == pytest.approx(175.0e9, rel=5e-3)
    assert 12 * 96 * 12288**2 < cfg.param_count() < 12 * 96 * 12288**2 + 1e9


def test_gemma_7b_head_dim_and_geglu_rows():
    # 16 heads of 256 = 4096 wide Q/K/V and O against a 3072 hidden; GeGLU: gate and up of
    # 24576 with a gelu between (Gemma Team 2024, Table 1; config.json).
    cfg = get_preset("gemma_7b")
    rows = {r["name"]: r for r in llm_rows(cfg, "prefill", batch=1, seq=8)}
    assert rows["qkv_proj"]["k"] == 3072 and rows["qkv_proj"]["n"] == 3 * 16 * 256
    assert rows["o_proj"]["k"] == 16 * 256 and rows["o_proj"]["n"] == 3072
    assert rows["ffn_gate"]["n"] == rows["ffn_up"]["n"] == 24576
    assert rows["ffn_gelu"]["op"] == "gelu" and rows["attn_norm"]["op"] == "rmsnorm"
    assert rows["lm_head"]["n"] == 256000 and "pos_add" not in rows


def test_palm_and_gptj_param_counts():
    # PaLM-540B: "540.35B" (Chowdhery et al. 2022, Table 1). GPT-J-6B: 6,053,381,344
    # (mesh-transformer-jax README); our count lands 0.04% under it, since GPT-J's attention
    # has no biases while its FFN and LM head do and one `biases` flag cannot say both.
    assert get_preset("palm_540b").param_count() / 1e9 == pytest.approx(540.35, abs=0.01)
    assert get_preset("gptj_6b").param_count() == pytest.approx(6_053_381_344, rel=1e-3)


def test_moe_active_params_and_decode_reads_only_routed_experts():
    cfg = get_preset("mixtral_8x7b")
    # Mixtral 8x7B: ~12.9 B active parameters per token (Jiang et al. 2024), embeddings included.
    active = cfg.linear_params() + cfg.vocab * cfg.hidden
    assert active / 1e9 == pytest.approx(12.9, abs=0.05)
    rows = {r["name"]: r for r in llm_rows(cfg, "decode", batch=1, kv_len=8)}
    assert rows["expert_up"]["batch"] == 2 and rows["expert_up"]["m"] == 1
    rows = {r["name"]: r for r in llm_rows(cfg, "prefill", batch=4, seq=64)}
    assert rows["expert_up"]["batch"] == 8 and rows["expert_up"]["m"] == 4 * 64 * 2 // 8


def test_moe_config_checked():
    with pytest.raises(InputError, match="top_k"):
        custom_config(hidden=64, layers=1, heads=4, kv_heads=4, ffn=128, vocab=10, experts=4,
                      top_k=5)
    with pytest.raises(InputError, match="head-dim"):
        custom_config(hidden=66, layers=1, heads=4, kv_heads=4, ffn=128, vocab=10)
    assert custom_config(hidden=66, layers=1, heads=4, kv_heads=4, ffn=128, vocab=10,
                         head_size=16).head_dim == 16


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_preset_param_counts_match_published(name):
    assert get_preset(name).param_count() == PUBLISHED_PARAMS[name]


def _macs(rows):
    return sum(make_layer(r).macs * r.get("count", 1) for r in rows)


def test_llama3_8b_decode_is_params_per_token():
    # Decode with a 1-token cache: MACs per token = every weight once (the embedding table is a
    # gather, the norms are vector ops) + 2 x layers x hidden for the 1 x 1 attention.
    cfg = get_preset("llama3_8b")
    matmul_weights = PUBLISHED_PARAMS["llama3_8b"] - cfg.vocab * cfg.hidden - (2 * 32 + 1) * 4096
    rows = llm_rows(cfg, "decode", batch=3, kv_len=1)
    assert _macs(rows) == 3 * (matmul_weights + 2 * 32 * 4096)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("phase,batch,seq,kv", [("prefill", 2, 64, 64), ("prefill", 1, 16, 80),
                                                 ("decode", 4, 1, 300)])
def test_macs_closed_form(name, phase, batch, seq, kv):
    cfg = get_preset(name)
    if phase == "decode" and not cfg.lm_head:       # an encoder has no decode step
        with pytest.raises(InputError, match="is an encoder"):
            llm_workload(cfg, phase, batch, seq, kv)
        return
    hd = cfg.head_size or cfg.hidden // cfg.heads
    tokens = batch * seq
    # independent of linear_params(): Q, K, V, O, FFN (top_k experts + router for MoE) and head
    ffn = (3 if cfg.gated else 2) * cfg.hidden * cfg.ffn
    ffn = cfg.top_k * ffn + cfg.hidden * cfg.experts if cfg.experts > 1 else ffn
    per_layer = (cfg.hidden * cfg.heads * hd * 2 + 2 * cfg.hidden * cfg.kv_heads * hd + ffn)
    head = cfg.vocab * cfg.hidden if cfg.lm_head else 0
    attn = 2 * batch * cfg.layers * cfg.heads * seq * kv * hd
    want = tokens * (cfg.layers * per_layer + head) + attn
    wl = llm_workload(cfg, phase, batch, seq, kv)
    assert wl.macs == want == llm_macs(cfg, batch, seq, kv)


def test_gqa_shares_kv_per_group():
    cfg = get_preset("llama2_70b")              # 64 query heads, 8 KV heads: groups of 8
    rows = {r["name"]: r for r in llm_rows(cfg, "decode", batch=2, kv_len=1000)}
    qk, av = rows["attn_qk"], rows["attn_av"]
    assert (qk["batch"], qk["m"], qk["k"], qk["n"]) == (2 * 8, 8, 128, 1000)
    assert (av["batch"], av["m"], av["k"], av["n"]) == (2 * 8, 8, 1000, 128)
    assert qk["weights"] == av["weights"] == "dynamic"
    layer = make_layer(qk)
    # K operand = the KV cache of one layer: batch x kv_heads x head_dim x kv_len, once
    assert layer.weight_elements == 2 * 8 * 128 * 1000
    assert layer.macs == 2 * 64 * 1 * 128 * 1000
    assert rows["qkv_proj"]["n"] == (64 + 2 * 8) * 128
    assert rows["attn_softmax"]["elements"] == 2 * 64 * 1000
    # MHA: batch x heads products
    g = {r["name"]: r for r in llm_rows(get_preset("gpt2"), "prefill", batch=3, seq=10)}
    assert (g["attn_qk"]["batch"], g["attn_qk"]["m"]) == (3 * 12, 10)


def test_structure_counts_and_vector_rows():
    cfg = get_preset("llama3_8b")
    rows = {r["name"]: r for r in llm_rows(cfg, "prefill", batch=1, seq=32)}
    assert rows["ffn_gate"]["count"] == 32 and "count" not in rows["lm_head"]
    assert rows["ffn_silu"]["op"] == "silu" and rows["ffn_silu"]["elements"] == 32 * 14336
    assert rows["attn_norm"]["op"] == "rmsnorm" and rows["rope"]["op"] == "rope"
    g = {r["name"]: r for r in llm_rows(get_preset("gpt2"), "prefill", seq=8)}
    assert "ffn_gate" not in g and g["ffn_gelu"]["op"] == "gelu"
    assert g["attn_norm"]["op"] == "layernorm" and "pos_add" in g and "rope" not in g
    b = {r["name"]: r for r in llm_rows(get_preset("bert_base"), "prefill", seq=8)}
    assert "lm_head" not in b and "embed_norm" in b


def test_logits_last_and_kv_growth():
    cfg = get_preset("llama3_8b")
    full = llm_workload(cfg, "prefill", 2, 100).macs
    last = llm_workload(cfg, "prefill", 2, 100, logits="last").macs
    assert full - last == (200 - 2) * cfg.vocab * cfg.hidden
    # one more cached key adds QK^T and AV work only: 2 x batch x layers x heads x head_dim
    a = llm_workload(cfg, "decode", 4, kv_len=500).macs
    b = llm_workload(cfg, "decode", 4, kv_len=501).macs
    assert b - a == 2 * 4 * 32 * 32 * 128


@pytest.mark.parametrize("kwargs,match", [
    (dict(phase="decode"), "kv_len"),
    (dict(phase="prefill", seq=10, kv_len=5), "kv_len"),
    (dict(phase="train"), "prefill|decode"),
    (dict(phase="prefill", batch=0), "batch"),
    (dict(phase="prefill", dtype="fp64"), "dtype.*bf16"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        llm_rows(get_preset("gpt2"), **kwargs)


def test_custom_config_checked():
    with pytest.raises(InputError, match="kv_heads"):
        custom_config(hidden=64, layers=1, heads=4, kv_heads=3, ffn=128, vocab=10)
    cfg = custom_config(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=10)
    assert llm_workload(cfg, "prefill", 1, 4).macs == llm_macs(cfg, 1, 4, 4)


def test_cli_llm(cli, tmp_path):
    out = tmp_path / "dec.csv"
    code, stdout, err = cli("workload", "llm", "llama3_8b", "--phase", "decode", "--batch", "8",
                            "--kv-len", "2048", "--out", out)
    assert code == 0, err
    wl = load_workload(out)
    assert wl.macs == llm_macs(get_preset("llama3_8b"), 8, 1, 2048)
    assert "kv_len 2048" in wl.notes[0] and "regenerate" in wl.notes[0]
    code, _, err = cli("workload", "llm", "--hidden", "256", "--layers", "2", "--heads", "4",
                       "--vocab", "100", "--gated", "--seq", "16", "--out", tmp_path / "c.csv")
    assert code == 0, err
    c = custom_config(hidden=256, layers=2, heads=4, kv_heads=4, ffn=1024, vocab=100, gated=True)
    assert load_workload(tmp_path / "c.csv").macs == llm_macs(c, 1, 16, 16)
    code, _, err = cli("workload", "llm", "llama3_8b", "--phase", "decode", "--out",
                       tmp_path / "x.csv")
    assert code == 2 and "kv" in err and not (tmp_path / "x.csv").exists()
    code, _, err = cli("workload", "llm", "gpt5", "--out", tmp_path / "x.csv")
    assert code == 2 and "gpt2" in err
    code, text, _ = cli("workload", "llm", "--help")
    assert code == 0 and "Example" in text


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_cli_llm_new_presets(cli, tmp_path, name):
    out = tmp_path / f"{name}.csv"
    code, _, err = cli("workload", "llm", name, "--phase", "prefill", "--seq", "128", "--out", out)
    assert code == 0, err
    assert load_workload(out).macs == llm_macs(get_preset(name), 1, 128, 128)


def test_presets_listed_in_help_and_readme(cli):
    # the lists users read name every preset (README's and `workload llm --help`'s)
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code, text, _ = cli("workload", "llm", "--help")
    assert code == 0
    flat = " ".join(text.split())
    for name in PRESETS:
        assert f"`{name}`" in readme, name
        assert re.search(rf"\b{name}\b", flat), name


def test_train_gpt3_175b_on_v5p_512(cli, tmp_path):
    # MLPerf Training's GPT-3 shape: 512 v5p chips, seq 2048, global batch 1024 (runs; MFU not
    # asserted here)
    code, out, err = cli("train", "tpu_v5p", "gpt3_175b", "--chips", "512", "--seq", "2048",
                         "--global-batch", "1024", "--parallel", "fsdp=64,tp=8",
                         "--out", tmp_path / "t")
    assert code == 0, err
    assert "gpt3_175b on tpu_v5p" in out and (tmp_path / "t" / "train.json").exists()


def test_workload_llm_without_a_preset_lists_the_scaled_family_too(cli):
    code, _, err = cli("workload", "llm")
    assert code == 2 and "give a PRESET (" in err and "|maxtext_scale_S)" in err


@pytest.mark.parametrize("args", [
    ("llama2_7b", "--layers", "2", "--ffn", "4096"),                       # preset overrides
    ("--hidden", "512", "--layers", "2", "--heads", "6", "--head-dim", "64", "--vocab", "100",
     "--experts", "4", "--top-k", "2", "--gated", "--act", "silu"),        # heads x 64 != 512, MoE
])
def test_cli_llm_trace_regenerates_from_its_own_line(cli, tmp_path, args):
    # the trace's regenerate line names every dimension given, so it rebuilds the same trace
    import shlex
    a = tmp_path / "a.csv"
    code, _, err = cli("workload", "llm", *args, "--phase", "decode", "--kv-len", "64", "--out", a)
    assert code == 0, err
    note = load_workload(a).notes[0]
    line = shlex.split(note.split("regenerate: ", 1)[1])
    assert line[:3] == ["tpusim", "workload", "llm"]
    b = tmp_path / "b.csv"
    code, _, err = cli(*line[1:], "--out", b)
    assert code == 0, err
    assert [r for r in a.read_text().splitlines() if not r.startswith("#")] == \
        [r for r in b.read_text().splitlines() if not r.startswith("#")]
    if "--head-dim" in args:     # the custom attention and experts as given
        rows = {r.name: r for r in load_workload(a).layers}
        assert rows["qkv_proj"].n == (6 + 2 * 6) * 64 and rows["o_proj"].k == 6 * 64
        assert rows["expert_up"].macs == 2 * 1 * 512 * 2048   # one token to its top-2 experts
    else:
        assert "with --layers 2 --ffn 4096 given" in note


def test_cli_llm_says_how_much_of_a_moe_trace_is_padded_token_slots(cli, tmp_path):
    # 5 tokens x top-2 = 10 pairs over 8 experts: each expert's GEMM gets ceil(10/8) = 2 slots,
    # 16 in all; the 6 padded slots' MACs are named beside the model's closed form
    m = get_preset("mixtral_8x7b")
    code, out, err = cli("workload", "llm", "mixtral_8x7b", "--phase", "decode", "--batch", "5",
                         "--kv-len", "100", "--out", tmp_path / "m.csv")
    assert code == 0, err
    exact = llm_macs(m, 5, 1, 100)
    per_slot = m.layers * 3 * m.hidden * m.ffn            # gate, up, down of one token slot
    assert f"{6 * per_slot / 1e9:.6g} GMAC of them the experts' padded token slots" in out
    assert f"({exact / 1e9:.6g} GMAC of the model's)" in out
    code, out, err = cli("workload", "llm", "mixtral_8x7b", "--phase", "decode", "--batch", "4",
                         "--kv-len", "100", "--out", tmp_path / "n.csv")
    assert code == 0 and "padded" not in out           # 8 pairs over 8 experts: none

"""LLM generation and the step cost model against the simulator itself and closed forms.

The truth for a step is ``simulate()`` of that step's full trace; for a trace it is the MACs
closed form (tokens x weights + 2 x layers x heads x head_dim x sum of new x KV)."""
from __future__ import annotations

import math

import numpy as np
import json

import pytest

import tpusim
from tpusim.errors import InputError
from tpusim.generation import StepCostModel, generate, step_rows
from tpusim.importers.llm import custom_config, llm_rows, llm_workload

from .conftest import run_cli
from tpusim.workload import make_layer

# A small GQA model: 3 blocks, so rows have count 3 (first, middle, last instances differ).
SMALL = custom_config(name="small", hidden=256, layers=3, heads=4, kv_heads=2, ffn=512,
                      vocab=1000, gated=True, act="silu", norm="rmsnorm", positions="rope")
DEEP = custom_config(name="deep", hidden=512, layers=24, heads=8, kv_heads=2, ffn=1024,
                     vocab=2000, gated=True, act="silu", norm="rmsnorm", positions="rope")


def _close(a, b, rel=1e-12):
    assert a == pytest.approx(b, rel=rel, abs=0)


def _same_as_simulate(cost, step, trace, chip):
    ref = tpusim.simulate(chip, trace).summary
    _close(step.cycles, ref["total_cycles"])
    _close(step.latency_s, ref["latency_s"])
    _close(step.energy_j, ref["energy_j"])
    _close(step.hbm_bytes, ref["hbm_bytes"])
    assert step.macs == ref["macs"]


@pytest.mark.parametrize("config", ["tpu_v4", "default", "tpu_v1", "edge_tpu"])
@pytest.mark.parametrize("model", [SMALL, DEEP])
def test_decode_step_equals_simulate_of_its_trace(config, model):
    chip = tpusim.load_config(config)
    dtype = "int8" if config in ("tpu_v1", "edge_tpu") else "bf16"   # their only format
    cost = StepCostModel(chip, model, dtype=dtype)
    for batch in (1, 4):
        for kv in (1, 127, 128, 129, 700):   # around array-width boundaries
            step = cost.step([kv] * batch)
            wl = llm_workload(model, "decode", batch, 1, kv, dtype=dtype)
            _same_as_simulate(cost, step, wl, chip)


def test_int8_kv_cache_streams_one_byte_per_value_and_equals_simulate():
    # A ragged decode batch (two KV lengths) reading an int8 cache under bf16 queries: the
    # step is simulate() of its own trace (whose K/V operands say int8), and it moves exactly
    # the K and V bytes saved (1 of 2 per value: layers x 2 x kv_heads x head_dim x KV length,
    # over the sequences) less than the bf16 cache's step.
    chip = tpusim.load_config("tpu_v5e")
    kvs = [700, 700, 1500]
    bf, i8 = StepCostModel(chip, DEEP), StepCostModel(chip, DEEP, kv_dtype="int8")
    s_bf, s_i8 = bf.step(kvs), i8.step(kvs)
    _same_as_simulate(i8, s_i8, i8.trace(kvs), chip)
    saved = sum(DEEP.layers * 2 * DEEP.kv_heads * DEEP.head_dim * k for k in kvs)
    _close(s_bf.hbm_bytes - s_i8.hbm_bytes, saved)
    assert s_i8.latency_s < s_bf.latency_s and s_i8.macs == s_bf.macs


def test_memo_does_not_depend_on_evaluation_order():
    chip = tpusim.load_config("tpu_v4")
    kvs = list(range(100, 400, 37))
    fwd = [StepCostModel(chip, DEEP).step([k, k + 5]) for k in kvs]
    one = StepCostModel(chip, DEEP)
    rev = [one.step([k, k + 5]) for k in reversed(kvs)][::-1]
    again = [one.step([k, k + 5]) for k in kvs]
    assert fwd == rev == again


def test_uniform_decode_trace_is_the_llm_decode_trace():
    for batch, kv in ((1, 5), (3, 300)):
        assert step_rows(SMALL, [kv] * batch) == llm_rows(SMALL, "decode", batch, 1, kv)


def test_mixed_step_equals_simulate_and_macs_closed_form():
    chip = tpusim.load_config("tpu_v4")
    cost = StepCostModel(chip, DEEP)
    decode, chunk, chunk_kv = [17, 300, 300, 1200], 96, 160
    step = cost.step(decode, prefill_tokens=chunk, prefill_kv=chunk_kv)
    trace = cost.trace(decode, chunk, chunk_kv)
    _same_as_simulate(cost, step, trace, chip)
    m = DEEP
    tokens, seqs = len(decode) + chunk, len(decode) + 1
    body = m.linear_params() - m.vocab * m.hidden
    attn = 2 * m.layers * m.heads * m.head_dim * (sum(decode) + chunk * chunk_kv)
    assert step.macs == tokens * body + seqs * m.vocab * m.hidden + attn
    assert step.new_tokens == tokens
    # four distinct (new tokens, KV) groups -> four sets of attention rows
    names = [l.name for l in trace.layers]
    assert sum(n.startswith("attn_qk") for n in names) == 4


def test_latency_and_energy_non_decreasing_in_kv():
    cost = StepCostModel("tpu_v4", DEEP)
    kvs = np.arange(1, 1100, 7)
    lat = [cost.step([int(k)] * 8).latency_s for k in kvs]
    en = [cost.step([int(k)] * 8).energy_j for k in kvs]
    assert all(b >= a for a, b in zip(lat, lat[1:]))
    assert all(b >= a for a, b in zip(en, en[1:]))
    assert lat[-1] > lat[0]


def test_more_sequences_never_faster():
    cost = StepCostModel("tpu_v4", DEEP)
    one = cost.step([500]).latency_s
    assert cost.step([500, 20]).latency_s >= one
    assert cost.step([500], prefill_tokens=64).latency_s >= one


def test_generate_prefill_and_steps_equal_simulate():
    chip = tpusim.load_config("tpu_v4")
    g = generate(chip, SMALL, prompt=40, steps=12, batch=2)
    ref = tpusim.simulate(chip, llm_workload(SMALL, "prefill", 2, 40, 40, logits="last"))
    _close(g.prefill.latency_s, ref.summary["latency_s"])
    assert list(g.decode_kv) == list(range(41, 53))
    for j in (0, 5, 11):
        s = tpusim.simulate(chip, llm_workload(SMALL, "decode", 2, 1, 41 + j)).summary
        _close(g.decode_latency_s[j], s["latency_s"])
        _close(g.decode_energy_j[j], s["energy_j"])
    s = g.summary()
    total = ref.summary["latency_s"] + sum(g.decode_latency_s)
    _close(s["total_s"], total)
    assert s["output_tokens"] == 2 * 13
    _close(s["tokens_per_s"], 26 / total)
    _close(s["time_to_first_token_s"], ref.summary["latency_s"])
    _close(s["ms_per_output_token"], 1e3 * sum(g.decode_latency_s) / 12)


@pytest.mark.parametrize("config, batch", [("tpu_v4", 4), ("default", 1), ("default", 32)])
def test_interpolation_exact_at_anchors_and_within_bound(config, batch):
    chip = tpusim.load_config(config)
    exact = generate(chip, SMALL, prompt=100, steps=700, batch=batch)
    for stride in (64, 10_000):     # the stride is capped at the array width
        approx = generate(chip, SMALL, prompt=100, steps=700, batch=batch, kv_stride=stride,
                          rtol=1e-4)
        anchors = list(range(0, 700, min(stride, chip.array.rows, chip.array.cols))) + [699]
        assert np.array_equal(approx.decode_latency_s[anchors],
                              exact.decode_latency_s[anchors])
        for got, want in ((approx.decode_latency_s, exact.decode_latency_s),
                          (approx.decode_energy_j, exact.decode_energy_j)):
            assert np.abs(got / want - 1).max() <= 4e-4   # 4 x rtol, the stated bound
        assert math.isclose(approx.total_s, exact.total_s, rel_tol=4e-4)


@pytest.mark.parametrize("kwargs, field", [
    (dict(prompt=0, steps=3), "prompt"), (dict(prompt=8, steps=-1), "steps"),
    (dict(prompt=8, steps=3, batch=0), "batch"),
    (dict(prompt=8, steps=3, kv_stride=0), "kv_stride"),
    (dict(prompt=8, steps=3, kv_stride=8, rtol=0), "rtol"),
])
def test_generate_bad_input_is_one_line(kwargs, field):
    with pytest.raises(InputError) as err:
        generate("tpu_v4", SMALL, **kwargs)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_empty_step_and_bad_kv_are_input_errors():
    cost = StepCostModel("tpu_v4", SMALL)
    with pytest.raises(InputError):
        cost.step([])
    with pytest.raises(InputError):
        cost.step([0])
    with pytest.raises(InputError):
        cost.step([4], prefill_tokens=-2)


def test_trace_layers_are_valid_trace_rows():
    for r in step_rows(SMALL, [3, 9], prefill_tokens=5):
        make_layer(r)


def test_cli_generate_writes_the_steps_of_the_api(cli, tmp_path):
    out = tmp_path / "steps.csv"
    code, stdout, err = cli("generate", "tpu_v4", "gpt2", "--prompt", "64", "--steps", "5",
                            "--batch", "2", "--out", out)
    assert code == 0, err
    g = generate("tpu_v4", "gpt2", 64, 5, batch=2)
    lines = out.read_text().splitlines()
    assert lines[0] == "step,kv_len,latency_s,energy_j"
    assert [float(x) for x in lines[1].split(",")[2:]] == [g.prefill.latency_s,
                                                            g.prefill.energy_j]
    assert [int(l.split(",")[1]) for l in lines[2:]] == list(range(65, 70))
    assert [float(l.split(",")[2]) for l in lines[2:]] == g.decode_latency_s.tolist()
    from tpusim.units import number
    assert f"tokens/s             {number(g.summary()['tokens_per_s'])} (" in stdout


@pytest.mark.parametrize("args,needle", [
    (["--steps", "-1"], "--steps"), (["--batch", "0"], "--batch"),
    (["--kv-stride", "0"], "--kv-stride"), (["--rtol", "2"], "--rtol"),
    (["--dtype", "int3"], "--dtype: got 'int3'"),          # named by generate's own option
    (["--model-is", "bert_base"], "bert_base: is an encoder"),   # not a --phase it lacks
])
def test_cli_generate_bad_input_exit_2_no_file(cli, tmp_path, args, needle):
    out = tmp_path / "steps.csv"
    model = args[1] if args[0] == "--model-is" else "gpt2"
    args = [] if args[0] == "--model-is" else args
    code, stdout, err = cli("generate", "tpu_v4", model, "--prompt", "8", *args, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert needle in err and "--phase" not in err
    assert not out.exists()


def test_cli_generate_says_the_stride_it_ran(cli, tmp_path):
    # capped at the array's width (tpu_v4: 128), and 1 where every step is exact (< 3 steps)
    code, stdout, err = cli("generate", "tpu_v4", "gpt2", "--prompt", "16", "--steps", "50",
                            "--kv-stride", "1000")
    assert code == 0, err
    assert "(interpolated, stride 128, capped from 1000, rtol 0.0001)" in stdout
    out = tmp_path / "s.csv"
    code, stdout, err = cli("generate", "tpu_v4", "gpt2", "--prompt", "16", "--steps", "2",
                            "--kv-stride", "4", "--out", out)
    assert code == 0, err
    assert "interpolated" not in stdout.splitlines()[0]
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["kv_stride"] == 1 and rec["rtol"] is None


def test_generate_warns_when_the_model_does_not_fit_one_chip():
    """Llama-2-70B in bf16 is 2 x 68.98e9 bytes of weights: far over one v4's 32 GiB, so the CLI
    says so on stderr (the times still assume it fits); Llama-3-8B fits a 16 GiB v5e."""
    code, out, err = run_cli("generate", "tpu_v4", "llama2_70b", "--prompt", "16", "--steps", "2")
    assert code == 0, err
    assert "warning: llama2_70b needs" in err and "tpu_v4 has 32 GiB" in err
    code, out, err = run_cli("generate", "tpu_v5e", "llama3_8b", "--prompt", "16", "--steps", "2")
    assert code == 0 and "warning" not in err


def test_generate_past_learned_positions_is_one_line(cli, tmp_path):
    """GPT-2 has 1,024 learned positions: prompt + steps = 1,025 has no embedding for its last
    token (the library names the sum; the CLI the two options), while 1,024 runs."""
    with pytest.raises(InputError, match="got 1025; gpt2 has 1,024 learned positions"):
        generate("tpu_v4", "gpt2", 1000, 25)
    assert generate("tpu_v4", "gpt2", 1000, 24, kv_stride=8).decode_kv[-1] == 1024
    out = tmp_path / "steps.csv"
    code, _, err = cli("generate", "tpu_v4", "gpt2", "--out", out)   # default --prompt 2048
    assert code == 2 and err.strip().startswith("tpusim: error: --prompt + --steps: got ")
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_no_decode_step_has_no_time_per_output_token(cli, tmp_path):
    """--steps 0: the prefill's one token per sequence and nothing decoded, so there is no
    per-token decode time (null, 'n/a'), not a 0 ms that reads as infinitely fast."""
    g = generate("tpu_v4", "gpt2", 16, 0)
    assert g.summary()["ms_per_output_token"] is None and g.output_tokens == 1
    code, out, err = cli("generate", "tpu_v4", "gpt2", "--prompt", "16", "--steps", "0",
                         "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert "per output token     n/a (no decode step)" in out

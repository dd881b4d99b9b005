"""Engine shapes (tpusim/serve/shapes.py) against hand-built step sequences: padded prompt
chunks, attention read in blocks, a fixed decode batch, decodes held back while prompts fill."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tpusim.errors import InputError
from tpusim.serve import serve, setup
from tpusim.serve.requests import Request
from tpusim.serve.shapes import JETSTREAM, StepShapes, step_shapes
from tpusim.step_trace import _attention_rows

from .conftest import run_cli

CHIP, MODEL = "tpu_v5e", "gpt2"


@pytest.fixture(scope="module")
def exact():
    return setup(CHIP, MODEL, exact=True)


def test_chunk_choice():
    sh = StepShapes(prefill_chunks=(128, 256, 512, 1024))
    assert [sh.chunk_for(n) for n in (1, 128, 129, 219, 1024, 3000)] == [128, 128, 256, 256,
                                                                          1024, 1024]
    assert StepShapes().chunk_for(219) is None


def test_prompt_chunks_are_padded(exact):
    c = exact.cost
    sh = StepShapes(prefill_chunks=(128, 256))
    # 219 tokens: one 256-token chunk; 300 tokens: 256 then 44 padded to 256 (KV 512)
    for n, steps in ((219, [(256, 256)]), (300, [(256, 256), (256, 512)])):
        r = serve(exact, [Request(0, 0.0, n, 1)], shapes=sh)[0].table.iloc[0]
        want = sum(c.step([], p, k).latency_s for p, k in steps)
        assert r["ttft_s"] == pytest.approx(want, rel=1e-12)
        plain = serve(exact, [Request(0, 0.0, n, 1)])[0].table.iloc[0]
        assert plain["ttft_s"] == pytest.approx(c.step([], n, n).latency_s, rel=1e-12)


def test_attention_blocks_round_each_kv_up(exact):
    c = exact.cost
    sh = StepShapes(attention_block=128)
    r = serve(exact, [Request(0, 0.0, 100, 40)], shapes=sh)[0].table.iloc[0]
    # decode j (1..39) attends to 100 + j keys, read as whole blocks of 128
    want = c.step([], 100, 100).latency_s + sum(
        c.step([-(-(100 + j) // 128) * 128]).latency_s for j in range(1, 40))
    assert r["e2e_s"] == pytest.approx(want, rel=1e-12)


def test_fixed_batch_pays_for_idle_slots():
    st = setup(CHIP, MODEL)
    c, t = st.cost, st.timer
    # one sequence in a batch fixed at 8 slots: the exact step of 8 sequences, less the
    # attention work of the 7 idle ones (skipped by the kernel, which still launches once for
    # the real sequence: their rows as a continuation, without a fixed cost)
    kv = 300
    idle_rows = _attention_rows(c.model, 1, 1, 7, c.dtype, False, continues=True)
    idle = c._evaluate([c._layer(r) for r in idle_rows], 0).latency_s
    want = c.step([kv] + [1] * 7).latency_s - idle
    assert t.latency([kv], 0, 0, 8) == pytest.approx(want, rel=0.005)
    assert t.latency([kv], 0, 0, 8) > t.latency([kv])
    with pytest.raises(InputError):
        serve(setup(CHIP, MODEL, exact=True), [Request(0, 0.0, 10, 3)],
              shapes=StepShapes(fixed_batch=True))


def test_all_logits_run_the_lm_head_on_every_token():
    # JetStream's model runs lm_head on all hidden states: a 256-token prefill step with 3
    # decodes puts 259 tokens through the head where sampling needs 4 (3 decodes + the last)
    st = setup(CHIP, MODEL)
    c, t = st.cost, st.timer
    base = t.latency([300, 300, 300], 256, 256)
    every = t.latency([300, 300, 300], 256, 256, sampled=259)
    head = c._evaluate([c._layer(r) for r in t._head_rows(259)], 0).latency_s \
        - c._evaluate([c._layer(r) for r in t._head_rows(4)], 0).latency_s
    assert every - base == pytest.approx(head, rel=0.01) and head > 0
    # the engine asks for it with the shape; JetStream's shapes carry it
    r1 = serve(st, [Request(0, 0.0, 219, 2)])[0].table.iloc[0]
    r2 = serve(st, [Request(0, 0.0, 219, 2)], shapes=StepShapes(all_logits=True))[0].table.iloc[0]
    assert r2["ttft_s"] > r1["ttft_s"] and JETSTREAM.all_logits
    with pytest.raises(InputError, match="--all-logits"):
        serve(setup(CHIP, MODEL, exact=True), [Request(0, 0.0, 10, 3)],
              shapes=StepShapes(all_logits=True))


def test_decode_hold_runs_prompts_first(exact):
    reqs = [Request(i, 0.0, 50, 2) for i in range(4)]
    held = serve(exact, reqs, max_batch=4, shapes=StepShapes(decode_hold=0.5))[0].table
    # three prompts alone (2 of 4 slots or fewer filled), then their decodes ride with the
    # fourth prompt: requests 0-2 finish in the step that samples request 3's first token
    assert np.allclose(held["finish_s"][:3], held["ttft_s"][3], rtol=0, atol=1e-15)
    c = exact.cost
    p = c.step([], 50, 50).latency_s
    assert held["ttft_s"][2] == pytest.approx(3 * p, rel=1e-12)
    free = serve(exact, reqs, max_batch=4)[0].table
    assert free["finish_s"][0] < free["ttft_s"][3]
    # conservation and Little's law are untouched by the policy
    s = serve(exact, reqs, max_batch=4, shapes=StepShapes(decode_hold=0.5))[0].summary
    assert s["finished"] == 4
    assert s["mean_in_system"] == pytest.approx(s["requests_per_s"] * s["e2e_s"]["mean"],
                                                rel=1e-9)


def test_jetstream_shapes_cost_more_than_none():
    # every documented padding adds work: the same traffic is served no faster
    st = setup("tpu_v5e", "llama2_7b", chips=8, max_batch=16, kv_block=128)
    reqs = [Request(i, 0.0, 219, 30) for i in range(40)]
    base = serve(st, reqs, max_batch=16, kv_block=128)[0].summary["output_tokens_per_s"]
    js = serve(st, reqs, max_batch=16, kv_block=128, shapes=JETSTREAM)[0].summary
    assert js["finished"] == 40 and js["output_tokens_per_s"] < base


@pytest.mark.parametrize("args, needle", [
    (("--prefill-chunks", "256,128"), "--prefill-chunks"),
    (("--prefill-chunks", "a"), "--prefill-chunks"),
    (("--attention-block", "0"), "--attention-block"),
    (("--decode-hold", "1"), "--decode-hold"),
    (("--prefill-chunks", "128", "--chunked-prefill", "512"), "not both"),
])
def test_bad_shape_options(tmp_path, args, needle):
    code, out, err = run_cli("serve", CHIP, MODEL, "--num-requests", "3", *args,
                             "--out", tmp_path / "o")
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_jetstream_flag(tmp_path):
    code, out, err = run_cli("serve", CHIP, MODEL, "--num-requests", "20", "--jetstream",
                             "--max-batch", "8", "--out", tmp_path / "o", "--no-html")
    assert code == 0, err
    assert "engine shapes: prefill chunks [128, 256, 512, 1024]" in out and "max batch 8" in out
    assert "fixed batch on," in out and "True" not in out      # words, not a Python bool
    assert "logits of every token" in out
    assert step_shapes("128,256", True, 512, 0.95) == StepShapes((128, 256), True, 512, 0.95)
    assert math.isclose(JETSTREAM.decode_hold, 0.95)


def test_jetstream_items_switch_off_one_by_one(tmp_path):
    code, out, err = run_cli("serve", CHIP, MODEL, "--num-requests", "5", "--jetstream",
                             "--no-fixed-batch", "--no-all-logits", "--out", tmp_path / "o",
                             "--no-html")
    assert code == 0, err
    assert "fixed batch off" in out and "logits of the sampled tokens" in out
    assert "prefill chunks [128, 256, 512, 1024]" in out      # the rest stay JetStream's

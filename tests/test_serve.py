"""Serving simulation against laws that hold whatever the step costs: Little's law, request and
token conservation, a lone request's latency = its prefill + decode steps from the step model,
more HBM never serving less, determinism; the KV capacity and the TP all-reduce by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tpusim import units
from tpusim.errors import InputError
from tpusim.generation import generate
from tpusim.importers.llm import get_preset, llm_macs
from tpusim.serve import serve, setup
from tpusim.serve.kvcache import BlockManager, kv_blocks
from tpusim.serve.metrics import saturation
from tpusim.serve.requests import Request, load_requests, synthetic_requests
from tpusim.serve.tp import ShardedStepCost

from .conftest import run_cli

CHIP, MODEL = "tpu_v5e", "gpt2"


def _small_hbm(blocks: int, **kw):
    """A setup whose KV cache holds about ``blocks`` blocks (HBM scaled down to fit)."""
    st = setup(CHIP, MODEL, **kw)
    b = kv_blocks(st.cost.chip, st.cost.model, 1, "bf16", "bf16", 16,
                  kw.get("chunked_prefill") or (kw.get("max_batch", 256) + 2048),
                  kw.get("max_batch", 256))
    scale = (b.weight_bytes + b.activation_bytes + (blocks + 0.5) * b.block_bytes) / b.hbm_bytes
    return setup(CHIP, MODEL, hbm_scale=scale, **kw)


@pytest.fixture(scope="module")
def st():
    return setup(CHIP, MODEL, max_batch=32, chunked_prefill=256)


def _little(s):
    return s["mean_in_system"], s["requests_per_s"] * s["e2e_s"]["mean"]


@pytest.mark.parametrize("rate", [20.0, 200.0, math.inf])
def test_littles_law_and_conservation(st, rate):
    reqs = synthetic_requests("in=uniform:20:200,out=uniform:5:60", 80, rate, seed=3)
    run = serve(st, reqs, kv_block=16, max_batch=32, chunked_prefill=256)[0]
    s, t = run.summary, run.table
    assert s["finished"] == 80 and s["unfinished"] == 0
    lhs, rhs = _little(s)
    assert lhs == pytest.approx(rhs, rel=1e-9)
    # every finished request: TTFT before e2e, tokens as asked, e2e = finish - arrival
    assert (t["ttft_s"] > 0).all() and (t["ttft_s"] <= t["e2e_s"]).all()
    assert (t["e2e_s"] - (t["finish_s"] - t["arrival_s"])).abs().max() < 1e-12
    assert s["output_tokens_per_s"] == pytest.approx(t["output_tokens"].sum() / s["simulated_s"])


def test_duration_reports_unfinished(st):
    reqs = synthetic_requests("in=100,out=200", 50, 100.0, seed=1)
    s = serve(st, reqs, kv_block=16, max_batch=32, chunked_prefill=256, duration=0.2)[0].summary
    assert s["simulated_s"] == pytest.approx(0.2)
    assert s["unfinished"] > 0
    assert s["finished"] + s["unfinished"] + s["not_arrived"] == 50
    arrived = sum(r.arrival_s <= 0.2 for r in reqs)
    assert s["finished"] + s["unfinished"] == arrived


def test_single_request_is_prefill_plus_decode_steps():
    st = setup(CHIP, MODEL, exact=True)
    r = serve(st, [Request(0, 0.5, 37, 10)])[0].table.iloc[0]
    g = generate(CHIP, MODEL, prompt=37, steps=9, cost=st.cost)
    assert r["ttft_s"] == pytest.approx(g.prefill.latency_s, rel=1e-12)
    assert r["e2e_s"] == pytest.approx(g.total_s, rel=1e-12)
    assert r["tpot_s"] == pytest.approx(g.decode_latency_s.mean(), rel=1e-12)


def test_a_single_token_output_has_no_tpot(st):
    # one output token: no time between tokens, so TPOT is undefined and left out of the
    # percentiles (it read 0 s, pulling them down); the 10-token request's is its decode steps
    out = serve(st, [Request(0, 0.0, 37, 1), Request(1, 0.0, 37, 10)])[0]
    assert math.isnan(out.table.iloc[0]["tpot_s"]) and out.table.iloc[1]["tpot_s"] > 0
    assert out.summary["tpot_s"]["p50"] == out.table.iloc[1]["tpot_s"]
    only = serve(st, [Request(0, 0.0, 37, 1)])[0].summary
    assert only["tpot_s"] == {"mean": None, "p50": None, "p90": None, "p99": None}


def test_preemption_recomputes_and_everything_finishes():
    st = _small_hbm(40, max_batch=64)
    reqs = synthetic_requests("in=uniform:50:150,out=uniform:50:150", 40, math.inf, seed=2)
    s = serve(st, reqs, max_batch=64)[0].summary
    assert st.blocks == 40
    assert s["preemptions"] > 0 and s["finished"] == 40
    assert s["kv_utilisation"]["max"] <= 1.0
    lhs, rhs = _little(s)
    assert lhs == pytest.approx(rhs, rel=1e-9)


@pytest.mark.parametrize("blocks", [30, 60, 120])
def test_doubling_hbm_never_reduces_throughput(blocks):
    reqs = synthetic_requests("in=uniform:30:200,out=uniform:20:150", 60, math.inf, seed=5)
    tput = []
    for b in (blocks, 2 * blocks):
        st = _small_hbm(b, max_batch=64)
        tput.append(serve(st, reqs, max_batch=64)[0].summary["output_tokens_per_s"])
    assert tput[1] >= tput[0] * (1 - 1e-12)


def test_deterministic_for_a_seed(st):
    a = synthetic_requests("in=lognormal:100:0.5,out=uniform:5:50", 40, 50.0, seed=7)
    b = synthetic_requests("in=lognormal:100:0.5,out=uniform:5:50", 40, 50.0, seed=7)
    c = synthetic_requests("in=lognormal:100:0.5,out=uniform:5:50", 40, 50.0, seed=8)
    assert a == b and a != c
    ta = serve(st, a, max_batch=32, chunked_prefill=256)[0].table
    tb = serve(st, b, max_batch=32, chunked_prefill=256)[0].table
    assert ta.equals(tb)


def test_prefix_caching_skips_shared_blocks():
    st = setup(CHIP, MODEL, exact=True)
    reqs = [Request(0, 0.0, 100, 2, "sys", 70), Request(1, 1.0, 100, 2, "sys", 70)]
    on = serve(st, reqs, prefix_caching=True)[0]
    off = serve(st, reqs)[0]
    assert on.summary["prefix_hit_tokens"] == 64            # 4 full blocks of 16 of 70 tokens
    assert off.summary["prefix_hit_tokens"] == 0
    # the second request prefills 36 tokens attending to 100 keys
    want = st.cost.step([], 36, 100).latency_s
    assert on.table.iloc[1]["ttft_s"] == pytest.approx(want, rel=1e-12)
    assert on.table.iloc[1]["ttft_s"] < off.table.iloc[1]["ttft_s"]


def test_kv_capacity_by_hand():
    m = get_preset("llama2_7b")
    from tpusim.config import load_config
    b = kv_blocks(load_config("tpu_v5e"), m, 8, "bf16", "bf16", 16, 2304, 256)
    # K and V, 32 layers, 4 of 32 heads per chip, head 128, 2 bytes, 16 tokens
    assert b.block_bytes == 2 * 32 * 4 * 128 * 2 * 16 == 2**20
    # an 8th of every matrix; the 65 RMS norms of 4,096 whole on every chip
    norms = 65 * 4096
    assert b.weight_bytes == ((6_738_415_616 - norms) / 8 + norms) * 2
    act = 2304 * (3 * 4096 + 2 * 11008 / 8) * 2 + 256 * 32000 / 8 * 4
    assert b.blocks == int((16 * 2**30 - b.weight_bytes - act) // 2**20)


def test_block_manager_prefix_refcounts():
    kv = BlockManager(10, 16, prefix_caching=True)
    assert kv.take(5) and kv.publish_prefix("p", 48, 0) == 3
    kv.give(5 - 3)
    kv.release_prefix("p", 3)
    assert kv.available() == 10 and kv.used == 0 and len(kv.idle) == 3
    assert kv.hit_prefix("p", 40) == 2       # 2 full blocks of 40 tokens
    assert kv.take(8) and kv.available() == 0 and "p" not in {k[0] for k in kv.idle}


def test_tp_shards_macs_and_adds_collectives():
    from tpusim.generation import StepCostModel
    from tpusim.pod.collectives import all_gather, all_reduce
    m = get_preset("llama2_7b")
    one = ShardedStepCost(CHIP, m, tp=1)
    eight = ShardedStepCost(CHIP, m, tp=8)
    s1, s8 = one.step([300] * 4, 64, 64), eight.step([300] * 4, 64, 64)
    # a step = 4 decode tokens at KV 300 + a 64-token prefill: the two passes' closed forms
    assert s1.macs == llm_macs(m, 4, 1, 300, "last") + llm_macs(m, 1, 64, 64, "last")
    # every matmul splits evenly 8 ways for Llama-2-7B (32 heads, ffn 11008, vocab 32000)
    assert s8.macs * 8 == pytest.approx(s1.macs, rel=1e-12)
    # on top of the shard's compute: 2 all-reduces a block of 68 tokens x 4096 bf16 values
    # and one after the vocab-split embedding, an all-gather of 5 sampled tokens' logits
    # (8 x 4000 vocabulary columns, bf16)
    shard = StepCostModel(CHIP, eight.model).step([300] * 4, 64, 64).latency_s
    comm = (32 * 2 + 1) * all_reduce(68 * 4096 * 2, eight.axes).total_s \
        + all_gather(5 * 32000 * 2, eight.axes).total_s
    assert s8.latency_s == pytest.approx(shard + comm, rel=1e-12)
    assert len(eight.axes) >= 1 and comm > 0


def test_tp_on_a_chip_without_ici_is_one_line(tmp_path):
    code, _, err = run_cli("serve", "default", MODEL, "--chips", "2", "--num-requests", "2",
                           "--out", tmp_path / "o")
    assert code == 2 and "ici" in err and len(err.strip().splitlines()) == 1


def test_saturation_rate():
    curve = [{"rate": r, "requests_per_s": a} for r, a in ((1, 1), (2, 1.95), (4, 3.0), (8, 3.1))]
    assert saturation(curve) == 2
    assert saturation([{"rate": 1, "requests_per_s": 0.5}]) is None
    # where known, the steady completion rate over the arrivals' own rate decides: a short run
    # whose drain halves requests_per_s still keeps up
    curve = [{"rate": 10, "requests_per_s": 5.0, "steady_requests_per_s": 9.5,
              "arrivals_per_s": 10.2},
             {"rate": 40, "requests_per_s": 12.0, "steady_requests_per_s": 20.0,
              "arrivals_per_s": 39.0}]
    assert saturation(curve) == 10


def test_a_request_past_learned_positions_is_one_line(tmp_path):
    code, _, err = run_cli("serve", CHIP, MODEL, "--num-requests", "4", "--synthetic",
                           "in=uniform:1000:1000,out=uniform:30:30", "--out", tmp_path / "o")
    assert code == 2 and "got 1030; gpt2 has 1,024 learned positions" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_steady_rate_closed_forms():
    import pandas as pd
    from tpusim.serve.metrics import arrival_rate, steady_rate
    lam, n, w = 8.0, 50, 0.7
    arr = pd.Series([i / lam for i in range(n)])
    # keeping up: each request done a fixed time after it arrives -> exactly the arrival rate
    assert arrival_rate(arr) == pytest.approx(lam)
    assert steady_rate(arr, pd.Series([w] * n)) == pytest.approx(lam)
    # saturated: the i-th done at w + i/mu, mu < lam -> exactly mu
    mu = 5.0
    e2e = pd.Series([w + i / mu - i / lam for i in range(n)])
    assert steady_rate(arr, e2e) == pytest.approx(mu)
    # cut off (--duration): the requests that arrived before the first unfinished one decide
    cut = e2e.where(arr + e2e <= w + 30 / mu)
    assert cut.isna().sum() == n - 31 and steady_rate(arr, cut) == pytest.approx(mu)
    assert arrival_rate(pd.Series([0.0, 0.0])) is None   # all at t=0: no rate of their own
    assert steady_rate(arr[:2], e2e[:2]) is None


def test_a_batch_that_grows_is_not_keeping_up(tmp_path):
    # every request is admitted at once (TTFT stays small) but the batch outgrows what the
    # engine serves: latency grows over the run, so the rate is not kept up with
    out, stdout = _served(tmp_path, "--num-requests", "100", "--rates", "80,inf")
    top = json.loads((out / "serve.json").read_text())
    cap = top["curve"][-1]["requests_per_s"]          # everything at t=0: what it serves
    at80 = top["curve"][0]
    assert cap < 0.9 * at80["arrivals_per_s"]          # 80/s is past the engine's capacity
    assert at80["steady_requests_per_s"] < 0.9 * at80["arrivals_per_s"]
    assert "saturation rate: below every rate tried" in stdout


def test_a_short_run_below_capacity_keeps_up(tmp_path):
    # 60 requests at a rate far under what the engine serves: the drain is a large share of
    # simulated_s (requests_per_s reads low) but the engine keeps up
    out, stdout = _served(tmp_path, "--num-requests", "60", "--synthetic",
                          "in=uniform:10:80,out=uniform:50:60", "--rates", "4,inf", "--seed", "3")
    low = json.loads((out / "serve-rate-4.json").read_text())
    assert low["requests_per_s"] < 0.9 * 4     # the old rule: "does not keep up with 4/s"
    assert low["steady_requests_per_s"] >= 0.95 * low["arrivals_per_s"]
    assert "saturation rate: 4 requests/s" in stdout


def _served(tmp_path, *args):
    """(out folder, stdout) of a serve run of gpt2 on tpu_v5e that must succeed."""
    out = tmp_path / "o"
    code, stdout, err = run_cli("serve", CHIP, MODEL, *args, "--out", out)
    assert code == 0, err
    return out, stdout


def test_cli_writes_outputs_and_curve(tmp_path):
    out, stdout = _served(tmp_path, "--num-requests", "30", "--synthetic",
                          "in=uniform:10:80,out=uniform:5:30", "--rates", "5,50,inf",
                          "--max-batch", "16")
    top = json.loads((out / "serve.json").read_text())
    assert [p["rate"] for p in top["curve"]] == [5, 50, "inf"]
    assert "saturation rate" in stdout and (out / "report.html").stat().st_size > 10_000
    page = (out / "report.html").read_text()   # a table per offered rate, in words for inf
    assert all(f"<h2>Rate {r}/s</h2>" in page for r in ("5", "50", "inf"))
    assert "∞ (all at t = 0)" in page
    one = json.loads((out / "serve-rate-5.json").read_text())
    for k in ("requests_per_s", "input_tokens_per_s", "output_tokens_per_s", "mean_in_system",
              "simulated_s", "preemptions"):
        assert k in one
    for k in ("ttft_s", "tpot_s", "e2e_s"):
        assert set(one[k]) >= {"p50", "p90", "p99"}
    assert (out / "requests-rate-inf.csv").read_text().count("\n") == 31
    # a single run into the same folder leaves none of the curve's files behind
    assert run_cli("serve", CHIP, MODEL, "--num-requests", "5", "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "config.yaml", "report.html", "requests.csv", "serve.json"]


def _jsonl(tmp_path, lines):
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return p


def test_a_key_given_twice_in_a_request_line_is_refused(tmp_path):
    p = tmp_path / "r.jsonl"        # json.dumps cannot write it: the text by hand
    p.write_text('{"arrival_s": 0, "input_tokens": 10, "output_tokens": 5, "arrival_s": 3}\n')
    code, _, err = run_cli("serve", CHIP, MODEL, "--requests", p, "--out", tmp_path / "o")
    assert code == 2 and err.strip().endswith("r.jsonl: line 1: arrival_s: given twice; give "
                                              "each key once")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("lines,needle", [
    ([{"arrival_s": 0, "input_tokens": 5}], "missing field 'output_tokens'"),
    ([{"arrival_s": 0, "input_tokens": -5, "output_tokens": 3}], "input_tokens"),
    ([{"arrival_s": 1, "input_tokens": 5, "output_tokens": 3},
      {"arrival_s": 0.5, "input_tokens": 5, "output_tokens": 3}], "must not decrease"),
    ([{"arrival_s": 0, "input_tokens": 9, "output_tokens": 3, "prefix_tokens": 5}],
     "prefix_tokens: got 5; goes with a 'prefix'"),
    ([{"arrival_s": 0, "input_tokens": 9, "output_tokens": 3, "prefix": 5}],
     "prefix: got 5; a non-empty string"),
])
def test_bad_request_files(tmp_path, lines, needle):
    p = _jsonl(tmp_path, lines)
    out = tmp_path / "o"
    code, _, err = run_cli("serve", CHIP, MODEL, "--requests", p, "--out", out)
    assert code == 2 and needle in err and "line" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--rate", "0"], "--rate"), (["--rate", "-3"], "--rate"), (["--rates", "1,0"], "--rates"),
    (["--kv-block", "0"], "--kv-block"), (["--synthetic", "in=-4,out=3"], "in"),
    # the last in= would silently win
    (["--synthetic", "in=219,out=292,in=5"], "--synthetic: in: got 'in=5'; given twice"),
    (["--synthetic", "in=uniform:300:50,out=5"], "uniform:A:B needs A <= B (got A=300, B=50)"),
    # token counts are whole numbers: 1.5 is refused, not truncated to 1 (nor inf overflowed)
    (["--synthetic", "in=uniform:1.5:2,out=5"],
     "--synthetic: in: got 'uniform:1.5:2'; uniform:A:B bounds are token counts, whole numbers "
     "(got A=1.5)"),
    (["--synthetic", "in=5,out=uniform:3:7.25"], "out: got 'uniform:3:7.25'; uniform:A:B bounds "
     "are token counts, whole numbers (got B=7.25)"),
    (["--synthetic", "in=uniform:1:inf,out=5"], "whole numbers (got B=inf)"),
    (["--synthetic", "in=inf,out=5"], "--synthetic: in: got 'inf'; LEN, uniform:A:B"),
    (["--chips", "5"], "--chips: tp: got 5; must divide the"),   # the option the user gave
    # a weight format the chip does not run names --weights (serve has no --format)
    (["--weights", "int4"], "--weights: got 'int4'; chip 'tpu_v5e' runs bf16|int8|fp32|fp16"),
    (["--kv-dtype", "binary"], "--kv-dtype: got 'binary'; a KV cache holds numbers: int8|"),
    # what does not fit names the option that made it too big
    (["--kv-block", "99999999999"], "--kv-block: got 99999999999; a block of 99999999999 tokens"),
    (["--max-batch", "99999999999"], "lower --max-batch or --chunked-prefill"),
    (["--chunked-prefill", "99999999999999"], "lower --max-batch or --chunked-prefill"),
    (["--attention-block", "100000000"], "--attention-block: got 100000000; at most the KV "
     "cache's"),
])
def test_bad_options(tmp_path, args, needle):
    out = tmp_path / "o"
    code, _, err = run_cli("serve", CHIP, MODEL, "--num-requests", "3", *args, "--out", out)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_model_that_does_not_fit(tmp_path):
    code, _, err = run_cli("serve", CHIP, "llama2_70b", "--num-requests", "3", "--out",
                           tmp_path / "o")
    assert code == 2 and "weights 128 GiB per chip do not fit" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_load_requests_roundtrip(tmp_path):
    p = _jsonl(tmp_path, [{"arrival_s": 0, "input_tokens": 5, "output_tokens": 3},
                          {"arrival_s": 0.25, "input_tokens": 7, "output_tokens": 1,
                           "prefix": "a", "prefix_tokens": 4}])
    assert load_requests(p) == [Request(0, 0.0, 5, 3), Request(1, 0.25, 7, 1, "a", 4)]


@pytest.mark.parametrize("row,where,says", [
    ({"arrival_s": 0, "input_tokens": 5, "output_tokens": 3, "output_token": 2},
     "line 2: output_token", "unknown field (did you mean output_tokens?)"),
    ({"arrival_s": 0, "input_tokens": 5, "output_tokens": 3, "prefix": "a",
      "prefix_tokens": True}, "line 2: prefix_tokens", "an integer in 0..input_tokens=5"),
])
def test_load_requests_names_a_bad_key_or_value(tmp_path, row, where, says):
    # a misspelt key used to be dropped silently (the request served with no prefix, say)
    p = _jsonl(tmp_path, [{"arrival_s": 0, "input_tokens": 5, "output_tokens": 3}, row])
    with pytest.raises(InputError) as e:
        load_requests(p)
    assert where in str(e.value) and says in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_token_metrics_from_the_trace_note():
    import tpusim
    from tpusim.importers.llm import llm_workload
    from tpusim.serve.tokens import token_metrics
    wl = llm_workload("gpt2", "decode", batch=8, kv_len=300)
    lat = tpusim.simulate(CHIP, wl).summary["latency_s"]
    tm = token_metrics(wl.notes, lat, run_batch=2)
    assert tm["sequences"] == 16 and tm["tokens_per_s"] == pytest.approx(16 / lat)
    assert tm["ms_per_output_token"] == pytest.approx(lat * 1e3)
    pre = token_metrics(llm_workload("gpt2", "prefill", 2, 64).notes, 0.01)
    assert pre["tokens"] == 128 and pre["time_to_first_token_s"] == 0.01
    assert token_metrics(("a resnet trace",), 0.01) is None


def test_run_prints_tokens_for_an_llm_trace(tmp_path):
    trace = tmp_path / "d.csv"
    assert run_cli("workload", "llm", "gpt2", "--phase", "decode", "--batch", "4", "--kv-len",
                   "100", "--out", trace)[0] == 0
    code, out, err = run_cli("run", CHIP, trace, "--out", tmp_path / "r", "--no-html")
    assert code == 0, err
    assert "ms per output token" in out and "inferences/s" not in out
    lat = json.loads((tmp_path / "r" / "summary.json").read_text())["latency_s"]
    assert f"{units.number(4 / lat)} tokens/s" in out


def test_jetstream_check_is_a_prediction():
    from tpusim.fidelity import JETSTREAM, serving_checks
    rows = {r["metric"]: r for r in serving_checks()}
    assert set(rows) == {"output_tokens_per_s", "input_tokens_per_s"}
    for m, r in rows.items():
        assert r["measured"] == JETSTREAM[m] and r["status"] == "ok"
        assert r["fitted_on"].startswith("none") and r["error"] == r["predicted"] / r["measured"] - 1
    # the same lengths for every request: input/output tokens per second are in ratio 219:292
    p = rows["input_tokens_per_s"]["predicted"] / rows["output_tokens_per_s"]["predicted"]
    assert p == pytest.approx(219 / 292, rel=1e-12)


def test_cli_duration_labels_the_offered_rate(tmp_path):
    out = tmp_path / "o"
    code, stdout, err = run_cli("serve", CHIP, MODEL, "--num-requests", "50", "--rate", "100",
                                "--duration", "0.1", "--out", out)
    assert code == 0, err
    s = json.loads((out / "serve.json").read_text())
    assert s["offered_rate"] == 100 and s["unfinished"] > 0 and "rate 100/s" in stdout
    assert s["finished"] + s["unfinished"] + s["not_arrived"] == 50


def test_ragged_batch_costs_each_sequence_at_its_own_kv():
    st = setup(CHIP, MODEL)
    c, t = st.cost, st.timer
    # 30 sequences at KV lengths across 8 array folds of 128: the exact step has one
    # attention group per length (one kernel: its fixed cost paid once); the batch at its
    # mean KV misses the folds each length rounds up to, under by 3.0%
    kv = [40, 90, 130, 260, 400, 513, 600, 777, 900, 1000] * 3
    exact = c.step(kv).latency_s
    mean = sum(kv) / len(kv)
    f = mean - int(mean)
    at_mean = (c.step([int(mean)] * 30).latency_s * (1 - f)
               + c.step([int(mean) + 1] * 30).latency_s * f)
    assert at_mean / exact - 1 < -0.02
    assert t.latency(kv) == pytest.approx(exact, rel=0.005)
    # three sequences at one KV length are one batched attention row, as in the exact step
    rows = c._evaluate([c._layer(r) for r in t._attention_rows(1, 150, 3)], 0).latency_s
    assert t.decode_attention(np.array([150, 150, 150])) == pytest.approx(rows, rel=1e-12)
    # the exact timer is the step's own ragged trace
    exact_timer = setup(CHIP, MODEL, exact=True).timer
    assert exact_timer.latency([100, 200]) == exact_timer.cost.step([100, 200]).latency_s


@pytest.mark.parametrize("tp", [1, 8])
def test_timer_tables_against_the_step_model(tp):
    st = setup(CHIP, "llama2_7b", chips=tp)
    c, t = st.cost, st.timer
    # at a fold's ends the body table is the exact cost of those rows (+ the all-reduces)
    for x in (128, 129):
        t.latency([1] * (x - 64), 64, 64)
        rows = c._evaluate([c._layer(r) for r in t._body_rows(x)], x).latency_s
        extra = c.reduce_s(x) if tp > 1 else 0.0
        assert t.body.table[x] == pytest.approx(rows + extra, rel=1e-12)
    # whole ragged steps, with and without a prefill chunk, within 0.5% of the exact step
    rng = np.random.default_rng(4)
    for p in (0, 219, 37):
        kv = rng.integers(220, 700, 90).tolist()
        exact = c.step(kv, p, (p + 300 if p == 37 else p) if p else None).latency_s
        assert t.latency(kv, p, p + 300 if p == 37 else p) == pytest.approx(exact, rel=0.005)


def test_fold_curve_is_exact_at_fold_ends_and_refines_kinks():
    from tpusim.serve.timer import FoldCurve, build
    w, rtol = 16, 1e-3

    def f(x):   # a kink at 37 and a jump between folds, linear otherwise
        return max(1.0 + 0.01 * x, 0.2 * x - 6.0) + 0.5 * ((x - 1) // w)
    calls = []

    def latencies(rows):
        calls.append(len(rows))
        return [f(r[0]) for r in rows]
    curve = FoldCurve(lambda x: [x], None, w, rtol)
    curve.at(1, 100, latencies)
    xs = np.arange(1, 113)
    got, want = curve.table[1:113], np.array([f(x) for x in xs])
    ends = [x for x in xs if x % w in (0, 1)]
    assert np.array_equal(got[np.array(ends) - 1], want[np.array(ends) - 1])
    assert np.max(np.abs(got / want - 1)) <= 2 * rtol
    # a straight fold costs its two ends and the midpoint; the kinked one is refined
    assert curve.evaluated < 7 * 3 + 2 * 4 and len(calls) <= 5


@pytest.mark.parametrize("extra", [["--synthetic", "in=5,out=4"], ["--num-requests", "50"]])
def test_requests_file_and_a_synthetic_option_are_refused_together(tmp_path, extra):
    p = tmp_path / "r.jsonl"
    p.write_text('{"arrival_s": 0, "input_tokens": 10, "output_tokens": 5}\n')
    code, _, err = run_cli("serve", CHIP, MODEL, "--requests", p, *extra, "--out", tmp_path / "o")
    assert code == 2 and err.strip().startswith(f"tpusim: error: {extra[0]}: goes with the "
                                                "synthetic workload, not --requests")
    assert not (tmp_path / "o").exists()


def test_int8_kv_cache_holds_twice_the_blocks_and_reads_half_the_bytes():
    # --kv-dtype int8 under bf16 weights: twice the KV blocks fit, and a decode step at long
    # context reads half the K/V bytes (gpt2: 12 layers x 2 x 12 heads x 64 per token), so its
    # timer's step is faster where it had been the same (the dtype had set the capacity only)
    bf, i8 = setup(CHIP, MODEL), setup(CHIP, MODEL, kv_dtype="int8")
    assert i8.blocks >= 2 * bf.blocks - 1
    kv = [1000] * 16
    a, b = bf.cost.step(kv), i8.cost.step(kv)
    assert a.hbm_bytes - b.hbm_bytes == pytest.approx(16 * 1000 * 12 * 2 * 12 * 64)
    assert b.latency_s < a.latency_s
    # the timer's per-part tables price the int8 cache's steps as the exact step does
    for n, k in ((1, 100), (8, 500), (25, 1000)):
        exact = i8.cost.step([k] * n).latency_s
        assert i8.timer.latency([k] * n) == pytest.approx(exact, rel=1e-3)


def test_kv_dtype_follows_the_weights_and_must_run_on_the_chip(tmp_path):
    # by default the cache is in the weights' format: tpu_v1 (int8 only) serves int8 weights
    # with an int8 cache; a bf16 cache under them would need a bf16 datapath it lacks
    assert setup("tpu_v1", MODEL, weights="int8").cost.kv_dtype is None
    code, _, err = run_cli("serve", "tpu_v1", MODEL, "--weights", "int8", "--kv-dtype", "bf16",
                           "--num-requests", "3", "--out", tmp_path / "o")
    assert code == 2 and "--kv-dtype: got 'bf16'; attention over a bf16 cache under int8 " \
        "weights runs in bf16, which chip 'tpu_v1' does not run (int8)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_default_folders_are_named_for_the_options(tmp_path, monkeypatch):
    # two serve runs that differ (here in the KV cache) never share, and replace, one folder
    monkeypatch.chdir(tmp_path)
    for extra in ((), ("--kv-dtype", "int8")):
        code, _, err = run_cli("serve", CHIP, MODEL, "--num-requests", "3", "--no-html", *extra)
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "serve-tpu_v5e-gpt2-num-requests=3", "serve-tpu_v5e-gpt2-num-requests=3-kv-dtype=int8"]
    # a preset spelled another way is the same model, in the same folder (as train and infer)
    code, _, err = run_cli("serve", CHIP, "GPT2", "--num-requests", "3", "--no-html")
    assert code == 0, err
    assert len(list((tmp_path / "results").iterdir())) == 2


def test_requests_naming_a_folder_says_so(tmp_path):
    code, _, err = run_cli("serve", CHIP, MODEL, "--requests", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "is a directory; --requests takes a JSONL file" in err, err
    assert not (tmp_path / "o").exists()

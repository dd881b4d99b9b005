"""Sharded inference: tp=1 is the single-chip simulation, the tp all-reduces and the logits
all-gather by hand, weights and KV cache per chip in closed form, one-line errors."""
from __future__ import annotations

import json

import pytest

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import get_preset, llm_workload
from tpusim.pod.collectives import all_gather, all_reduce
from tpusim.pod.infer import infer_step
from tpusim.pod.sharding import ParallelSpec, place
from tpusim.pod.topology import make_slice
from tpusim.simulator import simulate

V5E = load_config("tpu_v5e")


def _slice(shape):
    return make_slice(V5E.ici, V5E.dcn, shape=shape)


def test_an_int8_kv_cache_keeps_every_op_its_own_time():
    """The int8 cache's dequantize rows (compression.py) belong to their attention GEMMs: the
    by-op table still sums to the compute and names each trace row once, and the rows the cache
    does not touch (the LM head, the FFN) take the times they take with a bf16 cache."""
    v6e = load_config("tpu_v6e")
    sl = make_slice(v6e.ici, v6e.dcn, shape="4x4")
    run = {kv: infer_step(v6e, get_preset("llama3_8b"), sl, ParallelSpec(tp=16), "decode",
                          batch=8, kv_len=2048, kv_dtype=kv) for kv in ("bf16", "int8")}
    ops = {kv: {o["name"]: o["seconds"] for o in r.time_by_op} for kv, r in run.items()}
    assert list(ops["int8"]) == list(ops["bf16"])
    assert sum(ops["int8"].values()) == pytest.approx(run["int8"].compute_s, rel=1e-12)
    for name in ("lm_head", "ffn_gate", "ffn_down", "final_norm"):
        assert ops["int8"][name] == pytest.approx(ops["bf16"][name], rel=1e-12), name


def test_one_chip_is_the_single_chip_simulation():
    m = get_preset("gpt2")
    r = infer_step(V5E, m, _slice("1"), ParallelSpec(), "decode", batch=4, kv_len=256)
    want = simulate(V5E, llm_workload(m, "decode", batch=4, kv_len=256, logits="last"))
    assert r.compute_s == pytest.approx(want.summary["latency_s"], rel=1e-9)
    assert r.collectives_s == 0 and r.tokens_per_s == pytest.approx(4 / r.latency_s)


def test_tp_all_reduces_on_the_critical_path():
    m = get_preset("llama2_7b")
    sl = _slice("2x4")
    spec = ParallelSpec(tp=8)
    r = infer_step(V5E, m, sl, spec, "decode", batch=8, kv_len=1024)
    tp = place(spec, sl).of("tp")
    # two per block, one summing the vocab-split embedding's lookups, the logits' gather
    want = (32 * 2 + 1) * all_reduce(8 * 4096 * 2, tp).total_s \
        + all_gather(8 * 32000 * 2, tp).total_s
    assert r.collectives_s == pytest.approx(want)
    assert r.collectives["tp_all_reduces"] == 65
    assert r.latency_s == pytest.approx(r.compute_s + r.collectives_s)
    assert r.schedule().waits_s["TP all-reduce"] == pytest.approx(65 * r.collectives[
        "tp_all_reduce_s"])
    # the trace's collective spans carry the bytes each chip receives, as train's do: 65 ring
    # all-reduces of 8 x 4096 bf16 (2 (N-1)/N of it each) and the logits' gather ((N-1)/N)
    from tpusim.pod.schedule_view import schedule_trace
    ev = schedule_trace(r.schedule())["traceEvents"]
    got = sum(e["args"].get("ici_bytes", 0) for e in ev if e["ph"] == "X")
    assert got == pytest.approx(65 * 2 * 7 / 8 * 8 * 4096 * 2 + 7 / 8 * 8 * 32000 * 2)
    assert any(e["ph"] == "C" for e in ev)


def test_int8_partial_sums_travel_as_bf16():
    # an int8 matmul's int32 partial sums are rescaled to bf16 before the all-reduce, and the
    # logits are bf16: the collectives are those of the bf16 run, the weights half of them
    m = get_preset("llama2_7b")
    sl = _slice("2x4")
    kw = dict(batch=8, kv_len=1024)
    i8 = infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", dtype="int8", **kw)
    bf = infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", **kw)
    assert i8.collectives_s == bf.collectives_s > 0
    assert i8.weights_gib_per_chip == pytest.approx(bf.weights_gib_per_chip / 2)


def test_memory_per_chip_closed_form():
    m = get_preset("llama2_7b")
    r = infer_step(V5E, m, _slice("2x4"), ParallelSpec(tp=4, dp=2), "decode", batch=8,
                   kv_len=2048)
    gib = 2 ** 30
    # a quarter of every matrix (32,000 rows of vocabulary split 4 ways exactly); the 65 RMS
    # norms of 4,096 are whole on every chip
    norms = (2 * 32 + 1) * 4096
    assert r.weights_gib_per_chip == pytest.approx(
        ((m.param_count() - norms) / 4 + norms) * 2 / gib)
    # K and V, 32 layers, 32/4 KV heads of 128, 2048 positions, 4 sequences per replica, bf16
    assert r.kv_cache_gib_per_chip == pytest.approx(2 * 32 * 8 * 128 * 2048 * 4 * 2 / gib)


def test_kv_heads_replicated_past_tp_are_whole_on_each_chip():
    # Llama-2-70B at tp=16 has 8 KV heads: each chip holds one whole K/V head (2 x 8,192 x 128
    # per layer), a 16th of Q, O, the FFN and the vocabulary, and its norms whole; int8
    m = get_preset("llama2_70b")
    r = infer_step(V5E, m, _slice("4x4"), ParallelSpec(tp=16), "decode", batch=1,
                   kv_len=1024, dtype="int8")
    h, layer = 8192, 2 * 8192 * 4 * 128 + 2 * 8192 * 128 + 3 * 8192 * 28672 // 16 + 2 * 8192
    assert r.weights_gib_per_chip * 2 ** 30 == pytest.approx(
        80 * layer + 2 * 2000 * h + h, rel=1e-12)
    # and its KV cache one head per chip
    assert r.kv_cache_gib_per_chip * 2 ** 30 == pytest.approx(2 * 80 * 128 * 1024)


def test_more_tp_lowers_decode_latency_of_a_memory_bound_model():
    m = get_preset("llama2_7b")
    one = infer_step(V5E, m, _slice("1"), ParallelSpec(), "decode", batch=1, kv_len=512)
    eight = infer_step(V5E, m, _slice("2x4"), ParallelSpec(tp=8), "decode", batch=1,
                       kv_len=512)
    assert eight.compute_s < one.compute_s / 4 and eight.collectives_s > 0


@pytest.mark.parametrize("kw,needle", [
    ({"spec": ParallelSpec(fsdp=8)}, "tp and dp only"),
    ({"spec": ParallelSpec(tp=4, dp=2), "batch": 3}, "multiple of dp=2"),
    ({"spec": ParallelSpec(tp=8), "model": "llama2_70b"}, "does not fit the 16 GiB"),
])
def test_bad_inference_inputs(kw, needle):
    args = {"spec": ParallelSpec(tp=8), "model": "llama2_7b", "batch": 8, **kw}
    with pytest.raises(InputError) as exc:
        infer_step(V5E, get_preset(args["model"]), _slice("2x4"), args["spec"], "decode",
                   batch=args["batch"], kv_len=1024)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_cli_llama2_70b_decode_on_v5e_8_with_tp8_is_one_command(cli, tmp_path):
    code, out, err = cli("infer", "tpu_v5e", "llama2_70b", "--chips", "8", "--parallel", "tp=8",
                         "--dtype", "int8", "--phase", "decode", "--batch", "8", "--kv-len",
                         "2048", "--out", tmp_path)
    assert code == 0, err
    rec = json.loads((tmp_path / "infer.json").read_text())
    assert rec["chips"] == 8 and rec["parallel"] == "tp=8" and rec["collectives_s"] > 0
    assert rec["latency_s"] == pytest.approx(rec["compute_s"] + rec["collectives_s"])
    assert (rec["seq"], rec["kv_len"]) == (1, 2048)      # what ran: decode's one new token


def test_cli_infer_bad_input(cli, tmp_path):
    code, out, err = cli("infer", "tpu_v5e", "llama2_70b", "--chips", "8", "--parallel", "tp=8",
                         "--kv-len", "2048", "--out", tmp_path / "o")
    assert code == 2 and "does not fit" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--chips", "4", "--kv-len", "64", "--dtype", "int4"],
     "--dtype: got 'int4'; chip 'tpu_v5e' runs bf16|int8|fp32|fp16"),
    (["--chips", "4", "--kv-len", "64", "--parallel", "tp=4,sp"], "tp and dp only (no sp"),
    (["--chips", "8", "--kv-len", "64", "--parallel", "tp=4,dp=2", "--set", "ici.max_chips=4"],
     "at most 4 chips in one slice; inference runs on one slice: use fewer chips"),
])
def test_cli_infer_refuses_what_it_would_ignore_or_cannot_run(cli, tmp_path, args, needle):
    code, _, err = cli("infer", "tpu_v5e", "gpt2", *args, "--out", tmp_path / "o")
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_prefill_attention_runs_as_a_flash_kernel():
    # Causal prefill of 4,096 tokens in 1,024 tiles: 10 of 16 score tiles run.
    m = get_preset("llama2_7b")
    r = infer_step(V5E, m, _slice("1"), ParallelSpec(), "prefill", batch=1, seq=4096)
    dense = simulate(V5E, llm_workload(m, "prefill", batch=1, seq=4096, logits="last"))
    assert 0 < r.compute_s < dense.summary["latency_s"]


def _llm_trace(cli, tmp_path, *args):
    path = tmp_path / "step.csv"
    code, _, err = cli("workload", "llm", *args, "--out", path)
    assert code == 0, err
    return path


def test_run_chips_shards_an_llm_trace_as_infer_does(cli, tmp_path):
    # "Llama-2-70B decode on a v5e-8 with TP=8" as one command: the record is infer_step's for
    # the step the trace's note names, with the tp all-reduces on the critical path.
    trace = _llm_trace(cli, tmp_path, "llama2_70b", "--phase", "decode", "--batch", "8",
                       "--kv-len", "2048", "--dtype", "int8")
    code, out, err = cli("run", "tpu_v5e", trace, "--chips", "8", "--parallel", "tp=8",
                         "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "sharded.json").read_text())
    want = infer_step(V5E, get_preset("llama2_70b"), _slice("2x4"), ParallelSpec(tp=8),
                      "decode", batch=8, seq=1, kv_len=2048, dtype="int8")
    assert rec["latency_s"] == pytest.approx(want.latency_s, rel=1e-12)
    assert rec["collectives_s"] > 0 and rec["parallel"] == "tp=8" and rec["chips"] == 8
    assert rec["latency_s"] == pytest.approx(rec["compute_s"] + rec["collectives_s"])
    assert "all-reduces on the critical path" in out


def test_run_chips_default_folders_differ_by_batch_and_set(cli, tmp_path, monkeypatch):
    # three runs that differ in --batch or --set each keep their own default folder (they had
    # shared <config>-<trace>-8chips-tp8 and replaced each other's sharded.json)
    monkeypatch.chdir(tmp_path)
    for extra in ((), ("--batch", "4"), ("--set", "ici.link_bandwidth_bytes_per_s=1e9")):
        code, _, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8", "--no-html",
                           *extra)
        assert code == 0, err
    got = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert got == ["tpu_v5e-llama3_8b_decode-8chips-tp8", "tpu_v5e-llama3_8b_decode-b4-8chips-tp8",
                   "tpu_v5e-llama3_8b_decode-ici.link_bandwidth_bytes_per_s=1e9-8chips-tp8"]
    lat = {n: json.loads((tmp_path / "results" / n / "sharded.json").read_text())["latency_s"]
           for n in got}
    assert len(set(lat.values())) == 3


def test_run_one_chip_sharded_is_the_single_chip_run(cli, tmp_path):
    trace = _llm_trace(cli, tmp_path, "gpt2", "--phase", "decode", "--batch", "4",
                       "--kv-len", "256")
    code, _, err = cli("run", "tpu_v5e", trace, "--chips", "1", "--batch", "2",
                       "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "sharded.json").read_text())
    single = simulate(V5E, str(trace), batch=2)
    assert rec["collectives_s"] == 0 and rec["sequences"] == 8
    assert rec["latency_s"] == pytest.approx(single.summary["latency_s"], rel=1e-9)


@pytest.mark.parametrize("args,needle", [
    (("--chips", "8", "--parallel", "tp=3"), "degrees multiply to 3 chips"),
    (("--chips", "6", "--parallel", "tp=6"), "must divide the 64 attention heads"),
    (("--chips", "8", "--parallel", "pp=8"), "inference shards with tp and dp only"),
])
def test_run_chips_bad_spec_is_one_line_exit_2(cli, tmp_path, args, needle):
    trace = _llm_trace(cli, tmp_path, "llama2_70b", "--phase", "decode", "--batch", "8",
                       "--kv-len", "128", "--dtype", "int8")
    code, out, err = cli("run", "tpu_v5e", trace, *args, "--out", tmp_path / "o")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("opt", [["--format", "int8"], ["--engine", "event"], ["--fuse"],
                                 ["--numerics"], ["--input-shape", "x=1x2"]])
def test_run_chips_refuses_one_chip_options(cli, tmp_path, opt):
    code, _, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8", *opt,
                       "--out", tmp_path / "o")
    assert code == 2 and f"{opt[0]} runs one chip; it does not go with --chips" in err
    assert err.count("\n") == 1 and not (tmp_path / "o").exists()


def test_run_chips_json_and_no_html(cli, tmp_path):
    code, out, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8", "--json",
                         "--no-html", "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads(out) == json.loads((tmp_path / "o" / "sharded.json").read_text())
    assert "wrote" in err and sorted(p.name for p in (tmp_path / "o").iterdir()
                                     if not p.name.startswith(".")) == ["config.yaml",
                                                                        "sharded.json"]


def test_run_chips_needs_an_llm_trace(cli, tmp_path):
    code, _, err = cli("run", "tpu_v5e", "resnet50", "--chips", "8", "--out", tmp_path / "o")
    assert code == 2 and "resnet50: is not an LLM step trace" in err and "notes" not in err
    assert len(err.strip().splitlines()) == 1


# ---- the step laid out in time (InferResult.schedule, --trace) ----

def _tiles(spans, end):
    """The compute track's spans in order cover [0, end] without gap or overlap."""
    comp = sorted((s for s in spans if s.track == "compute"), key=lambda s: s.start)
    t = 0.0
    for s in comp:
        assert s.start == pytest.approx(t, abs=1e-15)
        t = s.start + s.dur
    assert t == pytest.approx(end, rel=1e-12)
    return comp


def test_time_by_op_is_the_single_chip_run_row_by_row():
    # one chip, tp=1: each trace row's seconds are that row's layers.csv latency x instances
    m = get_preset("gpt2")
    r = infer_step(V5E, m, _slice("1"), ParallelSpec(), "decode", batch=4, kv_len=256)
    single = simulate(V5E, llm_workload(m, "decode", batch=4, kv_len=256, logits="last"))
    want = {row.name: row.latency_s * row.count for row in single.layers.itertuples()}
    assert [o["name"] for o in r.time_by_op] == list(single.layers["name"])
    for o in r.time_by_op:
        assert o["seconds"] == pytest.approx(want[o["name"]], rel=1e-9)
    assert sum(o["seconds"] for o in r.time_by_op) == pytest.approx(r.compute_s, rel=1e-12)
    s = r.schedule()
    assert {x.track for x in s.spans} == {"compute"} and s.waits_s == {}
    _tiles(s.spans, r.latency_s)


def test_schedule_puts_two_all_reduces_per_block_before_the_residual_adds():
    m = get_preset("llama2_7b")
    sl, spec = _slice("2x4"), ParallelSpec(tp=8)
    r = infer_step(V5E, m, sl, spec, "decode", batch=8, kv_len=1024)
    s = r.schedule()
    tp = place(spec, sl).of("tp")
    ar = all_reduce(8 * 4096 * 2, tp).total_s
    coll = [x for x in s.spans if x.track == "ICI/DCN blocking"]
    assert [x.kind for x in coll] == ["TP all-reduce"] * 65 + ["logits all-gather"]
    assert coll[0].name == "embedding"      # summing the vocab-split lookups, before layer 0
    assert all(x.dur == pytest.approx(ar) for x in coll[:-1])
    assert coll[-1].dur == pytest.approx(all_gather(8 * 32000 * 2, tp).total_s)
    comp = _tiles(s.spans, r.latency_s)
    # each block's all-reduce is waited through, right before a residual add
    after = {round(x.start + x.dur, 15): x for x in coll[:-1]}
    follow = [c.name.split(" ")[0] for c in comp if round(c.start, 15) in after
              and not c.kind.startswith("wait")]
    assert follow == ["attn_norm"] + ["attn_residual", "ffn_residual"] * 32
    assert s.step_s == pytest.approx(r.latency_s, rel=1e-12)
    assert s.compute_s == pytest.approx(r.compute_s, rel=1e-12)
    assert sum(s.waits_s.values()) == pytest.approx(r.collectives_s, rel=1e-12)


def test_parallel_block_has_one_all_reduce_per_layer():
    from tpusim.importers.llm import custom_config
    m = custom_config(name="pb", hidden=512, layers=3, heads=8, kv_heads=8, ffn=2048,
                      vocab=1000, parallel_block=True, norm="layernorm", positions="rope")
    r = infer_step(V5E, m, _slice("2x2"), ParallelSpec(tp=4), "decode", batch=4, kv_len=64)
    kinds = [x.kind for x in r.schedule().spans if x.track == "ICI/DCN blocking"]
    assert kinds == ["TP all-reduce"] * 4 + ["logits all-gather"]
    assert r.collectives["tp_all_reduces"] == 3 + 1      # and the embedding's
    # bf16 decode of 4 sequences: an all-reduce of 4 x 512 x 2 bytes over tp=4 brings
    # 2 x 3/4 of it into each chip; the logits gather 3/4 of the 4 x 1000 logits
    assert r.collectives["tp_all_reduce_bytes"] == pytest.approx(2 * 3 / 4 * 4 * 512 * 2)
    assert r.collectives["logits_all_gather_bytes"] == pytest.approx(3 / 4 * 4 * 1000 * 2)


def test_cli_infer_trace_and_time_by_op(cli, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = cli("infer", "tpu_v5e", "llama2_7b", "--chips", "8", "--batch", "8",
                            "--kv-len", "1024", "--out", out, "--trace", out / "step.json")
    assert code == 0, err
    rec = json.loads((out / "infer.json").read_text())
    doc = json.loads((out / "step.json").read_text())
    threads = {e["args"]["name"]: e["tid"] for e in doc["traceEvents"]
               if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(threads) == {"compute", "ICI/DCN blocking"}
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    comp = [e for e in xs if e["tid"] == threads["compute"]]
    assert sum(e["dur"] for e in comp) == pytest.approx(rec["latency_s"] * 1e6, rel=1e-9)
    blocking = [e for e in xs if e["tid"] == threads["ICI/DCN blocking"]]
    assert sum(e["dur"] for e in blocking) == pytest.approx(rec["collectives_s"] * 1e6,
                                                           rel=1e-9)
    assert doc["otherData"]["run_id"] == rec["provenance"]["run_id"]
    assert sum(o["seconds"] for o in rec["time_by_op"]) == pytest.approx(rec["compute_s"])
    page = (out / "report.html").read_text()
    assert "Time by op" in page and "ffn_down" in page and "TP all-reduce" in page
    assert "step.json" in json.loads((out / ".tpusim-infer.json").read_text())["files"]


def test_cli_run_chips_trace_is_infers(cli, tmp_path):
    trace = _llm_trace(cli, tmp_path, "llama2_7b", "--phase", "decode", "--batch", "8",
                       "--kv-len", "1024")
    code, _, err = cli("run", "tpu_v5e", trace, "--chips", "8", "--out", tmp_path / "o",
                       "--trace", tmp_path / "t.json")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "sharded.json").read_text())
    doc = json.loads((tmp_path / "t.json").read_text())
    kinds = [e["cat"] for e in doc["traceEvents"] if e["ph"] == "X"]
    assert kinds.count("TP all-reduce") == 65 and kinds.count("logits all-gather") == 1
    assert doc["otherData"]["step_s"] == pytest.approx(rec["latency_s"], rel=1e-12)


def test_trace_never_replaces_a_file_of_another_output(cli, tmp_path):
    trace = _llm_trace(cli, tmp_path, "gpt2", "--phase", "decode", "--batch", "2",
                       "--kv-len", "64")
    a = tmp_path / "a"
    code, _, err = cli("run", "tpu_v5e", trace, "--chips", "2", "--out", a)
    assert code == 0, err
    before = (a / "sharded.json").read_bytes()
    for cmd in (("run", "tpu_v5e", trace, "--chips", "2"),
                ("infer", "tpu_v5e", "gpt2", "--chips", "2", "--kv-len", "64"),
                ("train", "tpu_v5e", "gpt2", "--chips", "2", "--seq", "128",
                 "--parallel", "fsdp=2")):
        code, _, err = cli(*cmd, "--out", tmp_path / "b", "--trace", a / "sharded.json")
        assert code == 2 and "belongs to the tpusim run --chips output" in err, err
        assert "--trace path" in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "b").exists()
    code, _, err = cli("infer", "tpu_v5e", "gpt2", "--chips", "2", "--kv-len", "64",
                       "--out", tmp_path / "c", "--trace", tmp_path / "c" / "infer.json")
    assert code == 2 and "run's own files" in err
    assert (a / "sharded.json").read_bytes() == before


def test_int8_kv_cache_under_bf16_halves_the_cache_and_its_reads():
    # Llama-2-7B decode at 4,096 keys, 64 sequences on a v5e-8: the bf16 cache does not fit
    # (weights 1.6 + cache 2 x 32 x 4 x 128 x 4096 x 64 x 2 B = 16 GiB per chip); an int8 cache
    # is half of it, and the step that reads it is faster (its collectives unchanged)
    m = get_preset("llama2_7b")
    sl = _slice("2x4")
    kw = dict(batch=64, kv_len=4096)
    i8 = infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", kv_dtype="int8", **kw)
    assert i8.kv_cache_gib_per_chip * 2 ** 30 == 2 * 32 * 4 * 128 * 4096 * 64
    with pytest.raises(InputError, match="does not fit the 16 GiB.*--kv-dtype"):
        infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", **kw)
    small = dict(batch=8, kv_len=4096)
    a = infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", **small)
    b = infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", kv_dtype="int8", **small)
    assert b.compute_s < a.compute_s and b.collectives_s == a.collectives_s
    assert b.weights_gib_per_chip == a.weights_gib_per_chip
    assert b.kv_cache_gib_per_chip == pytest.approx(a.kv_cache_gib_per_chip / 2)
    # a cache the chip cannot attend over, or that holds no numbers, is one line
    with pytest.raises(InputError, match="a KV cache holds numbers"):
        infer_step(V5E, m, sl, ParallelSpec(tp=8), "decode", kv_dtype="binary", **small)


def test_builder_kv_dtype_reaches_run_and_run_chips(cli, tmp_path):
    # workload llm --kv-dtype int8: the trace's note names the cache, its attention GEMMs read
    # K/V in int8 (single-chip run: fewer HBM bytes), and run --chips prices the step as infer
    # --kv-dtype int8 does (the cache half of bf16's, so 64 x 4,096 keys fit a v5e-8)
    i8 = _llm_trace(cli, tmp_path, "llama2_7b", "--phase", "decode", "--batch", "64",
                    "--kv-len", "4096", "--kv-dtype", "int8")
    assert "kv_len 4096, bf16, KV cache int8;" in i8.read_text().splitlines()[0]
    code, _, err = cli("run", "tpu_v5e", i8, "--chips", "8", "--no-html", "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "sharded.json").read_text())
    want = infer_step(V5E, get_preset("llama2_7b"), _slice("2x4"), ParallelSpec(tp=8), "decode",
                      batch=64, seq=1, kv_len=4096, kv_dtype="int8")
    assert rec["latency_s"] == pytest.approx(want.latency_s, rel=1e-12)
    assert rec["kv_dtype"] == "int8"
    one = simulate(V5E, str(i8)).summary["hbm_bytes"]
    bf = tmp_path / "bf.csv"
    assert cli("workload", "llm", "llama2_7b", "--phase", "decode", "--batch", "64", "--kv-len",
               "4096", "--out", bf)[0] == 0
    # K and V of 64 sequences x 4,096 keys x 32 layers x 32 heads x 128, 1 byte less each
    assert simulate(V5E, str(bf)).summary["hbm_bytes"] - one == pytest.approx(
        2 * 64 * 4096 * 32 * 32 * 128)


def test_one_chip_needs_no_ici_section(cli, tmp_path):
    # tpu_v1 has no links: a one-chip step is the single-chip simulation; two chips need an ici
    code, out, err = cli("infer", "tpu_v1", "gpt2", "--chips", "1", "--dtype", "int8",
                         "--kv-len", "128", "--out", tmp_path / "o")
    assert code == 0 and "(1 chip, dp=1)" in out, err
    code, _, err = cli("infer", "tpu_v1", "gpt2", "--chips", "2", "--dtype", "int8",
                       "--kv-len", "128", "--out", tmp_path / "p")
    assert code == 2 and "no ici section" in err and not (tmp_path / "p").exists()


def test_a_prefill_too_long_to_fit_is_refused_before_it_is_simulated():
    # 10^11 tokens: the KV cache alone is millions of GiB; the refusal names memory, not the
    # flash kernel's 10^17 tile instances (which overflow the trace's exact sizes)
    with pytest.raises(InputError, match="memory: got .* does not fit the 16 GiB"):
        infer_step(V5E, get_preset("llama2_7b"), _slice("2x4"), ParallelSpec(tp=8), "prefill",
                   batch=1, seq=10**11)


def test_run_warns_of_the_kv_cache_that_run_chips_1_refuses(cli, tmp_path):
    # llama3_8b_decode on one v5e: weights 15.0 GiB + 8 sequences x 2,048 keys of bf16 KV
    # (2 x 32 layers x 8 KV heads x 128 x 2 B = 128 KiB a token: 2.0 GiB) = 17.0 GiB of 16
    code, _, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "1", "--no-html",
                       "--out", tmp_path / "one")
    assert code == 2 and "17.0 GiB per chip" in err
    code, _, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--no-html", "--out",
                       tmp_path / "plain")
    assert code == 0 and "weights and KV cache are 17.0 GiB" in err and err.count("\n") == 1

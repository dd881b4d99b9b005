"""The per-layer schedule of a training step (tpusim/pod/schedule.py) and its trace and Gantt."""
from __future__ import annotations

import json

import pytest

from tpusim.pod.schedule import BLOCKING, COMPUTE, ICI, TP_HIDDEN, StepParts, schedule


def two_layer_fsdp(**kw) -> StepParts:
    base = dict(layers=2, microbatches=1, pre_f=1, block_f=4, post_f=1, pre_b=1, block_b=8,
                post_b=2, ag_block=3, ag_head=2, rs_block=3, rs_head=2, optimizer=1)
    return StepParts(**{**base, **kw})


def test_hand_computed_two_layer_fsdp_step():
    """Walked by hand (seconds): gather embed/head 0-2, embed waits 2 and runs 2-3; gather block
    0 2-5, block 0 waits 2, runs 5-9 while block 1 gathers 5-8; the LM head's weights gather
    9-11 under block 1 (9-13); LM head 13-14 forward, 14-16 backward while block 1 regathers
    14-17; block 1's backward waits 1 and runs 17-25 (block 0 regathers 17-20), its gradients
    reduce-scatter 25-28; block 0 runs 25-33, scatters 33-36; the embedding's backward 33-34,
    its gradients (with the LM head's) scatter 36-38; the optimizer waits 4 for them, 38-39."""
    s = schedule(two_layer_fsdp(), record=True)
    assert s.step_s == pytest.approx(39)
    assert s.compute_s == pytest.approx(29)
    assert s.waits_s["FSDP all-gather"] == pytest.approx(2 + 2 + 1)
    assert s.waits_s["gradient reduce-scatter / DP all-reduce"] == pytest.approx(4)
    assert s.exposed_s == pytest.approx(9)
    # the old sum hid all 24 s of traffic under the 29 s of compute: 30 s, not 39 s
    comm = 2 * (2 * 3 + 2) + (2 * 3 + 2)
    assert s.stream_busy_s == pytest.approx(comm) and comm < s.compute_s
    ici = sorted((x.start, x.start + x.dur, x.name) for x in s.spans if x.track == ICI)
    assert [(a, b) for a, b, _ in ici] == [(0, 2), (2, 5), (5, 8), (9, 11), (14, 17), (17, 20),
                                          (25, 28), (33, 36), (36, 38)]


def test_compute_bound_layers_hide_all_but_the_first_gather_and_last_scatter():
    """Gathers and scatters much shorter than a block: only the first gather (embed weights)
    and the tail after the last backward (the head's scatter) are exposed."""
    s = schedule(two_layer_fsdp(ag_block=0.5, ag_head=0.25, rs_block=0.5, rs_head=0.25))
    assert s.waits_s["FSDP all-gather"] == pytest.approx(0.25 + 0.0)   # embed waits its gather
    # block 0's scatter 33-33.5 is done before the embed backward ends at 34; head's 34-34.25
    assert s.waits_s["gradient reduce-scatter / DP all-reduce"] == pytest.approx(0.25)
    assert s.step_s == pytest.approx(29 + 0.5 + 1)


@pytest.mark.parametrize("kw", [{}, {"microbatches": 3}, {"tp_block": 0.7, "pp": 0.4,
                                                             "bubble": 5, "dcn": 2},
                                {"tp_block": 0.7, "tp_backward": 0.35, "tp_hidden": 0.35,
                                 "block_r": 2, "tp_recompute": 0.2},
                                {"ep_block": 0.3, "dp_block": 1.5, "dp_head": 0.5,
                                 "block_r": 4, "microbatches": 2}])
def test_conservation_busy_plus_waits_is_the_step(kw):
    s = schedule(two_layer_fsdp(**kw), record=True)
    comp = sorted((x.start, x.dur, x.kind) for x in s.spans if x.track == COMPUTE)
    t = 0.0
    for start, dur, _ in comp:          # the compute track is tiled: no gap, no overlap
        assert start == pytest.approx(t)
        t = start + dur
    assert t == pytest.approx(s.step_s)
    busy = sum(d for _, d, k in comp if not k.startswith("wait"))
    waits = sum(d for _, d, k in comp if k.startswith("wait"))
    assert busy == pytest.approx(s.compute_s + s.bubble_s + s.optimizer_s)
    assert waits == pytest.approx(s.exposed_s)
    assert s.compute_s + s.exposed_s + s.bubble_s + s.optimizer_s == pytest.approx(s.step_s)
    ici = sorted((x.start, x.dur) for x in s.spans if x.track == ICI)   # one FIFO stream
    assert all(a + d <= b + 1e-12 for (a, d), (b, _) in zip(ici, ici[1:]))
    assert sum(d for _, d in ici) == pytest.approx(s.stream_busy_s)
    blocking = sum(x.dur for x in s.spans if x.track == BLOCKING)
    p = two_layer_fsdp(**kw)
    assert blocking == pytest.approx(p.microbatches * (
        p.layers * (p.tp_block + p.tp_backward + p.tp_hidden + p.tp_recompute + 2 * p.ep_block)
        + 2 * p.pp) + p.dcn)
    # the backward's hidden TP traffic lies inside its block's backward, never waited on
    for x in (x for x in s.spans if x.kind == TP_HIDDEN):
        assert any(c.kind == "backward" and c.name == x.name and c.microbatch == x.microbatch
                   and c.start - 1e-12 <= x.start and x.start + x.dur <= c.start + c.dur + 1e-12
                   for c in s.spans if c.track == COMPUTE)
    # blocking collectives are waited out whole
    for cause in ("TP all-reduce", "EP all-to-all", "PP send", "DCN all-reduce"):
        assert s.waits_s[cause] == pytest.approx(sum(x.dur for x in s.spans
                                                     if x.track == BLOCKING and x.kind == cause))


def test_schedule_never_beats_the_overlap_bound():
    """Without blocking collectives the step is at least max(compute, traffic) + optimizer
    (the old sum, a lower bound); recording spans changes nothing."""
    for ag in (0.1, 1, 3, 6, 20):
        p = two_layer_fsdp(ag_block=ag, rs_block=ag / 2, microbatches=2)
        s = schedule(p)
        assert s.step_s >= max(s.compute_s, s.stream_busy_s) + p.optimizer - 1e-9
        assert schedule(p, record=True).step_s == s.step_s


def _gpt2_step(**kw):
    from tpusim.config import load_config
    from tpusim.importers.llm import get_preset
    from tpusim.pod.sharding import parse_spec
    from tpusim.pod.topology import make_slice
    from tpusim.pod.train import train_step
    chip = load_config("tpu_v5e")
    sl = make_slice(chip.ici, chip.dcn, chips=8)
    args = {"parallel": "fsdp=4,tp=2", "mb": 1, "remat": "full", **kw}
    return train_step(chip, get_preset("gpt2"), sl, parse_spec(args["parallel"]), 256, 16,
                      args["remat"], args["mb"])


@pytest.mark.parametrize("kw", [{}, {"parallel": "fsdp=8", "mb": 2, "remat": "none"},
                                {"parallel": "dp=2,fsdp=2,tp=2", "remat": "minimal"},
                                {"parallel": "fsdp=2,pp=4", "mb": 4}])
def test_train_step_reports_its_schedule(kw):
    """train_step's step and exposed collectives are its schedule's; the schedule's streams
    carry exactly the collectives train.json lists."""
    r = _gpt2_step(**kw)
    s = r.schedule()
    t = r.time_s
    assert r.step_s == pytest.approx(s.step_s, rel=1e-12)
    assert t["exposed_collectives"] == pytest.approx(s.exposed_s, rel=1e-12)
    assert sum(r.exposed_s.values()) == pytest.approx(t["exposed_collectives"])
    assert t["compute"] == pytest.approx(s.compute_s, rel=1e-9)
    assert (t["compute"] + t["exposed_collectives"] + t["bubble"] + t["optimizer"]
            == pytest.approx(r.step_s, rel=1e-12))
    c = r.collectives_s
    kinds = {}
    for x in s.spans:
        kinds[x.kind] = kinds.get(x.kind, 0.0) + x.dur
    assert kinds.get("FSDP all-gather", 0) == pytest.approx(c["fsdp_all_gather"], rel=1e-9)
    assert kinds.get("gradient reduce-scatter", 0) == pytest.approx(c["fsdp_reduce_scatter"],
                                                                    rel=1e-9)
    assert kinds.get("DP all-reduce", 0) == pytest.approx(c["dp_all_reduce"], rel=1e-9)
    assert kinds.get("TP all-reduce", 0) == pytest.approx(c["tp_all_reduce"], rel=1e-9)
    assert kinds.get("PP send", 0) == pytest.approx(c["pp_permute"], rel=1e-9)
    assert "parts" not in r.as_dict()
    # bytes in = bytes out: the spans carry exactly the bytes train.json says each chip
    # receives, kind by kind (TP's spans under the GEMMs included)
    moved = {}
    for x in s.spans:
        k = {"FSDP all-gather": "fsdp_all_gather", "gradient reduce-scatter":
             "fsdp_reduce_scatter", "DP all-reduce": "dp_all_reduce", "PP send": "pp_permute",
             "DCN all-reduce": "dcn_all_reduce"}.get(x.kind, "tp_all_reduce")
        moved[k] = moved.get(k, 0.0) + x.ici_bytes + x.dcn_bytes
    for k, v in r.collective_bytes_per_chip.items():
        assert moved.get(k, 0.0) == pytest.approx(v["ici"] + v["dcn"], rel=1e-9, abs=1e-6), k


def test_trace_counter_integrates_to_the_bytes_received(cli, tmp_path):
    """The trace's 'received (GB/s)' counter spreads each collective span's bytes over its time:
    its area is the step's ICI and DCN bytes per chip (train.json), two slices so both move."""
    out = tmp_path / "run"
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "16", "--slices", "2", "--seq",
                       "128", "--parallel", "fsdp=8,tp=2", "--out", out,
                       "--trace", out / "step.json")
    assert code == 0, err
    rec = json.loads((out / "train.json").read_text())
    cs = [e for e in json.loads((out / "step.json").read_text())["traceEvents"]
          if e["ph"] == "C"]
    assert [e["ts"] for e in cs] == sorted(e["ts"] for e in cs)
    for series, key in (("ICI", "ici"), ("DCN", "dcn")):
        area = sum(a["args"][series] * 1e9 * (b["ts"] - a["ts"]) * 1e-6
                   for a, b in zip(cs, cs[1:]))
        want = sum(v[key] for v in rec["collective_bytes_per_chip"].values())
        assert want > 0 and area == pytest.approx(want, rel=1e-6), series
    assert cs[-1]["args"] == {"ICI": 0.0, "DCN": 0.0}


def test_cli_train_trace_is_trace_event_format(cli, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256",
                       "--batch-per-chip", "2", "--parallel", "fsdp=4,tp=2", "--out", out,
                       "--trace", out / "step.json")
    assert code == 0, err
    rec = json.loads((out / "train.json").read_text())
    doc = json.loads((out / "step.json").read_text())
    ev = doc["traceEvents"]
    names = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {COMPUTE, ICI, BLOCKING}
    xs = [e for e in ev if e["ph"] == "X"]
    assert all(set(e) >= {"name", "ph", "ts", "dur", "pid", "tid"} and e["dur"] >= 0
               for e in xs)
    tid = next(e["tid"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"
               and e["args"]["name"] == COMPUTE)
    comp = [e for e in xs if e["tid"] == tid]
    assert [e["ts"] for e in comp] == sorted(e["ts"] for e in comp)
    # the compute track's slices tile the step; its waits are the exposed collectives
    assert sum(e["dur"] for e in comp) == pytest.approx(rec["step_s"] * 1e6, rel=1e-6)
    assert sum(e["dur"] for e in comp if e["cat"].startswith("wait")) == pytest.approx(
        rec["time_s"]["exposed_collectives"] * 1e6, rel=1e-6)
    html = (out / "report.html").read_text()
    assert "Timeline of the step" in html and "What the compute waits for" in html
    assert "FSDP all-gather" in html and "ICI async" in html and "TP all-reduce" in html


def test_cli_train_trace_bad_paths_exit_2_and_write_nothing(cli, tmp_path):
    args = ("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256", "--parallel", "fsdp=8")
    (tmp_path / "f").write_text("a user's file\n")
    code, _, err = cli(*args, "--out", tmp_path / "a", "--trace", tmp_path / "f" / "t.json")
    assert code == 2 and "cannot write here" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists() and (tmp_path / "f").read_text() == "a user's file\n"
    code, _, err = cli(*args, "--out", tmp_path / "b", "--trace", tmp_path / "b" / "train.json")
    assert code == 2 and "run's own files" in err
    assert not (tmp_path / "b").exists()
    code, _, err = cli(*args, "--out", tmp_path / "c", "--trace", tmp_path)
    assert code == 2 and "is a directory" in err


def test_unrecorded_schedule_is_the_recorded_one_exactly():
    """The search's inlined path (no spans) does the recorded path's arithmetic: equal to the
    last bit on random steps, zero and nonzero parts alike."""
    import random
    rng = random.Random(7)
    fields = [f for f in StepParts.__dataclass_fields__
              if f not in ("layers", "microbatches", "moved")]
    for _ in range(300):
        kw = {f: (0.0 if rng.random() < 0.3 else rng.expovariate(1.0)) for f in fields}
        p = StepParts(layers=rng.randint(1, 6), microbatches=rng.randint(1, 4), **kw)
        a, b = schedule(p), schedule(p, record=True)
        assert (a.step_s, a.waits_s, a.stream_busy_s, a.compute_s) == \
            (b.step_s, b.waits_s, b.stream_busy_s, b.compute_s)

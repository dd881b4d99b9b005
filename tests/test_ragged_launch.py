"""A ragged decode step's attention is one kernel per layer: its fixed cost is paid once per op.

The trace marks every decode group after the first ``continues`` (tpusim/step_trace.py); such a
row pays no per-op overhead and no vector launch, on both simulation paths, in the exact step
and in the serving step timer's tables.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tpusim
from tpusim.generation import StepCostModel
from tpusim.importers.llm import custom_config
from tpusim.serve import setup
from tpusim.workload import Workload

from .conftest import run_cli

SMALL = custom_config(name="small", hidden=256, layers=3, heads=4, kv_heads=2, ffn=512,
                      vocab=1000, gated=True, act="silu", norm="rmsnorm", positions="rope")
ATTN = ("attn_qk", "attn_softmax", "attn_av")


def _attention_cycles(chip, kv: list[int], core: str) -> float:
    """Cycles of the attention rows (over their counts) in the step of decodes at ``kv``."""
    t = tpusim.simulate(chip, StepCostModel(chip, SMALL).trace(kv), core=core).layers
    attn = t[t["name"].str.startswith(ATTN)]
    return float((attn["cycles"] * attn["count"]).sum())


@pytest.mark.parametrize("config,fixed", [
    # scalesim timing: no state carried between rows, so the sum is exact. 589 cycles per op:
    # two GEMMs pay the overhead, softmax (ops model) one launch of the same size
    ("tpu_v5e", 3 * 589.0),
    # tpu_v4's lanes model: softmax launches 5 kernels of vector.launch_cycles (936.3)
    ("tpu_v4", 2 * 589.0 + 5 * 936.3)])
@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_two_lengths_cost_their_attentions_plus_one_fixed_cost_per_op(config, fixed, core):
    chip = tpusim.load_config(config, **{"timing.model": "scalesim"})
    assert chip.timing.overhead_cycles_per_op == 589.0
    layers = SMALL.layers
    alone = [_attention_cycles(chip, [k], core) for k in (300, 700)]
    both = _attention_cycles(chip, [300, 700], core)
    # (each attention without its fixed cost) + one fixed cost per op, per layer
    assert both == pytest.approx(sum(alone) - 2 * layers * fixed + layers * fixed,
                                 rel=1e-12, abs=0)
    t = tpusim.simulate(chip, StepCostModel(chip, SMALL).trace([300, 700]), core=core).layers
    ovh = dict(zip(t["name"], t["overhead_cycles"]))
    assert ovh["attn_qk_1x300"] == 589.0 and ovh["attn_qk_1x700"] == 0
    assert ovh["attn_softmax_1x700"] == 0 and ovh["attn_av_1x700"] == 0


@pytest.mark.parametrize("config", ["tpu_v5e", "tpu_v4", "default"])
def test_ragged_step_is_simulate_of_its_trace_on_both_paths(config):
    chip = tpusim.load_config(config)
    cost = StepCostModel(chip, SMALL)
    kv, pre = [40, 300, 300, 700], 64
    step, trace = cost.step(kv, pre, 200), cost.trace(kv, pre, 200)
    assert [l.continues for l in trace.layers].count(True) == 2 * 3   # 2 later groups x 3 ops
    for core in ("reference", "columnar"):
        s = tpusim.simulate(chip, trace, core=core).summary
        assert step.cycles == pytest.approx(s["total_cycles"], rel=1e-12, abs=0)
        assert step.energy_j == pytest.approx(s["energy_j"], rel=1e-12, abs=0)
    ref = tpusim.simulate(chip, trace, core="reference").layers
    col = tpusim.simulate(chip, trace, core="columnar").layers
    for c in ("cycles", "overhead_cycles", "energy_pj", "hbm_read_bytes"):
        np.testing.assert_allclose(col[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-12)


def test_prefill_attention_keeps_its_own_kernel():
    trace = StepCostModel("tpu_v5e", SMALL).trace([40], 64, 200)
    assert not any(l.continues for l in trace.layers)   # one decode group, one prefill chunk


def test_overhead_zero_changes_nothing_bit_for_bit():
    chip = tpusim.load_config("tpu_v5e", **{"timing.overhead_cycles_per_op": 0})
    cost = StepCostModel(chip, SMALL)
    kv = [40, 90, 90, 300, 700]
    plain = [dataclasses.replace(l, continues=False) for l in cost.trace(kv).layers]
    assert any(l.continues for l in cost.trace(kv).layers)
    assert cost.step(kv) == StepCostModel(chip, SMALL)._evaluate(plain, len(kv))
    a = tpusim.simulate(chip, Workload("w", tuple(plain))).summary
    b = tpusim.simulate(chip, cost.trace(kv)).summary
    assert {k: v for k, v in a.items() if k not in ("simulator_seconds", "workload")} == \
        {k: v for k, v in b.items() if k not in ("simulator_seconds", "workload")}
    t = setup(chip, SMALL).timer
    assert t.fixed == 0
    ragged = np.array([40, 300, 700])
    assert t.decode_attention(ragged) == float(t.one.table[ragged].sum())


@pytest.mark.parametrize("tp", [1, 8])
def test_timer_within_its_accuracy_of_the_exact_ragged_step(tp):
    st = setup("tpu_v5e", "llama2_7b", chips=tp)
    c, t = st.cost, st.timer
    rng = np.random.default_rng(3)
    for b in (2, 17, 160):
        kv = rng.integers(220, 512, b).tolist()
        assert t.latency(kv) == pytest.approx(c.step(kv).latency_s, rel=0.005)
    # the fixed cost given back per extra length: 3 ops x 589 cycles x 32 layers at 1.5 GHz
    assert t.fixed == pytest.approx(3 * 589 * 32 / 1.5e9, rel=1e-12)


def test_continues_column_in_a_trace_csv(tmp_path):
    head = "name,op,m,k,n,weights,elements,continues\n"
    ok = tmp_path / "ok.csv"
    ok.write_text(head + "a,matmul,4,64,64,dynamic,,\nb,matmul,4,64,64,dynamic,,true\n")
    layers = tpusim.simulate("tpu_v5e", str(ok)).layers
    assert layers["overhead_cycles"].tolist() == [589.0, 0.0]
    # a step's trace written as CSV reads back with its continuation rows
    from tpusim.importers.trace_csv import read_trace, rows_to_csv
    step = tmp_path / "step.csv"
    step.write_text(rows_to_csv(StepCostModel("tpu_v5e", SMALL).rows([3, 9, 9])))
    assert [l.continues for l in read_trace(step).layers] == \
        [l.continues for l in StepCostModel("tpu_v5e", SMALL).trace([3, 9, 9]).layers]
    bad = tmp_path / "bad.csv"
    bad.write_text(head + "a,matmul,4,64,64,dynamic,,maybe\n")
    code, out, err = run_cli("run", "tpu_v5e", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and "continues" in line and "maybe" in line
    assert "expected true or false" in line     # what is allowed, not pydantic's words


def test_continues_on_the_first_row_is_an_error(tmp_path):
    """README: a ``continues`` row runs inside a kernel an earlier row launched; the first row
    has none. A later row may continue after a row of another kind (a fused attention kernel
    holds QK^T, softmax and AV; a step's later groups continue past the first group's AV)."""
    head = "name,op,m,k,n,weights,elements,continues\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("# a comment line\n" + head + "a,matmul,4,64,64,dynamic,,true\n"
                   "b,matmul,4,64,64,dynamic,,\n")
    out = tmp_path / "o"
    code, _, err = run_cli("run", "tpu_v5e", str(bad), "--out", str(out))
    assert code == 2 and "Traceback" not in err and not out.exists()
    assert err.strip() == (f"tpusim: error: {bad}: line 3, column continues: row 'a': the first "
                           "row has no kernel to continue (continues=true needs an earlier "
                           "row's kernel)")
    from tpusim.importers.trace_csv import write_trace
    with pytest.raises(tpusim.InputError, match="line 2, column continues"):
        write_trace([{"name": "a", "op": "softmax", "elements": 8, "continues": True}],
                    tmp_path / "w.csv")
    assert not (tmp_path / "w.csv").exists()
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(head + "a,matmul,4,64,64,dynamic,,\ns,softmax,,,,,256,true\n"
                     "b,matmul,4,64,64,dynamic,,true\n")
    assert [l.continues for l in tpusim.load_workload(str(mixed)).layers] == [False, True, True]

"""The Edge TPU preset against what the Coral runtime publishes, and its two fitted costs
(``tpusim.edge_fit``: a fixed cost per inference, a cost per element of unfused int8 add/mul):
each mechanism does what it says in both simulation paths, the fit recovers known values,
leave-one-out never sees the model it scores, the preset carries the five-model fit, and the
leave-one-out and held-out errors are what the docs say."""
from __future__ import annotations

import pytest

from tpusim import edge_fit
import tpusim
from tpusim.config import load_config
from tpusim.timing import array_timing
from tpusim.workload import make_layer

MODELS = tuple(edge_fit.EDGE_TPU_MS)
CORAL = {m: v[0] for m, v in edge_fit.EDGE_TPU_MS.items()}


def test_preset_is_the_chip_the_runtime_describes():
    c = load_config("edge_tpu")
    assert c.array.count == 4 * 4                        # number_x_tiles x number_y_tiles
    assert c.clock_ghz == 0.5                            # GcbClock k500MHZ at Max
    assert c.memory.sram.input_kib * 1024 == 16 * 196_608    # narrow memory, all tiles
    macs = c.array.count * c.array.rows * c.array.cols
    assert macs == 4096 and c.peak_tops("int8") == pytest.approx(2 * macs * 0.5e9 / 1e12)


def test_depthwise_packs_one_group_per_tile():
    # a 3x3 depthwise group needs 9 rows and 1 column of a ws array: one fits on a 16x16 tile
    dw = make_layer({"name": "dw", "op": "conv2d", "in_h": 8, "in_w": 8, "in_c": 32,
                     "out_c": 32, "kernel_h": 3, "kernel_w": 3, "padding": 1, "groups": 32})
    at = array_timing(dw, load_config("edge_tpu"), "int8")
    assert at.tiles == 32


CORES = ("columnar", "reference")


@pytest.mark.parametrize("core", CORES)
def test_invoke_cost_is_added_once_per_inference_outside_the_layers(core):
    """Invoke cycles add exactly cycles / clock to the latency, static power x that time to the
    energy, and nothing to any layer row; a batch of two pays it twice."""
    base = load_config("edge_tpu", **{"timing.invoke_cycles": 0})
    inv = load_config("edge_tpu", **{"timing.invoke_cycles": 500_000})     # 1 ms at 500 MHz
    for batch in (1, 2):
        a = tpusim.simulate(base, "mobilenet_v2", batch=batch, core=core)
        b = tpusim.simulate(inv, "mobilenet_v2", batch=batch, core=core)
        assert b.summary["latency_s"] - a.summary["latency_s"] == pytest.approx(1e-3 * batch)
        assert b.summary["total_cycles"] - a.summary["total_cycles"] == 500_000 * batch
        idle_j = inv.energy.static_w * 1e-3 * batch
        assert b.summary["energy_j"] - a.summary["energy_j"] == pytest.approx(idle_j)
        assert (b.summary["energy_breakdown_j"]["static"]
                - a.summary["energy_breakdown_j"]["static"]) == pytest.approx(idle_j)
        assert b.layers["cycles"].tolist() == a.layers["cycles"].tolist()


@pytest.mark.parametrize("core", CORES)
def test_element_cost_applies_to_unfused_named_ops_only(core):
    """An unfused add of 10,000 elements at 0.36 cycles each takes ceil(3,600) cycles; a fused
    add and an unnamed op (relu) keep the ops rate (ceil(elements x ops / 64))."""
    from tpusim.workload import Workload
    chip = load_config("edge_tpu", **{"vector.element_cycles": {"add": 0.36},
                                      "timing.invoke_cycles": 0})
    conv = make_layer({"name": "c", "op": "conv2d", "in_h": 10, "in_w": 10, "in_c": 100,
                       "out_c": 100, "kernel_h": 1, "kernel_w": 1})
    rows = (conv,
            make_layer({"name": "a", "op": "add", "elements": 10_000}),
            make_layer({"name": "f", "op": "add", "elements": 10_000, "fused": True}),
            make_layer({"name": "r", "op": "relu", "elements": 10_000}))
    df = tpusim.simulate(chip, Workload("w", rows), core=core).layers.set_index("name")
    assert df.loc["a", "compute_cycles"] == 3600
    assert df.loc["r", "compute_cycles"] == -(-10_000 // 64)
    # the fused add hides under the conv (its ops-rate cycles are fewer than the conv's)
    assert df.loc["f", "cycles"] == 0


def _synthetic(value):
    return {m: edge_fit.predicted_ms(m, value) for m in MODELS}


def test_fit_recovers_known_values():
    """Latencies the model itself gives at (400,000 cycles, 0.5) are fitted back to them."""
    truth = _synthetic((400_000, 0.5))
    assert edge_fit.fit(MODELS, truth) == (400_000, 0.5)
    assert all(v == (400_000, 0.5) for v, _ in edge_fit.leave_one_out(MODELS, truth).values())


def test_leave_one_out_never_sees_the_held_out_latency():
    loo = edge_fit.leave_one_out(MODELS)
    for held in MODELS:
        skewed = {**CORAL, held: CORAL[held] * 10}      # only the held-out number changes
        assert edge_fit.fit(tuple(m for m in MODELS if m != held), skewed) == loo[held][0]
        assert loo[held][1] == edge_fit.predicted_ms(held, loo[held][0])


def test_preset_carries_the_five_model_fit():
    c = load_config("edge_tpu")
    assert c.timing.issue_efficiency == 1.0             # the arrays at their full issue rate
    assert edge_fit.preset_value() == edge_fit.fit(MODELS)
    assert set(c.vector.element_cycles) == set(edge_fit.ELEMENTWISE)


def test_coral_latencies_leave_one_out():
    """What docs/edge_tpu_realism.md reports: all five within 10% leave-one-out, and the fitted
    values move little between folds (invoke within 15%, element cost within 0.1 cycle)."""
    loo = edge_fit.leave_one_out(MODELS)
    err = {m: p / CORAL[m] - 1 for m, (_, p) in loo.items()}
    assert max(abs(e) for e in err.values()) <= 0.10
    inv = [v[0] for v, _ in loo.values()]
    el = [v[1] for v, _ in loo.values()]
    assert max(inv) / min(inv) <= 1.15 and max(el) - min(el) <= 0.1


def test_fidelity_rows_are_the_leave_one_out_predictions():
    from tpusim.fidelity import edge_tpu_checks
    loo = edge_fit.leave_one_out(MODELS)
    rows = {r["case"]: r for r in edge_tpu_checks()}
    held = edge_fit.EDGE_TPU_HELD_OUT_MS
    assert set(rows) == set(MODELS) | set(held) and not set(MODELS) & set(held)
    for m, (v, p) in loo.items():
        assert rows[m]["predicted"] == p and rows[m]["measured"] == CORAL[m]
        assert m not in rows[m]["fitted_on"] and edge_fit.describe(v) in rows[m]["fitted_on"]
    for m, (ms, _, names) in held.items():   # the shipped preset as it is, nothing refitted
        sim = tpusim.simulate("edge_tpu", names[0]).summary["latency_s"] * 1e3
        assert rows[m]["metric"] == "latency (held out)" and rows[m]["measured"] == ms
        assert rows[m]["predicted"] == pytest.approx(sim, rel=1e-12)
        assert abs(sim / ms - 1) <= 0.10           # DenseNet-121, SqueezeNet, VGG19

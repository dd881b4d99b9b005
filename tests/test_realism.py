"""Realism check: TPUv1 stand-ins of the six Jouppi 2017 apps on the ``tpu_v1`` preset.

Published truths (Jouppi et al., "In-Datacenter Performance Analysis of a TPU", ISCA 2017): Table 1
(layers, weights, MACs per weight byte, batch), the measured TOPS, the roofline ridge (1350 MACs
per weight byte) and the MLP0/CNN0 cycle shares of Table 3. The stand-ins are built by
``workloads/scripts/make_tpu_v1.py``; docs/tpu_v1_realism.md explains every gap seen here.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import tpusim
from tpusim.importers.trace_csv import rows_to_csv

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "workloads" / "tpu_v1"
APPS = ("mlp0", "mlp1", "lstm0", "lstm1", "cnn0", "cnn1")

# Jouppi et al., ISCA 2017, Table 1: (FC, conv, vector/pool layers, weights, MACs per weight
# byte, batch) and the measured TOPS (peak 92).
TABLE1 = {
    "mlp0": (5, 0, 0, 20e6, 200, 200),
    "mlp1": (4, 0, 0, 5e6, 168, 168),
    "lstm0": (24, 0, 34, 52e6, 64, 64),
    "lstm1": (37, 0, 19, 34e6, 96, 96),
    "cnn0": (0, 16, 0, 8e6, 2888, 8),
    "cnn1": (4, 72, 13, 100e6, 1750, 32),
}
MEASURED_TOPS = {"mlp0": 12.3, "mlp1": 9.7, "lstm0": 3.7, "lstm1": 2.8, "cnn0": 86.0,
                 "cnn1": 14.1}
DDR3_BYTES_S = 34e9        # TPUv1 weight memory, 34 GB/s (Jouppi 2017, Table 2)
RIDGE_MACS_PER_BYTE = 1350  # Jouppi 2017, Fig. 5: 46 T MAC/s / 34 GB/s
# Jouppi 2017, Table 3 cycle shares, percent of all cycles.
TABLE3 = {
    "mlp0": {"active": 12.7, "weight_stall": 53.9, "weight_shift": 15.9, "non_matrix": 17.5},
    "cnn0": {"active": 78.2, "weight_stall": 0.0, "weight_shift": 0.0, "non_matrix": 21.8},
}
BAND = 0.25
# Apps whose stand-in can land in the band. LSTM1 cannot: see test_lstm1_gap_is_a_roofline_gap.
# CNN1's value hangs on how many MACs its stand-in puts in shallow layers, which Table 1 leaves
# free (equally valid stand-ins give 8.9-20.4 TOPS, docs/tpu_v1_realism.md): its band check
# guards the shipped stand-in; test_cnn1_time_goes_to_shallow_layers checks the mechanism.
IN_BAND = ("mlp0", "mlp1", "lstm0", "cnn0", "cnn1")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_tpu_v1", ROOT / "workloads" / "scripts" / "make_tpu_v1.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def results():
    return {app: tpusim.simulate("tpu_v1", TRACES / f"{app}.csv") for app in APPS}


def cycle_shares(layers) -> dict[str, float]:
    """Shares of all cycles (counts included) by what the chip is doing, from layers.csv.

    active = streaming cycles of GEMM layers (compute minus unhidden weight shift and fill/drain);
    non_matrix = cycles of vector rows.
    """
    cnt = layers["count"]
    total = float((layers["cycles"] * cnt).sum())
    gemm = layers["m"].notna()

    def share(col: str, rows=gemm) -> float:
        return float((layers[col] * cnt)[rows].sum()) / total

    return {
        "active": share("compute_cycles") - share("weight_shift_cycles")
        - share("fill_drain_cycles"),
        "weight_stall": share("stall_weight_cycles"),
        "weight_shift": share("weight_shift_cycles"),
        "fill_drain": share("fill_drain_cycles"),
        "io_stall": share("stall_input_cycles") + share("stall_output_cycles"),
        "non_matrix": share("cycles", ~gemm),
    }


# ---------------------------------------------------------------- the stand-ins follow Table 1

@pytest.mark.parametrize("app", APPS)
def test_stand_in_matches_table1(app):
    fc, conv, vec, weights, ratio, batch = TABLE1[app]
    wl = tpusim.load_workload(TRACES / f"{app}.csv")
    gemm = [l for l in wl.layers if l.kind == "gemm"]
    assert sum(l.count for l in gemm if l.op == "matmul") == fc
    assert sum(l.count for l in gemm if l.op == "conv2d") == conv
    assert sum(l.count for l in wl.layers if l.kind == "vector") == vec
    w = sum(l.weight_elements * l.count for l in gemm)   # int8: one byte per weight
    assert w == pytest.approx(weights, rel=0.01)
    assert wl.macs / w == pytest.approx(ratio, rel=0.01)
    for l in gemm:
        assert l.format == "int8"
        rows = l.m * l.shared_weights if l.op == "matmul" else l.m
        assert rows % batch == 0          # every layer runs the whole batch
    # the header comments say where the shapes come from
    assert any("Table 1" in n for n in wl.notes)


def test_generator_reproduces_the_shipped_traces():
    gen = _generator()
    for app in APPS:
        rows, comments = gen.build(app)
        assert rows_to_csv(rows, comments) == (TRACES / f"{app}.csv").read_text(), app


def test_preset_ridge_is_jouppis():
    chip = tpusim.load_config("tpu_v1")
    macs_per_s = chip.peak_tops("int8") * 1e12 / 2
    ridge = macs_per_s / (chip.memory.hbm.bandwidth_gbps * 1e9)
    assert ridge == pytest.approx(RIDGE_MACS_PER_BYTE, rel=0.01)


# ---------------------------------------------------------------- throughput and roofline side

@pytest.mark.parametrize("app", IN_BAND)
def test_within_band_of_measured_tops(results, app):
    sim = results[app].summary["achieved_tops"]
    assert abs(sim / MEASURED_TOPS[app] - 1) <= BAND, (app, sim)


@pytest.mark.parametrize("app", ("mlp0", "mlp1", "lstm0", "lstm1"))
def test_memory_bound_apps_sit_on_the_weight_roof(results, app):
    s = results[app].summary
    assert s["bound_share"]["hbm"] > 0.5
    # Every weight byte crosses DDR3 once per batch, so Table 1's MACs per weight byte caps
    # throughput at 2 x ratio x 34 GB/s; the model must stay under it and, being limited by
    # nothing else, come close (activations at the chain ends are the rest).
    roof = 2 * TABLE1[app][4] * DDR3_BYTES_S / 1e12
    assert s["achieved_tops"] <= roof
    assert s["achieved_tops"] >= 0.85 * roof


@pytest.mark.parametrize("app", ("cnn0", "cnn1"))
def test_cnns_are_compute_bound(results, app):
    assert TABLE1[app][4] > RIDGE_MACS_PER_BYTE
    assert results[app].summary["bound_share"]["compute"] > 0.5


def test_lstm1_gap_is_a_roofline_gap(results):
    """Measured LSTM1 (2.8 TOPS) is 43% of its DDR3 roof (6.5 TOPS at 96 MACs per weight byte);
    MLP0/MLP1/LSTM0 measure 85-90% of theirs. The model, reading each weight once per batch as
    Table 1 says, lands on the roof: the gap is work the table does not describe."""
    roof = 2 * 96 * DDR3_BYTES_S / 1e12
    sim = results["lstm1"].summary["achieved_tops"]
    assert MEASURED_TOPS["lstm1"] < 0.5 * roof
    assert sim > (1 + BAND) * MEASURED_TOPS["lstm1"]   # outside the band, as documented
    assert sim >= 0.85 * roof


def test_cnn1_time_goes_to_shallow_layers(results):
    """CNN1's low TOPS comes from its shallow early convs: a 3x3x32 -> 32 conv maps k = 288 onto
    2 row folds (288 of 512 rows used) and n = 32 onto 32 of 256 columns."""
    layers = results["cnn1"].layers
    s1 = layers.set_index("name").loc["s1_conv"]
    mapped = (288 / 512) * (32 / 256)
    assert s1["utilization"] == pytest.approx(mapped, rel=0.01)
    cnt = layers["count"]
    shallow = layers["name"].str.match(r"(stem|s1_|s2_)") & layers["m"].notna()
    share = float((layers["cycles"] * cnt)[shallow].sum() / (layers["cycles"] * cnt).sum())
    assert share > 0.5
    fcs = layers["name"].str.startswith("fc")
    assert (layers.loc[fcs, "bound"] == "hbm").all()
    # far below CNN0, as measured (14.1 vs 86.0 TOPS)
    assert results["cnn1"].summary["achieved_tops"] < 0.5 * results["cnn0"].summary["achieved_tops"]


# ---------------------------------------------------------------- Table 3 cycle shares

def test_mlp0_cycle_shares(results):
    got = cycle_shares(results["mlp0"].layers)
    real = TABLE3["mlp0"]
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    # weight stall is the largest share, as the counters say
    assert got["weight_stall"] == max(got.values())
    # The model has no non-matrix work in MLP0 (ReLU runs in the activation pipeline), so compare
    # the active share with Table 3's over matrix cycles only: 12.7 / (100 - 17.5) = 15.4%.
    assert got["non_matrix"] == 0
    active_of_matrix = real["active"] / (100 - real["non_matrix"])
    assert got["active"] == pytest.approx(active_of_matrix, abs=0.01)
    # No assertion on the stall/shift split: the model books as weight_shift only the shift that
    # would show with unlimited bandwidth; TPUv1's counter books every shift cycle (the doc).


def test_cnn0_cycle_shares(results):
    got = cycle_shares(results["cnn0"].layers)
    assert got["active"] == max(got.values())
    assert got["active"] > TABLE3["cnn0"]["active"] / 100
    # Weight stalls stay small, unlike MLP0: each layer's first tile is prefetched during the
    # layer before, so only the chain's ends stall (3.0%, docs/tpu_v1_realism.md).
    assert got["weight_stall"] < 0.05


def test_count_row_costs_the_same_as_split_rows(tmp_path):
    """A row with count=16 runs its instances back to back, each reading the previous one's
    output from the Unified Buffer, exactly as 16 separate rows do."""
    gen = _generator()
    one, sep = tmp_path / "one.csv", tmp_path / "separate.csv"
    gen.write_trace([gen.conv("conv", 8, 19, 236, 236, count=16)], one)
    gen.write_trace([gen.conv(f"conv{i}", 8, 19, 236, 236) for i in range(16)], sep)
    split = tpusim.simulate("tpu_v1", sep).summary["total_cycles"]
    assert tpusim.simulate("tpu_v1", one).summary["total_cycles"] == pytest.approx(split, rel=0.01)

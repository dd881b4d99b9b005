"""Whole-workload runs: SPEC columns, conservation laws, residency, energy sums, determinism."""
from __future__ import annotations

import json

import pytest

import tpusim
from tpusim.simulator import LAYER_COLUMNS
from tpusim.workload import Workload, make_layer

from .conftest import SCALESIM

SPEC_COLUMNS = ("name, op, count, m, k, n, macs, format, cycles, latency_s, compute_cycles, "
                "stall_cycles, utilization, hbm_read_bytes, hbm_write_bytes, sram_read_bytes, "
                "sram_write_bytes, energy_pj, mac_energy_pj, sram_energy_pj, hbm_energy_pj, "
                "static_energy_pj, intensity, achieved_tops, roof_tops, bound").split(", ")
SPEC_SUMMARY = ("config workload format total_cycles latency_s throughput_per_s achieved_tops "
                "peak_tops utilization energy_j energy_per_inference_j hbm_bytes bound_share "
                "simulator_seconds").split()
RESNET18 = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"


def L(**row):
    row.setdefault("weight_dtype", "int8")
    row.setdefault("act_dtype", "int8")
    return make_layer(row)


def test_spec_columns_and_summary():
    r = tpusim.simulate("default", RESNET18)
    assert set(SPEC_COLUMNS) <= set(r.layers.columns)
    assert list(r.layers.columns) == list(LAYER_COLUMNS)
    assert set(SPEC_SUMMARY) <= set(r.summary)
    assert r.summary["macs"] == r.workload.macs
    assert set(r.layers["bound"]) <= {"compute", "hbm", "sram", "vector"}
    assert sum(r.summary["bound_share"].values()) == pytest.approx(1.0)


def test_count_row_equals_repeated_rows():
    """A row with count=3 runs like three rows back to back; its numbers are per instance."""
    fc = dict(name="fc", op="matmul", m=64, k=512, n=512)
    three = Workload("b", (L(**fc, count=3),))
    split = Workload("c", tuple(L(**fc) for _ in range(3)))
    r3, rs = tpusim.simulate("default", three), tpusim.simulate("default", split)
    assert r3.summary["total_cycles"] == pytest.approx(rs.summary["total_cycles"])
    assert r3.summary["hbm_bytes"] == pytest.approx(rs.summary["hbm_bytes"])
    assert r3.summary["energy_j"] == pytest.approx(rs.summary["energy_j"])
    assert r3.summary["macs"] == 3 * 64 * 512 * 512
    assert r3.layers.loc[0, "cycles"] == pytest.approx(rs.layers["cycles"].mean())
    assert r3.summary["total_cycles"] == pytest.approx(3 * r3.layers.loc[0, "cycles"])


def test_energy_is_the_sum_of_its_parts():
    r = tpusim.simulate("tpu_v1", RESNET18)
    d = r.layers
    parts = (d.mac_energy_pj + d.vector_energy_pj + d.sram_energy_pj + d.hbm_energy_pj
             + d.static_energy_pj)
    assert (abs(parts - d.energy_pj) <= 1e-6 * d.energy_pj).all()
    assert r.summary["energy_j"] == pytest.approx((d.energy_pj * d["count"]).sum() * 1e-12)
    # HBM energy = bytes x 8 x pJ/bit, DDR3 at 70 pJ/bit on TPUv1
    assert d.hbm_energy_pj.sum() == pytest.approx(
        ((d.hbm_read_bytes + d.hbm_write_bytes) * 8 * 70).sum())


def test_streams_add_up():
    d = tpusim.simulate("tpu_v1", RESNET18).layers
    assert ((d.hbm_weight_read_bytes + d.hbm_input_read_bytes - d.hbm_read_bytes).abs()
            < 1e-6).all()
    assert ((d.sram_input_bytes + d.sram_weight_bytes + d.sram_output_bytes
             - d.sram_read_bytes - d.sram_write_bytes).abs() < 1e-3).all()
    # every weight byte of every layer is read at least once
    w = sum(l.weight_elements for l in tpusim.load_workload(RESNET18).layers)
    assert (d.hbm_weight_read_bytes * d["count"]).sum() >= w


def test_activation_stays_on_chip_when_it_fits():
    layers = (L(name="a", op="matmul", m=256, k=256, n=256),
              L(name="b", op="matmul", m=256, k=256, n=256),
              L(name="c", op="matmul", m=256, k=256, n=256))
    r = tpusim.simulate("default", Workload("w", layers)).layers
    # first input and last output cross HBM; the intermediate ones stay in the 16 MiB buffer
    assert list(r.hbm_read_bytes) == [2 * 65536, 65536, 65536]
    assert list(r.hbm_write_bytes) == [0, 0, 65536]
    tiny = tpusim.load_config("default", **{"memory.sram.input_kib": 64})
    s = tpusim.simulate(tiny, Workload("w", layers)).layers
    assert list(s.hbm_write_bytes) == [65536] * 3       # spilled
    assert list(s.hbm_read_bytes) == [2 * 65536] * 3    # and read back


def test_weights_refetched_when_buffer_too_small():
    chip = tpusim.load_config("default", **{"memory.sram.weight_kib": 256,
                                            "memory.sram.input_kib": 256,
                                            "memory.sram.output_kib": 128})
    big = Workload("w", (L(name="fc", op="matmul", m=8192, k=2048, n=2048),))
    row = tpusim.simulate(chip, big).layers.iloc[0]
    compulsory = 8192 * 2048 + 2048 * 2048
    assert row["hbm_read_bytes"] > compulsory
    assert row["weight_passes"] > 1 or row["input_passes"] > 1
    assert "re-fetched" in row["note"]


def test_vector_and_fused_ops():
    layers = (L(name="fc", op="matmul", m=512, k=512, n=512),
              make_layer({"name": "relu", "op": "relu", "elements": 512 * 512, "fused": True}),
              make_layer({"name": "sm", "op": "softmax", "elements": 512 * 512}))
    r = tpusim.simulate("default", Workload("w", layers)).layers
    assert r.loc[1, "cycles"] == 0 and r.loc[1, "hbm_read_bytes"] == 0   # hidden in the fc
    vec = r.loc[2]
    assert vec["compute_cycles"] == 512 * 512 * 5 / 1024   # 5 ops/element, 1024 ops/cycle
    assert vec["bound"] == "vector" and vec["macs"] == 0


def test_batch_scales_work_and_throughput():
    r1 = tpusim.simulate("default", RESNET18)
    r8 = tpusim.simulate("default", RESNET18, batch=8)
    assert r8.summary["macs"] == 8 * r1.summary["macs"]
    assert r8.summary["throughput_per_s"] > r1.summary["throughput_per_s"]
    assert r8.summary["energy_per_inference_j"] == pytest.approx(r8.summary["energy_j"] / 8)


def test_format_forcing_and_unsupported_format():
    r = tpusim.simulate("default", RESNET18, format="bf16")
    assert set(r.layers["format"]) == {"bf16"}
    with pytest.raises(tpusim.InputError) as exc:
        tpusim.simulate("tpu_v1", RESNET18, format="bf16")
    assert "int8" in str(exc.value)
    bf = Workload("w", (L(name="fc", op="matmul", m=8, k=8, n=8, weight_dtype="bf16",
                          act_dtype="bf16"),), source="w.csv")
    with pytest.raises(tpusim.InputError) as exc:
        tpusim.simulate("tpu_v1", bf)
    assert "format=" in str(exc.value)


def test_sram_too_small_for_one_tile():
    chip = tpusim.load_config("tpu_v1", **{"memory.sram.weight_kib": 64})
    with pytest.raises(tpusim.InputError) as exc:
        tpusim.simulate(chip, RESNET18)
    assert "memory.sram.weight_kib" in str(exc.value) and "128 KiB" in str(exc.value)


def test_deterministic_outputs():
    from tpusim.results import layers_csv
    a = tpusim.simulate("tpu_v4", RESNET18)
    b = tpusim.simulate("tpu_v4", RESNET18)
    assert layers_csv(a) == layers_csv(b)
    sa = {k: v for k, v in a.summary.items() if k != "simulator_seconds"}
    sb = {k: v for k, v in b.summary.items() if k != "simulator_seconds"}
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)


@pytest.mark.parametrize("engine", ["analytic", "event"])
def test_total_columns_add_up_to_the_summary(engine):
    """``total_*`` = per instance x count, and they sum to the run's totals; ``time_share``
    sums to 1; a vector op that stays on chip has no intensity (NaN) and ``on_chip``."""
    wl = Workload("t", [L(name="fc", op="matmul", m=64, k=512, n=512, count=3),
                        L(name="act", op="relu", elements=64 * 512, fused=True, count=3),
                        L(name="fc2", op="matmul", m=64, k=512, n=256)])
    r = tpusim.simulate("default", wl, engine=engine)
    d, s = r.layers, r.summary
    assert list(d["total_cycles"]) == pytest.approx(list(d["cycles"] * d["count"]), rel=1e-15)
    assert d["total_cycles"].sum() == pytest.approx(s["total_cycles"], rel=1e-12)
    assert d["total_energy_j"].sum() == pytest.approx(s["energy_j"], rel=1e-12)
    assert d["total_hbm_bytes"].sum() == pytest.approx(s["hbm_bytes"], rel=1e-12)
    assert d["total_energy_j"][0] == pytest.approx(3 * d["energy_pj"][0] * 1e-12, rel=1e-15)
    assert d["time_share"].sum() == pytest.approx(1.0, rel=1e-12)
    on = d["hbm_read_bytes"] + d["hbm_write_bytes"] == 0
    assert on[1] and not on[0]
    assert (d["on_chip"] == on).all() and (d["intensity"].isna() == on).all()
    assert d["intensity"][0] == pytest.approx(d["ops"][0] / (d["hbm_read_bytes"][0]
                                                             + d["hbm_write_bytes"][0]))

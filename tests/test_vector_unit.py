"""The vector unit's lanes model (tpusim/timing/vector.py), its fit (calibrate_vector.py) and the
vector check of ``tpusim validate``, against hand-computed cycles and planted parameters."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tpusim
from tpusim.calibrate_vector import calibrate_vector
from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.measurements import read_measurements
from tpusim.simulator import layer_time
from tpusim.timing.vector import vector_cost
from tpusim.workload import Workload, make_layer

LANES = {"vector.lanes": 128, "vector.sublanes": 8, "vector.cores": 2}


def _vec(op, elements, **kw):
    return make_layer({"name": op, "op": op, "elements": elements, **kw})


def test_hbm_bound_add_by_hand():
    chip = load_config("tpu_v3", **LANES, **{"vector.launch_cycles": 100.0,
                                             "vector.hbm_efficiency": 0.5,
                                             "vector.cycles_per_element": {"add": 0.0}})
    e = 1 << 20
    lt = layer_time(chip, _vec("add", e), "bf16")
    bytes_ = (2 * e + e) * 2          # two bf16 inputs read, one output written
    assert lt.cycles == 100.0 + math.ceil(bytes_ / (chip.hbm_bytes_per_cycle * 0.5) - 1e-6)
    assert lt.overhead_cycles == 100.0


def test_compute_bound_layer_norm_by_hand():
    chip = load_config("tpu_v3", **LANES, **{"vector.launch_cycles": 10.0,
                                             "vector.cycles_per_element": {"layer_norm": 50.0}})
    e = 3 * 1024 + 1                  # 4 registers of 8 x 128, 2 per core
    lt = layer_time(chip, _vec("layer_norm", e), "bf16")
    assert lt.compute_cycles == 2 * 50
    assert lt.cycles == 5 * 10.0 + 100   # five kernels launched, HBM hidden under compute
    # the trace name layernorm is the same function: the fitted entry applies
    assert layer_time(chip, _vec("layernorm", e), "bf16").cycles == lt.cycles


def test_reduced_rows_cost_per_core_by_hand():
    chip = load_config("tpu_v3", **LANES, **{"vector.launch_cycles": 0.0,
                                             "vector.cycles_per_element": {"layer_norm": 1.0},
                                             "vector.row_cycles": {"layer_norm": 3.0}})
    # 64 rows of 1,024: 64 registers and 64 rows, half of each per core
    lt = layer_time(chip, _vec("layer_norm", 64 * 1024, n=1024), "bf16")
    assert lt.compute_cycles == 32 * 1 + 32 * 3
    # without a last axis the op is one row
    assert layer_time(chip, _vec("layer_norm", 64 * 1024), "bf16").compute_cycles == 32 + 3


def test_unfitted_function_costs_its_ops_per_element():
    chip = load_config("tpu_v3", **LANES)
    c = vector_cost(chip, "gelu", 4096, 4096 * 8.0, 8.0)
    assert c.compute_cycles == 2 * 8 and c.launch_cycles == chip.timing.overhead_cycles_per_op


def test_configs_without_lanes_keep_the_ops_model():
    chip = load_config("tpu_v3")
    layer = _vec("add", 100_000)
    lt = layer_time(chip, layer, "bf16")
    assert lt.compute_cycles == math.ceil(100_000 / chip.vector.ops_per_cycle)
    assert lt.overhead_cycles == chip.timing.overhead_cycles_per_op
    assert lt.hbm_cycles == pytest.approx(2 * 100_000 * 2 / chip.hbm_bytes_per_cycle)


@pytest.mark.parametrize("fused", [False, True])
def test_columnar_agrees_on_the_lanes_model(fused):
    chip = load_config("tpu_v4")
    rows = [{"name": "mm", "op": "matmul", "m": 512, "k": 1024, "n": 1024},
            {"name": "ln", "op": "layernorm", "elements": 512 * 1024, "fused": fused},
            {"name": "act", "op": "sigmoid", "elements": 7000, "count": 3},
            {"name": "res", "op": "add", "elements": 1 << 22}]
    wl = Workload("w", tuple(make_layer(r) for r in rows))
    ref = tpusim.simulate(chip, wl, core="reference")
    col = tpusim.simulate(chip, wl)
    assert ref.summary["latency_s"] == col.summary["latency_s"]
    assert list(ref.layers["cycles"]) == list(col.layers["cycles"])
    assert list(ref.layers.dtypes) == list(col.layers.dtypes)


def _synthetic(tmp_path, chip, n_per=12):
    """Kernels timed by ``chip`` (planted parameters): the fit must find them again."""
    lines = ["op,shape,elements,dtype,latency_us"]
    rng = np.random.default_rng(1)
    for op in ("add", "relu", "layer_norm", "sigmoid"):
        # rows < last: the last axis is also the longest (the reader's lane axis either way)
        for rows, last in zip(rng.integers(1, 500, n_per), rng.choice([512, 1024, 4096], n_per)):
            e = int(rows * last)
            us = layer_time(chip, _vec(op, e, n=int(last)), "fp16").cycles / (chip.clock_ghz * 1e3)
            lines.append(f"{op},{rows}x{last},{e},float16,{us:.6f}")
    p = tmp_path / "vec.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_fit_recovers_planted_parameters(tmp_path):
    planted = load_config("tpu_v4", **{"vector.launch_cycles": 700.0,
                                       "vector.hbm_efficiency": 0.4,
                                       "vector.cycles_per_element": {"layer_norm": 60.0,
                                                                     "sigmoid": 80.0,
                                                                     "add": 0.0, "relu": 0.0},
                                       "vector.row_cycles": {"layer_norm": 20.0}})
    cal = calibrate_vector("tpu_v4", _synthetic(tmp_path, planted), folds=3)
    v = cal.values
    assert v["vector.launch_cycles"] == pytest.approx(700, rel=0.02)
    # add and relu are HBM-bound: their time fixes the streams' rate only from one side (a
    # free cycles-per-register can take over), so the efficiency must reach at least 0.4
    assert v["vector.hbm_efficiency"] >= 0.4 * 0.98
    assert v["vector.cycles_per_element.layer_norm"] == pytest.approx(60, rel=0.02)
    assert v["vector.cycles_per_element.sigmoid"] == pytest.approx(80, rel=0.02)
    assert v["vector.row_cycles.layer_norm"] == pytest.approx(20, rel=0.05)
    assert cal.stats["cv"]["median"] < 0.01


def test_measurement_shapes_and_the_linear_activation(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("op,shape,elements,dtype,latency_us,n_repeats,source_path\n"
                 "linear,8x16,128,float16,0.9,20,x.csv\nadd,4x4,,float16,1.0,20,x.csv\n")
    ms = read_measurements(p)
    assert [r.layer.op for r in ms.rows] == ["identity", "add"]
    assert [r.layer.elements for r in ms.rows] == [128, 16]
    assert [r.layer.n for r in ms.rows] == [16, 4]   # the longest axis of the shape
    p.write_text("op,shape,latency_us\nrelu,64x8,0.9\nlayer_norm,64x8,5.0\n")
    # an elementwise op's rows run along its longest axis, a reduction's along its last
    assert [r.layer.n for r in read_measurements(p).rows] == [64, 8]
    p.write_text("op,shape,elements,latency_us\nrelu,8x16,100,0.9\n")
    with pytest.raises(InputError, match="line 2, column elements.*product of shape 8x16"):
        read_measurements(p)


def test_validate_scores_the_preset_on_a_file_it_was_not_fitted_on(tmp_path):
    from tpusim.fidelity_vector import split_measurements
    p = tmp_path / "held_out.csv"
    # shapes the shipped fit never saw (its fingerprints: relu 4096 and add 64x128 it did)
    p.write_text("op,shape,elements,dtype,latency_us\nrelu,4000,4000,float16,0.95\n"
                 "add,60x100,6000,float16,1.06\n")
    gemm, rows = split_measurements([p])
    assert gemm is None and [r["status"] for r in rows] == ["ok", "ok"]
    assert all("out of sample" in r["note"] for r in rows)
    assert all(abs(r["error"]) < 0.2 for r in rows)
    # a fitted kernel among them: shown in-sample, and too few kernels to cross-validate
    p.write_text("op,shape,elements,dtype,latency_us\nrelu,4096,4096,float16,0.95\n"
                 "add,60x100,6000,float16,1.06\n")
    _, rows = split_measurements([p])
    assert [r["status"] for r in rows[:2]] == ["in-sample", "ok"]
    assert rows[2]["status"].startswith("skipped: 2 kernels")


def test_calibrate_cli_vector_file_bad_input_and_output(tmp_path):
    from .conftest import run_cli
    m = tmp_path / "vec.csv"
    m.write_text("op,shape,latency_us\nrelu,4096,0.9\nadd,64x64,1.0\nrelu,8x8,0.9\n"
                 "add,128x128,1.3\n")
    out = tmp_path / "fit.yaml"
    code, _, err = run_cli("calibrate", "tpu_v3", m, "--out", out, "--folds", "2")
    assert code == 2 and "vector.lanes" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("calibrate", "tpu_v4", m, "--out", out, "--fit", "timing.issue_efficiency")
    assert code == 2 and "--fit" in err and not out.exists()
    code, text, err = run_cli("calibrate", "tpu_v4", m, "--out", out, "--folds", "2")
    assert code == 0, err
    chip = load_config(out)
    assert chip.vector.lanes == 128 and "relu" in chip.vector.cycles_per_element
    assert "tpusim-calibrate-vector:" in out.read_text().splitlines()[6]


def test_tpu_v4_vector_stream_counts_the_hbm_efficiency_once():
    # The vector fit on the measured TPU v4 kernels (configs/tpu_v4.yaml header) found HBM-bound
    # elementwise ops streaming at 0.28 of the raw 1.2 TB/s. The vector stream runs at
    # memory.hbm.efficiency x vector.hbm_efficiency of the channel, so a preset whose vector
    # section was fitted on a base without the GEMM-fitted memory.hbm.efficiency (0.45) streams
    # at 0.45 x 0.28 = 0.125: 2.2x slow on every large elementwise op.
    chip = load_config("tpu_v4")
    e = 1 << 26                                   # 64 Mi fp16 elements: HBM-bound by far
    lt = layer_time(chip, _vec("identity", e), "fp16")
    bytes_ = 2 * e * 2                            # one fp16 input read, one output written
    stream_s = (lt.cycles - lt.overhead_cycles) / (chip.clock_ghz * 1e9)
    assert bytes_ / stream_s / 1.2e12 == pytest.approx(0.28, rel=0.03)


def test_validate_tells_fitted_kernels_by_fingerprint_and_honours_calibrated(tmp_path):
    # The vector check reads --calibrated (not the shipped preset), and a kernel the fit used
    # is in-sample wherever it comes: here a copy of the fit's file with a comment line (another
    # sha256) and one new kernel; only the new kernel is scored on the preset, and the file is
    # cross-validated with the recipe's folds.
    from .conftest import run_cli
    from tpusim.fidelity_vector import split_measurements
    planted = load_config("tpu_v4", **{"vector.launch_cycles": 700.0})
    fit = _synthetic(tmp_path, planted)
    out = tmp_path / "fit.yaml"
    code, _, err = run_cli("calibrate", "tpu_v4", fit, "--out", out, "--folds", "3")
    assert code == 0, err
    copy = tmp_path / "copy.csv"
    lines = fit.read_text().splitlines()
    copy.write_text("\n".join(["# a copy", *lines, "relu,7x3000,21000,float16,1.0"]) + "\n")
    _, rows = split_measurements([copy], out)
    preset = [r for r in rows if r["metric"] == "latency (fit preset)"]
    assert [r["status"] for r in preset] == ["in-sample"] * (len(lines) - 1) + ["ok"]
    cv = [r for r in rows if "3-fold CV" in r["metric"]]
    assert len(cv) == len(lines) and all(r["status"] == "ok" for r in cv)
    # the shipped preset never saw these kernels: every one scored on it, none cross-validated
    _, shipped = split_measurements([copy])
    assert {r["status"] for r in shipped} == {"ok"} and len(shipped) == len(lines)


def test_a_file_of_matmuls_and_vector_ops_is_refused_by_both_fits(tmp_path):
    from .conftest import run_cli
    m = tmp_path / "mixed.csv"
    m.write_text("op,m,k,n,shape,latency_us\nmatmul,128,128,128,,2.0\nmatmul,256,128,128,,2.5\n"
                 "relu,,,,4096,0.9\n")
    code, _, err = run_cli("calibrate", "tpu_v4", m, "--out", tmp_path / "o.yaml",
                           "--folds", "2")
    assert code == 2 and "line 4" in err and "mixes matmuls and vector ops" in err
    assert not (tmp_path / "o.yaml").exists()
    code, _, err = run_cli("validate", "--no-pods", "--measurements", m, "--out", tmp_path / "v")
    assert code == 2 and "mixes matmuls and vector ops" in err


@pytest.mark.parametrize("record", ['{"folds": "x"}', '{"set": 5}', '[1, 2]'])
def test_a_damaged_vector_record_is_one_line(tmp_path, record):
    from tpusim.fidelity_vector import vector_recipe
    p = tmp_path / "v.yaml"
    p.write_text(f"# tpusim-calibrate-vector: {record}\nname: v\n")
    with pytest.raises(InputError, match="damaged tpusim-calibrate-vector record"):
        vector_recipe(p)

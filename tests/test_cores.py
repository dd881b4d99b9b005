"""Multi-core chips (tpusim/cores.py): how a GEMM is split between the cores, the bytes that
crossing HBM once per core adds, one core timed as a chip of its own, and the cost per wave of
output tiles. Expected numbers are worked out by hand from the shapes."""
from __future__ import annotations

import pytest

import tpusim
from tpusim.config import load_config
from tpusim.cores import core_chip, share, split_gemm
from tpusim.errors import InputError
from tpusim.simulator import layer_time
from tpusim.timing.systolic import output_waves
from tpusim.workload import Workload, make_layer

# tpu_v4's published structure without its fitted fields: 2 cores x 4 MXUs of 128x128, bf16
FLAT = {"timing.wave_cycles": 0, "memory.hbm.efficiency": 1.0, "timing.overhead_cycles_per_op": 0}


def _mm(m, k, n, **kw):
    return make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n, **kw})


def _hbm(chip, layer):
    s = tpusim.simulate(chip, Workload("one", (layer,)), format="bf16", core="reference").summary
    c = tpusim.simulate(chip, Workload("one", (layer,)), format="bf16").summary
    assert s["hbm_bytes"] == c["hbm_bytes"] and s["total_cycles"] == c["total_cycles"]
    return s["hbm_bytes"]


def test_the_split_follows_the_larger_of_m_and_n_in_whole_tiles():
    assert share(640, 128, 2) == 384          # 5 tiles: 3 on the busiest core
    assert share(1024, 128, 2) == 512
    assert share(1000, 8, 2) == 504           # 125 steps of 8 rows: 63 on the busiest core
    assert share(100, 128, 2) == 50           # one tile or less: halved
    chip = load_config("tpu_v4")
    sp = split_gemm(_mm(1024, 256, 512), chip)
    assert (sp.layer.m, sp.layer.n) == (512, 512) and (sp.weight, sp.input) == (2.0, 2.0)
    sp = split_gemm(_mm(256, 256, 640), chip)
    assert (sp.layer.m, sp.layer.n) == (256, 384) and sp.input == 2.0
    assert sp.weight == pytest.approx(640 / 384)
    sp = split_gemm(_mm(512, 256, 512), chip)     # a tie splits m
    assert (sp.layer.m, sp.layer.n) == (256, 512)
    one = load_config("tpu_v4", **{"array.cores": 1})
    assert split_gemm(_mm(1024, 256, 512), one).layer == _mm(1024, 256, 512)


def test_the_other_operand_crosses_hbm_once_per_core():
    two = load_config("tpu_v4", **FLAT)
    one = load_config("tpu_v4", **FLAT, **{"array.cores": 1})
    b = 2   # bf16
    # m split: the weights (k x n) are read by both cores
    m, k, n = 1024, 256, 512
    assert _hbm(one, _mm(m, k, n)) == (m * k + k * n + m * n) * b
    assert _hbm(two, _mm(m, k, n)) == (m * k + 2 * k * n + m * n) * b
    # n split: the input (m x k) is read by both cores
    m, k, n = 256, 512, 1024
    assert _hbm(two, _mm(m, k, n)) == (2 * m * k + k * n + m * n) * b
    # independent GEMMs are dealt out whole: nothing is read twice
    g = _mm(256, 128, 256, batch=4, weights="dynamic")
    assert g.groups == 4
    assert _hbm(two, g) == _hbm(one, g)


def test_the_busiest_core_is_timed_as_a_chip_of_its_own():
    """2 cores x 4 arrays running m = 1024 take what one 4-array core with half the bandwidth
    and half the buffers takes for m = 512 (and the same weights)."""
    two = load_config("tpu_v4", **FLAT)
    s, h = two.memory.sram, two.memory.hbm
    alone = load_config("tpu_v4", **FLAT, **{
        "array.cores": 1, "array.count": 4, "memory.hbm.bandwidth_gbps": h.bandwidth_gbps / 2,
        "memory.sram.input_kib": s.input_kib / 2, "memory.sram.weight_kib": s.weight_kib / 2,
        "memory.sram.output_kib": s.output_kib / 2})
    assert core_chip(two).array.count == 4
    assert core_chip(two).hbm_bytes_per_cycle == alone.hbm_bytes_per_cycle
    for m, k, n in ((1024, 1024, 512), (2048, 256, 1024)):
        whole = layer_time(two, _mm(m, k, n), "bf16")
        half = layer_time(alone, _mm(m // 2, k, n), "bf16")
        assert whole.cycles == half.cycles and whole.compute_cycles == half.compute_cycles
    # flat: 8 arrays of one core share the rows of one GEMM; two cores give the same compute
    flat = load_config("tpu_v4", **FLAT, **{"array.cores": 1})
    assert layer_time(flat, _mm(1024, 1024, 512), "bf16").compute_cycles == \
        layer_time(two, _mm(1024, 1024, 512), "bf16").compute_cycles


def test_each_wave_of_output_tiles_pays_the_wave_cost_once():
    chip = load_config("tpu_v4", **FLAT)
    # m = 1024 split to 512 per core: 4 x 5 = 20 output tiles on 4 MXUs = 5 waves
    part = split_gemm(_mm(1024, 1024, 640), chip).layer
    assert output_waves(part, core_chip(chip)) == 5
    # 7 x 8 tiles of a flat 8-array chip: 7 waves
    flat = load_config("tpu_v4", **FLAT, **{"array.cores": 1})
    assert output_waves(_mm(1024, 256, 896), flat) == 7
    # a compute-bound kernel: the cost adds serially, exactly waves x wave_cycles
    mm = _mm(1024, 4096, 640)
    base = layer_time(chip, mm, "bf16")
    more = layer_time(load_config("tpu_v4", **{**FLAT, "timing.wave_cycles": 100}), mm, "bf16")
    assert base.hbm_cycles < base.compute_cycles
    assert more.cycles - base.cycles == 5 * 100
    assert more.fill_drain_cycles - base.fill_drain_cycles == 5 * 100


def test_cores_must_divide_the_arrays(cli, tmp_path):
    with pytest.raises(InputError, match="array.cores: 3 does not divide array.count"):
        load_config("tpu_v4", **{"array.cores": 3})
    code, out, err = cli("run", "tpu_v4", "resnet18", "--set", "array.cores=3",
                         "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "array.count (8)" in err
    assert not (tmp_path / "r").exists()


def test_presets_name_their_cores():
    got = {p: load_config(p).array.cores for p in ("tpu_v4", "tpu_v5p", "tpu_v5e", "tpu_v6e")}
    assert got == {"tpu_v4": 2, "tpu_v5p": 2, "tpu_v5e": 1, "tpu_v6e": 1}
    assert load_config("default").array.cores == 1    # no field: one flat set of arrays

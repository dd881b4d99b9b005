"""Swappable energy and area tables: a table installed with ``tables.use`` changes energy and
area exactly as the closed forms say, and only while it is installed."""
from __future__ import annotations

import pytest

import tpusim
from tpusim import tables
from tpusim.area import mac_area_um2, sram_area_mm2
from tpusim.config import HbmConfig, load_config
from tpusim.energy import mac_pj, sram_pj_per_bit_45nm, vector_op_pj
from tpusim.errors import InputError
from tpusim.formats import get_format
from tpusim.offchip import offchip_pj_per_bit
from tpusim.workload import Workload, make_layer


def gemm(m=256, k=256, n=256):
    return Workload("g", (make_layer({"name": "g", "op": "matmul", "m": m, "k": k, "n": n,
                                      "weight_dtype": "int8", "act_dtype": "int8"}),))


def test_mac_energy_follows_the_table_and_reverts():
    """default runs at 7 nm: one int8 MAC = table pJ x 7/45; 256^3 MACs."""
    macs = 256 ** 3
    before = tpusim.simulate("default", gemm()).layers["mac_energy_pj"][0]
    assert before == pytest.approx(macs * (0.2 + 0.1) * 7 / 45)
    with tables.use(tables.DEFAULT.replace(mac_pj_45nm={"int8": 4.5})) as t:
        assert t.mac_pj_45nm["bf16"] == tables.DEFAULT.mac_pj_45nm["bf16"]   # merged
        assert get_format("int8").mac_pj_45nm == 4.5
        after = tpusim.simulate("default", gemm()).layers["mac_energy_pj"][0]
        assert after == pytest.approx(macs * 4.5 * 7 / 45)
        # fp32 on default is 6 bf16 passes: unchanged by an int8 entry.
        chip = load_config("default")
        assert mac_pj(chip, "fp32") == pytest.approx(6 * tables.DEFAULT.mac_pj_45nm["bf16"]
                                                     * 7 / 45)
    assert tpusim.simulate("default", gemm()).layers["mac_energy_pj"][0] == before


def test_sram_vector_and_offchip_entries():
    flat = tables.DEFAULT.replace(sram_pj_per_bit_45nm=[(1024, 0.5), (1 << 20, 0.5)],
                                  vector_op_pj_45nm=9.0, offchip_pj_per_bit={"HBM2": 10.0})
    with tables.use(flat):
        # A flat table interpolates to its one value at every size.
        assert sram_pj_per_bit_45nm(3000) == pytest.approx(0.5)
        assert sram_pj_per_bit_45nm(1 << 24) == pytest.approx(0.5)
        assert vector_op_pj(load_config("default")) == pytest.approx(9.0 * 7 / 45)
        assert offchip_pj_per_bit("HBM2e") == 10.0
        assert HbmConfig(kind="HBM2", bandwidth_gbps=1).energy_pj_per_bit == 10.0
        row = tpusim.simulate("default", gemm()).layers.iloc[0]
        sram_bytes = row["sram_input_bytes"] + row["sram_weight_bytes"] + row["sram_output_bytes"]
        assert row["sram_energy_pj"] == pytest.approx(8 * sram_bytes * 0.5 * 7 / 45)
    # CACTI default: 0.27 pJ/bit at 32 KiB exactly.
    assert sram_pj_per_bit_45nm(32 * 1024) == pytest.approx(0.27)


def test_area_follows_the_cell_table():
    """int8 PE at 45 nm: 64 multiplier + 32 accumulator full adders and 3 x 8 + 32 flip-flops,
    over 70% placement utilisation (area.py's cell count)."""
    fa, ff = 4.256, 4.522
    assert mac_area_um2("int8") == pytest.approx((96 * fa + 56 * ff) / 0.7)
    with tables.use(tables.DEFAULT.replace(cell_um2={"full_adder": 10.0},
                                           logic_utilization=1.0, sram_bitcell_um2=1.0,
                                           sram_array_efficiency=0.5)):
        assert mac_area_um2("int8") == pytest.approx(96 * 10.0 + 56 * ff)
        assert sram_area_mm2(1) == pytest.approx(8192 * 2.0 / 1e6)   # 1 KiB = 8192 bits
    assert sram_area_mm2(1) == pytest.approx(8192 * 0.346 / 0.7 / 1e6)


def test_table_file_partial_and_bad(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("mac_pj_45nm: {int8: 1.5}\nsram_pj_per_bit_45nm: [[1024, 1], [4096, 4]]\n")
    t = tables.load(good)
    assert t.name == "mine" and t.mac_pj_45nm["int8"] == 1.5
    assert t.mac_pj_45nm["fp32"] == tables.DEFAULT.mac_pj_45nm["fp32"]
    with tables.use(good):
        assert sram_pj_per_bit_45nm(2048) == pytest.approx(2.0)   # log-log midpoint of 1 -> 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("mac_pj_45nm: {int8: -1}\n")
    with pytest.raises(InputError, match=r"bad.yaml: mac_pj_45nm.int8: got -1; a finite number"):
        tables.load(bad)
    bad.write_text("sram_pj: 1\n")
    with pytest.raises(InputError, match="sram_pj: .*allowed: mac_pj_45nm"):
        tables.load(bad)
    missing = tables.Tables(**{**tables.DEFAULT.__dict__, "mac_pj_45nm": {}, "name": "empty"})
    with tables.use(missing), pytest.raises(InputError, match="mac_pj_45nm.int8"):
        get_format("int8").mac_pj_45nm


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sweep_runs_under_the_callers_table(tmp_path, jobs):
    """Worker processes start with the default table; the sweep hands them the caller's, and a
    resumed sweep under another table recomputes instead of reusing the old energies."""
    from tpusim.sweeps import sweep

    wl = gemm()
    axes = {"array.rows": [64, 128]}
    out = tmp_path / "s"
    base = sweep("default", wl, axes, jobs=jobs, out_dir=out, html=False)
    assert base.attrs["computed"] == 2
    with tables.use(tables.DEFAULT.replace(mac_pj_45nm={"int8": 3.0})):
        swapped = sweep("default", wl, axes, jobs=jobs, out_dir=out, html=False)
    assert swapped.attrs["computed"] == 2 and swapped.attrs["reused"] == 0
    macs = 256 ** 3
    mac_j = swapped["energy_breakdown_j.mac"] - base["energy_breakdown_j.mac"]
    assert list(mac_j) == pytest.approx([macs * (3.0 - 0.3) * 7 / 45 * 1e-12] * 2)
    again = sweep("default", wl, axes, jobs=jobs, out_dir=out, html=False)
    assert list(again["energy_j"]) == list(base["energy_j"])

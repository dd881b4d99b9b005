"""Area model: PE cell counts by hand, cell areas, node scaling table, SRAM and chip area."""
from __future__ import annotations

import math

import pytest

from tpusim import load_config
from tpusim.area import (AREA_CONSTANTS, NODE_AREA_SCALE, area_scale, chip_area, mac_area_um2,
                         pe_area, pe_cells, sram_area_mm2)
from tpusim.errors import InputError

FA, DFF, MUX, XNOR = 4.256, 4.522, 1.862, 1.596  # Nangate 45 nm FA_X1, DFF_X1, MUX2_X1, XNOR2_X1
UTIL = 0.7


def test_int8_pe_by_hand():
    # 8x8 multiplier: 64 FA; int32 accumulator adder: 32 FA; registers: 3 x 8 + 32 = 56 DFF
    assert pe_cells("int8") == {"multiplier": {"full_adder": 64},
                                "accumulator_adder": {"full_adder": 32},
                                "registers": {"flip_flop": 56}}
    assert mac_area_um2("int8", 45) == pytest.approx((96 * FA + 56 * DFF) / UTIL)


def test_bf16_pe_by_hand():
    # (7+1)^2 = 64 FA multiplier; 8+1 FA exponent adder; fp32 significand W = 24 bits:
    # shifters 24 x ceil(log2 24) = 120 muxes each; exponent compare 9 FA, adjust 8 FA;
    # accumulator adder 25 FA; registers 3 x 16 + 32 = 80 DFF
    cells = pe_cells("bf16")
    assert cells == {"multiplier": {"full_adder": 64}, "exponent_adder": {"full_adder": 9},
                     "alignment": {"mux2": 120, "full_adder": 9},
                     "normalisation": {"mux2": 120, "full_adder": 8},
                     "accumulator_adder": {"full_adder": 25}, "registers": {"flip_flop": 80}}
    fas = 64 + 9 + 9 + 8 + 25
    assert pe_area("bf16").full_adders == fas
    assert mac_area_um2("bf16") == pytest.approx((fas * FA + 240 * MUX + 80 * DFF) / UTIL)


def test_binary_pe_is_an_xnor():
    cells = pe_cells("binary")
    assert cells["multiplier"] == {"xnor2": 1}
    assert mac_area_um2("binary") == pytest.approx((XNOR + 32 * FA + 35 * DFF) / UTIL)


def test_area_ordering_across_formats():
    order = ["fp32", "fp16", "bf16", "fp8_e4m3", "int8", "int4", "binary"]
    areas = [mac_area_um2(f, 7) for f in order]
    assert all(a > b for a, b in zip(areas, areas[1:])), dict(zip(order, areas))
    mult = {f: pe_area(f).parts_um2["multiplier"] for f in order}
    assert mult["fp32"] > mult["fp16"] > mult["bf16"] == mult["int8"] > mult["int4"] > \
        mult["binary"]
    # an fp8 MAC is bigger than an int8 one despite its smaller multiplier (van Baalen 2023)
    assert mult["fp8_e4m3"] < mult["int8"] and areas[3] > areas[4]


def test_node_table_and_interpolation():
    assert area_scale(45) == 1.0 and area_scale(7) == pytest.approx(0.059)
    assert area_scale(180) == pytest.approx(19) and area_scale(16) == pytest.approx(0.19)
    nodes = sorted(NODE_AREA_SCALE)
    vals = [area_scale(n) for n in nodes]
    assert all(a < b for a, b in zip(vals, vals[1:]))  # smaller node, smaller area
    # 28 nm: log-log between 20 nm (0.21) and 32 nm (0.46)
    assert 0.21 < area_scale(28) < 0.46
    t = math.log(28 / 32) / math.log(20 / 32)
    assert area_scale(28) == pytest.approx(0.46 * (0.21 / 0.46) ** t)
    assert mac_area_um2("int8", 7) == pytest.approx(0.059 * mac_area_um2("int8", 45))


@pytest.mark.parametrize("node", [5, 3, 181, 1000, "seven"])
def test_node_outside_table_is_input_error(node):
    with pytest.raises(InputError, match="covers 7-180 nm"):
        area_scale(node, "chip.yaml")


def test_sram_area_by_hand():
    # 1 MiB at 45 nm: 8 Mi bits x 0.346 um^2 / 0.7 efficiency
    assert AREA_CONSTANTS["sram_bitcell_um2"].value == 0.346
    assert sram_area_mm2(1024, 45) == pytest.approx(8 * 2 ** 20 * 0.346 / 0.7 / 1e6)
    assert sram_area_mm2(1024, 7) == pytest.approx(0.059 * sram_area_mm2(1024, 45))


def test_chip_area_is_arrays_plus_sram():
    chip = load_config("tpu_v1")  # 256x256 int8, 28 nm, 24 MiB + 256 KiB + 4 MiB SRAM
    a = chip_area(chip, "int8")
    assert a.array_mm2 == pytest.approx(256 * 256 * mac_area_um2("int8", 28) / 1e6)
    assert a.sram_mm2 == pytest.approx(sram_area_mm2(24576 + 256 + 4096, 28))
    assert a.total_mm2 == pytest.approx(a.array_mm2 + a.sram_mm2)
    # the model counts cells only, so it must stay below TPUv1's whole die (< 331 mm^2,
    # Jouppi 2017) while its SRAM (~29 MiB) is a large share of it
    assert 10 < a.total_mm2 < 331
    packed = chip_area(chip, "int8", macs_per_pe=2)
    assert packed.array_mm2 == pytest.approx(2 * a.array_mm2)


def test_a_rate_below_one_is_a_slower_pe_not_a_smaller_array():
    # tpu_v4's fp16 rate (0.59, fitted) is one MAC per PE taking longer than a cycle: the fp16
    # array still holds 8 x 128 x 128 PEs of one fp16 MAC each; a rate above 1 packs MACs
    from tpusim.area import hardware_area
    chip = load_config("tpu_v4")
    assert chip.formats["fp16"].rate < 1
    a = hardware_area(chip, "fp16")
    assert a.macs_per_pe == 1
    assert a.array_mm2 == pytest.approx(chip.pes * mac_area_um2("fp16", chip.energy.node_nm,
                                                               chip.name) / 1e6)
    v5e = load_config("tpu_v5e")            # int8 rate 2: two int8 MACs per PE
    assert hardware_area(v5e, "int8").macs_per_pe == 2


def test_the_formats_table_reports_the_area_a_run_does():
    from tpusim.area import hardware_area
    from tpusim.format_report import format_rows
    chip = load_config("tpu_v4")
    row = {r["format"]: r for r in format_rows(chip, ["fp16", "bf16"])}["fp16"]
    hw = hardware_area(chip, "fp16")
    assert row["macs_per_pe"] == 1 and row["array_area_mm2"] == pytest.approx(hw.array_mm2)

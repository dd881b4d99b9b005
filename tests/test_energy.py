"""Energy model: node scaling, CACTI SRAM fit, off-chip kinds, MAC energy per format and a layer's
energy by hand."""
from __future__ import annotations

import pytest

from tpusim import load_config
from tpusim.config import HbmConfig
from tpusim.energy import (OFFCHIP_PJ_PER_BIT, layer_energy, mac_pj, native_mac_pj, node_scale,
                           offchip_pj_per_bit, sram_pj_per_bit, sram_pj_per_bit_45nm,
                           vector_op_pj)
from tpusim.errors import InputError
from tpusim.formats import FORMATS


def test_node_scale_linear_within_table_range():
    assert node_scale(45) == 1.0 and node_scale(7) == pytest.approx(7 / 45)
    assert node_scale(180) == pytest.approx(4.0)
    for bad in (5, 181):
        with pytest.raises(InputError, match="energy.node_nm: got .*covers 7-180 nm"):
            node_scale(bad, "chip.yaml")


def test_sram_fit_passes_through_cacti_points():
    # CACTI 7 at 45 nm (Balasubramonian et al., TACO 2017, via Accelergy's plug-in): 8 KiB 0.096, 32 KiB 0.27, 1 MiB 0.98 pJ/bit
    for kib, pj in ((8, 0.096), (32, 0.27), (1024, 0.98)):
        assert sram_pj_per_bit_45nm(kib * 1024) == pytest.approx(pj)
    sizes = [1, 4, 8, 16, 32, 256, 1024, 4096]
    e = [sram_pj_per_bit_45nm(s * 1024) for s in sizes]
    assert all(a < b for a, b in zip(e, e[1:]))
    chip = load_config("default")  # 7 nm, 1 MiB banks
    assert sram_pj_per_bit(chip, 16384) == pytest.approx(0.98 * 7 / 45)


def test_offchip_kinds_cited_and_usable_by_configs():
    assert OFFCHIP_PJ_PER_BIT == {"DDR3": 70.0, "LPDDR4": 8.0, "HBM2": 3.9, "HBM3": 4.0}
    assert offchip_pj_per_bit("hbm3") == 4.0 and offchip_pj_per_bit("HBM2e") == 3.9
    with pytest.raises(InputError, match="GDDR6.*DDR3\\|LPDDR4\\|HBM2\\|HBM3"):
        offchip_pj_per_bit("GDDR6", "chip.yaml")
    # a config that names only the kind gets its figure; explicit values are kept
    assert HbmConfig(kind="LPDDR4", bandwidth_gbps=25.6).energy_pj_per_bit == 8.0
    assert HbmConfig(kind="DDR3", bandwidth_gbps=34, energy_pj_per_bit=50).energy_pj_per_bit == 50
    assert load_config("tpu_v1").memory.hbm.energy_pj_per_bit == 70
    chip = load_config("tpu_v4", **{"memory.hbm.kind": "HBM3",
                                    "memory.hbm.energy_pj_per_bit": None})
    assert chip.memory.hbm.energy_pj_per_bit == 4.0


def test_mac_energy_per_format_on_a_chip():
    chip = load_config("default")  # 7 nm; fp32 = 6 bf16 passes, fp16 = 3
    s = 7 / 45
    assert mac_pj(chip, "int8") == pytest.approx((0.2 + 0.1) * s)
    assert mac_pj(chip, "fp32") == pytest.approx(6 * mac_pj(chip, "bf16"))
    assert mac_pj(chip, "fp16") == pytest.approx(3 * mac_pj(chip, "bf16"))
    assert native_mac_pj(chip, "fp32") == pytest.approx((3.7 + 0.9) * s)
    custom = load_config("default", **{"energy.mac_pj": {"int8": 0.01}})
    assert mac_pj(custom, "int8") == 0.01
    order = ["fp32", "fp16", "bf16", "fp8_e4m3", "int8", "int4", "binary"]
    e = [native_mac_pj(chip, f) for f in order]
    assert all(a > b for a, b in zip(e, e[1:]))


def test_layer_energy_by_hand():
    chip = load_config("default", **{"energy.sram_pj_per_bit": 1.0, "energy.vector_op_pj": 0.5,
                                     "energy.static_w": 2.0})
    en = layer_energy(chip, FORMATS["int8"], macs=10, vector_ops=4, sram_input_bytes=1,
                      sram_weight_bytes=2, sram_output_bytes=3, hbm_bytes=5, latency_s=1e-6)
    assert en.mac_pj == pytest.approx(10 * 0.3 * 7 / 45)
    assert en.vector_pj == pytest.approx(4 * 0.5) and vector_op_pj(chip) == 0.5
    assert en.sram_pj == pytest.approx(8 * 6 * 1.0)
    assert en.hbm_pj == pytest.approx(8 * 5 * 3.9)
    assert en.static_pj == pytest.approx(2.0 * 1e-6 * 1e12)
    assert en.total_pj == pytest.approx(en.mac_pj + 2 + 48 + 156 + 2e6)

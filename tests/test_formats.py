"""The format registry and `tpusim formats`: widths, Dean's multiplier counts, Horowitz energies,
peak rates per format, the table and page the command writes, and its one-line errors."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import tpusim
from tpusim import load_config
from tpusim.errors import InputError
from tpusim.formats import (ACCUMULATORS, CONSTANTS, FORMAT_NAMES, FORMATS, Constant,
                            accumulator_of, datapath_format, get_format)

SPEC_COLUMNS = ["format", "bits", "multiplier_full_adders", "mac_area_um2", "mac_energy_pj",
                "array_area_mm2", "peak_tops", "tops_per_mm2", "tops_per_w", "gemm_rel_error"]


def test_registry_is_complete():
    assert set(FORMAT_NAMES) == {"int8", "int4", "bf16", "fp16", "fp32", "fp8_e4m3", "fp8_e5m2",
                                 "binary", "ternary"}
    for f in FORMATS.values():
        assert f.bytes_per_element == f.bits / 8
        assert f.accumulator in ACCUMULATORS
        assert accumulator_of(f).bits == f.accumulator_bits
        if f.kind == "float":  # sign + exponent + mantissa fill the word
            assert 1 + f.exponent_bits + f.mantissa_bits == f.bits
            assert f.accumulator == "fp32"
        else:
            assert f.accumulator == "int32"
    # IEEE / OCP splits, by hand
    assert [(FORMATS[n].exponent_bits, FORMATS[n].mantissa_bits) for n in
            ("fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2")] == [(8, 23), (5, 10), (8, 7),
                                                                 (4, 3), (5, 2)]
    assert FORMATS["binary"].bits == 1 and FORMATS["int4"].bytes_per_element == 0.5


def test_multiplier_full_adders_follow_dean_2020():
    # Dean 2020: (M+1)^2 full adders -- fp32 576, fp16 121, bf16 64, fp8 E4M3 16; ints n^2
    got = {n: FORMATS[n].multiplier_full_adders for n in FORMAT_NAMES}
    assert got == {"fp32": 576, "fp16": 121, "bf16": 64, "fp8_e4m3": 16, "fp8_e5m2": 9,
                   "int8": 64, "int4": 16, "binary": 1, "ternary": 1}


def test_mac_energy_anchored_on_horowitz_and_ordered():
    # Horowitz 2014 at 45 nm: int8 mult 0.2 + int32 add 0.1; fp32 mult 3.7 + fp32 add 0.9;
    # fp16 mult 1.1 + fp32 add 0.9
    assert FORMATS["int8"].mac_pj_45nm == pytest.approx(0.3)
    assert FORMATS["fp32"].mac_pj_45nm == pytest.approx(4.6)
    assert FORMATS["fp16"].mac_pj_45nm == pytest.approx(2.0)
    order = ["fp32", "fp16", "bf16", "fp8_e4m3", "int8", "int4", "binary"]
    e = [FORMATS[n].mac_pj_45nm for n in order]
    assert all(a > b for a, b in zip(e, e[1:])), dict(zip(order, e))
    # van Baalen et al. 2023: an FP8 MAC costs 50-180% more than an int8 one
    for n in ("fp8_e4m3", "fp8_e5m2"):
        assert 1.5 <= FORMATS[n].mac_pj_45nm / FORMATS["int8"].mac_pj_45nm <= 2.8


def test_every_constant_has_a_source():
    from tpusim.area import AREA_CONSTANTS, NODE_AREA_SCALE
    from tpusim.energy import ENERGY_CONSTANTS
    tables = [CONSTANTS, ENERGY_CONSTANTS, AREA_CONSTANTS, NODE_AREA_SCALE]
    assert sum(len(t) for t in tables) > 20
    for table in tables:
        for key, c in table.items():
            assert isinstance(c, Constant), key
            assert c.value > 0 and c.unit, key
            assert isinstance(c.source, str) and len(c.source) > 10, key


def test_get_format_aliases_and_unknown_name():
    assert get_format("BFloat16").name == "bf16" and get_format("e5m2").name == "fp8_e5m2"
    with pytest.raises(InputError, match="int9.*allowed: int8"):
        get_format("int9", "trace.csv")
    assert datapath_format("int8", "int8") == "int8"
    assert datapath_format("int4", "bf16") == "bf16"


def test_peak_rate_native_packed_emulated():
    chip = load_config("default")  # 4 x 128x128 at 1.05 GHz
    pes = 4 * 128 * 128
    assert chip.peak_tops("int8") == pytest.approx(2 * pes * 1.05e9 / 1e12)
    assert chip.peak_tops("fp32") == pytest.approx(chip.peak_tops("bf16") / 6)  # 6 bf16 passes
    assert chip.peak_tops("fp16") == pytest.approx(chip.peak_tops("bf16") / 3)
    v5e = load_config("tpu_v5e")  # int8 packs two MACs per PE: 394 vs 197 TOPS
    assert v5e.peak_tops("int8") == pytest.approx(2 * v5e.peak_tops("bf16"))
    with pytest.raises(InputError, match="chip 'tpu_v1' runs: int8"):
        load_config("tpu_v1").check_format("bf16")


# ---------------------------------------------------------------- the command

def test_formats_command_writes_table_and_page(cli, tmp_path):
    out = tmp_path / "f"
    code, stdout, err = cli("formats", "default", "--gemm-size", "64", "--out", out)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"formats.csv", "formats.html", "formats.json",
                                               "config.yaml", ".tpusim-formats.json"}
    df = pd.read_csv(out / "formats.csv").set_index("format")
    assert set(SPEC_COLUMNS[1:]) <= set(df.columns)
    assert list(df.index) == list(FORMAT_NAMES)
    chip = load_config("default")
    assert df.loc["int8", "peak_tops"] == pytest.approx(chip.peak_tops("int8"))
    assert df.loc["fp32", "support"] == "emulated"
    assert df.loc["fp32", "peak_tops"] == pytest.approx(chip.peak_tops("bf16") / 6)
    # emulated fp32 runs on the bf16 array and pays 6 bf16 MACs each
    assert df.loc["fp32", "array_area_mm2"] == pytest.approx(df.loc["bf16", "array_area_mm2"])
    assert df.loc["fp32", "mac_energy_pj"] == pytest.approx(6 * df.loc["bf16", "mac_energy_pj"])
    # formats the chip cannot run: listed, empty throughput, a note saying why
    for n in ("int4", "fp8_e4m3", "fp8_e5m2", "binary"):
        assert df.loc[n, "support"] == "unsupported"
        assert math.isnan(df.loc[n, "peak_tops"]) and math.isnan(df.loc[n, "tops_per_w"])
        assert "runs int8|bf16|fp16|fp32" in df.loc[n, "note"]
        assert df.loc[n, "mac_area_um2"] > 0 and df.loc[n, "gemm_rel_error"] > 0
    assert df.loc["int8", "tops_per_w"] == pytest.approx(2 / df.loc["int8", "mac_energy_pj"])
    # per mm² of the chip (summary.json's meaning) and of the array alone
    assert df.loc["int8", "tops_per_mm2"] == pytest.approx(
        df.loc["int8", "peak_tops"] / df.loc["int8", "chip_area_mm2"])
    assert df.loc["int8", "array_tops_per_mm2"] == pytest.approx(
        df.loc["int8", "peak_tops"] / df.loc["int8", "array_area_mm2"])
    run = tpusim.simulate("default", "tpu_v1/mlp0", format="int8").summary
    assert df.loc["int8", "tops_per_mm2"] == pytest.approx(run["tops_per_mm2"])
    page = (out / "formats.html").read_text()
    assert page.count("Plotly.newPlot") >= 3 and "Pareto" in page
    assert "Numeric formats on default" in stdout


def test_formats_subset_with_workload(cli, tmp_path, write_csv):
    trace = write_csv("name,op,m,k,n\nfc1,matmul,256,512,256\nfc2,matmul,256,256,128\n")
    out = tmp_path / "w"
    code, _, err = cli("formats", "tpu_v4", "--formats", "bf16,fp32", "--workload", trace,
                       "--gemm-size", "32", "--out", out)
    assert code == 0, err
    df = pd.read_csv(out / "formats.csv").set_index("format")
    assert list(df.index) == ["bf16", "fp32"]
    assert df.loc["bf16", "latency_s"] > 0 and df.loc["bf16", "energy_j"] > 0
    # fp32 as 6 bf16 passes: more time and more MAC energy than bf16 for the same GEMMs
    assert df.loc["fp32", "latency_s"] > df.loc["bf16", "latency_s"]
    assert df.loc["fp32", "energy_j"] > df.loc["bf16", "energy_j"]


def test_formats_the_chip_lacks_are_compared_with_empty_throughput(cli, tmp_path, write_csv):
    # tpu_v4 has no fp8: comparing it with int8 is what the command is for, not an error
    trace = write_csv("name,op,m,k,n\nfc1,matmul,64,128,64\n")
    out = tmp_path / "x"
    code, _, err = cli("formats", "tpu_v4", "--formats", "int8,fp8_e4m3", "--workload", trace,
                       "--gemm-size", "16", "--out", out)
    assert code == 0, err
    df = pd.read_csv(out / "formats.csv").set_index("format")
    assert list(df.index) == ["int8", "fp8_e4m3"]
    fp8, int8 = df.loc["fp8_e4m3"], df.loc["int8"]
    assert fp8["support"] == "unsupported" and int8["support"] == "native"
    for col in ("mac_area_um2", "mac_energy_pj", "native_mac_energy_pj", "gemm_rel_error"):
        assert fp8[col] > 0, col
    for col in ("peak_tops", "tops_per_w", "latency_s", "energy_j"):
        assert math.isnan(fp8[col]), col
    assert int8["latency_s"] > 0 and int8["peak_tops"] > 0
    assert "tpu_v4 runs" in fp8["note"] and "throughput" in fp8["note"]
    # Dean 2020 full-adder counts: an fp8 E4M3 multiplier (16) is smaller than int8's (64)
    assert fp8["multiplier_full_adders"] == 16 and int8["multiplier_full_adders"] == 64


@pytest.mark.parametrize("args, needle", [
    (["formats", "--formats", "int8,int9"], "--formats: got 'int9'; unknown format (did you mean "
     "int8?); allowed: int8|"),
    (["formats", "--formats", "int8,"], "--formats: got 'int8,'"),
    (["formats", "--set", "energy.node_nm=5"], "energy.node_nm: got 5"),
    (["formats", "--set", "energy.node_nm=300"], "covers 7-180 nm"),
])
def test_formats_bad_input_is_one_line_exit_2(cli, tmp_path, args, needle):
    out = tmp_path / "never"
    code, stdout, err = cli(*args, "--out", out)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_run_in_unsupported_format_is_one_line_exit_2(cli, tmp_path, write_csv):
    trace = write_csv("name,op,m,k,n\nfc,matmul,64,64,64\n")
    code, _, err = cli("run", "tpu_v1", trace, "--format", "bf16", "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'bf16'" in err and "tpu_v1" in err and "int8" in err


def test_packed_format_counts_the_macs_a_pe_holds(cli, tmp_path):
    out = tmp_path / "p"
    code, _, err = cli("formats", "tpu_v5e", "--formats", "int8,bf16", "--gemm-size", "8",
                       "--out", out)
    assert code == 0, err
    df = pd.read_csv(out / "formats.csv").set_index("format")
    chip = load_config("tpu_v5e")
    assert df.loc["int8", "support"] == "packed" and df.loc["int8", "macs_per_pe"] == 2
    assert df.loc["int8", "array_area_mm2"] == pytest.approx(
        2 * chip.pes * df.loc["int8", "mac_area_um2"] / 1e6)
    assert df.loc["int8", "peak_tops"] == pytest.approx(2 * df.loc["bf16", "peak_tops"])
    parts = df.loc["bf16", ["multiplier_area_um2", "float_align_area_um2",
                            "accumulator_area_um2", "register_area_um2"]].sum()
    assert parts == pytest.approx(df.loc["bf16", "mac_area_um2"])


def test_pareto_front_by_hand():
    from tpusim.format_report import _pareto
    # (TOPS/W, error): (4, 0.1) is dominated by (10, 0.1); the rest trade one for the other
    pts = [(10.0, 0.1), (5.0, 0.01), (4.0, 0.1), (20.0, 1.0)]
    assert _pareto(pts) == [1, 0, 3]


def _figure(page: str, div_id: str) -> tuple[list, dict]:
    """(traces, layout) a page passes to ``Plotly.newPlot(div_id, ...)``."""
    from .test_plots import figure_data
    dec = json.JSONDecoder()
    start = page.index("[", page.index(f'"{div_id}",'))
    _, end = dec.raw_decode(page, start)
    layout, _ = dec.raw_decode(page, page.index("{", end))
    return figure_data(page, div_id), layout


def test_formats_page_labels_do_not_overlap_and_energy_is_in_one_unit(cli, tmp_path,
                                                                       write_csv):
    from tpusim.chart_labels import label_box, to_px
    trace = write_csv("name,op,m,k,n,weight_dtype,act_dtype\nfc,matmul,64,512,512,int8,int8\n",
                      "t.csv")
    out = tmp_path / "f"
    code, _, err = cli("formats", "tpu_v4", "--workload", trace, "--out", out)
    assert code == 0, err
    page = (out / "formats.html").read_text()
    df = pd.read_csv(out / "formats.csv")
    # the error/efficiency chart: every format named once, as a label placed off its point,
    # no two labels' boxes overlapping (the boxes the placement assumes)
    _, pareto = _figure(page, "plot-2")
    assert "numeric error" in pareto["title"]["text"]
    names = [a["text"] for a in pareto["annotations"]]
    assert sorted(names) == sorted(df["format"])
    xr, yr = pareto["xaxis"]["range"], pareto["yaxis"]["range"]
    boxes = [label_box(*to_px(10 ** a["x"], 10 ** a["y"], xr, yr, (800.0, 330.0)),
                       (a["ax"], a["ay"]), a["text"]) for a in pareto["annotations"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    # the workload's energy per format in the unit of the largest, not J with 0.002 ticks
    data, energy = _figure(page, "plot-3")
    assert "energy per format" in energy["title"]["text"]
    unit = energy["title"]["text"].rsplit("(", 1)[1].rstrip(")")
    size = {"J": 1, "mJ": 1e-3, "µJ": 1e-6, "nJ": 1e-9}[unit]
    assert 1 <= df["energy_j"].max() / size < 1000
    ys = [y for y in data[0]["y"] if y is not None]
    assert max(ys) * size == pytest.approx(df["energy_j"].max(), rel=1e-9)

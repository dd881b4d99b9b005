"""``memory.sram.double_buffered: auto``: a GEMM whose operands each fit their buffer runs with
serial DMA, a larger one double-buffered. Hand-computed block schedules on a 4x4 array at one
byte per cycle, on both simulation paths; the config's validation; and that auto is exactly
false where every layer fits and exactly true where none does."""
from __future__ import annotations

import pytest

import tpusim
from tpusim.config import load_config
from tpusim.cores import gemm_double_buffered
from tpusim.errors import InputError
from tpusim.formats import get_format
from tpusim.fusion import fuse
from tpusim.importers import load_workload
from tpusim.memory import double_buffered, operands_fit, with_double_buffered
from tpusim.workload import Workload, make_layer

INT8 = get_format("int8")   # 1-byte operands and outputs, 4-byte accumulators


def tiny(db="auto", **more):
    """One 4x4 ws array at 1 GHz and 1 GB/s (1 byte per cycle), no launch or wave cost, one
    weight-FIFO slot; buffers of 64 B input, 48 B weights, 128 B accumulators (two 4x4 tiles
    each, what ``check_tile_fits`` asks of a chip that may double-buffer)."""
    return load_config("default", **{
        "clock_ghz": 1.0, "array.rows": 4, "array.cols": 4, "array.count": 1,
        "array.dataflow": "ws", "memory.hbm.bandwidth_gbps": 1.0, "memory.hbm.efficiency": 1.0,
        "memory.sram.input_kib": 64 / 1024, "memory.sram.weight_kib": 48 / 1024,
        "memory.sram.output_kib": 128 / 1024, "memory.sram.double_buffered": db,
        "timing.overhead_cycles_per_op": 0, "timing.wave_cycles": 0,
        "timing.weight_fifo_depth": 1, **more})


def mm(m, k, n):
    return make_layer({"name": "mm", "op": "matmul", "m": m, "k": k, "n": n,
                       "weight_dtype": "int8", "act_dtype": "int8"})


def cycles(chip, layer, core):
    r = tpusim.simulate(chip, Workload("w", (layer,)), core=core)
    return float(r.layers.iloc[0]["cycles"])


# 4x8x4: 32 B input, 32 B weights, 16 accumulators (64 B): each fits its buffer. Two k folds
# of T = 4 rows (load L = 4, stream 4, fill R + C - 2 = 6), 16 B weights, 16 B input and 8 B
# output per fold. Block 0: computes L + 4 = 8 cycles and loads the first tile (16 B), its
# inputs (16 B) and the next tile's slice (16 B) = 48 B; block 1: computes 4 + 6 = 10 and loads
# 16 B; each stores 8 B. Serial: every transfer and every compute one after the other,
# 48 + 16 + 8 + 8 + 8 + 10 = 98 cycles. Double-buffered (two slots): block 1 loads during
# block 0's compute (48..64), computes 64..74, both stores follow: 90.
FITS = mm(4, 8, 4)
# 4x8x8: 64 B of weights exceed the 48 B buffer, so auto pipelines it. Four folds (2 k x 2 n),
# per fold 16 B weights, 8 B input, 8 B output; blocks (compute, load): (8, 40), (4, 24),
# (4, 24), (10, 8), each storing 8 B. Two slots: loads 0..40, 40..64, 64..96 (after block 0's
# store), 96..112 (after block 1's); computes 40..48, 64..68, 96..100, 112..122; the last two
# stores 122..138. Serial: 96 B loaded + 32 B stored + 26 compute cycles = 154.
SPILLS = mm(4, 8, 8)


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_a_layer_that_fits_runs_serially(core):
    assert operands_fit(FITS, tiny(), INT8) and not double_buffered(tiny(), FITS, INT8)
    assert cycles(tiny("auto"), FITS, core) == 98 == cycles(tiny(False), FITS, core)
    assert cycles(tiny(True), FITS, core) == 90


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_a_layer_that_does_not_fit_is_pipelined(core):
    assert not operands_fit(SPILLS, tiny(), INT8) and double_buffered(tiny(), SPILLS, INT8)
    assert cycles(tiny("auto"), SPILLS, core) == 138 == cycles(tiny(True), SPILLS, core)
    assert cycles(tiny(False), SPILLS, core) == 154


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_auto_decides_per_layer_in_one_workload(core):
    """Both layers in one trace: each row keeps its own decision (the fitting one serial, the
    other pipelined), whatever the first leaves on chip for the second."""
    wl = Workload("w", (FITS, SPILLS))
    auto = tpusim.simulate(tiny("auto"), wl, core=core).layers["cycles"].tolist()
    serial = tpusim.simulate(tiny(False), wl, core=core).layers["cycles"].tolist()
    piped = tpusim.simulate(tiny(True), wl, core=core).layers["cycles"].tolist()
    assert auto[0] == serial[0] and auto[1] == piped[1]


def test_operand_bytes_are_the_layer_format_and_the_accumulators():
    """The output is counted as accumulators (4 B per int8 output): 4x8x8's 32 outputs are
    128 B, exactly the buffer; one more row (5x8x4: 20 x 4 = 80 B) still fits; 9x8x4 (144 B)
    does not; an 8x8x1 input (64 B) fills the 64 B input buffer, 8x9x1 (72 B) overflows it."""
    big_w = tiny(**{"memory.sram.weight_kib": 1.0})
    assert operands_fit(mm(4, 8, 8), big_w, INT8)
    assert operands_fit(mm(5, 8, 4), big_w, INT8)
    assert not operands_fit(mm(9, 8, 4), big_w, INT8)
    assert operands_fit(mm(8, 8, 1), big_w, INT8) and not operands_fit(mm(8, 9, 1), big_w, INT8)


def test_resolution_is_the_identity_unless_auto():
    for db in (True, False):
        chip = tiny(db)
        assert with_double_buffered(chip, not db) is chip
        assert double_buffered(chip, FITS, INT8) is db and double_buffered(chip, SPILLS, INT8) is db
    auto = tiny("auto")
    assert with_double_buffered(auto, True).memory.sram.double_buffered is True
    assert with_double_buffered(auto, True) is with_double_buffered(auto, True)   # memoised


def test_config_accepts_true_false_auto_and_names_the_field_otherwise(tmp_path):
    for v in (True, False, "auto"):
        assert load_config("default", **{"memory.sram.double_buffered": v}) \
            .memory.sram.double_buffered == v
    for bad in ("maybe", 1, "Auto"):
        with pytest.raises(InputError) as e:
            load_config("default", **{"memory.sram.double_buffered": bad})
        msg = str(e.value)
        assert "memory.sram.double_buffered" in msg and "true|false|auto" in msg
        assert "\n" not in msg


def test_bad_value_in_a_file_is_one_line_exit_2(tmp_path):
    from tests.conftest import ROOT, run_cli
    text = (ROOT / "configs" / "tpu_v4.yaml").read_text()
    bad = tmp_path / "v4.yaml"
    bad.write_text(text.replace("double_buffered: auto", "double_buffered: sometimes", 1))
    code, out, err = run_cli("run", bad, "resnet50")
    assert code == 2 and out == ""
    line = err.strip()
    assert line.count("\n") == 0 and str(bad) in line and "memory.sram.double_buffered" in line
    assert "'sometimes'" in line and "true|false|auto" in line
    code, _, err = run_cli("run", "tpu_v4", "resnet50", "--set", "memory.sram.double_buffered=2")
    assert code == 2 and err.strip().count("\n") == 0 and "true|false|auto" in err


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_auto_is_false_where_every_layer_fits_and_true_where_none_does(core):
    """On a shipped trace: with buffers large enough for every layer auto is bit for bit the
    serial run; with the smallest buffers the tile check allows, where no GEMM fits, it is bit
    for bit the double-buffered run (both paths, the summary and every row)."""
    wl = load_workload("resnet50")
    big = {"memory.sram.input_kib": 2 ** 20, "memory.sram.weight_kib": 2 ** 20,
           "memory.sram.output_kib": 2 ** 20}
    small = {"memory.sram.input_kib": 64, "memory.sram.weight_kib": 64,
             "memory.sram.output_kib": 256}
    fmt = get_format(load_config("default").default_format)
    for over, same in ((big, False), (small, True)):
        auto = load_config("default", **over, **{"memory.sram.double_buffered": "auto"})
        ref = load_config("default", **over, **{"memory.sram.double_buffered": same})
        decided = {gemm_double_buffered(auto, l, fmt) for l in wl.layers if l.kind == "gemm"}
        assert decided == {same}
        a, b = tpusim.simulate(auto, wl, core=core), tpusim.simulate(ref, wl, core=core)
        assert a.summary["total_cycles"] == b.summary["total_cycles"]
        assert a.summary["hbm_bytes"] == b.summary["hbm_bytes"]
        assert a.layers["cycles"].tolist() == b.layers["cycles"].tolist()


def test_fusion_under_auto_keeps_the_whole_buffer_for_a_serial_producer():
    """A 16x16x16 int8 GEMM on 1 KiB of accumulators: its 256 partial sums (1 KiB) fit, so it
    runs serially and its fused relu's intermediate may use the whole buffer; double-buffered,
    the same chip leaves it half (512 B)."""
    mm16 = make_layer({"name": "mm", "op": "matmul", "m": 16, "k": 16, "n": 16,
                       "weight_dtype": "int8", "act_dtype": "int8"})
    relu = make_layer({"name": "relu", "op": "relu", "elements": 256, "act_dtype": "int8"})
    wl = Workload("chain", (mm16, relu))
    over = {"array.rows": 4, "array.cols": 4, "array.count": 1,
            "memory.sram.output_kib": 1.0}
    auto = load_config("default", **over, **{"memory.sram.double_buffered": "auto"})
    assert not gemm_double_buffered(auto, mm16, INT8)
    assert fuse(wl, auto)[1][0].capacity_bytes == 1024
    assert fuse(wl, load_config("default", **over))[1][0].capacity_bytes == 512
    # at batch 2 the 2 KiB of accumulators exceed the buffer: pipelined, half the buffer
    assert gemm_double_buffered(auto, dataclass_batch(mm16, 2), INT8)
    assert fuse(wl, auto, batch=2)[1][0].capacity_bytes == 512


def dataclass_batch(layer, batch):
    from tpusim.simulator import scale_batch
    return scale_batch(Workload("w", (layer,)), batch).layers[0]


def test_a_sweep_over_true_false_auto_matches_single_runs(tmp_path):
    """One columnar batch holding all three values (per-row buffering in one set of arrays): each
    point's latency is its own simulate's; the parquet stores the mixed column as its text."""
    import pandas as pd

    from tests.conftest import run_cli
    code, _, err = run_cli("sweep", "tpu_v4", "gpt2", "--set",
                           "memory.sram.double_buffered=true,false,auto", "--out", tmp_path)
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "sweep.parquet")
    got = dict(zip(df["memory.sram.double_buffered"], df["latency_s"]))
    assert set(got) == {"true", "false", "auto"}
    for text, v in (("true", True), ("false", False), ("auto", "auto")):
        chip = load_config("tpu_v4", **{"memory.sram.double_buffered": v})
        assert got[text] == pytest.approx(tpusim.simulate(chip, "gpt2").summary["latency_s"],
                                          rel=1e-12)
    assert got["true"] < got["auto"] < got["false"]   # gpt2 has layers on both sides


@pytest.mark.parametrize("core", ["reference", "columnar"])
def test_the_event_engine_follows_the_same_decision(core):
    """The simpy engine's buffer slots come from the same per-layer rule: auto is its serial run
    on the layer that fits and its double-buffered run on the one that does not."""
    def ev(db, layer):
        r = tpusim.simulate(tiny(db), Workload("w", (layer,)), core=core, engine="event")
        return float(r.layers.iloc[0]["cycles"])
    assert ev("auto", FITS) == ev(False, FITS) == 98 != ev(True, FITS)
    assert ev("auto", SPILLS) == ev(True, SPILLS) != ev(False, SPILLS) == 154

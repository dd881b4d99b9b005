"""Chip presets: values against their public sources, validation messages, overrides, .cfg."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tpusim.config import CONFIG_DIR, load_config, preset_names
from tpusim.errors import InputError

from .conftest import SCALESIM

# Published peaks (the presets are built from units x clock): Jouppi et al. ISCA 2017 (v1), Norrie
# et al. IEEE Micro 2021 (v2, v3), Jouppi et al. ISCA 2021 (v4i) and ISCA 2023 (v4), jax-ml
# scaling-book (v5e), coral.ai (Edge TPU).
PUBLISHED_PEAK_TOPS = {
    ("tpu_v1", "int8"): 92, ("tpu_v2", "bf16"): 46, ("tpu_v3", "bf16"): 123,
    ("tpu_v4i", "bf16"): 138, ("tpu_v4i", "int8"): 138, ("tpu_v4", "bf16"): 275,
    ("tpu_v5e", "bf16"): 197, ("tpu_v5e", "int8"): 394, ("edge_tpu", "int8"): 4,
}


def test_required_presets_exist():
    assert {"default", "tpu_v1", "tpu_v2", "tpu_v3", "tpu_v4", "tpu_v4i", "tpu_v5e",
            "edge_tpu"} <= set(preset_names())


@pytest.mark.parametrize("chip,fmt", sorted(PUBLISHED_PEAK_TOPS))
def test_peak_matches_published(chip, fmt):
    c = load_config(chip)
    # coral.ai's "4 TOPS" has one significant digit: 4,096 MACs x 2 x 0.5 GHz = 4.096 rounds to it
    rel = 0.05 if chip == "edge_tpu" else 0.02
    assert c.peak_tops(fmt) == pytest.approx(PUBLISHED_PEAK_TOPS[(chip, fmt)], rel=rel)


def test_published_bandwidths():
    assert load_config("tpu_v1").memory.hbm.bandwidth_gbps == 34
    assert load_config("tpu_v4").memory.hbm.bandwidth_gbps == 1200
    assert load_config("tpu_v3").memory.hbm.bandwidth_gbps == 900


@pytest.mark.parametrize("name", preset_names())
def test_every_number_has_a_source_comment(name):
    for lineno, line in enumerate((CONFIG_DIR / f"{name}.yaml").read_text().splitlines(), 1):
        code = line.split("#")[0]
        if re.search(r":\s*-?[0-9.]+\s*$", code) or re.search(r"\{.*[0-9]", code):
            assert "#" in line, f"{name}.yaml line {lineno} has a number without a source: {line}"


def test_default_runs_int8_bf16_natively_and_emulates_fp():
    c = load_config("default")
    assert c.formats["int8"].emulate is None and c.formats["bf16"].emulate is None
    assert c.formats["fp32"].emulate == "bf16" and c.formats["fp16"].emulate == "bf16"
    assert c.peak_tops("fp32") == pytest.approx(c.peak_tops("bf16") / c.formats["fp32"].passes)


def _bad(tmp_path, text):
    p = tmp_path / "chip.yaml"
    base = (CONFIG_DIR / "default.yaml").read_text()
    p.write_text(text(base))
    with pytest.raises(InputError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg
    return msg


def test_unknown_field_names_path_and_allowed(tmp_path):
    msg = _bad(tmp_path, lambda s: s.replace("  rows: 128", "  rowz: 128"))
    assert "array.rowz" in msg and "rows" in msg


def test_negative_size_rejected(tmp_path):
    msg = _bad(tmp_path, lambda s: s.replace("  cols: 128", "  cols: -4"))
    assert "array.cols" in msg and "-4" in msg and "greater than 0" in msg


def test_bad_dataflow_rejected(tmp_path):
    msg = _bad(tmp_path, lambda s: s.replace("dataflow: ws", "dataflow: xs"))
    assert "array.dataflow" in msg and "'xs'" in msg and "ws" in msg


def test_missing_field_rejected(tmp_path):
    msg = _bad(tmp_path, lambda s: s.replace("clock_ghz: 1.05", "# no clock"))
    assert "clock_ghz" in msg and "missing" in msg


def test_invalid_yaml_names_line(tmp_path):
    msg = _bad(tmp_path, lambda s: s + "\narray: [unclosed\n")
    assert "line" in msg


def test_overrides_by_dotted_path():
    c = load_config("tpu_v4", **{"array.rows": 64, "memory.hbm.bandwidth_gbps": 600,
                                  "timing.model": "scalesim"})
    assert c.array.rows == 64 and c.memory.hbm.bandwidth_gbps == 600
    assert c.timing.model == "scalesim"
    assert load_config("tpu_v4", array__cols=32).array.cols == 32


@pytest.mark.parametrize("path,value,needle", [
    ("array.rowz", 3, "unknown field 'rowz'"),
    ("array.dataflow", "diag", "array.dataflow"),
    ("timing.model", "fast", "timing.model"),
    ("array.count", 0, "array.count"),
])
def test_bad_override(path, value, needle):
    with pytest.raises(InputError) as exc:
        load_config("default", **{path: value})
    assert needle in str(exc.value) and str(exc.value).startswith("overrides")
    with pytest.raises(InputError) as exc:   # the same line from a loaded chip (sweeps' path)
        load_config(load_config("default"), **{path: value})
    assert needle in str(exc.value) and str(exc.value).startswith("overrides")


def test_overrides_on_a_loaded_chip_match_the_file_and_leave_it_alone():
    base = load_config("tpu_v4")
    before = base.model_dump()
    over = {"array.rows": 64, "memory.hbm": {"bandwidth_gbps": 600}, "timing.model": "scalesim"}
    derived = load_config(base, **over)
    assert derived == load_config("tpu_v4", **over)
    assert derived.array.rows == 64 and derived.memory.hbm.bandwidth_gbps == 600
    assert base.model_dump() == before and base.array.rows != 64


def test_spec_override_paths_exist():
    c = load_config("default", **{"clock_ghz": 1.0, "array.rows": 8, "array.cols": 8,
                                   "array.dataflow": "os", "array.count": 2,
                                   "memory.hbm.bandwidth_gbps": 100,
                                   "memory.hbm.energy_pj_per_bit": 5,
                                   "timing.model": "pipelined"})
    assert (c.array.rows, c.array.dataflow, c.array.count) == (8, "os", 2)


def test_unknown_preset():
    with pytest.raises(InputError) as exc:
        load_config("tpu_v9")
    assert "tpu_v4" in str(exc.value)


def test_scalesim_cfg_loads():
    c = load_config(SCALESIM / "configs" / "scale.cfg")
    assert (c.array.rows, c.array.cols, c.array.dataflow) == (32, 32, "ws")
    assert c.timing.model == "scalesim"
    assert c.memory.sram.input_kib == 64
    g = load_config(SCALESIM / "configs" / "google.cfg")
    assert (g.array.rows, g.array.cols, g.array.dataflow) == (256, 256, "os")
    assert g.memory.sram.input_kib == 6144 and g.memory.sram.output_kib == 2048
    assert g.memory.hbm.bandwidth_gbps == 10  # USER mode: 10 words/cycle at 1 GHz


def test_scalesim_cfg_bad_dataflow(tmp_path):
    p = tmp_path / "x.cfg"
    p.write_text((SCALESIM / "configs" / "scale.cfg").read_text().replace("Dataflow : ws",
                                                                          "Dataflow : zz"))
    with pytest.raises(InputError) as exc:
        load_config(p)
    assert "Dataflow" in str(exc.value) and "zz" in str(exc.value)


def test_shipped_data_resolves_through_the_package_or_the_source_tree(monkeypatch):
    from importlib.resources import files

    from tpusim import _data
    # installed (wheel or editable): the data packages tpusim.presets / tpusim.zoo
    assert _data.presets_dir() == Path(str(files("tpusim.presets")))
    assert {p.stem for p in _data.presets_dir().glob("*.yaml")} >= {"default", "tpu_v4"}
    assert (_data.zoo_dir() / "resnet50.csv").is_file()

    def not_installed(package):
        raise ModuleNotFoundError(package)
    monkeypatch.setattr(_data, "files", not_installed)
    root = Path(_data.__file__).resolve().parent.parent
    assert _data.presets_dir() == root / "configs" and _data.zoo_dir() == root / "workloads"


def test_a_config_path_that_is_a_folder_says_so(tmp_path):
    (tmp_path / "chip.yaml").mkdir()
    with pytest.raises(InputError, match=r"chip\.yaml: is a directory, not a config file"):
        load_config(tmp_path / "chip.yaml")
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_a_workload_path_that_is_a_folder_says_so(tmp_path):
    from tpusim.importers import find_workload
    (tmp_path / "adir").mkdir()
    with pytest.raises(InputError, match=r"adir: is a directory, not a workload file"):
        find_workload(tmp_path / "adir")

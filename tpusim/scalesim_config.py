"""SCALE-Sim v3 ``.cfg`` files as raw chip dicts, for :func:`tpusim.config.load_config`.

A ``.cfg`` names the array (``ArrayHeight``, ``ArrayWidth``, ``Dataflow``), the three SRAM
buffers in KiB and the interface bandwidth in words per cycle; everything else a tpusim chip
needs is an assumption stated in :func:`read_scalesim_cfg`.
"""
from __future__ import annotations

import configparser
from pathlib import Path

from ._input import read_text
from .errors import InputError


def read_scalesim_cfg(path: Path) -> dict:
    """A SCALE-Sim v3 ``.cfg`` as a raw chip dict (``timing.model: scalesim``).

    SCALE-Sim has no clock, energy or vector unit: we assume 1 GHz (so cycles read as ns), int8
    words (its word is one byte), 45 nm Horowitz/CACTI energy and a vector unit one row wide.
    """
    cp = configparser.ConfigParser(interpolation=None)  # a '%' in a value is just a character
    try:
        cp.read_string(read_text(path, "SCALE-Sim config"), source=str(path))
    except (configparser.DuplicateOptionError, configparser.DuplicateSectionError) as exc:
        what = (f"option {exc.option!r}" if isinstance(exc, configparser.DuplicateOptionError)
                else "section") + f" [{exc.section}]"
        raise InputError(str(path), f"line {exc.lineno}", message=f"{what} appears twice; "
                         "give each once") from None
    except configparser.MissingSectionHeaderError as exc:
        raise InputError(str(path), f"line {exc.lineno}", message="expected a [section] header "
                         "(a SCALE-Sim config starts with [general] or [architecture_presets])"
                         ) from None
    except configparser.Error as exc:
        msg = " ".join(str(getattr(exc, "message", exc)).split())
        raise InputError(str(path), None, message=f"not a SCALE-Sim config ({msg})") from None
    arch = "architecture_presets"
    if not cp.has_section(arch):
        raise InputError(str(path), f"[{arch}]", message="section missing")
    sec = {k.lower(): v.split("#")[0].strip() for k, v in cp.items(arch)}

    def num(key: str, cast=int, default=None):
        if key.lower() not in sec:
            if default is not None:
                return default
            raise InputError(str(path), f"[{arch}] {key}", message="required field is missing")
        try:
            val = cast(sec[key.lower()])
        except ValueError:
            raise InputError(str(path), f"[{arch}] {key}", sec[key.lower()],
                             "expected a whole number" if cast is int else "expected a number"
                             ) from None
        if val <= 0:
            raise InputError(str(path), f"[{arch}] {key}", val, "must be > 0")
        return val

    dataflow = sec.get("dataflow", "os").strip().lower()
    if dataflow not in ("ws", "os", "is"):
        raise InputError(str(path), f"[{arch}] Dataflow", dataflow, "allowed: ws|os|is")
    mode = "USER"
    if cp.has_section("run_presets"):
        mode = cp.get("run_presets", "InterfaceBandwidth", fallback="USER").strip().upper()
    words_per_cycle = num("Bandwidth", float, default=10.0)
    # CALC mode sizes SCALE-Sim's interface so that it never stalls: model it as unbounded.
    bandwidth = 1e6 if mode == "CALC" else words_per_cycle * 1.0  # 1 byte/word at 1 GHz
    rows, cols = num("ArrayHeight"), num("ArrayWidth")
    run_name = cp.get("general", "run_name", fallback=path.stem) if cp.has_section("general") \
        else path.stem
    return {
        "name": path.stem,
        "description": f"SCALE-Sim config {path.name} (run_name {run_name}, {mode} bandwidth)",
        "clock_ghz": 1.0,
        "array": {"rows": rows, "cols": cols, "dataflow": dataflow, "count": 1},
        "formats": {"int8": {"rate": 1.0}},
        "default_format": "int8",
        "memory": {
            "sram": {"input_kib": num("IfmapSramSzkB"), "weight_kib": num("FilterSramSzkB"),
                     "output_kib": num("OfmapSramSzkB")},
            "hbm": {"kind": "DRAM", "bandwidth_gbps": bandwidth, "energy_pj_per_bit": 70.0},
        },
        "vector": {"ops_per_cycle": float(cols)},
        "timing": {"model": "scalesim"},
        "energy": {"node_nm": 45},
    }

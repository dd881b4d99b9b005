"""Chip descriptions: frozen, validated models loaded from YAML presets or SCALE-Sim ``.cfg`` files.

A chip is a set of identical MAC arrays (``array``) sharing on-chip SRAM buffers and one off-chip
memory channel (``memory.hbm``), a vector unit for non-matrix ops, the numeric formats it runs,
a timing model and the constants of its energy model; chips that form pods add their links
(``ici``, ``dcn``: ``pod/topology.py``). Units are in the field names
(``clock_ghz``, ``bandwidth_gbps`` = 1e9 bytes/s, ``*_kib`` = 1024 bytes, ``*_pj_per_bit``).
Every field is reachable by its dotted path, which ``--set PATH=VALUE`` and error messages use.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ._data import presets_dir
from ._input import MAX_DIM, InputModel, load_yaml, read_text, suggest
from .errors import InputError
from .formats import FORMAT_NAMES, get_format
from .offchip import offchip_pj_per_bit
from .config_paths import error_line, set_dotted
from .config_vector import VectorConfig
from .pod.topology import DcnConfig, IciConfig
from .scalesim_config import read_scalesim_cfg
from .sparsity import NM_HELP, parse_nm

CONFIG_DIR = presets_dir()   # configs/ in the repository, tpusim/presets/ in the wheel


class _Model(InputModel):
    """A config section: frozen, no unknown fields, finite numbers, no booleans for numbers."""


class ArrayConfig(_Model):
    rows: int = Field(gt=0, le=MAX_DIM, description="PE rows (the reduction dimension under ws)")
    cols: int = Field(gt=0, le=MAX_DIM, description="PE columns")
    dataflow: Literal["ws", "os", "is"] = "ws"
    count: int = Field(1, gt=0, le=MAX_DIM, description="identical arrays (MXUs) per chip")
    cores: int = Field(1, gt=0, le=MAX_DIM, description="cores the arrays are split between "
                       "(count / cores each), sharing HBM; a GEMM's output is split between "
                       "them (tpusim/cores.py); 1 = one flat set of arrays")
    sparsity: list[str] = Field(default_factory=list, description="weight sparsity the array "
                                "skips: N:M patterns (e.g. 2:4) and/or unstructured")

    @model_validator(mode="after")
    def _count_per_core(self) -> "ArrayConfig":
        if self.count % self.cores:
            raise ValueError(f"array.cores: {self.cores} does not divide array.count "
                             f"({self.count}); each core has count / cores arrays")
        return self

    @field_validator("sparsity", mode="before")
    @classmethod
    def _sparsity(cls, v: Any) -> Any:
        v = [v] if isinstance(v, (int, str)) and not isinstance(v, bool) else v  # bare: a list of 1
        if not isinstance(v, list):
            return v
        out = []
        for s in v:
            if isinstance(s, int) and not isinstance(s, bool):
                raise ValueError(f"{s}: quote N:M patterns, e.g. \"2:4\" (YAML reads 2:4 "
                                 "unquoted as the base-60 number 124)")
            if str(s).strip().lower() == "unstructured":
                out.append("unstructured")
                continue
            try:
                n, m = parse_nm(s)
            except ValueError:
                raise ValueError(f"{s!r}: each entry must be {NM_HELP} or unstructured") from None
            out.append(f"{n}:{m}")
        return out


class FormatSupport(_Model):
    """How the chip runs one format: natively at ``rate`` MACs per PE per cycle, or emulated."""

    rate: float = Field(1.0, gt=0, description="MACs per PE per cycle (2 = two packed per PE)")
    emulate: str | None = Field(None, description="native format whose passes emulate this one")
    passes: int = Field(1, gt=0, description="passes of the emulating format per MAC")


class SramConfig(_Model):
    input_kib: float = Field(gt=0, description="activation buffer (TPUv1 Unified Buffer)")
    weight_kib: float = Field(gt=0, description="weight staging buffer (FIFO / VMEM share)")
    output_kib: float = Field(gt=0, description="accumulators for partial sums")
    bandwidth_bytes_per_cycle: float | None = Field(
        None, gt=0, description="SRAM bytes per cycle per array; default: what feeds the array")
    bank_kib: float = Field(1024, gt=0, description="largest bank one access touches (energy)")
    double_buffered: bool | Literal["auto"] = Field(
        True, description="true: every GEMM's DMA ping-pongs two tiles per buffer (capacities "
        "halved); false: serial DMA; auto: serial for a layer whose operands each fit their "
        "buffer at once, double-buffered otherwise (tpusim.memory.double_buffered)")
    weights_persistent: bool = Field(
        False, description="weights that fit the weight buffer stay there across inferences")

    @field_validator("double_buffered", mode="before")
    @classmethod
    def _buffering(cls, v: Any) -> Any:
        if isinstance(v, bool) or v == "auto":
            return v
        raise ValueError(f"got {v!r}; allowed: true|false|auto")


class HbmConfig(_Model):
    kind: str = "HBM2"
    # GB/s = 1e9 BYTES per second (not gigabits): the name is kept because configs and
    # ``--set memory.hbm.bandwidth_gbps`` use it; code reads :attr:`bytes_per_s`.
    bandwidth_gbps: float = Field(gt=0, description="off-chip bandwidth in GB/s (1e9 bytes/s, "
                                  "not Gbit/s)")
    energy_pj_per_bit: float = Field(
        gt=0, description="pJ per bit moved; default: the kind's (offchip.OFFCHIP_PJ_PER_BIT)")
    capacity_gib: float | None = Field(None, gt=0)
    efficiency: float = Field(1.0, gt=0, le=1, description="achievable fraction of bandwidth")

    @property
    def bytes_per_s(self) -> float:
        """Achievable off-chip bandwidth in bytes/s: ``bandwidth_gbps`` x 1e9 x ``efficiency``."""
        return self.bandwidth_gbps * 1e9 * self.efficiency

    @model_validator(mode="before")
    @classmethod
    def _energy_from_kind(cls, data: Any) -> Any:
        """A config that names only ``kind`` gets that memory kind's cited pJ/bit."""
        if isinstance(data, dict) and data.get("energy_pj_per_bit") is None:
            data = {**data, "energy_pj_per_bit": offchip_pj_per_bit(data.get("kind", "HBM2"))}
        return data


class MemoryConfig(_Model):
    sram: SramConfig
    hbm: HbmConfig
    host_gib_per_chip: float | None = Field(
        None, gt=0, description="host DRAM per chip (DRAM per host / chips per host), which a "
        "training step's offloaded tensors must fit; unset: not checked")


class TimingConfig(_Model):
    model: Literal["pipelined", "scalesim"] = "pipelined"
    engine: Literal["analytic", "event"] = Field(
        "analytic", description="closed form, or the simpy event engine (pipelined only)")
    overhead_cycles_per_op: float = Field(0, ge=0, description="fixed cost per layer (launch)")
    weight_load_cycles: int | None = Field(
        None, gt=0, description="cycles to shift one stationary tile in; default: rows")
    weight_fifo_depth: int = Field(2, ge=1, description="stationary tiles buffered ahead")
    issue_efficiency: float = Field(
        1.0, gt=0, le=1, description="fraction of cycles an array accepts a new input row "
        "(pipelined model; < 1 when the feed path or the compiler leaves issue slots empty)")
    invoke_cycles: float = Field(0, ge=0, description="fixed cycles per inference, outside every "
                                 "layer (the runtime's invoke), once per batch element")
    wave_cycles: float = Field(
        0, ge=0, description="fixed cycles per wave of output tiles (each array computes one "
        "rows x cols output tile per wave; pipelined model): the DMA latency a wave exposes")


class EnergyConfig(_Model):
    node_nm: float = Field(45, gt=0, description="process node the energy constants scale to")
    mac_pj: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="per-format MAC energy override, pJ")
    sram_pj_per_bit: float | None = Field(None, gt=0, description="override of the CACTI fit")
    vector_op_pj: float | None = Field(None, ge=0, description="override, pJ per vector op")
    static_w: float = Field(0, ge=0, description="leakage and idle power, W")

    @field_validator("node_nm")
    @classmethod
    def _node_in_the_table(cls, v: float) -> float:
        """Checked where the config is read, so a bad node names its file or ``--set``."""
        from .area import NODE_RANGE_NM as nm
        if not nm[0] <= v <= nm[1]:
            raise ValueError(f"got {v:g}; the node scaling table covers {nm[0]}-{nm[1]} nm "
                             "(Stillmaker & Baas 2017)")
        return v

    @field_validator("mac_pj")
    @classmethod
    def _formats_by_their_names(cls, v: dict[str, float]) -> dict[str, float]:
        """Keys as ``--format`` takes them (bfloat16 is bf16), each a known format."""
        out: dict[str, float] = {}
        for name, pj in v.items():
            try:
                canon = get_format(name).name
            except InputError as exc:   # unknown format (did you mean ..); allowed: ..
                raise ValueError(f"{name}: {exc.allowed}") from None
            if canon in out:
                raise ValueError(f"{name}: {canon} given twice (as another of its names)")
            out[canon] = pj
        return out


class ChipConfig(_Model):
    """One chip: ``array.count`` identical ``array.rows`` x ``array.cols`` MAC arrays at
    ``clock_ghz``, sharing SRAM buffers and one off-chip channel (``memory``), a vector unit,
    the ``formats`` it runs (natively at a rate or emulated in passes) with ``default_format``,
    its ``timing`` model and its ``energy`` constants.

    Frozen and validated: build one with :func:`load_config` (a preset, YAML or SCALE-Sim
    ``.cfg``, plus dotted overrides). Derived numbers are methods whose names carry the unit
    (``peak_tops``, ``hbm_bytes_per_cycle``).
    """

    name: str
    description: str = ""
    clock_ghz: float = Field(gt=0)
    array: ArrayConfig
    formats: dict[str, FormatSupport]
    default_format: str
    memory: MemoryConfig
    vector: VectorConfig
    timing: TimingConfig = TimingConfig()
    energy: EnergyConfig = EnergyConfig()
    ici: IciConfig | None = Field(None, description="chip-to-chip links (pod/topology.py)")
    dcn: DcnConfig | None = Field(None, description="network between slices, per chip")

    @model_validator(mode="after")
    def _check_formats(self) -> "ChipConfig":
        for name, sup in self.formats.items():
            if name not in FORMAT_NAMES:
                raise ValueError(f"formats.{name}: unknown format{suggest(name, FORMAT_NAMES)}; "
                                 f"allowed: {'|'.join(FORMAT_NAMES)}")
            if sup.emulate is not None:
                base = self.formats.get(sup.emulate)
                if base is None or base.emulate is not None:
                    raise ValueError(f"formats.{name}.emulate: {sup.emulate!r} is not a native "
                                     f"format of this chip")
        if self.default_format not in self.formats:
            raise ValueError(f"default_format: {self.default_format!r} is not in formats "
                             f"({', '.join(self.formats)})")
        return self

    # Derived quantities, in the units their names say.
    @property
    def pes(self) -> int:
        return self.array.rows * self.array.cols * self.array.count

    def native_rate(self, fmt: str) -> float:
        """MACs per PE per cycle for ``fmt`` (emulated formats: base rate / passes)."""
        sup = self.formats[fmt]
        if sup.emulate:
            return self.formats[sup.emulate].rate / sup.passes
        return sup.rate

    def peak_macs_per_cycle(self, fmt: str) -> float:
        return self.pes * self.native_rate(fmt)

    def peak_tops(self, fmt: str) -> float:
        return 2 * self.peak_macs_per_cycle(fmt) * self.clock_ghz * 1e9 / 1e12

    @property
    def hbm_bytes_per_cycle(self) -> float:
        hbm = self.memory.hbm
        return hbm.bandwidth_gbps * hbm.efficiency / self.clock_ghz   # GB/s / GHz = bytes/cycle

    def check_format(self, fmt: str, source: str | None = None) -> str:
        name = get_format(fmt, source, None if source else "format").name   # --format: once
        if name not in self.formats:
            # an option names itself; a config's own field is its format field
            given = fmt if fmt == name else f"{fmt} ({name})"
            raise InputError(source or self.name, None if source else "format", given,
                             f"chip {self.name!r} runs: {'|'.join(self.formats)}")
        return name


# ---------------------------------------------------------------- loading

def validation_to_input_error(err: ValidationError, source: str) -> InputError:
    """The first pydantic error of a chip config as one line (:func:`config_paths.error_line`)."""
    return error_line(err, source, ChipConfig)


def _set_dotted(raw: dict, path: str, value: Any, source: str) -> None:
    set_dotted(raw, path, value, source, ChipConfig)


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar rules (``64`` int, ``1.5`` float, ``true`` bool, else str),
    except that only decimal digits make an integer: YAML 1.1 reads ``0x4`` as 4, ``010`` as 8
    and ``1:30`` as 90, which a user typing a shape or a count never means (kept as text)."""
    try:
        got = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):   # ValueError: an integer of over 4300 digits
        return text
    if isinstance(got, int) and not isinstance(got, bool) and \
            not re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text.strip()):
        return text
    return got


# Old preset names that still load: the calibrated TPU v4 values now live in tpu_v4 itself (one
# preset per chip), so the name of the separate file it replaced points there.
PRESET_ALIASES = {"tpu_v4_calibrated": "tpu_v4"}


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """The file a config name means: a ``.yaml``/``.cfg`` path as given, else a preset in
    ``configs/``; neither is an :class:`InputError` listing the presets."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".cfg") or p.exists():
        if p.is_dir():
            raise InputError(str(p), None, message="is a directory, not a config file")
        if not p.is_file():
            raise InputError(str(p), None, message="config file not found")
        return p
    cand = CONFIG_DIR / f"{PRESET_ALIASES.get(str(name_or_path), name_or_path)}.yaml"
    if cand.is_file():
        return cand
    raise InputError(str(name_or_path), "config", message="not a file and not a preset"
                     f"{suggest(name_or_path, preset_names())}; presets: "
                     + ", ".join(preset_names()))


def _read_yaml(path: Path) -> dict:
    raw = load_yaml(read_text(path, "YAML config"), str(path))
    if not isinstance(raw, dict):
        raise InputError(str(path), None, message="expected a YAML mapping of config fields")
    raw.setdefault("name", path.stem)
    return raw


def _apply_overrides(raw: dict, overrides: dict[str, Any], source: str,
                     fresh: bool = False) -> dict:
    """``raw`` with the dotted ``overrides`` set; a copy unless ``fresh`` says that nobody else
    holds ``raw`` (a ``model_dump`` made for this call)."""
    raw = raw if fresh else copy.deepcopy(raw)
    for key, value in overrides.items():
        path = key.replace("__", ".")
        if isinstance(value, dict):
            for sub, v in _flatten(value, path).items():
                _set_dotted(raw, sub, v, "overrides")
        else:
            _set_dotted(raw, path, value, "overrides")
    return raw


def _opened(chip: ChipConfig, overrides: dict[str, Any]) -> dict:
    """``chip``'s fields in a fresh dict where only sections an override enters are (copied)
    dicts: pydantic takes the other, validated sections as they are (no re-validation)."""
    raw = dict(iter(chip))   # iter(): dict() would first look for a keys() the model lacks
    for key, value in overrides.items():
        path = key.replace("__", ".")
        for sub in (_flatten(value, path) if isinstance(value, dict) else (path,)):
            node = raw
            for part in sub.split(".")[:-1]:
                nxt = node.get(part)
                if not isinstance(nxt, (BaseModel, dict)):
                    break
                node[part] = nxt = dict(iter(nxt) if isinstance(nxt, BaseModel) else nxt)
                node = nxt
    return raw


def _flatten(d: dict, prefix: str) -> dict:
    out = {}
    for k, v in d.items():
        p = f"{prefix}.{k}"
        if isinstance(v, dict) and k != "mac_pj" and k != "formats":
            out.update(_flatten(v, p))
        else:
            out[p] = v
    return out


def load_config(name_or_path: str | Path | ChipConfig = "default", **overrides: Any) -> ChipConfig:
    """Load a preset name, a YAML file or a SCALE-Sim ``.cfg``; apply dotted overrides.

    ``load_config("tpu_v4", **{"array.rows": 64})`` or ``load_config("tpu_v4", array__rows=64)``.
    """
    if isinstance(name_or_path, ChipConfig):
        if not overrides:
            return name_or_path
        # A validated chip's dump is valid and fresh: no second validation, no copy (a sweep
        # derives one chip per point this way, so these two costs were most of a point's).
        raw = _apply_overrides(_opened(name_or_path, overrides), overrides, name_or_path.name,
                               fresh=True)
    else:
        path = find_config(name_or_path)
        source = str(path)
        raw = read_scalesim_cfg(path) if path.suffix == ".cfg" else _read_yaml(path)
        try:
            chip = ChipConfig.model_validate(raw)
        except ValidationError as err:
            raise validation_to_input_error(err, source) from None
        if not overrides:
            return chip
        raw = _apply_overrides(raw, overrides, source)
    try:
        return ChipConfig.model_validate(raw)
    except ValidationError as err:
        raise validation_to_input_error(err, "overrides") from None


def config_label(name_or_path: str | Path) -> str:
    """Short name for a config argument (preset name or file stem)."""
    return Path(str(name_or_path)).stem

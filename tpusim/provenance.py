"""Provenance: what a run's outputs say about the run that made them.

``summary.json`` of ``tpusim run`` carries a ``provenance`` record: the resolved chip config
(every field, after ``--set``), the overrides and options given, the command line, the tpusim
version, a run id shared by every file of the run, and the sha256 of each input file. ``run``
also writes the resolved config as ``config.yaml``, so that
``tpusim run DIR/config.yaml WORKLOAD`` (plus the recorded ``--format``/``--batch``/``--engine``)
reproduces the run: the YAML holds every field, so nothing depends on the preset it came from.

The default output folder of a run is named for everything that changes its numbers (config,
workload, format, batch, engine, overrides, ONNX input shapes, ``--numerics``), so two different
runs never share a default folder, while a rerun of the same command overwrites its own.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from . import __version__

if TYPE_CHECKING:
    from .config import ChipConfig
    from .simulator import Result


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_file(kind: str, arg: Any) -> dict[str, Any] | None:
    """``{"arg", "path", "sha256"}`` of a ``config`` or ``workload`` argument (a preset or
    shipped name found where the loaders find it) or of any other ``kind``'s file path (None:
    an in-memory one)."""
    if arg is None or not isinstance(arg, (str, Path)):
        return None
    if kind == "config":
        from .config import find_config
        path = find_config(arg)
    elif kind == "workload":
        from .importers import find_workload
        path = find_workload(arg)
    else:
        path = arg
    return {"arg": str(arg), "path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def resolved_config(chip: "ChipConfig") -> dict[str, Any]:
    """Every field of ``chip`` as plain JSON/YAML values."""
    return chip.model_dump(mode="json")


def config_yaml(chip: "ChipConfig", run_id: str | None = None,
                command: str = "run THIS_FILE WORKLOAD") -> str:
    """The resolved config as YAML that :func:`tpusim.load_config` reads back to ``chip``;
    ``command``: how the run that wrote it is redone from it."""
    head = ("# Resolved config of a tpusim run" + (f" (run {run_id})" if run_id else "")
            + ": every field after --set.\n"
            f"# `tpusim {command}` with the run's options reproduces it.\n")
    return head + yaml.safe_dump(resolved_config(chip), sort_keys=False, allow_unicode=True)


def mark_overrides(chip: "ChipConfig", overrides: dict[str, Any]) -> "ChipConfig":
    """``chip`` whose free-text description says which fields ``--set`` changed, so that the
    ``config.yaml`` of a run does not describe the preset it no longer is."""
    if not overrides:
        return chip
    given = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return chip.model_copy(update={"description": f"{chip.description} [--set {given}]".strip()})


def describe_chip(chip: "ChipConfig") -> str:
    """One line built from the config's own fields (never its free-text ``description``)."""
    a, m = chip.array, chip.memory
    arrays = f"{a.count} x " if a.count > 1 else ""
    sram_mib = (m.sram.input_kib + m.sram.weight_kib + m.sram.output_kib) / 1024
    return (f"{arrays}{a.rows}x{a.cols} {a.dataflow} array{'s' if a.count > 1 else ''} at "
            f"{chip.clock_ghz:g} GHz · {sram_mib:.4g} MiB SRAM · {m.hbm.kind} "
            f"{m.hbm.bandwidth_gbps:g} GB/s")


def command_line(argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["tpusim", *args])


def command_provenance(chip: "ChipConfig", *, run_id: str | None = None, config_arg: Any = None,
                       overrides: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None,
                       inputs: dict[str, dict[str, Any] | None] | None = None,
                       argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``provenance`` record every command's JSON output carries: run id, tpusim version,
    command line, ``--set`` overrides, the options given (None, False and empty ones dropped), each input
    file's path and sha256 (the config's and ``inputs``') and every field of the resolved
    config. ``argv``: the command's arguments (None: not known, ``command`` is null)."""
    opts = {k: str(v) if isinstance(v, Path) else v for k, v in (options or {}).items()
            if not (v is None or v is False or (isinstance(v, (tuple, list, dict)) and not v))}
    files = {"config": input_file("config", config_arg), **(inputs or {})}
    return {
        "run_id": run_id or new_run_id(), "tpusim_version": __version__,
        "command": command_line(argv) if argv is not None else None,
        "overrides": dict(overrides or {}), "options": opts,
        "inputs": {k: v for k, v in files.items() if v},
        "resolved_config": resolved_config(chip),
    }


def run_provenance(result: "Result", *, run_id: str, config_arg: Any = None,
                   workload_arg: Any = None, overrides: dict[str, Any] | None = None,
                   options: dict[str, Any] | None = None, argv: Sequence[str] | None = None,
                   out_dir: str | Path | None = None) -> dict[str, Any]:
    """The ``provenance`` record of ``summary.json`` (:func:`command_provenance` with the
    workload's file and a ``reproduce`` command); ``argv``: the command's arguments."""
    s = result.summary
    rec = command_provenance(result.config, run_id=run_id, config_arg=config_arg,
                             overrides=overrides, options=options, argv=argv,
                             inputs={"workload": input_file("workload", workload_arg)})
    if out_dir is not None and workload_arg is not None:
        cmd = ["tpusim", "run", str(Path(out_dir) / "config.yaml"), str(workload_arg)]
        if s.get("format") and options and options.get("format"):
            cmd += ["--format", str(options["format"])]
        if s.get("batch", 1) != 1:
            cmd += ["--batch", str(s["batch"])]
        if options and options.get("engine"):
            cmd += ["--engine", str(options["engine"])]
        for shape in (options or {}).get("input_shapes") or ():
            cmd += ["--input-shape", str(shape)]
        if options and options.get("numerics"):
            cmd += ["--numerics"]
        if options and options.get("fuse"):
            cmd += ["--fuse"]
        rec["reproduce"] = shlex.join(cmd)
    return rec


def hbm_warning(result: "Result", fmt: str | None = None) -> str | None:
    """One line when the workload's static weights, in the formats its layers ran in (``fmt``:
    the run's ``--format``), exceed the chip's HBM (where the config gives a capacity): the run
    still assumes they fit, as it models one chip with its weights in HBM. (No pandas: the
    formats come from the rules the simulator applies, not the layer table.)"""
    cap = result.config.memory.hbm.capacity_gib
    if cap is None:
        return None
    from .formats import get_format
    from .layer_rules import layer_formats
    from .llm_tokens import llm_step
    layers = result.workload.layers
    fmts = layer_formats(layers, result.config, fmt, result.workload.name)
    static = [(layer, get_format(f).bytes_per_element) for layer, f in zip(layers, fmts)
              if layer.weights == "static"]
    total = sum(layer.weight_elements * layer.count * b for layer, b in static)
    total += _lookup_tables(result.workload.notes) * (static[-1][1] if static else 2)
    # an LLM step's KV cache: the attention GEMMs' key and value operands, in their formats
    kv = sum(layer.weight_elements * layer.count * get_format(f).bytes_per_element
             for layer, f in zip(layers, fmts) if layer.name in ("attn_qk", "attn_av")
             and layer.weights == "dynamic") if llm_step(result.workload.notes) else 0
    if total + kv <= cap * 2**30:
        return None
    what = "weights" + (" and KV cache" if kv else "")
    return (f"warning: {result.workload.name}'s {what} are {(total + kv) / 2**30:,.1f} GiB, more "
            f"than {result.config.name}'s {cap:g} GiB of HBM; the times assume they fit (shard "
            "an LLM step with --chips, or use a narrower --format)")


def _lookup_tables(notes) -> int:
    """Weights an LLM step trace's rows do not hold: its token embedding (when the LM head does
    not share it) and position / token-type tables, from the preset its notes name (0 for any
    other trace)."""
    from .errors import InputError
    from .importers.llm import get_preset
    from .llm_tokens import llm_step
    step = llm_step(notes)
    if step is None:
        return 0
    try:
        cfg = get_preset(step["model"])
    except InputError:
        return 0
    shared = cfg.lm_head and cfg.tied_embeddings      # the LM head's GEMM row holds the table
    return ((0 if shared else cfg.vocab) + cfg.max_positions + cfg.type_vocab) * cfg.hidden


def coverage_warning(result: "Result") -> str | None:
    """One line naming the ONNX nodes that were not costed, or None when every node was."""
    cov = result.workload.metadata.get("onnx_coverage") if result.workload.metadata else None
    if not cov or not cov["not_costed"]:
        return None
    names = ", ".join(f"{n['name']} ({n['op']})" for n in cov["not_costed"][:5])
    more = f" and {len(cov['not_costed']) - 5} more" if len(cov["not_costed"]) > 5 else ""
    return (f"warning: {result.workload.source or result.workload.name}: "
            f"{len(cov['not_costed'])} of {cov['nodes_costed'] + len(cov['not_costed'])} compute "
            f"nodes not costed (their time is missing from the totals): {names}{more}; "
            "see onnx_coverage in summary.json")


def run_summary(result: "Result", provenance: dict[str, Any] | None) -> dict[str, Any]:
    """``summary.json``: the simulator's summary, then ``onnx_coverage`` and ``provenance``."""
    out = dict(result.summary)
    cov = result.workload.metadata.get("onnx_coverage") if result.workload.metadata else None
    if cov is not None:
        out["onnx_coverage"] = cov
    out["provenance"] = provenance if provenance is not None else {
        "run_id": new_run_id(), "tpusim_version": __version__,
        "resolved_config": resolved_config(result.config)}
    return out


_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,-]+")


def default_run_dir(config: Any, workload: Any, *, fmt: str | None = None, batch: int = 1,
                    engine: str | None = None, overrides: dict[str, Any] | None = None,
                    input_shapes: Sequence[str] = (), numerics: bool = False,
                    fuse: bool = False, root: str | Path = "results") -> Path:
    """``results/<config>-<workload>[-<format>][-b<batch>][-<engine>][-<overrides>]...``.

    Overrides are sorted (their order does not change the run); a suffix longer than 60
    characters is replaced by the first 12 hex digits of its sha256."""
    parts = []
    if fmt:
        parts.append(str(fmt))
    if batch != 1:
        parts.append(f"b{batch}")
    if engine:
        parts.append(str(engine))
    for path, value in sorted((overrides or {}).items()):
        parts.append(f"{path}={json.dumps(value) if not isinstance(value, str) else value}")
    if input_shapes:
        parts.append("shape=" + ",".join(sorted(input_shapes)))
    if numerics:
        parts.append("numerics")
    if fuse:
        parts.append("fused")
    return named_dir(f"{Path(str(config)).stem}-{Path(str(workload)).stem}", parts, root)


def named_dir(base: str, parts: Sequence[str], root: str | Path = "results") -> Path:
    """``root/base[-part-part...]``, characters unsafe in a file name replaced by ``_``; a
    suffix longer than 60 characters is replaced by the first 12 hex digits of its sha256."""
    suffix = _UNSAFE.sub("_", "-".join(parts))
    if len(suffix) > 60:
        suffix = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return Path(root) / (f"{base}-{suffix}" if suffix else base)

"""``tpusim run CONFIG WORKLOAD --chips N --parallel tp=..,dp=..``: an LLM step trace, sharded.

A trace written by ``tpusim workload llm`` names its step in its note (model, phase, sequences,
new tokens, kv_len, dtype; ``llm_tokens.py``) and its LM head row says whether it computes
every token's logits or the last one's. Rather than give the trace format a collective row type
(which every importer, writer and plot would then have to know), a sharded run rebuilds the
step from that note and prices it with :func:`pod.infer.infer_step`: each chip runs its tp shard
of the model through the single-chip ``simulate``, and the tp all-reduces and the logits
all-gather sit on the critical path after it. The model must be a preset whose dimensions match
the note (a custom model's note does not carry all of them: ``tpusim infer`` is its command).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InputError

_DTYPE = re.compile(r"kv_len \d+, (?P<dtype>[A-Za-z0-9_]+)"
                    r"(?:, KV cache (?P<kv>[A-Za-z0-9_]+))?;")
_DIMS = ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab")


def llm_step_of(wl, source: str) -> dict[str, Any]:
    """The LLM step a trace's notes describe, with its dtype and logits mode; a one-line
    InputError for a trace that is not one step of a preset model."""
    from ..importers.llm import PRESETS, get_preset
    from ..llm_tokens import llm_step
    step = llm_step(wl.notes)
    if step is None:
        raise InputError(source, None, message="is not an LLM step trace (its header names "
                         "no `tpusim workload llm` step); --chips shards only those, other "
                         "workloads run on one chip (drop --chips and --parallel)")
    try:
        cfg = get_preset(step["model"])
    except InputError:
        raise InputError(source, "model", step["model"], "--chips needs a preset model (for a "
                         "custom one use `tpusim infer`); presets: " + ", ".join(sorted(PRESETS))
                         ) from None
    note = next(n for n in wl.notes if n.startswith(f"{step['model']} {step['phase']}:"))
    for dim in _DIMS:
        got = re.search(rf"\b{dim} (\d+)", note)
        if got and int(got.group(1)) != getattr(cfg, dim):
            raise InputError(source, dim, int(got.group(1)), f"the trace's {dim} differs from "
                             f"preset {cfg.name}'s {getattr(cfg, dim)}; use `tpusim infer`")
    m = _DTYPE.search(note)
    head = next((l for l in wl.layers if l.name == "lm_head"), None)
    logits = "last" if head is not None and head.m == step["sequences"] and \
        step["new_tokens"] > 1 else "all"
    return {**step, "cfg": cfg, "dtype": m["dtype"] if m else "bf16",
            "kv_dtype": m["kv"] if m and m["kv"] else None, "logits": logits}


def _too_big(step: dict[str, Any], batch: int) -> str:
    """What a ``run --chips`` user can change when the step does not fit: ``run`` has no
    --dtype, so a narrower dtype (or fewer sequences) means regenerating the trace."""
    from ..formats import get_format
    bits = get_format(step["dtype"]).bits
    narrower = "int8" if bits > 8 else "int4" if bits > 4 else None
    cmd = (f"tpusim workload llm {step['model']} --phase {step['phase']} --batch "
           f"{step['sequences']} --seq {step['new_tokens']} --kv-len {step['kv_len']} "
           f"--dtype {narrower or step['dtype']}"
           + (f" --kv-dtype {step['kv_dtype']}" if step["kv_dtype"] and get_format(
               step["kv_dtype"]).bits < get_format(narrower or step["dtype"]).bits else "")
           + (" --logits last" if step["logits"] == "last" else ""))
    return ("raise tp (--chips, --parallel tp=)" + (", lower --batch" if batch > 1 else "")
            + " or regenerate the trace with " + ("a narrower dtype or " if narrower else "")
            + f"fewer sequences (--batch), e.g. `{cmd}`")


def run_sharded(chip, workload: str, chips: int, parallel: str | None, batch: int,
                out_dir: Path | None, topology: str | None = None,
                overrides: dict[str, Any] | None = None):
    """Price the trace ``workload`` sharded over ``chips`` chips: the step's
    :class:`~tpusim.pod.infer.InferResult`, the record of ``DIR/sharded.json`` and DIR, which
    the caller writes. ``batch`` multiplies the trace's sequences, as ``run --batch``. The
    default DIR is named for the chips, the layout as parsed, the batch and the ``--set``
    ``overrides``, as ``run`` names its folders, so that runs that differ never share one."""
    from .. import load_workload
    from .._io import check_dir
    from .infer import infer_step
    from .sharding import ParallelSpec, parse_spec, spec_source
    from .topology import ONE_SLICE, make_slice
    if not isinstance(batch, int) or batch < 1:
        raise InputError("--batch", None, batch, "must be a positive integer")
    wl = load_workload(workload)
    step = llm_step_of(wl, str(workload))
    sl = make_slice(chip.ici, chip.dcn, shape=topology, chips=chips, beyond=ONE_SLICE)
    spec = parse_spec(parallel) if parallel else ParallelSpec(tp=sl.chips)
    r = infer_step(chip, step["cfg"], sl, spec, step["phase"], step["sequences"] * batch,
                   step["new_tokens"], step["kv_len"], step["dtype"], step["logits"],
                   too_big=_too_big(step, batch), source=str(workload),
                   spec_source=spec_source(parallel, chips, topology),
                   kv_dtype=step["kv_dtype"])
    if out_dir is None:
        from ..provenance import default_run_dir
        out = default_run_dir(chip.name, wl.name, batch=batch, overrides=overrides)
        out = out.with_name(f"{out.name}-{sl.chips}chips-"
                            + spec.label().replace(",", "-").replace("=", ""))
    else:
        out = out_dir
    check_dir(out)
    record = {**r.as_dict(), "config": chip.name, "workload": wl.name, "model": step["model"],
              "sequences": step["sequences"] * batch, "new_tokens": step["new_tokens"],
              "kv_len": step["kv_len"], "dtype": step["dtype"], "logits": step["logits"]}
    return r, record, out


__all__ = ["llm_step_of", "run_sharded"]

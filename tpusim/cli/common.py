"""Options and helpers shared by the subcommands."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InputError


def repeated(values, key=lambda v: v):
    """The first of ``values`` whose ``key`` an earlier one had (a sweep point given twice, a
    typo), else None."""
    seen = set()
    for v in values:
        if key(v) in seen:
            return v
        seen.add(key(v))
    return None


def once(option: str, values: list) -> list:
    """``values`` unless one repeats (``--rows 32,32``, ``--formats int8,int8``: the same point
    twice, a typo): then a one-line :class:`InputError` naming ``option``."""
    twice = repeated(values)
    if twice is not None:
        raise InputError(option, None, twice, "given twice; list each value once")
    return values


def parse_sets(values: tuple[str, ...], multi: bool = False) -> dict[str, Any]:
    """``PATH=VALUE`` pairs (``PATH=V1,V2`` lists when ``multi``) to a dict of parsed values."""
    from ..config import parse_value
    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise InputError("--set", None, item, "expected PATH=VALUE, e.g. array.rows=64")
        path, _, value = item.partition("=")
        path = path.strip()
        if not path:
            raise InputError("--set", None, item, "expected PATH=VALUE, e.g. array.rows=64")
        if path in out:   # the last one would silently win
            raise InputError("--set", path, message="given twice; give each field once")
        if multi:
            parts = [p.strip() for p in value.split(",")]
            if any(p == "" for p in parts):
                raise InputError("--set", path, value, "expected a comma-separated list")
            got = [parse_value(p) for p in parts]
            if repeated(got, repr) is not None:   # two identical sweep points
                raise InputError("--set", path, value, "a value given twice; list each once")
            out[path] = got
        else:
            out[path] = parse_value(value.strip())
    return out


def set_option(help_text: str = "Override a config field, e.g. --set array.rows=64."):
    return click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help=help_text)



def _use_plotlyjs(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Build this command's pages in mode ``value`` until the command ends."""
    from ..plotlyjs import _MODE, check
    token = _MODE.set(check(value))
    ctx.call_on_close(lambda: _MODE.reset(token))
    return value


def plotlyjs_option():
    """``--plotlyjs inline|directory|cdn`` on every command that writes a page."""
    from ..plotlyjs import MODES
    return click.option(
        "--plotlyjs", type=click.Choice(MODES), default="inline", show_default=True,
        expose_value=False, callback=_use_plotlyjs,
        help="How pages load plotly.js: inline (one self-contained file), directory (one "
             "shared plotly.min.js beside the pages, offline) or cdn (needs the network).")


def json_option(what: str):
    """``--json``: ``what`` as JSON on stdout instead of the tables; messages go to stderr."""
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as JSON on stdout instead of the tables (the "
                             "'wrote ...' line goes to stderr).")


def _plain(v: Any) -> Any:
    """JSON values: DataFrames as lists of records, numpy scalars as numbers, NaN and
    infinities as null (JSON has neither), paths as strings."""
    import math
    if hasattr(v, "as_posix"):
        return str(v)
    if hasattr(v, "to_dict") and hasattr(v, "columns"):
        return [_plain(r) for r in v.to_dict("records")]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):   # numpy scalar
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def echo_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (see :func:`_plain`)."""
    import json
    click.echo(json.dumps(_plain(obj), indent=2, allow_nan=False, default=str))


def loaded_chip(config: Any, sets: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """CONFIG with the ``--set`` overrides applied (its description saying so,
    :func:`tpusim.provenance.mark_overrides`), and the overrides as parsed."""
    from ..config import load_config
    from ..provenance import mark_overrides
    overrides = parse_sets(sets)
    return mark_overrides(load_config(config, **overrides), overrides), overrides


def command_record() -> dict[str, Any]:
    """Run id, tpusim version, command line and every option as click resolved it (None
    dropped; a False kept: ``validate --no-pods`` is not the default) of the command now
    running, for outputs that simulate no one chip."""
    from .. import __version__
    from ..provenance import command_line, new_run_id
    ctx = click.get_current_context()
    argv = command_argv(ctx)
    return {"run_id": new_run_id(), "tpusim_version": __version__,
            "command": command_line(argv) if argv is not None else None,
            "options": {k: _plain(v) for k, v in ctx.params.items() if v is not None}}


def default_out(command: str, config: Any, model: str,
                skip: tuple[str, ...] = ("out_dir", "trace_path", "top", "plotlyjs")) -> Path:
    """``results/COMMAND-<config>-<model>[-<options>]``: named for every option of the command
    now running given a value other than its default (``--set`` overrides sorted), as ``run``
    names its folders, so that runs that differ do not share one (``skip``: options that change
    no number in it)."""
    from ..provenance import named_dir
    ctx = click.get_current_context()
    parts = []
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if (not isinstance(p, click.Option) or p.name in skip or v is None or v == p.default
                or v == () or v is False):
            continue
        name = p.opts[0].lstrip("-")
        if p.name == "parallel":       # as parsed: 'FSDP = 8' names the folder fsdp=8 does
            from ..pod.sharding import parse_spec
            try:
                v = parse_spec(v).label()
            except InputError:
                pass                   # the command reports it before writing anything
        if p.name == "sets":
            parts += sorted(str(x) for x in v)
        else:
            parts.append(name if v is True else f"{name}={v}")
    return named_dir(f"{command}-{Path(str(config)).stem}-{model}", parts)


def command_argv(ctx) -> list[str] | None:
    """The arguments tpusim was given (the CLI's entry point keeps them), None if unknown."""
    return (ctx.find_object(dict) or {}).get("argv")


def workload_inputs(workloads) -> dict[str, Any]:
    """Provenance ``inputs`` for WORKLOAD arguments: ``workload``, or ``workload_1``, ... when
    there are several, each with its path and sha256."""
    from ..provenance import input_file
    return {("workload" if len(workloads) == 1 else f"workload_{i + 1}"):
            input_file("workload", w) for i, w in enumerate(workloads)}


def command_provenance_of(chip, config: Any, overrides: dict[str, Any],
                          inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``provenance`` record (:func:`tpusim.provenance.command_provenance`) of the command
    now running: its arguments, every option as click resolved it (``overrides``: the parsed
    ``--set``; CONFIG as an input file with its sha256), ``inputs``' files and the resolved
    ``chip``."""
    from ..provenance import command_provenance
    ctx = click.get_current_context()
    options = {k: v for k, v in ctx.params.items() if k not in ("config", "sets")}
    return command_provenance(chip, config_arg=config, overrides=overrides,
                              options=options, inputs=inputs,
                              argv=command_argv(ctx))


def record_files(out, name: str, record: dict[str, Any], chip, run_id: str,
                 command: str) -> dict[str, Any]:
    """``NAME.json`` (``record``) and ``config.yaml`` (the resolved ``chip``; ``command``, e.g.
    ``train THIS_FILE MODEL``, with the recorded options reproduces the run) as name: writer
    entries for :func:`tpusim.results.write_all` into ``out``."""
    import json

    from .._io import finite
    from ..results import config_file
    json_text = json.dumps(finite(record), indent=2, sort_keys=True) + "\n"   # inf: null
    config = config_file(out, chip, run_id, command)
    return {f"{name}.json": lambda p: p.write_text(json_text), **config}


def write_outputs(out, name: str, record: dict[str, Any], page: str | None, chip,
                  run_id: str, command: str, trace: tuple[Path, str] | None = None) -> list:
    """``DIR/NAME.json`` (``record``), ``DIR/report.html`` (``page``, unless None) and
    ``DIR/config.yaml`` (the resolved ``chip``; ``command``, e.g. ``train THIS_FILE MODEL``,
    with the recorded options reproduces the run), all or nothing; files an earlier run of the
    same command left in DIR are removed (:func:`tpusim.results.write_all`, group NAME).
    ``trace``: (path, text) of a ``--trace`` file (checked by the caller): one of the run's files
    when it lies in DIR, else written atomically once they are."""
    from ..results import write_all
    from ..trace_events import in_dir
    files = record_files(out, name, record, chip, run_id, command)
    if page is not None:
        files["report.html"] = lambda p: p.write_text(page)
    inside = trace is not None and in_dir(trace[0], out)
    if inside:
        files[trace[0].name] = lambda p: p.write_text(trace[1])
    written = write_all(files, out, group=name, run_id=run_id)
    if page is not None:
        from ..plotlyjs import write_beside   # --plotlyjs directory: the page's shared copy
        write_beside(out, ["report.html"])
    if trace is not None and not inside:
        from .._io import atomic_write_text
        atomic_write_text(trace[0], trace[1])
    return written


def trace_target(out: Path | None, default: Path, reads: Path | None = None) -> Path:
    """Where a command that writes a trace CSV writes it: ``out`` as given, else ``default`` (in
    the current folder), checked before anything runs. Never the file it ``reads``; and a
    target that exists must be a trace tpusim wrote (a comment line naming tpusim), not a
    file of the user's that happens to share the name."""
    import os

    from .._io import TRACE_MARK, check_target, headed_by
    from ..ownership import check_lone_file
    target = Path(out or default)
    check_target(target)
    if reads is not None and target.exists() and Path(reads).exists() and \
            os.path.samefile(target, reads):
        raise InputError(str(target), None, message="is the file this command reads; give "
                         "--out another path")
    check_lone_file(target, lambda p: headed_by(p, TRACE_MARK), "--out")
    return target


def trace_option():
    """``--trace FILE.json`` of the commands that lay a step out in time."""
    return click.option("--trace", "trace_path", default=None, metavar="FILE.json",
                        help="Also write the step's timeline as a Chrome/Perfetto trace (open "
                             "it in ui.perfetto.dev).")


def checked_trace(trace_path, out, own: tuple[str, ...]):
    """``--trace``'s path, checked before anything is simulated or written (``own``: the
    command's files, which a trace in ``out`` must not replace); None when not given."""
    if trace_path is None:
        return None
    from ..trace_events import check_trace_path
    return check_trace_path(trace_path, out, own)


# A model's dimensions as options (train/infer's ``custom`` MODEL, workload llm's custom model
# or preset overrides): (option, LlmConfig field, type, help).
MODEL_DIMS = (("--hidden", "hidden", int, "hidden size."), ("--layers", "layers", int, "blocks."),
              ("--heads", "heads", int, "query heads."),
              ("--kv-heads", "kv_heads", int, "key/value heads (default = heads)."),
              ("--head-dim", "head_size", int, "per-head size when heads x it != hidden."),
              ("--ffn", "ffn", int, "FFN inner size (default 4 x hidden)."),
              ("--vocab", "vocab", int, "vocabulary."),
              ("--experts", "experts", int, "MoE experts per layer."),
              ("--top-k", "top_k", int, "experts per token."))


def model_dim_options(prefix: str):
    """The options of :data:`MODEL_DIMS`, then ``--act``, ``--gated`` and ``--parallel-block``,
    each help led by ``prefix``; the command receives them as ``dims`` (LlmConfig fields given,
    via :func:`given_dims`)."""
    opts = [click.option(flag, field, type=kind, help=prefix + text)
            for flag, field, kind, text in MODEL_DIMS]
    opts += [click.option("--act", type=click.Choice(["relu", "gelu", "silu"]), default=None,
                          help=prefix + "FFN activation."),
             click.option("--gated/--no-gated", default=None,
                          help=prefix + "gated FFN (SwiGLU)."),
             click.option("--parallel-block", is_flag=True, default=None,
                          help=prefix + "attention and FFN in parallel (PaLM).")]

    def wrap(f):
        for o in reversed(opts):
            f = o(f)
        return f
    return wrap


def given_dims(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop :func:`model_dim_options`' values out of a command's keyword arguments: the
    LlmConfig fields given (not None)."""
    names = [field for _, field, _, _ in MODEL_DIMS] + ["act", "gated", "parallel_block"]
    return {k: v for k in names if (v := kw.pop(k, None)) is not None}


def dim_flags(dims: dict[str, Any]) -> str:
    """``dims`` as the options that give them (a trace's regenerate line)."""
    flag = {field: opt for opt, field, _, _ in MODEL_DIMS}
    out = []
    for k, v in dims.items():
        opt = flag.get(k, "--" + k.replace("_", "-"))
        if k == "gated":                     # --gated/--no-gated
            out.append("--gated" if v else "--no-gated")
        elif isinstance(v, bool):            # a flag (--parallel-block): given only when on
            out += [opt] if v else []
        else:
            out.append(f"{opt} {v}")
    return " ".join(out)

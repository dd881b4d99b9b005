"""The ``tpusim`` command: a thin click shell over the library.

Subcommands live in their own modules and are imported only when run, so ``tpusim --help`` stays
fast. Bad input (:class:`tpusim.InputError`, click usage errors) prints one line on stderr and
exits 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# name -> (module, function, one-line help). Modules are imported on use only.
COMMANDS = {
    "run": ("tpusim.cli.run", "run", "Simulate one workload on one chip."),
    "sweep": ("tpusim.cli.sweep", "sweep", "Sweep array sizes, formats and config fields."),
    "roofline": ("tpusim.cli.roofline", "roofline", "Roofline chart and table of a workload."),
    "formats": ("tpusim.cli.formats", "formats", "Area, energy, throughput and error per format."),
    "compress": ("tpusim.cli.compress", "compress",
                 "What sparsity, mixed precision and their combinations buy on a chip."),
    "import": ("tpusim.cli.imports", "import_", "Convert ONNX models or SCALE-Sim topologies."),
    "workload": ("tpusim.cli.workloads", "workload", "Build workload traces (LLM prefill/decode)."),
    "generate": ("tpusim.cli.generate", "generate",
                 "LLM prefill + decode steps with a growing KV cache."),
    "serve": ("tpusim.cli.serve", "serve",
              "Serve an LLM: requests, continuous batching, paged KV cache."),
    "calibrate": ("tpusim.cli.calibrate", "calibrate", "Fit a preset to measured latencies."),
    "validate": ("tpusim.cli.calibrate", "validate", "Run every public check we have."),
    "compare": ("tpusim.cli.compare", "compare",
                "Compare runs: summary deltas, per-layer speedup, overlaid rooflines."),
    "configs": ("tpusim.cli.run", "configs", "List the chip presets and shipped workloads."),
    "train": ("tpusim.cli.train", "train", "One LLM training step on a multi-chip slice."),
    "infer": ("tpusim.cli.infer", "infer", "One sharded LLM prefill/decode step on a slice."),
}


def _available() -> dict[str, tuple[str, str, str]]:
    return {n: v for n, v in COMMANDS.items() if importlib.util.find_spec(v[0]) is not None}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_available())

    def get_command(self, ctx, name):
        spec = _available().get(name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        return getattr(module, spec[1])

    def format_commands(self, ctx, formatter):
        rows = [(n, v[2]) for n, v in sorted(_available().items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tpusim")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """tpusim: simulate systolic-array (TPU-style) chips.

    \b
    Example:
      tpusim run default resnet50
      tpusim sweep default resnet50 --rows 32,64,128 --cols 32,64,128
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# Library errors name the Python argument at fault; on the command line it is a flag.
FLAGS = {"batch": "--batch", "format": "--format", "fmt": "--format", "formats": "--formats",
         "engine": "--engine", "overrides": "--set", "jobs": "--jobs",
         "scheduler": "--scheduler", "fit_spec": "--fit", "folds": "--folds", "loss": "--loss"}


def cli_message(exc) -> str:
    """``str(exc)`` of an :class:`~tpusim.errors.InputError` with its argument named as a flag."""
    flag = FLAGS.get(exc.source or "")
    if flag is None:
        return str(exc)
    return ": ".join(p for p in (flag, exc.where, exc.detail) if p).replace("\n", " ")


def os_error_line(exc: OSError) -> str:
    """One line for a failed file operation, naming the user's path (not our temp file)."""
    import re
    from pathlib import Path
    name = exc.filename if exc.filename is not None else exc.filename2
    if name is not None:
        p = Path(str(name))
        m = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", p.name)   # atomic writers' ".NAME.XXXX.tmp"
        if m:
            p = p.with_name(m.group(1))
        name = str(p)
    why = exc.strerror or type(exc).__name__
    # Readers turn their OSErrors into InputErrors, so what reaches here is a failed write.
    return f"{name}: cannot write ({why})" if name else f"cannot write output ({why})"


# Options whose empty value names nothing (`--out ''` read as the current folder, `--format ''`
# as the default format): refused, whichever command takes them.
def _empty_option(argv: list[str]) -> str | None:
    """What was given an empty value, if anything: an option (``--out ''``, ``--parallel=``) or
    an argument (``tpusim run tpu_v5e ''``). No option or argument of tpusim means anything
    empty, so each is one line before click reads it."""
    for i, a in enumerate(argv):
        if a == "--":
            return None
        name, eq, value = a.partition("=")
        if name.startswith("--") and eq and not value:
            return name
        if a == "":
            prev = argv[i - 1] if i else ""
            named = prev.startswith("--") and "=" not in prev and prev not in _flags(argv)
            return prev if named else f"argument {i + 1}"
    return None


def _flags(argv: list[str]) -> set[str]:
    """The flag options (``--no-html``, ``--json``: they take no value) of the command ``argv``
    names (its subcommand's too: ``workload llm``), and the group's."""
    cmd, out = cli, set()
    for token in [None, *argv]:
        if token is not None:
            sub = cmd.get_command(None, token) if isinstance(cmd, click.Group) else None
            if sub is None:
                continue
            cmd = sub
        for p in cmd.params:
            if getattr(p, "is_flag", False):
                out.update(o for o in p.opts + p.secondary_opts if o.startswith("--"))
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from ..errors import InputError
    empty = _empty_option(argv)
    if empty is not None:
        click.echo(f"tpusim: error: {empty}: got ''; give a value (an empty one names nothing)",
                   err=True)
        sys.exit(2)
    try:
        rv = cli.main(args=argv, prog_name="tpusim", standalone_mode=False,
                      obj={"argv": argv})
    except InputError as exc:
        if debug:
            raise
        click.echo(f"tpusim: error: {cli_message(exc)}", err=True)
        sys.exit(2)
    except OSError as exc:   # an unwritable, missing or full --out, found when writing
        if debug:
            raise
        click.echo(f"tpusim: error: {os_error_line(exc)}", err=True)
        sys.exit(2)
    except MemoryError:
        if debug:
            raise
        click.echo("tpusim: error: out of memory: a layer or sweep is larger than this machine "
                   "can simulate; reduce its dims, --batch or the number of points", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("tpusim: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        param = getattr(exc, "param", None)
        if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) \
                and param is not None and exc.message:
            # a value click's own types refuse reads as ours do: the option, then why
            hint = param.opts[0] if getattr(param, "opts", None) else param.human_readable_name
            click.echo(f"tpusim: error: {hint}: {_plain_path_message(exc.message)}"
                       .replace("\n", " "), err=True)
            sys.exit(exc.exit_code)
        cmd = exc.ctx.command_path if getattr(exc, "ctx", None) else "tpusim"
        click.echo(f"{cmd}: error: {exc.format_message()}".replace("\n", " "), err=True)
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


def _plain_path_message(message: str) -> str:
    """click.Path's "Directory 'x' is a file." as ours read: what was given, then what the
    option takes (it names a folder)."""
    import re
    m = re.fullmatch(r"Directory '(.*)' is a file\.", message.strip())
    return f"got '{m.group(1)}'; an existing file: this option takes a folder" if m else message

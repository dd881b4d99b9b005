"""``tpusim run`` and ``tpusim configs``."""
from __future__ import annotations

from pathlib import Path

import click

from .common import command_argv, parse_sets, set_option, plotlyjs_option


def print_summary(result, out_dir: Path | None, written: list | None = None) -> None:
    from .plain_table import render

    title, rows = summary_rows(result)
    text = render(title, ("metric", "value"), rows)   # rich's characters, without rich
    if text is not None:
        click.echo(text, nl=False)
    else:
        from rich.console import Console
        from rich.table import Table
        t = Table(title=title)
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in rows:
            t.add_row(k, v)
        Console(highlight=False).print(t)
    if out_dir is not None:
        click.echo(f"wrote {out_dir}/" + ", ".join(Path(p).name for p in written))


def summary_rows(result) -> tuple[str, list[tuple[str, str]]]:
    """The terminal summary's title and (metric, value) rows."""
    from .. import units
    from ..wording import bound_label, offchip, peak_phrase

    s = result.summary
    engine = ", event engine" if s.get("engine") == "event" else ""     # --engine event says so
    title = f"{s['workload']} on {s['config']} ({s['timing_model']}{engine}, {s['format']})"
    rows = [
        ("latency", f"{units.seconds(s['latency_s'])} ({s['total_cycles']:,.0f} cycles)"),
        _throughput(result),
        ("achieved of peak", peak_phrase(s, result.config)),
        ("energy / inference", units.joules(s['energy_per_inference_j'])),
        (f"{offchip(result.config)} traffic", units.nbytes(s['hbm_bytes'])),
        ("time by bound", ", ".join(f"{bound_label(k, offchip(result.config))} {v:.0%}"
                                    for k, v in s["bound_share"].items() if v)),
    ]
    if s.get("chip_mm2") is not None:
        rows.append(("chip area", f"≥ {units.number(s['chip_mm2'])} mm² (arrays "
                                  f"{units.number(s['array_mm2'])} + SRAM "
                                  f"{units.number(s['sram_mm2'])}), "
                                  f"{units.number(s['tops_per_mm2'])} TOPS/mm²"))
    if "sparse_speedup" in s:
        rows.append(("sparse weights", f"x{s['sparse_speedup']:.3g} vs dense "
                                       f"({units.seconds(s['dense_latency_s'])}); per layer: "
                                       "sparse_speedup, sparse_why"))
    rows.append(("simulated in", units.seconds(s['simulator_seconds'], 3)))
    return title, rows


def print_fusion(fusion: dict) -> None:
    """One line per fused group: what fusing it saved (HBM bytes, cycles, launches)."""
    from .. import units

    tot = fusion["total"]
    click.echo(f"fusion: {len(fusion['groups'])} groups saved {units.nbytes(tot['hbm_bytes_saved'])}"
               f" HBM traffic, {tot['cycles_saved']:,.0f} cycles, {tot['launches_saved']:,} "
               "launches")
    for g in fusion["groups"][:20]:
        click.echo(f"  {g['producer']} + {', '.join(g['fused'])}: "
                   f"{units.nbytes(g['hbm_bytes_saved'])}, {g['cycles_saved']:,.0f} cycles, "
                   f"{g['launches_saved']} launches")
    if len(fusion["groups"]) > 20:
        click.echo(f"  ... {len(fusion['groups']) - 20} more groups in summary.json")


def _throughput(result) -> tuple[str, str]:
    """Tokens for an LLM step trace (its note says sequences and new tokens), else inferences."""
    from .. import units
    from ..llm_tokens import token_metrics

    s = result.summary
    tm = token_metrics(result.workload.notes, s["latency_s"], s["batch"])
    if tm is None:
        return ("throughput", f"{units.number(s['throughput_per_s'])} inferences/s "
                              f"(batch {s['batch']})")
    if tm["phase"] == "decode":
        return ("tokens", f"{units.number(tm['tokens_per_s'])} tokens/s, "
                          f"{tm['ms_per_output_token']:.4g} "
                          f"ms per output token ({tm['sequences']} sequences, KV {tm['kv_len']})")
    return ("prefill", f"time to first token {tm['time_to_first_token_s'] * 1e3:.4g} ms, "
                       f"{units.number(tm['tokens_per_s'])} prompt tokens/s ({tm['sequences']} x "
                       f"{tm['new_tokens']} tokens)")


@click.command()
@click.argument("config")
@click.argument("workload")
@click.option("--format", "fmt", default=None, help="Run every GEMM layer in this format.")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Samples per inference (scales batch, rows and elements).")
@set_option()
@click.option("--engine", type=click.Choice(["analytic", "event"]), default=None,
              help="Closed-form fast path or the simpy event engine (default: config's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/<config>-<workload>[-<options>]/, named "
                   "for every option that changes the numbers).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=1x3x224x224",
              help="Fix a dynamic input dim of an .onnx WORKLOAD (repeatable).")
@click.option("--numerics", is_flag=True,
              help="Add gemm_rel_error per layer: its GEMM, sampled, computed bit-accurately.")
@click.option("--chips", type=int, default=None,
              help="LLM step trace: shard it over this many chips (writes DIR/sharded.json and "
                   "report.html).")
@click.option("--parallel", default=None, metavar="tp=..[,dp=..]",
              help="With --chips: tensor and data parallel degrees (default tp over all chips); "
                   "alone, over the preset's default slice (tpusim configs).")
@click.option("--fuse", is_flag=True,
              help="Fuse elementwise chains and attention softmax into their producers "
                   "(tpusim/fusion.py); the summary shows what each fused group saved.")
@click.option("--json", "as_json", is_flag=True,
              help="Print summary.json on stdout instead of the table (messages go to stderr).")
@click.option("--trace", "trace_path", default=None, metavar="FILE.json",
              help="Also write the block-by-block timeline as a Chrome/Perfetto trace "
                   "(open it in ui.perfetto.dev); with --chips, the sharded step's rows and "
                   "all-reduces.")
@plotlyjs_option()
def run(config, workload, fmt, batch, sets, engine, out_dir, no_html, input_shapes,
        numerics, chips, parallel, fuse, as_json, trace_path):
    """Simulate WORKLOAD on chip CONFIG; write layers.csv, summary.json, config.yaml, report.html.

    summary.json records the resolved config, the overrides, the command line, the version and
    the sha256 of each input; `tpusim run DIR/config.yaml WORKLOAD` (with the same --format,
    --batch, --engine, --input-shape, --numerics, --fuse) reproduces the run. Files of an
    earlier run in DIR are replaced or removed, so every file there comes from this run; other
    files are left alone.

    CONFIG is a preset name (default, tpu_v1, tpu_v4, ...), a YAML file or a SCALE-Sim .cfg.
    WORKLOAD is a trace .csv, a SCALE-Sim topology .csv, an .onnx model or a shipped name.

    \b
    Example:
      tpusim run default resnet50
      tpusim run tpu_v4 bert_base --format bf16 --set array.rows=256 --out results/v4
      tpusim run scale.cfg Resnet18.csv
      tpusim run edge_tpu mobilenet_v2 --fuse
      tpusim run tpu_v5e llama3_8b_decode --chips 8 --parallel tp=8
      tpusim run tpu_v4 resnet50 --trace trace.json
    """
    import tpusim
    from .._io import check_dir
    from ..provenance import (coverage_warning, default_run_dir, hbm_warning, mark_overrides,
                              new_run_id, run_provenance)
    from ..results import write_result

    overrides = parse_sets(sets)
    if chips is not None or parallel is not None:
        given = [name for name, v in (("--format", fmt), ("--engine", engine), ("--fuse", fuse),
                                      ("--numerics", numerics), ("--input-shape", input_shapes))
                 if v]
        if given:   # one chip's options: the sharded step is priced by pod/infer.py
            why = {"--format": " (the trace's dtype sets the step's format)",
                   "--input-shape": " (an LLM step trace has its shapes)"}.get(given[0], "")
            raise click.UsageError(f"{given[0]} runs one chip; it does not go with --chips{why}")
        return _sharded(config, workload, sets, chips, parallel, batch, out_dir, trace_path,
                        html=not no_html, as_json=as_json)
    out = out_dir or default_run_dir(config, workload, fmt=fmt, batch=batch, engine=engine,
                                     overrides=overrides, input_shapes=input_shapes,
                                     numerics=numerics, fuse=fuse)
    check_dir(out)
    from ..results import run_files_check
    run_files_check(out, html=not no_html)     # a user's layers.csv there: refused before the run
    if trace_path is not None:
        from ..trace_events import check_trace_path
        trace_path = check_trace_path(trace_path, out)
    chip = mark_overrides(tpusim.load_config(config, **overrides), overrides)
    if input_shapes:
        from ..importers.onnx import parse_input_shapes
        wl = tpusim.load_workload(workload, input_shapes=parse_input_shapes(input_shapes))
    else:
        wl = tpusim.load_workload(workload)
    groups = None
    if fuse:
        from ..fusion import fuse as fuse_pass
        from ..fusion import fusion_summary
        unfused = tpusim.simulate(chip, wl, format=fmt, batch=batch, engine=engine)
        wl, groups = fuse_pass(wl, chip, batch)
    result = tpusim.simulate(chip, wl, format=fmt, batch=batch, engine=engine)
    if fuse:
        result.summary["fusion"] = fusion_summary(unfused, result, groups)
    if numerics:
        from ..numerics import layer_errors
        result.layers["gemm_rel_error"] = layer_errors(result)
        result.summary["max_gemm_rel_error"] = float(result.layers["gemm_rel_error"].max())
    prov = run_provenance(result, run_id=new_run_id(), config_arg=config, workload_arg=workload,
                          overrides=overrides, argv=command_argv(click.get_current_context()),
                          out_dir=out,
                          options={"format": fmt, "batch": batch, "engine": engine,
                                   "input_shapes": list(input_shapes), "numerics": numerics,
                                   "fuse": fuse})
    timeline, extra = None, {}
    if trace_path is not None:   # built before anything is written: a failure leaves nothing
        from ..simulator import walk
        from ..timeline import build_timeline
        from ..trace_events import in_dir, trace_json
        timeline = build_timeline(result, "blocks", walk)
        if in_dir(trace_path, out):   # one of the run's files: replaced or removed with them
            text = trace_json(timeline, {"run_id": prov["run_id"]})
            extra[trace_path.name] = lambda p: p.write_text(text)
    written = write_result(result, out, html=not no_html, provenance=prov, extra=extra)
    if timeline is not None and not extra:
        from ..trace_events import write_trace
        write_trace(timeline, trace_path, {"run_id": prov["run_id"]})
    for warning in (coverage_warning(result), hbm_warning(result, fmt)):
        if warning:
            click.echo(f"tpusim: {warning}", err=True)
    if as_json:
        click.echo((out / "summary.json").read_text(), nl=False)
        click.echo(f"wrote {out}/" + ", ".join(Path(p).name for p in written), err=True)
        if timeline is not None:
            click.echo(f"wrote {trace_path} (open it in ui.perfetto.dev)", err=True)
        return
    print_summary(result, out, written)
    if timeline is not None:
        click.echo(f"wrote {trace_path} (open it in ui.perfetto.dev)")
    if fuse:
        print_fusion(result.summary["fusion"])
    if numerics and result.layers["gemm_rel_error"].notna().any():
        worst = result.layers.loc[result.layers["gemm_rel_error"].idxmax()]
        click.echo(f"numerics: worst GEMM error {worst['gemm_rel_error']:.3g} "
                   f"(layer {worst['name']}, {worst['format']}; sampled operands)")


def configs_tables() -> tuple[list[dict], list[dict]]:
    """One record per chip preset (peak TOPS in its default format, off-chip bandwidth, SRAM,
    clock, PEs) and per shipped workload (layers, GMAC, op count)."""
    from ..config import load_config, preset_names
    from ..importers import WORKLOAD_DIR, load_workload

    chips = []
    for name in preset_names():
        c = load_config(name)
        s = c.memory.sram
        chips.append({"name": name, "default_format": c.default_format,
                      "peak_tops": c.peak_tops(c.default_format), "clock_ghz": c.clock_ghz,
                      "pes": c.pes, "offchip": c.memory.hbm.kind,
                      "offchip_gb_s": c.memory.hbm.bandwidth_gbps,
                      "sram_kib": s.input_kib + s.weight_kib + s.output_kib,
                      "slice": c.ici.slice if c.ici is not None else None,
                      "description": c.description})
    workloads = []
    for p in sorted(WORKLOAD_DIR.rglob("*.csv")):
        rel = str(p.relative_to(WORKLOAD_DIR))
        try:
            wl = load_workload(str(p))
        except Exception as exc:   # a shipped trace that does not load is worth seeing here
            workloads.append({"name": rel, "layers": None, "gmac": None, "error": str(exc)})
            continue
        workloads.append({"name": rel, "layers": sum(l.count for l in wl.layers),
                          "rows": len(wl.layers),
                          "gmac": sum(l.macs * l.count for l in wl.layers) / 1e9})
    return chips, workloads


def _sharded(config, workload, sets, chips, parallel, batch, out_dir, trace_path,
             html: bool = True, as_json: bool = False) -> None:
    """``--chips``/``--parallel``: the LLM step sharded (tpusim/pod/sharded_run.py); ``html``:
    write report.html; ``as_json``: sharded.json on stdout, the messages on stderr."""
    from ..pod.sharded_run import run_sharded
    from ..provenance import input_file
    from .common import checked_trace, command_provenance_of, loaded_chip, write_outputs
    from .infer import step_line, step_trace_json

    chip, overrides = loaded_chip(config, sets)
    # and a plain run's files: the folder may hold one later, and a trace must not take a name
    own = ("sharded.json", "config.yaml", "report.html", "summary.json", "layers.csv")
    if out_dir is not None:   # the default folder is named after the step, known once it is read
        trace_path = checked_trace(trace_path, out_dir, own)
    res, r, out = run_sharded(chip, workload, chips, parallel, batch, out_dir,
                              overrides=overrides)
    if out_dir is None:
        trace_path = checked_trace(trace_path, out, own)
    r["provenance"] = prov = command_provenance_of(
        chip, config, overrides, inputs={"workload": input_file("workload", workload)})
    from ..pod.report import step_report
    page = step_report(r, "run --chips") if html else None
    trace = trace_path and (trace_path, step_trace_json(
        res, f"{r['workload']} on {chip.name} {r['topology']}", prov["run_id"]))
    written = write_outputs(out, "sharded", r, page, chip, prov["run_id"],
                            "run THIS_FILE WORKLOAD --chips N", trace)
    if as_json:
        click.echo((out / "sharded.json").read_text(), nl=False)
    else:
        click.echo(step_line(r, "all-reduces on the critical path"))
    click.echo("wrote " + ", ".join(str(p) for p in written), err=as_json)
    if trace_path is not None:
        click.echo(f"wrote {trace_path} (open it in ui.perfetto.dev)", err=as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON on stdout.")
def configs(as_json):
    """List chip presets (peak TOPS, bandwidth, SRAM, clock) and shipped workloads (layers,
    GMAC).

    \b
    Example:
      tpusim configs
      tpusim configs --json
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from .. import units

    from ..config import PRESET_ALIASES

    chips, workloads = configs_tables()
    if as_json:
        click.echo(json.dumps({"presets": chips, "aliases": PRESET_ALIASES,
                               "workloads": workloads}, indent=2))
        return
    # the slice a multi-chip command runs on without --chips/--topology (ICI presets only)
    slices = ", ".join(f"{c['name']} {c['slice']}" for c in chips if c["slice"])
    t = Table(title="chip presets", caption="aliases: " + ", ".join(
        f"{a} = {b}" for a, b in PRESET_ALIASES.items()) + f"; default slices: {slices}")
    for col in ("preset", "TOPS", "fmt", "GHz", "PEs", "off-chip", "GB/s", "SRAM"):
        t.add_column(col, justify="left" if col in ("preset", "fmt", "off-chip") else "right")
    for c in chips:
        t.add_row(c["name"], units.number(c["peak_tops"]), c["default_format"],
                  f"{c['clock_ghz']:g}", f"{c['pes']:,}", c["offchip"],
                  units.number(c["offchip_gb_s"]), units.nbytes(c["sram_kib"] * 1024))
    w = Table(title="shipped workloads")
    for col in ("workload", "layers", "GMAC"):
        w.add_column(col, justify="left" if col == "workload" else "right")
    for r in workloads:
        w.add_row(r["name"], "—" if r["layers"] is None else f"{r['layers']:,}",
                  "—" if r["gmac"] is None else units.number(r["gmac"]))
    console = Console(highlight=False)
    console.print(t)
    console.print(w)

"""``tpusim serve``: a request-level LLM serving simulation (continuous batching, paged KV)."""
from __future__ import annotations

import math
from pathlib import Path

import click

from .common import (command_provenance_of, default_out, loaded_chip, once, plotlyjs_option,
                     set_option)


def _rate(text: str, where: str) -> float:
    from ..errors import InputError
    from ..serve.requests import check_rate
    try:
        v = float(text)
    except ValueError:
        raise InputError(where, None, text, "a request rate > 0 (requests/s) or inf") from None
    return check_rate(v, where)


def _tp(text: str | None) -> int | None:
    from ..errors import InputError
    if text is None:
        return None
    from ..pod.sharding import parse_spec
    try:
        spec = parse_spec(text)      # names a duplicate, an unknown kind, a bad degree
    except InputError as e:
        raise InputError("--parallel", None, text, "expected tp=N with N = --chips (the "
                         "default), the one split serving models") from e
    other = [k for k in ("dp", "fsdp", "pp", "ep") if getattr(spec, k) > 1]
    if other or spec.sequence_parallel:
        raise InputError("--parallel", None, text, "serve splits the model tp ways over every "
                         "chip (tp=N, N = --chips); " + (other[0] if other else "sp")
                         + " is not modelled in serving (tpusim infer prices dp x tp steps)")
    return spec.tp


@click.command()
@click.argument("config")
@click.argument("model")
@click.option("--chips", type=int, default=1, show_default=True, help="Chips serving the model.")
@click.option("--parallel", default=None, metavar="tp=N",
              help="tp=N with N = --chips, the one split serving models (the default).")
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=None,
              help="JSONL: arrival_s, input_tokens, output_tokens [, prefix, prefix_tokens].")
@click.option("--synthetic", default="in=219,out=292", show_default=True,
              help="Lengths: in=LEN_DIST,out=LEN_DIST (219, uniform:A:B, normal:M:SD, "
                   "lognormal:MEAN:SIGMA).")
@click.option("--num-requests", type=int, default=1000, show_default=True)
@click.option("--rate", default=None, help="Poisson arrivals, requests/s; inf: all at t=0 "
              "(default: the file's arrivals, or inf).")
@click.option("--rates", default=None, help="Comma list of rates: a throughput-latency curve.")
@click.option("--max-batch", type=int, default=None,
              help="Sequences in flight (vLLM's max_num_seqs; default 256, 160 with --jetstream).")
@click.option("--kv-block", type=int, default=None,
              help="Tokens per KV block (default 16, 128 with --jetstream).")
@click.option("--chunked-prefill", type=int, default=None,
              help="Token budget per step (decodes + a prefill chunk); default: whole prompts.")
@click.option("--prefix-caching", is_flag=True, help="Reuse cached KV blocks of shared prefixes.")
@click.option("--prefill-chunks", default=None, metavar="N1,N2,..",
              help="Prefill prompts in chunks of the smallest size that holds them (else the "
                   "largest), each padded to its size.")
@click.option("--fixed-batch/--no-fixed-batch", default=None,
              help="A step with decodes runs all --max-batch slots (a compiled static batch).")
@click.option("--attention-block", type=int, default=None,
              help="Decode attention reads KV in blocks of this many keys (default 1: exactly).")
@click.option("--decode-hold", type=float, default=None,
              help="Hold decodes while a prompt is prefilled unless more than this fraction "
                   "of slots hold one (default 0).")
@click.option("--all-logits/--no-all-logits", default=None,
              help="The LM head (and with TP the logits' all-gather) runs every token of a "
                   "step, not only the sampled ones.")
@click.option("--jetstream", is_flag=True,
              help="JetStream's documented engine: 160 slots, 128-token pages, prefill chunks "
                   "128,256,512,1024, fixed batch, 512-key attention blocks, decode hold 0.95, "
                   "logits of every token (each overridable by its option).")
@click.option("--duration", type=float, default=None, help="Stop after this many simulated s.")
@click.option("--weights", default="bf16", show_default=True, help="Weight (and compute) dtype.")
@click.option("--kv-dtype", default=None,
              help="KV-cache dtype (default: the --weights dtype): sets the KV blocks that fit "
                   "and the bytes attention reads (an int8 cache under bf16 weights streams 1 "
                   "byte a value, rescaled in the attention kernel).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@set_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default results/serve-<config>-<model>[-<options>]/, "
                   "named for every option given, so that runs that differ never share it).")
@click.option("--no-html", is_flag=True, help="Skip report.html.")
@plotlyjs_option()
def serve(config, model, chips, parallel, requests_file, synthetic, num_requests, rate, rates,
          max_batch, kv_block, chunked_prefill, prefix_caching, prefill_chunks, fixed_batch,
          attention_block, decode_hold, all_logits, jetstream, duration, weights, kv_dtype, seed,
          sets, out_dir, no_html):
    """Serve MODEL (llama2_7b, llama3_8b, ...) on CHIPS x CONFIG: requests arrive, a
    continuous-batching scheduler runs engine steps, a paged KV cache holds their tokens.

    \b
    Example:
      tpusim serve tpu_v5e llama2_7b --chips 8 --synthetic in=219,out=292 --rate inf
      tpusim serve tpu_v5e llama2_7b --chips 8 --rates 2,4,8,16 --out results/curve
      tpusim serve tpu_v5e llama3_8b --requests trace.jsonl --chunked-prefill 512
      tpusim serve tpu_v5e llama2_7b --chips 8 --rate inf --jetstream
    """
    import time

    from ..errors import InputError
    from ..provenance import input_file
    from ..serve import serve as run_serve, setup, write_outputs
    from ..serve.requests import load_requests, synthetic_requests
    from ..serve.shapes import JETSTREAM, step_shapes

    like = JETSTREAM if jetstream else None
    max_batch = max_batch if max_batch is not None else (160 if jetstream else 256)
    kv_block = kv_block if kv_block is not None else (128 if jetstream else 16)
    shapes = step_shapes(
        prefill_chunks if prefill_chunks is not None else (
            ",".join(map(str, like.prefill_chunks)) if like else None),
        fixed_batch if fixed_batch is not None else bool(like and like.fixed_batch),
        attention_block if attention_block is not None else (
            like.attention_block if like else 1),
        decode_hold if decode_hold is not None else (like.decode_hold if like else 0.0),
        all_logits if all_logits is not None else bool(like and like.all_logits))

    if rate is not None and rates is not None:
        raise InputError("--rates", None, rates, "give --rate or --rates, not both")
    if kv_block is not None and kv_block < 1:
        raise InputError("--kv-block", None, kv_block, "an integer >= 1 (tokens per KV block)")
    one = _rate(rate, "--rate") if rate is not None else None
    many = once("--rates", [_rate(r.strip(), "--rates") for r in rates.split(",")]) \
        if rates else None
    offered = None
    if requests_file is not None:
        from click.core import ParameterSource
        src = click.get_current_context().get_parameter_source
        given = [o for o, n in (("--synthetic", "synthetic"), ("--num-requests", "num_requests"))
                 if src(n) is ParameterSource.COMMANDLINE]
        if given:     # the file's requests are the requests: these would be ignored
            raise InputError(given[0], None, message="goes with the synthetic workload, not "
                             "--requests (the file's requests are the requests); give one")
        reqs = load_requests(requests_file)
        if rates is None and one is None and reqs[-1].arrival_s > 0:
            offered = len(reqs) / reqs[-1].arrival_s     # the file's mean arrival rate
    else:
        reqs = synthetic_requests(synthetic, num_requests, math.inf if one is None else one,
                                  seed)
        offered, one = one, None
    chip, overrides = loaded_chip(config, sets)
    t0 = time.perf_counter()
    st = setup(chip, model, chips, _tp(parallel), weights, kv_dtype, kv_block, max_batch,
               chunked_prefill, max(r.input_tokens for r in reqs))
    runs = run_serve(st, reqs, many or ([one] if one is not None else None), kv_block,
                     max_batch, chunked_prefill, prefix_caching, duration, seed, offered,
                     shapes)
    took = time.perf_counter() - t0
    if shapes != type(shapes)():
        st.notes.append(f"engine shapes: prefill chunks {list(shapes.prefill_chunks) or 'none'}"
                        f", fixed batch {'on' if shapes.fixed_batch else 'off'}, attention block "
                        f"{shapes.attention_block} keys, decode hold {shapes.decode_hold:g}, "
                        "logits of "
                        + ("every token" if shapes.all_logits else "the sampled tokens"))
    out = out_dir or default_out("serve", config, st.cost.full.name,   # the canonical name
                                 skip=("out_dir", "no_html", "plotlyjs"))
    prov = command_provenance_of(chip, config, overrides,
                                 inputs={"requests": input_file("requests", requests_file)})
    written = write_outputs(runs, out, st.notes, html=not no_html, provenance=prov, chip=chip)
    for note in st.notes:
        click.echo(note)
    from ..units import number, seconds
    for r in runs:
        s = r.summary
        click.echo(f"rate {r.rate:g}/s: {s['finished']}/{s['requests']} finished"
                   + (f" ({s['unfinished']} unfinished)" if s["unfinished"] else "")
                   + f" in {seconds(s['simulated_s'])}; {number(s['output_tokens_per_s'], 5)} "
                   f"output tokens/s, {number(s['input_tokens_per_s'], 5)} input tokens/s; "
                   "TTFT p50 "
                   f"{_ms(s['ttft_s']['p50'])}, TPOT p50 {_ms(s['tpot_s']['p50'])}; "
                   f"{s['preemptions']} preemptions")
    if len(runs) > 1:
        from ..serve import curve_points
        from ..serve.metrics import saturation
        sat = saturation(curve_points(runs))
        click.echo(f"saturation rate: {sat:g} requests/s" if sat is not None else
                   "saturation rate: below every rate tried")
    shown = written if len(written) <= 4 else [w for w in written if "-rate-" not in w] + [
        f"requests-rate-*.csv and serve-rate-*.json ({len(runs)} rates)"]
    click.echo(f"simulated in {seconds(took, 3)}; wrote {out}/: " + ", ".join(shown))


def _ms(v) -> str:
    from ..units import seconds
    return "-" if v is None else seconds(v)

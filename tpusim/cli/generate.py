"""``tpusim generate``: an LLM prefill then decode steps with a growing KV cache."""
from __future__ import annotations

from pathlib import Path

import click

from .common import command_provenance_of, loaded_chip, set_option


@click.command()
@click.argument("config")
@click.argument("model")
@click.option("--prompt", type=int, default=2048, show_default=True,
              help="Prompt tokens per sequence (the prefill).")
@click.option("--steps", type=int, default=1000, show_default=True, help="Decode steps.")
@click.option("--batch", type=int, default=1, show_default=True, help="Sequences.")
@click.option("--dtype", default="bf16", show_default=True, help="Weight and activation dtype.")
@click.option("--format", "fmt", default=None, help="Run every GEMM layer in this format.")
@click.option("--kv-stride", type=int, default=1, show_default=True,
              help="1: every step exact; N: exact every N KV lengths, interpolated between.")
@click.option("--rtol", type=float, default=1e-4, show_default=True,
              help="Interpolation: refine where a midpoint is off the line by more than this.")
@set_option()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-step CSV to write (step, kv_len, latency_s, energy_j); a JSON of the "
                   "same name beside it records the run (summary and provenance).")
def generate(config, model, prompt, steps, batch, dtype, fmt, kv_stride, rtol, sets, out):
    """Simulate MODEL (gpt2, llama3_8b, llama2_70b, ...) generating on chip CONFIG: a prefill of
    PROMPT tokens, then STEPS decode steps, step j attending to PROMPT + j keys.

    \b
    Example:
      tpusim generate tpu_v4 llama2_70b --prompt 2048 --steps 1000
      tpusim generate tpu_v5e llama3_8b --batch 8 --kv-stride 64 --out steps.csv
    """
    import time

    from ..generation import generate as run_generation

    from ..errors import InputError
    if out is not None:   # checked before anything is simulated
        if out.suffix.lower() == ".json":
            raise InputError("--out", None, str(out), "the per-step CSV, e.g. steps.csv (the "
                             "run's record goes beside it as steps.json)")
        from ..ownership import check_owned
        check_owned([out, out.with_suffix(".json")], f"generate-{out.stem}")
    chip, overrides = loaded_chip(config, sets)
    from ..importers.llm import get_preset
    from ..formats import get_format
    get_format(dtype, "--dtype", None)          # named by its option, before the model meets it
    if not get_preset(model).lm_head:
        raise InputError(model, None, message="is an encoder (no LM head) and generates no "
                         "tokens; tpusim generate takes decoder models")
    from .._input import check_size
    options = {"prompt": "--prompt", "steps": "--steps", "batch": "--batch",
               "kv_stride": "--kv-stride", "rtol": "--rtol", "prompt + steps": "--prompt + --steps"}
    for name, v in (("--prompt", prompt), ("--steps", steps), ("--batch", batch)):
        if isinstance(v, int) and v > 0:    # the library names its own bounds (>= 1 ...)
            check_size(v * (prompt + steps if name == "--batch" else 1), name, None)
    t0 = time.perf_counter()
    try:
        g = run_generation(chip, model, prompt, steps, batch, dtype, fmt, kv_stride, rtol)
    except InputError as exc:   # name the option the user typed, not the library's keyword
        from .._input import MAX_DIM_TEXT
        if exc.allowed == MAX_DIM_TEXT:   # a layer of the step grew past exact sizes
            raise InputError("--prompt" if steps < prompt else "--steps", None,
                             prompt if steps < prompt else steps,
                             f"too long for {model}: a layer of its steps would hold more "
                             "than 2^53 elements, the most the model computes exactly") from None
        if exc.source != "generate" or exc.where not in options:
            raise
        raise InputError(options[exc.where], None, exc.value, exc.allowed) from None
    took = time.perf_counter() - t0
    warning = _fits_warning(chip, model, prompt + steps, batch, dtype)
    if warning:
        click.echo(f"tpusim: warning: {warning}", err=True)
    s = g.summary()
    stride = s["kv_stride"]    # as run: capped at the array's width, 1 where every step is exact
    click.echo(f"{s['model']} on {chip.name}: batch {batch}, prompt {prompt}, {steps} decode steps"
               + (f" (interpolated, stride {stride}" + (f", capped from {kv_stride}"
                  if stride < kv_stride else "") + f", rtol {rtol:g})" if stride > 1 else ""))
    click.echo(f"  time to first token  {s['time_to_first_token_s'] * 1e3:.4g} ms")
    per = s["ms_per_output_token"]
    click.echo("  per output token     " + (f"{per:.4g} ms" if per is not None else
                                           "n/a (no decode step)"))
    from .. import units
    click.echo(f"  tokens/s             {units.number(s['tokens_per_s'])} ({s['output_tokens']:,}"
               f" tokens in {units.seconds(s['total_s'])})")
    click.echo(f"  energy               {units.joules(s['energy_j'])}")
    click.echo(f"  simulated in         {took * 1e3:.3g} ms")
    if out is not None:
        import json

        from ..results import write_all
        lines = ["step,kv_len,latency_s,energy_j",
                 f"0,{prompt},{g.prefill.latency_s!r},{g.prefill.energy_j!r}"]
        lines += [f"{j + 1},{k},{lat!r},{en!r}" for j, (k, lat, en) in
                  enumerate(zip(g.decode_kv.tolist(), g.decode_latency_s.tolist(),
                                g.decode_energy_j.tolist()))]
        prov = command_provenance_of(chip, config, overrides)
        record = json.dumps({**s, "provenance": prov}, indent=2, sort_keys=True, default=str)
        write_all({out.name: lambda p: p.write_text("\n".join(lines) + "\n"),
                   out.with_suffix(".json").name: lambda p: p.write_text(record + "\n")},
                  out.parent, group=f"generate-{out.stem}")
        click.echo(f"wrote {out}, {out.with_suffix('.json')}")


def _fits_warning(chip, model: str, tokens: int, batch: int, dtype: str) -> str | None:
    """A line when the weights and the KV cache at its longest (``tokens`` per sequence) exceed
    one chip's HBM: the step times still assume they fit (one chip, no offload)."""
    cap = chip.memory.hbm.capacity_gib
    if cap is None:
        return None
    from ..importers.llm import get_preset
    from ..serve.kvcache import dtype_bytes
    cfg = get_preset(model)
    b = dtype_bytes(dtype, "--dtype")
    weights = cfg.param_count() * b
    kv = 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * tokens * batch * b
    if weights + kv <= cap * 2**30:
        return None
    return (f"{cfg.name} needs {(weights + kv) / 2**30:,.1f} GiB of HBM ({dtype} weights "
            f"{weights / 2**30:,.1f} GiB + KV cache {kv / 2**30:,.1f} GiB at {tokens:,} tokens x "
            f"{batch}); {chip.name} has {cap:g} GiB: the times assume it fits (shard it with "
            "`tpusim run ... --chips N` or `tpusim serve --chips N`)")

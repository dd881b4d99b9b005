"""Pods checks for ``tpusim validate``: training steps predicted against published MFU and tokens/s.

Published rows: PaLM-540B on 6,144 TPU v4 chips in two pods (Chowdhery et al. 2022, Table 3: 46.2%
MFU, 57.8% HFU; 12-way tensor and 256-way fully sharded data parallelism per pod, Section 4; 2,048
sequences of 2,048 tokens) and MaxText's pre-training table (AI-Hypercomputer/maxtext,
docs/reference/models/tiering.md: MFU and tokens/s/device), and two step-time lines the
tpu-recipes READMEs print for the variant they launch (``RECIPE_LOG``). Every row runs the
recipe its table links (AI-Hypercomputer/tpu-recipes READMEs and MaxText's
benchmarks/maxtext_*_model_configs.py): its slice, sharding, per-device batch, remat policy, flash-attention blocks and MoE kernel, as
:data:`ROWS` lists them with their source. Nothing in the pods model is fitted to these numbers;
each row says so in ``fitted_on``. v5p slice names count TensorCores (Cloud TPU docs): v5p-512 is
256 chips (4x8x8), v5p-256 is the table's 8x4x4 = 128 chips.

Which attention FLOPs a published MFU counts is read off the row itself: MFU x peak / tokens/s is
the table's FLOPs per token, and :data:`ROWS` names the count (``causal``: attention halved, as
MaxText's PR #1988 does; ``full``: not halved) that it matches (``tests/test_pod_fidelity.py``
holds each row to it). Most of the table's rows predate the halving (its footnote says some do).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..check_rows import check_row
from ..errors import InputError

NO_FIT = "none: pods model from preset figures; no parameter fitted to step-level results"
# Presets whose kernel timing was fitted on kernel measurements (configs/<chip>.yaml headers).
KERNEL_FIT = {"tpu_v4": "tpu_v4's kernel timing fitted on 269 measured TPU v4 matmul kernels",
              "tpu_v5p": "kernel timing inherited from tpu_v4's fit on 269 measured TPU v4 "
                         "matmul kernels",
              "tpu_v5e": "kernel timing inherited from tpu_v4's fit on 269 measured TPU v4 "
                         "matmul kernels"}


def fitted_on(chip: str) -> str:
    """What a row's prediction was fitted on: kernel data at most, never step-level results."""
    if chip in KERNEL_FIT:
        return f"{KERNEL_FIT[chip]}; no parameter fitted to step-level results"
    return NO_FIT
MAXTEXT = "MaxText tiering.md"
RECIPE_LOG = "tpu-recipes README log"
SCALED = "MaxText configs/v5e|v5p READMEs"
TRILLIUM = "MaxText benchmarks/maxtext_trillium_model_configs.py"
# MaxText's base.yml splash-attention defaults (sa_block_* 512, sa_use_fused_bwd_kernel False),
# and the q blocks most v6e recipes raise (sa_block_q 1024 or 2048, sa_block_q_dkv/dq 2048).
SPLASH_DEFAULT = "q=512,kv=512,kv_compute=512,q_dkv=512,kv_dkv=512,kv_dkv_compute=512," \
                 "q_dq=512,kv_dq=512,fused_bwd=0"
SPLASH_Q1024 = "q=1024,kv=512,kv_compute=512,q_dkv=2048,kv_dkv=512,kv_dkv_compute=512," \
               "q_dq=2048,kv_dq=512,fused_bwd=0"
SPLASH_Q2048 = "q=2048,kv=512,kv_compute=512,q_dkv=2048,kv_dkv=512,kv_dkv_compute=512," \
               "q_dq=2048,kv_dq=512,fused_bwd=0"
SPLASH_2048 = "q=2048,kv=2048,kv_compute=2048,q_dkv=2048,kv_dkv=2048,kv_dkv_compute=2048," \
              "q_dq=2048,kv_dq=2048,fused_bwd=1"
# MaxText's per-tensor remat names -> the trace's block rows (q, k and v are one qkv_proj row).
OFFLOAD_QKV = "offload:qkv_proj"                       # remat_policy qkv_proj_offloaded
OFFLOAD_IN_QKV = "offload:input,qkv_proj"              # custom: decoder_layer_input, q/k/v offload
OFFLOAD_IN_QKVO = "offload:input,qkv_proj,o_proj"      # ... and out_proj
SAVE_DOT_EXCEPT_MLPWI = "save:qkv_proj,o_proj,ffn_down"  # saves q/k/v/out proj and mlpwo


@dataclass(frozen=True)
class Row:
    """One published result and the recipe it ran. ``batch``: sequences per chip (MaxText's
    per_device_batch_size; chips x batch sequences per step); ``attention``: the FLOP count the
    published MFU uses (module docstring)."""
    check: str
    case: str
    chip: str
    model: str
    shape: str
    slices: int
    spec: str
    seq: int
    batch: float
    remat: str
    attention: str
    mfu: float
    hfu: float | None
    tokens_per_s: float | None
    recipe: str
    flash: str | None = None       # None: the train step's default blocks
    moe: str | None = None         # None: dropless grouped matmul (MaxText's megablox default)


ROWS: list[Row] = [
    Row("PaLM (Chowdhery 2022)", "palm_540b on 2 x 3072 v4", "tpu_v4", "palm_540b", "12x16x16", 2,
        "dp=2,fsdp=256,tp=12,sp", 2048, 2048 / 6144, "full", "full", 0.462, 0.578,
        238.3e3 / 6144,
        "PaLM Section 4 (12-way tp, 256-way fsdp per pod, 2 pods data-parallel; 238.3K tokens/s); "
        "remat: the paper names none, the row runs full (the paper's HFU/MFU, 1.251, is what full "
        "remat executes over model FLOPs to within 1%: tests/test_pod_fidelity.py)"),
    Row(MAXTEXT, "llama2_70b on v5p-512", "tpu_v5p", "llama2_70b", "4x8x8", 1, "", 4096, 4,
        SAVE_DOT_EXCEPT_MLPWI, "causal", 0.654, None, 692,
        "maxtext_v5p_model_configs.py llama2_70b_v5p_128 (attention autoselected: flash at "
        "base.yml's blocks)", flash=SPLASH_DEFAULT),
    Row(MAXTEXT, "mixtral_8x7b on v5p-256", "tpu_v5p", "mixtral_8x7b", "8x4x4", 1, "", 4096, 36,
        "full", "full", 0.5256, None, 2909,
        "tpu-recipes training/v5p/Mixtral-8X7B-Maxtext (per_device_batch_size 36, megablox)",
        flash=SPLASH_DEFAULT),
    Row(MAXTEXT, "llama2_70b on v6e 256", "tpu_v6e", "llama2_70b", "16x16", 1, "", 4096, 2,
        OFFLOAD_QKV, "full", 0.438, None, 900,
        f"tpu-recipes trillium/Llama2-70B-MaxText ({TRILLIUM} llama2_70b_4096_sc); 2 sequences "
        "per chip as its README's log ran them (total_weights 2,097,152 = 2 x 256 x 4,096 "
        "tokens; 905 tokens/s, 402.3 TFLOP/s = the table's 43.8%), where the config it quotes "
        "says 3", flash=SPLASH_Q1024),
    Row(MAXTEXT, "llama3_1_8b on v6e 256", "tpu_v6e", "llama3_1_8b", "16x16", 1, "", 8192, 4,
        OFFLOAD_IN_QKVO, "full", 0.4546, None, 7207,
        f"tpu-recipes trillium/Llama3.1-8B-MaxText/v6e-256 ({TRILLIUM} llama3_1_8b_8192)",
        flash=SPLASH_2048),
    Row(MAXTEXT, "llama3_1_70b on v6e 256", "tpu_v6e", "llama3_1_70b", "16x16", 1, "", 8192, 5,
        OFFLOAD_IN_QKV, "full", 0.5033, None, 960,
        f"tpu-recipes trillium/Llama3.1-70B-MaxText/v6e-256 ({TRILLIUM} llama3_1_70b_8192)",
        flash=SPLASH_2048),
    Row(MAXTEXT, "llama3_1_405b on 2 x v6e 256", "tpu_v6e", "llama3_1_405b", "16x16", 2,
        "fsdp=128,tp=4,sp", 8192, 1, OFFLOAD_IN_QKVO, "full", 0.3855, None, 123,
        f"{TRILLIUM} llama3_1_405b_8192_fsdp_dcn (ici fsdp 64 x tp 4, dcn fsdp 2; MaxText's "
        "base.yml shards activation_embed over tensor, so saved activations split tp ways: sp)",
        flash=SPLASH_Q1024),
    Row(MAXTEXT, "mixtral_8x7b on v6e 256", "tpu_v6e", "mixtral_8x7b", "16x16", 1, "", 4096, 8,
        "full", "full", 0.3523, None, 3899,
        "tpu-recipes trillium/Mixtral-8x7B-MaxText, the README whose log gives the table's 3,899 "
        "(mixtral_8x7b_dropped: capacity factor 1.25)", flash=SPLASH_Q2048, moe="dropped:1.25"),
    Row(MAXTEXT, "mixtral_8x22b on v6e 256", "tpu_v6e", "mixtral_8x22b", "16x16", 1,
        "fsdp=64,ep=4", 4096, 8, OFFLOAD_IN_QKVO, "full", 0.362, None, 1326,
        "tpu-recipes trillium/Mixtral-8x22B-MaxText (mixtral_8x22b_dropped: capacity factor "
        "1.25)", flash=SPLASH_Q2048, moe="dropped:1.25"),
    # Two more published v6e runs: the step-time lines the tpu-recipes READMEs print for the
    # variant they launch (MFU = the log's TFLOP/s/device over 918; both count attention un-halved).
    Row(RECIPE_LOG, "llama2_70b (remat full, 4 seqs) on v6e 256", "tpu_v6e", "llama2_70b",
        "16x16", 1, "", 4096, 4, "full", "full", 419.193 / 918, None, 943.086,
        f"tpu-recipes trillium/Llama2-70B-MaxText README at libtpu-nightly 20241028 ({TRILLIUM} "
        "llama2_70b_4096: ici_fsdp_transpose -1, remat full, sa_block_q 1024, q_dkv/q_dq 2048); "
        "log: 17.373 s, 419.193 TFLOP/s/device, 943.086 tokens/s/device", flash=SPLASH_Q1024),
    Row(RECIPE_LOG, "llama3_1_405b pure fsdp on 2 x v6e 256", "tpu_v6e", "llama3_1_405b",
        "16x16", 2, "fsdp=512", 8192, 1, "offload:input", "full", 392.454 / 918, None, 149.482,
        f"tpu-recipes trillium/Llama3.1-405B-MaxText README ({TRILLIUM} "
        "llama3_1_405b_8192_pure_fsdp_ici at tpu-recipes-v0.1.2: ici fsdp 256 x dcn fsdp 2, "
        "decoder_layer_input offloaded); log: 54.803 s, 392.454 TFLOP/s/device, 149.482 "
        "tokens/s/device", flash=SPLASH_Q1024),
    # MaxText's own scaling runs of its base.yml model (MFU only; before the causal halving):
    # MaxText/configs/v5e/README.md (1x v5e-256) and MaxText/configs/v5p/README.md (1x v5p-128,
    # 64 chips), each run by the script of its name beside the README.
    Row(SCALED, "maxtext 16B on v5e-256", "tpu_v5e", "maxtext_scale_16", "16x16", 1, "", 2048, 6,
        "full", "full", 0.6110, None, None,
        "MaxText/configs/v5e/16b.sh (global_parameter_scale 16, per_device_batch_size 6, remat "
        "full, fsdp over every chip, flash at base.yml's blocks); 120 TFLOP/s/chip",
        flash=SPLASH_DEFAULT),
    Row(SCALED, "maxtext 32B on v5e-256", "tpu_v5e", "maxtext_scale_32", "16x16", 1, "", 2048, 4,
        "full", "full", 0.6686, None, None,
        "MaxText/configs/v5e/32b.sh (global_parameter_scale 32, per_device_batch_size 4, remat "
        "full, fsdp over every chip); 132 TFLOP/s/chip", flash=SPLASH_DEFAULT),
    Row(SCALED, "maxtext 32B on v5p-128", "tpu_v5p", "maxtext_scale_32", "4x4x4", 1,
        "fsdp=16,tp=4,sp", 2048, 7, "minimal", "full", 0.7147, None, None,
        "MaxText/configs/v5p/32b.sh (per_device_batch_size 7, remat minimal, ici_fsdp -1 x "
        "ici_tensor 4; base.yml shards activation_embed over tensor: sp); 328 TFLOP/s/chip",
        flash=SPLASH_DEFAULT),
    Row(SCALED, "maxtext 64B on v5p-128", "tpu_v5p", "maxtext_scale_64", "4x4x4", 1,
        "fsdp=16,tp=4,sp", 2048, 3, "minimal", "full", 0.7031, None, None,
        "MaxText/configs/v5p/64b.sh (per_device_batch_size 3, remat minimal, ici_fsdp -1 x "
        "ici_tensor 4, sp as above); 323 TFLOP/s/chip", flash=SPLASH_DEFAULT),
]


def _options(row: Row) -> dict[str, Any]:
    """The train step's keyword arguments for the recipe's kernels, where the step takes them."""
    import inspect
    from .flash_blocks import FlashBlocks
    from .train import train_step
    known = inspect.signature(train_step).parameters
    opts = {"flash": row.flash and FlashBlocks.parse(row.flash), "moe": row.moe}
    return {k: v for k, v in opts.items() if v is not None and k in known}


def _predict(row: Row):
    """(spec, global batch, result, note on the batch): the recipe's batch, or, where the
    model's HBM account says it does not fit, the largest halving of it that does."""
    from ..config import load_config
    from ..importers.llm import get_preset
    from .sharding import ParallelSpec, parse_spec
    from .topology import make_slice
    from .train import train_step
    chip, model = load_config(row.chip), get_preset(row.model)
    sl = make_slice(chip.ici, chip.dcn, shape=row.shape, slices=row.slices)
    spec = parse_spec(row.spec) if row.spec else ParallelSpec(fsdp=sl.chips)
    opts = _options(row)
    first: InputError | None = None
    b = row.batch
    while True:
        gb = round(b * sl.chips)
        try:
            r = train_step(chip, model, sl, spec, row.seq, gb, row.remat, 1, row.attention,
                           **opts)
            note = "" if first is None else (f"; the recipe's {row.batch:g} sequences per chip do "
                                             f"not fit the model's HBM account ({first})")
            return spec, gb, r, note
        except InputError as exc:
            if "does not fit" not in str(exc):
                raise
            first = first or exc
            if b <= 1 or gb % 2:
                raise first
            b /= 2


def pod_checks() -> list[dict[str, Any]]:
    """Rows in ``tpusim.fidelity``'s column layout (``check``, ``case``, ``metric`` ...)."""
    out = []
    for row in ROWS:
        fit = fitted_on(row.chip)
        try:
            used, gb, r, batch_note = _predict(row)
        except InputError as exc:
            out.append(check_row(check=f"pods: {row.check}", case=row.case, metric="MFU",
                                 unit="fraction", measured=row.mfu,
                                 fitted_on=fit,
                                 status=f"error: {exc}"))
            continue
        kernels = "".join(f", {k} {v}" for k, v in (("flash blocks", row.flash),
                                                     ("MoE", row.moe)) if v is not None)
        note = (f"sharding {used.label()} (recipe: {row.recipe}), remat {r.remat}{kernels}, "
                f"{gb} x {row.seq} tokens per step, {r.hbm_gib_per_chip:.1f} GiB/chip, MFU with "
                f"{row.attention} attention FLOPs{batch_note}")
        for metric, unit, pred, meas in (("MFU", "fraction", r.mfu, row.mfu),
                                         ("HFU", "fraction", r.hfu, row.hfu),
                                         ("tokens/s/chip", "tokens/s", r.tokens_per_s_per_chip,
                                          row.tokens_per_s)):
            if meas is not None:
                out.append(check_row(check=f"pods: {row.check}", case=row.case, metric=metric,
                                     unit=unit, predicted=pred, measured=meas,
                                     fitted_on=fit,
                                     status="ok", note=note))
    return out


__all__ = ["ROWS", "Row", "pod_checks"]

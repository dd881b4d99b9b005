"""Pods checks for ``tpusim validate``: training steps predicted against published MFU and tokens/s.

Published rows: PaLM-540B on 6,144 TPU v4 chips in two pods (Chowdhery et al. 2022, Table 3: 46.2%
MFU, 57.8% HFU; 12-way tensor and 256-way fully sharded data parallelism per pod, Section 4; 2,048
sequences of 2,048 tokens) and MaxText's pre-training table (AI-Hypercomputer/maxtext,
docs/reference/models/tiering.md: MFU with causal attention halved, tokens/s/device). Every row
runs the sharding its recipe names (``ici_fsdp_parallelism: -1``: fsdp over every chip, remat
``full``) with the largest per-chip batch of 8, 4, 2, 1 sequences that fits HBM: the recipes'
batch sizes are not all public, and that rule is stated, not tuned. Nothing in the pods model is
fitted to these numbers; each row says so in ``fitted_on``. v5p slice names count TensorCores
(Cloud TPU docs): v5p-512 is 256 chips (4x8x8), v5p-256 is the table's 8x4x4 = 128 chips.
Known gaps, stated where they show (docs/pods.md): host offload (the 405B recipe) is not
modelled, so 405B does not fit; the single-chip model prices flash tiles VPU-bound on softmax.
"""
from __future__ import annotations

from typing import Any

from ..check_rows import check_row
from ..errors import InputError

NO_FIT = "none: pods model from preset figures; no parameter fitted to step-level results"
MAXTEXT = "MaxText tiering.md"

# check, case, chip, model, shape, slices, spec ("" = fsdp over every chip), seq,
# sequences per chip (None = largest of 8/4/2/1 that fits), attention, MFU, HFU, tokens/s/chip
ROWS: list[tuple] = [
    ("PaLM (Chowdhery 2022)", "palm_540b on 2 x 3072 v4", "tpu_v4", "palm_540b", "12x16x16", 2,
     "dp=2,fsdp=256,tp=12,sp", 2048, 2048 / 6144, "full", 0.462, 0.578, None),
    (MAXTEXT, "llama2_70b on v5p-512", "tpu_v5p", "llama2_70b", "4x8x8", 1, "", 4096, None,
     "causal", 0.654, None, 692),
    (MAXTEXT, "mixtral_8x7b on v5p-256", "tpu_v5p", "mixtral_8x7b", "8x4x4", 1, "", 4096, None,
     "causal", 0.5256, None, 2909),
    (MAXTEXT, "llama2_70b on v6e 256", "tpu_v6e", "llama2_70b", "16x16", 1, "", 4096, None,
     "causal", 0.438, None, 900),
    (MAXTEXT, "llama3_1_8b on v6e 256", "tpu_v6e", "llama3_1_8b", "16x16", 1, "", 8192, None,
     "causal", 0.4546, None, 7207),
    (MAXTEXT, "llama3_1_70b on v6e 256", "tpu_v6e", "llama3_1_70b", "16x16", 1, "", 8192, None,
     "causal", 0.5033, None, 960),
    (MAXTEXT, "llama3_1_405b on v6e 256", "tpu_v6e", "llama3_1_405b", "16x16", 1, "", 8192,
     None, "causal", 0.3855, None, 123),
    (MAXTEXT, "mixtral_8x7b on v6e 256", "tpu_v6e", "mixtral_8x7b", "16x16", 1, "", 4096, None,
     "causal", 0.3523, None, 3899),
    (MAXTEXT, "mixtral_8x22b on v6e 256", "tpu_v6e", "mixtral_8x22b", "16x16", 1, "", 4096,
     None, "causal", 0.362, None, 1326),
]


def _predict(chip_name, model_name, shape, slices, spec_text, seq, per_chip, attention):
    from ..config import load_config
    from ..importers.llm import get_preset
    from .sharding import ParallelSpec, parse_spec
    from .topology import make_slice
    from .train import train_step
    chip, model = load_config(chip_name), get_preset(model_name)
    sl = make_slice(chip.ici, chip.dcn, shape=shape, slices=slices)
    spec = parse_spec(spec_text) if spec_text else ParallelSpec(fsdp=sl.chips)
    sizes = [per_chip] if per_chip is not None else [8, 4, 2, 1]
    last: InputError | None = None
    for b in sizes:
        try:
            gb = round(b * sl.chips)
            return spec, gb, train_step(chip, model, sl, spec, seq, gb, "full", 1, attention)
        except InputError as exc:
            last = exc
    raise last


def pod_checks() -> list[dict[str, Any]]:
    """Rows in ``tpusim.fidelity``'s column layout (``check``, ``case``, ``metric`` ...)."""
    rows = []
    for check, case, chip, model, shape, slices, spec, seq, per_chip, att, mfu, hfu, tps in ROWS:
        try:
            used, gb, r = _predict(chip, model, shape, slices, spec, seq, per_chip, att)
        except InputError as exc:
            rows.append(check_row(check=f"pods: {check}", case=case, metric="MFU", unit="fraction",
                             measured=mfu, fitted_on=NO_FIT, status=f"error: {exc}"))
            continue
        note = (f"sharding {used.label()} (recipe), remat full, {gb} x {seq} tokens per step, "
                f"{r.hbm_gib_per_chip:.1f} GiB/chip")
        for metric, unit, pred, meas in (("MFU", "fraction", r.mfu, mfu),
                                         ("HFU", "fraction", r.hfu, hfu),
                                         ("tokens/s/chip", "tokens/s", r.tokens_per_s_per_chip,
                                          tps)):
            if meas is not None:
                rows.append(check_row(check=f"pods: {check}", case=case, metric=metric, unit=unit,
                                 predicted=pred, measured=meas, fitted_on=NO_FIT, status="ok",
                                 note=note))
    return rows


__all__ = ["ROWS", "pod_checks"]

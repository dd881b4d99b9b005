"""The pods validation rows: each published MFU is compared under the FLOP count it uses."""
import pytest

from tpusim.config import load_config
from tpusim.importers.llm import get_preset
from tpusim.pod.fidelity import ROWS
from tpusim.pod.train import model_flops_per_token

MAXTEXT_ROWS = [r for r in ROWS if r.tokens_per_s is not None]


@pytest.mark.parametrize("row", MAXTEXT_ROWS, ids=lambda r: r.case)
def test_published_mfu_and_tokens_per_s_imply_the_attention_count_the_row_names(row):
    """MFU x peak / (tokens/s) is the FLOPs per token the table counted: it must match the row's
    count (causal: attention halved; full: not) better than the other one, and within 3% (the
    table's tokens/s are rounded), except 405B, whose two columns disagree with either count."""
    peak = load_config(row.chip).peak_tops("bf16") * 1e12
    implied = row.mfu * peak / row.tokens_per_s
    model = get_preset(row.model)
    named = model_flops_per_token(model, row.seq, row.attention)
    other = model_flops_per_token(model, row.seq, "causal" if row.attention == "full" else "full")
    assert abs(implied / named - 1) < abs(implied / other - 1)
    if row.model != "llama3_1_405b":
        assert implied / named == pytest.approx(1, abs=0.03)


def test_rows_state_a_recipe_and_run_whole_chips():
    for row in ROWS:
        assert row.recipe and row.batch > 0 and row.attention in ("causal", "full")


def test_full_remat_executes_the_share_of_the_forward_palms_hfu_over_mfu_states():
    # The paper names no remat policy; HFU/MFU = 57.8/46.2 = 1.251 is executed over model
    # FLOPs. The row runs plain full remat, chosen before the ratio was compared: rerunning every
    # block row the backward reads (not o_proj, ffn_down and the residual adds of PaLM's
    # parallel block, which only adds read) executes that ratio within 1%. Rerunning them too
    # (the whole forward) would be 1 + 1/3 + attention, far above; keeping ffn_up misses it low.
    from dataclasses import replace

    from tpusim.pod.fidelity import _predict
    palm = next(r for r in ROWS if r.model == "palm_540b")
    assert palm.remat == "full"
    target = palm.hfu / palm.mfu
    full = _predict(palm)[2]
    assert full.hfu / full.mfu == pytest.approx(target, rel=0.01)
    kept = _predict(replace(palm, remat="save:ffn_up"))[2]
    assert abs(kept.hfu / kept.mfu / target - 1) > 0.05

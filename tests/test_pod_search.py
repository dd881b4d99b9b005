"""Sharding search and its memo: the memoised search returns exactly the step times of
evaluating every layout afresh; per-instance pricing against the whole-trace simulation and
against a doubled layer count; the layouts enumerated (microbatches, sp, remat) by hand."""
from __future__ import annotations

import pytest

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import custom_config, get_preset
from tpusim.pod import costs
from tpusim.pod.search import candidates, microbatch_counts, search
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice
from tpusim.pod.train import train_step

CHIP = load_config("tpu_v5p")
TINY = custom_config(name="tiny", hidden=512, layers=4, heads=8, kv_heads=8, ffn=2048,
                     vocab=1024, gated=True, act="silu", norm="rmsnorm", positions="rope")


def _slice(shape):
    return make_slice(CHIP.ici, CHIP.dcn, shape=shape)


def test_memoised_search_equals_fresh_evaluation_of_every_layout():
    sl = _slice("2x2x2")
    costs.clear()
    best = search(CHIP, TINY, sl, seq=128, global_batch=16, top=10**6)
    assert costs.distinct_programs() < len(best)          # layouts really share shards
    for c in best:
        fresh = train_step(CHIP, TINY, sl, c.spec, 128, 16, c.remat, c.microbatches,
                           memo=False)
        assert fresh.step_s == c.result.step_s             # exactly, not approximately
        assert fresh.time_s == c.result.time_s


def test_memo_keys_on_shapes_not_names_or_layer_counts():
    from tpusim.importers.llm import llm_rows
    rows = llm_rows(TINY, "prefill", batch=2, seq=64, kv_len=64)
    renamed = [{**r, "name": r["name"] + "_x"} for r in rows]
    costs.clear()
    a = costs.simulate_rows(CHIP, rows, per_instance=True)
    b = costs.simulate_rows(CHIP, renamed, per_instance=True)
    deeper = [{**r, "count": 2 * r.get("count", 1)} if r.get("count", 1) > 1 else r
              for r in rows]
    c = costs.simulate_rows(CHIP, deeper, per_instance=True)
    assert costs.distinct_programs() == 1 and a == b
    for r, (t1, m1), (t2, m2) in zip(rows, a, c):   # twice the layers: exactly twice the cost
        k = 2 if r.get("count", 1) > 1 else 1
        assert t2 == pytest.approx(k * t1, rel=1e-12) and m2 == pytest.approx(k * m1, rel=1e-12)
    # A different chip is a different program.
    costs.simulate_rows(load_config("tpu_v4"), rows, per_instance=True)
    assert costs.distinct_programs() == 2


def test_per_instance_pricing_is_close_to_the_whole_trace():
    # Pricing one instance of each row in block order moves a dense step by well under 1%
    # against the single-chip trace semantics (each row's instances back to back).
    from tpusim.importers.llm import llm_rows
    rows = llm_rows(get_preset("llama2_7b"), "prefill", batch=1, seq=2048, kv_len=2048)
    whole = sum(t for t, _ in costs.simulate_rows(CHIP, rows, memo=False))
    each = sum(t for t, _ in costs.simulate_rows(CHIP, rows, per_instance=True, memo=False))
    assert each == pytest.approx(whole, rel=0.01)
    macs_w = sum(m for _, m in costs.simulate_rows(CHIP, rows, memo=False))
    macs_e = sum(m for _, m in costs.simulate_rows(CHIP, rows, per_instance=True, memo=False))
    assert macs_e == pytest.approx(macs_w, rel=1e-12)


def test_microbatch_counts_by_hand():
    assert microbatch_counts(ParallelSpec(), 8) == [1, 2, 4, 8]
    assert microbatch_counts(ParallelSpec(pp=2, fsdp=4), 8) == [2, 4, 8]
    # at least pp microbatches that divide the sequences: 4 and 5 do not divide 6, 6 does
    assert microbatch_counts(ParallelSpec(pp=4, fsdp=2), 6) == [6]
    assert microbatch_counts(ParallelSpec(pp=4, fsdp=2), 3) == []     # fewer sequences than stages
    assert microbatch_counts(ParallelSpec(pp=2), 3) == [3]
    assert microbatch_counts(ParallelSpec(pp=2), 6) == [2, 3, 6]      # every divisor from pp up
    assert microbatch_counts(ParallelSpec(fsdp=8), 6) == [1, 2, 3, 6]
    assert microbatch_counts(ParallelSpec(pp=3, fsdp=2), 12) == [3, 4, 6, 12]


def test_candidates_cover_sp_remat_and_microbatches():
    sl = _slice("2x2x2")
    got = candidates(TINY, sl, global_batch=16)
    assert len(set(got)) == len(got)
    sp = [s for s, _, _ in got if s.sequence_parallel]
    assert sp and all(s.tp > 1 for s in sp)
    # fsdp=8: 2 sequences per chip -> microbatches 1 and 2, times 3 remat policies
    assert sum(1 for s, _, _ in got if s == ParallelSpec(fsdp=8)) == 6
    assert {r for _, r, _ in got} == {"none", "minimal", "full"}


def test_multislice_candidates_put_dp_or_fsdp_over_dcn():
    # 2 slices of 4 chips, tp = ep = pp = 1: in-slice (dp, fsdp) in (1,4) (2,2) (4,1), each
    # times the slices as dp over DCN (dp 2, 4, 8) and, where the in-slice dp is odd, fsdp
    # spanning both slices instead (fsdp 8 with dp 1): four layouts, all multiplying to 8
    from tpusim.pod.search import candidate_specs
    from tpusim.pod.sharding import dcn_kind
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="2x2", slices=2)
    plain = [s for s in candidate_specs(TINY, sl) if s.tp == s.pp == s.ep == 1]
    assert sorted((s.dp, s.fsdp) for s in plain) == [(1, 8), (2, 4), (4, 2), (8, 1)]
    assert {(s.dp, s.fsdp): dcn_kind(s, 2) for s in plain} == {
        (1, 8): "fsdp", (2, 4): "dp", (4, 2): "dp", (8, 1): "dp"}
    assert all(s.chips == 8 for s in candidate_specs(TINY, sl))


def test_search_finds_a_model_that_fits_only_with_fsdp_over_dcn():
    # Llama-3.1-405B on 2 x v6e-256 at 8,192 tokens: with dp over DCN each slice holds the
    # whole state (405B x 16 B / 256 = 23.6 GiB of 31.25 before activations); the fastest that
    # fits shards fsdp across both slices, as the public recipe does (dcn_fsdp_parallelism 2)
    v6e = load_config("tpu_v6e")
    sl = make_slice(v6e.ici, v6e.dcn, shape="16x16", slices=2)
    best = search(v6e, get_preset("llama3_1_405b"), sl, seq=8192, global_batch=512, top=1)[0]
    assert best.spec.dp % 2 and best.spec.fsdp % 2 == 0
    assert "fsdp spans the 2 slices over DCN" in best.result.notes


def test_a_70b_search_covers_a_thousand_layouts_from_few_shards():
    chip, model = load_config("tpu_v5p"), get_preset("llama2_70b")
    sl = make_slice(chip.ici, chip.dcn, shape="4x8x8")
    assert len(candidates(model, sl, 1024)) >= 1000


def test_layouts_that_cannot_fit_are_dropped_before_simulating():
    from tpusim.errors import InputError
    sl = make_slice(CHIP.ici, CHIP.dcn, shape="1")
    costs.clear()
    with pytest.raises(InputError, match="no sharding fits.*does not fit the 95 GiB"):
        search(CHIP, get_preset("llama2_70b"), sl, seq=4096, global_batch=1)
    assert costs.distinct_programs() == 0
    st: dict = {}
    search(CHIP, TINY, _slice("2x2x2"), seq=128, global_batch=16, stats=st)
    assert st["fit"] <= st["candidates"] and st["programs"] == costs.distinct_programs()


@pytest.mark.parametrize("opt,args", [
    ("--seq", ["--seq", "0"]), ("--seq", ["--seq", "-3"]),
    ("--global-batch", ["--global-batch", "0"]), ("--batch-per-chip", ["--batch-per-chip", "0"]),
])
def test_bad_sizes_are_the_same_one_line_with_or_without_parallel(tmp_path, opt, args):
    """Checked before the search: not 'no sharding fits (...)' from inside it."""
    from .conftest import run_cli
    lines = []
    for extra in ([], ["--parallel", "fsdp=8"]):
        code, _, err = run_cli("train", "tpu_v5e", "gpt2", "--chips", "8", *args, *extra,
                               "--out", tmp_path / "o")
        assert code == 2 and not (tmp_path / "o").exists(), err
        lines.append(err.strip())
    assert lines[0] == lines[1] == (f"tpusim: error: {opt}: got {args[1]}; must be a positive "
                                    "integer")


def test_search_is_no_worse_than_an_explicit_layout_whose_count_is_no_doubling():
    # Mixtral 8x7B on 256 v5p chips, 6 sequences per chip, remat none: fsdp=32,ep=8 fits only
    # at 3 microbatches (1 and 2 overfill HBM), a count that doubling 1 never reaches.
    sl = make_slice(CHIP.ici, CHIP.dcn, chips=256)
    m = get_preset("mixtral_8x7b")
    given = train_step(CHIP, m, sl, ParallelSpec(fsdp=32, ep=8), 4096, 1536, "none", 3)
    best = search(CHIP, m, sl, 4096, 1536, top=1, remats=("none",))[0].result
    assert best.step_s <= given.step_s


def test_pruned_microbatch_counts_never_hide_the_fastest_layout():
    # 12 sequences per chip on 8 chips: every (spec, remat, count) priced one by one; without pp
    # the search stops at a pair's second fitting count, and still finds the fastest of them
    sl = _slice("2x2x2")
    every = []
    for spec, remat, mb in candidates(TINY, sl, 96):
        try:
            every.append(train_step(CHIP, TINY, sl, spec, 128, 96, remat, mb).step_s)
        except InputError:
            continue
    stats = {}
    best = search(CHIP, TINY, sl, seq=128, global_batch=96, top=1, stats=stats)[0]
    assert stats["pruned"] > 0 and best.result.step_s == min(every)

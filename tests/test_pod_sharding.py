"""Parallelism specs: parsing, the one-line checks against chips and model dimensions, and the
placement of degrees onto slice axes (whole axes, contiguous and strided factors, DCN)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.importers.llm import custom_config, get_preset
from tpusim.pod.collectives import all_gather
from tpusim.pod.sharding import ParallelSpec, check_spec, parse_spec, place
from tpusim.pod.topology import make_slice

V5P = load_config("tpu_v5p")
LINK = V5P.ici.link_bandwidth_bytes_per_s


def _slice(shape, slices=1, chip=V5P):
    return make_slice(chip.ici, chip.dcn, shape=shape, slices=slices)


def test_parse_spec():
    s = parse_spec("fsdp=16, tp=4,sp")
    assert (s.fsdp, s.tp, s.dp, s.sequence_parallel, s.chips) == (16, 4, 1, True, 64)
    assert s.label() == "fsdp=16,tp=4,sp"


@pytest.mark.parametrize("text,needle", [
    ("fsdp=16,zp=2", "KIND=DEGREE"), ("tp=0", "positive"), ("tp=x", "positive"),
    ("tp=2,tp=4", "given twice"), ("fsdp", "KIND=DEGREE"),
    # sp is a key like the others: a repeat is refused as fsdp=2,fsdp=2 is
    ("tp=2,sp,sp", "--parallel: sp: got 'sp'; given twice"),
    ("tp=2,sp,sp=true", "--parallel: sp: got 'sp=true'; given twice"),
    # a stray comma would name another layout (and another default folder); sp has no degree
    ("fsdp=8,", "an empty item"), ("fsdp=8,,tp=2", "an empty item"),
    ("fsdp=8,sp=2", "--parallel: sp: got 'sp=2'; sp takes no degree"),
])
def test_bad_spec_text(text, needle):
    with pytest.raises(InputError) as exc:
        parse_spec(text)
    assert needle in str(exc.value) and str(exc.value).startswith("--parallel")


@pytest.mark.parametrize("spec,chips,model,slices,needle", [
    ("fsdp=16,tp=4", 128, "llama2_70b", 1, "multiply to 64 chips; the slice has 128"),
    ("fsdp=4,tp=16", 64, "llama2_7b", 1, None),
    ("fsdp=2,tp=32", 64, "palm_540b", 1, "48 attention heads"),
    ("fsdp=32,ep=2", 64, "llama2_70b", 1, "no experts"),
    # sp splits activations over tp: with tp=1 it is refused (as ep on a dense model), not
    # silently kept in the label
    ("fsdp=64,sp", 64, "llama2_70b", 1, "sp: got 'fsdp=64,sp'; sequence parallelism splits "
     "activations over tp; it needs tp > 1"),
    ("fsdp=32,tp=2,sp", 64, "llama2_70b", 1, None),
    ("fsdp=4,ep=16", 64, "mixtral_8x7b", 1, "8 experts"),
    ("fsdp=16,pp=3", 48, "llama2_70b", 1, "80 layers"),
    # Neither dp nor fsdp spans the two slices: the one line names both and the rule.
    ("tp=8,pp=8", 64, "llama2_70b", 2, "dp or fsdp must be a multiple of --slices=2"),
    ("dp=3,fsdp=5,tp=4", 60, "llama2_70b", 2, "goes to dp, else to fsdp"),
    # fsdp alone spans the slices (MaxText's dcn_fsdp_parallelism); dp=2 takes DCN as before.
    ("fsdp=64,dp=1", 64, "llama2_70b", 2, None),
    ("dp=2,fsdp=32", 64, "llama2_70b", 2, None),
])
def test_check_spec(spec, chips, model, slices, needle):
    s = parse_spec(spec)
    if needle is None:
        check_spec(s, chips, get_preset(model), slices)
        return
    with pytest.raises(InputError) as exc:
        check_spec(s, chips, get_preset(model), slices)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_tp_must_divide_the_ffn():
    tiny = custom_config(hidden=96, layers=2, heads=6, kv_heads=6, ffn=100, vocab=10)
    with pytest.raises(InputError, match="FFN width 100"):
        check_spec(ParallelSpec(tp=3), 3, tiny)


def test_tp_beyond_kv_heads_replicates_but_must_be_a_multiple():
    llama = get_preset("llama2_70b")           # 64 heads, 8 KV heads
    check_spec(ParallelSpec(tp=16, fsdp=4), 64, llama)    # KV heads replicated 2x
    with pytest.raises(InputError, match="KV heads"):
        check_spec(ParallelSpec(tp=12), 12, custom_config(hidden=96, layers=1, heads=48,
                                                          kv_heads=8, ffn=96, vocab=10))


def test_whole_axes_placement_keeps_rings():
    pl = place(parse_spec("fsdp=64,tp=4"), _slice("4x8x8"))
    (tp,) = pl.axes["tp"]
    assert (tp.size, tp.kind, tp.bandwidth_bytes_per_s) == (4, "ring", LINK)
    assert [a.size for a in pl.axes["fsdp"]] == [8, 8]
    assert all(a.kind == "ring" for a in pl.axes["fsdp"])


def test_factor_of_an_axis_contiguous_then_strided():
    # 4x4x4 cube, tp=2: tp takes 2 neighbouring chips of axis 0 (a line); fsdp's share of that
    # axis is the other factor 2, striding over the tp pairs ({0, 2} and {1, 3} of the ring of
    # 4): each chip sends X to its partner, X/2 each way round over 2 hops, and every directed
    # link carries X/2 of both groups, X in all: X / LINK, a pair at the full link bandwidth
    # (half of it on each of its two paths), twice the latency.
    pl = place(parse_spec("fsdp=32,tp=2"), _slice("4x4x4"))
    (tp,) = pl.axes["tp"]
    assert (tp.size, tp.kind, tp.bandwidth_bytes_per_s) == (2, "line", LINK)
    strided = pl.axes["fsdp"][0]
    assert strided.size == 2 and strided.bandwidth_bytes_per_s == LINK
    assert all_gather(2e9, (strided,)).total_s == pytest.approx(
        1e9 / LINK + 2 * V5P.ici.hop_latency_s)
    assert strided.hop_latency_s == 2 * V5P.ici.hop_latency_s
    assert [a.size for a in pl.axes["fsdp"]] == [2, 4, 4]


def test_strided_factor_that_completes_a_wrapped_axis_is_a_ring():
    pl = place(parse_spec("fsdp=16,tp=4"), _slice("4x16", chip=load_config("tpu_v5e")))
    # tp takes axis 0 (4, no wrap on v5e), fsdp axis 1 (16: a full, wrapped axis).
    assert pl.axes["tp"][0].kind == "line" and pl.axes["fsdp"][0].kind == "ring"
    pl = place(parse_spec("fsdp=4,tp=4"), _slice("16", chip=load_config("tpu_v5e")))
    (f,) = pl.axes["fsdp"]
    assert (f.size, f.kind, f.bandwidth_bytes_per_s) == (4, "ring", 5e10 / 4)


def test_strided_collective_is_slower_than_the_same_group_on_a_whole_axis():
    v5e = load_config("tpu_v5e")
    strided = place(parse_spec("fsdp=4,tp=4"), _slice("16", chip=v5e)).axes["fsdp"]
    whole = place(parse_spec("fsdp=4,tp=4"), _slice("4x4", chip=v5e)).axes["fsdp"]
    assert all_gather(1e9, strided).total_s > all_gather(1e9, whole).total_s


def test_dp_takes_dcn_between_slices():
    pl = place(parse_spec("dp=2,fsdp=64"), _slice("4x4x4", slices=2))
    assert pl.axes["dp"][0].kind == "switch" and pl.axes["dp"][0].size == 2
    assert pl.axes["dp"][0].bandwidth_bytes_per_s == V5P.dcn.bandwidth_bytes_per_s
    assert pl.of("fsdp", "dp")[-1].name == "dcn"


def test_fsdp_takes_dcn_when_dp_does_not_span_the_slices():
    # MaxText's llama3_1_405b_8192_fsdp_dcn: dcn_fsdp 2 x ici_fsdp 64, ici_tensor 4 on two v6e
    # 16x16 slices. tp takes a contiguous 4 of the first axis; fsdp the DCN, the other 4 of that
    # axis (stride 4, closing its wraparound: 1/4 of the bandwidth, 4 hops per step) and the
    # whole second axis: 2 x 4 x 16 = 128.
    v6e = load_config("tpu_v6e")
    pl = place(parse_spec("fsdp=128,tp=4"), _slice("16x16", slices=2, chip=v6e))
    b = v6e.ici.link_bandwidth_bytes_per_s
    got = [(a.name, a.size, a.kind, a.bandwidth_bytes_per_s) for a in pl.of("fsdp")]
    assert got == [("dcn", 2, "switch", v6e.dcn.bandwidth_bytes_per_s),
                   ("fsdp:ici0", 4, "ring", b / 4), ("fsdp:ici1", 16, "ring", b)]
    assert pl.of("dp") == () and [a.kind for a in pl.of("tp")] == ["line"]
    # dp=2 still spans the slices when it can (dp-over-DCN runs keep their placement)
    pl = place(parse_spec("dp=2,fsdp=64,tp=4"), _slice("16x16", slices=2, chip=v6e))
    assert [a.name for a in pl.of("dp")] == ["dcn"]
    assert all(a.kind != "switch" for a in pl.of("fsdp"))


def test_spec_must_cover_the_slice():
    with pytest.raises(InputError, match="multiply to"):
        place(ParallelSpec(tp=4), _slice("4x4x4"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=3), st.data())
def test_every_spec_that_multiplies_to_the_chips_is_placed(shape, data):
    chips = math.prod(shape)
    degrees, left = {}, chips
    for kind in ("tp", "ep", "fsdp", "pp"):
        divs = [d for d in range(1, left + 1) if left % d == 0]
        degrees[kind] = data.draw(st.sampled_from(divs))
        left //= degrees[kind]
    spec = ParallelSpec(dp=left, **degrees)
    pl = place(spec, make_slice(V5P.ici, shape=shape))
    for kind in ("dp", "fsdp", "tp", "pp", "ep"):
        assert math.prod(a.size for a in pl.axes[kind]) == getattr(spec, kind)
    # Chips are conserved: the factors taken from each physical axis multiply to its size.
    assert math.prod(a.size for k in pl.axes for a in pl.axes[k]) == chips


def test_leading_group_is_the_neighbouring_ranks():
    # r neighbouring tp ranks (the chips holding one replicated K/V head): whole axes while they
    # divide r, then the first chips of the next axis as a line
    from tpusim.pod.sharding import leading_group
    from tpusim.pod.topology import Axis
    x, y = Axis(4, "ring", 1e11, 1e-6, "x"), Axis(4, "ring", 1e11, 1e-6, "y")
    assert leading_group((x, y), 16) == (x, y)
    assert leading_group((x, y), 8) == (x, Axis(2, "line", 1e11, 1e-6, "y"))
    assert leading_group((x, y), 2) == (Axis(2, "line", 1e11, 1e-6, "x"),)
    assert leading_group((x,), 1) == ()
    # the all-reduce of a 2-chip group is a line's: (2-1)/2 x D each way, not a 4-ring's
    from tpusim.pod.collectives import all_reduce
    assert all_reduce(1e6, leading_group((x,), 2)).ici_bytes == pytest.approx(2 * 0.5e6)


def test_parallel_and_remat_read_any_case_alike():
    from tpusim.pod.remat import parse_remat
    assert parse_spec("FSDP=8,TP=2,SP") == parse_spec("fsdp=8,tp=2,sp")
    assert parse_remat("FULL") == parse_remat("full")
    assert parse_remat("Save:QKV_PROJ+Offload:Input") == parse_remat("save:qkv_proj+offload:input")

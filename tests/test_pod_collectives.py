"""Collectives against hand-derived closed forms (pod/collectives.py docstring) and invariants
(hypothesis): more links never slower, linear in bytes when large, latency-bound when small,
a mesh never faster than the torus of the same shape."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.pod.collectives import (all_gather, all_reduce, all_to_all, collective,
                                    permute, reduce_scatter)
from tpusim.pod.topology import Axis, make_slice

B = 1e11      # one-way bytes/s per direction
A = 1e-6      # per-hop latency


def ring(n, b=B, a=A, name="x"):
    return Axis(n, "ring", b, a, name)


def line(n, b=B, a=A, name="x"):
    return Axis(n, "line", b, a, name)


@pytest.mark.parametrize("n", [3, 4, 7, 8, 16])
def test_bidirectional_ring_all_gather_moves_n_minus_1_over_n(n):
    d = 64e6
    c = all_gather(d, ring(n))
    # (N-1)/N x D bytes reach every chip, half over each direction's link.
    assert c.transfer_s == pytest.approx((n - 1) / n * d / (2 * B))
    assert c.latency_s == pytest.approx(math.ceil((n - 1) / 2) * A)


@pytest.mark.parametrize("n", [2, 4, 5, 16])
def test_line_all_gather_pays_the_end_link(n):
    d = 64e6
    c = all_gather(d, line(n))
    assert c.transfer_s == pytest.approx((n - 1) / n * d / B)
    assert c.latency_s == pytest.approx((n - 1) * A)


def test_all_reduce_is_reduce_scatter_plus_all_gather():
    for ax in (ring(8), line(4), (ring(4, name="x"), ring(8, name="y"))):
        ar, rs, ag = all_reduce(1e8, ax), reduce_scatter(1e8, ax), all_gather(1e8, ax)
        assert ar.total_s == pytest.approx(rs.total_s + ag.total_s)
        assert rs.total_s == pytest.approx(ag.total_s)


def test_hand_count_all_to_all_on_a_ring_of_four():
    # Chip i sends D/4 to i+1 (1 hop right), i+3 (1 hop left) and i+2 (2 hops, half each way):
    # each right-going link carries 1 + 2 x 1/2 = 2 chunks of D/4.
    d = 4e6
    c = all_to_all(d, ring(4))
    assert c.transfer_s == pytest.approx(2 * (d / 4) / B)
    assert c.latency_s == pytest.approx(2 * A)


@pytest.mark.parametrize("n", [4, 8, 16])
def test_all_to_all_is_a_quarter_of_all_gather_for_large_even_rings(n):
    # scaling-book: an all-to-all costs 1/4 of an all-gather of the same shards; exactly
    # N/8 x D / b versus (N-1)/2 x D / b.
    d = 1e6
    ratio = all_to_all(d, ring(n)).transfer_s / all_gather(n * d, ring(n)).transfer_s
    assert ratio == pytest.approx(n / (4 * (n - 1)))


def test_line_all_to_all_middle_link():
    # 4 chips on a line: the middle link carries chunks from 2 chips to 2 chips = 4 chunks.
    d = 4e6
    assert all_to_all(d, line(4)).transfer_s == pytest.approx(4 * (d / 4) / B)


def test_permute_shifts():
    d = 1e6
    assert permute(d, ring(8), 1).total_s == pytest.approx(A + d / B)
    assert permute(d, ring(8), 7).total_s == pytest.approx(A + d / B)   # one hop the other way
    assert permute(d, line(8), 3).total_s == pytest.approx(3 * (A + d / B))
    # half the ring round: 4 hops either way, half the message each way (4 x D/2 per link)
    assert permute(d, ring(8), 4).total_s == pytest.approx(4 * A + 4 * d / (2 * B))
    # a line's shift is not cyclic: by 7 only chip 0 sends, one message on each of 7 links
    assert permute(d, line(8), 7).total_s == pytest.approx(7 * A + d / B)
    assert permute(d, line(8), 5).total_s == pytest.approx(5 * A + 3 * d / B)
    with pytest.raises(InputError, match="shift"):
        permute(d, ring(8), 8)


@pytest.mark.parametrize("m,n", [(2, 4), (2, 16), (3, 4), (3, 8)])
def test_multi_axis_all_gather_uses_every_axis(m, n):
    # On m equal wrapped axes (P = n^m chips) the concurrent schedule costs (P-1)/P x D/(2 m b):
    # the scaling-book's V / (W_ici x n_axes), with the exact (P-1)/P.
    d = 1e9
    axes = [ring(n, name=f"a{i}") for i in range(m)]
    c = all_gather(d, axes)
    p = n ** m
    assert c.schedule == "concurrent"
    assert c.transfer_s == pytest.approx((p - 1) / p * d / (2 * m * B))


def test_multi_slice_all_reduce_is_hierarchical():
    # Reduce-scatter inside the slice, all-reduce the 1/P shard over DCN, all-gather back.
    chip = load_config("tpu_v5p")
    s = make_slice(chip.ici, chip.dcn, shape="4x4x4", slices=2)
    d = 1e9
    c = all_reduce(d, (*s.axes, s.dcn_axis()))
    dcn_bw = chip.dcn.bandwidth_bytes_per_s
    flat = all_reduce(d, s.dcn_axis()).total_s
    assert c.total_s < flat
    # Lower bound: the DCN phases alone on the 1/64 shard, 2 x (K-1)/K x D/64 / b_dcn.
    assert c.transfer_s >= 2 * 0.5 * d / 64 / dcn_bw


# ------------------------------------------------ DCN mixed with ICI (fsdp across slices)
BD = 1.25e10  # DCN bytes/s per chip (v6e's 100 Gbit/s)
AD = 1e-5     # DCN latency


def dcn(k=2):
    return Axis(k, "switch", BD, AD, "dcn")


@pytest.mark.parametrize("d", [1e3, 1e6, 3e9])
def test_all_gather_over_dcn_and_a_ring_gathers_the_small_shard_over_dcn_first(d):
    # P = 2 x 16. DCN first: each chip swaps its D/32 shard with its peer slice, now holding D/16
    # ((2-1)/2 x D/16 / b_d, one step), then a bidirectional ring of 16 on D (8 steps,
    # 15/16 x D / 2b). ICI first instead: 15/16 x D/2 / 2b, then DCN on the whole D: D / (2 b_d);
    # it loses 15/16 x D/2 x (1/b_d - 1/2b) (the docstring's closed form).
    axes = (dcn(), ring(16, name="i"))
    first = AD + 8 * A + 0.5 * d / 16 / BD + 15 / 16 * d / (2 * B)
    last = 8 * A + 15 / 16 * (d / 2) / (2 * B) + AD + 0.5 * d / BD
    assert last - first == pytest.approx(15 / 16 * d / 2 * (1 / BD - 1 / (2 * B)))
    for kind, order in (("all_gather", ("dcn", "i")), ("reduce_scatter", ("i", "dcn"))):
        c = collective(kind, d, axes)
        assert c.total_s == pytest.approx(first, rel=1e-12)
        assert [p.axes for p in c.phases] == [(n,) for n in order]
        # the order the axes are given in does not matter
        assert collective(kind, d, axes[::-1]).total_s == c.total_s
        # the DCN-first order ties with the sequential one here: it is named for what it is
        assert c.schedule == "hierarchical"


def test_all_reduce_over_dcn_and_a_ring_crosses_dcn_on_the_1_over_16_part():
    # Reduce-scatter over the ring, all-reduce of D/16 over DCN, all-gather back over the ring.
    d = 1e9
    c = all_reduce(d, (dcn(), ring(16, name="i")))
    ring_rs = 8 * A + 15 / 16 * d / (2 * B)
    dcn_ar = 2 * (AD + 0.5 * d / 16 / BD)
    assert c.total_s == pytest.approx(2 * ring_rs + dcn_ar, rel=1e-12)


def test_dcn_then_concurrent_ici_on_two_rings():
    # fsdp over 2 slices x 16x16 (v6e, no tp): DCN first on the D/256 the slice holds, then both
    # rings at once (concurrent, (256-1)/256 x D / (2 x 2 b), two steps of 8 hops): neither
    # all-sequential (ICI transfer twice that) nor all-concurrent (a third of D crosses DCN last)
    # reaches it.
    d = 1e9
    axes = (dcn(), ring(16, name="x"), ring(16, name="y"))
    want = AD + 0.5 * d / 256 / BD + 16 * A + 255 / 256 * d / (4 * B)
    c = all_gather(d, axes)
    assert c.schedule == "hierarchical" and c.phases[0].axes == ("dcn",)
    assert c.total_s == pytest.approx(want, rel=1e-12)
    rs = reduce_scatter(d, axes)
    assert rs.total_s == pytest.approx(want, rel=1e-12) and rs.phases[-1].axes == ("dcn",)


def test_single_chip_and_zero_bytes_cost_nothing():
    assert all_reduce(1e9, ring(1)).total_s == 0
    assert all_gather(0, ring(8)).total_s == 0
    assert collective("all_to_all", 1e6, []).total_s == 0


def test_bad_inputs():
    with pytest.raises(InputError, match="allowed"):
        collective("broadcast", 1, ring(4))
    with pytest.raises(InputError, match=">= 0"):
        all_gather(-1, ring(4))


# ---------------------------------------------------------------- invariants

kinds = st.sampled_from(["all_gather", "reduce_scatter", "all_reduce", "all_to_all"])
sizes = st.integers(1, 16)
shapes = st.lists(sizes, min_size=1, max_size=3)
nbytes = st.floats(1.0, 1e10)


def _axes(shape, kind="ring", links=1):
    return [Axis(n, kind, links * B, A, f"a{i}") for i, n in enumerate(shape)]


@settings(max_examples=150, deadline=None)
@given(kinds, shapes, nbytes)
def test_more_links_never_slower(kind, shape, d):
    assert collective(kind, d, _axes(shape, links=2)).total_s <= \
        collective(kind, d, _axes(shape)).total_s * (1 + 1e-12)


@settings(max_examples=150, deadline=None)
@given(kinds, shapes, nbytes)
def test_mesh_never_faster_than_torus(kind, shape, d):
    assert collective(kind, d, _axes(shape, "line")).total_s >= \
        collective(kind, d, _axes(shape, "ring")).total_s * (1 - 1e-12)


@settings(max_examples=100, deadline=None)
@given(kinds, shapes)
def test_linear_in_bytes_for_large_messages(kind, shape):
    big = 1e12
    t1, t2 = collective(kind, big, _axes(shape)), collective(kind, 2 * big, _axes(shape))
    if t1.total_s > 0:
        assert t2.transfer_s == pytest.approx(2 * t1.transfer_s, rel=1e-9)
        assert t2.total_s / t1.total_s == pytest.approx(2, rel=1e-3)


@settings(max_examples=100, deadline=None)
@given(kinds, shapes)
def test_latency_bound_for_small_messages(kind, shape):
    c = collective(kind, 64.0, _axes(shape))
    if c.total_s > 0:
        assert c.transfer_s < 0.01 * c.latency_s


@settings(max_examples=100, deadline=None)
@given(kinds, shapes, nbytes)
def test_never_faster_than_the_injection_bound(kind, shape, d):
    # A chip can push at most 2 x dims x b bytes/s into the network; all-gather and
    # reduce-scatter must move (P-1)/P x D through it.
    if kind not in ("all_gather", "reduce_scatter"):
        return
    axes = _axes(shape)
    p = math.prod(shape)
    c = collective(kind, d, axes)
    assert c.transfer_s >= (p - 1) / p * d / (2 * len(shape) * B) * (1 - 1e-9)


# ---------------------------------------------------------------- bytes received per chip

mixed = st.lists(st.tuples(sizes, st.sampled_from(["ring", "line", "switch"])), min_size=1,
                 max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["all_gather", "reduce_scatter", "all_reduce"]), mixed, nbytes)
def test_bytes_received_are_what_a_chip_lacks_whatever_the_schedule(kind, axes, d):
    """Conservation: an all-gather's chip ends with the whole array and started with 1/P of
    it, so it receives (P-1)/P x D over ICI and DCN together, by any schedule (sequential,
    concurrent, hierarchical); a reduce-scatter's chip reduces P-1 partial chunks of every
    part it ends with, the same bytes; an all-reduce is both."""
    ax = [Axis(n, k, B if k != "switch" else B / 16, A, f"a{i}") for i, (n, k) in enumerate(axes)]
    p = math.prod(n for n, _ in axes)
    c = collective(kind, d, ax)
    want = (p - 1) / p * d * (2 if kind == "all_reduce" else 1)
    assert c.ici_bytes + c.dcn_bytes == pytest.approx(want, rel=1e-9, abs=1e-9)
    if all(k == "switch" for _, k in axes) or p == 1:
        assert c.ici_bytes == 0.0
    if all(k != "switch" for _, k in axes):
        assert c.dcn_bytes == 0.0


def test_hierarchical_gather_sends_only_the_small_shard_over_dcn():
    """fsdp over 2 slices of a 16-ring: the DCN phase gathers each chip's 1/32 shard from the
    other slice ((K-1)/K x D / P_ici), the ICI phase the rest (module docstring)."""
    d = 32e9
    c = all_gather(d, [ring(16), Axis(2, "switch", 1.25e10, 1e-5, "dcn")])
    assert c.dcn_bytes == pytest.approx(0.5 * d / 16)   # (DCN first: sequential = nested)
    assert c.ici_bytes == pytest.approx(15 / 16 * d)


def test_all_to_all_and_permute_bytes_hand_counted():
    # all-to-all on one ring of 4: 3 chunks of D/4 come in; over two rings each phase
    # exchanges the whole buffer along its axis, (n-1)/n of it each time
    assert all_to_all(4e6, ring(4)).ici_bytes == pytest.approx(3e6)
    c = all_to_all(8e6, [ring(4, name="x"), ring(2, name="y")])
    assert c.ici_bytes == pytest.approx(3 / 4 * 8e6 + 1 / 2 * 8e6)
    assert permute(5e6, ring(8), shift=3).ici_bytes == 5e6     # routed 3 hops, received once
    assert permute(5e6, Axis(2, "switch", 1e10, 1e-5, "dcn")).dcn_bytes == 5e6
    assert all_gather(1e6, ring(1)).ici_bytes == 0.0

"""ICI/DCN sections of the chip presets against their public per-chip totals; slice shapes,
wraparound rules and the one-line errors for shapes that do not match the chips."""
from __future__ import annotations

import pytest

from tpusim.config import load_config
from tpusim.errors import InputError
from tpusim.pod.topology import default_shape, make_slice, parse_shape

# Published per-chip figures (Cloud TPU docs pages v5e, v5p, v6e, tpu7x): bidirectional ICI GB/s
# per chip, ICI ports, DCN Gbit/s per chip, pod or largest-slice chips.
PUBLISHED_ICI = {
    "tpu_v5e": (400, 4, 25, 256), "tpu_v5p": (1200, 6, 50, 6144),
    "tpu_v6e": (800, 4, 100, 256), "tpu_v7": (1200, 6, 100, 9216),
}
PUBLISHED_PEAK_TFLOPS = {"tpu_v5p": 459, "tpu_v6e": 918, "tpu_v7": 2307}
# v6e: 31.25 GiB allocatable, JAX's bytes_limit in MaxText's v6e-8 logs (configs/tpu_v6e.yaml)
PUBLISHED_HBM = {"tpu_v5p": (2765, 95), "tpu_v6e": (1638, 31.25), "tpu_v7": (7380, 192)}


@pytest.mark.parametrize("name", sorted(PUBLISHED_ICI))
def test_ici_totals_match_published_per_chip_figures(name):
    bidi_gbps, ports, dcn_gbit, chips = PUBLISHED_ICI[name]
    c = load_config(name)
    total = c.ici.links_per_chip * c.ici.link_bandwidth_bytes_per_s * 2 / 1e9
    assert total == pytest.approx(bidi_gbps)
    assert c.ici.links_per_chip == ports
    assert c.dcn.bandwidth_bytes_per_s * 8 / 1e9 == pytest.approx(dcn_gbit)
    assert make_slice(c.ici, c.dcn).chips == chips == c.ici.max_chips


@pytest.mark.parametrize("name", sorted(PUBLISHED_PEAK_TFLOPS))
def test_new_presets_peak_and_hbm(name):
    c = load_config(name)
    assert c.peak_tops("bf16") == pytest.approx(PUBLISHED_PEAK_TFLOPS[name], rel=0.005)
    bw, cap = PUBLISHED_HBM[name]
    assert c.memory.hbm.bandwidth_gbps == bw
    assert c.memory.hbm.capacity_gib == pytest.approx(cap, rel=0.01)


def test_every_multi_chip_preset_has_ici():
    for name in ("tpu_v2", "tpu_v3", "tpu_v4", "tpu_v5e", "tpu_v5p", "tpu_v6e", "tpu_v7"):
        c = load_config(name)
        assert c.ici is not None and c.dcn is not None, name
    for name in ("tpu_v1", "edge_tpu", "tpu_v4i"):
        assert load_config(name).ici is None


def test_wraparound_rules():
    v5e, v5p = load_config("tpu_v5e").ici, load_config("tpu_v5p").ici
    # v5e/v6e: only a full axis of 16 wraps (scaling-book); v4/v5p: whole 4x4x4 cubes, every
    # axis or none ("a 2x2x4 won't have any wraparounds": scaling-book, TPUs chapter)
    assert make_slice(v5e, shape="8x16").wrap == (False, True)
    assert make_slice(v5e, shape="4x4").wrap == (False, False)
    assert make_slice(v5p, shape="4x4x8").wrap == (True, True, True)
    assert make_slice(v5p, shape="2x2x4").wrap == (False, False, False)
    assert make_slice(v5p, shape="2x4x4").wrap == (False, False, False)
    assert make_slice(v5p, shape="4x4").wrap == (False, False)          # 16 chips: no cube
    assert make_slice(v5p, chips=16).shape == (2, 2, 4)                 # Cloud's v5p-32
    mesh = v5p.model_copy(update={"topology": "mesh"})
    assert make_slice(mesh, shape="4x4x8").wrap == (False, False, False)


def test_axis_bandwidth_is_links_per_direction_times_link():
    ici = load_config("tpu_v5p").ici
    assert ici.links_per_direction == 1
    double = ici.model_copy(update={"links_per_chip": 12})
    ax = make_slice(double, shape="4x4x4").axis(0)
    assert ax.bandwidth_bytes_per_s == 2 * ici.link_bandwidth_bytes_per_s and ax.kind == "ring"


def test_inbound_bandwidth_counts_the_links_a_shape_wires():
    # Per chip, averaged over the slice: a wrapped axis brings one link from each neighbour
    # (2 b), a line of n chips 2(n-1) directed links over n chips, so a 2x2 wires 2 of v5e's
    # 4 ports and an 8x16 v5e 2 x 7/8 + 2 of them; a v5p 4x4x8 cube wires all 6.
    v5e, v5p = load_config("tpu_v5e").ici, load_config("tpu_v5p").ici
    b = v5e.link_bandwidth_bytes_per_s
    assert make_slice(v5e, shape="2x2").inbound_bytes_per_s == pytest.approx(2 * b)
    assert make_slice(v5e, shape="8x16").inbound_bytes_per_s == pytest.approx((2 * 7 / 8 + 2) * b)
    assert make_slice(v5e, shape="16x16").inbound_bytes_per_s == pytest.approx(4 * b)
    assert make_slice(v5p, shape="4x4x8").inbound_bytes_per_s == pytest.approx(
        6 * v5p.link_bandwidth_bytes_per_s)


def test_default_shapes_follow_cloud_slice_names():
    # v5e-8 is 2x4, v5p-512 (256 chips) is 4x8x8, v6e-256 is 16x16 (Cloud TPU docs tables).
    assert default_shape(load_config("tpu_v5e").ici, 8) == (2, 4)
    assert default_shape(load_config("tpu_v5p").ici, 256) == (4, 8, 8)
    assert default_shape(load_config("tpu_v6e").ici, 256) == (16, 16)
    # v6e-16 is 4x4 and v5e-32 4x8 (Cloud TPU docs), not a wrapped 16- or 32-chip ring
    assert default_shape(load_config("tpu_v6e").ici, 16) == (4, 4)
    assert default_shape(load_config("tpu_v5e").ici, 32) == (4, 8)
    assert default_shape(load_config("tpu_v4").ici, 8) == (2, 2, 2)
    s = make_slice(load_config("tpu_v4").ici, load_config("tpu_v4").dcn, chips=6144, slices=2)
    assert s.shape == (12, 16, 16) and s.chips == 6144 and s.slices == 2


@pytest.mark.parametrize("kw,needle", [
    ({"shape": "4x4", "chips": 8}, "has 16 chips"),
    ({"shape": "4x4x4x4"}, "3 axes"),
    ({"shape": "4xq"}, "expected sizes"),
    ({"shape": "0x4"}, "positive"),
    ({"chips": 10, "slices": 3}, "multiple of --slices"),
    ({"shape": "16x16x32"}, "at most 6144"),
])
def test_bad_slice_is_one_line(kw, needle):
    c = load_config("tpu_v5p")
    with pytest.raises(InputError) as exc:
        make_slice(c.ici, c.dcn, **kw)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_chip_without_ici_says_so():
    with pytest.raises(InputError, match="no ici section"):
        make_slice(load_config("tpu_v4i").ici)


def test_bad_ici_section_names_field(tmp_path):
    text = (load_config.__globals__["CONFIG_DIR"] / "tpu_v5p.yaml").read_text()
    p = tmp_path / "chip.yaml"
    p.write_text(text.replace("links_per_chip: 6 ", "links_per_chip: 5 "))
    with pytest.raises(InputError, match="links_per_chip"):
        load_config(p)
    p.write_text(text.replace("  hop_latency_s:", "  hop_latencyy_s:"))
    with pytest.raises(InputError) as exc:
        load_config(p)
    assert "ici.hop_latencyy_s" in str(exc.value) and "hop_latency_s" in str(exc.value)


def test_set_reaches_ici_fields():
    c = load_config("tpu_v5p", **{"ici.hop_latency_s": 2e-6})
    assert c.ici.hop_latency_s == 2e-6
    with pytest.raises(InputError, match="unknown field 'hops'"):
        load_config("tpu_v5p", **{"ici.hops": 2})


def test_parse_shape():
    assert parse_shape("4x4x8") == (4, 4, 8) and parse_shape((2, 2)) == (2, 2)


@pytest.mark.parametrize("name", ["tpu_v5p", "tpu_v6e", "tpu_v7"])
def test_new_presets_simulate(name):
    # Every field the single-chip model reads (energy node, SRAM, vector unit) is in range.
    from tpusim.importers.llm import llm_workload
    from tpusim.simulator import simulate
    r = simulate(name, llm_workload("gpt2", "prefill", batch=1, seq=128))
    assert r.summary["latency_s"] > 0 and r.summary["energy_j"] > 0


def test_trailing_unit_axes_are_dropped_and_extra_real_ones_refused():
    v5e = load_config("tpu_v5e").ici
    assert make_slice(v5e, shape="2x4x1").shape == make_slice(v5e, shape="2x4").shape == (2, 4)
    assert make_slice(v5e, shape="2x4x1x1").chips == 8
    with pytest.raises(InputError, match="this chip's ICI has 2 axes"):
        make_slice(v5e, shape="2x2x2")

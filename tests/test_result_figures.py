"""Result.roofline() / Result.energy(): plotly figures a notebook shows, holding the run's numbers."""
import math

import pytest

import tpusim


@pytest.fixture(scope="module")
def rn50():
    return tpusim.simulate("default", "resnet50")


def test_energy_figure_adds_up_to_the_run(rn50):
    import plotly.graph_objects as go
    fig = rn50.energy()
    assert isinstance(fig, go.Figure)
    s = rn50.summary
    pie = fig.data[0]
    assert pie.type == "pie"
    unit_j = 1e-3 if "mJ" in fig.layout.title.text else None
    assert unit_j is not None, fig.layout.title.text        # 2.8 mJ per run: shown in mJ
    assert sum(pie.values) * unit_j == pytest.approx(s["energy_j"], rel=1e-9)
    # each component's bars (layer energy x count) sum to that component of the breakdown
    by_label = dict(zip(pie.labels, pie.values))
    bars = [t for t in fig.data if t.type == "bar"]
    assert {t.name for t in bars} == set(pie.labels)
    for t in bars:
        assert sum(t.y) == pytest.approx(by_label[t.name], rel=1e-9)
    # the layer bars per layer sum to that layer's energy x count
    lay = rn50.layers
    per_layer = [sum(t.y[i] for t in bars) for i in range(len(lay))]
    want = (lay.energy_pj * lay["count"] * 1e-12 / unit_j).tolist()
    assert per_layer == pytest.approx(want, rel=1e-9)


def test_roofline_figure_has_the_chip_roofs_and_every_layer(rn50):
    import plotly.graph_objects as go
    fig = rn50.roofline()
    assert isinstance(fig, go.Figure)
    fmt = rn50.summary["format"]
    roof = next(t for t in fig.data if t.name.startswith(f"{fmt} roof"))
    assert max(roof.y) == pytest.approx(rn50.config.peak_tops(fmt), rel=1e-6)
    points = [t for t in fig.data if t.name.startswith("under the")]
    assert points
    for t in points:      # no layer above the compute roof
        assert all(y <= max(roof.y) * (1 + 1e-9) for y in t.y)
    # merged markers stand for every row that took time exactly once (rows folded into a
    # neighbour take 0 cycles), and their shares of time add up to the whole run
    rows = [i for t in points for c in t.customdata for i in c[11]]
    lay = rn50.layers
    assert sorted(rows) == lay.index[lay.cycles > 0].tolist()
    assert sum(c[7] for t in points for c in t.customdata) == pytest.approx(100, rel=1e-6)


def test_timeline_names_the_offchip_memory():
    r = tpusim.simulate("tpu_v1", "tpu_v1/mlp0")
    names = {t.name for t in r.timeline().data}
    assert any(n.startswith("layer: DDR3") for n in names), names
    assert not any("HBM" in n for n in names), names

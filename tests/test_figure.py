"""Report figures as plain dicts: valid plotly figures (plotly's own validator accepts them and
changes nothing), safe HTML, and a report that never imports plotly."""
from __future__ import annotations

import base64
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import tpusim
from tpusim.figure import Figure, figure_div, template
from tpusim.plots import energy_figure, time_per_layer_figure
from tpusim.roofline import chip_roofs, layer_table
from tpusim.roofline_plots import roofline_chart, roofline_figure


def _norm(v):
    """JSON-comparable: plotly's typed arrays decoded, numpy to Python, non-finite to None."""
    if isinstance(v, dict) and "bdata" in v:
        v = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


@pytest.fixture(scope="module")
def figures():
    r = tpusim.simulate("default", "resnet50")
    roofs = chip_roofs(r.config)
    t = layer_table(r.layers, r.config, roofs, "resnet50")
    return [roofline_chart(t, roofs, "roofline"), time_per_layer_figure(r.layers, 0.94),
            energy_figure(r.summary, r.layers), energy_figure(r.summary),
            roofline_figure(r.layers, 92.0, 600e9)]


def test_plotly_validates_each_figure_to_itself(figures):
    go = pytest.importorskip("plotly.graph_objects")
    for fig in figures:
        ours = fig.to_dict()
        ours["layout"]["template"] = template("plotly_white")
        checked = go.Figure(ours).to_dict()      # raises on any property plotly does not know
        assert _norm(checked) == _norm(ours)


def test_shorthands_nest_like_plotly():
    fig = Figure().add_bar(x=[1], y=np.array([2.0]), marker_color="red", name="b")
    fig.update_layout(title="t", xaxis_title="x", yaxis={"title": "y", "type": "log"})
    fig.update_yaxes(title_text="y2")
    d = fig.to_dict()
    assert d["data"] == [{"type": "bar", "x": [1], "y": [2.0], "marker": {"color": "red"},
                          "name": "b"}]
    assert d["layout"] == {"title": {"text": "t"}, "xaxis": {"title": {"text": "x"}},
                           "yaxis": {"title": {"text": "y2"}, "type": "log"}}
    assert fig.data[0].marker.color == "red" and fig.layout.yaxis.type == "log"
    assert fig.data[0].missing is None


def test_div_is_safe_json_with_nulls():
    fig = Figure().add_scatter(x=[1.0, math.inf], y=[math.nan, 2.0], text=["</script><b>"])
    html = figure_div(fig.to_dict(), "plot-7", False, {"displaylogo": False})
    assert "</script><b>" not in html and "\\u003c\\u002fscript\\u003e" in html
    start = html.index("[", html.index('"plot-7",', html.index("newPlot")))
    data = json.JSONDecoder().raw_decode(html[start:])[0]
    assert data[0]["x"] == [1.0, None] and data[0]["y"] == [None, 2.0]
    assert '<div id="plot-7" class="plotly-graph-div"' in html and "Plotly.newPlot" not in \
        figure_div(fig.to_dict(), "p", False, {}).split("<script>")[0]


def test_report_does_not_import_plotly(tmp_path):
    code = ("import sys, tpusim\n"
            "from tpusim.results import write_result\n"
            "r = tpusim.simulate('default', 'resnet50')\n"
            f"write_result(r, {str(tmp_path)!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'plotly'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    html = (tmp_path / "report.html").read_text()
    assert html.count("plotly.js v") == 1 and html.count('class="plotly-graph-div"') == 4

"""A run's charts as plotly figures, for a notebook: :meth:`tpusim.simulator.Result.roofline`
and :meth:`~tpusim.simulator.Result.energy` (``timeline`` is in :mod:`tpusim.timeline_plot`).

The report's figures are built as plain dicts (:mod:`tpusim.figure`); these wrap the same
dicts as ``plotly.graph_objects.Figure`` so a notebook shows, zooms and restyles them, and
what a notebook shows is what ``report.html`` draws.
"""
from __future__ import annotations


def _plotly(fig):
    import plotly.graph_objects as go
    return go.Figure(fig.to_dict())


def result_roofline(result):
    """The run's roofline: the chip's roofs, one point per layer shape sized by its share of
    time and coloured by the roof that binds it, on-chip layers in the gutter."""
    from .roofline import chip_roofs, layer_table
    from .roofline_plots import roofline_chart
    s = result.summary
    roofs = chip_roofs(result.config)
    table = layer_table(result.layers, result.config, roofs, s["workload"])
    return _plotly(roofline_chart(table, roofs, f"Roofline: {s['workload']} on {s['config']}"))


def result_energy(result):
    """The run's energy: a donut by component and each layer's energy (× count) stacked by
    component, in one unit (the unit of the run's total)."""
    from .plots import energy_figure
    from .wording import offchip
    return _plotly(energy_figure(result.summary, result.layers, offchip=offchip(result.config)))

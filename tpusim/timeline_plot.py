"""The timeline as a Gantt chart: one row per resource track, layers as slices along time.

Built from :func:`tpusim.timeline.build_timeline` as a :class:`tpusim.figure.Figure` (the
report's figures are dicts); :meth:`tpusim.simulator.Result.timeline` wraps it as a plotly
figure. One bar trace per kind of slice, so the legend names each (and hides it on a click);
hover shows the layer, what the slice is, its length and, for DMA, its bytes.
"""
from __future__ import annotations

from collections import defaultdict

from .figure import Figure
from .plots import BOUND_COLORS, TIME_PARTS
from .roofline_plots import bound_label
from .timeline import Timeline

# Colours: a stall has the colour of the stream it waits on.
COLORS = {"MXU": TIME_PARTS["array busy"], "vector unit": TIME_PARTS["vector unit"],
          "HBM weights": TIME_PARTS["stall: weights"], "HBM inputs": TIME_PARTS["stall: inputs"],
          "HBM outputs": TIME_PARTS["stall: outputs"], "prefetch": "#c0392b",
          **{k: v for k, v in TIME_PARTS.items() if k.startswith("stall")},
          "per-op overhead": TIME_PARTS["per-op overhead"]}


def _unit(cycles: float, tl: Timeline) -> tuple[float, str]:
    """(µs per cycle x scale, unit name): ms for runs over 1 ms, else µs."""
    us = tl.us(1.0)
    return (us / 1e3, "ms") if tl.us(cycles) >= 1e3 else (us, "µs")


def timeline_figure(tl: Timeline, title: str | None = None, offchip: str = "HBM") -> Figure:
    """The Gantt chart of ``tl``: tracks top to bottom as ``tl.tracks``, time along x;
    ``offchip``: the off-chip memory's kind, for the bound names (DDR3, USB3, HBM2...)."""
    scale, unit = _unit(tl.cycles, tl)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for s in tl.slices:
        if s.track == "layers":
            key = (s.track, tl.rows[s.row]["bound"])
        elif s.track == "stalls" or s.label == "prefetch":
            key = (s.track, s.label)
        else:
            key = (s.track, s.track)
        groups[key].append(s)
    fig = Figure()
    tracks = tl.tracks
    shown = set()
    for (track, kind), slices in sorted(groups.items(), key=lambda kv: tracks.index(kv[0][0])):
        if track == "layers":
            color, legend = BOUND_COLORS.get(kind, "#888"), f"layer: {bound_label(kind, offchip)}"
        elif track.startswith("MXU"):
            color, legend = COLORS["MXU"], "arrays (MXUs)"
        else:
            color, legend = COLORS.get(kind, "#888"), tl.label(kind)
        info = []
        for s in slices:
            r = tl.rows[s.row]
            if track == "layers":
                extra = (f"{r['op']} {r['shape']} {r['format']} × {r['count']}<br>"
                         f"{r['cycles']:,.0f} cycles, {bound_label(r['bound'], offchip)}")
            elif s.nbytes:
                extra = f"{s.nbytes / 2**20:,.4g} MiB at {s.nbytes / s.dur * tl.clock_ghz:,.4g} GB/s"
            else:
                extra = f"{s.dur:,.0f} cycles"
            info.append([s.name, extra, s.start * scale])
        fig.add_bar(y=[tl.label(track)] * len(slices), x=[s.dur * scale for s in slices],
                    base=[s.start * scale for s in slices], orientation="h", name=legend,
                    legendgroup=legend, showlegend=legend not in shown,
                    marker={"color": color, "line": {"color": "white", "width": 0.5}},
                    customdata=info,
                    hovertemplate=(f"%{{customdata[0]}}<br>{legend}: %{{x:.4g}} {unit} from "
                                   f"%{{customdata[2]:.4g}} {unit}<br>%{{customdata[1]}}<extra></extra>"))
        shown.add(legend)
    fig.update_layout(barmode="overlay", bargap=0.25,
                      title=title or f"Timeline: {tl.workload} on {tl.config}",
                      xaxis={"title": {"text": f"time ({unit})"}},
                      yaxis={"categoryorder": "array", "categoryarray": [tl.label(t) for t in reversed(tracks)],
                             "fixedrange": True},
                      height=300 + 20 * len(tracks), legend={"orientation": "h", "y": -0.2},
                      margin={"t": 50, "b": 40, "l": 110})
    return fig


def result_timeline(result, detail: str = "layers", walk=None):
    """:meth:`Result.timeline`: the timeline of ``result`` as a plotly figure."""
    import plotly.graph_objects as go

    from .timeline import build_timeline
    from .wording import offchip
    tl = build_timeline(result, detail, walk)
    return go.Figure(timeline_figure(tl, offchip=offchip(result.config)).to_dict())

"""Plotly figures as the plain JSON plotly.js reads, and their HTML, without importing plotly.

plotly's ``graph_objects`` validate every property as a figure is built, and importing them is
a good part of a report's time; the report's figures are only ever written out, so they are
built here as dicts. :class:`Figure` keeps the part of the ``graph_objects`` API the builders in
:mod:`tpusim.plots` and :mod:`tpusim.roofline_plots` use (``add_scatter``, ``add_bar``, ``add_pie``, ``add_annotation``,
``update_layout``, ``update_yaxes``, attribute access to ``data`` and ``layout``), with
plotly's conventions: ``marker_color=`` means ``marker={"color": ...}``, a string title means
``{"text": ...}``. :func:`figure_div` writes the div :func:`plotly.io.to_html` writes
(``full_html=False``), plotly.js read from plotly's package data, JSON escaped the same way
(``<``, ``>``, ``/``), NaN and infinities as ``null``.
"""
from __future__ import annotations

import json
from typing import Any

from ._io import finite

_TEMPLATES: dict[str, dict] = {}


class Obj(dict):
    """A dict whose keys read as attributes (missing ones as ``None``), nested dicts too."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        v = self.get(name)
        if isinstance(v, dict) and not isinstance(v, Obj):
            v = self[name] = Obj(v)
        return v


def _plain(v: Any) -> Any:
    """Pandas/numpy values as JSON values: sequences as lists, numpy scalars as numbers."""
    if hasattr(v, "to_numpy"):         # pandas Series, Index, DataFrame
        return v.to_numpy().tolist()
    if hasattr(v, "tolist"):           # numpy array or scalar
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _dicts(v: Any) -> Any:
    """Plain dicts and lists all the way down (a deep copy)."""
    if isinstance(v, dict):
        return {k: _dicts(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dicts(x) for x in v]
    return v


def _titles(d: dict) -> dict:
    """plotly's shorthand: a string ``title`` is ``{"text": title}``, at any depth."""
    for k, v in d.items():
        if k == "title" and isinstance(v, str):
            d[k] = {"text": v}
        elif isinstance(v, dict):
            _titles(v)
    return d


def _merge(into: dict, key: str, value: Any) -> None:
    """Set ``key`` (``a_b_c`` means ``a.b.c`` unless ``a_b_c`` is itself the name) in place."""
    head, _, rest = key.partition("_")
    if rest and head in ("marker", "line", "xaxis", "yaxis", "title", "legend", "font"):
        into.setdefault(head, Obj())
        _merge(into[head], rest, value)
    elif isinstance(value, dict) and isinstance(into.get(key), dict):
        for k, v in value.items():
            _merge(into[key], k, v)
    else:
        into[key] = Obj(value) if isinstance(value, dict) else value


class Figure:
    """A figure as ``{"data": [...], "layout": {...}}``; see the module docstring."""

    def __init__(self) -> None:
        self.data: list[Obj] = []
        self.layout = Obj()

    def _trace(self, kind: str, **kw: Any) -> "Figure":
        tr = Obj(type=kind)
        for k, v in kw.items():
            _merge(tr, k, _plain(v))
        self.data.append(tr)
        return self

    def add_scatter(self, **kw: Any) -> "Figure":
        return self._trace("scatter", **kw)

    def add_bar(self, **kw: Any) -> "Figure":
        return self._trace("bar", **kw)

    def add_pie(self, **kw: Any) -> "Figure":
        return self._trace("pie", **kw)

    def add_annotation(self, **kw: Any) -> "Figure":
        ann = Obj()
        for k, v in kw.items():
            _merge(ann, k, _plain(v))
        self.layout.setdefault("annotations", []).append(ann)
        return self

    def update_layout(self, **kw: Any) -> "Figure":
        for k, v in kw.items():
            _merge(self.layout, k, _titles(_plain(v)) if isinstance(v, dict) else _plain(v))
        _titles(self.layout)
        return self

    def update_yaxes(self, title_text: str | None = None, axis: str = "yaxis") -> "Figure":
        if title_text is not None:
            self.layout.setdefault(axis, Obj())["title"] = Obj(text=title_text)
        return self

    def to_dict(self) -> dict:
        return {"data": [_dicts(t) for t in self.data], "layout": _dicts(self.layout)}

    def to_image(self, template_name: str = "plotly_white", **kw: Any) -> bytes:
        """A static image through a plotly figure and kaleido (imported only here)."""
        import plotly.graph_objects as go
        d = self.to_dict()
        d["layout"] = {"template": template(template_name), **d["layout"]}
        return go.Figure(finite(d)).to_image(**kw)


def template(name: str) -> dict:
    """plotly's template ``name`` as plotly writes it, read from plotly's package data."""
    if name not in _TEMPLATES:
        raw = json.loads(_package_file("templates", f"{name}.json"))
        _TEMPLATES[name] = {"data": raw["data"], "layout": raw["layout"]}
    return _TEMPLATES[name]


def _package_file(*parts: str) -> str:
    """A file of plotly's package data, found without importing plotly."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("plotly is needed for the HTML report (pip install plotly)")
    root = Path(list(spec.submodule_search_locations)[0])
    return root.joinpath("package_data", *parts).read_text(encoding="utf-8")


def plotly_js() -> str:
    from .plotlyjs import source
    return source()


def _json(obj: Any) -> str:
    out = json.dumps(finite(obj), separators=(",", ":"), allow_nan=False)
    for unsafe, safe in (("<", "\\u003c"), (">", "\\u003e"), ("/", "\\u002f")):
        out = out.replace(unsafe, safe)
    return out


def figure_div(fig: dict, div_id: str, include_plotlyjs: bool, config: dict) -> str:
    """The HTML of one figure dict, as ``plotly.io.to_html(full_html=False)`` writes it."""
    layout = fig.get("layout", {})
    tlayout = layout.get("template", {}).get("layout", {})
    height = layout.get("height", tlayout.get("height", "100%"))
    width = layout.get("width", tlayout.get("width", "100%"))
    height = f"{height}px" if isinstance(height, (int, float)) else height
    width = f"{width}px" if isinstance(width, (int, float)) else width
    config = {**config}
    config.setdefault("responsive", True)
    load = ""
    if include_plotlyjs:   # inline, or a tag to plotly.min.js / the CDN (tpusim.plotlyjs)
        from .plotlyjs import script_tag
        load = script_tag()
    script = (f'                if (document.getElementById("{div_id}")) {{'
              f'                    Plotly.newPlot(                        "{div_id}",'
              f'                        {_json(fig.get("data", []))},'
              f'                        {_json(layout)},'
              f'                        {json.dumps(config)}'
              "                    )                }")
    return (f'<div style="height:{height}; width:{width};">                        {load}'
            f'                <div id="{div_id}" class="plotly-graph-div" '
            'style="height:100%; width:100%;"></div>            <script>'
            '                window.PLOTLYENV=window.PLOTLYENV || {};'
            f'                {script};            </script>        </div>')

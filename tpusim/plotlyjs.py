"""How a page loads plotly.js: ``inline`` (in the page), ``directory`` (one ``plotly.min.js``
beside the pages) or ``cdn`` (from cdn.plot.ly, needs the network).

The mode is a context variable: ``with plotlyjs.use("directory"): ...`` (the CLI's
``--plotlyjs``) makes every page built inside load plotly.js that way, and every
:func:`tpusim.results.write_all` of an ``.html`` page inside it puts ``plotly.min.js`` beside
the page (written once per folder; an identical copy there is left alone).

``inline`` is the default: a page is one file that opens anywhere, offline, also when it is
mailed or moved on its own; ``directory`` saves ~4.8 MB per page, but the page then needs
its folder.
"""
from __future__ import annotations

import contextvars
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MODES = ("inline", "directory", "cdn")
FILE = "plotly.min.js"
_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("plotlyjs", default="inline")


def mode() -> str:
    """The mode pages are built in now."""
    return _MODE.get()


def check(value: str, source: str = "--plotlyjs") -> str:
    """``value`` if it is a mode, else an :class:`tpusim.errors.InputError`."""
    if value not in MODES:
        from .errors import InputError
        raise InputError(source, None, value, "allowed: " + "|".join(MODES))
    return value


@contextmanager
def use(value: str) -> Iterator[None]:
    """Build (and write) the pages inside in mode ``value``."""
    token = _MODE.set(check(value))
    try:
        yield
    finally:
        _MODE.reset(token)


_SOURCE: list[str] = []


def source() -> str:
    """plotly.js as plotly's package ships it (read once, without importing plotly)."""
    if not _SOURCE:
        import importlib.util
        spec = importlib.util.find_spec("plotly")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("plotly is needed for the HTML pages (pip install plotly)")
        root = Path(list(spec.submodule_search_locations)[0])
        _SOURCE.append((root / "package_data" / FILE).read_text(encoding="utf-8"))
    return _SOURCE[0]


def version() -> str:
    """The version of the plotly.js plotly ships, from the file's header comment."""
    m = re.search(r"plotly\.js v(\d+\.\d+\.\d+)", source()[:400])
    if m is None:   # never seen; a CDN link to an unknown version would load nothing
        raise RuntimeError("cannot read the plotly.js version from plotly's package data")
    return m.group(1)


def cdn_url() -> str:
    """The URL plotly itself writes for ``include_plotlyjs="cdn"``."""
    return f"https://cdn.plot.ly/plotly-{version()}.min.js"


def script_tag() -> str:
    """The tag that loads plotly.js in the current mode (before the first figure)."""
    m = mode()
    head = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n        "
    if m == "inline":
        return head + f"<script>{source()}</script>"
    src = FILE if m == "directory" else cdn_url()
    return head + f'<script charset="utf-8" src="{src}"></script>'


def for_plotly() -> bool | str:
    """The mode as ``plotly.io.to_html``'s ``include_plotlyjs`` spells it."""
    return {"inline": True, "directory": "directory", "cdn": "cdn"}[mode()]


def write_beside(out_dir: str | Path, names: list[str]) -> Path | None:
    """In ``directory`` mode, with an ``.html`` among ``names``: ``out_dir/plotly.min.js``
    (written whole, and only when missing). It belongs to no run's manifest, so no later write
    removes it while another page there needs it; one that differs from tpusim's copy (a
    user's pinned build, an older tpusim's) is left as it is, with a warning: the pages use it."""
    if mode() != "directory" or not any(str(n).endswith(".html") for n in names):
        return None
    from ._io import atomic_write_text, check_target
    target = Path(out_dir) / FILE
    check_target(target)
    text = source()
    if target.is_file():
        same = target.stat().st_size == len(text.encode("utf-8")) and \
            target.read_text(encoding="utf-8", errors="replace") == text
        if not same:
            import sys
            print(f"tpusim: warning: {target} differs from tpusim's plotly.js "
                  f"{version()}; left as it is, and the pages here load it", file=sys.stderr)
        return target
    atomic_write_text(target, text)
    return target

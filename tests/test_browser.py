"""The pages in a real browser: headless Chromium opens ``report.html``, a roofline page,
``compare.html``, ``sweep.html``, ``formats.html`` and a ``--plotlyjs directory`` report
(plotly.js from the file beside it) from file:// with networking off, runs their scripts
without a console error, and plotly draws.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped with a reason otherwise.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.browser

TRACE = """
name,op,m,k,n,elements,weight_dtype,act_dtype
fc1,matmul,200,2000,2000,,int8,int8
act1,tanh,,,,400000,int8,int8
fc2,matmul,200,2000,2000,,int8,int8
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--virtual-time-budget=8000"]
# Runs before any other script: records uncaught errors and console.error calls on <html>.
HOOK = ("<script>(function(){var d=document.documentElement;function f(m){"
        "d.setAttribute('data-js-error',(d.getAttribute('data-js-error')||'')+String(m)+'|');}"
        "window.addEventListener('error',function(e){f(e.message)});"
        "var ce=console.error;console.error=function(){f([].join.call(arguments,' '));"
        "return ce.apply(console,arguments)};})();</script>")


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    if exe is None:
        pytest.skip("headless Chromium not found (apt-get install -y chromium)")
    return exe


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("pages")
    trace = d / "mlp.csv"
    trace.write_text(TRACE.strip() + "\n")
    code, _, err = run_cli("run", "tpu_v1", trace, "--out", d / "run")
    assert code == 0, err
    code, _, err = run_cli("roofline", "default", trace, "--format", "int8,bf16",
                           "--out", d / "roofline.html")
    assert code == 0, err
    code, _, err = run_cli("compare", d / "run", f"default:{trace}", "--out", d / "cmp")
    assert code == 0, err
    code, _, err = run_cli("run", "tpu_v1", trace, "--out", d / "dir", "--plotlyjs",
                           "directory")
    assert code == 0, err
    assert (d / "dir" / "plotly.min.js").is_file()
    code, _, err = run_cli("sweep", "default", trace, "--rows", "16,64", "--cols", "16,64",
                           "--jobs", "1", "--out", d / "sweep")
    assert code == 0, err
    code, _, err = run_cli("formats", "tpu_v4", "--workload", trace, "--gemm-size", "16",
                           "--out", d / "formats")
    assert code == 0, err
    out = {}
    for name, path, plots in (("report", d / "run" / "report.html", 4),
                              ("roofline", d / "roofline.html", 1),
                              ("compare", d / "cmp" / "compare.html", 2),
                              ("directory", d / "dir" / "report.html", 4),
                              ("sweep", d / "sweep" / "sweep.html", 3),
                              ("formats", d / "formats" / "formats.html", 4)):
        text = path.read_text()
        hooked = path.parent / f"{name}-hooked.html"   # beside plotly.min.js when it is one
        hooked.write_text(text.replace("<head>", "<head>" + HOOK, 1))
        out[name] = (hooked, plots)
    return out


def run_browser(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def page_errors(dom: str) -> str | None:
    """What the hook recorded on <html>, or None."""
    m = re.search(r"<html[^>]*\sdata-js-error=\"([^\"]*)\"", dom)
    return m.group(1) if m else None


def console_errors(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines()
            if "Uncaught" in l or ":ERROR:CONSOLE" in l or "ERROR:CONSOLE" in l]


def png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    img = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f == 1:  # Sub: a running sum along each channel
            cur = (np.cumsum(line.reshape(-1, bpp), axis=0) & 255).reshape(-1)
        else:  # Sub, Average, Paeth depend on the left pixel: go byte by byte
            cur = np.zeros(stride, dtype=np.int32)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) & 255
        img[y] = cur
        prev = cur
    return img.reshape(height, width, bpp)[:, :, :3]


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    """The error hook and the console grep do see a script error (so the next test can fail)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head>" + HOOK + "</head><body><div id='x'></div>"
                   "<script>console.error('plot failed'); undefinedFunction();</script>"
                   "</body></html>")
    res = run_browser(browser, tmp_path, "--dump-dom", bad.as_uri())
    errors = page_errors(res.stdout)
    assert "plot failed" in errors and "undefinedFunction" in errors
    assert console_errors(res.stderr)
    assert 'class="main-svg"' not in res.stdout
    shot = tmp_path / "bad.png"
    run_browser(browser, tmp_path, "--window-size=1200,900", f"--screenshot={shot}", bad.as_uri())
    assert not drawn(png_pixels(shot.read_bytes()))


@pytest.mark.parametrize("name", ["report", "roofline", "compare", "directory", "sweep",
                                  "formats"])
def test_page_loads_without_errors_and_plots_draw(browser, pages, tmp_path, name):
    path, plots = pages[name]
    res = run_browser(browser, tmp_path, "--dump-dom", path.as_uri())
    dom = res.stdout
    assert res.returncode == 0, res.stderr[-2000:]
    assert page_errors(dom) is None, page_errors(dom)
    assert not console_errors(res.stderr), console_errors(res.stderr)
    # plotly replaced each empty div with its rendered SVG: two main-svg layers per plot
    assert dom.count('class="main-svg"') >= 2 * plots
    # plotly marks a point with customdata "point plotly-customdata"
    assert re.search(r"""class=["']point["' ]""", dom)
    assert 'class="scatterlayer' in dom


@pytest.mark.parametrize("name", ["report", "roofline", "compare", "sweep", "formats"])
def test_screenshot_is_not_blank(browser, pages, tmp_path, name):
    path, _ = pages[name]
    shot = tmp_path / "shot.png"
    res = run_browser(browser, tmp_path, "--window-size=1200,900", f"--screenshot={shot}",
                      path.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    px = png_pixels(shot.read_bytes())
    assert px.shape[0] >= 800 and px.shape[1] >= 1100
    assert drawn(px)


def drawn(px: np.ndarray) -> bool:
    """Text, axes and coloured markers cover the page: not blank, not only black on white."""
    not_white = (px < 235).any(axis=2).mean()
    colours = len(np.unique(px.reshape(-1, 3) // 16, axis=0))
    return bool(not_white > 0.02 and colours >= 8 and px.std() > 10)


def test_report_timeline_draws_its_tracks(browser, pages, tmp_path):
    """The report's timeline (the fourth plot) is drawn: bars on the resource tracks."""
    path, _ = pages["report"]
    res = run_browser(browser, tmp_path, "--dump-dom", path.as_uri())
    assert page_errors(res.stdout) is None and not console_errors(res.stderr)
    dom = res.stdout
    tl = dom[dom.index('id="plot-3"'):]
    assert "Timeline: mlp on tpu_v1" in tl
    assert tl.count("trace bars") >= 4     # layers, MXU busy, stalls, HBM weights at least
    for track in ("MXU 0", "vector unit", "stalls", "DDR3 weights", "DDR3 outputs"):
        assert f">{track}<" in tl, track


def test_timeline_screenshot_is_not_blank(browser, tmp_path):
    """The block-level timeline alone on a page (what Result.timeline("blocks") shows)."""
    import tpusim
    from tpusim.html_page import figures_html, page
    from tpusim.simulator import walk
    from tpusim.timeline import build_timeline
    from tpusim.timeline_plot import timeline_figure
    r = tpusim.simulate("tpu_v1", "tpu_v1/mlp0")
    p = tmp_path / "tl.html"
    p.write_text(page("timeline", figures_html([timeline_figure(build_timeline(r, "blocks", walk))]))
                 .replace("<head>", "<head>" + HOOK, 1))
    res = run_browser(browser, tmp_path, "--dump-dom", p.as_uri())
    assert page_errors(res.stdout) is None and not console_errors(res.stderr)
    shot = tmp_path / "tl.png"
    run_browser(browser, tmp_path, "--window-size=1200,900", f"--screenshot={shot}", p.as_uri())
    assert drawn(png_pixels(shot.read_bytes()))


def test_train_page_draws_the_step_timeline(browser, tmp_path):
    """The train page's Gantt: bars on the compute, async ICI and blocking tracks, no error."""
    out = tmp_path / "train"
    code, _, err = run_cli("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256",
                           "--parallel", "fsdp=4,tp=2", "--out", out)
    assert code == 0, err
    p = out / "hooked.html"
    p.write_text((out / "report.html").read_text().replace("<head>", "<head>" + HOOK, 1))
    res = run_browser(browser, tmp_path, "--dump-dom", p.as_uri())
    assert page_errors(res.stdout) is None and not console_errors(res.stderr)
    dom = res.stdout
    assert dom.count('class="main-svg"') >= 2 and dom.count("trace bars") >= 4
    for track in ("compute", "ICI async (FSDP/DP)", "ICI/DCN blocking"):
        assert f">{track}<" in dom, track
    shot = tmp_path / "train.png"
    run_browser(browser, tmp_path, "--window-size=1200,1400", f"--screenshot={shot}", p.as_uri())
    assert drawn(png_pixels(shot.read_bytes()))

"""``--plotlyjs inline|directory|cdn``: how a page loads plotly.js, one shared copy per folder."""
from __future__ import annotations

import re

import pytest

from tpusim import plotlyjs
from tpusim.errors import InputError

from .conftest import run_cli

TRACE = "name,op,m,k,n\nfc1,matmul,64,256,256\nfc2,matmul,64,256,128\n"


def _script_srcs(text: str) -> list[str]:
    return re.findall(r'<script[^>]*\ssrc="([^"]+)"', text)


def test_cdn_url_is_the_one_plotly_writes():
    from plotly.io._utils import plotly_cdn_url
    assert plotlyjs.cdn_url() == plotly_cdn_url()


def test_modes_write_what_they_say(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    sizes = {}
    for mode in plotlyjs.MODES:
        code, _, err = run_cli("run", "default", trace, "--out", tmp_path / mode,
                               "--plotlyjs", mode)
        assert code == 0, err
        page = (tmp_path / mode / "report.html").read_text()
        sizes[mode] = len(page)
        beside = tmp_path / mode / "plotly.min.js"
        if mode == "inline":
            assert _script_srcs(page) == [] and plotlyjs.source()[:2000] in page
            assert not beside.exists()
        elif mode == "directory":
            assert _script_srcs(page) == ["plotly.min.js"]
            assert beside.read_text() == plotlyjs.source()
        else:
            assert _script_srcs(page) == [plotlyjs.cdn_url()]
            assert not beside.exists()
    # the page without plotly.js is the inline page less the library, nothing else
    assert sizes["inline"] - sizes["directory"] >= len(plotlyjs.source()) - 200
    # the mode ended with the command: a plain run inlines again
    assert plotlyjs.mode() == "inline"


def test_directory_copy_is_shared_and_survives_other_writes(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE)
    out = tmp_path / "res"
    assert run_cli("run", "default", trace, "--out", out, "--plotlyjs", "directory")[0] == 0
    js = out / "plotly.min.js"
    first = js.stat().st_mtime_ns
    code, _, err = run_cli("compare", out, f"tpu_v4:{trace}", "--out", out,
                           "--plotlyjs", "directory")
    assert code == 0, err
    assert js.stat().st_mtime_ns == first            # an identical copy is left alone
    assert _script_srcs((out / "compare.html").read_text()) == ["plotly.min.js"]
    # an inline rerun of the run does not take the copy compare.html needs
    assert run_cli("run", "default", trace, "--out", out)[0] == 0
    assert js.is_file()
    assert [p.name for p in out.iterdir()].count("plotly.min.js") == 1


def test_bad_mode_is_one_line():
    code, out, err = run_cli("roofline", "default", "resnet50", "--plotlyjs", "web")
    assert code == 2 and "--plotlyjs" in err and "inline" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(InputError, match="inline|directory|cdn"):
        with plotlyjs.use("web"):
            pass


def test_train_page_takes_the_directory_mode(tmp_path):
    """The train page (a Gantt of the step) links the shared copy instead of embedding 4.8 MB."""
    out = tmp_path / "t"
    code, _, err = run_cli("train", "tpu_v5e", "llama2_7b", "--chips", "8", "--parallel",
                           "fsdp=8", "--plotlyjs", "directory", "--out", out)
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert (out / "plotly.min.js").is_file() and 'src="plotly.min.js"' in page
    assert len(page) < 500_000

"""Human units everywhere a person reads numbers: no ``1.636e+04 MiB``, ``1.56198e+07 cycles`` or
``latency s 0.0001459`` in terminal output or in the text of the pages (scripts aside)."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from tpusim import units
from tpusim.pretty import header, html_table

from .conftest import run_cli

# exponent notation, and a decimal with three or more leading zeros after the point
UGLY = re.compile(r"\d(?:\.\d+)?e[+-]?\d+|\b0\.000\d")
TRACE = "name,op,m,k,n,elements,count\nfc1,matmul,64,256,256,,\nact,relu,,,,16384,\n" \
        "fc2,matmul,64,256,128,,2\n"


def page_text(path) -> str:
    text = path.read_text()
    text = re.sub(r"<(script|style).*?</\1>", "", text, flags=re.S)
    return re.sub(r"<[^>]+>", " ", text)


# a run id (16 hex digits, provenance.new_run_id) is a name, not a number: "7e74645" inside one
# is not exponent notation
RUN_ID = re.compile(r"\b[0-9a-f]{16}\b")


def ugly(text: str) -> list[str]:
    return UGLY.findall(RUN_ID.sub(" ", text))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    trace = d / "t.csv"
    trace.write_text(TRACE)
    tiny = d / "tiny.csv"
    tiny.write_text("name,op,m,k,n\na,matmul,4,8,8\nb,matmul,4,8,8\n")
    out = {}
    for name, args in {
        "run": ["run", "tpu_v1", trace, "--out", d / "run"],
        "sweep": ["sweep", "default", trace, "--rows", "16,32", "--cols", "16", "--out",
                  d / "sweep"],
        "formats": ["formats", "tpu_v4", "--formats", "int8,bf16,fp32", "--workload", trace,
                    "--out", d / "formats"],
        "roofline": ["roofline", "edge_tpu", trace, "--out", d / "roof.html"],
        "compare": ["compare", d / "run", f"default:{trace}", "--out", d / "cmp"],
        "generate": ["generate", "tpu_v4", "gpt2", "--prompt", "64", "--steps", "4"],
        "train": ["train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "256",
                  "--parallel", "fsdp=8", "--out", d / "train"],
        "infer": ["infer", "tpu_v5e", "llama2_7b", "--chips", "4", "--parallel", "tp=4",
                  "--kv-len", "512", "--out", d / "infer"],
        "serve": ["serve", "tpu_v5e", "gpt2", "--synthetic", "in=64,out=16",
                  "--num-requests", "8", "--rate", "inf", "--out", d / "serve"],
        # 2 x 256 MACs: as GMAC that was 5.12e-07
        "prune": ["workload", "prune", tiny, "--channels", "0.5", "--out", d / "pruned.csv"],
    }.items():
        code, stdout, err = run_cli(*args)
        assert code == 0, (name, err)
        out[name] = stdout
    return d, out


@pytest.mark.parametrize("name", ["run", "sweep", "formats", "roofline", "compare", "generate",
                                  "train", "infer", "serve", "prune"])
def test_terminal_output_has_no_raw_floats(made, name):
    _, out = made
    text = out[name]
    if name == "formats":   # the GEMM error column is scientific by design: drop it
        text = re.sub(r"\d\.\d\de-\d\d", "", text)
    assert not ugly(text), (name, ugly(text), text[:2000])


@pytest.mark.parametrize("page", ["run/report.html", "sweep/sweep.html", "formats/formats.html",
                                  "roof.html", "cmp/compare.html", "train/report.html",
                                  "infer/report.html", "serve/report.html"])
def test_page_text_has_no_raw_floats(made, page):
    d, _ = made
    text = page_text(d / page)
    if page.startswith("formats"):
        text = re.sub(r"\d\.\d\de-\d\d", "", text)
    assert not ugly(text), (page, ugly(text))
    # pretty headers: no snake_case column names in a table header
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", (d / page).read_text())
    assert not [h for h in heads if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", h)], heads


def test_report_states_energy_in_one_unit(made):
    d, _ = made
    text = page_text(d / "run/report.html")
    found = set(re.findall(r"\d (kJ|mJ|µJ|nJ|pJ|J)\b", text))
    assert len(found) == 1, found


def test_layers_csv_totals_from_the_cli(made):
    d, _ = made
    df = pd.read_csv(d / "run" / "layers.csv")
    assert {"total_cycles", "total_energy_j", "total_hbm_bytes", "time_share",
            "on_chip"} <= set(df.columns)
    assert df["total_cycles"].sum() == pytest.approx((df["cycles"] * df["count"]).sum())
    assert df.loc[df["on_chip"], "intensity"].isna().all()
    assert "inf" not in (d / "run" / "layers.csv").read_text()


def test_html_table_headers_and_units():
    df = pd.DataFrame({"array.rows": [16, 32], "latency_s": [0.0001459, 0.002],
                       "energy_per_inference_j": [0.0123, 0.0005], "hbm_bytes": [17155735552, 1],
                       "utilization": [0.5, 0.25]})
    t = html_table(df)
    for h in ("array.rows", "latency", "energy per inference", "off-chip traffic",
              "utilization"):
        assert f">{h}</th>" in t
    assert "145.9 µs" in t and "15.98 GiB" in t and "50.0%" in t
    # one energy unit for the column (the median's), not mJ here and µJ there
    assert "12.3 mJ" in t and "0.5 mJ" in t
    assert html_table(df, ("µJ", 1e-6)).count("µJ") == 2
    assert header("peak_tops") == "peak TOPS" and header("chip_mm2") == "chip mm² (≥)"
    # a rate keeps its "/s" (not "requests per"), serving's acronyms are spelt out
    assert header("requests_per_s") == "requests/s"
    assert header("output_tokens_per_s") == "output tokens/s"
    assert header("ttft_s").startswith("TTFT")
    assert units.unit_for(0.0123) == ("mJ", 1e-3) and units.in_unit(0.0005, ("mJ", 1e-3)) == \
        "0.5 mJ"


def test_sweep_page_states_energy_in_one_unit(made):
    """Tables and figures of sweep.html use the one unit of the median energy per inference."""
    d, _ = made
    df = pd.read_csv(d / "sweep" / "sweep.csv")
    unit = units.unit_for(float(df["energy_per_inference_j"].median()))[0]
    text = page_text(d / "sweep" / "sweep.html")
    assert set(re.findall(r"\d (kJ|mJ|µJ|nJ|pJ|J)\b", text)) == {unit}
    raw = (d / "sweep" / "sweep.html").read_text()
    import json
    title = f"energy per inference ({unit})"
    assert title in raw or json.dumps(title)[1:-1] in raw
    assert "energy per inference (J)" not in raw or unit == "J"


def test_emulated_format_says_how_next_to_one_utilization():
    """fp32 on the default chip is 6 bf16 passes per MAC: the phrase says so, and its
    percentage is achieved / peak of the same phrase (no second definition)."""
    import tpusim
    from tpusim.wording import peak_phrase
    r = tpusim.simulate("default", "resnet50", format="fp32")
    s = r.summary
    text = peak_phrase(s, r.config)
    assert f"{units.number(s['achieved_tops'])} of {units.number(s['peak_tops'])} TOPS peak " \
           "for fp32 (emulated: 6 bf16 passes per MAC)" in text
    pct = float(re.search(r": ([\d.]+)%$", text).group(1)) / 100
    assert pct == pytest.approx(s["achieved_tops"] / s["peak_tops"], abs=5e-4)
    assert s["peak_tops"] == pytest.approx(tpusim.load_config("default").peak_tops("bf16") / 6)
    html = r._repr_html_()
    assert text in html.replace("&#x27;", "'")


def test_serve_page_histograms_in_the_tables_unit(made):
    """The latency histograms are in ms/µs (the unit of the median), not seconds."""
    from .test_formats import _figure
    d, _ = made
    page = (d / "serve" / "report.html").read_text()
    req = pd.read_csv(d / "serve" / "requests.csv")
    req = req[req["finished"]]
    for i, col in enumerate(("ttft_s", "tpot_s", "e2e_s")):
        data, layout = _figure(page, f"plot-{i}")
        uname, usize = units.unit_for(float(req[col].median()), "time")
        assert layout["xaxis"]["title"]["text"] == uname and uname != "s"
        assert sorted(data[0]["x"]) == pytest.approx(sorted(req[col] / usize), rel=1e-9)
    assert "requests per<" not in page and "requests/s" in page



def test_serve_curve_in_one_time_unit(tmp_path):
    """The throughput-latency curve's y axis is in ms/µs (the median value's unit), and each
    point is serve.json's latency in that unit."""
    import json
    from .test_formats import _figure
    out = tmp_path / "sv"
    code, _, err = run_cli("serve", "tpu_v5e", "gpt2", "--synthetic", "in=64,out=16",
                           "--num-requests", "8", "--rates", "200,inf", "--out", out)
    assert code == 0, err
    curve = json.loads((out / "serve.json").read_text())["curve"]
    data, layout = _figure((out / "report.html").read_text(), "plot-0")
    uname = layout["yaxis"]["title"]["text"]
    size = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}[uname]
    for trace, key in zip(data, ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s")):
        assert [y * size for y in trace["y"]] == pytest.approx([p[key] for p in curve])
    values = sorted(p[k] for p in curve for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s"))
    assert units.unit_for(values[len(values) // 2], "time")[0] == uname != "s"


def test_numbers_far_from_one_take_an_exponent_not_hundreds_of_digits():
    from tpusim.units import number
    assert number(5e-301) == "5.000e-301" and number(1e300) == "1.000e+300"
    assert number(1.234e-7) == "1.234e-07" and number(0.00012345) == "0.0001234"
    assert len(number(-3.3e-200)) < 12


def test_counted_nouns_are_plural_unless_one():
    assert [units.counted(n, "chip") for n in (1, 0, 8, 9216)] == [
        "1 chip", "0 chips", "8 chips", "9,216 chips"]

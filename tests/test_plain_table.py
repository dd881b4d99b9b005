"""The run summary printed without rich is, character for character, what rich prints to a pipe
(``tpusim.cli.plain_table``); where it cannot promise that, it declines and rich prints."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

import tpusim
from tpusim.cli import plain_table
from tpusim.cli.run import summary_rows

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workloads").rglob("*.csv"))


def _rich(title, rows, width=80) -> str:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    buf = io.StringIO()
    Console(file=buf, highlight=False, width=width).print(t)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _pipe(monkeypatch):
    for k in (*plain_table._RICH_ENV, "COLUMNS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("COLUMNS", "80")


@pytest.mark.parametrize("width", [60, 72, 80, 160])
@pytest.mark.parametrize("preset", ["default", "tpu_v4", "edge_tpu", "tpu_v1"])
def test_every_shipped_workload_prints_as_rich_does(preset, width, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    printed = ran = 0
    for wl in WORKLOADS:
        try:
            r = tpusim.simulate(preset, ROOT / wl)
        except tpusim.InputError:
            continue
        ran += 1
        title, rows = summary_rows(r)
        got = plain_table.render(title, ("metric", "value"), rows)
        if got is not None:
            assert got == _rich(title, rows, width), (preset, wl)
            printed += 1
    if width >= 80:   # at 80 columns rich wraps only the value column: none left to rich
        assert printed == ran > 0


@pytest.mark.parametrize("title,rows", [
    ("t", [("a", "b")]),
    ("an odd-length title", [("metric x", "1"), ("m", "µs ≥ 2 mm²")]),
    ("even", [("", ""), ("k", "a, b: c")]),
])
def test_hand_made_tables_print_as_rich_does(title, rows):
    assert plain_table.render(title, ("metric", "value"), rows) == _rich(title, rows)


@pytest.mark.parametrize("title,rows", [
    ("[bold]markup[/bold]", [("a", "b")]),       # rich renders markup
    ("t", [("a", ":smile: code")]),               # and emoji codes
    ("t", [("wide", "東京")]),                      # two cells per character
    ("t", [("a", "x" * 90)]),                     # a word wider than 80 columns: rich folds it
    ("t", [("m" * 50, "v " * 30)]),               # rich would narrow the metric column too
    ("a title longer than the table it sits on", [("a", "b")]),   # rich wraps the title
    ("", [("a", "b")]),
])
def test_declines_what_rich_renders_differently(title, rows):
    assert plain_table.render(title, ("metric", "value"), rows) is None


def test_wraps_a_long_value_as_rich_does(monkeypatch):
    rows = [("chip area", "≥ 1.746 mm² (arrays 0.9681 + SRAM 0.7774), 1.173 TOPS/mm²   x"),
            ("latency", "2.52 ms"), ("a", "one  two   three four-five six")]
    wrapped = 0
    for width in range(30, 90):
        monkeypatch.setenv("COLUMNS", str(width))
        got = plain_table.render("title", ("metric", "value"), rows)
        assert got is None or got == _rich("title", rows, width), width
        wrapped += got is not None and width < 76
    assert wrapped >= 30


def test_declines_when_colour_is_forced(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert plain_table.render("t", ("metric", "value"), [("a", "b")]) is None

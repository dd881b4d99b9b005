"""``write_trace`` names the line a bad row would have in the file it writes: after the ``#``
comment lines it writes first and the header, as ``read_trace`` numbers the same file."""
from __future__ import annotations

import pytest

from tpusim.errors import InputError
from tpusim.importers.trace_csv import read_trace, rows_to_csv, write_trace

GOOD = {"name": "a", "op": "matmul", "m": 4, "k": 64, "n": 64, "weights": "dynamic"}
BAD = {"name": "b", "op": "matmul", "m": 4, "k": 64, "n": -1, "weights": "dynamic"}


def test_bad_row_line_counts_the_comments(tmp_path):
    out = tmp_path / "w.csv"
    # lines 1-2 comments, 3 header, 4 row a, 5 row b
    with pytest.raises(InputError, match=r"w\.csv: line 5\b") as exc:
        write_trace([GOOD, BAD], out, comments=["one", "two"])
    assert not out.exists()
    # the reader names the same line in the same text written by hand
    hand = tmp_path / "hand.csv"
    hand.write_text(rows_to_csv([GOOD, BAD], ["one", "two"]))
    with pytest.raises(InputError, match=r"hand\.csv: line 5\b") as read_exc:
        read_trace(hand)
    assert exc.value.where == read_exc.value.where == "line 5, column n"


def test_first_row_continues_line_counts_the_comments(tmp_path):
    with pytest.raises(InputError, match=r"line 4, column continues"):
        write_trace([{**GOOD, "continues": True}], tmp_path / "w.csv", comments=["x"] * 2)


def test_a_comment_with_a_newline_is_comment_lines(tmp_path):
    """A bare second line of a comment would be read back as the header: each line gets '#'."""
    out = tmp_path / "w.csv"
    write_trace([GOOD], out, comments=["first\nsecond", ""])
    assert out.read_text().splitlines() == ["# first", "# second", "# ",
                                            "name,op,m,k,n,weights", "a,matmul,4,64,64,dynamic"]
    wl = read_trace(out)
    assert wl.notes == ("first", "second", "") and [l.name for l in wl.layers] == ["a"]
    with pytest.raises(InputError, match=r"line 6\b"):     # 3 comment lines, header, a, b
        write_trace([GOOD, BAD], tmp_path / "x.csv", comments=["first\nsecond", ""])

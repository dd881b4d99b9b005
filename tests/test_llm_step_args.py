"""The LLM step arguments are checked once per command: ``tpusim infer`` and ``tpusim workload
llm`` check them naming their options and pass ``checked=True`` on, so that llm_rows (and
infer_step) do not check them a second time under the keyword names; library callers still get
llm_rows' own check."""
from __future__ import annotations

import pytest

from tpusim.errors import InputError
from tpusim.importers import llm, llm_step_args
from tpusim.importers.llm import custom_config, get_preset, llm_rows
from tpusim.importers.llm_step_args import check_step_args, step_defaults

TINY = custom_config(name="tiny", hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=10)


@pytest.fixture
def calls(monkeypatch):
    """Every check_step_args call as (args, options), wherever it is called from."""
    seen: list[tuple[tuple, bool]] = []

    def counting(*args, options=False):
        seen.append((args, options))
        return check_step_args(*args, options=options)

    monkeypatch.setattr(llm_step_args, "check_step_args", counting)
    monkeypatch.setattr(llm, "check_step_args", counting)
    return seen


def test_workload_llm_checks_its_options_once(cli, tmp_path, calls):
    code, _, err = cli("workload", "llm", "gpt2", "--phase", "decode", "--batch", "2",
                       "--kv-len", "64", "--out", tmp_path / "d.csv")
    assert code == 0, err
    assert calls == [(("decode", 2, None, 64, "bf16", "all"), True)]


def test_infer_checks_its_options_once(cli, tmp_path, calls):
    code, _, err = cli("infer", "tpu_v5e", "gpt2", "--chips", "1", "--phase", "decode",
                       "--batch", "2", "--kv-len", "64", "--out", tmp_path / "o")
    assert code == 0, err
    assert calls == [(("decode", 2, None, 64, "bf16"), True)]


def test_library_llm_rows_still_checks_with_keyword_names(calls):
    with pytest.raises(InputError, match=r"^llm: kv_len: got 0"):
        llm_rows(TINY, "decode", batch=1, kv_len=0)
    assert calls == [(("decode", 1, None, 0, "bf16", "all"), False)]


@pytest.mark.parametrize("phase,seq,kv_len", [("prefill", None, None), ("prefill", 8, None),
                                              ("prefill", 8, 20), ("decode", None, 30)])
def test_checked_rows_are_the_checked_ones(phase, seq, kv_len, calls):
    assert llm_rows(TINY, phase, 3, seq, kv_len, checked=True) == \
        llm_rows(TINY, phase, 3, seq, kv_len)
    assert len(calls) == 1         # only the unchecked call checked


def test_step_defaults():
    assert step_defaults("prefill", None, None) == (128, 128)
    assert step_defaults("prefill", 8, None) == (8, 8)
    assert step_defaults("prefill", 8, 20) == (8, 20)
    assert step_defaults("decode", None, 30) == (1, 30)
    assert step_defaults("decode", None, None) == (1, None)   # required: check_step_args says so


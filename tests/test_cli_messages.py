"""Errors and examples a newcomer meets: each error names the option typed (not an internal
field), a hint names a command that exists, the shipped LLM traces are read as LLM steps, and
the sharded-inference examples of `run --help` and docs/pods.md run as written."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tpusim.config import load_config
from tpusim.importers import load_workload
from tpusim.importers.llm import get_preset
from tpusim.llm_tokens import llm_step
from tpusim.pod.infer import infer_step
from tpusim.pod.sharding import ParallelSpec
from tpusim.pod.topology import make_slice

ROOT = Path(__file__).resolve().parent.parent
V5E = load_config("tpu_v5e")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- 1. the memory hint of `run --chips` names what works -------------------------------------

def test_run_chips_memory_hint_names_workload_llm_dtype(cli, tmp_path):
    trace = tmp_path / "l70.csv"
    code, _, err = cli("workload", "llm", "llama2_70b", "--phase", "decode", "--batch", "8",
                       "--kv-len", "2048", "--out", trace)
    assert code == 0, err
    # bf16: 68.98 G parameters x 2 bytes / 8 chips = 16.06 GiB of weights alone > v5e's 16 GiB
    code, _, err = cli("run", "tpu_v5e", trace, "--chips", "8", "--parallel", "tp=8",
                       "--out", tmp_path / "o")
    line = _one_line(err)
    assert code == 2 and "does not fit the 16 GiB" in line
    # the user ran `run` on the trace: the line names that file, not `infer`
    assert line.startswith(f"tpusim: error: {trace}: memory: got '16."), line
    assert "use a narrower --dtype" not in line            # run has no --dtype
    cmd = re.search(r"`(tpusim workload llm [^`]+)`", line)
    assert cmd, line
    assert "--dtype int8" in cmd[1] and "--batch 8" in cmd[1] and "--kv-len 2048" in cmd[1]
    # the command the hint names works, and its trace fits
    args = shlex.split(cmd[1])[1:] + ["--out", str(tmp_path / "l70_int8.csv")]
    code, _, err = cli(*args)
    assert code == 0, err
    code, _, err = cli("run", "tpu_v5e", tmp_path / "l70_int8.csv", "--chips", "8",
                       "--parallel", "tp=8", "--out", tmp_path / "o2")
    assert code == 0, err
    assert not (tmp_path / "o").exists()


def test_infer_memory_hint_names_its_own_options(cli, tmp_path):
    code, _, err = cli("infer", "tpu_v5e", "llama2_70b", "--chips", "8", "--phase", "decode",
                       "--kv-len", "2048", "--out", tmp_path / "o")
    line = _one_line(err)
    assert code == 2 and "--dtype" in line and "tpusim workload llm" not in line


def _commands(text: str) -> list[list[str]]:
    """The `tpusim ...` commands of a text, continuation lines joined, comments dropped."""
    text = text.replace("\\\n", " ")
    return [shlex.split(l, comments=True)[1:] for l in text.splitlines()
            if l.strip().startswith("tpusim ")]


def test_run_help_sharded_example_runs_as_written(cli, tmp_path, monkeypatch):
    code, out, _ = cli("run", "--help")
    examples = [c for c in _commands(out) if c[0] == "run" and "--chips" in c]
    assert examples, out
    monkeypatch.chdir(tmp_path)
    for args in examples:
        code, _, err = cli(*args)
        assert code == 0, (args, err)


def test_pods_md_sharded_inference_examples_run_as_written(cli, tmp_path, monkeypatch):
    doc = (ROOT / "docs" / "pods.md").read_text()
    section = doc.split("## Sharded inference", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = _commands(block)
    assert any(c[0] == "run" and "--chips" in c for c in commands)
    monkeypatch.chdir(tmp_path)
    for args in commands:
        code, _, err = cli(*args)
        assert code == 0, (args, err)


# -- 2. the shipped LLM traces are LLM step traces --------------------------------------------

def test_shipped_bert_stays_one_inference():
    # BERT is an encoder: its trace is no LLM step (inferences/s, no time to first token)
    assert llm_step(load_workload("bert_base").notes) is None


@pytest.mark.parametrize("name,step", [
    ("gpt2", ("gpt2", "prefill", 1, 1024, 1024)),
    ("llama3_8b_prefill", ("llama3_8b", "prefill", 1, 2048, 2048)),
    ("llama3_8b_decode", ("llama3_8b", "decode", 8, 1, 2048))])
def test_shipped_llm_traces_name_their_step(name, step):
    s = llm_step(load_workload(name).notes)
    assert s is not None, load_workload(name).notes
    assert (s["model"], s["phase"], s["sequences"], s["new_tokens"], s["kv_len"]) == step


def test_shipped_llama3_decode_shards_with_chips(cli, tmp_path):
    code, out, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8",
                         "--out", tmp_path / "o")
    assert code == 0, err
    rec = json.loads((tmp_path / "o" / "sharded.json").read_text())
    assert (rec["model"], rec["sequences"], rec["new_tokens"], rec["kv_len"], rec["dtype"]) == \
        ("llama3_8b", 8, 1, 2048, "bf16")
    want = infer_step(V5E, get_preset("llama3_8b"), make_slice(V5E.ici, V5E.dcn, chips=8),
                      ParallelSpec(tp=8), "decode", batch=8, seq=1, kv_len=2048, dtype="bf16",
                      logits="all")
    assert rec["latency_s"] == pytest.approx(want.latency_s, rel=1e-12)


def test_shipped_llama3_decode_one_chip_prints_tokens_of_its_8_sequences(cli, tmp_path):
    code, out, err = cli("run", "tpu_v5e", "llama3_8b_decode", "--no-html",
                         "--out", tmp_path / "o")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "inferences/s" not in flat and "8 sequences" in flat
    lat = json.loads((tmp_path / "o" / "summary.json").read_text())["latency_s"]
    tps = float(re.search(r"([\d.]+) tokens/s", flat)[1])
    assert tps == pytest.approx(8 / lat, rel=1e-3)          # 8 sequences x 1 token per step


# -- 3. errors name the option typed ----------------------------------------------------------

SERVE = ("serve", "tpu_v5e", "llama2_7b", "--chips", "8", "--synthetic", "in=219,out=292",
         "--num-requests", "5", "--no-html")
INFER = ("infer", "tpu_v5e", "llama3_8b", "--phase", "decode")


@pytest.mark.parametrize("args,starts", [
    (SERVE + ("--weights", "int3"), "--weights: got 'int3'"),
    (SERVE + ("--kv-dtype", "int3"), "--kv-dtype: got 'int3'"),
    (INFER + ("--chips", "1", "--kv-len", "0"), "--kv-len: got 0"),
    (INFER + ("--chips", "1"), "--kv-len: missing"),
    (INFER + ("--chips", "1", "--kv-len", "100", "--dtype", "int3"), "--dtype: got 'int3'"),
    (INFER + ("--chips", "1", "--kv-len", "100", "--seq", "0"), "--seq: got 0"),
    (INFER + ("--chips", "1", "--kv-len", "100", "--batch", "0"), "--batch: got 0"),
    (INFER + ("--chips", "5", "--kv-len", "100"), "--chips: tp: got 5"),
    (INFER + ("--chips", "8", "--parallel", "tp=5", "--kv-len", "100"), "--parallel: got"),
    (("workload", "llm", "llama3_8b", "--phase", "decode", "--kv-len", "0"), "--kv-len: got 0"),
    (("workload", "llm", "llama3_8b", "--dtype", "int3"), "--dtype: got 'int3'"),
    (("run", "tpu_v5e", "llama3_8b_decode", "--chips", "5"), "--chips: tp: got 5"),
])
def test_errors_name_the_option_typed(cli, tmp_path, args, starts):
    code, _, err = cli(*args, "--out", tmp_path / "o")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"tpusim: error: {starts}"), line
    assert not (tmp_path / "o").exists()


def test_unknown_dtype_suggests_the_near_one(cli, tmp_path):
    code, _, err = cli(*SERVE, "--weights", "int3", "--out", tmp_path / "o")
    assert "did you mean int8?" in _one_line(err)


def test_an_out_folder_that_is_a_file_reads_as_our_other_errors(cli, tmp_path):
    mine = tmp_path / "mynotes.txt"
    mine.write_text("mine")
    code, _, err = cli("serve", "tpu_v5e", "llama2_7b", "--chips", "8", "--out", mine)
    assert code == 2 and err.strip() == (f"tpusim: error: --out: got '{mine}'; an existing file: "
                                         "this option takes a folder")
    assert mine.read_text() == "mine"

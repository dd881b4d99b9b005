"""What ``train``, ``infer``, ``run --chips`` and ``serve`` write says what ran: a
``provenance`` record (command, every option, ``--set`` overrides, each input file's sha256, the
resolved config) and the resolved ``config.yaml`` beside it, which reruns the same numbers; a
user's own config.yaml in the output folder is never replaced."""
from __future__ import annotations

import hashlib
import json

import pytest

import tpusim
from tpusim.config import find_config


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _visible(d):
    return {p.name for p in d.iterdir() if not p.name.startswith(".")}


TRAIN = ("train", "tpu_v5e", "llama3_1_8b", "--chips", "16", "--parallel", "fsdp=16",
         "--seq", "1024")
INFER = ("infer", "tpu_v5e", "llama2_7b", "--chips", "4", "--parallel", "tp=4", "--kv-len", "512")
SHARDED = ("run", "tpu_v5e", "llama3_8b_decode", "--chips", "8", "--parallel", "tp=8")
SERVE = ("serve", "tpu_v5e", "gpt2", "--num-requests", "5", "--rate", "inf", "--no-html",
         "--seed", "0")
CASES = [(TRAIN, "train.json", "step_s"), (INFER, "infer.json", "latency_s"),
         (SHARDED, "sharded.json", "latency_s"), (SERVE, "serve.json", "output_tokens_per_s")]


@pytest.mark.parametrize("args,name,key", CASES, ids=[c[1] for c in CASES])
def test_record_says_what_ran_and_config_yaml_reruns_it(cli, tmp_path, args, name, key):
    out = tmp_path / "a"
    full = [*args, "--set", "clock_ghz=1.2", "--out", str(out)]
    code, _, err = cli(*full)
    assert code == 0, err
    rec = json.loads((out / name).read_text())
    prov = rec["provenance"]
    assert prov["command"] == "tpusim " + " ".join(full)
    assert prov["tpusim_version"] == tpusim.__version__
    assert prov["overrides"] == {"clock_ghz": 1.2}
    assert prov["inputs"]["config"]["sha256"] == _sha(find_config("tpu_v5e"))
    want = tpusim.load_config("tpu_v5e", clock_ghz=1.2).model_dump(mode="json")
    got = prov["resolved_config"]
    assert {k: v for k, v in got.items() if k != "description"} == \
        {k: v for k, v in want.items() if k != "description"}
    assert "--set clock_ghz=1.2" in got["description"]   # it no longer is the preset
    assert prov["options"]["out_dir"] == str(out)
    if name == "sharded.json":
        from tpusim.importers import find_workload
        assert prov["inputs"]["workload"]["sha256"] == _sha(find_workload("llama3_8b_decode"))
    if name == "serve.json":
        assert prov["options"]["seed"] == 0      # a zero option is recorded, not dropped
    if name in ("train.json", "infer.json", "sharded.json"):   # the page names run and command
        page = (out / "report.html").read_text()
        assert prov["run_id"] in page and f"tpusim {args[0]} tpu_v5e {args[2]}" in page
    # the config.yaml beside it, given back as CONFIG without --set, reruns the same numbers
    again = tmp_path / "b"
    rerun = [args[0], str(out / "config.yaml"), *args[2:], "--out", str(again)]
    code, _, err = cli(*rerun)
    assert code == 0, err
    rec2 = json.loads((again / name).read_text())
    assert rec2[key] == rec[key]
    assert rec2["provenance"]["inputs"]["config"]["sha256"] == _sha(out / "config.yaml")
    assert rec2["provenance"]["overrides"] == {}


def test_a_clock_change_moves_the_rerun(cli, tmp_path):
    """The rerun check above would pass trivially if config.yaml were ignored: a slower clock
    in it must move the step."""
    code, _, err = cli(*TRAIN, "--out", str(tmp_path / "fast"))
    assert code == 0, err
    code, _, err = cli(*TRAIN, "--set", "clock_ghz=0.75", "--out", str(tmp_path / "slow"))
    assert code == 0, err
    fast = json.loads((tmp_path / "fast" / "train.json").read_text())["step_s"]
    slow = json.loads((tmp_path / "slow" / "train.json").read_text())["step_s"]
    assert slow > fast


@pytest.mark.parametrize("args,name,key", CASES, ids=[c[1] for c in CASES])
def test_a_users_own_config_yaml_is_kept(cli, tmp_path, args, name, key):
    out = tmp_path / "o"
    out.mkdir()
    (out / "config.yaml").write_text("name: mine\n")
    code, _, err = cli(*args, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "config.yaml" in err and "not written by tpusim" in err
    assert (out / "config.yaml").read_text() == "name: mine\n"
    assert _visible(out) == {"config.yaml"}


def test_rerun_into_the_same_folder_replaces_its_own_config_yaml(cli, tmp_path):
    out = tmp_path / "o"
    assert cli(*INFER, "--out", str(out))[0] == 0
    code, _, err = cli(*INFER, "--set", "clock_ghz=1.2", "--out", str(out))
    assert code == 0, err
    assert "clock_ghz: 1.2" in (out / "config.yaml").read_text()
    assert _visible(out) == {"infer.json", "config.yaml", "report.html"}


@pytest.mark.parametrize("args,name", [(INFER, "infer.json"), (SHARDED, "sharded.json")],
                         ids=["infer", "run --chips"])
def test_step_page_splits_the_step_as_its_record_does(cli, tmp_path, args, name):
    """infer's and run --chips' report.html: compute and the all-reduces, each with its share
    of the step (the two add up to the step: nothing else is on its critical path), and the
    memory per chip as weights + KV cache."""
    import re

    from tpusim.units import seconds
    out = tmp_path / "p"
    code, _, err = cli(*args, "--out", str(out))
    assert code == 0, err
    rec = json.loads((out / name).read_text())
    assert rec["compute_s"] + rec["collectives_s"] == pytest.approx(rec["latency_s"])
    text = re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())
    assert seconds(rec["latency_s"]) in text and seconds(rec["compute_s"]) in text
    share = rec["collectives_s"] / rec["latency_s"]
    flat = re.sub(r"\s+", " ", text)
    assert f"all-reduces + logits all-gather (critical path) {seconds(rec['collectives_s'])} " \
        f"{share:.1%}" in flat
    assert rec["weights_gib_per_chip"] + rec["kv_cache_gib_per_chip"] == \
        pytest.approx(rec["hbm_gib_per_chip"])
    from tpusim.units import nbytes
    for what, key in (("weights", "weights_gib_per_chip"), ("KV cache", "kv_cache_gib_per_chip"),
                      ("total", "hbm_gib_per_chip")):   # the page's memory table shows each
        assert f"{what} {nbytes(rec[key] * 2**30)}" in flat


@pytest.mark.parametrize("first,second", [(TRAIN, INFER), (("run", "default", "mlp0"), TRAIN),
                                          (TRAIN, ("run", "default", "mlp0"))],
                         ids=["train-then-infer", "run-then-train", "train-then-run"])
def test_another_commands_files_in_the_folder_are_not_replaced(cli, tmp_path, first, second):
    """Two commands into one --out: the second would replace config.yaml / report.html that the
    first's record lists (its rerun from config.yaml would then give other numbers): refused,
    one line, exit 2, the first's files byte for byte as they were."""
    out = tmp_path / "d"
    code, _, err = cli(*first, "--out", str(out))
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = cli(*second, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "belongs to the tpusim" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("args", [TRAIN, ("run", "default", "mlp0", "--no-html")],
                         ids=["train", "run"])
def test_a_hand_edited_config_yaml_is_not_replaced_by_the_next_run(cli, tmp_path, args):
    out = tmp_path / "e"
    assert cli(*args, "--out", str(out))[0] == 0
    assert cli(*args, "--out", str(out))[0] == 0      # unedited: the rerun replaces it
    edited = (out / "config.yaml").read_text() + "# my own note\n"
    (out / "config.yaml").write_text(edited)
    code, _, err = cli(*args, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "was edited" in err
    assert (out / "config.yaml").read_text() == edited


def test_train_and_infer_record_the_model_as_simulated(cli, tmp_path):
    # a custom model's unstated dimensions (FFN 4 x hidden, KV heads = heads, its activation)
    # are recorded as resolved, with the parameter count, and the page shows them
    code, _, err = cli("train", "tpu_v5e", "custom", "--hidden", "256", "--layers", "2",
                       "--heads", "4", "--vocab", "1000", "--chips", "4", "--parallel", "fsdp=4",
                       "--seq", "128", "--out", tmp_path / "t")
    assert code == 0, err
    rec = json.loads((tmp_path / "t" / "train.json").read_text())
    d = rec["model_dims"]
    assert (d["ffn"], d["kv_heads"], d["head_dim"]) == (1024, 4, 64)
    # per layer 4 x 256^2 attention + 2 x 256 x 1024 FFN + 2 norms; 2 layers, tables, final norm
    assert d["params"] == 2 * (4 * 256 * 256 + 2 * 256 * 1024 + 2 * 256) + 2 * 1000 * 256 + 256
    assert rec["model_summary"] in (tmp_path / "t" / "report.html").read_text()
    code, _, err = cli("infer", "tpu_v5e", "gpt2", "--chips", "4", "--kv-len", "64",
                       "--out", tmp_path / "i")
    assert code == 0, err
    assert json.loads((tmp_path / "i" / "infer.json").read_text())["model_dims"]["layers"] == 12

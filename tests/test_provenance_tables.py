"""``formats``, ``compress`` and ``roofline`` write tables (CSV) and pages; beside them a JSON
``provenance`` record says what was simulated (command, options, ``--set`` overrides, each input
file's sha256, the resolved config), and for the two folder outputs a ``config.yaml`` that, given
back as CONFIG, reruns the same table."""
from __future__ import annotations

import hashlib
import json

import pytest

import tpusim
from tpusim.config import find_config
from tpusim.importers import find_workload

FORMATS = ("formats", "tpu_v4", "--formats", "int8,bf16", "--workload", "mlp0")
COMPRESS = ("compress", "tpu_v4", "mlp0", "--sparsity", "2:4", "--formats", "w8a8")
CASES = [(FORMATS, "formats"), (COMPRESS, "compress")]


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("args,name", CASES, ids=[c[1] for c in CASES])
def test_table_folder_records_what_ran_and_config_yaml_reruns_it(cli, tmp_path, args, name):
    out = tmp_path / "a"
    full = [*args, "--set", "clock_ghz=0.9", "--out", str(out)]
    code, _, err = cli(*full)
    assert code == 0, err
    prov = json.loads((out / f"{name}.json").read_text())["provenance"]
    assert prov["command"] == "tpusim " + " ".join(full)
    assert prov["tpusim_version"] == tpusim.__version__
    assert prov["overrides"] == {"clock_ghz": 0.9}
    assert prov["inputs"]["config"]["sha256"] == _sha(find_config("tpu_v4"))
    assert prov["inputs"]["workload"]["sha256"] == _sha(find_workload("mlp0"))
    assert prov["resolved_config"]["clock_ghz"] == 0.9
    table = (out / f"{name}.csv").read_text()
    # the written config.yaml, as CONFIG and without --set, gives the same table ...
    again = tmp_path / "b"
    code, _, err = cli(name, str(out / "config.yaml"), *args[2:], "--out", str(again))
    assert code == 0, err
    assert (again / f"{name}.csv").read_text() == table
    # ... and the preset without the override does not (the rerun check can fail)
    plain = tmp_path / "c"
    code, _, err = cli(*args, "--out", str(plain))
    assert code == 0, err
    assert (plain / f"{name}.csv").read_text() != table


@pytest.mark.parametrize("args,name", CASES, ids=[c[1] for c in CASES])
def test_table_folder_keeps_a_users_config_yaml(cli, tmp_path, args, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("name: my own\n")
    code, _, err = cli(*args, "--out", str(out))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "config.yaml" in err and "Traceback" not in err
    assert (out / "config.yaml").read_text() == "name: my own\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]   # nothing half-written


def test_roofline_json_beside_the_chart_names_every_input(cli, tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text("name,ops_per_byte,tops\nx,10,5\n")
    html = tmp_path / "r" / "roof.html"
    code, out, err = cli("roofline", "tpu_v1", "mlp0", "lstm0", "--reference", str(ref),
                         "--set", "clock_ghz=0.5", "--out", str(html))
    assert code == 0, err
    prov = json.loads(html.with_suffix(".json").read_text())["provenance"]
    assert prov["overrides"] == {"clock_ghz": 0.5}
    assert prov["inputs"]["workload_1"]["sha256"] == _sha(find_workload("mlp0"))
    assert prov["inputs"]["workload_2"]["sha256"] == _sha(find_workload("lstm0"))
    assert prov["inputs"]["reference"]["sha256"] == _sha(ref)
    assert prov["inputs"]["config"]["sha256"] == _sha(find_config("tpu_v1"))
    assert str(html.with_suffix(".json")) in out + err


def test_roofline_never_replaces_a_users_csv_or_json_beside_the_chart(cli, tmp_path):
    # --out mlp.html writes mlp.csv and mlp.json: the workload just read, or a user's notes,
    # under those names are refused before anything runs (nothing printed on stdout either)
    mine = tmp_path / "mlp.csv"
    mine.write_bytes(find_workload("mlp0").read_bytes())
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    for html in ("mlp.html", "notes.html"):
        code, out, err = cli("roofline", "tpu_v1", str(mine), "--json", "--out",
                             str(tmp_path / html))
        assert code == 2 and "exists and was not written by tpusim roofline" in err
        assert out == "" and len(err.strip().splitlines()) == 1
    assert mine.read_bytes() == find_workload("mlp0").read_bytes()
    assert (tmp_path / "notes.json").read_text() == '{"mine": 1}'
    # its own earlier chart of that name it replaces, and a chart of another name beside it
    # stays
    for html in ("roof.html", "roof.html", "other.html"):
        code, _, err = cli("roofline", "tpu_v1", str(mine), "--out", str(tmp_path / html))
        assert code == 0, err
    assert {p.name for p in tmp_path.iterdir()} >= {"roof.csv", "roof.json", "other.csv",
                                                     "other.json", "mlp.csv", "notes.json"}


@pytest.mark.parametrize("name", ["roof.csv", "roof.JSON", "roofdir/", "roof.txt"])
def test_roofline_out_named_like_its_table_or_record_is_refused(cli, tmp_path, name):
    # --out is the chart's HTML file: its table and record take .csv and .json beside it, and
    # a folder-like or other name would be written as HTML under that name
    code, _, err = cli("roofline", "tpu_v1", "mlp0", "--out", str(tmp_path / name))
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_compare_json_names_each_side(cli, tmp_path):
    a = tmp_path / "a"
    code, _, err = cli("run", "default", "mlp0", "--no-html", "--out", str(a))
    assert code == 0, err
    out = tmp_path / "cmp"
    code, _, err = cli("compare", str(a), "tpu_v1:mlp0", "--out", str(out))
    assert code == 0, err
    rec = json.loads((out / "compare.json").read_text())
    assert rec["provenance"]["command"] == f"tpusim compare {a} tpu_v1:mlp0 --out {out}"
    folder, simulated = rec["runs"]
    summary = json.loads((a / "summary.json").read_text())
    assert folder["run_id"] == summary["provenance"]["run_id"]
    assert folder["summary_sha256"] == _sha(a / "summary.json")
    assert simulated["inputs"]["config"]["sha256"] == _sha(find_config("tpu_v1"))
    assert simulated["inputs"]["workload"]["sha256"] == _sha(find_workload("mlp0"))


def test_compare_json_records_the_default_folder(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("compare", "tpu_v1:mlp0", "default:mlp0")
    assert code == 0, err
    made = [p for p in (tmp_path / "results").iterdir()]
    assert len(made) == 1
    rec = json.loads((made[0] / "compare.json").read_text())
    assert rec["provenance"]["options"]["out_dir"] == str(made[0].relative_to(tmp_path))



def test_roofline_refuses_a_symlinked_record_beside_the_chart(cli, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "roof.json").symlink_to(victim)
    code, _, err = cli("roofline", "tpu_v1", "mlp0", "--out", str(tmp_path / "roof.html"))
    assert code == 2 and "roof.json" in err and len(err.strip().splitlines()) == 1
    assert victim.read_text() == "precious" and not (tmp_path / "roof.html").exists()


def test_generate_csv_has_its_record_beside_it(cli, tmp_path):
    out = tmp_path / "g" / "steps.csv"
    code, _, err = cli("generate", "tpu_v5e", "gpt2", "--prompt", "64", "--steps", "4",
                       "--set", "clock_ghz=1.2", "--out", str(out))
    assert code == 0, err
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["provenance"]["overrides"] == {"clock_ghz": 1.2}
    assert rec["provenance"]["inputs"]["config"]["sha256"] == _sha(find_config("tpu_v5e"))
    steps = out.read_text().strip().splitlines()[1:]
    # the record's totals are the CSV's rows summed: prefill + 4 decode steps
    assert len(steps) == 5 == rec["output_tokens"]
    assert rec["total_s"] == pytest.approx(sum(float(r.split(",")[2]) for r in steps))
    assert rec["energy_j"] == pytest.approx(sum(float(r.split(",")[3]) for r in steps))
    code, _, err = cli("generate", "tpu_v5e", "gpt2", "--out", str(tmp_path / "s.json"))
    assert code == 2 and "--out" in err and not (tmp_path / "s.json").exists()


def test_sweep_json_records_the_command_axes_and_what_was_reused(cli, tmp_path):
    out = tmp_path / "s"
    args = ("sweep", "default", "mlp0", "--rows", "16,32", "--jobs", "1", "--no-html",
            "--set", "memory.hbm.bandwidth_gbps=30,60", "--out", str(out))
    code, _, err = cli(*args)
    assert code == 0, err
    rec = json.loads((out / "sweep.json").read_text())
    assert rec["provenance"]["command"] == "tpusim " + " ".join(args)
    assert rec["provenance"]["inputs"]["workload"]["sha256"] == _sha(find_workload("mlp0"))
    assert rec["axes"] == {"array.rows": [16, 32], "memory.hbm.bandwidth_gbps": [30, 60]}
    assert (rec["points"], rec["computed"], rec["reused"]) == (4, 4, 0)
    # the same command again resumes: every point read back, a new record says so
    code, _, err = cli(*args)
    assert code == 0, err
    again = json.loads((out / "sweep.json").read_text())
    assert (again["computed"], again["reused"]) == (0, 4)
    assert again["provenance"]["run_id"] != rec["provenance"]["run_id"]
    # a different sweep into the folder keeps the earlier rows, and says how many
    code, _, err = cli("sweep", "default", "mlp0", "--cols", "8", "--jobs", "1", "--no-html",
                       "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "sweep.json").read_text())["kept_from_earlier_sweeps"] == 4


@pytest.mark.parametrize("png", ["roof.json", "roof.csv", "roof.html"])
def test_roofline_png_named_like_the_chart_or_its_files_is_refused(cli, tmp_path, png):
    code, _, err = cli("roofline", "tpu_v1", "mlp0", "--out", str(tmp_path / "roof.html"),
                       "--png", str(tmp_path / png))
    assert code == 2 and "--png" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_validation_chart_gives_each_unit_its_own_panel():
    # a pods check scores MFU (a fraction) and tokens/s: they share no axis
    import pandas as pd

    from tpusim.fidelity import _chart
    t = pd.DataFrame([
        {"check": "pods: X", "case": "a", "metric": "MFU", "unit": "fraction", "predicted": 0.5,
         "measured": 0.45, "error": 0.11, "status": "ok"},
        {"check": "pods: X", "case": "a", "metric": "tokens/s/chip", "unit": "tokens/s",
         "predicted": 900.0, "measured": 1000.0, "error": -0.1, "status": "ok"}])
    fig = _chart(t).to_dict()
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles == ["pods: X: fraction", "pods: X: tokens/s"]
    axes = {k: v["title"]["text"] for k, v in fig["layout"].items() if k.startswith("xaxis")}
    assert sorted(axes.values()) == ["measured (fraction)", "measured (tokens/s)"]


def test_validation_page_names_the_checks_it_did_not_run():
    import pandas as pd

    from tpusim.fidelity import validation_html
    t = pd.DataFrame([
        {"check": "tpu_v4 matmuls", "case": "", "metric": "latency", "unit": "us",
         "predicted": None, "measured": None, "error": None, "error_kind": "relative",
         "status": "skipped: pass --measurements", "fitted_on": "", "note": ""},
        {"check": "tpu_v1 apps", "case": "mlp0", "metric": "TOPS", "unit": "TOPS",
         "predicted": 10.0, "measured": 11.0, "error": -0.09, "error_kind": "relative",
         "status": "ok", "fitted_on": "none", "note": ""}])
    page = validation_html(t)
    assert "Not run: tpu_v4 matmuls (skipped: pass --measurements)." in page
    assert "<td class='l'>-9.0%</td>" in page       # a relative error in %, as the summary

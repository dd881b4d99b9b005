"""Every ``tpusim ...`` line in the README's bash blocks runs as written, from a fresh clone.

Each command runs in-process in a temp folder that holds copies of the clone's ``examples/`` and
``workloads/`` (what a user standing in the clone sees), so outputs land in tmp. A line whose
trailing comment says ``# skip: WHY`` needs an outside service and is skipped with WHY; one that
says ``# data: FILE`` needs a data file the repo may not ship: it runs when ``../shared/
measurements/FILE`` sits beside the clone (as in CI) and is skipped with the reason otherwise.
"""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED, run_cli

README = ROOT / "README.md"
SLOW = ("calibrate", "validate", "sweep")   # seconds each: run in the full suite only


def readme_commands(text: str) -> list[tuple[str, str | None, str | None]]:
    """(command, skip reason, data file) for each ``tpusim`` line of the ```bash blocks."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line.startswith("tpusim"):
                continue
            cmd, _, comment = line.partition("#")
            skip = re.search(r"skip:\s*(.+)", comment)
            data = re.search(r"data:\s*(\S+)", comment)
            out.append((" ".join(cmd.split()), skip.group(1).strip() if skip else None,
                        data.group(1) if data else None))
    return out


COMMANDS = readme_commands(README.read_text())


def test_the_readme_has_commands_and_the_parser_reads_markers():
    # the parser itself, on a hand-written block (independent of the README's content)
    text = ("```bash\ntpusim run a b   # one\ntpusim sweep x \\\n    --rows 1 # skip: no cluster\n"
            "echo no\ntpusim validate --measurements m.csv  # data: m.csv\n```\n"
            "```python\ntpusim.simulate()\n```\n")
    assert readme_commands(text) == [("tpusim run a b", None, None),
                                     ("tpusim sweep x --rows 1", "no cluster", None),
                                     ("tpusim validate --measurements m.csv", None, "m.csv")]
    assert len(COMMANDS) >= 15
    assert any(skip for _, skip, _ in COMMANDS) and any(d for _, _, d in COMMANDS)


def _param(cmd: str, skip: str | None, data: str | None):
    marks = [pytest.mark.slow] if shlex.split(cmd)[1] in SLOW else []
    return pytest.param(cmd, skip, data, id=cmd[:70], marks=marks)


@pytest.mark.parametrize("cmd,skip,data", [_param(*c) for c in COMMANDS])
def test_readme_command_runs_as_written(cmd, skip, data, tmp_path, monkeypatch):
    if skip:
        pytest.skip(skip)
    for folder in ("examples", "workloads"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("scripts"))
    if data:
        src = SHARED / "measurements" / data
        if not src.is_file():
            pytest.skip(f"{data} is not shipped (no licence); see the README, 'Calibration'")
        shutil.copy(src, tmp_path / data)
    monkeypatch.chdir(tmp_path)
    before = {p: p.read_bytes() for p in (ROOT / "configs").glob("*.yaml")}
    code, out, err = run_cli(*shlex.split(cmd)[1:])
    assert code == 0, f"{cmd}\n{err}"
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in (ROOT / "configs").glob("*.yaml")} == before  # presets kept
    if " --out " in f" {cmd} ":
        target = Path(shlex.split(cmd)[shlex.split(cmd).index("--out") + 1])
        assert (tmp_path / target).exists(), f"{cmd} did not write {target}"


def test_setup_commands_are_on_the_first_screen_and_ci_runs_the_test_one():
    text = README.read_text()
    first_screen = "\n".join(text.splitlines()[:24])
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    install, tests = blocks[0].strip(), blocks[1].strip()
    assert install.startswith("python3 -m venv .venv && .venv/bin/pip install -e .")
    assert tests.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    assert install in first_screen and tests in first_screen
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci                                    # the same line, as written


def test_example_onnx_model_is_what_its_script_makes(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_tiny_cnn",
                                                  ROOT / "examples" / "make_tiny_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build().SerializeToString() == (ROOT / "examples" / "tiny_cnn.onnx").read_bytes()
    # and what tpusim makes of it: 2 convs + 1 FC; MACs by hand at 224x224 (pad 1, stride 2)
    wl = __import__("tpusim").load_workload(ROOT / "examples" / "tiny_cnn.onnx",
                                            input_shapes={"input": (1, 3, 224, 224)})
    macs = 112 * 112 * 16 * 27 + 56 * 56 * 32 * 144 + 32 * 10
    assert sum(l.macs * l.count for l in wl.layers) == macs


def test_nothing_shipped_cites_or_reads_files_outside_the_repo():
    # every citation names its primary source (docs/references.md), and no path points beside
    # the clone: the installed package must work without it
    hits = []
    for folder in ("tpusim", "configs", "workloads"):
        for p in (ROOT / folder).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".yaml", ".csv", ".cfg", ".md"):
                for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                    if "REFERENCE.md" in line or "shared/" in line:
                        hits.append(f"{p.relative_to(ROOT)}:{i}")
    assert hits == []
    assert (ROOT / "docs" / "references.md").is_file()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)   # noqa: S102 (our own README)
    assert scope["chip"].array.rows == 256                 # the override it shows took effect
    assert scope["result"].summary["latency_s"] > 0

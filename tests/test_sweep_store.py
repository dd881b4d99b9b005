"""Nothing a sweep folder held is lost: a different sweep adds rows and keeps the earlier ones,
one sweep at a time may write a folder, an empty sweep is an error, and killing a sweep leaves
no worker process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from tpusim.errors import InputError
from tpusim.sweeps import sweep

from .conftest import ROOT

TRACE = """name,op,m,k,n,elements
fc1,matmul,256,512,384,
act,relu,,,,98304
fc2,matmul,64,384,128,
"""


@pytest.fixture
def trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(TRACE)
    return p


def test_a_different_sweep_keeps_the_earlier_rows(trace, tmp_path):
    out = tmp_path / "s"
    a = sweep("default", trace, {"array.rows": [16, 32]}, jobs=1, out_dir=out, html=False)
    b = sweep("default", trace, {"memory.hbm.bandwidth_gbps": [100.0, 200.0, 400.0]},
              jobs=1, out_dir=out, html=False)
    assert len(a) == 2 and len(b) == 3 and b.attrs["kept"] == 2
    on_disk = pd.read_parquet(out / "sweep.parquet")
    assert len(on_disk) == 5 and set(on_disk["key"]) == set(a["key"]) | set(b["key"])
    assert len(pd.read_csv(out / "sweep.csv")) == 5
    # the earlier rows keep their values and numbers
    old = on_disk[on_disk["key"].isin(a["key"])].set_index("key").loc[a["key"]]
    assert list(old["array.rows"]) == [16, 32]
    assert list(old["total_cycles"]) == list(a["total_cycles"])
    # a third sweep (a rerun of the first) reuses its points and still keeps the second's
    c = sweep("default", trace, {"array.rows": [16, 32]}, jobs=1, out_dir=out, html=False)
    assert c.attrs["reused"] == 2 and c.attrs["computed"] == 0 and c.attrs["kept"] == 3
    assert len(pd.read_parquet(out / "sweep.parquet")) == 5


def test_rows_journaled_by_a_killed_sweep_survive_a_different_sweep(trace, tmp_path,
                                                                     monkeypatch):
    import tpusim.sweeps as sweeps_mod
    out = tmp_path / "s"
    real = sweeps_mod._Store.write
    monkeypatch.setattr(sweeps_mod._Store, "write", lambda self, df, html=None, extra=None: [])
    sweep("default", trace, {"array.rows": [16, 32]}, jobs=1, out_dir=out, html=False)
    assert not (out / "sweep.parquet").exists()        # only the journal holds them
    monkeypatch.setattr(sweeps_mod._Store, "write", real)
    sweep("default", trace, {"array.cols": [64]}, jobs=1, out_dir=out, html=False)
    on_disk = pd.read_parquet(out / "sweep.parquet")
    assert len(on_disk) == 3
    assert sorted(on_disk["array.rows"].dropna().tolist()) == [16, 32]
    assert set(on_disk["workload"]) == {"t"}


def test_sweep_with_nothing_to_sweep_is_an_error(cli, trace, tmp_path):
    code, out, err = cli("sweep", "default", trace, "--out", tmp_path / "s")
    assert code == 2 and "nothing to sweep" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_second_sweep_into_a_locked_folder_refuses_with_one_line(cli, trace, tmp_path):
    import fcntl
    out = tmp_path / "s"
    assert cli("sweep", "default", trace, "--rows", "16", "--out", out, "--no-html")[0] == 0
    before = (out / "sweep.csv").read_bytes()
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)        # as a running sweep holds it
    try:
        code, _, err = cli("sweep", "default", trace, "--rows", "32", "--out", out)
        assert code == 2 and "another tpusim is writing this folder" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        with pytest.raises(InputError):
            sweep("default", trace, {"array.rows": [64]}, jobs=1, out_dir=out)
    finally:
        os.close(fd)
    assert (out / "sweep.csv").read_bytes() == before
    # released: the same call now runs, and a failed call released its lock too
    assert sweep("default", trace, {"array.rows": [64]}, jobs=1, out_dir=out,
                 html=False).attrs["kept"] == 1


def test_no_html_sweep_leaves_no_stale_page(cli, trace, tmp_path):
    out = tmp_path / "s"
    assert cli("sweep", "default", trace, "--rows", "16,32", "--out", out)[0] == 0
    assert (out / "sweep.html").exists()
    (out / "mine.txt").write_text("x")
    code, stdout, _ = cli("sweep", "default", trace, "--rows", "16,32", "--out", out,
                          "--no-html")
    assert code == 0 and "sweep.html" not in stdout
    assert not (out / "sweep.html").exists() and (out / "mine.txt").read_text() == "x"


def _children(pid: int) -> set[int]:
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"   # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_killing_a_sweep_leaves_no_workers(trace, tmp_path, sig):
    script = textwrap.dedent(f"""
        from tpusim.sweeps import sweep
        sweep("default", "resnet50", {{"array.rows": list(range(8, 2008, 8)),
              "array.cols": [16, 32, 64, 128]}}, jobs=2, out_dir={str(tmp_path / 's')!r},
              html=False, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.1)
        assert len(workers) >= 2, "the sweep never started its workers"
        time.sleep(0.5)                  # let them pick up chunks
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        left = [w for w in workers if _alive(w)]
        assert not left, f"workers {left} outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in _children(proc.pid) | workers:
            if _alive(w):
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_a_sweep_removes_and_reads_only_files_named_as_it_names_them(cli, trace, tmp_path):
    """Its temps are '.sweep.csv.' + mkstemp's 8 characters + '.tmp' and its journal files
    RUNID-SEQ.jsonl: a user's '.sweep.backup.tmp' or 'notes.jsonl' there is left alone, and a
    journal file of its own name that holds no record is one line, not a traceback."""
    out = tmp_path / "s"
    (out / ".sweep-journal").mkdir(parents=True)
    mine = [out / ".sweep.backup.tmp", out / ".sweep.csv.tmp", out / ".sweep-journal" / "n.jsonl"]
    for p in mine:
        p.write_text("my data\n")
    code, _, err = cli("sweep", "default", trace, "--rows", "16", "--out", out, "--jobs", "1")
    assert code == 0, err
    assert all(p.read_text() == "my data\n" for p in mine)
    bad = out / ".sweep-journal" / "18c0ffee-1-000001.jsonl"
    bad.write_text("not json\n")
    code, _, err = cli("sweep", "default", trace, "--rows", "32", "--out", out, "--jobs", "1")
    assert code == 2 and err.strip().endswith("18c0ffee-1-000001.jsonl: line 1: not a sweep "
                                              "journal record; move the file out of the journal "
                                              "folder or choose another --out"), err


def test_no_html_sweep_leaves_a_users_page_alone_and_a_full_one_refuses_it(cli, trace, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.html").write_text("user\n")
    code, _, err = cli("sweep", "default", trace, "--rows", "16", "--out", out, "--no-html")
    assert code == 0, err                      # it writes no page: nothing to refuse
    assert (out / "sweep.html").read_text() == "user\n"
    code, _, err = cli("sweep", "default", trace, "--rows", "16", "--out", out)
    assert code == 2 and "sweep.html: exists and was not written by tpusim sweep" in err
    assert (out / "sweep.html").read_text() == "user\n"

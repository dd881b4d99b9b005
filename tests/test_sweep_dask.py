"""The Dask executor: a bounded window of chunks in flight, and the same records as in-process."""
from __future__ import annotations

import pickle

import pandas as pd
import pytest

from tpusim.config import load_config
from tpusim.sweeps import executors, plan_sweep, sweep

from .conftest import SCALESIM

RESNET18 = SCALESIM / "topologies" / "conv_nets" / "Resnet18.csv"
AXES = {"array.rows": [8, 16, 32, 64, 128], "array.cols": [16, 64, 256],
        "format": ["int8", "bf16"]}   # 30 points


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1,
                            dashboard_address=None) as c:
        yield c


def _payload(plan):
    return executors._Payload("t", plan.base, plan.workloads)


def _strip(records):
    return sorted(({k: v for k, v in r.items() if k != "simulator_seconds"} for r in records),
                  key=lambda r: r["index"])


def test_dask_keeps_a_bounded_window_and_matches_inline(client, monkeypatch):
    monkeypatch.setattr(executors, "DASK_MAX_CHUNK", 2)    # 15 chunks ...
    monkeypatch.setattr(executors, "IN_FLIGHT", 1)    # ... against a window of 2 workers x 1
    plan = plan_sweep(load_config("default"), RESNET18, AXES)
    counts = {"submitted": 0, "read": 0, "most": 0}
    real_submit = client.submit
    shipped = []

    def submit(*args, **kw):
        shipped.append(args[2])
        counts["submitted"] += 1
        counts["most"] = max(counts["most"], counts["submitted"] - counts["read"])
        return real_submit(*args, **kw)

    monkeypatch.setattr(client, "submit", submit)
    got = []
    for records in executors._run_dask(_payload(plan), plan.points, client, False):
        counts["read"] += 1
        got.extend(records)
    assert counts["submitted"] == counts["read"] == 15
    # the window (2) plus the refill submitted before the finished chunk is handed back
    assert counts["most"] <= 3
    ref = [r for b in executors._run_inline(_payload(plan), plan.points) for r in b]
    assert len(got) == len(ref) == 30
    assert _strip(got) == _strip(ref)
    assert not client.who_has()   # no chunk's result is left on the cluster
    # each chunk crosses as one pickle (Dask walks, sizes and serialises a list item by item),
    # and the 15 chunks are the plan's 30 points once each, in order
    assert all(type(b) is bytes for b in shipped)
    assert [p[0] for b in shipped for p in pickle.loads(b)] == list(range(30))


def test_dask_sweep_frame_equals_local_pool(client, tmp_path):
    pool = sweep("default", RESNET18, AXES, jobs=2, progress=False)
    dask = sweep("default", RESNET18, AXES, scheduler=client, progress=False,
                 out_dir=tmp_path / "d", html=False)
    pd.testing.assert_frame_equal(dask.drop(columns="simulator_seconds"),
                                  pool.drop(columns="simulator_seconds"))
    disk = pd.read_parquet(tmp_path / "d" / "sweep.parquet")
    pd.testing.assert_frame_equal(disk.drop(columns="simulator_seconds"),
                                  pool.drop(columns="simulator_seconds"))


def test_a_chunk_that_fails_on_the_cluster_is_one_line_and_keeps_what_finished(client,
                                                                             tmp_path,
                                                                             monkeypatch):
    # as_completed hands a failed task's exception over as its result: one InputError naming
    # the cluster, and the chunks read back before it stay in the folder for a re-run
    from tpusim.errors import InputError
    monkeypatch.setattr(executors, "DASK_MAX_CHUNK", 1)
    monkeypatch.setattr(executors, "IN_FLIGHT", 1)
    real = executors._dask_chunk

    def flaky(payload, chunk):      # shipped to the workers by value: no shared counter
        if pickle.loads(chunk)[0][0] >= 20:          # the points from index 20 on
            raise RuntimeError("worker lost")
        return real(payload, chunk)

    monkeypatch.setattr(executors, "_dask_chunk", flaky)
    out = tmp_path / "s"
    with pytest.raises(InputError, match=r"a chunk of points was lost or failed on the cluster "
                                         r"\(RuntimeError: worker lost\)"):
        sweep(load_config("default"), RESNET18, AXES, out_dir=out, scheduler=client)
    kept = pd.read_csv(out / "sweep.csv")
    assert 1 <= len(kept) < 30 and (kept["status"] == "ok").all()


def test_a_scheduler_without_workers_is_one_line(tmp_path, monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from tpusim.errors import InputError
    monkeypatch.setattr(executors, "CONNECT_S", 1)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as c:
        with pytest.raises(InputError, match="the scheduler has no workers"):
            sweep(load_config("default"), RESNET18, {"array.rows": [8, 16]},
                  out_dir=tmp_path / "s", scheduler=c.scheduler_address)
    assert not (tmp_path / "s").exists()

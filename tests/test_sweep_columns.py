"""The parent's column store of sweep records builds the frame a row-at-a-time build would:
same rows in plan order, same columns in first-seen order, same dtypes, gaps as missing."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tpusim.sweeps import plan_sweep
from tpusim.sweeps.columns import Columns


def test_batches_out_of_order_with_gaps_match_the_hand_built_frame(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("name,op,m,k,n,elements\nfc,matmul,8,8,8,\n")
    plan = plan_sweep("default", trace, {"array.rows": [8, 16, 32, 64], "format": ["int8"]})
    k = [p.key for p in plan.points]
    recs = [  # arrive out of plan order, in two batches; point 1 failed (no summary fields)
        {"index": 2, "key": k[2], "cycles": 30, "energy_pj": 3.5, "fits": True,
         "status": "ok", "error": None},
        {"index": 1, "key": k[1], "status": "failed", "error": "x: y: got 1; z"},
        {"index": 3, "key": k[3], "cycles": 40, "energy_pj": float("nan"), "fits": False,
         "note": "late", "status": "ok", "error": None},
        {"index": 0, "key": k[0], "cycles": 10, "energy_pj": 1.5, "fits": True,
         "config": "other", "status": "ok", "error": None},
    ]
    store = Columns(plan)
    store.add(recs[:2])
    store.add(recs[2:])
    got = store.frame()
    want = pd.DataFrame([
        {"workload": "t", "array.rows": 8, "format": "int8", "config": "other", "cycles": 10,
         "energy_pj": 1.5, "fits": True, "note": None, "status": "ok", "error": None,
         "key": k[0]},
        {"workload": "t", "array.rows": 16, "format": "int8", "config": "default",
         "cycles": None, "energy_pj": None, "fits": None, "note": None, "status": "failed",
         "error": "x: y: got 1; z", "key": k[1]},
        {"workload": "t", "array.rows": 32, "format": "int8", "config": "default", "cycles": 30,
         "energy_pj": 3.5, "fits": True, "note": None, "status": "ok", "error": None,
         "key": k[2]},
        {"workload": "t", "array.rows": 64, "format": "int8", "config": "default", "cycles": 40,
         "energy_pj": None, "fits": False, "note": "late", "status": "ok", "error": None,
         "key": k[3]},
    ], columns=["workload", "array.rows", "format", "config", "cycles", "energy_pj", "fits",
                "note", "status", "error", "key"])
    pd.testing.assert_frame_equal(got, want)
    assert got["cycles"].dtype == np.float64 and np.isnan(got["energy_pj"][3])
    assert len(store) == 4


def test_whole_numeric_batches_are_stored_as_arrays(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("name,op,m,k,n,elements\nfc,matmul,8,8,8,\n")
    plan = plan_sweep("default", trace, {"array.rows": [8, 16]})
    store = Columns(plan)
    store.add([{"index": i, "key": p.key, "cycles": 10 * i, "e": 0.5 * i, "status": "ok",
                "error": None} for i, p in enumerate(plan.points)])
    batch = store.batches[0][1]
    assert batch["cycles"].dtype == np.int64 and batch["e"].dtype == np.float64
    df = store.frame()
    assert df["cycles"].dtype == np.int64 and df["cycles"].tolist() == [0, 10]

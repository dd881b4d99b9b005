"""fidelity's Table 3 check: the cycle shares it scores against are Jouppi et al. 2017's, and the
shares it computes follow its stated definition on a hand-built layers table."""
from __future__ import annotations

import pandas as pd
import pytest

from tpusim import fidelity

# Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017,
# Table 3 (performance counters, MLP0 / CNN0): array active 12.7% / 78.2%, weight stall
# 53.9% / 0%, weight shift 15.9% / 0%, non-matrix 17.5% / 21.8%.
TABLE3 = {("mlp0", "array active"): 0.127, ("mlp0", "weight stall"): 0.539,
          ("mlp0", "weight shift"): 0.159, ("mlp0", "non-matrix"): 0.175,
          ("cnn0", "array active"): 0.782, ("cnn0", "weight stall"): 0.0,
          ("cnn0", "weight shift"): 0.0, ("cnn0", "non-matrix"): 0.218}


def _layers(rows):
    cols = ("kind", "count", "cycles", "compute_cycles", "weight_shift_cycles",
            "fill_drain_cycles", "stall_weight_cycles")
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


def test_cycle_shares_follow_their_definition_by_hand():
    """A GEMM row run twice: 100 cycles = 70 compute (10 shift, 5 fill/drain) + 20 weight
    stall + 10 other; a vector row of 50 cycles. Total 250: active (70-10-5) x 2 = 110,
    weight stall 40, shift 20, non-matrix 250 - 170 = 80 (fill/drain, overhead, vector)."""
    s = fidelity.cycle_shares(_layers([("gemm", 2, 100, 70, 10, 5, 20),
                                       ("vector", 1, 50, 50, 0, 0, 0)]))
    assert s == pytest.approx({"array active": 110 / 250, "weight stall": 40 / 250,
                               "weight shift": 20 / 250, "non-matrix": 80 / 250})


def test_a_vector_row_is_never_array_active():
    """Vector rows count as non-matrix whatever their op is called (kind, not op name)."""
    s = fidelity.cycle_shares(_layers([("vector", 1, 40, 40, 0, 0, 0),
                                       ("gemm", 1, 60, 60, 0, 0, 0)]))
    assert s["array active"] == pytest.approx(0.6) and s["non-matrix"] == pytest.approx(0.4)


def test_table3_rows_score_against_the_paper():
    rows = [r for r in fidelity.tpu_v1_checks() if r["check"] == "tpu_v1 cycle shares"]
    got = {tuple(r["case"].split(": ")): r for r in rows}
    assert set(got) == set(TABLE3)
    for key, want in TABLE3.items():
        r = got[key]
        assert r["measured"] == want, key
        assert r["error_kind"] == "absolute"
        assert r["error"] == pytest.approx(r["predicted"] - want)
    for app in ("mlp0", "cnn0"):
        assert sum(got[(app, k)]["predicted"] for k in
                   ("array active", "weight stall", "weight shift", "non-matrix")) == \
            pytest.approx(1.0)
    # MLP0 is weight-stall bound, CNN0 array-active bound, as the counters say.
    mlp = {k: got[("mlp0", k)]["predicted"] for _, k in TABLE3 if _ == "mlp0"}
    cnn = {k: got[("cnn0", k)]["predicted"] for _, k in TABLE3 if _ == "cnn0"}
    assert max(mlp, key=mlp.get) == "weight stall" and max(cnn, key=cnn.get) == "array active"

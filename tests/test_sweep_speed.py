"""What makes sweeps fast and their parent small changes no number: the lazily built plan
lists the same points as expanding the product, the columnar makespan of a batch (distinct plans
built once, in width groups) is each row's own, a validated chip's overrides validate only
the sections they enter yet give the chip a full re-validation gives, and the final frame
built by consuming the store equals one built without."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tpusim import config as C
from tpusim.columnar import kernels as K
from tpusim.errors import InputError
from tpusim.sweeps import plan_sweep
from tpusim.sweeps.columns import Columns


@pytest.fixture
def traces(tmp_path):
    out = []
    for i, m in enumerate((8, 24)):
        p = tmp_path / f"t{i}.csv"
        p.write_text(f"name,op,m,k,n,elements\nfc{i},matmul,{m},16,8,\n")
        out.append(p)
    return out


def test_lazy_points_are_the_product_in_order(traces):
    axes = {"array.rows": [8, 16, 32], ("array.cols", "memory.hbm.bandwidth_gbps"):
            [(8, 100.0), (16, 200.0)], "format": ["int8", "bf16"]}
    plan = plan_sweep("default", traces, axes)
    combos = list(itertools.product([8, 16, 32], [(8, 100.0), (16, 200.0)], ["int8", "bf16"]))
    assert len(plan.points) == 2 * len(combos)
    for i, p in enumerate(plan.points):
        wi, (r, (c, bw), f) = divmod(i, len(combos))[0], combos[i % len(combos)]
        assert (p.index, p.workload) == (i, wi)
        assert p.values == (("array.rows", r), ("array.cols", c),
                            ("memory.hbm.bandwidth_gbps", bw), ("format", f))
        assert p.overrides == {"array.rows": r, "array.cols": c,
                               "memory.hbm.bandwidth_gbps": bw}
    keys = [p.key for p in plan.points]
    assert len(set(keys)) == len(keys) and all(len(k) == 24 for k in keys)
    assert plan.points[-1] == plan.points[len(keys) - 1]
    assert plan.points[2:5] == [plan.points[i] for i in (2, 3, 4)]
    with pytest.raises(IndexError):
        plan.points[len(keys)]
    idx = np.array([23, 0, 7, 12])
    assert plan.points.keys(idx) == [keys[i] for i in idx]
    assert plan.points.workloads(idx).tolist() == [plan.points[i].workload for i in idx]
    assert plan.points.values("array.cols", idx) == [plan.points[i].overrides["array.cols"]
                                                     for i in idx]
    # the same plan again gives the same keys (resuming depends on it)
    assert [p.key for p in plan_sweep("default", traces, axes).points] == keys


def _rows(n: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    at = {"used": rng.integers(1, 5, n).astype(float),
          "steps": rng.integers(1, 300, n).astype(float),
          "substeps": rng.integers(1, 40, n).astype(float),
          "stream": rng.uniform(1, 5e4, n).round(), "load": rng.integers(8, 256, n).astype(float),
          "fill_drain": rng.integers(0, 512, n).astype(float)}
    t = {k: rng.uniform(0, 1e8, n) for k in ("hbm_weight", "hbm_input", "hbm_output")}
    return at, t


def test_batched_makespan_is_each_rows_own():
    at, t = _rows(40, 1)
    dup = np.concatenate([np.arange(40), np.arange(40)[::-1], [3, 3, 3]])  # repeated plans
    at = {k: v[dup] for k, v in at.items()}
    t = {k: v[dup] for k, v in t.items()}
    n = len(dup)
    bw = np.random.default_rng(2).uniform(1, 600, n)
    depth = np.where(np.arange(n) % 3 == 0, 2.0, 3.0)
    got = K.pipelined_makespan(at, t, bw, depth)
    for i in range(n):
        one = K.pipelined_makespan({k: v[i:i + 1] for k, v in at.items()},
                                   {k: v[i:i + 1] for k, v in t.items()}, bw[i:i + 1],
                                   depth[i:i + 1])
        assert got[i] == one[0]   # to the last bit


@pytest.mark.parametrize("over", [
    {"array.rows": 64}, {"array__cols": 7, "memory.hbm.bandwidth_gbps": 99.5},
    {"memory.sram.input_kib": 10, "memory.hbm.kind": "HBM3"}, {"formats.int8.rate": 2.0},
    {"energy.mac_pj": {"int8": 0.1}}, {"array": {"rows": 3, "cols": 5}},
    {"array.rows": True}, {"array.rows": 0}, {"array.bogus": 1}, {"array.rows.x": 1},
    {"memory.hbm.bandwidth_gbps": float("inf")}, {"default_format": "fp32"},
    {"formats.bf16.emulate": "int8"}, {"timing.model": "scalesim"}])
@pytest.mark.parametrize("preset", C.preset_names())
def test_overriding_a_chip_equals_revalidating_it_whole(preset, over):
    chip = C.load_config(preset)

    def whole():
        raw = C._apply_overrides(chip.model_dump(), over, chip.name, fresh=True)
        try:
            return C.ChipConfig.model_validate(raw).model_dump_json()
        except C.ValidationError as err:
            raise C.validation_to_input_error(err, "overrides") from None

    def run(fn):
        try:
            return fn()
        except InputError as exc:
            return f"error: {exc}"
    assert run(lambda: C.load_config(chip, **over).model_dump_json()) == run(whole)


def test_consuming_frame_equals_the_kept_one(traces):
    plan = plan_sweep("default", traces[0], {"array.rows": [8, 16, 32]})
    recs = [{"index": i, "key": p.key, "cycles": 10.0 * i, "status": "ok", "error": None}
            for i, p in enumerate(plan.points)]
    store = Columns(plan)
    store.add(recs[1:])
    store.add([recs[0], {**recs[1], "cycles": 11.0}])   # point 1 again: the latest wins
    kept = store.frame()
    assert store.frame(consume=True).equals(kept)
    assert kept["cycles"].tolist() == [0.0, 11.0, 20.0]

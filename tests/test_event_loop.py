"""The bare event loop (tpusim/timing/event_loop.py) against the simpy model it replays."""
from __future__ import annotations

from pathlib import Path

import pytest

import tpusim
from tpusim.errors import InputError
from tpusim.importers import WORKLOAD_DIR
from tpusim.timing import event_loop, overlap_event

PRESETS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _plans(presets, depths, names=None) -> set:
    """Every (plan, bw, depth, arrays) the event engine simulates on these presets, buffer
    depths and shipped workloads (all of them when ``names`` is None)."""
    seen = set()
    real = overlap_event._loop

    def record(plan, bw, depth, arrays):
        seen.add((tuple(plan), bw, depth, arrays))
        return real(plan, bw, depth, arrays)

    paths = sorted(WORKLOAD_DIR.rglob("*.csv"))
    if names is not None:
        paths = [p for p in paths if p.stem in names]
    mp = pytest.MonkeyPatch()
    mp.setattr(overlap_event, "_loop", record)
    try:
        for preset in presets:
            for d in depths:
                chip = tpusim.load_config(preset, **{"timing.weight_fifo_depth": d})
                fmt = chip.default_format if len(chip.formats) == 1 else None
                for p in paths:
                    overlap_event._makespan.cache_clear()
                    try:
                        tpusim.simulate(chip, p, format=fmt, engine="event")
                    except InputError:   # a trace in a format the chip has no datapath for
                        continue
    finally:
        mp.undo()
        overlap_event._makespan.cache_clear()
    return seen


def _agree(plans: set) -> None:
    assert plans
    for plan, bw, depth, arrays in plans:
        a = overlap_event._run(list(plan), bw, depth, arrays)
        b = event_loop.run(list(plan), bw, depth, arrays)
        assert a == b, (len(plan), bw, depth, arrays, a, b)


@pytest.mark.parametrize("plan,bw,depth,arrays,expect", [
    ([(10, 20, 0), (10, 20, 4)], 2, 1, 1, 42.0),
    ([(10, 20, 0), (10, 20, 4)], 2, 2, 1, 32.0),
    ([(10, 20, 0)], 2, 1, 2, 30.0),
    ([(5, 10, 10), (5, 10, 10)], 1, 1, 1, 50.0),
    # requests served in the order made (see test_timing's hand cases for the schedules)
    ([(5, 10, 10), (5, 10, 10)], 1, 2, 2, 80.0),
    # nothing to load or write: the computes add up
    ([(3, 0, 0), (4, 0, 0)], 1, 1, 3, 7.0),
    # one array, one slot, three blocks: l 0-4, c 4-6, w 6-7, l 7-11, c 11-13, w 13-14, ...
    ([(2, 4, 1)] * 3, 1, 1, 1, 21.0),
])
def test_event_loop_small_plans_by_hand(plan, bw, depth, arrays, expect):
    assert event_loop.run(plan, bw, depth, arrays) == expect


def test_event_loop_ties_break_as_simpy_does():
    # two identical arrays on integer times: every load and write-back ties with another
    # array's; the grant order (oldest request first, a release granting only when it fires)
    # decides the makespan
    for depth in (1, 2, 3):
        for arrays in (1, 2, 3):
            plan = [(4.0, 8.0, 2.0), (3.0, 4.0, 6.0), (3.0, 4.0, 6.0), (5.0, 2.0, 8.0)]
            assert event_loop.run(plan, 2.0, depth, arrays) == \
                overlap_event._run(plan, 2.0, depth, arrays)


def test_event_loop_equals_simpy_on_shipped_plans_tpu_v4():
    _agree(_plans(["tpu_v4"], (1, 2, 3), {"resnet50", "bert_base", "mlp1", "vgg16", "gpt2"}))


@pytest.mark.slow
def test_event_loop_equals_simpy_on_every_shipped_plan():
    # every preset x shipped workload x weight-FIFO depth 1/2/3 (4,538 distinct plans)
    _agree(_plans(PRESETS, (1, 2, 3)))

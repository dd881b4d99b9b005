"""Pipeline stages (pp) in time: which stage the step's schedule runs, and its bubble.

The layers split into pp stages of L / pp blocks; the first also runs the embedding, the last
the final norm, LM head and loss. The simulated chip is the slower end stage, m microbatches of
it (``pod/schedule.py``); the bubble is the other stages' one-microbatch slots. The step is then
the sum over stages of one slot plus m - 1 slots of the slowest: 1F1B's with each stage its own
program (Megatron-style) when the last stage is the slowest (assumption for the other case, and
for GPipe: about 1% either way in a tp=8 case).
"""
from __future__ import annotations

from dataclasses import replace

from .schedule import StepParts, schedule


def slots(p: StepParts) -> tuple[float, float, float]:
    """One microbatch's time on a pipeline stage (first, middle, last) of ``p``'s blocks in the
    steady state: :func:`schedule`'s time for two microbatches less its time for one, of that
    stage's parts (its blocks; the first adds the embedding, the last the LM head and loss), so
    a slot holds its compute, the blocking TP/EP collectives, a PP send each way (assumption:
    the end stages pay two sends as the middle ones do; one is a fraction of a percent of a
    slot) and whatever FSDP gathers the compute waits on."""
    quiet = replace(p, bubble=0.0, optimizer=0.0, dcn=0.0, dp_block=0.0, dp_head=0.0)
    ends = {"first": dict(post_f=0.0, post_b=0.0, tp_head=0.0),
            "mid": dict(pre_f=0.0, pre_b=0.0, tp_embed=0.0, post_f=0.0, post_b=0.0,
                        tp_head=0.0, ag_head=0.0, rs_head=0.0),
            "last": dict(pre_f=0.0, pre_b=0.0, tp_embed=0.0)}

    def steady(**drop: float) -> float:
        stage = replace(quiet, **drop)
        return (schedule(replace(stage, microbatches=2)).step_s
                - schedule(replace(stage, microbatches=1)).step_s)
    return steady(**ends["first"]), steady(**ends["mid"]), steady(**ends["last"])


def pipelined(p: StepParts, stages: int) -> tuple[StepParts, str | None]:
    """The parts of the slower end stage of ``stages`` (``p``: one stage's blocks with both
    ends' rows) with the bubble, the other stages' slots (:func:`slots`): (stages - 2) middle
    ones and the faster end's; and which end's rows that stage does not run (``"pre"``: the
    embedding's, ``"post"``: the LM head's). An end stage receives one PP message per
    microbatch (the last its activations, the first its gradients), half a middle stage's two:
    its bytes halve, its time keeps both sends (on the critical path). One stage: ``p``
    unchanged and None."""
    if stages == 1:
        return p, None
    first, mid, last = slots(p)
    bubble = (stages - 2) * mid + min(first, last)
    moved = {**p.moved, "pp": tuple(b / 2 for b in p.moved.get("pp", (0.0, 0.0)))}
    if last >= first:
        moved["tp_embed"] = (0.0, 0.0)
        return replace(p, pre_f=0.0, pre_b=0.0, tp_embed=0.0, bubble=bubble, moved=moved), "pre"
    moved["tp_head"] = (0.0, 0.0)
    return replace(p, post_f=0.0, post_b=0.0, tp_head=0.0, bubble=bubble, moved=moved), "post"


__all__ = ["slots", "pipelined"]

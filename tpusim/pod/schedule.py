"""The schedule of one training step on one chip: compute layer by layer, collectives on ICI.

One chip stands for every chip of its shard (SPMD). Its program, per microbatch: the embedding,
the blocks 0 .. L-1 in order, the final norm and LM head; then their backward in reverse (the LM
head, blocks L-1 .. 0 each with its recompute first, the embedding). Three kinds of collective,
as XLA schedules them:

* **async on the ICI stream** (one FIFO stream with the collectives' own bandwidth, concurrent
  with compute): the FSDP all-gather of the weights the next unit needs is issued when the
  current unit starts (one unit ahead, so two layers' weights are live: the memory model's
  ``gathered_weights``), and a unit waits until its weights are there; each block's gradient
  reduce-scatter is issued when its backward ends (the embedding and LM head's, which share one
  gather, after the embedding's backward); in the last microbatch each reduce-scatter is
  followed by its share of the in-slice DP all-reduce (assumption: the gradients are bucketed
  per layer and the bucketed all-reduce's time is shared out by parameters, its latency paid
  once). When fsdp spans slices its gather and scatter carry their DCN phases on this stream
  too: XLA issues a cross-slice all-gather or reduce-scatter as one async collective like an
  in-slice one (assumption: its DCN phase overlaps compute as the ICI phases do, and one
  collective's DCN phase does not overlap the next one's ICI phases). The optimizer needs every
  gradient, so the compute waits for the stream to drain;
* **blocking** (on the critical path: the compute waits for them): the TP all-reduces and EP
  all-to-alls of each block, drawn after its compute in each pass (assumption: where inside the
  block they fall is not modelled, only their time) but for the share of the backward's TP
  traffic that runs under its GEMMs (``tp_hidden``, ``remat.tp_shares``: drawn on the blocking
  track ending with the block's backward, never waited on), and the TP and EP collectives a block's
  recompute reruns, after it, the PP send at the end of each microbatch's
  forward and backward, and the DCN gradient all-reduce across slices once the stream is done
  (PaLM: it starts only when the gradients are complete);
* the pipeline bubble (with pp the program is the slower end stage's and the bubble the other
  stages' slots: ``pod/pipeline.py``), then the optimizer.

Exposed collective time is the time the compute track waits on a collective, so
``compute + exposed + bubble + optimizer = step`` holds by construction. Blocking collectives
run on their own axes' links, concurrently with the ICI stream (assumption; where a blocking kind
and fsdp take factors of one physical axis, as ep and fsdp can, they share its links, and that
contention is not modelled).
"""
from __future__ import annotations

from dataclasses import dataclass, field

COMPUTE, ICI, BLOCKING = "compute", "ICI async (FSDP/DP)", "ICI/DCN blocking"
TP_HIDDEN = "TP under the backward's GEMMs"     # a blocking-track span the compute never waits on
TRACKS = (COMPUTE, ICI, BLOCKING)


@dataclass(frozen=True)
class StepParts:
    """One microbatch's costs on one chip, in seconds (``pod/train.py`` prices them).

    ``*_f``/``*_b``: forward/backward compute of the rows before the blocks (``pre``), one block
    and the rows after the blocks (``post``); ``block_r``: one block's recompute. ``ag_*``,
    ``rs_*``: an FSDP all-gather / reduce-scatter of one block's or of the embedding and LM
    head's weights; ``dp_*``: their share of the step's in-slice DP all-reduce; ``tp_block``,
    ``ep_block``: one block's blocking TP / EP collectives per pass (``tp_block``: the forward's;
    ``tp_backward``: the backward's, ``tp_hidden`` more of its TP traffic running under its
    compute; ``tp_embed``, ``tp_head``: the vocab-parallel embedding's and LM head's, once per
    microbatch); ``tp_recompute``, ``ep_recompute``: the TP / EP collectives its recompute reruns;
    ``pp``: one PP send."""

    layers: int
    microbatches: int
    pre_f: float
    block_f: float
    post_f: float
    pre_b: float
    block_b: float
    post_b: float
    block_r: float = 0.0
    ag_block: float = 0.0
    ag_head: float = 0.0
    rs_block: float = 0.0
    rs_head: float = 0.0
    dp_block: float = 0.0
    dp_head: float = 0.0
    tp_block: float = 0.0
    tp_embed: float = 0.0     # the vocab-parallel embedding lookup's all-reduce, per microbatch
    tp_head: float = 0.0      # the vocab-parallel LM head's input-gradient all-reduce, per mb
    tp_backward: float = 0.0
    tp_hidden: float = 0.0
    tp_recompute: float = 0.0
    ep_block: float = 0.0
    ep_recompute: float = 0.0
    pp: float = 0.0
    dcn: float = 0.0
    bubble: float = 0.0
    optimizer: float = 0.0
    # (ICI, DCN) bytes each chip receives in one span of a collective field above, by its name
    # ("ag_block", "tp_backward", ...): what the recorded spans carry (none: 0)
    moved: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)


@dataclass(slots=True)
class Span:
    """``dur`` seconds of ``track`` from ``start``: ``kind`` says what (``forward``,
    ``fsdp wait``, ``TP all-reduce``, ``FSDP all-gather`` ..), ``name`` which unit."""

    track: str
    kind: str
    name: str
    start: float
    dur: float
    microbatch: int
    ici_bytes: float = 0.0    # a collective span: the bytes each chip receives in it
    dcn_bytes: float = 0.0


@dataclass
class Schedule:
    step_s: float = 0.0
    compute_s: float = 0.0       # forward, backward and recompute
    waits_s: dict[str, float] = field(default_factory=dict)   # the compute track's waits by cause
    bubble_s: float = 0.0
    optimizer_s: float = 0.0
    stream_busy_s: float = 0.0   # the async ICI stream's busy time
    spans: list[Span] | None = None

    @property
    def exposed_s(self) -> float:
        return sum(self.waits_s.values())


def per_step(p: StepParts, value) -> dict[str, float]:
    """Each collective's total over the step (train.json's ``collectives_s`` keys) from
    ``value(field)``, one span's quantity of a collective field of ``p`` (its seconds, or the
    bytes ``p.moved`` gives it): each span as many times as :func:`schedule` runs it (per
    microbatch a unit's gather in the forward and again in the backward, its gradients'
    reduce-scatter, each block's TP and EP collectives per pass, a PP send each way; once per
    step the DP and DCN gradient exchanges)."""
    L, M = p.layers, p.microbatches
    return {"fsdp_all_gather": 2 * M * (L * value("ag_block") + value("ag_head")),
            "fsdp_reduce_scatter": M * (L * value("rs_block") + value("rs_head")),
            "dp_all_reduce": L * value("dp_block") + value("dp_head"),
            "dcn_all_reduce": value("dcn"),
            "tp_all_reduce": L * M * (value("tp_block") + value("tp_backward")
                                      + value("tp_hidden") + value("tp_recompute"))
            + M * (value("tp_embed") + value("tp_head")),
            "ep_all_to_all": L * M * (2 * value("ep_block") + value("ep_recompute")),
            "pp_permute": 2 * M * value("pp")}


def schedule(p: StepParts, record: bool = False) -> Schedule:
    """Run the step (module docstring); ``record``: keep every span for a trace or a chart
    (without, :func:`_unrecorded` runs the same operations in the same order, inlined: the
    sharding search prices thousands of steps)."""
    if not record:
        return _unrecorded(p)
    out = Schedule(spans=[])
    waits = {"FSDP all-gather": 0.0, "gradient reduce-scatter / DP all-reduce": 0.0,
             "TP all-reduce": 0.0, "EP all-to-all": 0.0, "PP send": 0.0, "DCN all-reduce": 0.0}
    spans = out.spans
    L, M = p.layers, p.microbatches
    now = 0.0            # the compute track is free from here
    free = 0.0           # the async stream is free from here
    busy = 0.0

    def stream(kind: str, name: str, issue: float, dur: float, mb: int, key: str) -> float:
        nonlocal free, busy
        if dur <= 0:
            return issue
        start = max(free, issue)
        free = start + dur
        busy += dur
        spans.append(Span(ICI, kind, name, start, dur, mb, *p.moved.get(key, (0.0, 0.0))))
        return free

    def run(kind: str, name: str, dur: float, mb: int) -> None:
        nonlocal now
        if dur > 0:
            spans.append(Span(COMPUTE, kind, name, now, dur, mb))
        now += dur

    def wait(cause: str, until: float, name: str, mb: int) -> None:
        nonlocal now
        if until > now:
            spans.append(Span(COMPUTE, "wait: " + cause, name, now, until - now, mb))
            waits[cause] += until - now
            now = until

    def blocking(cause: str, dur: float, name: str, mb: int, key: str) -> None:   # on the path
        if dur > 0:
            spans.append(Span(BLOCKING, cause, name, now, dur, mb,
                              *p.moved.get(key, (0.0, 0.0))))
            wait(cause, now + dur, name, mb)

    def block(name: str, mb: int, tp: str, ep: str) -> None:   # a block's TP, then EP
        blocking("TP all-reduce", getattr(p, tp), name, mb, tp)
        blocking("EP all-to-all", getattr(p, ep), name, mb, ep)

    # The units that need gathered weights, in program order: per microbatch the embedding
    # (embedding and LM head weights), blocks 0 .. L-1, the LM head's backward (the same
    # weights gathered again), blocks L-1 .. 0. The gather of unit u + 1 is issued when unit u
    # starts; ``pending`` is when the next unit's gather completes.
    n_units = M * (2 * L + 2)
    names = [f"block {i}" for i in range(L)]
    u = 0
    pending = stream("FSDP all-gather", "embed", 0.0, p.ag_head, 0, "ag_head")

    def needing(mb: int, name: str, kind: str, dur: float) -> None:
        """The next unit: wait for its weights, issue the following unit's gather, run."""
        nonlocal u, pending
        wait("FSDP all-gather", pending, name, mb)
        u += 1
        if u < n_units:
            pos = u % (2 * L + 2)
            head = pos == 0 or pos == L + 1
            nm = ("embed" if pos == 0 else "lm_head") if head else \
                names[pos - 1 if pos <= L else 2 * L + 1 - pos]
            pending = stream("FSDP all-gather", nm, now,
                             p.ag_head if head else p.ag_block, u // (2 * L + 2),
                             "ag_head" if head else "ag_block")
        run(kind, name, dur, mb)

    last = M - 1
    for mb in range(M):
        needing(mb, "embed", "forward", p.pre_f)
        blocking("TP all-reduce", p.tp_embed, "embed", mb, "tp_embed")
        for i in range(L):
            needing(mb, names[i], "forward", p.block_f)
            block(names[i], mb, "tp_block", "ep_block")
        run("forward", "lm_head", p.post_f, mb)
        blocking("PP send", p.pp, "activations", mb, "pp")
        needing(mb, "lm_head", "backward", p.post_b)
        blocking("TP all-reduce", p.tp_head, "lm_head", mb, "tp_head")
        for i in range(L - 1, -1, -1):
            needing(mb, names[i], "recompute", p.block_r)
            block(names[i], mb, "tp_recompute", "ep_recompute")
            run("backward", names[i], p.block_b, mb)
            if p.tp_hidden > 0:                             # ran under the backward's GEMMs
                spans.append(Span(BLOCKING, TP_HIDDEN, names[i], now - p.tp_hidden,
                                  p.tp_hidden, mb, *p.moved.get("tp_hidden", (0.0, 0.0))))
            block(names[i], mb, "tp_backward", "ep_block")
            stream("gradient reduce-scatter", names[i], now, p.rs_block, mb, "rs_block")
            if mb == last:
                stream("DP all-reduce", names[i], now, p.dp_block, mb, "dp_block")
        run("backward", "embed", p.pre_b, mb)
        stream("gradient reduce-scatter", "embed/lm_head", now, p.rs_head, mb, "rs_head")
        if mb == last:
            stream("DP all-reduce", "embed/lm_head", now, p.dp_head, mb, "dp_head")
        blocking("PP send", p.pp, "gradients", mb, "pp")
    wait("gradient reduce-scatter / DP all-reduce", free, "gradients", last)
    blocking("DCN all-reduce", p.dcn, "gradients", last, "dcn")
    run("pipeline bubble", "bubble", p.bubble, last)
    run("optimizer", "Adam", p.optimizer, last)
    out.step_s = now
    out.compute_s = M * (p.pre_f + p.pre_b + p.post_f + p.post_b
                         + L * (p.block_f + p.block_b + p.block_r))
    out.waits_s = waits
    out.bubble_s, out.optimizer_s, out.stream_busy_s = p.bubble, p.optimizer, busy
    return out


def _unrecorded(p: StepParts) -> Schedule:
    """:func:`schedule` without spans: its arithmetic, step for step (the tests hold the two
    to exact equality)."""
    L, M = p.layers, p.microbatches
    per = 2 * L + 2
    n_units = M * per
    ep, pp, ag_b, ag_h = p.ep_block, p.pp, p.ag_block, p.ag_head
    now = free = busy = 0.0
    w_ag = w_grad = w_tp = w_ep = w_pp = w_dcn = 0.0
    if ag_h > 0:
        free = ag_h
        busy += ag_h
        pending = free
    else:
        pending = 0.0
    u = 0

    def stream(dur: float, issue: float) -> None:
        nonlocal free, busy
        if dur > 0:
            free = max(free, issue) + dur
            busy += dur

    last = M - 1
    for mb in range(M):
        for kind in range(2):                      # 0: forward pass, 1: backward pass
            # the pass's units: its head unit (embed / LM head backward), then L blocks
            for j in range(L + 1):
                if pending > now:
                    w_ag += pending - now
                    now = pending
                u += 1
                if u < n_units:
                    pos = u % per
                    g = ag_h if pos == 0 or pos == L + 1 else ag_b
                    if g > 0:
                        free = max(free, now) + g
                        busy += g
                        pending = free
                    else:
                        pending = now
                if j == 0:
                    if kind == 0:
                        now += p.pre_f
                        if p.tp_embed > 0:
                            t = now + p.tp_embed
                            w_tp += t - now
                            now = t
                    else:
                        now += p.post_b
                        if p.tp_head > 0:
                            t = now + p.tp_head
                            w_tp += t - now
                            now = t
                    continue
                if kind == 0:
                    now += p.block_f
                    tp = p.tp_block
                else:
                    tp = p.tp_backward
                    now += p.block_r
                    if p.tp_recompute > 0:
                        t = now + p.tp_recompute
                        if t > now:
                            w_tp += t - now
                            now = t
                    if p.ep_recompute > 0:
                        t = now + p.ep_recompute
                        if t > now:
                            w_ep += t - now
                            now = t
                    now += p.block_b
                if tp > 0:
                    t = now + tp
                    if t > now:
                        w_tp += t - now
                        now = t
                if ep > 0:
                    t = now + ep
                    if t > now:
                        w_ep += t - now
                        now = t
                if kind == 1:
                    stream(p.rs_block, now)
                    if mb == last:
                        stream(p.dp_block, now)
            if kind == 0:
                now += p.post_f
            else:
                now += p.pre_b
                stream(p.rs_head, now)
                if mb == last:
                    stream(p.dp_head, now)
            if pp > 0:
                t = now + pp
                if t > now:
                    w_pp += t - now
                    now = t
    if free > now:
        w_grad += free - now
        now = free
    if p.dcn > 0:
        t = now + p.dcn
        if t > now:
            w_dcn += t - now
            now = t
    now += p.bubble
    now += p.optimizer
    out = Schedule(step_s=now, bubble_s=p.bubble, optimizer_s=p.optimizer, stream_busy_s=busy,
                   waits_s={"FSDP all-gather": w_ag,
                            "gradient reduce-scatter / DP all-reduce": w_grad,
                            "TP all-reduce": w_tp, "EP all-to-all": w_ep, "PP send": w_pp,
                            "DCN all-reduce": w_dcn})
    out.compute_s = M * (p.pre_f + p.pre_b + p.post_f + p.post_b
                         + L * (p.block_f + p.block_b + p.block_r))
    return out


__all__ = ["StepParts", "Span", "Schedule", "schedule", "per_step", "TRACKS", "COMPUTE", "ICI",
           "BLOCKING", "TP_HIDDEN"]

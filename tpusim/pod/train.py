"""One training step of an LLM on a slice (or several over DCN), from first principles.

Every chip of an evenly sharded SPMD program runs the same shard, so one chip is simulated (cost
grows with the distinct shards, not the chips): its GEMMs are the model's with heads and FFN
columns split tp ways, experts ep ways, layers pp ways, and the batch split over dp x fsdp x ep.
Per microbatch the chip runs

* forward: the single-chip trace of ``importers/llm.py`` for its shard, through ``simulate``
  (one instance of each row, times the layers: ``pod/costs.py``, memoised per distinct shard),
  with attention as a flash kernel (:func:`flash_attention`: one row instance per tile, so a
  score tile stays in VMEM from QK^T through softmax to AV; causal tiles above the diagonal
  skipped);
* backward (``pod/backward.py``): attention as the flash backward kernels (``pod/flash.py``: per
  tile S recomputed and four gradient GEMMs, the score-sized tiles in VMEM; unfused, a dQ kernel
  recomputes S and dP again; block sizes per pass: ``pod/flash_blocks.py``); for every other
  matmul the input-gradient GEMM (m x n x k) and the weight-gradient GEMM (k x m x n); every
  other vector op's backward costs twice its forward (it reads its input and the incoming
  gradient: assumption); the embedding's backward is a scatter-add of its size;
* recompute (``remat``, ``pod/remat.py``): ``full`` reruns each block's forward, ``minimal``
  reruns its vector ops (matmul outputs are kept), ``none`` keeps everything; ``save:NAMES`` /
  ``offload:NAMES`` keep the named block outputs in HBM / pinned host memory and rerun the rest.

Collectives (``pod/collectives.py``, bf16 on the wire: assumption): fsdp all-gathers each
layer's weights in the forward and again in the backward and reduce-scatters its gradients,
every microbatch (ZeRO-3 keeps no unsharded gradient between microbatches); when fsdp spans the
slices (``sharding.dcn_kind``: MaxText's dcn_fsdp_parallelism) those collectives cross DCN as
well, priced hierarchically (DCN on the small shard, ``pod/collectives.py``), and the state is
sharded over the slices too; dp all-reduces the gradients once per step (with it, where tp
exceeds the KV heads, each replicated K/V head's partial gradients over its tp ranks); tp
all-reduces activations twice per block per pass (once for parallel blocks) and once per
microbatch after the vocab-split embedding lookup; ep all-to-alls tokens to and
from the experts twice per MoE layer per pass; pp sends activations to the next stage per
microbatch and pass. Overlap, as XLA's async collectives do it, comes from a per-layer schedule
of the step (``pod/schedule.py``): fsdp all-gathers are prefetched one layer ahead and gradient
reduce-scatters and the in-slice dp all-reduce run on an async ICI stream under compute, exposed
only where the compute waits for them; tp, ep and pp traffic sits on the critical path
(exposed), and so does the gradient exchange across slices over DCN, which starts once the
backward is done (PaLM); the exception is the backward's sequence-parallel tp reduce-scatters
and weight-gradient gathers, which run under the column-parallel GEMMs (``remat.tp_shares``,
``remat.COLUMN_PARALLEL``). With pp the simulated chip is the slower end stage (its blocks and
the embedding, or the LM head and loss) and the bubble the other stages' one-microbatch slots,
their blocking collectives included (``pod/pipeline.py``); HFU averages the stages' FLOPs.
Optimizer: Adam in mixed precision (bf16 weights and gradients, fp32 master weights and two
moments: 16 bytes per parameter, sharded over fsdp as ZeRO-3 does); its update reads 14 bytes
(the gradient, master, m, v) and writes 14 (the bf16 weight from the new master, master, m, v)
and does 12 vector ops per parameter (assumption), at HBM or vector speed whichever is slower,
after the backward (not overlapped with it). The loss is a softmax over each token's logits
after the LM head (``backward.with_loss``), its backward the logits' gradient. HBM per chip
(``pod/hbm_account.py``): the sharded state, the activations the remat policy keeps in HBM,
and the larger of the layers' moment (two layers' gathered weights, the working set of the layer
being back-propagated) and the loss's (the logits and their gradient, the gathered LM head and
last layer); ``host_offload`` counts what the policy keeps in host memory (not HBM).

MFU as PaLM (Chowdhery et al. 2022, Appendix B) defines it: (6 N + 12 L H Q T) FLOPs per token over
the peak, N the matmul parameters a token passes (active ones for MoE), L layers, H heads, Q head
dim, T sequence; ``attention="causal"`` halves the attention term as MaxText's tables do (for MoE
top_k experts per token, no capacity padding or dispatch einsums, as MaxText counts it). HFU counts
the FLOPs the chips actually run (backward, recompute, the full score blocks, padded slots).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError
from ..importers.llm import LlmConfig, llm_rows
from .backward import backward_rows, places, time_by_op, with_loss
from .collectives import all_gather, all_reduce, all_to_all, permute, reduce_scatter
from .costs import simulate_rows
from .dropmoe import (MoeKernel, all_to_all_rows, check_kernel, dropped_rows, parse_moe,
                      without_mask_gradients)
from .flash import FLASH_BLOCK, flash_attention, flash_backward
from .flash_blocks import FlashBlocks
from .hbm_account import GIB, account, chip_params, kv_params
from .moe import megablox_rows
from .remat import (BASIC, OUTSIDE_BLOCKS as _OUTSIDE_BLOCKS, WIRE_BYTES, Remat, parse_remat,
                    recomputed, tp_shares, unread, COVER_ROWS)
from .pipeline import pipelined
from .schedule import Schedule, StepParts, per_step, schedule
from .sharding import (ParallelSpec, Placement, check_spec, dcn_kind, leading_group, place,
                       shard_config)
from .topology import Slice

REMATS = BASIC           # the search's default candidates; train_step takes any pod/remat.py policy
ADAM_BYTES = 28           # read 14 (bf16 g; fp32 master, m, v), write 14 (bf16 w; master, m, v)
ADAM_OPS = 12             # vector ops per parameter of one Adam update (assumption)


@dataclass(frozen=True)
class TrainResult:
    step_s: float
    tokens_per_s: float
    tokens_per_s_per_chip: float
    mfu: float
    hfu: float
    hbm_gib_per_chip: float
    parallel: str
    chips: int
    topology: str
    time_s: dict[str, float]
    memory_gib: dict[str, float]
    collectives_s: dict[str, float]
    exposed: dict[str, bool]
    notes: tuple[str, ...] = field(default_factory=tuple)
    exposed_s: dict[str, float] = field(default_factory=dict)   # the compute's waits by cause
    parts: StepParts | None = field(default=None, repr=False, compare=False)
    remat: str = "full"                     # the policy that ran, as --remat spells it
    host_offload_bytes_per_step: float = 0.0   # offloaded tensors, to host and back, per chip
    moe: str = "megablox"                   # the MoE kernel that ran, as --moe spells it
    # the compute by forward row (the flash kernels' rows as one "attention"): its forward,
    # backward and recompute seconds over the microbatches, in trace order (time_by_op)
    time_by_op: tuple[dict[str, Any], ...] = ()
    # bytes each chip receives per step by collective (collectives_s' keys), {"ici", "dcn"}
    collective_bytes_per_chip: dict[str, dict[str, float]] = field(default_factory=dict)
    ici_link_busy: float = 0.0   # those ICI bytes over the step's inbound ICI bandwidth

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if k != "parts"}

    def schedule(self) -> Schedule:
        """The step's per-layer schedule with every span (``pod/schedule.py``)."""
        return schedule(self.parts, record=True)


def model_flops_per_token(model: LlmConfig, seq: int,
                          attention: Literal["causal", "full"] = "causal") -> float:
    """6 N + 12 L H Q T (PaLM Appendix B); the attention term halved when causal (MaxText)."""
    attn = 12 * model.layers * model.heads * model.head_dim * seq
    return 6 * model.linear_params() + (attn / 2 if attention == "causal" else attn)


def check_sizes(seq: int, global_batch: int, microbatches: int = 1, model=None) -> None:
    """One-line InputError unless every size is a positive integer and ``seq`` fits the
    ``model``'s learned positions, if it has them (before any layout runs)."""
    for name, v in (("--seq", seq), ("--global-batch", global_batch),
                    ("--microbatches", microbatches)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(name, None, v, "must be a positive integer")
    if model is not None:
        from ..importers.llm_step_args import check_positions
        check_positions(model, seq, "--seq")


def train_step(chip, model: LlmConfig, sl: Slice, spec: ParallelSpec, seq: int,
               global_batch: int, remat: "str | Remat" = "full", microbatches: int = 1,
               attention: Literal["causal", "full"] = "causal",
               memo: bool = True, flash: FlashBlocks | None = None,
               moe: "str | MoeKernel" = "megablox") -> TrainResult:
    """Time, memory and MFU of one step (module docstring). One-line InputErrors for specs that
    do not divide the chips, the model or the batch, and for a shard that does not fit HBM
    (checked before anything is simulated). ``memo=False``: price the shard afresh. ``flash``:
    the flash kernels' block sizes per pass and backward variant (default:
    ``FlashBlocks.for_seq``).
    ``moe``: ``megablox`` (dropless, ``pod/moe.py``) or ``dropped:CF`` (``pod/dropmoe.py``)."""
    policy, kernel = parse_remat(remat), parse_moe(moe)
    check_sizes(seq, global_batch, microbatches, model)
    check_kernel(kernel, model)
    check_spec(spec, sl.chips, model, sl.slices)
    pl: Placement = place(spec, sl)
    if global_batch % spec.replicas:
        raise InputError("--global-batch", None, global_batch, f"must be a multiple of "
                         f"dp x fsdp x ep = {spec.replicas} (sequences per replica)")
    per_chip = global_batch // spec.replicas
    if per_chip % microbatches:
        raise InputError("--microbatches", None, microbatches, f"must divide the {per_chip} "
                         f"sequence{'s' if per_chip != 1 else ''} each chip trains on")
    mb = per_chip // microbatches
    shard = shard_config(model, spec)
    L = shard.layers

    # The rows are one stage's blocks with both ends (the embedding, the LM head and loss); with
    # pp > 1 the schedule keeps the slower end's (pod/pipeline.py).
    fwd = with_loss(llm_rows(shard, "prefill", batch=mb, seq=seq, kv_len=seq))
    if model.moe and kernel.dropped:
        fwd = dropped_rows(fwd, shard, mb, seq, kernel.capacity_factor)
    group, flash = shard.heads // shard.kv_heads, flash or FlashBlocks.for_seq(seq)
    causal = model.lm_head          # a decoder's causal mask; an encoder attends both ways
    fwd = flash_attention(fwd, group, seq, causal=causal, blocks=flash, cores=chip.array.cores)
    flash_b = flash_backward(fwd, group, seq, causal=causal, blocks=flash)
    bwd = without_mask_gradients(backward_rows(fwd, flash_b, table=shard.vocab * shard.hidden))
    block = [r for r in fwd if r["name"] not in _OUTSIDE_BLOCKS]
    policy.check(block)
    redo = recomputed(block, policy)
    idle = sorted(unread(block) & (set(policy.save) | set(policy.offload)))
    fsdp_axes = pl.of("fsdp")
    dense_axes = pl.of("fsdp", "ep")
    params = chip_params(model, spec, pl, L)
    dense, expert, head, shard_params = params.dense, params.expert, params.head, params.shard
    acc = account(chip, fwd, policy, spec, params, L, microbatches,   # before simulating
                  logits=mb * seq * shard.vocab)

    # Forward and backward run as one program; recompute reruns forward rows, so it is priced
    # from the forward rows' own times. Dropless expert matmuls run as the grouped-matmul
    # kernel's tiles (pod/moe.py; memory above counts the logical tensors); dropped ones are
    # already the dense path's capacity-padded GEMMs (pod/dropmoe.py).
    sim = fwd + bwd
    if model.moe and not kernel.dropped:
        sim = megablox_rows(sim, mb * seq * model.top_k, shard.experts // shard.expert_shards,
                            spec.ep)
    per_row = simulate_rows(chip, sim, per_instance=True, memo=memo)
    t_f, macs_f = map(sum, zip(*per_row[:len(fwd)]))
    t_b, macs_b = map(sum, zip(*per_row[len(fwd):]))
    redo_names = {r["name"] for r in redo}
    t_r = sum(t for r, (t, _) in zip(fwd, per_row) if r["name"] in redo_names)
    macs_r = sum(m for r, (_, m) in zip(fwd, per_row) if r["name"] in redo_names)
    # Host offload: each offloaded tensor is written to host in the forward and read back in the
    # backward, per layer and microbatch. No public per-chip host<->device (PCIe) bandwidth was
    # found for TPU v4/v5e/v5p/v6e hosts (the Cloud TPU v6e page names a PCIe Gen5 interface,
    # no lanes or rate), so the transfers are taken as hidden under compute on their own DMA
    # stream (assumption) and only their bytes are reported. Their HBM reads and writes (the
    # tensor's bytes once each way) are not added to the rows' HBM time (assumption: a few % of
    # a layer's HBM traffic).
    offload_bytes = 2 * L * acc.host_per_layer * microbatches
    where, where_b = places(fwd, bwd, _OUTSIDE_BLOCKS)
    part = {w: [0.0, 0.0] for w in ("pre", "block", "post")}   # seconds: forward, backward
    for i, ((t, _), w) in enumerate(zip(per_row, where + where_b)):
        part[w][i >= len(fwd)] += t
    # MACs of the rows outside the blocks (one stage in pp runs each end's)
    ends_macs = sum(m for (_, m), w in zip(per_row, where + where_b) if w != "block")

    # Collectives: each one's Cost, then one span's seconds (and bytes, `moved_by` below) of
    # each; the step's totals are schedule.per_step's.
    ag = [all_gather(p * WIRE_BYTES, axes) for p, axes in
          ((dense, dense_axes), (expert, fsdp_axes), (head, dense_axes))]
    rs = [reduce_scatter(p * WIRE_BYTES, axes) for p, axes in
          ((dense, dense_axes), (expert, fsdp_axes), (head, dense_axes))]
    ag_block = ag[0].total_s + ag[1].total_s
    rs_block = rs[0].total_s + rs[1].total_s
    # dp inside a slice all-reduces under the backward; across slices (DCN) the exchange starts
    # only once the gradients are complete (PaLM, Section 4: "the transfer does not start until
    # each core finishes computing the gradients"), so it is exposed: a reduce-scatter over the
    # slice's dp axes, the DCN all-reduce of each chip's 1/dp_ici part, an all-gather back.
    dp_ici = tuple(a for a in pl.of("dp") if a.kind != "switch")
    dp_dcn = tuple(a for a in pl.of("dp") if a.kind == "switch")
    # With dp on both, the in-slice part on the stream is the reduce-scatter alone, and the
    # all-gather back waits for the DCN all-reduce (``dcn_all_reduce`` carries both).
    both = bool(dp_ici and dp_dcn)
    dp_c = (reduce_scatter if both else all_reduce)(shard_params * WIRE_BYTES, dp_ici)
    dcn_c = all_reduce(shard_params * WIRE_BYTES / math.prod(a.size for a in dp_ici), dp_dcn)
    back_c = all_gather(shard_params * WIRE_BYTES, dp_ici) if both else None
    grads_dp = dp_c.total_s
    grads_dcn = dcn_c.total_s + (back_c.total_s if back_c else 0.0)
    # Where tp exceeds the KV heads, each head's K/V weights sit on tp / kv_heads neighbouring
    # tp ranks that each compute a partial gradient from their own query heads: the partials
    # of a layer's fsdp shard of them are all-reduced over those ranks under the backward, as
    # dp's are (assumption: reduce-scattered over fsdp first, the cheaper order of the two).
    kv_group = leading_group(pl.of("tp"), spec.tp // model.kv_heads) \
        if spec.tp > model.kv_heads else ()
    kv_c = all_reduce(kv_params(model, spec) / params.dense_split * WIRE_BYTES, kv_group) \
        if kv_group else None
    act = mb * seq * model.hidden * WIRE_BYTES
    per_block = 1 if model.parallel_block else 2
    tp_c = all_reduce(act, pl.of("tp"))
    tp_block = per_block * tp_c.total_s
    # The embedding is split over the vocabulary tp ways (chip_params): each chip looks up the
    # tokens its rows hold and one all-reduce sums the lookups, per microbatch, blocking (with
    # sp its reduce-scatter, and the gradient's all-gather back in the backward, priced
    # together after the lookup: assumption).
    tp_embed = tp_c.total_s
    # The LM head is vocab-parallel too: its input gradient sums the tp shards' partial
    # products in one all-reduce per microbatch after the head's backward, blocking (with sp the
    # forward's all-gather of its input and the backward's reduce-scatter, priced together
    # there: assumption); the loss's max and sum over the shards are a few bytes a token.
    tp_head = tp_c.total_s
    shares = tp_shares(redo_names, model.parallel_block, spec.sequence_parallel)
    tp_redo = shares.recompute * tp_block
    # The backward's overlappable TP collectives (remat.tp_shares) hide under the GEMMs of the
    # matmuls that read the norms: the input gradients' reduce-scatters under their weight
    # gradients only, the norms' gathers under those and their input gradients; what does not
    # fit waits after the block's backward.
    under_w, under_d = shares.under_wgrad * tp_block, shares.under_dgrad * tp_block
    tp_late = 0.0
    if under_w + under_d > 0:
        by = {"wgrad": 0.0, "dgrad": 0.0}
        for r, (t, _) in zip(sim[len(fwd):], per_row[len(fwd):]):
            if r["name"] in COVER_ROWS:
                by[COVER_ROWS[r["name"]]] += t / L
        tp_late = max(0.0, under_w - by["wgrad"],
                      under_w + under_d - by["wgrad"] - by["dgrad"])
    tp_back = shares.backward * tp_block + tp_late
    tp_hidden = under_w + under_d - tp_late
    # the all-to-alls move the mean load (top_k pairs per token; a dropped kernel's capacity
    # slots), while the expert compute runs at the busiest shard's (pod/moe.py): the ragged
    # exchange's imbalance is left out (assumption, about 1% of its bytes for Mixtral at ep=8);
    # with sp each tp rank holds, dispatches and sends on (pp) only its 1/tp of the tokens (the
    # tp gather before the experts' column-parallel GEMMs is the block's sp traffic, above)
    own = act / (spec.tp if spec.sequence_parallel else 1)
    a2a = own * all_to_all_rows(model, seq, kernel) / seq if model.moe else 0.0
    ep_c = all_to_all(a2a, pl.of("ep"))
    ep_block = 2 * ep_c.total_s if model.moe else 0.0
    # The recompute reruns both all-to-alls whenever it reruns anything: their outputs are no
    # trace row a policy can keep, and the experts' weight gradients read the dispatched tokens
    # and the combine's backward the returned expert outputs.
    ep_redo = ep_block if redo_names else 0.0
    pp_axes = pl.of("pp")
    pp_c = permute(own, pp_axes[0]) if pp_axes else None
    pp_one = pp_c.total_s if pp_c else 0.0

    # Optimizer (Adam) on this chip's shard of every parameter.
    hbm_bps = chip.memory.hbm.bandwidth_gbps * 1e9 * chip.memory.hbm.efficiency
    vec_ops = chip.vector.ops_per_cycle * chip.clock_ghz * 1e9
    opt = max(ADAM_BYTES * shard_params / hbm_bps, ADAM_OPS * shard_params / vec_ops)

    # The step is the per-layer schedule's (pod/schedule.py): exposed collective time is what
    # the compute waits for.
    dp_share = grads_dp / shard_params if shard_params else 0.0
    block_params, head_params = params.block, params.head_shard

    # What one span of each kind brings into the chip (its Cost's bytes): a TP span is a
    # share of one all-reduce's in proportion to its seconds (a block's all-reduces all move
    # the same message), a DP span its parameters' share of the step's all-reduce.
    def each(c, n: float = 1.0) -> tuple[float, float]:
        return (n * c.ici_bytes, n * c.dcn_bytes) if c else (0.0, 0.0)

    def tp_share(seconds: float) -> tuple[float, float]:
        return each(tp_c, seconds / tp_c.total_s if tp_c.total_s > 0 else 0.0)
    per_param = 1 / shard_params if shard_params else 0.0
    moved_by = {
        "ag_block": tuple(map(sum, zip(each(ag[0]), each(ag[1])))), "ag_head": each(ag[2]),
        "rs_block": tuple(map(sum, zip(each(rs[0]), each(rs[1])))), "rs_head": each(rs[2]),
        "dp_block": tuple(map(sum, zip(each(dp_c, block_params * per_param), each(kv_c)))),
        "dp_head": each(dp_c, head_params * per_param),
        "tp_block": tp_share(tp_block), "tp_embed": each(tp_c), "tp_head": each(tp_c),
        "tp_backward": tp_share(tp_back),
        "tp_hidden": tp_share(tp_hidden), "tp_recompute": tp_share(tp_redo),
        "ep_block": each(ep_c, 2 if model.moe else 0),
        "ep_recompute": each(ep_c, 2 if model.moe and redo_names else 0),
        "pp": each(pp_c),
        "dcn": tuple(map(sum, zip(each(dcn_c), each(back_c))))}
    whole = StepParts(
        layers=L, microbatches=microbatches, pre_f=part["pre"][0], block_f=part["block"][0] / L,
        post_f=part["post"][0], pre_b=part["pre"][1], block_b=part["block"][1] / L,
        post_b=part["post"][1], block_r=t_r / L, ag_block=ag_block,
        ag_head=ag[2].total_s, rs_block=rs_block, rs_head=rs[2].total_s,
        dp_block=dp_share * block_params + (kv_c.total_s if kv_c else 0.0),
        dp_head=dp_share * head_params,
        tp_block=tp_block, tp_embed=tp_embed, tp_head=tp_head, tp_backward=tp_back,
        tp_hidden=tp_hidden, tp_recompute=tp_redo, ep_block=ep_block, ep_recompute=ep_redo,
        pp=pp_one, dcn=grads_dcn, optimizer=opt, moved=moved_by)
    # with pp, the slower end stage and the other stages' slots as the bubble
    parts, idle_end = pipelined(whole, spec.pp)
    sched = schedule(parts)
    step = sched.step_s
    # bytes each chip receives per step, by collective, over ICI and over DCN (its TP traffic
    # whether hidden or waited on)
    ici, dcn = (per_step(parts, lambda f, i=i: parts.moved[f][i]) for i in (0, 1))
    traffic = {k: {"ici": ici[k], "dcn": dcn[k]} for k in ici}

    tokens = global_batch * seq
    peak = chip.peak_tops("bf16") * 1e12 if "bf16" in chip.formats else \
        chip.peak_tops(chip.default_format) * 1e12
    mfu = model_flops_per_token(model, seq, attention) * tokens / (step * sl.chips * peak)
    # the stages' FLOPs averaged: each runs its blocks, the two ends one each of theirs
    hfu = 2 * microbatches * (macs_f + macs_b + macs_r - ends_macs * (1 - 1 / spec.pp)) \
        / (step * peak)
    # the simulated stage's rows: all but the idle end's
    run_f = [i for i, w in enumerate(where) if w != idle_end]
    run_b = [j for j, w in enumerate(where_b) if w != idle_end]
    by_op = time_by_op([fwd[i] for i in run_f], [bwd[j] for j in run_b],
                       [per_row[i] for i in run_f] + [per_row[len(fwd) + j] for j in run_b],
                       redo_names, microbatches, {r["name"] for r in flash_b or ()})
    t_f -= whole.pre_f + whole.post_f - parts.pre_f - parts.post_f
    t_b -= whole.pre_b + whole.post_b - parts.pre_b - parts.post_b
    return TrainResult(
        step_s=step, tokens_per_s=tokens / step, tokens_per_s_per_chip=tokens / step / sl.chips,
        mfu=mfu, hfu=hfu, hbm_gib_per_chip=acc.total / GIB, parallel=spec.label(), chips=sl.chips,
        topology=sl.label(),
        time_s={"compute": sched.compute_s, "forward": microbatches * t_f,
                "backward": microbatches * t_b, "recompute": microbatches * t_r,
                "exposed_collectives": sched.exposed_s,
                "bubble": parts.bubble,
                "optimizer": opt},
        memory_gib=acc.gib(),
        collectives_s=per_step(parts, lambda f: getattr(parts, f)),
        exposed={"fsdp_all_gather": False, "fsdp_reduce_scatter": False, "dp_all_reduce": False,
                 "dcn_all_reduce": True,
                 "tp_all_reduce": True, "ep_all_to_all": True, "pp_permute": True},
        exposed_s=dict(sched.waits_s), parts=parts, remat=policy.label(),
        host_offload_bytes_per_step=offload_bytes, moe=kernel.label() if model.moe else "",
        time_by_op=by_op, collective_bytes_per_chip=traffic,
        ici_link_busy=sl.link_busy(sum(v["ici"] for v in traffic.values()), step),
        notes=(f"per chip: {mb} sequence(s) of {seq} tokens x {microbatches} microbatch(es); "
               f"remat {policy.label()}; shard {shard.name}"
               + (f"; moe {kernel.label()}" if model.moe else ""),)
        + ((f"fsdp spans the {sl.slices} slices over DCN",)
           if dcn_kind(spec, sl.slices) == "fsdp" else ())
        + ((f"tp={spec.tp} exceeds the {model.kv_heads} KV head"
            f"{'s' if model.kv_heads > 1 else ''}: each K/V head is kept whole "
            f"on {spec.tp // model.kv_heads} chips, whose partial K/V gradients are "
            f"all-reduced with the gradients (dp_all_reduce)",) if kv_group else ())
        + ((f"remat {policy.label()}: no backward op reads {','.join(idle)}, so naming "
            f"{'them' if len(idle) > 1 else 'it'} keeps nothing (never recomputed either)",)
           if idle else ()))


__all__ = ["TrainResult", "train_step", "shard_config", "backward_rows", "simulate_rows",
           "flash_attention", "flash_backward", "FLASH_BLOCK", "FlashBlocks",
           "model_flops_per_token", "REMATS"]

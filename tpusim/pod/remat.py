"""Remat (recompute) policies of a training step: which block outputs the backward finds kept in
HBM, which in host memory, and which it recomputes.

``none`` keeps every block output, ``minimal`` the block input and the projections' outputs
(the matmuls without batch dimensions, as MaxText's ``minimal``; the vector ops and the flash
attention kernel recomputed), ``full`` the block input only (the block recomputed, but for its
:func:`unread` rows, which no policy keeps or reruns). Named policies, after
MaxText's ``remat_policy: custom`` (``tensors_on_device`` / ``tensors_to_offload``, fed to
``jax.checkpoint_policies.save_and_offload_only_these_names`` in ``get_remat_policy`` of
MaxText/layers/decoders.py, AI-Hypercomputer/maxtext):

* ``save:NAMES``: the named block rows' outputs stay in HBM, every other block row is recomputed;
* ``offload:NAMES``: the named outputs go to pinned host memory in the forward and come back for
  the backward; every other block row is recomputed;
* ``save:A,B+offload:C``: both at once.

NAMES are block row names of the model's trace (``importers/llm.py``: ``qkv_proj``, ``o_proj``,
``ffn_up`` .., the expert rows for MoE; ``attn_av`` is the flash kernel's output, o_proj's input,
MaxText's ``context``) or ``input``, the block's input (MaxText's ``decoder_layer_input``). The
block input is the scan carry, kept in HBM as under ``full`` unless ``offload:input`` names it
(assumption after MaxText: with scanned layers the carry is saved whatever the policy).
MaxText's ``qkv_proj_offloaded`` (q/k/v projections to host, the rest recomputed) is
``offload:qkv_proj``; our trace fuses q, k and v into one ``qkv_proj`` row.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from ..errors import InputError

BASIC = ("none", "minimal", "full")
INPUT = "input"
# Flash attention's forward rows (pod/flash.py); its per-tile rows are no tensors one can name.
_TILE_ROWS = ("attn_qk", "attn_qk_step", "attn_softmax", "attn_rescale", "attn_out")
# rows outside the blocks
OUTSIDE_BLOCKS = ("embed", "pos_add", "embed_norm", "final_norm", "lm_head", "loss")
WIRE_BYTES = 2            # bf16 on the wire and in memory (assumption)
FLASH_OUTPUT = "attn_av"       # the flash kernel's output O, which o_proj reads
# The flash kernel's rows: under ``minimal`` none is kept (its GEMMs carry batch dimensions, which
# MaxText's minimal, jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims, does not save),
# so its forward is rerun from the kept q, k and v.
_ATTENTION = _TILE_ROWS + (FLASH_OUTPUT,)
# Block rows whose output tp does not split (norms, residuals, the row-parallel matmuls' outputs
# after their reduce-scatter, the dropped path's combine): sequence parallelism splits them.
SEQUENCE_REGION = ("attn_norm", "ffn_norm", "o_proj", "attn_residual", "ffn_down",
                   "ffn_residual", "moe_combine")
_ALLOWED = "allowed: none|minimal|full|save:NAMES|offload:NAMES|save:NAMES+offload:NAMES"
# Block rows whose output no backward op reads: the down projection and the MoE combine (the
# dropless path's expert_combine, the dropped path's moe_combine) feed only the residual add
# (whose backward reads nothing), and the second residual add's output is the next block's
# input (kept there as ``input``). In a parallel block (PaLM, GPT-J: no
# ffn_norm, the FFN reads the attention's norm) o_proj and the first add feed only adds too.
# JAX's remat keeps and reruns only what the backward reads (its partial evaluation drops the
# rest, jax._src.ad_checkpoint remat_partial_eval's dce_jaxpr), so these are never kept and
# never recomputed, whatever the policy names (assumption: XLA keeps that program).
UNREAD = ("ffn_down", "expert_combine", "moe_combine", "ffn_residual")
UNREAD_PARALLEL = ("o_proj", "attn_residual")


def unread(block: list[dict[str, Any]]) -> frozenset[str]:
    """Names of the block rows whose output the backward never reads (:data:`UNREAD`)."""
    names = {r["name"] for r in block}
    parallel = "ffn_norm" not in names and "attn_residual" in names
    return frozenset(UNREAD + (UNREAD_PARALLEL if parallel else ())) & names


@dataclass(frozen=True)
class Remat:
    """A parsed remat policy: ``kind`` one of none/minimal/full/named; for ``named`` the names
    kept in HBM (``save``) and in host memory (``offload``), each sorted."""

    kind: str
    save: tuple[str, ...] = ()
    offload: tuple[str, ...] = ()

    def label(self) -> str:
        """The policy as ``--remat`` spells it (canonical: names sorted), e.g.
        ``save:o_proj+offload:input,qkv_proj``."""
        if self.kind != "named":
            return self.kind
        parts = [f"save:{','.join(self.save)}"] if self.save else []
        parts += [f"offload:{','.join(self.offload)}"] if self.offload else []
        return "+".join(parts)

    def input_in_hbm(self) -> bool:
        return INPUT not in self.offload

    def check(self, block: list[dict[str, Any]]) -> None:
        """One-line InputError when a name is not a block row of this model's trace."""
        allowed = block_names(block)
        for n in self.save + self.offload:
            if n not in allowed:
                raise InputError("--remat", None, n, "not a block row of this model; allowed "
                                 "names: " + ",".join(allowed))


def block_names(block: list[dict[str, Any]]) -> list[str]:
    """The names a policy may list for these block rows: ``input`` and each row but the flash
    kernel's per-tile rows."""
    return [INPUT] + [r["name"] for r in block if r["name"] not in _TILE_ROWS]


def parse_remat(value: "str | Remat") -> Remat:
    """``value`` (``--remat`` text or a Remat) as a Remat; a malformed value is one line."""
    if isinstance(value, Remat):
        return value
    if not isinstance(value, str):
        raise InputError("--remat", None, value, _ALLOWED)
    text = value.strip().lower()     # as --parallel: FULL, Save:QKV_PROJ read as full, save:..
    if text in BASIC:
        return Remat(text)
    save: set[str] = set()
    off: set[str] = set()
    heads: set[str] = set()
    for part in text.split("+"):
        head, sep, names = part.partition(":")
        head = head.strip()
        listed = [n.strip() for n in names.split(",")]
        if not sep or head not in ("save", "offload") or not all(listed):
            raise InputError("--remat", None, value, _ALLOWED + " (NAMES: a comma list)")
        if head in heads:      # as --parallel's keys: one list per kind, not two to merge
            raise InputError("--remat", head, value, f"{head}: given twice; list its names "
                             "once, comma-separated")
        twice = sorted({n for n in listed if listed.count(n) > 1})
        if twice:
            raise InputError("--remat", head, value, f"{','.join(twice)} listed twice; name "
                             "each tensor once")
        heads.add(head)
        (save if head == "save" else off).update(listed)
    both = save & off
    if both:
        raise InputError("--remat", None, value, f"{','.join(sorted(both))} is both saved and "
                         "offloaded; name each tensor once")
    save.discard(INPUT)        # the block input is kept in HBM unless offloaded (module docstring)
    if not off and not save:
        return Remat("full")   # save:input keeps exactly what full keeps
    return Remat("named", tuple(sorted(save)), tuple(sorted(off)))


@lru_cache(maxsize=4096)
def _layer_elements(items: tuple) -> tuple[float, float]:
    from ..workload import make_layer
    layer = make_layer(dict(items))
    return layer.in_elements, layer.out_elements


def _elements(row: dict[str, Any]) -> tuple[float, float]:
    """(input, output) elements of one trace row, memoised by its fields (the sharding search
    asks for the same rows' sizes for every layout of a shard)."""
    try:
        return _layer_elements(tuple(sorted(row.items())))
    except TypeError:                    # a field that cannot be a key: price it afresh
        return _layer_elements.__wrapped__(tuple(row.items()))


def tensor_elements(block: list[dict[str, Any]], o_proj_input: float) -> dict[str, float]:
    """Elements of each block row's output that the backward could keep (flash attention's
    output counted as o_proj's input, ``o_proj_input`` elements; its tiles none)."""
    out: dict[str, float] = {}
    for r in block:
        if r["name"] in _TILE_ROWS:
            continue
        out[r["name"]] = o_proj_input if r["name"] == FLASH_OUTPUT else _elements(r)[1]
    return out


def recomputed(block: list[dict[str, Any]], policy: Remat) -> list[dict[str, Any]]:
    """The block rows the backward reruns under ``policy``, never the :func:`unread` ones.
    ``minimal`` reruns the vector rows and the flash kernel's, ``full`` every row. A named policy reruns every row
    whose output it does not keep, the vector rows included (e.g. the norm before qkv_proj:
    qkv_proj's weight gradient reads its output); the flash forward kernel (its tile rows) is
    rerun unless its output is kept (assumption: the backward kernel then needs only O and its
    row statistics, which the kept O stands for)."""
    if policy.kind == "none":
        return []
    dead = unread(block)
    live = [r for r in block if r["name"] not in dead]
    if policy.kind == "full":
        return live
    if policy.kind == "minimal":
        return [r for r in live if r["op"] != "matmul" or r["name"] in _ATTENTION]
    kept = set(policy.save) | set(policy.offload)
    flash_kept = FLASH_OUTPUT in kept
    return [r for r in live
            if not (r["name"] in kept or (flash_kept and r["name"] in _TILE_ROWS))]


# The column-parallel matmuls that read each norm's output (gathered under sp): a sequential
# block's attention norm feeds qkv_proj, its FFN norm the FFN's input projections (an MoE's
# router and the rows that route the tokens: the dropless path's sort, the dropped path's
# dispatch); a parallel block's one norm feeds qkv_proj and the FFN together.
NORM_READERS = {"attn_norm": ("qkv_proj",),
                "ffn_norm": ("ffn_gate", "ffn_up", "moe_router", "moe_permute", "moe_dispatch")}
PARALLEL_READERS = ("qkv_proj", "ffn_gate", "ffn_up")
# The column-parallel GEMMs whose input- and weight-gradient rows the backward's hidden TP
# traffic runs under: the experts' input projections are split over tp as the dense FFN's are
# (pod/sharding.shard_config); the dispatch's gradient with respect to the tokens is no cover, it
# is the input gradient the reduce-scatter carries.
COLUMN_PARALLEL = ("qkv_proj", "ffn_gate", "ffn_up", "moe_router", "expert_gate", "expert_up")
# their backward rows (pod/backward.backward_rows' names), by which GEMM of the two each is
COVER_ROWS = {f"{n}_{g}": g for n in COLUMN_PARALLEL for g in ("wgrad", "dgrad")}


class TpShares(NamedTuple):
    """A block's TP collectives beyond its forward pass, in shares of one pass's: ``recompute``
    blocks the recompute; ``backward`` blocks the backward; ``under_wgrad`` (the input
    gradients' reduce-scatters) can run under the column-parallel weight-gradient GEMMs and
    ``under_dgrad`` (the norms' all-gathers the weight gradients read) under their input- and
    weight-gradient GEMMs. ``backward + under_wgrad`` is one pass; ``recompute + under_dgrad``
    is what the block runs beyond its forward and backward passes."""
    recompute: float
    backward: float
    under_wgrad: float
    under_dgrad: float


def tp_shares(redo: set[str], parallel: bool, sp: bool) -> TpShares:
    """Where a block's backward-side TP collectives fall (:class:`TpShares`). Without sp a
    sequential block all-reduces after o_proj and after ffn_down, a parallel block once after
    its summed outputs; with sp each all-reduce is an all-gather of a column-parallel input and
    a reduce-scatter of a row-parallel output, half the bytes each. The recompute reruns
    o_proj's when it recomputes o_proj (never the :data:`UNREAD` outputs'). Under sp the weight
    gradients of the column-parallel matmuls read their input gathered, which no policy keeps
    (a kept norm output is kept split), so its all-gather runs again: in the recompute, where
    the recompute reruns a matmul that reads it, else for the weight gradients alone (as
    Megatron-LM's sequence parallelism does: Korthikanti et al. 2022, "Reducing Activation
    Recomputation in Large Transformer Models").

    Overlap, as XLA's async collectives (on TPU its all-gathers and reduce-scatters are async
    by default, as MaxText's benchmarks/xla_flags_library.py notes; all-reduces only with
    ``--xla_enable_async_all_reduce``, which no recipe here sets) and Megatron-LM's
    async tensor-parallel backward do it: under sp the reduce-scatter of a column-parallel
    matmul's input gradient overlaps that matmul's weight gradient (independent of it), and a
    norm's all-gather for the weight gradients alone overlaps the GEMMs before it; the backward
    all-gather of a row-parallel output's gradient feeds both its GEMMs and blocks, and so do
    the forward's and the recompute's collectives (assumption: no collective matmul). Without
    sp every TP collective is an all-reduce and blocks."""
    if not sp:
        rerun = 0.0 if parallel or "o_proj" not in redo else 0.5
        return TpShares(rerun, 1.0, 0.0, 0.0)
    readers = {"attn_norm": PARALLEL_READERS} if parallel else NORM_READERS
    gather = 0.5 / len(readers)
    again = sum(gather for names in readers.values() if redo & set(names))
    rs = 0.25 if not parallel and "o_proj" in redo else 0.0
    return TpShares(again + rs, 0.5, 0.5, 0.5 - again)


def _tensors(fwd: list[dict[str, Any]], sp: int) -> tuple[dict[str, float], list[dict]]:
    """Bytes (bf16) of each tensor one layer could keep for the backward pass: ``input`` (the
    block's input, split ``sp`` ways under sequence parallelism) and each block row's output
    (this module's NAMES), with the block rows. Assumption: attention runs as a fused kernel that
    keeps no score matrix; its output is what o_proj reads (tokens x heads x head_dim), not its
    per-tile partial outputs (the backward recomputes the scores); an :func:`unread` row keeps
    nothing (0 bytes, named or not). Under sequence parallelism
    the block input and the :data:`SEQUENCE_REGION` rows' outputs (tokens x hidden, which tp
    does not split) live split ``sp`` ways, as Megatron-style sequence parallelism and MaxText's
    ``activation_embed`` over ``tensor`` keep them; tp's own shards (an FFN shard as wide as the
    hidden size included) stay whole."""
    block = [r for r in fwd if r["name"] not in OUTSIDE_BLOCKS]
    full_h = _elements(block[0])[1]                  # the first norm's output: tokens x hidden
    o_proj = next((b for b in block if b["name"] == "o_proj"), None)
    o_in = _elements(o_proj)[0] if o_proj is not None else \
        _elements(next(b for b in block if b["name"] == "attn_av"))[1]
    dead = unread(block)
    sizes = {INPUT: full_h / sp * WIRE_BYTES}
    sizes.update({k: 0.0 if k in dead else (v / sp if k in SEQUENCE_REGION else v) * WIRE_BYTES
                  for k, v in tensor_elements(block, o_in).items()})
    return sizes, block


def saved_per_layer(fwd: list[dict[str, Any]], sp: int) -> dict[str, float]:
    """Bytes one layer keeps for the backward pass (bf16) under each basic remat policy
    (:func:`_tensors`): ``full`` keeps each block's input, ``minimal`` also its projections'
    outputs (the matmuls outside the flash kernel), ``none`` every block output."""
    sizes, block = _tensors(fwd, sp)
    projections = {r["name"] for r in block if r["op"] == "matmul"} - set(_ATTENTION)
    mm = sum(v for k, v in sizes.items() if k in projections)
    vec = sum(v for k, v in sizes.items() if k != INPUT and k not in projections)
    return {"full": sizes[INPUT], "minimal": sizes[INPUT] + mm,
            "none": sizes[INPUT] + mm + vec}


def kept_per_layer(fwd: list[dict[str, Any]], sp: int, policy: Remat) -> tuple[float, float]:
    """(HBM, host) bytes one layer keeps for the backward under ``policy``."""
    if policy.kind != "named":
        return saved_per_layer(fwd, sp)[policy.kind], 0.0
    sizes, _ = _tensors(fwd, sp)
    hbm = sum(sizes[n] for n in policy.save) + (sizes[INPUT] if policy.input_in_hbm() else 0.0)
    return hbm, float(sum(sizes[n] for n in policy.offload))


def saved_activations(fwd: list[dict[str, Any]], layers: int, remat: str, sp: int) -> float:
    """Bytes ``layers`` layers keep in HBM for the backward pass under ``remat``
    (:func:`kept_per_layer`)."""
    return layers * kept_per_layer(fwd, sp, parse_remat(remat))[0]


__all__ = ["OUTSIDE_BLOCKS", "WIRE_BYTES", "saved_per_layer", "kept_per_layer", "saved_activations",
           "Remat", "parse_remat", "block_names", "recomputed", "tensor_elements", "BASIC",
           "INPUT", "unread", "tp_shares", "TpShares", "COVER_ROWS",
           "NORM_READERS", "PARALLEL_READERS", "COLUMN_PARALLEL"]

"""The splash kernel's block sizes per pass (:class:`FlashBlocks`) and the causal tile count of a
tiling whose query and key blocks differ (:func:`causal_tiles`).

The JAX Pallas splash kernel (``splash_attention_kernel.BlockSizes``) takes a query block and a
key block per kernel: the forward (``block_q``, ``block_kv``), the dK/dV backward kernel
(``block_q_dkv``, ``block_kv_dkv``) and the dQ kernel of the unfused backward (``block_q_dq``,
``block_kv_dq``); the forward and the dK/dV kernel also split each key block into inner compute
steps of ``block_kv_compute`` / ``block_kv_dkv_compute`` keys (a loop inside one grid step, the
key block already in VMEM), which the kernel requires to divide the key block. MaxText sets them
with its ``sa_block_*`` keys (defaults 512 and ``sa_use_fused_bwd_kernel: False`` in
``MaxText/configs/base.yml``). A block longer than the sequence is clipped to it (MaxText's
``min(sa_block_*, max_target_length)``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..errors import InputError

# Default tile edge of every pass (assumption; MaxText recipes set sa_block_* 1024-2048).
FLASH_BLOCK = 1024
# The smallest block the default falls back to before padding: one MXU-width multiple
# (assumption: a kernel with narrower tiles than 128 keys leaves the lanes idle).
MIN_BLOCK = 128
OPTION = "--flash-blocks"
_INTS = ("q", "kv", "kv_compute", "q_dkv", "kv_dkv", "kv_dkv_compute", "q_dq", "kv_dq")


@dataclass(frozen=True)
class FlashBlocks:
    """Block sizes (tokens) of the flash kernels, named as MaxText's ``sa_block_*`` keys without
    the prefix; ``fused_bwd``: one backward kernel for dQ, dK and dV (``q_dq``/``kv_dq`` unused)
    or the dK/dV kernel and a separate dQ kernel. The fields' default is every block 1,024,
    fused; a step without blocks given takes :meth:`for_seq`'s."""
    q: int = FLASH_BLOCK
    kv: int = FLASH_BLOCK
    kv_compute: int = FLASH_BLOCK
    q_dkv: int = FLASH_BLOCK
    kv_dkv: int = FLASH_BLOCK
    kv_dkv_compute: int = FLASH_BLOCK
    q_dq: int = FLASH_BLOCK
    kv_dq: int = FLASH_BLOCK
    fused_bwd: bool = True

    def __post_init__(self):
        for name in _INTS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(OPTION, name, v, "must be a positive integer (tokens)")
        if not isinstance(self.fused_bwd, bool):
            raise InputError(OPTION, "fused_bwd", self.fused_bwd, "must be 0 or 1")
        for outer, inner in (("kv", "kv_compute"), ("kv_dkv", "kv_dkv_compute")):
            if getattr(self, outer) % getattr(self, inner):
                raise InputError(OPTION, inner, getattr(self, inner), f"must divide {outer} = "
                                 f"{getattr(self, outer)} (the splash kernel's rule)")

    @classmethod
    def square(cls, block: int) -> FlashBlocks:
        """Every block ``block``, fused backward (the model before per-pass blocks)."""
        return cls(*([block] * len(_INTS)))

    @classmethod
    def for_seq(cls, seq: int) -> FlashBlocks:
        """The default blocks of a ``seq``-token sequence, every pass alike: ``seq`` itself up
        to :data:`FLASH_BLOCK`; beyond, the largest divisor of ``seq`` from :data:`MIN_BLOCK`
        to :data:`FLASH_BLOCK` (the splash kernel takes only dividing blocks: 1,536 tokens run
        768-token tiles rather than two 1,024 ones over 2,048); with none (a prime length),
        :data:`FLASH_BLOCK` and a padded last block (assumption: the step pads the sequence)."""
        if seq <= FLASH_BLOCK:
            return cls.square(max(seq, 1))
        return cls.square(next((b for b in range(FLASH_BLOCK, MIN_BLOCK - 1, -1)
                                if seq % b == 0), FLASH_BLOCK))

    @classmethod
    def parse(cls, text: str, base: FlashBlocks | None = None) -> FlashBlocks:
        """``q=1024,kv=512,...,fused_bwd=0``: keys of :class:`FlashBlocks`, any subset, the rest
        as ``base`` has them (default: the class defaults; the train step's are
        :meth:`for_seq`'s; an inner compute block not given is its key block, as the splash
        kernel's ``None``). One-line InputError for an unknown key or a bad value."""
        allowed = ", ".join(f.name for f in fields(cls))
        got: dict[str, object] = {}
        for part in (p.strip() for p in text.split(",")):
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in {f.name for f in fields(cls)}:
                raise InputError(OPTION, None, part, f"expected key=value with a key of {allowed}")
            if key in got:
                raise InputError(OPTION, key, part, "given twice")
            if key == "fused_bwd":
                if value not in ("0", "1"):
                    raise InputError(OPTION, key, value, "must be 0 or 1")
                got[key] = value == "1"
            else:
                try:
                    got[key] = int(value)
                except ValueError:
                    raise InputError(OPTION, key, value, "must be a positive integer "
                                     "(tokens)") from None
        for outer, inner in (("kv", "kv_compute"), ("kv_dkv", "kv_dkv_compute")):
            if outer in got:
                got.setdefault(inner, got[outer])
        return replace(base, **got) if base is not None else cls(**got)

    def check_divides(self, seq: int, option: str = OPTION) -> None:
        """One-line InputError unless every block (clipped to ``seq``) divides the ``seq``-token
        sequence: the splash kernel refuses a query or key length its block does not divide
        (its ValueError "q_seq_len ... should be divisible by block_q")."""
        for n in _INTS:
            b = min(getattr(self, n), seq)
            if seq % b:
                raise InputError(option, n, getattr(self, n), f"must divide the sequence of "
                                 f"{seq} tokens (the splash kernel requires it)")

    def clipped(self, seq: int) -> FlashBlocks:
        """The blocks of a ``seq``-token sequence: each at most ``seq``."""
        return replace(self, **{n: min(getattr(self, n), seq) for n in _INTS})


def floor_sum(n: int, m: int, a: int, b: int) -> int:
    """sum of (a i + b) // m for i in 0 .. n-1 (n, m >= 1; a, b >= 0), in O(log) steps: the
    whole quotients of a and b come out as closed sums, and what is left counts lattice points
    under a line, which swapping the axes turns into the same sum with (m, a) as (a, m mod a)."""
    total = 0
    while True:
        if a >= m:
            total += n * (n - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        top = a * n + b
        if top < m:
            return total
        n, b, m, a = top // m, top % m, a, m


def causal_tiles(seq: int, bq: int, bk: int) -> int:
    """(query block, key block) pairs of causal self-attention over ``seq`` tokens that are not
    entirely above the diagonal: query block i (rows i bq .. its last row r_i) meets the key
    blocks whose first key j bk <= r_i, so min(nk, r_i // bk + 1) of them (exact count). Every
    block but the last ends inside the sequence (r_i = (i + 1) bq - 1 < seq, so fewer than nk);
    the last meets all nk: (nq - 1) + floor_sum(nq - 1, bk, bq, bq - 1) + nk, in O(log) steps
    however long the sequence."""
    nq, nk = -(-seq // bq), -(-seq // bk)
    return (nq - 1) + floor_sum(nq - 1, bk, bq, bq - 1) + nk


def tiling(seq: int, kv: int, bq: int, bk: int, causal: bool) -> tuple[int, int, int, int]:
    """(bq, bk, tiles, key blocks) of ``seq`` queries over ``kv`` keys, the blocks clipped to the
    lengths: causal self-attention runs :func:`causal_tiles` of the nq x nk tiles."""
    bq, bk = min(bq, seq), min(bk, kv)
    nq, nk = -(-seq // bq), -(-kv // bk)
    tiles = causal_tiles(seq, bq, bk) if causal and seq == kv else nq * nk
    return bq, bk, tiles, nk


__all__ = ["FlashBlocks", "FLASH_BLOCK", "MIN_BLOCK", "causal_tiles", "floor_sum", "tiling"]

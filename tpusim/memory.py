"""Tiling into SRAM and the bytes each stream moves: HBM (compulsory + re-fetches) and SRAM.

A GEMM layer is m x k (input, streamed from the activation buffer) times k x n (weights, staged
through the weight buffer), accumulated in the output buffer (accumulators). These loop orders at
the SRAM level are costed and the simulator keeps the one that finishes first:

* weights outer: for each column strip of weights (k x cols) that stays in the weight buffer,
  stream all m rows; the input is re-read from HBM once per strip unless it fits its buffer.
* inputs outer: for each chunk of m rows that stays in the input buffer, run every weight tile;
  weights are re-read from HBM once per chunk unless the layer's weights fit their buffer.
* output stationary (what a compiler does for a long-k GEMM such as a weight gradient): a block
  of fp32 partial sums stays in the accumulators while all of k streams past it, so the input
  is re-read once per block column and the weights once per block row; it takes the place of
  inputs outer where it moves fewer HBM bytes (:func:`output_stationary_passes`).

Chunks of m are bounded by the accumulators, which hold one chunk's partial sums for a column
strip while the k folds accumulate. Double-buffered buffers give half their capacity to the tile
in use. Activations move between layers on chip when they fit (see :func:`plan_residency`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ChipConfig
from .errors import InputError
from .formats import Format
from .workload import Layer


@dataclass(frozen=True)
class Traffic:
    """Bytes one layer instance moves, by stream. HBM writes are outputs only."""

    hbm_weight_bytes: float = 0.0
    hbm_input_bytes: float = 0.0
    hbm_output_bytes: float = 0.0
    sram_read_bytes: float = 0.0
    sram_write_bytes: float = 0.0
    sram_input_bytes: float = 0.0   # SRAM traffic of each buffer, for energy by buffer size
    sram_weight_bytes: float = 0.0
    sram_output_bytes: float = 0.0
    weight_passes: int = 1     # times the weights were read from HBM
    input_passes: int = 1      # times the input was read from HBM
    note: str = ""

    @property
    def hbm_read_bytes(self) -> float:
        return self.hbm_weight_bytes + self.hbm_input_bytes

    @property
    def hbm_write_bytes(self) -> float:
        return self.hbm_output_bytes

    @property
    def hbm_total_bytes(self) -> float:
        return self.hbm_read_bytes + self.hbm_write_bytes


def _kib(x: float) -> float:
    return x * 1024


def operands_fit(layer: Layer, chip: ChipConfig, fmt: Format) -> bool:
    """Each operand of one instance of GEMM ``layer`` fits its whole buffer at once: the input
    and the weights at the layer's format, the output as its partial sums at the accumulator
    width (the bytes :func:`gemm_traffic_options` compares with the buffers)."""
    s, b = chip.memory.sram, fmt.bytes_per_element
    return (layer.in_elements * b <= _kib(s.input_kib)
            and layer.weight_elements * b <= _kib(s.weight_kib)
            and layer.out_elements * fmt.accumulator_bytes <= _kib(s.output_kib))


def double_buffered(chip: ChipConfig, layer: Layer, fmt: Format) -> bool:
    """Whether GEMM ``layer`` runs double-buffered on ``chip`` (one core's part on one core)."""
    db = chip.memory.sram.double_buffered
    if db != "auto":
        return db
    # auto: a layer whose operands all fit their buffers has no next block to prefetch (one
    # load, compute, one store), so it runs serially; a larger one is pipelined block by block,
    # as Pallas/XLA double-buffer their HBM->VMEM copies (JAX docs, "TPU Pipelining",
    # docs.jax.dev/en/latest/pallas/tpu/pipelining.html; pallas.tpu.BufferedRef).
    return not operands_fit(layer, chip, fmt)


_BUFFERED: dict[int, tuple[ChipConfig, dict[bool, ChipConfig]]] = {}


def with_double_buffered(chip: ChipConfig, db: bool) -> ChipConfig:
    """``chip`` with ``memory.sram.double_buffered`` set to ``db`` (itself unless it is auto;
    memoised per chip object, as :func:`tpusim.cores.core_chip`)."""
    if chip.memory.sram.double_buffered != "auto":
        return chip
    hit = _BUFFERED.get(id(chip))
    if hit is None or hit[0] is not chip:
        if len(_BUFFERED) > 256:
            _BUFFERED.clear()
        hit = _BUFFERED[id(chip)] = (chip, {})
    out = hit[1].get(db)
    if out is None:
        s = chip.memory.sram
        out = hit[1][db] = chip.model_copy(update={"memory": chip.memory.model_copy(
            update={"sram": s.model_copy(update={"double_buffered": db})})})
    return out


def check_tile_fits(chip: ChipConfig, fmt: Format, source: str | None = None) -> None:
    """One stationary tile (double-buffered when configured, or when auto may pipeline a
    layer) must fit each buffer."""
    r, c = chip.array.rows, chip.array.cols
    sram = chip.memory.sram
    db = 1 if sram.double_buffered is False else 2
    need = {
        "weight_kib": db * r * c * fmt.bytes_per_element,
        "input_kib": db * r * c * fmt.bytes_per_element,
        "output_kib": db * r * c * fmt.accumulator_bytes,
    }
    for field, nbytes in need.items():
        have = _kib(getattr(sram, field))
        if have < nbytes:
            what = {"weight_kib": "weight tiles", "input_kib": "input blocks",
                    "output_kib": "accumulator blocks"}[field]
            raise InputError(source or chip.name, f"memory.sram.{field}",
                             getattr(sram, field),
                             f"must hold {db} {r}x{c} {fmt.name} {what} "
                             f"({nbytes / 1024:g} KiB) to run a tile"
                             + (" double-buffered" if db == 2 else ""))


def gemm_traffic_options(layer: Layer, chip: ChipConfig, fmt: Format, input_resident: bool,
                         output_resident: bool, weights_cached: bool = False) -> list[Traffic]:
    """Bytes moved by one instance of a GEMM layer (all its groups), for each SRAM loop order
    (weights outer; inputs outer or output stationary, whichever moves fewer HBM bytes). The
    simulator keeps the order that finishes first.

    ``weights_cached``: the layer's weights stay in the weight buffer across inferences
    (``memory.sram.weights_persistent``), so no HBM weight traffic.
    """
    r, c, arrays = chip.array.rows, chip.array.cols, chip.array.count
    sram = chip.memory.sram
    half = 0.5 if double_buffered(chip, layer, fmt) else 1.0
    b, b_acc = fmt.bytes_per_element, fmt.accumulator_bytes
    g = layer.groups
    m_stream = layer.m * layer.shared_weights   # rows through one weight set
    k, n = layer.k, layer.n
    kf, nf = math.ceil(k / r), math.ceil(n / c)

    in_bytes = layer.in_elements * b            # raw tensor, before im2col
    w_bytes = layer.weight_elements * b
    out_bytes = layer.out_elements * b
    cap_in, cap_w, cap_out = _kib(sram.input_kib), _kib(sram.weight_kib), _kib(sram.output_kib)

    # Rows of one m-chunk: partial sums of a column strip on every array fit the accumulators
    # (only needed when k is split into several folds).
    if kf > 1:
        acc_rows = max(1, int(cap_out * half // (min(nf, arrays) * c * b_acc)))
    else:
        acc_rows = m_stream
    per_row_in = in_bytes / max(1, g * m_stream)  # input bytes per streamed row (one group)
    in_rows = max(1, int(cap_in * half // max(per_row_in * g * 1.0, 1e-9)))

    # weights outer: a column strip of weights stays while every m-chunk streams past it
    chunks_wo = math.ceil(m_stream / min(acc_rows, m_stream))
    strip = k * c * b * g
    w_pass_wo = 1 if (strip <= cap_w * half or chunks_wo == 1) else chunks_wo
    i_pass_wo = 1 if (in_bytes <= cap_in * half or nf == 1) else nf
    # inputs outer: an m-chunk stays while every weight tile streams past it
    chunks_io = math.ceil(m_stream / min(acc_rows, in_rows, m_stream))
    w_pass_io = 1 if (w_bytes <= cap_w * half or chunks_io == 1) else chunks_io
    second = (w_pass_io, 1, chunks_io)
    # output stationary: kept instead of inputs outer when it moves fewer HBM bytes
    w_eff = 0.0 if weights_cached else w_bytes
    i_eff = 0.0 if input_resident else in_bytes
    os_order = output_stationary_passes(
        m_stream, nf, c, r, b, b_acc, cap_in * half, cap_w * half, cap_out * half,
        in_bytes <= cap_in * half, w_bytes <= cap_w * half, w_eff, i_eff)
    if w_eff * os_order[0] + i_eff * os_order[1] < w_eff * w_pass_io + i_eff * 1:
        second = os_order
    orders = [(w_pass_wo, i_pass_wo, chunks_wo)]
    if second != orders[0]:
        orders.append(second)

    out = []
    for w_pass, i_pass, chunks in orders:
        note = ""
        if weights_cached:
            w_pass = 1
        elif w_pass > 1:
            note = (f"weights re-fetched {w_pass}x: {w_bytes / 2**20:.3g} MiB exceed the "
                    f"{sram.weight_kib / 1024:g} MiB weight buffer")
        if i_pass > 1 and not input_resident:
            note = (f"input re-fetched {i_pass}x: {in_bytes / 2**20:.3g} MiB exceed the "
                    f"{sram.input_kib / 1024:g} MiB input buffer")
        w_hbm = 0.0 if weights_cached else w_bytes * w_pass
        in_hbm = 0.0 if input_resident else in_bytes * i_pass
        out_hbm = 0.0 if output_resident else out_bytes
        out.append(_with_sram(chip, layer, fmt, w_hbm, in_hbm, out_hbm, w_pass,
                              0 if input_resident else i_pass, chunks, note))
    return out


def output_stationary_passes(m_stream: int, nf: int, c: int, r: int, b: float, b_acc: float,
                             cap_in: float, cap_w: float, cap_out: float, in_fits: bool,
                             w_fits: bool, w_eff: float, i_eff: float) -> tuple[int, int, int]:
    """(weight passes, input passes, m-chunks) of the output-stationary order: an output block
    of ``rows`` x ``j * c`` fp32 partial sums stays in the accumulators (the tile a compiler keeps
    in VMEM) while all k streams past it, one ``r``-deep slice of each operand at a time, so the
    input is read once per block column (``ceil(nf / j)``) and the weights once per block row
    (``ceil(m / rows)``), each once if it fits its buffer. ``cap_*`` are the usable bytes.

    Assumption: a group's blocks run one after another, so a block belongs to one group. The
    HBM bytes ``w_eff * passes + i_eff * passes`` are least for a square block (sqrt(A) on a
    side for A accumulator elements); the block widths tried are the multiples of ``c`` on
    either side of sqrt(A), the widest that holds all of m and all of n, the fewest bytes kept.
    """
    acc = cap_out // b_acc                       # accumulator elements (>= r * c: tile check)
    row_cap = max(1, int(cap_in // (r * b)))     # rows whose r-deep input slice fits
    col_cap = max(1, int(cap_w // (r * b * c)))  # column strips whose r-deep slice fits
    most = max(1, min(nf, col_cap, int(acc // c)))
    side = math.sqrt(acc) / c
    best = None
    for j in (math.floor(side), math.ceil(side), int(acc // (m_stream * c)), most):
        j = max(1, min(j, most))
        rows = max(1, min(m_stream, int(acc // (j * c)), row_cap))
        w_pass = 1 if w_fits else math.ceil(m_stream / rows)
        i_pass = 1 if in_fits else math.ceil(nf / j)
        cost = w_eff * w_pass + i_eff * i_pass
        if best is None or cost < best[0]:
            best = (cost, (w_pass, i_pass, math.ceil(m_stream / rows)))
    return best[1]


def _with_sram(chip: ChipConfig, layer: Layer, fmt: Format, w_hbm: float, in_hbm: float,
               out_hbm: float, w_pass: int, i_pass: int, chunks: int, note: str) -> Traffic:
    """Add SRAM traffic. The streamed operand is re-read once per fold of the other dimension;
    partial sums are written once per k fold and read back as often."""
    r, c = chip.array.rows, chip.array.cols
    b, b_acc = fmt.bytes_per_element, fmt.accumulator_bytes
    g, m_stream, k, n = layer.groups, layer.m * layer.shared_weights, layer.k, layer.n
    kf, nf = math.ceil(k / r), math.ceil(n / c)
    df = chip.array.dataflow
    mk, kn, mn = m_stream * k * b * g, k * n * b * g, m_stream * n * g
    if df == "ws":
        in_reads, w_reads = mk * nf, kn * chunks
    elif df == "is":
        in_reads, w_reads = mk, kn * math.ceil(m_stream / c)
    else:  # os
        in_reads, w_reads = mk * nf, kn * math.ceil(m_stream / r)
    if df == "os":  # outputs accumulate inside the PEs
        acc_writes = acc_reads = 0.0
    else:
        acc_writes, acc_reads = mn * b_acc * kf, mn * b_acc * kf
    out_write = mn * b                           # finished outputs into the activation buffer
    return Traffic(hbm_weight_bytes=w_hbm, hbm_input_bytes=in_hbm, hbm_output_bytes=out_hbm,
                   sram_read_bytes=in_reads + w_reads + acc_reads + out_hbm,
                   sram_write_bytes=out_write + acc_writes + in_hbm + w_hbm,
                   sram_input_bytes=in_reads + out_write + in_hbm + out_hbm,
                   sram_weight_bytes=w_reads + w_hbm, sram_output_bytes=acc_writes + acc_reads,
                   weight_passes=w_pass, input_passes=i_pass, note=note)


def plan_weight_cache(layers: list[Layer], chip: ChipConfig, fmts: list[Format]) -> list[bool]:
    """Which rows keep their weights on chip across inferences.

    Only with ``memory.sram.weights_persistent`` (the Edge TPU compiler caches parameters in its
    on-chip SRAM): static weights are cached in trace order while they fit, leaving room for
    the double-buffered tiles the other layers stream through; the rest stream every inference.
    """
    sram = chip.memory.sram
    kept = [l.kind == "gemm" and l.hbm is not None and "w" not in l.hbm for l in layers]
    if not sram.weights_persistent:
        return kept     # a kernel row's second operand stays in VMEM across its loop (``hbm``)
    tile = max((chip.array.rows * chip.array.cols * f.bytes_per_element for f in fmts),
               default=0)
    free = _kib(sram.weight_kib) - 2 * tile
    out = []
    for layer, fmt in zip(layers, fmts):
        need = layer.weight_elements * fmt.bytes_per_element * layer.count
        ok = layer.kind == "gemm" and layer.weights == "static" and need <= free
        if ok:
            free -= need
        out.append(ok or kept[len(out)])
    return out


def vector_traffic(layer: Layer, fmt: Format, input_resident: bool,
                   output_resident: bool) -> Traffic:
    """A vector op reads its input and writes its output once (fused ops move nothing)."""
    if layer.fused:
        return Traffic()
    b = fmt.bytes_per_element
    in_bytes, out_bytes = layer.in_elements * b, layer.out_elements * b
    in_hbm = 0.0 if input_resident else in_bytes
    out_hbm = 0.0 if output_resident else out_bytes
    return Traffic(hbm_input_bytes=in_hbm, hbm_output_bytes=out_hbm,
                   sram_read_bytes=in_bytes + out_hbm, sram_write_bytes=out_bytes + in_hbm,
                   sram_input_bytes=in_bytes + out_bytes + in_hbm + out_hbm)


@dataclass(frozen=True)
class Residency:
    """Where one row's activations live, per instance of the row (``count`` runs in a row)."""

    first_input: bool   # the first instance's input: the previous row's output stayed on chip
    inner: bool         # outputs of all but the last instance (the next instance's inputs)
    last_output: bool   # the last instance's output, which the next row reads
    inner_input: bool | None = None   # inputs of all but the first instance; None: ``inner``

    def instances(self, count: int) -> list[tuple[int, bool, bool]]:
        """(how many instances, input on chip, output stays) for the distinct instances."""
        if count == 1:
            return [(1, self.first_input, self.last_output)]
        i = self.inner if self.inner_input is None else self.inner_input
        out = [(1, self.first_input, self.inner)]
        if count > 2:
            out.append((count - 2, i, self.inner))
        out.append((1, i, self.last_output))
        return out


def plan_residency(layers: list[Layer], chip: ChipConfig, fmts: list[Format]) -> list[Residency]:
    """Where each row's activations live.

    Assumptions: rows form a chain and a row with ``count`` repeats back to back (instance i
    consumes instance i-1); the first input and the last output live in HBM; an output stays on
    chip when it and its producer's input fit the activation buffer together; a dynamic second
    operand (K/V, another activation) is always read from HBM; fused rows pass residency through.
    A row with ``hbm`` set (a fused kernel's tile row) reads its input and writes its output
    through HBM on every instance exactly when ``hbm`` names them, and keeps them on chip
    otherwise; the row after it sees that output residency.
    """
    cap = _kib(chip.memory.sram.input_kib)
    out: list[Residency] = []
    prev_resident = False
    last = max((i for i, l in enumerate(layers) if not l.fused), default=-1)
    for i, (layer, fmt) in enumerate(zip(layers, fmts)):
        if layer.fused:
            out.append(Residency(prev_resident, prev_resident, prev_resident))
            continue
        if layer.hbm is not None:
            i_on, o_on = "i" not in layer.hbm, "o" not in layer.hbm
            out.append(Residency(i_on, o_on, o_on, inner_input=i_on))
            prev_resident = o_on
            continue
        fits = (layer.in_elements + layer.out_elements) * fmt.bytes_per_element <= cap
        out.append(Residency(prev_resident, fits, fits and i != last))
        prev_resident = fits and i != last
    return out

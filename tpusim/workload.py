"""Workloads: a sequence of immutable layer records, and the one place a conv becomes a GEMM.

Every layer is either a GEMM (``kind == "gemm"``: ``groups`` independent products of an m x k
input by a k x n operand) or a vector op (``kind == "vector"``: ``elements`` x ``ops_per_element``
element operations). A trace row with ``count`` stays one layer; its numbers are per instance.
Importers (:mod:`tpusim.importers`) are the only code that knows file formats; they all build
layers through :func:`make_layer`, which validates a row and lowers it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._input import MAX_DIM, MAX_DIM_TEXT, suggest
from .errors import InputError
from .formats import FORMAT_NAMES, datapath_format, get_format
from .sparsity import parse_nm

GEMM_OPS = {"matmul": "matmul", "gemm": "matmul", "linear": "matmul", "fc": "matmul",
            "conv2d": "conv2d", "conv": "conv2d"}
# Vector ops and the element operations each costs per element (assumption: counts of adds,
# multiplies, exponentials and divides in a straightforward implementation).
VECTOR_OPS: dict[str, float] = {
    "elementwise": 1, "add": 1, "mul": 1, "sub": 1, "div": 1, "relu": 1, "clip": 1,
    "relu6": 1, "quantize": 2, "dequantize": 2, "requantize": 3, "residual": 1, "scale": 1,
    "batchnorm": 2, "bias": 1, "sigmoid": 4, "tanh": 4, "silu": 5, "swish": 5, "gelu": 8,
    "hardswish": 4, "softmax": 5, "layernorm": 8, "rmsnorm": 6, "pool": 1, "maxpool": 1,
    "avgpool": 1, "globalpool": 1, "reduce": 1, "transpose": 1, "concat": 1, "embedding": 1,
    "rope": 6, "lstm_cell": 10, "vector": 1, "layer_norm": 8, "leaky_relu": 2, "prelu": 2,
    "parametric_relu": 2, "elu": 4, "selu": 5, "binary_step": 1, "identity": 1,
    # a BNN's batchnorm + sign folded into one compare per output (FINN's threshold unit)
    "threshold": 1, "sign": 1,
}

TRACE_COLUMNS = (
    "name", "op", "count", "batch", "m", "k", "n", "weights",
    "in_h", "in_w", "in_c", "out_c", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w",
    "padding", "pad_h", "pad_w", "groups", "elements", "ops_per_element",
    "weight_dtype", "act_dtype", "fused", "sparsity", "density", "hbm", "continues",
)
HBM_STREAMS = "iwo"   # input, second operand (weights), output: the streams ``hbm`` can name


class TraceRow(BaseModel):
    """One row of a trace CSV, validated. Empty cells are ``None``."""

    # inf or nan ops per element would make every later number inf or nan: refuse them here.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    op: str
    count: int = Field(1, gt=0)
    batch: int | None = Field(None, gt=0)
    m: int | None = Field(None, gt=0)
    k: int | None = Field(None, gt=0)
    n: int | None = Field(None, gt=0)
    weights: Literal["static", "dynamic"] | None = None
    in_h: int | None = Field(None, gt=0)
    in_w: int | None = Field(None, gt=0)
    in_c: int | None = Field(None, gt=0)
    out_c: int | None = Field(None, gt=0)
    kernel_h: int | None = Field(None, gt=0)
    kernel_w: int | None = Field(None, gt=0)
    stride: int | None = Field(None, gt=0)
    stride_h: int | None = Field(None, gt=0)
    stride_w: int | None = Field(None, gt=0)
    padding: int | Literal["same", "valid"] | None = None
    pad_h: int | None = Field(None, ge=0)
    pad_w: int | None = Field(None, ge=0)
    groups: int | None = Field(None, gt=0)
    elements: int | None = Field(None, gt=0)
    ops_per_element: float | None = Field(None, gt=0)
    weight_dtype: str | None = None
    act_dtype: str | None = None
    fused: bool = False
    sparsity: str | None = None      # structured N:M weight pattern, e.g. "2:4"
    density: float | None = Field(None, gt=0, le=1)   # fraction of non-zero weights
    # Streams a fused kernel's row moves through HBM on every repeat ("none" or letters of
    # "iwo"); the others stay on chip across the kernel's loop. Empty: the residency plan decides.
    hbm: str | None = None
    # True: the row runs inside a kernel an earlier row launched (a ragged batch's further KV
    # lengths in one paged-attention call), so it pays no per-op fixed cost of its own.
    continues: bool = False

    @field_validator("hbm")
    @classmethod
    def _hbm(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().lower()
        if v == "none":
            return ""
        if not v or set(v) - set(HBM_STREAMS) or len(set(v)) != len(v):
            raise ValueError("must be 'none' or distinct letters of i (input), w (second "
                             "operand), o (output)")
        return "".join(c for c in HBM_STREAMS if c in v)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: str | None) -> str | None:
        if v is None:
            return None
        n, m = parse_nm(v)
        return f"{n}:{m}"

    @field_validator("count", "batch", "m", "k", "n", "in_h", "in_w", "in_c", "out_c", "kernel_h",
                     "kernel_w", "stride", "stride_h", "stride_w", "pad_h", "pad_w", "groups",
                     "elements", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        """Sizes are whole numbers up to 2**53 (assumption: float64 cost arithmetic is exact)."""
        if isinstance(v, bool):
            raise ValueError("expected an integer, not a boolean")
        if isinstance(v, str) and v.strip().isdigit() and len(v.strip()) > 16:
            v = int(v.strip())
        try:
            big = not isinstance(v, str) and v is not None and v > MAX_DIM
        except TypeError:
            big = False
        if big:
            raise ValueError(MAX_DIM_TEXT)
        return v

    @field_validator("op")
    @classmethod
    def _op(cls, v: str) -> str:
        v = v.strip().lower()
        ops = sorted(set(GEMM_OPS) | set(VECTOR_OPS))
        if v not in GEMM_OPS and v not in VECTOR_OPS:
            raise ValueError(f"unknown op{suggest(v, ops)}; allowed ops: " + "|".join(ops))
        return v

    @field_validator("weight_dtype", "act_dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return get_format(v).name
        except InputError:
            raise ValueError(f"unknown format{suggest(v.strip().lower(), FORMAT_NAMES)}; "
                             "allowed: " + "|".join(FORMAT_NAMES)) from None

    @field_validator("padding", mode="before")
    @classmethod
    def _padding(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)
        if isinstance(v, bool) or (isinstance(v, int) and v < 0) or (
                isinstance(v, str) and v.strip().lower() not in ("same", "valid")):
            raise ValueError("must be an integer >= 0, 'same' or 'valid'")
        return v.strip().lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _by_op(self) -> "TraceRow":
        op = GEMM_OPS.get(self.op)
        if op == "matmul":
            need = ("m", "k", "n")
        elif op == "conv2d":
            need = ("in_h", "in_w", "in_c", "out_c", "kernel_h", "kernel_w")
        else:
            need = ("elements",)
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"op {self.op} needs a value in column(s) {', '.join(missing)}")
        if (self.sparsity or self.density is not None) and (
                op is None or self.weights == "dynamic"):
            raise ValueError("sparsity/density apply to matmul/conv rows with static weights "
                             f"only, not to op {self.op}"
                             + (" with dynamic weights" if op else ""))
        return self


@dataclass(frozen=True)
class Layer:
    """A validated, lowered layer. GEMM fields are one group's product; ``groups`` of them run."""

    name: str
    op: str                      # as written in the trace (lower case)
    kind: Literal["gemm", "vector"]
    count: int = 1
    m: int = 0
    k: int = 0
    n: int = 0
    groups: int = 1              # independent GEMMs (conv groups x batch of a dynamic matmul)
    weights: Literal["static", "dynamic"] = "static"
    elements: int = 0
    ops_per_element: float = 0.0
    weight_dtype: str | None = None
    act_dtype: str | None = None
    fused: bool = False
    in_elements: int = 0         # input activation tensor (before im2col)
    out_elements: int = 0        # output activation tensor
    weight_elements: int = 0     # parameter tensor (static weights) or second operand (dynamic)
    shared_weights: int = 1      # instances sharing one weight tile set (batched static matmul)
    line: int | None = None      # source line, for messages
    sparsity: str | None = None  # structured "N:M" weight pattern (tpusim.sparsity)
    density: float | None = None  # fraction of non-zero weights (unstructured)
    hbm: str | None = None       # streams through HBM every repeat (subset of "iwo"); None: plan
    continues: bool = False      # inside an earlier row's kernel: no per-op fixed cost

    @property
    def macs(self) -> int:
        """MACs of one instance (all groups and batch)."""
        return self.groups * self.shared_weights * self.m * self.k * self.n

    @property
    def vector_ops(self) -> float:
        return self.elements * self.ops_per_element

    @property
    def format(self) -> str | None:
        return datapath_format(self.weight_dtype, self.act_dtype)


@dataclass(frozen=True)
class Workload:
    """An ordered tuple of :class:`Layer` records run one after another, as a trace lists them.

    ``source`` is the file it came from (error messages name it); ``notes`` carry an
    importer's remarks (e.g. ONNX nodes it skipped). ``macs`` counts every instance (x count).
    """

    name: str
    layers: tuple[Layer, ...]
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    # What an importer knows beyond the layers (ONNX: ``onnx_coverage``); not part of equality.
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def macs(self) -> int:
        return sum(l.macs * l.count for l in self.layers)


def _conv_out(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int) -> int:
    return (size + pad_lo + pad_hi - kernel) // stride + 1


def lower_conv(batch: int, in_h: int, in_w: int, in_c: int, out_c: int, kernel_h: int,
               kernel_w: int, stride_h: int, stride_w: int, pad_h: int | str, pad_w: int | str,
               groups: int) -> dict[str, int]:
    """im2col lowering of a conv2d to ``groups`` GEMMs: m = batch x output pixels,
    k = kernel_h x kernel_w x in_c / groups, n = out_c / groups.

    ``pad_*`` is the padding on each side, or ``"same"``/``"valid"`` (TF semantics: "same" gives
    ceil(in / stride) outputs, splitting the padding low-side first).
    Raises ValueError with a message naming the rule that failed.
    """
    if in_c % groups or out_c % groups:
        raise ValueError(f"groups={groups} must divide in_c={in_c} and out_c={out_c}")
    dims = []
    for size, kern, stride, pad, axis in ((in_h, kernel_h, stride_h, pad_h, "h"),
                                           (in_w, kernel_w, stride_w, pad_w, "w")):
        if pad == "same":
            out = -(-size // stride)
            total = max((out - 1) * stride + kern - size, 0)
            lo, hi = total // 2, total - total // 2
        elif pad == "valid":
            lo = hi = 0
        else:
            lo = hi = int(pad)
        if size + lo + hi < kern:
            raise ValueError(f"kernel_{axis}={kern} exceeds the padded input "
                             f"in_{axis}+pad={size + lo + hi}")
        dims.append(_conv_out(size, kern, stride, lo, hi))
    out_h, out_w = dims
    return {"m": batch * out_h * out_w, "k": kernel_h * kernel_w * (in_c // groups),
            "n": out_c // groups, "out_h": out_h, "out_w": out_w}


def check_layer_size(layer: Layer, source: str | None, where: str | None,
                     why: str = "lowered") -> Layer:
    """``layer`` if its GEMM dims, instances and elements are at most 2**53, else InputError."""
    for field_name, v in (("m", layer.m), ("k", layer.k), ("n", layer.n),
                          ("instances", layer.groups * layer.shared_weights),
                          ("elements", layer.elements), ("count", layer.count)):
        if v > MAX_DIM:
            raise InputError(source, where, message=f"layer {layer.name!r}: {why} {field_name} = "
                             f"{v} is too large; {MAX_DIM_TEXT}")
    return layer


def check_first_launches(layers: list[Layer] | tuple[Layer, ...], source: str | None) -> None:
    """A trace's first row cannot ``continue``: no earlier row launched a kernel for it to run
    inside (README). Any later row may (a fused kernel mixes GEMM and vector rows, and a
    ragged batch's attention groups each continue the first group's kernel, not the row just
    before), since the first row always launches one."""
    if layers and layers[0].continues:
        first = layers[0]
        where = ", ".join(p for p in (f"line {first.line}" if first.line is not None else None,
                                      "column continues") if p)
        raise InputError(source, where, message=f"row {first.name!r}: the first row has no "
                         "kernel to continue (continues=true needs an earlier row's kernel)")


def make_layer(row: dict[str, Any] | TraceRow, source: str = "", line: int | None = None) -> Layer:
    """Validate one trace row (dict of column -> value, empty cells None) and lower it."""
    where = f"line {line}" if line is not None else None
    return check_layer_size(_make_layer(row, source, line, where), source, where)


def _make_layer(row: dict[str, Any] | TraceRow, source: str, line: int | None,
                where: str | None) -> Layer:
    if not isinstance(row, TraceRow):
        try:
            row = TraceRow.model_validate(row)
        except ValidationError as err:
            e = err.errors()[0]
            # The column is the first part of the path; the rest names a union branch.
            col = str(e["loc"][0]) if e.get("loc") else ""
            msg = e.get("msg", "invalid").removeprefix("Value error, ")
            here = ", ".join(p for p in (where, f"column {col}" if col else None) if p) or None
            if e.get("type") == "extra_forbidden":
                raise InputError(source, here, message="unknown column; allowed columns: "
                                 + ", ".join(TRACE_COLUMNS)) from None
            value = e.get("input") if col else None
            if e.get("type") == "bool_parsing":   # pydantic's words name no allowed value
                msg = "Expected true or false (also 1/0, yes/no, on/off, t/f, y/n)"
            raise InputError(source, here, value if value is not None else None,
                             msg[0].lower() + msg[1:], message=None if value is not None
                             and col else msg) from None
    op = GEMM_OPS.get(row.op)
    common = dict(name=row.name, op=row.op, count=row.count, weight_dtype=row.weight_dtype,
                  act_dtype=row.act_dtype, fused=row.fused, line=line, hbm=row.hbm,
                  continues=row.continues)
    if op is not None:
        common.update(sparsity=row.sparsity, density=row.density)
    if op == "matmul":
        batch = row.batch or 1
        dynamic = row.weights == "dynamic"
        # A static k x n operand is one parameter shared by every batch instance: the batch runs
        # as a longer stream through the same weights. Dynamic operands differ per instance.
        return Layer(kind="gemm", m=row.m, k=row.k, n=row.n,
                     groups=batch if dynamic else 1, shared_weights=1 if dynamic else batch,
                     weights="dynamic" if dynamic else "static",
                     in_elements=batch * row.m * row.k, out_elements=batch * row.m * row.n,
                     weight_elements=(batch if dynamic else 1) * row.k * row.n, **common)
    if op == "conv2d":
        batch = row.batch or 1
        groups = row.groups or 1
        sh = row.stride_h or row.stride or 1
        sw = row.stride_w or row.stride or 1
        pad = row.padding if row.padding is not None else 0
        ph = row.pad_h if row.pad_h is not None else pad
        pw = row.pad_w if row.pad_w is not None else pad
        try:
            g = lower_conv(batch, row.in_h, row.in_w, row.in_c, row.out_c, row.kernel_h,
                           row.kernel_w, sh, sw, ph, pw, groups)
        except ValueError as exc:
            raise InputError(source, where, message=f"conv {row.name!r}: {exc}") from None
        return Layer(kind="gemm", m=g["m"], k=g["k"], n=g["n"], groups=groups,
                     weights=row.weights or "static",
                     in_elements=batch * row.in_h * row.in_w * row.in_c,
                     out_elements=batch * g["out_h"] * g["out_w"] * row.out_c,
                     weight_elements=row.kernel_h * row.kernel_w * (row.in_c // groups)
                     * row.out_c, **common)
    ope = row.ops_per_element if row.ops_per_element is not None else VECTOR_OPS[row.op]
    # n on a vector row: the length of the axis its rows run along (a norm's reduced last axis)
    return Layer(kind="vector", elements=row.elements, ops_per_element=ope, n=row.n or 0,
                 in_elements=row.elements, out_elements=row.elements, **common)

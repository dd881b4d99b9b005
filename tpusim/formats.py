"""Numeric formats of a datapath: width in memory, accumulator, and the cost of one MAC.

A format names what the multiplier sees (``int8``, ``bf16`` ...) and what the products are summed
in (its accumulator). Memory traffic uses ``bytes_per_element``; partial sums use the accumulator's
width. Energy per MAC is anchored at 45 nm on Horowitz, ISSCC 2014 (multiply + accumulator add),
with float multipliers scaled by their (M+1)^2 full-adder count (Dean 2020) where Horowitz gives no
figure; :mod:`tpusim.energy` scales it to the chip's node, :mod:`tpusim.area` turns the same
datapath into square micrometres and :mod:`tpusim.numerics` computes with it bit-accurately.

Every published number the models use is a :class:`Constant` (value, unit, source) in
:mod:`tpusim.tables`, and a format's MAC energy is looked up there each time it is asked for
(:attr:`Format.mac_pj_45nm`), so a user can see, test or replace it in one place
(``tpusim.tables.use``).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import tables
from .errors import InputError
from .tables import CONSTANTS, Constant  # noqa: F401  (re-exported: the cited numbers)


@dataclass(frozen=True)
class Format:
    """One datapath format. ``bits`` is the storage width of one element.

    ``kind`` is ``int`` (two's complement, symmetric quantization), ``float`` (IEEE-style sign,
    exponent, mantissa with a hidden bit), ``binary`` (+-1 stored as one bit: the product is an
    XNOR and the sum a popcount, as binarized networks compute) or ``ternary`` ({-1, 0, +1} in two
    bits, a sign and a non-zero mask: an XNOR masked by the AND of both masks, two popcounts).
    """

    name: str
    bits: int
    kind: str  # "int", "float", "binary" or "ternary"
    exponent_bits: int
    mantissa_bits: int  # explicit mantissa bits (floats) or magnitude bits (ints)
    accumulator: str  # name of the accumulator format
    accumulator_bits: int

    @property
    def mac_pj_45nm(self) -> float:
        """One multiply + one accumulator add at 45 nm, pJ, from the current table."""
        return tables.current().mac_pj(self.name)

    @property
    def bytes_per_element(self) -> float:
        return self.bits / 8

    @property
    def accumulator_bytes(self) -> float:
        return self.accumulator_bits / 8

    @property
    def significand_bits(self) -> int:
        """Mantissa plus the hidden bit (floats); magnitude plus sign (ints); 1 for binary and
        ternary (one sign bit multiplies; ternary's mask only gates it)."""
        if self.kind == "float":
            return self.mantissa_bits + 1
        if self.kind == "int":
            return self.bits
        return 1

    @property
    def multiplier_full_adders(self) -> int:
        """Full adders (or cells) in the multiplier: (M+1)^2 for floats, n^2 for ints (Dean 2020).

        Binary and ternary: one cell, the XNOR gate that forms the product's sign
        (:mod:`tpusim.area` sizes it as an XNOR, not as a full adder; ternary adds its mask gate)."""
        if self.kind == "float":
            return (self.mantissa_bits + 1) ** 2
        if self.kind == "int":
            return self.bits ** 2
        return 1


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("int8", 8, "int", 0, 7, "int32", 32),
    Format("int4", 4, "int", 0, 3, "int32", 32),
    Format("bf16", 16, "float", 8, 7, "fp32", 32),
    Format("fp16", 16, "float", 5, 10, "fp32", 32),
    Format("fp32", 32, "float", 8, 23, "fp32", 32),
    # fp8 products accumulate in fp32 (assumption: wide accumulator; energy in tables.py).
    Format("fp8_e4m3", 8, "float", 4, 3, "fp32", 32),
    Format("fp8_e5m2", 8, "float", 5, 2, "fp32", 32),
    # binary (+-1): XNOR + popcount, summed in int32.
    Format("binary", 1, "binary", 0, 0, "int32", 32),
    # ternary ({-1, 0, +1}, TWN, Li & Liu 2016): sign + mask bits, popcounts summed in int32.
    Format("ternary", 2, "ternary", 0, 1, "int32", 32),
)}

# Formats computed with XNOR + popcount rather than a multiplier.
XNOR_KINDS = ("binary", "ternary")

FORMAT_NAMES = tuple(FORMATS)

# Accumulator formats, for their widths and split (sign/exponent/mantissa or integer bits).
ACCUMULATORS: dict[str, Format] = {
    "int32": Format("int32", 32, "int", 0, 31, "int32", 32),
    "fp32": FORMATS["fp32"],
}

# Trace dtype spellings accepted besides the canonical names.
_ALIASES = {"uint8": "int8", "i8": "int8", "u8": "int8", "int": "int8", "bfloat16": "bf16",
            "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
            "fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "e5m2": "fp8_e5m2", "uint4": "int4",
            "bool": "binary", "int1": "binary", "int2": "ternary", "tern": "ternary"}


def get_format(name: str, source: str | None = None, where: str | None = "format") -> Format:
    """The format called ``name`` (case-insensitive; ``bfloat16`` etc. accepted)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return FORMATS[key]
    except KeyError:
        from ._input import suggest
        raise InputError(source, where, name, f"unknown format{suggest(key, FORMAT_NAMES)}; "
                         "allowed: " + "|".join(FORMAT_NAMES)) from None


def accumulator_of(fmt: str | Format) -> Format:
    """The accumulator format of ``fmt`` (int32 for integers, binary and ternary; fp32 for
    floats)."""
    f = fmt if isinstance(fmt, Format) else get_format(fmt)
    return ACCUMULATORS[f.accumulator]


def _float_rank(f: Format) -> tuple[int, int]:
    return (f.mantissa_bits, f.exponent_bits)


def datapath_format(weight_dtype: str | None, act_dtype: str | None) -> str | None:
    """The format a layer runs in, from its operand dtypes; None when neither is given.

    Two integer (or binary/ternary) operands run in the wider integer format; if either is a float, the
    layer runs in the most precise float among them, an int operand being widened to bf16
    (weight-only quantization dequantizes on the fly).
    """
    fmts = [get_format(d) for d in (weight_dtype, act_dtype) if d]
    if not fmts:
        return None
    floats = [f for f in fmts if f.kind == "float"]
    if floats:
        best = max(floats, key=_float_rank)
        if len(floats) < len(fmts) and _float_rank(best) < _float_rank(FORMATS["bf16"]):
            best = FORMATS["bf16"]
        return best.name
    return max(fmts, key=lambda f: f.bits).name

"""A two-operand ONNX Einsum as the batched matmul it is: ``bhqd,bhkd->bhqk`` is, per (b, h),
a q x d by d x k product.

Every index of the equation is one of four kinds: in both operands and the output (a batch
index), in both but not the output (contracted: the matmul's k), in the first operand and the
output (its m) or in the second operand and the output (its n). MACs are the product of every
index's size, which is batch x m x k x n. What is not of that form (one operand, three or more,
an index repeated within an operand (a diagonal), an index summed within one operand, an
ellipsis) is left uncosted with the reason.
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import InputError


def einsum_dims(equation: str, a: tuple, b: tuple) -> tuple[tuple[int, int, int, int] | None,
                                                             str | None]:
    """((batch, m, k, n), None) of ``equation`` over operand shapes ``a`` and ``b``, or (None,
    why). Without ``->`` the output is the indices that appear once, in alphabetical order (the
    ONNX / numpy implicit mode). Sizes that disagree between the operands are a reason too (the
    caller turns it into an error: a valid model's shapes agree)."""
    eq = equation.replace(" ", "")
    if "..." in eq:
        return None, "Einsum with an ellipsis"
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None, f"Einsum of {len(terms)} operands (two are costed)"
    ta, tb = terms
    if not arrow:
        seen = ta + tb
        out = "".join(sorted(c for c in set(seen) if seen.count(c) == 1))
    if len(ta) != len(a) or len(tb) != len(b):
        return None, f"Einsum {eq!r} does not match operand ranks {len(a)} and {len(b)}"
    if len(set(ta)) != len(ta) or len(set(tb)) != len(tb):
        return None, f"Einsum {eq!r} repeats an index within an operand (a diagonal)"
    size: dict[str, int] = {}
    for term, shape in ((ta, a), (tb, b)):
        for c, d in zip(term, shape):
            if not isinstance(d, int):
                return None, f"Einsum index {c!r} has no known size"
            if size.setdefault(c, d) != d:
                return None, f"sizes differ: index {c!r} is {size[c]} and {d}"
    in_a, in_b, in_o = set(ta), set(tb), set(out)
    if (in_a ^ in_b) - in_o:
        return None, f"Einsum {eq!r} sums an index within one operand"

    def prod(letters) -> int:
        return math.prod(size[c] for c in letters)
    batch = prod(in_a & in_b & in_o)
    k = prod((in_a & in_b) - in_o)
    m, n = prod(in_a - in_b), prod(in_b - in_a)
    return (batch, m, k, n), None


def einsum_row(g, node, attrs, name: str) -> tuple[dict | None, str | None]:
    """A two-operand Einsum as a (batched) matmul (:mod:`.onnx_einsum`); a static operand is
    the weight, whichever side it is on (MACs do not depend on the order); ``g``: the
    importer's graph (shapes, dtypes, static tensors)."""
    if len(node.input) != 2:
        return None, f"Einsum of {len(node.input)} operands (two are costed)"
    eq = str(attrs.get("equation", ""))
    a_name, w_name = node.input
    lhs, arrow, out = eq.replace(" ", "").partition("->")
    if a_name in g.static and w_name not in g.static and lhs.count(",") == 1:
        first, second = lhs.split(",")
        a_name, w_name, eq = w_name, a_name, f"{second},{first}{arrow}{out}"
    a, b = g.shape(a_name), g.shape(w_name)
    if a is None or b is None:
        return None, f"shape of input {a_name if a is None else w_name!r} unknown after shape " \
                     "inference"
    dims, why = einsum_dims(eq, a, b)
    if dims is None:
        if why.startswith("sizes differ"):   # a valid model's do not: the --input-shape given
            raise InputError(g.src, f"node {name!r}", eq, f"{why}; check --input-shape")
        return None, why
    nb, m, k, n = dims
    row: dict[str, Any] = {"name": name, "op": "matmul", "weight_dtype": g.dtype(w_name),
                           "act_dtype": g.dtype(a_name), "m": m, "k": k, "n": n}
    if w_name in g.static:     # each batch index value has its own weight matrix
        row.update(weights="static", **({"count": nb} if nb > 1 else {}))
    else:
        row.update(weights="dynamic", **({"batch": nb} if nb > 1 else {}))
    return row, None


__all__ = ["einsum_dims", "einsum_row"]

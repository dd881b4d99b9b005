"""Layer names people know, for ONNX graphs whose node names say nothing (``n0 … n174``).

Exporters often number nodes (``n12``, ``node_3``, ``Conv_7``) or leave them empty, while the
weights keep the framework's names (``gpu_0/res2_0_branch2a_w_0``). A node whose own name is
generic is named, in order of preference:

1. after its output tensor, when that name is not generic either (as before names were
   derived);
2. after its first constant input (a weight or scale initialiser), less the prefix nearly
   every constant shares (``gpu_0/``) and a parameter suffix (``_w_0``, ``.weight``;
   ``_bn_s_0`` leaves ``_bn``): ``res2_0_branch2a``, ``res2_0_branch2a_bn``;
3. after the named layer its first input comes from, plus its op: ``res2_0_branch2a_bn/relu``
   (and the max-pool after that relu ``res2_0_branch2a_bn/maxpool``);
4. as it was.

A name a costed row already has gets ``_2``, ``_3`` ... so every row keeps its own name.
"""
from __future__ import annotations

import re
from collections import Counter

# numbered or empty names: n0, node_12, r3, 123 (and, below, an op's name + _number: Conv_7)
_GENERIC = re.compile(r"^(?:(?:n|node|nd|r|op|t|x|layer)?[_:/.-]?\d+|)$", re.I)
# parameter suffixes of weight names, longest first (Caffe2 _w_0, PyTorch .weight, TF /kernel)
_SUFFIX = re.compile(r"(?:[_.:/](?:w|b|s|weight|weights|bias|kernel|scale|gamma|beta|"
                     r"rm|riv|mean|var|running_mean|running_var)(?:[_:]\d+)?|[_:]0)$", re.I)


def generic(name: str, op: str = "") -> bool:
    """True for a name that only numbers a node (or is empty, or is its op plus a number)."""
    n = str(name or "")
    if _GENERIC.match(n):
        return True
    return bool(op) and re.fullmatch(re.escape(op) + r"_\d+", n, re.I) is not None


def _param_stem(name: str, prefix: str) -> str:
    stem = name[len(prefix):] if prefix and name.startswith(prefix) else name
    for _ in range(2):          # "_w_0" -> "_w" -> ""
        new = _SUFFIX.sub("", stem)
        if not new or new == stem:
            break
        stem = new
    return stem


class Namer:
    """Names nodes one by one, in graph order (:func:`name`)."""

    def __init__(self, model, static: set[str]):
        self.static = static
        params = [i for n in model.graph.node for i in list(n.input)[1:] if i in static]
        params += [t.name for t in model.graph.initializer]
        # the first path component nearly every parameter shares (gpu_0/): it says nothing
        heads = Counter(p[:p.find("/") + 1] for p in params if "/" in p)
        head, n = heads.most_common(1)[0] if heads else ("", 0)
        self.prefix = head if len(params) > 1 and n >= 0.9 * len(params) else ""
        self.by_output: dict[str, str] = {}
        self.root: dict[str, str] = {}     # tensor -> the named layer it comes from
        self.used: dict[str, int] = {}

    def name(self, node, idx: int) -> str:
        """The name of ``node`` (the ``idx``-th of the graph)."""
        op = node.op_type
        own = node.name or ""
        root = None
        if not generic(own, op):
            out = root = own
        else:
            out, root = self._derived(node, op)
            out = out or own or (node.output[0] if node.output else f"{op}_{idx}")
        for o in node.output:
            self.by_output[o] = out
            if root:
                self.root[o] = root
        return out

    def _derived(self, node, op: str) -> tuple[str | None, str | None]:
        """(name, the layer name later nodes fed by it are named after)."""
        outs = [o for o in node.output if o]
        if outs and not generic(outs[0], op):
            o = outs[0][len(self.prefix):] if self.prefix and outs[0].startswith(
                self.prefix) and len(outs[0]) > len(self.prefix) else outs[0]
            return o, o
        consts = [i for i in list(node.input)[1:] if i and i in self.static]
        if consts:
            stem = _param_stem(consts[0], self.prefix)
            if stem and not generic(stem):
                return stem, stem
        src = next((i for i in node.input if i), None)
        if src is not None and src in self.root:
            return f"{self.root[src]}/{op.lower()}", self.root[src]
        return None, None

    def unique(self, name: str) -> str:
        """``name``, or ``name_2``, ``name_3`` ... once it is taken (call for rows kept)."""
        k = self.used.get(name, 0) + 1
        self.used[name] = k
        return name if k == 1 else f"{name}_{k}"

"""ONNX LSTM and GRU nodes as the GEMMs and vector work they run.

Per direction and time step an LSTM multiplies the step's input by W (gates x hidden x input)
and the previous hidden state by R (gates x hidden x hidden), then runs the cell's gate
nonlinearities on batch x hidden elements. The input projection does not depend on the
recurrence, so it is one GEMM over every step (``seq x batch`` rows, as cuDNN and XLA batch it;
assumption); the recurrent one runs once per step and direction (``count``), each on the
``batch`` rows of its step. LSTM has 4 gates, GRU 3. The cell's element ops per hidden unit:
the trace's ``lstm_cell`` (10: three sigmoid gates, two tanhs, the state updates) for LSTM, 8
for GRU (assumption: two sigmoid gates, a tanh and the blends).
"""
from __future__ import annotations

from typing import Any

_GATES = {"LSTM": 4, "GRU": 3}
_CELL = {"LSTM": ("lstm_cell", None), "GRU": ("elementwise", 8)}


def recurrent_rows(g, node, attrs, name: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(rows, None) of an LSTM/GRU node, or (None, why); ``g``: the importer's graph."""
    op = node.op_type
    if len(node.input) < 3:
        return None, f"{op} has fewer inputs than expected"
    x_name, w_name, r_name = node.input[:3]
    x, w, r = g.shape(x_name), g.shape(w_name), g.shape(r_name)
    if x is None or w is None or r is None or len(x) != 3 or len(w) != 3 or len(r) != 3:
        return None, f"{op} input shapes unknown after shape inference"
    seq, batch, feat = (x[1], x[0], x[2]) if attrs.get("layout", 0) == 1 else x
    dirs, gates = w[0], _GATES[op]
    hidden = int(attrs.get("hidden_size") or r[2])
    if not all(isinstance(v, int) for v in (seq, batch, feat, dirs, w[1], w[2])):
        return None, f"{op} sizes unknown after shape inference: input {tuple(x)}, W {tuple(w)}"
    if w[1] != gates * hidden:
        return None, f"{op} weights {tuple(w)} do not hold {gates} gates of {hidden}"
    direction = attrs.get("direction", "forward")
    if dirs != (2 if direction == "bidirectional" else 1):
        return None, f"{op} is {direction} but its W holds {dirs} directions"
    if feat != w[2]:    # a valid model's agree: the --input-shape given
        from .onnx_graph import refuse_width
        refuse_width(g.src, name, f"an input {feat} wide", w_name, w, w[2])
    dt = {"act_dtype": g.dtype(x_name)}
    def weights(t: str) -> dict[str, Any]:
        return {"weights": "static" if t in g.static else "dynamic",
                "weight_dtype": g.dtype(t)}
    vop, ops = _CELL[op]
    cell = {"name": f"{name}_cell", "op": vop, "elements": seq * dirs * batch * hidden, **dt}
    if ops is not None:
        cell["ops_per_element"] = ops
    return [
        {"name": f"{name}_x", "op": "matmul", "m": seq * batch, "k": feat,
         "n": dirs * gates * hidden, **weights(w_name), **dt},
        {"name": f"{name}_h", "op": "matmul", "m": batch, "k": hidden, "n": gates * hidden,
         "count": seq * dirs, **weights(r_name), **dt},
        cell,
    ], None


__all__ = ["recurrent_rows"]

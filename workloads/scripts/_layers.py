"""Row builders shared by the zoo generator scripts."""
from __future__ import annotations

DT = {"weight_dtype": "int8", "act_dtype": "int8"}


def conv(name: str, size: int, cin: int, cout: int, k: int, s: int,
         groups: int = 1) -> tuple[dict, int]:
    """A square int8 conv2d row with 'same' padding (k // 2), and its output size."""
    row = {"name": name, "op": "conv2d", "batch": 1, "in_h": size, "in_w": size, "in_c": cin,
           "out_c": cout, "kernel_h": k, "kernel_w": k, "stride": s, "pad_h": k // 2,
           "pad_w": k // 2, "groups": groups, **DT}
    return row, -(-size // s)

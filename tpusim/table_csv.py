"""``layers.csv`` straight from the columnar core's arrays, without importing pandas.

A run that only writes its files never needs the DataFrame: importing pandas alone costs more
than simulating ResNet-50. The text is byte for byte what ``csv_safe(result.layers)
.to_csv(index=False, float_format="%.10g")`` writes (``tests/test_table_csv.py`` compares them on
every shipped workload): the same ``csv`` writer pandas uses (minimal quoting, ``\\n`` lines),
floats as ``"%.10g" % x`` with NaN empty, integers and bools as ``str``, a missing ``m``/``k``/``n``
empty, and string cells neutralised as :func:`tpusim._io.safe_cell` does.
"""
from __future__ import annotations

import csv
import io
from typing import Any

from ._io import safe_cell
from .layer_rules import LAYER_COLUMNS, totals_arrays


def _cells(values: Any) -> list[str]:
    """One column as the strings pandas' ``to_csv(float_format="%.10g")`` writes for it."""
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind == "f":
        return ["" if v != v else "%.10g" % v for v in values.tolist()]
    if kind in ("i", "u", "b"):
        return [str(v) for v in values.tolist()]
    out = []
    for v in values:   # lists: str/bool cells, None for a missing m/k/n
        if v is None:
            out.append("")
        elif isinstance(v, str):
            out.append(safe_cell(v))
        else:
            out.append(str(v))
    return out


def columns_csv(data: dict[str, Any]) -> str:
    """The CSV text of :meth:`tpusim.columnar.Columns.table_data`'s columns plus their totals."""
    full = dict(data)
    full.update(totals_arrays(data["count"], data["cycles"], data["energy_pj"],
                              data["hbm_read_bytes"], data["hbm_write_bytes"],
                              data["intensity"]))
    cols = [_cells(full[k]) for k in LAYER_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(LAYER_COLUMNS)
    w.writerows(zip(*cols))
    return buf.getvalue()

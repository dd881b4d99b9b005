"""Writing a run's outputs: ``layers.csv``, ``summary.json`` and ``report.html``, all or nothing.

Files are written under temporary names beside their targets and renamed only when every one
of them is complete, so a failed run leaves whatever the directory held before.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable


if TYPE_CHECKING:
    from .simulator import Result


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(_finite(summary), indent=2, sort_keys=False, default=_json_default) + "\n"


def layers_csv(result: "Result") -> str:
    return result.layers.to_csv(index=False, float_format="%.10g")


def write_all(files: dict[str, Callable[[Path], None]], out_dir: Path) -> list[Path]:
    """Write each file via its writer to a temp path, then rename them all into ``out_dir``.

    If any writer fails, every temp file is removed and nothing in ``out_dir`` changes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, writer in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            os.close(fd)
            temps.append((Path(tmp), out_dir / name))
            writer(Path(tmp))
        mode = 0o666 & ~_umask()
        for tmp, final in temps:
            os.chmod(tmp, mode)
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return [final for _, final in temps]


def write_result(result: "Result", out_dir: str | Path, html: bool = True) -> list[Path]:
    """``layers.csv``, ``summary.json`` and (unless ``html=False``) ``report.html``."""
    files: dict[str, Callable[[Path], None]] = {
        "layers.csv": lambda p: p.write_text(layers_csv(result)),
        "summary.json": lambda p: p.write_text(summary_json(result.summary)),
    }
    if html:
        from .plots import report_html
        files["report.html"] = lambda p: p.write_text(report_html(result))
    return write_all(files, Path(out_dir))

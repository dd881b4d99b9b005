"""CI, against an installed wheel: every preset x every shipped workload simulates.

Run from an empty folder with the fresh venv's python (``.ci/run`` does): it imports the installed
tpusim, never the checkout. A pair whose trace dtype the chip lacks runs in the chip's default
format, as a user would with ``--format``; every pair must give a positive latency.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import tpusim
from tpusim.config import load_config, preset_names
from tpusim.importers import WORKLOAD_DIR

pkg = Path(tpusim.__file__).resolve().parent
assert "site-packages" in pkg.parts, f"tpusim imported from {pkg}, not from an installed wheel"
assert WORKLOAD_DIR.resolve().is_relative_to(pkg), WORKLOAD_DIR
presets = preset_names()
traces = sorted(WORKLOAD_DIR.rglob("*.csv"))
assert len(presets) >= 9 and len(traces) >= 16, (presets, traces)
# an old preset name kept as an alias loads the preset it points to
assert load_config("tpu_v4_calibrated") == load_config("tpu_v4")
t0 = time.perf_counter()
reformatted = 0
for name in presets:
    chip = load_config(name)
    for path in traces:
        wl = tpusim.load_workload(path)
        try:
            res = tpusim.simulate(chip, wl)
        except tpusim.InputError:
            res = tpusim.simulate(chip, wl, format=chip.default_format)
            reformatted += 1
        lat = res.summary["latency_s"]
        assert lat > 0, (name, path.name, lat)
print(f"{len(presets)} presets x {len(traces)} shipped workloads simulated from {pkg} "
      f"({reformatted} in the chip's default format) in {time.perf_counter() - t0:.1f} s")
sys.exit(0)

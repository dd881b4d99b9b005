"""``tpusim validate``'s "finn bnn" rows: FINN's dataflow pipeline (:mod:`tpusim.dataflow`) for the
released CNV W1A1 design of Xilinx/BNN-PYNQ against its published single-image time.

The folding (PE, SIMD per layer) is the design's own (``dataflow.FOLDINGS["cnv_bnn"]``, from its
config.h); the chip is ``finn_zc706`` at the board's accelerator clock; nothing is fitted.

Measured: the BNN-PYNQ notebook CNV-BNN_Cifar10.ipynb classifies one CIFAR-10 image in 527 us on
an Ultra96 (accelerator at 300 MHz) as published in the repository, and in 1,582 us on a PYNQ-Z2
(100 MHz), both quoted in Xilinx/BNN-PYNQ issue #51 with the clocks from its maintainer. The two
are 158,100 and 158,200 accelerator cycles: the time scales with the clock, so host-side work is
a negligible part of it.
"""
from __future__ import annotations

from typing import Any

from .check_rows import check_row

CNV_SINGLE_IMAGE_US = {   # board: (accelerator clock GHz, measured us for one image)
    "Ultra96 300 MHz": (0.3, 527.0),
    "PYNQ-Z2 100 MHz": (0.1, 1582.0),
}
NO_FIT_BNN = ("none: finn_zc706 engines with BNN-PYNQ cnvW1A1 config.h folding; nothing fitted "
              "to the notebook times")


def finn_bnn_checks() -> list[dict[str, Any]]:
    from .config import load_config
    from .dataflow import dataflow
    rows = []
    for board, (ghz, us) in CNV_SINGLE_IMAGE_US.items():
        s = dataflow(load_config("finn_zc706", clock_ghz=ghz), "cnv_bnn").summary
        note = (f"streamed frame; stages back to back {s['latency_sum_s'] * 1e6:,.0f} us; "
                f"pipeline rate {s['throughput_per_s']:,.0f} frames/s ({s['bottleneck']} the "
                "slowest stage)")
        rows.append(check_row(check="finn bnn", case=f"cnv_bnn W1A1 {board}",
                              metric="single-image latency", unit="us",
                              predicted=s["latency_s"] * 1e6, measured=us, fitted_on=NO_FIT_BNN,
                              status="ok", note=note))
    return rows

"""How long the roofline analysis, the chart and the report page take (not a test).

    python benchmarks/roofline_bench.py [WORKLOAD ...]

For each workload (default: the shipped traces that exist among resnet50, bert_base,
llama3_8b_prefill, cnn1) it times, best of 5: ``simulate`` on the default chip,
``roofline.layer_table`` + ``workload_summary``, ``roofline_plots.roofline_chart`` and
``report_pages.report_html`` (the whole run page, plotly.js included).
"""
from __future__ import annotations

import sys
import time

import tpusim
from tpusim.report_pages import report_html
from tpusim.roofline_plots import roofline_chart
from tpusim.roofline import chip_roofs, layer_table, workload_summary
from _timing import best_of as best




def main(names: list[str]) -> None:
    chip = tpusim.load_config("default")
    roofs = chip_roofs(chip)
    print(f"{'workload':20s} {'layers':>6s} {'simulate':>10s} {'table':>10s} {'chart':>10s} "
          f"{'report':>10s}")
    for name in names:
        try:
            wl = tpusim.load_workload(name)
        except tpusim.InputError:
            continue
        res = tpusim.simulate(chip, wl)
        t_sim = best(lambda: tpusim.simulate(chip, wl))
        t_tab = best(lambda: workload_summary(layer_table(res.layers, chip, roofs, name), roofs))
        table = layer_table(res.layers, chip, roofs, name)
        t_fig = best(lambda: roofline_chart(table, roofs))
        t_rep = best(lambda: report_html(res), repeat=3)
        print(f"{name:20s} {len(wl.layers):6d} {t_sim * 1e3:8.1f}ms {t_tab * 1e3:8.1f}ms "
              f"{t_fig * 1e3:8.1f}ms {t_rep * 1e3:8.1f}ms")


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet50", "bert_base", "llama3_8b_prefill", "cnn1"])

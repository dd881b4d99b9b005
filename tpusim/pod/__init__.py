"""Pods: many chips joined by ICI into slices, slices joined by DCN.

``topology`` describes the network (and is imported by the chip config), ``collectives`` prices
all-gather, reduce-scatter, all-reduce, all-to-all and permute over a slice's axes, ``sharding``
maps a parallelism spec (dp, fsdp, tp, pp, ep) onto those axes. This package imports nothing
from the rest of tpusim at import time, so ``config.py`` can import ``pod.topology``.
"""

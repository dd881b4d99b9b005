"""Shipped workload traces; in the wheel as package data ``tpusim.zoo`` (see ``tpusim/_data.py``).
This file only makes the folder an importable resource root; ``scripts/`` is not shipped."""

"""Chip presets, one YAML file each; shipped in the wheel as package data ``tpusim.presets``
(see ``tpusim/_data.py``). This file only makes the folder an importable resource root."""

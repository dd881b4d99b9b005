"""Where the shipped data lives: the chip presets and the workload zoo.

In the repository they are the top-level folders ``configs/`` and ``workloads/``; the build maps
them into the package as the data-only packages ``tpusim.presets`` and ``tpusim.zoo``
(``pyproject.toml``, ``[tool.setuptools.package-dir]``), so an installed wheel carries them and
an editable install (``pip install -e .``) resolves the same names to the checkout's folders.
A source tree used without installing it (on ``sys.path`` only) falls back to the folders beside
the package. Nothing here looks anywhere else: a user's own files are always passed as paths.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_dir(package: str, folder: str) -> Path:
    # pip unpacks a wheel and an editable install points at the checkout: either way the
    # resource root is a plain folder on disk (assumption: tpusim is not run from a zip file).
    try:
        return Path(str(files(package)))
    except ModuleNotFoundError:
        # a source tree put on sys.path without installing it: the folder beside the package
        return Path(__file__).resolve().parent.parent / folder


def presets_dir() -> Path:
    """The folder of chip preset YAML files (``configs/`` in the repository)."""
    return _package_dir("tpusim.presets", "configs")


def zoo_dir() -> Path:
    """The folder of shipped workload traces (``workloads/`` in the repository)."""
    return _package_dir("tpusim.zoo", "workloads")

"""Importers: the only code that knows file formats. Each returns a :class:`tpusim.Workload`."""

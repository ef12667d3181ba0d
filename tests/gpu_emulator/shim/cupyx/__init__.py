"""Stand-in for ``cupyx`` (test use only): just enough for anndata and scanpy to import beside
the emulated CuPy. Nothing is emulated; GPU sparse matrices cannot be created."""

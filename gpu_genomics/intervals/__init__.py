"""BED peak files and a reference genome into labelled fixed-length training windows.

What lives here: :mod:`.bed` (BED files and the metadata file listing them), :mod:`.reference`
(indexed FASTA, windows read in bulk), :mod:`.regions` (the ``basset``, ``hull`` and ``none``
merge modes), :mod:`.layouts` (the two output layouts and their declared arrays) and :mod:`.job`
(the ``intervals`` job, :func:`build_interval_dataset`). Semantics in ``docs/intervals.md``.
"""

from __future__ import annotations

from .bed import read_bed, read_metadata
from .job import IntervalOptions, build_interval_dataset
from .layouts import BASSET_ARRAYS, INTERVAL_ARRAYS
from .reference import Reference
from .regions import Regions, make_regions

__all__ = [
    "BASSET_ARRAYS",
    "INTERVAL_ARRAYS",
    "IntervalOptions",
    "Reference",
    "Regions",
    "build_interval_dataset",
    "make_regions",
    "read_bed",
    "read_metadata",
]

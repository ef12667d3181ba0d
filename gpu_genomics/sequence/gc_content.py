"""GC content: the fraction of G and C among the A/C/G/T bases of each sequence."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import _kernels
from ..device import array_module, resolve_device
from .batch import SequencesLike, as_batch


@numba.njit(parallel=True, cache=True, nogil=True)
def _gc_counts_cpu(data, offsets, counts):  # pragma: no cover
    for row in numba.prange(len(offsets) - 1):
        gc = 0
        acgt = 0
        for p in range(offsets[row], offsets[row + 1]):
            upper = data[p] & 0xDF  # ASCII letter to upper case
            if upper == 71 or upper == 67:  # G, C
                gc += 1
                acgt += 1
            elif upper == 65 or upper == 84:  # A, T
                acgt += 1
        counts[row, 0] = gc
        counts[row, 1] = acgt


def gc_counts(seqs: SequencesLike, *, device: str | None = None) -> Any:
    """``(n, 2) int64``: G+C bases and A+C+G+T bases of each sequence, either case."""
    batch = as_batch(seqs)
    device_name = resolve_device(device)
    xp = array_module(device_name)
    counts = xp.empty((len(batch), 2), dtype=np.int64)
    if device_name == "cpu":
        _gc_counts_cpu(batch.data, batch.offsets, counts)
    else:
        data, offsets = batch.arrays("gpu")
        fn = _kernels.kernel("gc_content", "gc_counts")
        _kernels.launch_blocks_per_row(
            fn, len(batch), (data, offsets, _kernels.i64(len(batch)), counts)
        )
    return counts


def gc_content(seqs: SequencesLike, *, device: str | None = None) -> Any:
    """``(n,) float64``: (G + C) / (A + C + G + T) per sequence; N and other IUPAC letters are
    left out of both counts; NaN for a sequence without any A/C/G/T."""
    counts = gc_counts(seqs, device=device)
    xp = array_module("gpu" if type(counts).__module__.startswith("cupy") else "cpu")
    acgt = counts[:, 1]
    return xp.where(acgt > 0, counts[:, 0] / xp.maximum(acgt, 1), xp.nan)

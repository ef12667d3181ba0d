"""GC content: the fraction of G and C among the A/C/G/T bases of each sequence."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import _kernels
from ..device import array_module, array_module_of, resolve_device
from .alphabet import ACGT_CLASS, GC_CLASS, gc_classes
from .batch import SequencesLike, as_batch


@numba.njit(parallel=True, cache=True, nogil=True)
def _gc_counts_cpu(data, offsets, gc_class, counts):  # pragma: no cover
    for row in numba.prange(len(offsets) - 1):
        gc = 0
        acgt = 0
        for p in range(offsets[row], offsets[row + 1]):
            c = gc_class[data[p]]
            gc += c >= GC_CLASS
            acgt += c >= ACGT_CLASS
        counts[row, 0] = gc
        counts[row, 1] = acgt


GC_COUNTS = _kernels.Kernel(
    module="gc_content",
    function="gc_counts",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("gc_class", "const unsigned char*"),
        ("n_rows", "long long"),
        ("counts", "long long*"),
    ),
    twin=_gc_counts_cpu,
)


def gc_counts(seqs: SequencesLike, *, device: str | None = None) -> Any:
    """Count the G+C bases and the A+C+G+T bases of each sequence, either case.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(n, 2) int64`` counts on the device: column 0 G+C, column 1 A+C+G+T.
    """
    batch = as_batch(seqs)
    device_name = resolve_device(device)
    counts = array_module(device_name).empty((len(batch), 2), dtype=np.int64)
    data, offsets = batch.arrays(device_name)
    GC_COUNTS(
        device_name,
        grid=_kernels.block_per_row_grid(len(batch)),
        data=data,
        offsets=offsets,
        gc_class=gc_classes(),
        n_rows=len(batch),
        counts=counts,
    )
    return counts


def gc_content(seqs: SequencesLike, *, device: str | None = None) -> Any:
    """Compute (G + C) / (A + C + G + T) of each sequence.

    N and the other IUPAC letters are left out of both counts.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(n,) float64`` on the device; NaN for a sequence without any A/C/G/T.
    """
    counts = gc_counts(seqs, device=device)
    xp = array_module_of(counts)
    acgt = counts[:, 1]
    return xp.where(acgt > 0, counts[:, 0] / xp.maximum(acgt, 1), xp.nan)

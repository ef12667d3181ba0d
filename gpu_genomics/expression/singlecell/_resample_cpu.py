"""The CPU twin of the exact-depth resampling of :func:`~.augment.downsample_counts`.

One numba pass per random block of cells, the blocks in parallel: each block seeds numba's
generator once (from ``(seed, block)``) and resamples its cells in order, so the result depends
on the seed and the block, not on the threads. A cell of ``total`` reads resampled to ``target``:

* without replacement (``hypergeometric``): selection sampling over its reads in order keeps
  ``target`` distinct reads, every subset equally likely (as ``scanpy.pp.downsample_counts``'s
  ``choice(total, target, replace=False)``), each counted to its gene as it is kept;
* with replacement (``multinomial``): ``target`` uniform read indices, each counted to the gene
  holding it (a binary search of the cell's cumulative counts).

The GPU takes the array path of :mod:`.augment` (vectorised halving draws): both draw
from the same distributions, not the same streams.

Memory: the new counts (``(nnz,) int64``) and, per thread, the cumulative counts of its
block's widest cell (``int64``, with replacement only).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _select_reads(counts, lo, hi, target, new_counts):  # pragma: no cover
    """Keep ``target`` of the reads of entries ``[lo, hi)`` (one cell), without replacement.

    Selection sampling (Knuth's algorithm S): the reads are visited in order, gene by gene,
    and each is kept with probability ``(target - kept) / (total - seen)``, which keeps exactly
    ``target`` reads (all of them if there are fewer), every subset of that size equally likely.
    """
    total = 0
    for k in range(lo, hi):
        total += counts[k]
    seen, kept = 0, 0
    for k in range(lo, hi):
        taken = 0
        for _ in range(counts[k]):
            if (total - seen) * np.random.random() < target - kept:  # noqa: NPY002 (numba's)
                taken += 1
                kept += 1
            seen += 1
        new_counts[k] = taken


@numba.njit(cache=True, nogil=True)
def _draw_reads(  # noqa: PLR0917 (numba: positional arguments)
    counts, lo, hi, target, cumulative, new_counts
):  # pragma: no cover
    """Draw ``target`` reads of entries ``[lo, hi)`` (one cell) with replacement.

    ``target`` uniform read indices, each counted to the gene holding it (a binary search of
    the cumulative counts, kept in the scratch ``cumulative``, at least ``hi - lo + 1``).
    """
    cumulative[0] = 0
    for k in range(lo, hi):
        cumulative[k - lo + 1] = cumulative[k - lo] + counts[k]
        new_counts[k] = 0
    total = cumulative[hi - lo]
    if total == 0:
        return
    for _ in range(target):
        read = np.random.randint(0, total)  # noqa: NPY002 (numba's generator)
        # the gene g whose reads [cumulative[g], cumulative[g + 1]) hold the read
        g_lo, g_hi = 0, hi - lo
        while g_hi - g_lo > 1:
            mid = (g_lo + g_hi) // 2
            if cumulative[mid] <= read:
                g_lo = mid
            else:
                g_hi = mid
        new_counts[lo + g_lo] += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def resample_blocks(  # noqa: PLR0917 (numba: positional arguments)
    data, indptr, targets, chosen, replace, block_cells, block_seeds
):  # pragma: no cover
    """Resample the ``chosen`` cells of a CSR count matrix to ``targets`` reads each.

    Args:
        data: ``(nnz,)`` non-negative whole counts, any numeric dtype (read as int64).
        indptr: ``(n_cells + 1,) int64``.
        targets: ``(n_cells,) int64`` reads to keep per cell
            (:func:`~.augment._resample_targets`).
        chosen: ``(n_cells,) bool``: the cells to resample (the others keep their counts).
        replace: draw reads with replacement (multinomial) or without (hypergeometric).
        block_cells: cells per random block.
        block_seeds: ``(n_blocks,) int64``: the seed of each block's draws.

    Returns:
        ``(nnz,) int64`` new counts.
    """
    n_cells = len(indptr) - 1
    new_counts = np.empty(len(data), dtype=np.int64)
    for k in numba.prange(len(data)):
        new_counts[k] = np.int64(data[k])
    counts = new_counts  # the cells left alone keep these; a resampled cell is rewritten
    for b in numba.prange(len(block_seeds)):
        np.random.seed(block_seeds[b])  # noqa: NPY002 (numba's per-thread generator)
        first = b * block_cells
        last = min(first + block_cells, n_cells)
        widest = 0
        for cell in range(first, last):
            widest = max(widest, indptr[cell + 1] - indptr[cell])
        cumulative = np.empty(widest + 1 if replace else 1, dtype=np.int64)
        for cell in range(first, last):
            if not chosen[cell]:
                continue
            lo, hi = indptr[cell], indptr[cell + 1]
            if replace:
                _draw_reads(counts, lo, hi, targets[cell], cumulative, new_counts)
            else:
                _select_reads(counts, lo, hi, targets[cell], new_counts)
    return new_counts

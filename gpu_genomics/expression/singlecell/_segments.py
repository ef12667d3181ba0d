"""Sorting the stored entries of a CSR matrix within their rows, the same way on CPU and GPU.

Shared by the Geneformer rank encoding (:mod:`.rank`: genes by normalised value within a cell)
and the scGPT binning (:mod:`.binning`: values within a cell, for its quantiles). Entries are
given as flat ``(nnz,)`` arrays in CSR order (row ascending, column ascending within a row) on
the device (NumPy or CuPy); nothing loops over rows in Python.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


def positive_bits(xp: Any, values: Any) -> Any:
    """Return ``int64`` sort keys ordered as the positive ``values`` are.

    The IEEE 754 bit patterns of positive float64 numbers, read as int64, are monotone in the
    numbers, so integer sorts (exact and stable on both devices) order the values.

    Args:
        xp: NumPy or CuPy.
        values: ``(n,)`` positive numbers (cast to float64).

    Returns:
        ``(n,) int64`` keys, on ``values``' device (a view of a float64 copy).
    """
    return xp.ascontiguousarray(values.astype(np.float64)).view(np.int64)


@numba.njit(parallel=True, cache=True, nogil=True)
def _stable_argsort_segments(keys, starts, order):  # pragma: no cover
    for segment in numba.prange(len(starts) - 1):
        begin, end = starts[segment], starts[segment + 1]
        if end - begin > 0:
            order[begin:end] = np.argsort(keys[begin:end], kind="mergesort") + begin


def order_within_rows(xp: Any, keys: Any, row: Any, extra_key: Any, n_rows: int) -> Any:
    """Return the permutation that sorts entries by (row, key, extra_key).

    The entries must already be in row order with ``extra_key`` ascending within each row (CSR
    order). GPU: one ``lexsort`` over all entries. CPU: a stable per-row sort run in parallel
    (numba), which keeps the ``extra_key`` order among equal keys; both give the same
    permutation.

    Args:
        xp: NumPy or CuPy.
        keys: ``(n,)`` sort keys (e.g. :func:`positive_bits`).
        row: ``(n,) int64`` row of each entry, non-decreasing.
        extra_key: ``(n,)`` tie-breaker, ascending within each row.
        n_rows: the number of rows (``row`` < ``n_rows``).

    Returns:
        ``(n,) int64`` indices into the entries, on their device. Memory: a few more
        ``(n,)`` 8-byte arrays.
    """
    if xp is np:
        starts = np.zeros(n_rows + 1, dtype=np.int64)
        starts[1:] = np.cumsum(np.bincount(row, minlength=n_rows))
        order = np.empty(keys.size, dtype=np.int64)
        _stable_argsort_segments(np.ascontiguousarray(keys), starts, order)
        return order
    return xp.lexsort(xp.stack([extra_key, keys, row]))

"""The CPU twin of the Geneformer rank encoding: numba passes over the CSR rows, in parallel.

:func:`~.rank.rank_encode` runs these on the CPU when no two columns share a gene (the usual
case); the GPU, and inputs whose columns must be summed first, take the array path of
:mod:`.rank` (one sort of all entries on the device). Both compute the same values with the
same IEEE operations in the same types and give the same tokens (tested on both devices).

Memory: the CSR matrix as stored (``data``, ``indices``, ``indptr``, read in place), the
``int32`` output tokens, and per thread the arrays of one cell (values, tokens, order). With
medians computed from the data, also one float64 value and one int64 position per stored
entry (the entries gathered gene by gene).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def row_totals(indptr, data):  # pragma: no cover
    """``(n_rows,) float64``: each row's sum, in storage order (the host array path's order)."""
    n_rows = len(indptr) - 1
    totals = np.zeros(n_rows, dtype=np.float64)
    for r in numba.prange(n_rows):
        total = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            total += np.float64(data[k])
        totals[r] = total
    return totals


@numba.njit(parallel=True, cache=True, nogil=True)
def kept_per_row(indptr, indices, data, token_of_column):  # pragma: no cover
    """``(n_rows,) int64``: each row's positive entries in columns with a token (>= 0)."""
    n_rows = len(indptr) - 1
    counts = np.zeros(n_rows, dtype=np.int64)
    for r in numba.prange(n_rows):
        n = 0
        for k in range(indptr[r], indptr[r + 1]):
            if data[k] > 0 and token_of_column[indices[k]] >= 0:
                n += 1
        counts[r] = n
    return counts


@numba.njit(cache=True, nogil=True)
def _row_values(  # noqa: PLR0917 (numba: positional arguments)
    indptr, indices, data_q, cell_q, multiply_cell, target_q, gene_r, multiply_gene,
    token_of_column, r, n,
):  # pragma: no cover  # fmt: skip
    """Row ``r``'s kept values (in the result type) and tokens, in column order."""
    values = np.empty(n, dtype=gene_r.dtype)
    tokens = np.empty(n, dtype=np.int32)
    j = 0
    for k in range(indptr[r], indptr[r + 1]):
        column = indices[k]
        token = token_of_column[column]
        if data_q[k] > 0 and token >= 0:
            if multiply_cell:
                quotient = data_q[k] * cell_q[r]
            else:
                quotient = data_q[k] / cell_q[r]
            quotient = quotient * target_q
            values[j] = quotient  # exact: the result type holds the quotient's
            if multiply_gene:
                values[j] = values[j] * gene_r[column]
            else:
                values[j] = values[j] / gene_r[column]
            tokens[j] = token
            j += 1
    return values, tokens


@numba.njit(parallel=True, cache=True, nogil=True)
def rank_rows(  # noqa: PLR0917 (numba: positional arguments)
    indptr,
    indices,
    data_q,
    cell_q,
    multiply_cell,
    target_q,
    gene_r,
    multiply_gene,
    token_of_column,
    offsets,
    limit,
    first,
    stable,
    token_ids,
    tied,
):  # pragma: no cover
    """Write each row's ranked tokens at ``offsets[r] + first`` (at most ``limit`` of them).

    Values as :meth:`~.rank.Arithmetic.values` computes them: ``data_q`` divided by (or
    multiplied by, ``multiply_cell``) the cell's factor ``cell_q`` and by ``target_q`` in the
    quotient's type (the arrays' type), then converted to the type of ``gene_r`` and divided
    by (or multiplied by) the column's factor. Sorted descending; equal values by column
    when ``stable``. ``tied[r]`` says whether row ``r`` holds equal values (without ``stable``
    the caller sorts those rows again as NumPy's ``argsort`` does).
    """
    for r in numba.prange(len(indptr) - 1):
        n = offsets[r + 1] - offsets[r]
        if n == 0:
            continue
        n = 0
        for k in range(indptr[r], indptr[r + 1]):
            if data_q[k] > 0 and token_of_column[indices[k]] >= 0:
                n += 1
        values, tokens = _row_values(
            indptr, indices, data_q, cell_q, multiply_cell, target_q, gene_r, multiply_gene,
            token_of_column, r, n,
        )  # fmt: skip
        order = np.argsort(-values)
        any_tie = False
        i = 0
        while i < n:
            end = i + 1
            while end < n and values[order[end]] == values[order[i]]:
                end += 1
            if end - i > 1:
                any_tie = True
                if stable:
                    order[i:end] = np.sort(order[i:end])
            i = end
        tied[r] = any_tie
        start = offsets[r] + first
        for i in range(min(n, limit)):
            token_ids[start + i] = tokens[order[i]]


@numba.njit(cache=True, nogil=True)
def _gather_by_gene(  # noqa: PLR0917 (numba: positional arguments)
    indptr, indices, data, totals, target, gene_of_column, starts
):  # pragma: no cover
    """Every positive entry's ``count / total * target`` (float64), gene after gene."""
    filled = starts[:-1].copy()
    values = np.empty(starts[-1], dtype=np.float64)
    for r in range(len(indptr) - 1):
        for k in range(indptr[r], indptr[r + 1]):
            gene = gene_of_column[indices[k]]
            if data[k] > 0 and gene >= 0:
                values[filled[gene]] = np.float64(data[k]) / totals[r] * target
                filled[gene] += 1
    return values


@numba.njit(parallel=True, cache=True, nogil=True)
def _medians_of_segments(values, starts):  # pragma: no cover
    medians = np.full(len(starts) - 1, np.nan)
    for gene in numba.prange(len(starts) - 1):
        n = starts[gene + 1] - starts[gene]
        if n:
            segment = np.sort(values[starts[gene] : starts[gene + 1]])
            medians[gene] = (segment[(n - 1) // 2] + segment[n // 2]) / 2.0
    return medians


def gene_medians(
    csr: Any, totals: np.ndarray, target: float, gene_of_column: np.ndarray, n_genes: int
) -> np.ndarray:
    """``(n_genes,) float64`` medians of ``count / total * target`` over each gene's entries.

    The positive entries of the SciPy CSR ``csr``; NaN for a gene without any. The array
    path's numbers (:func:`~.rank.entry_medians`): the same float64 operations.
    """
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    genes = gene_of_column[indices]
    per_gene = np.bincount(genes[(data > 0) & (genes >= 0)], minlength=n_genes)
    del genes
    starts = np.zeros(n_genes + 1, dtype=np.int64)
    np.cumsum(per_gene, out=starts[1:])
    values = _gather_by_gene(indptr, indices, data, totals, float(target), gene_of_column, starts)
    return _medians_of_segments(values, starts)


def rank_csr(
    csr: Any,
    *,
    arithmetic: Any,
    cell_factors: np.ndarray,
    target_sum: float,
    gene_factors: np.ndarray,
    token_of_column: np.ndarray,
    limit: int,
    special_ids: tuple[int, int] | None,
    stable: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(offsets, token_ids, encoded)`` of every row of the SciPy CSR ``csr``, on the CPU.

    ``arithmetic`` (:class:`~.rank.Arithmetic`) with its ``cell_factors`` (per row) and
    ``gene_factors`` (per column; any value where ``token_of_column`` is -1) gives the values.
    Rows without a token are left out (``encoded`` False). Without ``stable``, rows that hold
    equal values are sorted again with NumPy's ``argsort`` on their values in column order, as
    Geneformer does.
    """
    indptr, indices = csr.indptr, csr.indices
    data_q = csr.data.astype(arithmetic.quotient, copy=False)
    target_q = arithmetic.quotient.type(target_sum)
    kept = kept_per_row(indptr, indices, data_q, token_of_column)
    encoded = kept > 0
    extra = 0 if special_ids is None else 2
    lengths = np.where(encoded, np.minimum(kept, limit) + extra, 0)
    row_offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(lengths, out=row_offsets[1:])
    token_ids = np.zeros(int(row_offsets[-1]), dtype=np.int32)
    tied = np.zeros(len(kept), dtype=np.bool_)
    rank_rows(
        indptr, indices, data_q, cell_factors, arithmetic.per_cell_reciprocal, target_q,
        gene_factors, arithmetic.per_gene_reciprocal, token_of_column, row_offsets, limit,
        extra // 2, stable, token_ids, tied,
    )  # fmt: skip
    for r in np.flatnonzero(tied) if not stable else ():
        segment = slice(indptr[r], indptr[r + 1])
        columns, counts = indices[segment], data_q[segment]
        keep = (counts > 0) & (token_of_column[columns] >= 0)
        values = arithmetic.values(
            counts[keep], cell_factors[r], target_sum, gene_factors[columns[keep]]
        )
        ranked = token_of_column[columns[keep]][np.argsort(-values)][:limit]
        start = row_offsets[r] + extra // 2
        token_ids[start : start + len(ranked)] = ranked
    if special_ids is not None:
        starts, ends = row_offsets[:-1][encoded], row_offsets[1:][encoded]
        token_ids[starts] = special_ids[0]
        token_ids[ends - 1] = special_ids[1]
    offsets = np.append(row_offsets[:-1][encoded], row_offsets[-1])
    return offsets, token_ids, encoded

"""The CPU twin of the Geneformer rank encoding: numba passes over the CSR rows, in parallel.

:func:`~.rank.rank_encode` runs these on the CPU when no two columns share a gene (the usual
case); the GPU, and inputs whose columns must be summed first, take the array path of
:mod:`.rank` (one sort of all entries on the device). Both compute the same values with the
same IEEE operations in the same types and give the same tokens (tested on both devices).

Memory: the CSR matrix as stored (``data``, ``indices``, ``indptr``, read in place), the
``int32`` output tokens, and per chunk of cells the arrays of its longest cell (keys, tokens,
order). With medians computed from the data, also one float64 value per stored entry (the
entries gathered gene by gene).
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
def _row_keys(  # noqa: PLR0917 (numba: positional arguments)
    indptr, indices, data_q, cell_q, multiply_cell, target_q, gene_r, multiply_gene,
    token_of_column, r, value, bits, top, keys, tokens,
):  # pragma: no cover  # fmt: skip
    """Fill ``keys``/``tokens`` with row ``r``'s kept entries in column order; return how many.

    A key is ``top`` minus the value's IEEE bits (``value`` is a one-element scratch array of
    the result type and ``bits`` the same memory as unsigned integers of its size): ascending
    keys are descending values, the values being positive.
    """
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
            value[0] = quotient  # exact: the result type holds the quotient's
            if multiply_gene:
                value[0] = value[0] * gene_r[column]
            else:
                value[0] = value[0] / gene_r[column]
            keys[j] = top - np.uint64(bits[0])
            tokens[j] = token
            j += 1
    return j


@numba.njit(cache=True, nogil=True)
def _radix_sort(keys, order, n, n_bytes, spare_keys, spare_order, count):  # noqa: PLR0917 (numba: positional arguments)  # pragma: no cover
    """Sort ``keys[:n]`` ascending, stably, carrying ``order[:n]``; return ``(keys, order)``.

    LSD radix sort, a byte per pass (``n_bytes`` passes), a pass skipped when every key has
    the same byte there. The results may be in the ``spare_*`` buffers, which are swapped in.
    """
    for byte in range(n_bytes):
        shift = np.uint64(8 * byte)
        count[:] = 0
        for i in range(n):
            count[np.int64((keys[i] >> shift) & np.uint64(255)) + 1] += 1
        if count.max() == n:
            continue
        for d in range(1, 257):
            count[d] += count[d - 1]
        for i in range(n):
            digit = np.int64((keys[i] >> shift) & np.uint64(255))
            place = count[digit]
            spare_keys[place] = keys[i]
            spare_order[place] = order[i]
            count[digit] += 1
        keys, spare_keys = spare_keys, keys
        order, spare_order = spare_order, order
    return keys, order


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
    kept,
    limit,
    first,
    token_ids,
    tied,
    scratch_bits,
    top,
):  # pragma: no cover
    """Write each row's ranked tokens at ``offsets[r] + first`` (at most ``limit`` of them).

    Values as :meth:`~.rank.Arithmetic.values` computes them: ``data_q`` divided by (or
    multiplied by, ``multiply_cell``) the cell's factor ``cell_q`` and by ``target_q`` in the
    quotient's type (the arrays' type), then converted to the type of ``gene_r`` and divided
    by (or multiplied by) the column's factor. Sorted descending, equal values by column (a
    stable radix sort of the complemented bits). ``tied[r]`` says whether row ``r`` holds equal
    values (the caller sorts those rows again as NumPy's ``argsort`` does, unless ties are
    stable). Rows run in parallel in chunks, each chunk with scratch arrays for its longest
    row (``kept``: the kept entries of each row). ``scratch_bits``: ``(n_chunks, 1)`` unsigned
    integers of the result type's size (one value's bits per chunk); ``top``: their maximum.
    """
    n_rows = len(indptr) - 1
    n_chunks = len(scratch_bits)
    n_bytes = gene_r.itemsize
    scratch_values = scratch_bits.view(gene_r.dtype)
    for chunk in numba.prange(n_chunks):
        begin, end = chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks
        longest = 1
        for r in range(begin, end):
            longest = max(longest, kept[r])
        value, bits = scratch_values[chunk], scratch_bits[chunk]
        keys = np.empty(longest, dtype=np.uint64)
        tokens = np.empty(longest, dtype=np.int32)
        order = np.empty(longest, dtype=np.int64)
        spare_keys = np.empty(longest, dtype=np.uint64)
        spare_order = np.empty(longest, dtype=np.int64)
        count = np.empty(257, dtype=np.int64)
        for r in range(begin, end):
            if kept[r] == 0:
                continue
            n = _row_keys(
                indptr, indices, data_q, cell_q, multiply_cell, target_q, gene_r,
                multiply_gene, token_of_column, r, value, bits, top, keys, tokens,
            )  # fmt: skip
            for i in range(n):
                order[i] = i
            ranked, ranked_order = _radix_sort(
                keys, order, n, n_bytes, spare_keys, spare_order, count
            )
            any_tie = False
            for i in range(1, n):
                if ranked[i] == ranked[i - 1]:
                    any_tie = True
                    break
            tied[r] = any_tie
            start = offsets[r] + first
            for i in range(min(n, limit)):
                token_ids[start + i] = tokens[ranked_order[i]]


@numba.njit(cache=True, nogil=True)
def _positive_per_gene(indices, data, gene_of_column, n_genes):  # pragma: no cover
    """``(n_genes,) int64``: the positive entries of each gene (columns of gene -1 left out)."""
    counts = np.zeros(n_genes, dtype=np.int64)
    for k in range(len(indices)):
        gene = gene_of_column[indices[k]]
        if data[k] > 0 and gene >= 0:
            counts[gene] += 1
    return counts


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
        if n:  # selection, not a sort: the value of rank n // 2, and below it the largest
            upper = n // 2
            segment = np.partition(values[starts[gene] : starts[gene + 1]], upper)
            lower = segment[:upper].max() if n % 2 == 0 else segment[upper]
            medians[gene] = (lower + segment[upper]) / 2.0
    return medians


def gene_medians(
    csr: Any, totals: np.ndarray, target: float, gene_of_column: np.ndarray, n_genes: int
) -> np.ndarray:
    """``(n_genes,) float64`` medians of ``count / total * target`` over each gene's entries.

    The positive entries of the SciPy CSR ``csr``; NaN for a gene without any. The array
    path's numbers (:func:`~.rank.entry_medians`): the same float64 operations.
    """
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    per_gene = _positive_per_gene(indices, data, gene_of_column, n_genes)
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
    bits_type = np.dtype(f"uint{8 * arithmetic.result.itemsize}")
    scratch_bits = np.zeros((max(1, min(len(kept), 256)), 1), dtype=bits_type)
    rank_rows(
        indptr, indices, data_q, cell_factors, arithmetic.per_cell_reciprocal, target_q,
        gene_factors, arithmetic.per_gene_reciprocal, token_of_column, row_offsets, kept, limit,
        extra // 2, token_ids, tied, scratch_bits, np.uint64(2 ** (8 * bits_type.itemsize) - 1),
    )  # fmt: skip
    if not stable:
        _argsort_tied_rows(
            csr, data_q, np.flatnonzero(tied), arithmetic=arithmetic, cell_factors=cell_factors,
            target_sum=target_sum, gene_factors=gene_factors, token_of_column=token_of_column,
            starts=row_offsets[:-1] + extra // 2, limit=limit, token_ids=token_ids,
        )  # fmt: skip
    if special_ids is not None:
        starts, ends = row_offsets[:-1][encoded], row_offsets[1:][encoded]
        token_ids[starts] = special_ids[0]
        token_ids[ends - 1] = special_ids[1]
    offsets = np.append(row_offsets[:-1][encoded], row_offsets[-1])
    return offsets, token_ids, encoded


def _argsort_tied_rows(
    csr: Any,
    data_q: np.ndarray,
    rows: np.ndarray,
    *,
    arithmetic: Any,
    cell_factors: np.ndarray,
    target_sum: float,
    gene_factors: np.ndarray,
    token_of_column: np.ndarray,
    starts: np.ndarray,
    limit: int,
    token_ids: np.ndarray,
) -> None:
    """Rank ``rows`` again with NumPy's ``argsort(-values)`` on their values in column order.

    The values of a batch of rows are computed at once (the same operations as the kernel's),
    then each row is sorted on its own, as Geneformer's ``rank_genes`` sorts each cell.
    Memory: the values of one batch of rows (at most :data:`TIED_BATCH_ENTRIES` entries).
    """
    indptr, indices = csr.indptr, csr.indices
    at = 0
    while at < len(rows):
        stop = at + 1
        while stop < len(rows) and indptr[rows[stop] + 1] - indptr[rows[at]] < TIED_BATCH_ENTRIES:
            stop += 1
        batch = rows[at:stop]
        entries = np.concatenate([np.arange(indptr[r], indptr[r + 1]) for r in batch])
        row_of_entry = np.repeat(batch, indptr[batch + 1] - indptr[batch])
        columns = indices[entries]
        keep = (data_q[entries] > 0) & (token_of_column[columns] >= 0)
        entries, row_of_entry, columns = entries[keep], row_of_entry[keep], columns[keep]
        values = arithmetic.values(
            data_q[entries], cell_factors[row_of_entry], target_sum, gene_factors[columns]
        )
        tokens = token_of_column[columns]
        bounds = np.searchsorted(row_of_entry, batch, side="left")
        ends = np.append(bounds[1:], len(entries))
        for r, begin, end in zip(batch, bounds, ends, strict=True):
            ranked = tokens[begin:end][np.argsort(-values[begin:end])][:limit]
            token_ids[starts[r] : starts[r] + len(ranked)] = ranked
        at = stop


#: Entries of the tied rows whose values are computed at once (about 8 bytes each, a few times).
TIED_BATCH_ENTRIES = 1 << 22

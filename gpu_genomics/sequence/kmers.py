"""k-mer count matrices: ``(n, 4**k)`` counts per sequence, dense or CSR sparse.

Columns are k-mers in lexicographic A, C, G, T order (``kmer_names(k)``); a window containing a
base other than A/C/G/T (either case) is not counted. ``canonical=True`` counts a k-mer and its
reverse complement together under the lexicographically smaller of the two, and keeps only those
columns (``kmer_names(k, canonical=True)``: 2,080 for k = 6).

Output is dense for ``k <= DENSE_MAX_K`` (6: 4,096 columns, 16 KiB per row as int32) and a
``scipy.sparse.csr_matrix`` above it; ``sparse=True/False`` overrides. Counts are int32. Dense
results stay on the device that computed them; a sparse result is always a host (SciPy) matrix,
because CuPy's sparse matrices cannot hold integers (the GPU computes it and copies it back).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numba
import numpy as np

from .. import _kernels
from ..device import Device, array_module, resolve_device, to_numpy
from ..errors import InputError, positive_int
from .alphabet import base_digits
from .batch import SequenceBatch, SequencesLike, as_batch

DENSE_MAX_K = 6
MAX_K = 15
CANONICAL_MAX_K = 12
#: Shared memory a block may use without opting in, and what kmer_counts_dense declares
#: statically (its 256-byte digit table) beside the dynamic histogram.
SHARED_MEMORY_LIMIT_BYTES = 48 * 1024
KERNEL_STATIC_SHARED_BYTES = 256


def kmer_codes_of_columns(k: int, canonical: bool = False) -> np.ndarray:
    """``(n_columns,) int64``: the k-mer code (base-4 number, A0 C1 G2 T3) of each column."""
    codes = np.arange(4**k, dtype=np.int64)
    if not canonical:
        return codes
    return codes[codes <= _reverse_complement_codes(codes, k)]


def _reverse_complement_codes(codes: np.ndarray, k: int) -> np.ndarray:
    rc = np.zeros_like(codes)
    for i in range(k):
        digit = (codes >> (2 * (k - 1 - i))) & 3
        rc |= (3 - digit) << (2 * i)
    return rc


@functools.cache
def _column_of_code(k: int, canonical: bool) -> np.ndarray:
    """``(4**k,) int32``: output column of each code (-1 for non-canonical codes)."""
    table = np.full(4**k, -1, dtype=np.int32)
    columns = kmer_codes_of_columns(k, canonical)
    table[columns] = np.arange(len(columns), dtype=np.int32)
    return table


def kmer_names(k: int, canonical: bool = False) -> list[str]:
    """The k-mer string of each column of :func:`kmer_counts`."""
    k = positive_int("k", k)
    names = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    if not canonical:
        return names
    return [names[c] for c in kmer_codes_of_columns(k, True)]


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_counts_dense_cpu(
    data, offsets, digits, column_of_code, k, canonical, out
):  # pragma: no cover
    mask = (1 << (2 * k)) - 1
    shift = 2 * (k - 1)
    for row in numba.prange(len(offsets) - 1):
        code = 0
        rc = 0
        run = 0
        out_row = out[row]
        for p in range(offsets[row], offsets[row + 1]):
            d = np.int64(digits[data[p]])
            if d > 3:
                run = 0
                continue
            code = ((code << 2) | d) & mask
            run += 1
            if canonical:
                rc = (rc >> 2) | ((3 - d) << shift)
                if run >= k:
                    out_row[column_of_code[min(code, rc)]] += 1
            elif run >= k:
                out_row[code] += 1  # without canonical merging, column == code


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_codes_cpu(data, offsets, digits, k, canonical, codes):  # pragma: no cover
    mask = (1 << (2 * k)) - 1
    shift = 2 * (k - 1)
    for row in numba.prange(len(offsets) - 1):
        code = 0
        rc = 0
        run = 0
        start = offsets[row]
        for p in range(start, offsets[row + 1]):
            codes[p] = -1
            d = digits[data[p]]
            if d > 3:
                run = 0
                continue
            code = ((code << 2) | d) & mask
            rc = (rc >> 2) | ((3 - d) << shift)
            run += 1
            if run >= k:
                codes[p - k + 1] = rc if canonical and rc < code else code


def kmer_counts(
    seqs: SequencesLike,
    k: int,
    canonical: bool = False,
    *,
    sparse: bool | None = None,
    device: str | None = None,
) -> Any:
    """Count the k-mers of each sequence.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequences.as_batch`).
        k: k-mer size, 1..15 (canonical: 1..12).
        canonical: merge each k-mer with its reverse complement (columns: canonical k-mers).
        sparse: force CSR (True) or dense (False) output; default dense iff ``k <= 6``.
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(n, n_columns) int32`` counts: a dense array on the device, or a SciPy CSR matrix.
    """
    batch = as_batch(seqs)
    k = positive_int("k", k)
    limit = CANONICAL_MAX_K if canonical else MAX_K
    if k > limit:
        raise InputError(
            f"k={k} is too large; use k <= {limit}" + (" with canonical=True" if canonical else "")
        )
    canonical = bool(canonical)
    device_name = resolve_device(device)
    if sparse is None:
        sparse = k > DENSE_MAX_K
    if sparse:
        return _kmer_counts_sparse(batch, k, canonical, device_name)
    return _kmer_counts_dense(batch, k, canonical, device_name)


def _kmer_counts_dense(batch: SequenceBatch, k: int, canonical: bool, device: Device) -> Any:
    column_of_code = _column_of_code(k, canonical)
    n_columns = int(column_of_code.max()) + 1
    digits = base_digits("ACGT")
    xp = array_module(device)
    use_shared = n_columns * 4 + KERNEL_STATIC_SHARED_BYTES <= SHARED_MEMORY_LIMIT_BYTES
    # the shared-memory kernel writes every row whole; the others add into zeros
    alloc = xp.empty if device == "gpu" and use_shared else xp.zeros
    out = alloc((len(batch), n_columns), dtype=np.int32)
    if device == "cpu":
        _kmer_counts_dense_cpu(batch.data, batch.offsets, digits, column_of_code, k, canonical, out)
        return out
    data, offsets = batch.arrays("gpu")
    fn = _kernels.kernel("kmers", "kmer_counts_dense")
    args = (
        data,
        offsets,
        xp.asarray(digits),
        xp.asarray(column_of_code),
        _kernels.i32(k),
        _kernels.i32(canonical),
        _kernels.i64(len(batch)),
        _kernels.i32(n_columns),
        _kernels.i32(use_shared),
        out,
    )
    shared_mem = n_columns * 4 if use_shared else 0
    _kernels.launch_blocks_per_row(fn, len(batch), args, shared_mem=shared_mem)
    return out


def _kmer_counts_sparse(batch: SequenceBatch, k: int, canonical: bool, device: Device) -> Any:
    digits = base_digits("ACGT")
    xp = array_module(device)
    n = len(batch)
    codes = xp.empty(len(batch.data), dtype=np.int64)
    if device == "cpu":
        _kmer_codes_cpu(batch.data, batch.offsets, digits, k, canonical, codes)
    else:
        data, offsets = batch.arrays("gpu")
        fn = _kernels.kernel("kmers", "kmer_codes")
        args = (
            data,
            offsets,
            xp.asarray(digits),
            _kernels.i32(k),
            _kernels.i32(canonical),
            _kernels.i64(n),
            codes,
        )
        _kernels.launch_rows(fn, n, batch.max_length, args)
    column_codes = kmer_codes_of_columns(k, canonical)
    n_columns = len(column_codes)
    positions = xp.flatnonzero(codes >= 0)
    rows = xp.searchsorted(xp.asarray(batch.offsets), positions, side="right") - 1
    columns = codes[positions]
    if canonical:
        columns = xp.searchsorted(xp.asarray(column_codes), columns)
    unique_keys, counts = xp.unique(rows * n_columns + columns, return_counts=True)
    indptr = xp.searchsorted(unique_keys // n_columns, xp.arange(n + 1, dtype=np.int64))
    index_dtype = np.int32 if n_columns < 2**31 else np.int64
    arrays = (counts.astype(np.int32), (unique_keys % n_columns).astype(index_dtype), indptr)
    import scipy.sparse

    # cupyx sparse matrices hold only floats and bools, so integer counts come to the host
    arrays = tuple(to_numpy(a) for a in arrays)
    return scipy.sparse.csr_matrix(arrays, shape=(n, n_columns))

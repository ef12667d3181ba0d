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
from ..errors import invalid, positive_int
from .alphabet import base_digits
from .batch import SequenceBatch, SequencesLike, as_batch

DENSE_MAX_K = 6
#: Largest k: k-mer codes have 2k bits, and token ids (``4**k + 1`` with padding) and column
#: indices stay int32 (``4**15 + 1 < 2**31``).
MAX_K = 15
#: Largest k with ``canonical=True``.
CANONICAL_MAX_K = 12
#: Shared memory a block may use without opting in (48 KiB), and what kmer_counts_dense
#: declares statically beside its dynamic histogram: its copy of the 256-byte digit table
#: (``tests/test_kernels.py`` checks this against ``kernels/kmers.cu``).
SHARED_MEMORY_LIMIT_BYTES = 48 * 1024
KERNEL_STATIC_SHARED_BYTES = 256


def check_k(k: int, *, canonical: bool = False) -> int:
    """Return ``k`` as an int.

    Args:
        k: a k-mer size.
        canonical: whether k-mers are merged with their reverse complements (k <= 12).

    Raises:
        InputError: ``k`` is not an integer in 1..15 (1..12 with ``canonical``).
    """
    k = positive_int("k", k)
    limit = CANONICAL_MAX_K if canonical else MAX_K
    if k > limit:
        with_canonical = " with canonical=True" if canonical else ""
        raise invalid("k", k, f"is too large; use k <= {limit}{with_canonical}")
    return k


def kmer_codes_of_columns(k: int, *, canonical: bool = False) -> np.ndarray:
    """Return the k-mer code (base-4 number, A0 C1 G2 T3) of each count column.

    Args:
        k: k-mer size.
        canonical: keep only canonical k-mers (those not above their reverse complement).

    Returns:
        ``(n_columns,) int64`` codes, increasing.
    """
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
def _column_of_code(k: int, *, canonical: bool) -> np.ndarray:
    """Return the ``(4**k,) int32`` output column of each code (-1 for non-canonical codes)."""
    table = np.full(4**k, -1, dtype=np.int32)
    columns = kmer_codes_of_columns(k, canonical=canonical)
    table[columns] = np.arange(len(columns), dtype=np.int32)
    return table


def kmer_names(k: int, *, canonical: bool = False) -> list[str]:
    """Return the k-mer string of each column of :func:`kmer_counts`.

    Args:
        k: k-mer size.
        canonical: the canonical columns only.

    Raises:
        InputError: ``k`` is not an integer in 1..15 (1..12 with ``canonical``).
    """
    k = check_k(k, canonical=canonical)
    names = ["".join(p) for p in itertools.product("ACGT", repeat=k)]
    if not canonical:
        return names
    return [names[c] for c in kmer_codes_of_columns(k, canonical=True)]


# --- the rolling k-mer code, shared by both CPU twins ---------------------------------------
@numba.njit(inline="always", cache=True, nogil=True)
def _roll(code, rc, run, digit, k, mask, shift):  # pragma: no cover  # noqa: PLR0917 (numba: positional arguments)
    """Extend the k-mer ending at the previous base by the next base.

    Args:
        code: base-4 number of the last k bases (A0 C1 G2 T3, first base most significant).
        rc: that of their reverse complement.
        run: A/C/G/T bases in a row ending at the previous base.
        digit: the next base's digit (:func:`~.alphabet.base_digits`; above 3: not A/C/G/T).
        k: k-mer size.
        mask: ``4**k - 1``.
        shift: ``2 * (k - 1)``.

    Returns:
        ``(code, rc, run, complete)`` at the next base; ``complete``: the k bases ending there
        are all A/C/G/T, so ``code`` and ``rc`` are a k-mer's.
    """
    if digit > 3:
        return code, rc, 0, False
    run += 1
    return ((code << 2) | digit) & mask, (rc >> 2) | ((3 - digit) << shift), run, run >= k


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_counts_dense_cpu(  # noqa: PLR0917 (numba: positional arguments)
    data, offsets, digits, column_of_code, k, canonical, out
):  # pragma: no cover
    mask = (1 << (2 * k)) - 1
    shift = 2 * (k - 1)
    for row in numba.prange(len(offsets) - 1):
        code, rc, run = 0, 0, 0
        out_row = out[row]
        for p in range(offsets[row], offsets[row + 1]):
            code, rc, run, complete = _roll(code, rc, run, digits[data[p]], k, mask, shift)
            if complete:
                # without canonical merging, column == code
                out_row[column_of_code[min(code, rc)] if canonical else code] += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_codes_cpu(data, offsets, digits, k, canonical, codes):  # pragma: no cover  # noqa: PLR0917 (numba: positional arguments)
    mask = (1 << (2 * k)) - 1
    shift = 2 * (k - 1)
    for row in numba.prange(len(offsets) - 1):
        code, rc, run = 0, 0, 0
        for p in range(offsets[row], offsets[row + 1]):
            codes[p] = -1
            code, rc, run, complete = _roll(code, rc, run, digits[data[p]], k, mask, shift)
            if complete:
                codes[p - k + 1] = min(code, rc) if canonical else code


KMER_COUNTS_DENSE = _kernels.Kernel(
    module="kmers",
    function="kmer_counts_dense",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("digits", "const unsigned char*"),
        ("column_of_code", "const int*"),
        ("k", "int"),
        ("canonical", "int"),
        ("n_rows", "long long"),
        ("n_columns", "int"),
        ("use_shared", "int"),
        ("out", "int*"),
    ),
    twin=_kmer_counts_dense_cpu,
)

KMER_CODES = _kernels.Kernel(
    module="kmers",
    function="kmer_codes",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("digits", "const unsigned char*"),
        ("k", "int"),
        ("canonical", "int"),
        ("n_rows", "long long"),
        ("codes", "long long*"),
    ),
    twin=_kmer_codes_cpu,
)


def kmer_counts(
    seqs: SequencesLike,
    k: int,
    *,
    canonical: bool = False,
    sparse: bool | None = None,
    device: str | None = None,
) -> Any:
    """Count the k-mers of each sequence.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        k: k-mer size, 1..15 (canonical: 1..12).
        canonical: merge each k-mer with its reverse complement (columns: canonical k-mers).
        sparse: force CSR (True) or dense (False) output; default dense iff ``k <= 6``.
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(n, n_columns) int32`` counts: a dense array on the device (``4 * n * n_columns``
        bytes), or a SciPy CSR matrix on the host.

    Raises:
        InputError: a bad ``k`` or ``device``, or a record with a non-IUPAC letter.
    """
    batch = as_batch(seqs)
    canonical = bool(canonical)
    k = check_k(k, canonical=canonical)
    device_name = resolve_device(device)
    if sparse is None:
        sparse = k > DENSE_MAX_K
    if sparse:
        return _kmer_counts_sparse(batch, k, canonical=canonical, device=device_name)
    return _kmer_counts_dense(batch, k, canonical=canonical, device=device_name)


def _kmer_counts_dense(batch: SequenceBatch, k: int, *, canonical: bool, device: Device) -> Any:
    column_of_code = _column_of_code(k, canonical=canonical)
    n_columns = int(column_of_code.max()) + 1
    xp = array_module(device)
    use_shared = n_columns * 4 + KERNEL_STATIC_SHARED_BYTES <= SHARED_MEMORY_LIMIT_BYTES
    # the shared-memory kernel writes every row whole; the others add into zeros
    alloc = xp.empty if device == "gpu" and use_shared else xp.zeros
    out = alloc((len(batch), n_columns), dtype=np.int32)
    data, offsets = batch.arrays(device)
    KMER_COUNTS_DENSE(
        device,
        grid=_kernels.block_per_row_grid(len(batch)),
        shared_mem=n_columns * 4 if use_shared else 0,
        data=data,
        offsets=offsets,
        digits=base_digits("ACGT"),
        column_of_code=column_of_code,
        k=k,
        canonical=canonical,
        n_rows=len(batch),
        n_columns=n_columns,
        use_shared=use_shared,
        out=out,
    )
    return out


def _kmer_counts_sparse(batch: SequenceBatch, k: int, *, canonical: bool, device: Device) -> Any:
    xp = array_module(device)
    n = len(batch)
    codes = xp.empty(len(batch.data), dtype=np.int64)
    data, offsets = batch.arrays(device)
    KMER_CODES(
        device,
        grid=_kernels.rows_grid(n, batch.max_length),
        data=data,
        offsets=offsets,
        digits=base_digits("ACGT"),
        k=k,
        canonical=canonical,
        n_rows=n,
        codes=codes,
    )
    column_codes = kmer_codes_of_columns(k, canonical=canonical)
    n_columns = len(column_codes)
    positions = xp.flatnonzero(codes >= 0)
    rows = xp.searchsorted(offsets, positions, side="right") - 1
    columns = codes[positions]
    if canonical:
        columns = xp.searchsorted(xp.asarray(column_codes), columns)
    unique_keys, counts = xp.unique(rows * n_columns + columns, return_counts=True)
    indptr = xp.searchsorted(unique_keys // n_columns, xp.arange(n + 1, dtype=np.int64))
    # 4**MAX_K columns: int32 indices (check_k bounds k)
    arrays = (counts.astype(np.int32), (unique_keys % n_columns).astype(np.int32), indptr)
    import scipy.sparse

    # cupyx sparse matrices hold only floats and bools, so integer counts come to the host
    arrays = tuple(to_numpy(a) for a in arrays)
    return scipy.sparse.csr_matrix(arrays, shape=(n, n_columns))

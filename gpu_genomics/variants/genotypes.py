"""Genotype math on ``call_genotype`` arrays: CuPy array code on the GPU, numba on the CPU.

:func:`chunk_figures` is the exception on the GPU: one CUDA kernel (``kernels/genotypes.cu``).

The CPU twins (``_*_cpu``) make one pass over the calls and give the same integers as the
array code, which also serves the CPU for the inputs they do not take. The ``vcf`` job takes
every per-chunk statistic (dosage, allele counts -> call rates and frequencies, per-sample
missing counts) from one such pass, :func:`chunk_figures`. Input everywhere:
``gt`` ``(variants, samples, ploidy) int8`` as read by :mod:`gpu_genomics.variants.reader`
(allele indices; ``-1`` missing allele; ``-2`` fill for calls of lower ploidy). Results come
back on the device that computed them (NumPy on ``"cpu"``, CuPy on ``"gpu"``); integer results
are identical on both devices, float results agree to 1e-6 relative (frequencies and rates
are the same integer ratios in float64 on both).

Definitions (``docs/variants.md#dosage``, ``docs/variants.md#qc`` and
``docs/variants.md#standardization``):

* dosage: number of counted alleles in a call (non-REF for ``nonref``, allele ``k`` in a split
  column); a call with any missing allele is missing: ``-1`` in int8, NaN in float, never 0;
* call rate: fully called calls / samples, per variant;
* allele frequency: counted alleles / called alleles (``>= 0``), per variant or column; NaN
  when no allele is called; MAF = ``min(AF, 1 - AF)``;
* sample missing rate: calls with a missing allele / variants, per sample;
* standardization: ``(dosage - 2p) / sqrt(2p(1-p))`` with missing calls imputed to ``2p``
  (so 0 after standardization); columns with ``p`` in {0, 1} or NaN are dropped. That is the
  diploid case; a call of ploidy ``k`` uses ``k p`` for ``2p`` (:func:`standardize`).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from .. import _kernels
from ..device import (
    Device,
    array_module,
    array_module_of,
    is_gpu_array,
    resolve_device,
    to_numpy,
)
from ..errors import InputError, check_range

MULTIALLELIC_MODES = ("nonref", "split")


def _prepare(gt: Any, device: str | None) -> tuple[Any, Device]:
    device_name = resolve_device(device)
    xp = array_module(device_name)
    if device_name == "cpu" and is_gpu_array(gt):
        gt = gt.get()
    gt = xp.asarray(gt)
    if gt.ndim != 3:
        raise InputError(f"call_genotype must be (variants, samples, ploidy); got {gt.shape}")
    if gt.dtype != np.int8:
        gt = gt.astype(np.int8)
    return gt, device_name


# --- CPU twins: one pass over the calls (numba), the same integers as the array code below ---
@numba.njit(cache=True, nogil=True, inline="always")
def _missing_call(gt, i, j):  # pragma: no cover  (numba)
    """Call ``(i, j)`` has a missing allele, or no allele at all (only fill)."""
    missing = False
    present = False
    for a in range(gt.shape[2]):
        value = gt[i, j, a]
        if value == -1:
            missing = True
        if value != -2:
            present = True
    return missing or not present


@numba.njit(parallel=True, cache=True, nogil=True)
def _dosage_cpu(gt, allele, out):  # pragma: no cover  (numba)
    """``out[i, j]``: copies of ``allele[i]`` (-1: any non-REF) in call ``(i, j)``; -1 missing."""
    n, n_samples, ploidy = gt.shape
    for i in numba.prange(n):
        target = allele[i]
        for j in range(n_samples):
            count = 0
            for a in range(ploidy):
                value = gt[i, j, a]
                if (target < 0 and value > 0) or (target >= 0 and value == target):
                    count += 1
            out[i, j] = -1 if _missing_call(gt, i, j) else count


@numba.njit(parallel=True, cache=True, nogil=True)
def _chunk_figures_cpu(  # noqa: PLR0912, PLR0915, PLR0917 (one numba kernel)
    gt, pairs, want_dosage, dosage, missing_calls, counts, sample_rows, partial
):  # pragma: no cover  (numba)
    """One pass over every call of ``gt``: its dosage, its row's figures, its sample's count.

    Rows are cut into ``partial.shape[0]`` blocks of consecutive rows, one per thread. For
    row ``i``: ``missing_calls[i]`` (calls with a missing allele, or only fill),
    ``counts[i, k]`` (alleles ``k`` called, ``0 <= k < width``) and ``dosage[i, j]``
    (non-REF alleles of call ``(i, j)``; -1 missing) when ``want_dosage`` (otherwise
    ``dosage`` is ``(blocks, samples)`` scratch, row ``b`` for block ``b``). Block ``b`` adds
    the missing calls of the rows with ``sample_rows[i]`` into ``partial[b, j]`` (the caller
    sums the blocks). ``pairs``: ``gt`` as ``(n, samples) uint16`` (both alleles of a diploid
    call, the first in the low byte), or empty: diploid calls are then read as words, whose
    contiguous loads and unconditional writes LLVM vectorises (3x the speed of reading the
    alleles apart); the scratch and partial rows stay in cache.
    """
    n, n_samples, ploidy = gt.shape
    width = counts.shape[1]
    n_blocks = partial.shape[0]
    for b in numba.prange(n_blocks):
        lo = b * n // n_blocks
        hi = (b + 1) * n // n_blocks
        part = partial[b]
        for i in range(lo, hi):
            row = gt[i]
            out = dosage[i] if want_dosage else dosage[b]
            counted = np.int64(sample_rows[i])
            n_missing = 0
            n_called = 0
            n_nonref = 0
            most = np.int8(0)
            if ploidy == 2 and pairs.shape[0] == n:  # branch-free: the common case
                words = pairs[i]
                for j in range(n_samples):
                    w = words[j]
                    a0 = np.int8(w & 0xFF)
                    a1 = np.int8(w >> 8)
                    missing = (a0 == -1) | (a1 == -1) | ((a0 == -2) & (a1 == -2))
                    non_ref = np.int8(a0 > 0) + np.int8(a1 > 0)
                    n_called += np.int64(a0 >= 0) + np.int64(a1 >= 0)
                    n_nonref += non_ref
                    n_missing += missing
                    most = max(most, a0, a1)
                    out[j] = np.int8(-1) if missing else np.int8(non_ref)
                    part[j] += counted & np.int64(missing)
            else:
                for j in range(n_samples):
                    missing = False
                    present = False
                    non_ref = 0
                    for a in range(ploidy):
                        value = row[j, a]
                        missing |= value == -1
                        present |= value != -2
                        non_ref += value > 0
                        n_called += value >= 0
                        most = max(most, value)
                    missing |= not present
                    n_nonref += non_ref
                    n_missing += missing
                    out[j] = np.int8(-1) if missing else np.int8(non_ref)
                    part[j] += counted & np.int64(missing)
            missing_calls[i] = n_missing
            if width > 0:
                counts[i, 0] = n_called - n_nonref
            if most <= 1:
                if width > 1:
                    counts[i, 1] = n_nonref
            else:  # alleles above 1: count each (multi-allelic rows: a second pass over it)
                for j in range(n_samples):
                    for a in range(ploidy):
                        value = row[j, a]
                        if 0 < value < width:
                            counts[i, value] += 1


def _diploid_words(gt: np.ndarray) -> np.ndarray:
    """``(n, samples) uint16`` view of C-contiguous diploid calls, or an empty array.

    The first allele is in the low byte, so little-endian machines only; empty: the kernel
    reads the alleles apart.
    """
    n, n_samples, ploidy = gt.shape
    if ploidy != 2 or sys.byteorder != "little" or not gt.flags.c_contiguous:
        return np.zeros((0, 0), dtype=np.uint16)
    return gt.view(np.uint16).reshape(n, n_samples)


def _row_alleles(allele: Any, n: int) -> np.ndarray | None:
    """``allele`` as one counted allele per row (-1: non-REF), or None (another shape)."""
    if allele is None:
        return np.full(n, -1, dtype=np.int16)
    values = np.asarray(allele)
    if values.ndim == 0:
        return np.full(n, int(values), dtype=np.int16)
    if values.shape in ((n,), (n, 1)):
        return values.reshape(n).astype(np.int16)
    return None


#: Bytes of per-thread sample rows (counts, scratch) :func:`chunk_figures` holds at most.
PARTIAL_BYTES = 32 << 20


def _row_blocks(n: int, n_samples: int) -> int:
    """Blocks of rows for :func:`_chunk_figures_cpu`: one per thread, partials capped."""
    blocks = max(1, min(numba.get_num_threads(), n))
    if n_samples:
        blocks = max(1, min(blocks, PARTIAL_BYTES // (9 * n_samples)))
    return blocks


@dataclass
class ChunkFigures:
    """Every per-chunk statistic of a ``(n, samples, ploidy)`` ``call_genotype`` chunk.

    Attributes (NumPy on ``"cpu"``, CuPy on ``"gpu"``):
        missing_calls: ``(n,) int64`` calls with a missing allele (or only fill), per row.
        allele_counts: ``(n, width) int64`` called alleles ``k`` per row (``0 <= k < width``).
        dosage: ``(n, samples) int8`` non-REF alleles per call, -1 missing (None: not asked).
        sample_missing: ``(samples,) int64`` missing calls of the rows asked, per sample
            (None: not asked).
        n_samples: the samples axis' length.
    """

    missing_calls: Any
    allele_counts: Any
    dosage: Any | None
    sample_missing: Any | None
    n_samples: int

    def call_rate(self) -> Any:
        """``(n,) float64``: fully called calls / samples (NaN without samples)."""
        xp = array_module_of(self.missing_calls)
        if self.n_samples == 0:
            return xp.full(self.missing_calls.shape[0], xp.nan)
        return 1.0 - self.missing_calls / self.n_samples

    def frequency(self, rows: Any = None, alleles: Any = None) -> Any:
        """Frequency of allele ``alleles[c]`` (-1: non-REF) among the called alleles of ``rows[c]``.

        ``rows`` ``(m,) int64`` (None: every row, counting non-REF alleles); ``alleles``
        ``(m,)`` integers (None: -1 for all). ``(m,) float64``; NaN where no allele is called.
        """
        counts = self.allele_counts
        xp = array_module_of(counts)
        if rows is None:
            rows = xp.arange(counts.shape[0])
        rows = xp.asarray(rows, dtype=np.int64)
        alleles = (
            xp.full(rows.shape[0], -1, dtype=np.int64)
            if alleles is None
            else xp.asarray(alleles, dtype=np.int64).reshape(-1)
        )
        called = counts.sum(axis=1)[rows]
        width = counts.shape[1]
        hits = counts[rows, xp.clip(alleles, 0, max(width - 1, 0))] if width else called * 0
        non_ref = called - (counts[rows, 0] if width else 0)
        counted = xp.where(alleles < 0, non_ref, xp.where(alleles < width, hits, 0))
        return xp.where(called > 0, counted / xp.maximum(called, 1), xp.nan)


def chunk_figures(
    gt: Any,
    *,
    dosage: bool = True,
    sample_rows: Any = None,
    width: int | None = None,
    device: str | None = None,
) -> ChunkFigures:
    """Every per-chunk statistic of ``gt`` in one pass over its calls (:class:`ChunkFigures`).

    On the CPU one numba kernel reads each call once and writes its dosage, its row's missing
    and allele counts and, for the rows asked, its sample's missing count; no whole-chunk
    temporary beyond the outputs (per-thread sample counts: at most :data:`PARTIAL_BYTES`).
    On the GPU one CUDA kernel (``genotype_figures`` in ``kernels/genotypes.cu``) does the same
    in one pass and gives the same integers; no temporary beyond the outputs either.

    Args:
        gt: ``(n, samples, ploidy)`` int8 calls (-1 missing allele, -2 fill).
        dosage: also the ``(n, samples) int8`` non-REF dosage.
        sample_rows: ``(n,) bool``: the rows whose missing calls are counted per sample;
            None: no per-sample counts.
        width: allele counts per row (every allele index in ``gt`` must be below it); None:
            ``gt``'s largest allele + 1.
        device: ``"auto" | "gpu" | "cpu"``.

    Memory: the outputs (``n * samples`` bytes of dosage, ``8 n width``, ``8 samples``).
    """
    gt, device_name = _prepare(gt, device)
    n = gt.shape[0]
    if width is None:
        width = max(int(gt.max()) + 1, 1) if gt.size else 1
    mask = None
    if sample_rows is not None:
        mask = np.asarray(to_numpy(sample_rows), dtype=bool).reshape(n)
    return _figures(gt, device_name, dosage=dosage, mask=mask, width=width)


def _genotype_figures_twin(  # noqa: PLR0917 (the kernel's parameters)
    gt, sample_rows, want_dosage, want_samples, dosage, missing_calls, counts, sample_missing
):
    """CPU twin of ``genotype_figures``: :func:`_chunk_figures_cpu` into zeroed outputs.

    ``gt`` ``(n, samples, ploidy) int8``; ``sample_rows`` ``(n,) uint8`` 0/1 (read when
    ``want_samples``); ``dosage`` ``(n, samples) int8`` (written when ``want_dosage``);
    ``counts`` ``(n, width)``; ``sample_missing`` ``(samples,)`` is added to.
    """
    n, n_samples, _ = gt.shape
    blocks = _row_blocks(n, n_samples)
    out = dosage if want_dosage else np.empty((blocks, n_samples), dtype=np.int8)
    rows = sample_rows.view(np.bool_) if want_samples else np.zeros(n, dtype=bool)
    partial = np.zeros((blocks, n_samples), dtype=np.int64)
    _chunk_figures_cpu(
        gt, _diploid_words(gt), bool(want_dosage), out, missing_calls, counts, rows, partial
    )
    if want_samples:
        sample_missing += partial.sum(axis=0)


GENOTYPE_FIGURES = _kernels.Kernel(
    module="genotypes",
    function="genotype_figures",
    params=(
        ("gt", "const signed char*"),
        ("sample_rows", "const unsigned char*"),
        ("n_rows", "long long"),
        ("n_samples", "long long"),
        ("ploidy", "int"),
        ("width", "int"),
        ("tile_rows", "int"),
        ("want_dosage", "int"),
        ("want_samples", "int"),
        ("dosage", "signed char*"),
        ("missing_calls", "long long*"),
        ("counts", "long long*"),
        ("sample_missing", "long long*"),
    ),
    twin=_genotype_figures_twin,
)

#: Rows of a tile of ``genotype_figures`` at most (each block sums the rows of a tile in
#: shared memory, then adds them with one atomic per row and counter).
FIGURES_TILE_ROWS = 32
#: Blocks ``genotype_figures`` aims for: tiles shrink (down to one row) to give the GPU that
#: many blocks, and grow (to :data:`FIGURES_TILE_ROWS`) to add fewer atomics.
FIGURES_BLOCKS = 2048


def _figures_launch(n: int, n_samples: int, width: int) -> tuple[_kernels.Grid, int, int]:
    """``(grid, tile_rows, shared_mem bytes)`` of ``genotype_figures``."""
    if n == 0 or n_samples == 0:
        return _kernels.Grid((0,)), 1, 0
    x = min(-(-n_samples // _kernels.THREADS), _kernels.MAX_GRID_X)
    tile_rows = max(1, min(FIGURES_TILE_ROWS, n * x // FIGURES_BLOCKS))
    y = min(-(-n // tile_rows), _kernels.MAX_GRID_Y)
    bins = max(0, min(width, 128) - 2)  # alleles 2 .. width - 1 (int8: at most 127)
    shared = (3 * (_kernels.THREADS // 32) + bins) * tile_rows * 8
    return _kernels.Grid((x, y)), tile_rows, shared


def _figures(
    gt: Any, device_name: str, *, dosage: bool, mask: np.ndarray | None, width: int
) -> ChunkFigures:
    """:func:`chunk_figures` by ``genotype_figures``: the CUDA kernel, or its numba twin."""
    xp = array_module_of(gt)
    gt = xp.ascontiguousarray(gt)
    n, n_samples, ploidy = gt.shape
    missing_calls = xp.zeros(n, dtype=np.int64)
    counts = xp.zeros((n, width), dtype=np.int64)
    out = xp.empty((n, n_samples) if dosage else (0,), dtype=np.int8)  # every call written
    sample_missing = xp.zeros(n_samples if mask is not None else 0, dtype=np.int64)
    rows = np.ascontiguousarray(mask if mask is not None else np.zeros(0, bool)).view(np.uint8)
    grid, tile_rows, shared_mem = _figures_launch(n, n_samples, width)
    GENOTYPE_FIGURES(
        device_name,
        grid=grid,
        shared_mem=shared_mem,
        gt=gt,
        sample_rows=rows,
        n_rows=n,
        n_samples=n_samples,
        ploidy=ploidy,
        width=width,
        tile_rows=tile_rows,
        want_dosage=dosage,
        want_samples=mask is not None,
        dosage=out,
        missing_calls=missing_calls,
        counts=counts,
        sample_missing=sample_missing,
    )
    return ChunkFigures(
        missing_calls=missing_calls,
        allele_counts=counts,
        dosage=out if dosage else None,
        sample_missing=sample_missing if mask is not None else None,
        n_samples=n_samples,
    )


@numba.njit(parallel=True, cache=True, nogil=True)
def _missing_in_rows_cpu(dosage, rows, out):  # pragma: no cover  (numba)
    """``out[j]``: calls ``(rows[r], j)`` with dosage -1, one block of samples per thread."""
    n_samples = dosage.shape[1]
    block = 4096
    for b in numba.prange((n_samples + block - 1) // block):
        stop = min(n_samples, (b + 1) * block)
        for r in range(len(rows)):
            i = rows[r]
            for j in range(b * block, stop):
                out[j] += dosage[i, j] == -1


def missing_in_rows(dosage_matrix: Any, rows: Any) -> Any:
    """``(samples,) int64``: missing calls (dosage -1) of ``dosage_matrix[rows]``, per sample.

    ``dosage_matrix``: a :attr:`ChunkFigures.dosage` ``(n, samples) int8``; ``rows``
    ``(m,)`` row indices. Runs where the dosages live; no temporary on the CPU.
    """
    xp = array_module_of(dosage_matrix)
    if xp is not np:
        return (dosage_matrix[xp.asarray(rows)] == -1).sum(axis=0, dtype=np.int64)
    out = np.zeros(dosage_matrix.shape[1], dtype=np.int64)
    _missing_in_rows_cpu(dosage_matrix, np.asarray(rows, dtype=np.int64), out)
    return out


def _cpu_counts(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(missing calls (n,), allele counts (n, alleles))`` per row, one pass (CPU)."""
    figures = chunk_figures(gt, dosage=False, device="cpu")
    return figures.missing_calls, figures.allele_counts


def _cpu_frequency(counts: np.ndarray, rows: np.ndarray, alleles: np.ndarray) -> np.ndarray:
    """Frequency of allele ``alleles[c]`` (-1: non-REF) among the called alleles of ``rows[c]``.

    From the counts of :func:`_cpu_counts`; NaN where no allele is called.
    """
    called = counts.sum(axis=1)[rows]
    width = counts.shape[1]
    alleles = np.asarray(alleles, dtype=np.int64)
    hits = counts[rows, np.clip(alleles, 0, width - 1)]
    counted = np.where(alleles < 0, called - counts[rows, 0], np.where(alleles < width, hits, 0))
    return np.where(called > 0, counted / np.maximum(called, 1), np.nan)


def _count_and_missing(gt: Any, allele: Any = None) -> tuple[Any, Any]:
    """Count the non-REF alleles (or copies of ``allele``) of each call; flag missing calls.

    Returns ``(counts int16, missing bool)`` per call, computed one allele slot at a time
    (reductions over a short last axis are slow in NumPy). ``allele``: None (non-REF), an int,
    or an array that broadcasts against ``gt[:, :, 0]``.
    """
    xp = array_module_of(gt)
    shape = gt.shape[:2]
    counts = xp.zeros(shape, dtype=np.int16)
    missing = xp.zeros(shape, dtype=bool)
    present = xp.zeros(shape, dtype=bool)
    for slot in range(gt.shape[2]):
        column = gt[:, :, slot]
        counts += (column > 0) if allele is None else (column == allele)
        missing |= column == -1
        present |= column != -2
    return counts, missing | ~present


def dosage(
    gt: Any, *, allele: int | None = None, dtype: Any = np.int8, device: str | None = None
) -> Any:
    """``(variants, samples)`` allele counts per call.

    Counts non-REF alleles (``allele=None``) or copies of allele ``allele``. Missing calls are
    ``-1`` for integer ``dtype`` and NaN for float ``dtype``.
    """
    gt, device_name = _prepare(gt, device)
    xp = array_module(device_name)
    dtype = np.dtype(dtype)
    rows = _row_alleles(allele, gt.shape[0]) if device_name == "cpu" else None
    if rows is not None and dtype == np.int8:
        out = np.empty(gt.shape[:2], dtype=np.int8)
        _dosage_cpu(np.ascontiguousarray(gt), rows, out)
        return out
    counts, missing = _count_and_missing(gt, allele)
    if dtype.kind == "f":
        return xp.where(missing, xp.nan, counts.astype(dtype)).astype(dtype)
    return xp.where(missing, -1, counts).astype(dtype)


def split_columns(n_alleles: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return the dosage columns of ``split`` handling, one per ALT allele.

    Returns ``(column_variant, column_allele)``, ``(columns,) int64/int8``: one column per ALT
    allele (variants with no ALT get none), in variant order.
    """
    n_alleles = np.asarray(n_alleles, dtype=np.int64)
    n_alts = np.maximum(n_alleles - 1, 0)
    column_variant = np.repeat(np.arange(len(n_alleles), dtype=np.int64), n_alts)
    first = np.cumsum(n_alts) - n_alts
    column_allele = (np.arange(len(column_variant)) - np.repeat(first, n_alts) + 1).astype(np.int8)
    return column_variant, column_allele


def split_dosage(
    gt: Any,
    n_alleles: Any,
    *,
    dtype: Any = np.int8,
    device: str | None = None,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """One dosage column per ALT allele: ``(columns, samples)`` copies of that allele.

    Returns ``(dosage, column_variant, column_allele)`` (see :func:`split_columns`); missing
    calls as in :func:`dosage`.
    """
    gt, device_name = _prepare(gt, device)
    xp = array_module(device_name)
    column_variant, column_allele = split_columns(n_alleles)
    rows = gt[xp.asarray(column_variant)]
    alleles = xp.asarray(column_allele)[:, None, None]
    counts, missing = _count_and_missing(rows, alleles[:, :, 0])
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        out = xp.where(missing, xp.nan, counts.astype(dtype)).astype(dtype)
    else:
        out = xp.where(missing, -1, counts).astype(dtype)
    return out, column_variant, column_allele


def variant_call_rate(gt: Any, *, device: str | None = None) -> Any:
    """``(variants,) float64``: fully called calls / samples (NaN without samples)."""
    gt, device_name = _prepare(gt, device)
    xp = array_module(device_name)
    n_samples = gt.shape[1]
    if n_samples == 0:
        return xp.full(gt.shape[0], xp.nan)
    if device_name == "cpu":
        return 1.0 - _cpu_counts(gt)[0] / n_samples
    missing = _count_and_missing(gt)[1]
    return 1.0 - missing.sum(axis=1) / n_samples


def sample_missing_rate(gt: Any, *, device: str | None = None) -> Any:
    """``(samples,) float64``: calls with a missing allele / variants (NaN without variants)."""
    gt, device_name = _prepare(gt, device)
    xp = array_module(device_name)
    missing = _count_and_missing(gt)[1]
    if gt.shape[0] == 0:
        return xp.full(gt.shape[1], xp.nan)
    return missing.sum(axis=0) / gt.shape[0]


def sample_missing_counts(gt: Any, *, device: str | None = None) -> Any:
    """``(samples,) int64``: calls with a missing allele, per sample (to add over chunks)."""
    gt, device_name = _prepare(gt, device)
    if device_name == "cpu":
        rows = np.ones(gt.shape[0], dtype=bool)
        return chunk_figures(gt, dosage=False, sample_rows=rows, device="cpu").sample_missing
    return _count_and_missing(gt)[1].sum(axis=0, dtype=np.int64)


def allele_frequency(gt: Any, *, allele: Any = None, device: str | None = None) -> Any:
    """Return the ``(variants,) float64`` frequency of the counted allele of each variant.

    The counted alleles are the non-REF alleles (``allele=None``) or allele ``allele`` (an int,
    or a ``(variants,)`` array of one allele per row); the frequency is among the called
    alleles (>= 0) of each variant. NaN where no allele is called.
    """
    gt, device_name = _prepare(gt, device)
    xp = array_module(device_name)
    rows = _row_alleles(allele, gt.shape[0]) if device_name == "cpu" else None
    if rows is not None:
        return _cpu_frequency(_cpu_counts(gt)[1], np.arange(gt.shape[0]), rows)
    target = None if allele is None else xp.asarray(allele)
    if target is not None and target.ndim == 1:
        target = target[:, None]
    counted = xp.zeros(gt.shape[0], dtype=np.int64)
    called = xp.zeros(gt.shape[0], dtype=np.int64)
    for slot in range(gt.shape[2]):
        column = gt[:, :, slot]
        hit = (column > 0) if target is None else (column == target)
        counted += hit.sum(axis=1)
        called += (column >= 0).sum(axis=1)
    return xp.where(called > 0, counted / xp.maximum(called, 1), xp.nan)


def variant_figures(
    gt: Any,
    *,
    column_variant: np.ndarray | None = None,
    column_allele: np.ndarray | None = None,
    device: str | None = None,
) -> tuple[Any, Any]:
    """``(call rate per variant, allele frequency per column)`` in one pass over the calls.

    Columns: one per variant counting the non-REF alleles (``column_variant`` None), or
    column ``c`` counting allele ``column_allele[c]`` of variant ``column_variant[c]``. The
    same values as :func:`variant_call_rate` and :func:`allele_frequency`.
    """
    gt, device_name = _prepare(gt, device)
    if device_name != "cpu" or gt.shape[1] == 0:
        call_rate = variant_call_rate(gt, device=device_name)
        if column_variant is None:
            return call_rate, allele_frequency(gt, device=device_name)
        xp = array_module(device_name)
        rows, alleles = xp.asarray(column_variant), xp.asarray(column_allele)
        return call_rate, allele_frequency(gt[rows], allele=alleles, device=device_name)
    missing, counts = _cpu_counts(gt)
    if column_variant is None:
        af = _cpu_frequency(counts, np.arange(gt.shape[0]), np.full(gt.shape[0], -1))
    else:
        af = _cpu_frequency(counts, np.asarray(column_variant, np.int64), column_allele)
    return 1.0 - missing / gt.shape[1], af


def minor_allele_frequency(af: Any) -> Any:
    """``min(af, 1 - af)`` elementwise (NaN stays NaN)."""
    xp = array_module_of(af)
    return xp.minimum(af, 1.0 - af)


def standardize(
    dosage_matrix: Any, af: Any, *, ploidy: Any = 2, dtype: Any = np.float32
) -> tuple[Any, Any]:
    """Standardize dosages for ML/PCA (``docs/variants.md#standardization``).

    A call of ploidy ``k`` is ``Binomial(k, p)`` under Hardy-Weinberg, so it becomes
    ``(dosage - k p) / sqrt(k p (1 - p))`` (for ``k = 2``: mean ``2p``, scale ``sqrt(2p(1-p))``).
    Runs where the inputs live.

    Args:
        dosage_matrix: ``(columns, samples)``, int8 with -1 for missing, or float with NaN.
        af: ``(columns,)`` the counted allele's frequency.
        ploidy: the number of alleles of each call: a scalar (2 for diploid data) or a
            ``(columns, samples)`` integer array (haploid calls beside diploid ones).
        dtype: the dtype of the standardized values.

    Returns:
        ``(standardized, kept)``: ``(kept columns, samples)`` of ``dtype`` with missing calls
        imputed to the mean (0 after standardizing), and ``kept`` ``(columns,) bool`` (False
        for monomorphic columns: ``p`` in {0, 1} or NaN).
    """
    xp = array_module_of(dosage_matrix)
    af = xp.asarray(af, dtype=np.float64)
    kept = (af > 0) & (af < 1)
    x = dosage_matrix[kept]
    p = af[kept][:, None]
    k = xp.asarray(ploidy, dtype=np.float64)
    if k.ndim == 2:
        k = k[kept]
    values = x.astype(np.float64)
    missing = xp.isnan(values) if x.dtype.kind == "f" else x < 0
    missing |= k <= 0  # no allele at all in this call (fill only)
    k = xp.maximum(k, 1.0)
    out = xp.where(missing, 0.0, (values - k * p) / xp.sqrt(k * p * (1.0 - p)))
    return out.astype(dtype), kept


def check_filter_thresholds(*, min_maf: float, max_missing: float) -> None:
    """Check the variant filter thresholds.

    Raises:
        InputError: unless ``0 <= min_maf <= 0.5`` and ``0 <= max_missing <= 1``.
    """
    check_range("min_maf", min_maf, 0.0, 0.5)
    check_range("max_missing", max_missing, 0.0, 1.0)


def variant_filter(
    maf: Any,
    call_rate: Any,
    n_alleles: Any,
    *,
    min_maf: float = 0.0,
    max_missing: float = 1.0,
    biallelic_only: bool = False,
) -> Any:
    """Return the ``(n,) bool`` mask of the columns that pass the filters (``docs/variants.md#qc``).

    The columns kept have ``maf >= min_maf`` (NaN MAF fails when ``min_maf > 0``), missing rate
    ``1 - call_rate <= max_missing``, and exactly 2 alleles when ``biallelic_only``. Inputs are
    ``(n,)`` arrays on one device.
    """
    xp = array_module_of(maf)
    check_filter_thresholds(min_maf=min_maf, max_missing=max_missing)
    keep = xp.ones(maf.shape, dtype=bool)
    if min_maf > 0:
        keep &= maf >= min_maf
    if max_missing < 1:
        keep &= (1.0 - xp.asarray(call_rate)) <= max_missing + 1e-12
    if biallelic_only:
        keep &= xp.asarray(n_alleles) == 2
    return keep


MAF_BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def maf_spectrum(maf: np.ndarray) -> list[tuple[str, int]]:
    """Count the ``maf`` values in the bins of :data:`MAF_BINS` (last bin closed).

    The counts come as ``[("[0, 0.01)", n), ...]``; NaN values are counted under ``"NaN"``.
    """
    maf = np.asarray(maf, dtype=np.float64)
    counts, _ = np.histogram(maf[~np.isnan(maf)], bins=MAF_BINS)
    labels = [
        f"[{lo:g}, {hi:g}{']' if k == len(MAF_BINS) - 2 else ')'}"
        for k, (lo, hi) in enumerate(itertools.pairwise(MAF_BINS))
    ]
    spectrum = list(zip(labels, counts.tolist(), strict=True))
    n_nan = int(np.isnan(maf).sum())
    if n_nan:
        spectrum.append(("NaN", n_nan))
    return spectrum


__all__ = [
    "MAF_BINS",
    "MULTIALLELIC_MODES",
    "ChunkFigures",
    "allele_frequency",
    "check_filter_thresholds",
    "chunk_figures",
    "dosage",
    "maf_spectrum",
    "minor_allele_frequency",
    "missing_in_rows",
    "sample_missing_counts",
    "sample_missing_rate",
    "split_columns",
    "split_dosage",
    "standardize",
    "variant_call_rate",
    "variant_filter",
]

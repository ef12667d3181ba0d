"""Turning BED peaks into fixed-length labelled regions: ``basset``, ``hull`` and ``none`` modes.

Functions over DataFrames in the style of bioframe. Peaks are a DataFrame with columns
``chrom`` (int32 index into the reference's chromosome list), ``start``, ``end`` (int64,
0-based half-open), ``minus`` (bool, strand ``-``) and ``label`` (int32 label column). The
result is a :class:`Regions`: windows of exactly ``length`` bases sorted by chromosome, start and
strand (+ first), each with a multi-hot label row.

Semantics (``docs/intervals.md#basset-merge``, ``#hull-merge``, ``#none-merge``):

* ``basset``: Basset's ``preprocess_features.py``. Each peak becomes its midpoint
  ``(start + end) // 2`` and then a window of ``length`` around it (:func:`windows_at`); per
  (chromosome, strand), windows in midpoint order (Basset sorts ``[mid, mid + 1)`` with
  sortBed) form groups while ``open_end - min_overlap > start`` (more than ``min_overlap``
  bases of overlap with the group's furthest end); inside a group the adjacent pair with the
  largest overlap ``end_i - start_(i+1)`` (leftmost on ties) is merged while that overlap is at
  least ``min_overlap``, into a window centred at ``int(0.5 + (m1*w1 + m2*w2) / (w1 + w2))`` with
  ``m`` the windows' midpoints and ``w = 1 + number of labels``; labels are unioned.
* ``hull``: ``bedtools merge -d -min_overlap`` over all peaks regardless of strand (a peak joins
  the cluster when ``start <= furthest_end - min_overlap``); the window is centred on the hull's
  midpoint ``(start + end) // 2``; strand ``+``.
* ``none``: one window per peak at its midpoint, strand kept.

With a ``summit`` column (``center="summit"``), a peak's position in ``basset`` and ``none``
is its summit instead of its midpoint.

In every mode windows are shifted inward at chromosome ends, and identical windows (same
chromosome, start and strand) are kept once with their labels unioned.

Each mode is one sort of the rows (:func:`sort_order`: NumPy on the host, or cuDF with
``device="gpu"``; rows with equal keys are interchangeable, so both give the same result) and
then passes over the sorted NumPy arrays: the hull clusters (:func:`merge_intervals`) and
Basset's groups and greedy merge run in numba, one pass per chromosome (and strand), and a
second sort keeps identical windows once with their labels unioned.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import numba
import numpy as np

from ..device import resolve_device
from ..errors import check_choice

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("gpu_genomics")

MergeMode = Literal["basset", "hull", "none"]
MERGE_MODES = ("basset", "hull", "none")


@dataclass
class Regions:
    """Fixed-length labelled regions, sorted by (chrom, start, minus).

    Attributes:
        chrom: ``(n,) int32`` index into the reference's chromosomes.
        start: ``(n,) int64`` 0-based window start; every window is ``length`` bases.
        minus: ``(n,) bool`` True for ``-`` strand regions (sequence reverse-complemented).
        labels: ``(n, K) uint8`` multi-hot label matrix.
        negative: ``(n,) bool`` background windows sampled by ``negatives`` (their labels all
            zero), or None when the job samples none.
    """

    chrom: np.ndarray
    start: np.ndarray
    minus: np.ndarray
    labels: np.ndarray
    negative: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.chrom)

    def subset(self, rows: np.ndarray) -> Regions:
        """The regions selected by a boolean mask or index array, order kept."""
        negative = None if self.negative is None else self.negative[rows]
        return Regions(
            self.chrom[rows], self.start[rows], self.minus[rows], self.labels[rows], negative
        )


def windows_at(midpoints: Any, length: int, chrom_lengths: Any) -> Any:
    """Return the start of the ``length``-base window around each midpoint.

    The window is shifted inward at both ends: ``max(0, mid - length // 2)``, then
    ``chrom_length - length`` where the window would run past the chromosome's end (Basset's
    ``Peak.extend``; ``docs/intervals.md#windows``). Chromosomes are at least ``length`` long.
    Takes NumPy arrays or pandas/cuDF Series (then ``chrom_lengths`` is a Series too).
    """
    starts = midpoints - length // 2
    last = chrom_lengths - length
    if isinstance(starts, np.ndarray):
        return np.minimum(np.maximum(starts, 0), last)
    starts = starts.where(starts > 0, 0)
    return starts.where(starts <= last, last)


@functools.cache
def _dataframe_library(device: str) -> ModuleType | None:
    """Return cuDF on the GPU when it is importable, else None (rows are sorted with NumPy).

    The fallback is logged once: CuPy without cuDF still runs the sequence kernels on the GPU.
    """
    if device != "gpu":
        return None
    try:
        import cudf
    except Exception as exc:
        log.info(
            "cuDF is not importable (%s: %s); sorting intervals on the CPU",
            type(exc).__name__,
            exc,
        )
        return None
    return cudf


def make_regions(
    peaks: pd.DataFrame,
    mode: MergeMode,
    *,
    length: int,
    min_overlap: int,
    chrom_sizes: np.ndarray,
    n_labels: int,
    device: str | None = None,
) -> Regions:
    """Fixed-length labelled regions from peaks (see the module docstring for each mode).

    Memory: about ten int64 values per peak at the peak (its columns, the sort key and
    permutation, the sorted copies), then the dense ``(n_regions, K) uint8`` labels.

    Args:
        peaks: DataFrame with ``chrom`` (int32), ``start``, ``end`` (int64), ``minus`` (bool)
            and ``label`` (int32, ``0 <= label < n_labels``), and optionally ``summit``
            (int64 position: the peak's position in ``basset`` and ``none`` instead of its
            midpoint); every chromosome at least ``length`` long. Rows in any order; the frame
            is not modified.
        mode: ``"basset"``, ``"hull"`` or ``"none"``.
        length: window length in bases.
        min_overlap: overlap in bases that merges windows (basset) or peaks (hull).
        chrom_sizes: ``(n_chroms,) int64`` chromosome lengths, indexed by ``chrom``.
        n_labels: number of label columns K.
        device: ``"auto" | "gpu" | "cpu"``: the rows are sorted by cuDF on the GPU, else by
            NumPy; the passes over the sorted rows run in numba on the host.

    Returns:
        :class:`Regions` sorted by chromosome, start and strand.
    """
    check_choice("merge", mode, MERGE_MODES)
    frames = _dataframe_library(resolve_device(device))
    chrom = peaks["chrom"].to_numpy(np.int64)
    start = peaks["start"].to_numpy(np.int64)
    end = peaks["end"].to_numpy(np.int64)
    minus = peaks["minus"].to_numpy(np.bool_)
    label = peaks["label"].to_numpy(np.int64)
    chrom_lengths = np.asarray(chrom_sizes, dtype=np.int64)
    mid = peaks["summit"].to_numpy(np.int64) if "summit" in peaks else (start + end) // 2
    if mode == "none":
        windows = windows_at(mid, length, chrom_lengths[chrom])
        return _union_identical(
            chrom, windows, minus, np.arange(len(chrom)), label, n_labels=n_labels, frames=frames
        )
    if mode == "hull":
        cluster, hull_chrom, hull_start, hull_end = merge_intervals(
            chrom, start, end, min_overlap=min_overlap, frames=frames
        )
        windows = windows_at((hull_start + hull_end) // 2, length, chrom_lengths[hull_chrom])
        return _union_identical(
            hull_chrom,
            windows,
            np.zeros(len(windows), dtype=np.bool_),
            cluster,
            label,
            n_labels=n_labels,
            frames=frames,
        )
    return _basset_regions(
        chrom,
        mid,
        minus,
        label,
        chrom_lengths,
        length=length,
        min_overlap=min_overlap,
        n_labels=n_labels,
        frames=frames,
    )


def sort_order(keys: Sequence[np.ndarray], *, frames: ModuleType | None = None) -> np.ndarray:
    """Return the permutation that sorts rows by ``keys[0]``, then ``keys[1]``, and so on.

    On the host, keys that are all non-negative and whose ranges multiply to less than
    ``2**63`` are packed into one int64 (mixed radix: ``(k0 * (max1 + 1) + k1) * ...``) and
    sorted with one stable argsort (NumPy's timsort, quick on the nearly sorted rows that
    concatenated sorted BED files give); other keys go to :func:`numpy.lexsort`. With
    ``frames`` (cuDF, or any library with the pandas API) the sort runs there. Rows with equal
    keys may come in any order: every caller here treats them alike.

    Args:
        keys: ``(n,)`` integer (or bool) arrays, most significant first.
        frames: cuDF (GPU) or None (NumPy).

    Returns:
        ``(n,) int64`` row indices. Memory: one more int64 per row for the packed key.
    """
    keys = [np.asarray(key, dtype=np.int64) for key in keys]
    if frames is not None:
        table = frames.DataFrame({f"k{i}": key for i, key in enumerate(keys)})
        order = _to_host(table.sort_values(list(table.columns)).index)
        return np.asarray(order, dtype=np.int64)
    if not len(keys[0]):
        return np.zeros(0, dtype=np.int64)
    span = 1
    for key in keys:
        if int(key.min()) < 0:
            return np.lexsort(keys[::-1]).astype(np.int64, copy=False)
        span *= int(key.max()) + 1
    if span >= 2**63:
        return np.lexsort(keys[::-1]).astype(np.int64, copy=False)
    packed = keys[0].copy()
    for key in keys[1:]:
        packed *= int(key.max()) + 1
        packed += key
    return np.argsort(packed, kind="stable")


def merge_intervals(
    chrom: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    *,
    min_overlap: int,
    frames: ModuleType | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``bedtools merge -d -min_overlap``: the clusters of intervals and their hulls.

    Per chromosome, in (start, end) order, an interval joins the current cluster when
    ``start <= furthest_end - min_overlap`` (``furthest_end``: the largest end in the cluster so
    far), else it opens a new cluster. One sort, then one pass in numba.

    Args:
        chrom: ``(n,)`` integer chromosome of each interval (any order of rows).
        start: ``(n,) int64`` 0-based starts.
        end: ``(n,) int64`` ends (half-open).
        min_overlap: bases by which an interval must overlap the cluster's furthest end to
            join it (negative: the gap in bases that still joins, as ``bedtools merge -d``).
        frames: cuDF to sort on the GPU, or None (NumPy).

    Returns:
        ``(cluster, hull_chrom, hull_start, hull_end)``: ``(n,) int64`` cluster of each input
        row, then per cluster ``(n_clusters,) int64`` chromosome, smallest start and furthest
        end, clusters in (chromosome, start) order. Memory: about 64 bytes per row.
    """
    chrom = np.asarray(chrom, dtype=np.int64)
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    order = sort_order([chrom, start, end - start], frames=frames)
    cluster_sorted, hull_chrom, hull_start, hull_end = _hull_clusters(
        chrom[order], start[order], end[order], min_overlap
    )
    cluster = np.empty(len(order), dtype=np.int64)
    cluster[order] = cluster_sorted
    return cluster, hull_chrom, hull_start, hull_end


@numba.njit(cache=True, nogil=True)
def _hull_clusters(chrom, start, end, min_overlap):  # pragma: no cover
    """The clusters of rows sorted by (chromosome, start, end), and their hulls.

    One pass numbers the clusters (see :func:`merge_intervals`), a second takes each cluster's
    chromosome, first start and largest end. Returns ``(n,) int64`` cluster of each sorted row
    and ``(n_clusters,) int64`` hull chromosome, start and end.
    """
    n = len(chrom)
    cluster = np.empty(n, dtype=np.int64)
    current = -1
    furthest = 0
    for i in range(n):
        if current < 0 or chrom[i] != chrom[i - 1] or start[i] > furthest - min_overlap:
            current += 1
            furthest = end[i]
        elif end[i] > furthest:
            furthest = end[i]
        cluster[i] = current
    n_clusters = current + 1
    hull_chrom = np.empty(n_clusters, dtype=np.int64)
    hull_start = np.empty(n_clusters, dtype=np.int64)
    hull_end = np.empty(n_clusters, dtype=np.int64)
    for i in range(n):
        k = cluster[i]
        if i == 0 or cluster[i - 1] != k:
            hull_chrom[k] = chrom[i]
            hull_start[k] = start[i]
            hull_end[k] = end[i]
        elif end[i] > hull_end[k]:
            hull_end[k] = end[i]
    return cluster, hull_chrom, hull_start, hull_end


def _to_host(values: Any) -> np.ndarray:
    """A cuDF (or pandas) Index or Series as a NumPy array."""
    if hasattr(values, "to_pandas"):
        values = values.to_pandas()
    return values.to_numpy()


def _basset_regions(
    chrom: np.ndarray,
    mid: np.ndarray,
    minus: np.ndarray,
    label: np.ndarray,
    chrom_lengths: np.ndarray,
    *,
    length: int,
    min_overlap: int,
    n_labels: int,
    frames: ModuleType | None,
) -> Regions:
    """Basset's sort (NumPy or cuDF), grouping and greedy merge (numba, sequential by nature)."""
    # Basset writes each peak as its midpoint [mid, mid + 1) and runs sortBed on those, so
    # windows come in midpoint order (ties, identical windows, by label)
    order = sort_order([chrom, minus, mid, label], frames=frames)
    chrom, minus, label = chrom[order], minus[order], label[order]
    chrom_length = chrom_lengths[chrom]
    starts = windows_at(mid[order], length, chrom_length)
    n = len(order)
    new_key = np.ones(n, dtype=np.bool_)
    new_key[1:] = (chrom[1:] != chrom[:-1]) | (minus[1:] != minus[:-1])
    group_bounds = _basset_groups(new_key, starts, length, min_overlap)
    n_words = max(1, (n_labels + 63) // 64)
    bits = np.zeros((n, n_words), dtype=np.uint64)
    bits[np.arange(n), label // 64] = np.left_shift(np.uint64(1), (label % 64).astype(np.uint64))
    keep = np.zeros(n, dtype=np.bool_)
    _basset_greedy_merge(group_bounds, starts, chrom_length, bits, length, min_overlap, keep)
    # one (merged window, label) pair per set bit
    rows, words, bit = np.nonzero(
        np.unpackbits(bits[keep].view(np.uint8), bitorder="little").reshape(
            int(keep.sum()), n_words, 64
        )
    )
    return _union_identical(
        chrom[keep],
        starts[keep],
        minus[keep],
        rows,
        words * 64 + bit,
        n_labels=n_labels,
        frames=frames,
    )


@numba.njit(cache=True, nogil=True)
def _basset_groups(new_key, starts, length, min_overlap):  # pragma: no cover
    """Return the row bounds of Basset's open groups, ``(n_groups + 1,) int64``.

    A window joins the open group unless ``open_end - min_overlap <= start`` (``open_end``: the
    group's furthest window end) or it starts a new (chrom, strand).
    """
    bounds = np.empty(len(starts) + 1, dtype=np.int64)
    n_groups = 0
    open_end = 0
    for i in range(len(starts)):
        end = starts[i] + length
        if new_key[i] or open_end - min_overlap <= starts[i]:
            bounds[n_groups] = i
            n_groups += 1
            open_end = end
        elif end > open_end:
            open_end = end
    bounds[n_groups] = len(starts)
    return bounds[: n_groups + 1]


@numba.njit(cache=True)
def _popcount(words):  # pragma: no cover
    total = 0
    for word in words:
        rest = word
        while rest:
            rest &= rest - np.uint64(1)
            total += 1
    return total


@numba.njit(cache=True, nogil=True, inline="always")
def _heap_before(overlaps, owners, a, b):  # pragma: no cover
    """Heap order: larger overlap first, then the leftmost pair (Basset's tie rule)."""
    return overlaps[a] > overlaps[b] or (overlaps[a] == overlaps[b] and owners[a] < owners[b])


@numba.njit(cache=True, nogil=True)
def _heap_push(overlaps, owners, versions, size, overlap, owner, version):  # pragma: no cover  # noqa: PLR0917 (numba: positional arguments)
    i = size
    overlaps[i], owners[i], versions[i] = overlap, owner, version
    while i > 0:
        parent = (i - 1) // 2
        if not _heap_before(overlaps, owners, i, parent):
            break
        overlaps[i], overlaps[parent] = overlaps[parent], overlaps[i]
        owners[i], owners[parent] = owners[parent], owners[i]
        versions[i], versions[parent] = versions[parent], versions[i]
        i = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _heap_pop(overlaps, owners, versions, size):  # pragma: no cover
    """Remove the top entry (left at index ``size - 1``); return the new size."""
    size -= 1
    overlaps[0], overlaps[size] = overlaps[size], overlaps[0]
    owners[0], owners[size] = owners[size], owners[0]
    versions[0], versions[size] = versions[size], versions[0]
    i = 0
    while True:
        best = i
        for child in (2 * i + 1, 2 * i + 2):
            if child < size and _heap_before(overlaps, owners, child, best):
                best = child
        if best == i:
            return size
        overlaps[i], overlaps[best] = overlaps[best], overlaps[i]
        owners[i], owners[best] = owners[best], owners[i]
        versions[i], versions[best] = versions[best], versions[i]
        i = best


@numba.njit(parallel=True, cache=True, nogil=True)
def _basset_greedy_merge(  # noqa: PLR0915, PLR0917 (one numba kernel)
    group_bounds, starts, chrom_length, bits, length, min_overlap, keep
):  # pragma: no cover
    """Run Basset's ``merge_peaks`` on each group of windows, in Basset's order.

    Group ``g`` is rows ``group_bounds[g]`` to ``group_bounds[g + 1]``. Merged windows are
    written back in place: ``starts`` and ``bits`` (label bit sets) of the first rows of the
    group, ``keep`` set.

    Basset rescans the whole list for the most-overlapping adjacent pair after every merge
    (quadratic in the group's size). Here the pairs sit in a heap keyed by (overlap, position)
    and the windows in a linked list; a merge changes only its own pair and its left
    neighbour's, which are pushed again (stale entries are skipped by a version number).
    Same merges in the same order, in O(m log m).
    """
    half = length // 2
    for g in numba.prange(len(group_bounds) - 1):
        first = group_bounds[g]
        m = group_bounds[g + 1] - first
        if m < 2:
            keep[first : first + m] = True
            continue
        following = np.arange(1, m + 1)
        following[m - 1] = -1
        preceding = np.arange(-1, m - 1)
        version = np.zeros(m, dtype=np.int64)
        capacity = 3 * m
        overlaps = np.empty(capacity, dtype=np.int64)
        owners = np.empty(capacity, dtype=np.int64)
        versions = np.empty(capacity, dtype=np.int64)
        size = 0
        for i in range(m - 1):
            overlap = starts[first + i] + length - starts[first + i + 1]
            size = _heap_push(overlaps, owners, versions, size, overlap, i, 0)
        while size > 0:
            size = _heap_pop(overlaps, owners, versions, size)
            overlap, i, entry_version = overlaps[size], owners[size], versions[size]
            if entry_version != version[i] or following[i] < 0:
                continue  # stale: the pair changed since this entry was pushed
            if overlap < min_overlap:
                break
            j = following[i]
            a, b = first + i, first + j
            mid_a = (2 * starts[a] + length) // 2
            mid_b = (2 * starts[b] + length) // 2
            weight_a = 1 + _popcount(bits[a])
            weight_b = 1 + _popcount(bits[b])
            mid = int(0.5 + (mid_a * weight_a + mid_b * weight_b) / (weight_a + weight_b))
            new_start = max(0, mid - half)
            if new_start + length > chrom_length[a]:
                new_start = chrom_length[a] - length
            starts[a] = new_start
            bits[a] |= bits[b]
            following[i] = following[j]
            if following[j] >= 0:
                preceding[following[j]] = i
            version[j] = -1  # removed
            version[i] += 1
            if following[i] >= 0:
                overlap = starts[a] + length - starts[first + following[i]]
                size = _heap_push(overlaps, owners, versions, size, overlap, i, version[i])
            left = preceding[i]
            if left >= 0:
                version[left] += 1
                overlap = starts[first + left] + length - starts[a]
                size = _heap_push(overlaps, owners, versions, size, overlap, left, version[left])
        # survivors, in list order, to the front of the group
        kept = 0
        i = 0
        while i >= 0:
            starts[first + kept] = starts[first + i]
            bits[first + kept] = bits[first + i]
            kept += 1
            i = following[i]
        keep[first : first + kept] = True


def _union_identical(
    chrom: np.ndarray,
    start: np.ndarray,
    minus: np.ndarray,
    window_of_pair: np.ndarray,
    label_of_pair: np.ndarray,
    *,
    n_labels: int,
    frames: ModuleType | None,
) -> Regions:
    """Keep each (chrom, start, minus) window once, its labels unioned, in sorted order.

    Args:
        chrom: ``(m,)`` integer chromosome of each window.
        start: ``(m,) int64`` window starts.
        minus: ``(m,) bool`` strands.
        window_of_pair: ``(p,)`` integer window of each (window, label) pair.
        label_of_pair: ``(p,)`` integer label column of each pair; every window has a pair.
        n_labels: number of label columns K.
        frames: cuDF to sort on the GPU, or None (NumPy).

    Returns:
        :class:`Regions`; memory: the ``(n_regions, K) uint8`` labels and a few int64 per window.
    """
    order = sort_order([chrom, start, minus], frames=frames)
    chrom, start, minus = chrom[order], start[order], minus[order]
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = (chrom[1:] != chrom[:-1]) | (start[1:] != start[:-1]) | (minus[1:] != minus[:-1])
    region_of_window = np.empty(len(order), dtype=np.int64)
    region_of_window[order] = np.cumsum(first) - 1
    labels = np.zeros((int(first.sum()), n_labels), dtype=np.uint8)
    labels[region_of_window[window_of_pair], label_of_pair] = 1
    return Regions(
        chrom[first].astype(np.int32),
        start[first].astype(np.int64, copy=False),
        minus[first].astype(np.bool_, copy=False),
        labels,
    )

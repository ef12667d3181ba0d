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

In every mode windows are shifted inward at chromosome ends, and identical windows (same
chromosome, start and strand) are kept once with their labels unioned.

Sorting, clustering and label aggregation are written once against the pandas API and run on
cuDF on the GPU (``device="gpu"``) or pandas on the CPU; the greedy Basset pass runs in numba on
the host in both cases (it is sequential within a group).
"""

from __future__ import annotations

import functools
import logging
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
    """

    chrom: np.ndarray
    start: np.ndarray
    minus: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.chrom)

    def subset(self, rows: np.ndarray) -> Regions:
        """The regions selected by a boolean mask or index array, order kept."""
        return Regions(self.chrom[rows], self.start[rows], self.minus[rows], self.labels[rows])


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
def _dataframe_library(device: str) -> ModuleType:
    """Return cuDF on the GPU when it is importable, else pandas.

    The fallback is logged once: CuPy without cuDF still runs the sequence kernels on the GPU.
    """
    import pandas as pd

    if device != "gpu":
        return pd
    try:
        import cudf
    except Exception as exc:
        log.info(
            "cuDF is not importable (%s: %s); sorting and merging intervals with pandas",
            type(exc).__name__,
            exc,
        )
        return pd
    return cudf


def _to_host(frame: Any) -> pd.DataFrame:
    return frame.to_pandas() if hasattr(frame, "to_pandas") else frame


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

    Args:
        peaks: DataFrame with ``chrom`` (int32), ``start``, ``end`` (int64), ``minus`` (bool)
            and ``label`` (int32, ``0 <= label < n_labels``); every chromosome at least
            ``length`` long.
        mode: ``"basset"``, ``"hull"`` or ``"none"``.
        length: window length in bases.
        min_overlap: overlap in bases that merges windows (basset) or peaks (hull).
        chrom_sizes: ``(n_chroms,) int64`` chromosome lengths, indexed by ``chrom``.
        n_labels: number of label columns K.
        device: ``"auto" | "gpu" | "cpu"``: cuDF or pandas for sorting, clustering and labels.

    Returns:
        :class:`Regions` sorted by chromosome, start and strand.
    """
    import pandas as pd

    check_choice("merge", mode, MERGE_MODES)
    lib = _dataframe_library(resolve_device(device))
    frame = peaks[["chrom", "start", "end", "minus", "label"]].reset_index(drop=True)
    frame["chrom_length"] = np.asarray(chrom_sizes, dtype=np.int64)[frame["chrom"].to_numpy()]
    if lib is not pd:
        frame = lib.DataFrame.from_pandas(frame)
    if mode == "none":
        frame["start"] = windows_at(
            (frame["start"] + frame["end"]) // 2, length, frame["chrom_length"]
        )
        windows = frame
    elif mode == "hull":
        windows = _hull_windows(frame, length, min_overlap)
    else:
        windows = _basset_windows(lib, frame, length, min_overlap, n_labels)
    return _union_identical(windows, n_labels)


def _hull_windows(frame: Any, length: int, min_overlap: int) -> Any:
    """Bedtools merge -d -min_overlap, then one window per hull (strand +)."""
    peaks = frame.sort_values(["chrom", "start", "end"]).reset_index(drop=True)
    furthest_end = peaks.groupby("chrom")["end"].cummax()
    new_chrom = (peaks["chrom"] != peaks["chrom"].shift(1)).fillna(value=True)
    beyond = (peaks["start"] > furthest_end.shift(1) - min_overlap).fillna(value=False)
    peaks["cluster"] = (new_chrom | beyond).astype("int64").cumsum()
    hulls = peaks.groupby("cluster").agg(
        {"chrom": "min", "start": "min", "end": "max", "chrom_length": "min"}
    )
    hulls["window"] = windows_at(
        (hulls["start"] + hulls["end"]) // 2, length, hulls["chrom_length"]
    )
    hulls = hulls.reset_index()[["cluster", "chrom", "window"]]
    windows = peaks[["cluster", "label"]].merge(hulls, on="cluster")
    windows = windows.rename(columns={"window": "start"})
    windows["minus"] = False
    return windows


def _basset_windows(
    lib: ModuleType, frame: Any, length: int, min_overlap: int, n_labels: int
) -> Any:
    """Basset's sort (pandas/cuDF), grouping and greedy merge (numba, sequential by nature)."""
    import pandas as pd

    # Basset writes each peak as its midpoint [mid, mid + 1) and runs sortBed on those, so
    # windows come in midpoint order (ties, identical windows, by label)
    frame["mid"] = (frame["start"] + frame["end"]) // 2
    windows = frame.sort_values(["chrom", "minus", "mid", "label"]).reset_index(drop=True)
    windows["start"] = windows_at(windows["mid"], length, windows["chrom_length"])
    new_key = (windows["chrom"] != windows["chrom"].shift(1)) | (
        windows["minus"] != windows["minus"].shift(1)
    )
    new_key = new_key.fillna(value=True).to_numpy()
    host = _to_host(windows)
    n = len(host)
    starts = host["start"].to_numpy(np.int64, copy=True)
    group_bounds = _basset_groups(np.asarray(new_key, dtype=np.bool_), starts, length, min_overlap)
    n_words = max(1, (n_labels + 63) // 64)
    labels = host["label"].to_numpy(np.int64)
    bits = np.zeros((n, n_words), dtype=np.uint64)
    bits[np.arange(n), labels // 64] = np.left_shift(np.uint64(1), (labels % 64).astype(np.uint64))
    chrom_length = host["chrom_length"].to_numpy(np.int64)
    keep = np.zeros(n, dtype=np.bool_)
    _basset_greedy_merge(group_bounds, starts, chrom_length, bits, length, min_overlap, keep)
    # one row per (merged window, label)
    rows, words, bit = np.nonzero(
        np.unpackbits(bits[keep].view(np.uint8), bitorder="little").reshape(
            int(keep.sum()), n_words, 64
        )
    )
    merged = host[keep].reset_index(drop=True)
    merged["start"] = starts[keep]
    pairs = pd.DataFrame(
        {
            "chrom": merged["chrom"].to_numpy()[rows],
            "start": merged["start"].to_numpy()[rows],
            "minus": merged["minus"].to_numpy()[rows],
            "label": (words * 64 + bit).astype(np.int32),
        }
    )
    return pairs if lib is pd else lib.DataFrame.from_pandas(pairs)


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


def _union_identical(windows: Any, n_labels: int) -> Regions:
    """Keep each (chrom, start, minus) window once, its labels unioned; sort; build labels."""
    keys = ["chrom", "start", "minus"]
    pairs = windows[[*keys, "label"]].drop_duplicates()
    regions = pairs[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    regions["region"] = regions.index
    pairs = _to_host(pairs.merge(regions, on=keys)[["region", "label"]])
    regions = _to_host(regions)
    labels = np.zeros((len(regions), n_labels), dtype=np.uint8)
    labels[pairs["region"].to_numpy(), pairs["label"].to_numpy()] = 1
    return Regions(
        regions["chrom"].to_numpy(np.int32),
        regions["start"].to_numpy(np.int64),
        regions["minus"].to_numpy(np.bool_),
        labels,
    )

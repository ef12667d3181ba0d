"""Plain, slow pure-Python statements of the three region modes of
``gpu_genomics.intervals.regions``.

Written from ``docs/intervals.md`` (the merge modes) and the module docstring of
``gpu_genomics/intervals/regions.py``, one peak at a time, without calling any code of
``gpu_genomics``.

* :func:`basset` transcribes Basset's ``preprocess_features.py`` as
  ``docs/intervals.md#basset-merge`` states it: ``Peak.extend``, the per-(chromosome, strand)
  open-group loop and ``merge_peaks``.
* :func:`hull` is ``bedtools merge -d -min_overlap`` over all peaks regardless of strand, then one
  window around each hull's midpoint.
* :func:`none` is one window per peak around its midpoint.

A peak is a tuple ``(chrom, start, end, minus, label)``. Every function returns
:class:`NaiveRegions`: identical windows (chrom, start, strand) kept once with their labels
unioned, sorted by chromosome, start and strand (``+`` before ``-``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

PeakRow = tuple[int, int, int, bool, int]  # chrom, start, end, minus, label


class NaiveRegions(NamedTuple):
    """The same shape of result as ``gpu_genomics.intervals.regions.Regions``, as plain lists."""

    chrom: list[int]
    start: list[int]
    minus: list[bool]
    labels: list[frozenset[int]]

    def rows(self) -> list[tuple[int, int, bool, frozenset[int]]]:
        return list(zip(self.chrom, self.start, self.minus, self.labels, strict=True))


def window_start(mid: int, size: int, chrom_len: int) -> int:
    """Basset's window of ``size`` around ``mid``: ``start = max(0, mid - size // 2)``,
    ``end = start + size``; when ``end > chrom_len`` then ``end = chrom_len``,
    ``start = end - size``."""
    start = max(0, mid - size // 2)
    end = start + size
    if end > chrom_len:
        end = chrom_len
        start = end - size
    return start


# --- basset -----------------------------------------------------------------------------------
class Peak:
    """Basset's ``Peak``: a start, an end and the set of targets (labels) it is active in."""

    def __init__(self, start: int, end: int, act: set[int]):
        self.start = start
        self.end = end
        self.act = act

    def extend(self, size: int, chrom_len: int) -> None:
        """Turn the peak into the ``size`` window around its midpoint ``(start + end) // 2``."""
        mid = (self.start + self.end) // 2
        self.start = window_start(mid, size, chrom_len)
        self.end = self.start + size

    def merge(self, other: Peak, size: int, chrom_len: int) -> None:
        """Merge ``other`` into this peak: weighted mean of the two midpoints (weight
        ``1 + number of targets``), rounded with ``int(0.5 + x)``, window rebuilt; targets
        unioned."""
        mids = [(self.start + self.end) // 2, (other.start + other.end) // 2]
        weights = [1 + len(self.act), 1 + len(other.act)]
        mean = (mids[0] * weights[0] + mids[1] * weights[1]) / (weights[0] + weights[1])
        merge_mid = int(0.5 + mean)
        self.start = window_start(merge_mid, size, chrom_len)
        self.end = self.start + size
        self.act = self.act | other.act


def merge_peaks(peaks: list[Peak], size: int, merge_overlap: int, chrom_len: int) -> list[Peak]:
    """Basset's ``merge_peaks``: repeatedly merge the adjacent pair with the largest overlap
    ``end_i - start_(i+1)`` (leftmost on ties) while that overlap is at least ``merge_overlap``;
    the merged peak takes the left one's place and the list is not re-sorted."""
    peaks = list(peaks)
    max_overlap = merge_overlap
    while len(peaks) > 1 and max_overlap >= merge_overlap:
        max_i = 0
        max_overlap = peaks[0].end - peaks[1].start
        for i in range(1, len(peaks) - 1):
            overlap = peaks[i].end - peaks[i + 1].start
            if overlap > max_overlap:
                max_i = i
                max_overlap = overlap
        if max_overlap >= merge_overlap:
            peaks[max_i].merge(peaks[max_i + 1], size, chrom_len)
            peaks = peaks[: max_i + 1] + peaks[max_i + 2 :]
    return peaks


def basset(
    peaks: Iterable[PeakRow], length: int, min_overlap: int, chrom_sizes: Sequence[int]
) -> NaiveRegions:
    """Basset's preprocess_features.py (``docs/intervals.md#basset-merge``)."""
    by_key: dict[tuple[int, bool], list[tuple[int, int, int]]] = {}
    for chrom, start, end, minus, label in peaks:
        by_key.setdefault((chrom, minus), []).append((start, end, label))

    windows: list[tuple[int, int, bool, set[int]]] = []
    for (chrom, minus), key_peaks in by_key.items():
        chrom_len = chrom_sizes[chrom]
        # Basset writes each peak as [mid, mid + 1) and runs sortBed on those; extending
        # [mid, mid + 1) gives the same window as extending the peak (ties here by label)
        ordered = []
        for start, end, label in sorted(key_peaks, key=lambda p: ((p[0] + p[1]) // 2, p[2])):
            peak = Peak((start + end) // 2, (start + end) // 2 + 1, {label})
            peak.extend(length, chrom_len)
            ordered.append(peak)
        open_peaks: list[Peak] = []
        open_end = 0
        groups: list[list[Peak]] = []
        for peak in ordered:
            if not open_peaks:
                open_end = peak.end
                open_peaks = [peak]
            elif open_end - min_overlap <= peak.start:
                # beyond the open group: close it, open a new one
                groups.append(open_peaks)
                open_end = peak.end
                open_peaks = [peak]
            else:
                open_peaks.append(peak)
                open_end = max(open_end, peak.end)
        if open_peaks:
            groups.append(open_peaks)
        for group in groups:
            for merged in merge_peaks(group, length, min_overlap, chrom_len):
                windows.append((chrom, merged.start, minus, set(merged.act)))
    return union_identical(windows)


# --- hull -------------------------------------------------------------------------------------
def hull_clusters(
    peaks: Iterable[PeakRow], min_overlap: int
) -> list[tuple[int, int, int, set[int]]]:
    """``bedtools merge -d -min_overlap -c label -o distinct`` ignoring strand: peaks sorted by
    (chrom, start, end); a peak joins the current cluster when
    ``start <= cluster_furthest_end - min_overlap``. Returns (chrom, start, end, labels)."""
    clusters: list[tuple[int, int, int, set[int]]] = []
    current: list | None = None  # [chrom, start, furthest_end, labels]
    for chrom, start, end, _minus, label in sorted(peaks, key=lambda p: (p[0], p[1], p[2])):
        if current is not None and current[0] == chrom and start <= current[2] - min_overlap:
            current[2] = max(current[2], end)
            current[3].add(label)
        else:
            if current is not None:
                clusters.append(tuple(current))
            current = [chrom, start, end, {label}]
    if current is not None:
        clusters.append(tuple(current))
    return clusters


def windows_from_hulls(
    hulls: Iterable[tuple[int, int, int, Iterable[int]]], length: int, chrom_sizes: Sequence[int]
) -> NaiveRegions:
    """One ``+`` strand window around each hull's midpoint ``(start + end) // 2``."""
    windows = []
    for chrom, start, end, labels in hulls:
        mid = (start + end) // 2
        windows.append((chrom, window_start(mid, length, chrom_sizes[chrom]), False, set(labels)))
    return union_identical(windows)


def hull(
    peaks: Iterable[PeakRow], length: int, min_overlap: int, chrom_sizes: Sequence[int]
) -> NaiveRegions:
    """bedtools merge hulls over both strands, one ``+`` window per hull."""
    return windows_from_hulls(hull_clusters(peaks, min_overlap), length, chrom_sizes)


# --- none -------------------------------------------------------------------------------------
def none(
    peaks: Iterable[PeakRow], length: int, min_overlap: int, chrom_sizes: Sequence[int]
) -> NaiveRegions:
    """One window per peak around its midpoint, strand kept (``min_overlap`` unused)."""
    windows = []
    for chrom, start, end, minus, label in peaks:
        mid = (start + end) // 2
        windows.append((chrom, window_start(mid, length, chrom_sizes[chrom]), minus, {label}))
    return union_identical(windows)


MODES = {"basset": basset, "hull": hull, "none": none}


# --- shared last step -------------------------------------------------------------------------
def union_identical(windows: Iterable[tuple[int, int, bool, set[int]]]) -> NaiveRegions:
    """Keep each (chrom, start, strand) once with its labels unioned; sort by chrom, start,
    strand (``+`` before ``-``)."""
    merged: dict[tuple[int, int, bool], set[int]] = {}
    for chrom, start, minus, labels in windows:
        merged.setdefault((chrom, start, minus), set()).update(labels)
    keys = sorted(merged)  # False (+) sorts before True (-)
    return NaiveRegions(
        chrom=[k[0] for k in keys],
        start=[k[1] for k in keys],
        minus=[k[2] for k in keys],
        labels=[frozenset(merged[k]) for k in keys],
    )

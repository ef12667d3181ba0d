"""Choosing the training windows beyond the merge: region universes, flanks, filters, negatives.

Small NumPy/numba cores under the ``intervals`` job (``docs/intervals.md#selecting-windows``):

* :func:`overlaps`: for each query interval, whether one interval of a set overlaps it by at
  least a number of bases, a fraction of the query (``bedtools intersect -f``) and a fraction
  of the interval (``-F``). Each interval of the set is taken alone, as bedtools does: two
  intervals that together cover half a query do not make a 50% overlap.
* :func:`universe_regions`: label a given set of regions (``regions=UNIVERSE.bed``) by overlap
  with each file's peaks, instead of merging peaks.
* :func:`filter_regions`: the flank shift, ``min_distance_to_end``, ``blacklist`` and
  ``max_n_frac``, in that order, per region, after the merge.
* :func:`sample_negatives`: seeded background windows outside every peak, positive window and
  blacklisted interval, matched per split to the positives' GC distribution.

A window's composition (:func:`window_composition`) counts its G+C and its A+C+G+T bases, either
case, with the GC kernel of :mod:`gpu_genomics.sequence.gc_content`; N and the other IUPAC
letters count as N.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np

from ..device import to_numpy
from ..errors import InputError
from ..sequence.gc_content import gc_counts
from .bed import BedSource, read_bed
from .layouts import BATCH_BYTES, SPLITS
from .reference import Reference
from .regions import Regions, sort_order, windows_at

if TYPE_CHECKING:
    import pandas as pd

    from .job import IntervalOptions

log = logging.getLogger("gpu_genomics")


@dataclass(frozen=True)
class IntervalTable:
    """Intervals sorted by (chromosome, start), for overlap queries.

    Attributes:
        chrom: ``(n,) int64`` chromosome index into the reference's chromosomes.
        start: ``(n,) int64`` 0-based starts.
        end: ``(n,) int64`` ends (half-open).
        bounds: ``(n_chroms + 1,) int64``: chromosome ``c``'s rows are
            ``bounds[c]:bounds[c + 1]``.
        reach: ``(n,) int64`` largest end of the chromosome's rows up to each row.
    """

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bounds: np.ndarray
    reach: np.ndarray

    @classmethod
    def build(
        cls, chrom: np.ndarray, start: np.ndarray, end: np.ndarray, n_chroms: int
    ) -> IntervalTable:
        """Sort the intervals and index them; memory: about 40 bytes per interval."""
        chrom = np.asarray(chrom, dtype=np.int64)
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        order = sort_order([chrom, start]) if len(chrom) else np.zeros(0, np.int64)
        chrom, start, end = chrom[order], start[order], end[order]
        bounds = np.searchsorted(chrom, np.arange(n_chroms + 1)).astype(np.int64)
        return cls(chrom, start, end, bounds, _reach(end, bounds))

    def __len__(self) -> int:
        return len(self.chrom)


@numba.njit(cache=True, nogil=True)
def _reach(end, bounds):  # pragma: no cover
    reach = np.empty_like(end)
    for c in range(len(bounds) - 1):
        furthest = np.int64(-1)
        for i in range(bounds[c], bounds[c + 1]):
            furthest = max(furthest, end[i])
            reach[i] = furthest
    return reach


@numba.njit(cache=True, nogil=True)
def _overlaps(  # noqa: PLR0917 (numba: positional arguments)
    q_chrom, q_start, q_end, start, end, bounds, reach, min_bases, of_query, of_interval
):  # pragma: no cover
    n = len(q_chrom)
    found = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        c = q_chrom[i]
        if c < 0 or c + 1 >= len(bounds):
            continue
        lo = bounds[c]
        s, e = q_start[i], q_end[i]
        query_length = e - s
        # the intervals starting before the query's end, scanned back while one may reach it
        j = lo + np.searchsorted(start[lo : bounds[c + 1]], e, side="left") - 1
        while j >= lo and reach[j] > s:
            overlap = min(e, end[j]) - max(s, start[j])
            if (
                overlap > 0
                and overlap >= min_bases
                and overlap / query_length >= of_query
                and overlap / (end[j] - start[j]) >= of_interval
            ):
                found[i] = True
                break
            j -= 1
    return found


def overlaps(
    chrom: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    table: IntervalTable,
    *,
    min_bases: int = 1,
    fraction_of_query: float = 0.0,
    fraction_of_interval: float = 0.0,
) -> np.ndarray:
    """Whether one interval of ``table`` overlaps each query enough.

    A query ``[s, e)`` is hit by an interval ``[a, b)`` of the table when their overlap
    ``min(e, b) - max(s, a)`` is positive, at least ``min_bases``, and its fractions of the
    query, ``overlap / (e - s)``, and of the interval, ``overlap / (b - a)``, are at least
    ``fraction_of_query`` (``bedtools intersect -f``) and ``fraction_of_interval`` (``-F``):
    the quotient is compared, in float64, as bedtools compares it (``overlap >= f * length``
    would miss exact boundaries such as 7 of 100 bases at ``f = 0.07``).

    Args:
        chrom: ``(n,)`` chromosome index of each query (-1: none, never hit).
        start: ``(n,) int64`` query starts.
        end: ``(n,) int64`` query ends.
        table: the intervals.
        min_bases: fewest bases of overlap.
        fraction_of_query: fewest bases as a fraction of the query's length.
        fraction_of_interval: fewest bases as a fraction of the interval's length.

    Returns:
        ``(n,) bool``. Memory: that array; time: one binary search per query, then the
        intervals before its end that reach past its start.
    """
    return _overlaps(
        np.asarray(chrom, dtype=np.int64),
        np.asarray(start, dtype=np.int64),
        np.asarray(end, dtype=np.int64),
        table.start,
        table.end,
        table.bounds,
        table.reach,
        np.int64(min_bases),
        np.float64(fraction_of_query),
        np.float64(fraction_of_interval),
    )


def read_intervals(
    path: str | Path, chrom_names: Sequence[str], *, what: str = "blacklist"
) -> IntervalTable:
    """Read a BED file (``blacklist``, region universe) into an :class:`IntervalTable`.

    Rows on chromosomes that the reference lacks are left out (a blacklist lists more contigs
    than many references hold), and counted in one log line.

    Raises:
        InputError: a missing or malformed file.
    """
    frame = _bed_rows(path, what)
    position = {name: i for i, name in enumerate(chrom_names)}
    names = frame["chrom"].astype(str).to_numpy()
    chrom = np.array([position.get(name, -1) for name in names], dtype=np.int64)
    known = chrom >= 0
    if not known.all():
        log.info(
            "%s %s: left out %d rows on chromosomes not in the reference",
            what,
            path,
            int((~known).sum()),
        )
    return IntervalTable.build(
        chrom[known],
        frame["start"].to_numpy(np.int64)[known],
        frame["end"].to_numpy(np.int64)[known],
        len(chrom_names),
    )


def _bed_rows(path: str | Path, what: str) -> pd.DataFrame:
    return read_bed(checked_bed_path(path, what))


def checked_bed_path(path: str | Path, what: str) -> Path:
    """``path``, a file; else the one-line error naming it and its role (``what``)."""
    path = Path(path)
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"{path}: the {what} BED file {state}; give the path of a BED file")
    return path


@functools.cache
def cached_intervals(path: str, chrom_names: tuple[str, ...], what: str) -> IntervalTable:
    """:func:`read_intervals`, once per process (the blacklist of every chromosome's task)."""
    return read_intervals(path, chrom_names, what=what)


# --- region universes ---------------------------------------------------------------------------
def universe_regions(
    universe: pd.DataFrame,
    peaks: pd.DataFrame,
    *,
    length: int,
    chrom_sizes: np.ndarray,
    n_labels: int,
    overlap: float,
    overlap_of: str,
) -> Regions:
    """Label the regions of a universe by overlap with each label's peaks.

    A region gets label ``k`` when one peak of label ``k`` overlaps it by at least
    ``overlap`` of the region's length (``overlap_of="region"``: ``bedtools intersect -u -f``
    with the region as A) or of the peak's (``"peak"``: ``-F``). Each region then becomes the
    ``length``-base window around its midpoint (shifted inward at chromosome ends), strand
    kept; regions are not merged, so two regions with the same window stay two rows.

    Args:
        universe: the regions, as :func:`~.job.file_peaks` reads them (``chrom``, ``start``,
            ``end``, ``minus``).
        peaks: every file's peaks with their ``label``.
        length: window length in bases.
        chrom_sizes: ``(n_chroms,) int64``.
        n_labels: label columns K.
        overlap: the fraction, ``0 < overlap <= 1``.
        overlap_of: ``"region"`` or ``"peak"``.

    Returns:
        :class:`~.regions.Regions` sorted by chromosome, window start and strand (universe
        order on ties). Memory: the dense ``(n, K)`` labels and a few int64 per region and
        peak.
    """
    chrom = universe["chrom"].to_numpy(np.int64)
    start = universe["start"].to_numpy(np.int64)
    end = universe["end"].to_numpy(np.int64)
    minus = universe["minus"].to_numpy(np.bool_)
    n_chroms = len(chrom_sizes)
    labels = np.zeros((len(chrom), n_labels), dtype=np.uint8)
    peak_label = peaks["label"].to_numpy()
    for k in range(n_labels):
        mine = peak_label == k
        if not mine.any():
            continue
        table = IntervalTable.build(
            peaks["chrom"].to_numpy()[mine],
            peaks["start"].to_numpy()[mine],
            peaks["end"].to_numpy()[mine],
            n_chroms,
        )
        fractions = (
            {"fraction_of_query": overlap}
            if overlap_of == "region"
            else {"fraction_of_interval": overlap}
        )
        labels[:, k] = overlaps(chrom, start, end, table, **fractions)
    window = windows_at((start + end) // 2, length, np.asarray(chrom_sizes, np.int64)[chrom])
    order = sort_order([chrom, window, minus, np.arange(len(chrom))])
    return Regions(chrom[order].astype(np.int32), window[order], minus[order], labels[order])


# --- filters ------------------------------------------------------------------------------------
@dataclass
class Selection:
    """What :func:`filter_regions` kept and why it dropped the rest.

    Attributes:
        regions: the regions kept, in order.
        gc: ``(n,) float64`` GC fraction of each kept window (NaN: no A/C/G/T), or None when
            no filter or option needed the windows' bases.
        dropped: reason -> regions dropped for it (``min_distance_to_end``, ``blacklist``,
            ``max_n_frac``).
        n_shifted: windows moved inward to make room for their flanks.
    """

    regions: Regions
    gc: np.ndarray | None
    dropped: dict[str, int]
    n_shifted: int = 0


def needs_composition(options: IntervalOptions) -> bool:
    """Whether the windows' bases are counted before the output is laid out."""
    return options.max_n_frac is not None or bool(options.negatives)


def filter_regions(
    regions: Regions,
    options: IntervalOptions,
    *,
    ref: Reference,
    device: str,
    composition: bool = False,
) -> Selection:
    """Shift windows for their flanks, then drop those too near an end, blacklisted or N-rich.

    In order: with ``flank`` F, a window whose flanked span ``[start - F, start + L + F)``
    would leave its chromosome is moved inward until it fits (counted as shifted); a window
    closer than ``min_distance_to_end`` to either end of its chromosome is dropped; one that a
    single ``blacklist`` interval overlaps by at least ``blacklist_overlap`` (bases when 1 or
    more, else a fraction of the window) is dropped; one with a larger fraction of N (any
    letter but A/C/G/T, either case) than ``max_n_frac`` is dropped. All of them look at the
    ``length``-base window, not its flanks. ``composition``: count the windows' GC even when
    no option needs it (a report).

    Memory: a few bytes per region, and (``max_n_frac`` or ``negatives``) one batch of windows
    of at most :data:`~.layouts.BATCH_BYTES` at a time.
    """
    dropped: dict[str, int] = {}
    lengths = ref.lengths[regions.chrom.astype(np.int64)]
    n_shifted = 0
    if options.flank:
        low = options.flank
        high = lengths - options.length - options.flank
        start = np.minimum(np.maximum(regions.start, low), high)
        n_shifted = int((start != regions.start).sum())
        regions = dataclasses.replace(regions, start=start)
    if options.min_distance_to_end:
        distance = options.min_distance_to_end
        far = (regions.start >= distance) & (regions.start + options.length <= lengths - distance)
        dropped["min_distance_to_end"] = int((~far).sum())
        regions, lengths = regions.subset(far), lengths[far]
    if options.blacklist is not None:
        table = cached_intervals(str(options.blacklist), tuple(ref.names), "blacklist")
        hit = overlaps(
            regions.chrom,
            regions.start,
            regions.start + options.length,
            table,
            **blacklist_threshold(options.blacklist_overlap),
        )
        dropped["blacklist"] = int(hit.sum())
        regions = regions.subset(~hit)
    gc = None
    if composition or needs_composition(options):
        counts = window_composition(ref, regions.chrom, regions.start, options.length, device)
        acgt = counts[:, 1]
        gc = np.where(acgt > 0, counts[:, 0] / np.maximum(acgt, 1), np.nan)
        if options.max_n_frac is not None:
            clean = (options.length - acgt) <= options.max_n_frac * options.length
            dropped["max_n_frac"] = int((~clean).sum())
            regions, gc = regions.subset(clean), gc[clean]
    return Selection(regions, gc, dropped, n_shifted)


def blacklist_threshold(value: float) -> dict[str, float]:
    """The :func:`overlaps` keywords of ``blacklist_overlap`` (bases, or window fraction)."""
    if value >= 1:
        return {"min_bases": int(value)}
    return {"fraction_of_query": float(value)}


def window_composition(
    ref: Reference, chrom: np.ndarray, start: np.ndarray, length: int, device: str
) -> np.ndarray:
    """``(n, 2) int64`` G+C and A+C+G+T bases of each window ``[start, start + length)``.

    Windows may come in any order; each chromosome's are read in bulk (sorted), in batches of
    at most :data:`~.layouts.BATCH_BYTES` bases, and counted by the GC kernel on ``device``.
    """
    counts = np.zeros((len(chrom), 2), dtype=np.int64)
    batch = max(1, BATCH_BYTES // max(length, 1))
    order = sort_order([chrom, start]) if len(chrom) else np.zeros(0, np.int64)
    sorted_chrom = np.asarray(chrom)[order]
    bounds = np.searchsorted(sorted_chrom, np.arange(len(ref.names) + 1))
    offsets = np.arange(length, dtype=np.int64)
    for c in range(len(ref.names)):
        rows = order[bounds[c] : bounds[c + 1]]
        for lo in range(0, len(rows), batch):
            part = rows[lo : lo + batch]
            data, data_starts = ref.windows(ref.names[c], start[part], length)
            windows = data[data_starts[:, None] + offsets].reshape(len(part), length)
            counts[part] = to_numpy(gc_counts(windows, device=device))
        if len(rows):
            ref.release_pages()
    return counts


# --- negatives ----------------------------------------------------------------------------------
#: Candidate windows drawn per round, at least, and as a multiple of those still needed.
CANDIDATES_PER_ROUND = 4096
CANDIDATE_FACTOR = 8
#: Rounds of candidates before the shortfall is reported.
MAX_ROUNDS = 40


def negative_counts(options: IntervalOptions, positives_per_split: np.ndarray) -> np.ndarray:
    """``(3,) int64`` negatives wanted per split.

    An int ``negatives`` is a total, shared among the splits in proportion to their positives
    (largest remainders); a float is a ratio to each split's positives, rounded half up.
    """
    positives = np.asarray(positives_per_split, dtype=np.int64)
    if isinstance(options.negatives, float):
        return np.floor(options.negatives * positives + 0.5).astype(np.int64)
    return largest_remainder(int(options.negatives), positives)


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` shared in proportion to integer ``weights`` by largest remainders.

    Each gets the floor of its exact share ``total * w / sum(w)``, then the largest remainders
    (the first on ties, computed in integers) one more. All zero weights give all zeros.
    """
    weights = np.asarray(weights, dtype=np.int64)
    whole = int(weights.sum())
    if total <= 0 or whole <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    share, remainder = np.divmod(total * weights, whole)
    rest = total - int(share.sum())
    share[np.argsort(-remainder, kind="stable")[:rest]] += 1
    return share


def gc_bins(gc: np.ndarray, n_bins: int) -> np.ndarray:
    """``(n,) int64`` GC bin of each fraction, -1 for NaN.

    Bin ``k`` is ``[k / n_bins, (k + 1) / n_bins)``; the last bin is closed.
    """
    bins = np.minimum(np.floor(np.nan_to_num(gc, nan=-1.0) * n_bins), n_bins - 1)
    return np.where(np.isnan(gc), -1, bins).astype(np.int64)


@dataclass
class Negatives:
    """The sampled background windows.

    Attributes:
        regions: ``+`` strand windows with all-zero labels and ``negative`` True, sorted.
        split: ``(n,) int8`` split of each.
        gc: ``(n,) float64`` GC fraction of each.
        wanted: ``(3, n_bins) int64`` negatives wanted per split and GC bin.
    """

    regions: Regions
    split: np.ndarray
    gc: np.ndarray
    wanted: np.ndarray


def sample_negatives(
    positives: Regions,
    split: np.ndarray,
    gc: np.ndarray,
    *,
    peaks: IntervalTable,
    ref: Reference,
    options: IntervalOptions,
    device: str,
) -> Negatives:
    """Draw background windows matched to the positives' GC content, split by split.

    For each split, the positives' GC fractions are binned (``negatives_gc_bins`` equal bins
    of [0, 1]); the split's negatives (:func:`negative_counts`) are shared among the bins in
    proportion to the positives in each (largest remainders). Candidates are drawn, seeded by
    ``seed``, uniformly over the positions where a flanked window fits at
    ``min_distance_to_end`` from the ends of the split's chromosomes (``split="chrom"``; every
    chromosome with ``split="random"``); a candidate is refused when it overlaps a peak of any
    file, a positive window, a ``blacklist`` interval, or a negative already taken, or holds
    more N than ``max_n_frac`` (none at all when ``max_n_frac`` is not set); a bin takes
    candidates in the order drawn until it is full. After :data:`MAX_ROUNDS` rounds the bins
    still short are reported in one warning.

    Memory: the candidates of one round (a few dozen bytes each) and one batch of their
    windows; the same inputs and seed give the same negatives.
    """
    n_bins = options.negatives_gc_bins
    positives_per_split = np.bincount(split, minlength=len(SPLITS))
    totals = negative_counts(options, positives_per_split)
    wanted = np.zeros((len(SPLITS), n_bins), dtype=np.int64)
    positive_bins = gc_bins(gc, n_bins)
    for index in range(len(SPLITS)):
        mine = positive_bins[(split == index) & (positive_bins >= 0)]
        wanted[index] = largest_remainder(int(totals[index]), np.bincount(mine, minlength=n_bins))
    rng = np.random.default_rng([options.seed, 0x6E6567])
    avoid = [peaks, _windows_table(positives, options.length, len(ref.names))]
    if options.blacklist is not None:
        avoid.append(cached_intervals(str(options.blacklist), tuple(ref.names), "blacklist"))
    max_n = 0.0 if options.max_n_frac is None else options.max_n_frac
    taken: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    taken_starts = _TakenWindows(options.length)
    for index in range(len(SPLITS)):
        need = wanted[index].copy()
        if not need.sum():
            continue
        chroms = _candidate_chroms(index, ref, options)
        if not len(chroms):
            log.warning(
                "negatives: no chromosome of the %s split can hold a window; none sampled",
                SPLITS[index],
            )
            continue
        for _ in range(MAX_ROUNDS):
            if not need.sum():
                break
            chrom, start = _draw(rng, chroms, ref, options, int(need.sum()))
            end = start + options.length
            ok = np.ones(len(chrom), dtype=bool)
            for table in avoid:
                ok &= ~overlaps(chrom, start, end, table)
            chrom, start = chrom[ok], start[ok]
            counts = window_composition(ref, chrom, start, options.length, device)
            acgt = counts[:, 1]
            clean = (acgt > 0) & ((options.length - acgt) <= max_n * options.length)
            chrom, start, counts = chrom[clean], start[clean], counts[clean]
            fraction = counts[:, 0] / np.maximum(counts[:, 1], 1)
            bins = gc_bins(fraction, n_bins)
            keep = np.zeros(len(chrom), dtype=bool)
            for i in range(len(chrom)):  # draw order: first come, first taken
                if need[bins[i]] > 0 and taken_starts.claim(int(chrom[i]), int(start[i])):
                    need[bins[i]] -= 1
                    keep[i] = True
            taken.append(
                (chrom[keep], start[keep], fraction[keep], np.full(keep.sum(), index, np.int8))
            )
        if need.sum():
            short = {
                f"{k / n_bins:.2f}-{(k + 1) / n_bins:.2f}": int(v) for k, v in enumerate(need) if v
            }
            log.warning(
                "negatives: the %s split is %d windows short of its GC-matched %d after %d "
                "rounds of candidates (GC bin: missing %s); the genome outside peaks has too "
                "few windows of that GC",
                SPLITS[index],
                int(need.sum()),
                int(wanted[index].sum()),
                MAX_ROUNDS,
                short,
            )
    return _negatives(taken, wanted, options, ref)


class _TakenWindows:
    """The negatives taken so far, per chromosome, as sorted starts of ``length``-base windows.

    Two such windows overlap when their starts are less than ``length`` apart.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.starts: dict[int, list[int]] = {}

    def claim(self, chrom: int, start: int) -> bool:
        """Take the window when it overlaps none taken; return whether it was taken."""
        starts = self.starts.setdefault(chrom, [])
        at = bisect.bisect_left(starts, start)
        if at < len(starts) and starts[at] - start < self.length:
            return False
        if at > 0 and start - starts[at - 1] < self.length:
            return False
        starts.insert(at, start)
        return True


def _negatives(
    taken: list, wanted: np.ndarray, options: IntervalOptions, ref: Reference
) -> Negatives:
    if taken:
        chrom, start, gc, split = (np.concatenate(parts) for parts in zip(*taken, strict=True))
    else:
        chrom, start = np.zeros(0, np.int64), np.zeros(0, np.int64)
        gc, split = np.zeros(0), np.zeros(0, np.int8)
    order = sort_order([chrom, start]) if len(chrom) else np.zeros(0, np.int64)
    n = len(order)
    regions = Regions(
        chrom[order].astype(np.int32),
        start[order].astype(np.int64),
        np.zeros(n, dtype=bool),
        np.zeros((n, 0), dtype=np.uint8),
        np.ones(n, dtype=bool),
    )
    return Negatives(regions, split[order], gc[order], wanted)


def _windows_table(regions: Regions, length: int, n_chroms: int) -> IntervalTable:
    return IntervalTable.build(regions.chrom, regions.start, regions.start + length, n_chroms)


def _candidate_chroms(index: int, ref: Reference, options: IntervalOptions) -> np.ndarray:
    """Chromosomes a negative of split ``index`` may lie on, long enough for a window."""
    from .job import split_codes

    margin = max(options.flank, options.min_distance_to_end)
    fits = ref.lengths >= options.length + 2 * margin
    if options.split == "random":
        return np.flatnonzero(fits)
    codes = split_codes(np.arange(len(ref.names)), ref.names, options)
    return np.flatnonzero(fits & (codes == index))


def _draw(
    rng: np.random.Generator,
    chroms: np.ndarray,
    ref: Reference,
    options: IntervalOptions,
    need: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate windows, uniform over the positions where one fits, sorted by draw."""
    margin = max(options.flank, options.min_distance_to_end)
    room = ref.lengths[chroms] - options.length - 2 * margin + 1
    n = max(CANDIDATES_PER_ROUND, CANDIDATE_FACTOR * need)
    position = rng.integers(0, int(room.sum()), size=n)
    bounds = np.cumsum(room)
    which = np.searchsorted(bounds, position, side="right")
    before = np.concatenate(([0], bounds[:-1]))[which]
    return chroms[which].astype(np.int64), position - before + margin


def peak_table(peaks: pd.DataFrame, n_chroms: int) -> IntervalTable:
    """Every file's peaks as one :class:`IntervalTable`."""
    return IntervalTable.build(
        peaks["chrom"].to_numpy(), peaks["start"].to_numpy(), peaks["end"].to_numpy(), n_chroms
    )


def add_negatives(
    positives: Regions, split: np.ndarray, gc: np.ndarray, negatives: Negatives
) -> tuple[Regions, np.ndarray, np.ndarray]:
    """Positives and negatives in one (chromosome, start, strand) order.

    Positives come first on ties; the negatives get all-zero labels. Returns the regions,
    their splits and GC.
    """
    n_labels = positives.labels.shape[1]
    neg = negatives.regions
    chrom = np.concatenate([positives.chrom, neg.chrom])
    start = np.concatenate([positives.start, neg.start])
    minus = np.concatenate([positives.minus, neg.minus])
    negative = np.concatenate([np.zeros(len(positives), bool), np.ones(len(neg), bool)])
    labels = np.concatenate([positives.labels, np.zeros((len(neg), n_labels), np.uint8)])
    order = sort_order([chrom, start, minus, negative])
    regions = Regions(chrom[order], start[order], minus[order], labels[order], negative[order])
    return (
        regions,
        np.concatenate([split, negatives.split])[order],
        np.concatenate([gc, negatives.gc])[order],
    )


def universe_source(path: str | Path) -> BedSource:
    """The region universe as a BED source of :func:`~.job.file_peaks` (no label column)."""
    return BedSource(checked_bed_path(path, "regions"), column=0, line=0)

"""bigWig targets (:mod:`gpu_genomics.intervals.bigwig`) against pyBigWig on tracks written here.

Every mode x missing x bin size is checked against pyBigWig's ``stats(..., exact=True)`` (tracks
without stored NaN, where our definitions and its agree) and against ``values()`` reduced with
NumPy (every track, NaN values included); then hand-computed values, strands, chunking, random
tracks (hypothesis), the track list and each bad input's message.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

pyBigWig = pytest.importorskip("pyBigWig")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gpu_genomics.errors import InputError  # noqa: E402
from gpu_genomics.intervals import bigwig  # noqa: E402
from gpu_genomics.intervals.bigwig import (  # noqa: E402
    MISSING_MODES,
    TARGET_MODES,
    Track,
    TrackSet,
    read_track_list,
    window_targets,
)

SETTINGS = settings(
    max_examples=30,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CHROMS = [("chr1", 5000), ("chr2", 3000), ("chr3", 2000)]
LENGTH = 96
BIN_SIZES = [None, 1, 8, 32, 96]


# --- writing bigWigs -------------------------------------------------------------------------
def write_bigwig(path: Path, chroms, entries=()) -> Path:
    """A bigWig with header ``chroms``; ``entries``, in file order, each one of:

    ``("bedgraph", chrom, starts, ends, values)``, ``("fixed", chrom, start, span, step, values)``
    or ``("variable", chrom, starts, span, values)``.
    """
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chroms), maxZooms=0)
    for kind, chrom, *rest in entries:
        if kind == "bedgraph":
            starts, ends, values = rest
            bw.addEntries(
                [chrom] * len(starts),
                [int(s) for s in starts],
                ends=[int(e) for e in ends],
                values=[float(v) for v in values],
            )
        elif kind == "fixed":
            start, span, step, values = rest
            bw.addEntries(
                chrom, int(start), values=[float(v) for v in values], span=span, step=step
            )
        else:
            starts, span, values = rest
            bw.addEntries(
                chrom, [int(s) for s in starts], values=[float(v) for v in values], span=span
            )
    bw.close()
    return path


def random_intervals(rng, begin: int, end: int, *, nan_fraction: float = 0.0, max_gap: int = 60):
    """Sorted bedGraph intervals tiling part of ``[begin, end)``: gaps (some 0), widths 1..80."""
    starts, ends = [], []
    position = begin
    while True:
        position += int(rng.integers(0, max_gap)) if rng.random() < 0.7 else 0
        width = int(rng.integers(1, 80))
        if position + width > end:
            break
        starts.append(position)
        ends.append(position + width)
        position += width
    values = rng.normal(0, 3, len(starts)).astype(np.float32)
    values[rng.random(len(starts)) < nan_fraction] = np.nan
    return starts, ends, values


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> dict[str, Path]:
    """Three tracks (module docstring of the fixtures below).

    * ``plain``: chr1 covered from base 0 to its very end with gaps; chr2 fixed-step entries
      (span < step: gaps), variable-step entries and bedGraph intervals; chr3 in the header
      with no data;
    * ``nan``: stored NaN values on chr1; chr2 not in its header at all;
    * ``sparse``: two short stretches on chr1, nothing elsewhere.
    """
    folder = tmp_path_factory.mktemp("bigwigs")
    rng = np.random.default_rng(14)
    starts, ends, values = random_intervals(rng, 0, 5000, max_gap=40)
    starts[0] = 0
    ends[-1] = 5000
    plain = write_bigwig(
        folder / "plain.bw",
        CHROMS,
        [
            ("bedgraph", "chr1", starts, ends, values),
            ("fixed", "chr2", 100, 5, 12, rng.normal(2, 1, 40)),
            ("variable", "chr2", range(700, 1100, 20), 7, rng.normal(-1, 2, 20)),
            ("bedgraph", "chr2", *random_intervals(rng, 1500, 3000)),
        ],
    )
    nan = write_bigwig(
        folder / "nan.bigWig",
        [CHROMS[0], CHROMS[2]],
        [
            ("bedgraph", "chr1", *random_intervals(rng, 0, 5000, nan_fraction=0.2)),
            ("bedgraph", "chr3", [500], [900], [1.5]),
        ],
    )
    sparse = write_bigwig(
        folder / "sparse.bigwig",
        CHROMS,
        [("bedgraph", "chr1", [1000, 1040, 3000], [1030, 1100, 3050], [2.0, -1.0, 4.0])],
    )
    return {"plain": plain, "nan": nan, "sparse": sparse}


def random_windows(seed: int, chrom_length: int, n: int = 40):
    """Random starts (unsorted, some repeated) plus the chromosome's first and last windows and
    windows in the sparse track's empty stretches; random strands."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, chrom_length - LENGTH + 1, n)
    edges = [0, chrom_length - LENGTH, 1500, min(1950, chrom_length - LENGTH), starts[3]]
    starts = np.concatenate([starts, edges]).astype(np.int64)
    return starts, rng.random(len(starts)) < 0.5


# --- references ------------------------------------------------------------------------------
def by_values(path, chrom, starts, length, *, target, bin_size, minus, missing):
    """``values()`` reduced with NumPy, uncovered bases (NaN) as 0 or left out."""
    bw = pyBigWig.open(str(path))
    step = bin_size or length
    rows = []
    for start, flip in zip(starts, minus, strict=True):
        if chrom in bw.chroms():
            v = np.asarray(bw.values(chrom, int(start), int(start) + length, numpy=True), float)
        else:
            v = np.array([])
        if v.size == 0:
            v = np.full(length, np.nan)
        v = v.reshape(-1, step)
        covered = ~np.isnan(v)
        count = covered.sum(1)
        zeroed = np.where(covered, v, 0.0)
        if target == "coverage":
            row = count / step
        elif missing == "zero":
            row = {"mean": zeroed.mean(1), "max": zeroed.max(1), "sum": zeroed.sum(1)}[target]
        else:
            top = np.where(covered, v, -np.inf).max(1)
            row = {"mean": zeroed.sum(1) / np.maximum(count, 1), "max": top, "sum": zeroed.sum(1)}[
                target
            ]
            row = np.where(count > 0, row, np.nan)
        rows.append(row[::-1] if flip else row)
    bw.close()
    out = np.array(rows).reshape(len(starts), length // step)
    return out[:, 0] if bin_size is None else out


def by_stats(path, chrom, starts, length, *, target, bin_size, minus, missing):
    """pyBigWig's ``stats(..., exact=True)`` per bin; ``missing="zero"`` from its sum, max and
    coverage (mean = sum / bin length; max with 0 unless the bin is fully covered)."""
    bw = pyBigWig.open(str(path))
    step = bin_size or length
    n_bins = length // step

    def stats(kind, start):
        if chrom not in bw.chroms():
            return [None] * n_bins
        return bw.stats(chrom, int(start), int(start) + length, type=kind, nBins=n_bins, exact=True)

    rows = []
    for start, flip in zip(starts, minus, strict=True):
        coverage = [c or 0.0 for c in stats("coverage", start)]
        if target == "coverage":
            row = coverage
        elif missing == "ignore":
            row = [np.nan if s is None else s for s in stats(target, start)]
        elif target == "max":
            row = [
                0.0 if c == 0 else (s if c == 1 else max(s, 0.0))
                for s, c in zip(stats("max", start), coverage, strict=True)
            ]
        else:
            sums = [
                0.0 if c == 0 else s for s, c in zip(stats("sum", start), coverage, strict=True)
            ]
            row = sums if target == "sum" else [s / step for s in sums]
        row = np.array(row, dtype=float)
        rows.append(row[::-1] if flip else row)
    bw.close()
    out = np.array(rows).reshape(len(starts), n_bins)
    return out[:, 0] if bin_size is None else out


def check_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6, equal_nan=True)


# --- against pyBigWig ------------------------------------------------------------------------
@pytest.mark.parametrize("bin_size", BIN_SIZES)
@pytest.mark.parametrize("missing", MISSING_MODES)
@pytest.mark.parametrize("target", TARGET_MODES)
def test_matches_pybigwig_stats(tracks, target, missing, bin_size):
    paths = [tracks["plain"], tracks["sparse"]]
    with TrackSet(paths) as opened:
        for seed, (chrom, size) in enumerate(CHROMS):
            starts, minus = random_windows(seed, size)
            got = opened.targets(
                chrom, starts, LENGTH, target=target, bin_size=bin_size, minus=minus,
                missing=missing, chrom_length=size,
            )  # fmt: skip
            shape = (len(starts), 2) if bin_size is None else (len(starts), LENGTH // bin_size, 2)
            assert got.shape == shape
            assert got.dtype == np.float32
            for k, path in enumerate(paths):
                expected = by_stats(
                    path,
                    chrom,
                    starts,
                    LENGTH,
                    target=target,
                    bin_size=bin_size,
                    minus=minus,
                    missing=missing,
                )
                check_close(got[..., k], expected)


@pytest.mark.parametrize("bin_size", BIN_SIZES)
@pytest.mark.parametrize("missing", MISSING_MODES)
@pytest.mark.parametrize("target", TARGET_MODES)
def test_matches_pybigwig_values(tracks, target, missing, bin_size):
    paths = [tracks["plain"], tracks["nan"], tracks["sparse"]]
    with TrackSet(paths) as opened:
        assert opened.names == ["plain", "nan", "sparse"]
        for seed, (chrom, size) in enumerate(CHROMS):
            starts, minus = random_windows(seed + 10, size)
            got = opened.targets(
                chrom, starts, LENGTH, target=target, bin_size=bin_size, minus=minus,
                missing=missing,
            )  # fmt: skip
            for k, path in enumerate(paths):
                expected = by_values(
                    path,
                    chrom,
                    starts,
                    LENGTH,
                    target=target,
                    bin_size=bin_size,
                    minus=minus,
                    missing=missing,
                )
                check_close(got[..., k], expected)


def test_references_see_the_tracks_content(tracks):
    """The comparisons above are not vacuous: the tracks give covered, partly covered and
    uncovered windows, negative values and NaN values."""
    starts, minus = random_windows(0, 5000)
    coverage = by_values(
        tracks["plain"],
        "chr1",
        starts,
        LENGTH,
        target="coverage",
        bin_size=None,
        minus=minus,
        missing="zero",
    )
    assert (coverage == 1).any()
    assert ((coverage > 0) & (coverage < 1)).any()
    sparse = by_values(
        tracks["sparse"],
        "chr1",
        starts,
        LENGTH,
        target="coverage",
        bin_size=None,
        minus=minus,
        missing="zero",
    )
    assert (sparse == 0).any()
    bw = pyBigWig.open(str(tracks["nan"]))
    values = [v for _, _, v in bw.intervals("chr1")]
    assert np.isnan(values).any()
    assert (np.array(values)[~np.isnan(values)] < 0).any()
    assert "chr2" not in bw.chroms()


# --- semantics by hand -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """chr1 (100 bases): [10, 15) = 1, [20, 30) = NaN, [50, 60) = -2; chr2 (50): fixed step
    at 0 (span 2, step 5, values 1..4), variable step at 30 and 40 (span 3, 7 and 8)."""
    folder = tmp_path_factory.mktemp("small")
    return write_bigwig(
        folder / "small.bw",
        [("chr1", 100), ("chr2", 50)],
        [
            ("bedgraph", "chr1", [10, 20, 50], [15, 30, 60], [1.0, np.nan, -2.0]),
            ("fixed", "chr2", 0, 2, 5, [1.0, 2.0, 3.0, 4.0]),
            ("variable", "chr2", [30, 40], 3, [7.0, 8.0]),
        ],
    )


@pytest.mark.parametrize(
    ("target", "missing", "expected"),
    [
        ("mean", "zero", [0.25, 0.0, -1.0]),
        ("max", "zero", [1.0, 0.0, 0.0]),
        ("sum", "zero", [5.0, 0.0, -20.0]),
        ("coverage", "zero", [0.25, 0.0, 0.5]),
        ("mean", "ignore", [1.0, np.nan, -2.0]),
        ("max", "ignore", [1.0, np.nan, -2.0]),
        ("sum", "ignore", [5.0, np.nan, -20.0]),
        ("coverage", "ignore", [0.25, 0.0, 0.5]),
    ],
)
def test_known_values(small, target, missing, expected):
    """Bins of 20 over [0, 60): the middle bin holds only the NaN-valued interval, uncovered."""
    with TrackSet([small]) as opened:
        got = opened.targets(
            "chr1", np.array([0, 0]), 60, target=target, bin_size=20,
            minus=np.array([False, True]), missing=missing,
        )  # fmt: skip
    np.testing.assert_array_equal(got[0, :, 0], np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(got[1, :, 0], np.array(expected[::-1], dtype=np.float32))


def test_step_and_span_entries(small):
    """Fixed step covers 2 bases of every 5; variable step 3 bases at each start."""
    with TrackSet([small]) as opened:
        got = opened.targets("chr2", np.array([0, 30]), 20, target="sum", bin_size=5)
        coverage = opened.targets("chr2", np.array([0, 30]), 20, target="coverage")
    np.testing.assert_array_equal(got[0, :, 0], [2.0, 4.0, 6.0, 8.0])
    np.testing.assert_array_equal(got[1, :, 0], [21.0, 0.0, 24.0, 0.0])
    np.testing.assert_array_equal(coverage[:, 0], np.float32([8 / 20, 6 / 20]))


def test_stored_nan_counts_as_uncovered(tmp_path):
    """A NaN-valued interval gives what no interval there gives, in every mode."""
    with_nan = write_bigwig(
        tmp_path / "a.bw",
        [("chr1", 400)],
        [("bedgraph", "chr1", [0, 100, 150, 300], [100, 150, 200, 400], [1.0, np.nan, 3.0, 4.0])],
    )
    without = write_bigwig(
        tmp_path / "b.bw",
        [("chr1", 400)],
        [("bedgraph", "chr1", [0, 150, 300], [100, 200, 400], [1.0, 3.0, 4.0])],
    )
    starts = np.arange(0, 400 - 50 + 1, 10)
    with TrackSet([with_nan, without]) as opened:
        for target in TARGET_MODES:
            for missing in MISSING_MODES:
                for bin_size in (None, 10):
                    got = opened.targets(
                        "chr1", starts, 50, target=target, bin_size=bin_size, missing=missing
                    )
                    np.testing.assert_array_equal(got[..., 0], got[..., 1])
        inside = opened.targets("chr1", np.array([100]), 50, target="mean", missing="ignore")
        assert np.isnan(inside).all()
        cover = opened.targets("chr1", np.array([100]), 50, target="coverage")
        assert (cover == 0).all()


def test_missing_chromosome_and_empty_track(tracks, tmp_path):
    """chr2 absent from a track, and a bigWig with no interval at all: uncovered throughout."""
    empty = write_bigwig(tmp_path / "empty.bw", CHROMS)
    starts = np.array([0, 500, 3000 - LENGTH])
    with TrackSet([tracks["nan"], empty]) as opened:
        assert "chr2" not in opened.chrom_lengths[0]
        assert opened.chrom_lengths[1] == dict(CHROMS)
        for target in TARGET_MODES:
            zero = opened.targets("chr2", starts, LENGTH, target=target, chrom_length=3000)
            assert (zero == 0).all()
            ignore = opened.targets("chr2", starts, LENGTH, target=target, missing="ignore")
            assert (ignore == 0).all() if target == "coverage" else np.isnan(ignore).all()
        profile = opened.targets("chr1", starts, LENGTH, target="max", bin_size=8)
        assert (profile[..., 1] == 0).all()


def test_minus_reverses_bins_only(tracks):
    starts, _ = random_windows(3, 5000)
    plus = np.zeros(len(starts), dtype=bool)
    with TrackSet([tracks["plain"], tracks["nan"]]) as opened:
        for target in TARGET_MODES:
            forward = opened.targets("chr1", starts, LENGTH, target=target, bin_size=8, minus=plus)
            reverse = opened.targets("chr1", starts, LENGTH, target=target, bin_size=8, minus=~plus)
            np.testing.assert_array_equal(reverse, forward[:, ::-1, :])
            assert not np.array_equal(reverse, forward)
            scalar = opened.targets("chr1", starts, LENGTH, target=target, minus=~plus)
            np.testing.assert_array_equal(
                scalar, opened.targets("chr1", starts, LENGTH, target=target)
            )


def test_rows_follow_the_given_order(tracks):
    """Unsorted and repeated starts: row i is window i's, as when asked alone."""
    starts = np.array([4000, 12, 4000, 0, 2500, 13])
    minus = np.array([True, False, False, True, False, True])
    with TrackSet([tracks["plain"]]) as opened:
        together = opened.targets("chr1", starts, LENGTH, bin_size=4, minus=minus)
        for i in range(len(starts)):
            alone = opened.targets(
                "chr1", starts[i : i + 1], LENGTH, bin_size=4, minus=minus[i : i + 1]
            )
            np.testing.assert_array_equal(together[i], alone[0])


@pytest.mark.parametrize(("max_bases", "gap"), [(1, 0), (150, 0), (400, 50), (10_000, 10_000)])
def test_chunking_does_not_change_targets(tracks, monkeypatch, max_bases, gap):
    """Tiled, overlapping windows read in chunks of every size give the same targets."""
    starts = np.concatenate([np.arange(0, 5000 - LENGTH, 37), np.array([5000 - LENGTH])])
    paths = [tracks["plain"], tracks["nan"]]
    with TrackSet(paths) as opened:
        expected = opened.targets("chr1", starts, LENGTH, target="mean", bin_size=8)
        monkeypatch.setattr(bigwig, "MAX_CHUNK_BASES", max_bases)
        monkeypatch.setattr(bigwig, "CHUNK_GAP", gap)
        got = opened.targets("chr1", starts, LENGTH, target="mean", bin_size=8)
    np.testing.assert_array_equal(got, expected)
    check_close(
        got[..., 0],
        by_values(
            paths[0],
            "chr1",
            starts,
            LENGTH,
            target="mean",
            bin_size=8,
            minus=starts < 0,
            missing="zero",
        ),
    )


@SETTINGS
@given(
    starts=st.lists(st.integers(0, 10_000), min_size=1, max_size=60),
    length=st.integers(1, 300),
    gap=st.integers(0, 500),
    max_bases=st.integers(1, 2_000),
)
def test_chunk_windows(starts, length, gap, max_bases):
    """Chunks hold whole windows in order, stay within the bound, and are as long as allowed."""
    starts = np.sort(np.array(starts, dtype=np.int64))
    bound = max(max_bases, length)
    bounds, ends = bigwig._chunk_windows(starts, length, gap, bound)
    assert bounds[0] == 0
    assert bounds[-1] == len(starts)
    assert (np.diff(bounds) > 0).all()
    for k in range(len(ends)):
        chunk = starts[bounds[k] : bounds[k + 1]]
        assert ends[k] == chunk[-1] + length
        assert ends[k] - chunk[0] <= bound
        for i in range(1, len(chunk)):  # every window joins within the gap of the reach so far
            assert chunk[i] <= chunk[i - 1] + length + gap
        if k + 1 < len(ends):  # the next window could not have joined
            following = starts[bounds[k + 1]]
            assert following > ends[k] + gap or following + length - chunk[0] > bound


@pytest.mark.parametrize(
    ("starts", "max_bases", "bounds"),
    [
        ([0, 15], 100, [0, 2]),  # exactly the gap (5) after the first window's end: joins
        ([0, 16], 100, [0, 1, 2]),  # one base more: a new chunk
        ([0, 15], 25, [0, 2]),  # exactly max_bases long
        ([0, 15], 24, [0, 1, 2]),  # one base over
        ([0, 0, 3], 1, [0, 2, 3]),  # the bound is at least one window: repeats share it
    ],
)
def test_chunk_windows_boundaries(starts, max_bases, bounds):
    got, ends = bigwig._chunk_windows(np.array(starts, dtype=np.int64), 10, 5, max(max_bases, 10))
    assert got.tolist() == bounds
    assert ends.tolist() == [starts[b - 1] + 10 for b in bounds[1:]]


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    chrom_length=st.integers(40, 800),
    length=st.sampled_from([1, 2, 6, 12, 24]),
    bin_size=st.sampled_from([None, 1, 2, 3, 6]),
    target=st.sampled_from(TARGET_MODES),
    missing=st.sampled_from(MISSING_MODES),
    nan_fraction=st.sampled_from([0.0, 0.3]),
)
def test_random_tracks(seed, chrom_length, length, bin_size, target, missing, nan_fraction):  # noqa: PLR0917
    """Random tracks, windows and strands (chunks forced small) against ``values()``."""
    rng = np.random.default_rng(seed)
    if bin_size is not None and length % bin_size:
        bin_size = None
    with tempfile.TemporaryDirectory() as folder:
        intervals = random_intervals(rng, 0, chrom_length, nan_fraction=nan_fraction, max_gap=10)
        entries = [("bedgraph", "chr1", *intervals)] if intervals[0] else []
        path = write_bigwig(Path(folder) / "r.bw", [("chr1", chrom_length)], entries)
        starts = rng.integers(0, chrom_length - length + 1, int(rng.integers(0, 30)))
        minus = rng.random(len(starts)) < 0.5
        chunk = int(rng.integers(1, 3 * length + 2))
        with TrackSet([path]) as opened:
            old = bigwig.MAX_CHUNK_BASES, bigwig.CHUNK_GAP
            bigwig.MAX_CHUNK_BASES, bigwig.CHUNK_GAP = chunk, int(rng.integers(0, 20))
            try:
                got = opened.targets(
                    "chr1", starts, length, target=target, bin_size=bin_size, minus=minus,
                    missing=missing, chrom_length=chrom_length,
                )  # fmt: skip
            finally:
                bigwig.MAX_CHUNK_BASES, bigwig.CHUNK_GAP = old
        n_bins = () if bin_size is None else (length // bin_size,)
        assert got.shape == (len(starts), *n_bins, 1)
        if len(starts):
            expected = by_values(
                path,
                "chr1",
                starts,
                length,
                target=target,
                bin_size=bin_size,
                minus=minus,
                missing=missing,
            )
            check_close(got[..., 0], expected)


def test_no_windows(tracks):
    with TrackSet([tracks["plain"], tracks["sparse"]]) as opened:
        assert opened.targets("chr1", np.array([], dtype=np.int64), LENGTH).shape == (0, 2)
        binned = opened.targets("chr1", np.zeros(0, dtype=np.int64), LENGTH, bin_size=32)
        assert binned.shape == (0, 3, 2)
        assert binned.dtype == np.float32


def test_window_targets_opens_or_uses_a_track_set(tracks):
    starts, minus = random_windows(5, 5000)
    paths = [tracks["plain"], tracks["sparse"]]
    from_paths = window_targets(
        paths, "chr1", starts, LENGTH, target="max", bin_size=32, minus=minus
    )
    with TrackSet([Track(p, p.stem) for p in paths]) as opened:
        from_set = window_targets(
            opened, "chr1", starts, LENGTH, target="max", bin_size=32, minus=minus
        )
        again = opened.targets("chr1", starts, LENGTH, target="max", bin_size=32, minus=minus)
    np.testing.assert_array_equal(from_paths, from_set)
    np.testing.assert_array_equal(from_set, again)
    check_close(
        from_paths[..., 1],
        by_values(
            paths[1], "chr1", starts, LENGTH, target="max", bin_size=32, minus=minus, missing="zero"
        ),
    )


# --- the track list --------------------------------------------------------------------------
def test_read_track_list(tracks, tmp_path):
    folder = tmp_path / "lists"
    (folder / "sub dir").mkdir(parents=True)
    spaced = folder / "sub dir" / "with space.bw"
    spaced.write_bytes(tracks["plain"].read_bytes())
    listing = folder / "tracks.txt"
    listing.write_text(
        "# signal tracks\n"
        f"{tracks['plain']}\n"
        "\n"
        f"{tracks['nan']}\tH3K27ac\n"
        f"  {tracks['sparse']}   dnase  \n"
        "sub dir/with space.bw\n"
        "sub dir/with space.bw spaced\n"
    )
    got = read_track_list(listing)
    assert got == [
        Track(tracks["plain"], "plain"),
        Track(tracks["nan"], "H3K27ac"),
        Track(tracks["sparse"], "dnase"),
        Track(folder / "sub dir" / "with space.bw", "with space"),
        Track(folder / "sub dir" / "with space.bw", "spaced"),
    ]
    with TrackSet(got) as opened:
        assert opened.names == ["plain", "H3K27ac", "dnase", "with space", "spaced"]
    # default names drop .bw, .bigWig and .bigwig
    assert [t.name for t in read_track_list(_listing(tmp_path, list(tracks.values())))] == [
        "plain",
        "nan",
        "sparse",
    ]


def _listing(folder: Path, lines) -> Path:
    path = folder / "list.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _one_line_error(excinfo, *parts: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_track_list_errors(tracks, tmp_path):
    plain = tracks["plain"]
    text = tmp_path / "notes.bw"
    text.write_text("track type=bedGraph\nchr1\t0\t10\t1\n")
    bigbed = tmp_path / "peaks.bb"
    bigbed.write_bytes(b"\xeb\xf2\x89\x87" + bytes(60))
    cases = [
        ([f"{plain}", "missing.bw"], ["line 2", "missing.bw", "does not exist", "check the path"]),
        ([f"{tmp_path}"], ["line 1", "is a folder", "name the file"]),
        ([f"# c\n{text}"], ["line 2", "notes.bw", "not a bigWig", "bedGraphToBigWig"]),
        ([f"{bigbed}"], ["line 1", "bigBed, not a bigWig"]),
        ([f"{plain}", f"{tracks['nan']}\tplain"], ["line 2", "'plain'", "line 1", "own name"]),
        ([f"{plain}\ta\tb"], ["line 1", "3 fields", "PATH<TAB>NAME"]),
        (["# nothing", "", "   "], ["names no bigWig files", "one per line"]),
    ]
    for lines, parts in cases:
        listing = _listing(tmp_path, lines)
        with pytest.raises(InputError) as excinfo:
            read_track_list(listing)
        _one_line_error(excinfo, str(listing), *parts)
    with pytest.raises(InputError) as excinfo:
        read_track_list(tmp_path / "absent.txt")
    _one_line_error(excinfo, "absent.txt", "cannot read the track list", "check the path")


# --- bad input to the targets ----------------------------------------------------------------
def test_target_errors(tracks):
    starts = np.array([0, 100])
    with TrackSet([tracks["plain"]]) as opened:
        cases = [
            ({"target": "median"}, ["target='median'", "mean, max, sum, coverage"]),
            ({"missing": "nan"}, ["missing='nan'", "zero, ignore"]),
            ({"bin_size": 7}, ["bin_size=7", "does not divide", "96"]),
            ({"bin_size": 0}, ["bin_size=0", "positive integer"]),
            ({"minus": np.array([True])}, ["minus has shape (1,)", "(2,)"]),
            ({"chrom_length": 4999}, ["plain.bw", "5000 bases", "4999", "reference's assembly"]),
        ]
        for options, parts in cases:
            with pytest.raises(InputError) as excinfo:
                opened.targets("chr1", starts, LENGTH, **options)
            _one_line_error(excinfo, *parts)
        for chrom, bad, options, parts in [
            ("chr1", np.array([-1, 5]), {}, ["chr1:-1-101", "outside the chromosome"]),
            ("chr1", np.array([10, 4905]), {}, ["plain.bw", "chr1:4905-5001", "past the end"]),
            ("chr2", np.array([0, 2950]), {"chrom_length": 3000}, ["(0-3000)", "inside"]),
            ("chr1", np.zeros((2, 2), dtype=int), {}, ["1-D integer", "(2, 2)"]),
            ("chr1", np.array([0.5, 3.0]), {}, ["1-D integer"]),
        ]:
            with pytest.raises(InputError) as excinfo:
                opened.targets(chrom, bad, LENGTH, **options)
            _one_line_error(excinfo, *parts)
        with pytest.raises(InputError) as excinfo:
            opened.targets("chr1", starts, 0)
        _one_line_error(excinfo, "length=0", "positive integer")
    with pytest.raises(InputError) as excinfo:
        opened.targets("chr1", starts, LENGTH)
    _one_line_error(excinfo, "closed")


def test_track_set_errors(tracks, tmp_path):
    truncated = tmp_path / "cut.bw"
    truncated.write_bytes(tracks["plain"].read_bytes()[:40])
    text = tmp_path / "text.bw"
    text.write_text("chr1\t0\t10\t1\n")
    cases = [
        ([], ["no bigWig files"]),
        ([tracks["plain"], tmp_path / "plain.bw"], ["two tracks are named 'plain'"]),
        ([tracks["plain"], tmp_path / "gone.bw"], ["gone.bw", "track gone", "does not exist"]),
        ([text], ["text.bw", "not a bigWig"]),
        ([truncated], ["cut.bw", "cannot open the bigWig of track cut", "remake it"]),
    ]
    for paths, parts in cases:
        with pytest.raises(InputError) as excinfo:
            TrackSet(paths)
        _one_line_error(excinfo, *parts)

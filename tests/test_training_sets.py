"""The training-set options of the ``intervals`` job (issue 14), checked against oracles.

``center="summit"``, region universes (``universe``, ``label_overlap``, ``label_overlap_of``),
``flank``, ``min_distance_to_end``, ``blacklist`` (``blacklist_overlap``), ``max_n_frac``,
GC-matched ``negatives`` and bigWig targets (``bigwig``, ``target``, ``bin_size``,
``bigwig_missing``), called through :func:`gpu_genomics.build_interval_dataset` and the
``intervals`` command, on a synthetic genome written here (GC blocks, N runs, lower case, IUPAC
letters). Oracles: the genome's own text (and pysam), ``bedtools intersect``/``nuc`` (skipped
without bedtools), pyBigWig's ``stats``/``values``, and arithmetic written out in this file.
Cluster runs (``distributed.LocalCluster``) must write the in-process output array for array.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pysam
import pytest
from compare_outputs import arrays_of, same

import gpu_genomics as gg
from gpu_genomics import cli
from gpu_genomics.errors import InputError
from gpu_genomics.intervals import bed as bed_module

SPLITS = ("training", "validation", "test")
BEDTOOLS = shutil.which("bedtools")
needs_bedtools = pytest.mark.skipif(BEDTOOLS is None, reason="bedtools is not installed")
COMPLEMENT = str.maketrans("ACGTacgtRYKMSWrykmswNn", "TGCAtgcaYRMKSWyrmkswNn")
#: (name, length) of the synthetic genome; chr19/chr20 test, chr21/chr22 validation by default
CHROMS = (
    ("chr1", 72_000),
    ("chr2", 48_000),
    ("chr19", 28_000),
    ("chr20", 24_000),
    ("chr21", 24_000),
    ("chr22", 20_000),
    ("chrS", 700),
)
LENGTH = 200


# --- the synthetic genome and its peaks ---------------------------------------------------------
@dataclass
class Genome:
    """The files of the synthetic data set and what they hold."""

    folder: Path
    fasta: Path  # plain FASTA
    bgzip: Path  # the same, bgzip-compressed
    metadata: Path  # three narrowPeak files, labels 0, 1, 2
    beds: list[Path]
    seqs: dict[str, str]
    #: per file: ``(chrom, start, end, strand, summit offset)``
    peaks: list[list[tuple]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in CHROMS]

    @property
    def lengths(self) -> dict[str, int]:
        return dict(CHROMS)


def make_sequence(rng: np.random.Generator, length: int) -> str:
    """Blocks of 400 bases of varying GC, some lower case, a few N runs and IUPAC letters."""
    parts = []
    for block in range(-(-length // 400)):
        gc = rng.choice([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
        n = min(400, length - 400 * block)
        strong = rng.random(n) < gc
        letters = np.where(strong, rng.choice(list("GC"), n), rng.choice(list("AT"), n))
        text = "".join(letters)
        if block % 5 == 3:
            text = text.lower()
        parts.append(text)
    seq = list("".join(parts))
    for _ in range(max(1, length // 6000)):  # N runs, one of them lower case
        at = int(rng.integers(0, length - 300))
        run = int(rng.integers(20, 250))
        letter = "N" if rng.random() < 0.7 else "n"
        seq[at : at + run] = letter * len(seq[at : at + run])
    for at in rng.choice(length, size=length // 500, replace=False):  # IUPAC codes
        seq[at] = str(rng.choice(list("RYKMSWryk")))
    return "".join(seq)


def write_fasta(path: Path, seqs: dict[str, str], width: int = 60) -> None:
    with path.open("w") as handle:
        for name, seq in seqs.items():
            handle.write(f">{name}\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i : i + width] + "\n")


def narrowpeak_line(chrom: str, start: int, end: int, strand: str, offset: int) -> str:
    return f"{chrom}\t{start}\t{end}\tp\t100\t{strand}\t5.0\t3.0\t2.0\t{offset}\n"


def random_peaks(rng: np.random.Generator, n_per_kb: float) -> list[tuple]:
    peaks = []
    for name, size in CHROMS:
        if size < 1000:
            continue
        for _ in range(max(2, int(size / 1000 * n_per_kb))):
            width = int(rng.integers(30, 500))
            start = int(rng.integers(0, size - width))
            strand = str(rng.choice(["+", "-", "."]))
            peaks.append((name, start, start + width, strand, int(rng.integers(0, width))))
        # at both ends of the chromosome, summits at the very first and last base
        peaks.append((name, 0, 80, "+", 0))
        peaks.append((name, size - 90, size, "-", 89))
    peaks.sort(key=lambda p: (p[0], p[1]))
    return peaks


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Genome:
    folder = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(14)
    seqs = {name: make_sequence(rng, size) for name, size in CHROMS}
    fasta = folder / "ref.fa"
    write_fasta(fasta, seqs)
    bgzip = folder / "ref.fa.gz"
    pysam.tabix_compress(str(fasta), str(bgzip), force=True)
    beds, all_peaks = [], []
    for k in range(3):
        peaks = random_peaks(rng, 0.15 + 0.08 * k)
        path = folder / f"label{k}.narrowPeak"
        path.write_text("".join(narrowpeak_line(*p) for p in peaks))
        beds.append(path)
        all_peaks.append(peaks)
    metadata = folder / "metadata.txt"
    metadata.write_text("".join(f"{p.name}\n" for p in beds))
    return Genome(folder, fasta, bgzip, metadata, beds, seqs, all_peaks)


# --- helpers ------------------------------------------------------------------------------------
def build(genome: Genome, output: Path, *, metadata: Path | None = None, **options) -> dict:
    options = {"length": LENGTH, "min_overlap": 50, "device": "cpu", **options}
    reference = options.pop("reference", genome.fasta)
    return gg.build_interval_dataset(metadata or genome.metadata, reference, output, **options)


def read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every array of an output by name, and its root attributes."""
    arrays, attrs = arrays_of(path)
    return arrays, attrs["/"]


def as_text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


@dataclass
class Rows:
    """All the regions of an output, the splits one after the other."""

    split: np.ndarray
    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    minus: np.ndarray
    labels: np.ndarray
    names: list[str]
    negative: np.ndarray | None

    def __len__(self) -> int:
        return len(self.start)

    def keys(self) -> list[tuple]:
        return list(zip(self.chrom.tolist(), self.start.tolist(), self.minus.tolist(), strict=True))


def rows_of(arrays: dict[str, np.ndarray]) -> Rows:
    parts = {k: [] for k in ("split", "coords", "labels", "names", "negative")}
    for index, split in enumerate(SPLITS):
        coords = arrays[f"{split}_coords"]
        parts["split"].append(np.full(len(coords), index))
        parts["coords"].append(coords)
        parts["labels"].append(arrays[f"{split}_labels"])
        parts["names"].extend(as_text(arrays[f"{split}_names"]))
        if f"{split}_is_negative" in arrays:
            parts["negative"].append(arrays[f"{split}_is_negative"])
    coords = np.concatenate(parts["coords"]).reshape(-1, 3)
    minus = np.array([name.endswith("(-)") for name in parts["names"]], dtype=bool)
    negative = np.concatenate(parts["negative"]) if parts["negative"] else None
    return Rows(
        np.concatenate(parts["split"]),
        coords[:, 0],
        coords[:, 1],
        coords[:, 2],
        minus,
        np.concatenate(parts["labels"]),
        parts["names"],
        negative,
    )


def window_start(mid: int, length: int, chrom_length: int) -> int:
    """The window around ``mid``, shifted inward at the chromosome's ends."""
    return min(max(mid - length // 2, 0), chrom_length - length)


def onehot(seq: str) -> np.ndarray:
    """``(len, 4) uint8`` ACGT one-hot, either case; every other letter all zero."""
    table = {"A": 0, "C": 1, "G": 2, "T": 3}
    out = np.zeros((len(seq), 4), dtype=np.uint8)
    for i, letter in enumerate(seq.upper()):
        if letter in table:
            out[i, table[letter]] = 1
    return out


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def write_bed(path: Path, rows) -> Path:
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


def bedtools(*args) -> list[list[str]]:
    out = subprocess.run(
        [BEDTOOLS, *map(str, args)], check=True, capture_output=True, text=True
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line and not line.startswith("#")]


def split_of(chrom_name: str, test=("chr19", "chr20"), valid=("chr21", "chr22")) -> int:
    return 2 if chrom_name in test else 1 if chrom_name in valid else 0


# --- 1. center="summit" -------------------------------------------------------------------------
def summit_windows(genome: Genome, length: int) -> dict[tuple, set[int]]:
    """``merge="none"``: ``(chrom index, window start, minus) -> labels`` at the summits."""
    expected: dict[tuple, set[int]] = {}
    for label, peaks in enumerate(genome.peaks):
        for chrom, start, _, strand, offset in peaks:
            size = genome.lengths[chrom]
            if size < length:
                continue
            key = (
                genome.names.index(chrom),
                window_start(start + offset, length, size),
                strand == "-",
            )
            expected.setdefault(key, set()).add(label)
    return expected


def labelled(rows: Rows) -> dict[tuple, set[int]]:
    found: dict[tuple, set[int]] = {}
    for key, labels in zip(rows.keys(), rows.labels, strict=True):
        assert key not in found, f"window {key} written twice"
        found[key] = set(np.flatnonzero(labels).tolist())
    return found


def test_summit_windows_of_the_none_merge(genome, tmp_path):
    build(genome, tmp_path / "s.h5", merge="none", center="summit")
    rows = rows_of(read(tmp_path / "s.h5")[0])
    expected = summit_windows(genome, LENGTH)
    assert labelled(rows) == expected
    np.testing.assert_array_equal(rows.end - rows.start, LENGTH)
    # the summits move the windows: the midpoints give other ones
    build(genome, tmp_path / "m.h5", merge="none")
    assert labelled(rows_of(read(tmp_path / "m.h5")[0])) != expected
    # the windows of the summits on the first and last base are shifted in
    assert (0, 0, False) in expected and (0, genome.lengths["chr1"] - LENGTH, True) in expected


@pytest.mark.parametrize("merge", ["basset", "none"])
def test_summit_is_the_midpoint_of_a_one_base_peak_at_it(genome, tmp_path, merge):
    """Each peak placed at its summit = the same peak as ``[summit, summit + 1)`` placed at its
    midpoint ((2 s + 1) // 2 = s), strand and label kept."""
    folder = tmp_path / "points"
    folder.mkdir()
    for path, peaks in zip(genome.beds, genome.peaks, strict=True):
        rows = [(c, s + o, s + o + 1, "p", 0, strand) for c, s, _, strand, o in peaks]
        write_bed(folder / path.name, rows)
    (folder / "metadata.txt").write_text(genome.metadata.read_text())
    build(genome, tmp_path / "summit.h5", merge=merge, center="summit")
    build(genome, tmp_path / "mid.h5", merge=merge, metadata=folder / "metadata.txt")
    summit, mid = read(tmp_path / "summit.h5")[0], read(tmp_path / "mid.h5")[0]
    assert summit.keys() == mid.keys()
    for name in summit:
        assert same(summit[name], mid[name]), name
    build(genome, tmp_path / "plain.h5", merge=merge)
    plain = read(tmp_path / "plain.h5")[0]
    assert not same(plain["training_coords"], summit["training_coords"])


def test_both_bed_parsers_read_the_same_summits(genome, tmp_path):
    clean = genome.beds[1]
    raw = clean.read_bytes()
    # a space before the summit field: the numba parser leaves the file to the line parser
    lines = raw.decode().splitlines(keepends=True)
    lines[3] = lines[3].replace("\t2.0\t", "\t2.0\t ")
    spaced = tmp_path / "spaced.narrowPeak"
    spaced.write_text("".join(lines))
    assert bed_module._read_bed_fast(raw, summit=True) is not None
    assert bed_module._read_bed_fast(spaced.read_bytes(), summit=True) is None
    fast, slow = (
        gg.intervals.read_bed(clean, summit=True),
        gg.intervals.read_bed(spaced, summit=True),
    )
    expected = [s + o for _, s, _, _, o in genome.peaks[1]]
    assert fast["summit"].tolist() == expected == slow["summit"].tolist()
    assert fast["summit"].dtype == slow["summit"].dtype == np.int64
    for column in ("start", "end", "minus"):
        assert fast[column].tolist() == slow[column].tolist()
    # without summit=True no summit column, and column 10 is not needed
    assert "summit" not in gg.intervals.read_bed(clean).columns


BAD_SUMMITS = {
    "nine_columns": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\n", "needs narrowPeak column 10"),
    "minus_one": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\t-1\n", "no summit was called"),
    "at_the_end": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\t100\n", "lies outside the peak"),
    "past_the_end": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\t250\n", "lies outside the peak"),
    "fraction": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\t12.5\n", "must be an integer"),
    "word": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\tmid\n", "must be an integer"),
    "negative": ("chr1\t100\t200\tp\t1\t+\t1\t1\t1\t-5\n", "outside the peak"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUMMITS))
def test_a_bad_summit_is_an_error_naming_file_and_line(genome, tmp_path, capsys, case):
    line, message = BAD_SUMMITS[case]
    good = narrowpeak_line("chr1", 1000, 1300, "+", 299)  # the last base: a summit allowed
    path = tmp_path / "bad.narrowPeak"
    path.write_text("# header\n" + good + line + good)
    meta = tmp_path / "m.txt"
    meta.write_text("bad.narrowPeak\n")
    with pytest.raises(InputError) as info:
        build(genome, tmp_path / "o.h5", metadata=meta, center="summit")
    text = str(info.value)
    assert f"{path}: line 3" in text and message in text and "\n" not in text
    assert not (tmp_path / "o.h5").exists()
    # the midpoint needs no column 10
    build(genome, tmp_path / "o.h5", metadata=meta)
    # the command line: exit status 2 and one line naming the file and line
    error = cli_error(capsys, "intervals", "-i", meta, "-f", genome.fasta, "-o", tmp_path / "c.h5",
                      "--center", "summit", "--device", "cpu")  # fmt: skip
    assert f"{path}: line 3" in error and message in error


@pytest.mark.parametrize("other", [{"merge": "hull"}, {"universe": "regions"}])
def test_summit_with_hull_or_regions_is_an_error(genome, tmp_path, other):
    if "universe" in other:
        other = {"universe": write_bed(tmp_path / "u.bed", [("chr1", 100, 300)])}
    with pytest.raises(InputError, match="center='summit'"):
        build(genome, tmp_path / "o.h5", center="summit", **other)
    assert not (tmp_path / "o.h5").exists()


# --- the command line ---------------------------------------------------------------------------
def run_cli(*args) -> None:
    """Run the command line; the ``gpu_genomics`` logger is left as it was."""
    logger = logging.getLogger("gpu_genomics")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        cli.main([str(a) for a in args])
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def cli_error(capsys, *args) -> str:
    """Run a command that must fail: exit status 2, one ``gpu-genomics: error:`` line last, no
    traceback. Returns that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(*args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("gpu-genomics: error: ")]
    assert lines and errors == [lines[-1]], err
    assert "Traceback" not in err
    return lines[-1]


# --- 2. region universes ------------------------------------------------------------------------
#: (f, of): -f f (of the region) or -F f (of the peak). At 0.07 (region) and 0.55 (peak) the hand
#: cases hold an overlap of exactly f of the length where f * length in float64 is above it
#: (0.07 * 100 = 7.000000000000001): bedtools counts them (overlap / length >= f)
UNIVERSE_CASES = [
    (0.5, "region"),
    (1.0, "region"),
    (0.07, "region"),
    (0.3, "peak"),
    (1.0, "peak"),
    (0.55, "peak"),
]


def boundary_cases() -> tuple[list[tuple], list[list[tuple]]]:
    """Hand-made regions and label-0 peaks on chr2 at the edges of each fraction."""
    regions, peaks = [], []
    at = 1000

    def case(region_length: int, overlaps: list[tuple[int, int]]) -> None:
        # a region at ``at`` and peaks [at + a, at + b) relative to it
        nonlocal at
        regions.append(("chr2", at, at + region_length))
        peaks.extend(("chr2", at + a, at + b) for a, b in overlaps)
        at += region_length + 600

    case(10, [(5, 30)])  # 5 of 10 bases: exactly 0.5
    case(10, [(6, 30)])  # 4 of 10
    case(7, [(3, 20)])  # 4 of 7 (odd length)
    case(7, [(4, 20)])  # 3 of 7
    case(10, [(0, 10)])  # the same interval: 1.0 both ways
    case(10, [(-5, 15)])  # inside a peak: 1.0 of the region, 0.5 of the peak
    case(10, [(1, 30)])  # 9 of 10
    case(10, [(0, 3), (3, 6)])  # together 6 of 10, each 3: never 0.5
    case(10, [(10, 40)])  # touching at the end: no overlap
    case(10, [(-30, 0)])  # touching at the start
    case(100, [(93, 300)])  # 7 of 100 (0.07)
    case(100, [(45, 300)])  # 55 of 100 (0.55)
    case(50, [(43, 100)])  # 7 of 50 (0.14)
    case(25, [(18, 100)])  # 7 of 25 (0.28)
    case(30, [(27, 60)])  # 3 of 30, peak 33
    case(40, [(5, 12)])  # a 7-base peak inside: 1.0 of the peak, 0.175 of the region
    case(40, [(35, 60)])  # 5 of a 25-base peak: 0.2
    case(40, [(20, 70)])  # 20 of a 50-base peak (0.4), of the region 0.5
    case(60, [(10, 60)])  # a 50-base peak, 50 bases: 1.0 of it, 50/60 of the region
    case(40, [(33, 83)])  # 7 of a 50-base peak (0.14)
    case(40, [(33, 58)])  # 7 of a 25-base peak (0.28)
    case(200, [(145, 245)])  # 55 of a 100-base peak (0.55)
    case(200, [(193, 293)])  # 7 of a 100-base peak (0.07)
    return regions, [peaks, [], []]


def random_universe(rng: np.random.Generator) -> tuple[list[tuple], list[list[tuple]]]:
    regions, peaks = boundary_cases()
    peaks = [list(p) for p in peaks]
    for name, size in CHROMS:
        if size < 1000:
            continue
        for _ in range(size // 400):
            width = int(rng.integers(1, 120))
            start = int(rng.integers(0, size - width))
            regions.append((name, start, start + width))
        for k in range(3):
            for _ in range(size // 500):
                width = int(rng.integers(1, 90))
                start = int(rng.integers(0, size - width))
                peaks[k].append((name, start, start + width))
    regions.append(("chr1", 0, 30))  # windows shifted in at both ends
    regions.append(("chr1", CHROMS[0][1] - 11, CHROMS[0][1]))
    strands = rng.choice(["+", "-", "."], size=len(regions))
    order = rng.permutation(len(regions))  # in shuffled order: the output sorts them
    universe = [(*regions[j], f"r{i}", 0, str(strands[j])) for i, j in enumerate(order)]
    return universe, peaks


@pytest.fixture(scope="module")
def universe(genome, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("universe")
    regions, peaks = random_universe(np.random.default_rng(5))
    write_bed(folder / "universe.bed", regions)
    beds = [write_bed(folder / f"peaks{k}.bed", sorted(p)) for k, p in enumerate(peaks)]
    (folder / "metadata.txt").write_text("".join(f"{p.name}\n" for p in beds))
    return {
        "folder": folder,
        "regions": regions,
        "bed": folder / "universe.bed",
        "peaks": beds,
        "metadata": folder / "metadata.txt",
    }


def expected_universe_rows(genome: Genome, regions: list[tuple], labels: np.ndarray) -> dict:
    """Per split, ``(chrom, window start, minus)`` and labels of the regions, in output order."""
    keyed = []
    for i, (c, s, e, _, _, strand) in enumerate(regions):
        window = window_start((s + e) // 2, LENGTH, genome.lengths[c])
        keyed.append((genome.names.index(c), window, strand == "-", i))
    keyed.sort()
    out = {}
    for index in range(3):
        mine = [k for k in keyed if split_of(genome.names[k[0]]) == index]
        out[index] = ([k[:3] for k in mine], labels[[k[3] for k in mine]], [k[3] for k in mine])
    return out


@needs_bedtools
@pytest.mark.parametrize(("fraction", "of"), UNIVERSE_CASES)
def test_universe_labels_are_bedtools_intersect(genome, universe, tmp_path, fraction, of):
    regions = universe["regions"]
    labels = np.zeros((len(regions), 3), dtype=np.uint8)
    flag = "-f" if of == "region" else "-F"
    for k, peaks in enumerate(universe["peaks"]):
        if not peaks.read_text():
            continue
        hits = bedtools("intersect", "-u", "-a", universe["bed"], "-b", peaks, flag, fraction)
        for row in hits:
            labels[int(row[3][1:]), k] = 1
    summary = build(
        genome,
        tmp_path / "u.h5",
        metadata=universe["metadata"],
        universe=universe["bed"],
        label_overlap=fraction,
        label_overlap_of=of,
    )
    arrays = read(tmp_path / "u.h5")[0]
    rows = rows_of(arrays)
    assert len(rows) == len(regions) and sum(summary["regions"].values()) == len(regions)
    expected = expected_universe_rows(genome, regions, labels)
    differ = []
    for index, split in enumerate(SPLITS):
        keys, want, which = expected[index]
        mine = rows.split == index
        got_keys = list(zip(rows.chrom[mine].tolist(), rows.start[mine].tolist(),
                            rows.minus[mine].tolist(), strict=True))  # fmt: skip
        assert got_keys == keys, split
        got = arrays[f"{split}_labels"]
        for row in np.flatnonzero((got != want).any(axis=1)):
            c, s, e = regions[which[row]][:3]
            differ.append(f"{c}:{s}-{e} bedtools {want[row].tolist()} got {got[row].tolist()}")
    assert not differ, f"-{flag[1]} {fraction}: labels differ from bedtools: {differ}"
    np.testing.assert_array_equal(rows.end - rows.start, LENGTH)
    assert (rows.labels.sum(axis=1) == 0).any() and (rows.labels.sum(axis=1) > 0).any()


def test_overlap_fractions_are_exact_at_the_boundary():
    """``overlaps``: overlap >= f of the query (or of the interval), with f the decimal the user
    wrote; bedtools says yes to 7 bases of 100 at -f 0.07, though 0.07 * 100 in float64 is
    7.000000000000001."""
    from gpu_genomics.intervals.selection import IntervalTable, overlaps

    cases = []  # (f, query length, overlap): the overlap is just enough
    for f in ("0.07", "0.14", "0.28", "0.55", "0.3", "0.5", "0.1", "1.0"):
        exact = Fraction(f)
        for length in (7, 10, 25, 50, 100, 200, 300):
            need = math.ceil(exact * length)
            cases += [(f, length, need, True), (f, length, need - 1, False)]
    cases = [c for c in cases if c[2] > 0]
    n = len(cases)
    # query [1000 i, 1000 i + length), interval [end - overlap, end + 500)
    q_start = np.arange(n, dtype=np.int64) * 1000
    q_end = q_start + [c[1] for c in cases]
    table = IntervalTable.build(np.zeros(n), q_end - [c[2] for c in cases], q_end + 500, n_chroms=1)
    wrong = []
    for f in sorted({c[0] for c in cases}):
        found = overlaps(np.zeros(n), q_start, q_end, table, fraction_of_query=float(f))
        wrong += [c for c, hit in zip(cases, found, strict=True) if c[0] == f and hit != c[3]]
    assert not wrong, f"(f, region length, overlap bases, expected) wrong: {wrong}"
    # of the interval (-F): the intervals [a, a + length) overlapping a long query by `overlap`
    i_start = np.arange(n, dtype=np.int64) * 1000
    i_end = i_start + [c[1] for c in cases]
    table = IntervalTable.build(np.zeros(n), i_start, i_end, n_chroms=1)
    wrong = []
    for f in sorted({c[0] for c in cases}):
        found = overlaps(
            np.zeros(n), i_end - [c[2] for c in cases], i_end + 500, table,
            fraction_of_interval=float(f),
        )  # fmt: skip
        wrong += [c for c, hit in zip(cases, found, strict=True) if c[0] == f and hit != c[3]]
    assert not wrong, f"(f, peak length, overlap bases, expected) wrong: {wrong}"


# --- 3. flanks ----------------------------------------------------------------------------------
def fetched(fasta: Path, rows: Rows, names: list[str], lo: np.ndarray, hi: np.ndarray) -> list[str]:
    with pysam.FastaFile(str(fasta)) as ref:
        seqs = [
            ref.fetch(names[c], int(a), int(b)) for c, a, b in zip(rows.chrom, lo, hi, strict=True)
        ]
    return [reverse_complement(s) if m else s for s, m in zip(seqs, rows.minus, strict=True)]


def seqs_of(arrays: dict) -> np.ndarray:
    return np.concatenate([arrays[f"{split}_seqs"] for split in SPLITS])


@pytest.mark.parametrize("reference", ["fasta", "bgzip"])
def test_flanks_hold_the_reference_around_each_window(genome, tmp_path, reference):
    flank = 60
    ref = getattr(genome, reference)
    build(genome, tmp_path / "f.zarr", reference=ref, flank=flank)
    build(genome, tmp_path / "plain.zarr", reference=ref)
    arrays, attrs = read(tmp_path / "f.zarr")
    rows, plain = rows_of(arrays), rows_of(read(tmp_path / "plain.zarr")[0])
    assert int(attrs["flank"]) == flank and int(attrs["length"]) == LENGTH
    seqs = seqs_of(arrays)
    assert seqs.shape == (len(rows), LENGTH + 2 * flank, 4)
    expected = fetched(genome.fasta, rows, genome.names, rows.start - flank, rows.end + flank)
    assert rows.minus.any() and (~rows.minus).any()
    mismatched = [i for i, s in enumerate(expected) if not np.array_equal(seqs[i], onehot(s))]
    assert not mismatched, [rows.names[i] for i in mismatched[:5]]
    # windows whose flanks would leave the chromosome are moved in, nothing else changes
    sizes = np.array([genome.lengths[genome.names[c]] for c in plain.chrom])
    moved = np.clip(plain.start, flank, sizes - LENGTH - flank)
    assert (moved != plain.start).sum() >= 10  # the peaks at both ends of every chromosome
    np.testing.assert_array_equal(rows.start, moved)
    np.testing.assert_array_equal(rows.end - rows.start, LENGTH)
    np.testing.assert_array_equal(rows.labels, plain.labels)
    assert rows.names == [
        f"{genome.names[c]}:{s}-{s + LENGTH}({'-' if m else '+'})"
        for c, s, m in zip(rows.chrom, rows.start, rows.minus, strict=True)
    ]
    assert int(read(tmp_path / "plain.zarr")[1]["flank"]) == 0


def test_flank_with_the_basset_format_is_an_error(genome, tmp_path):
    with pytest.raises(InputError, match="flanks"):
        build(genome, tmp_path / "b.h5", flank=10, output_format="basset")
    assert not (tmp_path / "b.h5").exists()
    with pytest.raises(InputError, match="flank"):
        build(genome, tmp_path / "b.h5", flank=-1)


# --- 4. min_distance_to_end ---------------------------------------------------------------------
@pytest.mark.parametrize("flank", [0, 40])
def test_min_distance_to_end_drops_the_windows_near_an_end(genome, tmp_path, caplog, flank):
    distance = 150
    build(genome, tmp_path / "all.h5", flank=flank)
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    build(genome, tmp_path / "far.h5", flank=flank, min_distance_to_end=distance)
    every, far = rows_of(read(tmp_path / "all.h5")[0]), rows_of(read(tmp_path / "far.h5")[0])
    sizes = np.array([genome.lengths[genome.names[c]] for c in every.chrom])
    keep = (every.start >= distance) & (every.end <= sizes - distance)
    assert 10 <= (~keep).sum() < len(keep) // 2
    np.testing.assert_array_equal(far.start, every.start[keep])
    np.testing.assert_array_equal(far.chrom, every.chrom[keep])
    np.testing.assert_array_equal(far.labels, every.labels[keep])
    assert far.names == [n for n, k in zip(every.names, keep, strict=True) if k]
    assert f"min_distance_to_end: dropped {(~keep).sum()} windows" in caplog.text


def hand_made(folder: Path, seq: str, peaks: list[tuple[int, int]]) -> tuple[Path, Path]:
    """``(metadata, reference)``: one chromosome ``chrH`` of ``seq`` and one BED of ``peaks``."""
    fasta = folder / "hand.fa"
    write_fasta(fasta, {"chrH": seq})
    write_bed(folder / "p.bed", [("chrH", s, e) for s, e in peaks])
    (folder / "m.txt").write_text("p.bed\n")
    return folder / "m.txt", fasta


def test_min_distance_to_end_at_the_boundary(tmp_path):
    # windows [149, 349), [150, 350), [2650, 2850), [2651, 2851) of a 3000-base chromosome
    meta, fasta = hand_made(tmp_path, "ACGT" * 750, [(248, 250), (249, 251), (2749, 2751),
                                                     (2750, 2752)])  # fmt: skip
    gg.build_interval_dataset(meta, fasta, tmp_path / "o.h5", length=200, merge="none",
                              min_distance_to_end=150, device="cpu")  # fmt: skip
    assert rows_of(read(tmp_path / "o.h5")[0]).names == ["chrH:150-350(+)", "chrH:2650-2850(+)"]


# --- 5. blacklist -------------------------------------------------------------------------------
def windows_bed(path: Path, rows: Rows, names: list[str]) -> Path:
    return write_bed(
        path,
        [
            (names[c], s, e, i)
            for i, (c, s, e) in enumerate(zip(rows.chrom, rows.start, rows.end, strict=True))
        ],
    )


def crafted_blacklist(genome: Genome, rows: Rows, overlap: float, rng) -> list[tuple]:
    """Random intervals, intervals overlapping a window by just enough and one base less, rows
    on a chromosome the reference lacks."""
    names = genome.names
    need = int(overlap) if overlap >= 1 else math.ceil(Fraction(str(overlap)) * LENGTH)
    out = [("chrUnknown", 0, 50_000), ("chrUnknown_alt", 10, 20)]
    for _ in range(25):
        c = int(rng.integers(0, 6))
        s = int(rng.integers(0, genome.lengths[names[c]] - 60))
        out.append((names[c], s, s + int(rng.integers(1, 60))))
    for i in rng.choice(len(rows), size=12, replace=False):
        bases = need if i % 2 else need - 1
        if bases > 0:  # over the window's last bases, and a little past it
            e = int(rows.end[i])
            out.append((names[rows.chrom[i]], e - bases, e + 3))
    return sorted(out)


@needs_bedtools
@pytest.mark.parametrize("overlap", [1, 0.3, 0.07, 25])
def test_blacklisted_windows_are_those_bedtools_finds(genome, tmp_path, caplog, overlap):
    build(genome, tmp_path / "all.h5")
    every = rows_of(read(tmp_path / "all.h5")[0])
    blacklist = write_bed(
        tmp_path / "black.bed", crafted_blacklist(genome, every, overlap, np.random.default_rng(3))
    )
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    build(genome, tmp_path / "kept.h5", blacklist=blacklist, blacklist_overlap=overlap)
    kept = rows_of(read(tmp_path / "kept.h5")[0])
    windows = windows_bed(tmp_path / "w.bed", every, genome.names)
    if overlap < 1:
        hits = bedtools("intersect", "-u", "-a", windows, "-b", blacklist, "-f", overlap)
    else:  # bases: bedtools reports the overlap of each pair (-wo)
        pairs = bedtools("intersect", "-wo", "-a", windows, "-b", blacklist)
        hits = [p for p in pairs if int(p[-1]) >= overlap]
    dropped = {int(row[3]) for row in hits}
    if overlap == 1:  # the default: -v keeps the windows no interval overlaps
        survivors = {int(r[3]) for r in bedtools("intersect", "-v", "-a", windows, "-b", blacklist)}
        assert survivors == set(range(len(every))) - dropped
    assert 5 <= len(dropped) < len(every)
    keep = np.array([i not in dropped for i in range(len(every))])
    assert kept.names == [n for n, k in zip(every.names, keep, strict=True) if k], (
        f"dropped {sorted(set(every.names) - set(kept.names))}, bedtools "
        f"{sorted(every.names[i] for i in dropped)}"
    )
    np.testing.assert_array_equal(kept.labels, every.labels[keep])
    assert f"blacklist: dropped {len(dropped)} windows" in caplog.text


def test_a_missing_blacklist_is_a_one_line_error(genome, tmp_path, capsys):
    missing = tmp_path / "nope.bed"
    with pytest.raises(InputError) as info:
        build(genome, tmp_path / "o.h5", blacklist=missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "o.h5").exists()
    line = cli_error(capsys, "intervals", "-i", genome.metadata, "-f", genome.fasta, "-o",
                     tmp_path / "o.h5", "--blacklist", missing, "--device", "cpu")  # fmt: skip
    assert str(missing) in line and "does not exist" in line
    for bad in (0, -1, 1.5):
        with pytest.raises(InputError, match="blacklist_overlap"):
            build(genome, tmp_path / "o.h5", blacklist=genome.beds[0], blacklist_overlap=bad)


# --- 6. max_n_frac ------------------------------------------------------------------------------
def n_count(seq: str) -> int:
    return sum(letter not in "ACGT" for letter in seq.upper())


def test_max_n_frac_drops_windows_with_more_n(genome, tmp_path, caplog):
    build(genome, tmp_path / "all.h5")
    every = rows_of(read(tmp_path / "all.h5")[0])
    seqs = [
        genome.seqs[genome.names[c]][s:e]
        for c, s, e in zip(every.chrom, every.start, every.end, strict=True)
    ]
    counts = np.array([n_count(s) for s in seqs])
    assert (counts > 0).sum() >= 5 and (counts == 0).sum() >= 50
    # lower case n and the IUPAC letters count: windows with only those
    assert any(set(s) & set("nRYKMSWryk") for s, c in zip(seqs, counts, strict=True) if c)
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    fractions = sorted({0.0, *(counts[counts > 0] / LENGTH).tolist()})
    for fraction in (0.0, fractions[len(fractions) // 2], fractions[1]):
        caplog.clear()
        out = tmp_path / f"n{fraction}.h5"
        build(genome, out, max_n_frac=fraction)
        kept = rows_of(read(out)[0])
        keep = counts <= fraction * LENGTH  # a window at exactly the fraction stays
        assert kept.names == [n for n, k in zip(every.names, keep, strict=True) if k], fraction
        assert f"max_n_frac: dropped {(~keep).sum()} windows" in caplog.text
    # 1.0 keeps everything
    build(genome, tmp_path / "one.h5", max_n_frac=1.0)
    assert rows_of(read(tmp_path / "one.h5")[0]).names == every.names


def test_max_n_frac_counts_the_window_not_its_flanks(genome, tmp_path):
    """A hand-made chromosome: a window with exactly 10 N (5%), one with 11, N in the flanks."""
    seq = list("ACGTTGCAAC" * 200)  # 2000 bases
    seq[400:410] = "N" * 10  # window [300, 500) holds 10 N
    seq[900:905] = "nnnnn"  # window [800, 1000) holds 5 n + 6 IUPAC
    seq[950:956] = "RYKMSW"
    seq[1290:1300] = "N" * 10  # just before window [1300, 1500): in its flank only
    meta, fasta = hand_made(tmp_path, "".join(seq), [(350, 450), (850, 950), (1350, 1450)])
    for fraction, kept in ((0.05, ["chrH:300-500(+)", "chrH:1300-1500(+)"]),
                           (0.055, ["chrH:300-500(+)", "chrH:800-1000(+)", "chrH:1300-1500(+)"]),
                           (0.049, ["chrH:1300-1500(+)"])):  # fmt: skip
        out = tmp_path / f"o{fraction}.h5"
        gg.build_interval_dataset(meta, fasta, out, length=200, merge="none",
                                  max_n_frac=fraction, flank=20, device="cpu")  # fmt: skip
        assert rows_of(read(out)[0]).names == kept, fraction


# --- 7. negatives -------------------------------------------------------------------------------
def largest_remainder(total: int, weights) -> list[int]:
    """``total`` shared in proportion to ``weights``: floors, then one more to the largest
    remainders (the first on ties), in exact arithmetic."""
    weights = [int(w) for w in weights]
    if total <= 0 or sum(weights) <= 0:
        return [0] * len(weights)
    exact = [Fraction(total * w, sum(weights)) for w in weights]
    share = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - share[i]), i))
    for i in order[: total - sum(share)]:
        share[i] += 1
    return share


def composition(genome: Genome, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """``(G + C, A + C + G + T)`` of each row's window, either case."""
    gc, acgt = [], []
    for c, s, e in zip(rows.chrom, rows.start, rows.end, strict=True):
        seq = genome.seqs[genome.names[c]][s:e].upper()
        gc.append(seq.count("G") + seq.count("C"))
        acgt.append(gc[-1] + seq.count("A") + seq.count("T"))
    return np.array(gc), np.array(acgt)


def gc_bin(gc: int, acgt: int, n_bins: int) -> int:
    """The bin of ``gc / acgt`` in exact arithmetic: ``[k / n, (k + 1) / n)``, the last closed."""
    return min(gc * n_bins // acgt, n_bins - 1)


def intervals_hit(a: list[tuple], b: list[tuple]) -> list[tuple]:
    """The intervals of ``a`` that overlap one of ``b`` (same chromosome name)."""
    by_chrom: dict[str, list[tuple[int, int]]] = {}
    for c, s, e in b:
        by_chrom.setdefault(c, []).append((s, e))
    return [(c, s, e) for c, s, e in a if any(x < e and s < y for x, y in by_chrom.get(c, []))]


def all_peaks(genome: Genome) -> list[tuple]:
    return [(c, s, e) for peaks in genome.peaks for c, s, e, *_ in peaks]


@pytest.fixture(scope="module")
def background(genome, tmp_path_factory) -> dict:
    """Outputs with negatives: a ratio with a blacklist (twice, and with another seed) and a
    count in 7 GC bins."""
    folder = tmp_path_factory.mktemp("negatives")
    rng = np.random.default_rng(8)
    blacklist = []
    for name, size in CHROMS[:6]:
        for _ in range(4):
            s = int(rng.integers(0, size - 800))
            blacklist.append((name, s, s + int(rng.integers(50, 800))))
    blacklist.append(("chrUnknown", 0, 10**6))
    black = write_bed(folder / "black.bed", sorted(blacklist))
    runs = {
        "ratio": {"negatives": 1.0, "blacklist": black},
        "again": {"negatives": 1.0, "blacklist": black},
        "seed2": {"negatives": 1.0, "blacklist": black, "seed": 2},
        "count": {"negatives": 150, "negatives_gc_bins": 7},
    }
    out = {"blacklist": blacklist}
    for name, options in runs.items():
        path = folder / f"{name}.h5"
        out[name + "_summary"] = build(genome, path, **options)
        out[name] = read(path)
        out[name + "_path"] = path
    return out


def check_gc_matched(rows: Rows, gc: np.ndarray, acgt: np.ndarray, totals, n_bins: int) -> None:
    for index in range(3):
        pos = (rows.split == index) & (rows.negative == 0)
        neg = (rows.split == index) & (rows.negative == 1)
        assert neg.sum() == totals[index], SPLITS[index]
        pos_bins = np.bincount(
            [gc_bin(g, a, n_bins) for g, a in zip(gc[pos], acgt[pos], strict=True) if a],
            minlength=n_bins,
        )
        neg_bins = np.bincount(
            [gc_bin(g, a, n_bins) for g, a in zip(gc[neg], acgt[neg], strict=True)],
            minlength=n_bins,
        )
        wanted = largest_remainder(int(totals[index]), pos_bins)
        assert neg_bins.tolist() == wanted, (SPLITS[index], pos_bins.tolist())


@pytest.mark.parametrize("run", ["ratio", "count"])
def test_negatives_match_the_positives_gc_per_split(genome, background, run):
    arrays, _ = background[run]
    rows = rows_of(arrays)
    n_pos = np.bincount(rows.split[rows.negative == 0], minlength=3)
    if run == "ratio":
        totals = [math.floor(1.0 * n + 0.5) for n in n_pos]
        n_bins = 20
    else:
        totals = largest_remainder(150, n_pos)
        n_bins = 7
    assert all(n > 10 for n in n_pos)
    gc, acgt = composition(genome, rows)
    check_gc_matched(rows, gc, acgt, totals, n_bins)
    summary = background[run + "_summary"]["regions"]
    assert summary == {s: int((rows.split == i).sum()) for i, s in enumerate(SPLITS)}


def test_negatives_are_plain_background_windows(genome, background):
    arrays, _ = background["ratio"]
    rows = rows_of(arrays)
    for split in SPLITS:
        assert arrays[f"{split}_is_negative"].dtype == np.uint8
    neg, pos = rows.negative == 1, rows.negative == 0
    assert set(np.unique(rows.negative).tolist()) == {0, 1}
    assert not rows.labels[neg].any() and rows.labels[pos].any(axis=1).all()
    assert all(rows.names[i].endswith("(+)") for i in np.flatnonzero(neg))
    np.testing.assert_array_equal(rows.end - rows.start, LENGTH)
    names = genome.names
    windows = [
        (names[c], int(s), int(e)) for c, s, e in zip(rows.chrom, rows.start, rows.end, strict=True)
    ]
    negatives = [w for w, n in zip(windows, neg, strict=True) if n]
    positives = [w for w, n in zip(windows, neg, strict=True) if not n]
    assert not intervals_hit(negatives, all_peaks(genome))
    assert not intervals_hit(negatives, positives)
    assert not intervals_hit(negatives, background["blacklist"])
    # no N or other IUPAC letter without max_n_frac
    assert all(n_count(genome.seqs[c][s:e]) == 0 for c, s, e in negatives)
    # on their split's chromosomes, in (chromosome, start) order with the positives
    for i in np.flatnonzero(neg):
        assert split_of(names[rows.chrom[i]]) == rows.split[i]
    for index in range(3):
        mine = rows.split == index
        key = rows.chrom[mine].astype(np.int64) * 10**9 + rows.start[mine]
        assert (np.diff(key) >= 0).all(), SPLITS[index]


def test_negatives_do_not_overlap_one_another(genome, background):
    """docs/intervals.md: a candidate is refused when it overlaps "a negative already taken"."""
    rows = rows_of(background["ratio"][0])
    names = genome.names
    negatives = [
        (names[c], int(s), int(e))
        for c, s, e, n in zip(rows.chrom, rows.start, rows.end, rows.negative, strict=True)
        if n
    ]
    crowded = [
        w for i, w in enumerate(negatives) if intervals_hit([w], negatives[:i] + negatives[i + 1 :])
    ]
    assert not crowded, (
        f"{len(crowded)} of {len(negatives)} negatives overlap another: {crowded[:6]}"
    )


def test_negatives_follow_the_seed(background):
    ratio, again, seed2 = (background[k][0] for k in ("ratio", "again", "seed2"))
    assert ratio.keys() == again.keys() == seed2.keys()
    for name in ratio:
        assert same(ratio[name], again[name]), name
    a, b = rows_of(ratio), rows_of(seed2)
    assert len(a) == len(b)  # the same counts, other windows
    negatives_a = {k for k, n in zip(a.keys(), a.negative, strict=True) if n}
    negatives_b = {k for k, n in zip(b.keys(), b.negative, strict=True) if n}
    assert len(negatives_a - negatives_b) > len(negatives_a) // 2
    positives = [k for k, n in zip(a.keys(), a.negative, strict=True) if not n]
    assert positives == [k for k, n in zip(b.keys(), b.negative, strict=True) if not n]


@needs_bedtools
def test_negatives_gc_agrees_with_bedtools_nuc(genome, background, tmp_path):
    rows = rows_of(background["ratio"][0])
    windows = windows_bed(tmp_path / "w.bed", rows, genome.names)
    nuc = bedtools("nuc", "-fi", genome.fasta, "-bed", windows)
    assert len(nuc) == len(rows)
    counts = np.array([[int(x) for x in row[6:13]] for row in nuc])  # A C G T N other length
    gc, acgt = counts[:, 1] + counts[:, 2], counts[:, :4].sum(axis=1)
    own_gc, own_acgt = composition(genome, rows)
    np.testing.assert_array_equal(gc, own_gc)
    np.testing.assert_array_equal(acgt, own_acgt)
    clean = (counts[:, 4] == 0) & (counts[:, 5] == 0)
    assert clean.sum() > len(rows) // 2
    pct_gc = np.array([float(row[5]) for row in nuc])
    np.testing.assert_allclose(pct_gc[clean], gc[clean] / LENGTH, atol=1e-6)
    totals = [math.floor(n + 0.5) for n in np.bincount(rows.split[rows.negative == 0], minlength=3)]
    check_gc_matched(rows, gc, acgt, totals, 20)


def test_negatives_keep_away_from_the_ends_and_allow_n_when_told(genome, tmp_path):
    flank, distance = 30, 120
    build(genome, tmp_path / "n.h5", negatives=2.0, flank=flank, min_distance_to_end=distance,
          max_n_frac=0.2, negatives_gc_bins=4)  # fmt: skip
    arrays, _ = read(tmp_path / "n.h5")
    rows = rows_of(arrays)
    neg = rows.negative == 1
    assert neg.sum() > 100
    sizes = np.array([genome.lengths[genome.names[c]] for c in rows.chrom])
    margin = max(flank, distance)
    assert (rows.start[neg] >= margin).all() and (rows.end[neg] <= sizes[neg] - margin).all()
    seqs = seqs_of(arrays)
    assert seqs.shape[1] == LENGTH + 2 * flank
    for i in np.flatnonzero(neg)[:40]:  # their flanks are stored too
        c, s, e = genome.names[rows.chrom[i]], rows.start[i], rows.end[i]
        np.testing.assert_array_equal(seqs[i], onehot(genome.seqs[c][s - flank : e + flank]))
    n = np.array([n_count(genome.seqs[genome.names[c]][s:e]) for c, s, e in
                  zip(rows.chrom[neg], rows.start[neg], rows.end[neg], strict=True)])  # fmt: skip
    assert (n <= 0.2 * LENGTH).all()
    # matched on the GC of the central window, not of the flanked span
    gc, acgt = composition(genome, rows)
    totals = [math.floor(2.0 * n + 0.5) for n in np.bincount(rows.split[~neg], minlength=3)]
    check_gc_matched(rows, gc, acgt, totals, 4)


def test_negatives_options_are_checked(genome, tmp_path):
    for bad in (-1, -0.5, float("inf"), float("nan"), "10", True):
        with pytest.raises(InputError, match="negatives"):
            build(genome, tmp_path / "o.h5", negatives=bad)
    with pytest.raises(InputError, match="negatives_gc_bins"):
        build(genome, tmp_path / "o.h5", negatives=10, negatives_gc_bins=0)
    assert not (tmp_path / "o.h5").exists()


def test_library_largest_remainder_is_exact():
    """Equal remainders (in exact arithmetic) go to the first weights, as its docstring says."""
    from gpu_genomics.intervals.selection import largest_remainder as library

    rng = np.random.default_rng(0)
    cases = [(10, [1, 1, 1]), (13, [3, 3, 3]), (7, [1, 2, 3, 4]), (5, [0, 0]), (0, [4, 5])]
    for _ in range(300):
        weights = rng.integers(0, 9, size=int(rng.integers(1, 12))).tolist()
        cases.append((int(rng.integers(0, 300)), weights))
    cases.append((2, [4, 1, 1]))  # exact shares 4/3, 1/3, 1/3: a tie, the first gets the rest
    wrong = [
        f"total {t}, weights {w}: got {library(t, np.array(w)).tolist()}, "
        f"expected {largest_remainder(t, w)}"
        for t, w in cases
        if library(t, np.array(w)).tolist() != largest_remainder(t, w)
    ]
    assert not wrong, wrong[-3:]


# --- 8. bigWig targets --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tracks(genome, tmp_path_factory) -> dict:
    """Two bigWigs on the reference's chromosomes: intervals of random values (some negative)
    with gaps, long ones for some windows to have no data at all; and their track list."""
    pybigwig = pytest.importorskip("pyBigWig")
    folder = tmp_path_factory.mktemp("tracks")
    rng = np.random.default_rng(21)
    paths = []
    for k, (name, gap) in enumerate((("signal.bw", 30), ("other.bigWig", 400))):
        path = folder / name
        bw = pybigwig.open(str(path), "w")
        bw.addHeader(list(CHROMS))
        for chrom, size in CHROMS:
            starts, ends, values = [], [], []
            at = int(rng.integers(0, 50))
            while at < size:
                width = int(rng.integers(1, 60))
                end = min(size, at + width)
                starts.append(at)
                ends.append(end)
                values.append(float(rng.normal(1.0 - k, 2.0)))
                at = end + int(rng.integers(0, gap if rng.random() < 0.9 else 3000))
            bw.addEntries([chrom] * len(starts), starts, ends=ends, values=values)
        bw.close()
        paths.append(path)
    listing = folder / "tracks.txt"
    listing.write_text(f"# two tracks\n{paths[0].name}\tsig\n{paths[1]}\n")
    return {"list": listing, "paths": paths, "names": ["sig", "other"]}


def expected_targets(paths, rows: Rows, names, *, target, missing, bin_size) -> np.ndarray:
    import pyBigWig

    step = bin_size or LENGTH
    n_bins = LENGTH // step
    out = np.zeros((len(rows), n_bins, len(paths)))
    for k, path in enumerate(paths):
        with pyBigWig.open(str(path)) as bw:
            for i, (c, s) in enumerate(zip(rows.chrom, rows.start, strict=True)):
                for b in range(n_bins):
                    lo, hi = int(s) + b * step, int(s) + (b + 1) * step
                    if missing == "ignore":
                        value = bw.stats(names[c], lo, hi, type=target, exact=True)[0]
                        if value is None:
                            value = 0.0 if target == "coverage" else np.nan
                    else:
                        values = np.array(bw.values(names[c], lo, hi))
                        covered = ~np.isnan(values)
                        zeroed = np.where(covered, values, 0.0)
                        value = {
                            "mean": zeroed.mean(),
                            "max": zeroed.max(),
                            "sum": zeroed.sum(),
                            "coverage": covered.mean(),
                        }[target]
                    out[i, n_bins - 1 - b if rows.minus[i] else b, k] = value
    return out if bin_size else out[:, 0, :]


@pytest.mark.parametrize(
    ("target", "missing", "bin_size"),
    [
        ("mean", "zero", None),
        ("max", "zero", 20),
        ("sum", "zero", 40),
        ("coverage", "zero", None),
        ("mean", "ignore", 20),
        ("max", "ignore", None),
        ("sum", "ignore", None),
        ("coverage", "ignore", 50),
    ],
)
def test_targets_are_pybigwig_statistics(  # noqa: PLR0917 (fixtures and parameters)
    genome, tracks, tmp_path, target, missing, bin_size
):
    out = tmp_path / "t.h5"
    build(genome, out, bigwig=tracks["list"], target=target, bin_size=bin_size,
          bigwig_missing=missing, flank=25)  # fmt: skip
    arrays, attrs = read(out)
    rows = rows_of(arrays)
    assert as_text(arrays["target_names"]) == tracks["names"]
    assert int(attrs["target_bin_size"]) == (bin_size or 0)
    got = np.concatenate([arrays[f"{split}_targets"] for split in SPLITS])
    assert got.dtype == np.float32
    shape = (len(rows), 2) if bin_size is None else (len(rows), LENGTH // bin_size, 2)
    assert got.shape == shape
    stats = {"target": target, "missing": missing, "bin_size": bin_size}
    want = expected_targets(tracks["paths"], rows, genome.names, **stats)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    if missing == "ignore" and target != "coverage":
        assert np.isnan(got).any() and not np.isnan(got).all()
    assert rows.minus.any()
    if bin_size:  # the minus rows' bins are the reverse of the plus strand's profile
        import dataclasses

        minus = np.flatnonzero(rows.minus)[:10]
        plus = dataclasses.replace(rows, minus=np.zeros(len(rows), dtype=bool))
        profile = expected_targets(tracks["paths"], plus, genome.names, **stats)
        np.testing.assert_allclose(got[minus], profile[minus][:, ::-1], rtol=2e-5, atol=2e-5)
        assert not np.allclose(profile[minus], profile[minus][:, ::-1], equal_nan=True)


def test_targets_options_are_checked(genome, tracks, tmp_path):
    with pytest.raises(InputError, match="bin_size"):
        build(genome, tmp_path / "o.h5", bigwig=tracks["list"], bin_size=30)  # 200 % 30
    with pytest.raises(InputError, match="bigwig"):
        build(genome, tmp_path / "o.h5", bin_size=20)
    with pytest.raises(InputError, match="bigWig"):
        build(genome, tmp_path / "o.h5", bigwig=tracks["list"], output_format="basset")
    with pytest.raises(InputError, match="target"):
        build(genome, tmp_path / "o.h5", bigwig=tracks["list"], target="median")
    with pytest.raises(InputError, match="bigwig_missing"):
        build(genome, tmp_path / "o.h5", bigwig=tracks["list"], bigwig_missing="nan")
    assert not (tmp_path / "o.h5").exists()
    # without bigwig: no targets
    build(genome, tmp_path / "none.h5")
    arrays, attrs = read(tmp_path / "none.h5")
    assert "target_names" not in arrays and "training_targets" not in arrays
    assert "target_bin_size" not in attrs


def test_a_bigwig_of_another_build_is_refused_by_the_job(genome, tmp_path, client):
    """A track whose chromosome lengths differ from the reference's (another genome build) is
    one line naming the track and both lengths, in process and on the cluster path; nothing is
    written."""
    pybigwig = pytest.importorskip("pyBigWig")
    path = tmp_path / "hg38.bw"
    bw = pybigwig.open(str(path), "w")
    bw.addHeader([(chrom, size + 1000) for chrom, size in CHROMS])
    for chrom, _ in CHROMS:
        bw.addEntries([chrom], [0], ends=[100], values=[1.0])
    bw.close()
    listing = tmp_path / "tracks.txt"
    listing.write_text(f"{path}\thg38\n")
    size = dict(CHROMS)[CHROMS[0][0]]
    for on in (None, client):
        with pytest.raises(InputError) as error:
            build(genome, tmp_path / "o.zarr", bigwig=listing, client=on)
        message = str(error.value)
        assert "hg38" in message and str(size) in message and "\n" not in message
    assert not (tmp_path / "o.zarr").exists()


# --- 9. the same output on a cluster ------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    from gpu_genomics.execution import cluster

    with cluster(workers=2, device="cpu") as running:
        yield running


def cluster_cases(genome: Genome, universe: dict, tracks: dict, folder: Path) -> dict:
    black = [("chr1", 3000, 3400), ("chr2", 100, 5000), ("chr21", 5000, 5003), ("chrU", 1, 2)]
    black = write_bed(folder / "black.bed", black)
    return {
        "summit_filters_bins": {
            "center": "summit",
            "flank": 30,
            "min_distance_to_end": 100,
            "blacklist": black,
            "max_n_frac": 0.05,
            "bigwig": tracks["list"],
            "bin_size": 20,
            "bigwig_missing": "ignore",
        },
        "universe": {
            "metadata": universe["metadata"],
            "universe": universe["bed"],
            "label_overlap": 0.3,
            "label_overlap_of": "peak",
            "flank": 10,
            "blacklist": black,
            "blacklist_overlap": 0.3,
            "bigwig": tracks["list"],
            "target": "max",
        },
        "none_bgzip": {
            "reference": genome.bgzip,
            "merge": "none",
            "center": "summit",
            "min_distance_to_end": 300,
            "max_n_frac": 0.0,
            "bigwig": tracks["list"],
            "target": "coverage",
            "split": "random",
            "seed": 3,
        },
    }


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
@pytest.mark.parametrize("case", ["summit_filters_bins", "universe", "none_bgzip"])
def test_a_cluster_writes_the_in_process_output(  # noqa: PLR0917 (fixtures and parameters)
    genome, universe, tracks, client, tmp_path, case, suffix
):
    options = cluster_cases(genome, universe, tracks, tmp_path)[case]
    (tmp_path / "local").mkdir()
    (tmp_path / "cluster").mkdir()
    local_out, cluster_out = tmp_path / "local" / f"d{suffix}", tmp_path / "cluster" / f"d{suffix}"
    local = build(genome, local_out, **options)
    remote = build(genome, cluster_out, client=client, **options)
    assert remote["regions"] == local["regions"] and sum(local["regions"].values()) > 50
    local_arrays, local_attrs = read(local_out)
    remote_arrays, remote_attrs = read(cluster_out)
    assert local_arrays.keys() == remote_arrays.keys()
    assert {f"{s}_targets" for s in SPLITS} <= local_arrays.keys()
    for name in local_arrays:
        assert same(local_arrays[name], remote_arrays[name]), name
    for key in ("flank", "length", "target_bin_size", "base_order", "dataset_card"):
        assert repr(local_attrs[key]) == repr(remote_attrs[key]), key


def test_negatives_on_a_cluster_are_a_one_line_error(genome, client, tmp_path, capsys):
    with pytest.raises(InputError) as info:
        build(genome, tmp_path / "o.h5", negatives=10, client=client)
    assert "negatives" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "o.h5").exists()


# --- 10. the command line -----------------------------------------------------------------------
def recorded_calls(monkeypatch) -> list[dict]:
    """Record the keywords the ``intervals`` command passes to the job (and run it)."""
    import importlib

    command = importlib.import_module("gpu_genomics.cli.intervals")
    calls: list[dict] = []
    real = command.build_interval_dataset

    def recorder(*paths, **keywords):
        calls.append(keywords)
        return real(*paths, **keywords)

    monkeypatch.setattr(command, "build_interval_dataset", recorder)
    return calls


def test_the_new_flags_reach_the_job(genome, tracks, tmp_path, monkeypatch):
    calls = recorded_calls(monkeypatch)
    black = write_bed(tmp_path / "black.bed", [("chr1", 5000, 9000), ("chrUnknown", 0, 9)])
    flags = ["--center", "summit", "--merge", "none", "--flank", "20", "--blacklist", black,
             "--blacklist-overlap", "0.5", "--max-n-frac", "0.1", "--min-distance-to-end", "50",
             "--negatives", "1x", "--negatives-gc-bins", "5", "--bigwig", tracks["list"],
             "--target", "sum", "--bin-size", "20", "--bigwig-missing", "ignore"]  # fmt: skip
    run_cli("intervals", "-i", genome.metadata, "-f", genome.fasta, "-o", tmp_path / "cli.zarr",
            "-l", LENGTH, "-m", 50, "--device", "cpu", "--quiet", *flags)  # fmt: skip
    parameters = {
        "center": "summit",
        "merge": "none",
        "flank": 20,
        "blacklist": str(black),
        "blacklist_overlap": 0.5,
        "max_n_frac": 0.1,
        "min_distance_to_end": 50,
        "negatives": 1.0,
        "negatives_gc_bins": 5,
        "bigwig": str(tracks["list"]),
        "target": "sum",
        "bin_size": 20,
        "bigwig_missing": "ignore",
    }
    (call,) = calls
    assert {k: call[k] for k in parameters} == parameters
    assert isinstance(call["negatives"], float) and call["universe"] is None
    build(genome, tmp_path / "lib.zarr", **parameters)
    cli_arrays, lib_arrays = read(tmp_path / "cli.zarr")[0], read(tmp_path / "lib.zarr")[0]
    assert cli_arrays.keys() == lib_arrays.keys()
    assert {f"{s}_{a}" for s in SPLITS for a in ("is_negative", "targets")} <= cli_arrays.keys()
    for name in cli_arrays:
        assert same(cli_arrays[name], lib_arrays[name]), name


def test_the_region_flags_reach_the_job(genome, universe, tmp_path, monkeypatch):
    calls = recorded_calls(monkeypatch)
    run_cli("intervals", "-i", universe["metadata"], "-f", genome.fasta, "-o", tmp_path / "u.h5",
            "-l", LENGTH, "--regions", universe["bed"], "--label-overlap", "0.3",
            "--label-overlap-of", "peak", "--device", "cpu", "--quiet")  # fmt: skip
    (call,) = calls
    assert call["universe"] == str(universe["bed"])
    assert (call["label_overlap"], call["label_overlap_of"]) == (0.3, "peak")
    assert len(rows_of(read(tmp_path / "u.h5")[0])) == len(universe["regions"])


@pytest.mark.parametrize(
    ("text", "value"), [("1x", 1.0), ("1.5X", 1.5), ("0.5", 0.5), ("100", 100), ("0", 0)]
)
def test_negatives_flag_is_a_count_or_a_ratio(genome, tmp_path, monkeypatch, text, value):
    calls = recorded_calls(monkeypatch)
    run_cli("intervals", "-i", genome.metadata, "-f", genome.fasta, "-o", tmp_path / "o.h5",
            "-l", LENGTH, "-m", 50, "--negatives", text, "--negatives-gc-bins", 5, "--device",
            "cpu", "--quiet")  # fmt: skip
    assert calls[0]["negatives"] == value and type(calls[0]["negatives"]) is type(value)
    rows = rows_of(read(tmp_path / "o.h5")[0])
    n_pos = np.bincount(rows.split[rows.negative == 0] if value else rows.split, minlength=3)
    n_neg = 0 if rows.negative is None else int(rows.negative.sum())
    if isinstance(value, float):
        assert n_neg == sum(math.floor(value * n + 0.5) for n in n_pos)
    else:
        assert n_neg == value and (rows.negative is None) == (value == 0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--negatives", "-5"], "--negatives"),
        (["--blacklist-overlap", "2.5", "--blacklist", "b.bed"], "--blacklist-overlap"),
        (["--center", "summit", "--merge", "hull"], "summit"),
        (["--bin-size", "20"], "--bigwig"),
        (["--label-overlap", "0"], "--label-overlap"),
        (["--max-n-frac", "1.5"], "--max-n-frac"),
        (["--flank", "-3"], "--flank"),
        (["--min-distance-to-end", "-1"], "--min-distance-to-end"),
        (["--negatives", "10", "--workers", "2"], "negatives are sampled in this process"),
    ],
)
def test_bad_new_flags_are_one_line_errors(genome, tmp_path, capsys, flags, message):
    write_bed(tmp_path / "b.bed", [("chr1", 0, 10)])
    flags = [str(tmp_path / f) if f == "b.bed" else f for f in flags]
    line = cli_error(capsys, "intervals", "-i", genome.metadata, "-f", genome.fasta, "-o",
                     tmp_path / "o.h5", "-l", LENGTH, "--device", "cpu", *flags)  # fmt: skip
    assert message in line, line
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--negatives", "abc"], "'abc' is neither a count (1000) nor a ratio"),
        (["--negatives", "1y"], "'1y' is neither a count"),
        (["--blacklist-overlap", "half"], "'half': give bases (1, 50) or a fraction"),
        (["--center", "peak"], "'peak' is not one of 'midpoint', 'summit'"),
        (["--label-overlap-of", "both"], "--label-overlap-of"),
        (["--target", "median"], "--target"),
        (["--bigwig-missing", "nan"], "--bigwig-missing"),
    ],
)
def test_flag_values_click_rejects(genome, tmp_path, capsys, flags, message):
    """Values that are not of the flag's type: click's usage error, exit status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli("intervals", "-i", genome.metadata, "-f", genome.fasta, "-o", tmp_path / "o.h5",
                "--device", "cpu", *flags)  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{flags[0]}'" in err and message in err, err
    assert "Traceback" not in err and not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_every_array_written_is_declared(genome, tracks, tmp_path, suffix):
    out = tmp_path / f"all{suffix}"
    build(genome, out, negatives=0.5, bigwig=tracks["list"], bin_size=50, flank=10,
          blacklist=genome.beds[0], max_n_frac=0.5, center="summit")  # fmt: skip
    if suffix == ".h5":
        import h5py

        with h5py.File(out) as f:
            names = list(f.keys())
    else:
        import zarr

        names = [name for name, _ in zarr.open_group(str(out), mode="r").members()]
    assert gg.intervals.INTERVAL_ARRAYS.undeclared(names) == []
    for split in SPLITS:
        assert {f"{split}_is_negative", f"{split}_targets", f"{split}_seqs"} <= set(names)
    assert "target_names" in names
    assert gg.intervals.INTERVAL_ARRAYS.undeclared(["training_extra"]) == ["training_extra"]

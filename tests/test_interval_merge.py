"""The NumPy/numba interval merge and the numba BED parser against what they replaced.

* ``make_regions`` (every mode) against the pandas implementation it replaced, loaded from the
  repository's history (commit ``REFERENCE_COMMIT``), on many random inputs and on the bundled
  example: same regions, same order, same labels, same dtypes.
* ``merge_intervals`` against a plain statement of ``bedtools merge -d``; ``sort_order``'s
  packed sort, its lexsort fallback and its DataFrame branch (the cuDF path, run here with pandas).
* ``read_bed``'s numba parser against the line-by-line parser (and the replaced reader) on clean
  and odd files, gzip and bgzip, with and without ISA-L.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from gpu_genomics.errors import InputError
from gpu_genomics.intervals import bed as bed_module
from gpu_genomics.intervals import regions as regions_module
from gpu_genomics.intervals.bed import read_bed, read_metadata
from gpu_genomics.intervals.job import load_peaks
from gpu_genomics.intervals.reference import Reference
from gpu_genomics.intervals.regions import make_regions, merge_intervals, sort_order

REPO = Path(__file__).resolve().parent.parent
#: The last commit with the pandas groupby/merge implementation of make_regions and the
#: pandas read_csv BED reader.
REFERENCE_COMMIT = "619e793ecb677859a08de9719c8ae5f8ed1473df"
MODES = ("basset", "hull", "none")


def _reference_module(path: str, name: str):
    """The module at ``path`` as of REFERENCE_COMMIT, imported inside gpu_genomics.intervals."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: the reference implementation comes from history")
    shown = subprocess.run(
        [git, "-C", str(REPO), "show", f"{REFERENCE_COMMIT}:{path}"],
        capture_output=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"commit {REFERENCE_COMMIT[:7]} is not in this checkout's history")
    full_name = f"gpu_genomics.intervals.{name}"
    spec = importlib.util.spec_from_loader(full_name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "gpu_genomics.intervals"
    sys.modules[full_name] = module
    # numba caches compiled code beside a source file, which this module has not
    source = shown.stdout.decode().replace("cache=True", "cache=False")
    exec(compile(source, f"{REFERENCE_COMMIT[:7]}:{path}", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def reference():
    return _reference_module("gpu_genomics/intervals/regions.py", "_reference_regions")


@pytest.fixture(scope="module")
def reference_bed():
    return _reference_module("gpu_genomics/intervals/bed.py", "_reference_bed")


# --- make_regions against the pandas implementation ------------------------------------------
def random_peaks(seed: int) -> tuple[pd.DataFrame, dict]:
    """A random peak frame and make_regions' options: ties, touching and nested peaks,
    zero-length peaks, chromosome ends, empty chromosomes, unsorted rows."""
    rng = np.random.default_rng(seed)
    length = int(rng.choice([1, 7, 50, 100, 101, 600]))
    n_chroms = int(rng.choice([1, 2, 5, 40]))
    sizes = rng.integers(length, length + rng.choice([50, 2_000, 100_000]), n_chroms)
    n = int(rng.choice([0, 1, 2, 3, 10, 200, 3_000]))
    used = rng.choice(n_chroms, size=max(1, n_chroms // 2), replace=False)  # others empty
    chrom = rng.choice(used, size=n)
    width = rng.choice([0, 1, 5, 20, 100, 400, 2_000], size=n)
    start = (rng.random(n) * sizes[chrom]).astype(np.int64)
    end = start + width  # may pass the chromosome's end: the window is shifted inward
    if n > 3:  # duplicates, touching and equal-start peaks
        k = n // 4
        a, b = rng.integers(0, n, k), rng.integers(0, n, k)
        chrom[b[: k // 3]], start[b[: k // 3]], end[b[: k // 3]] = (
            chrom[a[: k // 3]],
            start[a[: k // 3]],
            end[a[: k // 3]],
        )
        touch = b[k // 3 : 2 * k // 3]
        chrom[touch], start[touch] = chrom[a[k // 3 : 2 * k // 3]], end[a[k // 3 : 2 * k // 3]]
        end[touch] = start[touch] + rng.choice([0, 1, 300], size=len(touch))
        same = b[2 * k // 3 :]
        chrom[same], start[same] = chrom[a[2 * k // 3 :]], start[a[2 * k // 3 :]]
    n_labels = int(rng.choice([1, 3, 64, 70]))
    frame = pd.DataFrame(
        {
            "chrom": chrom.astype(np.int32),
            "start": start.astype(np.int64),
            "end": end.astype(np.int64),
            "minus": rng.random(n) < 0.3,
            "label": rng.integers(0, n_labels, n).astype(np.int32),
        }
    )
    if seed % 3 == 0:  # a shuffled index, as a filtered frame has
        frame.index = rng.permutation(n) + 7
    options = {
        "length": length,
        "min_overlap": int(rng.choice([-30, 0, 1, 20, 200, length])),
        "chrom_sizes": sizes.astype(np.int64),
        "n_labels": n_labels,
    }
    return frame, options


def assert_same_regions(got, expected, what: str) -> None:
    for field in ("chrom", "start", "minus", "labels"):
        a, b = getattr(got, field), getattr(expected, field)
        assert a.dtype == b.dtype, f"{what}: {field} dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{what}: {field} shape {a.shape} != {b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: {field}")


@pytest.mark.parametrize("seed", range(120))
def test_make_regions_matches_the_pandas_implementation(reference, seed):
    frame, options = random_peaks(seed)
    before = frame.copy()
    for mode in MODES:
        expected = reference.make_regions(frame, mode, **options, device="cpu")
        got = make_regions(frame, mode, **options, device="cpu")
        assert_same_regions(got, expected, f"seed {seed}, {mode}")
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize("mode", MODES)
def test_make_regions_matches_on_the_example(reference, mode):
    example = REPO / "data"
    sources, names = read_metadata(example / "metadata.txt")
    ref = Reference(example / "reference.fa.gz")
    peaks = load_peaks(sources, ref, skip_unknown_chroms=False)
    peaks = peaks[ref.lengths[peaks["chrom"]] >= 600]
    assert len(peaks) > 100
    for min_overlap in (0, 200):
        options = {
            "length": 600,
            "min_overlap": min_overlap,
            "chrom_sizes": ref.lengths,
            "n_labels": len(names),
        }
        expected = reference.make_regions(peaks, mode, **options, device="cpu")
        got = make_regions(peaks, mode, **options, device="cpu")
        assert len(got) > 10
        assert_same_regions(got, expected, f"example, {mode}, min_overlap {min_overlap}")


def test_one_row_and_no_rows(reference):
    one = pd.DataFrame(
        {"chrom": [1], "start": [5], "end": [5], "minus": [True], "label": [2]}
    ).astype({"chrom": np.int32, "start": np.int64, "end": np.int64, "label": np.int32})
    options = {"length": 10, "min_overlap": 3, "chrom_sizes": np.array([50, 12]), "n_labels": 3}
    for frame in (one, one.iloc[:0]):
        for mode in MODES:
            got = make_regions(frame, mode, **options, device="cpu")
            expected = reference.make_regions(frame, mode, **options, device="cpu")
            assert_same_regions(got, expected, f"{len(frame)} rows, {mode}")
            assert len(got) == len(frame)
    got = make_regions(one, "none", **options, device="cpu")
    # midpoint 5, window [0, 10), shifted left to the chromosome end 12 - 10 = 2
    assert (got.chrom.tolist(), got.start.tolist(), got.minus.tolist()) == ([1], [0], [True])
    assert got.labels.tolist() == [[0, 0, 1]]


@pytest.mark.parametrize("seed", range(25))
def test_dataframe_sort_path_gives_the_same_regions(monkeypatch, seed):
    # the cuDF path sorts with the pandas API: run it with pandas standing in for cuDF
    frame, options = random_peaks(seed)
    expected = {mode: make_regions(frame, mode, **options, device="cpu") for mode in MODES}
    monkeypatch.setattr(regions_module, "_dataframe_library", lambda device: pd)
    for mode in MODES:
        got = make_regions(frame, mode, **options, device="cpu")
        assert_same_regions(got, expected[mode], f"seed {seed}, {mode}, pandas sort")


# --- merge_intervals and sort_order -----------------------------------------------------------
def bedtools_merge(chrom, start, end, min_overlap):
    """``sort -k1,1 -k2,2n -k3,3n | bedtools merge -d -min_overlap``, one interval at a time."""
    hulls = []
    for c, s, e in sorted(zip(chrom.tolist(), start.tolist(), end.tolist(), strict=True)):
        if hulls and hulls[-1][0] == c and s <= hulls[-1][2] - min_overlap:
            hulls[-1][2] = max(hulls[-1][2], e)
        else:
            hulls.append([c, s, e])
    return hulls


@pytest.mark.parametrize("seed", range(40))
def test_merge_intervals_is_bedtools_merge(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 2, 50, 500]))
    chrom = rng.integers(0, 4, n)
    start = rng.integers(0, 3_000, n)
    end = start + rng.choice([0, 1, 10, 200, 1_000], n)
    for min_overlap in (-50, 0, 1, 100, 250):
        cluster, hull_chrom, hull_start, hull_end = merge_intervals(
            chrom, start, end, min_overlap=min_overlap
        )
        hulls = bedtools_merge(chrom, start, end, min_overlap)
        assert [list(h) for h in zip(hull_chrom, hull_start, hull_end, strict=True)] == hulls
        assert cluster.dtype == np.int64 and cluster.shape == (n,)
        # every row lies in its cluster's hull, and every cluster has a row starting its hull
        assert (hull_chrom[cluster] == chrom).all()
        assert (hull_start[cluster] <= start).all() and (end <= hull_end[cluster]).all()
        assert np.array_equal(np.unique(cluster), np.arange(len(hulls)))


def test_merge_intervals_hand_case():
    # [0, 100) and [80, 150) overlap by 20: joined at min_overlap 20, apart at 21; [150, 150)
    # touches the first hull's end and joins only with min_overlap <= 0; chromosome 1 apart
    chrom = np.array([0, 0, 1, 0])
    start = np.array([80, 0, 90, 150])
    end = np.array([150, 100, 95, 150])
    cluster, *hull = merge_intervals(chrom, start, end, min_overlap=20)
    assert [h.tolist() for h in hull] == [[0, 0, 1], [0, 150, 90], [150, 150, 95]]
    assert cluster.tolist() == [0, 0, 2, 1]
    assert [h.tolist() for h in merge_intervals(chrom, start, end, min_overlap=21)[1:]] == [
        [0, 0, 0, 1],
        [0, 80, 150, 90],
        [100, 150, 150, 95],
    ]
    assert [h.tolist() for h in merge_intervals(chrom, start, end, min_overlap=0)[1:]] == [
        [0, 1],
        [0, 90],
        [150, 95],
    ]


@pytest.mark.parametrize(
    "keys",
    [
        [np.array([3, 1, 2, 1, 1]), np.array([0, 5, 2, 5, 4]), np.array([1, 0, 0, 0, 1])],
        [np.array([2**40, 0, 2**40, 5]), np.array([2**40, 2**40, 0, 1])],  # span >= 2**63
        [np.array([-1, 3, -1, 0]), np.array([2, -5, 1, 1])],  # negative keys
        [np.array([1, 0, 1, 0], dtype=bool), np.array([7, 7, 3, 3], dtype=np.int32)],
    ],
)
def test_sort_order_sorts_lexicographically(keys):
    expected = np.lexsort(keys[::-1])
    for frames in (None, pd):
        order = sort_order(keys, frames=frames)
        assert order.dtype == np.int64
        assert sorted(order.tolist()) == list(range(len(keys[0])))
        for key in keys:  # equal keys may come in either order: compare the sorted keys
            np.testing.assert_array_equal(key[order], key[expected])


def test_sort_order_random_matches_lexsort():
    rng = np.random.default_rng(5)
    for _ in range(20):
        keys = [rng.integers(0, high, 1_000) for high in rng.choice([1, 3, 1_000, 2**30], 3)]
        order = sort_order(keys)
        expected = np.lexsort(keys[::-1])
        for key in keys:
            np.testing.assert_array_equal(key[order], key[expected])
    assert sort_order([np.zeros(0, np.int64)]).shape == (0,)


# --- read_bed: the numba parser against the line-by-line parser ---------------------------------
CLEAN = (
    "chr1\t100\t200\tpeak1\t5\t-\n"
    "chr2\t0\t0\tpeak2\t5\t+\n"
    "chr1\t150\t300\n"
    "chr10\t7\t9\tx\t0\t.\t1\t2\t3\t4\n"
    "chr1\t0\t5\tname\t1\t-\n"
)
ODD_FILES = {
    "clean": CLEAN,
    "no final newline": CLEAN.rstrip("\n"),
    "comments, track, browser, blank": (
        "track name=x\nbrowser position chr1\n#c\n\n   \n\t\n  # indented comment\n" + CLEAN
    ),
    "crlf": CLEAN.replace("\n", "\r\n"),
    "lone carriage return": "chr1\t1\t2\rchr2\t3\t4\n",
    "form feed splits a line": "chr1\t1\t2\tname\x0cchr2\t3\t4\n",
    "nel splits a line": "chr1\t1\t2\tna\u0085me\t0\t-\n",
    "spaces around fields": "chr1 \t 1\t2 \tn\t0\t - \n",
    "space separated": "chr1 1 2 n 0 -\nchr2 3 4\n",
    "plus sign": "chr1\t+5\t10\n",
    "leading space": " chr1\t5\t10\n",
    "leading tab": "\tchr1\t5\t10\n",
    "non-ASCII name": "chr\u00e91\t5\t10\nchr1\t1\t2\n",
    "non-ASCII other field": "chr1\t5\t10\tp\u00e9ak\t0\t-\n",
    "strand with space": "chr1\t5\t10\tn\t0\t- x\n",
    "empty strand field": "chr1\t5\t10\tn\t0\t\n",
    "strand starting with a dash": "chr1\t5\t10\tn\t0\t-1\nchr1\t5\t10\tn\t0\t--\tx\n",
    "five fields": "chr1\t5\t10\tn\t0\n",
    "only comments": "#a\n#b\n",
    "empty": "",
    "many names unsorted": "".join(
        f"scaffold_{i * 7919 % 1000}\t{i}\t{i + 3}\n" for i in range(3000)
    ),
    "chromosome named track": "trackX\t1\t2\nchr1\t3\t4\n",
    "long digits": "chr1\t000000000000001\t0000000000000002\n",
    "sixteen digits": "chr1\t1\t0000000000000002\n",
}
BAD_FILES = {
    "two fields": ("chr1\t100\t200\nchr1\t300\n", "line 2: a BED line needs chrom, start and end"),
    "not an integer": ("chr1\t1\t2\nchr1\tabc\t4\n", "line 2: start and end must be integers"),
    "start after end": ("track x\nchr1\t500\t400\n", "line 2: start 500 is after end 400"),
    "negative": ("chr1\t-5\t400\n", "line 1: negative coordinate"),
    "beyond any chromosome": (f"chr1\t1\t{2**40 + 1}\n", "line 1: coordinate"),
    "empty chromosome": ("chr1\t1\t2\n\t1\t2\n", "line 2: empty chromosome name"),
    "empty name, spaces": ("  \t1\t2\n", "line 1: empty chromosome name"),
    "after a form feed": ("chr1\t1\t2\x0cchr1\t5\t4\n", "line 2: start 5 is after end 4"),
}


def write(tmp_path: Path, name: str, text: str, how: str = "plain") -> Path:
    raw = text.encode("utf-8")
    path = tmp_path / f"{name.replace(' ', '_')}.bed"
    path.write_bytes(raw)
    if how == "gzip":
        packed = path.with_name(path.name + ".gz")
        packed.write_bytes(gzip.compress(raw))
        return packed
    if how == "bgzip":
        packed = path.with_name(path.name + ".bgz")
        pysam.tabix_compress(str(path), str(packed), force=True)
        return packed
    return path


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert list(a["chrom"].cat.categories) == list(b["chrom"].cat.categories)


def same_as_checked(path: Path, raw: bytes) -> None:
    """read_bed gives the line-by-line parser's frame, or raises its error."""
    try:
        expected = bed_module._read_bed_checked(path, raw)
    except InputError as error:
        with pytest.raises(InputError) as got:
            read_bed(path)
        assert str(got.value) == str(error)
        return
    frames_equal(read_bed(path), expected)


@pytest.mark.parametrize("name", list(ODD_FILES))
@pytest.mark.parametrize("how", ["plain", "gzip", "bgzip"])
def test_read_bed_is_the_line_by_line_parser(tmp_path, name, how):
    path = write(tmp_path, name, ODD_FILES[name], how)
    raw = path.read_bytes() if how == "plain" else gzip.decompress(path.read_bytes())
    same_as_checked(path, raw)


def test_read_bed_clean_files_take_the_numba_parser(tmp_path, monkeypatch):
    def fail(*_, **__):
        raise AssertionError("the line-by-line parser ran")

    monkeypatch.setattr(bed_module, "_read_bed_checked", fail)
    for name in (
        "clean",
        "crlf",
        "comments, track, browser, blank",
        "many names unsorted",
        "strand starting with a dash",
        "empty strand field",
    ):
        frame = read_bed(write(tmp_path, name, ODD_FILES[name]))
        assert len(frame) > 0
        assert not frame["minus"].any() or name != "strand starting with a dash"
    frame = read_bed(write(tmp_path, "clean", CLEAN))
    assert list(frame["chrom"].cat.categories) == ["chr1", "chr10", "chr2"]
    assert frame["chrom"].astype(str).tolist() == ["chr1", "chr2", "chr1", "chr10", "chr1"]
    assert frame["start"].tolist() == [100, 0, 150, 7, 0]
    assert frame["end"].tolist() == [200, 0, 300, 9, 5]
    assert frame["minus"].tolist() == [True, False, False, False, True]
    with pytest.raises(AssertionError, match="line-by-line"):
        read_bed(write(tmp_path, "spaces", ODD_FILES["spaces around fields"]))


@pytest.mark.parametrize(
    "name", ["clean", "comments, track, browser, blank", "crlf", "five fields"]
)
def test_read_bed_matches_the_replaced_reader(tmp_path, reference_bed, name):
    path = write(tmp_path, name, ODD_FILES[name], "gzip")
    frames_equal(read_bed(path), reference_bed.read_bed(path))


@pytest.mark.parametrize("name", list(BAD_FILES))
@pytest.mark.parametrize("how", ["plain", "gzip"])
def test_read_bed_errors_name_file_and_line(tmp_path, name, how):
    text, message = BAD_FILES[name]
    path = write(tmp_path, name, text, how)
    with pytest.raises(InputError) as error:
        read_bed(path)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)


def test_random_bed_files(tmp_path):
    rng = np.random.default_rng(11)
    pieces = [
        "chr{c}\t{s}\t{e}\tp\t0\t{strand}\n",
        "chr{c}\t{s}\t{e}\n",
        "chr{c}\t{s}\t{e}\tp\t0\t{strand}\r\n",
        "#x\n",
        "\n",
        "chr{c} \t{s}\t{e}\n",
        "chr{c}\t{s}\t{e}\tp\t0\t{strand}\tmore\tfields\n",
    ]
    for trial in range(30):
        lines = []
        for _ in range(int(rng.integers(1, 60))):
            s = int(rng.integers(0, 10**6))
            lines.append(
                pieces[int(rng.integers(0, len(pieces) if trial % 2 else 3))].format(
                    c=int(rng.integers(1, 30)),
                    s=s,
                    e=s + int(rng.integers(0, 500)),
                    strand=str(rng.choice(["+", "-", "."])),
                )
            )
        path = write(tmp_path, f"random{trial}", "".join(lines))
        same_as_checked(path, path.read_bytes())


def test_gzip_without_isal_reads_the_same(tmp_path, monkeypatch):
    text = "".join(f"chr1\t{i}\t{i + 10}\tp\t0\t-\n" for i in range(5_000))
    packed = write(tmp_path, "many", text, "bgzip")
    with_isal = read_bed(packed)
    monkeypatch.setitem(sys.modules, "isal", None)  # import isal fails: the standard library
    frames_equal(read_bed(packed), with_isal)
    assert len(with_isal) == 5_000 and with_isal["minus"].all()


@pytest.mark.parametrize("isal", [True, False])
def test_corrupt_gzip_message_is_the_standard_librarys(tmp_path, monkeypatch, isal):
    if not isal:
        monkeypatch.setitem(sys.modules, "isal", None)
    raw = gzip.compress(CLEAN.encode())
    cut = tmp_path / "cut.bed.gz"
    cut.write_bytes(raw[:-12])
    with pytest.raises(InputError, match=r"cut\.bed\.gz: gzip data is corrupt or truncated"):
        read_bed(cut)
    garbage = tmp_path / "garbage.bed.gz"
    garbage.write_bytes(raw + b"garbage")
    with pytest.raises(InputError, match=r"Not a gzipped file"):
        read_bed(garbage)

"""bgzip references read through the ``.gzi`` block index (:mod:`gpu_genomics.intervals.bgzf`).

The same bases as the plain FASTA and as pysam, window for window (record edges, block edges,
random and unsorted windows, many groups, one thread or several); corrupt blocks and stale
indexes are one-line errors naming the file; a non-IUPAC byte is the reader's usual error; the
intervals job writes the same arrays from either form of the reference.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import h5py
import numba
import numpy as np
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.intervals import bgzf, reference
from gpu_genomics.intervals.reference import Reference

DATA = Path(__file__).resolve().parent.parent / "data"
BLOCK = 65_280  # bgzip's uncompressed bytes per block
#: name -> (length, line width): records of many blocks, one smaller than a block, odd widths
RECORDS = {
    "big60": (1_000_003, 60),
    "big61": (700_001, 61),
    "w7": (3_001, 7),
    "tiny": (5, 60),
    "one_line": (100, 100),
    "iupac": (150_007, 60),
}


def make_sequences(seed: int = 0) -> dict[str, bytes]:
    """Mixed-case bases with N runs; ``iupac`` mostly IUPAC codes, either case."""
    rng = np.random.default_rng(seed)
    sequences = {}
    for name, (length, _) in RECORDS.items():
        letters = np.frombuffer(b"ACGTacgtACGTacgtRYn", dtype=np.uint8)
        if name == "iupac":
            letters = np.frombuffer(b"ACGTRYKMSWBDHVNacgtrykmswbdhvn", dtype=np.uint8)
        bases = letters[rng.integers(0, len(letters), length)]
        for _ in range(length // 50_000):  # N runs (upper and lower case)
            start = int(rng.integers(0, length))
            bases[start : start + int(rng.integers(100, 5_000))] = rng.choice([ord("N"), ord("n")])
        sequences[name] = bases.tobytes()
    return sequences


def write_fasta(path: Path, sequences: dict[str, bytes], widths: dict[str, int]) -> Path:
    with open(path, "wb") as handle:
        for name, bases in sequences.items():
            handle.write(f">{name} some description\n".encode())
            width = widths[name]
            handle.writelines(bases[i : i + width] + b"\n" for i in range(0, len(bases), width))
    return path


def bgzip_copy(plain: Path, path: Path) -> Path:
    """``plain`` compressed with bgzip (pysam) and indexed (``.fai``, ``.gzi``)."""
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.faidx(str(path))
    return path


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> dict:
    """The plain FASTA and its bgzip copy, both indexed, and the sequences."""
    folder = tmp_path_factory.mktemp("bgzf")
    sequences = make_sequences()
    plain = write_fasta(folder / "ref.fa", sequences, {n: w for n, (_, w) in RECORDS.items()})
    pysam.faidx(str(plain))
    return {"plain": plain, "bgzip": bgzip_copy(plain, folder / "ref.fa.gz"), "seq": sequences}


def rows(data: np.ndarray, data_starts: np.ndarray, length: int) -> np.ndarray:
    """The ``(n, length)`` windows of a ``(data, data_starts)`` layout."""
    return data[np.asarray(data_starts)[:, None] + np.arange(length)]


def expected(sequences: dict[str, bytes], name: str, starts, length: int) -> np.ndarray:
    bases = np.frombuffer(sequences[name], dtype=np.uint8)
    return rows(bases, np.asarray(starts, dtype=np.int64), length)


def block_edges(bgzip: Path, name: str) -> list[int]:
    """Positions in record ``name`` where a BGZF block starts (from the ``.gzi``)."""
    raw = np.fromfile(f"{bgzip}.gzi", dtype="<u8")
    uoffsets = raw[1:].reshape(-1, 2)[:, 1].astype(np.int64)
    fai = {
        line.split("\t")[0]: line.split("\t")
        for line in Path(f"{bgzip}.fai").read_text().splitlines()
    }
    length, offset, bases, width = (int(v) for v in fai[name][1:5])
    edges = []
    for u in uoffsets[(uoffsets >= offset) & (uoffsets < offset + length * width)]:
        line, column = divmod(int(u) - offset, width)
        edges.append(min(line * bases + min(column, bases), length))
    return edges


def edge_starts(bgzip: Path, name: str, length: int) -> np.ndarray:
    """Window starts at the record's start and end and across its block edges."""
    size = RECORDS[name][0]
    candidates = [0, 1, size - length, size - length - 1]
    for edge in block_edges(bgzip, name):
        candidates += [edge - length, edge - length + 1, edge - 1, edge]
    starts = np.array(sorted({s for s in candidates if 0 <= s <= size - length}), dtype=np.int64)
    return starts


# --- the same bases ---------------------------------------------------------------------------
@pytest.mark.parametrize("length", [1, 7, 60, 61, 1_000, 70_000])
def test_windows_at_record_and_block_edges_match_the_plain_fasta_and_pysam(refs, length):
    seen_edges = 0
    with (
        Reference(refs["bgzip"]) as bgzipped,
        Reference(refs["plain"]) as plain,
        pysam.FastaFile(str(refs["bgzip"])) as fasta,
    ):
        for name, (size, _) in RECORDS.items():
            if length > size:
                continue
            starts = edge_starts(refs["bgzip"], name, length)
            seen_edges += len(block_edges(refs["bgzip"], name))
            got = rows(*bgzipped.windows(name, starts, length), length)
            np.testing.assert_array_equal(got, rows(*plain.windows(name, starts, length), length))
            np.testing.assert_array_equal(got, expected(refs["seq"], name, starts, length))
            for s in starts[:: max(1, len(starts) // 20)]:
                assert got[np.searchsorted(starts, s)].tobytes().decode() == fasta.fetch(
                    name, int(s), int(s) + length
                )
    assert seen_edges > 20  # the records do span many blocks


def test_random_and_unsorted_windows_match(refs):
    rng = np.random.default_rng(1)
    with Reference(refs["bgzip"]) as bgzipped, Reference(refs["plain"]) as plain:
        for name, (size, _) in RECORDS.items():
            for length in (1, 13, 600, 20_000):
                if length > size:
                    continue
                for n in (1, 5, 3_000):
                    starts = rng.integers(0, size - length + 1, n)  # unsorted, repeats
                    for order in (np.sort(starts), starts):
                        got = rows(*bgzipped.windows(name, order, length), length)
                        np.testing.assert_array_equal(
                            got, rows(*plain.windows(name, order, length), length)
                        )
                        np.testing.assert_array_equal(
                            got, expected(refs["seq"], name, order, length)
                        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(RECORDS)),
    length=st.integers(1, 140_000),
    fractions=st.lists(st.floats(0, 1), min_size=1, max_size=40),
)
def test_any_windows_match_the_plain_fasta(refs, name, length, fractions):
    size = RECORDS[name][0]
    length = min(length, size)
    starts = (np.array(fractions) * (size - length)).astype(np.int64)
    with Reference(refs["bgzip"]) as bgzipped:
        got = rows(*bgzipped.windows(name, starts, length), length)
    np.testing.assert_array_equal(got, expected(refs["seq"], name, starts, length))


def test_fetch_reads_whole_records_and_clips_the_end_as_htslib(refs):
    with Reference(refs["bgzip"]) as bgzipped, Reference(refs["bgzip"], blocks=False) as htslib:
        for name, (size, _) in RECORDS.items():
            assert bgzipped.fetch(name).tobytes() == refs["seq"][name]
            for start, end in ((0, 1), (size - 1, size), (size // 2, size + 50), (size, size + 9)):
                np.testing.assert_array_equal(
                    bgzipped.fetch(name, start, end), htslib.fetch(name, start, end)
                )
        with pytest.raises(InputError, match=r"ref\.fa\.gz: cannot read big60:0-10"):
            bgzipped.fetch("big60", -1, 10)


def test_many_groups_small_pieces_and_one_thread_read_the_same(refs, monkeypatch):
    """Groups of one block, pieces of 1,000 bases, no small-read path, then no threads."""
    monkeypatch.setattr(bgzf, "GROUP_BYTES", 1)
    monkeypatch.setattr(reference, "PIECE_BASES", 1_000)
    monkeypatch.setattr(reference, "SMALL_READ_BASES", 0)
    rng = np.random.default_rng(2)
    threads = numba.get_num_threads()
    try:
        for n_threads in (threads, 1):
            numba.set_num_threads(n_threads)
            with Reference(refs["bgzip"]) as bgzipped:
                for name in ("big60", "big61", "w7", "tiny"):
                    size = RECORDS[name][0]
                    length = min(size, 2_500)
                    starts = np.sort(rng.integers(0, size - length + 1, 400))
                    got = rows(*bgzipped.windows(name, starts, length), length)
                    np.testing.assert_array_equal(got, expected(refs["seq"], name, starts, length))
                    assert bgzipped.fetch(name).tobytes() == refs["seq"][name]
    finally:
        numba.set_num_threads(threads)


def test_the_block_reader_inflates_in_parallel_threads(refs, monkeypatch):
    """Many blocks are inflated by the pool's threads (isal releases the GIL)."""
    import threading

    names = set()
    inflate = bgzf.BgzfIndex._inflate_segment

    def spy(self, segment, out):
        names.add(threading.current_thread().name)
        return inflate(self, segment, out)

    monkeypatch.setattr(bgzf.BgzfIndex, "_inflate_segment", spy)
    threads = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        with Reference(refs["bgzip"]) as bgzipped:
            assert bgzipped.fetch("big60").tobytes() == refs["seq"]["big60"]
    finally:
        numba.set_num_threads(threads)
    assert any(name.startswith("bgzf-inflate") for name in names)


def rewrite_gzi(path: Path, pairs: np.ndarray) -> None:
    raw = np.concatenate(([len(pairs)], np.asarray(pairs, dtype=np.uint64).ravel()))
    raw.astype("<u8").tofile(f"{path}.gzi")


def gzi_pairs(path: Path) -> np.ndarray:
    raw = np.fromfile(f"{path}.gzi", dtype="<u8")
    return raw[1:].reshape(-1, 2).astype(np.int64)


@pytest.fixture
def own_copy(refs, tmp_path) -> Path:
    """A bgzip copy of the reference with its indexes, to damage."""
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(f"{refs['bgzip']}{suffix}", tmp_path / f"ref.fa.gz{suffix}")
    return tmp_path / "ref.fa.gz"


@pytest.mark.parametrize("kind", ["sparse", "first block listed", "no entries"])
def test_a_sparser_index_reads_the_same(refs, own_copy, kind):
    """A segment of several blocks (or the index's first block listed) is walked block by block."""
    pairs = gzi_pairs(own_copy)
    pairs = {
        "sparse": pairs[::3],
        "first block listed": np.vstack([[0, 0], pairs]),
        "no entries": pairs[:0],
    }[kind]
    rewrite_gzi(own_copy, pairs)
    rng = np.random.default_rng(3)
    with Reference(own_copy) as bgzipped:
        for name in ("big60", "big61", "w7"):
            size = RECORDS[name][0]
            starts = np.sort(rng.integers(0, size - 500, 200))
            got = rows(*bgzipped.windows(name, starts, 500), 500)
            np.testing.assert_array_equal(got, expected(refs["seq"], name, starts, 500))
            assert bgzipped.fetch(name, 7, 77).tobytes() == refs["seq"][name][7:77]


# --- errors -----------------------------------------------------------------------------------
def one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def block_at(path: Path, record: str, position: int) -> tuple[int, int]:
    """``(compressed offset, compressed size)`` of the block holding base ``position``."""
    fai = {
        line.split("\t")[0]: line.split("\t")
        for line in Path(f"{path}.fai").read_text().splitlines()
    }
    offset, bases, width = (int(v) for v in fai[record][2:5])
    u = offset + position // bases * width + position % bases
    pairs = np.vstack([[0, 0], gzi_pairs(path)])
    k = int(np.searchsorted(pairs[:, 1], u, side="right")) - 1
    data = path.read_bytes()
    (xlen,) = struct.unpack_from("<H", data, int(pairs[k, 0]) + 10)
    (block_size,) = struct.unpack_from("<H", data, int(pairs[k, 0]) + 16)
    assert xlen == 6
    return int(pairs[k, 0]), block_size + 1


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("payload", r"the BGZF block at byte \d+ is corrupt \("),
        ("crc", r"the BGZF block at byte \d+ is corrupt \(CRC32 mismatch\)"),
        ("isize", r"does not match the file|is corrupt"),
    ],
)
@pytest.mark.parametrize("read", ["windows", "fetch"])
def test_a_corrupt_block_is_a_one_line_error_naming_the_file(refs, own_copy, where, match, read):
    start, size = block_at(own_copy, "big60", 500_000)
    data = bytearray(own_copy.read_bytes())
    position = {"payload": start + 18 + (size - 26) // 2, "crc": start + size - 8}.get(
        where, start + size - 4
    )
    data[position] ^= 0x5A
    own_copy.write_bytes(bytes(data))
    with Reference(own_copy) as bgzipped:
        with pytest.raises(InputError, match=rf"^{own_copy}: .*{match}") as info:
            if read == "windows":
                bgzipped.windows("big60", np.arange(480_000, 520_000, 997), 100)
            else:
                bgzipped.fetch("big60", 500_000, 500_010)
        message = one_line(info)
        assert f"at byte {start}" in message or "does not match" in message
        # blocks elsewhere still read
        assert bgzipped.fetch("big61", 10, 20).tobytes() == refs["seq"]["big61"][10:20]


@pytest.mark.parametrize(
    "damage", ["shifted entry", "out of order", "past the end", "size up", "size down"]
)
def test_a_stale_or_damaged_block_index_is_a_one_line_error(own_copy, damage):
    pairs = gzi_pairs(own_copy)
    if damage == "shifted entry":
        pairs[5, 0] += 1
    elif damage == "out of order":
        pairs[[3, 4]] = pairs[[4, 3]]
    elif damage == "past the end":
        pairs[-1, 0] = own_copy.stat().st_size + 10
    elif damage == "size up":
        pairs[4, 1] += 1  # block 4's uncompressed offset one byte late: block 3 is too short
    elif damage == "size down":
        pairs[4, 1] -= 1  # one byte early: block 3 holds more than its share
    rewrite_gzi(own_copy, pairs)
    with pytest.raises(
        InputError, match=rf"^{own_copy}: its block index ref.fa.gz.gzi does not match"
    ) as info:
        with Reference(own_copy) as bgzipped:
            bgzipped.fetch("big60")
    message = one_line(info)
    assert "ref.fa.gz.fai" in message and "rebuilt" in message


@pytest.mark.parametrize("indexes", [(".fai",), (".fai", ".gzi")])
def test_an_index_of_another_file_is_refused(refs, tmp_path, indexes):
    """The .fai (and .gzi) of a re-wrapped copy: refused on the first read, naming both."""
    rewrapped = write_fasta(tmp_path / "other.fa", refs["seq"], dict.fromkeys(RECORDS, 50))
    other = bgzip_copy(rewrapped, tmp_path / "other.fa.gz")
    for suffix in ("", ".fai", ".gzi"):  # this file and its indexes, then the other's
        shutil.copy(f"{refs['bgzip']}{suffix}", tmp_path / f"ref.fa.gz{suffix}")
    for suffix in indexes:
        shutil.copy(f"{other}{suffix}", tmp_path / f"ref.fa.gz{suffix}")
    match = "index ref.fa.gz.fai does not match the file \\(record big61: no line end"
    if len(indexes) == 2:
        match = "does not match the file"
    with pytest.raises(InputError, match=match) as info:
        with Reference(tmp_path / "ref.fa.gz") as bgzipped:
            bgzipped.windows("big61", np.array([100]), 10)
    message = one_line(info)
    assert "ref.fa.gz.fai" in message and "ref.fa.gz.gzi" in message


@pytest.mark.parametrize("position", [0, 61 * 7 + 3, 654_321, 1_000_002])
@pytest.mark.parametrize("byte", [b"*", b"7", b"@"])
def test_a_byte_that_is_not_an_iupac_letter_is_the_usual_error(refs, tmp_path, position, byte):
    bad = dict(refs["seq"])
    bad["big60"] = bad["big60"][:position] + byte + bad["big60"][position + 1 :]
    widths = {n: w for n, (_, w) in RECORDS.items()}
    plain = write_fasta(tmp_path / "bad.fa", bad, widths)
    pysam.faidx(str(plain))
    bgzipped = bgzip_copy(plain, tmp_path / "bad.fa.gz")
    size = RECORDS["big60"][0]
    starts = np.array([0, position - 40, position - 500, size - 1_003]).clip(0, size - 1_003)
    starts = np.sort(starts)
    for path in (plain, bgzipped):
        for read in ("windows", "fetch", "bulk fetch"):
            with Reference(path) as ref:
                with pytest.raises(InputError) as info:
                    if read == "windows":
                        ref.windows("big60", starts, 1_003)
                    elif read == "fetch":
                        ref.fetch("big60", max(position - 5, 0), position + 1)
                    else:
                        ref.fetch("big60")
                message = one_line(info)
                assert message.startswith(
                    f"{path}: big60:{position + 1} (1-based) holds {byte.decode()!r}, not"
                )
                assert (
                    ref.fetch("big60", position + 1, min(position + 2000, size)).tobytes()
                    == bad["big60"][position + 1 : position + 2000]
                )


def test_htslib_reads_the_same_bases(refs):
    """The fallback (``blocks=False``) and the block reader agree."""
    rng = np.random.default_rng(4)
    with Reference(refs["bgzip"]) as bgzipped, Reference(refs["bgzip"], blocks=False) as htslib:
        for name in ("big60", "iupac", "w7"):
            size = RECORDS[name][0]
            starts = np.sort(rng.integers(0, size - 300, 500))
            np.testing.assert_array_equal(
                rows(*bgzipped.windows(name, starts, 300), 300),
                rows(*htslib.windows(name, starts, 300), 300),
            )


# --- the job ------------------------------------------------------------------------------------
def read_arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as f:
        return {k: f[k][...] for k in f if isinstance(f[k], h5py.Dataset)}


@pytest.mark.parametrize("merge", ["basset", "hull"])
def test_the_intervals_job_writes_the_same_arrays_from_either_form(tmp_path, merge):
    for path in DATA.iterdir():
        if path.suffix in (".bed", ".gz", ".txt"):
            shutil.copy(path, tmp_path / path.name)
    (tmp_path / "plain.fa").write_bytes(gzip.decompress((DATA / "reference.fa.gz").read_bytes()))
    outputs = {}
    for form, fasta in (("bgzip", "reference.fa.gz"), ("plain", "plain.fa")):
        outputs[form] = tmp_path / f"{form}.h5"
        gg.build_interval_dataset(
            tmp_path / "metadata.txt", tmp_path / fasta, outputs[form], device="cpu", merge=merge
        )
    bgzipped, plain = read_arrays(outputs["bgzip"]), read_arrays(outputs["plain"])
    assert sorted(bgzipped) == sorted(plain) and any(k.endswith("seqs") for k in plain)
    for key, values in plain.items():
        np.testing.assert_array_equal(bgzipped[key], values, err_msg=key)
    assert sum(len(v) for k, v in plain.items() if k.endswith("seqs")) > 50

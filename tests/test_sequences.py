"""Input forms every operation accepts (lists, arrays, FASTA/FASTQ files) and bad input."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics import InputError, SequenceBatch


def run_all(seqs, device, host) -> dict[str, np.ndarray]:
    """Run the operations on one input form; return host results keyed by operation."""
    ids, mask = host(gg.tokenize(seqs, 12, device=device))
    return {
        "one_hot": host(gg.one_hot(seqs, 12, device=device)),
        "gc": host(gg.gc_content(seqs, device=device)),
        "kmers": host(gg.kmer_counts(seqs, 2, device=device)),
        "ids": ids,
        "mask": mask,
    }


def expected(seqs: list[str]) -> dict[str, np.ndarray]:
    ids, mask = naive.tokenize_spec(seqs, 12)
    return {
        "one_hot": naive.one_hot(seqs, 12),
        "gc": naive.gc_content(seqs),
        "kmers": naive.kmer_counts(seqs, 2),
        "ids": ids,
        "mask": mask,
    }


def assert_results(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def as_array(seqs: list[str], dtype: str) -> np.ndarray:
    raw = np.array([list(s.encode()) for s in seqs], dtype=np.uint8).reshape(len(seqs), -1)
    return raw.view(dtype)


# --- in-memory forms ----------------------------------------------------------------------
@naive.SETTINGS
@given(seqs=naive.batches(min_size=0), form=st.sampled_from(["str", "bytes", "tuple", "ndarray"]))
def test_list_forms(device, host, seqs, form):
    if form == "bytes":
        data = [s.encode() for s in seqs]
    elif form == "tuple":
        data = tuple(seqs)
    elif form == "ndarray":
        data = np.array(seqs, dtype=object)
    else:
        data = list(seqs)
    assert_results(run_all(data, device, host), expected(seqs))


@naive.SETTINGS
@given(seqs=naive.equal_length_batches(), dtype=st.sampled_from(["uint8", "S1"]))
def test_2d_array_input_is_used_without_copy(device, host, seqs, dtype):
    array = as_array(seqs, dtype)
    batch = gg.as_batch(array)
    if array.size:  # np.shares_memory is False for empty arrays
        assert np.shares_memory(batch.data, array)
    assert batch.width == array.shape[1]
    assert batch.to_strings() == seqs
    assert_results(run_all(array, device, host), expected(seqs))


def test_2d_array_from_array_shares_memory(device, host):
    array = np.frombuffer(b"ACGTNNacgtRYAC", dtype=np.uint8).reshape(2, 7)
    batch = SequenceBatch.from_array(array)
    assert np.shares_memory(batch.data, array)
    s1 = array.view("S1")
    assert np.shares_memory(gg.as_batch(s1).data, array)
    got = host(gg.one_hot(s1, device=device))
    np.testing.assert_array_equal(got, naive.one_hot(["ACGTNNa", "cgtRYAC"]))


@pytest.mark.parametrize("order", ["strided", "fortran"])
def test_non_contiguous_2d_arrays(device, host, order):
    array = np.frombuffer(b"ACGTNNacgtRYACGG", dtype=np.uint8).reshape(2, 8)
    if order == "strided":
        array, seqs = array[:, ::2], ["AGNa", "gRAG"]
    else:
        array, seqs = np.asfortranarray(array), ["ACGTNNac", "gtRYACGG"]
    assert_results(run_all(array, device, host), expected(seqs))
    got = gg.reverse_complement(array.view("S1"), device=device)
    assert [row.tobytes().decode() for row in got] == [naive.reverse_complement(s) for s in seqs]


def test_single_sequence_str_and_bytes(device, host):
    for data in ("ACGTN", b"ACGTN"):
        got = host(gg.one_hot(data, device=device))
        np.testing.assert_array_equal(got, naive.one_hot(["ACGTN"]))


def test_sequence_batch_input(device, host):
    seqs = ["ACGT", "", "nnRYac"]
    batch = SequenceBatch.from_strings(seqs, names=["a", "b", "c"])
    assert_results(run_all(batch, device, host), expected(seqs))


def test_empty_batch(device, host):
    got = run_all([], device, host)
    assert got["one_hot"].shape == (0, 12, 4)
    assert got["gc"].shape == (0,)
    assert got["kmers"].shape == (0, 16)
    assert got["ids"].shape == (0, 12)


# --- FASTA / FASTQ files --------------------------------------------------------------------
NAMES = st.text(alphabet=st.sampled_from("abcXYZ019_.:-|"), min_size=1, max_size=12)


@st.composite
def records(draw, *, fastq: bool = False):
    seqs = draw(naive.batches(naive.dna(min_size=1 if fastq else 0), max_size=5))
    names = [draw(NAMES) for _ in seqs]
    return names, seqs


def write(path: Path, text: str, *, compress: bool) -> Path:
    raw = text.encode()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@naive.SETTINGS
@given(
    data=records(),
    line_width=st.sampled_from([0, 1, 5, 60]),
    newline=st.sampled_from(["\n", "\r\n"]),
    compress=st.booleans(),
)
def test_fasta_files(  # noqa: PLR0917 (fixtures and hypothesis strategies)
    device, host, tmp_path, data, line_width, newline, compress
):
    names, seqs = data
    path = write(
        tmp_path / "x.fa.gz", naive.fasta_text(names, seqs, line_width, newline), compress=compress
    )
    bases, offsets, got_names = gg.read_fastx(path)
    assert got_names == names
    assert offsets.tolist() == np.cumsum([0] + [len(s) for s in seqs]).tolist()
    assert bases.tobytes().decode() == "".join(seqs)
    assert gg.as_batch(path).names == names
    assert_results(run_all(path, device, host), expected(seqs))


@naive.SETTINGS
@given(data=records(fastq=True), newline=st.sampled_from(["\n", "\r\n"]), compress=st.booleans())
def test_fastq_files(  # noqa: PLR0917 (fixtures and hypothesis strategies)
    device, host, tmp_path, data, newline, compress
):
    names, seqs = data
    path = write(tmp_path / "x.fq", naive.fastq_text(names, seqs, newline), compress=compress)
    bases, offsets, got_names = gg.read_fastx(path)
    assert got_names == names
    assert offsets.tolist() == np.cumsum([0] + [len(s) for s in seqs]).tolist()
    assert bases.tobytes().decode() == "".join(seqs)
    assert_results(run_all(path, device, host), expected(seqs))


def test_fasta_literal(device, host, tmp_path):
    path = tmp_path / "two.fa"
    path.write_text(">chr1:5-10 first\nACGT\nnn\n\n>second\n>third x\nRYac\n")
    bases, offsets, names = gg.read_fastx(path)
    assert names == ["chr1:5-10", "second", "third"]
    assert offsets.tolist() == [0, 6, 6, 10]
    assert bases.tobytes() == b"ACGTnnRYac"
    got = host(gg.gc_content(path, device=device))
    np.testing.assert_array_equal(got[[0, 2]], [0.5, 0.5])
    assert np.isnan(got[1])


def test_fastq_literal(device, host, tmp_path):
    path = write(tmp_path / "r.fq.gz", "@r1 x\nACGG\n+\n@+II\n@r2\nTn\n+r2\nII\n", compress=True)
    ids, mask = host(gg.tokenize(path, 4, device=device))
    np.testing.assert_array_equal(ids, [[0, 1, 2, 2], [3, 4, 5, 5]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 1, 0, 0]])


@pytest.mark.parametrize(
    "text",
    ["@r1\nAC\n+\nII\n@r2\n\n+\n\n@r3\nG\n+\nI\n", "@r1\nAC\n+\nII\n@r3\nG\n+\nI\n@r2\n\n+\n\n"],
    ids=["empty-read-inside", "empty-read-last"],
)
def test_fastq_empty_reads(device, host, tmp_path, text):
    # a read of length 0 is a valid 4-line FASTQ record wherever it is in the file
    path = write(tmp_path / "empty_reads.fq", text, compress=False)
    bases, offsets, names = gg.read_fastx(path)
    assert sorted(names) == ["r1", "r2", "r3"]
    assert bases.tobytes() == b"ACG"
    lengths = dict(zip(names, np.diff(offsets).tolist(), strict=True))
    assert lengths == {"r1": 2, "r2": 0, "r3": 1}
    got = host(gg.gc_counts(path, device=device))
    assert got.sum(axis=0).tolist() == [2, 3]


@pytest.mark.parametrize("n_blank", [1, 3, 4, 5, 8])
@pytest.mark.parametrize("kind", ["fasta", "fastq"])
def test_trailing_blank_lines_are_ignored(device, host, tmp_path, kind, n_blank):
    names, seqs = ["r1", "r2"], ["ACGTN", "GGc"]
    text = naive.fasta_text(names, seqs, 0) if kind == "fasta" else naive.fastq_text(names, seqs)
    path = write(tmp_path / f"blank.{kind}", text + "\n" * n_blank, compress=False)
    bases, offsets, got_names = gg.read_fastx(path)
    assert got_names == names
    assert offsets.tolist() == [0, 5, 8]
    assert bases.tobytes() == b"ACGTNGGc"
    assert_results(run_all(path, device, host), expected(seqs))


# --- bad input: sequences -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("seqs", "record", "letter"),
    [
        (["ACGT", "HELLO"], 1, "E"),
        (["AC GT"], 0, " "),
        (["ACGT", "AC", "ACGTé"], 2, "é"),
        ([b"ACGT", b"AC\xffGT"], 1, None),
        (["ACGU"], 0, "U"),
        (["ACGT\n"], 0, None),
    ],
)
def test_non_dna_text_raises_naming_the_record(device, seqs, record, letter):
    with pytest.raises(InputError, match=rf"\b(record|sequence) {record}\b") as info:
        gg.one_hot(seqs, device=device)
    if letter is not None:
        assert repr(letter) in str(info.value)


def test_non_dna_array_raises(device):
    array = np.frombuffer(b"ACGTACGZ", dtype=np.uint8).reshape(2, 4)
    with pytest.raises(InputError, match=r"\brecord 1\b"):
        gg.one_hot(array, device=device)


@pytest.mark.parametrize(
    "data",
    [
        np.zeros((2, 3), dtype=np.float32),
        np.zeros((2, 3, 4), dtype=np.uint8),
        np.zeros(3, dtype=np.uint8),
        [1, 2, 3],
        ["ACGT", 5],
        12,
    ],
    ids=["float-array", "3d-array", "1d-uint8", "ints", "mixed", "int"],
)
def test_unusable_input_types_raise(device, data):
    with pytest.raises(InputError):
        gg.one_hot(data, device=device)


# --- bad input: files ---------------------------------------------------------------------
def raises_with_path(path: Path, device, *, parser_too: bool = True) -> InputError:
    """An operation on ``path`` (and, for malformed files, read_fastx itself) raises
    InputError with the path in the message."""
    with pytest.raises(InputError, match=re.escape(str(path))) as info:
        gg.one_hot(path, device=device)
    if parser_too:
        with pytest.raises(InputError, match=re.escape(str(path))):
            gg.read_fastx(path)
    return info.value


def test_missing_file(device, tmp_path):
    raises_with_path(tmp_path / "missing.fa", device)


def test_unreadable_path_directory(device, tmp_path):
    directory = tmp_path / "dir.fa"
    directory.mkdir()
    raises_with_path(directory, device)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", gzip.compress(b"")], ids=repr)
def test_empty_file(device, tmp_path, content):
    path = tmp_path / "empty.fa"
    path.write_bytes(content)
    raises_with_path(path, device)


@pytest.mark.parametrize(
    "content",
    [
        b"hello world\n",
        b"ACGT\n>r1\nACGT\n",
        b"\x00\x01\x02\x03binary",
        b"\x1f\x8b\x08\x00garbage that is not gzip",
        gzip.compress(b">r1\nACGTACGTACGT\n" * 50)[:-20],
    ],
    ids=["text", "sequence-before-header", "binary", "bad-gzip", "truncated-gzip"],
)
def test_garbage_file(device, tmp_path, content):
    path = tmp_path / "garbage.fa"
    path.write_bytes(content)
    raises_with_path(path, device)


def test_bgzip_of_many_blocks_reads_as_its_text_and_a_cut_one_is_an_error(tmp_path):
    """A bgzip file is thousands of gzip members (64 KiB blocks each): all of them are read,
    and one that lost its last blocks (the end-of-file block among them) is named."""
    import pysam

    from gpu_genomics.io.files import BGZF_EOF

    rng = np.random.default_rng(5)
    text = "".join(
        f">r{i}\n{''.join(rng.choice(list('ACGTN'), 300))}\n" for i in range(2000)
    ).encode()
    plain, bgzip = tmp_path / "r.fa", tmp_path / "r.fa.gz"
    plain.write_bytes(text)
    pysam.tabix_compress(str(plain), str(bgzip), force=True)
    raw = bgzip.read_bytes()
    assert raw.endswith(BGZF_EOF) and raw.count(b"\x1f\x8b\x08\x04") > 5
    expected_data, expected_offsets, expected_names = gg.read_fastx(plain)
    data, offsets, names = gg.read_fastx(bgzip)
    assert data.tobytes() == expected_data.tobytes() and names == expected_names
    np.testing.assert_array_equal(offsets, expected_offsets)
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(raw[: raw.rindex(b"\x1f\x8b\x08\x04", 0, len(raw) - len(BGZF_EOF))])
    with pytest.raises(InputError, match=r"cut\.fa\.gz: the bgzip file has no end-of-file"):
        gg.read_fastx(cut)


@pytest.mark.parametrize(("text", "line"), [(" >r1\nACGT\n", 1), ("\n\n\t>r1\nAC\n", 3)])
def test_a_fasta_header_after_blanks_is_one_line_naming_it(tmp_path, text, line):
    # found by tests/test_fuzz_inputs.py: an IndexError before
    path = tmp_path / "indented.fa"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        gg.read_fastx(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line {line}: a FASTA header must start its line")


def test_fasta_with_non_dna_names_record_and_path(device, tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">good\nACGT\n>protein_seq desc\nMKVLAAGIVE\n")
    # read_fastx only parses; letters are checked when a batch is built
    error = raises_with_path(path, device, parser_too=False)
    assert "protein_seq" in str(error)
    assert "'L'" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\n",  # quality line missing
        "@r1\nACGT\n+\nIIII\n@r2\nACGT\n",  # separator and quality missing
        "@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nII\n",  # quality cut short
        "@r1\nACGT\n+\nIIII\n@r2\n",  # header only
        "@r1\nACGT\nIIII\n@r2\n",  # no '+' line
    ],
    ids=["no-quality", "no-plus", "short-quality", "header-only", "missing-plus"],
)
@pytest.mark.parametrize("compress", [False, True])
def test_truncated_fastq(device, tmp_path, text, compress):
    path = write(tmp_path / "reads.fq", text, compress=compress)
    raises_with_path(path, device)


def test_string_path_is_not_a_file_name(device):
    # only pathlib.Path (os.PathLike) means a file; a str is a sequence, and "reads.fa" is not DNA
    with pytest.raises(InputError):
        gg.one_hot("reads.fa", device=device)

"""Random bytes and random edits of valid inputs, fed to every reader: each run either succeeds
(with an output) or raises the one-line :class:`~gpu_genomics.errors.InputError`; never another
exception, a crash or a hang (hypothesis, a bounded number of examples per reader)."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gpu_genomics as gg  # noqa: E402
from gpu_genomics.errors import GpuGenomicsError  # noqa: E402
from gpu_genomics.expression.tables import read_table  # noqa: E402
from gpu_genomics.intervals.bed import read_bed  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "25")),
    database=None,  # nothing written into the checkout
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SEEDS = {
    "bed": (DATA / "celltype1.bed").read_bytes()[:3000],
    "fasta": b">r1 first\nACGTNacgtn\nRYKM\n>r2\n\n>r3\nGGGCCCAAATTT\n",
    "fastq": b"@r1\nACGTN\n+\nIIIII\n@r2\nGG\n+\n##\n",
    "vcf": gzip.decompress((DATA / "vcf" / "example.vcf.gz").read_bytes())[:6000],
    "tsv": b"gene\ts1\ts2\ts3\nA\t1\t2\t3\nB\t0\t5.5\tNA\nC\t7\t8\t9\n",
    "mtx": b"%%MatrixMarket matrix coordinate integer general\n3 2 4\n1 1 5\n2 1 1\n3 2 7\n1 2 2\n",
}

#: Edits of a seed: (position fraction, bytes to put there, bytes removed there).
EDITS = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.binary(max_size=6) | st.sampled_from([b"\t", b"\n", b">", b"@", b"-1", b"#", b"\x00"]),
        st.integers(0, 8),
    ),
    max_size=4,
)


def edited(seed: bytes, edits: list, truncate: float | None) -> bytes:
    data = bytearray(seed)
    for where, insert, remove in edits:
        at = int(where * len(data))
        data[at : at + remove] = insert
    if truncate is not None:
        data = data[: int(truncate * len(data))]
    return bytes(data)


def one_line_or_success(run: Callable[[Path], object], suffix: str, content: bytes) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        path = folder / f"input{suffix}"
        path.write_bytes(content)
        try:
            run(path)
        except GpuGenomicsError as exc:
            assert "\n" not in str(exc), str(exc)
            assert str(exc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def encode(path: Path) -> None:
    gg.encode_file(path, path.with_name("out.h5"), device="cpu")
    assert path.with_name("out.h5").exists()


def vcf(path: Path) -> None:
    gg.convert_vcf(path, path.with_name("out.h5"), device="cpu")


def table(path: Path) -> None:
    read_table(path, orientation="rows-are-features")


def tenx_folder(path: Path) -> None:
    """A 10x matrix folder whose ``matrix.mtx`` is the fuzzed file."""
    pytest.importorskip("scanpy")
    from gpu_genomics.expression.singlecell import read

    folder = path.parent / "filtered_feature_bc_matrix"
    folder.mkdir()
    path.rename(folder / ("matrix.mtx.gz" if path.name.endswith(".gz") else "matrix.mtx"))
    (folder / "features.tsv").write_text(
        "".join(f"ENSG{i}\tG{i}\tGene Expression\n" for i in range(3))
    )
    (folder / "barcodes.tsv").write_text("AAAC-1\nAAAG-1\n")
    read(folder)


READERS = {
    "bed": (".bed", read_bed),
    "fasta": (".fa", encode),
    "fastq": (".fq", encode),
    "vcf": (".vcf", vcf),
    "tsv": (".tsv", table),
    "mtx": (".mtx", tenx_folder),
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_random_edits_of_a_valid_input(kind):
    suffix, run = READERS[kind]

    @FUZZ
    @given(edits=EDITS, truncate=st.none() | st.floats(0, 1), gzipped=st.booleans())
    def check(edits, truncate, gzipped):
        content = edited(SEEDS[kind], edits, truncate)
        if gzipped:
            content = gzip.compress(content)
            if truncate is not None and edits:  # and a truncated gzip now and then
                content = content[: max(1, int(truncate * len(content)))]
        one_line_or_success(run, suffix + (".gz" if gzipped else ""), content)

    check()


@pytest.mark.parametrize("kind", sorted(READERS))
def test_random_bytes(kind):
    suffix, run = READERS[kind]

    @FUZZ
    @given(content=st.binary(max_size=400))
    def check(content):
        one_line_or_success(run, suffix, content)

    check()

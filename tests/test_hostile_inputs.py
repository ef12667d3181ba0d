"""Bad inputs through the command line: exit status 2, one line naming the file (and line,
record or position) and the fix, never a traceback, and nothing left in the output folder.

The reference checks have their own file (``test_reference_checks.py``); the dictionary
pickles are in ``test_sc_rank.py``."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gpu_genomics.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def fails(capsys, *args: str) -> str:
    """Run the command; assert exit 2 and one error line; return it."""
    with pytest.raises(SystemExit) as exit_status:
        main([*map(str, args), "--quiet"])
    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gpu-genomics: error:")]
    assert len(errors) == 1, err
    return errors[0]


def truncated_gzip(path: Path, text: str, keep: int) -> Path:
    path.write_bytes(gzip.compress(text.encode())[:keep])
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_a_truncated_gzip_table_is_not_an_interrupt(tmp_path, out, capsys):
    rows = "".join(f"G{i}\t{i}\t{2 * i}\n" for i in range(3000))
    table = truncated_gzip(tmp_path / "t.tsv.gz", "gene\ts1\ts2\n" + rows, 3000)
    message = fails(capsys, "bulk", table, "-o", out / "b.h5")
    assert "t.tsv.gz: cannot be read after line" in message and "truncated" in message
    assert list(out.iterdir()) == []


def test_a_truncated_gzip_bed_and_vcf(tmp_path, out, capsys):
    bed = truncated_gzip(
        tmp_path / "p.bed.gz",
        "".join(f"chr1\t{i * 10}\t{i * 10 + 50}\n" for i in range(3000)),
        2000,
    )
    (tmp_path / "meta.txt").write_text(f"{bed}\n")
    message = fails(
        capsys, "intervals", "-i", tmp_path / "meta.txt", "-f", DATA / "reference.fa.gz",
        "-o", out / "d.h5",
    )  # fmt: skip
    assert "p.bed.gz" in message and "truncated" in message
    vcf = tmp_path / "v.vcf.gz"
    vcf.write_bytes((DATA / "vcf" / "example.vcf.gz").read_bytes()[:2500])
    assert "truncated" in fails(capsys, "vcf", vcf, "-o", out / "g.h5")
    assert list(out.iterdir()) == []


def test_a_folder_in_the_metadata_is_named_as_a_folder(tmp_path, out, capsys):
    (tmp_path / "peaks").mkdir()
    (tmp_path / "meta.txt").write_text("peaks\n")
    message = fails(
        capsys, "intervals", "-i", tmp_path / "meta.txt", "-f", DATA / "reference.fa.gz",
        "-o", out / "d.h5",
    )  # fmt: skip
    assert "line 1: BED file" in message and "is a folder, not a BED file" in message


def test_an_unwritable_output_folder_is_named_before_any_work(out, capsys, monkeypatch):
    import os

    real_access = os.access

    def access(path, mode, *args, **kwargs):  # as for a user without write permission there
        if Path(path) == out and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    message = fails(capsys, "encode", DATA / "reference.fa.gz", "-o", out / "e.h5")
    assert f"{out / 'e.h5'}: the folder {out} is not writable" in message
    assert ".tmp" not in message


@pytest.mark.parametrize(
    ("record", "shown"), [("ACGT\u00e9", "'\u00e9' at position 4"), ("AC\udcffGT", "byte 0xff")]
)
def test_a_bad_letter_is_shown_as_the_user_typed_it(tmp_path, out, capsys, record, shown):
    fasta = tmp_path / "s.fa"
    fasta.write_bytes(b">r1\n" + record.encode("utf-8", "surrogateescape") + b"\n")
    message = fails(capsys, "encode", fasta, "-o", out / "e.h5")
    assert shown in message and "record 0 ('r1')" in message


def test_vcf_quiet_prints_nothing_on_success(out, capsys):
    main(["vcf", str(DATA / "vcf" / "example.vcf.gz"), "-o", str(out / "g.h5"), "--quiet",
          "--device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (out / "g.h5").exists()


# --- interrupts, locks and leftovers ------------------------------------------------------------


def big_fasta(path: Path, n_records: int = 60_000, length: int = 1000) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as handle:
        for i in range(n_records):
            handle.write(b">r%d\n" % i + letters[rng.integers(0, 4, length)].tobytes() + b"\n")
    return path


@pytest.mark.parametrize(("signum", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_signal_ends_the_run_cleanly(tmp_path, out, signum, status, suffix):
    import signal
    import subprocess
    import sys
    import time

    fasta = big_fasta(tmp_path / "big.fa")
    entry = "from gpu_genomics.cli import main; main()"
    command = [sys.executable, "-c", entry, "encode", str(fasta),
               "-o", str(out / f"e{suffix}"), "--device", "cpu", "--quiet"]  # fmt: skip
    for delay in (0.0, 0.4):  # as soon as it writes, and a little later
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        while not any(".tmp-" in p.name for p in out.iterdir()):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() - started < 60
            time.sleep(0.02)
        time.sleep(delay)
        process.send_signal(getattr(signal, signum))
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        if process.returncode == 0:  # it finished before the signal: a fast machine
            continue
        assert process.returncode == status, err
        assert f"interrupted ({signum}); no output was written" in err
        assert "Traceback" not in err
        assert list(out.iterdir()) == [], list(out.iterdir())


def test_a_second_run_on_the_same_output_fails_at_once(tmp_path, out):
    from gpu_genomics.errors import InputError
    from gpu_genomics.io.store import ArrayWriter

    target = out / "x.h5"
    with ArrayWriter(target) as first:
        first.write("a", [1, 2, 3])
        with pytest.raises(InputError, match=r"x.h5: is being written by another run \(PID \d+\)"):
            with ArrayWriter(target):
                pass
    assert sorted(p.name for p in out.iterdir()) == ["x.h5"]  # the lock is gone too


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path, out, caplog):
    import logging

    from gpu_genomics.io.store import ArrayWriter

    dead = 2**22 + 12345  # above the usual pid_max: no such process
    (out / f".x.h5.tmp-{dead}").write_bytes(b"half written")
    (out / f".x.h5.spool-{dead}-abc").mkdir()
    (out / f".y.h5.tmp-{dead}").write_bytes(b"another output's")  # not this output's: kept
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    with ArrayWriter(out / "x.h5") as writer:
        writer.write("a", [1])
    assert sorted(p.name for p in out.iterdir()) == [f".y.h5.tmp-{dead}", "x.h5"]
    assert "left by an earlier run that was killed" in caplog.text


# --- the rest of the reported cases -----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_encode_of_empty_records_and_length_0(tmp_path, out, capsys, suffix):
    empty = tmp_path / "empty.fa"
    empty.write_text(">r1\n\n>r2\n")
    assert "every record is empty" in fails(capsys, "encode", empty, "-o", out / f"e{suffix}")
    fasta = tmp_path / "ok.fa"
    fasta.write_text(">r1\nACGT\n")
    assert "--length 0" in fails(capsys, "encode", fasta, "-o", out / f"e{suffix}", "--length", "0")
    assert list(out.iterdir()) == []


def test_a_huge_k_is_refused_before_any_memory_is_taken(tmp_path, out, capsys):
    fasta = tmp_path / "ok.fa"
    fasta.write_text(">r1\nACGT\n")
    message = fails(capsys, "encode", fasta, "-o", out / "k.h5", "--encoding", "kmer-counts",
                    "-k", "40")  # fmt: skip
    assert "-k 40 is too large" in message


def test_a_suggested_command_is_shell_quoted(tmp_path, out, capsys):
    import shlex

    reference = tmp_path / "my ref; rm -rf x.fa.gz"
    reference.write_bytes(gzip.compress(b">chr1\nACGT\n"))  # plain gzip, not bgzip
    bed = tmp_path / "p.bed"
    bed.write_text("chr1\t0\t2\n")
    (tmp_path / "meta.txt").write_text(f"{bed}\n")
    message = fails(capsys, "intervals", "-i", tmp_path / "meta.txt", "-f", reference,
                    "-o", out / "d.h5")  # fmt: skip
    assert f"gunzip -c {shlex.quote(str(reference))} | bgzip" in message


@pytest.mark.parametrize("name", ["x.h5", "x.zarr"])
def test_a_store_being_written_says_it_is_incomplete(out, name):
    import h5py
    import zarr

    from gpu_genomics.io.store import INCOMPLETE_ATTR, ArrayWriter

    def attrs(path):
        if name.endswith(".zarr"):
            return dict(zarr.open_group(str(path), mode="r").attrs)
        with h5py.File(path, "r") as f:
            return dict(f.attrs)

    with ArrayWriter(out / name) as writer:
        writer.write("a", [1, 2])
        if name.endswith(".h5"):
            writer._root.flush()
        assert "incomplete" in str(attrs(writer.tmp_path)[INCOMPLETE_ATTR])
    assert INCOMPLETE_ATTR not in attrs(out / name)


def test_a_nul_byte_in_a_record_name_is_one_line(tmp_path, out, capsys):
    fasta = tmp_path / "nul.fa"
    fasta.write_bytes(b">r\x001\nACGT\n")
    assert "holds a NUL byte" in fails(capsys, "encode", fasta, "-o", out / "e.h5")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("0 1 5\n", r"entry 1 .* row 0, column 1, outside the 3 x 2"),  # once crashed scipy
        ("4 1 5\n", r"row 4, column 1, outside"),
        ("1 3 5\n", r"row 1, column 3, outside"),
        ("1 1 5\n1 2 1\n", r"2 entries, but the size line \(line 2\) says 1"),
        ("1 x 5\n", r"malformed entry"),
        # each crashed scipy's reader (found by tests/test_fuzz_inputs.py): something after
        # the last entry's fields and no newline
        ("1 1 5 ", r"the last line \('1 1 5'\) has more than its 3 fields or trailing blanks"),
        ("1 1 5\r", r"the last line .* and no newline"),
        ("1 1 5  9", r"the last line \('1 1 5  9'\) has more than its 3 fields"),
        # a malformed value scipy would read, or crash on without a newline
        ("1 1 5/x", r"malformed entry"),
        ("1 1 5/\n", r"malformed entry"),
    ],
)
def test_a_matrix_market_entry_outside_its_shape_is_refused(tmp_path, entries, message):
    pytest.importorskip("scanpy")
    from gpu_genomics.errors import InputError
    from gpu_genomics.expression.singlecell import read

    folder = tmp_path / "filtered_feature_bc_matrix"
    folder.mkdir()
    (folder / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n3 2 1\n" + entries
    )
    (folder / "features.tsv").write_text(
        "".join(f"E{i}\tG{i}\tGene Expression\n" for i in range(3))
    )
    (folder / "barcodes.tsv").write_text("A-1\nB-1\n")
    with pytest.raises(InputError, match=message) as info:
        read(folder)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("end", ["1 1 5", "1 1 5\n", "1 1 5 \n"])
def test_a_matrix_market_file_without_a_final_newline_is_read(tmp_path, end):
    pytest.importorskip("scanpy")
    from gpu_genomics.expression.singlecell import read

    folder = tmp_path / "filtered_feature_bc_matrix"
    folder.mkdir()
    (folder / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n3 2 1\n" + end
    )
    (folder / "genes.tsv").write_text("".join(f"E{i}\tG{i}\n" for i in range(3)))  # 10x v2
    (folder / "barcodes.tsv").write_text("A-1\nB-1\n")
    adata = read(folder)
    assert adata.shape == (2, 3) and adata.X.sum() == 5

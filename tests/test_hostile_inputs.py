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

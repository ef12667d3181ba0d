"""The reference is never read wrong silently: a stale or foreign ``.fai``, offsets past the end
of the file, bytes that are not IUPAC letters, windows outside a chromosome and a stale bgzip
index are one-line errors (exit 2 from the command), and nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pysam
import pytest

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.intervals.reference import Reference

RNG = np.random.default_rng(0)
CHROMS = {
    name: "".join(RNG.choice(list("ACGTacgtN"), n)) for name, n in (("chr1", 1000), ("chr2", 700))
}


def write_fasta(path: Path, sequences: dict[str, str], width: int = 60) -> Path:
    with open(path, "w") as handle:
        for name, bases in sequences.items():
            handle.write(f">{name}\n")
            handle.writelines(bases[i : i + width] + "\n" for i in range(0, len(bases), width))
    return path


@pytest.fixture
def fasta(tmp_path) -> Path:
    path = write_fasta(tmp_path / "ref.fa", CHROMS)
    pysam.faidx(str(path))
    return path


def one_line_error(path, match):
    with pytest.raises(InputError, match=match) as info:
        Reference(path).fetch("chr2")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_good_index_reads_the_bases(fasta):
    with Reference(fasta) as ref:
        assert ref.fetch("chr2").tobytes().decode() == CHROMS["chr2"]
        data, _ = ref.windows("chr1", np.array([0, 59, 940]), 60)
        assert (
            data.tobytes().decode()
            == CHROMS["chr1"][0:60] + CHROMS["chr1"][59:119] + (CHROMS["chr1"][940:1000])
        )


@pytest.mark.parametrize("width", [50, 61, 80])
def test_a_fasta_rewrapped_after_indexing_is_refused(fasta, width):
    write_fasta(fasta, CHROMS, width)  # the .fai still describes 60-base lines
    message = one_line_error(fasta, r"ref.fa.fai does not match the file \(record chr")
    assert "remove" in message and "rebuilt" in message


def test_an_index_of_a_longer_file_is_refused_without_reading_past_the_end(fasta, tmp_path):
    lines = fasta.with_name("ref.fa.fai").read_text().splitlines()
    name, length, offset, bases, width = lines[1].split("\t")
    lines[1] = "\t".join([name, length, str(int(offset) + 10**9), bases, width])
    fasta.with_name("ref.fa.fai").write_text("\n".join(lines) + "\n")
    one_line_error(fasta, r"record chr2: bases at bytes .* past the end of the file")


@pytest.mark.parametrize("byte", ["*", "7", "@", "-", "U"])
def test_a_byte_that_is_not_an_iupac_letter_is_an_error_naming_the_position(tmp_path, byte):
    bad = dict(CHROMS)
    bad["chr2"] = CHROMS["chr2"][:123] + byte + CHROMS["chr2"][124:]
    path = write_fasta(tmp_path / "ref.fa", bad)
    pysam.faidx(str(path))
    message = one_line_error(path, r"chr2:124 \(1-based\) holds")
    assert repr(byte) in message
    with Reference(path) as ref:  # windows around it fail too; windows elsewhere read fine
        with pytest.raises(InputError, match="chr2:124"):
            ref.windows("chr2", np.array([0, 100]), 50)
        assert len(ref.windows("chr2", np.array([200]), 50)[0]) == 50


def test_a_window_outside_its_chromosome_is_refused(fasta):
    with Reference(fasta) as ref, pytest.raises(InputError, match=r"chr2:690-710 lies outside"):
        ref.windows("chr2", np.array([0, 690]), 20)


def test_a_stale_bgzip_index_is_a_one_line_error(tmp_path):
    old = write_fasta(tmp_path / "old.fa", CHROMS)
    pysam.tabix_compress(str(old), str(tmp_path / "old.fa.gz"))
    pysam.faidx(str(tmp_path / "old.fa.gz"))
    longer = {name: bases * 3 for name, bases in CHROMS.items()}
    new = write_fasta(tmp_path / "new.fa", longer)
    pysam.tabix_compress(str(new), str(tmp_path / "new.fa.gz"))
    for suffix in (".fai", ".gzi"):
        shutil.copy(tmp_path / f"old.fa.gz{suffix}", tmp_path / f"new.fa.gz{suffix}")
    message = one_line_error(tmp_path / "new.fa.gz", r"new.fa.gz")
    assert "new.fa.gz.fai" in message and "new.fa.gz.gzi" in message


def test_the_job_and_the_command_stop_with_exit_2_and_write_nothing(fasta, tmp_path, capsys):
    from gpu_genomics.cli import main

    write_fasta(fasta, CHROMS, 50)  # stale index
    bed = tmp_path / "peaks.bed"
    bed.write_text("chr1\t100\t200\nchr2\t300\t400\n")
    metadata = tmp_path / "metadata.txt"
    metadata.write_text(f"cells\t{bed}\n")
    out = tmp_path / "out" / "d.h5"
    out.parent.mkdir()
    with pytest.raises(InputError, match="does not match the file"):
        gg.build_interval_dataset(metadata, fasta, out, length=50, device="cpu")
    with pytest.raises(SystemExit) as exit_status:
        main(["intervals", "-i", str(metadata), "-f", str(fasta), "-o", str(out), "--length", "50"])
    assert exit_status.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(error) == 1 and "does not match the file" in error[0]
    assert list(out.parent.iterdir()) == []

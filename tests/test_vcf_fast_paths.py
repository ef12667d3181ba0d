"""The record kernels' fast paths (one-digit diploid calls) against the general path and the
plain-Python reading of the VCF text: every neighbour of the common ``a|b`` field."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_vcf import naive_read

from gpu_genomics import InputError
from gpu_genomics.variants.reader import RecordParser, read_vcf

HEADER = (
    "##fileformat=VCFv4.3\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,"
    'Description="Genotype">\n##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}\n"
)
#: sample fields next to the fast path: one-digit calls with '/', '|', '.', another
#: sub-field after ':', multi-digit alleles, haploid and triploid calls, a lone '.'
FIELDS = ["0|1", "1/0", "./.", ".|1", "0/.", "1|1:7", "./.:3", "10|2", "2|10", "1", ".", "0/1/2",
          "0|1|1", "11/11", "3|0", "0|3:"]  # fmt: skip


def write_vcf(path, rows, *, formats=None):
    n = len(rows[0])
    text = HEADER.format(samples="\t".join(f"s{j}" for j in range(n)))
    for i, row in enumerate(rows):
        fmt = (formats or ["GT"] * len(rows))[i]
        alt = ",".join("ACGT"[k % 4] * (k // 4 + 1) for k in range(12))
        text += f"1\t{i + 1}\t.\tA\t{alt}\t.\tPASS\t.\t{fmt}\t" + "\t".join(row) + "\n"
    path.write_text(text)
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fields_around_the_fast_path_equal_the_definitions(tmp_path, seed):
    """Random rows of the fields above (the last sample at the line's end each time, so the
    fast path meets the end of the line, a tab and a ':'); GT first or second in FORMAT."""
    rng = np.random.default_rng(seed)
    rows = [list(rng.choice(FIELDS, size=9)) for _ in range(40)]
    rows.append(list(itertools.islice(itertools.cycle(FIELDS), 9)))
    formats = ["GT" if i % 3 else "GT:DP" for i in range(len(rows))]
    path = write_vcf(tmp_path / "f.vcf", rows, formats=formats)
    got, want = read_vcf(path), naive_read(path)
    np.testing.assert_array_equal(got["call_genotype"], want["call_genotype"])
    np.testing.assert_array_equal(got["call_genotype_phased"], want["call_genotype_phased"])
    swapped = [[f"5:{value}" for value in row] for row in rows]  # GT second: the skip first
    path = write_vcf(tmp_path / "g.vcf", swapped, formats=["DP:GT"] * len(rows))
    got, want = read_vcf(path), naive_read(path)
    np.testing.assert_array_equal(got["call_genotype"], want["call_genotype"])
    np.testing.assert_array_equal(got["call_genotype_phased"], want["call_genotype_phased"])


@pytest.mark.parametrize(
    ("rows", "ploidy"),
    [([["0|1", "1|0"]], 2), ([["0|1", "1"]], 2), ([["0|1", "0|1|0"]], 3), ([["1", "0"]], 1),
     ([["0|1", "10|1"]], 2), ([["0/1:5", "./."]], 2), ([["0|1", "0/1/2/3"]], 4)],
)  # fmt: skip
def test_scan_finds_the_ploidy_and_alleles(rows, ploidy):
    """The scan (pass 1 without filters) reads the ploidy the parse reads, fast path or not."""
    alt = ",".join("ACGT"[k % 4] * (k // 4 + 1) for k in range(12))
    text = "".join(
        f"1\t{i + 1}\t.\tA\t{alt}\t.\tPASS\t.\tGT\t" + "\t".join(row) + "\n"
        for i, row in enumerate(rows)
    ).encode()
    samples = [f"s{j}" for j in range(len(rows[0]))]
    scanner, parser = RecordParser("x", samples, ["1"]), RecordParser("x", samples, ["1"])
    n_alleles = scanner.scan(text)
    if ploidy == 1 or any(":" in value for row in rows for value in row):
        assert n_alleles is None or scanner.max_ploidy == ploidy
    else:
        assert n_alleles is not None and n_alleles.tolist() == [13] * len(rows)
        assert scanner.max_ploidy == ploidy
    parser.parse(text, 1, 0)
    assert parser.max_ploidy == ploidy


@pytest.mark.parametrize(
    ("value", "message"),
    [("0|4", "names an allele the record does not have"), ("0|x", "bad genotype"),
     ("0|1x", "bad genotype"), ("|1", "bad genotype"), ("0||1", "bad genotype")],
)  # fmt: skip
def test_a_bad_call_beside_the_fast_path_is_one_line_error(tmp_path, value, message):
    """Near misses of 'a|b' fall through to the general path, which names the call."""
    text = HEADER.format(samples="s0\ts1") + f"1\t1\t.\tA\tC,G,T\t.\tPASS\t.\tGT\t0|1\t{value}\n"
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_vcf(path)
    assert "\n" not in str(info.value) and "sample s1" in str(info.value)


#: whole records of these take the one-pass-per-record path (FORMAT GT, every call 3 bytes)
ROW_FAST = ["0|1", "1/0", "./.", ".|1", "0/.", "3|0", "9|9", ".|.", "0|0"]
#: a call that sends its record back to the general path, and still parses
ROW_NEAR_VALID = ["0|1:7", "10|2", "1", "0/1/2", ".", "1|1|1", "12/3"]
#: a call that sends its record back to the general path, which names it
ROW_NEAR_BAD = [(",|1", "bad genotype"), ("/|1", "bad genotype"), (":|1", "bad genotype"),
                ("0-1", "bad genotype"), ("0|a", "bad genotype"), ("0|", "bad genotype"),
                ("0|1|", "bad genotype")]  # fmt: skip


def _assert_read_as_defined(path):
    got, want = read_vcf(path), naive_read(path)
    np.testing.assert_array_equal(got["call_genotype"], want["call_genotype"])
    np.testing.assert_array_equal(got["call_genotype_phased"], want["call_genotype_phased"])


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize("seed", [0, 1])
def test_whole_records_of_one_digit_calls_equal_the_definitions(tmp_path, seed, line_end):
    """Records whose every call is one-digit diploid, and the same records with one call (first,
    middle or last) a neighbour that sends the record back to the general path."""
    rng = np.random.default_rng(seed)
    rows = [list(rng.choice(ROW_FAST, size=7)) for _ in range(30)]
    for value in ROW_NEAR_VALID:
        for at in (0, 3, 6):
            row = list(rng.choice(ROW_FAST, size=7))
            row[at] = value
            rows.append(row)
    path = write_vcf(tmp_path / "w.vcf", rows)
    if line_end != "\n":
        path.write_bytes(path.read_bytes().replace(b"\n", line_end.encode()))
    _assert_read_as_defined(path)
    single = write_vcf(tmp_path / "one.vcf", [["0|1"], ["./."], ["9/3"]])  # no separator
    _assert_read_as_defined(single)


@pytest.mark.parametrize(("value", "message"), ROW_NEAR_BAD)
@pytest.mark.parametrize("at", [0, 2])
def test_a_bad_call_in_a_record_of_one_digit_calls_is_one_line_error(tmp_path, value, message, at):
    calls = ["0|1", "1|0", "0|0"]
    calls[at] = value
    text = HEADER.format(samples="s0\ts1\ts2") + "1\t1\t.\tA\tC\t.\tPASS\t.\tGT\t"
    path = tmp_path / "bad.vcf"
    path.write_text(text + "\t".join(calls) + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_vcf(path)
    assert "\n" not in str(info.value) and f"sample s{at}" in str(info.value)


@pytest.mark.parametrize("value", ["0|2", "2/0", "9|0"])
def test_a_one_digit_allele_the_record_lacks_is_one_line_error(tmp_path, value):
    """With ALT C (two alleles) a call naming allele 2 or more is refused, whole row or not."""
    text = HEADER.format(samples="s0\ts1") + "1\t1\t.\tA\tC\t.\tPASS\t.\tGT\t0|1\t" + value
    path = tmp_path / "range.vcf"
    path.write_text(text + "\n")
    with pytest.raises(InputError, match="names an allele the record does not have") as info:
        read_vcf(path)
    assert "sample s1" in str(info.value)


@pytest.mark.parametrize("joined", ["0|1:0|1", "0|1 0|1", "0|1/0|1"])
def test_calls_not_cut_by_tabs_are_not_taken_for_two_samples(tmp_path, joined):
    """Two samples' worth of bytes in one field (the same length as ``a|b<TAB>c|d``): the
    record has too few columns, whatever the bytes between the calls."""
    text = HEADER.format(samples="s0\ts1") + "1\t1\t.\tA\tC\t.\tPASS\t.\tGT\t" + joined
    path = tmp_path / "joined.vcf"
    path.write_text(text + "\n")
    with pytest.raises(InputError) as info:
        read_vcf(path)
    assert "\n" not in str(info.value) and "line 6" in str(info.value)

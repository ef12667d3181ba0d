"""The ``variant-windows`` job: reference and alternate windows around VCF variants.

Hand-worked cases (an SNV at both window edges, an insertion longer than the flank, a deletion
crossing the window end and one past the contig end, an MNV, a multi-allelic site, the ``-``
strand, both edge rules), random variants against the plain-Python definition of
``naive_variants.py`` on both devices, every encoding, REF mismatches, the command line (exit
status 2, one line), atomic output and the same arrays whatever the tasks or the cluster."""

from __future__ import annotations

import random
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from naive_variants import variant_windows as naive_windows
from test_cli import error_of, job_module, record_job, run, same_arrays

import gpu_genomics as gg
from gpu_genomics.sequence.tokenizers import SPEC_VOCAB, kmer_vocabulary
from gpu_genomics.variants.windows import VARIANT_WINDOW_ARRAYS, variant_windows

#     0123456789012345
CHR_A = "ACGTTGCAAGGCTTAA"
HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=chrA,length=16>\n##contig=<ID=chrB>\n"
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)


def write_fasta(path: Path, contigs: dict[str, str], width: int = 7) -> Path:
    with open(path, "w") as handle:
        for name, seq in contigs.items():
            handle.write(f">{name}\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i : i + width] + "\n")
    return path


def write_vcf(path: Path, records: list[tuple], header: str = HEADER) -> Path:
    with open(path, "w") as handle:
        handle.write(header)
        for record in records:
            chrom, pos, ref, alt, *rest = record
            vid = rest[0] if rest else f"v{pos}"
            handle.write(f"{chrom}\t{pos}\t{vid}\t{ref}\t{alt}\t30\tPASS\t.\n")
    return path


def load(path: Path) -> dict:
    if Path(path).suffix == ".zarr":
        group = zarr.open_group(str(path), mode="r")
        return {k: group[k][...] for k in group.array_keys()}
    with h5py.File(path, "r") as handle:
        return {k: handle[k][...] for k in handle}


def decode(onehot: np.ndarray, alphabet: str = "ACGT") -> list[str]:
    """One-hot rows back to letters; an all-zero row is N."""
    out = []
    for row in onehot:
        out.append("".join(alphabet[int(np.argmax(r))] if r.any() else "N" for r in row))
    return out


def strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(values)]


@pytest.fixture
def reference(tmp_path) -> Path:
    return write_fasta(tmp_path / "ref.fa", {"chrA": CHR_A, "chrB": "acgtnACGTA"})


# --- hand-worked cases ---------------------------------------------------------------------
# (POS, REF, ALT, edge, strand) -> [(ref window, alt window, window start, offset)], length 6
HAND_WORKED = [
    # SNV at the first base: shifted to the contig start, the SNV at the window's left edge
    ((1, "A", "G", "shift", "+"), [("ACGTTG", "GCGTTG", 0, 0)]),
    ((1, "A", "G", "pad", "+"), [("NNNACG", "NNNGCG", -3, 3)]),
    # SNV at the last base: shifted to the contig end, the SNV at the window's right edge
    ((16, "A", "C", "shift", "+"), [("GCTTAA", "GCTTAC", 10, 5)]),
    ((16, "A", "C", "pad", "+"), [("TTAANN", "TTACNN", 12, 3)]),
    # insertion longer than the right flank: the ALT is cut at the window end
    ((8, "A", "ATTTTTT", "shift", "+"), [("TGCAAG", "TGCATT", 4, 3)]),
    # deletion crossing the window end: the right flank comes from past the window
    ((6, "GCAAGGC", "G", "shift", "+"), [("GTTGCA", "GTTGTT", 2, 3)]),
    # deletion reaching the contig end: N past it
    ((13, "TTAA", "T", "shift", "+"), [("GGCTTA", "GGCTNN", 9, 3)]),
    # MNV in place
    ((10, "GG", "TC", "shift", "+"), [("CAAGGC", "CAATCC", 6, 3)]),
    # multi-allelic: one row per ALT (an SNV and an insertion)
    ((4, "T", "C,TA", "shift", "+"), [("ACGTTG", "ACGCTG", 0, 3), ("ACGTTG", "ACGTAT", 0, 3)]),
    # minus strand: both windows reverse-complemented, coordinates of the + strand
    ((1, "A", "G", "shift", "-"), [("CAACGT", "CAACGC", 0, 0)]),
]


@pytest.mark.parametrize(("variant", "expected"), HAND_WORKED)
def test_hand_worked_windows(tmp_path, reference, device, variant, expected):
    pos, ref, alt, edge, strand = variant
    vcf = write_vcf(tmp_path / "v.vcf", [("chrA", pos, ref, alt)])
    summary = variant_windows(
        vcf, reference, tmp_path / "w.h5", length=6, edge=edge, strand=strand, device=device
    )
    arrays = load(tmp_path / "w.h5")
    assert summary["windows"] == len(expected) == len(arrays["ref_seqs"])
    assert decode(arrays["ref_seqs"]) == [e[0] for e in expected]
    assert decode(arrays["alt_seqs"]) == [e[1] for e in expected]
    assert arrays["window_start"].tolist() == [e[2] for e in expected]
    assert arrays["variant_offset"].tolist() == [e[3] for e in expected]
    alts = alt.split(",")
    assert strings(arrays["variant_allele"]) == [a for x in alts for a in (ref, x)]
    assert arrays["alt_index"].tolist() == list(range(1, len(alts) + 1))
    assert strings(arrays["window_name"]) == [f"chrA:{pos}:{ref}>{x}" for x in alts]
    assert arrays["variant_position"].tolist() == [pos] * len(alts)
    assert arrays["alt_truncated"].tolist() == [
        e[3] + len(x) > 6 for e, x in zip(expected, alts, strict=True)
    ]
    for e in expected:  # the plain-Python definition agrees with the hand-worked windows
        assert (
            naive_windows(
                CHR_A, pos, ref, alt.split(",")[expected.index(e)], 6, edge=edge, strand=strand
            )
            == e[:3]
        )


def test_contig_shorter_than_the_window_and_soft_masked_bases(tmp_path, reference):
    # chrB is 10 bases, lower case in part; REF is compared ignoring case
    vcf = write_vcf(tmp_path / "v.vcf", [("chrB", 2, "C", "T"), ("chrB", 5, "N", "A")])
    variant_windows(vcf, reference, tmp_path / "w.h5", length=12, device="cpu", encoding="tokens")
    arrays = load(tmp_path / "w.h5")
    ids = {v: k for k, v in SPEC_VOCAB.items()}
    rows = ["".join(ids[t] for t in row) for row in arrays["ref_input_ids"].tolist()]
    assert rows == ["ACGTNACGTANN"] * 2
    alts = ["".join(ids[t] for t in row) for row in arrays["alt_input_ids"].tolist()]
    assert alts == ["ATGTNACGTANN", "ACGTAACGTANN"]
    assert arrays["ref_attention_mask"].all()


# --- random variants against the definition --------------------------------------------------
def random_case(rng: random.Random, n_variants: int) -> tuple[dict[str, str], list[tuple]]:
    contigs = {
        f"c{i}": "".join(
            rng.choice("ACGTacgtN" if i else "ACGT") for _ in range(rng.randint(5, 90))
        )
        for i in range(3)
    }
    records = []
    for _ in range(n_variants):
        name = rng.choice(list(contigs))
        seq = contigs[name]
        p = rng.randrange(len(seq))
        m = rng.randint(1, min(12, len(seq) - p))
        ref = seq[p : p + m].upper()
        alts = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.random()
            if kind < 0.3:
                alt = "".join(rng.choice("ACGT") for _ in range(m))
            elif kind < 0.6:
                alt = ref[0] + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 15)))
            else:
                alt = ref[: rng.randint(1, m)]
            alts.append(alt if alt != ref else ref + "A")
        records.append((name, p + 1, ref, ",".join(alts)))
    records.sort(key=lambda r: (r[0], r[1]))
    return contigs, records


@pytest.mark.parametrize("seed", range(3))
def test_random_variants_against_the_definition(tmp_path, device, seed):
    rng = random.Random(seed)
    contigs, records = random_case(rng, 60)
    reference = write_fasta(tmp_path / "r.fa", contigs, width=rng.randint(3, 11))
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf = write_vcf(tmp_path / "v.vcf", records, header)
    for length in (1, 7, 32):
        for edge in ("shift", "pad"):
            strand = rng.choice("+-")
            out = tmp_path / f"w{length}{edge}.h5"
            variant_windows(
                vcf,
                reference,
                out,
                length=length,
                edge=edge,
                strand=strand,
                device=device,
                task_records=rng.randint(1, 25),
            )
            arrays = load(out)
            expected = [
                naive_windows(contigs[c], pos, ref, alt, length, edge=edge, strand=strand)
                for c, pos, ref, alts in records
                for alt in alts.split(",")
            ]
            assert decode(arrays["ref_seqs"]) == [e[0].upper() for e in expected]
            assert decode(arrays["alt_seqs"]) == [e[1].upper() for e in expected]
            assert arrays["window_start"].tolist() == [e[2] for e in expected]


def test_every_encoding_equals_the_encoders_on_the_windows(tmp_path, device, host):
    rng = random.Random(7)
    contigs, records = random_case(rng, 20)
    reference = write_fasta(tmp_path / "r.fa", contigs)
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf = write_vcf(tmp_path / "v.vcf", records, header)
    expected = [
        naive_windows(contigs[c], pos, ref, alt, 24)
        for c, pos, ref, alts in records
        for alt in alts.split(",")
    ]
    cases = [
        (
            {"encoding": "onehot", "alphabet": "ACTG", "dtype": "float16", "n_value": 0.25},
            lambda s: gg.one_hot(
                s, 24, alphabet="ACTG", dtype="float16", n_value=0.25, device="cpu"
            ),
        ),
        (
            {"encoding": "tokens", "scheme": "hyenadna"},
            lambda s: gg.tokenize(s, 24, scheme="hyenadna", device="cpu"),
        ),
        (
            {"encoding": "kmer-tokens", "scheme": "dnabert", "k": 3, "uppercase": True},
            lambda s: gg.kmer_tokenize(s, 3, scheme="dnabert", uppercase=True, device="cpu"),
        ),
        (
            {"encoding": "kmer-tokens", "scheme": "nucleotide-transformer", "max_len": 30},
            lambda s: gg.kmer_tokenize(
                s, 6, scheme="nucleotide-transformer", max_len=30, device="cpu"
            ),
        ),
    ]
    for k, (options, encoder) in enumerate(cases):
        out = tmp_path / f"e{k}.zarr"
        variant_windows(vcf, reference, out, length=24, device=device, **options)
        arrays = load(out)
        for allele, column in (("ref", 0), ("alt", 1)):
            want = encoder([e[column] for e in expected])
            if options["encoding"] == "onehot":
                np.testing.assert_array_equal(arrays[f"{allele}_seqs"], host(want))
                assert arrays[f"{allele}_seqs"].dtype == np.float16
            else:
                np.testing.assert_array_equal(arrays[f"{allele}_input_ids"], host(want[0]))
                np.testing.assert_array_equal(arrays[f"{allele}_attention_mask"], host(want[1]))
    assert len(kmer_vocabulary(3, scheme="dnabert")) > 64  # the ids above are DNABERT's


# --- what is skipped, what is an error -------------------------------------------------------
def test_symbolic_and_missing_alts_are_counted_and_skipped(tmp_path, reference):
    records = [
        ("chrA", 3, "G", "<DEL>"),
        ("chrA", 4, "T", "*,C"),
        ("chrA", 5, "T", "."),
        ("chrA", 6, "G", "G]chrB:3]"),
        ("chrA", 7, "C", "A"),
    ]
    vcf = write_vcf(tmp_path / "v.vcf", records)
    summary = variant_windows(vcf, reference, tmp_path / "w.h5", length=4, device="cpu")
    assert (summary["symbolic_alt"], summary["no_alt"], summary["windows"]) == (3, 1, 2)
    arrays = load(tmp_path / "w.h5")
    assert strings(arrays["window_name"]) == ["chrA:4:T>C", "chrA:7:C>A"]
    assert arrays["variant_index"].tolist() == [1, 4]


def test_ref_mismatch_is_an_error_naming_the_record_or_counted_and_skipped(
    tmp_path, reference, capsys
):
    records = [("chrA", 1, "A", "G"), ("chrA", 2, "G", "T"), ("chrA", 9, "AG", "A,T")]
    vcf = write_vcf(tmp_path / "v.vcf", records)
    out = tmp_path / "w.h5"
    line = error_of(
        capsys, "variant-windows", vcf, "-f", reference, "-o", out, "-l", "4", "--quiet"
    )
    assert f"{vcf}: line 6 (chrA:2): REF 'G' does not match the reference" in line
    assert "'C' at chrA:2" in line and "--ref-mismatch skip" in line
    assert not out.exists()
    summary = variant_windows(vcf, reference, out, length=4, ref_mismatch="skip", device="cpu")
    assert (summary["ref_mismatch"], summary["windows"]) == (1, 3)
    assert strings(load(out)["window_name"]) == ["chrA:1:A>G", "chrA:9:AG>A", "chrA:9:AG>T"]


def test_ref_past_the_window_is_checked_too(tmp_path, reference):
    # REF's last base (chrA:12, C) lies beyond a 4-base window; a wrong one is caught
    vcf = write_vcf(tmp_path / "v.vcf", [("chrA", 6, "GCAAGGG", "G")])
    with pytest.raises(gg.InputError, match=r"REF 'GCAAGGG' does not match .*'GCAAGGC'"):
        variant_windows(vcf, reference, tmp_path / "w.h5", length=4, device="cpu")
    assert not (tmp_path / "w.h5").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (("chrZ", 1, "A", "G"), "contig chrZ is not in the reference"),
        (("chrA", 15, "AAA", "A"), "REF 'AAA' runs past the end of chrA (16 bases)"),
        (("chrA", 1, "A", "G1"), "ALT 'G1' is not made of IUPAC letters"),
        (("chrA", 1, "A?", "G"), "REF 'A?' is not made of IUPAC letters"),
    ],
)
def test_bad_records_are_one_line_exit_2_and_nothing_written(
    tmp_path, reference, capsys, record, message
):
    good = [("chrA", 2, "C", "G")] * 3
    vcf = write_vcf(tmp_path / "v.vcf", [*good, record])
    out = tmp_path / "w.zarr"
    # one record per task: the good tasks' rows are written before the bad one fails
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        out,
        "-l",
        "4",
        "--task-records",
        "1",
        "--quiet",
    )
    assert message in line and f"{vcf}: line 8 ({record[0]}:{record[1]})" in line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".w.zarr")] == []


def test_unknown_contigs_can_be_skipped(tmp_path, reference):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrZ", 1, "A", "G"), ("chrA", 2, "C", "G")])
    summary = variant_windows(
        vcf, reference, tmp_path / "w.h5", length=4, device="cpu", skip_unknown_contigs=True
    )
    assert (summary["unknown_contig"], summary["windows"]) == (1, 1)
    arrays = load(tmp_path / "w.h5")
    assert strings(arrays["contig_id"]) == ["chrA", "chrB", "chrZ"]
    assert arrays["variant_contig"].tolist() == [0]


def test_empty_vcf_writes_empty_arrays(tmp_path, reference):
    vcf = write_vcf(tmp_path / "v.vcf", [])
    summary = variant_windows(vcf, reference, tmp_path / "w.zarr", length=5, device="cpu")
    arrays = load(tmp_path / "w.zarr")
    assert summary["windows"] == 0
    assert arrays["ref_seqs"].shape == (0, 5, 4) and arrays["variant_allele"].shape == (0, 2)
    assert set(arrays) == set(VARIANT_WINDOW_ARRAYS.names()) - {
        f"{a}_{x}" for a in ("ref", "alt") for x in ("input_ids", "attention_mask")
    }


# --- outputs: declared, deterministic, the same whatever the tasks or the cluster ------------
def test_outputs_are_declared_and_the_same_for_any_tasks_and_formats(tmp_path):
    rng = random.Random(3)
    contigs, records = random_case(rng, 40)
    reference = write_fasta(tmp_path / "r.fa", contigs)
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf = write_vcf(tmp_path / "v.vcf", records, header)
    runs = []
    for k, (suffix, tasks, chunk) in enumerate(
        [(".h5", None, 1000), (".zarr", 1, 7), (".h5", 13, 3)]
    ):
        out = tmp_path / f"o{k}{suffix}"
        variant_windows(
            vcf, reference, out, length=9, task_records=tasks, chunk_windows=chunk, device="cpu"
        )
        runs.append(load(out))
        assert VARIANT_WINDOW_ARRAYS.undeclared(list(runs[-1])) == []
    for other in runs[1:]:
        same_arrays(runs[0], other)


def test_on_a_dask_cluster_the_same_arrays(tmp_path):
    pytest.importorskip("distributed")
    rng = random.Random(4)
    contigs, records = random_case(rng, 30)
    reference = write_fasta(tmp_path / "r.fa", contigs)
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf = write_vcf(tmp_path / "v.vcf", records, header)
    variant_windows(vcf, reference, tmp_path / "a.zarr", length=11, device="cpu")
    with gg.execution.cluster(workers=2) as client:
        variant_windows(
            vcf,
            reference,
            tmp_path / "b.zarr",
            length=11,
            device="cpu",
            client=client,
            task_records=4,
        )
    same_arrays(load(tmp_path / "a.zarr"), load(tmp_path / "b.zarr"))


def test_bgzip_vcf_and_reference_and_a_region(tmp_path):
    pysam = pytest.importorskip("pysam")
    rng = random.Random(5)
    contigs, records = random_case(rng, 30)
    plain = write_fasta(tmp_path / "r.fa", contigs)
    pysam.tabix_compress(str(plain), str(tmp_path / "r.fa.gz"))
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    vcf = write_vcf(tmp_path / "v.vcf", records, header)
    copy = write_vcf(tmp_path / "copy.vcf", records, header)
    indexed = pysam.tabix_index(str(copy), preset="vcf", force=True)
    variant_windows(vcf, plain, tmp_path / "a.h5", length=15, device="cpu")
    variant_windows(indexed, tmp_path / "r.fa.gz", tmp_path / "b.h5", length=15, device="cpu")
    same_arrays(load(tmp_path / "a.h5"), load(tmp_path / "b.h5"))
    variant_windows(indexed, plain, tmp_path / "c.h5", length=15, region="c1", device="cpu")
    names = strings(load(tmp_path / "c.h5")["window_name"])
    assert names and all(n.startswith("c1:") for n in names)
    assert names == [
        n for n in strings(load(tmp_path / "a.h5")["window_name"]) if n.startswith("c1:")
    ]


# --- the command line ------------------------------------------------------------------------
def test_cli_options_reach_the_job(tmp_path, reference, monkeypatch, capsys):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrA", 4, "T", "C,TA")])
    calls = record_job(monkeypatch, job_module("variant_windows"), "variant_windows")
    run(
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        tmp_path / "c.zarr",
        "--length",
        "6",
        "--encoding",
        "tokens",
        "--scheme",
        "hyenadna",
        "--uppercase",
        "--edge",
        "pad",
        "--strand",
        "-",
        "--ref-mismatch",
        "skip",
        "--skip-unknown-contigs",
        "--chunk-windows",
        "5",
        "--task-records",
        "2",
        "--format",
        "zarr",
        "--compression",
        "gzip",
        "--device",
        "cpu",
    )
    assert "windows: 2 from 1 records" in capsys.readouterr().out
    (call,) = calls
    expected = {
        "length": 6,
        "encoding": "tokens",
        "scheme": "hyenadna",
        "uppercase": True,
        "edge": "pad",
        "strand": "-",
        "ref_mismatch": "skip",
        "skip_unknown_contigs": True,
        "chunk_windows": 5,
        "task_records": 2,
        "output_format": "zarr",
        "compression": "gzip",
        "device": "cpu",
    }
    assert {k: call[k] for k in expected} == expected
    variant_windows(
        vcf,
        reference,
        tmp_path / "l.zarr",
        device="cpu",
        **{k: v for k, v in expected.items() if k != "device"},
    )
    same_arrays(load(tmp_path / "c.zarr"), load(tmp_path / "l.zarr"))


def test_cli_bad_option_names_the_flag(tmp_path, reference, capsys):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrA", 4, "T", "C")])
    line = error_of(
        capsys, "variant-windows", vcf, "-f", reference, "-o", tmp_path / "o.h5", "--length", "0"
    )
    assert "--length 0 must be a positive integer" in line
    line = error_of(
        capsys, "variant-windows", vcf, "-f", tmp_path / "none.fa", "-o", tmp_path / "o.h5"
    )
    assert "reference FASTA not found" in line

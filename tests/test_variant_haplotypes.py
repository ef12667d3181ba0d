"""Personal haplotypes (``variant-windows --haplotypes``): each sample's two haplotypes over BED
regions, against hand-worked cases, the plain-Python definition of ``naive_variants.py`` on
both devices, and ``bcftools consensus`` (skipped when bcftools is not installed)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from naive_variants import haplotype as naive_haplotype
from naive_variants import reverse_complement
from test_cli import error_of, run
from test_variant_windows import decode, load, strings, write_fasta

import gpu_genomics as gg
from gpu_genomics.variants.haplotypes import HAPLOTYPE_ARRAYS, haplotype_windows

pysam = pytest.importorskip("pysam")

#     0123456789012345
CHR_A = "ACGTTGCAAGGCTTAA"


def write_phased_vcf(
    path: Path, contigs: dict[str, str], samples: list[str], records: list[tuple]
) -> Path:
    """A bgzip VCF with its .tbi: records are (chrom, pos, ref, alts, [gt per sample])."""
    header = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">']
    header += [f"##contig=<ID={c},length={len(s)}>" for c, s in contigs.items()]
    header.append(
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
        )
    )
    lines = [
        "\t".join([c, str(pos), ".", ref, alts, "30", "PASS", ".", "GT", *gts])
        for c, pos, ref, alts, gts in records
    ]
    text = path.with_suffix("")
    text.write_text("\n".join(header + lines) + "\n")
    return Path(pysam.tabix_index(str(text), preset="vcf", force=True))


def write_bed(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


# --- hand-worked cases -------------------------------------------------------------------------
def test_hand_worked_haplotypes(tmp_path, device):
    reference = write_fasta(tmp_path / "r.fa", {"chrA": CHR_A})
    records = [
        ("chrA", 3, "G", "T", ["0|1", "1|0"]),  # SNV
        ("chrA", 5, "T", "TCCCCCCCC", ["1|0", "0|0"]),  # insertion longer than the flank
        ("chrA", 6, "G", "A", ["1|1", "1|1"]),  # overlaps nothing: applied on both
        ("chrA", 9, "AGGC", "A", ["0|1", "0|0"]),  # deletion
        ("chrA", 10, "G", "C,T", ["0|1", "2|0"]),  # multi-allelic, inside the deletion above
    ]
    vcf = write_phased_vcf(tmp_path / "v.vcf", {"chrA": CHR_A}, ["s1", "s2"], records)
    bed = write_bed(
        tmp_path / "r.bed", [("chrA", 2, 10, ".", 0, "+"), ("chrA", 2, 10, ".", 0, "-")]
    )
    summary = haplotype_windows(vcf, reference, bed, tmp_path / "h.h5", device=device)
    arrays = load(tmp_path / "h.h5")
    assert arrays["hap_seqs"].shape == (2, 2, 2, 8, 4)
    got = [[decode(arrays["hap_seqs"][r, s]) for s in range(2)] for r in range(2)]
    # s1 hap 1: G>T? no (0); ins at 5 applied; G6A; deletion no; G10C no (allele 0)
    #   reference from 2: G T [T CCCCCCCC] ... -> "GTTCCCCC"
    # s1 hap 2: G3T; G6A; deletion AGGC>A at 9 (pos 8..11); G10 inside it: skipped (overlap)
    #   G(2)->T, T(3), T(4), G(5)->A, C(6), A(7), A(8) [GGC deleted], T(12) -> "TTTACAAT"
    # s2 hap 1: G3T; G6A; G10T (allele 2) -> T T T A C A A T(9) -> "TTTACAAT"
    # s2 hap 2: G6A -> "GTTACAAG"
    expected = [["GTTCCCCC", "TTTACAAT"], ["TTTACAAT", "GTTACAAG"]]
    assert got[0] == expected
    assert got[1] == [[reverse_complement(h) for h in sample] for sample in expected]
    assert arrays["hap_variants"][0].tolist() == [[1, 3], [3, 1]]
    assert arrays["region_start"].tolist() == [2, 2]
    assert arrays["region_minus"].tolist() == [False, True]
    assert strings(arrays["region_name"]) == ["chrA:2-10(+)", "chrA:2-10(-)"]
    assert strings(arrays["sample_id"]) == ["s1", "s2"]
    assert summary["variants_applied"] == 2 * (1 + 3 + 3 + 1)
    assert HAPLOTYPE_ARRAYS.undeclared(list(arrays)) == []
    # the plain-Python definition agrees with the hand-worked haplotypes
    for s in range(2):
        for h in range(2):
            alleles = [int(r[4][s].split("|")[h]) for r in records]
            window, count = naive_haplotype(
                CHR_A, [(r[1], r[2], r[3].split(",")) for r in records], alleles, 2, 8
            )
            assert (window, count) == (expected[s][h], arrays["hap_variants"][0, s, h])


def test_region_starting_inside_a_deletion_and_contig_ends(tmp_path):
    reference = write_fasta(tmp_path / "r.fa", {"chrA": CHR_A})
    records = [("chrA", 5, "TGCA", "T", ["1|0"]), ("chrA", 14, "TAA", "T", ["1|1"])]
    vcf = write_phased_vcf(tmp_path / "v.vcf", {"chrA": CHR_A}, ["s"], records)
    # window from 6 (inside the deleted GCA): starts after it; the last one passes the end
    bed = write_bed(tmp_path / "r.bed", [("chrA", 6, 11), ("chrA", 12, 17)])
    haplotype_windows(vcf, reference, bed, tmp_path / "h.h5", length=5, edge="pad", device="cpu")
    arrays = load(tmp_path / "h.h5")
    # centre 8 - 2 = 6: hap 1 "AGGCT" (A at 8 onwards), hap 2 reference "CAAGG"
    assert decode(arrays["hap_seqs"][0, 0]) == ["AGGCT", "CAAGG"]
    # centre 14 - 2 = 12: T(12) T(13) then AA deleted: "TTNNN" on both
    assert decode(arrays["hap_seqs"][1, 0]) == ["TTNNN", "TTNNN"]
    haplotype_windows(vcf, reference, bed, tmp_path / "s.h5", length=5, device="cpu")
    assert load(tmp_path / "s.h5")["region_start"].tolist() == [6, 11]


def test_unphased_and_missing_calls(tmp_path, capsys):
    reference = write_fasta(tmp_path / "r.fa", {"chrA": CHR_A})
    records = [("chrA", 3, "G", "T", ["0/1", "1/1", "1|.", "1"])]
    vcf = write_phased_vcf(tmp_path / "v.vcf", {"chrA": CHR_A}, ["a", "b", "c", "d"], records)
    bed = write_bed(tmp_path / "r.bed", [("chrA", 1, 5)])
    out = tmp_path / "h.h5"
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        out,
        "--haplotypes",
        bed,
        "--samples",
        "a",
        "--missing",
        "reference",
        "--quiet",
    )
    assert "record chrA:3: sample a: unphased heterozygous call" in line
    assert "--unphased reference" in line and not out.exists()
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        out,
        "--haplotypes",
        bed,
        "--samples",
        "c,b",
        "--quiet",
    )
    assert "sample c: the call has a missing allele" in line and "--missing reference" in line
    run(
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        out,
        "--haplotypes",
        bed,
        "--unphased",
        "reference",
        "--missing",
        "reference",
        "--quiet",
    )
    got = [decode(h) for h in load(out)["hap_seqs"][0]]
    # a: unphased het -> REF; b: unphased hom ALT applied; c: missing -> REF; d: haploid on both
    assert got == [["CGTT", "CGTT"], ["CTTT", "CTTT"], ["CTTT", "CGTT"], ["CTTT", "CTTT"]]


def test_options_that_do_not_apply_are_refused(tmp_path, capsys):
    reference = write_fasta(tmp_path / "r.fa", {"chrA": CHR_A})
    vcf = write_phased_vcf(
        tmp_path / "v.vcf", {"chrA": CHR_A}, ["s"], [("chrA", 3, "G", "T", ["0|1"])]
    )
    bed = write_bed(tmp_path / "r.bed", [("chrA", 1, 5)])
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        tmp_path / "o.h5",
        "--haplotypes",
        bed,
        "--strand",
        "-",
    )
    assert "--strand applies only without --haplotypes" in line
    line = error_of(
        capsys, "variant-windows", vcf, "-f", reference, "-o", tmp_path / "o.h5", "--samples", "s"
    )
    assert "--samples applies only with --haplotypes" in line
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        tmp_path / "o.h5",
        "--haplotypes",
        bed,
        "--samples",
        "x",
    )
    assert "samples not in the VCF: x" in line
    bad = write_bed(tmp_path / "bad.bed", [("chrA", 1, 5), ("chrA", 1, 7)])
    line = error_of(
        capsys,
        "variant-windows",
        vcf,
        "-f",
        reference,
        "-o",
        tmp_path / "o.h5",
        "--haplotypes",
        bad,
    )
    assert "row 2: the regions have different lengths" in line and "--length" in line
    plain = tmp_path / "plain.vcf"
    plain.write_text(
        '##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description="">'
        "\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts\n"
    )
    line = error_of(
        capsys,
        "variant-windows",
        plain,
        "-f",
        reference,
        "-o",
        tmp_path / "o.h5",
        "--haplotypes",
        bed,
    )
    assert "cannot query it by region" in line and "tabix" in line


# --- random cases: the definition, both devices, tasks and formats ----------------------------
def random_phased(rng: random.Random, n_samples: int, *, overlaps: bool = True):
    contigs = {
        f"c{i}": "".join(rng.choice("ACGTacgt") for _ in range(rng.randint(40, 160)))
        for i in range(2)
    }
    records = []
    for name, seq in contigs.items():
        p = rng.randint(0, 4)
        while p < len(seq) - 1:
            m = rng.randint(1, min(6, len(seq) - p))
            ref = seq[p : p + m].upper()
            alts = []
            for _ in range(rng.randint(1, 2)):
                kind = rng.random()
                if kind < 0.4:
                    alt = "".join(rng.choice("ACGT") for _ in range(m))
                elif kind < 0.7:
                    alt = ref[0] + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 9)))
                else:
                    alt = ref[: rng.randint(1, m)]
                alts.append(alt if alt != ref and alt not in alts else None)
            alts = [a for a in alts if a]
            if alts:
                gts = [
                    "|".join(str(rng.choice([0, 0, *range(1, len(alts) + 1)])) for _ in range(2))
                    for _ in range(n_samples)
                ]
                records.append((name, p + 1, ref, ",".join(alts), gts))
            p += (rng.randint(1, m + 2) if overlaps else m + 1) + rng.randint(0, 8)
    return contigs, records


def expected_haplotypes(contigs, records, regions, *, samples, length, edge="shift"):
    out = []
    for chrom, start, end, *rest in regions:
        minus = bool(rest) and rest[-1] == "-"
        seq = contigs[chrom]
        a = start + (end - start) // 2 - length // 2
        if edge == "shift":
            a = min(max(a, 0), max(len(seq) - length, 0))
        mine = [r for r in records if r[0] == chrom and r[1] - 1 + len(r[2]) > a]
        row = []
        for s in range(samples):
            pair = []
            for h in range(2):
                alleles = [int(r[4][s].split("|")[h]) for r in mine]
                window, count = naive_haplotype(
                    seq, [(r[1], r[2], r[3].split(",")) for r in mine], alleles, a, length
                )
                pair.append((reverse_complement(window) if minus else window, count))
            row.append(pair)
        out.append(row)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_random_haplotypes_against_the_definition(tmp_path, device, seed):
    rng = random.Random(seed)
    contigs, records = random_phased(rng, 3)
    reference = write_fasta(tmp_path / "r.fa", contigs, width=rng.randint(5, 13))
    vcf = write_phased_vcf(tmp_path / "v.vcf", contigs, ["x", "y", "z"], records)
    regions = []
    for _ in range(12):
        chrom = rng.choice(list(contigs))
        start = rng.randrange(-5, len(contigs[chrom]))
        regions.append(
            (chrom, max(start, 0), max(start, 0) + rng.randint(1, 30), ".", 0, rng.choice("+-"))
        )
    bed = write_bed(tmp_path / "r.bed", regions)
    for length, edge in ((17, "shift"), (29, "pad")):
        out = tmp_path / f"h{length}.zarr"
        haplotype_windows(
            vcf,
            reference,
            bed,
            out,
            length=length,
            edge=edge,
            device=device,
            chunk_samples=2,
            chunk_regions=5,
        )
        arrays = load(out)
        want = expected_haplotypes(contigs, records, regions, samples=3, length=length, edge=edge)
        got_seqs = [
            [decode(arrays["hap_seqs"][r, s]) for s in range(3)] for r in range(len(regions))
        ]
        assert got_seqs == [[[w.upper() for w, _ in pair] for pair in row] for row in want]
        assert arrays["hap_variants"].tolist() == [
            [[c for _, c in pair] for pair in row] for row in want
        ]


def test_tokens_tasks_and_cluster_give_the_same_arrays(tmp_path):
    pytest.importorskip("distributed")
    rng = random.Random(11)
    contigs, records = random_phased(rng, 4)
    reference = write_fasta(tmp_path / "r.fa", contigs)
    vcf = write_phased_vcf(tmp_path / "v.vcf", contigs, list("abcd"), records)
    bed = write_bed(tmp_path / "r.bed", [("c0", 5, 25), ("c1", 30, 50), ("c0", 0, 20)])
    a = tmp_path / "a.h5"
    haplotype_windows(vcf, reference, bed, a, encoding="tokens", samples=["d", "b"], device="cpu")
    with gg.execution.cluster(workers=2) as client:
        haplotype_windows(
            vcf,
            reference,
            bed,
            tmp_path / "b.zarr",
            encoding="tokens",
            samples="d,b",
            chunk_samples=1,
            chunk_regions=1,
            client=client,
            device="cpu",
        )
    first, second = load(a), load(tmp_path / "b.zarr")
    assert first.keys() == second.keys()
    for key in first:
        assert (
            strings(first[key]) == strings(second[key])
            if first[key].dtype.kind in "OSU"
            else np.array_equal(first[key], second[key])
        ), key
    assert first["hap_input_ids"].shape == (3, 2, 2, 20)


# --- against bcftools consensus ------------------------------------------------------------------
def chain_position(chain: str, contig: str, position: int) -> int | None:
    """The consensus position of reference ``position`` in a ``bcftools consensus -c`` chain,
    None when it falls in a gap (a deleted base)."""
    lines = iter(chain.splitlines())
    for line in lines:
        fields = line.split()
        if not fields or fields[0] != "chain" or fields[2] != contig:
            continue
        t, q = int(fields[5]), int(fields[10])
        for block in lines:
            parts = [int(x) for x in block.split()]
            if not parts:
                break
            size = parts[0]
            if t <= position < t + size:
                return q + position - t
            t += size
            q += size
            if len(parts) == 3:
                if t <= position < t + parts[1]:
                    return None
                t, q = t + parts[1], q + parts[2]
        return None
    return position


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
@pytest.mark.parametrize("seed", range(2))
def test_against_bcftools_consensus(tmp_path, seed):
    rng = random.Random(100 + seed)
    contigs, records = random_phased(rng, 2, overlaps=True)
    reference = write_fasta(tmp_path / "r.fa", contigs)
    vcf = write_phased_vcf(tmp_path / "v.vcf", contigs, ["s0", "s1"], records)
    length = 24
    regions = [(c, a, a + length) for c in contigs for a in range(0, len(contigs[c]) - length, 3)]
    bed = write_bed(tmp_path / "r.bed", regions)
    out = tmp_path / "h.h5"
    haplotype_windows(vcf, reference, bed, out, device="cpu")
    arrays = load(out)
    compared = 0
    for s, sample in enumerate(["s0", "s1"]):
        for h in (1, 2):
            chain = tmp_path / f"{sample}{h}.chain"
            fasta = subprocess.run(
                [
                    "bcftools",
                    "consensus",
                    "-f",
                    str(reference),
                    "-s",
                    sample,
                    "-H",
                    str(h),
                    "-c",
                    str(chain),
                    str(vcf),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            consensus = {}
            for block in fasta.split(">")[1:]:
                name, *rows = block.splitlines()
                consensus[name.split()[0]] = "".join(rows)
            chain_text = chain.read_text()
            for r, (chrom, a, _) in enumerate(regions):
                # compare where the region starts on a base no record's REF covers
                covered = any(
                    rec[0] == chrom and rec[1] - 1 <= a < rec[1] - 1 + len(rec[2])
                    for rec in records
                )
                q = chain_position(chain_text, chrom, a)
                if covered or q is None:
                    continue
                theirs = consensus[chrom][q : q + length].upper().ljust(length, "N")
                ours = decode(arrays["hap_seqs"][r, s, h - 1 : h])[0]
                assert ours == theirs, (sample, h, chrom, a)
                compared += 1
    assert compared > 20

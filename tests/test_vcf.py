"""Reading VCF/BCF: against scikit-allel, cyvcf2 and a plain-Python reading of the VCF text."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpu_genomics import InputError
from gpu_genomics.variants.reader import VcfReader, read_vcf

DATA = Path(__file__).parent / "data" / "vcf"
TRICKY = DATA / "tricky.vcf"


def allel_data_dir() -> Path | None:
    allel = pytest.importorskip("allel")
    folder = Path(os.path.dirname(allel.__file__)) / "test" / "data"
    return folder if folder.is_dir() else None


def naive_gt(value: str, gt_index: int) -> tuple[list[int], str]:
    """One sample's column: its GT alleles (-1 for '.') and the GT text ('.' when absent)."""
    parts = value.split(":")
    text = parts[gt_index] if gt_index < len(parts) else "."
    return [-1 if a == "." else int(a) for a in text.replace("|", "/").split("/")], text


def naive_read(path: Path) -> dict:
    """The VCF read line by line in plain Python: the definitions, not our parser."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    samples = next(line for line in lines if line.startswith("#CHROM")).split("\t")[9:]
    records = [line.split("\t") for line in lines if not line.startswith("#")]
    calls = []
    for rec in records:
        gt_index = rec[8].split(":").index("GT")
        row = []
        for value in rec[9:]:
            alleles, text = naive_gt(value, gt_index)
            phased = "/" not in text  # a call of one allele is phased (htslib, bio2zarr)
            row.append((alleles, phased))
        calls.append(row)
    ploidy = max((len(a) for row in calls for a, _ in row), default=1)
    gt = np.full((len(records), len(samples), ploidy), -2, dtype=np.int8)
    phased = np.zeros((len(records), len(samples)), dtype=bool)
    for i, row in enumerate(calls):
        for j, (alleles, is_phased) in enumerate(row):
            gt[i, j, : len(alleles)] = alleles
            phased[i, j] = is_phased
    contigs: list[str] = []
    for rec in records:
        if rec[0] not in contigs:
            contigs.append(rec[0])
    return {
        "call_genotype": gt,
        "call_genotype_phased": phased,
        "variant_contig": np.array([contigs.index(r[0]) for r in records]),
        "contig_names": [contigs[contigs.index(r[0])] for r in records],
        "variant_position": np.array([int(r[1]) for r in records]),
        "variant_id": [r[2] for r in records],
        "variant_allele": [[r[3]] + ([] if r[4] == "." else r[4].split(",")) for r in records],
        "variant_quality": np.array([np.nan if r[5] == "." else float(r[5]) for r in records]),
        "variant_filter_pass": np.array([r[6] == "PASS" for r in records]),
        "sample_id": samples,
    }


def assert_matches_naive(got: dict, path: Path) -> None:
    want = naive_read(path)
    np.testing.assert_array_equal(got["call_genotype"], want["call_genotype"])
    np.testing.assert_array_equal(got["call_genotype_phased"], want["call_genotype_phased"])
    names = [got["contig_id"][i] for i in got["variant_contig"]]
    assert names == want["contig_names"]
    np.testing.assert_array_equal(got["variant_position"], want["variant_position"])
    assert got["variant_id"].tolist() == want["variant_id"]
    alleles = [[a for a in row if a] for row in got["variant_allele"].tolist()]
    assert alleles == want["variant_allele"]
    np.testing.assert_allclose(got["variant_quality"], want["variant_quality"], rtol=1e-6)
    np.testing.assert_array_equal(got["variant_filter_pass"], want["variant_filter_pass"])
    assert got["sample_id"].tolist() == want["sample_id"]


def test_tricky_matches_plain_python():
    assert_matches_naive(read_vcf(TRICKY), TRICKY)


def test_tricky_chunked_matches_whole():
    whole = read_vcf(TRICKY)
    for chunk_variants in (1, 3, 7):
        parts = read_vcf(TRICKY, chunk_variants=chunk_variants)
        for key, value in whole.items():
            np.testing.assert_array_equal(parts[key], value, err_msg=key)


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1000])
@pytest.mark.parametrize("chunk_variants", [1, 3, 1000])
def test_block_boundaries_do_not_matter(monkeypatch, block_bytes, chunk_variants):
    """Records cut anywhere by the text blocks, chunks smaller or larger than a block."""
    from gpu_genomics.variants import reader as vcf

    whole = read_vcf(TRICKY)
    monkeypatch.setattr(vcf, "BLOCK_BYTES", block_bytes)
    parts = read_vcf(TRICKY, chunk_variants=chunk_variants)
    for key, value in whole.items():
        np.testing.assert_array_equal(parts[key], value, err_msg=key)


def test_tricky_matches_allel():
    allel = pytest.importorskip("allel")
    got = read_vcf(TRICKY)
    max_alts = got["variant_allele"].shape[1] - 1
    ref = allel.read_vcf(
        str(TRICKY),
        fields=["calldata/GT", "variants/POS", "variants/REF", "variants/ALT", "samples"],
        alt_number=max_alts,
        numbers={"calldata/GT": got["call_genotype"].shape[2]},
    )
    gt = got["call_genotype"].copy()
    gt[gt == -2] = -1  # allel has no fill value
    np.testing.assert_array_equal(gt, ref["calldata/GT"])
    np.testing.assert_array_equal(got["variant_position"], ref["variants/POS"])
    np.testing.assert_array_equal(got["variant_allele"][:, 0], ref["variants/REF"])
    np.testing.assert_array_equal(got["variant_allele"][:, 1:], ref["variants/ALT"])


ALLEL_FILES = [
    "sample.vcf",
    "sample.vcf.gz",
    "test1.vcf",
    "test4.vcf",
    "test14.vcf",
    "test16.vcf",
    "test32.vcf",
    "test176.vcf",
    "altlen.vcf",
    "test54.vcf.gz",
]


@pytest.mark.parametrize("name", ALLEL_FILES)
def test_allel_bundled_vcfs(name):
    allel = pytest.importorskip("allel")
    folder = allel_data_dir()
    if folder is None or not (folder / name).exists():
        pytest.skip("scikit-allel's test data is not installed")
    path = folder / name
    got = read_vcf(path)
    ref = allel.read_vcf(
        str(path),
        fields=["calldata/GT", "variants/POS", "variants/QUAL", "variants/FILTER_PASS", "samples"],
        alt_number=max(1, got["variant_allele"].shape[1] - 1),
    )
    gt = got["call_genotype"].copy()
    gt[gt == -2] = -1
    np.testing.assert_array_equal(gt, ref["calldata/GT"][:, :, : gt.shape[2]])
    np.testing.assert_array_equal(got["variant_position"], ref["variants/POS"])
    np.testing.assert_array_equal(got["variant_filter_pass"], ref["variants/FILTER_PASS"])
    np.testing.assert_allclose(got["variant_quality"], ref["variants/QUAL"], rtol=1e-6)
    assert got["sample_id"].tolist() == list(ref["samples"])
    if path.suffix == ".vcf":
        assert_matches_naive(got, path)


def simulate_vcf(path: Path, n_samples: int = 30, seed: int = 3, missing: float = 0.05) -> Path:
    """An msprime VCF with ``missing`` of its calls turned into ``./.`` or ``0/.``."""
    msprime = pytest.importorskip("msprime")
    ts = msprime.sim_ancestry(
        samples=n_samples,
        ploidy=2,
        sequence_length=200_000,
        recombination_rate=1e-8,
        population_size=10_000,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=2e-8, random_seed=seed)
    plain = path.with_suffix(".tmp")
    with open(plain, "w") as handle:
        ts.write_vcf(handle)
    rng = np.random.default_rng(seed)
    out = []
    for line in plain.read_text().splitlines():
        if line.startswith("#"):
            out.append(line)
            continue
        fields = line.split("\t")
        for j in range(9, len(fields)):
            roll = rng.random()
            if roll < missing / 2:
                fields[j] = "./."
            elif roll < missing:
                fields[j] = fields[j][0] + "/."
        out.append("\t".join(fields))
    path.write_text("\n".join(out) + "\n")
    plain.unlink()
    return path


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    return simulate_vcf(tmp_path_factory.mktemp("sim") / "sim.vcf")


def test_simulated_matches_allel_and_cyvcf2(simulated):
    allel = pytest.importorskip("allel")
    got = read_vcf(simulated, chunk_variants=50)
    assert_matches_naive(got, simulated)
    ref = allel.read_vcf(str(simulated), fields=["calldata/GT"], alt_number=3)
    np.testing.assert_array_equal(got["call_genotype"], ref["calldata/GT"])
    cyvcf2 = pytest.importorskip("cyvcf2")
    rows = [v.genotype.array()[:, :2] for v in cyvcf2.VCF(str(simulated))]
    np.testing.assert_array_equal(got["call_genotype"], np.array(rows))


def test_gzip_bgzip_bcf_same_as_plain(tmp_path):
    pysam = pytest.importorskip("pysam")
    want = read_vcf(TRICKY)
    gz = tmp_path / "tricky.vcf.gz"
    with open(TRICKY, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    bgz = tmp_path / "tricky.bgz.vcf.gz"
    pysam.tabix_compress(str(TRICKY), str(bgz))
    bcf = tmp_path / "tricky.bcf"
    declared = tmp_path / "declared.vcf"  # BCF needs every contig in the header
    text = TRICKY.read_text()
    declared.write_text(text.replace("##FILTER", "##contig=<ID=chr3>\n##FILTER", 1))
    with pysam.VariantFile(str(declared)) as src:
        with pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
            for rec in src:
                dst.write(rec)
    for path in (gz, bgz, bcf):
        got = read_vcf(path, chunk_variants=4)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{path.name} {key}")


def test_region_query(tmp_path):
    pysam = pytest.importorskip("pysam")
    target = tmp_path / "tricky.vcf"
    shutil.copy(TRICKY, target)
    indexed = Path(pysam.tabix_index(str(target), preset="vcf", force=True))
    whole = read_vcf(indexed)
    got = read_vcf(indexed, region="chr1:150-350")
    chr1 = whole["contig_id"][whole["variant_contig"]] == "chr1"
    inside = chr1 & (whole["variant_position"] >= 150) & (whole["variant_position"] <= 350)
    ploidy = got["call_genotype"].shape[2]  # the most alleles of a call in the region
    np.testing.assert_array_equal(got["call_genotype"], whole["call_genotype"][inside, :, :ploidy])
    assert (whole["call_genotype"][inside, :, ploidy:] == -2).all()
    np.testing.assert_array_equal(got["variant_position"], whole["variant_position"][inside])
    got = read_vcf(indexed, region="chr2")
    assert (got["contig_id"][got["variant_contig"]] == "chr2").all()
    assert len(got["variant_position"]) == 3


HEADER = (
    "##fileformat=VCFv4.2\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", r"line 4 \(1:5\): too few"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\t0/0\n", r"line 4 \(1:5\): more columns"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/x\n", r"line 4 \(1:5\): sample B: bad genotype"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t\n", r"line 4 \(1:5\): sample B: bad genotype"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/2\n", r"line 4 \(1:5\): sample B: genotype '0/2'"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tDP\t3\t4\n", r"line 4 \(1:5\): FORMAT has no GT"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n1\tx\t.\tA\tG\t.\t.\t.\tGT\t0\t1\n", r"line 5"),
        ("1\t5\t.\tA\tG\tlow\t.\t.\tGT\t0/1\t1/1\n", r"line 4: QUAL 'low'"),
    ],
)
def test_bad_records(tmp_path, body, pattern):
    path = tmp_path / "bad.vcf"
    path.write_text(HEADER + body)
    with pytest.raises(InputError, match=pattern) as info:
        read_vcf(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_headers(tmp_path):
    cases = {
        "noheader.vcf": ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", "line 1: not a VCF header"),
        "nochrom.vcf": ("##fileformat=VCFv4.2\n1\t5\t.\tA\tG\t.\t.\t.\tGT\t0\n", "line 2"),
        "dup.vcf": (HEADER.replace("\tB\n", "\tA\n"), "duplicate sample names A"),
        "nogt.vcf": (HEADER.replace("ID=GT", "ID=DP"), "no GT field"),
        "empty.vcf": ("", "not a VCF header"),
        # found by tests/test_fuzz_inputs.py: a NUL in a sample name failed in h5py's writer
        "nul.vcf": (
            HEADER.replace("\tB\n", "\tB\x00\n"),
            r"line \d+, column \d+: the header "
            "holds a NUL byte",
        ),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InputError, match=pattern):
            read_vcf(path)
    with pytest.raises(InputError, match="no such file"):
        read_vcf(tmp_path / "missing.vcf")


def test_region_without_index(tmp_path):
    path = tmp_path / "x.vcf"
    shutil.copy(TRICKY, path)
    with pytest.raises(InputError, match=r"needs an index .*tabix -p vcf"):
        read_vcf(path, region="chr1:1-1000")


def test_reader_streams_chunks():
    reader = VcfReader(TRICKY, chunk_variants=4)
    sizes = [len(chunk) for chunk in reader]
    assert sizes == [4, 4, 2]
    assert reader.max_ploidy == 3
    assert reader.contigs == ["chr1", "chr2", "chr3"]


def test_non_utf8_text_is_one_line(tmp_path):
    path = tmp_path / "latin1.vcf"
    path.write_bytes(
        HEADER.encode() + "1\t5\tr\xe9s\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n".encode("latin-1")
    )
    with pytest.raises(InputError, match=r"line 4.*not UTF-8") as info:
        read_vcf(path)
    assert "\n" not in str(info.value)

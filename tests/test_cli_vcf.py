"""``gpu-genomics vcf``: output arrays, filters, multi-allelic modes, errors (no output left)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_vcf import naive_gt

from gpu_genomics.cli import main

DATA = Path(__file__).parent / "data" / "vcf"
TRICKY = DATA / "tricky.vcf"


def run(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(path: Path) -> dict:
    if path.suffix == ".zarr":
        import zarr

        group = zarr.open_group(str(path), mode="r")
        arrays = {name: np.asarray(array[...]) for name, array in group.arrays()}
        attrs = dict(group.attrs)
    else:
        with h5py.File(path) as handle:
            arrays = {name: handle[name][...] for name in handle}
            attrs = {k: handle.attrs[k] for k in handle.attrs}
            attrs = {k: json.loads(v) if k in ("parameters", "summary") else v
                     for k, v in attrs.items()}  # fmt: skip
    for name, value in arrays.items():
        if value.dtype == object:
            arrays[name] = value.astype(str) if not isinstance(value.flat[0], bytes) else (
                np.char.decode(value.astype(bytes))
            )  # fmt: skip
    return {"arrays": arrays, "attrs": attrs}


def naive_calls(path: Path):
    """Per record: list of per-sample allele lists (fill dropped), and the allele count."""
    records = [
        line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line[0] != "#"
    ]
    out = []
    for rec in records:
        gt_index = rec[8].split(":").index("GT")
        calls = [naive_gt(value, gt_index)[0] for value in rec[9:]]
        n_alleles = 1 if rec[4] == "." else len(rec[4].split(",")) + 1
        out.append((calls, n_alleles))
    return out


def naive_column(calls, allele):
    """Dosage and allele frequency of one column: count of ``allele`` (None: any non-REF)."""
    hit = (lambda a: a > 0) if allele is None else (lambda a: a == allele)
    dosage = [-1 if any(a < 0 for a in c) else sum(hit(a) for a in c) for c in calls]
    called = [a for c in calls for a in c if a >= 0]
    af = sum(hit(a) for a in called) / len(called) if called else math.nan
    call_rate = sum(d >= 0 for d in dosage) / len(calls)
    return dosage, af, call_rate


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_vcf_nonref_no_filters(tmp_path, capsys, suffix):
    out = tmp_path / f"out{suffix}"
    code, stdout, err = run(["vcf", str(TRICKY), "-o", str(out), "--device", "cpu"], capsys)
    assert code == 0, err
    assert "variants: 10 kept of 10 read" in stdout and "MAF spectrum" in stdout
    got = load(out)
    arrays = got["arrays"]
    records = naive_calls(TRICKY)
    assert arrays["dosage"].shape == (5, 10) and arrays["dosage"].dtype == np.int8
    assert arrays["call_genotype"].shape == (10, 5, 3)
    for i, (calls, _) in enumerate(records):
        dosage, af, call_rate = naive_column(calls, None)
        assert arrays["dosage"][:, i].tolist() == dosage
        assert arrays["dosage_allele_frequency"][i] == pytest.approx(af, nan_ok=True)
        assert arrays["dosage_maf"][i] == pytest.approx(min(af, 1 - af), nan_ok=True)
        assert arrays["variant_call_rate"][i] == pytest.approx(call_rate)
    missing = np.array([[any(a < 0 for a in c) for c in calls] for calls, _ in records])
    np.testing.assert_allclose(arrays["sample_missing_rate"], missing.mean(axis=0))
    assert arrays["sample_id"].tolist() == ["S1", "S2", "S3", "S4", "S5"]
    assert arrays["variant_allele"].shape == (10, 12)
    assert arrays["variant_allele"][1].tolist()[:6] == ["C", "T", "G", "A", "CT", "GA"]
    assert got["attrs"]["parameters"]["multiallelic"] == "nonref"
    assert got["attrs"]["version"]
    assert "vcf" in got["attrs"]["command"]


def test_vcf_split_filters_standardize(tmp_path, capsys):
    out = tmp_path / "out.h5"
    args = ["vcf", str(TRICKY), "-o", str(out), "--multiallelic", "split", "--min-maf", "0.1"]
    args += ["--max-missing", "0.2", "--standardize", "--chunk-variants", "3"]
    code, _stdout, err = run(args, capsys)
    assert code == 0, err
    arrays = load(out)["arrays"]
    want = []  # (record, allele, dosage, af) of the columns that pass
    for i, (calls, n_alleles) in enumerate(naive_calls(TRICKY)):
        for k in range(1, n_alleles):
            dosage, af, call_rate = naive_column(calls, k)
            if min(af, 1 - af) >= 0.1 and 1 - call_rate <= 0.2:
                want.append((i, k, dosage, af))
    kept_records = sorted({i for i, *_ in want})
    assert arrays["variant_index"].tolist() == kept_records
    columns = [(kept_records.index(i), k) for i, k, *_ in want]
    got_columns = list(
        zip(arrays["dosage_variant"].tolist(), arrays["dosage_allele"].tolist(), strict=True)
    )
    assert got_columns == columns
    assert arrays["dosage"].T.tolist() == [d for *_, d, _ in want]
    np.testing.assert_allclose(arrays["dosage_allele_frequency"], [af for *_, af in want])
    # standardized: all kept columns are polymorphic here; a call of ploidy k is centred on
    # k p and scaled by sqrt(k p (1 - p)) (haploid calls beside diploid ones)
    std = arrays["dosage_standardized"]
    assert arrays["dosage_standardized_column"].tolist() == list(range(len(want)))
    records = naive_calls(TRICKY)
    for c, (i, _, dosage, af) in enumerate(want):
        ploidy = np.array([len(call) for call in records[i][0]])
        x = np.array(dosage, dtype=float)
        expected = np.where(x < 0, 0.0, (x - ploidy * af) / np.sqrt(ploidy * af * (1 - af)))
        np.testing.assert_allclose(std[:, c], expected, rtol=1e-5, atol=1e-6)


def test_vcf_biallelic_only(tmp_path, capsys):
    out = tmp_path / "out.zarr"
    code, _, err = run(["vcf", str(TRICKY), "-o", str(out), "--biallelic-only"], capsys)
    assert code == 0, err
    arrays = load(out)["arrays"]
    want = [i for i, (_, n) in enumerate(naive_calls(TRICKY)) if n == 2]
    assert arrays["variant_index"].tolist() == want
    assert arrays["call_genotype"].shape[0] == len(want)


def test_vcf_region_and_bgzip(tmp_path, capsys):
    pysam = pytest.importorskip("pysam")
    target = tmp_path / "tricky.vcf"
    shutil.copy(TRICKY, target)
    indexed = pysam.tabix_index(str(target), preset="vcf", force=True)
    out = tmp_path / "region.h5"
    code, stdout, err = run(["vcf", indexed, "-o", str(out), "--region", "chr2"], capsys)
    assert code == 0, err
    arrays = load(out)["arrays"]
    assert arrays["variant_position"].tolist() == [150, 250, 300]
    assert "variants: 3 kept of 3 read" in stdout


BAD_HEADER = (
    "##fileformat=VCFv4.2\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
)


@pytest.mark.parametrize(
    ("text", "extra", "pattern"),
    [
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", [], "line 4"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/y\n", [], "bad genotype"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tDP\t1\t2\n", [], "no GT"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", [], "not a VCF header"),
        (BAD_HEADER.replace("\tB\n", "\tA\n"), [], "duplicate sample"),
        (BAD_HEADER, [], "no variant records"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n", ["--region", "1:1-9"], "index"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n", ["--min-maf", "0.7"], "min-maf"),
    ],
)
def test_vcf_errors_leave_no_output(tmp_path, capsys, text, extra, pattern):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    out = tmp_path / "out.h5"
    code, _stdout, err = run(["vcf", str(path), "-o", str(out), *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("gpu-genomics: error: ") and pattern in lines[-1]
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.vcf"]


def test_zarr_output_opens_in_xarray_with_vcf_zarr_dimensions(tmp_path, capsys):
    """sgkit's load_dataset is xarray.open_zarr: the arrays carry VCF Zarr dimension names."""
    xr = pytest.importorskip("xarray")
    out = tmp_path / "out.zarr"
    code, _, err = run(
        ["vcf", str(TRICKY), "-o", str(out), "--device", "cpu", "--standardize"], capsys
    )
    assert code == 0, err
    ds = xr.open_zarr(out, concat_characters=False, consolidated=True)
    assert ds["call_genotype"].dims == ("variants", "samples", "ploidy")
    assert ds["call_genotype_phased"].dims == ("variants", "samples")
    assert ds["variant_allele"].dims == ("variants", "alleles")
    for name in ("variant_contig", "variant_position", "variant_id", "variant_quality"):
        assert ds[name].dims == ("variants",)
    assert ds["sample_id"].dims == ("samples",) and ds["contig_id"].dims == ("contigs",)
    assert ds["dosage"].dims == ("samples", "dosage_columns")
    assert ds["dosage_standardized"].dims == ("samples", "standardized_columns")
    assert ds.sizes["samples"] == 5 and ds.sizes["variants"] == 10
    np.testing.assert_array_equal(ds["call_genotype"].values, load(out)["arrays"]["call_genotype"])


def test_split_keeps_the_same_variants_as_nonref(tmp_path, capsys):
    """A site without ALT ('.') has no split column but stays a variant, as in nonref mode."""
    kept = {}
    for mode in ("nonref", "split"):
        out = tmp_path / f"{mode}.h5"
        code, _, err = run(["vcf", str(TRICKY), "-o", str(out), "--multiallelic", mode], capsys)
        assert code == 0, err
        kept[mode] = load(out)["arrays"]
    assert kept["split"]["variant_index"].tolist() == list(range(10))
    for name in ("variant_index", "variant_position", "call_genotype", "variant_call_rate"):
        np.testing.assert_array_equal(kept["split"][name], kept["nonref"][name])
    assert 2 not in kept["split"]["dosage_variant"].tolist()  # ALT '.': no split column

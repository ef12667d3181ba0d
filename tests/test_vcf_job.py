"""The ``vcf`` job (:func:`gpu_genomics.convert_vcf`) called as a library: output arrays against
a line-by-line reading of the VCF, filters, multi-allelic modes, chunk sizes, the returned QC
summary, errors naming the Python parameters (no output left), provenance."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_encode_job import check_provenance, parse_attr
from test_vcf import naive_gt

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.io.provenance import PROVENANCE_KEYS
from gpu_genomics.variants import partitions
from gpu_genomics.variants.convert import CHUNK_SAMPLES, CHUNK_VARIANTS, VcfOptions, format_summary
from gpu_genomics.variants.reader import DEFAULT_CHUNK_VARIANTS

DATA = Path(__file__).parent / "data" / "vcf"
TRICKY = DATA / "tricky.vcf"
EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "vcf" / "example.vcf.gz"


def convert(input_path, output_path, *args, **options) -> dict:
    """``convert_vcf`` on the CPU, returning its summary."""
    return gg.convert_vcf(input_path, output_path, *args, device="cpu", **options)


def load(path: Path) -> dict:
    if path.is_dir():
        import zarr

        group = zarr.open_group(str(path), mode="r")
        arrays = {name: np.asarray(array[...]) for name, array in group.arrays()}
        attrs = dict(group.attrs)
    else:
        with h5py.File(path) as handle:
            arrays = {name: handle[name][...] for name in handle}
            attrs = {k: parse_attr(v) for k, v in handle.attrs.items()}
    for name, value in arrays.items():
        if value.dtype == object:
            as_bytes = value.size and isinstance(value.flat[0], bytes)
            arrays[name] = np.char.decode(value.astype(bytes)) if as_bytes else value.astype(str)
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


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_vcf_nonref_no_filters(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    summary = convert(TRICKY, out)
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
    assert arrays["dosage_allele"].tolist() == [-1] * 10
    assert got["attrs"]["parameters"]["multiallelic"] == "nonref"
    assert got["attrs"]["gpu_genomics_version"] == gg.__version__
    # the summary: returned, stored, and what the CLI prints
    seconds = summary.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert {k: v for k, v in got["attrs"]["summary"].items() if k != "seconds"} == summary
    assert summary["variants_read"] == summary["variants_kept"] == 10
    assert summary["dosage_columns"] == 10 and summary["samples"] == 5
    assert summary["ploidy"] == 3 and "standardized_columns" not in summary
    assert summary["missing_rate"] == pytest.approx(missing.mean())
    assert sum(count for _, count in summary["maf_spectrum"]) == 10
    text = format_summary(summary | {"seconds": seconds})
    assert "variants: 10 kept of 10 read" in text and "MAF spectrum" in text
    assert listing(tmp_path) == [out.name]


def test_vcf_split_filters_standardize(tmp_path):
    out = tmp_path / "out.h5"
    summary = convert(TRICKY, out, multiallelic="split", min_maf=0.1, max_missing=0.2,
                      standardize=True, chunk_variants=3)  # fmt: skip
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
    assert summary["variants_read"] == 10 and summary["variants_kept"] == len(kept_records)
    assert summary["dosage_columns"] == len(want) == summary["standardized_columns"]
    assert "standardized columns" in format_summary(summary)


def test_vcf_biallelic_only(tmp_path):
    out = tmp_path / "out.zarr"
    summary = convert(TRICKY, out, biallelic_only=True)
    arrays = load(out)["arrays"]
    want = [i for i, (_, n) in enumerate(naive_calls(TRICKY)) if n == 2]
    assert arrays["variant_index"].tolist() == want
    assert arrays["call_genotype"].shape[0] == len(want)
    assert summary["variants_kept"] == len(want) and summary["variants_read"] == 10


def test_options_object_and_overrides(tmp_path):
    """An options object gives the same output as its fields as keywords; keywords win."""
    options = VcfOptions(min_maf=0.1, multiallelic="split", chunk_variants=4)
    convert(TRICKY, tmp_path / "a.h5", options)
    convert(TRICKY, tmp_path / "b.h5", min_maf=0.1, multiallelic="split", chunk_variants=4)
    convert(TRICKY, tmp_path / "c.h5", options, multiallelic="nonref")
    a, b, c = (load(tmp_path / f"{x}.h5") for x in "abc")
    assert a["arrays"].keys() == b["arrays"].keys()
    for key in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][key], b["arrays"][key], err_msg=key)
    assert a["attrs"]["parameters"] == b["attrs"]["parameters"]
    assert c["attrs"]["parameters"] == a["attrs"]["parameters"] | {"multiallelic": "nonref"}
    assert c["arrays"]["dosage_allele"].tolist() == [-1] * len(c["arrays"]["dosage_allele"])
    assert options.multiallelic == "split"  # the caller's object is not changed


@pytest.mark.parametrize("multiallelic", ["nonref", "split"])
def test_chunk_size_does_not_change_the_arrays(tmp_path, multiallelic):
    outputs = []
    for chunk in (1, 3, DEFAULT_CHUNK_VARIANTS):
        out = tmp_path / f"c{chunk}.h5"
        convert(TRICKY, out, chunk_variants=chunk, multiallelic=multiallelic, standardize=True)
        outputs.append(load(out)["arrays"])
    for other in outputs[1:]:
        assert other.keys() == outputs[0].keys()
        for key in outputs[0]:
            np.testing.assert_array_equal(other[key], outputs[0][key], err_msg=key)


def test_same_input_same_output_and_formats_agree(tmp_path):
    for name in ("a.h5", "b.h5", "c.zarr"):
        convert(EXAMPLE, tmp_path / name, min_maf=0.05, chunk_variants=2000)
    a, b, c = (load(tmp_path / name)["arrays"] for name in ("a.h5", "b.h5", "c.zarr"))
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        np.testing.assert_array_equal(a[key], c[key], err_msg=key)


def test_compression_and_named_format(tmp_path):
    out = tmp_path / "genotypes.store"
    convert(TRICKY, out, output_format="zarr", compression="gzip")
    got = load(out)
    assert (out / "zarr.json").exists() and got["arrays"]["dosage"].shape == (5, 10)
    assert got["attrs"]["parameters"]["output_format"] == "zarr"
    convert(TRICKY, tmp_path / "g.h5", compression="gzip")
    with h5py.File(tmp_path / "g.h5") as f:
        assert f["call_genotype"].compression == "gzip"


def test_vcf_region_and_bgzip(tmp_path):
    pysam = pytest.importorskip("pysam")
    target = tmp_path / "tricky.vcf"
    shutil.copy(TRICKY, target)
    indexed = pysam.tabix_index(str(target), preset="vcf", force=True)
    out = tmp_path / "region.h5"
    summary = convert(indexed, out, region="chr2")
    got = load(out)
    assert got["arrays"]["variant_position"].tolist() == [150, 250, 300]
    assert summary["variants_read"] == summary["variants_kept"] == 3
    assert got["attrs"]["parameters"]["region"] == "chr2"
    summary = convert(indexed, tmp_path / "r2.h5", region="chr2:200-260")
    assert load(tmp_path / "r2.h5")["arrays"]["variant_position"].tolist() == [250]
    with pytest.raises(InputError, match="no variant records in region chr3:1-5"):
        convert(indexed, tmp_path / "r3.h5", region="chr3:1-5")
    assert not (tmp_path / "r3.h5").exists()


BAD_HEADER = (
    "##fileformat=VCFv4.2\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
)
GOOD_RECORD = "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n"


@pytest.mark.parametrize(
    ("text", "options", "pattern"),
    [
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", {}, "line 4"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/y\n", {}, "bad genotype"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tDP\t1\t2\n", {}, "no GT"),
        ("1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", {}, "not a VCF header"),
        (BAD_HEADER.replace("\tB\n", "\tA\n"), {}, "duplicate sample"),
        (BAD_HEADER, {}, "no variant records"),
        (BAD_HEADER.replace("\tFORMAT\tA\tB", ""), {}, "no sample columns"),
        (BAD_HEADER + GOOD_RECORD, {"region": "1:1-9"}, "region='1:1-9' needs an index"),
        (BAD_HEADER + GOOD_RECORD, {"min_maf": 0.7}, "min_maf=0.7 must lie between 0 and 0.5"),
        (BAD_HEADER + GOOD_RECORD, {"min_maf": -1}, "min_maf=-1 must lie between 0 and 0.5"),
        (BAD_HEADER + GOOD_RECORD, {"max_missing": 2}, "max_missing=2 must lie between 0 and 1"),
        (BAD_HEADER + GOOD_RECORD, {"multiallelic": "x"}, "multiallelic='x' is not one of"),
        (BAD_HEADER + GOOD_RECORD, {"chunk_variants": 0}, "chunk_variants=0 must be a positive"),
        (BAD_HEADER + GOOD_RECORD, {"compression": "bz2"}, "compression='bz2' is not one of"),
        (BAD_HEADER + GOOD_RECORD, {"output_format": "npz"}, "output_format='npz' is not one"),
        (BAD_HEADER + GOOD_RECORD, {"device": "tpu"}, "device='tpu' is not one of"),
    ],
)
def test_vcf_errors_leave_no_output(tmp_path, text, options, pattern):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    out = tmp_path / "out.h5"
    with pytest.raises(InputError) as info:
        gg.convert_vcf(path, out, **{"device": "cpu", **options})
    message = str(info.value)
    assert pattern in message and "\n" not in message, message
    assert "--" not in message  # the library names parameters, not flags
    assert listing(tmp_path) == ["bad.vcf"]


def test_missing_input_and_output_folder(tmp_path):
    with pytest.raises(InputError, match=r"nope\.vcf: no such file"):
        convert(tmp_path / "nope.vcf", tmp_path / "o.h5")
    with pytest.raises(InputError, match="does not exist"):
        convert(TRICKY, tmp_path / "no" / "o.h5")
    with pytest.raises(InputError, match=r"cannot tell the output format.*output_format="):
        convert(TRICKY, tmp_path / "o.vcf")
    assert listing(tmp_path) == []


def test_unknown_keyword_is_a_type_error_naming_it(tmp_path):
    with pytest.raises(
        TypeError, match=r"^convert_vcf\(\) got an unexpected keyword argument 'min_mafx'$"
    ):
        gg.convert_vcf(TRICKY, tmp_path / "o.h5", min_mafx=1)
    with pytest.raises(TypeError):
        gg.convert_vcf(TRICKY, tmp_path / "o.h5", VcfOptions(), "cpu")  # device is keyword-only
    assert listing(tmp_path) == []


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    """Stopped while writing (after the spool folder and the temporary output exist, and a
    task has written its chunks)."""
    real = partitions.write_rows
    calls = []

    def explode(*args):
        calls.append(real(*args).first)
        raise KeyboardInterrupt

    monkeypatch.setattr(partitions, "write_rows", explode)
    monkeypatch.setattr(partitions, "ONE_PASS", False)
    for name in ("o.h5", "o.zarr"):
        with pytest.raises(KeyboardInterrupt):
            convert(TRICKY, tmp_path / name, chunk_variants=3)
        assert listing(tmp_path) == []
    assert calls == [0, 0]


def test_interrupted_one_pass_leaves_nothing(tmp_path, monkeypatch):
    """Stopped in the one pass (no filters, Zarr) after its first chunk is written."""
    real = partitions.write_to
    calls = []

    def explode(target, name, first, rows, *, chunk_rows):
        real(target, name, first, rows, chunk_rows=chunk_rows)
        calls.append((name, first))
        raise KeyboardInterrupt

    monkeypatch.setattr(partitions, "write_to", explode)
    with pytest.raises(KeyboardInterrupt):
        convert(TRICKY, tmp_path / "o.zarr", chunk_variants=1)
    assert listing(tmp_path) == []
    assert calls == [("call_genotype", 0)]


def test_provenance(tmp_path):
    out = tmp_path / "o.zarr"
    convert(TRICKY, out, min_maf=0.1, command="vcf here")
    attrs = load(out)["attrs"]
    assert set(attrs) - set(PROVENANCE_KEYS) == {
        "summary",
        "dosage_layout",
        "vcf_zarr_names",
        "vcf_zarr_version",
        "vcf_meta_information",
    }
    check_provenance(
        {k: attrs[k] for k in PROVENANCE_KEYS},
        tool="gpu-genomics vcf",
        inputs={"vcf": TRICKY},
        command="vcf here",
        parameters={
            "region": None,
            "min_maf": 0.1,
            "max_missing": 1.0,
            "biallelic_only": False,
            "multiallelic": "nonref",
            "standardize": False,
            "output_format": "zarr",  # resolved from the suffix
            "compression": "zstd",  # resolved: Zarr's default
            "chunk_variants": CHUNK_VARIANTS,
            "chunk_samples": CHUNK_SAMPLES,
            "partitions": None,
        },
    )
    convert(EXAMPLE, tmp_path / "e.h5", standardize=True)
    attrs = load(tmp_path / "e.h5")["attrs"]
    check_provenance(
        {k: attrs[k] for k in PROVENANCE_KEYS}, tool="gpu-genomics vcf", inputs={"vcf": EXAMPLE}
    )
    assert attrs["parameters"]["standardize"] is True


def test_zarr_output_opens_in_xarray_with_vcf_zarr_dimensions(tmp_path):
    """sgkit's load_dataset is xarray.open_zarr: the arrays carry VCF Zarr dimension names."""
    xr = pytest.importorskip("xarray")
    out = tmp_path / "out.zarr"
    convert(TRICKY, out, standardize=True)
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


def test_split_keeps_the_same_variants_as_nonref(tmp_path):
    """A site without ALT ('.') has no split column but stays a variant, as in nonref mode."""
    kept = {}
    for mode in ("nonref", "split"):
        out = tmp_path / f"{mode}.h5"
        convert(TRICKY, out, multiallelic=mode)
        kept[mode] = load(out)["arrays"]
    assert kept["split"]["variant_index"].tolist() == list(range(10))
    for name in ("variant_index", "variant_position", "call_genotype", "variant_call_rate"):
        np.testing.assert_array_equal(kept["split"][name], kept["nonref"][name])
    assert 2 not in kept["split"]["dosage_variant"].tolist()  # ALT '.': no split column


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_no_variant_passing_writes_empty_arrays(tmp_path, caplog, suffix):
    out = tmp_path / f"o{suffix}"
    summary = convert(TRICKY, out, min_maf=0.5, max_missing=0.0)
    assert "no variant passed the filters" in caplog.text
    arrays = load(out)["arrays"]
    assert summary["variants_read"] == 10 and summary["variants_kept"] == 0
    assert summary["dosage_columns"] == 0 and math.isnan(summary["missing_rate"])
    assert arrays["call_genotype"].shape == (0, 5, 3) and arrays["dosage"].shape == (5, 0)
    assert arrays["sample_id"].tolist() == ["S1", "S2", "S3", "S4", "S5"]
    assert np.isnan(arrays["sample_missing_rate"]).all()


def test_vcf_on_each_device(tmp_path, device):
    convert(TRICKY, tmp_path / "cpu.h5", multiallelic="split", standardize=True)
    gg.convert_vcf(TRICKY, tmp_path / "dev.h5", multiallelic="split", standardize=True,
                   device=device)  # fmt: skip
    cpu, other = load(tmp_path / "cpu.h5"), load(tmp_path / "dev.h5")
    assert other["attrs"]["device"] == device
    for key, values in cpu["arrays"].items():
        if values.dtype.kind == "f":
            np.testing.assert_allclose(other["arrays"][key], values, rtol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(other["arrays"][key], values, err_msg=key)

"""``gpu-genomics vcf`` as a command line: its options reach :func:`gpu_genomics.convert_vcf` and
write what the library writes for them; the QC summary on stdout; mistakes are one line naming
the flags, exit 2, no output left.

What the job computes is tested through the library in ``test_vcf_job.py``."""

from __future__ import annotations

import shlex
import shutil

import pytest
from test_cli import error_of, job_module, record_job, run, same_arrays, without_run_details
from test_vcf_job import BAD_HEADER, GOOD_RECORD, TRICKY, load

import gpu_genomics as gg
from gpu_genomics.variants.convert import CHUNK_SAMPLES, CHUNK_VARIANTS, format_summary

DEFAULTS = {
    "output_format": None,
    "region": None,
    "min_maf": 0.0,
    "max_missing": 1.0,
    "biallelic_only": False,
    "multiallelic": "nonref",
    "standardize": False,
    "compression": None,
    "chunk_variants": CHUNK_VARIANTS,
    "chunk_samples": CHUNK_SAMPLES,
    "partitions": None,
    "device": "cpu",
    "client": None,
    "progress": False,
}


def test_options_map_to_the_job(monkeypatch, tmp_path, capsys):
    """Every option, not at its default: the job gets the parameters, and the output equals
    the library's for them."""
    pysam = pytest.importorskip("pysam")
    shutil.copy(TRICKY, tmp_path / "tricky.vcf")
    indexed = pysam.tabix_index(str(tmp_path / "tricky.vcf"), preset="vcf", force=True)
    calls = record_job(monkeypatch, job_module("vcf"), "convert_vcf")
    flags = ["--format", "zarr", "--region", "chr1", "--min-maf", "0.1", "--max-missing", "0.5",
             "--biallelic-only", "--multiallelic", "split", "--standardize", "--compression",
             "gzip", "--chunk-variants", "2", "--samples-chunk-size", "3",
             "--partitions", "2"]  # fmt: skip
    args = ["vcf", indexed, "-o", tmp_path / "cli.store", *flags, "--device", "cpu", "--quiet"]
    run(*args)
    parameters = {
        "output_format": "zarr",
        "region": "chr1",
        "min_maf": 0.1,
        "max_missing": 0.5,
        "biallelic_only": True,
        "multiallelic": "split",
        "standardize": True,
        "compression": "gzip",
        "chunk_variants": 2,
        "chunk_samples": 3,
        "partitions": 2,
    }
    assert calls == [
        {
            "paths": [indexed, str(tmp_path / "cli.store")],
            **DEFAULTS,
            **parameters,
            "command": shlex.join(map(str, ["gpu-genomics", *args])),
        }
    ]
    summary = gg.convert_vcf(indexed, tmp_path / "lib.store", device="cpu", **parameters)
    cli, lib = load(tmp_path / "cli.store"), load(tmp_path / "lib.store")
    same_arrays(cli["arrays"], lib["arrays"])
    cli_attrs, lib_attrs = without_run_details(cli["attrs"]), without_run_details(lib["attrs"])
    cli_attrs["summary"].pop("seconds"), lib_attrs["summary"].pop("seconds")
    assert cli_attrs == lib_attrs
    assert capsys.readouterr().out == ""  # --quiet: no summary (it is in the attributes)
    assert 0 < summary["variants_kept"] < summary["variants_read"] == 4
    # the defaults, and --no-standardize
    run("vcf", TRICKY, "-o", tmp_path / "d.h5", "--standardize", "--no-standardize", "--quiet")
    assert {k: v for k, v in calls[-1].items() if k not in ("paths", "command")} == (
        DEFAULTS | {"device": None}
    )


def test_prints_the_qc_summary(tmp_path, capsys):
    run("vcf", TRICKY, "-o", tmp_path / "o.h5", "--device", "cpu", "--standardize")
    captured = capsys.readouterr()
    stored = load(tmp_path / "o.h5")["attrs"]["summary"]
    assert captured.out.strip() == format_summary(stored)
    assert "variants: 10 kept of 10 read" in captured.out and "MAF spectrum" in captured.out
    assert "standardized columns" in captured.out
    assert f"gpu-genomics: wrote {tmp_path / 'o.h5'} in " in captured.err


@pytest.mark.parametrize(
    ("text", "extra", "pattern"),
    [
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", [], "line 4"),
        (BAD_HEADER + "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/y\n", [], "bad genotype"),
        (BAD_HEADER, [], "no variant records"),
        (BAD_HEADER + GOOD_RECORD, ["--region", "1:1-9"], "--region '1:1-9' needs an index"),
        (BAD_HEADER + GOOD_RECORD, ["--min-maf", "0.7"], "--min-maf 0.7 must lie between 0 and"),
        (BAD_HEADER + GOOD_RECORD, ["--max-missing", "2"], "--max-missing 2.0 must lie between"),
        (BAD_HEADER + GOOD_RECORD, ["--chunk-variants", "0"], "--chunk-variants 0 must be a"),
        (BAD_HEADER + GOOD_RECORD, ["--chunk-samples", "0"], "--chunk-samples 0 must be a"),
        (BAD_HEADER + GOOD_RECORD, ["--partitions", "0"], "--partitions 0 must be a"),
    ],
)
def test_errors_are_one_line_naming_the_flags(tmp_path, capsys, text, extra, pattern):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    out = tmp_path / "out.h5"
    line = error_of(capsys, "vcf", path, "-o", out, *extra, "--device", "cpu")
    assert pattern in line
    for python_name in ("region=", "min_maf", "max_missing", "chunk_variants", "chunk_samples"):
        assert python_name not in line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.vcf"]


def test_a_bad_choice_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run("vcf", TRICKY, "-o", tmp_path / "o.h5", "--multiallelic", "all")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--multiallelic'" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

"""``gpu-genomics vcf``: VCF/BCF into genotypes, a dosage matrix and QC figures."""

from __future__ import annotations

from typing import Any

import click

from ..variants.convert import (
    CHUNK_SAMPLES,
    CHUNK_VARIANTS,
    VCF_ARRAYS,
    convert_vcf,
    format_summary,
)
from ..variants.genotypes import MULTIALLELIC_MODES
from .common import (
    array_output_options,
    arrays_epilog,
    cluster_options,
    compression_option,
    device_option,
    logging_options,
    report_option,
    run_job,
)


@click.command("vcf", epilog=arrays_epilog(VCF_ARRAYS))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@array_output_options
@click.option("--region", default=None, help="chrom or chrom:start-end (needs a .tbi/.csi).")
@click.option("--min-maf", type=float, default=0.0, show_default=True)
@click.option(
    "--max-missing",
    type=float,
    default=1.0,
    show_default=True,
    help="Largest fraction of missing calls a variant may have.",
)
@click.option("--biallelic-only", is_flag=True, help="Keep only variants with exactly one ALT.")
@click.option(
    "--multiallelic",
    type=click.Choice(MULTIALLELIC_MODES),
    default="nonref",
    show_default=True,
    help="nonref: one column per variant counting non-REF alleles; "
    "split: one column per ALT allele.",
)
@click.option(
    "--standardize/--no-standardize",
    default=False,
    show_default=True,
    help="Also write dosage_standardized (mean-imputed, scaled; monomorphic dropped).",
)
@compression_option
@click.option(
    "--chunk-variants",
    "--variants-chunk-size",
    "chunk_variants",
    type=int,
    default=CHUNK_VARIANTS,
    show_default=True,
    help="Chunk length along variants (and dosage columns).",
)
@click.option(
    "--chunk-samples",
    "--samples-chunk-size",
    "chunk_samples",
    type=int,
    default=CHUNK_SAMPLES,
    show_default=True,
    help="Chunk length along samples.",
)
@click.option(
    "--partitions",
    type=int,
    default=None,
    help="Parts the file is scanned in (default: one per 64 MiB, at least two per worker); "
    "the output does not depend on it.",
)
@report_option
@cluster_options
@device_option
@logging_options
def vcf(input_path: str, output: str, **options: Any) -> None:
    """VCF/BCF -> call_genotype, dosage (samples x variants) and QC figures in HDF5/Zarr.

    A bgzip or plain VCF is read in parts, in parallel with --workers or --scheduler (a bgzip
    VCF's .tbi/.csi, when present, says where its blocks start). BCF, --region and gzip (not
    bgzip) input are first copied once as plain text beside the output.
    """
    quiet = options["quiet"]
    summary = run_job(convert_vcf, input_path, output, **options)
    if not quiet:  # --quiet: warnings only
        click.echo(format_summary(summary))

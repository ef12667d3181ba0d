"""``gpu-genomics vcf``: VCF/BCF into genotypes, a dosage matrix and QC figures."""

from __future__ import annotations

from typing import Any

import click

from ..variants.convert import VCF_ARRAYS, convert_vcf, format_summary
from ..variants.genotypes import MULTIALLELIC_MODES
from ..variants.reader import DEFAULT_CHUNK_VARIANTS
from .common import (
    array_output_options,
    arrays_epilog,
    compression_option,
    device_option,
    logging_options,
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
@click.option("--chunk-variants", type=int, default=DEFAULT_CHUNK_VARIANTS, show_default=True)
@device_option
@logging_options
def vcf(input_path: str, output: str, **options: Any) -> None:
    """VCF/BCF -> call_genotype, dosage (samples x variants) and QC figures in HDF5/Zarr."""
    quiet = options["quiet"]
    summary = run_job(convert_vcf, input_path, output, **options)
    if not quiet:  # --quiet: warnings only
        click.echo(format_summary(summary))

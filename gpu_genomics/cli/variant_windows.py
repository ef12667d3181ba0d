"""``gpu-genomics variant-windows``: reference and alternate windows around VCF variants.

With ``--haplotypes REGIONS.bed``: each sample's two haplotype sequences over the regions
(:func:`~gpu_genomics.variants.haplotypes.haplotype_windows`); without it, the windows of
:func:`~gpu_genomics.variants.windows.variant_windows`.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import InputError
from ..sequence.onehot import ONE_HOT_DTYPES
from ..variants import haplotypes as H
from ..variants.windows import (
    CHUNK_WINDOWS,
    EDGE_MODES,
    REF_MISMATCH_MODES,
    STRANDS,
    VARIANT_WINDOW_ARRAYS,
    WINDOW_ENCODINGS,
    format_summary,
    variant_windows,
)
from .common import (
    array_output_options,
    arrays_epilog,
    cluster_options,
    compression_option,
    device_option,
    logging_options,
    run_job,
)


@click.command(
    "variant-windows",
    epilog=arrays_epilog(VARIANT_WINDOW_ARRAYS)
    + " With --haplotypes: "
    + ", ".join(a.name for a in H.HAPLOTYPE_ARRAYS)
    + ".",
)
@click.argument("vcf", metavar="VCF", type=click.Path(dir_okay=False))
@click.option(
    "-f",
    "--reference",
    "--fasta",
    "reference",
    required=True,
    type=click.Path(dir_okay=False),
    help="Reference FASTA: bgzip (with or without .fai/.gzi) or plain.",
)
@array_output_options
@click.option(
    "-l",
    "--length",
    type=int,
    default=None,
    help="Window length in bases (default 1000; with --haplotypes the regions' own length).",
)
@click.option(
    "--haplotypes",
    "regions",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="BED",
    help="Write each sample's two haplotypes over these regions instead (phased, indexed VCF).",
)
@click.option(
    "--samples", default=None, help="--haplotypes: comma-separated samples (default: all)."
)
@click.option(
    "--unphased",
    type=click.Choice(H.GENOTYPE_MODES),
    default="error",
    show_default=True,
    help="--haplotypes: an unphased heterozygous call is an error, or REF on both haplotypes.",
)
@click.option(
    "--missing",
    type=click.Choice(H.GENOTYPE_MODES),
    default="error",
    show_default=True,
    help="--haplotypes: a missing allele is an error, or read as REF.",
)
@click.option(
    "--chunk-regions",
    type=int,
    default=H.CHUNK_REGIONS,
    show_default=True,
    help="--haplotypes: regions per output chunk.",
)
@click.option(
    "--chunk-samples",
    type=int,
    default=H.CHUNK_SAMPLES,
    show_default=True,
    help="--haplotypes: samples per output chunk (and per task).",
)
@click.option(
    "--encoding", type=click.Choice(WINDOW_ENCODINGS), default="onehot", show_default=True
)
@click.option("--alphabet", default="ACGT", show_default=True, help="onehot: column order.")
@click.option("--dtype", type=click.Choice(ONE_HOT_DTYPES), default="uint8", show_default=True)
@click.option(
    "--n-value", type=float, default=0.0, show_default=True, help="onehot: value of N rows."
)
@click.option(
    "--scheme",
    default=None,
    help="tokens: spec|hyenadna (spec); kmer-tokens: plain|dnabert|nucleotide-transformer (plain).",
)
@click.option("-k", "--k", "k", type=int, default=6, show_default=True, help="k-mer size.")
@click.option("--stride", type=int, default=1, show_default=True, help="kmer-tokens: stride.")
@click.option(
    "--max-len",
    type=int,
    default=None,
    help="kmer-tokens: tokens per row (default: a clean window's).",
)
@click.option(
    "--uppercase", is_flag=True, help="Read soft-masked bases as upper case (hyenadna, dnabert)."
)
@click.option(
    "--edge",
    type=click.Choice(EDGE_MODES),
    default="shift",
    show_default=True,
    help="Windows near contig ends: shift inside the contig, or pad with N.",
)
@click.option(
    "--strand",
    type=click.Choice(STRANDS),
    default="+",
    show_default=True,
    help="-: reverse-complement both windows.",
)
@click.option(
    "--ref-mismatch",
    type=click.Choice(REF_MISMATCH_MODES),
    default="error",
    show_default=True,
    help="A REF that differs from the reference: an error, or count and skip the record.",
)
@click.option(
    "--skip-unknown-contigs",
    is_flag=True,
    help="Count and skip records on contigs the reference lacks (else an error).",
)
@click.option(
    "--region", default=None, help="chrom or chrom:start-end of the VCF (needs an index)."
)
@compression_option
@click.option(
    "--chunk-windows",
    type=int,
    default=CHUNK_WINDOWS,
    show_default=True,
    help="Rows per output chunk.",
)
@click.option(
    "--task-records",
    type=int,
    default=None,
    help="Records per task (default: about 64 MiB of encoded rows); the output does not "
    "depend on it.",
)
@cluster_options
@device_option
@logging_options
def variant_windows_command(vcf: str, reference: str, output: str, **options: Any) -> None:
    """VCF + reference -> ref_seqs/alt_seqs windows of --length bases around each ALT.

    One row per ALT allele (multi-allelic records split). The ALT replaces REF where REF
    starts (POS at window index length // 2 unless shifted at a contig end); the alternate
    window is the haplotype's bases at the same coordinates, so insertions push the right
    flank out and deletions pull it in.

    With --haplotypes BED: hap_seqs, each sample's two haplotypes over each region with its
    variants applied by the same rule (the VCF must be phased, bgzipped and indexed).
    """
    from click.core import ParameterSource

    context = click.get_current_context()
    regions = options.pop("regions")
    if options["length"] is None:
        options.pop("length")
    for name in WINDOW_ONLY if regions else HAPLOTYPE_ONLY:
        if context.get_parameter_source(name) != ParameterSource.DEFAULT:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{flag} applies {'only without' if regions else 'only with'} --haplotypes"
            )
        options.pop(name)
    if regions:
        summary = run_job(H.haplotype_windows, vcf, reference, regions, output, **options)
        text = H.format_summary(summary)
    else:
        summary = run_job(variant_windows, vcf, reference, output, **options)
        text = format_summary(summary)
    if not options["quiet"]:
        click.echo(text)


WINDOW_ONLY = ("strand", "skip_unknown_contigs", "region", "chunk_windows", "task_records")
HAPLOTYPE_ONLY = ("samples", "unphased", "missing", "chunk_regions", "chunk_samples")

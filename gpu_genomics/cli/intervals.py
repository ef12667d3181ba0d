"""The ``gpu-genomics intervals`` command.

It turns BED peak files and a reference genome into a labelled one-hot training set. It is
also installed as ``genomic_interval_pipeline``.
"""

from __future__ import annotations

from typing import Any

import click

from ..intervals.job import build_interval_dataset
from ..intervals.layouts import INTERVAL_ARRAYS
from ..intervals.regions import MERGE_MODES
from ..sequence.onehot import ONE_HOT_DTYPES
from .common import (
    arrays_epilog,
    cluster_options,
    compression_option,
    device_option,
    logging_options,
    report_option,
    run_job,
)


def _chrom_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _negatives(ctx: click.Context, param: click.Parameter, value: str | None) -> int | float:
    """``N`` (a count: digits only) or a ratio (``0.5``, ``1x``, ``2.5x``)."""
    if value is None:
        return 0
    text = value.strip().lower()
    try:
        if text.endswith("x"):
            return float(text[:-1])
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a count (1000) nor a ratio to the positives (1.0, 2x)"
        ) from None


def _bases_or_fraction(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give bases (1, 50) or a fraction (0.5)") from None


@click.command("intervals", epilog=arrays_epilog(INTERVAL_ARRAYS))
@click.option(
    "-i",
    "--input",
    "metadata",
    required=True,
    type=click.Path(dir_okay=False),
    help="Metadata: one BED path per line, 'PATH LABEL' lines, or Basset's 'NAME<TAB>PATH' lines.",
)
@click.option(
    "-f",
    "--fastq",
    "--fasta",
    "--reference",
    "reference",
    required=True,
    type=click.Path(dir_okay=False),
    help="Reference FASTA: bgzip (with or without .fai/.gzi) or plain.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Output .h5/.hdf5 or .zarr (no suffix: .h5 is appended).",
)
@click.option(
    "-l", "--length", type=int, default=600, show_default=True, help="Region length in bases."
)
@click.option(
    "-m",
    "--min_overlap",
    "--min-overlap",
    "min_overlap",
    type=int,
    default=200,
    show_default=True,
    help="Overlap in bases that merges peaks.",
)
@click.option(
    "-e", "--exclusive", is_flag=True, help="Keep only regions with exactly one label (multiclass)."
)
@click.option(
    "--test_chr",
    "--test-chr",
    "test_chroms",
    default="chr19,chr20",
    show_default=True,
    callback=_chrom_list,
    help="Comma-separated test chromosomes (--split chrom).",
)
@click.option(
    "--valid_chr",
    "--valid-chr",
    "valid_chroms",
    default="chr21,chr22",
    show_default=True,
    callback=_chrom_list,
    help="Comma-separated validation chromosomes (--split chrom).",
)
@click.option(
    "--merge",
    type=click.Choice(MERGE_MODES),
    default="basset",
    show_default=True,
    help="Basset's greedy merge, bedtools-merge hulls, or none.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["hdf5", "zarr", "basset"]),
    default=None,
    help="Default from the output's suffix; basset: seq_hdf5.py layout.",
)
@click.option("--split", type=click.Choice(["chrom", "random"]), default="chrom", show_default=True)
@click.option(
    "--valid-frac",
    "--valid_frac",
    "valid_frac",
    type=float,
    default=0.1,
    show_default=True,
    help="--split random: validation fraction.",
)
@click.option(
    "--test-frac",
    "--test_frac",
    "test_frac",
    type=float,
    default=0.1,
    show_default=True,
    help="--split random: test fraction.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="--split random: seed.")
@device_option
@compression_option
@click.option("--dtype", type=click.Choice(ONE_HOT_DTYPES), default="uint8", show_default=True)
@click.option(
    "--alphabet",
    type=click.Choice(["ACGT", "ACTG"]),
    default="ACGT",
    show_default=True,
    help="One-hot column order (ACTG: the Rust tool's).",
)
@click.option(
    "--skip-unknown-chroms",
    "--skip_unknown_chroms",
    "skip_unknown_chroms",
    is_flag=True,
    help="Drop BED rows on chromosomes missing from the reference.",
)
@click.option(
    "--center",
    type=click.Choice(["midpoint", "summit"]),
    default="midpoint",
    show_default=True,
    help="Place each peak at its midpoint or its narrowPeak summit (column 10).",
)
@click.option(
    "--regions",
    "universe",
    type=click.Path(dir_okay=False),
    default=None,
    help="Label this BED of regions (e.g. ENCODE cCREs) by overlap, instead of merging peaks.",
)
@click.option(
    "--label-overlap",
    type=float,
    default=0.5,
    show_default=True,
    help="--regions: fraction of overlap with one peak that gives a region its label.",
)
@click.option(
    "--label-overlap-of",
    type=click.Choice(["region", "peak"]),
    default="region",
    show_default=True,
    help="--regions: the fraction is of the region (bedtools -f) or of the peak (-F).",
)
@click.option(
    "--flank",
    type=int,
    default=0,
    show_default=True,
    help="Bases stored on each side of every window, for shift augmentation.",
)
@click.option(
    "--blacklist",
    type=click.Path(dir_okay=False),
    default=None,
    help="BED of regions to avoid (e.g. the ENCODE blacklist): windows overlapping it are dropped.",
)
@click.option(
    "--blacklist-overlap",
    default="1",
    show_default=True,
    callback=_bases_or_fraction,
    help="Overlap with one blacklist interval that drops a window: bases (>= 1) or a fraction.",
)
@click.option(
    "--max-n-frac",
    type=float,
    default=None,
    help="Drop windows with a larger fraction of N (any non-ACGT letter).",
)
@click.option(
    "--min-distance-to-end",
    type=int,
    default=0,
    show_default=True,
    help="Drop windows closer than this many bases to a chromosome end.",
)
@click.option(
    "--negatives",
    default=None,
    callback=_negatives,
    help="GC-matched background windows: a count (5000) or a ratio to the positives (1x, 0.5).",
)
@click.option(
    "--negatives-gc-bins",
    type=int,
    default=20,
    show_default=True,
    help="GC bins the negatives are matched in, per split.",
)
@click.option(
    "--bigwig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Track list: one bigWig per line ('PATH' or 'PATH NAME'); one target column each.",
)
@click.option(
    "--target",
    type=click.Choice(["mean", "max", "sum", "coverage"]),
    default="mean",
    show_default=True,
    help="--bigwig: the statistic of each track over the window (or bin).",
)
@click.option(
    "--bin-size",
    type=int,
    default=None,
    help="--bigwig: a profile of one value per BIN_SIZE bases instead of one per window.",
)
@click.option(
    "--bigwig-missing",
    type=click.Choice(["zero", "ignore"]),
    default="zero",
    show_default=True,
    help="--bigwig: bases without data count as 0, or are left out (as pyBigWig's stats).",
)
@report_option
@cluster_options
@logging_options
def intervals(metadata: str, reference: str, output: str, **options: Any) -> None:
    """Build an ML-ready dataset from BED peak files and a reference genome.

    Peaks are merged into fixed-length regions (--merge), labelled by the BED files they come
    from, split by chromosome (or at random), one-hot encoded, and written to HDF5 or Zarr:
    {training,validation,test}_{seqs,labels,coords,names}, label_names, chrom_names. Windows
    can be filtered (--blacklist, --max-n-frac, --min-distance-to-end), flanked (--flank),
    joined by GC-matched negatives (--negatives), given bigWig targets (--bigwig), or taken
    from a region universe (--regions).
    """
    run_job(build_interval_dataset, metadata, reference, output, **options)

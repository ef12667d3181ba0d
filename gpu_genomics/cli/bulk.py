"""``gpu-genomics bulk``: a bulk RNA-seq expression table into z-scored ``(samples, genes)``."""

from __future__ import annotations

from typing import Any

import click

from ..expression.bulk import DEFAULT_MIN_MEAN_LOG
from ..expression.bulk_job import BULK_ARRAYS, preprocess_bulk_file
from .common import (
    array_output_options,
    arrays_epilog,
    compression_option,
    device_option,
    logging_options,
    report_option,
    run_job,
)


@click.command("bulk", epilog=arrays_epilog(BULK_ARRAYS))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@array_output_options
@click.option(
    "--samples-by-genes",
    is_flag=True,
    help="INPUT has one row per sample (default: one row per gene, one column per sample).",
)
@click.option(
    "--already-log",
    is_flag=True,
    help="Values are on a log scale already: no log1p (negative values allowed).",
)
@click.option(
    "--min-mean-log",
    type=float,
    default=None,
    help="Keep genes whose mean log expression over samples is above this "
    f"[default: {DEFAULT_MIN_MEAN_LOG}].",
)
@click.option(
    "--apply-scaler",
    "apply_scaler_path",
    type=click.Path(dir_okay=True),
    default=None,
    help="Z-score with a stored scaler (.json/.h5 from --save-scaler, "
    "or an earlier bulk output) instead of fitting one; its genes are kept, matched "
    "by name.",
)
@click.option(
    "--save-scaler",
    "save_scaler_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the scaler to this .json or .h5 file (the output holds it anyway).",
)
@click.option(
    "--zscore/--no-zscore",
    default=True,
    show_default=True,
    help="--no-zscore: write the filtered log values instead of z-scores (the "
    "scaler is still stored).",
)
@report_option
@device_option
@compression_option
@logging_options
def bulk(input_path: str, output: str, **options: Any) -> None:
    """Preprocess a bulk RNA-seq table (CSV/TSV of TPM, FPKM or counts; plain or gzip).

    Reads genes x samples (or --samples-by-genes), transposes to (samples, genes), applies
    log1p (unless --already-log), keeps genes with mean log expression > --min-mean-log, and
    z-scores each gene (mean and std stored in the output) as scikit-learn's StandardScaler
    does: the specification's recipe (docs/bulk.md).
    """
    run_job(preprocess_bulk_file, input_path, output, **options)

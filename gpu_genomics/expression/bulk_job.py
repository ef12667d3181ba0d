"""``gpu-genomics bulk``: a bulk RNA-seq expression table to z-scored ``(samples, genes)`` arrays.

Output (HDF5 or Zarr):

* ``expression`` ``(n_samples, n_kept_genes)`` float32: z-scores of log1p expression;
* ``sample_id`` ``(n_samples,)`` str; ``gene_id`` ``(n_kept_genes,)`` str (its columns);
* ``scaler_mean``, ``scaler_std`` ``(n_kept_genes,)`` float64: the per-gene mean and divisor
  (scikit-learn's ``mean_`` and ``scale_``) so new data can be transformed the same way; the
  output itself can be passed to ``--apply-scaler``;
* ``gene_mask`` ``(n_input_genes,)`` bool and ``input_gene_id`` ``(n_input_genes,)`` str: which
  input genes were kept;
* attributes: ``gpu_genomics_version``, ``command``, ``source``, ``parameters``, counts,
  ``transform``, ``scaler_fitted`` (and the scaler's ``scaler_*`` attributes).
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import __version__
from ..cli.common import (
    array_output_options,
    compression_option,
    device_option,
    logging_options,
    setup_logging,
)
from ..device import resolve_device, to_numpy
from ..errors import InputError
from ..io.store import ArrayWriter, check_output_folder, format_from_path, removed_on_failure

log = logging.getLogger("gpu_genomics")


@click.command("bulk")
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
    help="Keep genes whose mean log expression over samples is above this [default: 1.0].",
)
@click.option(
    "--apply-scaler",
    "apply_scaler_path",
    type=click.Path(dir_okay=True),
    default=None,
    help="Z-score with a stored scaler (.json/.h5 from --save-scaler, or an earlier bulk "
    "output) instead of fitting one; its genes are kept, matched by name.",
)
@click.option(
    "--save-scaler",
    "save_scaler_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the scaler to this .json or .h5 file (the output holds it anyway).",
)
@click.option(
    "--no-zscore",
    is_flag=True,
    help="Write the filtered log values instead of z-scores (the scaler is still stored).",
)
@device_option
@compression_option
@logging_options
def bulk(input_path: str, output: str, **opts: Any) -> None:
    """Preprocess a bulk RNA-seq table (CSV/TSV of TPM, FPKM or counts; plain or gzip).

    Reads genes x samples (or --samples-by-genes), transposes to (samples, genes), applies
    log1p (unless --already-log), keeps genes with mean log expression > --min-mean-log, and
    z-scores each gene (mean and std stored in the output), as the specification's recipe with
    scikit-learn's StandardScaler.
    """
    from .bulk import DEFAULT_MIN_MEAN_LOG, load_scaler, preprocess_bulk, save_scaler, scaler_kind
    from .tables import read_table

    setup_logging(opts["quiet"], opts["loglevel"])
    started = time.perf_counter()
    # refuse bad names and option clashes before any work
    format_from_path(output, opts["output_format"])
    if opts["apply_scaler_path"] and opts["min_mean_log"] is not None:
        raise InputError(
            "--min-mean-log has no effect with --apply-scaler (the scaler's genes are kept); "
            "drop one of them"
        )
    check_output_folder(output)
    if opts["save_scaler_path"]:
        scaler_kind(opts["save_scaler_path"])
        check_output_folder(opts["save_scaler_path"])
        if Path(opts["save_scaler_path"]).resolve() == Path(output).resolve():
            raise InputError("--save-scaler must differ from the output path")
    min_mean_log = (
        DEFAULT_MIN_MEAN_LOG if opts["min_mean_log"] is None else float(opts["min_mean_log"])
    )
    device = resolve_device(opts["device"])
    scaler = load_scaler(opts["apply_scaler_path"]) if opts["apply_scaler_path"] else None
    orientation = "rows-are-observations" if opts["samples_by_genes"] else "rows-are-features"
    matrix = read_table(input_path, orientation=orientation)
    result = preprocess_bulk(
        matrix,
        already_log=opts["already_log"],
        min_mean_log=min_mean_log,
        scaler=scaler,
        zscore=not opts["no_zscore"],
        device=device,
    )
    expression = np.asarray(to_numpy(result.expression), dtype=np.float32)
    n_samples, n_genes = matrix.shape
    n_kept = len(result.gene_names)
    params = {
        "samples_by_genes": opts["samples_by_genes"],
        "already_log": opts["already_log"],
        "min_mean_log": None if scaler is not None else min_mean_log,
        "apply_scaler": opts["apply_scaler_path"],
        "zscore": not opts["no_zscore"],
        "device": device,
    }
    if opts["save_scaler_path"]:  # first: the main output is written last, or not at all
        save_scaler(result.scaler, opts["save_scaler_path"])
    with (
        removed_on_failure(opts["save_scaler_path"]),
        ArrayWriter(output, opts["output_format"], opts["compression"]) as out,
    ):
        out.write("expression", expression)
        out.write("sample_id", [str(name) for name in result.sample_names])
        out.write("gene_id", [str(name) for name in result.gene_names])
        out.write("scaler_mean", result.scaler.mean)
        out.write("scaler_std", result.scaler.std)
        out.write("gene_mask", result.gene_mask)
        out.write("input_gene_id", [str(name) for name in result.input_gene_names])
        out.attrs(
            {
                "gpu_genomics_version": __version__,
                "command": _command_line(),
                "source": str(input_path),
                "modality": "bulk RNA-seq",
                "n_samples": n_samples,
                "n_genes_input": n_genes,
                "n_genes_kept": n_kept,
                "transform": "none (already log)" if opts["already_log"] else "log1p",
                "zscore": not opts["no_zscore"],
                "scaler_fitted": result.fitted,
                "scaler_source": None if result.fitted else str(opts["apply_scaler_path"]),
                "scaler_n_samples": result.scaler.n_samples,
                "scaler_log1p": result.scaler.log1p,
                "parameters": params,
            }
        )
    how = (
        f"mean log expression > {min_mean_log}"
        if result.fitted
        else f"the genes of the scaler {opts['apply_scaler_path']}"
    )
    log.info(
        "bulk: %d samples, %d of %d genes kept (%s); wrote %s in %.1f s",
        n_samples,
        n_kept,
        n_genes,
        how,
        output,
        time.perf_counter() - started,
    )


def _command_line() -> str:
    """The command line as typed (from ``cli.main``), else ``sys.argv``."""
    root = click.get_current_context().find_root()
    argv = (root.obj or {}).get("argv") if isinstance(root.obj, dict | None) else None
    return shlex.join(["gpu-genomics", *(argv if argv is not None else sys.argv[1:])])

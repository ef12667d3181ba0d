"""The ``bulk`` job: a bulk RNA-seq expression table to z-scored ``(samples, genes)`` arrays.

:func:`preprocess_bulk_file` reads the table (:func:`~gpu_genomics.expression.tables.read_table`),
runs :func:`~gpu_genomics.expression.bulk.preprocess_bulk` and writes the arrays declared in
:data:`BULK_ARRAYS`, with the scaler beside them so that new data can be transformed the same
way (the output itself can be passed as ``apply_scaler_path``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError, finite_float, invalid
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import (
    ArrayWriter,
    check_output_folder,
    format_from_path,
    removed_on_failure,
    resolve_compression,
)
from ..report.html import check_report_path, written_reports
from .bulk import DEFAULT_MIN_MEAN_LOG, preprocess_bulk
from .scaler_files import load_scaler, save_scaler, scaler_kind
from .tables import read_table

log = logging.getLogger("gpu_genomics")

BULK_ARRAYS = OutputSpec(
    "bulk: expression table -> z-scored (samples, genes) (HDF5/Zarr)",
    (
        ArraySpec(
            "expression",
            "float32",
            ("samples", "genes"),
            "z-scores of log1p expression (the filtered log values with zscore=False)",
        ),
        ArraySpec("sample_id", STRING, ("samples",), "sample names"),
        ArraySpec("gene_id", STRING, ("genes",), "the kept genes: the columns of expression"),
        ArraySpec("scaler_mean", "float64", ("genes",), "per-gene mean (StandardScaler mean_)"),
        ArraySpec(
            "scaler_std",
            "float64",
            ("genes",),
            "per-gene divisor (scale_: ddof-0 standard deviation, 1 for a constant gene)",
        ),
        ArraySpec("gene_mask", "bool", ("input_genes",), "which input genes were kept"),
        ArraySpec("input_gene_id", STRING, ("input_genes",), "the input's genes, in order"),
    ),
)


def preprocess_bulk_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    samples_by_genes: bool = False,
    already_log: bool = False,
    min_mean_log: float | None = None,
    apply_scaler_path: str | os.PathLike | None = None,
    save_scaler_path: str | os.PathLike | None = None,
    zscore: bool = True,
    output_format: str | None = None,
    compression: str | None = None,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
    report: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Preprocess a bulk RNA-seq table (CSV/TSV of TPM, FPKM or counts; plain or gzip).

    Reads genes x samples (or ``samples_by_genes``), transposes to ``(samples, genes)``,
    applies log1p (unless ``already_log``), keeps the genes whose mean log expression is above
    ``min_mean_log`` and z-scores each gene as scikit-learn's ``StandardScaler``
    (``docs/bulk.md#recipe``).

    Args:
        input_path: the table.
        output_path: ``.h5``/``.hdf5`` or ``.zarr`` (or any name with ``output_format``).
        samples_by_genes: the table has one row per sample (default: one row per gene).
        already_log: the values are on a log scale already: no log1p (negatives allowed).
        min_mean_log: the gene filter's threshold (default 1.0); not with ``apply_scaler_path``.
        apply_scaler_path: z-score with a stored scaler (``.json``/``.h5`` from
            ``save_scaler_path``, or an earlier output) instead of fitting one; its genes are
            kept, matched by name.
        save_scaler_path: also write the scaler to this ``.json`` or ``.h5`` file.
        zscore: False writes the filtered log values (the scaler is still stored).
        output_format: ``"hdf5"`` or ``"zarr"``; default from the suffix.
        compression: ``none``, ``gzip``, ``lzf`` or ``zstd``.
        device: ``"auto" | "gpu" | "cpu"``.
        progress: unused (the job has no long loop); accepted like every job's.
        command: the command line stored in the provenance (default: this process's).
        report: also write a QC report here (``.html``,
            :func:`~gpu_genomics.report.bulk_report`): each input gene's mean log expression,
            kept and dropped, with the ``min_mean_log`` threshold.

    Returns:
        A summary: ``output``, ``n_samples``, ``n_genes_input``, ``n_genes_kept``,
        ``scaler_fitted``, ``seconds``.

    Raises:
        InputError: a bad option or input; nothing is written.

    Memory: the table as float64 a few times over (the whole matrix is held); a report, one
    float64 per input gene.
    """
    started = time.perf_counter()
    output_format = format_from_path(output_path, output_format)
    if apply_scaler_path and min_mean_log is not None:
        raise InputError(
            f"min_mean_log={min_mean_log} has no effect with apply_scaler_path="
            f"{str(apply_scaler_path)!r} (the scaler's genes are kept); drop one of them"
        )
    threshold = (
        DEFAULT_MIN_MEAN_LOG if min_mean_log is None else finite_float("min_mean_log", min_mean_log)
    )
    check_output_folder(output_path)
    if save_scaler_path:
        scaler_kind(save_scaler_path)
        check_output_folder(save_scaler_path)
        if Path(save_scaler_path).resolve() == Path(output_path).resolve():
            raise invalid("save_scaler_path", str(save_scaler_path), "must differ from the output")
    if report is not None:
        check_report_path(report, outputs=(output_path, save_scaler_path))
    device_name = resolve_device(device)
    scaler = load_scaler(apply_scaler_path) if apply_scaler_path else None
    orientation = "rows-are-observations" if samples_by_genes else "rows-are-features"
    matrix = read_table(input_path, orientation=orientation)
    result = preprocess_bulk(
        matrix,
        already_log=already_log,
        min_mean_log=threshold,
        scaler=scaler,
        zscore=zscore,
        device=device_name,
    )
    n_samples, n_genes = matrix.shape
    parameters = {
        "samples_by_genes": samples_by_genes,
        "already_log": already_log,
        "min_mean_log": None if scaler is not None else threshold,
        "apply_scaler_path": None if apply_scaler_path is None else str(apply_scaler_path),
        "save_scaler_path": None if save_scaler_path is None else str(save_scaler_path),
        "zscore": zscore,
        "output_format": output_format,
        "compression": resolve_compression(output_format, compression),
    }
    record = provenance(
        "gpu-genomics bulk",
        parameters=parameters,
        inputs={"table": input_path, "scaler": apply_scaler_path},
        device=device_name,
        command=command,
    )
    if save_scaler_path:  # first: the main output is written last, or not at all
        save_scaler(result.scaler, save_scaler_path, provenance=record)
    with (
        removed_on_failure(save_scaler_path),
        written_reports() as reports,  # removed if the output fails
        ArrayWriter(output_path, output_format, compression, spec=BULK_ARRAYS) as out,
    ):
        if report is not None:
            reports.append(_write_report(
                report, result, threshold if result.fitted else None, parameters, record,
                input_path=input_path,
            ))  # fmt: skip
        out.write("expression", np.asarray(to_numpy(result.expression)))
        out.write("sample_id", [str(name) for name in result.sample_names])
        out.write("gene_id", [str(name) for name in result.gene_names])
        out.write("scaler_mean", result.scaler.mean)
        out.write("scaler_std", result.scaler.std)
        out.write("gene_mask", result.gene_mask)
        out.write("input_gene_id", [str(name) for name in result.input_gene_names])
        out.attrs(
            {
                **record,
                "modality": "bulk RNA-seq",
                "n_samples": n_samples,
                "n_genes_input": n_genes,
                "n_genes_kept": len(result.gene_names),
                "transform": "none (already log)" if already_log else "log1p",
                "zscore": zscore,
                "scaler_fitted": result.fitted,
                "scaler_source": None if result.fitted else str(apply_scaler_path),
                "scaler_n_samples": result.scaler.n_samples,
                "scaler_log1p": result.scaler.log1p,
            }
        )
    how = (
        f"mean log expression > {threshold}"
        if result.fitted
        else f"the genes of the scaler {apply_scaler_path}"
    )
    seconds = time.perf_counter() - started
    log.info(
        "bulk: %d samples, %d of %d genes kept (%s); wrote %s in %.1f s",
        n_samples,
        len(result.gene_names),
        n_genes,
        how,
        output_path,
        seconds,
    )
    return {
        "output": str(output_path),
        "n_samples": n_samples,
        "n_genes_input": n_genes,
        "n_genes_kept": len(result.gene_names),
        "scaler_fitted": result.fitted,
        "seconds": seconds,
    }


def _write_report(
    report: str | os.PathLike,
    result: Any,
    threshold: float | None,
    parameters: dict[str, Any],
    record: dict[str, Any],
    *,
    input_path: str | os.PathLike,
) -> Path:
    """:func:`~gpu_genomics.report.bulk_report` of the job's figures; returns the report."""
    from ..report import bulk_report

    summary = {
        "input": str(input_path),
        "samples": len(result.sample_names),
        "input genes": len(result.input_gene_names),
        "kept genes": len(result.gene_names),
        "scaler": "fitted here" if result.fitted else f"applied from {result.scaler.source}",
        **{key: value for key, value in parameters.items() if key != "min_mean_log"},
    }
    return bulk_report(
        report,
        mean_log=result.gene_mean_log,
        kept=result.gene_mask,
        min_mean_log=threshold,
        summary=summary,
        provenance=record,
    )

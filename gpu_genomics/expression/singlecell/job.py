"""The ``scrna`` job: a count matrix through the single-cell recipe into ML-ready AnnData.

:func:`preprocess_file` reads any supported input (:func:`~.readers.read`), runs
:func:`~.recipe.preprocess` with every threshold a parameter, optionally writes Geneformer
rank-value tokens of the kept cells (:func:`~.rank.rank_encode`, from their raw counts over all
genes), and writes the AnnData (``.h5ad`` or ``.zarr``) whose contents :data:`SCRNA_OUTPUT`
declares.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ...errors import InputError, invalid
from ...io.files import stem
from ...io.provenance import flat, provenance
from ...io.spec import MAPPING, STRING, ArraySpec, OutputSpec
from ...io.store import check_output_folder, removed_on_failure
from .rank import rank_encode, rank_format_of
from .recipe import MITO_PREFIX, HvgFlavor

log = logging.getLogger("gpu_genomics")

INPUT_SUFFIXES = (".gz", ".h5ad", ".h5", ".hdf5", ".loom", ".zarr", ".csv", ".tsv", ".txt")

_C, _G, _CG = ("cells",), ("genes",), ("cells", "genes")
_F = "float32|float64"
_I = "int32|int64"
#: AnnData elements (``obs``/``var`` columns, ``layers``, ``uns`` entries) the recipe writes;
#: columns of the input's ``obs``/``var`` (such as 10x ``feature_types``) pass through.
SCRNA_OUTPUT = OutputSpec(
    "scrna: count matrix -> AnnData (.h5ad/.zarr)",
    (
        ArraySpec(
            "X",
            _F,
            _CG,
            "log1p(normalize_total) expression of the kept genes, scaled "
            "and clipped at scale_max_value (dense) unless scale_data=False (CSR)",
        ),
        ArraySpec("layers/counts", f"{_F}|{_I}", _CG, "raw counts of the kept cells and genes"),
        ArraySpec("obs/n_genes", _I, _C, "detected genes"),
        ArraySpec("obs/n_counts", _F, _C, "total counts"),
        ArraySpec("obs/percent_mito", _F, _C, "percent of counts in mito_prefix genes"),
        ArraySpec("obs/n_genes_by_counts", _I, _C, "scanpy: detected genes"),
        ArraySpec("obs/total_counts", _F, _C, "scanpy: total counts"),
        ArraySpec("obs/total_counts_mt", _F, _C, "scanpy: counts in mitochondrial genes"),
        ArraySpec("obs/pct_counts_mt", _F, _C, "scanpy: percent of counts in mitochondrial genes"),
        ArraySpec("var/gene_ids", STRING, _G, "gene ids (the input's, else its gene names)"),
        ArraySpec("var/gene_symbols", STRING, _G, "gene symbols (the input's, else its names)"),
        ArraySpec(
            "var/n_cells", _I, _G, "cells the gene is detected in (filter_genes)", "min_cells set"
        ),
        ArraySpec("var/mt", "bool", _G, "the gene's name starts with mito_prefix"),
        ArraySpec("var/n_cells_by_counts", _I, _G, "scanpy: cells the gene is detected in"),
        ArraySpec("var/mean_counts", _F, _G, "mean count over cells"),
        ArraySpec("var/pct_dropout_by_counts", _F, _G, "scanpy: percent of cells without it"),
        ArraySpec("var/total_counts", _F, _G, "scanpy: total counts"),
        ArraySpec("var/highly_variable", "bool", _G, "selected as highly variable"),
        ArraySpec(
            "var/means", _F, _G, "HVG: mean (of log-normalised values; of counts for seurat_v3)"
        ),
        ArraySpec(
            "var/dispersions", _F, _G, "HVG: dispersion (seurat_v3: variance / mean of counts)"
        ),
        ArraySpec(
            "var/dispersions_norm",
            _F,
            _G,
            "HVG: normalised dispersion",
            "hvg_flavor seurat, cell_ranger",
        ),
        ArraySpec("var/highly_variable_rank", _F, _G, "HVG rank", "hvg_flavor seurat_v3"),
        ArraySpec("var/variances", _F, _G, "HVG: variance of counts", "hvg_flavor seurat_v3"),
        ArraySpec("var/variances_norm", _F, _G, "HVG: normalised variance", "hvg_flavor seurat_v3"),
        ArraySpec("var/mean", _F, _G, "scale: the gene's mean", "scale_data"),
        ArraySpec("var/std", _F, _G, "scale: the gene's standard deviation", "scale_data"),
        ArraySpec(
            "uns/dataset_card",
            MAPPING,
            (),
            "dataset_id, name, modality, n_cells, "
            "n_genes, preprocessing, normalization, feature_selection, tool_version",
        ),
        ArraySpec(
            "uns/preprocess_steps",
            MAPPING,
            (),
            "step, n_cells, n_genes, seconds: equal-length arrays, one entry per step",
        ),
        ArraySpec(
            "uns/preprocess_recipe",
            MAPPING,
            (),
            "the recipe's parameters ('none': skipped) and backend",
        ),
        ArraySpec(
            "uns/provenance",
            MAPPING,
            (),
            "gpu_genomics_version, tool, command, "
            "parameters, inputs, created, device (nested values as JSON)",
        ),
        ArraySpec("uns/hvg", MAPPING, (), "scanpy: the HVG flavor"),
        ArraySpec("uns/log1p", MAPPING, (), "scanpy: the log1p base"),
    ),
)


def preprocess_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    transpose: bool = False,
    min_genes: int | None = 200,
    min_cells: int | None = 3,
    max_genes: int | None = 2500,
    max_pct_mito: float | None = 5.0,
    mito_prefix: str = MITO_PREFIX,
    target_sum: float | None = 1e4,
    n_top_genes: int | None = 2000,
    hvg_flavor: HvgFlavor = "seurat",
    subset_hvg: bool = True,
    scale_max_value: float | None = 10.0,
    scale_data: bool = True,
    rank_output: str | os.PathLike | None = None,
    n_tokens: int = 2048,
    gene_medians: str | os.PathLike | None = None,
    token_dictionary: str | os.PathLike | None = None,
    special_tokens: bool = False,
    dataset_id: str | None = None,
    dataset_name: str | None = None,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the single-cell recipe on a count matrix file and write the result.

    With the defaults this is the recipe of ``docs/singlecell.md#recipe``:
    ``filter_cells(min_genes=200)``, ``filter_genes(min_cells=3)``, QC metrics with ``MT-``
    genes, keep cells with fewer than 2,500 genes and 5% mitochondrial counts,
    ``normalize_total(1e4)``, ``log1p``, 2,000 highly variable genes (seurat),
    ``scale(max_value=10)``; raw counts kept in ``layers["counts"]``. ``None`` skips a bound.

    Args:
        input_path: ``.h5ad``, AnnData ``.zarr``, 10x ``.h5``, a 10x matrix folder, ``.loom``
            or CSV/TSV (optionally gzip).
        output_path: ``.h5ad`` or ``.zarr``.
        transpose: CSV/TSV input is genes x cells (default cells x genes).
        min_genes: ``filter_cells``: keep cells with at least this many genes.
        min_cells: ``filter_genes``: keep genes detected in at least this many cells.
        max_genes: keep cells with fewer detected genes.
        max_pct_mito: keep cells with a smaller percent of mitochondrial counts.
        mito_prefix: names of mitochondrial genes start with it.
        target_sum: ``normalize_total``'s target (``None``: scanpy's median rule).
        n_top_genes: highly variable genes kept (``None``: scanpy's dispersion cut-offs).
        hvg_flavor: ``seurat``, ``cell_ranger`` or ``seurat_v3``.
        subset_hvg: keep only the highly variable genes (else flag them).
        scale_max_value: ``scale`` clips at this.
        scale_data: run the final ``scale`` step.
        rank_output: also write Geneformer rank-value tokens of the kept cells here
            (``.parquet``, ``.h5`` or ``.zarr``).
        n_tokens: rank encoding length (Geneformer's ``model_input_size``).
        gene_medians: gene medians file (pickle, JSON, TSV); default: from the data.
        token_dictionary: token dictionary file; default: built from the data.
        special_tokens: add ``<cls>`` and ``<eos>`` (Geneformer V2).
        dataset_id: the dataset card's id (default: the input's name).
        dataset_name: the dataset card's name.
        device: ``"auto" | "gpu" | "cpu"`` (GPU: rapids-singlecell).
        progress: unused (each step logs its figures); accepted like every job's.
        command: the command line stored in the provenance (default: this process's).

    Returns:
        A summary: ``output``, ``n_cells``, ``n_genes``, ``rank_output``, ``seconds``.

    Raises:
        InputError: a bad option or input; nothing is written.

    Memory: the whole matrix (scanpy and rapids-singlecell hold it), a few times over while
    the recipe runs.
    """
    from . import (
        dataset_card,
        load_gene_medians,
        load_token_dictionary,
        preprocess,
        read,
        require_scanpy,
        resolve_backend,
        write,
        write_rank_encoding,
    )
    from .recipe import recorded_recipe

    started = time.perf_counter()
    require_scanpy()
    output_path = Path(output_path)
    if not output_path.name.lower().endswith((".h5ad", ".zarr")):
        raise InputError(f"{output_path}: the output must end in .h5ad or .zarr")
    check_output_folder(output_path)
    backend = resolve_backend(device)
    medians = tokens = None
    if rank_output is not None:
        if rank_format_of(rank_output) is None:
            raise invalid(
                "rank_output", str(rank_output), "must end in .parquet/.pq, .h5/.hdf5 or .zarr"
            )
        check_output_folder(rank_output)
        medians = load_gene_medians(gene_medians) if gene_medians else None
        tokens = load_token_dictionary(token_dictionary) if token_dictionary else None

    adata = read(input_path, transpose=transpose)
    log.info(
        "read %s: %d cells x %d genes (%.2f s)",
        input_path,
        adata.n_obs,
        adata.n_vars,
        time.perf_counter() - started,
    )
    encodings: list[Any] = []

    def encode_ranks(counts: Any) -> None:
        encodings.append(
            _rank_encode(
                counts, n_tokens, medians, tokens, special_tokens=special_tokens, device=device
            )
        )

    try:
        preprocess(
            adata,
            min_genes=min_genes,
            min_cells=min_cells,
            max_genes=max_genes,
            max_pct_mito=max_pct_mito,
            mito_prefix=mito_prefix,
            target_sum=target_sum,
            n_top_genes=n_top_genes,
            hvg_flavor=hvg_flavor,
            subset_hvg=subset_hvg,
            scale_max_value=scale_max_value,
            scale_data=scale_data,
            on_counts=encode_ranks if rank_output is not None else None,
            device=backend,
        )
    except InputError as exc:
        raise InputError(f"{input_path}: {exc}") from None
    recipe = recorded_recipe(adata)
    parameters = {
        "transpose": transpose,
        **{key: value for key, value in recipe.items() if key != "backend"},
        "rank_output": rank_output,
        "n_tokens": n_tokens,
        "gene_medians": gene_medians,
        "token_dictionary": token_dictionary,
        "special_tokens": special_tokens,
        "dataset_id": dataset_id,
        "dataset_name": dataset_name,
    }
    record = provenance(
        "gpu-genomics scrna",
        parameters=parameters,
        inputs={
            "counts": input_path,
            "gene medians": gene_medians,
            "token dictionary": token_dictionary,
        },
        device=backend,
        command=command,
    )
    adata.uns["dataset_card"] = dataset_card(
        adata,
        dataset_id=dataset_id or stem(Path(input_path).name, INPUT_SUFFIXES, ignore_case=True),
        name=dataset_name,
    )
    adata.uns["provenance"] = flat(record)
    written = time.perf_counter()
    if encodings:  # first: the main output is written last, or not at all
        write_rank_encoding(encodings[0], rank_output, provenance=record)
    with removed_on_failure(rank_output):
        write(adata, output_path)
    seconds = time.perf_counter() - started
    log.info(
        "wrote %s: %d cells x %d genes (%.2f s); total %.2f s",
        output_path,
        adata.n_obs,
        adata.n_vars,
        time.perf_counter() - written,
        seconds,
    )
    return {
        "output": str(output_path),
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "rank_output": None if rank_output is None else str(rank_output),
        "seconds": seconds,
    }


def _rank_encode(
    adata: Any,
    n_tokens: int,
    medians: dict[str, float] | None,
    tokens: dict[str, int] | None,
    *,
    special_tokens: bool,
    device: str | None,
) -> Any:
    """Rank-encode the kept cells' counts on ``device`` (it needs CuPy only, not rapids)."""
    started = time.perf_counter()
    encoding = rank_encode(
        adata,
        n_tokens=n_tokens,
        gene_medians=medians,
        token_dictionary=tokens,
        special_tokens=special_tokens,
        device=device,
    )
    log.info(
        "rank_encode            %9d cells %7d tokens  %8.2f s",
        adata.n_obs,
        int(encoding.offsets[-1]),
        time.perf_counter() - started,
    )
    return encoding

"""The ``scrna`` job: a count matrix through the single-cell recipe into ML-ready AnnData.

:func:`preprocess_file` reads any supported input (:func:`~.readers.read`), runs
:func:`~.recipe.preprocess` with every threshold a parameter, optionally writes Geneformer
rank-value tokens of the kept cells (:func:`~.rank.rank_encode`, from their raw counts over all
genes), and writes the AnnData (``.h5ad`` or ``.zarr``) whose contents :data:`SCRNA_OUTPUT`
declares. A matrix larger than memory, or a Dask client, runs the recipe out of core instead
(:mod:`.chunked`, with the same output; :func:`out_of_core_source` decides).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...device import requested_device
from ...errors import InputError, invalid, positive_int
from ...execution import worker_count
from ...io.files import stem
from ...io.provenance import flat, provenance
from ...io.spec import MAPPING, STRING, ArraySpec, OutputSpec
from ...io.store import check_output_folder, removed_on_failure
from ...report.html import check_report_path, written_reports
from .blocks import (
    Carried,
    CountBlocks,
    is_lazy_10x,
    is_legacy_file,
    open_carried,
    open_count_blocks,
)
from .chunked import (
    DEFAULT_CHUNK_CELLS,
    RECIPE_LAYERS,
    RankOptions,
    preprocess_blocks,
    rank_obs,
    write_blocks,
)
from .rank import ATTRIBUTE_FORMATS, RankWriter, rank_format_of, write_rank_encoding
from .recipe import MITO_PREFIX, HvgFlavor, Recipe, _backend_name, recorded_recipe

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
        ArraySpec(
            "layers/X_binned",
            "int64",
            _CG,
            "scGPT value bins (1..value_bins-1, 0 for zeros, CSR) of each cell's "
            "log1p(normalize_total) values of the kept genes, before scaling",
            "value_bins set",
        ),
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
    value_bins: int | None = None,
    bin_seed: int = 0,
    rank_output: str | os.PathLike | None = None,
    model_version: int = 2,
    n_tokens: int | None = None,
    gene_medians: str | os.PathLike | None = None,
    token_dictionary: str | os.PathLike | None = None,
    gene_mapping: str | os.PathLike | None = None,
    special_tokens: bool | None = None,
    gene_key: str | None = None,
    ties: str = "geneformer",
    rank_attributes: Any = None,
    dataset_id: str | None = None,
    dataset_name: str | None = None,
    chunk_cells: int | None = None,
    report: str | os.PathLike | None = None,
    client: Any = None,
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
        value_bins: also write scGPT's value bins (``n_bins``) of the log-normalised values
            of the output genes to ``layers["X_binned"]`` (:func:`~.recipe.preprocess`); the
            same bins in memory and out of core.
        bin_seed: seeds the binning's random tie breaks.
        rank_output: also write Geneformer rank-value tokens of the kept cells here
            (``.parquet``, ``.dataset``, ``.h5`` or ``.zarr``; :func:`~.rank.rank_encode` of
            their raw counts over all genes, cells whose input ``obs["filter_pass"]`` is not 1
            and cells without a gene left out).
        model_version: Geneformer's version: 1 (2,048 tokens) or 2 (4,096 with
            ``<cls>``/``<eos>``).
        n_tokens: rank encoding length (Geneformer's ``model_input_size``); default the
            version's.
        gene_medians: gene medians file (pickle, JSON, TSV); default: from the data.
        token_dictionary: token dictionary file; default: built from the data.
        gene_mapping: gene id mapping file (Geneformer's ``ensembl_mapping_dict``).
        special_tokens: add ``<cls>`` and ``<eos>``; default the version's.
        gene_key: rank encoding: the ``var`` column of gene ids (default ``ensembl_id`` when
            present, as Geneformer reads, else ``gene_ids``, else the gene names).
        ties: rank encoding: ``geneformer`` (NumPy's ``argsort``, as the tokenizer) or
            ``stable`` (by gene).
        rank_attributes: ``obs`` columns written beside the tokens (``"column"`` or
            ``"column:name"``; Geneformer's custom attributes; ``.parquet``/``.dataset``).
        dataset_id: the dataset card's id (default: the input's name).
        dataset_name: the dataset card's name.
        chunk_cells: run out of core (:mod:`.chunked`), reading this many cells per task;
            default: in memory, unless the matrix would not fit in the memory available
            (:func:`needed_memory`; then blocks of
            :data:`~.chunked.DEFAULT_CHUNK_CELLS`, said in one log line) or ``client`` is given.
        report: also write a QC report here (``.html``, :func:`~gpu_genomics.report.scrna_report`):
            genes, counts and % mitochondrial counts per cell before and after the filters,
            with the thresholds; the HVG mean-dispersion plot. In memory only: the
            out-of-core recipe refuses it (one line, before any work).
        client: a :class:`distributed.Client`: run the out-of-core recipe's tasks on its
            cluster; default: this process.
        device: ``"auto" | "gpu" | "cpu"`` (GPU: rapids-singlecell; the out-of-core recipe
            runs on the CPU).
        progress: unused (each step logs its figures); accepted like every job's.
        command: the command line stored in the provenance (default: this process's).

    Returns:
        A summary: ``output``, ``n_cells``, ``n_genes``, ``rank_output``, ``seconds``.

    Raises:
        InputError: a bad option or input; nothing is written.

    Memory: in memory, the whole matrix a few times over (:func:`needed_memory`); out of
    core, one block of ``chunk_cells`` cells per task and the per-cell columns on the client
    (see :mod:`.chunked`). A report adds three float64 per input cell and per kept cell, and
    two float64 and a flag per gene ranked by the HVG step.
    """
    from . import (
        dataset_card,
        load_gene_mapping,
        load_gene_medians,
        load_token_dictionary,
        require_scanpy,
        resolve_backend,
    )

    started = time.perf_counter()
    require_scanpy()
    recipe = Recipe.of(locals())  # the recipe's keyword arguments, checked
    if chunk_cells is not None:
        chunk_cells = positive_int("chunk_cells", chunk_cells)
    output_path = Path(output_path)
    if not output_path.name.lower().endswith((".h5ad", ".zarr")):
        raise InputError(f"{output_path}: the output must end in .h5ad or .zarr")
    check_output_folder(output_path)
    out_of_core = chunk_cells is not None or client is not None
    _check_report(report, outputs=(output_path, rank_output), out_of_core=out_of_core)
    backend = resolve_backend(device)
    rank: RankOptions | None = None
    encodings: list[Any] = []  # the in-memory encoding, once the recipe has made it
    if rank_output is not None:
        if rank_format_of(rank_output) is None:
            raise invalid(
                "rank_output",
                str(rank_output),
                "must end in .parquet/.pq, .dataset, .h5/.hdf5 or .zarr",
            )
        check_output_folder(rank_output)
        if Path(rank_output).resolve() == output_path.resolve():
            raise invalid("rank_output", str(rank_output), "must differ from the output")
        if rank_attributes and rank_format_of(rank_output) not in ATTRIBUTE_FORMATS:
            raise invalid(
                "rank_attributes",
                list(rank_attributes),
                "are written to .parquet and .dataset rank outputs only",
            )
        rank = RankOptions.of(
            model_version=model_version,
            n_tokens=n_tokens,
            special_tokens=special_tokens,
            medians=load_gene_medians(gene_medians) if gene_medians else None,
            tokens=load_token_dictionary(token_dictionary) if token_dictionary else None,
            gene_mapping=load_gene_mapping(gene_mapping) if gene_mapping else None,
            ties=ties,
            gene_key=gene_key,
            attributes=list(rank_attributes or []),
        )

    source = out_of_core_source(
        input_path, output_path, recipe, chunk_cells=chunk_cells, client=client,
        device=device, transpose=transpose,
    )  # fmt: skip
    qc: dict[str, Any] = {}  # the report's figures, in memory
    try:
        _check_report(report, out_of_core=source is not None)  # too large for memory
        if source is None:
            adata = _preprocess_in_memory(
                input_path, transpose, recipe, backend, rank=rank, rank_device=device,
                encodings=encodings, qc=None if report is None else qc,
            )  # fmt: skip
        else:
            backend = "cpu"
            try:
                result = preprocess_blocks(
                    source.blocks,
                    source.obs,
                    source.var,
                    source.uns,
                    recipe,
                    chunk_cells=source.chunk_cells,
                    client=client,
                    backend_name=_backend_name("cpu"),
                    rank=rank,
                    carried=source.carried,
                )
            except InputError as exc:
                raise InputError(f"{input_path}: {exc}") from None
            adata = result.skeleton
        parameters = {
            "transpose": transpose,
            **{key: value for key, value in recorded_recipe(adata).items() if key != "backend"},
            "rank_output": rank_output,
            "model_version": model_version,
            "n_tokens": None if rank is None else rank.n_tokens,
            "gene_medians": gene_medians,
            "token_dictionary": token_dictionary,
            "gene_mapping": gene_mapping,
            "special_tokens": None if rank is None else rank.special_tokens,
            "gene_key": gene_key,
            "ties": ties,
            "rank_attributes": None if rank is None else rank.attributes,
            "dataset_id": dataset_id,
            "dataset_name": dataset_name,
            "chunk_cells": None if source is None else source.chunk_cells,
            "workers": None if client is None else worker_count(client),
        }
        record = provenance(
            "gpu-genomics scrna",
            parameters=parameters,
            inputs={
                "counts": input_path,
                "gene medians": gene_medians,
                "token dictionary": token_dictionary,
                "gene mapping": gene_mapping,
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
        _write_outputs(
            adata,
            output_path,
            result if source is not None else None,
            encoding=encodings[0] if encodings else None,
            rank_output=rank_output,
            provenance=record,
            client=client,
            report=None if report is None else (report, qc, recipe, input_path),
        )
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
            "out_of_core": source is not None,
            "seconds": seconds,
        }
    finally:  # the temporary copy of a converted input
        if source is not None:
            source.remove()


def _preprocess_in_memory(
    input_path: str | os.PathLike,
    transpose: bool,  # noqa: FBT001 (private; positional like its neighbours)
    recipe: Recipe,
    backend: str,
    *,
    rank: RankOptions | None,
    rank_device: str | None,
    encodings: list[Any],
    qc: dict[str, Any] | None = None,
) -> Any:
    """Read the whole matrix and run :func:`~.recipe.preprocess`.

    With ``rank``, the kept cells' encoding (over all genes) is appended to ``encodings`` on
    the way, on ``rank_device`` (it needs CuPy only, not rapids). With ``qc`` (a dict, for the
    report), ``qc["before"]`` gets the input cells' QC values (:func:`cell_qc`) and
    ``qc["hvg"]`` the HVG columns of every gene the HVG step ranked.
    """
    from . import preprocess, read

    started = time.perf_counter()
    adata = read(input_path, transpose=transpose)
    if rank is not None:
        rank_obs(adata.obs, rank)  # the attribute columns, before the recipe runs
    log.info(
        "read %s: %d cells x %d genes (%.2f s)",
        input_path,
        adata.n_obs,
        adata.n_vars,
        time.perf_counter() - started,
    )

    def encode_ranks(counts: Any) -> None:
        assert rank is not None
        started = time.perf_counter()
        encoding = rank.encode_anndata(counts, gene_key=rank.gene_key, device=rank_device)
        log.info(
            "rank_encode            %9d cells %7d tokens  %8.2f s",
            counts.n_obs,
            int(encoding.offsets[-1]),
            time.perf_counter() - started,
        )
        encodings.append(encoding)

    on_hvg = None
    if qc is not None:
        qc["before"] = cell_qc(adata, mito_prefix=recipe.mito_prefix)

        def on_hvg(var: Any) -> None:
            qc["hvg"] = {
                "means": var["means"].to_numpy(dtype=np.float64),
                "dispersions": var["dispersions"].to_numpy(dtype=np.float64),
                "highly_variable": var["highly_variable"].to_numpy(dtype=bool),
            }

    try:
        preprocess(
            adata,
            **dataclasses.asdict(recipe),
            on_counts=encode_ranks if rank is not None else None,
            on_hvg=on_hvg,
            device=backend,
        )
    except InputError as exc:
        raise InputError(f"{input_path}: {exc}") from None
    return adata


def cell_qc(
    adata: Any, *, mito_prefix: str = MITO_PREFIX, block_cells: int = 16_384
) -> dict[str, np.ndarray]:
    """The QC values of every cell of ``adata`` (raw counts in ``X``), over all its genes.

    As scanpy's ``calculate_qc_metrics``: ``n_genes`` (values > 0), ``total_counts`` and
    ``pct_counts_mt`` (percent of the counts in genes whose name starts with
    ``mito_prefix``; 0 for a cell without counts). One pass over ``X``, ``block_cells`` rows
    at a time for a CSR or dense ``X`` (so a block's entries are the only copy); three
    float64 per cell.
    """
    import scipy.sparse as sp

    from .recipe import axis_statistics

    x = adata.X
    mito = np.asarray(adata.var_names.str.startswith(mito_prefix), dtype=bool)
    by_rows = isinstance(x, np.ndarray) or (sp.issparse(x) and x.format == "csr")
    step = block_cells if by_rows else max(1, x.shape[0])
    parts = []
    for start in range(0, x.shape[0], step):
        block = x[start : start + step] if by_rows else x
        n_genes, totals = axis_statistics(block, axis=1)
        mito_counts = block[:, mito].sum(axis=1) if mito.any() else np.zeros(len(totals))
        parts.append(
            np.stack(
                [
                    np.asarray(n_genes, dtype=np.float64).ravel(),
                    np.asarray(totals, dtype=np.float64).ravel(),
                    np.asarray(mito_counts, dtype=np.float64).ravel(),
                ]
            )
        )
    n_genes, totals, mito_counts = np.concatenate(parts, axis=1) if parts else np.zeros((3, 0))
    percent = np.divide(100 * mito_counts, totals, out=np.zeros_like(totals), where=totals > 0)
    return {"n_genes": n_genes, "total_counts": totals, "pct_counts_mt": percent}


def _check_report(
    report: str | os.PathLike | None,
    *,
    outputs: tuple[str | os.PathLike | None, ...] = (),
    out_of_core: bool,
) -> None:
    """Check ``report`` before any work (with ``outputs``); refuse it out of core.

    Raises:
        InputError: a bad report path (:func:`~gpu_genomics.report.check_report_path`), or
            a report of the out-of-core recipe, which does not collect the per-cell figures
            before the filters nor the HVG columns of the genes it drops.
    """
    if report is None:
        return
    if outputs:
        check_report_path(report, outputs=outputs)
    if out_of_core:
        raise invalid(
            "report",
            str(report),
            "is not written by the out-of-core recipe yet (chunk_cells, --workers/--scheduler, "
            "or a matrix larger than the memory available); drop it, or run in memory",
        )


def _write_report(
    report: str | os.PathLike,
    adata: Any,
    qc: dict[str, Any],
    recipe: Recipe,
    *,
    input_path: str | os.PathLike,
    provenance: dict[str, Any],
) -> Path:
    """:func:`~gpu_genomics.report.scrna_report` of the in-memory recipe's figures."""
    from ...report import scrna_report

    obs = adata.obs
    after = {
        "n_genes": obs["n_genes_by_counts"].to_numpy(dtype=np.float64),
        "total_counts": obs["total_counts"].to_numpy(dtype=np.float64),
        "pct_counts_mt": obs["pct_counts_mt"].to_numpy(dtype=np.float64),
    }
    before = qc["before"]
    summary: dict[str, Any] = {
        "input": str(input_path),
        "input cells": len(before["n_genes"]),
        "kept cells": int(adata.n_obs),
        "output genes": int(adata.n_vars),
    }
    steps = adata.uns.get("preprocess_steps", {})
    for name, cells, genes in zip(
        steps.get("step", []), steps.get("n_cells", []), steps.get("n_genes", []), strict=True
    ):
        summary[f"after {name}"] = f"{int(cells):,} cells x {int(genes):,} genes"
    summary.update(
        min_cells=recipe.min_cells,
        mito_prefix=recipe.mito_prefix,
        target_sum=recipe.target_sum,
        n_top_genes=recipe.n_top_genes,
        hvg_flavor=recipe.hvg_flavor,
    )
    return scrna_report(
        report,
        before=before,
        after=after,
        min_genes=recipe.min_genes,
        max_genes=recipe.max_genes,
        max_pct_mito=recipe.max_pct_mito,
        hvg=qc.get("hvg"),
        hvg_flavor=recipe.hvg_flavor,
        summary=summary,
        provenance=provenance,
    )


def _write_outputs(
    adata: Any,
    output_path: Path,
    result: Any,
    *,
    encoding: Any,
    rank_output: str | os.PathLike | None,
    provenance: dict[str, Any],
    client: Any,
    report: tuple[str | os.PathLike, dict[str, Any], Recipe, str | os.PathLike] | None = None,
) -> None:
    """Write the AnnData (in memory) or stream it (``result``, out of core), and the tokens.

    The tokens: ``encoding`` in memory, or streamed by the rows tasks out of core when
    ``rank_output`` is given. The main output is written last, or removed when the tokens
    fail: never one without the other. ``report``: ``(path, qc, recipe, input path)`` of the
    QC report (in memory), written first and removed when an output fails.
    """
    with written_reports() as reports:
        if report is not None:
            path, qc, recipe, input_path = report
            reports.append(
                _write_report(path, adata, qc, recipe, input_path=input_path, provenance=provenance)
            )
        _write_data(
            adata,
            output_path,
            result,
            encoding=encoding,
            rank_output=rank_output,
            provenance=provenance,
            client=client,
        )


def _write_data(
    adata: Any,
    output_path: Path,
    result: Any,
    *,
    encoding: Any,
    rank_output: str | os.PathLike | None,
    provenance: dict[str, Any],
    client: Any,
) -> None:
    """:func:`_write_outputs` but the report."""
    from .readers import write

    if result is None:
        if encoding is not None:
            write_rank_encoding(encoding, rank_output, provenance=provenance)
        with removed_on_failure(rank_output):
            write(adata, output_path)
    elif rank_output is None:
        write_blocks(result, output_path, client=client)
    else:
        with (
            removed_on_failure(output_path),
            RankWriter(rank_output, provenance=provenance) as ranks,
        ):
            write_blocks(result, output_path, client=client, ranks=ranks)


@dataclasses.dataclass
class OutOfCoreSource:
    """The matrix the out-of-core recipe reads, and a temporary copy to remove after it.

    ``carried``: the input's ``obsm``, other ``layers``, ``obsp``, ``varm``, ``varp`` and
    ``raw``, carried into the output as in memory (:func:`~.blocks.open_carried`).
    """

    blocks: CountBlocks
    obs: Any
    var: Any
    uns: dict
    chunk_cells: int
    temporary: Path | None = None
    carried: Carried = dataclasses.field(default_factory=Carried)

    def remove(self) -> None:
        """Remove the temporary Zarr copy of the input, if one was made."""
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary = None


def needed_memory(blocks: CountBlocks, recipe: Recipe, *, carried: Carried | None = None) -> int:
    """Bytes the in-memory recipe needs for ``blocks``, as this job estimates them.

    Three copies of the stored matrix (``X``, ``layers["counts"]`` and scanpy's subsetting
    copies) plus, when scaling, the dense output (12 bytes per cell and output gene: the
    float32 densified values and the float64 result). With ``carried`` (the input's other
    elements, :func:`~.blocks.open_carried`), which the in-memory recipe reads whole too, two
    copies of each (as read, and anndata's subsetting copy): the per-cell matrices (``obsm``
    arrays, other layers, ``obsp``, ``raw/X``) sized from their stored shapes and entries
    without reading their values (dense: values; CSR: values, int32 indices and int64 row
    offsets), the elements already read (``obsm`` DataFrames, ``varm``, ``varp``, ``raw.var``,
    ``raw.varm``) by their bytes in memory, and the input's own ``layers["counts"]`` (read, then
    replaced by the recipe's), if any.
    """
    n_out = blocks.n_genes
    if recipe.subset_hvg and recipe.n_top_genes is not None:
        n_out = min(n_out, recipe.n_top_genes)
    dense = blocks.n_cells * n_out * 12 if recipe.scale_data else 0
    extra = 0
    if carried is not None:
        stored = [(m.path, m.store, m.key) for m in carried.by_rows()]
        stored += [(blocks.path, blocks.store, f"layers/{name}") for name in RECIPE_LAYERS]
        extra = sum(_stored_bytes(*element) for element in stored)
        extra += sum(
            _held_bytes(element)
            for element in (
                *carried.obsm_frames.values(), *carried.varm.values(), *carried.varp.values(),
                carried.raw_var, *carried.raw_varm.values(),
            )
        )  # fmt: skip
    return 3 * blocks.stored_bytes() + dense + 2 * extra


def _stored_bytes(path: str, store: str, key: str) -> int:
    """Bytes in memory of the element ``key`` of an AnnData file (0 if it has none there).

    From its shape and dtype (dense) or its stored entries and row offsets (sparse), read
    from the file's metadata only.
    """
    if store not in ("h5ad", "zarr"):
        return 0
    if store == "zarr":
        import zarr

        root: Any = zarr.open_group(path, mode="r")
        return _element_bytes(root, key)
    import h5py

    with h5py.File(path, "r") as root:
        return _element_bytes(root, key)


def _element_bytes(root: Any, key: str) -> int:
    if key not in root:
        return 0
    element = root[key]
    if not hasattr(element, "keys"):  # a dense array
        return int(np.prod(element.shape)) * element.dtype.itemsize
    if "data" not in element or "indptr" not in element:
        return 0
    data, indptr = element["data"], element["indptr"]
    return int(data.shape[0]) * (data.dtype.itemsize + 4) + 8 * int(indptr.shape[0])


def _held_bytes(element: Any) -> int:
    """Bytes of an element held in memory (an array, a sparse matrix, a DataFrame)."""
    import pandas as pd
    import scipy.sparse as sp

    if element is None:
        return 0
    if isinstance(element, pd.DataFrame):
        return int(element.memory_usage(index=True, deep=True).sum())
    if sp.issparse(element):
        return sum(
            int(getattr(element, name).nbytes)
            for name in ("data", "indices", "indptr", "row", "col")
            if hasattr(element, name)
        )
    return int(getattr(element, "nbytes", 0))


def out_of_core_source(
    input_path: str | os.PathLike,
    output_path: Path,
    recipe: Recipe,
    *,
    chunk_cells: int | None,
    client: Any,
    device: str | None,
    transpose: bool = False,
) -> OutOfCoreSource | None:
    """The input as the out-of-core recipe reads it, or None to run in memory.

    Out of core when ``chunk_cells`` or ``client`` is given, or when an ``.h5ad``, ``.zarr``
    or Cell Ranger v3+ ``.h5`` input would need more memory than is available
    (:func:`needed_memory` of ``X`` and of the carried elements, said in one log line); those
    are read by blocks. Other formats (a 10x matrix folder, ``.loom``, CSV/TSV) run in memory
    unless forced; out of core they are converted once, streaming a block of cells at a time,
    to a temporary Zarr beside the output (removed afterwards), which the tasks read
    (:func:`_converted_source`).

    Raises:
        InputError: out of core with ``device="gpu"`` (the out-of-core recipe runs on the CPU),
            or an input that cannot be read.
    """
    from ...info import available_memory
    from .readers import detect_format

    path = Path(input_path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = detect_format(path)
    forced = chunk_cells is not None or client is not None
    lazy = readable_by_blocks(path, kind)
    if not forced and not lazy:
        return None
    if forced:
        why = "--workers/--scheduler" if chunk_cells is None else "--chunk-cells"
        if requested_device(device) == "gpu":
            raise InputError(f"device='gpu': the out-of-core recipe runs on the CPU; drop {why}")
    if lazy:
        blocks, obs, var, uns = open_count_blocks(path, kind)
    else:
        return _converted_source(path, output_path, transpose=transpose, chunk_cells=chunk_cells)
    carried = _carried_if_readable(path, kind, forced=forced)
    if not forced:
        need = needed_memory(blocks, recipe, carried=carried)
        available = available_memory()
        if available is None or need <= available:
            return None
        if requested_device(device) == "gpu":
            log.warning(
                "the matrix needs about %.1f GiB in memory, %.1f GiB are available; running "
                "in memory all the same (the GPU recipe runs in memory only)",
                need / 2**30,
                available / 2**30,
            )
            return None
        log.info(
            "the matrix needs about %.1f GiB in memory, %.1f GiB are available: running out of "
            "core, %d cells at a time (--chunk-cells)",
            need / 2**30,
            available / 2**30,
            DEFAULT_CHUNK_CELLS,
        )
    if carried is None:  # raises the error above, now that out of core it matters
        carried = open_carried(path, kind, layers_written=RECIPE_LAYERS)
    return OutOfCoreSource(
        blocks, obs, var, uns, chunk_cells or DEFAULT_CHUNK_CELLS, carried=carried
    )


def readable_by_blocks(path: Path, kind: str) -> bool:
    """Whether the out-of-core tasks read ``path`` in place (else it is converted once).

    ``.h5ad``, AnnData ``.zarr`` (but anndata < 0.7's layout, which anndata reads whole) and
    Cell Ranger v3+ ``.h5``.
    """
    if kind == "10x-h5":
        return is_lazy_10x(path)
    return kind in ("h5ad", "zarr") and not is_legacy_file(path, kind)


def blocks_source(
    input_path: str | os.PathLike, output_path: Path, *, transpose: bool = False
) -> OutOfCoreSource:
    """The input as block-by-block jobs read it: in place, or converted once to a Zarr.

    As :func:`out_of_core_source` when forced, without the carried elements: inputs
    :func:`readable_by_blocks` are opened in place, the others converted (streaming) to a
    temporary Zarr beside ``output_path``, which :meth:`OutOfCoreSource.remove` removes.

    Raises:
        InputError: a missing or unreadable input.
    """
    from .readers import detect_format

    path = Path(input_path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = detect_format(path)
    if not readable_by_blocks(path, kind):
        return _converted_source(path, output_path, transpose=transpose, chunk_cells=None)
    blocks, obs, var, uns = open_count_blocks(path, kind)
    return OutOfCoreSource(blocks, obs, var, uns, DEFAULT_CHUNK_CELLS)


def _carried_if_readable(path: Path, kind: str, *, forced: bool) -> Carried | None:
    """The input's carried elements (:func:`~.blocks.open_carried`), or None.

    None, unless ``forced``, where one cannot be read by cells (a CSC layer: in memory anndata
    reads it all the same, so the error waits until the job goes out of core).
    """
    try:
        return open_carried(path, kind, layers_written=RECIPE_LAYERS)
    except InputError:
        if forced:
            raise  # a per-cell element that cannot be read by cells, naming the fix
        return None


def _converted_source(
    path: Path, output_path: Path, *, transpose: bool, chunk_cells: int | None
) -> OutOfCoreSource:
    """Convert ``path`` once to a temporary CSR Zarr beside the output, which the tasks read.

    A 10x matrix folder, ``.loom`` or CSV/TSV table is converted streaming, a block of
    ``chunk_cells`` cells (default :data:`~.chunked.DEFAULT_CHUNK_CELLS`) at a time
    (:func:`~.convert.convert_to_zarr`: memory one block, never the whole matrix); any other
    input read here (a Cell Ranger 2 ``.h5``, an anndata < 0.7 file) is read whole
    (:func:`~.readers.read`) and written. Said in one log line; the folder is removed by
    :meth:`OutOfCoreSource.remove` (or here, on failure).
    """
    from .convert import STREAMED_FORMATS, convert_to_zarr
    from .readers import detect_format, read

    kind = detect_format(path)
    block = chunk_cells or DEFAULT_CHUNK_CELLS
    temporary = Path(tempfile.mkdtemp(prefix=f".{output_path.name}.input-", dir=output_path.parent))
    store = temporary / "input.zarr"
    try:
        if kind in STREAMED_FORMATS:
            convert_to_zarr(path, store, kind=kind, transpose=transpose, chunk_cells=block)
            how = f"converted once, streaming {block} cells at a time,"
        else:
            adata = read(path, transpose=transpose)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Writing zarr v2 data")
                adata.write_zarr(store)
            del adata
            how = "read in memory and written once"
        log.info("%s: %s to a temporary Zarr for the out-of-core tasks", path, how)
        blocks, obs, var, uns = open_count_blocks(store, "zarr")
        carried = open_carried(store, "zarr", layers_written=RECIPE_LAYERS)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return OutOfCoreSource(
        blocks, obs, var, uns, block, temporary=temporary, carried=carried,
    )  # fmt: skip

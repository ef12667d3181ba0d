"""Single-cell RNA-seq preprocessing on AnnData: rapids-singlecell on the GPU, scanpy on the CPU.

Also importable as ``gpu_genomics.sc``. Every function takes ``device="auto"|"gpu"|"cpu"``; the
GPU backend needs a usable GPU and an importable rapids-singlecell (see :mod:`._backend`).
"""

from __future__ import annotations

from ._backend import rapids_status, require_scanpy, resolve_backend
from ._matrix import check_counts
from .augment import downsample_counts, simulate_doublets
from .rank import (
    RankEncoding,
    bin_values,
    compute_gene_medians,
    default_token_dictionary,
    load_gene_medians,
    load_token_dictionary,
    rank_encode,
    write_rank_encoding,
)
from .readers import read, write
from .recipe import (
    HVG_FLAVORS,
    annotate_genes,
    dataset_card,
    filter_cells,
    filter_genes,
    filter_qc,
    highly_variable_genes,
    log1p,
    normalize_total,
    preprocess,
    qc_metrics,
    scale,
)

__all__ = [
    "HVG_FLAVORS",
    "RankEncoding",
    "annotate_genes",
    "bin_values",
    "check_counts",
    "compute_gene_medians",
    "dataset_card",
    "default_token_dictionary",
    "downsample_counts",
    "filter_cells",
    "filter_genes",
    "filter_qc",
    "highly_variable_genes",
    "load_gene_medians",
    "load_token_dictionary",
    "log1p",
    "normalize_total",
    "preprocess",
    "qc_metrics",
    "rank_encode",
    "rapids_status",
    "read",
    "require_scanpy",
    "resolve_backend",
    "scale",
    "simulate_doublets",
    "write",
    "write_rank_encoding",
]

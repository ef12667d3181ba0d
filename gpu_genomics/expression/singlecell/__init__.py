"""Single-cell RNA-seq preprocessing on AnnData: rapids-singlecell on the GPU, scanpy on the CPU.

Also importable as ``gpu_genomics.sc``. Every function that computes takes
``device="auto"|"gpu"|"cpu"``; the GPU backend needs a usable GPU and an importable
rapids-singlecell (see :mod:`._backend`). As in scanpy, verbs that modify ``adata`` take
``copy=False`` and return None (or the modified copy with ``copy=True``); functions whose result
can be stored in ``adata`` take ``inplace=True`` (store, return None) or ``inplace=False``
(return it). Every option after the data (and, for the writers, the path) is keyword-only.

Modules:

* :mod:`.recipe`: the scanpy/rapids-singlecell recipe, one verb per step, and :func:`preprocess`;
* :mod:`.readers`: :func:`read` of every input format, :func:`write` of ``.h5ad``/``.zarr``;
* :mod:`.rank`: Geneformer rank-value encoding, gene medians from the data, writing encodings;
* :mod:`.mappings`: the user's gene median and token dictionary files;
* :mod:`.binning`: scGPT per-cell quantile binning;
* :mod:`.augment`: depth downsampling and simulated doublets;
* :mod:`.augment_job`: the same on a matrix on disk, block by block (``downsample``, ``doublets``);
* :mod:`.job`: the ``scrna`` job (a file through the recipe into ML-ready AnnData);
* :mod:`.chunked`: the recipe out of core, on blocks of cells (:mod:`.blocks` reads them from
  ``.h5ad``/``.zarr``), in this process or on a Dask cluster;
* private: :mod:`._backend` (which backend runs), :mod:`._matrix` (the count matrix as the
  operations read and check it), :mod:`._segments` (sorting entries within rows, CPU and GPU).
"""

from __future__ import annotations

from ._backend import rapids_status, require_scanpy, resolve_backend
from ._matrix import check_counts
from .augment import downsample_counts, simulate_doublets
from .augment_job import downsample_file, simulate_doublets_file
from .binning import bin_values
from .job import SCRNA_OUTPUT, preprocess_file
from .mappings import (
    default_token_dictionary,
    load_gene_mapping,
    load_gene_medians,
    load_token_dictionary,
)
from .rank import RankEncoding, compute_gene_medians, rank_encode, write_rank_encoding
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
    "SCRNA_OUTPUT",
    "RankEncoding",
    "annotate_genes",
    "bin_values",
    "check_counts",
    "compute_gene_medians",
    "dataset_card",
    "default_token_dictionary",
    "downsample_counts",
    "downsample_file",
    "filter_cells",
    "filter_genes",
    "filter_qc",
    "highly_variable_genes",
    "load_gene_mapping",
    "load_gene_medians",
    "load_token_dictionary",
    "log1p",
    "normalize_total",
    "preprocess",
    "preprocess_file",
    "qc_metrics",
    "rank_encode",
    "rapids_status",
    "read",
    "require_scanpy",
    "resolve_backend",
    "scale",
    "simulate_doublets",
    "simulate_doublets_file",
    "write",
    "write_rank_encoding",
]

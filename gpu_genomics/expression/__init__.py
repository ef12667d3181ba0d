"""Expression matrices: bulk RNA-seq tables and single-cell count matrices.

What lives here: :mod:`.tables` (CSV/TSV numeric tables), :mod:`.bulk` (log1p, gene filter,
StandardScaler-exact z-scores), :mod:`.scaler_files` (storing and loading scalers),
:mod:`.bulk_job` (the ``bulk`` job, :func:`preprocess_bulk_file`) and :mod:`.singlecell`
(scanpy / rapids-singlecell recipe, readers, Geneformer and scGPT encodings, augmentation, the
``scrna`` job; also importable as ``gpu_genomics.sc``, and imported only when used because it
needs anndata and scanpy). Semantics in ``docs/bulk.md`` and ``docs/singlecell.md``.
"""

from __future__ import annotations

from .bulk import (
    Scaler,
    apply_scaler,
    filter_low_expression,
    fit_scaler,
    log_transform,
    preprocess_bulk,
)
from .bulk_job import BULK_ARRAYS, preprocess_bulk_file
from .scaler_files import load_scaler, save_scaler
from .tables import LabeledMatrix, read_table

__all__ = [
    "BULK_ARRAYS",
    "LabeledMatrix",
    "Scaler",
    "apply_scaler",
    "filter_low_expression",
    "fit_scaler",
    "load_scaler",
    "log_transform",
    "preprocess_bulk",
    "preprocess_bulk_file",
    "read_table",
    "save_scaler",
]

"""Geneformer rank-value encoding of single-cell counts, and writing the encodings.

Matches Geneformer's ``TranscriptomeTokenizer`` (V1 and V2; see ``docs/singlecell.md#geneformer``
for the table of what equals what):

* gene ids from ``var["ensembl_id"]`` (else ``gene_ids``, else ``var_names``, or ``gene_key``),
  upper-cased, optionally mapped through a gene id mapping (Geneformer's
  ``ensembl_mapping_dict``); columns that end up with the same id are summed into one gene
  (:class:`GeneColumns`); genes without a token are dropped;
* cells whose ``obs["filter_pass"]`` is not 1 are left out when that column exists;
* per cell, ``count / n_counts * 10_000 / gene_median`` in the arithmetic of NumPy on the
  stored types: ``n_counts`` is ``obs["n_counts"]`` when present, else the cell's total over
  all columns of the matrix; float32 counts and totals give a float32 quotient, and float32
  medians (Geneformer's pickles) a float32 result;
* the detected genes sorted by that value, descending: ``ties="geneformer"`` orders equal values
  as ``np.argsort(-values)`` on the values in gene order (what the tokenizer calls), and
  ``ties="stable"`` by gene, ascending;
* truncated to ``model_input_size`` tokens (V1: 2048), or to ``model_input_size - 2`` with
  ``<cls>`` prepended and ``<eos>`` appended (V2: 4096 = 4094 + 2);
* cells left without any gene are dropped (counted in one log line).

The work is on the CSR components of the matrix (``data``, ``indices``, ``indptr``). On the
GPU (and on the CPU for an input whose columns are summed) it is the array path: plain arrays
of the device, every cell at once with one sort over all non-zeros keyed by (cell, value,
gene) and segmented arithmetic (``searchsorted``, ``cumsum``, ``bincount``). On the CPU it is
one numba pass per cell (:mod:`._rank_cpu`). Under ``ties="geneformer"`` the cells that hold
equal values are then sorted again one by one on the host with NumPy's ``argsort``. Dense and
CSC input are converted to CSR first.

:func:`write_rank_encoding` writes a :class:`RankEncoding` as Parquet, as a Hugging Face
``datasets`` folder (Geneformer's output) or as the HDF5/Zarr arrays of :data:`RANK_ARRAYS`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ...device import array_module, array_module_of, resolve_device, to_numpy
from ...errors import InputError, check_choice, invalid, positive_int
from ...io.provenance import json_safe
from ...io.spec import STRING, ArraySpec, OutputSpec
from ...io.store import (
    SUFFIX_FORMATS,
    ArrayWriter,
    atomic_output,
    check_output_folder,
    spool_prefix,
)
from . import _rank_cpu
from ._matrix import (
    check_counts,
    device_counts,
    host_csr,
    is_sparse,
    layer_matrix,
    row_of_entries,
    var_gene_ids,
)
from ._segments import order_within_rows, positive_bits
from .mappings import (
    CLS_TOKEN,
    EOS_TOKEN,
    INT32_MAX,
    GeneMedians,
    as_gene_mapping,
    as_gene_medians,
    as_token_dictionary,
    default_token_dictionary,
)

log = logging.getLogger("gpu_genomics")

__all__ = [
    "MODEL_VERSIONS",
    "RANK_ARRAYS",
    "GeneColumns",
    "RankEncoding",
    "RankWriter",
    "compute_gene_medians",
    "gene_columns",
    "rank_encode",
    "write_rank_encoding",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
DATASET_SUFFIX = ".dataset"
OUTPUT_FORMATS = ("parquet", "dataset", "hdf5", "zarr")
#: The rank outputs that hold attributes (columns beside the tokens).
ATTRIBUTE_FORMATS = ("parquet", "dataset")

#: Geneformer's model versions: ``model_input_size`` and whether ``<cls>``/``<eos>`` are added
#: (V1: the 30M-cell models; V2: the 95M/104M-cell models, the tokenizer's default).
MODEL_VERSIONS: dict[int, tuple[int, bool]] = {1: (2048, False), 2: (4096, True)}
TIES = ("geneformer", "stable")
FILTER_KEY = "filter_pass"
COUNTS_KEY = "n_counts"

RANK_ARRAYS = OutputSpec(
    "scrna --rank-encode: Geneformer rank-value tokens (HDF5/Zarr; Parquet: cell_id, "
    "input_ids, length per cell)",
    (
        ArraySpec(
            "offsets",
            "int64",
            ("cells_plus_one",),
            "cell i's tokens are token_ids[offsets[i]:offsets[i+1]]",
        ),
        ArraySpec("token_ids", "int32", ("tokens",), "every cell's token ids, back to back"),
        ArraySpec("cell_id", STRING, ("cells",), "cell names (obs_names)"),
        ArraySpec("vocab_token", STRING, ("vocabulary",), "the token dictionary's tokens"),
        ArraySpec("vocab_id", "int32", ("vocabulary",), "the id of each vocab_token"),
    ),
)


def model_settings(
    model_version: int | str, *, n_tokens: int | None, special_tokens: bool | None
) -> tuple[int, bool]:
    """``(n_tokens, special_tokens)``: a Geneformer version's, unless given.

    Args:
        model_version: 1 or 2 (also ``"V1"``/``"V2"``, as Geneformer spells them).
        n_tokens: overrides the version's ``model_input_size``.
        special_tokens: overrides whether ``<cls>``/``<eos>`` are added.

    Raises:
        InputError: an unknown version, or ``n_tokens`` too small.
    """
    version = str(model_version).upper().removeprefix("V")
    if version not in ("1", "2"):
        raise invalid("model_version", model_version, "must be 1 or 2 (Geneformer V1 or V2)")
    default_tokens, default_special = MODEL_VERSIONS[int(version)]
    n_tokens = positive_int("n_tokens", default_tokens if n_tokens is None else n_tokens)
    special = default_special if special_tokens is None else bool(special_tokens)
    if special and n_tokens < 3:
        raise invalid("n_tokens", n_tokens, "leaves no room for genes besides <cls>/<eos>")
    return n_tokens, special


# --- genes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneColumns:
    """How the matrix's columns become Geneformer's genes.

    Each column's id is upper-cased (Geneformer looks ids up upper-cased) and, with a gene id
    mapping, replaced by its mapped id (a column whose id the mapping lacks is dropped).
    Columns that end up with the same id are one gene, their counts summed. The genes are
    numbered as Geneformer's tokenizer lays out its collapsed matrix: the genes held by one
    column in column order, then the genes held by several columns in the order of their
    first column; that order is the gene order ``ties="geneformer"`` sorts from.

    Attributes:
        ids: ``(n_genes,) object`` of str: each gene's id.
        gene_of_column: ``(n_columns,) int64``: the gene of each column, -1 for a dropped one.
        collapsed: whether some gene is held by several columns.
    """

    ids: np.ndarray
    gene_of_column: np.ndarray
    collapsed: bool

    @property
    def n_genes(self) -> int:
        """The number of genes."""
        return len(self.ids)


def gene_columns(
    column_ids: np.ndarray,
    *,
    gene_mapping: dict[str, str] | None = None,
    tokens: dict[str, int] | None = None,
) -> GeneColumns:
    """The genes of columns with the given ids (see :class:`GeneColumns`).

    Args:
        column_ids: ``(n_columns,)`` gene id of each column (:func:`~._matrix.var_gene_ids`).
        gene_mapping: upper-cased id -> gene id; ``None``: the upper-cased ids themselves. As
            in Geneformer, only mapped ids present in ``tokens`` (when given) are kept.
        tokens: the token dictionary the mapping is restricted to.

    Returns:
        :class:`GeneColumns`.
    """
    upper = [str(g).upper() for g in column_ids]
    if gene_mapping is None:
        mapped: list[str | None] = list(upper)
    else:
        mapped = [gene_mapping.get(g) for g in upper]
        if tokens is not None:
            mapped = [g if g in tokens else None for g in mapped]
    occurrences: dict[str, int] = {}
    for g in mapped:
        if g is not None:
            occurrences[g] = occurrences.get(g, 0) + 1
    single = [g for g in mapped if g is not None and occurrences[g] == 1]
    repeated = [g for g, n in occurrences.items() if n > 1]  # first-occurrence order
    ids = single + repeated
    number = {g: i for i, g in enumerate(ids)}
    gene_of_column = np.array([-1 if g is None else number[g] for g in mapped], dtype=np.int64)
    return GeneColumns(np.asarray(ids, dtype=object), gene_of_column, bool(repeated))


class _Entries(NamedTuple):
    """The positive counts of a matrix by gene (:class:`GeneColumns`), in CSR order."""

    xp: Any
    row: Any  #: ``(n,) int64`` cell of each entry, non-decreasing
    gene: Any  #: ``(n,) int64`` gene, ascending within a cell
    counts: Any  #: ``(n,)`` the count, in the matrix's dtype
    totals: Any  #: ``(n_cells,) float64``: each cell's total over all columns
    n_cells: int


def _cell_totals(xp: Any, data: Any, row: Any, n_cells: int) -> Any:
    """``(n_cells,) float64``: each cell's total over all genes.

    Integer-valued data (counts) is summed on the device: float64 sums of integers below 2**53
    are exact in any order, so both devices agree. Other data is summed on the host in storage
    order, the same on both devices.
    """
    values = data.astype(np.float64)
    if data.dtype.kind in "biu" or bool((values == xp.floor(values)).all()):
        return xp.bincount(row, weights=values, minlength=n_cells).astype(np.float64)
    totals = np.bincount(to_numpy(row), weights=to_numpy(values), minlength=n_cells)
    return xp.asarray(totals)


def _count_entries(
    device_name: str, adata: Any, layer: str | None, columns: GeneColumns, what: str
) -> _Entries:
    """The matrix's positive counts by gene, on the device; columns of one gene summed.

    Memory: on the device, about six 8-byte arrays the length of the stored entries (twice
    that while columns are summed).
    """
    xp, _, _, csr, data, indices, indptr = device_counts(
        adata, layer, device_name, integer=False, what=what
    )
    n_cells = csr.shape[0]
    row = row_of_entries(xp, indptr)
    totals = _cell_totals(xp, data, row, n_cells)
    gene = xp.asarray(columns.gene_of_column)[indices]
    keep = (data > 0) & (gene >= 0)
    row, gene, counts = row[keep], gene[keep], data[keep]
    if columns.collapsed and row.size:  # sum the columns of one gene, in (cell, gene) order
        keys, where = xp.unique(row * columns.n_genes + gene, return_inverse=True)
        sums = xp.bincount(where.ravel(), weights=counts.astype(np.float64))
        row, gene = keys // columns.n_genes, keys % columns.n_genes
        counts = sums.astype(data.dtype)
    return _Entries(xp, row, gene, counts, totals, n_cells)


def _checked_target_sum(target_sum: Any) -> float:
    if not (isinstance(target_sum, int | float) and math.isfinite(target_sum) and target_sum > 0):
        raise invalid("target_sum", target_sum, "must be a positive number")
    return float(target_sum)


def filter_mask(obs: Any, filter_key: str | None = FILTER_KEY) -> np.ndarray | None:
    """``(n_cells,) bool``: ``obs[filter_key]`` is 1; None without that column (or key).

    Geneformer's ``i == 1``: ``1``, ``1.0`` and ``True`` pass, ``"1"`` does not.
    """
    if filter_key is None or filter_key not in obs.columns:
        return None
    return np.array([value == 1 for value in obs[filter_key]], dtype=bool)


def _passing_cells(adata: Any, filter_key: str | None) -> np.ndarray | None:
    """``int64`` rows that pass :func:`filter_mask`; None: every row. Logs how many do not."""
    passes = filter_mask(adata.obs, filter_key)
    if passes is None or passes.all():
        return None
    log.info(
        "rank_encode: %d of %d cells have %s != 1 and are left out",
        int((~passes).sum()),
        len(passes),
        filter_key,
    )
    return np.flatnonzero(passes)


def _gene_median_array(xp: Any, gene: Any, values: Any, n_genes: int) -> Any:
    """``(n_genes,) float64``: the median of each gene's values; NaN for a gene without any."""
    out = xp.full(n_genes, np.nan, dtype=np.float64)
    if values.size == 0:
        return out
    order = xp.lexsort(xp.stack([positive_bits(xp, values), gene]))
    values = values[order]
    counts = xp.bincount(gene, minlength=n_genes)
    starts = xp.cumsum(counts) - counts
    has = counts > 0
    lower = (starts + (counts - 1) // 2)[has]
    upper = (starts + counts // 2)[has]
    out[xp.nonzero(has)[0]] = (values[lower] + values[upper]) / 2.0
    return out


def entry_medians(entries: _Entries, n_genes: int, target_sum: float) -> Any:
    """``(n_genes,) float64`` medians of ``count / cell total * target_sum``, in float64."""
    values = entries.counts.astype(np.float64) / entries.totals[entries.row] * target_sum
    return _gene_median_array(entries.xp, entries.gene, values, n_genes)


def medians_by_gene(ids: np.ndarray, medians: np.ndarray) -> GeneMedians:
    """Gene id -> median from one median per gene (NaN: none; left out), float64."""
    return GeneMedians(
        {str(g): float(m) for g, m in zip(ids, medians, strict=True) if np.isfinite(m)}
    )


def compute_gene_medians(
    adata: Any,
    *,
    layer: str | None = None,
    gene_key: str | None = None,
    gene_mapping: Any = None,
    filter_key: str | None = FILTER_KEY,
    target_sum: float = 10_000,
    device: str | None = None,
) -> GeneMedians:
    """Compute each gene's non-zero median of ``count / cell total * target_sum``.

    These are Geneformer's normalisation factors, computed from the cells of ``adata`` instead
    of read from a file (:func:`~.mappings.load_gene_medians`); see
    ``docs/singlecell.md#geneformer-medians``. Genes are those :func:`rank_encode` uses: ids
    upper-cased (and mapped), columns of one id summed (:class:`GeneColumns`).

    Args:
        adata: ``(n_cells, n_genes)`` raw counts in ``X`` (or ``layers[layer]``): SciPy
            CSR/CSC or dense, any numeric dtype; non-negative and finite.
        layer: read ``adata.layers[layer]`` instead of ``X``.
        gene_key: the ``var`` column of gene ids; default ``var["ensembl_id"]``, else
            ``var["gene_ids"]`` when present, else ``var_names``.
        gene_mapping: gene id -> gene id (dict or file), applied to the upper-cased ids.
        filter_key: only the cells whose ``obs[filter_key]`` is 1, when that column exists
            (the cells :func:`rank_encode` encodes); ``None``: every cell.
        target_sum: the per-cell total after normalisation (Geneformer: 10,000).
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        Upper-cased (mapped) gene id -> median, float64 (:class:`~.mappings.GeneMedians`;
        NumPy's median: the mean of the two middle values for an even number), computed in
        float64 whatever the matrix dtype. Genes never detected are left out. Equal on CPU
        and GPU.

    Raises:
        InputError: a negative or non-finite count (naming its cell and gene), or a bad
            ``layer``/``gene_key``.

    Memory: on the CPU, one float64 value per stored entry besides the matrix; on the GPU (or
    for columns summed), about ten 8-byte arrays the length of the stored entries.
    """
    target_sum = _checked_target_sum(target_sum)
    device_name = resolve_device(device)
    rows = _passing_cells(adata, filter_key)
    if rows is not None:
        adata = adata[rows]
    mapping = None if gene_mapping is None else as_gene_mapping(gene_mapping)
    columns = gene_columns(var_gene_ids(adata, gene_key), gene_mapping=mapping)
    if device_name == "cpu" and not columns.collapsed:  # the CPU path, as rank_encode's
        csr, totals = _host_counts(adata, layer, "compute_gene_medians")
        medians = _rank_cpu.gene_medians(
            csr, totals, target_sum, columns.gene_of_column, columns.n_genes
        )
    else:
        entries = _count_entries(device_name, adata, layer, columns, "compute_gene_medians")
        medians = to_numpy(entry_medians(entries, columns.n_genes, target_sum))
    return medians_by_gene(columns.ids, medians)


def _token_ids(
    ids: np.ndarray, tokens: dict[str, int] | None, *, special_tokens: bool
) -> tuple[dict[str, int], int, int]:
    """``(token dictionary, <cls> id, <eos> id)`` (-1 without special tokens).

    ``tokens``: a checked dictionary (:func:`~.mappings.as_token_dictionary`), or None to build
    one for the gene ``ids``.

    Raises:
        InputError: a dictionary without ``<cls>``/``<eos>`` under ``special_tokens``.
    """
    if tokens is None:
        tokens = default_token_dictionary(ids, special_tokens=special_tokens)
    if not special_tokens:
        return tokens, -1, -1
    missing = [name for name in (CLS_TOKEN, EOS_TOKEN) if name not in tokens]
    if missing:
        raise InputError(
            f"special_tokens=True but the token dictionary has no {' or '.join(missing)}; "
            "use a Geneformer V2 dictionary, or model_version=1 / special_tokens=False"
        )
    return tokens, tokens[CLS_TOKEN], tokens[EOS_TOKEN]


def refuse_tokens_without_median(
    ids: np.ndarray, tokens: dict[str, int], medians: dict[str, float]
) -> None:
    """Geneformer's tokenizer raises for a gene of the data with a token but no median."""
    missing = sorted({str(g) for g in ids if g in tokens and g not in medians})
    if missing:
        listed = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            f"{len(missing)} genes of the data have a token but no gene median ({listed}); "
            "Geneformer's tokenizer refuses them too: give a median file that covers the token "
            "dictionary's genes (Geneformer ships the two together), or missing_medians='drop'"
        )


# --- rank encoding ----------------------------------------------------------------------


@dataclass(kw_only=True)
class RankEncoding:
    """Ragged rank-value encodings: cell ``i``'s tokens are ``token_ids[offsets[i]:offsets[i+1]]``.

    ``offsets`` and ``token_ids`` are on the device that computed them (NumPy or CuPy);
    :meth:`to_host` gives a copy with NumPy arrays. ``len(encoding)`` is the number of encoded
    cells (cells left out by ``filter_pass`` or for having no gene are not among them).

    Attributes:
        offsets: ``(n_cells + 1,) int64``, starting at 0.
        token_ids: ``(total tokens,) int32``.
        cell_ids: ``(n_cells,) object`` of str: the encoded cells' ``obs_names``.
        n_tokens: the maximum length of one encoding (special tokens included).
        special_tokens: whether each encoding starts with ``<cls>`` and ends with ``<eos>``.
        token_dictionary: token -> id, as used (special tokens included).
        cell_rows: ``(n_cells,) int64``: each encoded cell's row in the input.
        attributes: output name -> ``(n_cells,)`` values of an ``obs`` column of the encoded
            cells (Geneformer's custom attributes; :func:`attribute_values` types them).
    """

    offsets: Any
    token_ids: Any
    cell_ids: np.ndarray
    n_tokens: int
    special_tokens: bool
    token_dictionary: dict[str, int] = field(repr=False)
    cell_rows: np.ndarray | None = None
    attributes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        """Return the number of cells."""
        return len(self.cell_ids)

    @property
    def lengths(self) -> Any:
        """``(n_cells,) int64``: tokens per cell, on the encoding's device."""
        return self.offsets[1:] - self.offsets[:-1]

    def cell_tokens(self, i: int) -> np.ndarray:
        """Return the ``int32`` token ids of cell ``i``, on the host."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(to_numpy(self.token_ids[start:stop]))

    def to_host(self) -> RankEncoding:
        """Return a copy whose ``offsets`` and ``token_ids`` are NumPy arrays."""
        return RankEncoding(
            offsets=to_numpy(self.offsets),
            token_ids=to_numpy(self.token_ids),
            cell_ids=self.cell_ids,
            n_tokens=self.n_tokens,
            special_tokens=self.special_tokens,
            token_dictionary=self.token_dictionary,
            cell_rows=self.cell_rows,
            attributes=self.attributes,
        )


def _cell_totals_for_encoding(
    adata: Any, totals: Any, counts_dtype: np.dtype, counts_key: str | None
) -> Any:
    """Each cell's ``n_counts``, on ``totals``' device, in the type Geneformer's division sees.

    ``obs[counts_key]`` as stored when present (checked: finite and > 0 where a cell has
    counts); else ``totals`` (float64, over all columns) in the matrix's float type when it has
    one (a float32 matrix gives float32 totals, as ``X.sum(axis=1)`` does), else float64.
    """
    if counts_key is not None and counts_key in adata.obs.columns:
        stored = np.asarray(adata.obs[counts_key].to_numpy())
        if stored.dtype.kind not in "biuf":
            raise InputError(f"obs[{counts_key!r}] must hold numbers, not {stored.dtype}")
        has_counts = to_numpy(totals) > 0
        bad = has_counts & ~(np.isfinite(stored.astype(np.float64)) & (stored > 0))
        if bad.any():
            cell = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"cell {adata.obs_names[cell]!r} (row {cell}) has obs[{counts_key!r}] = "
                f"{stored[cell].item()!r}; the total counts must be a positive number (drop "
                "the column to use the matrix's totals)"
            )
        return array_module_of(totals).asarray(stored)
    float_type = counts_dtype.kind == "f" and counts_dtype.itemsize >= 4
    return totals.astype(counts_dtype if float_type else np.float64)


@functools.cache
def _scipy_multiply_stays_sparse() -> bool:
    """Whether SciPy's ``sparse.multiply(dense)`` gives a sparse matrix (newer SciPy).

    An older SciPy gives a dense one; it decides how the tokenizer divides by the medians.
    """
    import scipy.sparse as sp

    ones = np.ones((1, 1), dtype=np.float32)
    return bool(sp.issparse(sp.csr_matrix(ones).multiply(ones)))


class Arithmetic(NamedTuple):
    """How Geneformer's ``X / n_counts * target_sum / medians`` is computed, step by step.

    NumPy and SciPy compute that expression differently for a dense and a sparse ``X``:

    * dense ``X``: ``X / n_counts`` is a true division in ``np.true_divide``'s type (float32
      for float32 counts and totals, else float64), ``* target_sum`` stays in it, and
      ``/ medians`` is a true division in the promotion with the medians' type;
    * sparse ``X``: SciPy divides by a dense array as ``X.multiply(np.divide(1, other))``, so
      each division is a product with the reciprocal (computed in ``other``'s type); the
      division by the medians is so only while the product is still sparse (newer SciPy; an
      older one returns a dense product and divides truly).

    Attributes:
        per_cell_reciprocal: the first step multiplies by ``1 / n_counts``.
        per_gene_reciprocal: the last step multiplies by ``1 / median``.
        cell_factor: the type of ``n_counts`` (or of its reciprocal).
        quotient: the type of ``count / n_counts`` and of the product by ``target_sum``.
        gene_factor: the type of the medians (or of their reciprocals).
        result: the type of the values that are ranked.
    """

    per_cell_reciprocal: bool
    per_gene_reciprocal: bool
    cell_factor: np.dtype
    quotient: np.dtype
    gene_factor: np.dtype
    result: np.dtype

    @classmethod
    def of(cls, *, sparse: bool, counts: Any, totals: Any, medians: Any) -> Arithmetic:
        """The steps for a (``sparse``) matrix and the types of its counts, totals, medians."""
        one = np.ones(1, dtype=np.float64).astype
        if sparse:
            cell_factor = np.divide(1, one(totals)).dtype
            quotient = np.result_type(np.dtype(counts), cell_factor)
        else:
            cell_factor = np.dtype(totals)
            quotient = np.true_divide(one(counts), one(totals)).dtype
        per_gene_reciprocal = sparse and _scipy_multiply_stays_sparse()
        if per_gene_reciprocal:
            gene_factor = np.divide(1, one(medians)).dtype
            result = np.result_type(quotient, gene_factor)
        else:
            gene_factor = np.dtype(medians)
            result = np.true_divide(one(quotient), one(medians)).dtype
        return cls(sparse, per_gene_reciprocal, cell_factor, quotient, gene_factor, result)

    def cell_factors(self, xp: Any, n_counts: Any) -> Any:
        """``n_counts`` (or ``1 / n_counts``) per cell, in the quotient's type."""
        factors = n_counts.astype(self.cell_factor)
        if self.per_cell_reciprocal:
            with np.errstate(divide="ignore"):  # a cell without counts: never used
                factors = xp.divide(self.cell_factor.type(1), factors)
        return factors.astype(self.quotient)

    def gene_factors(self, xp: Any, medians: Any) -> Any:
        """Medians (or ``1 / median``) per gene (float64 in, NaN kept), in the result type."""
        factors = medians.astype(self.gene_factor)
        if self.per_gene_reciprocal:
            factors = xp.divide(self.gene_factor.type(1), factors)
        return factors.astype(self.result)

    def values(self, counts: Any, cell_factor: Any, target_sum: float, gene_factor: Any) -> Any:
        """The ranked values of entries: ``counts`` with their cells' and genes' factors."""
        counts = counts.astype(self.quotient)
        values = counts * cell_factor if self.per_cell_reciprocal else counts / cell_factor
        values *= self.quotient.type(target_sum)
        values = values.astype(self.result)
        return values * gene_factor if self.per_gene_reciprocal else values / gene_factor


def _rank_order(xp: Any, row: Any, gene: Any, values: Any, n_cells: int, *, ties: str) -> Any:
    """The permutation of the entries: cell ascending, value descending, ties by ``ties``.

    ``stable``: equal values by gene, ascending (one sort, on the device). ``geneformer``: the
    cells that hold equal values are sorted again on the host with ``np.argsort(-values)`` on
    their values in gene order, as Geneformer's ``rank_genes`` does.
    """
    order = order_within_rows(xp, -positive_bits(xp, values), row, gene, n_cells)
    if ties == "stable" or values.size < 2:
        return order
    ranked = values[order]
    tied = (ranked[1:] == ranked[:-1]) & (row[1:] == row[:-1])  # row[order] is row
    tie_cells = to_numpy(xp.unique(row[1:][tied]))
    if tie_cells.size == 0:
        return order
    counts = xp.bincount(row, minlength=n_cells)
    starts = to_numpy(xp.cumsum(counts) - counts)
    counts = to_numpy(counts)
    picked = np.concatenate([np.arange(starts[c], starts[c] + counts[c]) for c in tie_cells])
    host_values = to_numpy(values[xp.asarray(picked)])
    host_order = np.empty(picked.size, dtype=np.int64)
    at = 0
    for cell in tie_cells:
        n = int(counts[cell])
        host_order[at : at + n] = starts[cell] + np.argsort(-host_values[at : at + n])
        at += n
    order[xp.asarray(picked)] = xp.asarray(host_order)
    return order


#: Columns every rank output has; an attribute may not take their names.
RESERVED_COLUMNS = ("input_ids", "length", "cell_id")


def attribute_names(attributes: Any) -> dict[str, str]:
    """``obs`` column -> output column of Geneformer's custom attributes, checked.

    Args:
        attributes: ``None``; a list of ``obs`` columns (each kept under its name, or written
            ``"column:name"``); or a dict ``obs`` column -> output name (Geneformer's
            ``custom_attr_name_dict``).

    Raises:
        InputError: a malformed entry, a repeated output name, or one of
            :data:`RESERVED_COLUMNS`.
    """
    if attributes is None:
        return {}
    if isinstance(attributes, str):
        attributes = [attributes]
    if isinstance(attributes, dict):
        pairs = [(str(k), str(v)) for k, v in attributes.items()]
    else:
        pairs = []
        for entry in attributes:
            column, _, name = str(entry).partition(":")
            pairs.append((column, name or column))
    names: dict[str, str] = {}
    for column, name in pairs:
        if not column or not name:
            raise invalid("attributes", attributes, "entries are 'column' or 'column:name'")
        if name in RESERVED_COLUMNS or name in names.values():
            raise invalid("attributes", attributes, f"the output column {name!r} is taken")
        names[column] = name
    return names


def attribute_values(values: Any) -> np.ndarray:
    """An ``obs`` column as one of int64, float64, bool or object-of-str (None where missing).

    The type depends only on the column's dtype, so every block of cells gets the same type.
    """
    import pandas as pd

    series = pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    kind = series.dtype.kind
    if kind in "iu":
        return series.to_numpy(dtype=np.int64)
    if kind == "f":
        return series.to_numpy(dtype=np.float64)
    if kind == "b":
        return series.to_numpy(dtype=bool)
    return np.array([None if pd.isna(v) else str(v) for v in series], dtype=object)


def require_obs_columns(obs: Any, columns: Any, *, parameter: str, where: str) -> None:
    """Raise unless every one of ``columns`` is a column of ``obs``.

    Raises:
        InputError: naming ``parameter``, the missing columns, ``where`` and the columns there.
    """
    missing = [column for column in columns if column not in obs.columns]
    if missing:
        raise InputError(
            f"{parameter}: {', '.join(map(repr, missing))} not in {where} (it has: "
            f"{', '.join(map(repr, obs.columns)) or 'no columns'})"
        )


def _attributes_of(adata: Any, names: dict[str, str], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The attribute columns of ``adata.obs`` at ``rows`` (positions), by output name."""
    require_obs_columns(adata.obs, names, parameter="attributes", where="adata.obs")
    return {name: attribute_values(adata.obs[column].iloc[rows]) for column, name in names.items()}


def _medians_of_genes(
    medians: GeneMedians | None, columns: GeneColumns, from_data: Any
) -> tuple[np.ndarray, np.dtype]:
    """``(median per gene as float64 (NaN: none), the medians' type)``.

    ``from_data()`` gives them (float64) when none were given.
    """
    if medians is None:
        return np.asarray(to_numpy(from_data()), dtype=np.float64), np.dtype(np.float64)
    values = np.array([medians.get(g, np.nan) for g in columns.ids], dtype=np.float64)
    return values, medians.dtype


def token_of_gene_ids(ids: np.ndarray, tokens: dict[str, int]) -> np.ndarray:
    """``(n_genes,) int64``: each gene's token id, -1 for a gene without one."""
    return np.array([tokens.get(g, -1) for g in ids], dtype=np.int64)


def usable_genes(
    columns: GeneColumns, median_of_gene: np.ndarray, token_of_gene: np.ndarray
) -> np.ndarray:
    """Host bool per gene: has a median and a token; logs how many columns are left out."""
    usable = np.isfinite(median_of_gene) & (token_of_gene >= 0)
    dropped = int((~np.append(usable, False)[columns.gene_of_column]).sum())  # -1: the False
    if dropped:
        log.info(
            "rank_encode: %d of %d columns have no gene with a median and a token and are left out",
            dropped,
            len(columns.gene_of_column),
        )
    return usable


def _host_counts(adata: Any, layer: str | None, what: str) -> tuple[Any, np.ndarray]:
    """``(canonical SciPy CSR, (n_cells,) float64 totals over all columns)``, values checked."""
    csr = host_csr(layer_matrix(adata, layer))
    check_counts(adata, layer=layer, what=what)
    return csr, _rank_cpu.row_totals(csr.indptr, csr.data)


def _encode_cpu(
    adata: Any,
    *,
    device_name: str,
    sparse: bool,
    layer: str | None,
    columns: GeneColumns,
    medians: GeneMedians | None,
    token_of_gene: np.ndarray,
    target_sum: float,
    counts_key: str | None,
    ties: str,
    limit: int,
    special_ids: tuple[int, int] | None,
) -> tuple[Any, Any, np.ndarray]:
    """The CPU path: numba passes over the CSR rows (:mod:`._rank_cpu`), columns unsummed."""
    del device_name  # the CPU's path
    csr, totals = _host_counts(adata, layer, "rank_encode")
    gene_of_column = columns.gene_of_column
    median_of_gene, median_dtype = _medians_of_genes(
        medians,
        columns,
        lambda: _rank_cpu.gene_medians(csr, totals, target_sum, gene_of_column, columns.n_genes),
    )
    usable = np.append(usable_genes(columns, median_of_gene, token_of_gene), False)
    token_of_column = np.where(usable[gene_of_column], token_of_gene[gene_of_column], -1)
    n_counts = _cell_totals_for_encoding(adata, totals, csr.data.dtype, counts_key)
    arithmetic = Arithmetic.of(
        sparse=sparse,
        counts=csr.data.dtype,
        totals=n_counts.dtype,
        medians=median_dtype,
    )
    return _rank_cpu.rank_csr(
        csr,
        arithmetic=arithmetic,
        cell_factors=arithmetic.cell_factors(np, n_counts),
        target_sum=target_sum,
        gene_factors=arithmetic.gene_factors(np, np.append(median_of_gene, np.nan)[gene_of_column]),
        token_of_column=token_of_column,
        limit=limit,
        special_ids=special_ids,
        stable=ties == "stable",
    )


def _encode_arrays(
    adata: Any,
    *,
    device_name: str,
    sparse: bool,
    layer: str | None,
    columns: GeneColumns,
    medians: GeneMedians | None,
    token_of_gene: np.ndarray,
    target_sum: float,
    counts_key: str | None,
    ties: str,
    limit: int,
    special_ids: tuple[int, int] | None,
) -> tuple[Any, Any, np.ndarray]:
    """The array path: one sort of all entries keyed by (cell, value, gene) on the device.

    The GPU's path, and the CPU's for an input whose columns are summed.
    """
    entries = _count_entries(device_name, adata, layer, columns, "rank_encode")
    xp = entries.xp
    median_of_gene, median_dtype = _medians_of_genes(
        medians, columns, lambda: entry_medians(entries, columns.n_genes, target_sum)
    )
    usable = usable_genes(columns, median_of_gene, token_of_gene)
    n_counts = _cell_totals_for_encoding(adata, entries.totals, entries.counts.dtype, counts_key)
    keep = xp.asarray(usable)[entries.gene]
    entries = entries._replace(
        row=entries.row[keep], gene=entries.gene[keep], counts=entries.counts[keep]
    )
    arithmetic = Arithmetic.of(
        sparse=sparse,
        counts=entries.counts.dtype,
        totals=n_counts.dtype,
        medians=median_dtype,
    )
    values = arithmetic.values(
        entries.counts,
        arithmetic.cell_factors(xp, n_counts)[entries.row],
        target_sum,
        arithmetic.gene_factors(xp, xp.asarray(median_of_gene))[entries.gene],
    )
    order = _rank_order(xp, entries.row, entries.gene, values, entries.n_cells, ties=ties)
    return _laid_out_tokens(
        xp,
        entries.row[order],
        xp.asarray(token_of_gene)[entries.gene[order]],
        entries.n_cells,
        limit=limit,
        special_ids=special_ids,
    )


def _laid_out_tokens(
    xp: Any,
    row: Any,
    token: Any,
    n_cells: int,
    *,
    limit: int,
    special_ids: tuple[int, int] | None,
) -> tuple[Any, Any, np.ndarray]:
    """``(offsets, token_ids, encoded)``: the ranked tokens of each cell, truncated, laid out.

    ``row``/``token`` are the ranked entries (cell ascending, rank within it). Each cell keeps
    its first ``limit`` tokens, between ``<cls>`` and ``<eos>`` with ``special_ids``. Cells
    without any token are left out; ``encoded`` (host bool, ``(n_cells,)``) says which stay.
    """
    genes_per_cell = xp.bincount(row, minlength=n_cells)
    starts = xp.cumsum(genes_per_cell) - genes_per_cell
    rank = xp.arange(row.size, dtype=np.int64) - starts[row]
    encoded = to_numpy(genes_per_cell > 0)
    position = xp.asarray(np.cumsum(encoded) - 1)  # each encoded cell's place in the output
    extra = 0 if special_ids is None else 2
    lengths = (xp.minimum(genes_per_cell, limit) + extra)[xp.asarray(encoded)]
    offsets = xp.zeros(int(encoded.sum()) + 1, dtype=np.int64)
    offsets[1:] = xp.cumsum(lengths)
    token_ids = xp.zeros(int(offsets[-1]), dtype=np.int32)
    kept = rank < limit
    destination = offsets[position[row[kept]]] + rank[kept] + extra // 2
    token_ids[destination] = token[kept].astype(np.int32)
    if special_ids is not None and offsets.size > 1:
        token_ids[offsets[:-1]] = special_ids[0]
        token_ids[offsets[1:] - 1] = special_ids[1]
    return offsets, token_ids, encoded


def rank_encode(
    adata: Any,
    *,
    model_version: int | str = 2,
    n_tokens: int | None = None,
    special_tokens: bool | None = None,
    gene_medians: Any = None,
    token_dictionary: Any = None,
    gene_mapping: Any = None,
    layer: str | None = None,
    gene_key: str | None = None,
    counts_key: str | None = COUNTS_KEY,
    filter_key: str | None = FILTER_KEY,
    ties: str = "geneformer",
    target_sum: float = 10_000,
    missing_medians: str = "raise",
    attributes: Any = None,
    device: str | None = None,
) -> RankEncoding:
    """Encode every cell as Geneformer's tokenizer does: its genes ranked by normalised value.

    See the module docstring and ``docs/singlecell.md#geneformer``.

    Args:
        adata: ``(n_cells, n_genes)`` raw counts in ``X`` (or ``layers[layer]``): SciPy
            CSR/CSC or dense, any numeric dtype; values must be non-negative and finite.
        model_version: Geneformer's version, 1 (2,048 tokens, no special tokens) or 2 (4,096
            tokens with ``<cls>``/``<eos>``; the tokenizer's default, and ours).
        n_tokens: the maximum encoding length (``model_input_size``); default the version's.
            With special tokens the genes are truncated to ``n_tokens - 2``.
        special_tokens: start each encoding with ``<cls>`` and end it with ``<eos>``; default
            the version's.
        gene_medians: gene id -> non-zero median, as a dict or a file (pickle/JSON/TSV, see
            :func:`~.mappings.load_gene_medians`); ``None`` computes them from the encoded
            cells (:func:`compute_gene_medians`).
        token_dictionary: token -> id, a dict or a file
            (:func:`~.mappings.load_token_dictionary`); ``None`` builds one
            (:func:`~.mappings.default_token_dictionary`). With special tokens it must hold
            ``<cls>`` and ``<eos>``.
        gene_mapping: gene id -> gene id, a dict or a file (Geneformer's
            ``ensembl_mapping_dict``, :func:`~.mappings.load_gene_mapping`), applied to the
            upper-cased ids; ``None``: the upper-cased ids.
        layer: read the counts from ``adata.layers[layer]`` instead of ``X``.
        gene_key: the ``var`` column of gene ids; default ``var["ensembl_id"]``, else
            ``var["gene_ids"]`` when present, else ``var_names``.
        counts_key: the ``obs`` column of each cell's total counts (Geneformer's
            ``n_counts``), used as stored when present; otherwise (or ``None``) each cell's
            total over all columns of the matrix.
        filter_key: the ``obs`` column Geneformer filters on: when present, only cells where
            it equals 1 are encoded; ``None``: every cell.
        ties: ``"geneformer"``: equal values ordered as ``np.argsort(-values)`` orders them
            (Geneformer's own call, on the host; NumPy's unstable sort, so the order can
            differ between NumPy builds); ``"stable"``: by gene, ascending (independent of
            the NumPy build).
        target_sum: the per-cell total after normalisation (Geneformer: 10,000).
        missing_medians: ``"raise"`` (Geneformer's behaviour): a gene of the data with a token
            but no median in ``gene_medians`` is an error; ``"drop"``: such genes are left out
            (logged), as genes without a token are.
        attributes: ``obs`` columns carried with the tokens (Geneformer's
            ``custom_attr_name_dict``): a list of columns (``"column"`` or
            ``"column:name"``) or a dict column -> name (:func:`attribute_names`).
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        :class:`RankEncoding`, on ``device``, of the cells that pass ``filter_key`` and have
        at least one gene (the others are counted in a log line). CPU and GPU give identical
        tokens: the arithmetic is elementwise IEEE in the same types on both, and the tie
        order is computed on the host under ``"geneformer"``.

    Raises:
        InputError: a bad parameter, a bad mapping, a dictionary without ``<cls>``/``<eos>``
            under special tokens, a negative or non-finite count (naming its cell and gene), or
            a bad ``obs[counts_key]`` (naming the cell).

    Memory: on the device, about ten 8-byte arrays the length of the stored entries, plus the
    ``int32`` tokens (at most ``n_cells * n_tokens``); on the host, the values of the cells
    with ties under ``"geneformer"``.
    """
    n_tokens, special_tokens = model_settings(
        model_version, n_tokens=n_tokens, special_tokens=special_tokens
    )
    ties = check_choice("ties", ties, TIES)
    check_choice("missing_medians", missing_medians, ("raise", "drop"))
    target_sum = _checked_target_sum(target_sum)
    names_of_attributes = attribute_names(attributes)
    device_name = resolve_device(device)
    xp = array_module(device_name)
    rows = _passing_cells(adata, filter_key)
    cell_rows = np.arange(adata.n_obs, dtype=np.int64) if rows is None else rows
    if rows is not None:
        adata = adata[rows]

    mapping = None if gene_mapping is None else as_gene_mapping(gene_mapping)
    column_ids = var_gene_ids(adata, gene_key)
    given_tokens = None if token_dictionary is None else as_token_dictionary(token_dictionary)
    columns = gene_columns(column_ids, gene_mapping=mapping, tokens=given_tokens)
    tokens, cls_id, eos_id = _token_ids(columns.ids, given_tokens, special_tokens=special_tokens)
    medians = None if gene_medians is None else as_gene_medians(gene_medians)
    if medians is not None and missing_medians == "raise":
        refuse_tokens_without_median(columns.ids, tokens, medians)
    token_of_gene = token_of_gene_ids(columns.ids, tokens)
    layout = {
        "limit": n_tokens - 2 if special_tokens else n_tokens,
        "special_ids": (cls_id, eos_id) if special_tokens else None,
    }
    encode = _encode_cpu if xp is np and not columns.collapsed else _encode_arrays
    offsets, token_ids, encoded = encode(
        adata,
        device_name=device_name,
        sparse=is_sparse(layer_matrix(adata, layer)),
        layer=layer,
        columns=columns,
        medians=medians,
        token_of_gene=token_of_gene,
        target_sum=target_sum,
        counts_key=counts_key,
        ties=ties,
        **layout,
    )
    if not encoded.all():
        log.info(
            "rank_encode: %d of %d cells have no gene with a token and a median and are left out",
            int((~encoded).sum()),
            len(encoded),
        )
    names = np.asarray([str(c) for c in adata.obs_names], dtype=object)
    return RankEncoding(
        offsets=offsets,
        token_ids=token_ids,
        cell_ids=names[encoded],
        n_tokens=n_tokens,
        special_tokens=bool(special_tokens),
        token_dictionary=tokens,
        cell_rows=cell_rows[encoded],
        attributes=_attributes_of(adata, names_of_attributes, np.flatnonzero(encoded)),
    )


# --- writing ----------------------------------------------------------------------------


def rank_format_of(path: str | os.PathLike) -> str | None:
    """The rank-encoding output format of a path's suffix, one of :data:`OUTPUT_FORMATS`.

    ``.parquet``/``.pq``, ``.dataset`` (a Hugging Face ``datasets`` folder), ``.h5``/``.hdf5``,
    ``.zarr``; None for another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == DATASET_SUFFIX:
        return "dataset"
    return "parquet" if suffix in PARQUET_SUFFIXES else SUFFIX_FORMATS.get(suffix)


def write_rank_encoding(
    encoding: RankEncoding,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    compression: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write ``encoding`` to ``path`` atomically (a temporary file renamed on success).

    * ``.parquet`` / ``.pq`` (or ``format="parquet"``): one row per cell with ``cell_id``
      (string), ``input_ids`` (``list<int32>``; ``large_list<int32>`` beyond 2**31 - 1 tokens),
      ``length`` (int32) and the encoding's attributes, as a Geneformer dataset; the schema
      metadata key
      ``gpu_genomics`` holds JSON with ``n_tokens``, ``special_tokens`` and the token
      dictionary.
    * ``.h5``/``.hdf5``/``.zarr`` (or ``format="hdf5"|"zarr"``), through
      :class:`~gpu_genomics.io.store.ArrayWriter`: the arrays of :data:`RANK_ARRAYS`
      (``offsets`` int64, ``token_ids`` int32, ``cell_id`` strings, and ``vocab_token``
      strings / ``vocab_id`` int32 for the token dictionary) and the root attributes
      ``n_tokens``, ``special_tokens``, ``encoding``.

    Args:
        encoding: the tokens (:func:`rank_encode`), on either device; copied to the host.
        path: the output file (``.parquet``/``.pq``, ``.h5``/``.hdf5`` or ``.zarr``).
        format: ``"parquet" | "hdf5" | "zarr"``; ``None`` tells it from the suffix.
        compression: the codec: Parquet's (default zstd), or the HDF5/Zarr writer's.
        provenance: stored with the tokens (:func:`gpu_genomics.io.provenance.provenance`):
            root attributes in HDF5/Zarr, the schema metadata key ``gpu_genomics_provenance``
            in Parquet.

    Raises:
        InputError: an unknown suffix or format, a missing output folder, or a failed write
            (nothing is left at ``path``).
    """
    with RankWriter(
        path, n_cells=len(encoding), format=format, compression=compression, provenance=provenance
    ) as out:
        out.append(encoding)


class RankWriter:
    """Write rank encodings block after block of cells, committed when the block ends.

    The files of :func:`write_rank_encoding` (which writes one encoding through it), made
    from encodings of consecutive cells (each a :class:`RankEncoding` of the same ``n_tokens``,
    ``special_tokens`` and token dictionary): Parquet gets one row group per block (its
    ``input_ids`` type, ``list<int32>`` or ``large_list<int32>``, is decided by the first
    block); HDF5/Zarr get ``offsets``, ``token_ids`` and ``cell_id`` grown block by block, the
    vocabulary and attributes at the end. ``n_cells``, when given, is checked at the end (the
    number of encoded cells is not known before when cells without genes are left out). A
    failure leaves nothing at ``path``.

    Usage::

        with RankWriter("tokens.parquet", n_cells=n) as out:
            for encoding in encodings:
                out.append(encoding)

    Memory: one block (the caller's), copied to the host.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_cells: int | None = None,
        format: str | None = None,
        compression: str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        if format is None:
            format = rank_format_of(self.path)
            if format is None:
                raise InputError(
                    f"{self.path}: cannot tell the output format from the suffix "
                    f"{self.path.suffix.lower() or '(none)'!r}; name it .parquet, .h5/.hdf5 "
                    "or .zarr"
                )
        else:
            check_choice("format", format, OUTPUT_FORMATS)
        self.format = format
        self.n_cells = n_cells
        self.compression = compression
        self.provenance = provenance or {}
        self.first: RankEncoding | None = None
        self.cells = 0
        self.tokens = 0
        self._stack = contextlib.ExitStack()
        self._out: Any = None
        self._large = False

    def __enter__(self) -> RankWriter:
        try:
            if self.format == "parquet":
                _require_pyarrow()
                check_output_folder(self.path)
                if self.path.is_dir():
                    raise InputError(
                        f"{self.path}: is a folder; give the output a file name such as out.parquet"
                    )
                self._tmp = self._stack.enter_context(atomic_output(self.path))
            elif self.format == "dataset":  # Parquet rows first, the dataset built at the end
                _require_pyarrow()
                _require_datasets()
                self._folder = self._stack.enter_context(atomic_output(self.path, directory=True))
                scratch = Path(
                    tempfile.mkdtemp(prefix=spool_prefix(self.path), dir=self.path.parent)
                )
                self._stack.callback(shutil.rmtree, scratch, ignore_errors=True)
                self._tmp = scratch / "rows.parquet"
            else:
                self._out = self._stack.enter_context(
                    ArrayWriter(
                        self.path,
                        format=self.format,
                        compression=self.compression,
                        spec=RANK_ARRAYS,
                    )
                )
        except BaseException:
            self._stack.close()
            raise
        return self

    def append(self, encoding: RankEncoding) -> None:
        """Write the next cells' encodings (after those appended before).

        Raises:
            InputError: attributes for an HDF5/Zarr output (they go to Parquet and datasets).
        """
        if encoding.attributes and self.format not in ATTRIBUTE_FORMATS:
            raise InputError(
                f"{self.path}: attributes are written to .parquet and .dataset outputs only"
            )
        offsets = np.asarray(to_numpy(encoding.offsets), dtype=np.int64)
        token_ids = np.asarray(to_numpy(encoding.token_ids), dtype=np.int32)
        if self.first is None:
            self.first = encoding
        if self.format in ATTRIBUTE_FORMATS:  # the Parquet rows of both
            self._append_parquet(encoding, offsets, token_ids)
        else:
            self._append_arrays(encoding, offsets, token_ids)
        self.cells += len(encoding)
        self.tokens += len(token_ids)

    def _append_arrays(self, encoding: RankEncoding, offsets: Any, token_ids: Any) -> None:
        out = self._out
        if self.cells == 0:
            self._offsets = out.create("offsets", (1,), "int64", resizable=True)
            self._offsets[0] = 0
            self._token_ids = out.create("token_ids", (0,), "int32", resizable=True)
            self._cell_ids = out.create("cell_id", (0,), str, resizable=True)
        n_cells, n_tokens = len(encoding), len(token_ids)
        self._offsets.resize((self.cells + n_cells + 1,))
        self._offsets[self.cells + 1 :] = offsets[1:] + self.tokens
        if n_tokens:
            self._token_ids.resize((self.tokens + n_tokens,))
            self._token_ids[self.tokens :] = token_ids
        if n_cells:
            names = np.array([str(c) for c in encoding.cell_ids], dtype=object)
            self._cell_ids.resize((self.cells + n_cells,))
            self._cell_ids[self.cells : self.cells + n_cells] = (
                names if self.format == "hdf5" else names.astype(str)
            )

    def _append_parquet(self, encoding: RankEncoding, offsets: Any, token_ids: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = pa.array(token_ids, type=pa.int32())
        if self.cells == 0:
            self._large = bool(offsets[-1] > INT32_MAX)
        if self._large:
            input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), values)
        else:
            input_ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
        table = pa.table(
            {
                "cell_id": pa.array([str(c) for c in encoding.cell_ids], type=pa.string()),
                "input_ids": input_ids,
                "length": pa.array(np.diff(offsets).astype(np.int32)),
                **{
                    name: pa.array(values, type=pa.string() if values.dtype == object else None)
                    for name, values in encoding.attributes.items()
                },
            }
        )
        if self.cells == 0:
            metadata = {
                "n_tokens": int(encoding.n_tokens),
                "special_tokens": bool(encoding.special_tokens),
                "token_dictionary": encoding.token_dictionary,
            }
            schema = table.schema.with_metadata(
                {
                    "gpu_genomics": json.dumps(metadata),
                    "gpu_genomics_provenance": json.dumps(json_safe(self.provenance)),
                }
            )
            try:
                self._out = self._stack.enter_context(
                    pq.ParquetWriter(self._tmp, schema, compression=self.compression or "zstd")
                )
            except (pa.ArrowException, ValueError) as exc:
                raise InputError(f"{self.path}: cannot write Parquet ({exc})") from None
        self._out.write_table(table.replace_schema_metadata(self._out.schema.metadata))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                if self.n_cells is not None and self.cells != self.n_cells:
                    raise RuntimeError(
                        f"{self.path}: {self.cells} cells appended, {self.n_cells} declared"
                    )
                if self.format in ("parquet", "dataset") and self.first is None:
                    raise RuntimeError(f"{self.path}: no encoding appended")
                if self.format == "dataset":
                    self._finish_dataset()
                elif self.format != "parquet":
                    self._finish_arrays()
            except BaseException as error:
                if not self._stack.__exit__(type(error), error, error.__traceback__):
                    raise
                return
        self._stack.__exit__(exc_type, exc, tb)

    def _finish_dataset(self) -> None:
        """Write the Parquet rows as a ``datasets`` folder (``datasets.load_from_disk``).

        The columns Geneformer's tokenizer writes, ``input_ids`` (``list<int64>``) and
        ``length`` (int64), plus ``cell_id`` and the attributes (its custom attributes); the
        tokenizer's parameters, the token dictionary
        and the provenance are the JSON of the dataset info's ``description``.
        """
        import datasets
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._out.close()
        table = pq.read_table(self._tmp, memory_map=True)
        attributes = [name for name in table.column_names if name not in RESERVED_COLUMNS]
        table = pa.table(
            {
                "input_ids": table["input_ids"].cast(pa.list_(pa.int64())),
                "length": table["length"].cast(pa.int64()),
                "cell_id": table["cell_id"],
                **{name: table[name] for name in attributes},
            }
        )
        first = self.first
        description = {
            "encoding": "geneformer-rank-value",
            "n_tokens": int(first.n_tokens),
            "special_tokens": bool(first.special_tokens),
            "token_dictionary": first.token_dictionary,
            "provenance": json_safe(self.provenance),
        }
        info = datasets.DatasetInfo(description=json.dumps(description))
        datasets.Dataset(table, info=info).save_to_disk(str(self._folder))

    def _finish_arrays(self) -> None:
        out, first = self._out, self.first
        if first is None:  # no cell: the arrays of an empty encoding
            out.write("offsets", np.zeros(1, dtype=np.int64))
            out.write("token_ids", np.zeros(0, dtype=np.int32))
            out.write("cell_id", [])
            return
        vocab = list(first.token_dictionary.items())
        out.write("vocab_token", [name for name, _ in vocab])
        out.write("vocab_id", np.array([token for _, token in vocab], dtype=np.int32))
        out.attrs(
            {
                **self.provenance,
                "encoding": "geneformer-rank-value",
                "n_tokens": int(first.n_tokens),
                "special_tokens": bool(first.special_tokens),
            }
        )


def _require_datasets() -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise InputError(
            "writing a .dataset folder needs Hugging Face datasets (pip install datasets); "
            "or write .parquet (datasets.load_dataset('parquet', ...) reads it)"
        ) from None


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError(
            "writing Parquet needs pyarrow (pip install gpu-genomics[singlecell]); "
            "or write .h5/.zarr"
        ) from None

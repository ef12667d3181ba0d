"""Geneformer rank-value encoding of single-cell counts, and writing the encodings.

Matches Geneformer's tokenizer (V1 and V2; see ``docs/singlecell.md#geneformer``):

* per cell, ``count / n_counts * 10_000 / gene_median`` where ``n_counts`` is the cell's total
  over *all* genes of the matrix and ``gene_median`` the gene's non-zero median over the corpus
  (a user file, :mod:`.mappings`, or :func:`compute_gene_medians` of the data at hand);
* genes absent from the median dictionary (or from the token dictionary) are dropped; genes
  with a zero count are dropped;
* the remaining genes are sorted by that value, descending, and truncated to
  ``model_input_size`` tokens (2048 for V1), or to ``model_input_size - 2`` with ``<cls>``
  prepended and ``<eos>`` appended when ``special_tokens=True`` (V2: 4096 = 4094 + 2).

Differences, stated: Geneformer's sort leaves the order of equal values unspecified; here ties
are broken by gene index (column of the matrix), ascending, so that the CPU and GPU give the
same tokens. A cell without any kept gene (all zeros) gives an empty encoding (``[<cls>,
<eos>]`` with special tokens) where Geneformer would divide by zero.

The work is on the CSR components of the matrix (``data``, ``indices``, ``indptr``) as plain
arrays of the chosen device (NumPy or CuPy, one xp-generic code path): every cell is processed
at once with one sort over all non-zeros keyed by (cell, value, gene) and segmented arithmetic
(``searchsorted``, ``cumsum``, ``bincount``); nothing loops over cells in Python. Dense and CSC
input are converted to CSR first.

:func:`write_rank_encoding` writes a :class:`RankEncoding` as Parquet (a Geneformer dataset) or
as the HDF5/Zarr arrays of :data:`RANK_ARRAYS`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...device import array_module, resolve_device, to_numpy
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
from ._matrix import device_counts, row_of_entries, var_gene_ids
from ._segments import order_within_rows, positive_bits
from .mappings import (
    CLS_TOKEN,
    EOS_TOKEN,
    INT32_MAX,
    as_gene_medians,
    as_token_dictionary,
    default_token_dictionary,
)

log = logging.getLogger("gpu_genomics")

__all__ = [
    "RANK_ARRAYS",
    "RankEncoding",
    "RankWriter",
    "compute_gene_medians",
    "rank_encode",
    "write_rank_encoding",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
DATASET_SUFFIX = ".dataset"
OUTPUT_FORMATS = ("parquet", "dataset", "hdf5", "zarr")

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


# --- medians from the data --------------------------------------------------------------


def _normalised_entries(
    device_name: str, adata: Any, layer: str | None, target_sum: float, what: str
) -> tuple[Any, Any, Any, int, int]:
    """The positive entries of the matrix, normalised, on the device, in CSR order.

    Returns ``(row, gene, count / cell total * target_sum, n_cells, n_genes)``: int64, int64
    and float64 arrays of the positive entries, and the shape.
    """
    if not (isinstance(target_sum, int | float) and math.isfinite(target_sum) and target_sum > 0):
        raise invalid("target_sum", target_sum, "must be a positive number")
    xp, _, _, csr, data, indices, indptr = device_counts(
        adata, layer, device_name, integer=False, what=what
    )
    n_cells, n_genes = csr.shape
    row = row_of_entries(xp, indptr)
    totals = _cell_totals(xp, data, row, n_cells)
    positive = data > 0
    row, gene, values = row[positive], indices[positive], data[positive].astype(np.float64)
    values = values / totals[row] * float(target_sum)
    return row, gene, values, n_cells, n_genes


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


def compute_gene_medians(
    adata: Any,
    *,
    layer: str | None = None,
    gene_key: str | None = None,
    target_sum: float = 10_000,
    device: str | None = None,
) -> dict[str, float]:
    """Compute each gene's non-zero median of ``count / cell total * target_sum``.

    These are Geneformer's normalisation factors, computed from the cells of ``adata`` instead
    of read from a file (:func:`~.mappings.load_gene_medians`); see
    ``docs/singlecell.md#geneformer-medians``.

    Args:
        adata: ``(n_cells, n_genes)`` raw counts in ``X`` (or ``layers[layer]``): SciPy
            CSR/CSC or dense, any numeric dtype; non-negative and finite.
        layer: read ``adata.layers[layer]`` instead of ``X``.
        gene_key: the ``var`` column of gene ids; default ``var["ensembl_id"]``, else
            ``var["gene_ids"]`` when present,
            else ``var_names``.
        target_sum: the per-cell total after normalisation (Geneformer: 10,000).
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        Gene id -> median (float64; NumPy's median: the mean of the two middle values for an
        even number). Genes never detected are left out; a gene id present in several columns
        keeps the first column's median. Equal on CPU and GPU.

    Raises:
        InputError: a negative or non-finite count (naming its cell and gene), or a bad
            ``layer``/``gene_key``.

    Memory: on the device, about ten 8-byte arrays the length of the stored entries.
    """
    device_name = resolve_device(device)
    xp = array_module(device_name)
    _, gene, values, _, n_genes = _normalised_entries(
        device_name, adata, layer, target_sum, "compute_gene_medians"
    )
    medians = to_numpy(_gene_median_array(xp, gene, values, n_genes))
    return medians_by_gene_id(var_gene_ids(adata, gene_key), medians)


def medians_by_gene_id(gene_ids: np.ndarray, medians: np.ndarray) -> dict[str, float]:
    """Gene id -> median from one median per column (NaN: none); a repeated id keeps its first."""
    first = _first_column_of(gene_ids) == np.arange(len(gene_ids))
    return {
        gene_id: float(median)
        for gene_id, median, is_first in zip(gene_ids, medians, first, strict=True)
        if is_first and np.isfinite(median)
    }


def _token_ids(
    gene_ids: np.ndarray, token_dictionary: Any, *, special_tokens: bool
) -> tuple[dict[str, int], int, int]:
    """``(token dictionary, <cls> id, <eos> id)`` (-1 without special tokens).

    Raises:
        InputError: a bad dictionary, or one without ``<cls>``/``<eos>`` under
            ``special_tokens``.
    """
    if token_dictionary is None:
        tokens = default_token_dictionary(gene_ids, special_tokens=special_tokens)
    else:
        tokens = as_token_dictionary(token_dictionary)
    if not special_tokens:
        return tokens, -1, -1
    missing = [name for name in (CLS_TOKEN, EOS_TOKEN) if name not in tokens]
    if missing:
        raise InputError(
            f"special_tokens=True but the token dictionary has no {' or '.join(missing)}; "
            "use a Geneformer V2 dictionary or special_tokens=False"
        )
    return tokens, tokens[CLS_TOKEN], tokens[EOS_TOKEN]


def _refuse_tokens_without_median(
    gene_ids: np.ndarray, tokens: dict[str, int], medians: dict[str, float]
) -> None:
    """Geneformer's tokenizer raises for a gene of the data with a token but no median."""
    missing = sorted({str(g) for g in gene_ids if g in tokens and g not in medians})
    if missing:
        listed = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            f"{len(missing)} genes of the data have a token but no gene median ({listed}); "
            "Geneformer's tokenizer refuses them too: give a median file that covers the token "
            "dictionary's genes (Geneformer ships the two together)"
        )


def _first_column_of(gene_ids: np.ndarray) -> np.ndarray:
    """``(n_genes,) int64``: the first column holding each column's gene id."""
    _, first, inverse = np.unique(gene_ids.astype(str), return_index=True, return_inverse=True)
    return first[inverse].astype(np.int64)


# --- rank encoding ----------------------------------------------------------------------


@dataclass(kw_only=True)
class RankEncoding:
    """Ragged rank-value encodings: cell ``i``'s tokens are ``token_ids[offsets[i]:offsets[i+1]]``.

    ``offsets`` and ``token_ids`` are on the device that computed them (NumPy or CuPy);
    :meth:`to_host` gives a copy with NumPy arrays. ``len(encoding)`` is the number of cells.

    Attributes:
        offsets: ``(n_cells + 1,) int64``, starting at 0.
        token_ids: ``(total tokens,) int32``.
        cell_ids: ``(n_cells,) object`` of str: ``adata.obs_names``.
        n_tokens: the maximum length of one encoding (special tokens included).
        special_tokens: whether each encoding starts with ``<cls>`` and ends with ``<eos>``.
        token_dictionary: token -> id, as used (special tokens included).
    """

    offsets: Any
    token_ids: Any
    cell_ids: np.ndarray
    n_tokens: int
    special_tokens: bool
    token_dictionary: dict[str, int] = field(repr=False)

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
        )


def rank_encode(
    adata: Any,
    *,
    n_tokens: int = 2048,
    gene_medians: Any = None,
    token_dictionary: Any = None,
    special_tokens: bool = False,
    layer: str | None = None,
    gene_key: str | None = None,
    target_sum: float = 10_000,
    missing_medians: str = "raise",
    device: str | None = None,
) -> RankEncoding:
    """Encode every cell as Geneformer does: its genes ranked by normalised expression.

    Per cell, each detected gene's ``count / cell total * target_sum / gene median`` (the cell
    total over *all* genes of the matrix); genes sorted by it, descending, ties by gene column
    ascending; truncated to ``n_tokens`` (see the module docstring and
    ``docs/singlecell.md#geneformer``).

    Args:
        adata: ``(n_cells, n_genes)`` raw counts in ``X`` (or ``layers[layer]``): SciPy
            CSR/CSC or dense, any numeric dtype; values must be non-negative and finite.
        n_tokens: the maximum encoding length, Geneformer's ``model_input_size``: 2048 for V1;
            with ``special_tokens`` the genes are truncated to ``n_tokens - 2`` and
            ``<cls>``/``<eos>`` added (V2: ``n_tokens=4096``).
        gene_medians: gene id -> non-zero median, as a dict or a file (pickle/JSON/TSV, see
            :func:`~.mappings.load_gene_medians`); ``None`` computes them from ``adata``
            (:func:`compute_gene_medians`).
        token_dictionary: token -> id, a dict or a file
            (:func:`~.mappings.load_token_dictionary`); ``None`` builds one
            (:func:`~.mappings.default_token_dictionary`). With ``special_tokens`` it must hold
            ``<cls>`` and ``<eos>``.
        special_tokens: start each encoding with ``<cls>`` and end it with ``<eos>``
            (Geneformer V2).
        layer: read the counts from ``adata.layers[layer]`` instead of ``X``.
        gene_key: the ``var`` column of gene ids; default ``var["ensembl_id"]``, else
            ``var["gene_ids"]`` when present,
            else ``var_names``.
        target_sum: the per-cell total after normalisation (Geneformer: 10,000).
        missing_medians: ``"raise"`` (Geneformer's behaviour): a gene of the data with a token
            but no median in ``gene_medians`` is an error; ``"drop"``: such genes are left out
            (logged), as genes without a token are.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        :class:`RankEncoding`, on ``device``. Genes without a median or a token are dropped
        (logged once). All arithmetic is float64 in the same order on both devices, so CPU and
        GPU give identical tokens.

    Raises:
        InputError: a bad parameter, a bad mapping, a dictionary without ``<cls>``/``<eos>``
            under ``special_tokens=True``, or a negative or non-finite count (naming its cell
            and gene).

    Memory: on the device, about ten 8-byte arrays the length of the stored entries, plus the
    ``int32`` tokens (at most ``n_cells * n_tokens``).
    """
    n_tokens = positive_int("n_tokens", n_tokens)
    if special_tokens and n_tokens < 3:
        raise invalid("n_tokens", n_tokens, "leaves no room for genes besides <cls>/<eos>")
    device_name = resolve_device(device)
    xp = array_module(device_name)
    gene_ids = var_gene_ids(adata, gene_key)

    tokens, cls_id, eos_id = _token_ids(gene_ids, token_dictionary, special_tokens=special_tokens)

    row, gene, values, n_cells, n_genes = _normalised_entries(
        device_name, adata, layer, target_sum, "rank_encode"
    )
    if gene_medians is None:
        # a duplicated gene id takes its first column's median, as in compute_gene_medians
        median_of_column = _gene_median_array(xp, gene, values, n_genes)
        median_of_column = median_of_column[xp.asarray(_first_column_of(gene_ids))]
    else:
        medians = as_gene_medians(gene_medians)
        median_of_column = xp.asarray(
            np.array([medians.get(g, np.nan) for g in gene_ids], dtype=np.float64)
        )
        if check_choice("missing_medians", missing_medians, ("raise", "drop")) == "raise":
            _refuse_tokens_without_median(gene_ids, tokens, medians)
    token_of_column = np.array([tokens.get(g, -1) for g in gene_ids], dtype=np.int64)
    usable = to_numpy(xp.isfinite(median_of_column)) & (token_of_column >= 0)
    dropped = int(n_genes - usable.sum())
    if dropped:
        log.info(
            "rank_encode: %d of %d genes have no median or no token and are left out",
            dropped,
            n_genes,
        )

    keep = xp.asarray(usable)[gene]
    row, gene, values = row[keep], gene[keep], values[keep]
    values = values / median_of_column[gene]

    # one sort of all cells: cell ascending, value descending, gene ascending
    order = order_within_rows(xp, -positive_bits(xp, values), row, gene, n_cells)
    row, gene = row[order], gene[order]
    genes_per_cell = xp.bincount(row, minlength=n_cells)
    starts = xp.cumsum(genes_per_cell) - genes_per_cell
    rank = xp.arange(row.size, dtype=np.int64) - starts[row]
    limit = n_tokens - 2 if special_tokens else n_tokens
    kept = rank < limit
    extra = 2 if special_tokens else 0
    lengths = xp.minimum(genes_per_cell, limit) + extra
    offsets = xp.zeros(n_cells + 1, dtype=np.int64)
    offsets[1:] = xp.cumsum(lengths)
    total = int(offsets[-1])
    token_ids = xp.zeros(total, dtype=np.int32)
    destination = offsets[row[kept]] + rank[kept] + (1 if special_tokens else 0)
    token_ids[destination] = xp.asarray(token_of_column.astype(np.int32))[gene[kept]]
    if special_tokens and n_cells:
        token_ids[offsets[:-1]] = cls_id
        token_ids[offsets[1:] - 1] = eos_id
    return RankEncoding(
        offsets=offsets,
        token_ids=token_ids,
        cell_ids=np.asarray([str(c) for c in adata.obs_names], dtype=object),
        n_tokens=n_tokens,
        special_tokens=bool(special_tokens),
        token_dictionary=tokens,
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
      (string), ``input_ids`` (``list<int32>``; ``large_list<int32>`` beyond 2**31 - 1 tokens)
      and ``length`` (int32), as a Geneformer dataset; the schema metadata key
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
    block); HDF5/Zarr get ``offsets`` and ``token_ids`` grown block by block, ``cell_id`` filled
    in place, the vocabulary and attributes at the end. A failure leaves nothing at ``path``.

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
        n_cells: int,
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
        """Write the next cells' encodings (after those appended before)."""
        offsets = np.asarray(to_numpy(encoding.offsets), dtype=np.int64)
        token_ids = np.asarray(to_numpy(encoding.token_ids), dtype=np.int32)
        if self.first is None:
            self.first = encoding
        if self.format in ("parquet", "dataset"):
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
            self._cell_ids = out.create("cell_id", (self.n_cells,), str)
        n_cells, n_tokens = len(encoding), len(token_ids)
        self._offsets.resize((self.cells + n_cells + 1,))
        self._offsets[self.cells + 1 :] = offsets[1:] + self.tokens
        if n_tokens:
            self._token_ids.resize((self.tokens + n_tokens,))
            self._token_ids[self.tokens :] = token_ids
        if n_cells:
            names = np.array([str(c) for c in encoding.cell_ids], dtype=object)
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
                if self.cells != self.n_cells:
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
        ``length`` (int64), plus ``cell_id``; the tokenizer's parameters, the token dictionary
        and the provenance are the JSON of the dataset info's ``description``.
        """
        import datasets
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._out.close()
        table = pq.read_table(self._tmp, memory_map=True)
        table = pa.table(
            {
                "input_ids": table["input_ids"].cast(pa.list_(pa.int64())),
                "length": table["length"].cast(pa.int64()),
                "cell_id": table["cell_id"],
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

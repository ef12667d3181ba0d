"""Geneformer rank-value encoding and scGPT value binning of single-cell count matrices.

Both operations work on the CSR components of the matrix (``data``, ``indices``, ``indptr``) as
plain arrays of the chosen device (NumPy or CuPy, one xp-generic code path): every cell is
processed at once with sorts over all non-zeros keyed by (cell, value, gene) and segmented
arithmetic (``searchsorted``, ``cumsum``, ``bincount``); nothing loops over cells in Python.
Dense input is converted to CSR first; CSC is converted to CSR.

Geneformer (``TranscriptomeTokenizer`` of ``geneformer/tokenizer.py``, V1 and V2), matched here:

* per cell, ``count / n_counts * 10_000 / gene_median`` where ``n_counts`` is the cell's total
  over *all* genes of the matrix (Geneformer reads it from ``obs["n_counts"]``, computed over
  all genes) and ``gene_median`` the gene's non-zero median over the corpus;
* genes absent from the median dictionary (or from the token dictionary) are dropped; genes
  with a zero count are dropped;
* the remaining genes are sorted by that value, descending (``np.argsort(-values)``), and
  truncated to ``model_input_size`` tokens (2048 for V1), or to ``model_input_size - 2`` with
  ``<cls>`` prepended and ``<eos>`` appended when ``special_token=True`` (V2: 4096 = 4094 + 2).

Differences, stated: Geneformer's ``np.argsort`` (quicksort) leaves the order of equal values
unspecified; here ties are broken by gene index (column of the matrix), ascending, so that the
CPU and GPU give the same tokens. A cell without any kept gene (all zeros) gives an empty
encoding (``[<cls>, <eos>]`` with special tokens) where Geneformer would divide by zero.

scGPT (``scgpt/preprocess.py``: ``Preprocessor`` binning step, ``binning``, ``_digitize``):
per cell, edges = ``np.quantile(non_zero_values, np.linspace(0, 1, n_bins - 1))``; each non-zero
value gets ``np.digitize(x, edges)`` (1 .. n_bins - 1) and zeros stay 0. With
``tie_break="random"`` (scGPT's ``_digitize(side="both")``) a value equal to one or more edges
gets a uniformly random bin among the tied ones, ``ceil(u * (right - left) + left)``;
``tie_break="left"`` is ``side="one"``. The edges are computed in float64 with NumPy's own
"linear" quantile formula (virtual index ``(n - 1) * q`` and the two-sided ``_lerp``), so they
equal ``np.quantile`` on the float64 values bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ...device import array_module, resolve_device, to_numpy
from ...errors import InputError, positive_int
from ...io.provenance import json_safe
from ...io.spec import STRING, ArraySpec, OutputSpec
from ...io.store import SUFFIX_FORMATS, ArrayWriter, atomic_output, check_output_folder
from ._matrix import (
    check_seed,
    device_counts,
    row_of_entries,
    var_gene_ids,
)

log = logging.getLogger("gpu_genomics")

__all__ = [
    "RankEncoding",
    "bin_values",
    "compute_gene_medians",
    "load_gene_medians",
    "load_token_dictionary",
    "rank_encode",
    "write_rank_encoding",
]

PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"
CLS_TOKEN = "<cls>"
EOS_TOKEN = "<eos>"
PARQUET_SUFFIXES = (".parquet", ".pq")

RANK_ARRAYS = OutputSpec(
    "scrna --rank-encode: Geneformer rank-value tokens (HDF5/Zarr; Parquet: cell_id, "
    "input_ids, length per cell)",
    (
        ArraySpec("offsets", "int64", ("cells_plus_one",),
                  "cell i's tokens are token_ids[offsets[i]:offsets[i+1]]"),
        ArraySpec("token_ids", "int32", ("tokens",), "every cell's token ids, back to back"),
        ArraySpec("cell_id", STRING, ("cells",), "cell names (obs_names)"),
        ArraySpec("vocab_token", STRING, ("vocabulary",), "the token dictionary's tokens"),
        ArraySpec("vocab_id", "int32", ("vocabulary",), "the id of each vocab_token"),
    ),
)  # fmt: skip
INT32_MAX = 2**31 - 1


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


def _positive_bits(xp: Any, values: Any) -> Any:
    """``int64`` keys ordered as the positive float64 ``values`` are (IEEE bit patterns of
    positive doubles are monotone)."""
    return xp.ascontiguousarray(values.astype(np.float64)).view(np.int64)


@numba.njit(parallel=True, cache=True, nogil=True)
def _stable_argsort_segments(keys, starts, order):  # pragma: no cover
    for segment in numba.prange(len(starts) - 1):
        begin, end = starts[segment], starts[segment + 1]
        if end - begin > 0:
            order[begin:end] = np.argsort(keys[begin:end], kind="mergesort") + begin


def _order_within_rows(xp: Any, keys: Any, row: Any, extra_key: Any, n_rows: int) -> Any:
    """The permutation that sorts entries by (row, key, extra_key), for entries already in row
    order with ``extra_key`` ascending within each row (CSR order).

    GPU: one ``lexsort`` over all entries. CPU: a stable per-row sort in parallel (numba),
    which keeps the ``extra_key`` order among equal keys, so both give the same permutation.
    """
    if xp is np:
        starts = np.zeros(n_rows + 1, dtype=np.int64)
        starts[1:] = np.cumsum(np.bincount(row, minlength=n_rows))
        order = np.empty(keys.size, dtype=np.int64)
        _stable_argsort_segments(np.ascontiguousarray(keys), starts, order)
        return order
    return xp.lexsort(xp.stack([extra_key, keys, row]))


# --- user files -------------------------------------------------------------------------


def _read_mapping(path: str | os.PathLike, what: str, value_kind: str) -> dict[str, Any]:
    """Read a two-column mapping (gene id -> value) from pickle, JSON or TSV."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    if suffix in (".pkl", ".pickle"):
        try:
            with open(path, "rb") as handle:
                loaded = pickle.load(handle)  # user-supplied, as in Geneformer
        except Exception as exc:
            raise InputError(
                f"{path}: cannot read the pickle ({type(exc).__name__}: {exc}); "
                f"give a pickled dict of gene id -> {value_kind}"
            ) from None
        if not isinstance(loaded, Mapping):
            raise InputError(
                f"{path}: the pickle holds a {type(loaded).__name__}, not a dict of gene id -> "
                f"{value_kind}"
            )
        return {str(k): v for k, v in loaded.items()}
    if suffix == ".json":
        try:
            loaded = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(
                f"{path}: the JSON holds a {type(loaded).__name__}, not an object of gene id -> "
                f"{value_kind}"
            )
        return loaded
    if suffix in (".tsv", ".txt", ".tab"):
        return _read_tsv(path, value_kind)
    raise InputError(
        f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
        "name it .pkl/.pickle, .json or .tsv"
    )


def _read_tsv(path: Path, value_kind: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; give a two-column TSV") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2:
            raise InputError(
                f"{path}: line {number} has {len(fields)} tab-separated fields; expected 2 "
                f"(gene id, {value_kind})"
            )
        key, value = fields[0].strip(), fields[1].strip()
        if not mapping and number == _first_content_line(lines) and not _is_number(value):
            continue  # header line
        if key in mapping:
            raise InputError(f"{path}: line {number}: gene id {key!r} appears twice")
        mapping[key] = value
    return mapping


def _first_content_line(lines: list[str]) -> int:
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith("#"):
            return number
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_gene_medians(path: str | os.PathLike) -> dict[str, float]:
    """Read gene id -> non-zero median (Geneformer's ``gene_median_dictionary.pkl``).

    Formats by suffix: pickle (``.pkl``/``.pickle``, a dict; load only files you trust), JSON
    (``.json``, an object) or TSV (``.tsv``/``.txt``: gene id, median; header optional).
    Every median must be a finite number > 0.
    """
    return _checked_medians(_read_mapping(path, "gene median", "median"), str(path))


def _checked_medians(raw: Mapping, source: str) -> dict[str, float]:
    """``raw`` (gene id -> median) with str keys and float values, each finite and > 0."""
    medians: dict[str, float] = {}
    for gene, value in raw.items():
        try:
            median = float(value)
        except (TypeError, ValueError):
            median = math.nan
        if not math.isfinite(median) or median <= 0:
            raise InputError(
                f"{source}: gene {gene!r} has median {value!r}; medians must be finite numbers > 0"
            )
        medians[str(gene)] = median
    return medians


def load_token_dictionary(path: str | os.PathLike) -> dict[str, int]:
    """Read token -> id (Geneformer's ``token_dictionary.pkl``: gene ids and special tokens
    such as ``<pad>``, ``<mask>``, ``<cls>``, ``<eos>``).

    Formats as :func:`load_gene_medians`; ids must be integers in 0 .. 2**31 - 1.
    """
    return _checked_tokens(_read_mapping(path, "token dictionary", "token id"), str(path))


def _checked_tokens(raw: Mapping, source: str) -> dict[str, int]:
    """``raw`` (token -> id) with str keys and int ids in 0 .. 2**31 - 1."""
    tokens: dict[str, int] = {}
    for gene, value in raw.items():
        token = _as_token_id(value)
        if token is None:
            raise InputError(
                f"{source}: token {gene!r} has id {value!r}; ids must be integers in 0..{INT32_MAX}"
            )
        tokens[str(gene)] = token
    return tokens


def _as_token_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, int | np.integer) or not 0 <= int(value) <= INT32_MAX:
        return None
    return int(value)


def _as_medians(gene_medians: Any) -> dict[str, float]:
    if isinstance(gene_medians, str | os.PathLike):
        return load_gene_medians(gene_medians)
    if not isinstance(gene_medians, Mapping):
        raise InputError(
            "gene_medians must be a path or a dict of gene id -> median, "
            f"not {type(gene_medians).__name__}"
        )
    return _checked_medians(gene_medians, "gene_medians")


def _as_token_dictionary(token_dictionary: Any) -> dict[str, int]:
    if isinstance(token_dictionary, str | os.PathLike):
        return load_token_dictionary(token_dictionary)
    if not isinstance(token_dictionary, Mapping):
        raise InputError(
            "token_dictionary must be a path or a dict of token -> id, "
            f"not {type(token_dictionary).__name__}"
        )
    return _checked_tokens(token_dictionary, "token_dictionary")


def default_token_dictionary(gene_ids: Any, special_tokens: bool = False) -> dict[str, int]:
    """``<pad>`` = 0, ``<mask>`` = 1 (and ``<cls>`` = 2, ``<eos>`` = 3 with ``special_tokens``),
    then each distinct gene id in the given order."""
    specials = [PAD_TOKEN, MASK_TOKEN] + ([CLS_TOKEN, EOS_TOKEN] if special_tokens else [])
    tokens = {name: i for i, name in enumerate(specials)}
    for gene in gene_ids:
        tokens.setdefault(str(gene), len(tokens))
    return tokens


# --- medians from the data --------------------------------------------------------------


def _normalised_entries(
    device_name: str, adata: Any, layer: str | None, target_sum: float, what: str
) -> tuple[Any, Any, Any, int, int]:
    """The positive entries of the matrix, normalised: ``(row, gene, count / total *
    target_sum)`` on the device (int64, int64, float64), in CSR order, plus the shape."""
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
    order = xp.lexsort(xp.stack([_positive_bits(xp, values), gene]))
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
    """Each gene's non-zero median of ``count / cell total * target_sum`` over the cells of
    ``adata`` (Geneformer's normalisation factors, computed from the data at hand).

    Returns a dict gene id -> median (float64, NumPy's median: the mean of the two middle values
    for an even number); genes never detected are left out. A gene id present in several
    columns keeps the first column's median. Equal on CPU and GPU.
    """
    device_name = resolve_device(device)
    xp = array_module(device_name)
    _, gene, values, _, n_genes = _normalised_entries(
        device_name, adata, layer, target_sum, "compute_gene_medians"
    )
    medians = to_numpy(_gene_median_array(xp, gene, values, n_genes))
    gene_ids = var_gene_ids(adata, gene_key)
    first = np.zeros(len(gene_ids), dtype=bool)
    first[np.unique(gene_ids.astype(str), return_index=True)[1]] = True
    return {
        gene_id: float(median)
        for gene_id, median, is_first in zip(gene_ids, medians, first, strict=True)
        if is_first and np.isfinite(median)
    }


# --- rank encoding ----------------------------------------------------------------------


@dataclass
class RankEncoding:
    """Ragged rank-value encodings: cell ``i``'s tokens are ``token_ids[offsets[i]:
    offsets[i + 1]]``.

    Attributes:
        offsets: ``(n_cells + 1,) int64``, starting at 0.
        token_ids: ``(total tokens,) int32``.
        cell_ids: ``(n_cells,) object`` of str: ``adata.obs_names``.
        n_tokens: the maximum length of one encoding (special tokens included).
        special_tokens: whether each encoding starts with ``<cls>`` and ends with ``<eos>``.
        token_dictionary: token -> id, as used (special tokens included).

    ``offsets`` and ``token_ids`` are on the device that computed them (NumPy or CuPy);
    :meth:`to_host` gives a copy with NumPy arrays.
    """

    offsets: Any
    token_ids: Any
    cell_ids: np.ndarray
    n_tokens: int
    special_tokens: bool
    token_dictionary: dict[str, int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.cell_ids)

    @property
    def lengths(self) -> Any:
        """``(n_cells,) int64``: tokens per cell."""
        return self.offsets[1:] - self.offsets[:-1]

    def cell_tokens(self, i: int) -> np.ndarray:
        """``int32`` token ids of cell ``i``, on the host."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return np.asarray(to_numpy(self.token_ids[start:stop]))

    def to_host(self) -> RankEncoding:
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
    n_tokens: int = 2048,
    gene_medians: Any = None,
    token_dictionary: Any = None,
    special_tokens: bool = False,
    *,
    layer: str | None = None,
    gene_key: str | None = None,
    target_sum: float = 10_000,
    device: str | None = None,
) -> RankEncoding:
    """Geneformer's rank-value encoding of every cell (see the module docstring).

    Args:
        adata: cells x genes raw counts in ``X`` (or ``layers[layer]``): SciPy CSR/CSC or dense,
            any numeric dtype; values must be non-negative and finite.
        n_tokens: the maximum encoding length, Geneformer's ``model_input_size``: 2048 for V1;
            with ``special_tokens`` the genes are truncated to ``n_tokens - 2`` and
            ``<cls>``/``<eos>`` added (V2: ``n_tokens=4096``).
        gene_medians: gene id -> non-zero median, as a dict or a file (pickle/JSON/TSV, see
            :func:`load_gene_medians`); ``None`` computes them from ``adata``
            (:func:`compute_gene_medians`).
        token_dictionary: token -> id, a dict or a file (:func:`load_token_dictionary`);
            ``None`` builds one (:func:`default_token_dictionary`). With ``special_tokens`` it
            must hold ``<cls>`` and ``<eos>``.
        layer, gene_key: where the counts and the gene ids are (gene ids: ``var[gene_key]``,
            else ``var["gene_ids"]``, else ``var_names``).
        target_sum: the per-cell total after normalisation (Geneformer: 10,000).

    Returns:
        :class:`RankEncoding`. Genes without a median or a token are dropped (logged once);
        ties in the normalised value are ordered by gene column, ascending. All arithmetic is
        float64 in the same order on both devices, so CPU and GPU give identical tokens.
    """
    n_tokens = positive_int("n_tokens", n_tokens)
    if special_tokens and n_tokens < 3:
        raise InputError(f"n_tokens={n_tokens} leaves no room for genes besides <cls>/<eos>")
    if not (isinstance(target_sum, int | float) and math.isfinite(target_sum) and target_sum > 0):
        raise InputError(f"target_sum={target_sum!r} must be a positive number")
    device_name = resolve_device(device)
    xp = array_module(device_name)
    gene_ids = var_gene_ids(adata, gene_key)

    if token_dictionary is None:
        tokens = default_token_dictionary(gene_ids, special_tokens)
    else:
        tokens = _as_token_dictionary(token_dictionary)
    cls_id = eos_id = -1
    if special_tokens:
        missing = [name for name in (CLS_TOKEN, EOS_TOKEN) if name not in tokens]
        if missing:
            raise InputError(
                f"special_tokens=True but the token dictionary has no {' or '.join(missing)}; "
                "use a Geneformer V2 dictionary or special_tokens=False"
            )
        cls_id, eos_id = tokens[CLS_TOKEN], tokens[EOS_TOKEN]

    row, gene, values, n_cells, n_genes = _normalised_entries(
        device_name, adata, layer, target_sum, "rank_encode"
    )
    if gene_medians is None:
        # a duplicated gene id takes its first column's median, as in compute_gene_medians
        median_of_column = _gene_median_array(xp, gene, values, n_genes)
        median_of_column = median_of_column[xp.asarray(_first_column_of(gene_ids))]
    else:
        medians = _as_medians(gene_medians)
        median_of_column = xp.asarray(
            np.array([medians.get(g, np.nan) for g in gene_ids], dtype=np.float64)
        )
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
    order = _order_within_rows(xp, -_positive_bits(xp, values), row, gene, n_cells)
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


def _first_column_of(gene_ids: np.ndarray) -> np.ndarray:
    """``(n_genes,) int64``: the first column holding each column's gene id."""
    _, first, inverse = np.unique(gene_ids.astype(str), return_index=True, return_inverse=True)
    return first[inverse].astype(np.int64)


# --- writing ----------------------------------------------------------------------------


def write_rank_encoding(
    encoding: RankEncoding,
    path: str | os.PathLike,
    *,
    format: str | None = None,
    compression: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write ``encoding`` to ``path`` atomically (a temporary file renamed on success).

    ``provenance`` (:func:`gpu_genomics.io.provenance.provenance`) is stored with it: root
    attributes in HDF5/Zarr, the schema metadata key ``gpu_genomics_provenance`` in Parquet.

    * ``.parquet`` / ``.pq`` (or ``format="parquet"``): one row per cell with ``cell_id``
      (string), ``input_ids`` (``list<int32>``; ``large_list<int32>`` beyond 2**31 - 1 tokens)
      and ``length`` (int32), as a Geneformer dataset; the schema metadata key
      ``gpu_genomics`` holds JSON with ``n_tokens``, ``special_tokens`` and the token
      dictionary. ``compression`` is Parquet's codec (default zstd).
    * ``.h5``/``.hdf5``/``.zarr`` (or ``format="hdf5"|"zarr"``), through
      :class:`~gpu_genomics.store.ArrayWriter`: ``offsets`` (int64), ``token_ids`` (int32),
      ``cell_id`` (strings), ``vocab_token`` (strings) and ``vocab_id`` (int32) for the token
      dictionary, root attributes ``n_tokens``, ``special_tokens``, ``encoding``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if format is None:
        if suffix in PARQUET_SUFFIXES:
            format = "parquet"
        elif suffix not in SUFFIX_FORMATS:
            raise InputError(
                f"{path}: cannot tell the output format from the suffix {suffix or '(none)'!r}; "
                "name it .parquet, .h5/.hdf5 or .zarr"
            )
    if format not in (None, "parquet", "hdf5", "zarr"):
        raise InputError(f"format={format!r} is not one of parquet, hdf5, zarr")
    offsets = np.asarray(to_numpy(encoding.offsets), dtype=np.int64)
    token_ids = np.asarray(to_numpy(encoding.token_ids), dtype=np.int32)
    if format == "parquet":
        _write_parquet(encoding, offsets, token_ids, path, compression, provenance or {})
        return
    vocab = list(encoding.token_dictionary.items())
    with ArrayWriter(path, format=format, compression=compression, spec=RANK_ARRAYS) as out:
        out.write("offsets", offsets)
        out.write("token_ids", token_ids)
        out.write("cell_id", [str(c) for c in encoding.cell_ids])
        out.write("vocab_token", [name for name, _ in vocab])
        out.write("vocab_id", np.array([token for _, token in vocab], dtype=np.int32))
        out.attrs(
            {
                **(provenance or {}),
                "encoding": "geneformer-rank-value",
                "n_tokens": int(encoding.n_tokens),
                "special_tokens": bool(encoding.special_tokens),
            }
        )


def _write_parquet(
    encoding: RankEncoding,
    offsets: np.ndarray,
    token_ids: np.ndarray,
    path: Path,
    compression: str | None,
    provenance: dict[str, Any],
) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "writing Parquet needs pyarrow (pip install gpu-genomics[singlecell]); "
            "or write .h5/.zarr"
        ) from None
    check_output_folder(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the output a file name such as out.parquet")
    values = pa.array(token_ids, type=pa.int32())
    if offsets[-1] <= INT32_MAX:
        input_ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    else:
        input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), values)
    metadata = {
        "n_tokens": int(encoding.n_tokens),
        "special_tokens": bool(encoding.special_tokens),
        "token_dictionary": encoding.token_dictionary,
    }
    table = pa.table(
        {
            "cell_id": pa.array([str(c) for c in encoding.cell_ids], type=pa.string()),
            "input_ids": input_ids,
            "length": pa.array(np.diff(offsets).astype(np.int32)),
        }
    ).replace_schema_metadata(
        {
            "gpu_genomics": json.dumps(metadata),
            "gpu_genomics_provenance": json.dumps(json_safe(provenance)),
        }
    )
    try:
        with atomic_output(path) as tmp_path:
            pq.write_table(table, tmp_path, compression=compression or "zstd")
    except (pa.ArrowException, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot write Parquet ({exc})") from None


# --- scGPT binning ----------------------------------------------------------------------


def _splitmix_uniform(xp: Any, seed: int, n: int) -> Any:
    """``(n,) float64`` uniform in [0, 1): SplitMix64 of (seed, position), the same numbers on
    every device."""
    mask = (1 << 64) - 1
    state = (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & mask
    z = xp.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(state)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _count_edges(xp: Any, edges: Any, row: Any, x: Any, n_edges: int, inclusive: bool) -> Any:
    """Per value, how many of its row's sorted ``edges`` are <= it (``inclusive``) or < it:
    ``np.searchsorted(edges[row], x, side="right" | "left")`` by a vectorised binary search."""
    lo = xp.zeros(x.size, dtype=np.int64)
    hi = xp.full(x.size, n_edges, dtype=np.int64)
    base = row * n_edges
    for _ in range(max(1, int(n_edges).bit_length())):
        active = lo < hi
        mid = (lo + hi) // 2
        edge = edges[base + xp.minimum(mid, n_edges - 1)]
        below = (edge <= x) if inclusive else (edge < x)
        lo = xp.where(active & below, mid + 1, lo)
        hi = xp.where(active & ~below, mid, hi)
    return lo


def bin_values(
    adata: Any,
    n_bins: int = 51,
    seed: int = 0,
    layer: str | None = None,
    key_added: str = "X_binned",
    *,
    tie_break: str = "random",
    inplace: bool = True,
    device: str | None = None,
) -> Any:
    """scGPT's per-cell quantile binning (see the module docstring).

    Args:
        adata: values in ``X`` (or ``layers[layer]``), usually normalised log1p expression;
            non-negative and finite. Zeros stay 0.
        n_bins: scGPT's ``n_bins`` (51 in its tutorials): ``n_bins - 1`` edges per cell and
            non-zero values in bins 1 .. n_bins - 1.
        seed: seeds the tie-breaking draws (``tie_break="random"``).
        key_added: the layer written.
        tie_break: ``"random"`` (scGPT ``_digitize(side="both")``) or ``"left"``
            (``side="one"``: ``np.digitize(x, edges)``, no randomness).
        inplace: write ``adata.layers[key_added]`` and return None, or return the matrix.

    Returns:
        None, or the ``int64`` matrix: CSR with the input's sparsity pattern (canonical order)
        for sparse input, dense for dense input; on the host.

    The random draws are a counter-based hash of (seed, stored entry), so the result is
    deterministic for a seed and identical on CPU and GPU.
    """
    n_bins = positive_int("n_bins", n_bins)
    if n_bins < 3:
        raise InputError(f"n_bins={n_bins} must be at least 3 (scGPT uses 51)")
    if tie_break not in ("random", "left"):
        raise InputError(f"tie_break={tie_break!r} is not one of random, left")
    seed = check_seed(seed)
    xp, _, matrix, csr, data, _, indptr = device_counts(
        adata, layer, device, integer=False, what="bin_values"
    )
    n_cells = csr.shape[0]
    binned = xp.zeros(data.size, dtype=np.int64)
    positive = xp.nonzero(data > 0)[0]
    if positive.size:
        row = row_of_entries(xp, indptr)[positive]
        values = data[positive].astype(np.float64)
        order = _order_within_rows(xp, _positive_bits(xp, values), row, positive, n_cells)
        sorted_values = values[order]
        counts = xp.bincount(row, minlength=n_cells)
        starts = xp.cumsum(counts) - counts
        n_edges = n_bins - 1
        quantiles = xp.asarray(np.linspace(0, 1, n_edges))
        # NumPy's "linear" method: virtual index (n - 1) * q, neighbours clipped at the end
        n_minus_1 = (xp.maximum(counts, 1) - 1).astype(np.float64)[:, None]
        virtual = n_minus_1 * quantiles[None, :]
        previous = xp.floor(virtual)
        above = virtual >= n_minus_1
        gamma = virtual - xp.where(above, -1.0, previous)
        previous = xp.where(above, n_minus_1, previous).astype(np.int64)
        following = xp.where(above, n_minus_1, previous + 1).astype(np.int64)
        has = counts[:, None] > 0
        first = starts[:, None]
        a = xp.where(has, sorted_values[xp.where(has, first + previous, 0)], 0.0)
        b = xp.where(has, sorted_values[xp.where(has, first + following, 0)], 0.0)
        diff = b - a
        edges = xp.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma).ravel()
        left = _count_edges(xp, edges, row, values, n_edges, inclusive=True)
        if tie_break == "random":
            right = _count_edges(xp, edges, row, values, n_edges, inclusive=False)
            uniform = _splitmix_uniform(xp, seed, data.size)[positive]
            digits = xp.ceil(uniform * (right - left).astype(np.float64) + left).astype(np.int64)
        else:
            digits = left
        binned[positive] = digits
    result_data = to_numpy(binned)
    import scipy.sparse as sp

    if sp.issparse(matrix):
        result: Any = sp.csr_matrix((result_data, csr.indices.copy(), csr.indptr.copy()), csr.shape)
    else:
        result = sp.csr_matrix((result_data, csr.indices, csr.indptr), csr.shape).toarray()
    if not inplace:
        return result
    adata.layers[key_added] = result
    return None

"""Streaming conversion of 10x Matrix Market folders, loom files and CSV/TSV tables to Zarr.

A block of cells at a time, never the whole matrix in memory.

:func:`convert_to_zarr` writes the AnnData that :func:`~.readers.read` gives for the input
(the same ``obs``/``var`` names and columns, ``X`` values and dtype; loom's layers and ``obsm``
too) as an AnnData ``.zarr`` with a CSR ``X``, which :func:`~.blocks.open_count_blocks` and
:func:`~.blocks.open_carried` read by rows. The out-of-core recipe converts such inputs once
(:func:`~.job._converted_source`).

How each format is read:

- *10x Matrix Market* (``matrix.mtx[.gz]``: genes x cells coordinates; the files scanpy's
  ``read_10x_mtx`` reads, with its names and columns and its "Gene Expression" filter): the
  text is parsed in chunks of :data:`ENTRIES_PER_READ` entries (:func:`~.readers.
  iter_matrix_market`: the same one-line errors as :func:`~.readers.check_matrix_market`).
  Entries sorted by cell (Cell Ranger writes them so) are gathered into blocks of cells and
  written as they complete. At the first entry of an earlier block (any order is legal) that
  pass stops, and a second pass sorts the entries into one temporary file per block of cells
  (12 bytes an entry), then reads the files back one block at a time.
- *loom* (``/matrix`` and ``/layers/*`` genes x cells): column blocks ``[:, start:stop]`` read,
  transposed and stored CSR (``X`` float32 from ``layers/spliced`` when present, as anndata's
  ``read_loom``; layers float64); numeric multi-column cell attributes become ``obsm`` written by
  blocks of rows.
- *CSV/TSV, cells x genes*: rows parsed in chunks (at most ``chunk_cells`` rows and about
  :data:`ENTRIES_PER_READ` values), each written as CSR rows.
- *CSV/TSV, genes x cells* (``transpose=True``): gene rows parsed in chunks of about
  :data:`ENTRIES_PER_READ` values, their non-zeros sorted into one temporary file per block of
  cells, then read back one block at a time.

Tables are checked as :func:`~gpu_genomics.expression.tables.read_table` checks them, with its
one-line errors naming the file, the line and the column.

Memory: one block of ``chunk_cells`` cells (its entries as COO and CSR, 24 bytes or so per
entry; for loom its dense ``n_genes x chunk_cells`` slice as stored) plus one parsed chunk of
:data:`ENTRIES_PER_READ` entries or values (or one table row if longer), the per-cell and
per-gene names and columns (and Zarr's buffers of a few chunks): bounded by the block size,
never by the dataset's (the temporary block files are written unbuffered, at most
:data:`OPEN_BUCKETS` open at once). Disk: the Zarr, plus for an unsorted Matrix Market file
or a genes x cells table 12 bytes per stored entry of temporary files, removed at the end.
"""

from __future__ import annotations

import collections
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InputError, check_choice, positive_int
from .blocks import block_starts
from .chunked import DEFAULT_CHUNK_CELLS
from .readers import (
    FORMATS,
    LOOM_CELL_NAMES,
    LOOM_GENE_NAMES,
    MatrixMarketHeader,
    detect_format,
    iter_matrix_market,
    read_matrix_market_header,
)
from .recipe import annotate_genes

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ENTRIES_PER_READ", "STREAMED_FORMATS", "convert_to_zarr"]

#: The input formats :func:`convert_to_zarr` streams.
STREAMED_FORMATS = ("10x-mtx", "loom", "table")
#: Matrix Market entries, or table values, parsed at a time.
ENTRIES_PER_READ = 1_000_000
#: Temporary block files kept open at once (the others are reopened to append).
OPEN_BUCKETS = 64
_DATA_CHUNK = 1 << 16  # Zarr chunk of CSR values and indices (256 KiB of float32)
_PTR_CHUNK = 1 << 16
#: A stored entry in a temporary block file: its cell within the block, gene, value.
_RECORD = np.dtype([("cell", "<i4"), ("gene", "<i4"), ("value", "<f4")])
_FIELDS = ("integer", "real", "double", "pattern")
_SYMMETRIES = ("general", "symmetric", "skew-symmetric")


def convert_to_zarr(
    path: str | os.PathLike,
    store: str | os.PathLike,
    *,
    kind: str | None = None,
    transpose: bool = False,
    chunk_cells: int = DEFAULT_CHUNK_CELLS,
) -> None:
    """Write the count matrix at ``path`` to ``store`` as an AnnData Zarr, a block at a time.

    The AnnData is the one :func:`~.readers.read` gives (``(n_cells, n_genes)``, ``X`` CSR
    float32 with sorted indices, ``var`` with ``gene_ids``/``gene_symbols`` and the format's
    own columns, duplicate gene names made unique with a warning), written with a CSR ``X``
    (int32 indices, int64 row offsets) readable by rows (:func:`~.blocks.open_count_blocks`).

    Args:
        path: a 10x matrix folder, a ``.loom`` file or a CSV/TSV table (optionally gzip).
        store: the ``.zarr`` folder to write; written to a temporary path beside it and
            renamed when complete (an earlier store of that name is replaced).
        kind: ``"10x-mtx"``, ``"loom"`` or ``"table"``; default: detected from the path.
        transpose: tables only: the table is genes x cells (rows are genes).
        chunk_cells: cells per block, the unit of memory (see the module docstring).

    Raises:
        InputError: a missing or malformed input (one line naming the file and, for text, the
            line), another format, ``transpose`` for a format other than a table, or an empty
            matrix.

    Memory: one block of ``chunk_cells`` cells and one parsed chunk of
    :data:`ENTRIES_PER_READ` entries, plus the names (module docstring).
    """
    from ...io.store import atomic_output

    path, store = Path(path), Path(store)
    chunk_cells = positive_int("chunk_cells", chunk_cells)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = check_choice("format", kind or detect_format(path), FORMATS)
    if kind not in STREAMED_FORMATS:
        raise InputError(
            f"{path}: {kind} is not converted by streaming (only {', '.join(STREAMED_FORMATS)})"
        )
    if transpose and kind != "table":
        raise InputError(f"{path}: transpose=True applies to CSV/TSV tables only, not {kind}")
    with (
        atomic_output(store, directory=True) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{store.name}.scratch-", dir=store.parent) as work,
    ):
        out = _Output(tmp, Path(work))
        try:
            if kind == "10x-mtx":
                _convert_mtx(path, out, chunk_cells=chunk_cells)
            elif kind == "loom":
                _convert_loom(path, out, chunk_cells=chunk_cells)
            else:
                _convert_table(path, out, chunk_cells=chunk_cells, transpose=transpose)
        except (InputError, MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{path}: cannot be read as {kind} ({message})") from None


# --- writing ----------------------------------------------------------------------------------


class _CsrWriter:
    """A CSR matrix written by rows, in order, to a Zarr group (anndata's ``csr_matrix``).

    ``data`` in ``dtype``, ``indices`` int32, ``indptr`` int64; the ``shape`` attribute is
    written by :meth:`finish`, so the number of rows may be unknown until then.
    """

    def __init__(self, group: Any, n_columns: int, dtype: Any) -> None:
        self.group, self.n_columns, self.dtype = group, n_columns, np.dtype(dtype)
        self.restart()

    def restart(self) -> None:
        """Forget every row written: the arrays are created anew, empty."""
        for name in ("data", "indices", "indptr"):
            if name in self.group:
                del self.group[name]
        self.data = self.group.create_array(
            "data", shape=(0,), chunks=(_DATA_CHUNK,), dtype=self.dtype
        )
        self.indices = self.group.create_array(
            "indices", shape=(0,), chunks=(_DATA_CHUNK,), dtype=np.int32
        )
        self.indptr = self.group.create_array(
            "indptr", shape=(1,), chunks=(_PTR_CHUNK,), dtype=np.int64, fill_value=0
        )
        self.rows = self.nnz = 0

    def _fill(self, stop: int) -> None:
        """Empty rows up to ``stop``."""
        if stop > self.rows:
            self.indptr.resize((stop + 1,))
            self.indptr[self.rows + 1 : stop + 1] = self.nnz
            self.rows = stop

    def write(self, start: int, block: Any) -> None:
        """Write ``block`` (a SciPy sparse matrix) as rows ``start, start + 1, ...``.

        Rows skipped since the last write are empty.
        """
        if start < self.rows:
            raise ValueError(f"rows written out of order ({start} < {self.rows})")
        block = block.tocsr()
        if block.shape[1] != self.n_columns:
            raise ValueError(f"a block of {block.shape[1]} columns, expected {self.n_columns}")
        if not block.has_canonical_format:
            block.sum_duplicates()  # sorted indices, duplicates summed (as scipy's tocsr)
        self._fill(start)
        n, k = block.shape[0], block.nnz
        if k:
            self.data.resize((self.nnz + k,))
            self.indices.resize((self.nnz + k,))
            self.data[self.nnz :] = block.data.astype(self.dtype, copy=False)
            self.indices[self.nnz :] = block.indices.astype(np.int32, copy=False)
        self.indptr.resize((start + n + 1,))
        self.indptr[start + 1 :] = self.nnz + block.indptr[1:].astype(np.int64)
        self.rows, self.nnz = start + n, self.nnz + k

    def finish(self, n_rows: int) -> None:
        """Empty rows up to ``n_rows``, and the encoding's attributes."""
        self._fill(n_rows)
        self.group.attrs.update(
            {
                "encoding-type": "csr_matrix",
                "encoding-version": "0.1.0",
                "shape": [int(n_rows), int(self.n_columns)],
            }
        )


class _DenseWriter:
    """A dense per-cell array (an ``obsm`` entry) written by blocks of rows."""

    def __init__(self, parent: Any, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        rows = max(1, min(shape[0], _DATA_CHUNK // max(1, int(np.prod(shape[1:])))))
        self.array = parent.create_array(name, shape=shape, chunks=(rows, *shape[1:]), dtype=dtype)
        self.array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})

    def write(self, start: int, rows: np.ndarray) -> None:
        self.array[start : start + len(rows)] = rows


class _Output:
    """The store being written.

    The streamed elements go to a scratch Zarr, then move into the AnnData that anndata writes
    from the metadata (:meth:`finish`).
    """

    def __init__(self, store: Path, work: Path) -> None:
        import zarr

        self.store, self.work = store, work
        self._root = zarr.open_group(str(work / "elements.zarr"), mode="w", zarr_format=2)
        self._keys: list[str] = []

    def _parent(self, key: str) -> tuple[Any, str]:
        head, _, name = key.rpartition("/")
        return (self._root.require_group(head) if head else self._root), name

    def csr(self, key: str, n_columns: int, dtype: Any) -> _CsrWriter:
        """A CSR element at ``key`` (``"X"``, ``"layers/NAME"``)."""
        parent, name = self._parent(key)
        self._keys.append(key)
        return _CsrWriter(parent.create_group(name), n_columns, dtype)

    def dense(self, key: str, shape: tuple[int, ...], dtype: Any) -> _DenseWriter:
        """A dense element at ``key`` (``"obsm/NAME"``)."""
        parent, name = self._parent(key)
        self._keys.append(key)
        return _DenseWriter(parent, name, shape, dtype)

    def finish(self, meta: AnnData) -> None:
        """Write ``meta`` with anndata, move the streamed elements into it, consolidate.

        ``meta``: ``obs``, ``var``, ``uns`` and the elements held whole; no ``X``.
        """
        import zarr

        with warnings.catch_warnings():  # anndata's notice about its default Zarr format
            warnings.filterwarnings("ignore", message="Writing zarr v2 data")
            meta.write_zarr(self.store)
        for key in self._keys:
            target = self.store / key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.work / "elements.zarr" / key, target)
        zarr.consolidate_metadata(str(self.store))


class _Buckets:
    """Stored entries sorted by block of cells into one temporary file per block.

    Entries are appended in any order (:meth:`add`, :meth:`append`); :meth:`take` reads one
    block's back (and removes its file). At most :data:`OPEN_BUCKETS` files are open at once.
    """

    def __init__(self, folder: Path, chunk_cells: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.chunk_cells = folder, chunk_cells
        self._open: collections.OrderedDict[int, Any] = collections.OrderedDict()

    def _file(self, block: int) -> Path:
        return self.folder / f"{block}.bin"

    def append(self, block: int, records: np.ndarray) -> None:
        """Append ``records`` (:data:`_RECORD`, cells within the block) to ``block``'s file."""
        if not len(records):
            return
        handle = self._open.pop(block, None)
        if handle is None:
            if len(self._open) >= OPEN_BUCKETS:
                self._open.popitem(last=False)[1].close()
            handle = open(self._file(block), "ab", buffering=0)  # closed by take/close
        self._open[block] = handle
        handle.write(np.ascontiguousarray(records, dtype=_RECORD).tobytes())

    def add(self, cells: np.ndarray, genes: np.ndarray, values: np.ndarray) -> None:
        """Append entries at 0-based ``cells`` and ``genes`` to their blocks' files."""
        blocks = cells // self.chunk_cells
        order = np.argsort(blocks, kind="stable")
        records = np.empty(len(cells), dtype=_RECORD)
        records["cell"] = (cells - blocks * self.chunk_cells)[order]
        records["gene"] = genes[order]
        records["value"] = values[order]
        blocks = blocks[order]
        cuts = np.flatnonzero(np.diff(blocks)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(blocks)], strict=True):
            if hi > lo:
                self.append(int(blocks[lo]), records[lo:hi])

    def take(self, block: int) -> np.ndarray:
        """The records of ``block``, in the order appended (none: empty)."""
        handle = self._open.pop(block, None)
        if handle is not None:
            handle.close()
        file = self._file(block)
        if not file.exists():
            return np.empty(0, dtype=_RECORD)
        records = np.fromfile(file, dtype=_RECORD)
        file.unlink()
        return records

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def _block_csr(records: np.ndarray, n_rows: int, n_genes: int) -> Any:
    """A block's records as ``(n_rows, n_genes)`` CSR float32 (duplicates summed, sorted)."""
    import scipy.sparse as sp

    return sp.csr_matrix(
        (records["value"], (records["cell"], records["gene"])),
        shape=(n_rows, n_genes),
        dtype=np.float32,
    )


def _write_buckets(
    buckets: _Buckets, x: _CsrWriter, n_cells: int, n_genes: int, chunk_cells: int
) -> None:
    """Read each block's file back and write its rows (memory: one block)."""
    for block, (start, stop) in enumerate(block_starts(n_cells, chunk_cells)):
        records = buckets.take(block)
        if len(records):
            x.write(start, _block_csr(records, stop - start, n_genes))


def _check_not_empty(path: Path, meta: AnnData) -> None:
    if meta.n_obs == 0 or meta.n_vars == 0:
        raise InputError(f"{path}: the matrix is empty ({meta.n_obs} cells x {meta.n_vars} genes)")


# --- 10x Matrix Market --------------------------------------------------------------------------


def _tenx_files(folder: Path) -> tuple[Path, Path, Path, bool]:
    """``(matrix, features or genes, barcodes, legacy)``, named as scanpy's ``read_10x_mtx``.

    A Cell Ranger 2 folder (``genes.tsv``) plain, a later one gzipped.
    """
    legacy = (folder / "genes.tsv").is_file()
    suffix = "" if legacy else ".gz"
    files = (
        folder / f"matrix.mtx{suffix}",
        folder / f"{'genes' if legacy else 'features'}.tsv{suffix}",
        folder / f"barcodes.tsv{suffix}",
    )
    for file in files:
        if not file.is_file():
            raise InputError(f"{folder}: cannot be read as 10x-mtx (Did not find file {file}.)")
    return (*files, legacy)


def _tenx_metadata(
    header: MatrixMarketHeader, features: Path, barcodes: Path, *, legacy: bool
) -> tuple[AnnData, np.ndarray | None]:
    """The cells x genes AnnData (no ``X``) of ``read_10x_mtx``, and the genes' new columns.

    The columns: for each stored gene its column in the AnnData (``-1``: not "Gene
    Expression"), or None when all are kept in order. The same pandas calls and AnnData
    assignments as scanpy's, on an empty matrix.
    """
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    adata = anndata.AnnData(sp.csr_matrix((header.columns, header.rows), dtype=np.float32))
    genes = pd.read_csv(features, header=None, sep="\t")
    adata.var_names = pd.Index(genes[1].values)
    adata.var["gene_ids"] = genes[0].values
    if not legacy:
        adata.var["feature_types"] = genes[2].values
    names = pd.read_csv(barcodes, header=None)
    adata.obs_names = names[0].values
    columns = None
    if not legacy:
        keep = (adata.var["feature_types"] == "Gene Expression").to_numpy()
        adata = adata[:, keep].copy()
        columns = np.full(header.rows, -1, dtype=np.int64)
        columns[keep] = np.arange(int(keep.sum()))
    adata.X = None
    return adata, columns


def _mtx_entries(
    matrix: Path, header: MatrixMarketHeader, columns: np.ndarray | None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(cells, genes, values)`` of each parsed chunk of a 10x ``matrix.mtx``.

    0-based int64 cell and output gene indices, float32 values (as scipy's
    ``mmread(...).astype("float32")``); entries of genes left out dropped; a symmetric
    matrix's mirrored entries added.
    """
    for i, j, v in iter_matrix_market(matrix, values=True, chunk_entries=ENTRIES_PER_READ):
        genes, cells = i - 1, j - 1
        values = np.ones(len(i), np.float32) if v is None else v.astype(np.float32)
        if header.symmetry in ("symmetric", "skew-symmetric"):
            off = genes != cells
            mirrored = values[off] if header.symmetry == "symmetric" else -values[off]
            genes, cells = np.r_[genes, cells[off]], np.r_[cells, genes[off]]
            values = np.r_[values, mirrored]
        if columns is not None:
            genes = columns[genes]
            kept = genes >= 0
            if not kept.all():
                genes, cells, values = genes[kept], cells[kept], values[kept]
        yield cells, genes, values


def _write_sorted(
    entries: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]],
    x: _CsrWriter,
    n_cells: int,
    n_genes: int,
    chunk_cells: int,
) -> bool:
    """Write entries sorted by block of cells as each block completes; False if unsorted.

    False (having written part of the matrix) at the first entry of an earlier block.

    Memory: the current block's entries and one parsed chunk.
    """
    import scipy.sparse as sp

    current, pending = 0, []

    def flush() -> None:
        if pending:
            cells, genes, values = (np.concatenate(part) for part in zip(*pending, strict=True))
            start = current * chunk_cells
            stop = min(start + chunk_cells, n_cells)
            block = sp.csr_matrix(
                (values, (cells - start, genes)), shape=(stop - start, n_genes), dtype=np.float32
            )
            x.write(start, block)

    for cells, genes, values in entries:
        if not len(cells):
            continue
        blocks = cells // chunk_cells
        if blocks[0] < current or bool((np.diff(blocks) < 0).any()):
            return False
        cuts = np.flatnonzero(np.diff(blocks)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(blocks)], strict=True):
            block = int(blocks[lo])
            if block != current:
                flush()
                current, pending = block, []
            pending.append((cells[lo:hi].copy(), genes[lo:hi].copy(), values[lo:hi].copy()))
    flush()
    return True


def _convert_mtx(folder: Path, out: _Output, *, chunk_cells: int) -> None:
    matrix, features, barcodes, legacy = _tenx_files(folder)
    header = read_matrix_market_header(matrix)
    if header.field not in _FIELDS or header.symmetry not in _SYMMETRIES:
        raise InputError(
            f"{matrix}: line 1: a {header.field or '?'} {header.symmetry or '?'} Matrix Market "
            f"file; counts must be {'/'.join(_FIELDS[:2])}/pattern and {'/'.join(_SYMMETRIES)}"
        )
    if header.symmetry != "general" and header.rows != header.columns:
        raise InputError(
            f"{matrix}: line {header.size_line}: a {header.symmetry} matrix must be square, "
            f"not {header.rows} x {header.columns}"
        )
    meta, columns = _tenx_metadata(header, features, barcodes, legacy=legacy)
    _check_not_empty(folder, meta)
    annotate_genes(meta)
    n_cells, n_genes = meta.shape
    x = out.csr("X", n_genes, np.float32)
    in_order = False
    if header.symmetry == "general":
        entries = _mtx_entries(matrix, header, columns)
        try:
            in_order = _write_sorted(entries, x, n_cells, n_genes, chunk_cells)
        finally:
            entries.close()
    if not in_order:
        x.restart()  # entries out of cell order: sort them by block on disk
        buckets = _Buckets(out.work / "blocks", chunk_cells)
        try:
            for cells, genes, values in _mtx_entries(matrix, header, columns):
                buckets.add(cells, genes, values)
            _write_buckets(buckets, x, n_cells, n_genes, chunk_cells)
        finally:
            buckets.close()
    x.finish(n_cells)
    out.finish(meta)


# --- loom ---------------------------------------------------------------------------------------


def _loom_axis(
    manager: Any, group: Any, index: str, *, stream: bool
) -> tuple[Any, dict[str, np.ndarray], list[str]]:
    """Loom attributes read as anndata reads them: ``(frame, whole arrays, streamed names)``.

    One-column attributes become the frame's columns (``index`` its index), the others
    multi-column arrays (``obsm``/``varm``); with ``stream``, the numeric ones are left out of
    the arrays and named, to be read by blocks of rows.
    """
    import pandas as pd

    frame, arrays, streamed = pd.DataFrame(), {}, []
    for key in manager.keys():
        stored = group[key]
        if len(stored.shape) > 1 and stored.shape[1] > 1:
            if stream and stored.dtype.kind in "biuf":
                streamed.append(key)
            else:
                arrays[key] = manager[key]
        else:
            frame[key] = manager[key]
    if index in frame:
        frame = frame.set_index(index, drop=True)
    return frame, arrays, streamed


def _convert_loom(path: Path, out: _Output, *, chunk_cells: int) -> None:
    import anndata
    import loompy
    import scipy.sparse as sp

    with loompy.connect(str(path), "r") as lc:
        file = lc._file  # the h5py File: attributes read by rows
        obs_key = next((name for name in LOOM_CELL_NAMES if name in lc.ca.keys()), "CellID")
        var_key = next((name for name in LOOM_GENE_NAMES if name in lc.ra.keys()), "Gene")
        obs, obsm, streamed = _loom_axis(lc.ca, file["col_attrs"], obs_key, stream=True)
        var, varm, _ = _loom_axis(lc.ra, file["row_attrs"], var_key, stream=False)
        meta = anndata.AnnData(obs=obs, var=var, obsm=obsm or None, varm=varm or None, uns={})
        _check_not_empty(path, meta)
        annotate_genes(meta)
        n_genes, n_cells = (int(n) for n in lc.shape)
        x_name = "spliced" if "spliced" in lc.layers.keys() else ""  # anndata's X_name
        # (element, loom layer, dtype): X float32; layers float64, as loompy's sparse() gives
        elements = [("X", x_name, np.float32)]
        if x_name:
            elements.append(("layers/matrix", "", np.float64))
        elements += [(f"layers/{key}", key, np.float64) for key in lc.layers.keys() if key]
        writers = [(out.csr(key, n_genes, dtype), layer) for key, layer, dtype in elements]
        arrays = [
            (
                out.dense(f"obsm/{key}", file["col_attrs"][key].shape,
                          file["col_attrs"][key].dtype),
                file["col_attrs"][key],
            )
            for key in streamed
        ]  # fmt: skip
        for start, stop in block_starts(n_cells, chunk_cells):
            for writer, layer in writers:
                stored = lc.layers[layer][:, start:stop]  # genes x cells, as stored
                # the non-zeros as stored, then the dtype (so a value cast to 0 stays stored)
                writer.write(start, sp.csr_matrix(stored.T).astype(writer.dtype))
            for writer, stored in arrays:
                writer.write(start, stored[start:stop])
        for writer, _layer in writers:
            writer.finish(n_cells)
    out.finish(meta)


# --- CSV/TSV tables -----------------------------------------------------------------------------


def _table_head(source: str, orientation: str) -> tuple[list[str], str]:
    """The column names and delimiter of a table, checked as ``read_table`` checks them."""
    from .. import tables

    tables._check_readable(source)
    header, first_row, delimiter = tables._read_head(source)
    row_name_in_header = first_row is None or len(first_row) != len(header) + 1
    column_names = header[1:] if row_name_in_header else header
    if not column_names:
        raise InputError(
            f"{source}, line 1: the header has no column after the row names "
            f"(delimiter {delimiter!r}); give one column per {tables._column_kind(orientation)}"
        )
    tables._check_column_names(source, column_names, first_index=2 if row_name_in_header else 1)
    if first_row is None:
        raise InputError(
            f"{source}: has a header but no data rows; give one line per "
            f"{tables._row_kind(orientation)}"
        )
    return column_names, delimiter


def _table_rows(
    source: str, delimiter: str, column_names: list[str], rows_per_read: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(values, row names)`` of each chunk of at most ``rows_per_read`` table rows.

    float32 ``(rows, columns)`` and an object array of str, checked as ``read_table`` checks
    them (its one-line errors for the first bad line or cell in the file).
    """
    import zlib

    import pandas as pd

    from ...io.files import is_gzip
    from .. import tables

    n_columns = len(column_names)
    columns = range(1, n_columns + 1)
    dtype = np.dtype(np.float32)

    def first_problem(error: Exception | None) -> None:
        tables._raise_first_problem(source, delimiter, column_names, dtype, error)

    def parsed(step: Any) -> Any:
        """``step()``, its parse errors turned into ``read_table``'s one-line errors."""
        try:
            with warnings.catch_warnings():  # a float32 overflow is reported by the scan
                warnings.simplefilter("ignore", RuntimeWarning)
                return step()
        except InputError:
            raise
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{source}: is not UTF-8 text ({exc.reason}); save it as UTF-8"
            ) from None
        except (ValueError, TypeError, pd.errors.ParserError) as exc:  # non-number, ragged
            first_problem(exc)
        except (OSError, EOFError, zlib.error):  # a truncated gzip: the scan names the line
            first_problem(None)
        raise AssertionError("unreachable: the scan raises")  # pragma: no cover

    options = {
        "sep": delimiter, "header": None, "skiprows": 1, "names": list(range(n_columns + 1)),
        "index_col": 0, "dtype": {0: str, **dict.fromkeys(columns, dtype)},
        "na_values": {column: list(tables.MISSING_TOKENS) for column in columns},
        "keep_default_na": False, "engine": "c", "encoding": "utf-8-sig",
        "compression": "gzip" if is_gzip(source) else None, "skip_blank_lines": True,
        "chunksize": rows_per_read,
    }  # fmt: skip
    reader = parsed(lambda: pd.read_csv(source, **options))
    with reader:
        while (frame := parsed(lambda: next(reader, None))) is not None:
            values = parsed(lambda frame=frame: frame.to_numpy(dtype=dtype))
            if (
                values.shape[1] != n_columns
                or not frame.index.notna().all()
                or not bool(np.isfinite(values).all())
            ):
                first_problem(None)
            yield values, np.array([str(name) for name in frame.index], dtype=object)


def _check_row_names(source: str, delimiter: str, names: np.ndarray) -> None:
    """``read_table``'s checks of the row names (empty, duplicates), naming the lines."""
    from .. import tables

    located = tables.LabeledMatrix(
        values=np.empty((len(names), 0), np.float32),
        observation_names=names,
        feature_names=np.empty(0, dtype=object),
        source=source,
        delimiter=delimiter,
    )
    tables._check_row_names(located, names)


def _convert_table(path: Path, out: _Output, *, chunk_cells: int, transpose: bool) -> None:
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    source = str(path)
    orientation = "rows-are-features" if transpose else "rows-are-observations"
    column_names, delimiter = _table_head(source, orientation)
    n_columns = len(column_names)
    names: list[np.ndarray] = []
    if not transpose:  # rows are cells: each chunk of rows is written as it comes
        rows_per_read = max(1, min(chunk_cells, ENTRIES_PER_READ // n_columns))
        x = out.csr("X", n_columns, np.float32)
        n_rows = 0
        for values, row_names in _table_rows(source, delimiter, column_names, rows_per_read):
            x.write(n_rows, sp.csr_matrix(values))
            n_rows += len(values)
            names.append(row_names)
        x.finish(n_rows)
    else:  # rows are genes: their non-zeros sorted by block of cells on disk first
        rows_per_read = max(1, ENTRIES_PER_READ // n_columns)
        buckets = _Buckets(out.work / "blocks", chunk_cells)
        try:
            n_rows = 0
            starts = block_starts(n_columns, chunk_cells)
            for values, row_names in _table_rows(source, delimiter, column_names, rows_per_read):
                for block, (start, stop) in enumerate(starts):
                    genes, cells = np.nonzero(values[:, start:stop])
                    records = np.empty(len(genes), dtype=_RECORD)
                    records["cell"], records["gene"] = cells, genes + n_rows
                    records["value"] = values[genes, cells + start]
                    buckets.append(block, records)
                n_rows += len(values)
                names.append(row_names)
            x = out.csr("X", n_rows, np.float32)
            _write_buckets(buckets, x, n_columns, n_rows, chunk_cells)
            x.finish(n_columns)
        finally:
            buckets.close()
    row_names = np.concatenate(names)
    _check_row_names(source, delimiter, row_names)
    cells, genes = (
        (np.array(column_names, dtype=object), row_names)
        if transpose
        else (row_names, np.array(column_names, dtype=object))
    )
    meta = anndata.AnnData(
        obs=pd.DataFrame(index=pd.Index(np.asarray(cells, dtype=str))),
        var=pd.DataFrame(index=pd.Index(np.asarray(genes, dtype=str))),
    )
    annotate_genes(meta)
    out.finish(meta)

"""A count matrix on disk, read a block of cells at a time: ``.h5ad``, ``.zarr`` and 10x ``.h5``.

:func:`open_count_blocks` looks at the file once (the encoding of ``X``, its shape, ``obs``,
``var`` and ``uns``) and returns a :class:`CountBlocks`, a small picklable description that any
process (a Dask worker too) reads rows from: for a CSR ``X`` only ``indptr[start:stop + 1]``
and the ``data``/``indices`` ranges of those rows are read; a dense ``X`` is read row-sliced. A
CSC ``X`` cannot be read by rows and is an error naming the fix.

A Cell Ranger (v3+) ``.h5`` stores its features x barcodes matrix as CSC, which is cells x
features CSR: it is read the same way, with the cells, genes and values
``scanpy.read_10x_h5`` gives (its metadata code run on the file's metadata alone; the
"Gene Expression" features only; int32 counts as float32).

:func:`open_carried` describes the input's other per-cell matrices (``obsm`` arrays, layers,
``obsp``, ``raw/X``) as :class:`StoredMatrix` elements, read by rows with the same code
(:func:`read_row_block`), and reads its per-gene elements (``varm``, ``varp``, ``raw``'s
``var``/``varm``) and ``obsm`` DataFrames whole: what the out-of-core recipe carries.

Memory: one block, ``stop - start`` rows of the stored matrix (as CSR; a carried matrix as
stored), per read.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError

#: Stored ``X`` encodings that can be read by rows.
ROW_ENCODINGS = ("csr_matrix", "array")


@dataclasses.dataclass(frozen=True)
class CountBlocks:
    """Where a cells x genes matrix is stored and how: the recipe reads it a block at a time.

    Attributes:
        path: the ``.h5ad`` file or AnnData ``.zarr`` folder.
        store: ``"h5ad"`` or ``"zarr"``.
        encoding: ``"csr_matrix"`` or ``"array"`` (dense).
        n_cells: rows of ``X``.
        n_genes: columns of ``X``.
        nnz: stored entries (``n_cells * n_genes`` for a dense ``X``).
        dtype: the stored values' dtype (``"float32"``, ``"int32"``, ...).
    """

    path: str
    store: str
    encoding: str
    n_cells: int
    n_genes: int
    nnz: int
    dtype: str
    columns: np.ndarray | None = None  #: 10x: the stored features that are genes (int64)

    def read(self, start: int, stop: int) -> Any:
        """Return rows ``[start, stop)`` as a SciPy CSR matrix of :attr:`dtype`.

        ``(stop - start, n_genes)``; ``indices`` int32, ``indptr`` int64.
        """
        import scipy.sparse as sp

        with _open(self.path, self.store) as root:
            x = root["matrix" if self.store == "10x-h5" else "X"]
            stored_genes = self.n_genes if self.columns is None else int(x["shape"][0])
            rows = read_row_block(
                x, self.encoding, start, stop, n_columns=stored_genes, dtype=self.dtype
            )
        if self.encoding == "array":
            return sp.csr_matrix(rows)
        return rows if self.columns is None else rows[:, self.columns]

    def stored_bytes(self) -> int:
        """Bytes of ``X`` in memory as CSR: values, int32 indices and int64 row offsets."""
        return self.nnz * (np.dtype(self.dtype).itemsize + 4) + 8 * (self.n_cells + 1)


@dataclasses.dataclass(frozen=True)
class StoredMatrix:
    """A 2-D element of an AnnData on disk besides ``X``, read a block of rows at a time.

    An ``obsm``, ``layers`` or ``obsp`` entry, or ``raw/X``: what the out-of-core recipe carries
    into its output by rows of cells (:func:`open_carried`).

    Attributes:
        path: the ``.h5ad`` file or AnnData ``.zarr`` folder.
        store: ``"h5ad"`` or ``"zarr"``.
        key: the element's path in the file (``"layers/spliced"``, ``"raw/X"``, ...).
        encoding: ``"csr_matrix"`` or ``"array"`` (dense).
        shape: ``(rows, columns)`` (a dense ``obsm`` array may have more axes).
        dtype: the stored values' dtype.
    """

    path: str
    store: str
    key: str
    encoding: str
    shape: tuple[int, ...]
    dtype: str

    def read(self, start: int, stop: int) -> Any:
        """Rows ``[start, stop)`` as stored: a NumPy array (dense) or a SciPy CSR matrix.

        Memory: those rows (:func:`read_row_block`).
        """
        with _open(self.path, self.store) as root:
            return read_row_block(
                root[self.key], self.encoding, start, stop, n_columns=self.shape[1]
            )


@dataclasses.dataclass(frozen=True)
class Carried:
    """The elements of an AnnData on disk besides ``X``, ``obs``, ``var`` and ``uns``.

    What the out-of-core recipe carries into its output as anndata's subsetting does in
    memory: the per-cell matrices by rows (:class:`StoredMatrix`, read by the tasks), the rest
    read here whole.

    Attributes:
        obsm: ``obsm`` arrays (dense or CSR), ``n_cells`` rows.
        obsm_frames: ``obsm`` DataFrames (per-cell columns, held like ``obs``), by name.
        layers: ``layers`` (dense or CSR), ``n_cells x n_genes``.
        obsp: ``obsp`` matrices (dense or CSR), ``n_cells x n_cells``.
        varm: ``varm`` entries (arrays or DataFrames, ``n_genes`` rows), by name.
        varp: ``varp`` matrices (``n_genes x n_genes``, dense or sparse), by name.
        raw_x: ``raw/X`` (dense or CSR, ``n_cells`` rows), or None without ``raw``.
        raw_var: ``raw/var`` (a DataFrame), or None.
        raw_varm: ``raw/varm``, by name.
    """

    obsm: tuple[StoredMatrix, ...] = ()
    obsm_frames: dict[str, Any] = dataclasses.field(default_factory=dict)
    layers: tuple[StoredMatrix, ...] = ()
    obsp: tuple[StoredMatrix, ...] = ()
    varm: dict[str, Any] = dataclasses.field(default_factory=dict)
    varp: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_x: StoredMatrix | None = None
    raw_var: Any = None
    raw_varm: dict[str, Any] = dataclasses.field(default_factory=dict)

    def by_rows(self) -> tuple[StoredMatrix, ...]:
        """Every element read by rows of cells: ``obsm``, ``layers``, ``obsp``, ``raw/X``."""
        raw = () if self.raw_x is None else (self.raw_x,)
        return (*self.obsm, *self.layers, *self.obsp, *raw)


def open_carried(path: str | Path, store: str, *, layers_written: tuple[str, ...] = ()) -> Carried:
    """Describe the ``obsm``, ``layers``, ``obsp`` and ``raw/X`` of an AnnData file; read the rest.

    Args:
        path: ``.h5ad`` file or AnnData ``.zarr`` folder (a 10x ``.h5`` has none of them).
        store: ``"h5ad"``, ``"zarr"`` or ``"10x-h5"``.
        layers_written: layers the recipe writes itself (the input's are replaced: left out).

    Returns:
        The :class:`Carried` elements: the matrices by rows described (their dense or CSR rows
        read later by :meth:`StoredMatrix.read`); ``obsm`` DataFrames, ``varm``, ``varp``,
        ``raw/var`` and ``raw/varm`` read here (per-gene elements and per-cell columns).

    Raises:
        InputError: a per-cell matrix stored otherwise than dense or CSR (a CSC layer cannot
            be read by cells), naming it and the fix.

    Memory: ``varm``, ``varp``, ``raw/var``, ``raw/varm`` and the ``obsm`` DataFrames, whole.
    """
    if store == "10x-h5":
        return Carried()
    try:
        return _carried(path, store, layers_written)
    except InputError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {store} ({message})") from None


def _carried(path: str | Path, store: str, layers_written: tuple[str, ...]) -> Carried:
    from anndata.io import read_elem

    def by_rows(root: Any, key: str) -> StoredMatrix:
        x = root[key]
        encoding = _encoding(x)
        if encoding not in ROW_ENCODINGS:
            raise InputError(
                f"{path}: {key} is stored as {encoding}, which cannot be read by cells; write "
                "it as CSR (.tocsr()) or dense, or run in memory"
            )
        if encoding == "array":
            shape, dtype = tuple(int(n) for n in x.shape), str(x.dtype)
        else:
            shape, dtype = tuple(int(n) for n in x.attrs["shape"]), str(x["data"].dtype)
        return StoredMatrix(str(path), store, key, encoding, shape, dtype)

    def names(root: Any, group: str) -> list[str]:
        return list(root[group].keys()) if group in root else []

    with _open(str(path), store) as root:
        obsm, frames = [], {}
        for name in names(root, "obsm"):
            if _encoding(root[f"obsm/{name}"]) == "dataframe":
                frames[name] = read_elem(root[f"obsm/{name}"])
            else:
                obsm.append(by_rows(root, f"obsm/{name}"))
        layers = [
            by_rows(root, f"layers/{name}")
            for name in names(root, "layers")
            if name not in layers_written
        ]
        obsp = [by_rows(root, f"obsp/{name}") for name in names(root, "obsp")]
        raw = "raw" in root and "X" in root["raw"]
        return Carried(
            obsm=tuple(obsm),
            obsm_frames=frames,
            layers=tuple(layers),
            obsp=tuple(obsp),
            varm={name: read_elem(root[f"varm/{name}"]) for name in names(root, "varm")},
            varp={name: read_elem(root[f"varp/{name}"]) for name in names(root, "varp")},
            raw_x=by_rows(root, "raw/X") if raw else None,
            raw_var=read_elem(root["raw/var"]) if raw else None,
            raw_varm=(
                {name: read_elem(root[f"raw/varm/{name}"]) for name in names(root, "raw/varm")}
                if raw
                else {}
            ),
        )


def read_row_block(
    x: Any, encoding: str, start: int, stop: int, *, n_columns: int, dtype: Any = None
) -> Any:
    """Rows ``[start, stop)`` of a stored matrix element ``x`` (an open h5py/zarr element).

    ``encoding`` ``"array"`` (dense: row-sliced, a NumPy array as stored) or ``"csr_matrix"``
    (only ``indptr[start:stop + 1]`` and the ``data``/``indices`` ranges of those rows are
    read: a SciPy CSR matrix, ``indices`` int32, ``indptr`` int64, ``n_columns`` wide). The
    values in ``dtype`` (None: as stored).

    Memory: the ``stop - start`` rows, as stored.
    """
    import scipy.sparse as sp

    if encoding == "array":
        rows = np.asarray(x[start:stop])
        return rows if dtype is None else rows.astype(dtype, copy=False)
    indptr = np.asarray(x["indptr"][start : stop + 1], dtype=np.int64)
    first, last = int(indptr[0]), int(indptr[-1])
    data = np.asarray(x["data"][first:last])
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    indices = np.asarray(x["indices"][first:last], dtype=np.int32)
    return sp.csr_matrix(
        (data, indices, indptr - first), shape=(stop - start, n_columns), copy=False
    )


@contextlib.contextmanager
def _open(path: str, store: str) -> Iterator[Any]:
    """The root group of an AnnData (or 10x) file, read-only: zarr for ``"zarr"``, else h5py."""
    if store == "zarr":
        import zarr

        yield zarr.open_group(path, mode="r")
        return
    import h5py

    with h5py.File(path, "r") as root:
        yield root


def is_legacy_file(path: str | Path, store: str) -> bool:
    """Whether the AnnData at ``path`` has anndata < 0.7's layout (False if it is unreadable)."""
    try:
        with _open(str(path), store) as root:
            return is_legacy_layout(root)
    except Exception:  # unreadable: open_count_blocks says why, in one line
        return False


def is_legacy_layout(root: Any) -> bool:
    """Whether an open AnnData root is anndata < 0.7's layout (which anndata still reads whole).

    Its marks: ``obs``/``var`` stored as one record array, ``X`` or ``raw.X`` with the old
    ``h5sparse_format`` attribute, or ``raw`` split into ``raw.X``/``raw.var`` at the root.
    """
    frames_as_records = any(
        key in root and not hasattr(root[key], "keys") for key in ("obs", "var")
    )
    old_sparse = "X" in root and "h5sparse_format" in root["X"].attrs
    return bool(frames_as_records or old_sparse or "raw.X" in root)


def _encoding(x: Any) -> str:
    attrs = dict(x.attrs)
    encoding = attrs.get("encoding-type") or attrs.get("h5sparse_format")
    if encoding in ("csr", "csc"):  # anndata < 0.7
        encoding = f"{encoding}_matrix"
    if encoding is None and not hasattr(x, "keys"):
        encoding = "array"
    return str(encoding)


def open_count_blocks(path: str | Path, store: str) -> tuple[CountBlocks, Any, Any, dict]:
    """Describe the ``X`` of an AnnData file and read its ``obs``, ``var`` and ``uns``.

    Args:
        path: ``.h5ad`` file, AnnData ``.zarr`` folder or Cell Ranger v3+ ``.h5``.
        store: ``"h5ad"``, ``"zarr"`` or ``"10x-h5"``.

    Returns:
        ``(blocks, obs, var, uns)``: the :class:`CountBlocks`, the ``obs`` and ``var``
        DataFrames and the ``uns`` dict, as anndata reads them.

    Raises:
        InputError: no ``X``, a CSC or unknown encoding, or an unreadable file; one line.
    """
    from anndata.io import read_elem

    if store == "10x-h5":
        return _open_10x(Path(path))
    try:
        with _open(str(path), store) as root:
            if is_legacy_layout(root):
                raise InputError(
                    f"{path}: written by anndata < 0.7 (its legacy layout cannot be read by "
                    "cells); rewrite it once with anndata (anndata.read_h5ad(path).write_h5ad("
                    "new_path)) or run in memory (without --chunk-cells/--workers)"
                )
            if "X" not in root:
                raise InputError(f"{path}: the AnnData has no X")
            x = root["X"]
            encoding = _encoding(x)
            if encoding not in ROW_ENCODINGS:
                raise InputError(
                    f"{path}: X is stored as {encoding}, which cannot be read by cells; "
                    "write it as CSR (adata.X = adata.X.tocsr()) or run in memory"
                )
            if encoding == "array":
                shape = tuple(int(n) for n in x.shape)
                nnz, dtype = shape[0] * shape[1], str(x.dtype)
            else:
                shape = tuple(int(n) for n in x.attrs["shape"])
                nnz, dtype = int(x["data"].shape[0]), str(x["data"].dtype)
            obs = read_elem(root["obs"])
            var = read_elem(root["var"])
            uns = read_elem(root["uns"]) if "uns" in root else {}
    except InputError:
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {store} ({message})") from None
    blocks = CountBlocks(str(path), store, encoding, shape[0], shape[1], nnz, dtype)
    if len(obs) != blocks.n_cells or len(var) != blocks.n_genes:
        raise InputError(
            f"{path}: X is {blocks.n_cells} x {blocks.n_genes} but obs has {len(obs)} rows "
            f"and var {len(var)}"
        )
    return blocks, obs, var, dict(uns)


def is_lazy_10x(path: str | Path) -> bool:
    """Whether a 10x ``.h5`` is of Cell Ranger v3+ (a ``matrix`` group), read by blocks."""
    import h5py

    with h5py.File(path, "r") as f:
        return "matrix" in f


def _open_10x(path: Path) -> tuple[CountBlocks, Any, Any, dict]:
    """The blocks, ``obs`` and ``var`` of a Cell Ranger v3+ ``.h5``, as scanpy reads them.

    scanpy's own metadata code (``_read_v3_10x_h5``) runs on an in-memory copy of the file's
    ``matrix`` group without its values (empty ``data``/``indices``), so the names and
    columns are scanpy's; then only the "Gene Expression" features are kept, as
    ``read_10x_h5(gex_only=True)`` does.
    """
    import io

    import h5py
    from scanpy.readwrite import _read_v3_10x_h5

    try:
        with h5py.File(path, "r") as f, h5py.File(io.BytesIO(), "w") as metadata:
            matrix = f["matrix"]
            copy = metadata.create_group("matrix")
            for key, item in matrix.items():
                if key not in ("data", "indices", "indptr"):
                    f.copy(item, copy, key)
            n_cells = int(matrix["shape"][1])  # features x barcodes
            stored = matrix["data"].dtype
            nnz = int(matrix["data"].shape[0])
            copy["data"] = np.zeros(0, dtype=stored)
            copy["indices"] = np.zeros(0, dtype=np.int64)
            copy["indptr"] = np.zeros(n_cells + 1, dtype=np.int64)
            empty = _read_v3_10x_h5(metadata)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as 10x-h5 ({message})") from None
    genes = np.flatnonzero((empty.var["feature_types"] == "Gene Expression").to_numpy())
    var = empty.var.iloc[genes].copy()
    dtype = "float32" if stored == np.dtype("int32") else str(stored)  # as scanpy
    blocks = CountBlocks(
        str(path), "10x-h5", "csr_matrix", n_cells, len(genes), nnz, dtype, columns=genes
    )
    return blocks, empty.obs.copy(), var, {}


def block_starts(n_cells: int, chunk_cells: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: consecutive blocks of ``chunk_cells`` rows (the last shorter)."""
    return [(start, min(start + chunk_cells, n_cells)) for start in range(0, n_cells, chunk_cells)]

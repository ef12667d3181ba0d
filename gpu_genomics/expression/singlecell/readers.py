"""Reading count matrices into AnnData, and writing AnnData.

Inputs: ``.h5ad``, ``.zarr`` (AnnData), 10x ``.h5``, a 10x matrix folder (``matrix.mtx[.gz]``
+ ``features.tsv[.gz]``/``genes.tsv`` + ``barcodes.tsv``), ``.loom``, and CSV/TSV (optionally
gzipped); outputs: ``.h5ad`` and ``.zarr``.

:func:`read` picks the reader from the path, returns ``(n_cells, n_genes)`` AnnData with ``X``
as a SciPy CSR matrix where the format is sparse (float32 for CSV/TSV), adds ``var`` columns
``gene_ids``/``gene_symbols`` and makes duplicate gene names unique with a warning. Any failure
to read becomes one :class:`~gpu_genomics.errors.InputError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InputError, check_choice
from .recipe import annotate_genes

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger("gpu_genomics")

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
FORMATS = ("h5ad", "zarr", "10x-h5", "10x-mtx", "loom", "table")


def detect_format(path: Path) -> str:
    """Return the input format of ``path``, one of :data:`FORMATS`.

    Told from the path's name (a trailing ``.gz`` ignored), a folder's content, and, for
    ``.h5``/``.hdf5``, the file's groups (10x or AnnData).

    Raises:
        InputError: an unknown suffix, a folder without ``matrix.mtx[.gz]``, or an HDF5 file
            that is neither 10x nor AnnData.
    """
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if path.is_dir():
        if name.endswith(".zarr") or (path / ".zattrs").exists() or (path / "zarr.json").exists():
            return "zarr"
        if any((path / f"matrix.mtx{gz}").exists() for gz in ("", ".gz")):
            return "10x-mtx"
        raise InputError(
            f"{path}: a folder without matrix.mtx[.gz]; give a 10x matrix folder, an .h5ad, "
            ".h5, .loom, .zarr or a CSV/TSV file"
        )
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(".loom"):
        return "loom"
    if name.endswith((".h5", ".hdf5")):
        return _h5_flavor(path)
    if name.endswith(TABLE_SUFFIXES):
        return "table"
    raise InputError(
        f"{path}: unknown input type; expected .h5ad, .h5 (10x), a 10x matrix folder, .loom, "
        ".zarr, or .csv/.tsv/.txt (optionally .gz)"
    )


def _h5_flavor(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            if "matrix" in keys or any(
                isinstance(f[k], h5py.Group) and "barcodes" in f[k] for k in keys
            ):
                return "10x-h5"
            if {"X", "obs", "var"} <= keys:
                return "h5ad"
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({exc})") from None
    raise InputError(
        f"{path}: an HDF5 file that is neither 10x (no 'matrix' group) nor AnnData (no X/obs/var)"
    )


def read(path: str | Path, *, transpose: bool = False, format: str | None = None) -> AnnData:
    """Read a count matrix as ``(n_cells, n_genes)`` AnnData.

    ``X`` is a SciPy CSR matrix where the format is sparse (float32 for CSV/TSV); ``var`` gets
    ``gene_ids``/``gene_symbols`` and duplicate gene names are made unique with a warning
    (:func:`~.recipe.annotate_genes`). The whole matrix is read into memory.

    Args:
        path: file or folder (see the module docstring).
        transpose: CSV/TSV only: the table is genes x cells (rows are genes) instead of the
            default cells x genes.
        format: force one of :data:`FORMATS` instead of detecting it.

    Returns:
        The AnnData, on the host.

    Raises:
        InputError: a missing or unreadable file, an unknown format, ``transpose=True`` for
            a format other than a table, or an empty matrix; one line naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = check_choice("format", format or detect_format(path), FORMATS)
    if transpose and kind != "table":
        raise InputError(f"{path}: transpose=True applies to CSV/TSV tables only, not {kind}")
    try:
        adata = _read_table(path, transpose=transpose) if kind == "table" else _READERS[kind](path)
    except (InputError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {kind} ({message})") from None
    if adata.n_obs == 0 or adata.n_vars == 0:
        shape = f"{adata.n_obs} cells x {adata.n_vars} genes"
        raise InputError(f"{path}: the matrix is empty ({shape})")
    import scipy.sparse

    if scipy.sparse.issparse(adata.X) and adata.X.format != "csr":
        adata.X = scipy.sparse.csr_matrix(adata.X)
    annotate_genes(adata)
    return adata


def _read_h5ad(path: Path) -> AnnData:
    import anndata

    return anndata.read_h5ad(path)


def _read_zarr(path: Path) -> AnnData:
    import anndata

    return anndata.read_zarr(path)


def _read_10x_h5(path: Path) -> AnnData:
    import scanpy as sc

    return sc.read_10x_h5(path)


def _read_10x_mtx(path: Path) -> AnnData:
    import scanpy as sc

    matrix = next(path / name for name in ("matrix.mtx.gz", "matrix.mtx") if (path / name).exists())
    check_matrix_market(matrix)
    return sc.read_10x_mtx(path, var_names="gene_symbols", make_unique=False)


#: Entries read at a time by :func:`check_matrix_market`.
_MTX_CHUNK = 10_000_000


@dataclasses.dataclass(frozen=True)
class MatrixMarketHeader:
    """The banner and size line of a coordinate Matrix Market file.

    Attributes:
        rows: rows of the matrix (genes, in a 10x file).
        columns: columns (cells, in a 10x file).
        entries: entries the size line declares.
        field: the banner's field, lower case (``integer``, ``real``, ``pattern``, ...; empty
            when the banner has none).
        symmetry: the banner's symmetry, lower case (``general``, ...; empty when absent).
        size_line: the 1-based line number of the size line (the entries follow it).
    """

    rows: int
    columns: int
    entries: int
    field: str
    symmetry: str
    size_line: int


def _open_text_maybe_gzip(path: Path) -> Any:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8", errors="replace")


def _read_mm_header(path: Path, handle: Any) -> MatrixMarketHeader:
    header = handle.readline()
    if not header.lower().startswith("%%matrixmarket matrix coordinate"):
        raise InputError(
            f"{path}: line 1: not a coordinate Matrix Market header ({header.strip()[:60]!r})"
        )
    words = header.lower().split()
    line_no, size = 2, handle.readline()
    while size.startswith("%"):
        line_no, size = line_no + 1, handle.readline()
    try:
        rows, cols, nnz = (int(v) for v in size.split()[:3])
    except ValueError:
        raise InputError(
            f"{path}: line {line_no}: the size line must be 'rows columns entries', got "
            f"{size.strip()[:60]!r}"
        ) from None
    field = words[3] if len(words) > 3 else ""
    symmetry = words[4] if len(words) > 4 else ""
    return MatrixMarketHeader(rows, cols, nnz, field, symmetry, line_no)


def read_matrix_market_header(path: Path) -> MatrixMarketHeader:
    """Read the banner and size line of a coordinate Matrix Market file (plain or ``.gz``).

    Raises:
        InputError: a header that is not coordinate Matrix Market or a bad size line, naming
            the line.
    """
    try:
        with _open_text_maybe_gzip(path) as handle:
            return _read_mm_header(path, handle)
    except (OSError, EOFError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot be read ({message})") from None


class _TailKept(io.RawIOBase):
    """A binary stream that keeps the last bytes read (the end of the file, once read)."""

    def __init__(self, raw: Any, keep: int = 256) -> None:
        self.raw = raw
        self.keep = keep
        self.tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.tail = (self.tail + bytes(memoryview(buffer)[:n]))[-self.keep :]
        return n


def _check_last_line(path: Path, tail: bytes, *, fields: int) -> None:
    """Refuse a last entry line that has something after its fields and no newline.

    scipy's reader (fast_matrix_market) reads past its buffer there and crashes the process;
    the same line followed by a newline is read as usual.
    """
    if not tail or tail.endswith(b"\n"):
        return
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    if last.lstrip().startswith("%"):
        return
    if last != last.rstrip() or len(last.split()) > fields:
        raise InputError(
            f"{path}: the last line ({last.strip()[:40]!r}) has more than its {fields} fields "
            "or trailing blanks and no newline; end the file with a newline after its last "
            "entry (is it truncated?)"
        )


def iter_matrix_market(
    path: Path, *, values: bool = False, chunk_entries: int = _MTX_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Stream the entries of a coordinate Matrix Market file, checked, in file order.

    Yields ``(rows, columns, values)`` for each chunk of at most ``chunk_entries`` entries:
    1-based int64 indices, each within the size line's shape, and with ``values=True`` the
    values (int64 for an ``integer`` field, float64 parsed with correct rounding otherwise;
    None for ``pattern``, or without ``values``). After the last chunk the count of entries is
    checked against the size line.

    Memory: one chunk (16 bytes per entry, 24 with values), whatever the file's size.

    Raises:
        InputError: a header that is not coordinate Matrix Market, a bad size line, an entry
            out of range or malformed (a missing or non-finite value too), or a count that
            differs from the size line's; one line naming the file and the line.
    """
    import gzip

    import pandas as pd

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as raw:
        kept = _TailKept(raw)  # the file's last bytes, as scipy reads them (no newline mapping)
        handle = io.TextIOWrapper(io.BufferedReader(kept), encoding="utf-8", errors="replace")
        header = _read_mm_header(path, handle)
        rows, cols, nnz, line_no = header.rows, header.columns, header.entries, header.size_line
        with_values = values and header.field != "pattern"
        kind = np.int64 if header.field == "integer" else np.float64
        seen = 0
        try:
            chunks = pd.read_csv(
                handle, sep=r"\s+", header=None, usecols=[0, 1, 2] if with_values else [0, 1],
                dtype={0: np.int64, 1: np.int64, 2: kind}, comment="%", chunksize=chunk_entries,
                engine="c", na_filter=False, float_precision="round_trip",
            )  # fmt: skip
            for chunk in chunks:
                i, j = chunk[0].to_numpy(), chunk[1].to_numpy()
                bad = (i < 1) | (i > rows) | (j < 1) | (j > cols)
                if bad.any():
                    first = int(np.argmax(bad))
                    raise InputError(
                        f"{path}: entry {seen + first + 1} (after line {line_no}) is at row "
                        f"{int(i[first])}, column {int(j[first])}, outside the {rows} x {cols} "
                        "of the size line"
                    )
                seen += len(chunk)
                yield i, j, chunk[2].to_numpy() if with_values else None
        except InputError:
            raise
        except (ValueError, pd.errors.ParserError, EOFError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"{path}: a malformed entry after line {line_no} ({message})"
            ) from None
    _check_last_line(path, kept.tail, fields=2 if header.field == "pattern" else 3)
    if seen != nnz:
        raise InputError(f"{path}: {seen} entries, but the size line (line {line_no}) says {nnz}")


def check_matrix_market(path: Path) -> None:
    """Check a coordinate Matrix Market file before scipy reads it.

    scipy's reader trusts the file: an entry outside the declared shape (a row or column of 0,
    or beyond the size line) makes it write outside its buffers and crash the process. The
    header, the size line and every entry's row and column are checked here, in chunks of
    :data:`_MTX_CHUNK` entries (16 bytes each; :func:`iter_matrix_market`).

    Raises:
        InputError: a header that is not coordinate Matrix Market, a bad size line, an entry
            out of range or malformed, or a count that differs from the size line's, naming the
            line.
    """
    for _ in iter_matrix_market(path, values=True):  # a malformed value too
        pass


LOOM_CELL_NAMES = ("CellID", "obs_names", "Cell", "cell_names")
LOOM_GENE_NAMES = ("Gene", "var_names", "gene_names", "Accession")


def _read_loom(path: Path) -> AnnData:
    """Loom, with cell names from the first of :data:`LOOM_CELL_NAMES` among the columns.

    Column attributes: loompy/velocyto write ``CellID``, anndata ``obs_names``; gene names
    likewise from :data:`LOOM_GENE_NAMES` among the row attributes.
    """
    import anndata
    import h5py

    with h5py.File(path, "r") as f:
        columns = set(f["col_attrs"].keys()) if "col_attrs" in f else set()
        rows = set(f["row_attrs"].keys()) if "row_attrs" in f else set()
    obs_names = next((name for name in LOOM_CELL_NAMES if name in columns), "CellID")
    var_names = next((name for name in LOOM_GENE_NAMES if name in rows), "Gene")
    return anndata.read_loom(path, sparse=True, obs_names=obs_names, var_names=var_names)


def _read_table(path: Path, *, transpose: bool) -> AnnData:
    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse

    from ..tables import read_table

    table = read_table(
        path,
        orientation="rows-are-features" if transpose else "rows-are-observations",
        dtype=np.float32,  # parsed once into the matrix's dtype, not copied from float64
    )
    return anndata.AnnData(
        X=scipy.sparse.csr_matrix(table.values),
        obs=pd.DataFrame(index=pd.Index(np.asarray(table.observation_names, dtype=str))),
        var=pd.DataFrame(index=pd.Index(np.asarray(table.feature_names, dtype=str))),
    )


_READERS = {
    "h5ad": _read_h5ad,
    "zarr": _read_zarr,
    "10x-h5": _read_10x_h5,
    "10x-mtx": _read_10x_mtx,
    "loom": _read_loom,
}


def write(adata: AnnData, path: str | Path) -> None:
    """Write ``adata`` to ``.h5ad`` or ``.zarr`` through a temporary path renamed on success.

    Args:
        adata: the AnnData (host arrays).
        path: the output, ending in ``.h5ad`` or ``.zarr``; an earlier output of the same
            kind (file or folder) is replaced only once the new one is complete.

    Raises:
        InputError: ``path`` has another suffix, its folder does not exist, or it exists as
            the other kind (a folder where a file is written, or the reverse).
    """
    from ...io.store import atomic_output

    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".h5ad", ".zarr")):
        raise InputError(f"{path}: the output must end in .h5ad or .zarr")
    with atomic_output(path, directory=name.endswith(".zarr")) as tmp:
        if name.endswith(".zarr"):
            with warnings.catch_warnings():  # anndata's notice about its default Zarr format
                warnings.filterwarnings("ignore", message="Writing zarr v2 data")
                adata.write_zarr(tmp)
        else:
            adata.write_h5ad(tmp)

"""The count matrix of an AnnData as the single-cell operations read it.

The layer (``X`` or ``layers[name]``), its canonical CSR components on a device (NumPy or
CuPy), the row of every stored entry, the gene ids of ``var``, and the value checks with
one-line errors naming the cell and the gene.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np

from ...device import array_module, array_module_of, is_gpu_array, resolve_device, to_numpy
from ...errors import InputError


def layer_matrix(adata: Any, layer: str | None) -> Any:
    """Return ``adata.X``, or ``adata.layers[layer]`` when ``layer`` is given.

    Raises:
        InputError: ``X`` is empty, or ``layer`` is not in ``adata.layers``.
    """
    if layer is None:
        if adata.X is None:
            raise InputError("adata.X is empty; pass `layer` to use one of adata.layers")
        return adata.X
    if layer not in adata.layers:
        known = ", ".join(map(repr, adata.layers.keys())) or "none"
        raise InputError(f"layer={layer!r} is not in adata.layers (it has: {known})")
    return adata.layers[layer]


def is_sparse(matrix: Any) -> bool:
    """Whether ``matrix`` is a SciPy sparse matrix (or an AnnData backed sparse dataset)."""
    import scipy.sparse as sp

    return bool(sp.issparse(matrix) or getattr(matrix, "format", None) in ("csr", "csc"))


def host_csr(matrix: Any) -> Any:
    """Return ``matrix`` as a canonical SciPy CSR matrix (sorted indices, no duplicates).

    The input is never modified; a canonical CSR input is returned as it is, other sparse
    formats and dense arrays are converted (a new matrix of the same dtype).

    Raises:
        InputError: a GPU array, or not a 2-D numeric matrix.
    """
    import scipy.sparse as sp

    if sp.issparse(matrix):
        csr = matrix.tocsr()
        if not csr.has_canonical_format:
            csr = csr.copy() if csr is matrix else csr
            csr.sum_duplicates()
        return csr
    if hasattr(matrix, "toarray") and not isinstance(matrix, np.ndarray):  # e.g. backed arrays
        matrix = matrix.toarray()
    if is_gpu_array(matrix):
        raise InputError(
            "the matrix is a GPU array; keep adata on the host (the GPU path copies it)"
        )
    dense = np.asarray(matrix)
    if dense.ndim != 2:
        raise InputError(f"the matrix must be 2-D (cells x genes), got shape {dense.shape}")
    if dense.dtype.kind not in "biuf":
        raise InputError(f"the matrix must hold numbers, got dtype {dense.dtype}")
    return sp.csr_matrix(dense)


def device_csr(xp: Any, csr: Any) -> tuple[Any, Any, Any]:
    """Return the CSR components on the device: ``data`` (input dtype), ``indices``, ``indptr``.

    ``indices`` and ``indptr`` are int64 (``(nnz,)`` and ``(n_rows + 1,)``).
    """
    return (
        xp.asarray(csr.data),
        xp.asarray(csr.indices, dtype=np.int64),
        xp.asarray(csr.indptr, dtype=np.int64),
    )


def row_of_entries(xp: Any, indptr: Any) -> Any:
    """Return the ``(nnz,) int64`` row (cell) of every stored entry of a CSR matrix."""
    nnz = int(indptr[-1])
    return xp.searchsorted(indptr, xp.arange(nnz, dtype=np.int64), side="right") - 1


def var_gene_ids(adata: Any, gene_key: str | None) -> np.ndarray:
    """Return the gene ids, ``(n_genes,) object`` of str.

    They are ``var[gene_key]``, else ``var["ensembl_id"]`` (the column Geneformer's tokenizer
    reads), else ``var["gene_ids"]``, else ``var_names``.

    Raises:
        InputError: ``gene_key`` is not a column of ``adata.var``.
    """
    if gene_key is not None:
        if gene_key not in adata.var.columns:
            raise InputError(f"gene_key={gene_key!r} is not a column of adata.var")
        values = adata.var[gene_key]
    elif "ensembl_id" in adata.var.columns:
        values = adata.var["ensembl_id"]
    elif "gene_ids" in adata.var.columns:
        values = adata.var["gene_ids"]
    else:
        values = adata.var_names
    return np.asarray([str(v) for v in values], dtype=object)


def check_counts(
    adata: Any,
    *,
    layer: str | None = None,
    integer: bool = False,
    what: str = "this step",
    rows: Sequence[int] | None = None,
) -> None:
    """Check that ``adata.X`` (or ``layers[layer]``) holds non-negative finite values.

    One pass over the stored values, on their device.

    Args:
        adata: an AnnData whose matrix is SciPy or cupyx CSR/CSC, or a NumPy/CuPy 2-D array.
        layer: check ``adata.layers[layer]`` instead of ``X``.
        integer: also require whole numbers (counts).
        what: the step named in the error.
        rows: the file's row of each cell of ``adata`` (a block of a larger matrix), so that
            the error names the row of the file; default: ``adata``'s own rows.

    Raises:
        InputError: at the first negative, non-finite (or, with ``integer=True``, non-integer)
            value, naming its cell and gene.
    """
    x = layer_matrix(adata, layer)
    sparse = hasattr(x, "indptr")
    values = x.data if sparse else x.reshape(-1)
    if values.size == 0:
        return
    xp = array_module_of(values)
    if xp is np and values.dtype in (np.float32, np.float64):  # one pass, no temporaries
        first = int(_first_bad(np.ascontiguousarray(values), integer))
        if first < 0:
            return
    else:
        bad = values < 0
        if values.dtype.kind == "f":
            bad |= ~xp.isfinite(values)
            if integer:
                bad |= values != xp.floor(values)
        if not bool(bad.any()):
            return
        first = int(xp.argmax(bad))
    value = float(values[first].item())
    if sparse:
        major = int(np.searchsorted(to_numpy(x.indptr), first, side="right")) - 1
        minor = int(x.indices[first])
        cell, gene = (major, minor) if x.format == "csr" else (minor, major)
    else:
        cell, gene = divmod(first, x.shape[1])
    row = cell if rows is None else int(rows[cell])
    reason = "negative" if value < 0 else "not finite" if not np.isfinite(value) else "not whole"
    need = "non-negative integer counts" if integer else "non-negative finite values"
    where = "X" if layer is None else f"layers[{layer!r}]"
    raise InputError(
        f"{what} needs {need}, but cell {adata.obs_names[cell]!r} (row {row}), gene "
        f"{adata.var_names[gene]!r} (column {gene}) of {where} holds {value!r} ({reason}); "
        "pass raw counts (e.g. layer='counts')"
    )


_CHUNK = 1 << 20


@numba.njit(parallel=True, cache=True, nogil=True)
def _first_bad(values, integer):  # pragma: no cover
    """The index of the first negative or non-finite (``integer``: or non-whole) value; -1."""
    n_chunks = (len(values) + _CHUNK - 1) // _CHUNK
    firsts = np.full(n_chunks, -1, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        for i in range(chunk * _CHUNK, min(len(values), (chunk + 1) * _CHUNK)):
            value = values[i]
            finite_and_non_negative = value >= 0 and value < np.inf  # False for NaN
            if not finite_and_non_negative or (integer and value != np.floor(value)):
                firsts[chunk] = i
                break
    for chunk in range(n_chunks):
        if firsts[chunk] >= 0:
            return firsts[chunk]
    return -1


class DeviceCounts(NamedTuple):
    """A checked count matrix and its CSR components on the chosen device."""

    xp: Any  #: NumPy or CuPy
    device: str  #: "cpu" or "gpu"
    matrix: Any  #: the layer as stored (its format is kept by functions that rebuild it)
    csr: Any  #: host SciPy CSR, canonical
    data: Any  #: ``(nnz,)`` input dtype, on the device
    indices: Any  #: ``(nnz,) int64``, on the device (None when not asked for)
    indptr: Any  #: ``(n_cells + 1,) int64``, on the device


def device_counts(
    adata: Any,
    layer: str | None,
    device: str | None,
    *,
    integer: bool,
    what: str,
    with_indices: bool = True,
) -> DeviceCounts:
    """Read and check a layer and put its CSR components on the device.

    The common start of the count-based operations: resolve ``device``, read the layer
    (:func:`layer_matrix`), convert it to canonical CSR (:func:`host_csr`), check its values
    (:func:`check_counts`) and copy the components to the device (:func:`device_csr`).

    Raises:
        InputError: a missing layer, or a bad value (see :func:`check_counts`).
        DeviceError: ``device="gpu"`` without a usable GPU.
    """
    device_name = resolve_device(device)
    xp = array_module(device_name)
    matrix = layer_matrix(adata, layer)
    csr = host_csr(matrix)
    check_counts(adata, layer=layer, integer=integer, what=what)
    if with_indices:
        data, indices, indptr = device_csr(xp, csr)
    else:  # the operation needs the values and rows only: no int64 copy of the columns
        data, indices = xp.asarray(csr.data), None
        indptr = xp.asarray(csr.indptr, dtype=np.int64)
    return DeviceCounts(xp, device_name, matrix, csr, data, indices, indptr)

"""scGPT value binning: per-cell quantile bins of expression values, on the CPU or the GPU.

Per cell, the edges are ``np.quantile(non_zero_values, np.linspace(0, 1, n_bins - 1))``; each
non-zero value gets ``np.digitize(x, edges)`` (1 .. n_bins - 1) and zeros stay 0, as scGPT's
preprocessing bins them. With ``tie_break="random"`` (scGPT's default) a value equal to one or
more edges gets a uniformly random bin among the tied ones, ``ceil(u * (right - left) + left)``
with ``left``/``right`` the bins of ``np.digitize`` from either side; ``tie_break="left"`` is
plain ``np.digitize``. The edges are computed in float64 with NumPy's own "linear" quantile
formula (virtual index ``(n - 1) * q`` and the two-sided interpolation), so they equal
``np.quantile`` on the float64 values bit for bit.

The work is on the CSR components of the matrix as plain NumPy or CuPy arrays (one xp-generic
code path; dense and CSC input are converted to CSR): one sort of all non-zeros keyed by
(cell, value) and segmented arithmetic, no loop over cells. See
``docs/singlecell.md#scgpt-binning``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...device import to_numpy
from ...errors import check_choice, check_seed, invalid, positive_int
from ._matrix import device_counts, row_of_entries
from ._segments import order_within_rows, positive_bits

__all__ = ["bin_csr", "bin_values", "check_n_bins"]

TIE_BREAKS = ("random", "left")


_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: Any) -> Any:
    """SplitMix64's finaliser of ``uint64`` values (a bijection that scatters the bits)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _splitmix_uniform(xp: Any, seed: int, keys: Any) -> Any:
    """``(n,) float64`` uniform in [0, 1): SplitMix64 of (seed, key), on every device.

    ``keys``: ``(n,) uint64`` counters (here a stored value's ``cell * n_genes + gene``, so the
    draw of a value depends on its coordinates only, not on which block of cells holds it).
    The stream of a seed starts at ``mix(seed)``, a scattered 64-bit state, so the streams of
    nearby seeds (``seed``, ``seed + 1``: per-epoch re-binning) are unrelated: two streams of
    ``n`` draws overlap only if their states lie within ``n`` steps of each other (odds about
    ``n / 2**63``), where a state of ``seed * step`` would make seed ``s + 1`` the stream of
    ``s`` shifted by one.
    """
    seeded = np.array([(int(seed) * _GOLDEN + 0x632BE59BD9B4E019) % 2**64], dtype=np.uint64)
    state = _mix64(seeded)[0]
    z = _mix64(keys.astype(np.uint64) * np.uint64(_GOLDEN) + state)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _count_edges(xp: Any, edges: Any, row: Any, x: Any, n_edges: int, *, inclusive: bool) -> Any:
    """Per value, how many of its row's sorted ``edges`` are <= it (``inclusive``) or < it.

    ``np.searchsorted(edges[row], x, side="right" | "left")`` by a vectorised binary search.
    """
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


def _quantile_edges(xp: Any, sorted_values: Any, counts: Any, n_edges: int) -> Any:
    """``(n_cells * n_edges,) float64``: each cell's quantiles of its sorted values.

    Cell ``i``'s ``counts[i]`` values, back to back in ``sorted_values``, give its ``n_edges``
    edges ``np.quantile(values, linspace(0, 1, n_edges))`` (all 0 for a cell without any).
    """
    starts = xp.cumsum(counts) - counts
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
    return xp.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma).ravel()


def check_n_bins(n_bins: Any) -> int:
    """``n_bins`` checked: an integer of at least 3.

    Raises:
        InputError: anything else.
    """
    n_bins = positive_int("n_bins", n_bins)
    if n_bins < 3:
        raise invalid("n_bins", n_bins, "must be at least 3 (scGPT uses 51)")
    return n_bins


def bin_csr(
    xp: Any,
    data: Any,
    indices: Any,
    indptr: Any,
    *,
    n_genes: int,
    n_bins: int,
    seed: int,
    tie_break: str,
    first_cell: int = 0,
) -> Any:
    """The bins of a checked CSR matrix's stored values (the work of :func:`bin_values`).

    Args:
        xp: NumPy or CuPy, the module of the arrays.
        data: ``(nnz,)`` non-negative finite values, canonical CSR order.
        indices: ``(nnz,)`` their genes.
        indptr: ``(n_cells + 1,) int64``.
        n_genes: the matrix's genes (the tie-breaking counters are ``cell * n_genes + gene``).
        n_bins: at least 3 (checked by the caller).
        seed: the tie-breaking seed.
        tie_break: ``"random"`` or ``"left"``.
        first_cell: the matrix's first row is this cell of a larger matrix: the draws are
            those of that cell, so a block of cells binned alone gets the bins it gets in the
            whole matrix.

    Returns:
        ``(nnz,) int64`` bins (0 for stored zeros), on the device of ``data``.

    Memory: about ten 8-byte arrays of ``nnz`` and ten of ``n_cells * (n_bins - 1)``.
    """
    n_cells = int(indptr.size) - 1
    binned = xp.zeros(data.size, dtype=np.int64)
    positive = xp.nonzero(data > 0)[0]
    if not positive.size:
        return binned
    row = row_of_entries(xp, indptr)[positive]
    values = data[positive].astype(np.float64)
    order = order_within_rows(xp, positive_bits(xp, values), row, positive, n_cells)
    n_edges = n_bins - 1
    edges = _quantile_edges(xp, values[order], xp.bincount(row, minlength=n_cells), n_edges)
    left = _count_edges(xp, edges, row, values, n_edges, inclusive=True)
    if tie_break == "random":
        right = _count_edges(xp, edges, row, values, n_edges, inclusive=False)
        keys = (row + first_cell).astype(np.uint64) * np.uint64(n_genes) + indices[positive].astype(
            np.uint64
        )
        uniform = _splitmix_uniform(xp, seed, keys)
        digits = xp.ceil(uniform * (right - left).astype(np.float64) + left).astype(np.int64)
    else:
        digits = left
    binned[positive] = digits
    return binned


def bin_values(
    adata: Any,
    *,
    n_bins: int = 51,
    seed: int = 0,
    layer: str | None = None,
    key_added: str = "X_binned",
    tie_break: str = "random",
    inplace: bool = True,
    device: str | None = None,
) -> Any:
    """Bin each cell's values into its own quantiles, as scGPT does.

    Per cell, ``n_bins - 1`` edges at the quantiles ``linspace(0, 1, n_bins - 1)`` of its
    non-zero values; a non-zero value gets its ``np.digitize`` bin (1 .. n_bins - 1), ties
    with edges broken by ``tie_break``; zeros stay 0 (see the module docstring and
    ``docs/singlecell.md#scgpt-binning``).

    Args:
        adata: ``(n_cells, n_genes)`` values in ``X`` (or ``layers[layer]``), usually
            normalised log1p expression; SciPy CSR/CSC or dense, any numeric dtype;
            non-negative and finite.
        n_bins: scGPT's ``n_bins`` (51 in its tutorials), at least 3.
        seed: seeds the tie-breaking draws (``tie_break="random"``): a counter-based hash of
            (seed, cell, gene), so the result is deterministic for a seed, identical on CPU
            and GPU, and the same for a block of cells binned alone (:func:`bin_csr`).
        layer: read ``adata.layers[layer]`` instead of ``X``.
        key_added: the layer written with ``inplace=True``.
        tie_break: ``"random"``: a value equal to one or more edges gets a uniformly random bin
            among the tied ones (scGPT's default); ``"left"``: ``np.digitize(x, edges)``, no
            randomness.
        inplace: store the bins in ``adata.layers[key_added]`` and return None; with
            ``inplace=False`` return them and leave ``adata`` unchanged.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None with ``inplace=True``; else the ``int64`` bins, on the host: a SciPy CSR matrix
        with the input's sparsity pattern (canonical order) for sparse input, a dense
        ``(n_cells, n_genes)`` array for dense input.

    Raises:
        InputError: a bad parameter, or a negative or non-finite value (naming its cell and
            gene).

    Memory: on the device, about ten 8-byte arrays the length of the stored entries, plus
    about ten ``(n_cells, n_bins - 1)`` float64/int64 arrays for the edges (``8 * 10 * n_cells
    * (n_bins - 1)`` bytes: 4 GB for a million cells and 51 bins).
    """
    n_bins = check_n_bins(n_bins)
    check_choice("tie_break", tie_break, TIE_BREAKS)
    seed = check_seed(seed)
    xp, _, matrix, csr, data, indices, indptr = device_counts(
        adata, layer, device, integer=False, what="bin_values"
    )
    result_data = to_numpy(
        bin_csr(
            xp,
            data,
            indices,
            indptr,
            n_genes=csr.shape[1],
            n_bins=n_bins,
            seed=seed,
            tie_break=tie_break,
        )
    )
    import scipy.sparse as sp

    if sp.issparse(matrix):
        result: Any = sp.csr_matrix((result_data, csr.indices.copy(), csr.indptr.copy()), csr.shape)
    else:
        result = sp.csr_matrix((result_data, csr.indices, csr.indptr), csr.shape).toarray()
    if not inplace:
        return result
    adata.layers[key_added] = result
    return None

"""Count augmentation: depth downsampling and simulated doublets, on the CPU or the GPU.

Both work on the CSR components of the count matrix as plain NumPy or CuPy arrays (one
xp-generic code path; dense input is converted to CSR and back). Random numbers come from
``numpy.random.default_rng(seed)`` on the CPU and ``cupy.random.RandomState(seed)`` on the GPU:
each device is deterministic for a seed, but the two devices draw different streams, so results
agree in distribution (tested), not value by value. :func:`simulate_doublets` draws its parent
pairs on the host on both devices, so its output is identical on CPU and GPU. See
``docs/singlecell.md#augmentation``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...device import to_numpy
from ...errors import InputError, check_choice, check_seed, invalid, positive_int
from ._matrix import device_counts, row_of_entries

__all__ = [
    "doublet_obs",
    "doublet_parents",
    "doublet_rows",
    "downsample_counts",
    "downsampled_counts",
    "simulate_doublets",
]

DOWNSAMPLE_METHODS = ("binomial", "hypergeometric", "multinomial")
DOUBLET_MODES = ("sum", "mean")
#: Doublets built at a time on the CPU (the gathered parents' temporaries are this many rows).
DOUBLET_CHUNK = 16_384


#: Cells per random block of :func:`downsample_counts`: block ``b`` (cells ``b * block_cells``
#: on) draws from its own generator, seeded by ``(seed, b)``.
DOWNSAMPLE_BLOCK_CELLS = 4096


def _generator(device: str, seed: int, block: int) -> Any:
    """Block ``block``'s generator: ``binomial(n, p)`` and ``hypergeometric(ngood, nbad, k)``.

    CPU: ``numpy.random.default_rng([seed, block])``; GPU: ``cupy.random.RandomState`` seeded
    by the first word of ``numpy.random.SeedSequence([seed, block])``.
    """
    if device == "gpu":
        import cupy

        words = np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint32)
        return cupy.random.RandomState(int(words[0]))
    return np.random.default_rng([seed, block])


def _segment_totals(xp: Any, counts: Any, indptr: Any) -> tuple[Any, Any]:
    """Prefix sums of ``counts`` and per-cell totals, exact integers on both devices.

    Returns ``(cumulative, totals)``: ``(nnz + 1,) int64`` with 0 first, and ``(n_cells,)
    int64``.
    """
    cumulative = xp.zeros(counts.size + 1, dtype=np.int64)
    cumulative[1:] = xp.cumsum(counts)
    return cumulative, cumulative[indptr[1:]] - cumulative[indptr[:-1]]


def _resample(
    xp: Any,
    rng: Any,
    counts: Any,
    cumulative: Any,
    indptr: Any,
    *,
    cells: Any,
    targets: Any,
    replace: bool,
) -> Any:
    """Resample each of ``cells`` to exactly ``targets`` reads, from its own reads.

    ``replace=False``: a multivariate hypergeometric draw (reads drawn without replacement; no
    count grows). ``replace=True``: a multinomial draw of ``target`` reads with probabilities
    ``count / cell total`` (a count may grow).

    All cells at once, by halving: a node (cell, entry range [lo, hi), k reads to draw) splits
    its range in two and draws how many of the k come from the left half,
    ``hypergeometric(left reads, right reads, k)`` or ``binomial(k, left / (left + right))``
    (the multinomial's conditional decomposition); a one-entry node keeps its k. About
    log2(max genes per cell) rounds of vectorised draws.

    Returns ``(nnz,) int64``: the new counts (unchanged outside ``cells``).
    """
    new_counts = counts.copy()
    in_cells = xp.zeros(indptr.size - 1, dtype=bool)
    in_cells[cells] = True
    new_counts[in_cells[row_of_entries(xp, indptr)]] = 0
    lo, hi, k = indptr[cells], indptr[cells + 1], targets
    while lo.size:
        live = k > 0
        lo, hi, k = lo[live], hi[live], k[live]
        leaf = hi - lo == 1
        new_counts[lo[leaf]] = k[leaf]
        lo, hi, k = lo[~leaf], hi[~leaf], k[~leaf]
        if not lo.size:
            break
        mid = (lo + hi) // 2
        left = cumulative[mid] - cumulative[lo]
        right = cumulative[hi] - cumulative[mid]
        split = (left > 0) & (right > 0)
        # degenerate splits are decided without a draw; give the sampler valid dummies there
        if replace:
            share = xp.where(split, left / xp.maximum(left + right, 1).astype(np.float64), 0.5)
            draws = rng.binomial(xp.where(split, k, 1), share)
        else:
            draws = rng.hypergeometric(
                xp.where(split, left, 1), xp.where(split, right, 1), xp.where(split, k, 1)
            )
        from_left = xp.where(split, xp.asarray(draws).astype(np.int64), xp.where(left > 0, k, 0))
        lo = xp.concatenate([lo, mid])
        hi = xp.concatenate([mid, hi])
        k = xp.concatenate([from_left, k - from_left])
    return new_counts


def _depth_target(
    fraction: float | None, target_total: int | None
) -> tuple[float | None, int | None]:
    """``(fraction, target_total)`` checked: exactly one given, as a float or an int.

    Raises:
        InputError: neither or both given, ``fraction`` outside (0, 1], or ``target_total``
            not a positive integer.
    """
    if (fraction is None) == (target_total is None):
        raise InputError("give exactly one of `fraction` and `target_total`")
    if target_total is not None:
        return None, positive_int("target_total", target_total)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float | np.number)
        or not 0 < float(fraction) <= 1
    ):
        raise invalid("fraction", fraction, "must be a number in (0, 1]")
    return float(fraction), None


def downsampled_counts(
    xp: Any,
    device: str,
    counts: Any,
    indptr: Any,
    *,
    fraction: float | None,
    target_total: int | None,
    method: str,
    seed: int,
    block_cells: int = DOWNSAMPLE_BLOCK_CELLS,
    first_block: int = 0,
) -> Any:
    """The downsampled counts of a checked CSR matrix (the work of :func:`downsample_counts`).

    Args:
        xp: NumPy or CuPy, the module of the arrays.
        device: ``"cpu"`` or ``"gpu"`` (the generator).
        counts: ``(nnz,)`` non-negative whole counts, any numeric dtype (read as int64).
        indptr: ``(n_cells + 1,) int64``.
        fraction: as :func:`downsample_counts` (exactly one of it and ``target_total``).
        target_total: as :func:`downsample_counts`.
        method: one of :data:`DOWNSAMPLE_METHODS`.
        seed: the seed.
        block_cells: cells per random block; block ``first_block + k`` (cells ``k *
            block_cells`` on) draws from its own generator (:func:`_generator`), so a run of
            whole blocks gives the counts the whole matrix gets.
        first_block: the random block of the first row.

    Returns:
        ``(nnz,) int64`` new counts, on the device of ``counts``.

    Memory: about eight 8-byte arrays of one block's stored entries, and the output.
    """
    n_cells = int(indptr.size) - 1
    if device == "cpu" and method != "binomial":  # numba, the blocks in parallel
        from ._rank_cpu import row_totals
        from ._resample_cpu import resample_blocks

        replace = method == "multinomial"
        totals = row_totals(indptr, counts).astype(np.int64)  # exact: whole counts < 2**53
        targets, resampled = _resample_targets(
            np, totals, fraction=fraction, target_total=target_total, replace=replace
        )
        seeds = _block_seeds(seed, first_block, -(-n_cells // block_cells))
        return resample_blocks(counts, indptr, targets, resampled, replace, block_cells, seeds)
    new_counts = counts.astype(np.int64)
    for number, start in enumerate(range(0, n_cells, block_cells)):
        stop = min(start + block_cells, n_cells)
        first, last = int(indptr[start]), int(indptr[stop])
        if first == last:
            continue  # no reads: nothing to draw
        new_counts[first:last] = _downsample_block(
            xp, _generator(device, seed, first_block + number), new_counts[first:last],
            indptr[start : stop + 1] - first, fraction=fraction, target_total=target_total,
            method=method,
        )  # fmt: skip
    return new_counts


def _resample_targets(
    xp: Any, totals: Any, *, fraction: float | None, target_total: int | None, replace: bool
) -> tuple[Any, Any]:
    """Each cell's exact target and whether it is resampled (``hypergeometric``/``multinomial``).

    Returns ``(targets, resampled)``: ``(n_cells,) int64`` (``target_total``, or ``floor(fraction
    * total)``) and ``(n_cells,) bool``: the cells above their target, or with ``replace`` and
    ``fraction`` every cell with reads.
    """
    if fraction is not None:
        targets = xp.floor(totals.astype(np.float64) * fraction).astype(np.int64)
    else:
        targets = xp.full(totals.size, target_total, dtype=np.int64)
    resampled = (totals > 0) if replace and fraction is not None else (totals > targets)
    return targets, resampled


def _block_seeds(seed: int, first_block: int, n_blocks: int) -> np.ndarray:
    """``(n_blocks,) int64``: the numba seed of each random block, from ``(seed, block)``."""
    return np.array(
        [
            int(np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint32)[0])
            for block in range(first_block, first_block + n_blocks)
        ],
        dtype=np.int64,
    )


def _downsample_block(
    xp: Any,
    rng: Any,
    counts: Any,
    indptr: Any,
    *,
    fraction: float | None,
    target_total: int | None,
    method: str,
) -> Any:
    """One random block of :func:`downsampled_counts`: ``(nnz,) int64`` new counts."""
    n_cells = int(indptr.size) - 1
    cumulative, totals = _segment_totals(xp, counts, indptr)

    if method == "binomial":
        if fraction is not None:
            p_cell = xp.full(n_cells, fraction, dtype=np.float64)
        else:
            p_cell = xp.where(
                totals > target_total, target_total / xp.maximum(totals, 1).astype(np.float64), 1.0
            )
        p_entry = p_cell[row_of_entries(xp, indptr)]
        thin = xp.nonzero(p_entry < 1.0)[0]
        new_counts = counts.copy()
        if thin.size:
            drawn = rng.binomial(counts[thin], p_entry[thin])
            new_counts[thin] = xp.asarray(drawn).astype(np.int64)
    else:
        replace = method == "multinomial"
        targets, resampled = _resample_targets(
            xp, totals, fraction=fraction, target_total=target_total, replace=replace
        )
        cells = xp.nonzero(resampled)[0]
        new_counts = _resample(
            xp, rng, counts, cumulative, indptr, cells=cells, targets=targets[cells],
            replace=replace,
        )  # fmt: skip
    return new_counts


def downsample_counts(
    adata: Any,
    *,
    fraction: float | None = None,
    target_total: int | None = None,
    method: str = "binomial",
    seed: int = 0,
    block_cells: int = DOWNSAMPLE_BLOCK_CELLS,
    layer: str | None = None,
    copy: bool = False,
    device: str | None = None,
) -> Any:
    """Reduce each cell's sequencing depth.

    Args:
        adata: ``(n_cells, n_genes)`` raw counts (non-negative integers, any numeric dtype) in
            ``X`` or ``layers[layer]``; SciPy CSR/CSC or dense.
        fraction: keep this fraction of reads, 0 < fraction <= 1 (exactly one of
            ``fraction`` and ``target_total``).
        target_total: the reads per cell to keep; cells at or below it are left unchanged.
        method: ``"binomial"``: every count is thinned independently, ``Binomial(count, p)``
            with ``p = fraction`` or ``p = target_total / cell total`` (the expected total is
            ``p * total``). ``"hypergeometric"``: every cell above its target is resampled to
            exactly the target, drawing reads *without replacement* from its reads (as
            ``scanpy.pp.downsample_counts(counts_per_cell=...)``: no count grows).
            ``"multinomial"``: the cell is resampled to exactly the target *with*
            replacement, ``Multinomial(target, count / total)`` (the specification's
            ``poisson_augment``: a count may grow); with ``fraction`` every cell with reads
            is resampled (``fraction=1`` too, as there), with ``target_total`` the cells above
            it. The target is ``target_total``, or ``floor(fraction * total)``.
        seed: seeds the device's generators; deterministic for a seed on one device (the two
            devices draw different streams).
        block_cells: cells per random block: each block of ``block_cells`` cells draws from
            its own generator, seeded by ``(seed, block)`` (so the out-of-core job, whose
            tasks are whole blocks, gives the same counts); the counts for a seed depend on it.
        layer: downsample ``adata.layers[layer]`` instead of ``X``.
        copy: work on a copy of ``adata`` and return it; ``adata`` is left unchanged.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None (``adata`` modified in place), or the copy with ``copy=True``. The matrix keeps
        its format (CSR/CSC/dense, with explicit zeros removed from sparse ones) and dtype.

    Raises:
        InputError: a bad parameter, or a negative, non-finite or non-integer count (naming its
            cell and gene); nothing is written then.

    Memory: on the device, about eight 8-byte arrays the length of the stored entries; with
    ``copy=True`` the whole AnnData is copied on the host.
    """
    fraction, target_total = _depth_target(fraction, target_total)
    check_choice("method", method, DOWNSAMPLE_METHODS)
    seed = check_seed(seed)
    block_cells = positive_int("block_cells", block_cells)
    xp, device_name, matrix, csr, data, _, indptr = device_counts(
        adata, layer, device, integer=True, what="downsample_counts", with_indices=False
    )
    new_counts = downsampled_counts(
        xp, device_name, data, indptr, fraction=fraction,
        target_total=target_total, method=method, seed=seed, block_cells=block_cells,
    )  # fmt: skip
    result = _rebuild(matrix, csr, to_numpy(new_counts))
    target = adata.copy() if copy else adata
    if layer is None:
        target.X = result
    else:
        target.layers[layer] = result
    return target if copy else None


def _rebuild(matrix: Any, csr: Any, new_data: np.ndarray) -> Any:
    """The new counts in ``matrix``'s format and dtype (explicit zeros removed if sparse)."""
    import scipy.sparse as sp

    out = sp.csr_matrix(
        (new_data.astype(csr.dtype), csr.indices.copy(), csr.indptr.copy()), shape=csr.shape
    )
    if not sp.issparse(matrix):
        return out.toarray().astype(np.asarray(matrix).dtype, copy=False)
    out.eliminate_zeros()
    if matrix.format == "csc":
        return out.tocsc()
    return out if matrix.format == "csr" else out.asformat(matrix.format)


def _sum_row_pairs(
    xp: Any, data: Any, indices: Any, indptr: Any, *, first: Any, second: Any
) -> tuple[Any, Any, Any]:
    """CSR components of rows ``first[d] + second[d]``, sorted by gene within each row.

    Exact: each sum has at most two terms; ``data`` float64 or int64 as given.
    """
    n_out = first.size
    len_first = indptr[first + 1] - indptr[first]
    len_second = indptr[second + 1] - indptr[second]
    seg_len = len_first + len_second
    seg_end = xp.cumsum(seg_len)
    n_entries = int(seg_end[-1]) if n_out else 0
    entry = xp.arange(n_entries, dtype=np.int64)
    out_row = xp.searchsorted(seg_end, entry, side="right")
    within = entry - (seg_end - seg_len)[out_row]
    from_first = within < len_first[out_row]
    source = xp.where(
        from_first,
        indptr[first][out_row] + within,
        indptr[second][out_row] + within - len_first[out_row],
    )
    genes = indices[source]
    values = data[source]
    order = xp.lexsort(xp.stack([genes, out_row]))
    out_row, genes, values = out_row[order], genes[order], values[order]
    # a (row, gene) appears at most twice, next to each other: add the second into the first
    same_as_next = xp.zeros(n_entries, dtype=bool)
    if n_entries > 1:
        same_as_next[:-1] = (out_row[:-1] == out_row[1:]) & (genes[:-1] == genes[1:])
    is_duplicate = xp.zeros(n_entries, dtype=bool)
    is_duplicate[1:] = same_as_next[:-1]
    following = xp.zeros_like(values)
    if n_entries > 1:
        following[:-1] = values[1:]
    values = values + xp.where(same_as_next, following, 0)
    keep = ~is_duplicate
    out_row, genes, values = out_row[keep], genes[keep], values[keep]
    out_indptr = xp.zeros(n_out + 1, dtype=np.int64)
    out_indptr[1:] = xp.cumsum(xp.bincount(out_row, minlength=n_out))
    return values, genes, out_indptr


def simulate_doublets(
    adata: Any,
    *,
    n: int,
    how: str = "sum",
    seed: int = 0,
    layer: str | None = None,
    device: str | None = None,
) -> Any:
    """Simulate ``n`` doublets, each from two distinct random cells, as scrublet does.

    ``adata`` is not modified: the doublets are a new AnnData.

    Args:
        adata: ``(n_cells, n_genes)`` counts in ``X`` or ``layers[layer]`` (non-negative,
            finite); at least 2 cells.
        n: the number of doublets.
        how: ``"sum"`` (scrublet's raw-count doublets: the two parents' counts added; the input
            dtype is kept) or ``"mean"`` (their average; float32 for float32 input, else
            float64).
        seed: seeds ``numpy.random.default_rng``; the parent pairs are drawn on the host on both
            devices, so CPU and GPU give the same doublets.
        layer: read ``adata.layers[layer]`` instead of ``X``.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        AnnData ``(n, n_genes)``: ``X`` CSR for sparse input (dense for dense input); ``obs``
        indexed ``doublet-0`` ... with columns ``parent_1``/``parent_2`` (int64 row indices)
        and ``parent_1_name``/``parent_2_name`` (obs names); ``var`` copied.

    Raises:
        InputError: a bad parameter, fewer than 2 cells, or a negative or non-finite value
            (naming its cell and gene).

    Memory: the output holds up to the two parents' stored entries per doublet; the CPU path
    gathers the parents of :data:`DOUBLET_CHUNK` doublets at a time, the GPU path works on a
    few 8-byte arrays of the output's length.
    """
    import anndata
    import scipy.sparse as sp

    n = positive_int("n", n)
    check_choice("how", how, DOUBLET_MODES)
    seed = check_seed(seed)
    xp, device_name, matrix, csr, data, indices, indptr = device_counts(
        adata, layer, device, integer=False, what="simulate_doublets"
    )
    n_cells = csr.shape[0]
    if n_cells < 2:
        raise InputError(f"simulate_doublets needs at least 2 cells, adata has {n_cells}")

    first, second = doublet_parents(n_cells, n, seed)
    out = doublet_rows(
        xp, device_name, (data, indices, indptr), shape=csr.shape, first=first, second=second,
        how=how,
    )  # fmt: skip
    if not sp.issparse(matrix):
        out = out.toarray()
    obs = doublet_obs(np.asarray(adata.obs_names), first, second, start=0)
    return anndata.AnnData(X=out, obs=obs, var=adata.var.copy())


def doublet_parents(n_cells: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The parents of ``n`` doublets of ``n_cells`` cells: ``(first, second)``, ``(n,) int64``.

    From ``numpy.random.default_rng(seed)`` on the host: the first uniform over all cells,
    the second uniform over the other cells.
    """
    host_rng = np.random.default_rng(seed)
    first = host_rng.integers(0, n_cells, size=n)
    second = host_rng.integers(0, n_cells - 1, size=n)
    return first.astype(np.int64), (second + (second >= first)).astype(np.int64)


def doublet_rows(
    xp: Any,
    device: str,
    parts: tuple[Any, Any, Any],
    *,
    shape: tuple[int, int],
    first: np.ndarray,
    second: np.ndarray,
    how: str,
) -> Any:
    """Rows ``first[d] + second[d]`` (``how="sum"``) or their mean of a CSR matrix.

    Args:
        xp: NumPy or CuPy, the module of ``data``, ``indices``, ``indptr``.
        device: ``"cpu"`` (SciPy's row gather and sparse add, :data:`DOUBLET_CHUNK` doublets
            at a time) or ``"gpu"`` (:func:`_sum_row_pairs`): the same exact sums.
        parts: the matrix's CSR ``(data, indices, indptr)``: ``(nnz,)`` stored values (any
            numeric dtype), ``(nnz,) int64`` columns, ``(n_rows + 1,) int64`` row offsets.
        shape: ``(n_rows, n_genes)``.
        first: ``(n,) int64`` host row indices.
        second: ``(n,) int64`` host row indices.
        how: ``"sum"`` (the input dtype kept; integers summed in int64) or ``"mean"``
            (``float32`` for ``float32`` data, else ``float64``).

    Returns:
        ``(n, n_genes)`` SciPy CSR on the host, sorted indices, stored zeros removed.
    """
    import scipy.sparse as sp

    data, indices, indptr = parts
    dtype = np.dtype(data.dtype)
    if how == "sum":
        out_dtype = dtype
        work_dtype = np.dtype(np.int64 if dtype.kind in "biu" else np.float64)
    else:
        out_dtype = np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)
        work_dtype = np.dtype(np.float64)
    if device == "cpu":  # SciPy's row gather and sparse add, by chunks of doublets
        matrix = sp.csr_matrix((data, indices, indptr), shape=shape)
        parts = []
        for start in range(0, len(first), DOUBLET_CHUNK):
            pair = slice(start, start + DOUBLET_CHUNK)
            one, two = matrix[first[pair]], matrix[second[pair]]
            one.data, two.data = one.data.astype(work_dtype), two.data.astype(work_dtype)
            summed = (one + two).tocsr()
            summed.sort_indices()
            if how == "mean":
                summed.data /= 2.0
            summed.data = summed.data.astype(out_dtype)
            summed.eliminate_zeros()
            parts.append(summed)
        if not parts:
            return sp.csr_matrix((0, shape[1]), dtype=out_dtype)
        return sp.vstack(parts, format="csr")
    values, genes, out_indptr = _sum_row_pairs(
        xp, data.astype(work_dtype), indices, indptr, first=xp.asarray(first),
        second=xp.asarray(second),
    )  # fmt: skip
    if how == "mean":
        values = values / 2.0
    out = sp.csr_matrix(
        (to_numpy(values).astype(out_dtype), to_numpy(genes), to_numpy(out_indptr)),
        shape=(len(first), shape[1]),
    )
    out.eliminate_zeros()  # the same structure from both devices
    return out


def doublet_obs(names: np.ndarray, first: np.ndarray, second: np.ndarray, *, start: int) -> Any:
    """``obs`` of doublets ``start..`` with parents ``first``/``second`` of cells ``names``.

    Indexed ``doublet-{start}`` ...; columns ``parent_1``, ``parent_2`` (``int64`` rows) and
    ``parent_1_name``, ``parent_2_name`` (the parents' obs names).
    """
    import pandas as pd

    return pd.DataFrame(
        {
            "parent_1": first.astype(np.int64),
            "parent_2": second.astype(np.int64),
            "parent_1_name": names[first].astype(str),
            "parent_2_name": names[second].astype(str),
        },
        index=pd.Index([f"doublet-{i}" for i in range(start, start + len(first))]),
    )

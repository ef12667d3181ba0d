"""The single-cell recipe out of core: blocks of cells, in this process or on a Dask cluster.

:func:`preprocess_blocks` runs the recipe of ``docs/singlecell.md#recipe`` (a
:class:`~.recipe.Recipe`) on a matrix read a block of cells at a time
(:class:`~.blocks.CountBlocks`), and :func:`write_blocks` writes its output AnnData chunk by
chunk. The output equals :func:`~.recipe.preprocess`'s on the whole matrix: the same cells,
genes, HVG set, columns (names, order, dtypes) and ``uns``; the per-cell values are computed by
the same scanpy calls on each block (so bit for bit), the gene statistics are sums over blocks
in float64 (scanpy's formulas, summed in another order: to a relative 1e-12 or so), and the
values that depend on them (HVG statistics, scaled ``X``) agree to a relative 1e-5 (a value
within 1e-5 of zero to an absolute 1e-5). The HVG set can differ only where two genes'
normalised dispersions tie within that tolerance at the ``n_top_genes`` cut.

The passes, each one task per block of ``chunk_cells`` cells (run by
:func:`~gpu_genomics.execution.map_in_order`: here, or on the cluster's workers):

1. *scan*: check the values (the first bad one, in file order, is the error), count each cell's
   detected genes (``filter_cells``) and each gene's detecting cells among the cells kept
   (``filter_genes``);
2. *qc*: on the kept cells and genes, scanpy's ``calculate_qc_metrics`` (the per-cell columns;
   the per-gene ones summed over blocks), the QC filter, and, when ``target_sum`` is given,
   ``normalize_total`` + ``log1p`` and the per-gene sums that ``highly_variable_genes`` and
   ``scale`` need;
3. *moments* (only when ``target_sum`` is None, which needs the median total of all kept cells
   first, or for ``seurat_v3``, whose clipped variances need the loess fit of pass 2): the
   sums pass 2 could not make;
4. *rows*: output rows in whole chunks: each task reads the input rows of its kept cells,
   normalises, selects the output genes, scales, reads the same rows of each carried per-cell
   matrix of the input (:class:`CarriedRows`: ``obsm`` arrays, other layers, ``obsp``,
   ``raw/X``), and returns its raw counts and carried CSR rows (and, for ``.h5ad``, its dense
   ``X`` and carried rows) to the client, which writes them in order through one writer; for
   ``.zarr`` the task writes its dense chunks itself.

The input's other elements are carried as the in-memory recipe's AnnData subsetting keeps them
(:func:`_carry`): ``obsm`` and ``raw.X`` rows of the output cells, layers (but ``counts``, the
recipe's) rows of the output cells and columns of the output genes, ``obsp`` both axes of the
output cells, ``varm`` rows and ``varp`` both axes of the output genes, ``raw.var``/``raw.varm``
whole.

Memory per task: one block of ``chunk_cells`` input cells as CSR, a few times over, plus its
``chunk_cells x output genes`` dense float64 ``X`` rows and the block's rows of each carried
per-cell matrix as stored (an ``obsp`` row is as wide as the input's cells). The client holds
the per-cell columns (about 40 bytes per cell and its name, and ``obsm`` DataFrames), a few
float64 arrays per gene and the input's ``varm``, ``varp``, ``raw.var`` and ``raw.varm``;
never a matrix over cells.

With :class:`RankOptions` the rows pass also writes Geneformer tokens of the output cells
(their gene medians computed out of core first, exactly, when not given:
:func:`gene_medians_of_blocks`).

The out-of-core recipe runs on the CPU backend (scanpy) in this release.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import check_choice
from ...execution import map_in_order, whole_chunks
from ._matrix import check_counts, var_gene_ids
from .blocks import Carried, CountBlocks, StoredMatrix, block_starts
from .recipe import BINNED_LAYER, Recipe, _loosen, _require_cells, annotate_genes, binned_csr

if TYPE_CHECKING:
    from collections.abc import Iterator

    from anndata import AnnData

log = logging.getLogger("gpu_genomics")

#: Cells per task unless told (rapids-singlecell's advice for Dask: about 20,000 cells, which
#: keeps a block's non-zeros far below CuPy's 2**31).
DEFAULT_CHUNK_CELLS = 20_000
#: Target bytes of one chunk of the output's dense ``X`` (its rows are a divisor of a task's).
OUTPUT_CHUNK_BYTES = 16 << 20


# --- per-gene sums over blocks --------------------------------------------------------------


@dataclasses.dataclass
class Moments:
    """Per-gene sums over cells, added block by block.

    Attributes:
        n_cells: cells summed.
        total: ``(n_genes,) float64``: sum of the values.
        squares: ``(n_genes,) float64``: sum of the squared values (squared in the values'
            dtype, as scanpy's sparse mean/variance does).
    """

    n_cells: int
    total: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, x: Any, *, clip: np.ndarray | None = None) -> Moments:
        """The sums of the columns of the CSR matrix ``x``; values above ``clip[gene]`` clipped.

        With ``clip`` the values are taken as float64 first (scanpy's ``seurat_v3``).
        """
        n_genes = x.shape[1]
        values = x.data
        if clip is not None:
            values = np.minimum(values.astype(np.float64), clip[x.indices])
        squares = values * values
        return cls(
            x.shape[0],
            np.bincount(x.indices, weights=values.astype(np.float64), minlength=n_genes),
            np.bincount(x.indices, weights=squares.astype(np.float64), minlength=n_genes),
        )

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n_cells + other.n_cells, self.total + other.total, self.squares + other.squares
        )

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` per gene as scanpy's ``_get_mean_var`` (variance with ddof 1)."""
        n = self.n_cells
        mean = self.total / n
        var = self.squares / n - mean**2
        if n != 1:
            var *= n / (n - 1)
        return mean, var


def _sum_all(parts: list[Moments]) -> Moments:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


# --- the block tasks (top-level functions: they run on the workers) -------------------------


def _read(blocks: CountBlocks, start: int, stop: int) -> Any:
    x = blocks.read(start, stop)
    if not x.has_canonical_format:
        x.sum_duplicates()
    return x


def _block_anndata(
    x: Any,
    cell_names: Any = None,
    gene_names: Any = None,
    var: dict[str, Any] | None = None,
) -> AnnData:
    """A block as AnnData: its cells and genes named (by position when not given)."""
    import anndata
    import pandas as pd

    def index(names: Any, n: int) -> Any:
        return pd.Index(
            np.asarray(names, dtype=str) if names is not None else np.arange(n).astype(str)
        )

    return anndata.AnnData(
        X=x,
        obs=pd.DataFrame(index=index(cell_names, x.shape[0])),
        var=pd.DataFrame(var, index=index(gene_names, x.shape[1])),
    )


def _log_normalized(x: Any, target_sum: float) -> Any:
    """Scanpy's ``normalize_total(target_sum)`` then ``log1p``, on a copy of the CSR ``x``."""
    import scanpy as sc

    if x.shape[0] == 0:  # a block whose every cell the QC filter removed: scanpy refuses it
        return x.astype(np.float32)
    block = _block_anndata(x.copy())
    sc.pp.normalize_total(block, target_sum=target_sum)
    sc.pp.log1p(block)
    return block.X


@dataclasses.dataclass(frozen=True)
class _MomentsWanted:
    """Which per-gene sums a pass makes, over the cells that pass the QC filter."""

    log: bool = False  #: of log1p(normalised) values (scale; cell_ranger HVG)
    expm1: bool = False  #: of expm1(log1p(normalised)) values (seurat HVG)
    counts: bool = False  #: of raw counts (seurat_v3 HVG)
    clip: np.ndarray | None = None  #: of raw counts clipped at these (seurat_v3, second pass)


def _moments_of(counts: Any, target_sum: float | None, wanted: _MomentsWanted) -> dict:
    out: dict[str, Moments] = {}
    if wanted.counts:
        out["counts"] = Moments.of(counts)
    if wanted.clip is not None:
        out["clipped"] = Moments.of(counts, clip=wanted.clip)
    if (wanted.log or wanted.expm1) and target_sum is not None:
        logged = _log_normalized(counts, target_sum)
        if wanted.log:
            out["log"] = Moments.of(logged)
        if wanted.expm1:
            expm1 = logged.copy()
            np.expm1(expm1.data, out=expm1.data)
            out["expm1"] = Moments.of(expm1)
    return out


@dataclasses.dataclass(frozen=True)
class _Shared:
    """What every task of a pass needs besides its rows (sent with each task)."""

    blocks: CountBlocks
    recipe: Recipe
    gene_names: np.ndarray | None = None  #: all genes' names (pass 1's error messages)
    genes: np.ndarray | None = None  #: ``int64`` columns of the genes ``filter_genes`` kept
    mito: np.ndarray | None = None  #: ``bool``, per kept gene: mitochondrial
    wanted: _MomentsWanted = _MomentsWanted()
    target_sum: float | None = None


@dataclasses.dataclass(frozen=True)
class _Block:
    """One task's rows: ``[start, stop)`` of the file, of which ``cells`` (relative) count."""

    start: int
    stop: int
    cells: np.ndarray | None = None  #: None: all
    cell_names: np.ndarray | None = None  #: the names of rows ``[start, stop)``


def _kept(shared: _Shared, block: _Block) -> Any:
    """The block's counted cells and kept genes, CSR, without stored zeros."""
    x = _read(shared.blocks, block.start, block.stop)[block.cells][:, shared.genes]
    x.eliminate_zeros()
    return x


def _scan_task(shared: _Shared, block: _Block) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1: ``(detected genes per cell int32, detecting kept cells per gene int64)``."""
    x = _read(shared.blocks, block.start, block.stop)
    checked = _block_anndata(x, block.cell_names, shared.gene_names)
    check_counts(checked, what="the single-cell recipe", rows=range(block.start, block.stop))
    x.eliminate_zeros()  # the values are >= 0: what is stored now is what is detected
    n_detected = np.diff(x.indptr).astype(np.int32)
    min_genes = shared.recipe.min_genes
    kept = x if min_genes is None else x[n_detected >= min_genes]
    gene_cells = np.bincount(kept.indices, minlength=shared.blocks.n_genes)
    return n_detected, gene_cells.astype(np.int64)


def _qc_task(shared: _Shared, block: _Block) -> dict[str, Any]:
    """Pass 2 on the cells kept by ``filter_cells`` and the genes kept by ``filter_genes``."""
    import scanpy as sc

    recipe = shared.recipe
    x = _kept(shared, block)
    annotated = _block_anndata(x)
    annotated.var["mt"] = shared.mito
    obs, _ = sc.pp.calculate_qc_metrics(
        annotated, qc_vars=["mt"], percent_top=None, log1p=False, inplace=False
    )
    qc = {name: obs[name].to_numpy() for name in obs.columns}
    qc["pct_counts_mt"] = np.nan_to_num(qc["pct_counts_mt"], nan=0.0)
    keep = np.ones(x.shape[0], dtype=bool)
    if recipe.max_genes is not None:
        keep &= qc["n_genes_by_counts"] < recipe.max_genes
    if recipe.max_pct_mito is not None:
        keep &= qc["pct_counts_mt"] < recipe.max_pct_mito
    counts = x[keep]
    if recipe.hvg_flavor == "seurat_v3":  # whole counts, as highly_variable_genes checks them
        _check_whole(shared, block, counts, block.cells[keep])
    return {
        "qc": qc,
        "keep": keep,
        "gene_cells": np.bincount(x.indices, minlength=x.shape[1]).astype(np.int64),
        "gene_totals": np.bincount(
            x.indices, weights=x.data.astype(np.float64), minlength=x.shape[1]
        ),
        # normalize_total's per-cell totals (the median target when target_sum is None)
        "totals": np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel().astype(np.float32),
        "moments": _moments_of(counts, recipe.target_sum, shared.wanted),
    }


def _check_whole(shared: _Shared, block: _Block, counts: Any, cells: np.ndarray) -> None:
    """:func:`~._matrix.check_counts` (whole numbers) of ``counts``, the block's ``cells``."""
    checked = _block_anndata(counts, block.cell_names[cells], shared.gene_names[shared.genes])
    check_counts(checked, integer=True, what="flavor 'seurat_v3'", rows=block.start + cells)


def _moments_task(shared: _Shared, block: _Block) -> dict[str, Moments]:
    """Pass 3: per-gene sums over the block's final cells and the kept genes."""
    return _moments_of(_kept(shared, block), shared.target_sum, shared.wanted)


#: The layers the recipe writes itself (an input's layer of that name is replaced).
RECIPE_LAYERS = ("counts",)


@dataclasses.dataclass(frozen=True)
class CarriedRows:
    """An input element the rows tasks carry: its rows of the output cells, these columns.

    Attributes:
        matrix: the element on disk (``obsm``, ``layers``, ``obsp`` entry or ``raw/X``); its
            key is also the output's.
        columns: ``int64`` input columns kept (a layer's: those of the output genes), or
            None for all (an ``obsp`` matrix's columns are selected by the client, which holds
            the output cells' rows).
    """

    matrix: StoredMatrix
    columns: np.ndarray | None = None

    @property
    def key(self) -> str:
        """The element's path in the input and in the output."""
        return self.matrix.key

    def output_shape(self, n_out: int) -> tuple[int, ...]:
        """The output element's shape, ``n_out`` rows (an ``obsm`` array may have more axes)."""
        if self.key.startswith("obsp/"):
            return (n_out, n_out)
        if self.columns is not None:
            return (n_out, len(self.columns))
        return (n_out, *self.matrix.shape[1:])

    def read(self, start: int, rows: np.ndarray) -> Any:
        """The element's ``rows`` (sorted, from input row ``start`` on): dense or CSR."""
        block = self.matrix.read(start, int(rows[-1]) + 1)[rows - start]
        return block if self.columns is None else block[:, self.columns]


@dataclasses.dataclass(frozen=True)
class _RowsPlan:
    """What every rows task (pass 4) needs besides its rows."""

    blocks: CountBlocks
    genes: np.ndarray  #: ``int64`` columns of the kept genes
    output_genes: np.ndarray  #: which of those are output (the HVG, or all)
    target_sum: float
    scale_mean: np.ndarray | None  #: None: no scaling (X stays CSR)
    scale_std: np.ndarray | None
    max_value: float | None
    rank: RankOptions | None = None  #: also rank-encode the rows (medians resolved)
    value_bins: int | None = None  #: also bin the log-normalised rows (scGPT's n_bins)
    bin_seed: int = 0
    carried: tuple[CarriedRows, ...] = ()  #: the input's elements carried by rows
    #: output key (``"X"``, a dense carried element's) -> its Zarr array, written by the tasks
    zarr_arrays: dict[str, str] = dataclasses.field(default_factory=dict)


def _rows_task(
    plan: _RowsPlan,
    rows: np.ndarray,
    first_output_row: int,
    cell_names: np.ndarray,
    obs: Any,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Pass 4: output rows of the input ``rows`` (sorted), named ``cell_names``.

    ``obs``: the rows' ``obs`` columns the rank encoding reads (:func:`rank_obs`), or None.

    Returns ``(raw counts CSR, X rows or None, RankEncoding or None, carried)``: ``carried``
    maps each of ``plan.carried``'s keys to its rows (dense or CSR, as stored), or to None,
    and with ``plan.value_bins`` ``layers/X_binned`` to the rows' bins (``int64`` CSR,
    :func:`~.recipe.binned_csr` of the log-normalised rows, drawn as output cells
    ``first_output_row..``, so they equal the in-memory bins). A key of
    ``plan.zarr_arrays`` (``"X"``, a dense carried element) is written by the task into
    its Zarr array from ``first_output_row`` on, and comes back as None.

    Memory: the input rows ``rows[0]..rows[-1]`` of ``X`` and of each carried element (read
    one element at a time; the selected rows of all of them come back together).
    """
    start = int(rows[0])
    carried: dict[str, Any] = {}
    for element in plan.carried:
        block = element.read(start, rows)
        if element.key in plan.zarr_arrays:
            _write_zarr_rows(plan.zarr_arrays[element.key], first_output_row, block)
            block = None
        carried[element.key] = block
    all_genes = _read(plan.blocks, start, int(rows[-1]) + 1)[rows - start]
    encoding = None if plan.rank is None else plan.rank.encode(all_genes, cell_names, obs)
    x = all_genes[:, plan.genes]
    x.eliminate_zeros()
    counts = x[:, plan.output_genes]
    values = _log_normalized(x, plan.target_sum)[:, plan.output_genes]
    if plan.value_bins is not None:
        carried[f"layers/{BINNED_LAYER}"] = binned_csr(
            values, n_bins=plan.value_bins, seed=plan.bin_seed, first_cell=first_output_row
        )
    if plan.scale_mean is not None:
        values = values.toarray() - plan.scale_mean  # float64, as scanpy's sparse - dense
        np.divide(values, plan.scale_std, out=values)
        if plan.max_value is not None:
            np.clip(values, -plan.max_value, plan.max_value, out=values)
    if "X" not in plan.zarr_arrays:
        return counts, values, encoding, carried
    _write_zarr_rows(plan.zarr_arrays["X"], first_output_row, values)
    return counts, None, encoding, carried


def _write_zarr_rows(path: str, first: int, values: np.ndarray) -> None:
    """Write ``values`` as rows ``first..`` of the Zarr array at ``path`` (whole chunks)."""
    import zarr

    zarr.open_array(path, mode="r+")[first : first + values.shape[0]] = values


# --- the client's side ----------------------------------------------------------------------


@dataclasses.dataclass
class BlockResult:
    """The recipe's outcome on a matrix on disk, everything but the output rows.

    ``skeleton`` is the output AnnData without ``X`` (``obs``, ``var``, ``uns``, ``varm``,
    ``varp``, the ``obsm`` DataFrames and ``raw``'s ``var``/``varm`` final; ``raw.X`` an empty
    CSR placeholder); :func:`write_blocks` streams ``X``, ``layers["counts"]`` and the
    carried elements (``result.plan.carried``: ``obsm`` arrays, layers, ``obsp``, ``raw/X``)
    into a copy of it.
    """

    skeleton: AnnData
    rows: np.ndarray  #: ``(n_out_cells,) int64``: the input row of each output cell
    plan: _RowsPlan
    chunk_cells: int


class _Steps:
    """The recipe's steps as :func:`~.recipe.preprocess` records them (``uns``, log lines)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def __call__(self, name: str, n_cells: int, n_genes: int) -> None:
        """Record a step done; its seconds are those since the previous step."""
        now = time.perf_counter()
        seconds, self.started = now - self.started, now
        self.rows.append({"step": name, "n_cells": n_cells, "n_genes": n_genes, "seconds": seconds})
        log.info("%-22s %9d cells %7d genes %8.2f s", name, n_cells, n_genes, seconds)

    def record(self) -> dict[str, np.ndarray]:
        """``uns["preprocess_steps"]``: equal-length arrays step, n_cells, n_genes, seconds."""
        return {
            key: np.array([row[key] for row in self.rows])
            for key in ("step", "n_cells", "n_genes", "seconds")
        }


def preprocess_blocks(
    blocks: CountBlocks,
    obs: Any,
    var: Any,
    uns: dict,
    recipe: Recipe,
    *,
    chunk_cells: int = DEFAULT_CHUNK_CELLS,
    client: Any = None,
    backend_name: str,
    rank: RankOptions | None = None,
    carried: Carried | None = None,
) -> BlockResult:
    """Run the statistics passes of the recipe on ``blocks``; see the module docstring.

    Args:
        blocks: the input matrix (``n_cells x n_genes`` raw counts).
        obs: the input's ``obs`` (``n_cells`` rows); its columns pass through.
        var: the input's ``var`` (``n_genes`` rows); annotated as :func:`~.readers.read` does.
        uns: the input's ``uns``; passes through.
        recipe: the recipe's parameters.
        chunk_cells: input cells per task.
        client: a :class:`distributed.Client`, or None to run the tasks here.
        backend_name: recorded in ``uns["preprocess_recipe"]["backend"]``.
        rank: also rank-encode the output cells (from their raw counts over all genes) as the
            rows are written; without medians they are computed over those cells first
            (:func:`gene_medians_of_blocks`, exact).
        carried: the input's other elements (:func:`~.blocks.open_carried`), carried as the
            in-memory recipe's AnnData subsetting keeps them: ``obsm`` rows of the output
            cells, ``layers`` (but :data:`RECIPE_LAYERS`) rows of the output cells and columns
            of the output genes, ``obsp`` both axes of the output cells, ``varm`` rows and
            ``varp`` both axes of the output genes, ``raw`` rows of the output cells (all its
            genes, its ``var`` and ``varm``). None: none.

    Returns:
        The :class:`BlockResult` that :func:`write_blocks` writes.

    Raises:
        InputError: a bad value (naming its cell, row and gene), or a step that removes every
            cell or gene.

    Memory: see the module docstring (one block per task; per-cell columns on the client).
    Seconds in ``uns["preprocess_steps"]``: a pass's time goes to the first step it completes
    (the steps it fuses show about 0).
    """
    import anndata

    skeleton = anndata.AnnData(obs=obs, var=var, uns=dict(uns))
    annotate_genes(skeleton)
    if rank is not None:
        rank_obs(skeleton.obs, rank)  # the attribute columns: checked now
    if rank is not None and rank.medians is not None:  # the given medians: checked now
        rank = rank.resolved(var_gene_ids(skeleton, rank.gene_key), compute_medians=None)
    steps = _Steps()
    shared = _Shared(blocks, recipe, gene_names=np.asarray(skeleton.var_names, dtype=object))
    names = np.asarray(skeleton.obs_names, dtype=object)
    spans = block_starts(blocks.n_cells, chunk_cells)
    scans = list(
        map_in_order(
            client,
            _scan_task,
            [(shared, _Block(a, b, cell_names=names[a:b])) for a, b in spans],
            name="scrna-scan",
        )
    )
    n_detected = np.concatenate([scan[0] for scan in scans])
    gene_cells = np.sum([scan[1] for scan in scans], axis=0)
    keep_cells = np.ones(blocks.n_cells, dtype=bool)
    obs_out, var_out = skeleton.obs, skeleton.var
    if recipe.min_genes is not None:
        keep_cells = n_detected >= recipe.min_genes
        obs_out = obs_out.iloc[np.flatnonzero(keep_cells)].copy()
        obs_out["n_genes"] = n_detected[keep_cells]
        _require_cells(
            len(obs_out), blocks.n_genes, f"filter_cells(min_genes={recipe.min_genes})",
            _loosen(["min_genes"]),
        )  # fmt: skip
        steps("filter_cells", len(obs_out), blocks.n_genes)
    genes = np.arange(blocks.n_genes)
    if recipe.min_cells is not None:
        genes = np.flatnonzero(gene_cells >= recipe.min_cells)
        var_out = var_out.iloc[genes].copy()
        var_out["n_cells"] = gene_cells[genes]
        _require_cells(
            len(obs_out), len(genes), f"filter_genes(min_cells={recipe.min_cells})",
            _loosen(["min_cells"]),
        )  # fmt: skip
        steps("filter_genes", len(obs_out), len(genes))
    cells = [_Block(a, b, np.flatnonzero(keep_cells[a:b]), names[a:b]) for a, b in spans]
    cells = [block for block in cells if len(block.cells)]  # scanpy refuses empty matrices
    obs_out, var_out, target_sum, moments, final = _qc_pass(
        client,
        dataclasses.replace(shared, genes=genes),
        cells=cells,
        obs_out=obs_out.copy(),
        var_out=var_out.copy(),
        steps=steps,
    )
    var_out, output_genes, moments = _hvg_pass(
        client,
        dataclasses.replace(shared, genes=genes, target_sum=target_sum),
        final=final,
        var_out=var_out,
        moments=moments,
        n_cells=len(obs_out),
        steps=steps,
    )
    scale_mean, scale_std = _last_steps(
        recipe, moments, output_genes, var_out=var_out, n_cells=len(obs_out), steps=steps
    )
    uns_out = {
        **skeleton.uns,
        "log1p": {"base": None},
        "hvg": {"flavor": recipe.hvg_flavor},
        "preprocess_steps": steps.record(),
        "preprocess_recipe": recipe.record(backend_name),
    }
    if rank is not None and rank.gene_ids is None:  # medians from the encoded output cells
        from .rank import filter_mask

        encoded = _passing(final, filter_mask(skeleton.obs))
        rank = rank.resolved(
            var_gene_ids(skeleton, rank.gene_key),
            lambda columns: gene_medians_of_blocks(
                client, blocks, encoded, columns, target_sum=rank.target_sum
            ),
        )
    rows = np.concatenate([block.start + block.cells for block in final]).astype(np.int64)
    result = anndata.AnnData(obs=obs_out, var=var_out, uns=uns_out)
    plan = _RowsPlan(
        blocks,
        genes,
        output_genes,
        target_sum,
        scale_mean,
        scale_std,
        recipe.scale_max_value,
        rank=rank,
        value_bins=recipe.value_bins,
        bin_seed=recipe.bin_seed,
        carried=_carry(
            result,
            carried or Carried(),
            rows=rows,
            genes=genes[output_genes],
            binned=recipe.value_bins is not None,
        ),
    )
    return BlockResult(result, rows, plan, chunk_cells)


def _last_steps(
    recipe: Recipe,
    moments: dict[str, Moments],
    output_genes: np.ndarray,
    *,
    var_out: Any,
    n_cells: int,
    steps: _Steps,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The steps after the HVG: ``bin_values`` (done by the rows tasks) and ``scale``'s statistics.

    Returns ``(mean, std)`` of the output genes for ``scale`` (also written to ``var_out``),
    or ``(None, None)`` without scaling.
    """
    if recipe.value_bins is not None:
        steps("bin_values", n_cells, len(output_genes))
    if not recipe.scale_data:
        return None, None
    mean, variance = moments["log"].mean_var()
    scale_mean, scale_std = mean[output_genes], np.sqrt(variance[output_genes])
    scale_std[scale_std == 0] = 1
    var_out["mean"] = scale_mean
    var_out["std"] = scale_std
    steps("scale", n_cells, len(output_genes))
    return scale_mean, scale_std


def _carry(
    skeleton: AnnData, carried: Carried, *, rows: np.ndarray, genes: np.ndarray, binned: bool
) -> tuple[CarriedRows, ...]:
    """Put the client's part of ``carried`` into ``skeleton``; the rows tasks' part, returned.

    ``rows``: the input row of each output cell; ``genes``: the input column of each output
    gene. As anndata subsets in memory: ``obsm`` DataFrames by ``rows`` (named as the output
    cells), ``varm`` by ``genes``, ``varp`` by ``genes`` on both axes, ``raw``'s ``var`` and
    ``varm`` whole (with an empty CSR ``raw.X`` of the output's shape, replaced by
    :func:`write_blocks`). The input's layers that the recipe writes (:data:`RECIPE_LAYERS`,
    and ``X_binned`` when ``binned``) are replaced, not carried.
    """
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    for name, frame in carried.obsm_frames.items():
        skeleton.obsm[name] = frame.iloc[rows].set_axis(skeleton.obs_names, axis=0)
    for name, value in carried.varm.items():
        if isinstance(value, pd.DataFrame):
            skeleton.varm[name] = value.iloc[genes].set_axis(skeleton.var_names, axis=0)
        else:
            skeleton.varm[name] = value[genes]
    for name, value in carried.varp.items():
        skeleton.varp[name] = value[genes][:, genes]
    if carried.raw_x is not None:
        empty = sp.csr_matrix((len(rows), carried.raw_x.shape[1]), dtype=carried.raw_x.dtype)
        skeleton.raw = anndata.AnnData(
            X=empty,
            obs=pd.DataFrame(index=skeleton.obs_names),
            var=carried.raw_var,
            varm=carried.raw_varm,
        )
    written = {f"layers/{name}" for name in (*RECIPE_LAYERS, *((BINNED_LAYER,) if binned else ()))}
    return tuple(
        CarriedRows(matrix, genes if matrix.key.startswith("layers/") else None)
        for matrix in carried.by_rows()
        if matrix.key not in written
    )


def _qc_pass(
    client: Any,
    shared: _Shared,
    *,
    cells: list[_Block],
    obs_out: Any,
    var_out: Any,
    steps: _Steps,
) -> tuple[Any, Any, float, dict[str, Moments], list[_Block]]:
    """Pass 2: QC columns, ``filter_qc``, the normalisation target and the first sums.

    Returns ``(obs, var, target_sum, moments, blocks of the final cells)``.
    """
    recipe = shared.recipe
    mito = np.asarray(var_out.index.str.startswith(recipe.mito_prefix), dtype=bool)
    if not mito.any():
        log.warning(
            "no gene name starts with %r: percent_mito is 0 (set the mitochondrial prefix, "
            "e.g. 'mt-' for mouse)",
            recipe.mito_prefix,
        )
    flavor = recipe.hvg_flavor
    wanted = _MomentsWanted(
        log=recipe.scale_data or flavor == "cell_ranger",
        expm1=flavor == "seurat",
        counts=flavor == "seurat_v3",
    )
    shared = dataclasses.replace(shared, mito=mito, wanted=wanted)
    parts = list(
        map_in_order(client, _qc_task, [(shared, block) for block in cells], name="scrna-qc")
    )
    qc = {key: np.concatenate([part["qc"][key] for part in parts]) for key in parts[0]["qc"]}
    n_cells = len(obs_out)
    gene_nnz = np.sum([part["gene_cells"] for part in parts], axis=0)
    gene_total = np.sum([part["gene_totals"] for part in parts], axis=0)
    var_out["mt"] = mito
    var_out["n_cells_by_counts"] = gene_nnz
    var_out["mean_counts"] = gene_total / n_cells
    var_out["pct_dropout_by_counts"] = (1 - gene_nnz / n_cells) * 100
    # scanpy sums the matrix in its own dtype's sum type (float32 stays, int32 becomes int64)
    sum_dtype = np.add.reduce(np.zeros(1, dtype=shared.blocks.dtype)).dtype
    var_out["total_counts"] = gene_total.astype(sum_dtype)
    for name in ("n_genes_by_counts", "total_counts", "total_counts_mt", "pct_counts_mt"):
        obs_out[name] = qc[name]
    obs_out["n_genes"] = qc["n_genes_by_counts"]
    obs_out["n_counts"] = qc["total_counts"]
    obs_out["percent_mito"] = qc["pct_counts_mt"]
    steps("qc_metrics", n_cells, len(var_out))
    obs_out = obs_out.iloc[np.flatnonzero(np.concatenate([part["keep"] for part in parts]))]
    bounds = f"max_genes={recipe.max_genes}, max_pct_mito={recipe.max_pct_mito}"
    _require_cells(
        len(obs_out), len(var_out), f"filter_qc({bounds})", "raise `max_genes` or `max_pct_mito`"
    )
    for name in ("filter_qc", "keep_counts"):
        steps(name, len(obs_out), len(var_out))
    target_sum = recipe.target_sum
    if target_sum is None:  # scanpy's rule: the median total of the cells, over the kept genes
        target_sum = float(np.median(np.concatenate([part["totals"] for part in parts])))
    moments = {
        key: _sum_all([part["moments"][key] for part in parts]) for key in parts[0]["moments"]
    }
    final = [
        dataclasses.replace(block, cells=block.cells[part["keep"]])
        for block, part in zip(cells, parts, strict=True)
        if part["keep"].any()
    ]
    for name in ("normalize_total", "log1p"):
        steps(name, len(obs_out), len(var_out))
    return obs_out, var_out, target_sum, moments, final


def _hvg_pass(
    client: Any,
    shared: _Shared,
    *,
    final: list[_Block],
    var_out: Any,
    moments: dict[str, Moments],
    n_cells: int,
    steps: _Steps,
) -> tuple[Any, np.ndarray, dict[str, Moments]]:
    """Pass 3 when needed, then the HVG columns. Returns ``(var, output genes, moments)``."""
    recipe = shared.recipe
    flavor = recipe.hvg_flavor
    later = _MomentsWanted(
        log=(recipe.scale_data or flavor == "cell_ranger") and "log" not in moments,
        expm1=flavor == "seurat" and "expm1" not in moments,
        clip=_seurat_v3_clip(moments["counts"]) if flavor == "seurat_v3" else None,
    )
    if later.log or later.expm1 or later.clip is not None:
        shared = dataclasses.replace(shared, wanted=later)
        parts = list(
            map_in_order(
                client, _moments_task, [(shared, block) for block in final], name="scrna-moments"
            )
        )
        moments = {**moments, **{key: _sum_all([part[key] for part in parts]) for key in parts[0]}}
    n_top = recipe.n_top_genes
    if n_top is not None and n_top > len(var_out):
        log.info("n_top_genes=%d > %d genes: keeping them all", n_top, len(var_out))
        n_top = len(var_out)
    table = hvg_table(moments, flavor=flavor, n_top_genes=n_top)
    for column in table.columns:
        var_out[column] = table[column].to_numpy()
    output_genes = np.arange(len(var_out))
    if recipe.subset_hvg:
        output_genes = np.flatnonzero(var_out["highly_variable"].to_numpy(dtype=bool))
        var_out = var_out.iloc[output_genes]
    steps(f"hvg ({flavor})", n_cells, len(output_genes))
    return var_out, output_genes, moments


# --- highly variable genes from the per-gene sums -------------------------------------------


def _seurat_v3_clip(counts: Moments) -> np.ndarray:
    """Seurat v3's clip value per gene, ``reg_std * sqrt(n_cells) + mean`` (scanpy's code)."""
    mean, var = counts.mean_var()
    return _reg_std(mean, var) * np.sqrt(counts.n_cells) + mean


def hvg_table(moments: dict[str, Moments], *, flavor: str, n_top_genes: int | None) -> Any:
    """Scanpy's ``highly_variable_genes`` columns, computed from per-gene sums.

    Args:
        moments: ``"expm1"`` (seurat), ``"log"`` (cell_ranger), or ``"counts"`` and
            ``"clipped"`` (seurat_v3) :class:`Moments` of the output cells.
        flavor: ``seurat``, ``cell_ranger`` or ``seurat_v3``.
        n_top_genes: genes to flag (at most the number of genes); None: scanpy's default
            cut-offs (seurat/cell_ranger) or 2,000 (seurat_v3).

    Returns:
        A DataFrame with the columns, order and dtypes scanpy adds to ``var`` (plus
        ``dispersions`` for seurat_v3, as :func:`~.recipe.highly_variable_genes`).
    """
    if flavor == "seurat_v3":
        return _hvg_seurat_v3(moments["counts"], moments["clipped"], n_top_genes or 2000)
    import pandas as pd
    from scanpy.preprocessing._highly_variable_genes import _get_disp_stats, _get_mean_bins

    mean, var = moments["expm1" if flavor == "seurat" else "log"].mean_var()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean[mean == 0] = 1e-12
        dispersion = var / mean
        if flavor == "seurat":
            dispersion[dispersion == 0] = np.nan
            dispersion = np.log(dispersion)
            mean = np.log1p(mean)
    table = pd.DataFrame({"means": mean, "dispersions": dispersion})
    table["mean_bin"] = _get_mean_bins(table["means"], flavor, _hvg_default("n_bins"))
    stats = _get_disp_stats(table, flavor)
    normalized = ((table["dispersions"] - stats["avg"]) / stats["dev"]).to_numpy()
    if n_top_genes is None:
        normalized_0 = np.nan_to_num(normalized)
        selected = (
            (mean > _hvg_default("min_mean"))
            & (mean < _hvg_default("max_mean"))
            & (normalized_0 > _hvg_default("min_disp"))
            & (normalized_0 < _hvg_default("max_disp"))
        )
    else:
        finite = normalized[~np.isnan(normalized)]
        finite[::-1].sort()
        cut = finite[min(n_top_genes, finite.size) - 1]
        selected = np.nan_to_num(normalized, nan=-np.inf) >= cut
    return pd.DataFrame(
        {
            "highly_variable": selected,
            "means": mean,
            "dispersions": dispersion,
            "dispersions_norm": normalized.astype(np.float32),
        }
    )


def _hvg_default(name: str) -> Any:
    import scanpy as sc

    return inspect.signature(sc.pp.highly_variable_genes).parameters[name].default


def _hvg_seurat_v3(counts: Moments, clipped: Moments, n_top_genes: int) -> Any:
    """Scanpy's ``_highly_variable_genes_seurat_v3`` (one batch) from the sums."""
    import pandas as pd

    mean, var = counts.mean_var()
    n = counts.n_cells
    reg_std = _reg_std(mean, var)
    norm_var = (1 / ((n - 1) * np.square(reg_std))) * (
        (n * np.square(mean)) + clipped.squares - 2 * clipped.total * mean
    )
    ranks = np.argsort(np.argsort(-norm_var)).astype(np.float32)
    n_batches = (ranks < n_top_genes).astype(int)
    ranks[ranks >= n_top_genes] = np.nan
    table = pd.DataFrame({"rank": ranks, "nbatches": n_batches})
    order = table.sort_values(
        ["rank", "nbatches"], ascending=[True, False], na_position="last"
    ).index
    selected = np.zeros(len(mean), dtype=bool)
    selected[order[:n_top_genes]] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersions = np.where(mean > 0, var / mean, 0.0)
    return pd.DataFrame(
        {
            "highly_variable": selected,
            "highly_variable_rank": ranks,
            "means": mean,
            "variances": var,
            "variances_norm": norm_var.astype(np.float64),
            "dispersions": dispersions,
        }
    )


def _reg_std(mean: np.ndarray, var: np.ndarray, span: float = 0.3) -> np.ndarray:
    """The loess fit of log10 variance on log10 mean (degree 2), as a standard deviation."""
    from skmisc.loess import loess

    not_const = var > 0
    estimated = np.zeros(len(mean), dtype=np.float64)
    model = loess(np.log10(mean[not_const]), np.log10(var[not_const]), span=span, degree=2)
    model.fit()
    estimated[not_const] = model.outputs.fitted_values
    return np.sqrt(10**estimated)


# --- Geneformer rank encoding out of core ----------------------------------------------------

#: The median passes' buckets: 2**5 per power of two, over the 40 powers of two up to
#: ``target_sum`` (a normalised value is at most ``target_sum``; smaller ones share bucket 0).
_BUCKET_BITS = 5
N_MEDIAN_BUCKETS = (40 << _BUCKET_BITS) + 1


@dataclasses.dataclass(frozen=True)
class RankOptions:
    """The Geneformer encoding the ``scrna`` job writes beside the recipe's output.

    The parameters of :func:`~.rank.rank_encode` (``medians``, ``tokens`` and ``gene_mapping``
    as dicts; None: from the data), with ``n_tokens``/``special_tokens`` already resolved from
    the model version (:meth:`of`). In memory the job calls :meth:`encode_anndata`; out of
    core :meth:`resolved` fixes the genes, medians and tokens on the client and each rows task
    calls :meth:`encode`. The cells' totals are always their totals over all genes of the
    input (the recipe's ``obs["n_counts"]`` is over the kept genes); ``obs["filter_pass"]``
    of the input applies.
    """

    n_tokens: int = 4096
    special_tokens: bool = True
    medians: dict[str, float] | None = None
    tokens: dict[str, int] | None = None
    gene_mapping: dict[str, str] | None = None
    ties: str = "geneformer"
    target_sum: float = 10_000
    gene_key: str | None = None  #: the ``var`` column of gene ids (``var_gene_ids``'s rule)
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)  #: obs col -> name
    gene_ids: np.ndarray | None = None  #: every input column's id (set by :meth:`resolved`)

    @classmethod
    def of(
        cls,
        *,
        model_version: int | str,
        n_tokens: int | None,
        special_tokens: bool | None,
        **options: Any,
    ) -> RankOptions:
        """The options of a model version (:func:`~.rank.model_settings`), checked."""
        from .rank import TIES, attribute_names, model_settings

        n_tokens, special_tokens = model_settings(
            model_version, n_tokens=n_tokens, special_tokens=special_tokens
        )
        check_choice("ties", options.get("ties", "geneformer"), TIES)
        options["attributes"] = attribute_names(options.get("attributes"))
        return cls(n_tokens=n_tokens, special_tokens=special_tokens, **options)

    def obs_columns(self) -> list[str]:
        """The ``obs`` columns the encoding reads: ``filter_pass`` and the attributes."""
        from .rank import FILTER_KEY

        return [FILTER_KEY, *(c for c in self.attributes if c != FILTER_KEY)]

    def resolved(self, gene_ids: np.ndarray, compute_medians: Any) -> RankOptions:
        """The options with the gene ids, the medians and the tokens fixed.

        ``compute_medians(columns)`` (a :class:`~.rank.GeneColumns`) gives the medians when
        none were given (it is not called otherwise). Given medians are checked as
        :func:`~.rank.rank_encode` checks them.

        Raises:
            InputError: a gene with a token but no given median, or no ``<cls>``/``<eos>`` in
                the dictionary under special tokens.
        """
        from .rank import (
            _token_ids,
            gene_columns,
            refuse_tokens_without_median,
            token_of_gene_ids,
            usable_genes,
        )

        columns = gene_columns(gene_ids, gene_mapping=self.gene_mapping, tokens=self.tokens)
        tokens, _, _ = _token_ids(columns.ids, self.tokens, special_tokens=self.special_tokens)
        from_data = self.medians is None
        medians = compute_medians(columns) if from_data else self.medians
        if not from_data:  # as rank_encode does, once here rather than in every rows task
            refuse_tokens_without_median(columns.ids, tokens, medians)
        median_of_gene = np.array([medians.get(g, np.nan) for g in columns.ids], dtype=float)
        usable_genes(columns, median_of_gene, token_of_gene_ids(columns.ids, tokens))  # logs
        return dataclasses.replace(self, medians=medians, tokens=tokens, gene_ids=gene_ids)

    def encode_anndata(
        self, adata: Any, *, gene_key: str | None, device: str | None, check: bool = True
    ) -> Any:
        """:func:`~.rank.rank_encode` of ``adata`` with these options.

        ``check=False``: a gene with a token but no given median is left out (the check was
        made once, by :meth:`resolved`).
        """
        from .rank import FILTER_KEY, rank_encode

        return rank_encode(
            adata,
            n_tokens=self.n_tokens,
            special_tokens=self.special_tokens,
            gene_medians=self.medians,
            token_dictionary=self.tokens,
            gene_mapping=self.gene_mapping,
            gene_key=gene_key,
            counts_key=None,
            filter_key=FILTER_KEY,
            ties=self.ties,
            target_sum=self.target_sum,
            missing_medians="raise" if check else "drop",
            attributes=self.attributes,
            device=device,
        )

    def encode(self, counts: Any, cell_names: np.ndarray, obs: Any) -> Any:
        """The encoding of the CSR ``counts`` (cells x all genes), on the host (a rows task).

        ``obs``: the cells' :meth:`obs_columns` that the input has (a DataFrame), or None.
        """
        cells = _block_anndata(counts, cell_names, var={"gene_ids": self.gene_ids})
        if obs is not None:
            for column in obs.columns:
                cells.obs[column] = obs[column].to_numpy()
        quiet, log.disabled = log.disabled, True  # the client said once what is left out
        try:
            return self.encode_anndata(cells, gene_key=None, device="cpu", check=False).to_host()
        finally:
            log.disabled = quiet


def rank_obs(obs: Any, rank: RankOptions) -> Any:
    """The columns of ``obs`` the rows tasks' encodings read (a DataFrame), or None.

    Raises:
        InputError: an attribute column that ``obs`` lacks.
    """
    from .rank import require_obs_columns

    require_obs_columns(
        obs, rank.attributes, parameter="`rank_attributes`", where="the input's obs"
    )
    columns = [column for column in rank.obs_columns() if column in obs.columns]
    return obs[columns].reset_index(drop=True) if columns else None


def _passing(blocks: list[_Block], passes: np.ndarray | None) -> list[_Block]:
    """The blocks with only the cells that ``passes`` (by input row; None: every cell)."""
    if passes is None:
        return blocks
    return [dataclasses.replace(b, cells=b.cells[passes[b.start + b.cells]]) for b in blocks]


def _median_bucket(values: np.ndarray, target_sum: float) -> np.ndarray:
    """``int64`` bucket of each positive float64 value, ascending with the value."""
    shift = 52 - _BUCKET_BITS  # the bits of a positive float64 are monotone in it
    top = int(np.array([target_sum], dtype=np.float64).view(np.int64)[0] >> shift)
    keys = values.view(np.int64) >> shift
    return np.clip(keys - (top - (N_MEDIAN_BUCKETS - 1)), 0, N_MEDIAN_BUCKETS - 1)


def _normalised(
    blocks: CountBlocks, block: _Block, target_sum: float, columns: Any
) -> tuple[Any, Any]:
    """``(gene, count / cell total * target_sum)`` of the block's cells' positive entries.

    Genes as :class:`~.rank.GeneColumns` number them; float64, as
    :func:`~.rank.compute_gene_medians` computes.
    """
    from .rank import _count_entries

    cells = _block_anndata(_read(blocks, block.start, block.stop)[block.cells])
    entries = _count_entries("cpu", cells, None, columns, "rank_encode")
    values = entries.counts.astype(np.float64) / entries.totals[entries.row] * target_sum
    return entries.gene, values


def _median_histogram_task(
    blocks: CountBlocks, block: _Block, target_sum: float, columns: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Median pass 1: ``(gene * N_MEDIAN_BUCKETS + bucket, entries)`` of the block, sparse."""
    gene, values = _normalised(blocks, block, target_sum, columns)
    keys = gene * N_MEDIAN_BUCKETS + _median_bucket(values, target_sum)
    return np.unique(keys, return_counts=True)


def _median_values_task(
    blocks: CountBlocks, block: _Block, target_sum: float, columns: Any, buckets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median pass 2: ``(gene int32, value)`` of the entries in their gene's median buckets."""
    gene, values = _normalised(blocks, block, target_sum, columns)
    bucket = _median_bucket(values, target_sum)
    wanted = (bucket == buckets[gene, 0]) | (bucket == buckets[gene, 1])
    return gene[wanted].astype(np.int32), values[wanted]


def gene_medians_of_blocks(
    client: Any,
    blocks: CountBlocks,
    final: list[_Block],
    columns: Any,
    *,
    target_sum: float = 10_000,
) -> dict[str, float]:
    """Geneformer's gene medians over the cells of ``final``, exact, in two passes.

    The same numbers as :func:`~.rank.compute_gene_medians` of those cells in memory (each
    gene's median of ``count / cell total * target_sum`` over its positive entries, genes as
    ``columns`` (:class:`~.rank.GeneColumns`) number them; the mean of the two middle values
    for an even count). Pass 1 counts each gene's values per bucket (32 per power of two); the
    buckets that hold the middle ranks follow; pass 2 gathers the values in those buckets only
    and the client picks the middle ones.

    Memory: on the client, ``n_genes x N_MEDIAN_BUCKETS`` int64 counts (twice, 20 MB per
    1,000 genes) and the gathered values (12 bytes each; about 1-3% of the stored entries);
    per task one block.
    """
    n_genes = columns.n_genes
    histogram = np.zeros(n_genes * N_MEDIAN_BUCKETS, dtype=np.int64)
    for keys, counts in map_in_order(
        client,
        _median_histogram_task,
        [(blocks, block, target_sum, columns) for block in final],
        name="scrna-median-histogram",
    ):
        histogram[keys] += counts
    histogram = histogram.reshape(n_genes, N_MEDIAN_BUCKETS)
    n_values = histogram.sum(axis=1)
    ranks = np.stack([(n_values - 1) // 2, n_values // 2], axis=1)  # the middle ranks
    cumulative = np.cumsum(histogram, axis=1)
    buckets = np.stack([np.argmax(cumulative > ranks[:, [i]], axis=1) for i in range(2)], axis=1)
    genes = np.arange(n_genes)
    below = cumulative[genes, buckets[:, 0]] - histogram[genes, buckets[:, 0]]
    del histogram, cumulative
    parts = list(
        map_in_order(
            client,
            _median_values_task,
            [(blocks, block, target_sum, columns, buckets) for block in final],
            name="scrna-median-values",
        )
    )
    gene = np.concatenate([part[0] for part in parts])
    values = np.concatenate([part[1] for part in parts])
    del parts
    order = np.lexsort((values, gene))
    values = values[order]
    starts = np.cumsum(np.bincount(gene, minlength=n_genes)) - np.bincount(gene, minlength=n_genes)
    medians = np.full(n_genes, np.nan)
    has = n_values > 0
    lower = starts[has] + ranks[has, 0] - below[has]
    upper = starts[has] + ranks[has, 1] - below[has]
    medians[has] = (values[lower] + values[upper]) / 2.0
    from .rank import medians_by_gene

    return medians_by_gene(columns.ids, medians)


# --- writing ----------------------------------------------------------------------------------


def write_blocks(
    result: BlockResult, output_path: str | Path, *, client: Any = None, ranks: Any = None
) -> None:
    """Write the output AnnData (``.h5ad`` or ``.zarr``) of :func:`preprocess_blocks`.

    The skeleton (``obs``, ``var``, ``uns``, ``varm``, ``varp``, ``obsm`` DataFrames, ``raw``'s
    ``var``/``varm``) is written by anndata first; then the rows tasks (pass 4) stream ``X``
    (dense float64 when scaled, else CSR float32), ``layers["counts"]`` (CSR) and the carried
    elements (``obsm`` arrays, the input's other layers, ``obsp``, ``raw/X``; dense or CSR and
    dtype as stored) in chunks of whole output rows: the client appends the CSR blocks (and,
    for ``.h5ad``, the dense rows) in order; for ``.zarr`` the tasks write the chunks of ``X``
    and of the dense carried elements themselves (a dense ``obsp``'s columns are selected by
    the client, which writes it). Written to a temporary path, renamed into place once
    complete. With ``result.plan.rank`` every task also rank-encodes its cells, appended in
    order to ``ranks`` (a :class:`~.rank.RankWriter`).

    Memory: the client holds a window of tasks' results (twice the workers), each at most
    ``chunk_cells`` output rows of ``X`` and of every carried element (an ``obsp`` block
    with the input's columns until the client selects the output cells').
    """
    output_path = Path(output_path)
    is_zarr = output_path.name.lower().endswith(".zarr")
    skeleton = result.skeleton
    n_out, n_genes = skeleton.n_obs, skeleton.n_vars
    dense = result.plan.scale_mean is not None
    chunk_rows = max(1, min(result.chunk_cells, n_out, OUTPUT_CHUNK_BYTES // (8 * n_genes)))
    task_rows = whole_chunks(result.chunk_cells, chunk_rows)
    with appended_to(output_path, skeleton) as (root, tmp):
        if skeleton.raw is not None:  # the placeholder: raw/X is streamed
            del root["raw/X"]
        arrays = _dense_arrays(root, result.plan, n_out, chunk_rows, dense=dense, is_zarr=is_zarr)
        plan = result.plan
        if is_zarr:  # the tasks write these (whole chunks each); the client the rest
            written = {key for key in arrays if not key.startswith("obsp/")}
            plan = dataclasses.replace(
                plan, zarr_arrays={key: str(Path(tmp) / key) for key in written}
            )
        names = np.asarray(skeleton.obs_names, dtype=object)
        columns = None if plan.rank is None else rank_obs(skeleton.obs, plan.rank)
        tasks = [
            (
                plan,
                result.rows[first : first + task_rows],
                first,
                names[first:][:task_rows],
                None if columns is None else columns.iloc[first : first + task_rows],
            )
            for first in range(0, n_out, task_rows)
        ]
        appended: set[str] = set()
        for (_, _, first, _, _), (counts, values, encoding, carried) in zip(
            tasks, map_in_order(client, _rows_task, tasks, name="scrna-rows"), strict=True
        ):
            if encoding is not None:
                ranks.append(encoding)
            _append_csr(root, "layers/counts", counts, appended)
            for key, block in {"X": values, **carried}.items():
                if block is not None:  # else written by the task
                    _write_rows(
                        root, key, block, first, arrays=arrays, appended=appended,
                        rows=result.rows,
                    )  # fmt: skip


@contextlib.contextmanager
def appended_to(output_path: Path, skeleton: AnnData) -> Iterator[tuple[Any, Path]]:
    """Write ``skeleton`` as ``output_path`` (``.h5ad`` or ``.zarr``) and open it to append to.

    Yields ``(root, tmp)``: the open root group (h5py or zarr) of the temporary path ``tmp``
    the output is written to; when the block ends the file is closed (a Zarr store's metadata
    consolidated) and renamed into place, or removed if the block fails.
    """
    from ...io.store import atomic_output

    is_zarr = output_path.name.lower().endswith(".zarr")
    with atomic_output(output_path, directory=is_zarr) as tmp:
        with warnings.catch_warnings():  # anndata's notice about its default Zarr format
            warnings.filterwarnings("ignore", message="Writing zarr v2 data")
            if is_zarr:
                skeleton.write_zarr(tmp)
            else:
                skeleton.write_h5ad(tmp)
        root = _open_for_append(tmp, is_zarr=is_zarr)
        try:
            yield root, tmp
        finally:
            if not is_zarr:
                root.close()
        if is_zarr:
            import zarr

            zarr.consolidate_metadata(str(tmp))


def _dense_arrays(
    root: Any, plan: _RowsPlan, n_out: int, chunk_rows: int, *, dense: bool, is_zarr: bool
) -> dict[str, Any]:
    """Create the output's dense arrays: ``X`` when ``dense``, and the dense carried elements.

    Returns them by output key; ``chunk_rows`` rows per chunk (a task's rows are whole chunks).
    """
    n_genes = len(plan.output_genes)
    arrays: dict[str, Any] = {}
    if dense:
        arrays["X"] = _create_dense(
            root, "X", (n_out, n_genes), "float64", chunk_rows, is_zarr=is_zarr
        )
    for element in plan.carried:
        if element.matrix.encoding == "array":
            arrays[element.key] = _create_dense(
                root, element.key, element.output_shape(n_out), element.matrix.dtype,
                chunk_rows, is_zarr=is_zarr,
            )  # fmt: skip
    return arrays


def _write_rows(
    root: Any,
    key: str,
    block: Any,
    first: int,
    *,
    arrays: dict[str, Any],
    appended: set[str],
    rows: np.ndarray,
) -> None:
    """Write a task's ``block`` of element ``key`` as output rows ``first..``, dense or CSR.

    An ``obsp`` block's columns are those of the input cells: the output cells' (``rows``,
    the input row of each) are kept first.
    """
    if key.startswith("obsp/"):
        block = block[:, rows]
    if key in arrays:
        arrays[key][first : first + block.shape[0]] = block
    else:
        _append_csr(root, key, block, appended)


def _create_dense(
    root: Any,
    key: str,
    shape: tuple[int, ...],
    dtype: str,
    chunk_rows: int,
    *,
    is_zarr: bool,
) -> Any:
    """An empty dense array element ``key`` (anndata's encoding), chunks of ``chunk_rows`` rows.

    Each chunk holds whole rows (all of the other axes).
    """
    group, _, name = key.rpartition("/")
    parent = root[group] if group else root
    if is_zarr:
        chunks = (chunk_rows, *(max(1, n) for n in shape[1:]))
        array = parent.create_array(name, shape=shape, chunks=chunks, dtype=dtype)
    else:
        chunks = (chunk_rows, *shape[1:]) if all(shape[1:]) else None
        array = parent.create_dataset(name, shape=shape, chunks=chunks, dtype=dtype)
    array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return array


def _open_for_append(path: Path, *, is_zarr: bool) -> Any:
    if is_zarr:
        import zarr

        return zarr.open_group(str(path), mode="r+", use_consolidated=False)
    import h5py

    return h5py.File(path, "r+")


def _append_csr(root: Any, key: str, block: Any, appended: set[str]) -> None:
    """Write ``block`` as the first rows of the CSR element ``key``, or append it there."""
    from anndata.io import sparse_dataset, write_elem

    group, _, name = key.rpartition("/")
    parent = root[group] if group else root
    if key in appended:
        sparse_dataset(parent[name]).append(block)
    else:
        write_elem(parent, name, block)
        appended.add(key)

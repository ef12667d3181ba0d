"""The scRNA-seq recipe on AnnData, one verb per function: scanpy (CPU), rapids-singlecell (GPU).

Every verb works on an :class:`anndata.AnnData` of shape ``(n_cells, n_genes)`` (``X`` sparse
CSR/CSC or dense, float or integer counts), as scanpy's do: in place, returning None, or with
``copy=True`` on a copy that it returns (the whole AnnData copied on the host first). Each takes
``device="auto"|"gpu"|"cpu"`` and keeps scanpy's column names, adding these:

* ``obs``: ``n_genes`` (detected genes), ``n_counts`` (total counts), ``percent_mito`` (percent
  of counts in genes whose name starts with ``mito_prefix``);
* ``var``: ``gene_ids``, ``gene_symbols``, ``highly_variable``, ``mean_counts``,
  ``dispersions``; raw counts are kept in ``layers["counts"]`` by :func:`preprocess`.

:func:`preprocess` runs the whole recipe (``docs/singlecell.md#recipe``) with every threshold a
parameter; on the GPU it moves the matrix there once and back once.

Tolerance between devices: rapids-singlecell computes in float32 like scanpy, but sums in a
different order, so GPU values equal the CPU's to a relative 1e-5 (counts-derived QC columns
exactly); gene *selection* can differ only where two genes' normalised dispersions tie within
that tolerance at the ``n_top_genes`` cut.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ...device import Device, array_module_of, is_gpu_array
from ...errors import InputError, check_choice, check_seed, invalid
from ...io.provenance import version
from ._backend import on_device, rapids, resolve_backend
from ._matrix import check_counts, row_of_entries
from .binning import check_n_bins

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger("gpu_genomics")

HVG_FLAVORS = ("seurat", "cell_ranger", "seurat_v3")
HvgFlavor = Literal["seurat", "cell_ranger", "seurat_v3"]
MITO_PREFIX = "MT-"


# --- checks ---------------------------------------------------------------------------------


def _require_cells(n_cells: int, n_genes: int, step: str, fix: str) -> None:
    """The one-line error of a step that left no cell or no gene (``fix`` says what to do)."""
    if n_cells == 0:
        raise InputError(f"{step} removed every cell; {fix}")
    if n_genes == 0:
        raise InputError(f"{step} removed every gene; {fix}")


# --- per-axis statistics (the GPU filters; tested against scanpy on the CPU) ----------------


def axis_statistics(x: Any, axis: int) -> tuple[Any, Any]:
    """Count the positive values and sum the values of each row or column of ``x``.

    As scanpy's ``filter_cells`` and ``filter_genes`` compute them: ``(X > 0).sum(axis)`` and
    ``X.sum(axis)``; explicit zeros are not counted.

    Args:
        x: SciPy/cupyx CSR or CSC matrix, or NumPy/CuPy 2-D array.
        axis: 1 for one figure per row (cell), 0 for one per column (gene).

    Returns:
        ``(counts, sums)``: 1-D ``int64`` and ``float64`` arrays on ``x``'s device.
    """
    xp = array_module_of(x)
    if not hasattr(x, "indptr"):
        return (x > 0).sum(axis=axis, dtype=xp.int64), x.sum(axis=axis, dtype=xp.float64)
    data = x.data.astype(xp.float64)
    positive = (data > 0).astype(xp.float64)
    if (axis == 1) == (x.format == "csr"):  # one value per compressed row (CSR) / column (CSC)
        n_major = len(x.indptr) - 1
        ids = row_of_entries(xp, x.indptr)
    else:
        n_major = x.shape[1] if x.format == "csr" else x.shape[0]
        ids = x.indices
    n_positive = xp.bincount(ids, weights=positive, minlength=n_major).astype(xp.int64)
    return n_positive, xp.bincount(ids, weights=data, minlength=n_major)


def _threshold_mask(values: Any, low: float | None, high: float | None) -> np.ndarray:
    keep = np.ones(len(values), dtype=bool)
    host = values.get() if is_gpu_array(values) else np.asarray(values)
    if low is not None:
        keep &= host >= low
    if high is not None:
        keep &= host <= high
    return keep


# --- the verbs ------------------------------------------------------------------------------


def _apply(
    adata: AnnData, *, copy: bool, device: str | None, run: Callable[[AnnData, Device], None]
) -> AnnData | None:
    """Run ``run(target, backend)`` on ``adata`` (or its copy) on the backend of ``device``.

    The backend is resolved first, so an unusable ``device`` fails before anything is copied;
    the matrix is moved to the GPU and back once around ``run``.
    """
    backend = resolve_backend(device)
    target = adata.copy() if copy else adata
    with on_device(target, backend):
        run(target, backend)
    return target if copy else None


def annotate_genes(adata: AnnData, *, copy: bool = False) -> AnnData | None:
    """Add ``var["gene_ids"]`` and ``var["gene_symbols"]`` when absent; make gene names unique.

    ``gene_symbols`` comes from ``var["feature_name"]``, ``"gene_name"`` or ``"symbol"`` when
    present, else from ``var_names``; ``gene_ids`` from ``var_names``. Duplicate gene names get
    ``-1``, ``-2``, ... appended (``var_names_make_unique``), with one warning, after their
    original names are kept as ``gene_symbols``.

    Args:
        adata: any AnnData; only ``var`` and ``var_names`` change.
        copy: work on a copy of ``adata`` and return it.

    Returns:
        None, or the annotated copy with ``copy=True``.
    """
    adata = adata.copy() if copy else adata
    if not adata.var_names.is_unique:
        duplicated = adata.var_names[adata.var_names.duplicated()]
        log.warning(
            "%d duplicate gene names (first: %r) made unique by appending -1, -2, ...",
            len(duplicated),
            duplicated[0],
        )
        if "gene_symbols" not in adata.var:
            adata.var["gene_symbols"] = adata.var_names.astype(str)
        adata.var_names_make_unique()
    if "gene_ids" not in adata.var:
        adata.var["gene_ids"] = adata.var_names.astype(str)
    if "gene_symbols" not in adata.var:
        for column in ("feature_name", "gene_name", "symbol"):
            if column in adata.var:
                adata.var["gene_symbols"] = adata.var[column].astype(str)
                break
        else:
            adata.var["gene_symbols"] = adata.var_names.astype(str)
    return adata if copy else None


def qc_metrics(
    adata: AnnData,
    *,
    mito_prefix: str = MITO_PREFIX,
    layer: str | None = None,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Add per-cell and per-gene QC columns, mitochondrial genes included.

    As ``sc.pp.calculate_qc_metrics(qc_vars=["mt"], percent_top=None, log1p=False)``, plus
    ``obs`` ``n_genes``, ``n_counts`` and ``percent_mito`` (``pct_counts_mt`` with 0 for a
    cell without counts).

    Args:
        adata: ``(n_cells, n_genes)`` counts.
        mito_prefix: ``var["mt"]`` marks genes whose name starts with it (case-sensitive;
            ``"MT-"`` for human, ``"mt-"`` for mouse). Without any such gene a warning is
            logged and ``percent_mito`` is 0.
        layer: compute from ``adata.layers[layer]`` instead of ``X``.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the processed copy with ``copy=True``.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _qc_metrics(target, backend, mito_prefix, layer),
    )


def _qc_metrics(adata: AnnData, backend: Device, mito_prefix: str, layer: str | None) -> None:
    adata.var["mt"] = np.asarray(adata.var_names.str.startswith(mito_prefix), dtype=bool)
    if not adata.var["mt"].any():
        log.warning(
            "no gene name starts with %r: percent_mito is 0 (set the mitochondrial prefix, "
            "e.g. 'mt-' for mouse)",
            mito_prefix,
        )
    if backend == "gpu":
        rapids().pp.calculate_qc_metrics(adata, qc_vars=["mt"], log1p=False, layer=layer)
    else:
        import scanpy as sc

        sc.pp.calculate_qc_metrics(
            adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True, layer=layer
        )
    obs = adata.obs
    obs["n_genes"] = obs["n_genes_by_counts"].to_numpy()
    obs["n_counts"] = obs["total_counts"].to_numpy()
    obs["percent_mito"] = np.nan_to_num(obs["pct_counts_mt"].to_numpy(), nan=0.0)
    obs["pct_counts_mt"] = obs["percent_mito"].to_numpy()


def filter_cells(
    adata: AnnData,
    *,
    min_genes: int | None = None,
    min_counts: float | None = None,
    max_genes: int | None = None,
    max_counts: float | None = None,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Keep the cells whose detected genes and total counts lie within the given bounds.

    As ``sc.pp.filter_cells``: bounds inclusive, each given bound applied, ``None`` skips one;
    ``obs["n_genes"]``/``obs["n_counts"]`` hold the figures of the bounds used.

    Args:
        adata: ``(n_cells, n_genes)`` counts.
        min_genes: the fewest genes detected (count > 0) in a kept cell.
        min_counts: the smallest total count of a kept cell.
        max_genes: the most genes detected in a kept cell.
        max_counts: the largest total count of a kept cell.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the filtered copy with ``copy=True``.

    Raises:
        InputError: no cell is left.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _filter(
            target,
            backend,
            "cells",
            min_detected=min_genes,
            min_counts=min_counts,
            max_detected=max_genes,
            max_counts=max_counts,
        ),
    )


def filter_genes(
    adata: AnnData,
    *,
    min_cells: int | None = None,
    min_counts: float | None = None,
    max_cells: int | None = None,
    max_counts: float | None = None,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Keep the genes whose detecting cells and total counts lie within the given bounds.

    As ``sc.pp.filter_genes``: bounds inclusive, each given bound applied, ``None`` skips one;
    ``var["n_cells"]``/``var["n_counts"]`` hold the figures of the bounds used.

    Args:
        adata: ``(n_cells, n_genes)`` counts.
        min_cells: the fewest cells a kept gene is detected in (count > 0).
        min_counts: the smallest total count of a kept gene.
        max_cells: the most cells a kept gene is detected in.
        max_counts: the largest total count of a kept gene.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the filtered copy with ``copy=True``.

    Raises:
        InputError: no gene is left.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _filter(
            target,
            backend,
            "genes",
            min_detected=min_cells,
            min_counts=min_counts,
            max_detected=max_cells,
            max_counts=max_counts,
        ),
    )


def _filter(
    adata: AnnData,
    backend: Device,
    what: Literal["cells", "genes"],
    *,
    min_detected: float | None = None,
    min_counts: float | None = None,
    max_detected: float | None = None,
    max_counts: float | None = None,
) -> None:
    detected_name = "genes" if what == "cells" else "cells"
    bounds = {
        f"min_{detected_name}": min_detected,
        "min_counts": min_counts,
        f"max_{detected_name}": max_detected,
        "max_counts": max_counts,
    }
    given = {name: value for name, value in bounds.items() if value is not None}
    if backend == "cpu":
        import scanpy as sc

        verb = sc.pp.filter_cells if what == "cells" else sc.pp.filter_genes
        for name, value in given.items():  # scanpy takes one bound per call
            verb(adata, **{name: value})
            _require_cells(
                adata.n_obs, adata.n_vars, f"filter_{what}({name}={value})", _loosen([name])
            )
        return
    n_detected, totals = axis_statistics(adata.X, axis=1 if what == "cells" else 0)
    keep = _threshold_mask(n_detected, min_detected, max_detected) & _threshold_mask(
        totals, min_counts, max_counts
    )
    frame = adata.obs if what == "cells" else adata.var
    if min_detected is not None or max_detected is not None:
        frame[f"n_{detected_name}"] = n_detected.get()
    if min_counts is not None or max_counts is not None:
        frame["n_counts"] = totals.get().astype(np.float32)
    if what == "cells":
        adata._inplace_subset_obs(keep)
    else:
        adata._inplace_subset_var(keep)
    described = ", ".join(f"{name}={value}" for name, value in given.items())
    _require_cells(adata.n_obs, adata.n_vars, f"filter_{what}({described})", _loosen(list(given)))


def _loosen(bounds: list[str]) -> str:
    """How to keep more cells: ``"lower `min_genes`, raise `max_counts`"``."""
    return ", ".join(f"{'raise' if b.startswith('max') else 'lower'} `{b}`" for b in bounds)


def filter_qc(
    adata: AnnData,
    *,
    max_genes: int | None = 2500,
    max_pct_mito: float | None = 5.0,
    mito_prefix: str = MITO_PREFIX,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Keep the cells with fewer detected genes and a smaller mitochondrial share than given.

    Bounds strict, as in the recipe (``docs/singlecell.md#recipe``): ``n_genes_by_counts <
    max_genes`` and ``pct_counts_mt < max_pct_mito``; :func:`qc_metrics` runs first when
    those columns are absent.

    Args:
        adata: ``(n_cells, n_genes)`` counts.
        max_genes: keep cells with fewer detected genes (``None``: no bound).
        max_pct_mito: keep cells with a smaller percent of mitochondrial counts (``None``: no
            bound).
        mito_prefix: the mitochondrial gene prefix, when :func:`qc_metrics` runs.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the filtered copy with ``copy=True``.

    Raises:
        InputError: no cell is left.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _filter_qc(
            target, backend, max_genes, max_pct_mito, mito_prefix
        ),
    )


def _filter_qc(
    adata: AnnData,
    backend: Device,
    max_genes: int | None,
    max_pct_mito: float | None,
    mito_prefix: str,
) -> None:
    if "n_genes_by_counts" not in adata.obs or "pct_counts_mt" not in adata.obs:
        _qc_metrics(adata, backend, mito_prefix, None)
    keep = np.ones(adata.n_obs, dtype=bool)
    if max_genes is not None:
        keep &= adata.obs["n_genes_by_counts"].to_numpy() < max_genes
    if max_pct_mito is not None:
        keep &= adata.obs["pct_counts_mt"].to_numpy() < max_pct_mito
    adata._inplace_subset_obs(keep)
    _require_cells(
        adata.n_obs,
        adata.n_vars,
        f"filter_qc(max_genes={max_genes}, max_pct_mito={max_pct_mito})",
        "raise `max_genes` or `max_pct_mito`",
    )


def normalize_total(
    adata: AnnData,
    *,
    target_sum: float | None = 1e4,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Scale each cell's counts to ``target_sum`` in total (``sc.pp.normalize_total``).

    Args:
        adata: ``(n_cells, n_genes)`` counts; ``X`` is replaced by float values.
        target_sum: each cell's total afterwards; ``None``: the median of the cells' totals
            before normalisation (scanpy's rule).
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the normalised copy with ``copy=True``.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _pp(backend).normalize_total(target, target_sum=target_sum),
    )


def log1p(adata: AnnData, *, copy: bool = False, device: str | None = None) -> AnnData | None:
    """Replace ``X`` by ``log(1 + X)`` (``sc.pp.log1p``, natural logarithm).

    Args:
        adata: ``(n_cells, n_genes)`` non-negative values, usually normalised counts.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the transformed copy with ``copy=True``.
    """
    return _apply(
        adata, copy=copy, device=device, run=lambda target, backend: _pp(backend).log1p(target)
    )


def highly_variable_genes(
    adata: AnnData,
    *,
    n_top_genes: int | None = 2000,
    flavor: HvgFlavor = "seurat",
    layer: str | None = None,
    subset: bool = False,
    copy: bool = False,
    device: str | None = None,
    **options: Any,
) -> AnnData | None:
    """Mark ``var["highly_variable"]`` (``sc.pp.highly_variable_genes``).

    ``seurat`` and ``cell_ranger`` expect log-normalised ``X``; ``seurat_v3`` expects raw counts
    and reads ``layers["counts"]`` when present (else ``X``), which must hold integers. For
    ``seurat_v3``, ``var["dispersions"]`` is the variance-to-mean ratio of the counts. See
    ``docs/singlecell.md#highly-variable-genes``.

    Args:
        adata: ``(n_cells, n_genes)`` values (see above).
        n_top_genes: how many genes to mark; more than ``n_genes`` marks them all (logged).
        flavor: one of :data:`HVG_FLAVORS`.
        layer: read ``adata.layers[layer]`` instead of ``X`` (``seurat_v3``: default
            ``"counts"`` when present).
        subset: keep only the highly variable genes.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).
        **options: passed to scanpy / rapids-singlecell, e.g. ``min_mean``, ``max_mean``,
            ``min_disp``, ``n_bins``, ``span``.

    Returns:
        None, or the processed copy with ``copy=True``.

    Raises:
        InputError: an unknown ``flavor``; ``seurat_v3`` on non-integer counts or without
            scikit-misc.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _highly_variable_genes(
            target,
            backend,
            n_top_genes=n_top_genes,
            flavor=flavor,
            layer=layer,
            options=options,
            subset=subset,
        ),
    )


def _highly_variable_genes(
    adata: AnnData,
    backend: Device,
    *,
    n_top_genes: int | None,
    flavor: str,
    layer: str | None,
    options: dict[str, Any],
    subset: bool,
    on_table: Callable[[Any], None] | None = None,
) -> None:
    check_choice("flavor", flavor, HVG_FLAVORS)
    if flavor == "seurat_v3":
        if layer is None and "counts" in adata.layers:
            layer = "counts"
        check_counts(adata, layer=layer, integer=True, what="flavor 'seurat_v3'")
        try:
            import skmisc.loess  # noqa: F401
        except ImportError as exc:
            raise InputError(
                "flavor 'seurat_v3' needs scikit-misc (pip install scikit-misc)"
            ) from exc
    if n_top_genes is not None and n_top_genes > adata.n_vars:
        log.info("n_top_genes=%d > %d genes: keeping them all", n_top_genes, adata.n_vars)
        n_top_genes = adata.n_vars
    kwargs: dict[str, Any] = {"n_top_genes": n_top_genes, "flavor": flavor, "layer": layer}
    if backend == "gpu" and layer is not None and not is_gpu_array(adata.layers[layer]):
        import cupy
        import cupyx.scipy.sparse
        import scipy.sparse

        host_layer = adata.layers[layer]
        adata.layers[layer] = (
            cupyx.scipy.sparse.csr_matrix(scipy.sparse.csr_matrix(host_layer))
            if scipy.sparse.issparse(host_layer)
            else cupy.asarray(host_layer)
        )
        try:
            _pp(backend).highly_variable_genes(adata, **kwargs, **options)
        finally:
            adata.layers[layer] = host_layer
    else:
        _pp(backend).highly_variable_genes(adata, **kwargs, **options)
    var = adata.var
    if flavor == "seurat_v3":
        means = var["means"].to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            var["dispersions"] = np.where(means > 0, var["variances"].to_numpy() / means, 0.0)
    if on_table is not None:  # every ranked gene's columns, before the subset
        on_table(var)
    if subset:
        adata._inplace_subset_var(var["highly_variable"].to_numpy(dtype=bool))


def scale(
    adata: AnnData,
    *,
    max_value: float | None = 10.0,
    zero_center: bool = True,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Scale each gene to unit variance and zero mean, clipped at ``max_value`` (``sc.pp.scale``).

    Args:
        adata: ``(n_cells, n_genes)`` values, usually log-normalised; a sparse ``X`` becomes
            dense when ``zero_center`` (``n_cells * n_genes`` float values).
        max_value: clip the scaled values above it (``None``: no clipping).
        zero_center: subtract each gene's mean; ``False`` keeps sparse input sparse.
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None, or the scaled copy with ``copy=True``.
    """
    return _apply(
        adata,
        copy=copy,
        device=device,
        run=lambda target, backend: _scale(target, backend, max_value, zero_center=zero_center),
    )


def _scale(adata: AnnData, backend: Device, max_value: float | None, *, zero_center: bool) -> None:
    with warnings.catch_warnings():  # densifying is the point of zero-centred scaling
        warnings.filterwarnings("ignore", message="zero-centering a sparse")
        _pp(backend).scale(adata, max_value=max_value, zero_center=zero_center)


def _pp(backend: Device) -> Any:
    if backend == "gpu":
        return rapids().pp
    import scanpy as sc

    return sc.pp


# --- the recipe -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The recipe's parameters (``docs/singlecell.md#recipe``), checked when made.

    The same fields, with the same meaning and defaults, as :func:`preprocess`'s options; the
    in-memory and the out-of-core recipe (:mod:`.chunked`) both run one.

    Raises:
        InputError: a parameter scanpy would misread or crash on (one line naming it).
    """

    min_genes: int | None = 200
    min_cells: int | None = 3
    max_genes: int | None = 2500
    max_pct_mito: float | None = 5.0
    mito_prefix: str = MITO_PREFIX
    target_sum: float | None = 1e4
    n_top_genes: int | None = 2000
    hvg_flavor: HvgFlavor = "seurat"
    subset_hvg: bool = True
    scale_max_value: float | None = 10.0
    scale_data: bool = True
    value_bins: int | None = None
    bin_seed: int = 0

    def __post_init__(self) -> None:
        if self.value_bins is not None:
            check_n_bins(self.value_bins)
        check_seed(self.bin_seed, name="bin_seed")
        _check_recipe(
            min_genes=self.min_genes,
            min_cells=self.min_cells,
            max_genes=self.max_genes,
            max_pct_mito=self.max_pct_mito,
            target_sum=self.target_sum,
            n_top_genes=self.n_top_genes,
            hvg_flavor=self.hvg_flavor,
            scale_max_value=self.scale_max_value,
        )

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> Recipe:
        """The recipe of a function's keyword arguments (its ``locals()``): the fields only."""
        return cls(**{field.name: arguments[field.name] for field in dataclasses.fields(cls)})

    def record(self, backend: str) -> dict[str, Any]:
        """``uns["preprocess_recipe"]``: every parameter (``"none"`` for None) and ``backend``.

        h5ad and Zarr cannot store None, so a skipped bound is written as ``"none"``.
        """
        fields = {**dataclasses.asdict(self), "backend": backend}
        return {key: "none" if value is None else value for key, value in fields.items()}


def preprocess(
    adata: AnnData,
    *,
    min_genes: int | None = 200,
    min_cells: int | None = 3,
    max_genes: int | None = 2500,
    max_pct_mito: float | None = 5.0,
    mito_prefix: str = MITO_PREFIX,
    target_sum: float | None = 1e4,
    n_top_genes: int | None = 2000,
    hvg_flavor: HvgFlavor = "seurat",
    subset_hvg: bool = True,
    scale_max_value: float | None = 10.0,
    scale_data: bool = True,
    value_bins: int | None = None,
    bin_seed: int = 0,
    keep_counts: bool = True,
    on_counts: Callable[[AnnData], None] | None = None,
    on_hvg: Callable[[Any], None] | None = None,
    copy: bool = False,
    device: str | None = None,
) -> AnnData | None:
    """Run the single-cell recipe on raw counts; every threshold is a parameter.

    The recipe of ``docs/singlecell.md#recipe``, in this order: ``filter_cells(min_genes)``,
    ``filter_genes(min_cells)``, :func:`qc_metrics` (``mito_prefix``), :func:`filter_qc`
    (``n_genes_by_counts < max_genes``, ``pct_counts_mt < max_pct_mito``), raw counts kept in
    ``layers["counts"]`` (``keep_counts``), ``normalize_total(target_sum)``, ``log1p``,
    ``highly_variable_genes(n_top_genes, hvg_flavor)``, only those genes kept (``subset_hvg``),
    ``scale(max_value=scale_max_value)`` (``scale_data``). ``None`` skips a bound. With
    ``value_bins``, scGPT's per-cell value bins of the log-normalised values of the output
    genes (before ``scale``) go to ``layers["X_binned"]``.

    Logs cells and genes left and seconds after each step; the same figures are stored in
    ``uns["preprocess_steps"]`` (a dict of equal-length arrays: step, n_cells, n_genes,
    seconds) and the parameters in ``uns["preprocess_recipe"]`` (``"none"`` for a skipped
    bound) with the backend.

    Args:
        adata: ``(n_cells, n_genes)`` raw counts in ``X`` (non-negative, finite).
        min_genes: :func:`filter_cells` ``min_genes``.
        min_cells: :func:`filter_genes` ``min_cells``.
        max_genes: keep cells with fewer detected genes.
        max_pct_mito: keep cells with a smaller percent of mitochondrial counts.
        mito_prefix: the mitochondrial gene name prefix (:func:`qc_metrics`).
        target_sum: :func:`normalize_total` ``target_sum`` (``None``: the median total).
        n_top_genes: :func:`highly_variable_genes` ``n_top_genes``.
        hvg_flavor: :func:`highly_variable_genes` ``flavor``.
        subset_hvg: keep only the highly variable genes.
        scale_max_value: :func:`scale` ``max_value``.
        scale_data: run :func:`scale` (``X`` becomes dense); ``False`` leaves ``X`` sparse.
        value_bins: scGPT's ``n_bins``: bin each cell's log-normalised values of the output
            genes into this many bins (:func:`~.binning.bin_values`, random tie breaks) into
            ``layers["X_binned"]`` (``int64`` CSR, no stored zeros), after the HVG step and
            before ``scale``; None: no binning.
        bin_seed: seeds the binning's tie breaks (keyed by cell and gene: the same bins in
            memory and out of core).
        keep_counts: store the filtered raw counts in ``layers["counts"]`` (a host copy).
        on_counts: called once the cells are final with a host AnnData of their raw counts
            over *all* genes (as before ``filter_genes``; ``var`` with ``gene_ids``): the place
            for count-based encodings such as
            :func:`~gpu_genomics.expression.singlecell.rank.rank_encode`, whose cell totals
            run over all genes.
        on_hvg: called once with the ``var`` DataFrame of every gene the HVG step ranked
            (``means``, ``dispersions``, ``highly_variable``, ...), before ``subset_hvg``
            keeps only the selected ones (the QC report's mean-dispersion plot).
        copy: work on a copy of ``adata`` and return it.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        None (``adata`` processed in place), or the processed copy with ``copy=True``.

    Raises:
        InputError: a bad parameter, a negative or non-finite count (naming its cell and
            gene), or a step that removes every cell or gene.
        DeviceError: ``device="gpu"`` without a usable GPU backend.

    Memory: the whole matrix, a few times over (scanpy and rapids-singlecell hold it; a dense
    ``X`` of ``n_cells * n_top_genes`` float32 after ``scale``).
    """
    recipe = Recipe.of(locals())  # the recipe's keyword arguments, checked
    backend = resolve_backend(device)
    adata = adata.copy() if copy else adata
    annotate_genes(adata)
    check_counts(adata, what="the single-cell recipe")
    all_genes: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []

    def step(name: str, run: Callable[[], None]) -> None:
        started = time.perf_counter()
        run()
        if backend == "gpu":
            import cupy

            cupy.cuda.Device().synchronize()
        seconds = time.perf_counter() - started
        steps.append(
            {"step": name, "n_cells": adata.n_obs, "n_genes": adata.n_vars, "seconds": seconds}
        )
        log.info("%-22s %9d cells %7d genes %8.2f s", name, adata.n_obs, adata.n_vars, seconds)

    with on_device(adata, backend):
        if min_genes is not None:
            step(
                "filter_cells",
                lambda: _filter(adata, backend, "cells", min_detected=min_genes),
            )
        if on_counts is not None:  # the matrix before filter_genes (not copied; never modified)
            all_genes.update(x=adata.X, var=adata.var.copy())
            # each cell's row of that matrix, carried through the filters that follow (by
            # position: cell names may repeat, as in concatenated samples)
            adata.obs[_ALL_GENES_ROW] = np.arange(adata.n_obs)
        if min_cells is not None:
            step(
                "filter_genes",
                lambda: _filter(adata, backend, "genes", min_detected=min_cells),
            )
        step("qc_metrics", lambda: _qc_metrics(adata, backend, mito_prefix, None))
        step(
            "filter_qc",
            lambda: _filter_qc(adata, backend, max_genes, max_pct_mito, mito_prefix),
        )
        if keep_counts:
            step("keep_counts", lambda: _keep_counts(adata))
        if on_counts is not None:
            on_counts(_counts_of_kept_cells(adata, all_genes))
            all_genes.clear()
        step(
            "normalize_total",
            lambda: _pp(backend).normalize_total(adata, target_sum=target_sum),
        )
        step("log1p", lambda: _pp(backend).log1p(adata))
        step(
            f"hvg ({hvg_flavor})",
            lambda: _highly_variable_genes(
                adata,
                backend,
                n_top_genes=n_top_genes,
                flavor=hvg_flavor,
                layer=None,
                options={},
                subset=subset_hvg,
                on_table=on_hvg,
            ),
        )
        if value_bins is not None:
            step("bin_values", lambda: _bin_layer(adata, value_bins, bin_seed))
        if scale_data:
            step("scale", lambda: _scale(adata, backend, scale_max_value, zero_center=True))
    adata.uns["preprocess_steps"] = {
        key: np.array([row[key] for row in steps])
        for key in ("step", "n_cells", "n_genes", "seconds")
    }
    adata.uns["preprocess_recipe"] = recipe.record(_backend_name(backend))
    return adata if copy else None


#: The obs column that holds each cell's row of the matrix before ``filter_genes`` (removed
#: again by :func:`_counts_of_kept_cells`).
_ALL_GENES_ROW = "_gpu_genomics_all_genes_row"


def _counts_of_kept_cells(adata: AnnData, all_genes: dict[str, Any]) -> AnnData:
    """Host AnnData: the rows of ``all_genes["x"]`` (all genes) for the cells left in ``adata``.

    Takes the rows from (and removes) the ``_ALL_GENES_ROW`` column of ``adata.obs``; the
    cells' other ``obs`` columns come along (the rank encoding reads ``filter_pass``).
    """
    import anndata

    rows = adata.obs.pop(_ALL_GENES_ROW).to_numpy()
    x = all_genes["x"]
    if is_gpu_array(x):
        import cupy

        x = x[cupy.asarray(rows)].get()
    else:
        x = x[rows]
    return anndata.AnnData(X=x, obs=adata.obs.copy(), var=all_genes["var"])


def _check_recipe(
    *,
    min_genes: int | None,
    min_cells: int | None,
    max_genes: int | None,
    max_pct_mito: float | None,
    target_sum: float | None,
    n_top_genes: int | None,
    hvg_flavor: str,
    scale_max_value: float | None,
) -> None:
    """One-line errors for recipe parameters scanpy would misread or crash on."""
    for name, value, low in (
        ("min_genes", min_genes, 0),
        ("min_cells", min_cells, 0),
        ("max_genes", max_genes, 1),
        ("n_top_genes", n_top_genes, 1),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low
        ):
            raise invalid(name, value, f"must be an integer >= {low} (or None to skip)")
    for name, value in (
        ("max_pct_mito", max_pct_mito),
        ("target_sum", target_sum),
        ("scale_max_value", scale_max_value),
    ):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise invalid(name, value, "must be a number > 0 (or None to skip)")
    check_choice("hvg_flavor", hvg_flavor, HVG_FLAVORS)


#: The layer of scGPT's value bins (``value_bins``).
BINNED_LAYER = "X_binned"


def binned_csr(x: Any, *, n_bins: int, seed: int, first_cell: int = 0) -> Any:
    """The scGPT bins of the values of ``x`` (:func:`~.binning.bin_csr`, random tie breaks).

    Args:
        x: ``(n_cells, n_genes)`` non-negative values: SciPy or CuPy, sparse or dense.
        n_bins: scGPT's ``n_bins``.
        seed: the tie-breaking seed.
        first_cell: ``x``'s first row is this cell of the whole matrix (the draws follow it).

    Returns:
        ``(n_cells, n_genes) int64`` SciPy CSR on the host, stored zeros removed.

    Memory: the bins (8 bytes per stored value, with their indices) and the device work of
    :func:`~.binning.bin_csr`.
    """
    import scipy.sparse as sp

    from ...device import to_numpy
    from ._matrix import device_csr, host_csr
    from .binning import bin_csr

    if is_gpu_array(x):
        import cupy
        import cupyx.scipy.sparse as cupy_sparse

        xp = cupy
        csr = x.tocsr() if cupy_sparse.issparse(x) else cupy_sparse.csr_matrix(x)
        csr.sum_duplicates()  # canonical: sorted, no duplicates
        data, indices, indptr = device_csr(cupy, csr)
    else:
        xp = np
        csr = host_csr(x)
        data, indices, indptr = device_csr(np, csr)
    bins = bin_csr(
        xp, data, indices, indptr, n_genes=csr.shape[1], n_bins=n_bins, seed=seed,
        tie_break="random", first_cell=first_cell,
    )  # fmt: skip
    out = sp.csr_matrix((to_numpy(bins), to_numpy(indices), to_numpy(indptr)), shape=csr.shape)
    out.eliminate_zeros()
    return out


def _bin_layer(adata: AnnData, n_bins: int, seed: int) -> None:
    """``layers["X_binned"]``: scGPT's bins of ``X`` (:func:`binned_csr`), on the host."""
    adata.layers[BINNED_LAYER] = binned_csr(adata.X, n_bins=n_bins, seed=seed)


def _keep_counts(adata: AnnData) -> None:
    """``layers["counts"]`` = a host copy of the (filtered, still raw) ``X``."""
    x = adata.X
    adata.layers["counts"] = x.get() if is_gpu_array(x) else x.copy()


def _backend_name(backend: Device) -> str:
    if backend == "gpu":
        return f"rapids-singlecell {getattr(rapids(), '__version__', '?')}"
    from importlib.metadata import version as package_version

    return f"scanpy {package_version('scanpy')}"


def recorded_recipe(adata: AnnData) -> dict[str, Any]:
    """The parameters :func:`preprocess` recorded in ``uns["preprocess_recipe"]``.

    Returns:
        The dict with ``None`` for a skipped bound (stored as ``"none"``); empty when ``adata``
        was not preprocessed.
    """
    return {
        key: None if isinstance(value, str) and value == "none" else value
        for key, value in adata.uns.get("preprocess_recipe", {}).items()
    }


def dataset_card(
    adata: AnnData, *, dataset_id: str, name: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Describe a preprocessed ``adata`` as a dataset card (``docs/singlecell.md#recipe``).

    Args:
        adata: the output of :func:`preprocess` (its ``uns["preprocess_recipe"]`` describes the
            normalisation and the feature selection; without it they read as defaults/none).
        dataset_id: the dataset's id.
        name: the dataset's name (default: ``dataset_id``).
        **extra: more entries; ``None`` values are left out.

    Returns:
        A dict of strings and ints, storable in ``uns``: ``dataset_id``, ``name``,
        ``modality``, ``n_cells``, ``n_genes``, ``preprocessing``, ``normalization``,
        ``feature_selection``, ``tool_version``, plus ``extra``.
    """
    recipe = recorded_recipe(adata)
    target = recipe.get("target_sum")
    normalization = (
        f"log1p(normalize_total target_sum={target:g})"
        if target is not None
        else "log1p(normalize_total median)"
    )
    if recipe.get("scale_data"):
        normalization += f", scaled (max_value={recipe.get('scale_max_value')})"
    n_top = recipe.get("n_top_genes")
    feature_selection = (
        f"top_{n_top}_HVG ({recipe.get('hvg_flavor')})" if n_top is not None else "none"
    )
    card = {
        "dataset_id": dataset_id,
        "name": name or dataset_id,
        "modality": "scRNA-seq",
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "preprocessing": f"gpu-genomics {version()} ({recipe.get('backend', 'none')})",
        "normalization": normalization,
        "feature_selection": feature_selection,
        "tool_version": f"gpu-genomics {version()}",
    }
    card.update({key: value for key, value in extra.items() if value is not None})
    return card

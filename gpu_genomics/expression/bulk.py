"""Bulk RNA-seq preprocessing: log1p, low-expression gene filter, per-gene z-score.

The recipe is the specification's (``docs/bulk.md#recipe``)::

    X_log = np.log1p(X)                          # X: (samples, genes) TPM, FPKM or counts
    X_filtered = X_log[:, X_log.mean(axis=0) > 1.0]
    X_scaled = StandardScaler().fit_transform(X_filtered)

Every function takes ``device="auto" | "gpu" | "cpu"`` and runs one NumPy/CuPy-generic
implementation; arrays come back on the device that computed them (:func:`~gpu_genomics.to_numpy`
brings them to the host). Arithmetic is float64 on both devices. Tolerance of the GPU against
the CPU reference: log1p, gene means and standard deviations within 1e-12 relative (they differ
only in rounding and summation order), z-scores within 1e-12 * (|x| + |mean|) / std absolute,
far below the float32 rounding of ``expression``; the kept-gene mask is identical unless a
gene's mean lies within that rounding of ``min_mean_log``.

The :class:`Scaler` is scikit-learn's ``StandardScaler`` (``with_mean=True, with_std=True``):
``mean`` per gene, ``std`` the population standard deviation (ddof=0), and for a gene that is
constant over the fitted samples (variance within float64 rounding of 0, by scikit-learn's own
test) ``std = 1``, so its z-scores are 0 rather than NaN. It is saved as JSON (``.json``) or
HDF5 by :mod:`gpu_genomics.expression.scaler_files`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..device import array_module, resolve_device, to_numpy
from ..errors import InputError, finite_float
from .tables import LabeledMatrix

log = logging.getLogger("gpu_genomics")

#: The specification's threshold: keep genes whose mean log1p expression is above it.
DEFAULT_MIN_MEAN_LOG = 1.0


@dataclass(frozen=True)
class Scaler:
    """Per-gene z-score parameters, as scikit-learn's fitted ``StandardScaler``.

    Attributes:
        gene_names: ``(n_genes,)`` object array of str, the genes in column order.
        mean: ``(n_genes,)`` float64, ``mean_``.
        std: ``(n_genes,)`` float64, ``scale_``: the ddof=0 standard deviation, 1.0 for a gene
            constant over the fitted samples; always > 0.
        n_samples: samples it was fitted on (``n_samples_seen_``).
        log1p: whether the fitted values were log1p-transformed by :func:`preprocess_bulk`
            (False when the input was already on a log scale).
        source: the file it was loaded from, for messages; None if fitted here.
    """

    gene_names: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_samples: int
    log1p: bool = True
    source: str | None = None

    def __len__(self) -> int:
        return len(self.gene_names)


@dataclass(frozen=True)
class BulkResult:
    """What :func:`preprocess_bulk` returns.

    Attributes:
        expression: ``(n_samples, n_kept_genes)`` float32 z-scores (log1p values when
            ``zscore=False``), on the device that computed them.
        sample_names: ``(n_samples,)`` object array of str.
        gene_names: ``(n_kept_genes,)`` object array of str, the columns of ``expression``.
        gene_mask: ``(n_input_genes,)`` bool, the input genes kept (input order).
        input_gene_names: ``(n_input_genes,)`` object array of str.
        scaler: the scaler fitted here, or the one applied.
        fitted: True when ``scaler`` was fitted on this input.
        gene_mean_log: ``(n_input_genes,)`` float64 on the host: each input gene's mean log
            expression over the samples, as the filter compares it with ``min_mean_log``
            (the QC report's figure); None when not computed.
    """

    expression: Any
    sample_names: np.ndarray
    gene_names: np.ndarray
    gene_mask: np.ndarray
    input_gene_names: np.ndarray
    scaler: Scaler
    fitted: bool
    gene_mean_log: np.ndarray | None = None


# --- the steps -----------------------------------------------------------------------------------
def _on_device(values: Any, device: str | None) -> tuple[Any, Any]:
    """``(xp, values as a 2-D float64 array on the resolved device)``."""
    xp = array_module(resolve_device(device))
    array = xp.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"values must be a 2-D (samples, genes) array, got shape {array.shape}")
    return xp, array


def _first_true(mask: Any) -> tuple[int, int]:
    """``(row, column)`` of the first True of a 2-D boolean array (device or host)."""
    flat = int(mask.ravel().argmax())
    return divmod(flat, mask.shape[1])


def _cell(row: int, column: int) -> str:
    return f"sample {row}, gene {column}"


def _check_finite(xp: Any, values: Any, where: Callable[[int, int], str]) -> None:
    bad = ~xp.isfinite(values)
    if bool(bad.any()):
        row, column = _first_true(bad)
        raise InputError(f"{where(row, column)}: {float(values[row, column])} is not finite")


def log_transform(
    values: Any,
    *,
    device: str | None = None,
    where: Callable[[int, int], str] = _cell,
) -> Any:
    """``log1p(values)``: natural log of 1 + each value.

    Args:
        values: ``(n_samples, n_genes)`` non-negative TPM, FPKM or counts (any real dtype).
        where: names a cell ``(sample, gene)`` in error messages.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        ``(n_samples, n_genes)`` float64 on the device.

    Raises:
        InputError: a value is negative (log-scale input: skip this step, ``--already-log``)
            or not finite.
    """
    xp, array = _on_device(values, device)
    _check_finite(xp, array, where)
    negative = array < 0
    if bool(negative.any()):
        row, column = _first_true(negative)
        raise InputError(
            f"{where(row, column)}: {float(array[row, column])} is negative; TPM, FPKM and "
            "counts are >= 0 (for log-scale input pass already_log=True)"
        )
    return xp.log1p(array)


def gene_means(values: Any, *, device: str | None = None) -> Any:
    """``(n_genes,)`` float64: the mean over samples of each gene of ``(n_samples, n_genes)``."""
    _, array = _on_device(values, device)
    return array.mean(axis=0)


def filter_low_expression(
    log_values: Any,
    min_mean_log: float = DEFAULT_MIN_MEAN_LOG,
    *,
    device: str | None = None,
) -> tuple[Any, Any]:
    """Keep the genes whose mean (log) expression over samples is above ``min_mean_log``.

    The bound is strict, as the specification's ``X_log.mean(axis=0) > 1.0``
    (``docs/bulk.md#recipe``).

    Args:
        log_values: ``(n_samples, n_genes)`` log-scale expression.
        min_mean_log: the threshold, in the units of ``log_values``.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        ``(filtered, kept)``: ``(n_samples, n_kept)`` float64 and ``(n_genes,)`` bool, both on
        the device.
    """
    threshold = finite_float("min_mean_log", min_mean_log)
    _, array = _on_device(log_values, device)
    kept = array.mean(axis=0) > threshold
    return array[:, kept], kept


def fit_scaler(
    values: Any,
    gene_names: Sequence[str] | np.ndarray | None = None,
    *,
    log1p: bool = True,
    device: str | None = None,
) -> Scaler:
    """Fit per-gene mean and standard deviation as ``StandardScaler().fit(values)``.

    Args:
        values: ``(n_samples, n_genes)``, finite; at least one sample.
        gene_names: ``n_genes`` names (default ``"0"``, ``"1"``, ...).
        log1p: recorded in the scaler (whether ``values`` are log1p of the raw input).
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        A :class:`Scaler` with host float64 arrays.
    """
    xp, array = _on_device(values, device)
    n_samples, n_genes = array.shape
    if n_samples < 1:
        raise InputError("fit_scaler needs at least one sample")
    names = _gene_names(gene_names, n_genes)
    _check_finite(xp, array, _cell)
    mean = array.mean(axis=0)
    var = ((array - mean) ** 2).mean(axis=0)
    # scikit-learn's _is_constant_feature: variance within the two-pass algorithm's error bound
    eps = np.finfo(np.float64).eps
    constant = var <= n_samples * eps * var + (n_samples * mean * eps) ** 2
    std = xp.where(constant, 1.0, xp.sqrt(var))
    return Scaler(
        gene_names=names,
        mean=np.asarray(to_numpy(mean), dtype=np.float64),
        std=np.asarray(to_numpy(std), dtype=np.float64),
        n_samples=int(n_samples),
        log1p=bool(log1p),
    )


def apply_scaler(
    values: Any,
    scaler: Scaler,
    *,
    gene_names: Sequence[str] | np.ndarray | None = None,
    input_name: str = "the input",
    device: str | None = None,
) -> Any:
    """Z-score ``values`` with a fitted scaler: ``(values - mean) / std`` per gene.

    Args:
        values: ``(n_samples, n_genes)``.
        scaler: from :func:`fit_scaler` or :func:`load_scaler`.
        gene_names: the names of ``values``' columns; when given, columns are matched to the
            scaler's genes by name (any order; genes the scaler lacks are dropped). Without
            names, the columns must be the scaler's genes in its order.
        input_name: names the input in error messages.
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Returns:
        ``(n_samples, len(scaler))`` float64 on the device, columns in the scaler's gene order.

    Raises:
        InputError: a scaler gene is missing from ``gene_names`` (the first is named), the
            names repeat, or the column count differs without names.
    """
    xp, array = _on_device(values, device)
    if gene_names is not None:
        columns = match_genes(gene_names, scaler, input_name=input_name)
        array = array[:, xp.asarray(columns)]
    elif array.shape[1] != len(scaler):
        raise InputError(
            f"{input_name} has {array.shape[1]} genes but the scaler{_from(scaler)} has "
            f"{len(scaler)}; pass gene_names to match them by name"
        )
    return (array - xp.asarray(scaler.mean)) / xp.asarray(scaler.std)


def match_genes(
    gene_names: Sequence[str] | np.ndarray, scaler: Scaler, *, input_name: str = "the input"
) -> np.ndarray:
    """``(len(scaler),)`` int64: for each scaler gene, its column among ``gene_names``.

    Raises:
        InputError: a scaler gene is missing (the first one and the count are named) or
            ``gene_names`` repeats a name.
    """
    position: dict[str, int] = {}
    for i, name in enumerate(str(name) for name in gene_names):
        if name in position:
            raise InputError(
                f"{input_name}: gene {name!r} appears twice (columns {position[name]} and {i}); "
                "gene names must be unique"
            )
        position[name] = i
    missing = [str(gene) for gene in scaler.gene_names if gene not in position]
    if missing:
        raise InputError(
            f"{input_name}: {len(missing)} of the {len(scaler)} genes of the scaler"
            f"{_from(scaler)} are missing, the first {missing[0]!r}; the input must have every "
            "gene the scaler was fitted on"
        )
    return np.array([position[str(gene)] for gene in scaler.gene_names], dtype=np.int64)


def preprocess_bulk(
    matrix: LabeledMatrix,
    *,
    already_log: bool = False,
    min_mean_log: float = DEFAULT_MIN_MEAN_LOG,
    scaler: Scaler | None = None,
    zscore: bool = True,
    device: str | None = None,
) -> BulkResult:
    """The specification's bulk recipe on a ``(samples, genes)`` matrix.

    The recipe (``docs/bulk.md#recipe``), in this order:

    1. ``log1p`` unless ``already_log``;
    2. without ``scaler``: keep genes with mean log expression ``> min_mean_log`` and fit a
       :class:`Scaler` on them; with ``scaler``: keep the scaler's genes, matched by name;
    3. z-score with the scaler (unless ``zscore=False``); cast to float32.

    Args:
        matrix: from :func:`~gpu_genomics.expression.tables.read_table` (``values``
            ``(samples, genes)``).
        already_log: the values are on a log scale already (no log1p; negatives allowed).
        min_mean_log: filter threshold in log1p units; not used with ``scaler``.
        scaler: a stored scaler to apply instead of fitting one (and instead of filtering).
        zscore: False keeps the filtered log values as ``expression`` (the scaler is still
            fitted and returned).
        device: ``"auto" | "gpu" | "cpu"`` (``None``: ``$GPU_GENOMICS_DEVICE``, else auto).

    Raises:
        InputError: negative values without ``already_log``, no gene above the threshold,
            scaler genes missing from the input.
    """
    device_name = resolve_device(device)
    xp = array_module(device_name)
    values = xp.asarray(matrix.values, dtype=np.float64)
    if values.shape[0] < 1 or values.shape[1] < 1:
        raise InputError(f"{_name(matrix)}: the matrix is empty ({values.shape})")
    if already_log:
        _check_finite(xp, values, matrix.locate)
        log_values = values
    else:
        log_values = log_transform(values, device=device_name, where=matrix.locate)
    if scaler is None:
        threshold = finite_float("min_mean_log", min_mean_log)
        filtered, kept = filter_low_expression(log_values, threshold, device=device_name)
        kept_host = np.asarray(to_numpy(kept), dtype=bool)
        if not kept_host.any():
            best = float(to_numpy(log_values.mean(axis=0)).max())
            raise InputError(
                f"{_name(matrix)}: no gene has a mean log expression above {threshold:g} (the "
                f"highest is {best:.3g}); lower min_mean_log={threshold:g}"
            )
        gene_names = matrix.feature_names[kept_host]
        scaler = fit_scaler(filtered, gene_names, log1p=not already_log, device=device_name)
        fitted = True
        if matrix.shape[0] == 1:
            log.warning(
                "%s: a single sample: every gene is constant, so every z-score is 0",
                _name(matrix),
            )
    else:
        if scaler.log1p == already_log:
            log.warning(
                "the scaler%s was fitted on %s values but this input is %s",
                _from(scaler),
                "log1p-transformed" if scaler.log1p else "already-log",
                "already on a log scale" if already_log else "log1p-transformed here",
            )
        columns = match_genes(matrix.feature_names, scaler, input_name=_name(matrix))
        filtered = log_values[:, xp.asarray(columns)]
        kept_host = np.zeros(matrix.shape[1], dtype=bool)
        kept_host[columns] = True
        gene_names = matrix.feature_names[columns]
        fitted = False
    if zscore:
        expression = apply_scaler(filtered, scaler, device=device_name)
    else:
        expression = filtered
    return BulkResult(
        expression=expression.astype(np.float32),
        sample_names=np.asarray(matrix.observation_names, dtype=object),
        gene_names=np.asarray(gene_names, dtype=object),
        gene_mask=kept_host,
        input_gene_names=np.asarray(matrix.feature_names, dtype=object),
        scaler=scaler,
        fitted=fitted,
        gene_mean_log=np.asarray(to_numpy(log_values.mean(axis=0)), dtype=np.float64),
    )


# --- small helpers ----------------------------------------------------------------------------
def _gene_names(names: Sequence[str] | np.ndarray | None, n_genes: int) -> np.ndarray:
    if names is None:
        return np.array([str(i) for i in range(n_genes)], dtype=object)
    result = np.array([str(name) for name in names], dtype=object)
    if len(result) != n_genes:
        raise InputError(f"{len(result)} gene names for {n_genes} genes")
    return result


def _from(scaler: Scaler) -> str:
    return f" from {scaler.source}" if scaler.source else ""


def _name(matrix: LabeledMatrix) -> str:
    return matrix.source or "the input"


__all__ = [
    "DEFAULT_MIN_MEAN_LOG",
    "BulkResult",
    "Scaler",
    "apply_scaler",
    "filter_low_expression",
    "fit_scaler",
    "gene_means",
    "log_transform",
    "match_genes",
    "preprocess_bulk",
]

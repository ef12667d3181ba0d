"""Synthetic single-cell count matrices for the tests: negative-binomial counts with every kind
of cell and gene the recipe removes (few genes, many genes, high mitochondrial fraction, genes
seen in fewer than 3 cells); and the comparison of two recipe outputs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def synthetic_counts(
    n_cells: int = 500, n_genes: int = 4000, seed: int = 0, n_mito: int = 13
) -> ad.AnnData:
    """``(n_cells, n_genes)`` CSR float32 counts; genes ``MT-0..`` first, then ``G<i>``."""
    rng = np.random.default_rng(seed)
    gene_means = rng.gamma(0.35, 1.5, size=n_genes)
    gene_means[:n_mito] *= 6  # mitochondrial genes are highly expressed
    gene_means[-40:] = 0.0005  # rare genes: filtered by min_cells=3
    depth = rng.lognormal(0.0, 0.5, size=(n_cells, 1))
    depth[: n_cells // 20] *= 0.03  # low-quality cells: < 200 genes
    depth[n_cells // 20 : n_cells // 10] *= 12.0  # very deep cells: > 2500 genes once scaled
    means = gene_means * depth
    counts = rng.negative_binomial(2, 2.0 / (2.0 + means)).astype(np.float32)
    # damaged cells: mostly mitochondrial reads
    damaged = slice(n_cells // 10, n_cells // 10 + n_cells // 25)
    counts[damaged, :n_mito] *= 25
    names = [f"MT-{i}" for i in range(n_mito)] + [f"G{i}" for i in range(n_mito, n_genes)]
    return ad.AnnData(
        X=sp.csr_matrix(counts),
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=names),
    )


#: The step timings and the run's own record differ between any two runs.
RUN_DETAILS = ("provenance",)


def read_output(path: Path) -> ad.AnnData:
    return ad.read_zarr(path) if path.suffix == ".zarr" else ad.read_h5ad(path)


def dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def assert_same_element(x, y, what: str, *, same_types: bool = True) -> None:
    """Two stored elements (dense, sparse or a DataFrame) are equal: values exactly; with
    ``same_types`` their types and dtypes too."""
    if isinstance(x, pd.DataFrame) or isinstance(y, pd.DataFrame):
        pd.testing.assert_frame_equal(x, y, check_dtype=same_types, obj=what)
        return
    assert x.shape == y.shape, what
    assert not same_types or (type(x) is type(y) and x.dtype == y.dtype), what
    np.testing.assert_array_equal(dense(x), dense(y), err_msg=what)


def assert_same_elements(a: ad.AnnData, b: ad.AnnData, *, same_types: bool = True) -> None:
    """The same layers (the recipe's counts and the input's others), ``obsm``, ``varm``,
    ``obsp``, ``varp`` and ``raw`` (its ``X``, ``var`` and ``varm``)."""
    for slot in ("layers", "obsm", "varm", "obsp", "varp"):
        elements_a, elements_b = getattr(a, slot), getattr(b, slot)
        assert sorted(elements_a) == sorted(elements_b), slot
        for name in elements_a:
            assert_same_element(
                elements_a[name], elements_b[name], f"{slot}/{name}", same_types=same_types
            )
    assert (a.raw is None) == (b.raw is None)
    if a.raw is not None:
        assert list(a.raw.obs_names) == list(b.raw.obs_names)
        pd.testing.assert_frame_equal(a.raw.var, b.raw.var)
        assert_same_element(a.raw.X, b.raw.X, "raw/X", same_types=same_types)
        assert sorted(a.raw.varm) == sorted(b.raw.varm)
        for name in a.raw.varm:
            assert_same_element(
                a.raw.varm[name], b.raw.varm[name], f"raw/varm/{name}", same_types=same_types
            )


def assert_same_output(
    left: Path, right: Path, *, rtol: float = 1e-5, same_types: bool = True
) -> None:
    """The two outputs hold the same cells, genes, columns, layers, ``obsm``, ``varm``,
    ``obsp``, ``varp``, ``raw`` and ``uns``.

    ``same_types=False``: values only (a dense input: in memory scanpy keeps dense counts and
    counts in int64; out of core the rows are read as CSR).
    """
    a, b = read_output(left), read_output(right)
    assert list(a.obs_names) == list(b.obs_names)
    assert list(a.var_names) == list(b.var_names)
    for frame_a, frame_b in ((a.obs, b.obs), (a.var, b.var)):
        assert list(frame_a.columns) == list(frame_b.columns)
        for column in frame_a.columns:
            x, y = frame_a[column], frame_b[column]
            assert x.dtype == y.dtype or not same_types, column
            if x.dtype.kind in "fiu":
                np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, err_msg=column)
            else:
                assert (x.astype(str) == y.astype(str)).all(), column
    assert not same_types or (type(a.X) is type(b.X) and a.X.dtype == b.X.dtype)
    np.testing.assert_allclose(dense(a.X), dense(b.X), rtol=rtol, atol=rtol)
    assert_same_elements(a, b, same_types=same_types)
    assert sorted(a.uns) == sorted(b.uns)
    for key in a.uns:
        if key in RUN_DETAILS:
            continue
        if key == "preprocess_steps":
            for column in ("step", "n_cells", "n_genes"):
                assert list(a.uns[key][column]) == list(b.uns[key][column])
        elif key == "dataset_card":
            assert {k: v for k, v in a.uns[key].items()} == dict(b.uns[key])
        else:
            assert repr(dict(a.uns[key])) == repr(dict(b.uns[key])), key

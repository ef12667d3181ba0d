"""Synthetic single-cell count matrices for the tests: negative-binomial counts with every kind
of cell and gene the recipe removes (few genes, many genes, high mitochondrial fraction, genes
seen in fewer than 3 cells)."""

from __future__ import annotations

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

"""downsample_counts and simulate_doublets: properties of the definitions (totals, bounds,
means within statistical limits, determinism) on both devices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gpu_genomics import InputError
from gpu_genomics.expression.singlecell.augment import downsample_counts, simulate_doublets

anndata = pytest.importorskip("anndata")


def make_adata(n_cells=200, n_genes=300, seed=0, fmt="csr", dtype=np.float32):
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(2, 0.3, size=(n_cells, n_genes)).astype(dtype)
    counts[::3] = (counts[::3] > 6) * counts[::3]  # shallower cells
    counts[1] = 0
    matrix = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](counts)
    adata = anndata.AnnData(X=matrix)
    adata.obs_names = [f"cell{i}" for i in range(n_cells)]
    adata.var_names = [f"gene{j}" for j in range(n_genes)]
    return adata


def dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def test_binomial_fraction(device):
    adata = make_adata()
    before = dense(adata.X).astype(np.int64)
    out = downsample_counts(adata, fraction=0.3, seed=1, copy=True, device=device)
    after = dense(out.X)
    assert out.X.format == "csr" and out.X.dtype == np.float32
    assert (after >= 0).all() and (after <= before).all() and (after == np.round(after)).all()
    np.testing.assert_array_equal(dense(adata.X), before)  # copy=True leaves the input alone
    total, kept = before.sum(), after.sum()
    assert abs(kept - 0.3 * total) < 6 * np.sqrt(0.3 * 0.7 * total)
    # per cell too: the thinned total of each cell is Binomial(total, 0.3)
    cell_totals, cell_kept = before.sum(1), after.sum(1)
    z = (cell_kept - 0.3 * cell_totals) / np.sqrt(np.maximum(0.21 * cell_totals, 1))
    assert np.abs(z).max() < 6 and abs(z.mean()) < 0.5


def test_binomial_target(device):
    adata = make_adata(seed=2)
    before = dense(adata.X).astype(np.int64)
    totals = before.sum(1)
    target = int(np.median(totals))
    assert downsample_counts(adata, target_total=target, seed=3, device=device) is None
    after = dense(adata.X).astype(np.int64)
    low = totals <= target
    np.testing.assert_array_equal(after[low], before[low])  # at or below the target: unchanged
    assert (after <= before).all()
    high = ~low
    kept = after[high].sum()
    expected = target * high.sum()
    variance = (target * (1 - target / totals[high])).sum()
    assert abs(kept - expected) < 6 * np.sqrt(variance)


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_hypergeometric_target_exact_totals(device, fmt):
    adata = make_adata(seed=4, fmt=fmt, dtype=np.int64 if fmt == "dense" else np.float32)
    before = dense(adata.X).astype(np.int64)
    totals = before.sum(1)
    target = int(np.percentile(totals, 40))
    out = downsample_counts(
        adata, target_total=target, method="hypergeometric", seed=5, copy=True, device=device
    )
    after = dense(out.X).astype(np.int64)
    assert (out.X.format if fmt != "dense" else "dense") == fmt
    assert dense(out.X).dtype == dense(adata.X).dtype
    np.testing.assert_array_equal(after.sum(1), np.minimum(totals, target))
    assert (after <= before).all() and (after >= 0).all()  # without replacement: no count grows
    low = totals <= target
    np.testing.assert_array_equal(after[low], before[low])
    if fmt != "dense":
        assert (out.X.data != 0).all()  # explicit zeros removed


def test_hypergeometric_fraction(device):
    adata = make_adata(seed=6)
    before = dense(adata.X).astype(np.int64)
    out = downsample_counts(
        adata, fraction=0.25, method="hypergeometric", seed=7, copy=True, device=device
    )
    after = dense(out.X).astype(np.int64)
    np.testing.assert_array_equal(after.sum(1), np.floor(before.sum(1) * 0.25).astype(np.int64))
    assert (after <= before).all()


def test_hypergeometric_draws_without_replacement(device):
    """Reads drawn without replacement: per gene, mean k*c/T and the hypergeometric variance
    k*(c/T)*(1-c/T)*(T-k)/(T-1) (smaller than the multinomial's)."""
    cell = np.array([0, 50, 1, 30, 0, 7, 12, 100], dtype=np.float32)
    n_rep, k = 3000, 60
    adata = anndata.AnnData(X=sp.csr_matrix(np.tile(cell, (n_rep, 1))))
    downsample_counts(adata, target_total=k, method="hypergeometric", seed=8, device=device)
    draws = dense(adata.X).astype(np.float64)
    total = cell.sum()
    share = cell / total
    mean = k * share
    variance = k * share * (1 - share) * (total - k) / (total - 1)
    assert (draws[:, cell == 0] == 0).all()
    observed = draws.mean(0)
    assert (np.abs(observed - mean) <= 6 * np.sqrt(variance / n_rep) + 1e-12).all()
    nz = cell > 0
    ratio = draws.var(0)[nz] / variance[nz]
    assert (ratio > 0.8).all() and (ratio < 1.2).all()


def test_multinomial_draws_with_replacement_as_the_specification(device):
    """``Multinomial(floor(total * fraction), count / total)`` per cell, as the specification's
    ``poisson_augment``: per gene mean n*c/T and variance n*(c/T)*(1-c/T) (for a cell [50, 50]
    at 0.5, 12.5, where without replacement it is about 6.3), and a count may grow."""
    cell = np.array([50, 0, 50, 6], dtype=np.float32)
    n_rep, fraction = 4000, 0.5
    adata = anndata.AnnData(X=sp.csr_matrix(np.tile(cell, (n_rep, 1))))
    out = downsample_counts(
        adata, fraction=fraction, method="multinomial", seed=11, copy=True, device=device
    )
    draws = dense(out.X).astype(np.float64)
    total = cell.sum()
    n = np.floor(total * fraction)
    np.testing.assert_array_equal(draws.sum(1), n)
    share = cell / total
    mean, variance = n * share, n * share * (1 - share)
    assert (draws[:, cell == 0] == 0).all()
    assert (np.abs(draws.mean(0) - mean) <= 6 * np.sqrt(variance / n_rep) + 1e-12).all()
    nz = cell > 0
    ratio = draws.var(0)[nz] / variance[nz]
    assert (ratio > 0.85).all() and (ratio < 1.15).all()
    assert (draws[:, 3] > cell[3]).any()  # with replacement: the small count sometimes grows
    hyper = downsample_counts(
        adata, fraction=fraction, method="hypergeometric", seed=11, copy=True, device=device
    )
    assert (dense(hyper.X) <= cell).all()
    assert dense(hyper.X)[:, 0].var() < 0.6 * draws[:, 0].var()
    # the specification's function, on the same cell: the same distribution
    rng = np.random.default_rng(0)
    spec = rng.multinomial(int(n), cell / (total + 1e-8), size=n_rep)
    assert abs(spec[:, 0].var() / draws[:, 0].var() - 1) < 0.15


def test_matches_scanpy_downsample_behaviour(device):
    """scanpy.pp.downsample_counts(counts_per_cell=...) keeps exactly min(total, target) reads
    per cell without replacement; ours does the same, and both have the same per-gene mean."""
    sc = pytest.importorskip("scanpy")
    adata = make_adata(n_cells=400, n_genes=50, seed=9)
    target = 150
    ours = downsample_counts(
        adata, target_total=target, method="hypergeometric", seed=1, copy=True, device=device
    )
    theirs = sc.pp.downsample_counts(adata, counts_per_cell=target, random_state=1, copy=True)
    np.testing.assert_array_equal(dense(ours.X).sum(1), dense(theirs.X).sum(1))
    assert (dense(theirs.X) <= dense(adata.X)).all() and (dense(ours.X) <= dense(adata.X)).all()
    a, b = dense(ours.X).sum(0), dense(theirs.X).sum(0)
    assert (np.abs(a - b) < 6 * np.sqrt(np.maximum(a + b, 1))).all()


def test_downsample_determinism_and_layer(device):
    adata = make_adata(seed=10)
    adata.layers["counts"] = adata.X.copy()
    for method in ("binomial", "hypergeometric", "multinomial"):
        runs = [
            dense(
                downsample_counts(
                    adata,
                    fraction=0.5,
                    method=method,
                    seed=s,
                    layer="counts",
                    copy=True,
                    device=device,
                ).layers["counts"]
            )
            for s in (11, 11, 12)
        ]
        np.testing.assert_array_equal(runs[0], runs[1])
        assert (runs[0] != runs[2]).any()
    np.testing.assert_array_equal(dense(adata.layers["counts"]), dense(adata.X))


def test_downsample_rejects_bad_input(device):
    adata = make_adata(n_cells=10, n_genes=12)
    x = dense(adata.X).astype(np.float64)
    x[4, 7] = 2.5
    adata.X = sp.csr_matrix(x)
    with pytest.raises(InputError, match=r"integer counts.*'cell4' \(row 4\).*'gene7'"):
        downsample_counts(adata, fraction=0.5, device=device)
    x[4, 7] = -3
    adata.X = sp.csr_matrix(x)
    with pytest.raises(InputError, match="'cell4'"):
        downsample_counts(adata, target_total=5, device=device)
    np.testing.assert_array_equal(dense(adata.X), x)  # nothing written
    adata = make_adata(n_cells=10, n_genes=12)
    for kwargs, message in [
        ({}, "exactly one"),
        ({"fraction": 0.5, "target_total": 3}, "exactly one"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": 0}, "fraction"),
        ({"target_total": 0}, "target_total"),
        ({"fraction": 0.5, "method": "poisson"}, "method"),
        ({"fraction": 0.5, "seed": -1}, "seed"),
    ]:
        with pytest.raises(InputError, match=message):
            downsample_counts(adata, device=device, **kwargs)
    with pytest.raises(TypeError):  # every parameter after adata is keyword-only
        downsample_counts(adata, 0.5, device=device)  # type: ignore[misc]


@pytest.mark.parametrize(("how", "fmt"), [("sum", "csr"), ("mean", "csr"), ("sum", "dense")])
def test_simulate_doublets(device, how, fmt):
    adata = make_adata(n_cells=50, n_genes=40, seed=13, fmt=fmt)
    adata.var["gene_ids"] = [f"ENSG{j}" for j in range(40)]
    doublets = simulate_doublets(adata, n=300, how=how, seed=14, device=device)
    assert doublets.shape == (300, 40)
    assert sp.issparse(doublets.X) == (fmt != "dense")
    assert doublets.var.equals(adata.var)
    first = doublets.obs["parent_1"].to_numpy()
    second = doublets.obs["parent_2"].to_numpy()
    assert (first != second).all()
    assert list(doublets.obs["parent_1_name"]) == [adata.obs_names[i] for i in first]
    assert list(doublets.obs["parent_2_name"]) == [adata.obs_names[i] for i in second]
    x = dense(adata.X).astype(np.float64)
    expected = x[first] + x[second]
    if how == "mean":
        expected = expected / 2
    got = dense(doublets.X)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    if fmt == "csr":
        assert doublets.X.has_sorted_indices and (doublets.X.data != 0).all()
    # every cell can be a parent, and pairs are spread over the cells
    assert len(set(first) | set(second)) > 40
    again = simulate_doublets(adata, n=300, how=how, seed=14, device=device)
    np.testing.assert_array_equal(dense(again.X), got)
    assert (
        simulate_doublets(adata, n=300, how=how, seed=15, device=device).obs["parent_1"]
        != doublets.obs["parent_1"]
    ).any()


def test_simulate_doublets_int_counts_and_errors(device):
    adata = make_adata(n_cells=5, n_genes=6, dtype=np.int32)
    doublets = simulate_doublets(adata, n=10, device=device)
    x = dense(adata.X)
    obs = doublets.obs
    np.testing.assert_array_equal(
        dense(doublets.X), x[obs["parent_1"].to_numpy()] + x[obs["parent_2"].to_numpy()]
    )
    assert doublets.X.dtype == np.int32
    with pytest.raises(InputError, match="at least 2 cells"):
        simulate_doublets(adata[:1].copy(), n=3, device=device)
    with pytest.raises(InputError, match="how"):
        simulate_doublets(adata, n=3, how="max", device=device)
    with pytest.raises(InputError, match="positive integer"):
        simulate_doublets(adata, n=0, device=device)
    with pytest.raises(TypeError):  # every parameter after adata is keyword-only
        simulate_doublets(adata, 3, device=device)  # type: ignore[misc]


@pytest.mark.gpu
def test_doublets_gpu_equals_cpu():
    adata = make_adata(n_cells=30, n_genes=20, seed=16)
    cpu = simulate_doublets(adata, n=50, how="mean", seed=2, device="cpu")
    gpu = simulate_doublets(adata, n=50, how="mean", seed=2, device="gpu")
    np.testing.assert_array_equal(dense(cpu.X), dense(gpu.X))
    assert cpu.obs.equals(gpu.obs)

"""The single-cell recipe: our API against scanpy run step by step.

On synthetic negative-binomial counts and on scanpy's bundled pbmc68k_reduced; copy=True and
in-place calls of every verb; bad input; the GPU backend (rapids-singlecell) against the CPU
where one is usable.
"""

from __future__ import annotations

import inspect
import logging
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from sc_data import synthetic_counts

import gpu_genomics.sc as gsc
from gpu_genomics.errors import DeviceError, InputError
from gpu_genomics.expression.singlecell import recipe as pp_module
from gpu_genomics.expression.singlecell._backend import rapids_status


def dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def same_anndata(a: ad.AnnData, b: ad.AnnData) -> bool:
    """Same shape, names, obs, var, uns keys, layers and values of X."""
    return (
        a.shape == b.shape
        and list(a.obs_names) == list(b.obs_names)
        and list(a.var_names) == list(b.var_names)
        and a.obs.equals(b.obs)
        and a.var.equals(b.var)
        and set(a.uns) == set(b.uns)
        and set(a.layers) == set(b.layers)
        and all(np.array_equal(dense(a.layers[k]), dense(b.layers[k])) for k in a.layers)
        and dense(a.X).dtype == dense(b.X).dtype
        and np.array_equal(dense(a.X), dense(b.X), equal_nan=True)
    )


def spec_recipe(adata: ad.AnnData) -> ad.AnnData:
    """The recipe of docs/singlecell.md#recipe, written in plain scanpy."""
    sc.pp.filter_cells(adata, min_genes=200)
    sc.pp.filter_genes(adata, min_cells=3)
    adata.var["mt"] = adata.var_names.str.startswith("MT-")
    sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
    adata = adata[adata.obs.n_genes_by_counts < 2500, :]
    adata = adata[adata.obs.pct_counts_mt < 5, :]
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=2000)
    adata = adata[:, adata.var.highly_variable]
    sc.pp.scale(adata, max_value=10)
    return adata


@pytest.fixture(scope="module")
def counts() -> ad.AnnData:
    return synthetic_counts()


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def sc_device(request) -> str:
    """The device a recipe test runs on; "gpu" needs rapids-singlecell as well as a GPU."""
    if request.param == "gpu":
        usable, reason = rapids_status()
        if not usable:
            pytest.skip(f"GPU single-cell backend unavailable: {reason}")
    return request.param


# Tolerances of the GPU backend against scanpy (module docstring of preprocess).
RTOL = {"cpu": 0.0, "gpu": 1e-5}
ATOL = {"cpu": 0.0, "gpu": 1e-5}


def test_preprocess_equals_the_scanpy_recipe(counts, sc_device):
    expected = spec_recipe(counts.copy())
    ours = gsc.preprocess(counts, copy=True, device=sc_device)
    # every step removed something, so each filter is exercised
    table = ours.uns["preprocess_steps"]
    steps = {
        name: (cells, genes)
        for name, cells, genes in zip(
            table["step"], table["n_cells"], table["n_genes"], strict=True
        )
    }
    assert steps["filter_cells"][0] < counts.n_obs
    assert steps["filter_genes"][1] < counts.n_vars
    assert steps["filter_qc"][0] < steps["qc_metrics"][0]
    assert list(ours.obs_names) == list(expected.obs_names)
    if sc_device == "cpu":
        assert list(ours.var_names) == list(expected.var_names)
    else:  # HVG selection may differ at exact ties of the cut (preprocess docstring)
        assert len(set(ours.var_names) ^ set(expected.var_names)) <= 4
    shared = expected.var_names.intersection(ours.var_names)
    np.testing.assert_allclose(
        dense(ours[:, shared].X),
        dense(expected[:, shared].X),
        rtol=RTOL[sc_device] * 10,
        atol=ATOL[sc_device] * 10,
    )
    # the recipe's own column names beside scanpy's
    obs = ours.obs
    np.testing.assert_array_equal(obs["n_genes"], expected.obs["n_genes_by_counts"])
    np.testing.assert_allclose(obs["n_counts"], expected.obs["total_counts"], rtol=1e-6)
    np.testing.assert_allclose(obs["percent_mito"], expected.obs["pct_counts_mt"], rtol=1e-5)
    for column in ("gene_ids", "gene_symbols", "highly_variable", "mean_counts", "dispersions"):
        assert column in ours.var
    assert ours.var["highly_variable"].all()
    # raw counts of the kept cells and genes
    raw = counts[ours.obs_names, ours.var_names].X
    np.testing.assert_array_equal(dense(ours.layers["counts"]), dense(raw))
    assert ours.uns["preprocess_recipe"]["n_top_genes"] == 2000


def test_preprocess_in_place_and_copy(counts):
    original = counts.copy()
    result = gsc.preprocess(original, copy=True, device="cpu")
    assert result is not original
    assert same_anndata(original, counts)  # the copy is processed, the original untouched
    assert gsc.preprocess(original, device="cpu") is None  # in place: nothing returned
    assert same_anndata(original, result)
    assert list(original.layers) == list(result.layers) == ["counts"]


def test_every_threshold_is_a_parameter(counts):
    expected = counts.copy()
    sc.pp.filter_cells(expected, min_genes=50)
    sc.pp.filter_genes(expected, min_cells=10)
    expected.var["mt"] = expected.var_names.str.startswith("MT-")
    sc.pp.calculate_qc_metrics(
        expected, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True
    )
    expected = expected[expected.obs.n_genes_by_counts < 2000, :]
    expected = expected[expected.obs.pct_counts_mt < 8, :].copy()
    sc.pp.normalize_total(expected, target_sum=1e6)
    sc.pp.log1p(expected)
    sc.pp.highly_variable_genes(expected, n_top_genes=300, flavor="cell_ranger")
    ours = gsc.preprocess(
        counts,
        min_genes=50,
        min_cells=10,
        max_genes=2000,
        max_pct_mito=8,
        target_sum=1e6,
        n_top_genes=300,
        hvg_flavor="cell_ranger",
        subset_hvg=False,
        scale_data=False,
        copy=True,
        device="cpu",
    )
    assert list(ours.obs_names) == list(expected.obs_names)
    assert list(ours.var_names) == list(expected.var_names)
    np.testing.assert_array_equal(ours.var["highly_variable"], expected.var["highly_variable"])
    np.testing.assert_array_equal(dense(ours.X), dense(expected.X))


def test_seurat_v3_reads_the_counts_layer(counts):
    expected = counts.copy()
    sc.pp.filter_cells(expected, min_genes=200)
    sc.pp.filter_genes(expected, min_cells=3)
    expected.layers["counts"] = expected.X.copy()
    sc.pp.highly_variable_genes(expected, n_top_genes=500, flavor="seurat_v3", layer="counts")
    ours = gsc.preprocess(
        counts,
        max_genes=None,
        max_pct_mito=None,
        n_top_genes=500,
        hvg_flavor="seurat_v3",
        subset_hvg=False,
        scale_data=False,
        copy=True,
        device="cpu",
    )
    np.testing.assert_array_equal(ours.var["highly_variable"], expected.var["highly_variable"])
    variances = expected.var["variances"].to_numpy()
    means = expected.var["means"].to_numpy()
    np.testing.assert_allclose(ours.var["dispersions"], variances / means, rtol=1e-12)


# --- each verb against scanpy ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    """pbmc68k_reduced's log-normalised values brought back to (non-integer) expression."""
    bundled = sc.datasets.pbmc68k_reduced()
    values = np.expm1(dense(bundled.raw.X)).astype(np.float32)
    values[values < 1e-6] = 0
    return ad.AnnData(
        X=sp.csr_matrix(values),
        obs=pd.DataFrame(index=bundled.obs_names),
        var=pd.DataFrame(index=bundled.raw.var_names),
    )


@pytest.fixture(params=["synthetic", "pbmc68k_reduced"])
def dataset(request, counts, pbmc) -> ad.AnnData:
    return (counts if request.param == "synthetic" else pbmc).copy()


def test_qc_metrics_match_scanpy(dataset):
    expected = dataset.copy()
    expected.var["mt"] = expected.var_names.str.startswith("MT-")
    sc.pp.calculate_qc_metrics(
        expected, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True
    )
    gsc.qc_metrics(dataset, device="cpu")
    for column in expected.obs.columns:
        np.testing.assert_array_equal(
            dataset.obs[column], np.nan_to_num(expected.obs[column].to_numpy())
        )
    pd.testing.assert_frame_equal(dataset.var[expected.var.columns], expected.var)
    np.testing.assert_array_equal(dataset.obs["n_counts"], expected.obs["total_counts"])


@pytest.mark.parametrize(
    ("verb", "scanpy_verb", "bounds"),
    [
        ("filter_cells", "filter_cells", {"min_genes": 200, "max_counts": 3000}),
        ("filter_cells", "filter_cells", {"min_counts": 30, "max_genes": 1500}),
        ("filter_genes", "filter_genes", {"min_cells": 3, "max_counts": 900}),
        ("filter_genes", "filter_genes", {"min_counts": 5, "max_cells": 400}),
    ],
)
def test_filters_match_scanpy(dataset, verb, scanpy_verb, bounds):
    expected = dataset.copy()
    for name, value in bounds.items():
        getattr(sc.pp, scanpy_verb)(expected, **{name: value})
    getattr(gsc, verb)(dataset, **bounds, device="cpu")
    assert list(dataset.obs_names) == list(expected.obs_names)
    assert list(dataset.var_names) == list(expected.var_names)


@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
@pytest.mark.parametrize("axis", [0, 1])
def test_axis_statistics_match_scanpy_counts(dataset, layout, axis, device):
    """The GPU filters' per-axis counts and sums, on both devices, against scanpy's."""
    x = dataset.X.copy()
    x.data[::7] = 0  # explicit zeros must not count as detected
    detected = np.asarray((x > 0).sum(axis=axis)).ravel()
    totals = np.asarray(x.astype(np.float64).sum(axis=axis)).ravel()
    matrix = x.toarray() if layout == "dense" else x.asformat(layout)
    if device == "gpu":
        import cupy

        if layout == "dense":
            matrix = cupy.asarray(matrix)
        else:  # the components are all the function reads
            matrix = SimpleNamespace(
                data=cupy.asarray(matrix.data),
                indices=cupy.asarray(matrix.indices),
                indptr=cupy.asarray(matrix.indptr),
                format=layout,
                shape=matrix.shape,
            )
    n_positive, sums = pp_module.axis_statistics(matrix, axis)
    np.testing.assert_array_equal(_host(n_positive), detected)
    np.testing.assert_allclose(_host(sums), totals, rtol=1e-12)


def _host(values):
    return values.get() if hasattr(values, "get") else np.asarray(values)


def test_normalize_log_scale_match_scanpy(dataset):
    expected = dataset.copy()
    sc.pp.normalize_total(expected, target_sum=1e4)
    sc.pp.log1p(expected)
    gsc.normalize_total(dataset, target_sum=1e4, device="cpu")
    gsc.log1p(dataset, device="cpu")
    np.testing.assert_array_equal(dense(dataset.X), dense(expected.X))
    sc.pp.scale(expected, max_value=10)
    gsc.scale(dataset, max_value=10, device="cpu")
    np.testing.assert_array_equal(dense(dataset.X), dense(expected.X))
    assert dense(dataset.X).max() <= 10


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger"])
def test_highly_variable_genes_match_scanpy(dataset, flavor):
    sc.pp.normalize_total(dataset, target_sum=1e4)
    sc.pp.log1p(dataset)
    expected = dataset.copy()
    sc.pp.highly_variable_genes(expected, n_top_genes=200, flavor=flavor)
    gsc.highly_variable_genes(dataset, n_top_genes=200, flavor=flavor, device="cpu")
    pd.testing.assert_frame_equal(dataset.var[expected.var.columns], expected.var)
    gsc.highly_variable_genes(dataset, n_top_genes=200, flavor=flavor, subset=True, device="cpu")
    assert dataset.n_vars == int(expected.var["highly_variable"].sum())


# --- copy=True and in place ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "kwargs", "log_normalised"),
    [
        ("annotate_genes", {}, False),
        ("qc_metrics", {"device": "cpu"}, False),
        ("filter_cells", {"min_genes": 200, "device": "cpu"}, False),
        ("filter_genes", {"min_cells": 3, "device": "cpu"}, False),
        ("filter_qc", {"device": "cpu"}, False),
        ("normalize_total", {"target_sum": 1e4, "device": "cpu"}, False),
        ("log1p", {"device": "cpu"}, False),
        ("highly_variable_genes", {"n_top_genes": 200, "subset": True, "device": "cpu"}, True),
        ("scale", {"max_value": 10, "device": "cpu"}, True),
    ],
)
@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_verbs_copy_or_modify_in_place(counts, verb, kwargs, log_normalised):
    """In place: ``adata`` modified, None returned. copy=True: the same result on a copy that is
    returned, the original untouched."""
    data = counts.copy()
    if verb == "annotate_genes":  # duplicate names to make unique, var columns to add
        data.var_names = [*data.var_names[:-2], "G5", "G5"]
    if log_normalised:
        sc.pp.normalize_total(data, target_sum=1e4)
        sc.pp.log1p(data)
    untouched = data.copy()
    in_place = data.copy()
    assert getattr(gsc, verb)(in_place, **kwargs) is None
    assert not same_anndata(in_place, untouched)  # the verb did something
    result = getattr(gsc, verb)(data, copy=True, **kwargs)
    assert isinstance(result, ad.AnnData) and result is not data
    assert same_anndata(data, untouched)
    assert same_anndata(result, in_place)


MODIFYING_VERBS = (
    "annotate_genes",
    "qc_metrics",
    "filter_cells",
    "filter_genes",
    "filter_qc",
    "normalize_total",
    "log1p",
    "highly_variable_genes",
    "scale",
    "preprocess",
    "downsample_counts",
)
#: how many leading parameters may be passed by position (default 1: the data)
POSITIONAL = {  # data, then paths
    "write": 2,
    "write_rank_encoding": 2,
    "preprocess_file": 2,
    "downsample_file": 2,
    "simulate_doublets_file": 2,
}


def test_public_signatures_in_scanpy_style():
    """Every parameter after the data is keyword-only; a verb that modifies ``adata`` takes
    ``copy=False``; no boolean parameter can be passed by position."""
    for name in gsc.__all__:
        function = getattr(gsc, name)
        if not inspect.isfunction(function):
            continue
        parameters = list(inspect.signature(function).parameters.values())
        by_position = [
            p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        assert len(by_position) <= POSITIONAL.get(name, 1), name
        assert all(p.annotation not in (bool, "bool") for p in by_position), name
        if name in MODIFYING_VERBS:
            copy = inspect.signature(function).parameters["copy"]
            assert copy.kind == copy.KEYWORD_ONLY and copy.default is False, name
            assert "inplace" not in inspect.signature(function).parameters, name


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "word"), [(-1.0, "negative"), (np.nan, "not finite")])
def test_negative_or_non_finite_values_name_cell_and_gene(counts, value, word):
    bad = counts.copy()
    values = bad.X.toarray()
    values[7, 20] = value
    bad.X = sp.csr_matrix(values)
    with pytest.raises(InputError, match=r"cell 'cell7' \(row 7\), gene 'G20' \(column 20\)"):
        gsc.preprocess(bad, device="cpu")
    bad.X = values  # dense input too
    with pytest.raises(InputError, match=rf"row 7\), gene 'G20' .*\({word}\)"):
        gsc.check_counts(bad)


def test_seurat_v3_rejects_non_integer_counts(pbmc):
    with pytest.raises(InputError, match="flavor 'seurat_v3' needs non-negative integer counts"):
        gsc.highly_variable_genes(pbmc.copy(), flavor="seurat_v3", device="cpu")


def test_no_mito_genes_warns_and_gives_zero(counts, caplog):
    renamed = counts.copy()
    renamed.var_names = [f"X{i}" for i in range(renamed.n_vars)]
    with caplog.at_level(logging.WARNING, logger="gpu_genomics"):
        gsc.qc_metrics(renamed, device="cpu")
    assert "no gene name starts with 'MT-'" in caplog.text
    assert (renamed.obs["percent_mito"] == 0).all()


def test_every_cell_filtered_out_is_an_error(counts):
    with pytest.raises(InputError, match=r"filter_cells\(min_genes=100000\) removed every cell"):
        gsc.preprocess(counts.copy(), min_genes=100_000, device="cpu")
    with pytest.raises(InputError, match=r"filter_qc\(max_genes=1, .*removed every cell"):
        gsc.preprocess(counts.copy(), max_genes=1, device="cpu")


def test_duplicate_gene_names_are_made_unique_with_a_warning(counts, caplog):
    dup = counts.copy()
    names = list(dup.var_names)
    names[20] = names[21] = "G5"
    dup.var_names = names
    with caplog.at_level(logging.WARNING, logger="gpu_genomics"):
        gsc.annotate_genes(dup)
    assert "duplicate gene names (first: 'G5')" in caplog.text
    assert dup.var_names.is_unique
    assert list(dup.var["gene_symbols"].iloc[[20, 21]]) == ["G5", "G5"]


def test_unknown_hvg_flavor(counts):
    with pytest.raises(InputError, match="flavor='pearson' is not one of"):
        gsc.highly_variable_genes(counts.copy(), flavor="pearson", device="cpu")


# --- devices --------------------------------------------------------------------------------


def test_auto_falls_back_to_scanpy_with_one_line(counts, caplog, monkeypatch):
    if rapids_status()[0]:
        pytest.skip("rapids-singlecell is usable here")
    from gpu_genomics import device as device_module

    device_module._log_fallback.cache_clear()
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        gsc.log1p(counts.copy(), device="auto")
        gsc.log1p(counts.copy(), device="auto")
    lines = [r.message for r in caplog.records if "device='auto'" in r.message]
    assert len(lines) == 1 and "because" in lines[0]


def test_gpu_without_backend_is_a_clear_error(counts):
    if rapids_status()[0]:
        pytest.skip("rapids-singlecell is usable here")
    with pytest.raises(DeviceError, match="device='gpu' was requested"):
        gsc.preprocess(counts.copy(), device="gpu")


def test_dataset_card(counts):
    ours = gsc.preprocess(counts, copy=True, device="cpu")
    card = gsc.dataset_card(ours, dataset_id="synthetic")
    assert card["n_cells"] == ours.n_obs and card["n_genes"] == 2000
    assert card["modality"] == "scRNA-seq"
    assert card["feature_selection"] == "top_2000_HVG (seurat)"
    assert card["normalization"].startswith("log1p(normalize_total target_sum=10000)")
    assert card["preprocessing"].startswith("gpu-genomics") and "scanpy" in card["preprocessing"]


def test_the_rank_counts_of_cells_that_share_names(counts):
    """Concatenated samples repeat barcodes: the counts handed on are those of each kept cell,
    found by its position, not its name."""
    seen = {}
    repeated = counts.copy()
    repeated.obs_names = [f"cell{i % 50}" for i in range(repeated.n_obs)]
    for key, adata in (("unique", counts.copy()), ("repeated", repeated)):
        gsc.preprocess(adata, on_counts=lambda kept, key=key: seen.__setitem__(key, kept))
        assert "_gpu_genomics_all_genes_row" not in adata.obs
    unique, shared = seen["unique"], seen["repeated"]
    assert shared.n_obs == unique.n_obs > 0 and len(set(shared.obs_names)) <= 50
    assert (shared.X != unique.X).nnz == 0

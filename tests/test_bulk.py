"""Bulk RNA-seq steps against NumPy statements of the specification's recipe and scikit-learn's
StandardScaler, on each device (GPU results within 1e-12 relative of the CPU reference)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from gpu_genomics.errors import InputError
from gpu_genomics.expression.bulk import (
    Scaler,
    apply_scaler,
    filter_low_expression,
    fit_scaler,
    gene_means,
    log_transform,
    match_genes,
    preprocess_bulk,
)
from gpu_genomics.expression.scaler_files import load_scaler, save_scaler
from gpu_genomics.expression.tables import LabeledMatrix, read_table

TIGHT = {"rtol": 1e-12, "atol": 1e-12}  # float64 paths, any summation order


def tpm(n_samples=9, n_genes=40, seed=0) -> np.ndarray:
    """TPM-like values: genes from barely to highly expressed, some exact zeros."""
    rng = np.random.default_rng(seed)
    level = rng.normal(1.5, 1.5, size=n_genes)
    log_values = level + rng.normal(0, 0.5, size=(n_samples, n_genes))
    values = np.expm1(np.clip(log_values, 0, None))
    values[rng.random(values.shape) < 0.1] = 0.0
    return values


def names(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i}" for i in range(n)], dtype=object)


def as_matrix(values: np.ndarray) -> LabeledMatrix:
    return LabeledMatrix(values, names("s", values.shape[0]), names("g", values.shape[1]))


def spec_recipe(values: np.ndarray, threshold: float = 1.0):
    """The specification's code, verbatim apart from names: log1p, mean > threshold, fit."""
    x_log = np.log1p(values)
    keep = x_log.mean(axis=0) > threshold
    scaler = StandardScaler()
    return scaler.fit_transform(x_log[:, keep]), keep, scaler


def test_log_transform_is_log1p(device, host):
    values = tpm()
    got = host(log_transform(values, device=device))
    assert got.dtype == np.float64 and got.shape == values.shape
    np.testing.assert_allclose(got, np.log1p(values), **TIGHT)


def test_log_transform_rejects_negative_and_non_finite(device):
    values = tpm()
    values[3, 7] = -0.5
    with pytest.raises(InputError, match=r"sample 3, gene 7: -0\.5 is negative.*already_log=True"):
        log_transform(values, device=device)
    values[3, 7] = np.nan
    with pytest.raises(InputError, match=r"sample 3, gene 7: nan is not finite"):
        log_transform(values, device=device)


@pytest.mark.parametrize("threshold", [1.0, 0.0, 2.5])
def test_filter_low_expression_matches_numpy(device, host, threshold):
    log_values = np.log1p(tpm())
    filtered, kept = host(filter_low_expression(log_values, threshold, device=device))
    expected = log_values.mean(axis=0) > threshold
    assert kept.dtype == np.bool_
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(filtered, log_values[:, expected])
    np.testing.assert_allclose(host(gene_means(log_values, device=device)), log_values.mean(0))


def test_filter_threshold_is_strict(device, host):
    log_values = np.array([[1.0, 0.5, 2.0], [1.0, 1.5, 0.0]])  # means 1.0, 1.0, 1.0
    _, kept = host(filter_low_expression(log_values, 1.0, device=device))
    np.testing.assert_array_equal(kept, [False, False, False])
    with pytest.raises(InputError, match="min_mean_log"):
        filter_low_expression(log_values, float("nan"), device=device)


def test_fit_and_apply_match_standard_scaler(device, host):
    rng = np.random.default_rng(5)
    values = rng.normal(3.0, 2.0, size=(25, 12))
    values[:, 4] = 7.25  # constant gene: scale 1, z-scores 0
    values[:, 5] = 1e6 + np.array([0, 1e-10] * 12 + [0])  # within rounding of constant
    values[:, 6] = rng.integers(0, 3, size=25)  # few distinct values
    reference = StandardScaler().fit(values)
    scaler = fit_scaler(values, names("g", 12), device=device)
    assert isinstance(scaler, Scaler) and scaler.n_samples == reference.n_samples_seen_ == 25
    np.testing.assert_allclose(scaler.mean, reference.mean_, **TIGHT)
    np.testing.assert_allclose(scaler.std, reference.scale_, **TIGHT)
    assert scaler.std[4] == 1.0 and scaler.std[5] == 1.0
    new = rng.normal(3.0, 2.0, size=(6, 12))
    got = host(apply_scaler(new, scaler, device=device))
    np.testing.assert_allclose(got, reference.transform(new), **TIGHT)
    np.testing.assert_allclose(
        host(apply_scaler(values, scaler, device=device)), reference.transform(values), **TIGHT
    )


def test_apply_scaler_matches_genes_by_name(device, host):
    rng = np.random.default_rng(8)
    fitted_on = rng.normal(size=(10, 5))
    scaler = fit_scaler(fitted_on, ["a", "b", "c", "d", "e"], device=device)
    reference = StandardScaler().fit(fitted_on)
    new = rng.normal(size=(4, 7))
    new_names = ["x", "c", "a", "e", "y", "d", "b"]  # shuffled, with 2 extra genes
    order = [new_names.index(g) for g in "abcde"]
    got = host(apply_scaler(new, scaler, gene_names=new_names, device=device))
    np.testing.assert_allclose(got, reference.transform(new[:, order]), **TIGHT)
    with pytest.raises(InputError, match=r"new\.tsv: 1 of the 5 genes of the scaler.*first 'd'"):
        apply_scaler(new, scaler, gene_names=[*new_names[:5], "z", "b"], input_name="new.tsv")
    with pytest.raises(InputError, match=r"gene 'a' appears twice \(columns 2 and 6\)"):
        apply_scaler(new, scaler, gene_names=[*new_names[:6], "a"], device=device)
    with pytest.raises(InputError, match="has 7 genes but the scaler has 5"):
        apply_scaler(new, scaler, device=device)
    np.testing.assert_array_equal(match_genes(new_names, scaler), order)


@pytest.mark.parametrize("suffix", [".json", ".h5"])
def test_save_load_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(2)
    scaler = fit_scaler(rng.lognormal(size=(7, 6)), names("ENSG", 6), log1p=False, device="cpu")
    path = tmp_path / f"scaler{suffix}"
    save_scaler(scaler, path)
    loaded = load_scaler(path)
    assert list(loaded.gene_names) == list(scaler.gene_names)
    np.testing.assert_array_equal(loaded.mean, scaler.mean)  # exact: JSON floats round-trip
    np.testing.assert_array_equal(loaded.std, scaler.std)
    assert loaded.n_samples == 7 and loaded.log1p is False and loaded.source == str(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def bad_json(tmp_path, **changes):
    document = {
        "format": "gpu-genomics/bulk-scaler",
        "version": 1,
        "gene_id": ["a", "b"],
        "mean": [1.0, 2.0],
        "std": [1.0, 0.5],
    }
    document.update(changes)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document))
    return path


def test_load_scaler_rejects_bad_files(tmp_path):
    assert list(load_scaler(bad_json(tmp_path)).gene_names) == ["a", "b"]
    cases = [
        ({"std": [1.0, 0.0]}, r"std of gene 'b' is 0\.0; every std must be finite and > 0"),
        ({"mean": [1.0, None]}, r"mean of gene 'b' is nan"),
        ({"mean": [1.0]}, r"2 genes, 1 means and 2 standard deviations"),
        ({"gene_id": ["a", "a"]}, r"gene 'a' appears twice"),
        ({"format": "other"}, r"not a gpu-genomics scaler"),
    ]
    for changes, expected in cases:
        with pytest.raises(InputError, match=expected):
            load_scaler(bad_json(tmp_path, **changes))
    (tmp_path / "s.json").write_text('{"format":\n "gpu-genomics/bulk-scaler",\n oops}')
    with pytest.raises(InputError, match=r"s\.json, line 3: not valid JSON"):
        load_scaler(tmp_path / "s.json")
    with pytest.raises(InputError, match="no such scaler file"):
        load_scaler(tmp_path / "none.json")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1]
    with pytest.raises(InputError, match="has no 'gene_id' array"):
        load_scaler(tmp_path / "other.h5")
    (tmp_path / "s.txt").write_text("x")
    with pytest.raises(InputError, match=r"must be \.json, \.h5"):
        load_scaler(tmp_path / "s.txt")
    with pytest.raises(InputError, match=r"must end in \.json, \.h5 or \.hdf5"):
        save_scaler(load_scaler(bad_json(tmp_path)), tmp_path / "s.csv")


def test_preprocess_bulk_is_the_specification_recipe(device, host):
    values = tpm(n_samples=11, n_genes=60, seed=4)
    values[:, 0] = 30.0  # a constant, kept gene
    expected, keep, _ = spec_recipe(values)
    result = preprocess_bulk(as_matrix(values), device=device)
    expression = host(result.expression)
    assert expression.dtype == np.float32 and expression.shape == (11, keep.sum())
    np.testing.assert_allclose(expression, expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(result.gene_mask, keep)
    assert list(result.gene_names) == list(names("g", 60)[keep])
    assert list(result.sample_names) == list(names("s", 11))
    assert result.fitted and result.scaler.log1p
    np.testing.assert_array_equal(expression[:, 0], 0.0)


def test_preprocess_bulk_options(device, host):
    values = tpm(seed=6)
    log_values = np.log1p(values) - 0.5  # log scale with negatives
    result = preprocess_bulk(
        as_matrix(log_values), already_log=True, min_mean_log=0.3, zscore=False, device=device
    )
    keep = log_values.mean(axis=0) > 0.3
    np.testing.assert_array_equal(result.gene_mask, keep)
    np.testing.assert_array_equal(host(result.expression), log_values[:, keep].astype(np.float32))
    assert result.scaler.log1p is False
    reference = StandardScaler().fit(log_values[:, keep])
    np.testing.assert_allclose(result.scaler.std, reference.scale_, **TIGHT)


def test_preprocess_bulk_with_a_stored_scaler(device, host):
    train, new = tpm(n_samples=12, seed=1), tpm(n_samples=5, seed=2)
    _, keep, reference = spec_recipe(train)
    fitted = preprocess_bulk(as_matrix(train), device=device)
    # the new matrix has the genes in another order
    order = np.random.default_rng(0).permutation(train.shape[1])
    shuffled = LabeledMatrix(new[:, order], names("n", 5), names("g", train.shape[1])[order])
    applied = preprocess_bulk(shuffled, scaler=fitted.scaler, device=device)
    expected = reference.transform(np.log1p(new)[:, keep])
    np.testing.assert_allclose(host(applied.expression), expected, rtol=1e-6, atol=1e-6)
    assert list(applied.gene_names) == list(fitted.gene_names)
    assert not applied.fitted
    np.testing.assert_array_equal(applied.gene_mask, keep[order])


def test_preprocess_bulk_errors_name_the_file(tmp_path, device):
    path = tmp_path / "expr.tsv"
    path.write_text("gene\tS1\tS2\nG1\t5\t6\n\nG2\t4\t-2\nG3\t0\t0\n")
    matrix = read_table(path)
    with pytest.raises(InputError, match=rf"{path}, line 4, column 'S2': -2\.0 is negative"):
        preprocess_bulk(matrix, device=device)
    with pytest.raises(InputError, match=r"no gene has a mean log expression above 9 \(the "):
        preprocess_bulk(matrix, already_log=True, min_mean_log=9, device=device)
    scaler = fit_scaler(np.ones((2, 2)), ["G1", "G9"], device="cpu")
    with pytest.raises(InputError, match=r"expr\.tsv: 1 of the 2 genes of the scaler.*'G9'"):
        preprocess_bulk(matrix, already_log=True, scaler=scaler, device=device)


def test_single_sample_gives_zero_z_scores(device, host):
    result = preprocess_bulk(as_matrix(np.array([[10.0, 0.0, 20.0]])), device=device)
    np.testing.assert_array_equal(host(result.expression), [[0.0, 0.0]])
    np.testing.assert_array_equal(result.scaler.std, [1.0, 1.0])

"""The ``bulk`` job (:func:`gpu_genomics.preprocess_bulk_file`) called as a library: the
specification's recipe (pandas + NumPy + scikit-learn) gives the same arrays; stored scalers
round-trip; mistakes name the Python parameters and leave no output; outputs and scaler files
carry their provenance."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler
from test_encode_job import check_provenance, parse_attr

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.expression import bulk_job
from gpu_genomics.io.provenance import PROVENANCE_KEYS

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "bulk" / "example_expression.tsv"
CLOSE = {"rtol": 1e-6, "atol": 1e-6}  # float32 output of float64 arithmetic


def bulk(input_path, output_path, **options) -> dict:
    """``preprocess_bulk_file`` on the CPU, returning its summary."""
    return gg.preprocess_bulk_file(input_path, output_path, device="cpu", **options)


def read(path):
    """``(arrays, attrs)`` of an HDF5 or Zarr output, strings decoded, JSON attrs parsed."""
    if Path(path).is_dir():
        import zarr

        group = zarr.open_group(str(path), mode="r")
        arrays = {k: group[k][...] for k in group.array_keys()}
        attrs = dict(group.attrs)
    else:
        with h5py.File(path) as f:
            arrays = {k: f[k][...] for k in f}
            attrs = {k: parse_attr(v) for k, v in f.attrs.items()}
    for key, value in arrays.items():
        if value.dtype.kind in "OSUT":  # T: NumPy 2 StringDType from Zarr
            arrays[key] = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    return arrays, attrs


def spec_recipe(path, sep="\t", threshold=1.0):
    """The specification's bulk code: read (genes x samples), transpose, log1p, filter, scale."""
    gene_expression = pd.read_csv(path, sep=sep, index_col=0)
    x = gene_expression.T.values
    x_log = np.log1p(x)
    keep = x_log.mean(axis=0) > threshold
    scaler = StandardScaler()
    scaled = scaler.fit_transform(x_log[:, keep])
    return gene_expression, scaled, keep, scaler


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_bulk_matches_the_specification(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    summary = bulk(EXAMPLE, out)
    arrays, attrs = read(out)
    table, expected, keep, scaler = spec_recipe(EXAMPLE)
    assert arrays["expression"].dtype == np.float32
    np.testing.assert_allclose(arrays["expression"], expected, **CLOSE)
    assert arrays["sample_id"] == list(table.columns)
    assert arrays["gene_id"] == list(table.index[keep])
    assert arrays["input_gene_id"] == list(table.index)
    np.testing.assert_array_equal(arrays["gene_mask"], keep)
    np.testing.assert_allclose(arrays["scaler_mean"], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(arrays["scaler_std"], scaler.scale_, rtol=1e-12)
    assert attrs["n_samples"] == 12 and attrs["n_genes_input"] == 300
    assert attrs["n_genes_kept"] == keep.sum() < 300
    assert attrs["parameters"]["min_mean_log"] == 1.0 and attrs["transform"] == "log1p"
    assert attrs["scaler_fitted"] and attrs["zscore"] and attrs["modality"] == "bulk RNA-seq"
    assert attrs["scaler_n_samples"] == 12 and attrs["scaler_log1p"]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    seconds = summary.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert summary == {
        "output": str(out),
        "n_samples": 12,
        "n_genes_input": 300,
        "n_genes_kept": int(keep.sum()),
        "scaler_fitted": True,
    }


def test_logs_what_was_kept(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        bulk(EXAMPLE, tmp_path / "o.h5")
    keep = spec_recipe(EXAMPLE)[2]
    assert f"bulk: 12 samples, {keep.sum()} of 300 genes kept (mean log expression > 1.0)" in (
        caplog.text
    )


def test_samples_by_genes_csv_gives_the_same(tmp_path):
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    transposed = tmp_path / "samples.csv.gz"
    table.T.to_csv(transposed)
    bulk(EXAMPLE, tmp_path / "a.h5")
    bulk(transposed, tmp_path / "b.h5", samples_by_genes=True)
    a, _ = read(tmp_path / "a.h5")
    b, attrs = read(tmp_path / "b.h5")
    assert a["gene_id"] == b["gene_id"] and a["sample_id"] == b["sample_id"]
    np.testing.assert_array_equal(a["expression"], b["expression"])
    assert attrs["parameters"]["samples_by_genes"] is True


def test_already_log_threshold_and_no_zscore(tmp_path):
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    log_table = np.log2(table + 0.01)  # negative log values are fine with already_log
    path = tmp_path / "log2.tsv"
    log_table.to_csv(path, sep="\t")
    reread = pd.read_csv(path, sep="\t", index_col=0).T.values
    keep = reread.mean(axis=0) > 2.5
    summary = bulk(path, tmp_path / "z.zarr", already_log=True, min_mean_log=2.5)
    z, attrs = read(tmp_path / "z.zarr")
    expected = StandardScaler().fit_transform(reread[:, keep])
    np.testing.assert_allclose(z["expression"], expected, **CLOSE)
    assert attrs["transform"] == "none (already log)" and not attrs["scaler_log1p"]
    assert attrs["parameters"]["min_mean_log"] == 2.5 and summary["n_genes_kept"] == keep.sum()
    bulk(path, tmp_path / "l.h5", already_log=True, min_mean_log=2.5, zscore=False)
    raw, raw_attrs = read(tmp_path / "l.h5")
    np.testing.assert_allclose(raw["expression"], reread[:, keep], **CLOSE)
    np.testing.assert_array_equal(raw["scaler_mean"], z["scaler_mean"])
    assert raw_attrs["zscore"] is False and raw_attrs["parameters"]["zscore"] is False


@pytest.mark.parametrize("stored", ["scaler.json", "scaler.h5", "output"])
def test_apply_scaler_round_trip(tmp_path, stored):
    """Fit on the first 8 samples, apply to the other 4 (genes shuffled, one extra gene): the
    same as StandardScaler.fit on the first and .transform on the second."""
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    train, new = table.iloc[:, :8], table.iloc[:, 8:]
    new = new.sample(frac=1.0, random_state=3)  # genes in another order
    new.loc["extra_gene"] = 5.0
    train.to_csv(tmp_path / "train.tsv", sep="\t")
    new.to_csv(tmp_path / "new.tsv", sep="\t")
    fit_out = tmp_path / "train.zarr"
    extra = {} if stored == "output" else {"save_scaler_path": tmp_path / stored}
    bulk(tmp_path / "train.tsv", fit_out, **extra)
    scaler_path = fit_out if stored == "output" else tmp_path / stored
    summary = bulk(tmp_path / "new.tsv", tmp_path / "new.h5", apply_scaler_path=scaler_path)
    _, _, keep, reference = spec_recipe(tmp_path / "train.tsv")
    genes = list(train.index[keep])
    new_log = np.log1p(pd.read_csv(tmp_path / "new.tsv", sep="\t", index_col=0).loc[genes].T)
    applied, attrs = read(tmp_path / "new.h5")
    np.testing.assert_allclose(applied["expression"], reference.transform(new_log.values), **CLOSE)
    assert applied["gene_id"] == genes and applied["sample_id"] == list(new.columns)
    assert applied["input_gene_id"] == list(new.index)
    assert np.sum(applied["gene_mask"]) == len(genes)
    assert not attrs["scaler_fitted"] and attrs["scaler_source"] == str(scaler_path)
    np.testing.assert_allclose(applied["scaler_mean"], reference.mean_, rtol=1e-12)
    assert attrs["parameters"]["min_mean_log"] is None
    assert attrs["parameters"]["apply_scaler_path"] == str(scaler_path)
    assert summary["scaler_fitted"] is False and summary["n_genes_kept"] == len(genes)
    assert attrs["scaler_n_samples"] == 8


BAD_INPUTS = [
    ("gene\tS1\tS2\nG1\t1\t2\nG2\t3\tten\n", r"line 3, column 'S2': 'ten' is not a number"),
    ("", r"is empty"),
    ("gene\tS1\tS2\n", r"has a header but no data rows"),
    ("gene\tS1\tS1\nG1\t1\t2\n", r"duplicate column name 'S1'"),
    ("gene\tS1\tS2\nG1\t1\t2\nG1\t3\t4\n", r"duplicate row name 'G1' \(lines 2 and 3\)"),
    ("gene\tS1\tS2\nG1\t1\t2\nG2\t3\t-4\n", r"line 3, column 'S2': -4\.0 is negative"),
    ("gene\tS1\tS2\nG1\t1\tNaN\n", r"line 2, column 'S2': missing value 'NaN'"),
    ("gene\tS1\tS2\nG1\t1\tinf\n", r"line 2, column 'S2': 'inf' is not a finite number"),
    ("gene\tS1\tS2\nG1\t1\t2\nG2\t3\n", r"line 3: has 2 fields, expected 3"),
    ("gene\tS1\tS2\nG1\t0\t0\nG2\t0\t1\n", r"no gene has a mean log expression above 1"),
]


@pytest.mark.parametrize("text,expected", BAD_INPUTS)
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, text, expected, suffix):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        bulk(path, tmp_path / f"out{suffix}", save_scaler_path=tmp_path / "s.json")
    message = str(info.value)
    assert str(path) in message and re.search(expected, message), message
    assert "\n" not in message
    assert listing(tmp_path) == ["bad.tsv"]


def test_scaler_problems_name_the_parameters(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("gene\tS1\tS2\nG1\t10\t20\nG2\t30\t40\n")
    scaler = tmp_path / "s.json"
    bulk(path, tmp_path / "fit.h5", save_scaler_path=scaler)
    other = tmp_path / "y.tsv"
    other.write_text("gene\tS1\nG2\t1\nG3\t2\n")
    with pytest.raises(InputError) as info:
        bulk(other, tmp_path / "y.h5", apply_scaler_path=scaler)
    assert f"{other}: 1 of the 2 genes of the scaler from {scaler} are missing" in str(info.value)
    assert "'G1'" in str(info.value)
    with pytest.raises(InputError) as info:
        bulk(path, tmp_path / "z.h5", apply_scaler_path=scaler, min_mean_log=2.0)
    assert str(info.value) == (
        f"min_mean_log=2.0 has no effect with apply_scaler_path='{scaler}' (the scaler's genes "
        "are kept); drop one of them"
    )
    with pytest.raises(InputError, match=r"must end in \.json, \.h5 or \.hdf5"):
        bulk(path, tmp_path / "z.h5", save_scaler_path=tmp_path / "s.csv")
    with pytest.raises(InputError, match=r"save_scaler_path='.*z\.h5' must differ from the output"):
        bulk(path, tmp_path / "z.h5", save_scaler_path=tmp_path / "z.h5")
    with pytest.raises(InputError, match="no such scaler file"):
        bulk(path, tmp_path / "z.h5", apply_scaler_path=tmp_path / "none.json")
    with pytest.raises(InputError, match=r"cannot tell the output format.*output_format="):
        bulk(path, tmp_path / "out.csv")
    with pytest.raises(InputError, match="output_format='csv' is not one of hdf5, zarr"):
        bulk(path, tmp_path / "z.h5", output_format="csv")
    with pytest.raises(InputError, match="compression='bz2' is not one of"):
        bulk(path, tmp_path / "z.h5", compression="bz2")
    with pytest.raises(InputError, match="does not exist"):
        bulk(path, tmp_path / "z.h5", save_scaler_path=tmp_path / "no" / "s.json")
    for threshold, problem in (("high", "must be a number"), (float("inf"), "must be a finite")):
        with pytest.raises(InputError, match=f"min_mean_log=.* {problem}"):
            bulk(path, tmp_path / "z.h5", min_mean_log=threshold)
    assert listing(tmp_path) == sorted(["x.tsv", "s.json", "fit.h5", "y.tsv"])


def test_unknown_keyword_is_a_type_error_naming_it(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'min_mean_logx'"):
        gg.preprocess_bulk_file(EXAMPLE, tmp_path / "o.h5", min_mean_logx=1.0)
    with pytest.raises(TypeError):
        gg.preprocess_bulk_file(EXAMPLE, tmp_path / "o.h5", True)  # noqa: FBT003 (options are keyword-only)
    assert listing(tmp_path) == []


def test_a_failed_write_removes_the_saved_scaler(tmp_path, monkeypatch):
    """The scaler file is written first; when the main output then fails, both are gone."""

    def explode(values):
        raise KeyboardInterrupt

    monkeypatch.setattr(bulk_job, "to_numpy", explode)
    for suffix in (".json", ".h5"):
        with pytest.raises(KeyboardInterrupt):
            bulk(EXAMPLE, tmp_path / "o.h5", save_scaler_path=tmp_path / f"s{suffix}")
        assert listing(tmp_path) == []


def test_scaler_files_and_outputs_carry_provenance(tmp_path):
    out, json_path, h5_path = tmp_path / "o.zarr", tmp_path / "s.json", tmp_path / "s.h5"
    bulk(EXAMPLE, out, save_scaler_path=json_path, command="bulk here")
    bulk(EXAMPLE, tmp_path / "o.h5", save_scaler_path=h5_path, min_mean_log=1.5)
    parameters = {
        "samples_by_genes": False,
        "already_log": False,
        "min_mean_log": 1.0,
        "apply_scaler_path": None,
        "save_scaler_path": str(json_path),
        "zscore": True,
        "output_format": "zarr",
        "compression": "zstd",  # resolved: Zarr's default
    }
    _, attrs = read(out)
    stored = json.loads(json_path.read_text())["provenance"]
    for record in ({k: attrs[k] for k in PROVENANCE_KEYS}, stored):
        check_provenance(
            record,
            tool="gpu-genomics bulk",
            inputs={"table": EXAMPLE},
            parameters=parameters,
            command="bulk here",
        )
    _, h5_attrs = read(h5_path)
    check_provenance(
        {k: h5_attrs[k] for k in PROVENANCE_KEYS},
        tool="gpu-genomics bulk",
        inputs={"table": EXAMPLE},
        parameters=parameters
        | {
            "min_mean_log": 1.5,
            "save_scaler_path": str(h5_path),
            "output_format": "hdf5",
            "compression": "none",
        },
    )
    # applying a stored scaler lists it as an input (a folder: no size, no hash)
    bulk(EXAMPLE, tmp_path / "a.h5", apply_scaler_path=out)
    _, applied = read(tmp_path / "a.h5")
    check_provenance(
        {k: applied[k] for k in PROVENANCE_KEYS},
        tool="gpu-genomics bulk",
        inputs={"table": EXAMPLE, "scaler": out},
        parameters=parameters
        | {"min_mean_log": None, "apply_scaler_path": str(out), "save_scaler_path": None}
        | {"output_format": "hdf5", "compression": "none"},
    )


def test_example_is_reproducible(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_bulk", EXAMPLE.parent / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    assert (tmp_path / EXAMPLE.name).read_bytes() == EXAMPLE.read_bytes()


def test_bulk_on_each_device(tmp_path, device):
    out = tmp_path / "out.h5"
    gg.preprocess_bulk_file(EXAMPLE, out, device=device)
    arrays, attrs = read(out)
    _, expected, keep, _ = spec_recipe(EXAMPLE)
    np.testing.assert_allclose(arrays["expression"], expected, **CLOSE)
    np.testing.assert_array_equal(arrays["gene_mask"], keep)
    assert attrs["device"] == device

"""`gpu-genomics bulk` end to end: the specification's recipe (pandas + NumPy + scikit-learn)
gives the same arrays; mistakes are one line, exit 2, and leave no output."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from sklearn.preprocessing import StandardScaler

from gpu_genomics import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "bulk" / "example_expression.tsv"
CLOSE = {"rtol": 1e-6, "atol": 1e-6}  # float32 output of float64 arithmetic


def run(*args) -> None:
    cli.main([str(a) for a in args])


def bulk(*args) -> None:
    run("bulk", *args, "--device", "cpu", "--quiet")


def read(path):
    """``(arrays, attrs)`` of an HDF5 or Zarr output, strings decoded, JSON attrs parsed."""
    if str(path).endswith(".zarr"):
        group = zarr.open_group(str(path), mode="r")
        arrays = {k: group[k][...] for k in group.array_keys()}
        attrs = dict(group.attrs)
    else:
        with h5py.File(path) as f:
            arrays = {k: f[k][...] for k in f}
            attrs = {
                k: json.loads(v) if isinstance(v, str) and v.startswith(("[", "{")) else v
                for k, v in f.attrs.items()
            }
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


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_bulk_matches_the_specification(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    bulk(EXAMPLE, "-o", out)
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
    assert attrs["command"].startswith("gpu-genomics bulk ") and attrs["scaler_fitted"]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_samples_by_genes_csv_gives_the_same(tmp_path):
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    transposed = tmp_path / "samples.csv.gz"
    table.T.to_csv(transposed)
    bulk(EXAMPLE, "-o", tmp_path / "a.h5")
    bulk(transposed, "--samples-by-genes", "-o", tmp_path / "b.h5")
    a, _ = read(tmp_path / "a.h5")
    b, _ = read(tmp_path / "b.h5")
    assert a["gene_id"] == b["gene_id"] and a["sample_id"] == b["sample_id"]
    np.testing.assert_array_equal(a["expression"], b["expression"])


def test_already_log_threshold_and_no_zscore(tmp_path):
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    log_table = np.log2(table + 0.01)  # negative log values are fine with --already-log
    path = tmp_path / "log2.tsv"
    log_table.to_csv(path, sep="\t")
    reread = pd.read_csv(path, sep="\t", index_col=0).T.values
    keep = reread.mean(axis=0) > 2.5
    bulk(path, "--already-log", "--min-mean-log", 2.5, "-o", tmp_path / "z.zarr")
    z, attrs = read(tmp_path / "z.zarr")
    expected = StandardScaler().fit_transform(reread[:, keep])
    np.testing.assert_allclose(z["expression"], expected, **CLOSE)
    assert attrs["transform"] == "none (already log)" and not attrs["scaler_log1p"]
    bulk(path, "--already-log", "--min-mean-log", 2.5, "--no-zscore", "-o", tmp_path / "l.h5")
    raw, _ = read(tmp_path / "l.h5")
    np.testing.assert_allclose(raw["expression"], reread[:, keep], **CLOSE)
    np.testing.assert_array_equal(raw["scaler_mean"], z["scaler_mean"])


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
    extra = [] if stored == "output" else ["--save-scaler", tmp_path / stored]
    bulk(tmp_path / "train.tsv", "-o", fit_out, *extra)
    scaler_path = fit_out if stored == "output" else tmp_path / stored
    bulk(tmp_path / "new.tsv", "--apply-scaler", scaler_path, "-o", tmp_path / "new.h5")
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


def error_of(capsys, *args) -> str:
    """Run `bulk`; assert exit status 2 and one error line; return that line."""
    with pytest.raises(SystemExit) as info:
        bulk(*args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu-genomics: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


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
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, text, expected, suffix):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    out = tmp_path / f"out{suffix}"
    err = error_of(capsys, path, "-o", out)
    assert str(path) in err and re.search(expected, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]


def test_scaler_problems(tmp_path, capsys):
    path = tmp_path / "x.tsv"
    path.write_text("gene\tS1\tS2\nG1\t10\t20\nG2\t30\t40\n")
    scaler = tmp_path / "s.json"
    bulk(path, "-o", tmp_path / "fit.h5", "--save-scaler", scaler)
    other = tmp_path / "y.tsv"
    other.write_text("gene\tS1\nG2\t1\nG3\t2\n")
    err = error_of(capsys, other, "--apply-scaler", scaler, "-o", tmp_path / "y.h5")
    assert f"{other}: 1 of the 2 genes of the scaler from {scaler} are missing" in err
    assert "'G1'" in err
    err = error_of(capsys, path, "--apply-scaler", scaler, "--min-mean-log", 2, "-o", "z.h5")
    assert "--min-mean-log has no effect with --apply-scaler" in err
    err = error_of(capsys, path, "--save-scaler", tmp_path / "s.csv", "-o", tmp_path / "z.h5")
    assert "must end in .json, .h5 or .hdf5" in err
    err = error_of(capsys, path, "--apply-scaler", tmp_path / "none.json", "-o", "z.h5")
    assert "no such scaler file" in err
    err = error_of(capsys, path, "-o", tmp_path / "out.csv")
    assert "cannot tell the output format" in err
    assert not (tmp_path / "y.h5").exists() and not (tmp_path / "z.h5").exists()


def test_summary_line(tmp_path, capsys):
    run("bulk", EXAMPLE, "-o", tmp_path / "o.h5", "--device", "cpu")
    err = capsys.readouterr().err
    keep = spec_recipe(EXAMPLE)[2]
    assert f"bulk: 12 samples, {keep.sum()} of 300 genes kept (mean log expression > 1.0)" in err


def test_example_is_reproducible(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_bulk", EXAMPLE.parent / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    assert (tmp_path / EXAMPLE.name).read_bytes() == EXAMPLE.read_bytes()


def test_bulk_on_each_device(tmp_path, device):
    out = tmp_path / "out.h5"
    run("bulk", EXAMPLE, "-o", out, "--device", device, "--quiet")
    arrays, attrs = read(out)
    _, expected, keep, _ = spec_recipe(EXAMPLE)
    np.testing.assert_allclose(arrays["expression"], expected, **CLOSE)
    np.testing.assert_array_equal(arrays["gene_mask"], keep)
    assert attrs["parameters"]["device"] == device
